"""The dependency graph as a networkx ``DiGraph``.

Nodes are module names (in module-array order); an edge ``a -> b`` means
*a needs b*: b provides symbols a uses, and depmod binds them to b.  Each
edge carries ``symbols`` (a tuple, in a's reference order).  Node
attributes: ``path``, ``index`` (position in the module array).

networkx is imported here only, and only when a graph is built, so that
commands that need no graph (``depmod``, ``scan``) start fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .model import Module
from .resolve import Resolution

if TYPE_CHECKING:
    import networkx as nx


def build_graph(modules: Sequence[Module], shown: Sequence[str], res: Resolution) -> nx.DiGraph:
    import networkx as nx

    g = nx.DiGraph()
    for idx, (m, path) in enumerate(zip(modules, shown)):
        g.add_node(m.name, path=path, index=idx)
    for idx, edges in enumerate(res.edge_symbols):
        src = modules[idx].name
        for dep, syms in edges.items():
            g.add_edge(src, modules[dep].name, symbols=tuple(syms))
    return g


def simple_cycles(g: nx.DiGraph, limit: int = 10_000) -> list[list[str]]:
    """Every elementary cycle, once each (not once per rotation), each rotated
    to start at its smallest module name; sorted.  At most ``limit``."""
    import networkx as nx

    out: list[list[str]] = []
    for cyc in nx.simple_cycles(g):
        k = cyc.index(min(cyc))
        out.append(cyc[k:] + cyc[:k])
        if len(out) >= limit:
            break
    return sorted(out)


def min_feedback_edges(g: nx.DiGraph, nodes: Sequence[str], exact_limit: int = 14) -> list[tuple[str, str]]:
    """The smallest set of edges whose removal leaves ``nodes`` acyclic.

    Exact (by increasing subset size) for components with up to
    ``exact_limit`` edges; beyond that a greedy approximation that removes,
    one at a time, the edge lying on the most remaining cycles (preferring
    edges that carry fewer symbols).
    """
    import itertools

    import networkx as nx

    sub = g.subgraph(nodes).copy()
    edges = sorted(sub.edges())
    if len(edges) <= exact_limit:
        for size in range(1, len(edges) + 1):
            best: list[tuple[str, str]] | None = None
            for combo in itertools.combinations(edges, size):
                h = sub.copy()
                h.remove_edges_from(combo)
                if nx.is_directed_acyclic_graph(h):
                    weight = sum(len(sub.edges[e]["symbols"]) for e in combo)
                    if best is None or weight < sum(len(sub.edges[e]["symbols"]) for e in best):
                        best = list(combo)
            if best is not None:
                return best
        return edges
    removed: list[tuple[str, str]] = []
    while not nx.is_directed_acyclic_graph(sub):
        counts: dict[tuple[str, str], int] = {}
        for n, cyc in enumerate(nx.simple_cycles(sub)):
            for e in zip(cyc, cyc[1:] + cyc[:1]):
                counts[e] = counts.get(e, 0) + 1
            if n > 2000:
                break
        edge = max(counts, key=lambda e: (counts[e], -len(sub.edges[e]["symbols"]), e))
        sub.remove_edge(*edge)
        removed.append(edge)
    return sorted(removed)


def dependency_paths(g: nx.DiGraph, src: str, dst: str, limit: int = 50) -> list[list[str]]:
    """Simple paths from ``src`` to ``dst`` (shortest first, at most ``limit``)."""
    import networkx as nx

    if src not in g or dst not in g:
        return []
    out: list[list[str]] = []
    try:
        for path in nx.shortest_simple_paths(g, src, dst):
            out.append(list(path))
            if len(out) >= limit:
                break
    except nx.NetworkXNoPath:
        return []
    return out


def edge_symbols(g: nx.DiGraph, a: str, b: str) -> tuple[str, ...]:
    data: Any = g.edges[a, b]
    return tuple(data.get("symbols", ()))
