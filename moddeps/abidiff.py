"""``moddeps diff``: what changed between two kernels' module ABIs.

A *side* is either a module tree (``.../lib/modules/VERSION``, read from the
``.ko`` files alone) or a ``Module.symvers`` (modpost's output: one line per
export, ``CRC<TAB>symbol<TAB>module<TAB>export type<TAB>namespace``).
:func:`diff_sides` compares two sides and returns :class:`Change` records:

* modules added, removed, moved (their path in the tree changed);
* exports, keyed by (owning module, symbol): added, removed, CRC changed,
  export type changed (``EXPORT_SYMBOL`` <-> ``EXPORT_SYMBOL_GPL``),
  namespace changed;
* dependency edges (``a`` needs ``b``, as depmod binds symbols) added and
  removed -- trees only: Module.symvers does not record what modules need.

What each side can say, and so what is compared:

* a tree's exports come from each module's ``__crc_*`` / ``__ksymtab*`` /
  ``__kstrtabns_*`` symbols (:mod:`moddeps.read.elfreader`); it knows nothing of
  ``vmlinux``, so vmlinux exports are compared only between two
  Module.symvers;
* Module.symvers lists only modules that export something, so when one side
  is a Module.symvers, module additions and removals are compared over
  exporting modules only;
* a Module.symvers records ``drivers/foo/bar`` where the tree installs
  ``kernel/drivers/foo/bar.ko``: locations are compared as ``kernel/`` +
  the symvers path, without the ``.ko`` suffix and compression.

CRCs are compared only when both sides carry them.  A kernel built without
CONFIG_MODVERSIONS (Debian's 7.x) has none: its modules have no ``__crc_*``
and its Module.symvers says 0x00000000 for every symbol; such a side has
``crcs`` False, its CRCs are None (JSON null, the side's ``"crcs": false``
says why) and no ``crc-changed`` is reported against it.

Incompatible changes -- a module built against OLD would be refused by NEW
-- are: an export removed (unless another module or vmlinux of NEW still
exports the symbol with the same CRC), a CRC changed (``check_version``:
"disagrees about version of symbol"), an export that became GPL-only
(invisible to non-GPL modules in ``find_symbol``), and a namespace added or
changed (``verify_namespace_is_imported``).  Neither GPL-only-ness nor the
namespace enters the CRC (genksyms hashes the type signature only), so the
last two are not caught by symbol versions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from .errors import InputError
from .kernelsyms import parse_symvers, read_text, validate
from .kmodnames import MODULE_SUFFIXES
from .model import crc_text, modname_from_path
from .read.scan import Tree
from .records import dataclass, field
from .resolve import resolve

#: Change kinds, in report order.
CHANGE_KINDS = (
    "module-added",
    "module-removed",
    "module-moved",
    "export-added",
    "export-removed",
    "crc-changed",
    "export-type-changed",
    "namespace-changed",
    "dependency-added",
    "dependency-removed",
)

EXPORT_KINDS = frozenset({"export-added", "export-removed", "crc-changed", "export-type-changed",
                          "namespace-changed"})

VMLINUX = "vmlinux"


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """One export as both kinds of side can describe it."""

    crc: int | None
    gpl_only: bool
    namespace: str | None

    @property
    def export_type(self) -> str:
        return "EXPORT_SYMBOL_GPL" if self.gpl_only else "EXPORT_SYMBOL"


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a diff."""

    path: str
    kind: str  # "tree" or "symvers"
    version: str | None  # the tree's release (None for a Module.symvers)
    modules: Mapping[str, str] = field(default_factory=dict, hash=False)  # name -> location
    exports: Mapping[tuple[str, str], ExportInfo] = field(default_factory=dict, hash=False)  # (owner, symbol)
    deps: Mapping[tuple[str, str], tuple[str, ...]] | None = field(default=None, hash=False)  # (a, b) -> symbols
    has_vmlinux: bool = False
    unreadable: tuple[str, ...] = ()  # modules whose files could not be read (tree)
    crcs: bool = True  # the side carries symbol versions (False: a kernel without CONFIG_MODVERSIONS)

    @property
    def exporting_modules(self) -> frozenset[str]:
        return frozenset(owner for owner, _sym in self.exports if owner != VMLINUX)


