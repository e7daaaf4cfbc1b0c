"""``moddeps depmod``: kmod's depmod, as a library call.

:func:`run` scans, resolves and renders every output; it returns the files
and the diagnostics and writes nothing itself unless asked to.  It
orchestrates: :mod:`.rerun` answers from the scan cache when it can,
:mod:`.render` renders the files (the table of :mod:`.outputs`),
:mod:`.writer` writes them.  Messages
are kmod's texts without the program name ("WARNING: ...", "ERROR: ...");
the CLI adds its own prefix.
"""

from __future__ import annotations

import contextlib
import os
import time

from .. import config as depmod_config
from .. import kmodversion, process
from ..config import default_dirs
from ..errors import CycleError, DepmodFatal, InputError, OutputError, UsageError
from ..inputfiles import read_optional
from ..kmodnames import MODULE_DIRECTORIES, find_moduledir, module_dirname
from ..model import fsdecode, modname_from_path, printable
from ..records import dataclass, field, replace
from . import stamp
from .writer import locked, write_all

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..read.cache import OutputIdentity, ScanCache
    from ..read.scan import Tree, WalkedTree
    from ..resolve import Resolution
    from . import rerun
    from .stamp import Known

# resolve and render (with it the writers and the index builder) are imported
# where a result has to be computed, the walk (read.scan) where a tree is walked,
# the readers (read.pool) where modules are read, the kernel's symbol lists (kernelsyms) with -E or -F: a rerun answered
# from the output cache never needs them (start-up cost).


#: kmod's write order of the text files (kmod tools/depmod.c:depmod_output@v34.2, as
#: moddeps.depmod.outputs.TABLE); kmod 33 added modules.weakdep after modules.softdep.
TEXT_FILES = ("modules.dep", "modules.alias", "modules.softdep", "modules.symbols", "modules.devname")


@dataclass(frozen=True, slots=True)
class DepmodOptions:
    version: str | None = None
    files: tuple[str, ...] = ()
    all: bool = False  # -a
    quick: bool = False  # -A
    basedir: str = ""  # -b
    outdir: str | None = None  # -o
    moduledir: str = "lib/modules"  # -m
    config: tuple[str, ...] = ()  # -C
    errsyms: bool = False  # -e
    symvers: str | None = None  # -E
    system_map: str | None = None  # -F
    dry_run: bool = False  # -n
    prefix: str | None = None  # -P
    verbose: bool = False  # -v
    warn_dups: bool = False  # -w
    jobs: int | None = None
    fsync: bool = True
    cache: str | None = None  # scan cache database (None: no cache)
    kmod_version: str | int | None = None  # --kmod-version (None: see moddeps.kmodversion.select)
    deprecated: tuple[str, ...] = ()  # kmod 30's ignored options given (-u, -q, -r, --map, ...), in order


@dataclass(frozen=True, slots=True)
class DepmodResult:
    dirname: str
    outdir: str
    files: tuple[tuple[str, bytes], ...]  # in kmod's write order
    messages: tuple[str, ...]  # kmod texts, in kmod's order
    extra: tuple[str, ...] = ()  # moddeps' own notes (cycle symbols, hangs avoided)
    verbose_lines: tuple[str, ...] = ()  # -v lines for stdout
    skipped: bool = False  # -A found everything up to date
    tree: Tree | None = field(default=None, compare=False)
    resolution: Resolution | None = field(default=None, compare=False)
    kmod: kmodversion.KmodTarget | None = None  # the kmod release imitated


def check_version(version: str) -> None:
    """kmod tools/depmod.c: VERSION must start like ``%u.%u`` (sscanf: blanks, a sign, digits, a
    dot, blanks, a sign, digits: Unicode decimal digits, as a ``\\d`` of :mod:`re` reads them)."""
    at = _number_end(version, 0)
    if at < 0 or version[at : at + 1] != "." or _number_end(version, at + 1) < 0:
        raise UsageError(f"Bad version passed {version}")


def _number_end(text: str, at: int) -> int:
    """Where ``[ \\t\\n\\v\\f\\r]*[+-]?\\d+`` at ``at`` ends in ``text``, or -1 when it does not match."""
    n = len(text)
    while at < n and text[at] in " \t\n\v\f\r":
        at += 1
    if at < n and text[at] in "+-":
        at += 1
    start = at
    while at < n and text[at].isdecimal():
        at += 1
    return at if at > start else -1


