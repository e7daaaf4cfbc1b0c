"""A depmod rerun on unchanged inputs, answered before the rest of moddeps is imported.

A package upgrade runs ``depmod`` again and again on trees that did not
change.  The output cache (:mod:`.rerun`) answers those without reading a
module, but only once the configuration is parsed, the tree walked and the
inputs digested -- most of a warm run's cost is importing the code that does
that.  A *stamp* is the shortcut in front of it: after a run has written (or
confirmed) its files, it records the identity (:mod:`moddeps.read.fileid`:
size, mtime, ctime, inode, device) of everything the result was computed
from, each taken *before* it was read:

* every directory the walk entered (a name added, removed or renamed in a
  directory changes its mtime and ctime), with a digest of the names it found
  there (:func:`walked_dirs`), and each external directory that was missing;
* every module file of the array (with its path as shown), and each dangling
  symlink (it must stay dangling);
* every file and directory depmod.d, the kmod release's package databases,
  ``modules.order``, ``modules.builtin``, ``modules.builtin.modinfo`` and
  ``-E``/``-F`` could have been read from (:func:`survey`: a superset);
* the output files as written, with a CRC-32 of their bytes (as :mod:`.rerun` keeps them);

and the lines the run said on stderr, and the output cache's digest of the
result's inputs.  The next ``moddeps depmod`` with the same options,
environment and working directory (:func:`key`) stats those paths again
(~5,000 for a 4,000-module tree) and, when every identity is the same and
every output file is still the one written, says the same lines and exits:
nothing else of moddeps is imported (:mod:`moddeps.cli.depmod_argv`).

Only these may differ (:func:`replay`): a few module files, read again and
compared with the records the stamp's run read (the scan cache, by the
identities the stamp holds) -- the same to depmod, the stamp is written again
for them and the lines said; otherwise a :class:`Known` hands them to the run,
which brings the result up to date without a walk (:mod:`.rerun`) --,
walked directories whose names are the same, and walked directories whose
names changed only by module files added or removed (:func:`_relayout`: a
:class:`Known` hands those to the run too, whose :func:`.rerun.known_previous`
lays out the new module array without a walk, or goes the usual way when a
walk's own rules could decide otherwise).  Anything else different,
missing or unreadable is a miss, and the run goes the usual way (which
writes a new stamp).

Stamps are files of their own beside the scan cache
(``$MODDEPS_CACHE.stamps/KEY``), written atomically, never trusted beyond
their checks.  A run whose inputs changed within :data:`RACY_NS` of its
start writes none: a change made in the same tick of the filesystem's
timestamp clock as the stat that recorded it would go unseen (git's "racy"
entries), so such a stamp waits for a run on a settled tree -- except for
module files and walked directories, which are then recorded as racy: read
or listed again by every replay, their identities not trusted.  Runs with
``-n``, ``-v``, ``-A``, module files, kmod 30's deprecated options or a cache
problem write none either.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import time

from ..native import crc32
from ..read.fileid import FileStat, blake2b, file_stat, identity, tree_names

TYPE_CHECKING = False  # (typing and collections.abc cost a stamp's check ~4 ms: see moddeps.cli)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

    from ..read.cache import ScanCache

#: Bump when what a stamp holds, or what it is keyed by, changes.
STAMP_SCHEMA = 2  # 2: module files and walked directories apart, with what replays read them again by

#: The environment a result depends on (the kmod release, the read deadline, the pure-Python reader).
ENVIRONMENT = ("MODDEPS_KMOD_VERSION", "MODDEPS_READ_TIMEOUT", "MODDEPS_PURE")

#: The fields of :class:`moddeps.depmod.run.DepmodOptions` a result depends on, with their
#: defaults (``jobs``, ``fsync`` and ``cache`` do not change it).
FIELDS = (
    ("version", None), ("files", ()), ("all", False), ("quick", False), ("basedir", ""), ("outdir", None),
    ("moduledir", "lib/modules"), ("config", ()), ("errsyms", False), ("symvers", None), ("system_map", None),
    ("dry_run", False), ("prefix", None), ("verbose", False), ("warn_dups", False), ("kmod_version", None),
    ("deprecated", ()),
)

#: A stamp is not written when an input changed this close to the run's start (or after it).
RACY_NS = 2_000_000_000

#: A walked directory: (path, its identity, the digest of the names the walk found in it
#: (:func:`walk_names`) or None: a directory whose identity changed is then a miss).
Walked = tuple[str, "FileStat", "bytes | None"]
#: A module file of the array: (path, its identity, its path as shown).
ModuleId = tuple[str, "FileStat", str]
#: One checked path: (path, what it must be).  What: its identity (:mod:`moddeps.read.fileid`);
#: None: it cannot be stat'ed (missing, a dangling symlink); a bool: it is a directory, or not;
#: a frozenset: a directory holding these :func:`~moddeps.read.fileid.tree_names`.
Check = tuple[str, "FileStat | frozenset[str] | bool | None"]
#: An output file as written: (name, size, mtime_ns, ctime_ns, inode, device, CRC-32 of its bytes).
OutputId = tuple[str, int, int, int, int, int, int]


def wanted(fields: Mapping[str, object]) -> bool:
    """Whether a run with these options may be answered by, and write, a stamp."""
    return bool(fields.get("cache")) and not any(
        fields.get(name) for name in ("dry_run", "verbose", "quick", "files", "deprecated"))


def key(fields: Mapping[str, object]) -> str:
    """The name of the stamp for these options (``version`` as given: the running kernel's
    release is taken here), the environment and, if a path is relative, the working directory."""
    from .. import __version__

    values = [fields.get(name, default) for name, default in FIELDS]
    if values[0] is None:
        values[0] = os.uname().release
    paths = [fields.get(name) for name in ("basedir", "outdir", "symvers", "system_map")]
    paths += list(fields.get("config") or ())  # type: ignore[call-overload]
    cwd = os.getcwd() if any(isinstance(p, str) and p and not p.startswith("/") for p in paths) else None
    env = [os.environ.get(name) for name in ENVIRONMENT]
    text = repr((STAMP_SCHEMA, __version__, values, cwd, env)).encode("utf-8", "surrogateescape")
    return _digest(text)


def _digest(data: bytes) -> str:
    return blake2b(data, digest_size=20).hexdigest()


def path_for(cache: str, name: str) -> str:
    return os.path.join(f"{cache}.stamps", name)


def changed_identities(paths: Sequence[str], wants: Sequence[FileStat | None]) -> list[int]:
    """The indexes of ``paths`` whose identity (:func:`~moddeps.read.fileid.file_stat`) is not
    ``wants``' (None: never theirs; a path that cannot be stat'ed is changed).  C:
    ``_elfscan.stat_changed``: the stat calls split over two threads and compared there, no
    identity made of a file that kept it (a replay of Debian 12's amd64 tree takes ~4,900 of
    them, ~3.5 us each of system call here)."""
    from ..native import load, twin  # (here: a stamp's check imports what it uses, when it uses it)

    return twin(load("_elfscan"), lambda c: c.stat_changed(paths, wants, True),
                lambda: [i for i, (p, want) in enumerate(zip(paths, wants)) if want is None or file_stat(p) != want])


def replay(cache: str, name: str, known: bool = False, sized: Callable[[int], object] | None = None
           ) -> list[str] | Known | None:
    """The stderr lines of the run a valid stamp records, or None (no stamp, or something changed).

    Module files and walked directories are checked by identity first.  A
    module file whose identity changed (touched, rebuilt, reinstalled), or that
    was racy when the stamp was written, is read again (:func:`_reread`):
    when what depmod reads of it is what the stamp's run read (its record in
    the scan cache, found by the identity the stamp holds), the outputs are the
    same bytes; the stamp is then written again with the identities taken now,
    the new records stored and the stored result renewed for them (:func:`_renew`).
    A directory whose identity changed (a file replaced by a rename) passes when it
    holds the same names as the walk found there (:func:`walk_names`).  At most
    :data:`FEW_READ` modules are read; more is a miss.  ``known``: when all that
    differs is what depmod reads of such module files, a :class:`Known` (the caller
    brings the result up to date from it) instead of None.

    The output files are checked by identity and, until they are *settled*, by a CRC-32 of
    their bytes too (~5 MB for a 4,000-module tree, 5 ms): an edit in place made within the
    same tick of the ctime clock as depmod's own write keeps every identity but the bytes.
    The first replay later than :data:`RACY_NS` after that write, its CRCs right, marks the
    stamp settled: any edit since then has a later ctime, which the identity shows.  ``sized``: told
    the number of module files the stamp holds when module files are to be read again (the
    command's :func:`moddeps.process.quicker_heap`; a rerun answered by identities alone is not
    worth it)."""
    started = time.time_ns()
    try:
        with open(path_for(cache, name), "rb") as f:
            data = f.read()
        body = memoryview(data)[4:]
        if len(data) < 4 or int.from_bytes(data[:4], "little") != crc32(body):
            return None  # damaged (a check dropped would be worse than no stamp)
        got = marshal.loads(body)
        schema, stamped, dirname, outdir, checks, outputs, lines, settled, walked, modules, shown, racy_at, digest = got
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if schema != STAMP_SCHEMA or stamped != name:
        return None
    stat, isdir = os.stat, os.path.isdir
    reread: list[tuple[int, FileStat]] = []  # the module files to read again: index, identity now
    moved: list[tuple[int, FileStat, bytes]] = []  # the directories that passed by their names: index, identity now
    relisted: list[tuple[int, FileStat, frozenset[str]]] = []  # those whose names changed: index, identity, names
    try:
        for path, want in checks:
            if want is None or type(want) is tuple:
                try:
                    st = stat(path)
                except OSError:
                    if want is None:
                        continue
                    return None
                if want is None or identity(st) != want:
                    return None
            elif type(want) is bool:
                if isdir(path) is not want:
                    return None
            elif tree_names(path) != want:
                return None
        racy = started - RACY_NS
        # the identities of every walked directory, then of every module file (before anything is read)
        for i in changed_identities([path for path, _want, _names in walked], [want for _path, want, _names in walked]):
            path, want, names = walked[i]
            now = identity(stat(path))  # (its OSError: a miss)
            if want is None or now != want:
                if names is None:
                    return None
                listed = tree_names(path) - SKIPPED_NAMES  # (listed after its identity was taken)
                if names_digest(listed) != names:
                    if not known or digest is None:
                        return None
                    relisted.append((i, now, listed))  # (module files added or removed? see _relayout)
                elif max(now[1], now[2]) < racy:  # recorded again once settled (until then: by its names)
                    moved.append((i, now, names))
        gone: list[int] = []  # module files missing (removed from a directory relisted)
        paths, wants = zip(*modules) if modules else ((), ())
        for i in changed_identities(paths, wants):
            path, want = modules[i]
            try:
                now = identity(stat(path))  # (taken again: the one kept, or which OSError it was)
            except FileNotFoundError:
                if not relisted:
                    return None
                gone.append(i)
                continue
            if now != want:
                if len(reread) == FEW_READ:
                    return None
                reread.append((i, now))
        if racy_at:
            again = {i for i, _now in reread} | set(gone)
            for i in racy_at:
                if i not in again:
                    if len(reread) == FEW_READ:
                        return None
                    reread.append((i, modules[i][1]))
        stamp = Known(cache, name, started, dirname, outdir, checks, walked, modules, shown, racy_at, digest, moved)
        if settled:
            stamp.settled = [tuple(ident) for ident in outputs]
        if relisted:
            if not _relayout(stamp, relisted, gone, checks, FEW_READ - len(reread)):
                return None
            from ..read.cache import ScanCache

            if sized is not None:
                sized(len(modules))
            scan_cache = ScanCache(cache)
            try:
                changed = _reread(stamp, reread, scan_cache) if reread else []
                if changed is None:
                    return None
                stamp.changed = changed
            except BaseException:
                scan_cache.close()
                raise
            stamp.scan_cache = scan_cache  # (handed over with it, open; the outputs checked by the run)
            return stamp
        if reread:
            # (the module files first: when what depmod reads of one changed, the outputs are checked
            # by the run that brings them up to date, after it took the output directory's lock)
            from ..read.cache import ScanCache

            if sized is not None:
                sized(len(modules))
            scan_cache = ScanCache(cache)  # (one connection: closing one costs a WAL checkpoint)
            try:
                changed = _reread(stamp, reread, scan_cache)
                if changed is None:
                    return None
                if not all(same for *_rest, same in changed):
                    stamp.changed = changed
                    if not known or digest is None:
                        return None
                    stamp.scan_cache = scan_cache  # (handed over with it, open)
                    return stamp
                if not _outputs_hold(outdir, outputs, settled):
                    return None
                # the same: the new identities recorded once their records are stored and the result
                # renewed for them -- once settled: until then (a file replaced just before the run)
                # the stamp keeps the old one, so every replay reads it again, and writes nothing
                stamp.changed = [c for c in changed if c[1] != modules[c[0]][1] and max(c[1][1], c[1][2]) < racy]
                if stamp.changed:
                    renewed = _renew(stamp, scan_cache)
                    if renewed is None:
                        stamp.changed = []
                    else:
                        stamp.digest = digest = renewed
            finally:
                if stamp.scan_cache is None:
                    scan_cache.close()
            stamp.changed += [c for c in changed if c[1] == modules[c[0]][1] and max(c[1][1], c[1][2]) < racy]
        elif not _outputs_hold(outdir, outputs, settled):
            return None
        settles = not settled and bool(outputs) and (
            time.time_ns() - RACY_NS > max(max(ident[2], ident[3]) for ident in outputs))
        if moved or settles or stamp.changed:
            stamp.write(outputs, lines, digest, settled or settles)
    except (OSError, TypeError, ValueError, IndexError):  # unlistable, or not a stamp this version wrote
        return None
    return list(lines)


def _outputs_hold(outdir: str, outputs: Sequence[OutputId], settled: bool) -> bool:
    """Whether every output file is still the one the stamp's run wrote: by identity once the stamp
    is settled, by identity and CRC-32 until then (:func:`replay`).  OSError: one is missing."""
    if settled:
        return all(identity(os.lstat(os.path.join(outdir, ident[0]))) == tuple(ident[1:6]) for ident in outputs)
    for ident in outputs:
        got = output_identity(outdir, ident[0])
        if got is None or got[0] != ident:
            return False
    return True


class Known:
    """A stamp all of whose inputs hold, or hold but a few module files read again (``changed``) and
    directories that passed by their names (``moved``).  When what depmod reads of one of those files
    changed, what :func:`moddeps.depmod.run.run` brings the stamp's result up to date from, without
    walking the tree or looking at the other modules again; the stamp :meth:`write` then writes."""

    __slots__ = ("cache", "name", "started_ns", "dirname", "outdir", "checks", "walked", "modules", "shown",
                 "racy_at", "digest", "moved", "changed", "scan_cache", "added", "removed", "array", "settled")

    def __init__(self, cache: str, name: str, started_ns: int, dirname: str, outdir: str, checks: list[Check],
                 walked: list[tuple[str, FileStat | None, bytes | None]], modules: list[tuple[str, FileStat]],
                 shown: list[str | None], racy_at: list[int], digest: bytes | None,
                 moved: list[tuple[int, FileStat, bytes]]):
        self.cache, self.name, self.started_ns, self.dirname, self.outdir = cache, name, started_ns, dirname, outdir
        self.checks, self.walked, self.digest = checks, walked, digest
        #: the module array's files (path, identity), each one's path as shown where it is not
        #: the path under ``dirname`` (None), the indexes of those recorded as racy
        self.modules, self.shown, self.racy_at = modules, shown, racy_at
        #: the directories that passed by their names, or whose names changed by module files
        #: added or removed: (index, identity now, digest of the names now); the module files
        #: read again (:data:`Reread`)
        self.moved: list[tuple[int, FileStat, bytes]] = moved
        self.changed: list[Reread] = []
        #: module files added (path, path as shown, identity taken before it is read) and the
        #: indexes of those removed (:func:`_relayout`); the run that brings the result up to date
        #: for them sets ``array``: the new module array's files (path, identity, path as shown)
        self.added: list[tuple[str, str, FileStat]] = []
        self.removed: list[int] = []
        self.array: list[tuple[str, FileStat, str]] | None = None
        #: the output files as the stamp holds them, when it is settled (their identities then
        #: prove their bytes: see :func:`replay`), else None
        self.settled: list[tuple[Any, ...]] | None = None
        #: the scan cache the records were read with, still open (see :meth:`take_cache`)
        self.scan_cache: ScanCache | None = None

    def take_cache(self, path: str) -> ScanCache | None:
        """The open scan cache of ``path`` the records were read with (once; the taker closes it), or None."""
        got, self.scan_cache = self.scan_cache, None
        if got is not None and got.path != path:
            got.close()
            return None
        return got

    def module(self, i: int) -> tuple[str, FileStat, str]:
        """The module file of index ``i``: path, identity recorded, path as shown."""
        path, want = self.modules[i]
        return path, want, self.shown[i] or path[len(self.dirname) + 1:]

    def write(self, outputs: Sequence[OutputId], lines: Sequence[str], digest: bytes | None,
              settled: bool = False) -> bool:
        """This stamp with the identities taken now (racy ones as :func:`write` records them), for
        ``outputs`` and ``lines`` and the output cache's ``digest`` of the inputs (None: unknown)."""
        racy = self.started_ns - RACY_NS
        walked = list(self.walked)
        for i, now, names in self.moved:
            path, _want, _names = walked[i]
            walked[i] = (path, None if max(now[1], now[2]) >= racy else now, names)
        modules = list(self.modules)
        racy_at = set(self.racy_at)
        for i, now, *_rest in self.changed:
            modules[i] = (modules[i][0], now)
            if max(now[1], now[2]) >= racy:
                racy_at.add(i)
            else:
                racy_at.discard(i)
        shown = self.shown
        if self.array is not None:  # modules added or removed: the new array's
            was = {path: i for i, (path, _want) in enumerate(modules)}
            under = len(self.dirname) + 1
            new_racy: set[int] = set()
            for j, (path, now, _shown) in enumerate(self.array):
                k = was.get(path)
                if (k is not None and k in racy_at and modules[k][1] == now) or max(now[1], now[2]) >= racy:
                    new_racy.add(j)
            modules = [(path, now) for path, now, _shown in self.array]
            shown = [None if path[under:] == s and path[:under] == f"{self.dirname}/" else s
                     for path, _now, s in self.array]
            racy_at = new_racy
        return _store(path_for(self.cache, self.name), (
            STAMP_SCHEMA, self.name, self.dirname, self.outdir, self.checks, list(outputs), list(lines), settled,
            walked, modules, shown, sorted(racy_at), digest))


