"""The records behind ``why`` and ``graph`` (moddeps.graph) hold what the commands print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moddeps.cli import app
from moddeps.errors import InputError
from moddeps.graph import (
    DependencyPath,
    Edge,
    GraphEdge,
    GraphNode,
    graph_view,
    module_index,
    needs_of,
    paths_to,
)
from moddeps.read.scan import Tree, scan_tree
from moddeps.resolve import Resolution, resolve

TREE = Path(__file__).resolve().parent.parent / "sample_modules" / "lib" / "modules" / "6.1.0-50-cloud-amd64"
runner = CliRunner()


@pytest.fixture(scope="module")
def sample() -> tuple[Tree, Resolution]:
    t = scan_tree(str(TREE), jobs=1)
    return t, resolve(t.modules, [f"{t.dirname}/{f.relpath}" if f.relpath is not None else f.path for f in t.files])


def _cli_json(*args: str) -> dict[str, object]:
    r = runner.invoke(app, [*args])
    assert r.exit_code in (0, 1), r.output
    doc: dict[str, object] = json.loads(r.stdout)
    return doc


def _edges(edges: tuple[Edge, ...]) -> list[dict[str, object]]:
    return [{"from": e.a, "to": e.b, **({"kind": e.kind} if e.kind else {}), "symbols": list(e.symbols)}
            for e in edges]


def test_needs_of_is_what_why_prints(sample: tuple[Tree, Resolution]) -> None:
    for module in ("mdx_softdep", "mdx-consumer", "mdx_cycle_a", "mdx_exporter"):
        needs = needs_of(*sample, module)
        doc = _cli_json("why", "-t", str(TREE), "--json", module)
        assert (doc["module"], doc["needs"], doc["edges"]) == (needs.module, list(needs.needs), _edges(needs.edges))
    needs = needs_of(*sample, "mdx_softdep")
    assert needs.module == "mdx_softdep"
    assert Edge("mdx_softdep", "mdx_exporter", (), "softdep-pre") in needs.edges
    assert Edge("mdx_softdep", "mdx_consumer", (), "softdep-post") in needs.edges
    by_pair = {(e.a, e.b): e for e in needs.edges}
    assert by_pair["mdx_consumer", "mdx_exporter"].kind is None and by_pair["mdx_consumer", "mdx_exporter"].symbols
    succ = needs.successors()
    assert succ["mdx_softdep"] == tuple(sorted(b for a, b in by_pair if a == "mdx_softdep"))


def test_paths_to_is_what_why_prints(sample: tuple[Tree, Resolution]) -> None:
    pairs = [("mdx_softdep", "mdx_consumer"), ("mdx_proprietary", "mdx_exporter"), ("mdx_exporter", "mdx_consumer"),
             ("mdx_cycle_a", "mdx_cycle_b"), ("mdx_exporter", "mdx_exporter")]
    for module, target in pairs:
        paths = paths_to(*sample, module, target)
        doc = _cli_json("why", "-t", str(TREE), "--json", module, target)
        assert (doc["module"], doc["target"]) == (paths.module, paths.target)
        assert doc["paths"] == [_edges(p.edges) for p in paths.paths]
        for p in paths.paths:
            assert p.modules[0] == module and p.modules[-1] == target
            assert [(e.a, e.b) for e in p.edges] == list(zip(p.modules, p.modules[1:]))
    assert paths_to(*sample, "mdx_exporter", "mdx_consumer").paths == ()
    edge = Edge("mdx_proprietary", "mdx_exporter", ("mdx_plain_add", "mdx_gpl_mul"))
    assert paths_to(*sample, "mdx_proprietary", "mdx_exporter").paths == (DependencyPath((edge.a, edge.b), (edge,)),)


def test_graph_view_is_what_graph_prints(sample: tuple[Tree, Resolution]) -> None:
    for focus, depth in ((None, 1), ("mdx-exporter", 1), ("mdx_cycle_a", 0), ("mdx_cycle_a", 2)):
        view = graph_view(*sample, focus, depth)
        args = ["graph", str(TREE), "--format", "json"] + (["--focus", focus, "--depth", str(depth)] if focus else [])
        doc = _cli_json(*args)
        assert doc["tree"] == view.tree
        assert doc["nodes"] == [{"module": n.module, "path": n.path} for n in view.nodes]
        assert doc["edges"] == [{"from": e.a, "to": e.b, "symbols": list(e.symbols)} for e in view.edges]
    view = graph_view(*sample, "mdx-exporter")
    assert view.focus == "mdx_exporter"
    assert GraphNode("mdx_exporter", "kernel/samples/mdx/mdx_exporter.ko") in view.nodes
    assert "mdx_dup_a" not in {n.module for n in view.nodes}
    whole = graph_view(*sample)
    assert whole.focus is None and len(whole.nodes) == len(sample[0].modules)
    assert GraphEdge("mdx_cycle_a", "mdx_cycle_b", ("mdx_cycle_b_value",)) in whole.edges
    assert list(whole.nodes) == sorted(whole.nodes) and list(whole.edges) == sorted(whole.edges)


def test_module_index_takes_dashes_and_names_the_tree(sample: tuple[Tree, Resolution]) -> None:
    t = sample[0]
    assert t.modules[module_index(t, "mdx-cycle-a")].name == "mdx_cycle_a"
    with pytest.raises(InputError, match=f"no_such: no such module in {t.dirname}"):
        module_index(t, "no_such")
    with pytest.raises(InputError):
        needs_of(*sample, "no_such")