def up_to_date(dirname: str, depfile: str) -> bool | None:
    """kmod tools/depmod.c (depfile_up_to_date): no module file is newer than
    modules.dep, comparing whole seconds (st_mtime).  None: no modules.dep."""
    from ..read.walk import SKIP_NAMES, is_module_filename

    try:
        dep_mtime = int(os.stat(depfile).st_mtime)
    except OSError:
        return None
    todo = [dirname]
    seen: set[tuple[int, int]] = set()
    while todo:
        d = todo.pop()
        try:
            st = os.stat(d)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            if e.name in SKIP_NAMES:
                continue
            try:
                if e.is_dir():
                    todo.append(e.path)
                elif is_module_filename(e.name) and int(e.stat().st_mtime) > dep_mtime:
                    return False
            except OSError:
                continue
    return True


def run(
    opts: DepmodOptions,
    progress: Callable[[int, int], None] | None = None,
    waiting: Callable[[str], None] | None = None,
    known: stamp.Known | None = None,
) -> DepmodResult:
    """depmod for ``opts``.  ``waiting`` is told (a "NOTE: ..." line) when the
    run waits for another one writing into the same directory.  ``known``: the
    stamp of these options proved every input unchanged but a few module files
    (:func:`moddeps.depmod.stamp.replay`): the result may be brought up to date
    without walking the tree."""
    version = opts.version or os.uname().release
    stamped = _stamp_start(opts, version)  # before a single input is read
    kmod = kmodversion.select(opts.kmod_version, opts.basedir or "/")
    messages: list[str] = []
    for option in opts.deprecated:
        # kmod tools/depmod.c: v30-v33 warn and go on; v34 (commit af54b73a80e8)
        # removed the options, so getopt rejects them
        if kmod.rejects_deprecated_options:
            what = f"unrecognized option '{option}'" if option.startswith("--") else f"invalid option -- '{option[1:]}'"
            raise UsageError(f"{what} (kmod 34 removed it; --kmod-version 33 accepts it)")
        messages.append(f"WARNING: Ignored deprecated option {option}")
    check_version(version)
    if opts.prefix is not None and len(opts.prefix) != 1:
        raise UsageError("-P only takes a single char")
    moduledir = opts.moduledir
    if moduledir.strip("/") == MODULE_DIRECTORIES[0]:
        # a merged-/usr root without lib/modules: its usr/lib/modules, as with -m /usr/lib/modules
        moduledir = find_moduledir(opts.basedir, version)
    dirname = module_dirname(opts.basedir, moduledir, version)
    outdir = module_dirname(opts.outdir, moduledir, version) if opts.outdir else dirname
    if not os.path.isdir(dirname):
        raise InputError(f"{dirname}: no such module directory (is VERSION {version!r} installed under BASEDIR?)")
    job = _Job(opts, version, kmod, dirname, outdir, progress, stamped, known)
    if opts.dry_run:  # writes nothing into the directory: no lock
        return _run(job, messages)
    # One writer per output directory, from before it reads the tree until its
    # files are written and recorded (moddeps.depmod.writer): a run that waited
    # reads what the previous one left, and finds a set it left half renamed completed.
    created = _missing_dirs(outdir)
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{outdir}: cannot create the output directory: {exc.strerror}") from None
    try:
        with locked(outdir, waiting, optional=True) as notes:
            result = _run(job, messages)
    except BaseException:
        for d in reversed(created):  # -o OUTDIR made for nothing: as it was
            with contextlib.suppress(OSError):
                os.rmdir(d)
        raise
    return replace(result, extra=(*notes, *result.extra)) if notes else result


def _missing_dirs(path: str) -> list[str]:
    """``path`` and its ancestors that do not exist, outermost first."""
    missing: list[str] = []
    while path and not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing[::-1]


@dataclass(frozen=True, slots=True)
class _Job:
    """What :func:`run` settled before reading anything."""

    opts: DepmodOptions
    version: str
    kmod: kmodversion.KmodTarget  # the release imitated
    dirname: str  # the module directory
    outdir: str  # where the files go
    progress: Callable[[int, int], None] | None
    stamp: _StampStart | None = None  # a stamp to write once the files are (see moddeps.depmod.stamp)
    known: Known | None = None  # what a stamp proved (see run)


@dataclass(frozen=True, slots=True)
class _Basis:
    """What :func:`_run` read before the modules (besides its messages)."""

    cfg: depmod_config.DepmodConfig
    kernel_table: dict[str, int] | None  # -E or -F: the kernel's symbols and their CRCs
    warn: bool  # -e, when it holds (-E or -F given)
    files_only: bool  # module files given: only those are read, and no configuration


