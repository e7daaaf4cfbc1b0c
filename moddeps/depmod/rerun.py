"""A depmod rerun answered from the scan cache: the previous result when
nothing it was computed from changed, or brought up to date."""

from __future__ import annotations

import os
import stat
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..cache import Key, ScanCache
from ..kernelsyms import read_text
from ..scanner import Layout, read_modules, read_optional
from .writer import write_all

if TYPE_CHECKING:
    from .run import DepmodOptions, DepmodResult

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


def _output_inputs(layout: Layout, opts: DepmodOptions, warn: bool, messages: list[str], outdir: str) -> _Inputs:
    """Digests of everything depmod's result depends on, given the layout.

    The module files enter by identity (path, size, mtime, ctime, inode,
    device: the scan cache's key), the other inputs by content; options, the messages
    produced so far (configuration, symbol lists) and what the walk met by value.
    """
    import hashlib
    import marshal

    from .. import __version__
    from ..cache import file_key
    from ..model import READER_SCHEMA

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
    inputs: _Inputs, layout: Layout, scan_cache: ScanCache, opts: DepmodOptions, warn: bool, dirname: str,
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

    from ..cache import FEW
    from ..model import Module, fsencode
    from .reads import depmod_view
    from .run import DepmodResult, _target  # (for this move only: the next commit removes it)

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


def _map_arrays(state: Any, layout: Layout, size: int) -> tuple[list[int | None], list[int | None]] | None:
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
