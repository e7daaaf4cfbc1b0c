"""Every ``--json`` document moddeps writes fits the JSON Schema shipped beside it in moddeps/schemas/.

Each command is run for real (the CLI, on the sample tree and on copies of it),
and its stdout is validated against its schema; every document starts with the
one envelope (``schema``, ``tool``, ``version``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

import moddeps
from moddeps.cli import app
from moddeps.report.render import envelope

REPO = Path(__file__).resolve().parent.parent
VERSION = "6.1.0-50-cloud-amd64"
SAMPLE_ROOT = REPO / "sample_modules"
SAMPLE_TREE = SAMPLE_ROOT / "lib" / "modules" / VERSION
SAMPLE_SYMVERS = SAMPLE_ROOT / "symvers" / f"Module.symvers-{VERSION}"
MDX = SAMPLE_TREE / "kernel" / "samples" / "mdx"

SCHEMAS = ("audit", "closure", "compat", "diff", "graph", "info", "order", "plan", "scan", "why")


def schema(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(files("moddeps").joinpath(f"schemas/{name}.schema.json").read_text())
    return doc


def run_json(*args: str, status: tuple[int, ...] = (0, 1)) -> dict[str, Any]:
    r = CliRunner().invoke(app, [*args])
    assert r.exit_code in status, (r.exit_code, r.output)
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def check(name: str, doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, schema(name))
    # the envelope comes first, as one function writes it
    assert list(doc)[:3] == ["schema", "tool", "version"]
    assert {k: doc[k] for k in ("schema", "tool", "version")} == envelope()
    assert doc["version"] == moddeps.__version__


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # the scan cache of these runs lives in their own directory
    mp = pytest.MonkeyPatch()
    mp.setenv("MODDEPS_CACHE", str(tmp_path_factory.mktemp("cache") / "scan.sqlite3"))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def changed_symvers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample Module.symvers with one CRC changed and one export dropped."""
    lines = SAMPLE_SYMVERS.read_text().splitlines(keepends=True)
    out = tmp_path_factory.mktemp("symvers") / "Module.symvers"
    first = lines[0].split("\t")
    first[0] = "0x00000001"
    out.write_text("\t".join(first) + "".join(lines[2:]))
    return out


@pytest.fixture(scope="module")
def smaller_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample tree without mdx_exporter (modules and edges removed)."""
    root = tmp_path_factory.mktemp("smaller") / "lib" / "modules" / VERSION
    shutil.copytree(SAMPLE_TREE, root)
    (root / "kernel" / "samples" / "mdx" / "mdx_exporter.ko").unlink()
    return root


@pytest.fixture(scope="module")
def acyclic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample root without its dependency cycle (modprobe plans nothing in a cyclic tree)."""
    root = tmp_path_factory.mktemp("acyclic")
    tree = root / "lib" / "modules" / VERSION
    shutil.copytree(SAMPLE_TREE, tree)
    for name in ("mdx_cycle_a", "mdx_cycle_b"):
        (tree / "kernel" / "samples" / "mdx" / f"{name}.ko").unlink()
    return root


def test_every_command_has_a_schema_with_the_one_envelope() -> None:
    shipped = sorted(p.name for p in files("moddeps").joinpath("schemas").iterdir() if p.name.endswith(".json"))
    assert shipped == sorted(f"{n}.schema.json" for n in SCHEMAS)
    head = None
    for name in SCHEMAS:
        s = schema(name)
        jsonschema.Draft202012Validator.check_schema(s)
        assert s["required"][:3] == ["schema", "tool", "version"] and s["additionalProperties"] is False
        props = {k: s["properties"][k] for k in ("schema", "tool", "version")}
        head = head or props
        assert props == head, name
        jsonschema.validate(envelope(), {"type": "object", "properties": props})


def test_audit(cache_env: None) -> None:
    check("audit", run_json("audit", "--json", "--symvers", str(SAMPLE_SYMVERS), str(SAMPLE_TREE)))
    check("audit", run_json("audit", "--format", "json", str(SAMPLE_TREE)))


def test_scan(cache_env: None) -> None:
    one = run_json("scan", "--json", str(SAMPLE_TREE), status=(0, 3))
    check("scan", one)
    assert one["tree"] == str(SAMPLE_TREE) and "trees" not in one
    files_only = run_json("scan", "--json", str(MDX / "mdx_exporter.ko"), str(MDX / "mdx_consumer.ko"))
    check("scan", files_only)
    assert [m["name"] for m in files_only["modules"]] == ["mdx_exporter", "mdx_consumer"]
    both = run_json("scan", "--format", "json", str(SAMPLE_TREE), str(MDX / "mdx_exporter.ko"), status=(0, 3))
    check("scan", both)
    assert both["trees"][0]["tree"] == str(SAMPLE_TREE) and "schema" not in both["trees"][0]