def _relayout(stamp: Known, relisted: Sequence[tuple[int, FileStat, frozenset[str]]], gone: Sequence[int],
              checks: Sequence[Check], room: int) -> bool:
    """Whether the walked directories whose names changed (``relisted``: index, identity now, names
    now) changed only by module files added or removed; if so, ``stamp.added``, ``stamp.removed``
    and ``stamp.moved`` say which.  The names the walk found in each directory (its module files,
    the directories it entered, its dangling symlinks, all of which the stamp holds) must give the
    digest recorded; a name that left must be a module file of the array that is gone
    (``gone``), a name that came a regular file (not a symlink) with a module's name whose path
    modules.dep can hold.  At most ``room`` module files added or removed.  Whether a new one is
    excluded by depmod.d, or has the name of another module, the run judges (:mod:`.rerun`)."""
    where = {stamp.walked[i][0]: i for i, _now, _names in relisted}
    found: dict[str, dict[str, int | None]] = {path: {} for path in where}  # name -> module index (None: other)
    for i, (path, _want) in enumerate(stamp.modules):
        parent, _slash, base = path.rpartition("/")
        got = found.get(parent)
        if got is not None:
            got[base] = i
    for path, *_rest in stamp.walked:
        parent, _slash, base = path.rpartition("/")
        got = found.get(parent)
        if got is not None:
            got[base] = None
    for path, want in checks:
        if want is None:  # (a dangling symlink, or a missing external directory)
            parent, _slash, base = path.rpartition("/")
            got = found.get(parent)
            if got is not None:
                got[base] = None
    removed: list[int] = []
    added: list[tuple[str, str, FileStat]] = []
    under = f"{stamp.dirname}/"
    for i, now, listed in relisted:
        path, _recorded, names = stamp.walked[i]
        had = found[path]
        if names_digest(had) != names:
            return False
        for base in had.keys() - listed:
            index = had[base]
            if index is None:
                return False
            removed.append(index)
        for base in listed - had.keys():
            full = f"{path}/{base}"
            if not _module_name(base) or any(c in full for c in "\n\t\r :"):
                return False
            try:
                st = os.lstat(full)
            except OSError:
                return False
            if (st.st_mode & 0o170000) != 0o100000:  # not a regular file (a symlink, a directory...)
                return False
            added.append((full, full[len(under):] if full.startswith(under) else full, identity(st)))
        stamp.moved.append((i, now, names_digest(listed)))
    if sorted(removed) != sorted(gone) or len(added) + len(removed) > room or not (added or removed):
        return False
    stamp.added, stamp.removed = added, sorted(removed)
    return True


