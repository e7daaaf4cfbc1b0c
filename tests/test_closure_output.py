"""``plan --closure``: built-in modules listed and marked, problems in the JSON document.

On a copy of the sample tree (cycles removed so that depmod writes indexes):
``binfmt_script`` is in its modules.builtin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest

from moddeps.modprobe.closure import Closure, ClosureItem
from moddeps.modprobe.indexes import Source
from moddeps.report.plan import closure_document, closure_lines

REPO = Path(__file__).resolve().parent.parent
VER = "6.1.0-50-cloud-amd64"
SAMPLE = REPO / "sample_modules" / "lib" / "modules" / VER
SCHEMA = json.loads(files("moddeps").joinpath("schemas/closure.schema.json").read_text())


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "moddeps", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MODDEPS_CACHE": "/nonexistent/none"})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    tree = root / "lib" / "modules" / VER
    shutil.copytree(SAMPLE, tree)
    for cyc in tree.rglob("mdx_cycle_*.ko"):
        cyc.unlink()
    assert run("depmod", "-b", str(root), VER).returncode == 0
    return root


def test_builtin_listed_and_marked(root: Path) -> None:
    r = run("plan", "-b", str(root), "-k", VER, "--closure", "mdx_consumer", "binfmt_script")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == "builtin binfmt_script"
    assert all(line.endswith(".ko") for line in lines[:-1]) and len(lines) == 3
    reasons = run("plan", "-b", str(root), "-k", VER, "--closure", "--reasons", "binfmt_script")
    assert reasons.stdout.splitlines() == [
        "builtin binfmt_script\tbuiltin\ttarget\tbinfmt_script is built into the kernel (modules.builtin)"]
    doc = json.loads(run("plan", "-b", str(root), "-k", VER, "--closure", "--json", "mdx_consumer",
                         "binfmt_script").stdout)
    jsonschema.validate(doc, SCHEMA)
    marks = {i["name"]: (i["kind"], i["builtin"], i["path"] is None) for i in doc["items"]}
    assert marks == {"binfmt_script": ("builtin", True, True), "mdx_consumer": ("module", False, False),
                     "mdx_exporter": ("module", False, False)}
    assert doc["problems"] == [] and doc["exit_status"] == 0


def test_problems_in_the_document(root: Path) -> None:
    exporter = root / "lib" / "modules" / VER / "kernel" / "samples" / "mdx" / "mdx_exporter.ko"
    st = exporter.stat()
    exporter.write_bytes(b"garbage" + exporter.read_bytes()[7:])
    os.utime(exporter, ns=(st.st_atime_ns, st.st_mtime_ns))  # the indexes stay current
    r = run("plan", "-b", str(root), "-k", VER, "--closure", "--json", "mdx_consumer")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert doc["exit_status"] == 1
    assert [p["name"] for p in doc["problems"]] == ["mdx_exporter"]
    assert "mdx_exporter.ko: cannot be read as a module" in doc["problems"][0]["message"]


def _closure(*items: ClosureItem, problems: tuple[tuple[str, str], ...] = ()) -> Closure:
    return Closure("/m", Source("index", "current", "mmap"), ("t",), items, (), (), problems)


def test_schema_ties_builtin_to_kind() -> None:
    builtin = ClosureItem("builtin", "b", None, "target", (), None)
    module = ClosureItem("module", "m", "/m/kernel/m.ko", "target", (), None)
    doc = closure_document(_closure(builtin, module, problems=(("m", "gone"),)))
    jsonschema.validate(doc, SCHEMA)
    assert doc["problems"] == [{"name": "m", "message": "gone"}] and doc["exit_status"] == 1
    assert closure_lines(_closure(builtin, module)) == ["builtin b", "/m/kernel/m.ko"]
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for field, value in (("builtin", False), ("path", "/x.ko")):
        bad = json.loads(json.dumps(doc))
        bad["items"][0][field] = value
        assert not validator.is_valid(bad), field
    bad = json.loads(json.dumps(doc))
    del bad["problems"]
    assert not validator.is_valid(bad)
