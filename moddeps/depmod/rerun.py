"""A depmod rerun answered from the scan cache's output tables.

:func:`output_inputs` digests everything a result is computed from;
:func:`previous` then finds the result stored for the same inputs (its
output files still the very files written), or brings the previous result
up to date when all that changed are a few module files; :func:`capture`
and :func:`record` store what a computation made for the next run.  The
caller (:mod:`moddeps.depmod.run`) writes the files: nothing here writes
into the output directory.
"""

from __future__ import annotations

import functools
import marshal
import os

from .. import __version__
from ..inputfiles import read_optional
from ..kmodversion import KmodTarget
from ..model import READER_SCHEMA, Module, fsencode
from ..read import cache
from ..read.cache import PATHS_DIGEST_SIZE, Key, ModuleFiles, OutputIdentity, ScanCache, StoredOutput, file_keys
from ..read.fileid import FileStat, blake2b, identity
from ..records import dataclass
from .reads import depmod_view
from .stamp import inputs_digest, output_identity

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..read.scan import WalkedTree
    from ..resolve import Resolution
    from .incremental import Importers, State, Update
    from .outputs import WriterInput
    from .render import Rendered
    from .stamp import Known

# .incremental (and with it the resolver and the writers) is imported where a
# result is brought up to date or captured, the readers (read.pool) where
# changed modules are read, moddeps.kernelsyms where a symbol list is given:
# a rerun answered by the stored result never needs them (start-up cost).

#: Bump when the outputs computed from the same inputs change.
OUTPUT_SCHEMA = 5  # 3: the identities of the files written, not their contents; 4: basis and files apart;
# 5: the digest made of the basis and the files (inputs_digest)


@dataclass(frozen=True, slots=True)
class Context:
    """The run a result is computed for, as the output cache sees it: where,
    for which kmod release, with which options (the module files and the
    messages made before they are read enter :class:`Inputs` apart)."""

    dirname: str
    outdir: str
    kmod: KmodTarget
    prefix: str | None  # -P
    warn: bool  # -e, when it holds (-E or -F given)
    warn_dups: bool  # -w
    dry_run: bool  # -n
    verbose: bool  # -v
    symvers: str | None  # -E
    system_map: str | None  # -F


@dataclass(frozen=True, slots=True)
class Inputs:
    """What a depmod result is computed from, as the output cache sees it."""

    ctx: Context  # the run
    digest: bytes  # of everything: basis, then files
    basis: bytes  # of every input but the module files
    files: ModuleFiles  # a digest of the module array's paths, and each file's identity
    keys: tuple[Key | None, ...]  # the scan cache's keys of the module files


@dataclass(frozen=True, slots=True)
class Rerun:
    """A result from the cache: the previous one, or the previous one brought up to date."""

    files: tuple[tuple[str, bytes], ...]  # in kmod's write order
    messages: tuple[str, ...]
    notes: tuple[str, ...]  # the result's own notes (the cache's problem, if any, goes before them)
    verbose_lines: tuple[str, ...]
    rewrite: tuple[tuple[str, bytes], ...] = ()  # the files whose bytes changed: to write
    stored: bool = True  # False: to store with :func:`record` once ``rewrite`` is written
    #: of the files as they are, when stored; when not: of those not to be rewritten, as checked (or None)
    identities: tuple[OutputIdentity, ...] | None = None