def test_info() -> None:
    doc = run_json("info", "--json", str(MDX / "mdx_exporter.ko"))
    check("info", doc)
    check("info", run_json("info", "--format", "json", "-b", str(SAMPLE_ROOT), "-k", VERSION, "mdx_exporter",
                           "nosuchmodule"))


def test_plan_and_closure(cache_env: None, acyclic_root: Path) -> None:
    b = ("-b", str(acyclic_root), "-k", VERSION)
    doc = run_json("plan", *b, "--json", "mdx_consumer", "mdx_softdep", "nosuchmodule")
    check("plan", doc)
    assert [p["target"] for p in doc["plans"]] == ["mdx_consumer", "mdx_softdep", "nosuchmodule"]
    check("plan", run_json("plan", *b, "--format", "json", "--remove", "mdx_consumer"))
    c = run_json("plan", *b, "--json", "--closure", "mdx_consumer", "mdx_softdep", status=(0, 1, 3))
    check("closure", c)
    assert c["items"]


def test_compat(cache_env: None, tmp_path: Path) -> None:
    doc = run_json("compat", "--json", "--symvers", str(SAMPLE_SYMVERS), str(MDX / "mdx_consumer.ko"),
                   str(MDX / "mdx_unknown.ko"), str(SAMPLE_TREE))
    check("compat", doc)
    assert {v["module"] for v in doc["verdicts"]} == {"mdx_consumer", "mdx_unknown"}
    assert doc["findings"]  # mdx_unknown needs a symbol nobody has
    matrix = run_json("compat", "--json", str(MDX / "mdx_consumer.ko"), "--against",
                      f"{SAMPLE_TREE}:{SAMPLE_SYMVERS}", "--against", str(SAMPLE_TREE))
    check("compat", matrix)
    assert len(matrix["kernels"]) == 2


def test_diff(cache_env: None, changed_symvers: Path, smaller_tree: Path) -> None:
    doc = run_json("diff", "--json", str(SAMPLE_SYMVERS), str(changed_symvers))
    check("diff", doc)
    assert {c["kind"] for c in doc["changes"]} == {"crc-changed", "export-removed"}
    trees = run_json("diff", "--format", "json", str(SAMPLE_TREE), str(smaller_tree))
    check("diff", trees)
    assert {"module-removed", "dependency-removed"} <= {c["kind"] for c in trees["changes"]}


def test_why_graph_order(cache_env: None) -> None:
    t = ("--tree", str(SAMPLE_TREE))
    needs = run_json("why", *t, "--json", "mdx_consumer")
    check("why", needs)
    assert needs["needs"] == ["mdx_exporter"]
    paths = run_json("why", *t, "--json", "mdx_consumer", "mdx_exporter")
    check("why", paths)
    assert paths["paths"][0][0]["symbols"]
    none = run_json("why", *t, "--format", "json", "mdx_exporter", "mdx_consumer")
    check("why", none)
    assert none["paths"] == []
    g = CliRunner().invoke(app, ["graph", str(SAMPLE_TREE), "--format", "json"])
    assert g.exit_code == 0, g.output
    check("graph", json.loads(g.stdout))
    order = run_json("order", str(SAMPLE_TREE), "--json")
    check("order", order)
    assert order["unplaced"] == ["mdx_cycle_a", "mdx_cycle_b"]  # the sample's cycle
    violations = run_json("order", str(SAMPLE_TREE), "--check", "--format", "json")
    check("order", violations)
    assert violations["mode"] == "check"


def test_schemas_reject_what_they_should() -> None:
    """The schemas are not vacuous: a document without the envelope, or with a key
    they do not describe, is refused."""
    doc = run_json("diff", "--json", str(SAMPLE_SYMVERS), str(SAMPLE_SYMVERS))
    check("diff", doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({k: v for k, v in doc.items() if k != "tool"}, schema("diff"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "extra": 1}, schema("diff"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "changes": [{"kind": "no-such-kind", "module": "m", "symbol": None,
                                                  "old": None, "new": None, "incompatible": False}]},
                            schema("diff"))