def _module_name(name: str) -> bool:
    """kmod's test of a module file's name (:func:`moddeps.read.walk.is_module_filename`, not imported: start-up)."""
    return any(name.endswith(suffix) and len(name) > len(suffix) for suffix in _SUFFIXES)


#: kmod's module file suffixes (moddeps.kmodnames.MODULE_SUFFIXES; tests/test_depmod_stamp.py checks it)
_SUFFIXES = (".ko", ".ko.gz", ".ko.xz", ".ko.zst")


#: A module file read again: (index in the stamp's array, identity now, the record the stamp's
#: run read, the record now, whether what depmod reads of both is the same).
Reread = tuple[int, "FileStat", "Any", "Any", bool]

#: The most module files a replay reads again before it gives up (a full run then).
FEW_READ = 16

#: The module files :func:`replay` read again, in order (tests count them: the fast path taken).
reread_log: list[str] = []


def _reread(stamp: Known, reread: Sequence[tuple[int, FileStat]], scan_cache: ScanCache) -> list[Reread] | None:
    """Each module file's record as the stamp's run read it (in the scan cache under the identity the
    stamp holds: that run read or found it there) and as read again now, as a scan reads it, and
    whether what depmod reads of both is the same.  None: a record is not in the cache."""
    from ..read.cache import Key
    from ..read.pool import read_module_bounded
    from .reads import depmod_view

    if not scan_cache.usable:
        return None
    items = [stamp.module(i) for i, _now in reread]
    old = scan_cache.get_many([(Key(path, *want), shown) for path, want, shown in items])
    out: list[Reread] = []
    for (i, now), (path, _want, shown), was in zip(reread, items, old):
        reread_log.append(path)
        if was is None:
            return None
        new = read_module_bounded(path, shown)
        out.append((i, now, was, new, depmod_view(new) == depmod_view(was)))
    return out