def output_inputs(layout: WalkedTree, ctx: Context, messages: Sequence[str]) -> Inputs:
    """Digests of everything depmod's result depends on, given the layout.

    The module files enter by identity (path, size, mtime, ctime, inode,
    device: the scan cache's key), the other inputs by content; options, the messages
    produced so far (configuration, symbol lists) and what the walk met by value.
    """
    h = blake2b(digest_size=20)

    def put(obj: object) -> None:
        h.update(repr(obj).encode("utf-8", "surrogateescape"))

    put((OUTPUT_SCHEMA, READER_SCHEMA, __version__, ctx.kmod.version, layout.dirname, ctx.outdir, ctx.prefix, ctx.warn,
         ctx.warn_dups, ctx.dry_run, ctx.verbose, ctx.symvers, ctx.system_map, list(messages), layout.messages,
         [(p.path, p.reason, p.kmod_message) for p in layout.problems]))
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        data = read_optional(f"{layout.dirname}/{name}")
        put(None if data is None else blake2b(data).digest())
    for path in (ctx.symvers, ctx.system_map):
        if path:
            from ..kernelsyms import read_text  # (start-up cost: see above)

            put(blake2b(read_text(path)).digest())
    if ctx.symvers:  # the stale-errno quirk of -E messages
        put(os.path.exists(f"{layout.dirname}/modules.softdep"))
    basis = h.digest()
    # The paths are absolute (module_dirname), so a key's path is the file's
    # own; the array's paths enter as a digest, their identities as they are
    # (~40 bytes a module, stored to find which files changed next time).
    # marshal format 2 (no back-references) is a deterministic, injective
    # encoding of these strings, ints and tuples, 10x faster than repr here.
    keys = tuple(file_keys([mf.path for mf in layout.files]))
    paths = blake2b(marshal.dumps([(mf.shown, mf.path) for mf in layout.files], 2),
                            digest_size=PATHS_DIGEST_SIZE).digest()
    files = ModuleFiles.of(paths, [None if key is None else key[1:] for key in keys])  # (key.stat, inline)
    return Inputs(ctx, inputs_digest(basis, files.encoded), basis, files, keys)


def _updated_files(update: Update | None, files: Sequence[tuple[str, bytes]]
                   ) -> tuple[list[tuple[str, bytes]], tuple[tuple[str, bytes], ...]] | None:
    """Every output file after ``update``, and those of them whose bytes differ from ``files``
    (the previous result's): its groups' files rendered again, the others as the previous
    result wrote them.  None: no update, or the state names a file the previous result did not write."""
    if update is None:
        return None
    previous = dict(files)
    result: list[tuple[str, bytes]] = []
    for group, names in update.files.items():
        if group in update.groups:
            result += update.groups[group].files
        elif all(name in previous for name in names):
            result += [(name, previous[name]) for name in names]
        else:
            return None
    return result, tuple((name, data) for name, data in result if previous.get(name) != data)


def previous(scan_cache: ScanCache, inputs: Inputs, layout: WalkedTree) -> Rerun | None:
    """The result stored for these very inputs, if its output files are
    still the ones written; else, when no result was stored for them, the
    previous one brought up to date (:func:`_update_previous`).  None:
    compute everything."""
    ctx = inputs.ctx
    hit = scan_cache.get_output(ctx.dirname, inputs.digest)
    if hit is None:
        return _update_previous(scan_cache, inputs, layout)
    files = _outputs_unchanged(ctx.outdir, hit.identities)
    if files is None:
        return None
    return Rerun(tuple(files), hit.messages, hit.notes, hit.verbose_lines, identities=tuple(hit.identities))


def capture(scan_cache: ScanCache, inputs: Inputs, res: Resolution, wi: WriterInput, groups: Rendered,
            before: Sequence[str], names: Sequence[str], shown: Sequence[str], unreadable: Sequence[int]) -> None:
    """Store the state that brings a full computation's result up to date
    (:func:`.incremental.capture`), made and written by the cache's writer
    thread while the caller writes the files (their fsyncs wait on the disk)."""
    from . import incremental  # (start-up cost: see above)

    scan_cache.put_output_state(inputs.ctx.dirname, inputs.digest, functools.partial(
        incremental.capture, res, wi.columns(), groups, list(before), names, shown, unreadable))


def record(scan_cache: ScanCache, inputs: Inputs, files: Sequence[tuple[str, bytes]], messages: Sequence[str],
           verbose_lines: Sequence[str], notes: Sequence[str],
           kept: Sequence[OutputIdentity] = ()) -> list[OutputIdentity] | None:
    """Store a result whose ``files`` were just written (their identities read back, and returned;
    None: one could not be read back, nothing stored).  ``kept``: the identities of files that were
    not written, as checked before: each file that still has its identity keeps its CRC (not read again)."""
    written = _output_identities(inputs.ctx.outdir, [name for name, _ in files], kept)
    if written is not None:
        scan_cache.put_output(inputs.ctx.dirname, inputs.digest, inputs.basis, inputs.files,
                              StoredOutput(tuple(written), tuple(messages), tuple(verbose_lines), tuple(notes)))
    return written


