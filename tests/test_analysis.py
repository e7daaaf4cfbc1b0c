"""why / order / graph on the sample tree and on small synthetic trees."""

from __future__ import annotations

import json
import random
from pathlib import Path

from typer.testing import CliRunner

from moddeps.analysis import check_order, load_order
from moddeps.cli import app
from moddeps.read.scan import scan_tree
from moddeps.report import graphfmt
from moddeps.resolve import resolve

from .kobuild import Export, build_ko

SAMPLE_TREE = str(Path(__file__).resolve().parent.parent / "sample_modules/lib/modules/6.1.0-50-cloud-amd64")
runner = CliRunner()


def chain_tree(root: Path, order: str) -> Path:
    """c needs b needs a; d needs a.  modules.order as given."""
    tree = root / "lib/modules/1.0"
    (tree / "kernel").mkdir(parents=True)
    (tree / "kernel/a.ko").write_bytes(build_ko(exports=[Export(name="a_fn", crc=1)]))
    (tree / "kernel/b.ko").write_bytes(build_ko(exports=[Export(name="b_fn", crc=2)], undefined=["a_fn"]))
    (tree / "kernel/c.ko").write_bytes(build_ko(undefined=["b_fn"]))
    (tree / "kernel/d.ko").write_bytes(build_ko(undefined=["a_fn"]))
    (tree / "modules.order").write_text(order)
    return tree


def test_load_order_puts_dependencies_first_and_follows_modules_order(tmp_path: Path) -> None:
    tree = chain_tree(tmp_path, "kernel/d.ko\nkernel/c.ko\nkernel/b.ko\nkernel/a.ko\n")
    t = scan_tree(str(tree), jobs=1)
    lo = load_order(t, resolve(t.modules, [f.path for f in t.files]))
    assert lo.lines == ("kernel/a.ko", "kernel/d.ko", "kernel/b.ko", "kernel/c.ko")
    assert lo.unplaced == ()


def test_order_check_reports_modules_loaded_too_early(tmp_path: Path) -> None:
    tree = chain_tree(tmp_path, "kernel/c.ko\nkernel/b.ko\nkernel/a.ko\n")
    t = scan_tree(str(tree), jobs=1)
    res = resolve(t.modules, [f.path for f in t.files])
    bad = check_order(t, res, (tree / "modules.order").read_bytes())
    assert [(v.module, v.needs, v.needs_line, v.symbols) for v in bad] == [
        ("c", "b", 2, ("b_fn",)), ("b", "a", 3, ("a_fn",))]
    result = runner.invoke(app, ["order", "--check", str(tree)])
    assert result.exit_code == 1 and "c (line 1) needs b (line 2) for b_fn" in result.stdout


def test_order_check_reads_modules_order_as_kmod(tmp_path: Path) -> None:
    """A line with a NUL is corrupted for kmod, which reads no further: what follows is not listed;
    a line that starts with NUL is skipped but still counts one line number."""
    tree = chain_tree(tmp_path, "")
    (tree / "modules.order").write_bytes(b"\0skipped\nkernel/c.ko\nkernel/b.ko\nkernel/x\0y.ko\nkernel/a.ko\n")
    t = scan_tree(str(tree), jobs=1)
    res = resolve(t.modules, [f.path for f in t.files])
    bad = check_order(t, res, (tree / "modules.order").read_bytes())
    # a.ko comes after the corrupted line 4: for kmod it is not listed (needs_line None)
    assert [(v.module, v.line, v.needs, v.needs_line) for v in bad] == [("c", 2, "b", 3), ("b", 3, "a", None)]


def test_why_paths_and_json() -> None:
    r = runner.invoke(app, ["why", "mdx_proprietary", "mdx_exporter", "-t", SAMPLE_TREE, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["paths"] == [[{"from": "mdx_proprietary", "to": "mdx_exporter",
                              "symbols": ["mdx_plain_add", "mdx_gpl_mul"]}]]
    r2 = runner.invoke(app, ["why", "mdx_exporter", "mdx_consumer", "-t", SAMPLE_TREE])
    assert r2.exit_code == 1
    r3 = runner.invoke(app, ["why", "no_such_module", "-t", SAMPLE_TREE])
    assert r3.exit_code == 66


def test_graph_output_is_deterministic_whatever_the_input_order() -> None:
    nodes = ["b", "a", "c", 'q"uote']
    edges = [("a", "b", ("x", "y")), ("c", "a", ("z",)), ('q"uote', "a", ("w",))]
    for fmt in ("dot", "mermaid"):
        ref = getattr(graphfmt, f"to_{fmt}")(nodes, edges, "a")
        for _ in range(5):
            random.shuffle(nodes)
            random.shuffle(edges)
            assert getattr(graphfmt, f"to_{fmt}")(nodes, edges, "a") == ref
    assert '"q\\"uote" -> "a"' in graphfmt.to_dot(nodes, edges)


def test_graph_cli_formats() -> None:
    for fmt in ("dot", "graphml", "mermaid", "json"):
        r = runner.invoke(app, ["graph", SAMPLE_TREE, "--format", fmt, "--focus", "mdx-exporter"])
        assert r.exit_code == 0, r.output
        assert "mdx_consumer" in r.stdout and "mdx_dup_a" not in r.stdout
    doc = json.loads(runner.invoke(app, ["graph", SAMPLE_TREE, "--format", "json"]).stdout)
    assert {"from": "mdx_cycle_a", "to": "mdx_cycle_b", "symbols": ["mdx_cycle_b_value"]} in doc["edges"]
    assert runner.invoke(app, ["graph", SAMPLE_TREE, "--format", "png"]).exit_code == 64