def _run(job: _Job, messages: list[str]) -> DepmodResult:
    opts, version, kmod, dirname, outdir = job.opts, job.version, job.kmod, job.dirname, job.outdir
    files_only = bool(opts.files) and not opts.all
    if opts.quick:
        # kmod 30: -A together with -n does nothing at all; otherwise it does
        # a full scan (file arguments ignored) unless modules.dep is current.
        if opts.dry_run:
            return DepmodResult(dirname, outdir, (), tuple(messages), skipped=True, kmod=kmod)
        current = up_to_date(dirname, os.path.join(outdir, "modules.dep"))
        if current:
            return DepmodResult(dirname, outdir, (), tuple(messages), skipped=True, kmod=kmod)
        if current is None:
            messages.append(f"ERROR: could not fstatat({outdir}, modules.dep): No such file or directory")
        files_only = False

    # kmod reads no depmod.d configuration when it is given module files.
    cfg = depmod_config.DepmodConfig() if files_only else depmod_config.load(
        list(opts.config) or None, version, opts.basedir, usr_lib_dir=kmod.usr_lib_depmod_d)
    messages.extend(cfg.messages)

    warn = opts.errsyms
    kernel_table: dict[str, int] | None = None
    if warn and not (opts.symvers or opts.system_map):
        messages.append("WARNING: -e needs -E or -F")
        warn = False
    if opts.symvers or opts.system_map:
        from ..kernelsyms import kmod_kernel_table, read_text  # (start-up cost: see above)
    if opts.symvers:
        # a stale errno in kmod's message: kmod 30 leaves that of its look for
        # modules.softdep; kmod 34.2 leaves ENOENT whatever the tree holds (seen
        # with modules.softdep, modules.weakdep, both and neither)
        stale_ok = not kmod.rejects_deprecated_options and os.path.exists(f"{dirname}/modules.softdep")
        errno_text = "Success" if stale_ok else "No such file or directory"
        table, msgs = kmod_kernel_table(read_text(opts.symvers), opts.symvers, "symvers", _pfx(opts.prefix),
                                        errno_text)
        kernel_table = {fsdecode(k): v for k, v in table.items()}
        messages.extend(msgs)
    elif opts.system_map:
        table, msgs = kmod_kernel_table(read_text(opts.system_map), opts.system_map, "system.map", _pfx(opts.prefix))
        kernel_table = {fsdecode(k): v for k, v in table.items()}
        messages.extend(msgs)

    scan_cache = None
    if opts.cache:  # (the cache, with SQLite, and the rerun machinery only then: start-up)
        from ..read.cache import ScanCache

        # (the one the stamp read with, if it handed one over: opening and closing one costs a WAL checkpoint)
        scan_cache = (job.known and job.known.take_cache(opts.cache)) or ScanCache(opts.cache)
    try:
        result = _compute(job, _Basis(cfg, kernel_table, warn, files_only), messages, scan_cache)
        return replace(result, kmod=kmod)
    finally:
        if scan_cache is not None:
            scan_cache.close()