def noted(scan_cache: ScanCache, notes: Sequence[str]) -> tuple[str, ...]:
    """``notes``, after the cache's own problem if it had one (as a full computation says it)."""
    return (f"NOTE: {scan_cache.problem}", *notes) if scan_cache.problem else tuple(notes)


def _output_identities(outdir: str, names: list[str],
                       kept: Sequence[OutputIdentity] = ()) -> list[OutputIdentity] | None:
    """The identity of each output file as written (read back: ~1 MB for
    1,100 modules, 0.3 ms of CRC-32), or None if one cannot be read.  ``kept``: see :func:`record`."""
    before = {ident.name: ident for ident in kept}
    out = []
    for name in names:
        was = before.get(name)
        if was is not None:
            try:
                st = os.lstat(os.path.join(outdir, name))
            except OSError:
                return None
            if identity(st) == tuple(was)[1:6]:
                out.append(was)
                continue
        got = output_identity(outdir, name)
        if got is None:
            return None
        out.append(OutputIdentity(*got[0]))
    return out


def _outputs_unchanged(outdir: str, identities: Sequence[OutputIdentity],
                       settled: Sequence[tuple[object, ...]] | None = None) -> list[tuple[str, bytes]] | None:
    """The output files, if every one is still the very file an earlier run
    wrote, else None.  Each is replaced by a rename, so a rewrite by any tool
    gives a new inode; one edited in place keeps its inode, and may keep its
    size and get its mtime back (``touch -r``), but never its ctime (the
    kernel sets it on every change, and nothing lets a user set it) -- and
    the CRC of its bytes, which are read anyway, catches an edit made within
    the same tick of the ctime clock.  ``settled``: a settled stamp's outputs
    (:func:`.stamp.replay`); when they are these, their identities alone are compared."""
    files = []
    crc = settled is None or [tuple(ident) for ident in identities] != list(settled)
    for ident in identities:
        got = output_identity(outdir, ident.name, crc)
        if got is None or (got[0] != tuple(ident) if crc else got[0][:6] != tuple(ident)[:6]):
            return None
        files.append((ident.name, got[1]))
    return files


