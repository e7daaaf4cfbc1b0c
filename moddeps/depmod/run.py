"""``moddeps depmod``: kmod's depmod, as a library call.

:func:`run` scans, resolves and renders every output; it returns the files
and the diagnostics and writes nothing itself unless asked to.  Messages
are kmod's texts without the program name ("WARNING: ...", "ERROR: ...");
the CLI adds its own prefix.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .. import config as depmod_config
from .. import kmodversion
from ..errors import CycleError, DepmodFatal, InputError, OutputError, UsageError
from ..kernelsyms import kmod_kernel_table, read_text
from ..kmodnames import MODULE_DIRECTORIES, find_moduledir, module_dirname
from ..model import fsdecode, printable
from ..read.cache import Key, ScanCache
from ..read.order import module_array
from ..read.pool import read_modules
from ..read.scan import Tree, WalkedTree, layout_tree, read_layout, read_optional
from ..read.walk import ModuleFile
from .writer import locked, write_all

if TYPE_CHECKING:
    from ..resolve import Resolution

# resolve, outputs and the index writer are imported when a result has to be
# computed: a rerun answered from the output cache never needs them.

_VERSION_RE = re.compile(r"[ \t\n\v\f\r]*[+-]?\d+\.[ \t\n\v\f\r]*[+-]?\d+")

#: kmod's write order of the text files (tools/depmod.c, depmod_output);
#: kmod 33 added modules.weakdep after modules.softdep.
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
    """kmod tools/depmod.c: VERSION must start like ``%u.%u``."""
    if not _VERSION_RE.match(version):
        raise UsageError(f"Bad version passed {version}")


def up_to_date(dirname: str, depfile: str) -> bool | None:
    """kmod tools/depmod.c (depfile_up_to_date): no module file is newer than
    modules.dep, comparing whole seconds (st_mtime).  None: no modules.dep."""
    try:
        dep_mtime = int(os.stat(depfile).st_mtime)
    except OSError:
        return None
    from ..read.walk import SKIP_NAMES, is_module_filename

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
) -> DepmodResult:
    """depmod for ``opts``.  ``waiting`` is told (a "NOTE: ..." line) when the
    run waits for another one writing into the same directory."""
    version = opts.version or os.uname().release
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
    opts = replace(opts, kmod_version=kmod.version)  # what the computation below reads (_target)
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
    if opts.dry_run:  # writes nothing into the directory: no lock
        return _run(opts, progress, version, kmod, messages, dirname, outdir)
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
            result = _run(opts, progress, version, kmod, messages, dirname, outdir)
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


def _run(
    opts: DepmodOptions,
    progress: Callable[[int, int], None] | None,
    version: str,
    kmod: kmodversion.KmodTarget,
    messages: list[str],
    dirname: str,
    outdir: str,
) -> DepmodResult:
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
    if opts.cache:
        from ..read.cache import ScanCache

        scan_cache = ScanCache(opts.cache)
    try:
        result = _compute(opts, version, dirname, outdir, cfg, messages, kernel_table, warn, files_only, scan_cache,
                          progress)
        return replace(result, kmod=kmod)
    finally:
        if scan_cache is not None:
            scan_cache.close()


def _target(opts: DepmodOptions) -> kmodversion.KmodTarget:
    """The kmod release of options resolved by :func:`run`."""
    assert isinstance(opts.kmod_version, int), opts.kmod_version
    return kmodversion.KmodTarget(opts.kmod_version, "resolved by run()")


#: What an output file was when it was written: name, size, mtime_ns, ctime_ns, inode, device, CRC-32 of its bytes.
Identity = tuple[str, int, int, int, int, int, int]


def _output_identities(outdir: str, names: list[str]) -> list[Identity] | None:
    """The identity of each output file as written (read back: ~1 MB for
    1,100 modules, 0.3 ms of CRC-32), or None if one cannot be read."""
    out = []
    for name in names:
        data = _read_output(os.path.join(outdir, name))
        if data is None:
            return None
        st, content = data
        out.append((name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, zlib.crc32(content)))
    return out


def _read_output(path: str) -> tuple[os.stat_result, bytes] | None:
    """The stat and the bytes of an output file, or None (gone, unreadable, or not a regular file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        data = os.read(fd, st.st_size + 1)
        # (os.read returns at most 2 GiB at once; an output is never near that)
        return (st, data) if len(data) == st.st_size else None
    except OSError:
        return None
    finally:
        os.close(fd)


def _outputs_unchanged(outdir: str, identities: list[Identity]) -> list[tuple[str, bytes]] | None:
    """The output files, if every one is still the very file an earlier run
    wrote, else None.  Each is replaced by a rename, so a rewrite by any tool
    gives a new inode; one edited in place keeps its inode, and may keep its
    size and get its mtime back (``touch -r``), but never its ctime (the
    kernel sets it on every change, and nothing lets a user set it) -- and
    the CRC of its bytes, which are read anyway, catches an edit made within
    the same tick of the ctime clock."""
    files = []
    for ident in identities:
        name = ident[0]
        data = _read_output(os.path.join(outdir, name))
        if data is None:
            return None
        st, content = data
        if (name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, zlib.crc32(content)) != ident:
            return None
        files.append((name, content))
    return files


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What a depmod result is computed from, as the output cache sees it."""

    digest: bytes  # of everything: basis, then files
    basis: bytes  # of every input but the module files
    files: bytes  # the module files: a digest of their paths, then their identities (stats, marshalled)
    stats: list[tuple[int, int, int, int, int] | None]  # size, mtime_ns, ctime_ns, inode, device of each module file
    keys: list[Key | None]  # the scan cache's keys of the module files


def _output_inputs(layout: WalkedTree, opts: DepmodOptions, warn: bool, messages: list[str], outdir: str) -> _Inputs:
    """Digests of everything depmod's result depends on, given the layout.

    The module files enter by identity (path, size, mtime, ctime, inode,
    device: the scan cache's key), the other inputs by content; options, the messages
    produced so far (configuration, symbol lists) and what the walk met by value.
    """
    import hashlib
    import marshal

    from .. import __version__
    from ..model import READER_SCHEMA
    from ..read.cache import file_key

    h = hashlib.blake2b(digest_size=20)

    def put(obj: object) -> None:
        h.update(repr(obj).encode("utf-8", "surrogateescape"))

    put((OUTPUT_SCHEMA, READER_SCHEMA, __version__, opts.kmod_version, layout.dirname, outdir, opts.prefix, warn,
         opts.warn_dups, opts.dry_run, opts.verbose, opts.symvers, opts.system_map, messages, layout.messages,
         [(p.path, p.reason, p.kmod_message) for p in layout.problems]))
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        data = read_optional(f"{layout.dirname}/{name}")
        put(None if data is None else hashlib.blake2b(data).digest())
    for path in (opts.symvers, opts.system_map):
        if path:
            put(hashlib.blake2b(read_text(path)).digest())
    if opts.symvers:  # the stale-errno quirk of -E messages
        put(os.path.exists(f"{layout.dirname}/modules.softdep"))
    basis = h.digest()
    # The paths are absolute (module_dirname), so a key's path is the file's
    # own; the array's paths enter as a digest, their identities as they are
    # (~40 bytes a module, stored to find which files changed next time).
    # marshal format 2 (no back-references) is a deterministic, injective
    # encoding of these strings, ints and tuples, 10x faster than repr here.
    keys = [file_key(mf.path) for mf in layout.files]
    stats = [key and key[1:] for key in keys]
    files = (hashlib.blake2b(marshal.dumps([(mf.shown, mf.path) for mf in layout.files], 2), digest_size=20).digest()
             + marshal.dumps(stats, 2))
    h.update(files)
    return _Inputs(h.digest(), basis, files, stats, keys)


def _update_previous(
    inputs: _Inputs, layout: WalkedTree, scan_cache: ScanCache, opts: DepmodOptions, warn: bool, dirname: str,
    outdir: str,
) -> DepmodResult | None:
    """The previous result brought up to date, when all that changed since
    are a few module files, changed, added or removed.  None: compute everything.

    The previous result must have been computed from the same other inputs
    and a module array that maps onto this one (by name, each kept module at
    the same path), the scan cache must still hold the records of the
    changed files as they were, and the output files must still be the ones
    written.  Then the old and new records of the changed files decide:

    * what depmod reads of each (:func:`.reads.depmod_view`) is the same --
      a module rebuilt without a change to its symbols or aliases, a package
      reinstalled, a file touched: the previous result stands, nothing is
      written;
    * otherwise, and whenever modules were added or removed,
      :mod:`.incremental` renders the groups of outputs the change touches,
      and only the files whose bytes change are written.
    """
    import marshal

    from ..model import Module, fsencode
    from ..read.cache import FEW
    from .reads import depmod_view

    prev = scan_cache.get_previous_output(dirname)
    if prev is None or prev[0] != inputs.basis:
        return None
    try:
        before = marshal.loads(prev[1][20:])
    except (ValueError, EOFError, TypeError):
        return None
    if not isinstance(before, list):
        return None
    state = None
    remap: list[int | None] | None = None
    was_at: list[int | None]
    if prev[1][:20] == inputs.files[:20]:  # the same module array
        if len(before) != len(inputs.stats):
            return None
        was_at = list(range(len(before)))
    else:  # modules added or removed: map the previous array onto this one
        if opts.verbose or warn:  # what the state does not keep
            return None
        from . import incremental  # (not needed by a rerun whose changes depmod does not read)

        state = incremental.load(scan_cache.get_output_state(dirname, prev[3]))
        if state is None:
            return None
        mapped = _map_arrays(state, layout, len(before))
        if mapped is None:
            return None
        remap, was_at = mapped
    changed: list[int] = []  # modules of this array that are new or whose file changed
    for j, i in enumerate(was_at):
        if i is None or before[i] != inputs.stats[j]:
            if inputs.stats[j] is None or (i is not None and before[i] is None) or len(changed) == FEW:
                return None
            changed.append(j)
    if not changed and remap is None:  # the same inputs, but the outputs were not the files written
        return None
    if remap is not None and len(changed) + remap.count(None) > FEW:
        return None
    record = prev[2]
    files = _outputs_unchanged(outdir, record[0])
    if files is None:
        return None
    items = [(layout.files[j].path, layout.files[j].shown) for j in changed]
    keys = [inputs.keys[j] for j in changed]
    # the records the previous result was computed from, before the new ones replace them
    old = scan_cache.get_many([(None if was_at[j] is None else (key[0], *before[was_at[j]]), shown)  # type: ignore[index]
                               for j, key, (_path, shown) in zip(changed, keys, items)])
    new = read_modules(items, 1, None, scan_cache, keys)
    old = [Module(m.name, m.path) if was_at[j] is None else o for j, o, m in zip(changed, old, new)]  # added: empty
    if any(a is None for a in old):
        return None
    if remap is None and all(depmod_view(a) == depmod_view(b) for a, b in zip(old, new)):  # type: ignore[arg-type]
        scan_cache.renew_output(dirname, prev[3], inputs.digest, inputs.files, record)
        return DepmodResult(dirname, outdir, tuple(files), tuple(record[1]), _noted(scan_cache, record[3]),
                            tuple(record[2]))
    if opts.verbose or warn:
        return None
    from . import incremental

    if state is None:
        state = incremental.load(scan_cache.get_output_state(dirname, prev[3]))
        if state is None:
            return None
    skip = set(changed)
    others = [(None if i in skip else key, mf.shown) for i, (key, mf) in enumerate(zip(inputs.keys, layout.files))]

    def importers(symbols: set[str]) -> dict[int, Module] | None:
        """The modules but the changed ones importing one of ``symbols``, from their cached records."""
        found = scan_cache.get_holding(others, [name.encode("utf-8", "surrogatepass") for name in symbols])
        if found is None:
            return None
        return {i: m for i, m in found.items() if incremental.importing(m, symbols, opts.prefix)}

    update = incremental.update(
        state, [fsencode(mf.name) for mf in layout.files], [mf.shown for mf in layout.files],
        list(zip(changed, old, new)), importers,  # type: ignore[arg-type]
        remap=remap, dirname=dirname, prefix=opts.prefix, warn_dups=opts.warn_dups, kmod=_target(opts))
    if update is None:
        return None
    previous = dict(files)
    result: list[tuple[str, bytes]] = []
    for group, names in update.files.items():
        if group in update.groups:
            result += update.groups[group][0]
        elif all(name in previous for name in names):
            result += [(name, previous[name]) for name in names]
        else:  # the state names a file the previous result did not write
            return None
    # the state first (its write overlaps the files' fsyncs); the result
    # stored after it with the same digest is the one it belongs to
    scan_cache.put_output_state(dirname, inputs.digest, update.state)
    rewritten = [(name, data) for name, data in result if previous.get(name) != data]
    if rewritten:
        write_all(outdir, rewritten, fsync=opts.fsync)
    written = _output_identities(outdir, [name for name, _ in result])
    if written is not None:
        scan_cache.put_output(dirname, inputs.digest, inputs.basis, inputs.files,
                              (written, update.messages, [], record[3]))
    return DepmodResult(dirname, outdir, tuple(result), tuple(update.messages), _noted(scan_cache, record[3]))


def _noted(scan_cache: ScanCache, notes: list[str]) -> tuple[str, ...]:
    """``notes``, after the cache's own problem if it had one (as a full computation says it)."""
    return (f"NOTE: {scan_cache.problem}", *notes) if scan_cache.problem else tuple(notes)


def _map_arrays(state: Any, layout: WalkedTree, size: int) -> tuple[list[int | None], list[int | None]] | None:
    """The previous module array (the state's) mapped onto ``layout``'s:
    (new index of each previous module or None: removed, previous index of
    each module now or None: added); None when a module kept its name but
    not its file, or the two orders disagree (the array is kmod's order of
    names, so the modules of both keep their order)."""
    try:
        names, shown = state.layout
    except (ValueError, TypeError):
        return None
    if len(names) != size:
        return None
    where = {name: i for i, name in enumerate(names)}
    remap: list[int | None] = [None] * size
    was_at: list[int | None] = []
    last = -1
    for j, mf in enumerate(layout.files):
        i = where.get(mf.name)
        if i is not None and (shown[i] != mf.shown or i <= last):
            return None
        if i is not None:
            remap[i] = j
            last = i
        was_at.append(i)
    return remap, was_at


#: Bump when the outputs computed from the same inputs change.
OUTPUT_SCHEMA = 4  # 3: the identities of the files written, not their contents; 4: basis and files apart


def _compute(
    opts: DepmodOptions,
    version: str,
    dirname: str,
    outdir: str,
    cfg: depmod_config.DepmodConfig,
    messages: list[str],
    kernel_table: dict[str, int] | None,
    warn: bool,
    files_only: bool,
    scan_cache: ScanCache | None,
    progress: Callable[[int, int], None] | None,
) -> DepmodResult:
    inputs: _Inputs | None = None
    if files_only:
        tree = _tree_from_files(dirname, version, opts, cfg, progress, scan_cache)
    else:
        layout = layout_tree(dirname, version=version, config=cfg, order_first_wins=_target(opts).order_first_wins)
        if scan_cache is not None and scan_cache.usable and not opts.dry_run:
            # A rerun on unchanged inputs whose outputs are still the files
            # this computation wrote: nothing to compute and nothing to write.
            inputs = _output_inputs(layout, opts, warn, messages, outdir)
            hit = scan_cache.get_output(dirname, inputs.digest)
            if hit is not None:
                unchanged = _outputs_unchanged(outdir, hit[0])
                if unchanged is not None:
                    return DepmodResult(dirname, outdir, tuple(unchanged), tuple(hit[1]), tuple(hit[3]),
                                        tuple(hit[2]))
            else:
                again = _update_previous(inputs, layout, scan_cache, opts, warn, dirname, outdir)
                if again is not None:
                    return again
        tree = read_layout(layout, jobs=opts.jobs, progress=progress, cache=scan_cache,
                           keys=inputs.keys if inputs else None)
    from ..resolve import Options, report_cycles, resolve, strongly_connected_cycles

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
        Options(kernel_table=kernel_table, check_crcs=opts.symvers is not None, warn=warn, prefix=opts.prefix),
    )
    messages.extend(res.messages)
    verbose_lines: list[str] = []
    if opts.verbose:
        for idx, edges in enumerate(res.edge_symbols):
            for dep, syms in edges.items():
                verbose_lines.append(f'{full_paths[idx]} needs "{syms[0]}": {full_paths[dep]}')

    names = [m.name for m in tree.modules]
    if res.topo is None:
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
        raise CycleError(f"{len(cycles)} dependency cycle(s); nothing written", messages, extra)

    from .outputs import NonAsciiIndexString

    try:
        groups, written_layout = render_tree(tree, res, _target(opts), warn_dups=opts.warn_dups, dry_run=opts.dry_run)
    except NonAsciiIndexString as exc:  # kmod >= 34 stops; moddeps writes nothing at all
        raise DepmodFatal(f"an index string is not 7-bit ASCII: {printable(exc.message)}",
                          [*messages, exc.message]) from None
    except ValueError as exc:  # an index kmod 30 itself could only write corrupt
        raise DepmodFatal(f"cannot write a kmod-compatible index: {exc}", [f"ERROR: {exc}"]) from None
    files, out_messages = flatten(groups)
    if inputs is not None and scan_cache is not None and not opts.verbose and not warn:
        # what _update_previous can use, made and written by the cache's
        # writer thread while the files are written (their fsyncs wait on the disk)
        import functools

        from . import incremental

        scan_cache.put_output_state(dirname, inputs.digest, functools.partial(
            incremental.capture, res, written_layout.columns(), groups, list(messages), names,
            [f.shown for f in tree.files], [i for i, m in enumerate(tree.modules) if m.error is not None]))
    messages.extend(out_messages)

    if not opts.dry_run:
        if opts.outdir:
            os.makedirs(outdir, exist_ok=True)
        write_all(outdir, files, fsync=opts.fsync)
        if inputs is not None and scan_cache is not None:
            written = _output_identities(outdir, [name for name, _ in files])
            if written is not None:
                scan_cache.put_output(dirname, inputs.digest, inputs.basis, inputs.files,
                                      (written, messages, verbose_lines, extra_notes))
    return DepmodResult(
        dirname, outdir, tuple(files), tuple(messages),
        tuple(extra_notes) if scan_cache is None else _noted(scan_cache, extra_notes), tuple(verbose_lines),
        tree=tree, resolution=res,
    )


#: depmod's outputs in groups, in kmod's write order: the files and messages
#: of a group come from the same inputs, and a group's messages follow the
#: previous group's (moddeps.depmod.incremental renders again only the
#: groups a changed module touches).
GROUPS = ("sanitize", "symsafe", "dep", "alias", "softdep", "symbols", "builtin", "devname")

#: group -> (its files in write order, its messages)
Rendered = dict[str, tuple[list[tuple[str, bytes]], list[str]]]


def render_files(
    tree: Tree, res: Resolution, kmod: kmodversion.KmodTarget | None = None, *, warn_dups: bool = False,
    dry_run: bool = False,
) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Every output file of depmod for a scanned tree (no cycles), in kmod's
    write order, and the messages kmod prints while writing them, as the
    release ``kmod`` writes them (None: :data:`moddeps.kmodversion.DEFAULT`)."""
    if kmod is None:
        kmod = kmodversion.KmodTarget(kmodversion.DEFAULT, "the default")
    return flatten(render_tree(tree, res, kmod, warn_dups=warn_dups, dry_run=dry_run)[0])


def flatten(groups: Rendered) -> tuple[list[tuple[str, bytes]], list[str]]:
    """The files and the messages of every group, in order."""
    files: list[tuple[str, bytes]] = []
    messages: list[str] = []
    for group in GROUPS:
        got = groups.get(group)
        if got is not None:
            files += got[0]
            messages += got[1]
    return files, messages


def render_tree(
    tree: Tree, res: Resolution, kmod: kmodversion.KmodTarget, *, warn_dups: bool = False, dry_run: bool = False
) -> tuple[Rendered, Any]:
    """Every group of outputs for a scanned tree (no cycles), and the writers' layout."""
    from . import outputs
    from .safety import sanitize

    # what must not reach the line-based files (see moddeps.depmod.safety)
    modules, messages = sanitize(tree.modules)
    layout = outputs.Layout(modules, [f.shown for f in tree.files], res)
    groups: Rendered = {"sanitize": ([], messages)}
    groups.update(render_groups(layout, tree.dirname, GROUPS[1:], kmod, warn_dups=warn_dups, dry_run=dry_run))
    return groups, layout


def render_groups(
    layout: Any, dirname: str, which: Sequence[str], kmod: kmodversion.KmodTarget, *, warn_dups: bool = False,
    dry_run: bool = False,
) -> Rendered:
    """The groups ``which`` (but "sanitize", which needs the modules) of an
    :class:`outputs.Layout` of sanitized modules, as the kmod release ``kmod`` writes them."""
    from . import outputs
    from .safety import safe_symbols

    out: Rendered = {}
    pre = kmod.preorder_index
    names = outputs._names(layout)
    if "symsafe" in which or "symbols" in which:
        symsafe: list[str] = []
        symbols = safe_symbols(outputs.module_symbols(layout), names, symsafe)
        out["symsafe"] = ([], symsafe)
    if "dep" in which:
        messages: list[str] = []
        lines = outputs.dep_lines(layout)
        out["dep"] = ([("modules.dep", outputs.modules_dep(lines)),
                       ("modules.dep.bin", outputs.modules_dep_bin(layout, lines, messages, preorder=pre))], messages)
    if "alias" in which:
        messages = []
        out["alias"] = ([("modules.alias", outputs.modules_alias(layout)),
                         ("modules.alias.bin", outputs.modules_alias_bin(layout, messages, warn_dups, preorder=pre))],
                        messages)
    if "softdep" in which:
        files = [("modules.softdep", outputs.modules_softdep(layout))]
        # kmod >= 33 always writes modules.weakdep; for older releases moddeps
        # writes it only when a module declares a weak dependency
        if kmod.always_weakdep or outputs.has_weakdeps(layout):
            files.append(("modules.weakdep", outputs.modules_weakdep(layout)))
        out["softdep"] = (files, [])
    if "symbols" in which:
        messages = []
        out["symbols"] = ([("modules.symbols", outputs.modules_symbols(layout, symbols)),
                           ("modules.symbols.bin", outputs.modules_symbols_bin(layout, symbols, messages,
                                                                               preorder=pre))],
                          messages)
    if "builtin" in which:
        builtin = read_optional(f"{dirname}/modules.builtin")
        builtin_modinfo = read_optional(f"{dirname}/modules.builtin.modinfo")
        # kmod's message order: each builtin file's "could not open" warning
        # or its parse warnings, at write steps 8 and 9.  With -n those two
        # writers return before opening their inputs: no message at all.
        messages = []
        if builtin is None:
            messages.append(f"WARNING: could not open modules.builtin at {dirname}: No such file or directory")
        files = [("modules.builtin.bin", outputs.modules_builtin_bin(builtin, messages, preorder=pre))]
        if builtin_modinfo is None:
            messages.append(
                f"WARNING: could not open modules.builtin.modinfo at {dirname}: No such file or directory"
            )
        files.append(("modules.builtin.alias.bin",
                      outputs.modules_builtin_alias_bin(builtin_modinfo, messages, preorder=pre)))
        out["builtin"] = (files, [] if dry_run else messages)
    if "devname" in which:
        devname, errors = outputs.modules_devname(layout)
        out["devname"] = ([("modules.devname", devname)], errors)
    return {group: out[group] for group in GROUPS if group in which}


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


def _tree_from_files(
    dirname: str,
    version: str,
    opts: DepmodOptions,
    cfg: depmod_config.DepmodConfig,
    progress: Callable[[int, int], None] | None,
    cache: ScanCache | None = None,
) -> Tree:
    """depmod VERSION FILE...: only the named files, laid out like a full scan."""
    from ..model import modname_from_path
    from ..read.walk import Registry

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
            where = ("" if _target(opts).version >= 34
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
                                                first_wins=_target(opts).order_first_wins)
    modules = read_modules([(mf.path, mf.shown) for mf in array], opts.jobs, progress, cache)
    return Tree(dirname, version, tuple(modules), tuple(array), listed, applied, messages=tuple(msgs), config=cfg)