def _renew(stamp: Known, scan_cache: ScanCache) -> bytes | None:
    """After module files were read again and what depmod reads of each is the same: their new
    records stored, the stored result renewed for their identities now; its new digest (None: not renewed)."""
    from ..read.cache import Key, ModuleFiles

    if stamp.digest is None:
        return None
    prev = scan_cache.get_previous_output(stamp.dirname)
    if prev is None or prev.digest != stamp.digest or prev.files is None:
        return None
    stats = list(prev.files.stats)
    if len(stats) != len(stamp.modules):
        return None
    fresh = []
    for i, now, _old, record, _same in stamp.changed:
        path, _want, shown = stamp.module(i)
        if record.error is not None:  # (not stored: a scan stores no unreadable module)
            return None
        stats[i] = now
        fresh.append((Key(path, *now), shown, record))
    files = ModuleFiles.of(prev.files.paths, stats)
    digest = inputs_digest(prev.basis, files.encoded)
    scan_cache.put_many(fresh)
    scan_cache.renew_output(stamp.dirname, prev.digest, digest, files, prev.output)
    return digest if scan_cache.problem is None else None


def inputs_digest(basis: bytes, files: bytes) -> bytes:
    """The output cache's digest of a result's inputs, from its two parts: the digest of the
    inputs other than the module files and the encoded module files (:mod:`.rerun`)."""
    return blake2b(basis + files, digest_size=20).digest()