def _update_previous(scan_cache: ScanCache, inputs: Inputs, layout: WalkedTree) -> Rerun | None:
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
      and only the files whose bytes change are to be written.
    """
    ctx = inputs.ctx
    prev = scan_cache.get_previous_output(ctx.dirname)
    if prev is None or prev.basis != inputs.basis or prev.files is None:
        return None
    before = prev.files.stats
    stats = inputs.files.stats
    state: State | None = None
    remap: list[int | None] | None = None
    was_at: list[int | None]
    if prev.files.paths == inputs.files.paths:  # the same module array
        if len(before) != len(stats):
            return None
        was_at = list(range(len(before)))
    else:  # modules added or removed: map the previous array onto this one
        if ctx.verbose or ctx.warn:  # what the state does not keep
            return None
        from . import incremental  # (start-up cost: see above)

        state = incremental.load(scan_cache.get_output_state(ctx.dirname, prev.digest))
        if state is None:
            return None
        mapped = _map_arrays(state, layout, len(before))
        if mapped is None:
            return None
        remap, was_at = mapped
    # (cache.FEW is read at each call, so that one change of it holds for both)
    changed: list[int] = []  # modules of this array that are new or whose file changed
    for j, i in enumerate(was_at):
        if i is None or before[i] != stats[j]:
            if stats[j] is None or (i is not None and before[i] is None) or len(changed) == cache.FEW:
                return None
            changed.append(j)
    if not changed and remap is None:  # the same inputs, but the outputs were not the files written
        return None
    if remap is not None and len(changed) + remap.count(None) > cache.FEW:
        return None
    stored = prev.output
    files = _outputs_unchanged(ctx.outdir, stored.identities)
    if files is None:
        return None
    items = [(layout.files[j].path, layout.files[j].shown) for j in changed]
    keys = [inputs.keys[j] for j in changed]
    # the records the previous result was computed from, before the new ones replace them
    old_keys: list[tuple[Key | None, str]] = []
    for j, key, (_path, shown) in zip(changed, keys, items):
        i = was_at[j]
        was = None if i is None else before[i]
        old_keys.append((None if key is None or was is None else Key(key.path, *was), shown))
    cached = scan_cache.get_many(old_keys)
    from ..read.pool import read_modules  # (start-up cost: see above)

    new = read_modules(items, 1, None, scan_cache, keys)
    old: list[Module] = []
    for j, o, m in zip(changed, cached, new):
        if was_at[j] is None:  # added: a change from an empty module
            old.append(Module(m.name, m.path))
        elif o is None:
            return None
        else:
            old.append(o)
    if remap is None and all(depmod_view(a) == depmod_view(b) for a, b in zip(old, new)):
        scan_cache.renew_output(ctx.dirname, prev.digest, inputs.digest, inputs.files, stored)
        return Rerun(tuple(files), stored.messages, stored.notes, stored.verbose_lines,
                     identities=tuple(stored.identities))
    if ctx.verbose or ctx.warn:
        return None
    from . import incremental  # (start-up cost: see above)

    if state is None:
        state = incremental.load(scan_cache.get_output_state(ctx.dirname, prev.digest))
        if state is None:
            return None
    skip = set(changed)

    def entry(i: int) -> tuple[Key | None, str]:
        return None if i in skip else inputs.keys[i], layout.files[i].shown

    update = incremental.update(
        state, [fsencode(mf.name) for mf in layout.files], [mf.shown for mf in layout.files],
        [incremental.Change(j, a, b) for j, a, b in zip(changed, old, new)],
        _importers(scan_cache, len(layout.files), entry, ctx),
        remap=remap, dirname=ctx.dirname, prefix=ctx.prefix, warn_dups=ctx.warn_dups, kmod=ctx.kmod)
    got = _updated_files(update, files)
    if update is None or got is None:
        return None
    result, rewrite = got
    # the state first (its write overlaps the files' fsyncs); the result
    # stored after it with the same digest is the one it belongs to
    scan_cache.put_output_state(ctx.dirname, inputs.digest, update.state)
    return Rerun(tuple(result), tuple(update.messages), stored.notes, (), rewrite, stored=False)


def _importers(scan_cache: ScanCache, size: int, entry: Callable[[int], tuple[Key | None, str]],
               ctx: Context) -> Importers:
    """:func:`.incremental.update`'s ``importers``, from the cached records of the module array
    (``size`` modules; ``entry(i)``: module ``i``'s key and shown path, a None key for the changed
    modules: left out), the keys made only for the modules asked about."""
    from . import incremental  # (start-up cost: see above)

    def importers(symbols: set[str], among: set[int] | None) -> dict[int, Module] | None:
        needles = [name.encode("utf-8", "surrogatepass") for name in symbols]
        where = range(size) if among is None else sorted(among)
        items = [entry(i) for i in where]
        if among is not None:  # (only these records read: a few, not the whole tree's)
            where = [i for i, (key, _shown) in zip(where, items) if key is not None]
            items = [item for item in items if item[0] is not None]
        got = scan_cache.get_holding(items, needles)
        if got is None:
            return None
        return {where[k]: m for k, m in got.items() if incremental.importing(m, symbols, ctx.prefix)}

    return importers


def known_previous(scan_cache: ScanCache, ctx: Context, known: Known,
                   excludes: frozenset[str] = frozenset()) -> tuple[Rerun, Inputs] | None:
    """The stamp's result brought up to date after the module files it read again changed, or
    module files were added or removed (``known``, :func:`moddeps.depmod.stamp.replay`), without
    the tree's walk: the stamp proved every other input unchanged, so the module array (but for
    the files added or removed: :func:`_relaid`) and the inputs other than the module files are
    those of the result it records, which must be the last one stored (its digest), and the
    other modules' identities are the stamp's.  Then as :func:`_update_previous`, whose checks
    this keeps; the records read are stored.  ``excludes``: depmod.d's ``exclude`` names.
    None: go the usual way."""
    if ctx.verbose or ctx.warn or ctx.dry_run:  # what the state does not keep
        return None
    prev = scan_cache.get_previous_output(ctx.dirname)
    if prev is None or prev.digest != known.digest or prev.files is None or ctx.outdir != known.outdir:
        return None
    from . import incremental  # (start-up cost: see above)

    state = incremental.load(scan_cache.get_output_state(ctx.dirname, prev.digest))
    if state is None or state.modules != len(known.modules) or len(prev.files.stats) != len(known.modules):
        return None
    try:
        names, shown = state.layout
    except (ValueError, TypeError):
        return None
    stats: list[FileStat | None] = list(prev.files.stats)
    if stats != [want for _path, want in known.modules]:  # (the stamp's run stored both)
        return None
    changes = []
    fresh = []
    for i, now, old, new, same in known.changed:
        path, _want, shown_now = known.module(i)
        if shown[i] != shown_now:
            return None
        stats[i] = now
        fresh.append((Key(path, *now), shown_now, new))
        if not same:
            changes.append(incremental.Change(i, old, new))
    files = _outputs_unchanged(ctx.outdir, prev.output.identities, known.settled)
    if files is None:
        return None
    paths = [path for path, _want in known.modules]
    remap: list[int | None] | None = None
    paths_digest = prev.files.paths
    if known.added or known.removed:  # (the state's array is the stamp's: the same digest)
        laid = _relaid(known, names, shown, paths, ctx, excludes)
        if laid is None:
            return None
        remap, names, shown, paths = laid.remap, laid.names, laid.shown, laid.paths
        from ..read.pool import read_module_bounded  # (start-up cost: see above)

        added = iter(known.added)
        new_stats: list[FileStat | None] = []
        moved = []
        for c in changes:
            idx = remap[c.idx]
            if idx is None:
                return None
            moved.append(incremental.Change(idx, c.old, c.new))
        changes = moved
        for j, was in enumerate(laid.was_at):
            if was is not None:
                new_stats.append(stats[was])
                continue
            path, shown_now, now = next(added)
            new = read_module_bounded(path, shown_now)
            if new.name != names[j] or new.error is not None:
                return None
            new_stats.append(now)
            fresh.append((Key(path, *now), shown_now, new))
            changes.append(incremental.Change(j, Module(new.name, new.path), new))
        stats = new_stats
        paths_digest = module_paths_digest(shown, paths)
        array = []
        for path, stat, shown_j in zip(paths, stats, shown):
            if stat is None:
                return None
            array.append((path, stat, shown_j))
        known.array = array
    module_files = ModuleFiles.of(paths_digest, stats)
    # (no keys: what they are for -- the walk's reads, the stamp of a walk -- does not happen here)
    inputs = Inputs(ctx, inputs_digest(prev.basis, module_files.encoded), prev.basis, module_files, ())
    skip = {key.path for key, _shown, _m in fresh}

    def entry(i: int) -> tuple[Key | None, str]:
        path, want = paths[i], stats[i]
        return None if path in skip or want is None else Key(path, *want), shown[i]

    update = incremental.update(
        state, [fsencode(name) for name in names], shown, changes, _importers(scan_cache, len(paths), entry, ctx),
        remap=remap, dirname=ctx.dirname, prefix=ctx.prefix, warn_dups=ctx.warn_dups, kmod=ctx.kmod)
    got = _updated_files(update, files)
    if update is None or got is None:
        return None
    result, rewrite = got
    scan_cache.put_many(entry for entry in fresh if entry[2].error is None)  # (as a scan stores what it read)
    scan_cache.put_output_state(ctx.dirname, inputs.digest, update.state)
    stored = prev.output
    rewritten = {name for name, _data in rewrite}
    kept = tuple(ident for ident in stored.identities if ident.name not in rewritten)
    again = Rerun(tuple(result), tuple(update.messages), stored.notes, (), rewrite, stored=False, identities=kept)
    return again, inputs


def module_paths_digest(shown: Sequence[str], paths: Sequence[str]) -> bytes:
    """The digest of the module array's paths, as :func:`output_inputs` makes it (``(shown, path)`` pairs)."""
    return blake2b(marshal.dumps(list(zip(shown, paths)), 2), digest_size=PATHS_DIGEST_SIZE).digest()


