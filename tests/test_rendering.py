"""Two renderings, one rule: rich tables on a terminal, whole TAB-separated records everywhere else.

Every command runs here with stdout a pipe, from a tree copied under a long
path, with COLUMNS=40 and COLUMNS=200: the output is the same bytes at both
widths, has no box character and no escape sequence, and each record the JSON
document has appears whole on one line.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from moddeps.report.render import choose, field, record

REPO = Path(__file__).resolve().parent.parent
VERSION = "6.1.0-50-cloud-amd64"
SAMPLE_TREE = REPO / "sample_modules" / "lib" / "modules" / VERSION
SAMPLE_SYMVERS = REPO / "sample_modules" / "symvers" / f"Module.symvers-{VERSION}"

BOX = re.compile("[\u2500-\u259f\u2026]")  # box drawing, blocks, and the ellipsis rich cuts with
ESC = "\x1b"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("fmt", "json_flag", "tty", "env", "expected"), [
    (None, False, True, {"TERM": "xterm"}, "table"),
    (None, False, False, {"TERM": "xterm"}, "text"),
    (None, False, True, {"TERM": "xterm", "CI": "true"}, "text"),
    (None, False, True, {"TERM": "xterm", "NO_COLOR": "1"}, "text"),
    (None, False, True, {"TERM": "xterm", "NO_COLOR": ""}, "table"),  # no-color.org: set and not empty
    (None, False, True, {"TERM": "dumb"}, "text"),
    (None, True, True, {"TERM": "xterm"}, "json"),
    ("table", False, False, {"CI": "true"}, "table"),
    ("text", False, True, {"TERM": "xterm"}, "text"),
    ("json", False, False, {}, "json"),
])
def test_the_rule(fmt: str | None, json_flag: bool, tty: bool, env: dict[str, str], expected: str) -> None:
    stream = _Tty() if tty else io.StringIO()
    assert choose(fmt, json_flag, stream=stream, env=env) == expected


def test_a_record_is_one_line_of_tab_separated_fields() -> None:
    assert record("finding", "a\tb", "line\nbreak\r", None, "", 3) == "finding\ta b\tline break \t-\t-\t3"
    assert field("x") == "x"


@pytest.fixture(scope="module")
def long_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample root under a path far longer than any terminal, without its
    dependency cycle (so that plans can be made)."""
    root = tmp_path_factory.mktemp("r")
    for n in range(4):
        root = root / (f"a-very-long-directory-name-number-{n}-" + "x" * 40)
    tree = root / "lib" / "modules" / VERSION
    shutil.copytree(SAMPLE_TREE, tree)
    for name in ("mdx_cycle_a", "mdx_cycle_b"):
        (tree / "kernel" / "samples" / "mdx" / f"{name}.ko").unlink()
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("cache") / "scan.sqlite3")