def write(cache: str, name: str, started_ns: int, dirname: str, outdir: str, checks: Sequence[Check],
          outputs: Sequence[OutputId], lines: Sequence[str], walked: Sequence[Walked] = (),
          modules: Sequence[ModuleId] = (), digest: bytes | None = None) -> bool:
    """Store a stamp, unless an input changed within :data:`RACY_NS` of ``started_ns``; False: not written.

    Racy module files and walked directories do not stop it: such a module file is read again
    by every replay (its record is in the scan cache under the identity recorded), such a
    directory listed again (its names recorded); one with nothing to check by does.
    ``digest``: the output cache's digest of the result's inputs (:class:`Known` needs it)."""
    racy = started_ns - RACY_NS
    if any(type(want) is tuple and max(want[1], want[2]) >= racy for _path, want in checks):
        return False
    dirs: list[tuple[str, FileStat | None, bytes | None]] = []
    for path, want, names in walked:
        if max(want[1], want[2]) >= racy:
            if names is None:
                return False
            dirs.append((path, None, names))
        else:
            dirs.append((path, want, names))
    under = len(dirname) + 1
    return _store(path_for(cache, name), (
        STAMP_SCHEMA, name, dirname, outdir, list(checks), list(outputs), list(lines), False, dirs,
        [(path, want) for path, want, _shown in modules],
        [None if path[under:] == shown and path[:under] == f"{dirname}/" else shown for path, _want, shown in modules],
        [i for i, (_path, want, _shown) in enumerate(modules) if max(want[1], want[2]) >= racy], digest))