@dataclass(frozen=True, slots=True)
class _Relaid:
    """The module array after module files were added or removed (:func:`_relaid`)."""

    remap: list[int | None]  # the new index of each module of the stamp's array (None: removed)
    was_at: list[int | None]  # the stamp's index of each module now (None: added)
    names: list[str]
    shown: list[str]
    paths: list[str]


def _relaid(known: Known, names: list[str], shown: list[str], paths: list[str], ctx: Context,
            excludes: frozenset[str]) -> _Relaid | None:
    """The module array after the stamp's module files added and removed (``known``), as a walk
    would lay it out (:func:`moddeps.read.order.module_array`), from the stamp's array (``names``,
    ``shown``, ``paths``): (new index of each module of the stamp's array or None: removed,
    previous index of each module now or None: added, names, shown paths, paths).  None when
    the walk's own rules could decide otherwise: a file added that depmod.d excludes, one with
    the name of another module (a duplicate, or a module moved: which file wins is the walk's
    to say) or one modules.order places (the order of the modules it does not place is kmod's
    hash order of their names, after those it places; only that tail is laid out again)."""
    from ..kmodhash import hash_order
    from ..model import modname_from_path
    from ..read.order import order_lines
    from ..read.walk import ModuleFile

    removed = set(known.removed)
    taken = {name for i, name in enumerate(names) if i not in removed}
    new_files: list[ModuleFile] = []
    for path, shown_now, _now in known.added:
        base = path.rpartition("/")[2]
        name = modname_from_path(base)
        if base in excludes or name in taken:
            return None
        taken.add(name)
        new_files.append(ModuleFile(name, path, None if shown_now == path else shown_now))
    order_text = read_optional(f"{ctx.dirname}/modules.order")  # (the stamp proved it the same file)
    listed: set[bytes] = set()
    if order_text is not None:
        lines, corrupted = order_lines(order_text)
        if not corrupted:  # (else the whole array is in hash order)
            listed = {line for line in lines if line is not None}

    def placed(mf: ModuleFile) -> bool:
        unc = mf.uncrelpath
        return unc is not None and fsencode(unc) in listed

    if any(placed(mf) for mf in new_files):
        return None
    kept = [i for i in range(len(names)) if i not in removed]
    tail = len(kept)
    while tail and not placed(ModuleFile(names[kept[tail - 1]], paths[kept[tail - 1]],
                                         None if shown[kept[tail - 1]] == paths[kept[tail - 1]]
                                         else shown[kept[tail - 1]])):
        tail -= 1
    old_keys = [fsencode(names[i]) for i in kept[tail:]]
    if hash_order(old_keys, 512) != old_keys:  # (not the array this layout makes: leave it to the walk)
        return None
    entries: dict[bytes, tuple[int | None, str, str, str]] = {
        key: (i, names[i], shown[i], paths[i]) for key, i in zip(old_keys, kept[tail:])}
    for mf in new_files:
        entries[fsencode(mf.name)] = (None, mf.name, mf.shown, mf.path)
    array: list[tuple[int | None, str, str, str]] = [(i, names[i], shown[i], paths[i]) for i in kept[:tail]]
    array += [entries[key] for key in hash_order(list(entries), 512)]
    remap: list[int | None] = [None] * len(names)
    for j, (was, *_rest) in enumerate(array):
        if was is not None:
            remap[was] = j
    return _Relaid(remap, [e[0] for e in array], [e[1] for e in array], [e[2] for e in array], [e[3] for e in array])


def _map_arrays(state: State, layout: WalkedTree, size: int) -> tuple[list[int | None], list[int | None]] | None:
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
