"""Renderings of ``why`` and ``order``: JSON documents, plain-text records, rich trees.

An edge ``{"from": a, "to": b, "symbols": [...]}`` means *a needs b* for those
symbols (the graph's edges, :mod:`moddeps.graph`).  An edge that modprobe follows
for another reason than symbols -- ``a``'s ``softdep=pre:``/``post:`` or
``weakdep=`` modinfo -- has ``"kind": "softdep-pre" | "softdep-post" | "weakdep"``
and no symbols; the text renderings show ``(KIND)`` in place of its symbols.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree as RichTree

from .render import document, record, sentence

#: (a, b) -> the symbols a needs from b
EdgeSymbols = Callable[[str, str], Sequence[str]]
#: (a, b) -> how a leads to b when not by symbols (``softdep-pre``, ``softdep-post``, ``weakdep``), else None
EdgeKind = Callable[[str, str], str | None]


def _no_kind(a: str, b: str) -> str | None:
    return None


def _edge(a: str, b: str, symbols: EdgeSymbols, kind: EdgeKind) -> dict[str, Any]:
    how = kind(a, b)
    if how is not None:
        return {"from": a, "to": b, "kind": how, "symbols": []}
    return {"from": a, "to": b, "symbols": list(symbols(a, b))}


def _shown(a: str, b: str, symbols: EdgeSymbols, kind: EdgeKind) -> list[str]:
    """What a text rendering says an edge is for: its symbols, or ``(KIND)``."""
    how = kind(a, b)
    return [f"({how})"] if how is not None else list(symbols(a, b))


def needs_document(module: str, needs: Sequence[str], edges: Sequence[tuple[str, str]],
                   symbols: EdgeSymbols, kind: EdgeKind = _no_kind) -> dict[str, Any]:
    """``why MODULE --json``: everything MODULE needs, and the edges among them."""
    return document({"module": module, "needs": list(needs),
                     "edges": [_edge(a, b, symbols, kind) for a, b in edges]})


def paths_document(module: str, target: str, paths: Sequence[Sequence[str]], symbols: EdgeSymbols,
                   kind: EdgeKind = _no_kind) -> dict[str, Any]:
    """``why MODULE TARGET --json``: every dependency path, edge by edge."""
    return document({"module": module, "target": target,
                     "paths": [[_edge(a, b, symbols, kind) for a, b in zip(p, p[1:])] for p in paths]})


def needs_lines(module: str, needs: Sequence[str], edges: Sequence[tuple[str, str]],
                symbols: EdgeSymbols, kind: EdgeKind = _no_kind) -> list[str]:
    """Plain text of ``why MODULE``: ``needs<TAB>MODULE<TAB>DEPENDENCY`` for each
    module needed (directly or not), then ``edge<TAB>A<TAB>B<TAB>SYMBOLS`` (A needs
    B; symbols comma-separated, or ``(softdep-pre)`` etc.) for each edge among them."""
    out = [record("needs", module, n) for n in needs]
    out += [record("edge", a, b, ",".join(_shown(a, b, symbols, kind))) for a, b in edges]
    return out


def paths_lines(module: str, target: str, paths: Sequence[Sequence[str]], symbols: EdgeSymbols,
                kind: EdgeKind = _no_kind) -> list[str]:
    """Plain text of ``why MODULE TARGET``: for each path (numbered from 1)
    ``path<TAB>N<TAB>A -> B -> ...`` and then ``edge<TAB>N<TAB>A<TAB>B<TAB>SYMBOLS``
    per edge; ``MODULE does not need TARGET`` when there is none."""
    if not paths:
        return [sentence(f"{module} does not need {target}")]
    out = []
    for n, p in enumerate(paths, 1):
        out.append(record("path", n, " -> ".join(p)))
        out += [record("edge", n, a, b, ",".join(_shown(a, b, symbols, kind))) for a, b in zip(p, p[1:])]
    return out


def render_needs(console: Console, module: str, successors: Callable[[str], Sequence[str]],
                 symbols: EdgeSymbols, kind: EdgeKind = _no_kind) -> None:
    """Everything MODULE needs as a tree (a module met again on a branch is not expanded again)."""
    root = RichTree(escape(module))

    def grow(node: RichTree, name: str, seen: frozenset[str]) -> None:
        for dep in successors(name):
            syms = _shown(name, dep, symbols, kind)
            shown = ", ".join(syms[:4]) + (f" … (+{len(syms) - 4})" if len(syms) > 4 else "")
            child = node.add(f"{escape(dep)}  [dim]({escape(shown)})[/]")
            if dep not in seen:
                grow(child, dep, seen | {dep})

    grow(root, module, frozenset({module}))
    console.print(root)


def render_paths(console: Console, module: str, target: str, paths: Sequence[Sequence[str]],
                 symbols: EdgeSymbols, kind: EdgeKind = _no_kind) -> None:
    if not paths:
        console.print(f"{module} does not need {target}", highlight=False, markup=False)
    for p in paths:
        console.print(" -> ".join(p), highlight=False, markup=False)
        for a, b in zip(p, p[1:]):
            how = kind(a, b)
            why = f"as its {how}" if how is not None else f"for {', '.join(symbols(a, b))}"
            console.print(f"    {a} needs {b} {why}", highlight=False, markup=False)


# --------------------------------------------------------------------------
# order
# --------------------------------------------------------------------------


def order_document(dirname: str, lines: Sequence[str], unplaced: Sequence[str]) -> dict[str, Any]:
    """``order --json``: the load order (modules.order lines) and the modules that cannot be placed."""
    return document({"tree": dirname, "mode": "order", "order": list(lines), "unplaced": list(unplaced)})


def order_check_document(dirname: str, violations: Sequence[Any]) -> dict[str, Any]:
    """``order --check --json``: the modules that modules.order loads before what they need."""
    return document({"tree": dirname, "mode": "check", "violations": [
        {"module": v.module, "line": v.line, "needs": v.needs, "needs_line": v.needs_line or None,
         "symbols": list(v.symbols)} for v in violations]})


def order_check_line(v: Any) -> str:
    """One line of ``order --check`` (the same on a terminal and in a pipe)."""
    where = f"line {v.needs_line}" if v.needs_line else "not listed"
    return sentence(f"{v.module} (line {v.line}) needs {v.needs} ({where}) for {', '.join(v.symbols)}")
