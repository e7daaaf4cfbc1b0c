"""Load orders, order checks, neighbourhoods and dependency paths: results, never printing."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from .model import Module
from .read.scan import Tree
from .records import dataclass
from .resolve import Resolution


@dataclass(frozen=True, slots=True)
class LoadOrder:
    """A whole-tree load order (dependencies first) and the modules that could not be placed."""

    lines: tuple[str, ...]  # modules.order-style paths, in load order
    modules: tuple[str, ...]  # the same, as module names
    unplaced: tuple[str, ...]  # members of (or stuck behind) dependency cycles, array order


def order_path(tree: Tree, idx: int) -> str:
    """The path a module has in ``modules.order`` (``.ko``, compression suffix dropped)."""
    f = tree.files[idx]
    return f.uncrelpath if f.uncrelpath is not None else f.path


def load_order(tree: Tree, res: Resolution) -> LoadOrder:
    """Dependencies first; among modules that are ready at the same time, the one
    earliest in the module array (``modules.order``, then kmod's hash order).

    This is Kahn's algorithm with a priority queue keyed by array position, so
    the order is deterministic and stays as close to ``modules.order`` as the
    dependencies allow.
    """
    n = len(tree.modules)
    waiting = [len(d) for d in res.deps]  # dependencies not yet placed
    users: list[list[int]] = [[] for _ in range(n)]
    for i, ds in enumerate(res.deps):
        for d in ds:
            users[d].append(i)
    ready = [i for i in range(n) if waiting[i] == 0]
    heapq.heapify(ready)
    placed: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        placed.append(i)
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, u)
    done = set(placed)
    return LoadOrder(
        lines=tuple(order_path(tree, i) for i in placed),
        modules=tuple(tree.modules[i].name for i in placed),
        unplaced=tuple(tree.modules[i].name for i in range(n) if i not in done),
    )


@dataclass(frozen=True, slots=True)
class OrderViolation:
    module: str
    line: int  # 1-based line of the module in modules.order
    needs: str  # a dependency that is listed later, or not at all
    needs_line: int | None
    symbols: tuple[str, ...]


def check_order(tree: Tree, res: Resolution, order_text: bytes) -> list[OrderViolation]:
    """Modules that ``modules.order`` lists before a module they need (or that
    need a module it does not list at all)."""
    from .model import fsdecode
    from .read.order import order_lines

    lines, _corrupted = order_lines(order_text)  # numbered and cut as kmod reads the file
    position: dict[str, int] = {}
    for k, line in enumerate(lines, 1):
        if line:
            position[fsdecode(line)] = k  # last occurrence, as kmod 30
    out: list[OrderViolation] = []
    for idx in range(len(tree.modules)):
        pos = position.get(order_path(tree, idx))
        if pos is None:
            continue
        for dep, syms in res.edge_symbols[idx].items():
            dpos = position.get(order_path(tree, dep))
            if dpos is None or dpos > pos:
                out.append(OrderViolation(tree.modules[idx].name, pos, tree.modules[dep].name, dpos, syms))
    out.sort(key=lambda v: (v.line, v.needs))
    return out


def neighbourhood(deps: Sequence[Sequence[int]], focus: int, depth: int) -> set[int]:
    """Modules within ``depth`` edges of ``focus``, following edges both ways."""
    users: dict[int, list[int]] = {}
    for i, ds in enumerate(deps):
        for d in ds:
            users.setdefault(d, []).append(i)
    seen = {focus}
    frontier = [focus]
    for _ in range(depth):
        nxt = []
        for v in frontier:
            for w in list(deps[v]) + users.get(v, []):
                if w not in seen:
                    seen.add(w)
                    nxt.append(w)
        frontier = nxt
    return seen


def soft_edges(modules: Sequence[Module]) -> dict[tuple[str, str], str]:
    """The load-time edges that are not symbol dependencies, as modprobe follows them.

    ``(a, b) -> kind``: ``softdep-pre`` / ``softdep-post`` from ``a``'s
    ``softdep=`` modinfo (``pre: x y post: z``, what depmod writes into
    modules.softdep), ``weakdep`` from its ``weakdep=`` (modules.weakdep).
    modprobe looks each name up as it looks up a target: a module name
    (``-`` and ``_`` alike), else an alias, so ``softdep=pre: crc32c`` leads
    to every module with ``alias=crc32c`` (crc32c_generic, crc32c_intel).
    Alias patterns are matched with kmod's fnmatch.  A name nothing matches
    gives no edge.  (modprobe.d ``softdep`` lines of the running system are
    not seen here; ``moddeps plan`` reads them.)
    """
    from .globmatch import fnmatch
    from .kmodnames import modname_normalize

    by_name = {m.name: m.name for m in modules}
    exact: dict[str, list[str]] = {}
    patterns: list[tuple[bytes, str]] = []
    for m in modules:
        for a in m.info("alias"):
            if any(c in a for c in "*?["):
                patterns.append((a.encode("utf-8", "surrogateescape"), m.name))
            else:
                exact.setdefault(a, []).append(m.name)

    def lookup(name: str) -> list[str]:
        norm = modname_normalize(name)
        if norm in by_name:
            return [norm]
        found = list(exact.get(name, ()))
        key = name.encode("utf-8", "surrogateescape")
        found += [owner for pat, owner in patterns if fnmatch(pat, key)]
        return sorted(set(found))

    out: dict[tuple[str, str], str] = {}
    for m in modules:
        for value in m.softdeps:
            kind = None
            for word in value.split():
                if word in ("pre:", "post:"):
                    kind = "softdep-" + word[:-1]
                elif kind is not None:
                    for dep in lookup(word):
                        if dep != m.name:
                            out.setdefault((m.name, dep), kind)
        for value in m.weakdeps:
            for word in value.split():
                for dep in lookup(word):
                    if dep != m.name:
                        out.setdefault((m.name, dep), "weakdep")
    return out