@dataclass(frozen=True, slots=True)
class Change:
    """One difference.  ``old``/``new`` by kind:

    module-*: the module's location (``kernel/drivers/foo/bar``);
    export-added/-removed: the CRC (``0x%08x``, or None);
    crc-changed: the CRCs; export-type-changed: ``EXPORT_SYMBOL`` or
    ``EXPORT_SYMBOL_GPL``; namespace-changed: the namespaces (None: none);
    dependency-*: the module depended on (``symbols``: the symbols behind the edge).
    """

    kind: str
    module: str
    symbol: str | None = None
    old: str | None = None
    new: str | None = None
    incompatible: bool = False
    symbols: tuple[str, ...] = ()

    def key(self) -> tuple[str, str, str | None, str | None, str | None]:
        return (self.kind, self.module, self.symbol, self.old, self.new)


@dataclass(frozen=True, slots=True)
class DiffResult:
    old: Side
    new: Side
    changes: tuple[Change, ...]
    notes: tuple[str, ...] = ()

    @property
    def incompatible(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.incompatible)

    def exit_status(self) -> int:
        """1 when the ABI changed incompatibly (for CI), else 0."""
        return 1 if self.incompatible else 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.changes:
            out[c.kind] = out.get(c.kind, 0) + 1
        return out


# --------------------------------------------------------------------------
# Sides
# --------------------------------------------------------------------------


def location(relpath: str) -> str:
    """A module's place in a tree without the ``.ko`` / compression suffix."""
    for suffix in MODULE_SUFFIXES:
        if relpath.endswith(suffix):
            return relpath[: -len(suffix)]
    return relpath


def side_from_tree(tree: Tree) -> Side:
    """A side from a scanned tree: every module, its exports, and depmod's dependency edges."""
    modules: dict[str, str] = {}
    exports: dict[tuple[str, str], ExportInfo] = {}
    crcs = False
    for m, f in zip(tree.modules, tree.files):
        modules[m.name] = location(f.shown)
        for e in m.exports:
            if not e.pseudo:  # namespace names kmod 30 reads as exports (see model.Export)
                exports[(m.name, e.name)] = ExportInfo(e.crc, e.gpl_only, e.namespace)
                crcs = crcs or e.crc is not None
        crcs = crcs or any(i.crc is not None for i in m.imports)
    res = resolve(tree.modules, [f.shown for f in tree.files])
    deps: dict[tuple[str, str], tuple[str, ...]] = {}
    for i, edges in enumerate(res.edge_symbols):
        for d, syms in edges.items():
            deps[(tree.modules[i].name, tree.modules[d].name)] = syms
    return Side(tree.dirname, "tree", tree.version, modules, exports, deps, False,
                tuple(m.name for m in tree.modules if m.error is not None), crcs)


def side_from_symvers(path: str, data: bytes | None = None) -> Side:
    """A side from a ``Module.symvers`` (vmlinux exports included)."""
    raw = read_text(path) if data is None else data
    validate(raw, path, "symvers")  # junk and placeholders are refused with the reason, as in audit and compat
    entries = parse_symvers(raw)
    if not entries:
        raise InputError(f"{path}: not a Module.symvers (no CRC<TAB>symbol<TAB>module lines) nor a module directory")
    modules: dict[str, str] = {}
    exports: dict[tuple[str, str], ExportInfo] = {}
    # modpost writes 0x00000000 for every symbol of a kernel without
    # CONFIG_MODVERSIONS: such a file has no CRCs, not CRCs that are all 0
    crcs = any(e.crc for e in entries)
    for e in entries:
        if e.module == VMLINUX:
            owner = VMLINUX
        else:
            owner = modname_from_path(e.module)
            modules[owner] = "kernel/" + location(e.module)
        exports[(owner, e.name)] = ExportInfo(e.crc if crcs else None, e.gpl_only, e.namespace)
    return Side(path, "symvers", None, modules, exports, None, True, (), crcs)


def load_side(path: str, *, jobs: int | None = None) -> Side:
    """A directory is a module tree (scanned with the default depmod.d), anything else a Module.symvers."""
    if os.path.isdir(path):
        from .read.scan import scan_tree

        return side_from_tree(scan_tree(path, jobs=jobs))
    return side_from_symvers(path)


# --------------------------------------------------------------------------
# The diff
# --------------------------------------------------------------------------


def diff_sides(old: Side, new: Side) -> list[Change]:
    """Every change from ``old`` to ``new``, sorted by kind, module, symbol."""
    return list(diff(old, new).changes)


