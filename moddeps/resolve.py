"""Symbol resolution exactly as kmod 30's depmod does it.

Given the module array (see :mod:`moddeps.read.order`), build depmod's symbol
table, bind every required symbol to its provider, number the modules
topologically and find cycles.  The result is plain data; the depmod
writers, the graph and the audit all start from it.

References: kmod tools/depmod.c (symbol table, depmod_load_dependencies,
depmod_calculate_dependencies, depmod_report_cycles).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from .model import Export, Import, Module
from .native import DECLINED, Declined, load, twin
from .records import dataclass, replace
from .typeshim import overload

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

KERNEL = -1  # owner index of kernel-provided symbols

#: kmod's warnings about an import (``str.format(path, name)``), which the C binder writes too
UNKNOWN_SYMBOL = "WARNING: {} needs unknown symbol {}"
DISAGREES = "WARNING: {} disagrees about version of symbol {}"


@dataclass(frozen=True, slots=True)
class ResolveOptions:
    """The depmod options that change resolution."""

    kernel_table: dict[str, int] | None = None  # -E / -F: name -> crc
    check_crcs: bool = False  # -E given
    warn: bool = False  # -e (only effective with a kernel table)
    prefix: str | None = None  # -P: one character


@dataclass(frozen=True, slots=True)
class Resolution:
    """Who provides what, for one module array."""

    owners: dict[str, tuple[int, int]]  # symbol -> (owner index or KERNEL, crc); kmod's table
    exporters: dict[str, tuple[int, ...]]  # symbol -> every module exporting it, array order
    deps: tuple[tuple[int, ...], ...]  # direct dependencies per module, first-reference order
    edge_symbols: tuple[dict[int, tuple[str, ...]], ...]  # per module: dep index -> symbols bound to it
    # (module index, raw symbol name) kmod warns about; from resolve(), a SymbolRefs
    unknown: Sequence[tuple[int, str]]
    mismatched: tuple[tuple[int, str], ...]  # (module index, raw symbol name) CRC disagreements
    topo: tuple[int, ...] | None  # topological number per module; None when cycles exist
    messages: tuple[str, ...]  # kmod-style warnings in kmod's order ("WARNING: ...")
    # per module, the lookup names of its imports (as kmod reads them) that no module exports --
    # unknown, weak or the kernel's: whom a symbol that gets a module exporter binds to anew
    # (moddeps.depmod.incremental); the module's unknown names are often this very tuple
    unbound: tuple[tuple[str, ...], ...] = ()

    @property
    def has_cycles(self) -> bool:
        return self.topo is None


class SymbolRefs(Sequence[tuple[int, str]]):
    """(module index, symbol name) pairs, in module order, kept as one tuple
    of names a module until they are read.

    Without -E/-F every import of a kernel symbol is unknown: 150,000 pairs
    on a Debian tree, which a depmod run never reads (the audit and compat
    do); making them cost half of the resolution.  Compares equal to the
    tuple of the pairs (and hashes as it), as the tuple it stands for.
    """

    __slots__ = ("_names", "_pairs")

    def __init__(self, names: Sequence[tuple[str, ...]]) -> None:
        self._names = names  # per module: its names, in order
        self._pairs: tuple[tuple[int, str], ...] | None = None

    def pairs(self) -> tuple[tuple[int, str], ...]:
        """The pairs, as a tuple."""
        got = self._pairs
        if got is None:
            got = self._pairs = tuple((idx, name) for idx, names in enumerate(self._names) for name in names)
        return got

    def __len__(self) -> int:
        return len(self.pairs())

    @overload
    def __getitem__(self, i: int) -> tuple[int, str]: ...

    @overload
    def __getitem__(self, i: slice) -> tuple[tuple[int, str], ...]: ...

    def __getitem__(self, i: int | slice) -> tuple[int, str] | tuple[tuple[int, str], ...]:
        return self.pairs()[i]

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return iter(self.pairs())

    def __contains__(self, item: object) -> bool:
        return item in self.pairs()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SymbolRefs):
            return self.pairs() == other.pairs()
        if isinstance(other, tuple):
            return self.pairs() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.pairs())

    def __repr__(self) -> str:
        return repr(self.pairs())


def lookup_name(name: str, prefix: str | None) -> str:
    """kmod tools/depmod.c (depmod_symbol_find): drop one leading "." (ppc64
    function descriptors), then one leading -P prefix character."""
    if name.startswith("."):
        name = name[1:]
    if prefix and name.startswith(prefix):
        name = name[1:]
    return name


def export_name(name: str, prefix: str | None) -> str:
    """kmod tools/depmod.c (depmod_symbol_add): one leading -P prefix
    character is dropped from an exported name."""
    return name[1:] if prefix and name.startswith(prefix) else name


_EXT_CRC = itemgetter(Import._fields.index("ext_crc"))


def _kmod_import(imp: Import) -> Import | None:
    """``imp`` as kmod 34 reads it, or None when kmod does not see it.

    kmod reads CRCs from ``__versions`` only (libkmod-elf.c,
    kmod_elf_get_dependency_symbols; the extended modversions tables of
    Linux 6.14+ are not read): an undefined symbol whose CRC came from those
    tables has no version record for kmod, i.e. CRC 0 in depmod -e's
    comparison (tools/depmod.c, depmod_load_module_dependencies), and a
    record found only there, without an undefined symbol, is not an import.
    """
    if not imp.ext_crc:
        return imp
    if imp.versions_only:
        return None
    return imp._replace(crc=None, ext_crc=False)


def kmod_view(modules: Sequence[Module]) -> Sequence[Module]:
    """``modules`` with their imports as kmod reads them (see :func:`_kmod_import`);
    the modules without an extended-modversions CRC are the same objects."""
    out: list[Module] | None = None
    for idx, m in enumerate(modules):
        if not any(map(_EXT_CRC, m.imports)):
            continue
        if out is None:
            out = list(modules)
        seen = (_kmod_import(imp) for imp in m.imports)
        out[idx] = replace(m, imports=tuple(imp for imp in seen if imp is not None))
    return modules if out is None else out


def resolve(modules: Sequence[Module], paths: Sequence[str], opts: ResolveOptions | None = None) -> Resolution:
    """Resolve symbols for the module array ``modules`` (``paths``: the full path
    kmod prints for each module in warnings).

    Imports are taken as kmod 34 reads them (:func:`kmod_view`): CRCs that
    only the extended modversions tables hold count as missing.
    """
    o = opts or ResolveOptions()
    prefix = o.prefix
    owners: dict[str, tuple[int, int]] = {}
    if o.kernel_table is not None:
        owners.update((k, (KERNEL, v)) for k, v in o.kernel_table.items())
        # kmod adds three fake kernel symbols after reading -E/-F.
        owners["__this_module"] = (KERNEL, 0)
        owners["_GLOBAL_OFFSET_TABLE_"] = (KERNEL, 0)
        if "TOC." not in owners:
            owners["TOC."] = (KERNEL, 0)
    warn = o.warn and o.kernel_table is not None
    check = o.check_crcs and o.kernel_table is not None

    def bind_c(trie: Any) -> tuple[dict[str, tuple[int, ...]], _Bound] | Declined:
        # The C twins of _bind_py (same results, same order).  Where
        # resolve_imports declines after resolve_exports filled owners,
        # _bind_py's export loop assigns the same values in the same order,
        # so owners ends up the same either way.
        exporters: dict[str, tuple[int, ...]] | Declined = trie.resolve_exports(modules, Export, prefix, owners)
        if exporters is DECLINED:
            return DECLINED
        bound: _Bound | Declined = trie.resolve_imports(modules, Import, owners, prefix, check, warn, paths)
        return DECLINED if bound is DECLINED else (exporters, bound)

    exporters_t, (deps_l, edges, unresolved, mismatched, messages, unbound) = twin(
        load("depmod._trie"), bind_c, lambda: _bind_py(modules, paths, owners, prefix, check, warn))
    deps: tuple[tuple[int, ...], ...] = tuple(deps_l)
    topo = numbering(deps)
    return Resolution(
        owners=owners,
        exporters=exporters_t,
        deps=deps,
        edge_symbols=tuple(edges),
        unknown=SymbolRefs(unresolved),
        mismatched=tuple(mismatched),
        topo=topo,
        messages=tuple(messages),
        unbound=tuple(unbound),
    )


#: deps, edge_symbols, unresolved, mismatched, messages, unbound
_Bound = tuple[
    list[tuple[int, ...]], list[dict[int, tuple[str, ...]]], list[tuple[str, ...]], list[tuple[int, str]], list[str],
    list[tuple[str, ...]],
]


def _bind_py(
    modules: Sequence[Module],
    paths: Sequence[str],
    owners: dict[str, tuple[int, int]],
    prefix: str | None,
    check: bool,
    warn: bool,
) -> tuple[dict[str, tuple[int, ...]], _Bound]:
    """The reference for the C ``resolve_exports`` and ``resolve_imports``:
    add the exports to ``owners``, then bind every import as kmod reads it
    (:func:`kmod_view`)."""
    modules = kmod_view(modules)
    exporters: dict[str, list[int]] = {}
    for idx, mod in enumerate(modules):
        for exp in mod.exports:
            name = export_name(exp.name, prefix)
            # kmod: adding a name that exists replaces it -- the last module
            # in the array owns a symbol exported twice, with no warning.
            owners[name] = (idx, exp.crc or 0)
            exporters.setdefault(name, []).append(idx)

    deps: list[tuple[int, ...]] = []
    edges: list[dict[int, tuple[str, ...]]] = []
    unresolved: list[tuple[str, ...]] = []
    mismatched: list[tuple[int, str]] = []
    messages: list[str] = []
    unbound: list[tuple[str, ...]] = []
    get = owners.get
    for idx, mod in enumerate(modules):
        mdeps: dict[int, list[str]] = {}
        missing: list[str] = []
        loose: list[str] = []
        for imp in mod.imports:
            name = imp.name
            key = lookup_name(name, prefix) if (name[:1] == "." or prefix) else name
            found = get(key)
            if found is None or found[0] == KERNEL:
                loose.append(key)
            if found is None:
                if not imp.weak:
                    missing.append(name)
                    if warn:
                        messages.append(UNKNOWN_SYMBOL.format(paths[idx], name))
                continue
            owner, crc = found
            if check and crc != (imp.crc or 0) and not imp.weak:
                mismatched.append((idx, name))
                if warn:
                    messages.append(DISAGREES.format(paths[idx], name))
            if owner == KERNEL:
                continue
            syms = mdeps.get(owner)
            if syms is None:
                mdeps[owner] = [name]
            else:
                syms.append(name)
        deps.append(tuple(mdeps))
        edges.append({k: tuple(v) for k, v in mdeps.items()})
        unresolved.append(tuple(missing))
        unbound.append(tuple(loose))
    return {k: tuple(v) for k, v in exporters.items()}, (deps, edges, unresolved, mismatched, messages, unbound)


def numbering(deps: Sequence[Sequence[int]]) -> tuple[int, ...] | None:
    """kmod's topological number of each module (:func:`_number`), None on cycles.
    The C number when it takes ``deps`` (tuples of indexes), else :func:`_numbering_py`."""
    got: tuple[int, ...] | None = twin(load("depmod._trie"), lambda trie: trie.number(deps),
                                       lambda: _numbering_py(deps))
    return got


def _numbering_py(deps: Sequence[Sequence[int]]) -> tuple[int, ...] | None:
    """The reference for the C number."""
    users = [0] * len(deps)
    for ds in deps:
        for d in ds:
            users[d] += 1
    return _number(deps, users)


def _number(deps: Sequence[Sequence[int]], users_in: Sequence[int]) -> tuple[int, ...] | None:
    """kmod's LIFO Kahn numbering (tools/depmod.c, depmod_calculate_dependencies).

    1. Seed a stack with every module nobody uses, in array order.
    2. Pop the *last* element, give it the next number, and decrement the
       user count of each of its dependencies in first-reference order;
       push a dependency whose count drops to zero.
    3. Modules left unnumbered are on (or behind) a cycle: return None.
    """
    users = list(users_in)
    n = len(deps)
    stack = [i for i in range(n) if users[i] == 0]
    topo = [-1] * n
    nxt = 0
    while stack:
        s = stack.pop()
        topo[s] = nxt
        nxt += 1
        for d in deps[s]:
            users[d] -= 1
            if users[d] == 0:
                stack.append(d)
    if nxt < n:
        return None
    return tuple(topo)


def remaining_users(deps: Sequence[Sequence[int]]) -> list[int]:
    """User counts left after the numbering (non-zero: on or behind a cycle)."""
    n = len(deps)
    users = [0] * n
    for ds in deps:
        for d in ds:
            users[d] += 1
    stack = [i for i in range(n) if users[i] == 0]
    while stack:
        s = stack.pop()
        for d in deps[s]:
            users[d] -= 1
            if users[d] == 0:
                stack.append(d)
    return users


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What depmod prints about cycles, and whether kmod 30 itself would get there."""

    lines: tuple[str, ...]  # kmod-style "ERROR: Cycle detected: ..." lines and the final count
    cycles: tuple[tuple[int, ...], ...]  # each printed cycle as module indices, root first
    kmod_would_hang: bool  # the real depmod 30 loops forever or aborts on this graph