def _compute(job: _Job, basis: _Basis, messages: list[str], scan_cache: ScanCache | None) -> DepmodResult:
    opts, dirname, outdir = job.opts, job.dirname, job.outdir
    cfg, kernel_table, warn = basis.cfg, basis.kernel_table, basis.warn
    inputs: rerun.Inputs | None = None
    if scan_cache is not None:
        from . import rerun
    if job.known is not None and job.stamp is not None and scan_cache is not None and scan_cache.usable \
            and not basis.files_only:
        ctx = rerun.Context(dirname=dirname, outdir=outdir, kmod=job.kmod, prefix=opts.prefix, warn=warn,
                            warn_dups=opts.warn_dups, dry_run=opts.dry_run, verbose=opts.verbose,
                            symvers=opts.symvers, system_map=opts.system_map)
        if process.owned():
            process.quicker_heap(len(job.known.modules))
        got = rerun.known_previous(scan_cache, ctx, job.known, frozenset(basis.cfg.excludes))
        if got is not None:
            return _from_known(job, *got, scan_cache)
    if basis.files_only:
        tree = _tree_from_files(job, cfg, scan_cache)
    else:
        from ..read.scan import layout_tree, read_layout

        layout = layout_tree(dirname, version=job.version, config=cfg, order_first_wins=job.kmod.order_first_wins,
                             record=job.stamp is not None)
        if process.owned():  # (before the modules are read: see there)
            process.quicker_heap(len(layout.files))
        if scan_cache is not None and scan_cache.usable and not opts.dry_run:
            # A rerun on unchanged inputs whose outputs are still the files
            # this computation wrote: nothing to compute and nothing to write;
            # after a few module files changed: the previous result brought up to date.
            inputs = rerun.output_inputs(layout, rerun.Context(
                dirname=dirname, outdir=outdir, kmod=job.kmod, prefix=opts.prefix, warn=warn,
                warn_dups=opts.warn_dups, dry_run=opts.dry_run, verbose=opts.verbose, symvers=opts.symvers,
                system_map=opts.system_map), messages)
            again = rerun.previous(scan_cache, inputs, layout)
            if again is not None:
                return _from_cache(job, again, inputs, scan_cache, layout)
        tree = read_layout(layout, jobs=opts.jobs, progress=job.progress, cache=scan_cache,
                           keys=inputs.keys if inputs else None)
    from ..resolve import ResolveOptions, resolve

    extra_notes: list[str] = []  # the cache's own note goes first, once its writes are done
    messages.extend(m for m in tree.messages if m not in cfg.messages)

    extra_notes += [f"NOTE: {printable(p.path)}: {p.reason}" for p in tree.problems if not p.kmod_message]

    full_paths = [(f.relpath and f"{dirname}/{f.relpath}") or f.path for f in tree.files]
    for path, mod in zip(full_paths, tree.modules):
        if mod.error is not None:
            messages.append(f"ERROR: failed to load symbols from {path}: {mod.kmod_error or 'Invalid argument'}")

    res = resolve(
        tree.modules,
        full_paths,
        ResolveOptions(kernel_table=kernel_table, check_crcs=opts.symvers is not None, warn=warn, prefix=opts.prefix),
    )
    messages.extend(res.messages)
    verbose_lines: list[str] = []
    if opts.verbose:
        for idx, edges in enumerate(res.edge_symbols):
            for dep, syms in edges.items():
                verbose_lines.append(f'{full_paths[idx]} needs "{syms[0]}": {full_paths[dep]}')

    names = [m.name for m in tree.modules]
    if res.topo is None:
        raise _cycle_error(names, res, messages)

    from .outputs import NonAsciiIndexString
    from .render import flatten, render_tree

    try:
        groups, writer_input = render_tree(tree, res, job.kmod, warn_dups=opts.warn_dups, dry_run=opts.dry_run)
    except NonAsciiIndexString as exc:  # kmod >= 34 stops; moddeps writes nothing at all
        raise DepmodFatal(f"an index string is not 7-bit ASCII: {printable(exc.message)}",
                          [*messages, exc.message]) from None
    except ValueError as exc:  # an index kmod 30 itself could only write corrupt
        raise DepmodFatal(f"cannot write a kmod-compatible index: {exc}", [f"ERROR: {exc}"]) from None
    files, out_messages = flatten(groups)
    if inputs is not None and scan_cache is not None and not opts.verbose and not warn:
        # what a rerun brings up to date (the state keeps neither -v's nor -e's details)
        rerun.capture(scan_cache, inputs, res, writer_input, groups, messages, names, [f.shown for f in tree.files],
                      [i for i, m in enumerate(tree.modules) if m.error is not None])
    messages.extend(out_messages)

    if not opts.dry_run:
        if opts.outdir:
            os.makedirs(outdir, exist_ok=True)
        write_all(outdir, files, fsync=opts.fsync)
        if inputs is not None and scan_cache is not None:
            written = rerun.record(scan_cache, inputs, files, messages, verbose_lines, extra_notes)
            _stamp_end(job, scan_cache, layout, inputs, written, [*messages, *extra_notes])
    return DepmodResult(
        dirname, outdir, tuple(files), tuple(messages),
        tuple(extra_notes) if scan_cache is None else rerun.noted(scan_cache, extra_notes), tuple(verbose_lines),
        tree=tree, resolution=res,
    )


def _from_cache(job: _Job, again: rerun.Rerun, inputs: rerun.Inputs, scan_cache: ScanCache,
                layout: WalkedTree) -> DepmodResult:
    """The result of a rerun answered from the cache, once the files it changed are written and it is stored."""
    from . import rerun
    if again.rewrite:
        write_all(job.outdir, again.rewrite, fsync=job.opts.fsync)
    written: Sequence[OutputIdentity] | None = again.identities
    if not again.stored:
        written = rerun.record(scan_cache, inputs, again.files, again.messages, again.verbose_lines, again.notes)
    _stamp_end(job, scan_cache, layout, inputs, written, [*again.messages, *again.notes])
    return DepmodResult(job.dirname, job.outdir, again.files, again.messages, rerun.noted(scan_cache, again.notes),
                        again.verbose_lines)


