"""The dependency graph (:class:`moddeps.graph.GraphView`) as DOT, GraphML, Mermaid or JSON.

Nodes and edges are sorted by name, so the same tree always gives the same
bytes.  An edge ``a -> b`` means *a needs b*; its label lists the symbols.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

if TYPE_CHECKING:
    from ..graph import GraphView

#: ``a -> b`` (a needs b) and the symbols (:class:`moddeps.graph.GraphEdge` is one)
Edge = tuple[str, str, tuple[str, ...]]

#: what ``moddeps graph --format`` takes
FORMATS = ("dot", "graphml", "mermaid", "json")


def render(view: GraphView, fmt: str) -> str:
    """``view`` in one of :data:`FORMATS`."""
    nodes = [n.module for n in view.nodes]
    if fmt == "dot":
        return to_dot(nodes, view.edges, view.focus)
    if fmt == "mermaid":
        return to_mermaid(nodes, view.edges, view.focus)
    paths = {n.module: n.path for n in view.nodes}
    if fmt == "graphml":
        return to_graphml(nodes, view.edges, paths)
    return to_json(nodes, view.edges, paths, view.tree)


def _label(symbols: tuple[str, ...], most: int = 3) -> str:
    head = ", ".join(symbols[:most])
    return head + (f" +{len(symbols) - most}" if len(symbols) > most else "")


def _dot_id(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(nodes: Iterable[str], edges: Iterable[Edge], focus: str | None = None) -> str:
    out = ["digraph moddeps {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    for n in sorted(nodes):
        extra = ", style=bold, color=blue" if n == focus else ""
        out.append(f"  {_dot_id(n)} [label={_dot_id(n)}{extra}];")
    for a, b, syms in sorted(edges):
        out.append(f"  {_dot_id(a)} -> {_dot_id(b)} [label={_dot_id(_label(syms))}];")
    out.append("}")
    return "\n".join(out) + "\n"


def to_mermaid(nodes: Iterable[str], edges: Iterable[Edge], focus: str | None = None) -> str:
    ids = {n: f"n{i}" for i, n in enumerate(sorted(nodes))}
    out = ["flowchart LR"]
    for n, i in ids.items():
        out.append(f'  {i}["{n}"]')
    for a, b, syms in sorted(edges):
        label = _label(syms).replace('"', "'").replace("|", "/")
        out.append(f'  {ids[a]} -->|"{label}"| {ids[b]}')
    if focus in ids:
        out.append(f"  style {ids[focus]} stroke-width:3px")
    return "\n".join(out) + "\n"


def to_graphml(nodes: Iterable[str], edges: Iterable[Edge], paths: dict[str, str]) -> str:
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">',
        '  <key id="path" for="node" attr.name="path" attr.type="string"/>',
        '  <key id="symbols" for="edge" attr.name="symbols" attr.type="string"/>',
        '  <graph id="moddeps" edgedefault="directed">',
    ]
    for n in sorted(nodes):
        out.append(f"    <node id={quoteattr(n)}><data key=\"path\">{escape(paths.get(n, ''))}</data></node>")
    for a, b, syms in sorted(edges):
        out.append(
            f"    <edge source={quoteattr(a)} target={quoteattr(b)}>"
            f"<data key=\"symbols\">{escape(' '.join(syms))}</data></edge>"
        )
    out += ["  </graph>", "</graphml>"]
    return "\n".join(out) + "\n"


def to_json(nodes: Iterable[str], edges: Iterable[Edge], paths: dict[str, str], tree: str) -> str:
    from .render import document

    doc = document({
        "tree": tree,
        "nodes": [{"module": n, "path": paths.get(n)} for n in sorted(nodes)],
        "edges": [{"from": a, "to": b, "symbols": list(s)} for a, b, s in sorted(edges)],
    })
    return json.dumps(doc, indent=1, ensure_ascii=True) + "\n"