def _store(path: str, stamp: tuple[Any, ...]) -> bool:
    """Write a stamp atomically (a temporary renamed over it); False: it could not be written."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = marshal.dumps(stamp, 4)
        with open(tmp, "wb") as f:
            f.write(crc32(data).to_bytes(4, "little") + data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
    return True


# --------------------------------------------------------------------------
# What a run records
# --------------------------------------------------------------------------


def survey(listed: Sequence[str] = (), plain: Sequence[str] = (), directories: Sequence[str] = (),
           packages: Sequence[str] = ()) -> list[Check]:
    """What a run may read besides the tree, taken before it reads it.  ``listed``
    (depmod.d): each path's identity, and if it is a directory each entry's; ``plain``:
    each path's identity; ``directories``: whether each path is a directory (where the
    module directory may be); ``packages`` (pacman's local database): the directory's
    identity and that of each ``kmod-*`` entry and its ``desc``."""
    out: list[Check] = [(path, file_stat(path)) for path in plain]
    out += [(path, os.path.isdir(path)) for path in directories]
    for path in listed:
        out.append((path, file_stat(path)))
        try:
            names = sorted(os.listdir(path))
        except OSError:
            continue
        out += [(f"{path}/{n}", file_stat(f"{path}/{n}")) for n in names]
    for path in packages:
        out.append((path, file_stat(path)))
        try:
            names = sorted(n for n in os.listdir(path) if n.startswith("kmod-"))
        except OSError:
            continue
        for n in names:
            out += [(f"{path}/{n}", file_stat(f"{path}/{n}")), (f"{path}/{n}/desc", file_stat(f"{path}/{n}/desc"))]
    return out


#: The names a walk passes over in every directory (moddeps.read.walk.SKIP_NAMES, but "." and ".."
#: that no listing holds; tests/test_depmod_stamp.py checks it)
SKIPPED_NAMES = frozenset({"build", "source"})


def walk_names(path: str) -> bytes:
    """A digest of the names in directory ``path`` a walk of it could find or pass over
    (:func:`~moddeps.read.fileid.tree_names` but :data:`SKIPPED_NAMES`).  OSError if it cannot be listed."""
    return names_digest(tree_names(path) - SKIPPED_NAMES)


def names_digest(names: Iterable[str]) -> bytes:
    return blake2b("\0".join(sorted(names)).encode("utf-8", "surrogateescape"), digest_size=16).digest()


def walked_dirs(walked: Sequence[tuple[str, FileStat]], found: Sequence[str], with_names: bool) -> list[Walked]:
    """The directories a walk entered (``walked``: each with its identity, taken before it was
    listed) with the digest of the names it found in each: the paths of ``found`` (its module
    files, the directories it entered, its dangling symlinks) directly in it.  A name the
    walk passed over (a duplicate module, an excluded or unsupported entry, a symlink to
    another file) is not among them, so a directory holding one never passes
    :func:`replay`'s check by names: nothing the walk would decide differently passes.
    ``with_names`` False (the tree had duplicate module names, whose winner can depend on the
    order of a directory's entries, which a rename may change): no names."""
    if not with_names:
        return [(path, want, None) for path, want in walked]
    names: dict[str, set[str]] = {path: set() for path, _want in walked}
    for path in found:
        parent, _slash, base = path.rpartition("/")
        got = names.get(parent)
        if got is not None:
            got.add(base)
    return [(path, want, names_digest(names[path])) for path, want in walked]


def output_identity(outdir: str, name: str, crc: bool = True) -> tuple[OutputId, bytes] | None:
    """An output file's identity (with a CRC-32 of its bytes; ``crc`` False: 0 in its place) and
    its bytes, or None (gone, unreadable, or not a regular file)."""
    try:
        fd = os.open(os.path.join(outdir, name), os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (st.st_mode & 0o170000) != 0o100000:  # not a regular file
            return None
        data = os.read(fd, st.st_size + 1)
        # (os.read returns at most 2 GiB at once; an output is never near that)
        if len(data) != st.st_size:
            return None
    except OSError:
        return None
    finally:
        os.close(fd)
    size, mtime, ctime, ino, dev = identity(st)
    return (name, size, mtime, ctime, ino, dev, crc32(data) if crc else 0), data


# --------------------------------------------------------------------------
# Upkeep (moddeps cache info / prune)
# --------------------------------------------------------------------------


def held(cache: str) -> tuple[int, int]:
    """How many stamps there are beside ``cache``, and their bytes."""
    count = size = 0
    try:
        with os.scandir(f"{cache}.stamps") as it:
            for entry in it:
                with contextlib.suppress(OSError):
                    size += entry.stat(follow_symlinks=False).st_size
                    count += 1
    except OSError:
        pass
    return count, size


def prune(cache: str, older_than: float | None = None, now: float | None = None) -> int:
    """Delete the stamps beside ``cache`` last written more than ``older_than`` seconds ago
    (None: every stamp); returns how many.  A stamp deleted costs the next run its shortcut only."""
    limit = None if older_than is None else (time.time() if now is None else now) - older_than
    deleted = 0
    try:
        with os.scandir(f"{cache}.stamps") as it:
            entries = list(it)
    except OSError:
        return 0
    for entry in entries:
        try:
            if limit is None or entry.stat(follow_symlinks=False).st_mtime < limit:
                os.unlink(entry.path)
                deleted += 1
        except OSError:
            continue
    return deleted