def _from_known(job: _Job, again: rerun.Rerun, inputs: rerun.Inputs, scan_cache: ScanCache) -> DepmodResult:
    """The result brought up to date from what a stamp proved (:func:`.rerun.known_previous`), once
    the files it changed are written and it is stored, and its stamp (that one, its identities now)."""
    from . import rerun
    if again.rewrite:
        write_all(job.outdir, again.rewrite, fsync=job.opts.fsync)
    written = rerun.record(scan_cache, inputs, again.files, again.messages, again.verbose_lines, again.notes,
                           again.identities or ())
    if written is not None and job.known is not None and not scan_cache.problem:
        job.known.write([(i.name, i.size, i.mtime_ns, i.ctime_ns, i.inode, i.device, i.crc32) for i in written],
                        [*again.messages, *again.notes], inputs.digest)
    return DepmodResult(job.dirname, job.outdir, again.files, again.messages, rerun.noted(scan_cache, again.notes),
                        again.verbose_lines)


@dataclass(frozen=True, slots=True)
class _StampStart:
    """What a run that may write a stamp took before it read anything."""

    name: str  # the stamp's key (moddeps.depmod.stamp.key)
    cache: str  # the scan cache beside which it goes
    started_ns: int
    surveyed: tuple[stamp.Check, ...]  # every input but the tree's directories and module files


