"""Renderings of ``why`` and ``order``: JSON documents, plain-text records, rich trees.

An edge ``{"from": a, "to": b, "symbols": [...]}`` means *a needs b* for those
symbols (the graph's edges, :mod:`moddeps.graph`).  An edge that modprobe follows
for another reason than symbols -- ``a``'s ``softdep=pre:``/``post:`` or
``weakdep=`` modinfo -- has ``"kind": "softdep-pre" | "softdep-post" | "weakdep"``
and no symbols; the text renderings show ``(KIND)`` in place of its symbols.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree as RichTree

from .render import document, record, sentence

if TYPE_CHECKING:
    from ..analysis import OrderViolation
    from ..graph import DependencyPaths, Edge, Needs


def _edge(e: Edge) -> dict[str, Any]:
    if e.kind is not None:
        return {"from": e.a, "to": e.b, "kind": e.kind, "symbols": []}
    return {"from": e.a, "to": e.b, "symbols": list(e.symbols)}


def _shown(e: Edge) -> list[str]:
    """What a text rendering says an edge is for: its symbols, or ``(KIND)``."""
    return [f"({e.kind})"] if e.kind is not None else list(e.symbols)


def needs_document(needs: Needs) -> dict[str, Any]:
    """``why MODULE --json``: everything MODULE needs, and the edges among them."""
    return document({"module": needs.module, "needs": list(needs.needs), "edges": [_edge(e) for e in needs.edges]})


def paths_document(paths: DependencyPaths) -> dict[str, Any]:
    """``why MODULE TARGET --json``: every dependency path, edge by edge."""
    return document({"module": paths.module, "target": paths.target,
                     "paths": [[_edge(e) for e in p.edges] for p in paths.paths]})


def needs_lines(needs: Needs) -> list[str]:
    """Plain text of ``why MODULE``: ``needs<TAB>MODULE<TAB>DEPENDENCY`` for each
    module needed (directly or not), then ``edge<TAB>A<TAB>B<TAB>SYMBOLS`` (A needs
    B; symbols comma-separated, or ``(softdep-pre)`` etc.) for each edge among them."""
    out = [record("needs", needs.module, n) for n in needs.needs]
    out += [record("edge", e.a, e.b, ",".join(_shown(e))) for e in needs.edges]
    return out


def paths_lines(paths: DependencyPaths) -> list[str]:
    """Plain text of ``why MODULE TARGET``: for each path (numbered from 1)
    ``path<TAB>N<TAB>A -> B -> ...`` and then ``edge<TAB>N<TAB>A<TAB>B<TAB>SYMBOLS``
    per edge; ``MODULE does not need TARGET`` when there is none."""
    if not paths.paths:
        return [sentence(f"{paths.module} does not need {paths.target}")]
    out = []
    for n, p in enumerate(paths.paths, 1):
        out.append(record("path", n, " -> ".join(p.modules)))
        out += [record("edge", n, e.a, e.b, ",".join(_shown(e))) for e in p.edges]
    return out


def render_needs(console: Console, needs: Needs) -> None:
    """Everything MODULE needs as a tree (a module met again on a branch is not expanded again)."""
    root = RichTree(escape(needs.module))
    successors = needs.successors()
    edges = {(e.a, e.b): e for e in needs.edges}

    def grow(node: RichTree, name: str, seen: frozenset[str]) -> None:
        for dep in successors.get(name, ()):
            syms = _shown(edges[name, dep])
            shown = ", ".join(syms[:4]) + (f" … (+{len(syms) - 4})" if len(syms) > 4 else "")
            child = node.add(f"{escape(dep)}  [dim]({escape(shown)})[/]")
            if dep not in seen:
                grow(child, dep, seen | {dep})

    grow(root, needs.module, frozenset({needs.module}))
    console.print(root)


def render_paths(console: Console, paths: DependencyPaths) -> None:
    if not paths.paths:
        console.print(f"{paths.module} does not need {paths.target}", highlight=False, markup=False)
    for p in paths.paths:
        console.print(" -> ".join(p.modules), highlight=False, markup=False)
        for e in p.edges:
            why = f"as its {e.kind}" if e.kind is not None else f"for {', '.join(e.symbols)}"
            console.print(f"    {e.a} needs {e.b} {why}", highlight=False, markup=False)


# --------------------------------------------------------------------------
# order
# --------------------------------------------------------------------------


def order_document(dirname: str, lines: Sequence[str], unplaced: Sequence[str]) -> dict[str, Any]:
    """``order --json``: the load order (modules.order lines) and the modules that cannot be placed."""
    return document({"tree": dirname, "mode": "order", "order": list(lines), "unplaced": list(unplaced)})


def order_check_document(dirname: str, violations: Sequence[OrderViolation]) -> dict[str, Any]:
    """``order --check --json``: the modules that modules.order loads before what they need."""
    return document({"tree": dirname, "mode": "check", "violations": [
        {"module": v.module, "line": v.line, "needs": v.needs, "needs_line": v.needs_line or None,
         "symbols": list(v.symbols)} for v in violations]})


def order_check_line(v: OrderViolation) -> str:
    """One line of ``order --check`` (the same on a terminal and in a pipe)."""
    where = f"line {v.needs_line}" if v.needs_line else "not listed"
    return sentence(f"{v.module} (line {v.line}) needs {v.needs} ({where}) for {', '.join(v.symbols)}")