def run(cache: str, *args: str, columns: int = 80,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR", "TERM")}
    full = {**base, "COLUMNS": str(columns), "MODDEPS_CACHE": cache, "TERM": "xterm-256color", **(env or {})}
    return subprocess.run([sys.executable, "-m", "moddeps", *args], env=full, capture_output=True, text=True,
                          cwd=REPO)


def piped(cache: str, *args: str) -> list[str]:
    """The command's plain output, checked to be the same at 40 and 200 columns,
    with no box character, no escape sequence and no empty line."""
    narrow, wide = run(cache, *args, columns=40), run(cache, *args, columns=200)
    assert narrow.returncode == wide.returncode and narrow.returncode in (0, 1, 3), narrow.stderr
    assert narrow.stdout == wide.stdout, args
    lines = narrow.stdout.splitlines()
    assert lines, args
    for line in lines:
        assert not BOX.search(line) and ESC not in line and line.strip(), line
    return lines


def as_json(cache: str, *args: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(run(cache, *args, "--json").stdout)
    return doc


def records(lines: list[str], kind: str) -> list[list[str]]:
    return [line.split("\t")[1:] for line in lines if line.split("\t")[0] == kind]


def test_audit_piped(long_root: Path, cache: str) -> None:
    tree = str(long_root / "lib" / "modules" / VERSION)
    args = ("audit", "--symvers", str(SAMPLE_SYMVERS), tree)
    lines = piped(cache, *args)
    assert lines[0].startswith(f"moddeps audit of {tree}: 11 modules, ")
    doc = as_json(cache, *args)
    findings = records(lines, "finding")
    assert [(f[0], f[1], f[3]) for f in findings] == sorted(
        [(f["severity"], f["kind"], f["message"]) for f in doc["findings"]], key=lambda t: [
            (f[0], f[1], f[3]) for f in findings].index(t))
    assert len(findings) == len(doc["findings"]) > 0
    counts = {(c[0], c[1]): int(c[2]) for c in records(lines, "count")}
    assert sum(counts.values()) == len(doc["findings"])


def test_scan_piped(long_root: Path, cache: str) -> None:
    tree = str(long_root / "lib" / "modules" / VERSION)
    lines = piped(cache, "scan", tree)
    doc = as_json(cache, "scan", tree)
    assert lines[0] == f"moddeps scan of {tree}: {len(doc['modules'])} modules"
    mods = records(lines, "module")
    assert [(m[0], m[1]) for m in mods] == [(m["name"], m["path"]) for m in doc["modules"]]
    assert all(len(m) == 6 for m in mods)
    loose = piped(cache, "scan", f"{tree}/kernel/samples/mdx/mdx_exporter.ko")
    assert records(loose, "module")[0][:2] == ["mdx_exporter", f"{tree}/kernel/samples/mdx/mdx_exporter.ko"]


def test_diff_piped(long_root: Path, cache: str, tmp_path: Path) -> None:
    lines = SAMPLE_SYMVERS.read_text().splitlines(keepends=True)
    new = long_root / "Module.symvers"
    first = lines[0].split("\t")
    first[0] = "0x00000001"
    new.write_text("\t".join(first) + "".join(lines[2:]))
    out = piped(cache, "diff", str(SAMPLE_SYMVERS), str(new))
    assert out[0] == f"moddeps diff {SAMPLE_SYMVERS} -> {new}: 2 change(s), 2 incompatible"
    changes = records(out, "change")
    assert {(c[1], c[2], c[3]) for c in changes} == {
        (c["kind"], c["module"], c["symbol"]) for c in as_json(cache, "diff", str(SAMPLE_SYMVERS), str(new))["changes"]}
    assert all(c[0] == "incompatible" and len(c) == 5 for c in changes)
    assert not any("None" in line for line in out)
    # the same tree twice: nothing changed, said on one line however long the path
    tree = str(long_root / "lib" / "modules" / VERSION)
    same = piped(cache, "diff", tree, tree)
    assert same[0] == f"moddeps diff {tree} -> {tree}: 0 change(s), 0 incompatible"
    assert all(line.startswith("note: ") for line in same[1:])


def test_diff_lists_every_row_where_the_table_cuts(long_root: Path, cache: str) -> None:
    """More than 15 changes of a kind: the table says how many more and how to see
    them; the plain text has them all."""
    old, new = long_root / "Module.symvers.old", long_root / "Module.symvers.new"
    old.write_text("".join(f"0x{n:08x}\tsymbol_{n}\tvmlinux\tEXPORT_SYMBOL\t\n" for n in range(40)))
    new.write_text("".join(f"0x{n + 1000:08x}\tsymbol_{n}\tvmlinux\tEXPORT_SYMBOL\t\n" for n in range(40)))
    out = piped(cache, "diff", str(old), str(new))
    assert sorted(c[3] for c in records(out, "change")) == sorted(f"symbol_{n}" for n in range(40))
    table = run(cache, "diff", "--format", "table", str(old), str(new), columns=200).stdout
    assert "and 25 more: --format text or --json lists them all" in table
    narrow = run(cache, "diff", "--format", "table", str(old), str(new), columns=60).stdout
    assert "crc-changed" in narrow and "!" in narrow  # the kind and "!" columns are never cut


def test_compat_piped(long_root: Path, cache: str) -> None:
    tree = str(long_root / "lib" / "modules" / VERSION)
    files = [f"{SAMPLE_TREE}/kernel/samples/mdx/mdx_unknown.ko", f"{SAMPLE_TREE}/updates/mdx_consumer.ko"]
    args = ("compat", "--symvers", str(SAMPLE_SYMVERS), *files, tree)
    out = piped(cache, *args)
    doc = as_json(cache, *args)
    verdicts = records(out, "verdict")
    assert [(v[1], v[2], v[3], v[5]) for v in verdicts] == [
        (v["module"], "yes" if v["loads"] else "no", v["summary"], v["file"]) for v in doc["verdicts"]]
    assert [f[4] for f in records(out, "finding")] == [f["message"] for f in doc["findings"]]


def test_plan_why_order_piped(long_root: Path, cache: str) -> None:
    b = ("-b", str(long_root), "-k", VERSION)
    out = piped(cache, "plan", *b, "mdx_consumer", "mdx_softdep")
    doc = as_json(cache, "plan", *b, "mdx_consumer", "mdx_softdep")
    steps = records(out, "step")
    assert [(s[0], s[2], s[3], s[5]) for s in steps] == [
        (p["target"], s["action"], s["module"], s["line"] or "-") for p in doc["plans"] for s in p["steps"]]
    assert all(len(s) == 7 for s in steps)
    assert any(str(long_root) in s[5] for s in steps)  # modprobe's insmod lines, whole
    tree = str(long_root / "lib" / "modules" / VERSION)
    assert piped(cache, "why", "--tree", tree, "mdx_consumer", "mdx_exporter")[0] == \
        "path\t1\tmdx_consumer -> mdx_exporter"
    assert piped(cache, "order", tree) == as_json(cache, "order", tree)["order"]


def test_format_overrides_and_json_alias(long_root: Path, cache: str) -> None:
    tree = str(long_root / "lib" / "modules" / VERSION)
    table = run(cache, "scan", "--format", "table", tree, columns=200)
    assert BOX.search(table.stdout)  # rich's table rule
    assert run(cache, "scan", "--format", "json", tree).stdout == run(cache, "scan", "--json", tree).stdout
    bad = run(cache, "scan", "--format", "yaml", tree)
    assert bad.returncode == 64 and "--format must be text, table or json" in bad.stderr
    both = run(cache, "audit", "--json", "--format", "text", tree)
    assert both.returncode == 64 and not both.stdout