def _stamp_start(opts: DepmodOptions, version: str) -> _StampStart | None:
    """The identities a stamp records of every input but the walk's (:func:`moddeps.depmod.stamp.survey`:
    a superset of what the configuration, the kmod release and the tree's lists are read from)."""
    fields = {name: getattr(opts, name) for name, _default in stamp.FIELDS}
    fields["cache"] = opts.cache
    if not stamp.wanted(fields):
        return None
    started = time.time_ns()
    base = opts.basedir.rstrip("/")
    configs = list(opts.config) if opts.config else [base + d for d in default_dirs(True)]
    moduledirs = sorted({module_dirname(opts.basedir, md, version) for md in (opts.moduledir, *MODULE_DIRECTORIES)})
    lists = [f"{d}/{name}" for d in moduledirs
             for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo")]
    surveyed = stamp.survey(
        listed=configs, directories=moduledirs, packages=[f"{base}/var/lib/pacman/local"],
        plain=[f"{base}/var/lib/dpkg/status", *lists, *(p for p in (opts.symvers, opts.system_map) if p)])
    return _StampStart(stamp.key(fields), opts.cache or "", started, tuple(surveyed))


def _stamp_end(job: _Job, scan_cache: ScanCache, layout: WalkedTree, inputs: rerun.Inputs,
               written: Sequence[OutputIdentity] | None, lines: list[str]) -> None:
    """Write the stamp of a run whose files are written (and recorded as ``written``)."""
    start = job.stamp
    if start is None or written is None or scan_cache.problem or any(key is None for key in inputs.keys):
        return
    checks = [*start.surveyed, *((path, want) for path, want in layout.walked if not isinstance(want, tuple))]
    dirs = [(path, want) for path, want in layout.walked if isinstance(want, tuple)]
    found = [*(mf.path for mf in layout.files),
             *(path for path, want in layout.walked if not isinstance(want, frozenset))]
    walked = stamp.walked_dirs(dirs, found, with_names=not layout.duplicates)
    # (key[1:] is key.stat without the property's call: 4,022 of them)
    modules = [(key[0], key[1:], mf.shown) for key, mf in zip(inputs.keys, layout.files) if key is not None]
    outputs: list[stamp.OutputId] = [(i.name, i.size, i.mtime_ns, i.ctime_ns, i.inode, i.device, i.crc32)
                                     for i in written]
    stamp.write(start.cache, start.name, start.started_ns, job.dirname, job.outdir, checks, outputs, lines, walked,
                modules, inputs.digest)


def _cycle_error(names: list[str], res: Resolution, messages: list[str]) -> CycleError:
    """The error of a module graph with cycles: kmod's report of them (added
    to ``messages``) and moddeps' note on each cycle."""
    from ..resolve import report_cycles, strongly_connected_cycles  # (start-up cost: see above)

    report = report_cycles(names, res.deps)
    extra: list[str] = []
    if report.kmod_would_hang:
        extra.append(
            "NOTE: kmod 30's depmod never finishes its cycle report on this graph (it loops or aborts); "
            "moddeps reports every cycle instead"
        )
        cycle_lines = []
        loop_members: set[str] = set()
        for comp in strongly_connected_cycles(res.deps):
            cyc = _one_cycle(comp, res.deps)
            loop_members.update(names[c] for c in comp)
            cycle_lines.append("ERROR: Cycle detected: " + " -> ".join([*(names[c] for c in cyc), names[cyc[0]]]))
        messages.extend(cycle_lines)
        messages.append(f"ERROR: Found {len(loop_members)} modules in dependency cycles!")
        cycles = [_one_cycle(c, res.deps) for c in strongly_connected_cycles(res.deps)]
    else:
        messages.extend(report.lines)
        # kmod 30 also prints "Cycle detected: X" alone for a root X it
        # reached before from another cycle (X is behind a cycle, not on
        # one): that line is kmod's, but there is no cycle to describe
        cycles = [list(c) for c in report.cycles if c]
    for cyc in cycles:
        ring = [*cyc, cyc[0]]
        parts = []
        for a, b in zip(ring, ring[1:]):
            syms = res.edge_symbols[a].get(b, ())
            parts.append(f"{names[a]} needs {names[b]} for {', '.join(syms)}")
        extra.append("NOTE: cycle " + " -> ".join(names[c] for c in ring) + ": " + "; ".join(parts))
    return CycleError(f"{len(cycles)} dependency cycle(s); nothing written", messages, extra)


def _one_cycle(comp: list[int], deps: tuple[tuple[int, ...], ...]) -> list[int]:
    """A simple cycle through the first module of a strongly connected component."""
    members = set(comp)
    start = comp[0]
    if start in deps[start]:
        return [start]
    # BFS from start back to start inside the component
    prev: dict[int, int] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for d in deps[v]:
                if d not in members:
                    continue
                if d == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return list(reversed(path))
                if d not in prev:
                    prev[d] = v
                    nxt.append(d)
        frontier = nxt
    return [start]


def _pfx(prefix: str | None) -> bytes | None:
    return prefix.encode() if prefix else None


def _tree_from_files(job: _Job, cfg: depmod_config.DepmodConfig, cache: ScanCache | None = None) -> Tree:
    """depmod VERSION FILE...: only the named files, laid out like a full scan."""
    from ..read.order import module_array
    from ..read.scan import Tree
    from ..read.walk import ModuleFile, Registry

    opts, dirname = job.opts, job.dirname
    # kmod tools/depmod.c (main, file arguments): each must be an absolute
    # path to an existing file, and one module name may appear only once;
    # anything else is fatal before a single output is written.
    registry = Registry(dirname, cfg)
    for path in opts.files:
        if not path.startswith("/"):
            raise DepmodFatal(f"{path}: not an absolute path", [f"FATAL: {path}: not absolute path."])
        if not os.path.exists(path):
            raise DepmodFatal(f"{path}: no such file", [
                f"FATAL: could not create module {path}: No such file or directory"])
        rel = path[len(dirname) + 1 :] if path.startswith(dirname + "/") else None
        mf = ModuleFile(modname_from_path(path), path, rel)
        old = registry.by_name.get(mf.name)
        if old is not None and old.path != path:
            # libkmod 30 logs this with its source location, libkmod 34 without
            where = ("" if job.kmod.version >= 34
                     else "../libkmod/libkmod-module.c:428 kmod_module_new_from_path() ")
            raise DepmodFatal(f"{path}: module {mf.name} given twice", [
                f"ERROR: {where}kmod_module '{mf.name}' "
                f"already exists with different path: new-path='{path}' old-path='{old.path}'",
                f"FATAL: could not create module {path}: File exists"])
        if old is not None:
            raise DepmodFatal(f"{path}: given twice", [
                f"ERROR: hash_add_unique {mf.name}: File exists",
                f"FATAL: could not add module {path}: File exists"])
        registry.by_name[mf.name] = mf
    order_text = read_optional(f"{dirname}/modules.order")
    array, listed, applied, msgs = module_array(registry.by_name.values(), dirname, order_text,
                                                first_wins=job.kmod.order_first_wins)
    from ..read.pool import read_modules  # (start-up cost: see above)

    modules = read_modules([(mf.path, mf.shown) for mf in array], opts.jobs, job.progress, cache)
    return Tree(dirname, job.version, tuple(modules), tuple(array), listed, applied, messages=tuple(msgs), config=cfg)