def report_cycles(names: Sequence[str], deps: Sequence[Sequence[int]], budget: int = 2_000_000) -> CycleReport:
    """Reproduce kmod 30's cycle report (tools/depmod.c, depmod_report_cycles).

    1. R := the modules with users left after numbering, in array order.
    2. For each root taken from the front of R, run a depth-first walk with an
       explicit LIFO stack of (module, parent) vertices.  A visited flag
       persists across roots.
    3. Popping the root again closes a cycle: print it (root first, following
       the parent chain) and drop its modules from R.
    4. An unvisited module is marked; one without dependencies leaves R;
       otherwise all its dependencies are pushed.  kmod re-expands visited
       modules other than the root, which is what makes it loop forever when a
       root reaches a cycle that does not contain it -- detected here (and by a
       step budget) instead of copied.
    """
    users = remaining_users(deps)
    pending = [i for i in range(len(deps)) if users[i] > 0]
    visited = [False] * len(deps)
    loop_set: set[str] = set()
    lines: list[str] = []
    cycles: list[tuple[int, ...]] = []
    hang = False
    steps = 0
    # kmod sizes its DFS stack for the initial |R| entries and asserts on
    # overflow ("Assertion 'is < stack_size' failed"): note it as a failure too.
    capacity = len(pending)
    while pending:
        root = pending.pop(0)
        if _reaches_foreign_cycle(root, deps):
            hang = True
            break
        # vertices: (module, parent vertex id); parents kept in a list
        vmod: list[int] = [root]
        vpar: list[int] = [-1]
        stack = [0]
        while stack:
            steps += 1
            if steps > budget:
                hang = True
                break
            v = stack.pop()
            m = vmod[v]
            if visited[m] and m == root:
                chain: list[int] = []
                p = vpar[v]
                while p >= 0:
                    chain.append(vmod[p])
                    p = vpar[p]
                chain.reverse()  # outermost ancestor (the root) first
                for c in chain:
                    loop_set.add(names[c])
                    if c in pending:
                        pending.remove(c)
                lines.append("ERROR: Cycle detected: " + " -> ".join([*(names[c] for c in chain), names[root]]))
                cycles.append(tuple(chain))
                continue
            visited[m] = True
            if not deps[m]:
                if m in pending:
                    pending.remove(m)
                continue
            for d in deps[m]:
                vmod.append(d)
                vpar.append(v)
                stack.append(len(vmod) - 1)
            if len(stack) > capacity:
                hang = True
                break
        if hang:
            break
    lines.append(f"ERROR: Found {len(loop_set)} modules in dependency cycles!")
    return CycleReport(tuple(lines), tuple(cycles), hang)


