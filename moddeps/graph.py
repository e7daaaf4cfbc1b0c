"""The dependency graph as a networkx ``DiGraph``, and what ``why`` and ``graph`` show of it.

Nodes are module names (in module-array order); an edge ``a -> b`` means
*a needs b*: b provides symbols a uses, and depmod binds them to b.  Each
edge carries ``symbols`` (a tuple, in a's reference order).  Node
attributes: ``path``, ``index`` (position in the module array).

:func:`needs_of` and :func:`paths_to` (``moddeps why``) and :func:`graph_view`
(``moddeps graph``) return frozen records; :mod:`moddeps.report.deps` and
:mod:`moddeps.report.graphfmt` render them.

networkx is imported here only, and only when a graph is built, so that
commands that need no graph (``depmod``, ``scan``) start fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .analysis import neighbourhood, soft_edges
from .errors import InputError
from .model import Module
from .records import dataclass
from .resolve import Resolution

if TYPE_CHECKING:
    import networkx as nx

    from .read.scan import Tree


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


# --------------------------------------------------------------------------
# What ``why`` shows: the modules one module needs, the paths to another
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edge:
    """``a -> b``: a needs b.

    ``symbols``: what a uses from b, in a's reference order.  ``kind``: None
    for a symbol dependency; ``softdep-pre``, ``softdep-post`` or ``weakdep``
    for an edge modprobe follows because of a's modinfo (:func:`moddeps.analysis.soft_edges`),
    which has no symbols.
    """

    a: str
    b: str
    symbols: tuple[str, ...] = ()
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class Needs:
    """Everything ``module`` needs, directly or not."""

    module: str
    needs: tuple[str, ...]  # sorted by name
    edges: tuple[Edge, ...]  # every edge among ``module`` and ``needs``, sorted by (a, b)

    def successors(self) -> dict[str, tuple[str, ...]]:
        """Module -> the modules it needs directly (sorted), for each module with an edge."""
        out: dict[str, list[str]] = {}
        for e in self.edges:
            out.setdefault(e.a, []).append(e.b)
        return {a: tuple(bs) for a, bs in out.items()}


@dataclass(frozen=True, slots=True)
class DependencyPath:
    """One way ``modules[0]`` needs ``modules[-1]``: an edge per step."""

    modules: tuple[str, ...]
    edges: tuple[Edge, ...]  # len(modules) - 1 of them


@dataclass(frozen=True, slots=True)
class DependencyPaths:
    """Why ``module`` needs ``target``: the simple paths, shortest first (none: it does not)."""

    module: str
    target: str
    paths: tuple[DependencyPath, ...]


def module_index(tree: Tree, name: str) -> int:
    """The position of module ``name`` (``-`` and ``_`` alike) in the tree's module array."""
    wanted = name.replace("-", "_")
    for i, m in enumerate(tree.modules):
        if m.name == wanted:
            return i
    raise InputError(f"{name}: no such module in {tree.dirname}")


def _load_graph(tree: Tree, res: Resolution) -> nx.DiGraph:
    """The symbol graph plus the edges modprobe also follows: softdeps and weakdeps
    (an edge that has symbols keeps them; a soft edge has ``kind`` and no symbols)."""
    g = build_graph(tree.modules, [f.shown for f in tree.files], res)
    for (a, b), how in sorted(soft_edges(tree.modules).items()):
        if not g.has_edge(a, b):
            g.add_edge(a, b, symbols=(), kind=how)
    return g


def _edge(g: nx.DiGraph, a: str, b: str) -> Edge:
    data: Any = g.edges[a, b]
    return Edge(a, b, tuple(data["symbols"]), data.get("kind"))


def needs_of(tree: Tree, res: Resolution, module: str) -> Needs:
    """Every module ``module`` needs (by symbols, softdeps and weakdeps), and the edges among them."""
    import networkx as nx

    src = tree.modules[module_index(tree, module)].name
    g = _load_graph(tree, res)
    reach = sorted(nx.descendants(g, src))
    edges = sorted(g.subgraph([src, *reach]).edges())
    return Needs(module=src, needs=tuple(reach), edges=tuple(_edge(g, a, b) for a, b in edges))


def paths_to(tree: Tree, res: Resolution, module: str, target: str) -> DependencyPaths:
    """Every way ``module`` needs ``target`` (simple paths, shortest first, at most 50)."""
    src = tree.modules[module_index(tree, module)].name
    dst = tree.modules[module_index(tree, target)].name
    g = _load_graph(tree, res)
    paths = tuple(DependencyPath(modules=tuple(p), edges=tuple(_edge(g, a, b) for a, b in zip(p, p[1:])))
                  for p in dependency_paths(g, src, dst))
    return DependencyPaths(module=src, target=dst, paths=paths)


# --------------------------------------------------------------------------
# What ``graph`` shows: the symbol graph, or a module's neighbourhood in it
# --------------------------------------------------------------------------


class GraphNode(NamedTuple):
    module: str
    path: str  # as the tree shows it (relative to the module directory)


class GraphEdge(NamedTuple):
    """``a -> b``: a needs b for ``symbols`` (in a's reference order)."""

    a: str
    b: str
    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GraphView:
    """The nodes and edges ``moddeps graph`` draws, sorted (the same tree gives the same bytes)."""

    tree: str  # the module directory
    nodes: tuple[GraphNode, ...]  # sorted by module name
    edges: tuple[GraphEdge, ...]  # sorted
    focus: str | None = None  # the module whose neighbourhood this is


def graph_view(tree: Tree, res: Resolution, focus: str | None = None, depth: int = 1) -> GraphView:
    """The whole symbol graph, or (``focus``) the modules within ``depth`` edges of
    that module, following edges both ways, with the edges among them."""
    keep: set[int] = set(range(len(tree.modules)))
    focus_name = None
    if focus is not None:
        fi = module_index(tree, focus)
        focus_name = tree.modules[fi].name
        keep = neighbourhood(res.deps, fi, depth)
    names = tree.modules
    return GraphView(
        tree=tree.dirname,
        nodes=tuple(sorted(GraphNode(names[i].name, tree.files[i].shown) for i in keep)),
        edges=tuple(sorted(GraphEdge(names[i].name, names[d].name, syms)
                           for i in keep for d, syms in res.edge_symbols[i].items() if d in keep)),
        focus=focus_name,
    )