def diff(old: Side, new: Side) -> DiffResult:
    notes: list[str] = []
    with_vmlinux = old.has_vmlinux and new.has_vmlinux
    if not with_vmlinux:
        notes.append("vmlinux exports are compared only between two Module.symvers: a tree's .ko files do not "
                     "describe them")

    def exports_of(side: Side) -> dict[tuple[str, str], ExportInfo]:
        return {k: v for k, v in side.exports.items() if with_vmlinux or k[0] != VMLINUX}

    oe, ne = exports_of(old), exports_of(new)
    changes: list[Change] = []
    # CRCs are compared only when both sides have them: against a kernel
    # without CONFIG_MODVERSIONS every CRC would look changed (and the kernel
    # checks none: kernel/module/internal.h, the !CONFIG_MODVERSIONS check_version)
    compare_crcs = old.crcs and new.crcs
    for side, label in ((old, "old"), (new, "new")):
        if not side.crcs:
            notes.append(f"{label} side has no CRCs (MODVERSIONS off): CRCs were not compared")

    # modules
    om: Mapping[str, str] = old.modules
    nm: Mapping[str, str] = new.modules
    if old.kind != new.kind:
        notes.append("Module.symvers lists only modules that export symbols: modules are compared over those")
        om = {k: v for k, v in om.items() if k in old.exporting_modules}
        nm = {k: v for k, v in nm.items() if k in new.exporting_modules}
    for name in sorted(om.keys() | nm.keys()):
        a, b = om.get(name), nm.get(name)
        if a is None:
            changes.append(Change("module-added", name, None, None, b))
        elif b is None:
            changes.append(Change("module-removed", name, None, a, None))
        elif a != b:
            changes.append(Change("module-moved", name, None, a, b))

    # exports
    provided_new: dict[str, set[int | None]] = {}
    for (_owner, sym), info in ne.items():
        provided_new.setdefault(sym, set()).add(info.crc if compare_crcs else None)
    for key in sorted(oe.keys() | ne.keys()):
        owner, sym = key
        a_info, b_info = oe.get(key), ne.get(key)
        if a_info is None and b_info is not None:
            changes.append(Change("export-added", owner, sym, None, crc_text(b_info.crc)))
            continue
        if b_info is None and a_info is not None:
            # still exported elsewhere with the same CRC: its users just bind to the new owner
            still = (a_info.crc if compare_crcs else None) in provided_new.get(sym, set())
            changes.append(Change("export-removed", owner, sym, crc_text(a_info.crc), None, incompatible=not still))
            continue
        assert a_info is not None and b_info is not None
        if compare_crcs and a_info.crc != b_info.crc:
            changes.append(Change("crc-changed", owner, sym, crc_text(a_info.crc), crc_text(b_info.crc),
                                  incompatible=True))
        if a_info.gpl_only != b_info.gpl_only:
            changes.append(Change("export-type-changed", owner, sym, a_info.export_type, b_info.export_type,
                                  incompatible=b_info.gpl_only))
        if a_info.namespace != b_info.namespace:
            changes.append(Change("namespace-changed", owner, sym, a_info.namespace, b_info.namespace,
                                  incompatible=b_info.namespace is not None))

    # dependencies
    if old.deps is not None and new.deps is not None:
        od, nd = old.deps, new.deps
        for a, b in sorted(od.keys() | nd.keys()):
            if (a, b) not in od:
                changes.append(Change("dependency-added", a, None, None, b, symbols=tuple(nd[(a, b)])))
            elif (a, b) not in nd:
                changes.append(Change("dependency-removed", a, None, b, None, symbols=tuple(od[(a, b)])))
    elif old.deps is not None or new.deps is not None:
        notes.append("dependencies are compared only between two trees: Module.symvers does not record them")

    for side, label in ((old, "old"), (new, "new")):
        if side.unreadable:
            notes.append(f"{label} side: {len(side.unreadable)} module file(s) could not be read, their exports are "
                         f"missing: {', '.join(side.unreadable[:5])}{' ...' if len(side.unreadable) > 5 else ''}")
    rank = {k: i for i, k in enumerate(CHANGE_KINDS)}
    changes.sort(key=lambda c: (rank[c.kind], c.module, c.symbol or "", c.old or "", c.new or ""))
    return DiffResult(old, new, tuple(changes), tuple(notes))


def export_changes(changes: Iterable[Change], *, modules_only: bool = True) -> set[tuple[str, str, str | None,
                                                                                   str | None, str | None]]:
    """The export changes as ``(kind, module, symbol, old, new)`` (vmlinux's left out with ``modules_only``)."""
    return {c.key() for c in changes if c.kind in EXPORT_KINDS and not (modules_only and c.module == VMLINUX)}