def _reaches_foreign_cycle(root: int, deps: Sequence[Sequence[int]]) -> bool:
    """Whether ``root`` reaches, without passing through itself, a cycle that
    does not contain it (kmod 30's walk never ends on such graphs)."""
    # Nodes reachable from root without going through root.
    seen: set[int] = set()
    todo = [d for d in deps[root] if d != root]
    while todo:
        x = todo.pop()
        if x in seen:
            continue
        seen.add(x)
        todo.extend(d for d in deps[x] if d != root and d not in seen)
    if not seen:
        return False
    # Is there a cycle inside `seen` (root removed)?  Iterative colour DFS.
    colour = dict.fromkeys(seen, 0)
    for start in seen:
        if colour[start]:
            continue
        path = [(start, iter(deps[start]))]
        colour[start] = 1
        while path:
            node, it = path[-1]
            advanced = False
            for d in it:
                if d == root or d not in colour:
                    continue
                if colour[d] == 1:
                    return True
                if colour[d] == 0:
                    colour[d] = 1
                    path.append((d, iter(deps[d])))
                    advanced = True
                    break
            if not advanced:
                colour[node] = 2
                path.pop()
    return False


def strongly_connected_cycles(deps: Sequence[Sequence[int]]) -> list[list[int]]:
    """Strongly connected components that contain a cycle (size > 1 or a self-edge),
    each in ascending index order; Tarjan's algorithm, iterative."""
    n = len(deps)
    index = [-1] * n
    low = [0] * n
    on = [False] * n
    st: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for s in range(n):
        if index[s] >= 0:
            continue
        work = [(s, 0)]
        while work:
            v, i = work[-1]
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                st.append(v)
                on[v] = True
            ds = deps[v]
            if i < len(ds):
                work[-1] = (v, i + 1)
                w = ds[i]
                if index[w] < 0:
                    work.append((w, 0))
                elif on[w]:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = st.pop()
                    on[w] = False
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in deps[v]:
                    out.append(sorted(comp))
    return out
