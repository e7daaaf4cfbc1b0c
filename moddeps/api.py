"""moddeps as a Python library: what each command computes, returned as frozen records.

Every function here reads its inputs, computes, and returns one record (or a
tuple of them); none prints, writes a file (but the scan cache, when given
one), reads the running kernel's ``/proc`` or ``/sys``, or exits.  Failures
the command line turns into exit statuses are raised as the domain errors of
:mod:`moddeps.errors` (all under :class:`~moddeps.errors.ModdepsError`).
What a command *reports* -- audit findings, compat verdicts, a plan target
that is not found, an incomplete closure -- is data in the record, never an
exception; each such record has the ``exit_status`` the command would exit
with.

A module directory (``dirname``) is ``ROOT/lib/modules/VERSION`` or
``ROOT/usr/lib/modules/VERSION``: ``ROOT`` is where depmod.d, modprobe.d,
the firmware and the package database are looked for.  A directory anywhere
else is read without any configuration.

The public surface is ``moddeps.__all__`` (see ``docs/api.md``, which also
states the compatibility promise); the modules this one imports from are not
part of it.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal, TypeAlias

from .records import dataclass, field

if TYPE_CHECKING:
    from .abidiff import DiffResult, Side
    from .audit import AuditResult
    from .compat import CompatResult
    from .kmodversion import KmodTarget
    from .model import KernelSymbols, Module
    from .modinfo import ModuleInfo
    from .modprobe.closure import Closure
    from .modprobe.plan import PlanContext, PlanSet
    from .read.cache import ScanCache
    from .read.scan import Tree
    from .resolve import Resolution

# The library's modules are imported inside the functions that need them, for
# start-up cost: ``moddeps.read_module`` loads the reader alone, not the
# planner, the audit or the scan cache's SQLite.

#: A path as callers hold it: ``str`` or ``pathlib.Path``.
StrPath: TypeAlias = str | os.PathLike[str]


@dataclass(frozen=True, slots=True)
class DepmodOutputs:
    """What ``depmod`` would write into a module directory, and what it would say."""

    dirname: str  #: the module directory read
    #: file name -> its exact bytes, in kmod's write order (``modules.dep`` first)
    files: Mapping[str, bytes] = field(hash=False)
    #: kmod's diagnostics in kmod's order, without the program name ("WARNING: ...", "ERROR: ..."),
    #: as ``depmod -n`` prints them
    messages: tuple[str, ...]
    #: moddeps' own remarks ("NOTE: ..."), e.g. a file the walk could not use
    notes: tuple[str, ...]
    kmod: KmodTarget  #: the kmod release imitated, and why it was chosen


# --------------------------------------------------------------------------
# Shared steps
# --------------------------------------------------------------------------


def _dir(dirname: StrPath) -> str:
    """A module directory as the commands take it: trailing slashes dropped.  An empty path
    is refused (it is no directory; read as ``/`` it would walk the whole file system)."""
    path = os.fspath(dirname)
    if not path:
        from .errors import InputError

        raise InputError("'': an empty path is not a module directory")
    return path.rstrip("/") or "/"


def _paths(paths: Sequence[StrPath] | None) -> list[str] | None:
    return [os.fspath(p) for p in paths] if paths else None


@contextmanager
def _scan_cache(cache: StrPath | None) -> Iterator[ScanCache | None]:
    """The scan cache at ``cache`` for one call (None: no cache), as the commands use it
    (:func:`moddeps.read.cache.session`), without their notes."""
    from .read.cache import session

    with session(None if cache is None else os.fspath(cache)) as c:
        yield c


def _tree(tree: StrPath | Tree, jobs: int | None, cache: StrPath | None) -> Tree:
    from .read.scan import Tree

    return tree if isinstance(tree, Tree) else read_tree(tree, jobs=jobs, cache=cache)


def _kernel_symbols(symvers: StrPath | None, system_map: StrPath | None) -> KernelSymbols | None:
    from .errors import UsageError
    from .kernelsyms import load_kernel_symbols

    if symvers is not None and system_map is not None:
        raise UsageError("give symvers or system_map, not both")
    if symvers is not None:
        return load_kernel_symbols(os.fspath(symvers), "symvers")
    if system_map is not None:
        return load_kernel_symbols(os.fspath(system_map), "system.map")
    return None


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def read_tree(
    dirname: StrPath,
    *,
    config: Sequence[StrPath] | None = None,
    jobs: int | None = None,
    cache: StrPath | None = None,
) -> Tree:
    """Walk a module directory as depmod does, order it (kmod 34's rules) and read every module.

    ``config``: depmod.d files or directories (``depmod -C``), instead of
    ``ROOT/etc/depmod.d`` and the other default directories.  ``jobs``:
    threads or processes reading modules (default: every core; 1: serially
    in this thread).  ``cache``: a scan cache database to use and update
    (the file the commands keep at ``$MODDEPS_CACHE``); None reads every
    module.  A module file that cannot be read still has its record, with
    ``error`` set (``Tree.broken``).  Raises :class:`InputError` when the
    directory does not exist, :class:`UsageError` for a bad
    ``$MODDEPS_READ_TIMEOUT`` or ``$MODDEPS_CACHE_MAX_SIZE``.
    """
    from .read.scan import scan_tree

    d = _dir(dirname)
    from .config import for_tree

    cfg = for_tree(d, paths=_paths(config))
    with _scan_cache(cache) as c:
        return scan_tree(d, config=cfg, jobs=jobs, cache=c)


def read_module(path: StrPath) -> Module:
    """One module file (``.ko``, ``.ko.gz``, ``.ko.xz``, ``.ko.zst``): what it exports and needs, its modinfo.

    ``Module.path`` is ``path`` as given.  Raises :class:`ModuleReadError`
    when the file is not a usable module (its ``reason`` says why).
    """
    from .read.elfreader import read_module as read

    return read(path)


def resolve_symbols(tree: Tree) -> Resolution:
    """Bind every module's imports to their exporters as depmod does (the last exporter in module order wins).

    Indexes in the record are positions in ``tree.modules``.  Without a
    kernel symbol list every import no module exports is in ``unknown`` (the
    kernel's own symbols too) and nothing is mismatched: use :func:`audit_tree`
    with ``symvers`` for kmod's unknown-symbol and CRC checks.
    """
    from .resolve import resolve

    paths = [f"{tree.dirname}/{f.relpath}" if f.relpath is not None else f.path for f in tree.files]
    return resolve(tree.modules, paths)


# --------------------------------------------------------------------------
# depmod
# --------------------------------------------------------------------------


def depmod_outputs(
    dirname: StrPath,
    *,
    kmod_version: int | str | None = None,
    config: Sequence[StrPath] | None = None,
    symvers: StrPath | None = None,
    system_map: StrPath | None = None,
    errsyms: bool = False,
    prefix: str | None = None,
    warn_dups: bool = False,
    jobs: int | None = None,
    cache: StrPath | None = None,
) -> DepmodOutputs:
    """Every file ``depmod`` writes for a module directory, byte for byte, without writing anything.

    The same computation as ``moddeps depmod -b ROOT VERSION`` (``-m`` for a
    directory outside ``[usr/]lib/modules``: ``ROOT`` is then the directory
    two levels up), so its module array follows the release imitated.
    ``kmod_version`` (30 to 34): the kmod release to match; default
    ``$MODDEPS_KMOD_VERSION``, else the kmod ``ROOT``'s package database has
    installed, else 34.  ``config``: depmod.d paths (``-C``).  ``symvers`` or
    ``system_map`` (``-E``/``-F``) with ``errsyms`` (``-e``): the unknown
    symbols and CRC mismatches, in ``messages``.  ``prefix``: ``-P``;
    ``warn_dups``: ``-w``.

    Raises :class:`CycleError` (its ``messages`` are kmod's, its ``notes``
    the symbols on each edge) when modules depend on each other in a cycle,
    :class:`DepmodFatal` when kmod would stop without writing, :class:`UsageError`
    for a bad option or a VERSION (the directory's name) that does not start
    like ``6.1``, :class:`InputError` for a missing directory or symbol list.
    """
    from .depmod.run import DepmodOptions, run
    from .kmodnames import basedir_of

    d = os.path.abspath(_dir(dirname))
    parent, version = os.path.split(d)
    root = basedir_of(d)
    if root is None:  # ROOT/MODULEDIR/VERSION with any MODULEDIR: depmod -b ROOT -m MODULEDIR
        root, moduledir = os.path.split(parent)
    else:
        moduledir = parent[len(root):]
    cache_path = None if cache is None else os.fspath(cache)
    from .read.cache import bound_from_env, upkeep

    bound = bound_from_env() if cache_path else None
    opts = DepmodOptions(
        version=version, basedir=root, moduledir=moduledir, config=tuple(_paths(config) or ()), errsyms=errsyms,
        symvers=None if symvers is None else os.fspath(symvers),
        system_map=None if system_map is None else os.fspath(system_map), dry_run=True, prefix=prefix,
        warn_dups=warn_dups, jobs=jobs, cache=cache_path, kmod_version=kmod_version,
    )
    try:
        result = run(opts)
    finally:
        if cache_path:
            upkeep(cache_path, bound)
    assert result.kmod is not None  # run() always says which release it matched
    return DepmodOutputs(dirname=result.dirname, files=dict(result.files), messages=result.messages,
                         notes=result.extra, kmod=result.kmod)


# --------------------------------------------------------------------------
# modprobe: plans and closures
# --------------------------------------------------------------------------


def plan_context(
    dirname: StrPath,
    *,
    config: Sequence[StrPath] | None = None,
    kernel_cmdline: str | bytes | None = None,
    source: Literal["auto", "index", "scan"] = "auto",
    jobs: int | None = None,
) -> PlanContext:
    """A module directory opened for planning, as one ``modprobe`` run sees it; reuse it for several plans.

    ``config``: modprobe.d files or directories (``modprobe -C``), instead of
    the default directories under the tree's root.  ``kernel_cmdline``: the
    text of a ``/proc/cmdline`` whose ``MODULE.OPTION=`` and
    ``modprobe.blacklist=`` apply (the host's is never read).  ``source``:
    ``"auto"`` uses the tree's own ``.bin`` indexes when they are current, and
    otherwise the indexes depmod would write now (from a scan); ``"index"``
    or ``"scan"`` forces one.  The paths in plans start with ``dirname``
    made absolute, not otherwise normalised (as modprobe prints them).

    The record is a handle to pass to :func:`plan_load`, :func:`plan_remove`
    and :func:`closure`; only its ``dirname`` and ``source`` are public.
    Raises :class:`InputError` when the directory does not exist,
    :class:`CycleError` when a scanned tree has dependency cycles (depmod
    would write no index), :class:`UsageError` for a bad ``source``.
    """
    from .modprobe.plan import open_context

    return open_context(_dir(dirname), config_paths=_paths(config), kernel_cmdline=kernel_cmdline, source=source,
                        jobs=jobs)


def _context(tree: StrPath | PlanContext) -> PlanContext:
    from .modprobe.plan import PlanContext

    return tree if isinstance(tree, PlanContext) else plan_context(tree)


def plan_load(
    tree: StrPath | PlanContext,
    targets: Sequence[str],
    *,
    options: Sequence[str] = (),
    loaded: Collection[str] | None = None,
) -> PlanSet:
    """What ``modprobe -a TARGET...`` loads, in order, with the reason for every module.

    A target is a module name, an alias or modalias string, ``symbol:NAME``,
    or a module file (``/...`` or ``./...``).  ``tree``: a module directory
    or a :func:`plan_context`.  ``options``: ``KEY=VALUE`` module options for
    a single target.  ``loaded``: names of modules the kernel has loaded
    (e.g. from ``/proc/modules``); None plans as ``--show-depends`` does,
    ignoring the kernel's state.  Each ``Plan.lines`` is exactly what
    ``modprobe --show-depends`` prints; a target that is not found is a
    ``Plan`` with ``error`` set.  Raises what :func:`plan_context` raises,
    and :class:`UsageError` for options with several targets.
    """
    from .modprobe.plan import PlanSet
    from .modprobe.plan import plan_load as load

    ctx = _context(tree)
    return PlanSet.of(ctx, load(ctx, targets, options=options, loaded=loaded), remove=False)


def plan_remove(
    tree: StrPath | PlanContext,
    targets: Sequence[str],
    *,
    remove_holders: bool = False,
    loaded: Collection[str] | None = None,
) -> PlanSet:
    """What ``modprobe -r [--remove-holders] TARGET...`` unloads, in order.

    With ``loaded=None`` the kernel's state is ignored (``modprobe -r
    --show-depends``); with the loaded module names the removal is
    simulated: modules not loaded are skipped, a module still in use stops
    its plan (``Plan.error``), unused dependencies follow.  Raises what
    :func:`plan_context` raises.
    """
    from .modprobe.plan import PlanSet
    from .modprobe.plan import plan_remove as remove

    ctx = _context(tree)
    return PlanSet.of(ctx, remove(ctx, targets, remove_holders=remove_holders, loaded=loaded), remove=True)


def closure(
    tree: StrPath | PlanContext,
    targets: Sequence[str],
    *,
    allow_missing_firmware: bool = False,
    firmware_dirs: Sequence[StrPath] | None = None,
) -> Closure:
    """Every file an initramfs needs to load ``targets``: module files (dependencies, softdeps
    and weakdeps followed), built-in modules (named, without a file) and firmware.

    Nothing is dropped silently: a target that cannot be found is in
    ``errors``; a module file missing or unreadable, or firmware not found,
    in ``problems`` (missing firmware in ``notes`` instead with
    ``allow_missing_firmware``).  ``exit_status`` is 1 when either holds
    anything: check it before building an image.  ``firmware_dirs``: where
    firmware is looked for, instead of the kernel's search path under the
    tree's root (``ROOT/lib/firmware/updates/VERSION``, ...,
    ``ROOT/lib/firmware``).  Raises what :func:`plan_context` raises.
    """
    from .modprobe.closure import closure as compute

    ctx = _context(tree)
    dirs = None if firmware_dirs is None else [os.fspath(d) for d in firmware_dirs]
    return compute(ctx, targets, firmware_dirs=dirs, allow_missing_firmware=allow_missing_firmware)


# --------------------------------------------------------------------------
# Checks: audit, compat, diff
# --------------------------------------------------------------------------


def audit_tree(
    tree: StrPath | Tree,
    *,
    symvers: StrPath | None = None,
    system_map: StrPath | None = None,
    jobs: int | None = None,
    cache: StrPath | None = None,
) -> AuditResult:
    """What ``moddeps audit`` finds in a tree: cycles, duplicate exports and modules, licence and
    namespace misuse, vermagic, signatures, stale indexes, ...; with ``symvers`` (the kernel's
    ``Module.symvers``) or ``system_map`` also unknown symbols and CRC mismatches against the kernel.

    ``tree``: a module directory (read with :func:`read_tree`, ``jobs`` and
    ``cache`` as there) or a :class:`Tree` already read.  Findings are sorted
    by severity, then kind; ``exit_status("error")`` is the command's status.
    Raises :class:`InputError` for a missing tree or an unusable symbol
    list, :class:`UsageError` when both symbol lists are given.
    """
    from .audit import audit_tree as audit

    kernel = _kernel_symbols(symvers, system_map)
    return audit(_tree(tree, jobs, cache), kernel)


def check_compat(
    files: Sequence[StrPath],
    tree: StrPath | Tree,
    *,
    symvers: StrPath | None = None,
    system_map: StrPath | None = None,
    install_dir: str = "updates",
    enforce_signatures: bool = False,
    jobs: int | None = None,
    cache: StrPath | None = None,
) -> CompatResult:
    """Would these module files load on the tree's kernel, and which in-tree modules would they break?

    The files count as installed in ``install_dir`` (searched first, so they
    replace same-named in-tree modules) and are checked as the kernel checks
    a module it loads: symbols, CRCs, GPL-only symbols, namespaces,
    vermagic, signatures (``enforce_signatures``: as with
    ``module.sig_enforce=1``), dependencies.  The kernel's symbols come from
    ``symvers`` or ``system_map``, else from where distributions put them
    (``DIR/build/Module.symvers``, ``ROOT/usr/src/linux-headers-VERSION``,
    ``ROOT/boot/System.map-VERSION``; ``kernel_symbols`` names the file
    used); without any, verdicts say what was not checked.  Raises
    :class:`InputError` for a missing file or tree, :class:`UsageError` for
    no files or two files of one module.
    """
    from .compat import compat_check, find_kernel_symbols
    from .errors import InputError, UsageError
    from .read.scan import scan_files

    paths = [os.fspath(f) for f in files]
    if not paths:
        raise UsageError("give at least one module file to check")
    for p in paths:
        if not os.path.lexists(p):
            raise InputError(f"{p}: no such file or directory")
    kernel = _kernel_symbols(symvers, system_map)
    target = _tree(tree, jobs, cache)
    if kernel is None:
        kernel, _notes = find_kernel_symbols(target.dirname)
    return compat_check(scan_files(paths, jobs=jobs), target, kernel, subdir=install_dir,
                        enforce_signatures=enforce_signatures)


def diff(
    old: StrPath | Tree,
    new: StrPath | Tree,
    *,
    jobs: int | None = None,
    cache: StrPath | None = None,
) -> DiffResult:
    """What changed between two module ABIs: modules added, removed or moved; exports added or
    removed; CRC, GPL-only or namespace changed; between two trees, dependency edges.

    Each side is a module directory, a :class:`Tree` already read, or a
    ``Module.symvers`` (vmlinux exports included).  ``incompatible`` lists
    the changes a module built against ``old`` would be refused for by
    ``new``.  Raises :class:`InputError` for a missing side or a file that
    is not a ``Module.symvers``.
    """
    from .abidiff import diff as compare

    return compare(_side(old, jobs, cache), _side(new, jobs, cache))


def _side(side: StrPath | Tree, jobs: int | None, cache: StrPath | None) -> Side:
    from .abidiff import side_from_symvers, side_from_tree
    from .errors import InputError
    from .read.scan import Tree

    if isinstance(side, Tree):
        return side_from_tree(side)
    path = os.fspath(side)
    if os.path.isdir(path):
        return side_from_tree(read_tree(path, jobs=jobs, cache=cache))
    if os.path.exists(path):
        return side_from_symvers(path)
    raise InputError(f"{path}: no such file or directory")


# --------------------------------------------------------------------------
# modinfo
# --------------------------------------------------------------------------


def info(
    target: StrPath,
    *,
    tree: StrPath | None = None,
    modname: bool = False,
    kmod_version: int | str | None = None,
) -> tuple[ModuleInfo, ...]:
    """A module as ``modinfo`` shows it: its fields in kmod's order (signature fields last), and
    the whole :class:`Module` record for a file.

    ``target``: a module file (a path ending in a module suffix that names a
    regular file), or a module name, alias, modalias string or
    ``symbol:NAME`` looked up in ``tree``'s indexes as modinfo does (a tree
    depmod never indexed: in those moddeps' depmod computes).  ``modname``:
    ``target`` is a module name only (``modinfo -m``).  An alias may name
    several modules, hence the tuple; a built-in module has ``path`` None and
    its fields from ``modules.builtin.modinfo``; a file that cannot be read
    has ``error`` set.  ``kmod_version`` chooses the release whose spelling
    of signature fields is used (default as :func:`depmod_outputs`).
    Raises :class:`InputError` when nothing is found ("Module X not found.")
    or ``tree`` does not exist, :class:`UsageError` for a bad ``kmod_version``.
    """
    from . import modinfo as mi
    from .errors import InputError
    from .kmodnames import basedir_of
    from .kmodversion import select

    arg = os.fspath(target)
    if tree is None:
        if not mi.is_module_filename(arg) or modname:
            raise InputError(f"{arg}: not a module file (give tree= to look up a module name or alias)")
        dirname = None
    else:
        dirname = os.path.abspath(_dir(tree))
        if not os.path.isdir(dirname):
            raise InputError(f"{dirname}: no such module directory")
    kmod = select(kmod_version, basedir_of(dirname) if dirname is not None else None)
    # a file needs no tree: an empty one answers no lookup and is never read
    t = mi.open_tree(dirname) if dirname is not None else mi.Tree("", {})
    q = mi.query(t, arg, mi.InfoOptions(modname=modname, kmod_version=kmod.version))
    if q.error is not None:
        raise InputError(q.error)
    return q.infos
