"""The persistent scan cache (SQLite).

One database, ``$MODDEPS_CACHE`` or ``$XDG_CACHE_HOME/moddeps/scan.sqlite3``
(default ``~/.cache/moddeps/scan.sqlite3``).  A row holds one module as the
reader saw it, keyed by the file's identity -- path, size, mtime (ns), ctime
(ns), inode, device -- and the reader's schema version, so a changed file or a
changed reader never reuses an old record.  The ctime is what a user cannot
set: a module rewritten in place with its size kept and its mtime put back
(``touch -r``, ``os.utime``) still gets a new one -- unless the rewrite falls
within the same tick of a coarse ctime clock as the stat the key was taken
from (since Linux 6.13, filesystems with multigrain timestamps stamp the next
change of a file whose times were just queried with a fine-grained time:
Documentation/filesystems/multigrain-ts.rst).  A record is the module in
the binary format of :mod:`moddeps.read.recordcodec` (about 1.8 KB per module;
4,000 modules are encoded in ~10 ms and decoded, Module objects included,
in ~25 ms by the C codec).  The tables' names carry that format's version and
:data:`LAYOUT`: rows of another format or layout -- such as the marshalled
records of earlier moddeps versions, in ``module_records`` -- are never read.

Seals: SQLite keeps no checksum of its own, so a flipped bit or a zeroed
page inside a record would decode into some other module (a symbol renamed,
a module named after another).  Every row therefore carries a checksum over
its key and its value, verified whenever it is read:

* a module record: CRC-32 of its key (path, size, mtime, ctime, inode,
  device, reader schema, shown path) and its bytes.  CRC-32 catches every
  burst of damage up to 32 bits long, every damage of up to 3 bits in a row
  under 11 KB (most records; the IEEE polynomial's Hamming distance is 4 up
  to 91,607 bits, P. Koopman, "32-bit cyclic redundancy codes for Internet
  applications", DSN 2002), and anything else but once in 2**32.  On the
  1,138 records of Debian 13's cloud tree (1.9 MB) CRC-32 takes 0.5 ms where
  BLAKE2b takes 1.8, and the whole check, keys included, 1.4 ms of a 100 ms
  computation.  No checksum stops someone who may write the database and
  computes a new one: it is there for damage;
* a depmod result (:meth:`ScanCache.put_output`) and its state
  (:meth:`ScanCache.put_output_state`), one row per module directory:
  BLAKE2b (16 bytes) over the directory, the digest of the inputs and the
  value.  A state is stored behind a digest of its bytes, and its seal is
  over that digest and its key, so that :meth:`ScanCache.renew_output`
  re-keys a 1.5 MB state without reading or hashing it again.

A row that fails its seal is not used: a module is read again from its file
(and its record replaced), a result is computed again; the first such
problem is said once (:attr:`ScanCache.problem`, a note on stderr by the
caller) and the cache stays in use.

Safety: WAL journal and a busy timeout let several moddeps processes share
the database; any SQLite problem (an unreadable file, a database damaged
beyond what SQLite reads) disables the cache for the run (said once) and
never changes the output -- the modules are simply read again.
tests/fuzz/test_fuzz_cache.py damages the file (bit flips, zeroed pages,
rows edited, records moved to another key) and compares every run with one
without the cache.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import itertools
import marshal
import os
import sqlite3
import time
import zlib

from .. import process
from ..errors import InputError, OutputError, UsageError
from ..model import READER_SCHEMA, Import, Module
from ..native import crc32, twin
from ..records import dataclass, field
from ..typeshim import NamedTuple
from . import recordcodec
from .cachepath import default_path as default_path
from .fileid import FileStat, blake2b, identity

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    import queue
    import threading
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from typing import Any

class Key(NamedTuple):
    """A module file's identity, the key of its record (:func:`file_key`)."""

    path: str  # absolute
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int  # kept as a signed 64-bit number (see file_key)
    device: int  # likewise

    @property
    def stat(self) -> FileStat:
        """The identity without the path."""
        return (self.size, self.mtime_ns, self.ctime_ns, self.inode, self.device)

#: The layout of the cache's rows: 2 = ctime in the keys and identities, every row sealed.
LAYOUT = 2
#: The table of module records: a new record format or layout is a new table.
RECORDS_TABLE = f"module_records_f{recordcodec.FORMAT}_l{LAYOUT}"
#: The table of depmod results (``outputs``, ``depmod_results_v2``: earlier forms, no longer read).
OUTPUTS_TABLE = "depmod_results_v3"  # v3: the row sealed with its key, ctime and a CRC in the file identities
#: The table of the states that bring a depmod result up to date.
STATES_TABLE = "depmod_states_v4"  # v4: a state stored behind its CRC-32 (v3: its BLAKE2b, 4.5x the time)
#: The bytes a state is stored behind (:func:`_seal`).
STATE_CHECK_SIZE = 4

#: Up to this many modules, :meth:`ScanCache.get_many` looks each one up by
#: its path instead of reading the whole table (a rerun with a few modules changed).
FEW = 64

#: The size of the WAL's file up to which, in the ``moddeps`` command, the caller's commits leave
#: the copy of the WAL into the database to the writer thread's (:meth:`ScanCache.close`): twice
#: ``wal_autocheckpoint``'s 4 MiB; the file is cut back to it once copied (``journal_size_limit``).
QUIET_WAL_MAX = 8 << 20

#: What SQLite may raise besides its own errors: a TEXT value of a damaged
#: database that is not UTF-8, a string Python cannot bind (a lone
#: surrogate), an integer beyond 64 bits.
_DB_ERRORS = (sqlite3.Error, UnicodeError, OverflowError)


def record_seal(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int, device: int, schema: int,
                shown: str, record: bytes) -> int:
    """The seal of a module record row: CRC-32 of its key and its bytes (see the module's docstring).
    marshal (format 2: no back-references) writes the key injectively, and is 5x faster than struct here."""
    return zlib.crc32(record, zlib.crc32(marshal.dumps((path, size, mtime_ns, ctime_ns, inode, device, schema,
                                                        shown), 2)))


def _digest(*parts: bytes) -> bytes:
    h = blake2b(digest_size=16)
    for part in parts:
        h.update(part)
    return h.digest()


def output_seal(dirname: str, digest: bytes, basis: bytes, files: bytes, record: bytes) -> bytes:
    """The seal of a depmod result row: BLAKE2b over its key and every column."""
    return _digest(marshal.dumps((OUTPUTS_TABLE, dirname, digest, basis, len(files), len(record)), 2), files, record)


def _seal(data: bytes) -> bytes:
    """``data`` behind its CRC-32 (little-endian): how a state is stored.  A check against damage,
    as the records' seals: 1.7 MB (Debian 12 amd64) take 0.4 ms, against 1.8 with BLAKE2b, and a
    run that brings a result up to date reads one and writes one."""
    return crc32(data).to_bytes(STATE_CHECK_SIZE, "little") + data


def _unseal(sealed: object) -> bytes | None:
    if not isinstance(sealed, bytes) or len(sealed) < STATE_CHECK_SIZE:
        return None
    data = sealed[STATE_CHECK_SIZE:]
    return data if crc32(data) == int.from_bytes(sealed[:STATE_CHECK_SIZE], "little") else None


def state_seal(dirname: str, digest: bytes, inner: bytes) -> bytes:
    """The seal of a state row: a digest of its key and of the check its state is stored behind (:func:`_seal`)."""
    return _digest(marshal.dumps((STATES_TABLE, dirname, digest, inner), 2))


def _rows(entries: Iterable[tuple[Key | None, str, Module] | tuple[Key | None, str, Module, bytes | None]]
          ) -> list[tuple[object, ...]]:
    """The rows of :meth:`ScanCache.put_many` (the twin of ``_elfscan.pack_rows``): (*key, schema,
    shown, seal, record as a bytearray) of each entry, but those SQLite cannot store or the format cannot hold.
    An entry (key, shown, module, record) brings the module's record already made (None: it cannot be)."""
    pack, schema = recordcodec.pack, READER_SCHEMA
    rows: list[tuple[object, ...]] = []
    for key, shown, m, *made in entries:
        if key is None or not (_bindable(key[0]) and _bindable(shown)):
            continue
        if made:
            record = made[0]
            if record is None:
                continue
        else:
            try:
                record = pack(m)
            except (TypeError, ValueError):  # a value the format cannot hold: that module is not cached
                continue
        # (a bytearray: the sqlite3 module binds one as it is, but bytes through its adapters)
        rows.append((*key, schema, shown, record_seal(*key, schema, shown, record), bytearray(record)))
    return rows


def _bindable(s: str) -> bool:
    """Whether SQLite can store ``s`` (a path of non-UTF-8 bytes holds lone surrogates: not cached)."""
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --------------------------------------------------------------------------
# What a depmod result row holds (moddeps.depmod.rerun writes and reads it)
# --------------------------------------------------------------------------


class OutputIdentity(NamedTuple):
    """What an output file was when it was written."""

    name: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int
    crc32: int  # of its bytes


@dataclass(frozen=True, slots=True)
class StoredOutput:
    """A depmod result, as the ``record`` column holds it: marshalled (stored
    uncompressed: zlib cost 15 ms of a 150 ms warm depmod, amd64) as a tuple of
    the identities (as plain tuples) and three lists of strings."""

    identities: tuple[OutputIdentity, ...]  # of the files written, in write order
    messages: tuple[str, ...]
    verbose_lines: tuple[str, ...]
    notes: tuple[str, ...]

    def encode(self) -> bytes:
        """ValueError when a value is not plain data."""
        return marshal.dumps(([tuple(i) for i in self.identities], list(self.messages), list(self.verbose_lines),
                              list(self.notes)))

    @classmethod
    def decode(cls, blob: bytes) -> StoredOutput:
        """ValueError, EOFError or TypeError when ``blob`` is not such a record."""
        record = marshal.loads(blob)
        if not isinstance(record, tuple) or len(record) != 4:
            raise ValueError("unexpected record")
        identities, messages, verbose_lines, notes = record
        if not (isinstance(identities, list) and all(type(i) is tuple and len(i) == 7 for i in identities)
                and all(isinstance(x, list) and all(type(v) is str for v in x)
                        for x in (messages, verbose_lines, notes))):
            raise ValueError("unexpected record")
        return cls(tuple(map(OutputIdentity._make, identities)), tuple(messages), tuple(verbose_lines), tuple(notes))


#: The length of the digest of the module array's paths that starts the ``files`` column.
PATHS_DIGEST_SIZE = 20


@dataclass(frozen=True, slots=True)
class ModuleFiles:
    """The module files a depmod result was computed from, as the ``files``
    column holds them: a digest of the module array's paths, then each file's
    identity without its path (marshal format 2: one encoding for one value).
    Made by :meth:`of` or :meth:`decode`."""

    paths: bytes  # a digest (PATHS_DIGEST_SIZE bytes) of the array's paths
    stats: tuple[FileStat | None, ...]  # array order; None: a file that could not be stat'ed
    encoded: bytes = field(compare=False, repr=False)  # the column's bytes

    @classmethod
    def of(cls, paths: bytes, stats: Sequence[FileStat | None]) -> ModuleFiles:
        return cls(paths, tuple(stats), paths + marshal.dumps(list(stats), 2))

    @classmethod
    def decode(cls, blob: bytes) -> ModuleFiles | None:
        """None when ``blob`` is not such a column."""
        try:
            stats = marshal.loads(blob[PATHS_DIGEST_SIZE:])
        except (ValueError, EOFError, TypeError):  # (a blob shorter than the digest included: EOFError)
            return None
        if not isinstance(stats, list) or not all(s is None or (type(s) is tuple and len(s) == 5) for s in stats):
            return None
        return cls(blob[:PATHS_DIGEST_SIZE], tuple(stats), blob)


@dataclass(frozen=True, slots=True)
class PreviousOutput:
    """The last depmod result stored for a module directory, whatever its inputs."""

    digest: bytes  # of all its inputs
    basis: bytes  # of its inputs other than the module files
    files: ModuleFiles | None  # its module files (None: a column that does not decode)
    output: StoredOutput


class _OutputRow(NamedTuple):
    digest: bytes
    basis: bytes
    files: bytes
    record: bytes


def file_key(path: str) -> Key | None:
    """The identity of a module file (following symlinks), or None if it cannot be stat'ed
    (:func:`moddeps.read.fileid.identity`: inode and device as signed 64-bit numbers)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return Key(_absolute(path), *identity(st))


def file_keys(paths: Sequence[str]) -> list[Key | None]:
    """:func:`file_key` of each path (C: ``_elfscan.file_keys``, a stat and a Key in one step;
    the 4,022 of Debian 12's amd64 tree took ~25 ms of a first run in Python)."""
    return twin(recordcodec.accelerator(), lambda c: c.file_keys(paths, Key), lambda: [file_key(p) for p in paths])


def _absolute(path: str) -> str:
    """``os.path.abspath(path)``, without its cost for paths that are already
    absolute and normal (every path of a walk under an absolute directory)."""
    if path[:1] == "/" and "//" not in path and "/." not in path and path[-1:] != "/":
        return path
    return os.path.abspath(path)


class ScanCache:
    """A handle on the cache database.  Every method degrades to "no cache" on error."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or default_path()
        self._problem: str | None = None
        self._db: sqlite3.Connection | None = None
        self._autocheckpoint = 0  # (pages: set with the connection)
        self._writer: threading.Thread | None = None  # the thread writing what put_many handed over, until waited for
        self._rows: queue.SimpleQueue[tuple[Callable[..., None], tuple[object, ...]] | None] | None = None  # its work
        self._wrote = False  # whether this handle wrote rows (close dates them)
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            # check_same_thread off: put_many writes from a thread of its own;
            # every other method first waits for that thread (_settle).
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            # 64 KiB pages (a new database's; an existing one keeps its own): a record is ~3 KB, and
            # with SQLite's default 4 KiB a first run of Debian 12's amd64 tree made ~9,800 page
            # writes and 40 syncs for its 12 MB, 775 writes and 16 syncs with these (-45 ms of CPU)
            db.execute("PRAGMA page_size=65536")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # a page cache of 256 KiB, not SQLite's 2 MB: the cache is written in bulk and read in bulk
            # or by a few keys, and what more pages held showed only in the peak (Debian 12 cloud, a
            # first run: 34.5 -> 33.0 MB, medians of 6; kmod 30's depmod peaks at 23.4 MB there)
            db.execute("PRAGMA cache_size=-256")
            # checkpoint often, in steps of 4 MiB: they happen in the writer thread
            # while a scan reads, not as one large copy at its end
            page = db.execute("PRAGMA page_size").fetchone()[0]
            self._autocheckpoint = max(1, (4 << 20) // int(page))
            db.execute(f"PRAGMA wal_autocheckpoint={self._autocheckpoint}")
            # the WAL's file cut back to this once copied (it keeps its largest size otherwise)
            db.execute(f"PRAGMA journal_size_limit={QUIET_WAL_MAX}")
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {RECORDS_TABLE} ("
                " path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
                " ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, device INTEGER NOT NULL,"
                " schema INTEGER NOT NULL, shown TEXT NOT NULL, seal INTEGER NOT NULL, record BLOB NOT NULL,"
                " PRIMARY KEY (path, schema))"
            )
            # The last depmod result per module directory, keyed by a digest
            # of everything it was computed from, with that digest's two
            # parts: the inputs other than the module files, and the module
            # files' identities (see moddeps.depmod.rerun).
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {OUTPUTS_TABLE} ("
                " dirname TEXT PRIMARY KEY, digest BLOB NOT NULL, basis BLOB NOT NULL, files BLOB NOT NULL,"
                " record BLOB NOT NULL, seal BLOB NOT NULL)"
            )
            # What brings that result up to date after a few modules changed
            # (moddeps.depmod.incremental), for the result of that digest.
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {STATES_TABLE} ("
                " dirname TEXT PRIMARY KEY, digest BLOB NOT NULL, state BLOB NOT NULL, seal BLOB NOT NULL)"
            )
            self._db = db
        except (*_DB_ERRORS, OSError) as exc:
            self._fail(f"scan cache {self.path} unusable ({exc}); reading every module")

    @property
    def problem(self) -> str | None:
        """What went wrong with the cache (said once by the caller), after any pending write."""
        self._settle()
        return self._problem

    def _fail(self, message: str) -> None:
        self._say(message)
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None

    def _say(self, message: str) -> None:
        """Keep ``message`` as the problem to say, unless one was kept already (said once)."""
        if self._problem is None:
            self._problem = message

    @property
    def usable(self) -> bool:
        return self._db is not None

    def get_many(self, items: Sequence[tuple[Key | None, str]]) -> list[Module | None]:
        """Cached modules for (key, shown-path) pairs; None where there is no valid record."""
        blobs = self.get_records(items)
        where = [i for i, blob in enumerate(blobs) if blob is not None]
        out: list[Module | None] = [None] * len(items)
        if not where:
            return out
        modules = self.unpack([blobs[i] for i in where])  # type: ignore[misc]
        if modules is None:
            return out
        for i, m in zip(where, modules):
            out[i] = m
        return out

    def get_records(self, items: Sequence[tuple[Key | None, str]]) -> list[bytes | None]:
        """The stored records (:mod:`moddeps.read.recordcodec` blobs, not decoded)
        for (key, shown-path) pairs; None where there is no valid record: none
        for that key, or one that fails its seal (said once; the module is
        read again and its record replaced)."""
        self._settle()
        out: list[bytes | None] = [None] * len(items)
        if self._db is None:
            return out
        wanted: dict[str, list[int]] = {}
        for i, (key, shown) in enumerate(items):
            # (keys read by position here and in put_many: a plain tuple of the six fields does too)
            if key is not None and ((key[0].isascii() and shown.isascii()) or (_bindable(key[0]) and _bindable(shown))):
                wanted.setdefault(key[0], []).append(i)
        if not wanted:
            return out
        query = (f"SELECT path, size, mtime_ns, ctime_ns, inode, device, shown, seal, record FROM {RECORDS_TABLE}"
                 " WHERE schema = ?")
        params: list[object] = [READER_SCHEMA]
        if len(wanted) <= FEW:
            query += f" AND path IN ({', '.join(['?'] * len(wanted))})"
            params += sorted(wanted)
        try:
            rows = self._db.execute(query, params).fetchall()
        except _DB_ERRORS as exc:
            self._fail(f"scan cache {self.path} unreadable ({exc}); reading every module")
            return out
        damaged = 0
        schema, dumps, crc32 = READER_SCHEMA, marshal.dumps, zlib.crc32
        for path, size, mtime_ns, ctime_ns, inode, device, shown, seal, record in rows:
            for i in wanted.get(path, ()):
                key, want_shown = items[i]
                if (out[i] is not None or key is None or key[1:] != (size, mtime_ns, ctime_ns, inode, device)
                        or shown != want_shown):
                    continue  # another file now (or a damaged key: the same)
                # record_seal, inline: ~4,000 calls on a big tree
                if type(record) is bytes and seal == crc32(record, crc32(dumps(
                        (path, size, mtime_ns, ctime_ns, inode, device, schema, shown), 2))):
                    out[i] = record
                else:
                    damaged += 1
        if damaged:
            self._say(f"scan cache {self.path} held {damaged} damaged module record(s) (checksum);"
                      " read those modules again")
        return out

    def get_holding(self, items: Sequence[tuple[Key | None, str]],
                    needles: Sequence[bytes]) -> dict[int, Module] | None:
        """The cached modules, by index in ``items``, whose records hold one of
        ``needles`` (bytes as records hold strings: UTF-8, ``surrogatepass``),
        among (key, shown-path) pairs (a None key: left out); None when one of
        the others has no valid record.  A superset of the modules with such
        a string: the caller judges each."""
        blobs = self.get_records(items)
        if any(blob is None and key is not None for blob, (key, _shown) in zip(blobs, items)):
            return None
        # one search of all records at once (a match across two records only costs a decoding)
        starts = list(itertools.accumulate((len(blob or b"") for blob in blobs), initial=0))
        everything = b"".join(blob or b"" for blob in blobs)
        hits: set[int] = set()
        for needle in needles:
            at = everything.find(needle)
            while at >= 0:
                hits.add(bisect.bisect_right(starts, at) - 1)
                at = everything.find(needle, at + 1)
        where = sorted(i for i in hits if blobs[i] is not None)
        modules = self.unpack([blobs[i] for i in where])  # type: ignore[misc]
        return None if modules is None else dict(zip(where, modules))

    def unpack(self, blobs: Sequence[bytes]) -> list[Module] | None:
        """The modules of records from :meth:`get_records`; None (and the
        cache is disabled, said once) when one is damaged."""
        memo: dict[object, Import] = {}
        # 100,000 small tuples for a big tree and nothing cyclic: the cyclic
        # collector would only rescan them.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            modules: list[Module] = recordcodec.unpack_many(blobs, memo)
            return modules
        except (ValueError, TypeError) as exc:  # TypeError: a record that is not even a blob
            self._fail(f"scan cache {self.path} holds damaged records ({exc}); reading every module")
            return None
        finally:
            if gc_was_enabled:
                gc.enable()

    def put_many(self, entries: Iterable[tuple[Key | None, str, Module]
                                         | tuple[Key | None, str, Module, bytes | None]]) -> None:
        """Store modules.  The records are encoded here (C, ~10 ms for 4,000
        modules); a thread of the cache's own writes them with SQLite, which
        works without the GIL, while the caller goes on: a scan hands over
        batches as it reads, so the writes overlap the reading (encoding in
        that thread too made it compete for the GIL: 145 ms instead of 60 for
        amd64).  Any other call on this cache, and :meth:`close`, first waits
        for every write handed over."""
        if self._db is None:
            return
        listed = list(entries)
        rows = twin(recordcodec.accelerator(), lambda c: c.pack_rows(listed, READER_SCHEMA), lambda: _rows(listed))
        if not rows:
            return
        self._enqueue(self._write_rows, rows)

    def _enqueue(self, method: Callable[..., None], *args: object) -> None:
        """Run ``method(*args)`` in the writer thread, after what was handed over before."""
        if self._writer is None or self._rows is None:
            # (imported here: a run that writes nothing to the cache needs no thread)
            import queue
            import threading

            self._rows = queue.SimpleQueue()
            self._writer = threading.Thread(target=self._write_queued, args=(self._rows,),
                                            name="moddeps-cache-writer")
            self._writer.start()
        self._rows.put((method, args))

    def wait(self) -> None:
        """Wait until everything handed to :meth:`put_many` is written."""
        self._settle()

    def _settle(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None and self._rows is not None:
            self._rows.put(None)
            writer.join()

    def _write_queued(self, work: queue.SimpleQueue[tuple[Callable[..., None], tuple[object, ...]] | None]) -> None:
        while True:
            item = work.get()
            if item is None:
                return
            method, args = item
            method(*args)

    def _write_rows(self, rows: list[tuple[object, ...]]) -> None:
        if self._db is None:
            return
        self._wrote = True
        # Many rows per statement (fewer GIL hand-overs with the caller's
        # thread); 1,000 rows of 10 parameters stay under SQLite's 32,766-variable limit.
        chunk = 1000
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                for start in range(0, len(rows), chunk):
                    part = rows[start : start + chunk]
                    self._db.execute(
                        f"INSERT OR REPLACE INTO {RECORDS_TABLE}"
                        " (path, size, mtime_ns, ctime_ns, inode, device, schema, shown, seal, record) VALUES "
                        + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(part)),
                        list(itertools.chain.from_iterable(part)),  # (in C: this thread holds the GIL less)
                    )
        except _DB_ERRORS as exc:
            self._fail(f"scan cache {self.path} not updated ({exc})")

    def get_output(self, dirname: str, digest: bytes) -> StoredOutput | None:
        """The stored result for ``dirname`` if it was computed from the same inputs."""
        row = self._output_row(dirname)
        if row is None or row.digest != digest:
            return None
        return self._loads(row.record)

    def get_previous_output(self, dirname: str) -> PreviousOutput | None:
        """The last result stored for ``dirname``, whatever its inputs, as given to :meth:`put_output`."""
        row = self._output_row(dirname)
        if row is None:
            return None
        output = self._loads(row.record)
        return None if output is None else PreviousOutput(row.digest, row.basis, ModuleFiles.decode(row.files), output)

    def _output_row(self, dirname: str) -> _OutputRow | None:
        """The row of the result stored for ``dirname``, if its seal holds (said once when it does not)."""
        row = self._select_one(f"SELECT digest, basis, files, record, seal FROM {OUTPUTS_TABLE} WHERE dirname = ?",
                               (dirname,))
        if row is None:
            return None
        digest, basis, files, record, seal = row
        if not (all(type(v) is bytes for v in row) and seal == output_seal(dirname, digest, basis, files, record)):
            self._damaged("depmod result")
            return None
        return _OutputRow(digest, basis, files, record)

    def get_output_state(self, dirname: str, digest: bytes) -> bytes | None:
        """The state stored for the result of ``digest`` for ``dirname`` (~1.5 MB for 4,000 modules)."""
        row = self._select_one(f"SELECT state, seal FROM {STATES_TABLE} WHERE dirname = ? AND digest = ?",
                               (dirname, digest))
        if row is None:
            return None
        sealed, seal = row
        state = _unseal(sealed)
        if state is None or seal != state_seal(dirname, digest, sealed[:STATE_CHECK_SIZE]):
            self._damaged("depmod state")
            return None
        return state

    def _damaged(self, what: str) -> None:
        """A result or state that fails its seal: said once; the cache stays
        in use, so that what is computed instead replaces it."""
        self._say(f"scan cache {self.path} held a damaged {what} (checksum); computed everything")

    def put_output_state(self, dirname: str, digest: bytes, state: bytes | Callable[[], bytes]) -> None:
        """Store the state of the result of ``digest`` for ``dirname`` (or
        what ``state()`` makes: the work moves to the writer thread too).
        Written by the writer thread while the caller goes on (writing the
        output files: their fsyncs and this work overlap); any later call on
        this cache waits for it.  A result stored after it with
        :meth:`put_output` and the same digest is the one it belongs to."""
        if self._db is not None:
            self._enqueue(self._write_state, dirname, digest, state)

    def _write_state(self, dirname: str, digest: bytes, state: bytes | Callable[[], bytes]) -> None:
        if callable(state):
            try:
                state = state()
            except (ValueError, TypeError) as exc:  # not plain data: not stored
                self._fail(f"scan cache {self.path} not updated ({exc})")
                return
        sealed = _seal(state)
        del state  # (1.7 MB for Debian 12 amd64: not held while SQLite copies the sealed one)
        self._execute_all([(f"INSERT OR REPLACE INTO {STATES_TABLE} (dirname, digest, state, seal) VALUES (?, ?, ?, ?)",
                            (dirname, digest, sealed, state_seal(dirname, digest, sealed[:STATE_CHECK_SIZE])))],
                          in_writer=True)
        if self._db is not None and not process.owned():
            # the WAL copied into the database here, in this thread, while the caller writes the
            # output files -- not by close() on its path (~4 ms of a first run of Debian 12 amd64);
            # the moddeps command's commits in its own thread and its close() copy nothing (see there)
            with contextlib.suppress(*_DB_ERRORS):
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _execute_all(self, statements: list[tuple[str, tuple[object, ...]]], *, in_writer: bool = False) -> None:
        """Run ``statements`` (SQL, parameters) in one transaction; a failure disables the cache.
        ``in_writer``: run by the writer thread; in the ``moddeps`` command, only such a commit may
        checkpoint the WAL (``wal_autocheckpoint``: see :meth:`close`)."""
        if self._db is None:
            return
        try:
            with contextlib.nullcontext() if in_writer else self._callers_commit(), self._db:
                # (isolation_level None: without this BEGIN each statement would commit on its own)
                self._db.execute("BEGIN IMMEDIATE")
                for query, params in statements:
                    self._db.execute(query, params)
        except _DB_ERRORS as exc:
            self._fail(f"scan cache {self.path} not updated ({exc})")
        self._wrote = True

    @contextlib.contextmanager
    def _callers_commit(self) -> Iterator[None]:
        """Around a commit of the caller's (not the writer thread's): in the ``moddeps`` command,
        while :meth:`_quiet`, one that leaves the WAL uncopied (see :meth:`close`)."""
        db = self._db if self._quiet() else None
        if db is not None:
            with contextlib.suppress(*_DB_ERRORS):
                db.execute("PRAGMA wal_autocheckpoint=0")
        try:
            yield
        finally:
            if db is not None and self._db is db:  # (not if a failure closed it meanwhile)
                with contextlib.suppress(*_DB_ERRORS):
                    db.execute(f"PRAGMA wal_autocheckpoint={self._autocheckpoint}")

    def _quiet(self) -> bool:
        """Whether a commit of the caller's leaves the WAL uncopied: in the ``moddeps`` command, while
        the WAL's file is within :data:`QUIET_WAL_MAX` (see :meth:`close`)."""
        if not process.owned():
            return False
        try:
            return os.stat(f"{self.path}-wal").st_size <= QUIET_WAL_MAX
        except OSError:
            return True

    def renew_output(self, dirname: str, old_digest: bytes, digest: bytes, files: ModuleFiles,
                     output: StoredOutput) -> None:
        """The last result for ``dirname`` (``old_digest``) holds for other
        module files (``digest`` and ``files`` as for :meth:`put_output`), its
        state too (re-keyed through its seal's second half: its 1.5 MB are not hashed again)."""
        self._settle()
        blob = self._dumps(output)
        row = self._output_row(dirname)
        if blob is None or row is None or row.digest != old_digest:
            return
        column = files.encoded
        statements: list[tuple[str, tuple[object, ...]]] = [(
            f"UPDATE {OUTPUTS_TABLE} SET digest = ?, files = ?, record = ?, seal = ? WHERE dirname = ?",
            (digest, column, blob, output_seal(dirname, digest, row.basis, column, blob), dirname))]
        state = self._select_one(f"SELECT substr(state, 1, {STATE_CHECK_SIZE}), seal FROM {STATES_TABLE}"
                                 " WHERE dirname = ? AND digest = ?", (dirname, old_digest))
        if state is not None:
            inner, seal = state
            if type(inner) is bytes and seal == state_seal(dirname, old_digest, inner):
                statements.append((f"UPDATE {STATES_TABLE} SET digest = ?, seal = ? WHERE dirname = ? AND digest = ?",
                                   (digest, state_seal(dirname, digest, inner), dirname, old_digest)))
            else:  # damaged: not re-keyed (its bytes are checked when it is used)
                statements.append((f"DELETE FROM {STATES_TABLE} WHERE dirname = ?", (dirname,)))
        self._execute_all(statements)

    def _select_one(self, query: str, params: tuple[object, ...]) -> Any:  # a row of SQLite values
        self._settle()
        if self._db is None:
            return None
        try:
            return self._db.execute(query, params).fetchone()
        except _DB_ERRORS as exc:
            self._fail(f"scan cache {self.path} unreadable ({exc}); computing everything")
            return None

    def _loads(self, blob: bytes) -> StoredOutput | None:
        try:
            return StoredOutput.decode(blob)
        except (ValueError, EOFError, TypeError) as exc:
            self._fail(f"scan cache {self.path} unreadable ({exc}); computing everything")
            return None

    def put_output(self, dirname: str, digest: bytes, basis: bytes, files: ModuleFiles,
                   output: StoredOutput) -> None:
        """Store a depmod result: ``digest`` of all its inputs, ``basis`` the
        digest of those other than the module files, ``files`` the module
        files, ``output`` the result."""
        self._settle()
        blob = self._dumps(output)
        if blob is not None:
            column = files.encoded
            seal = output_seal(dirname, digest, basis, column, blob)
            self._execute_all([(f"INSERT OR REPLACE INTO {OUTPUTS_TABLE} (dirname, digest, basis, files, record, seal)"
                                " VALUES (?, ?, ?, ?, ?, ?)", (dirname, digest, basis, column, blob, seal))])

    def _dumps(self, output: StoredOutput) -> bytes | None:
        try:
            return output.encode()
        except ValueError as exc:  # not plain data: not stored
            self._fail(f"scan cache {self.path} not updated ({exc})")
            return None

    def close(self) -> None:
        """Write what is pending, date what this handle wrote (:func:`_mark`, here on its own
        connection and in its transaction: :func:`maintain` then finds nothing left to date,
        without the commits and syncs of a connection of its own), and close.

        In the ``moddeps`` command (:func:`moddeps.process.owned`) the connection, its last
        transaction committed, is left to the process's end (``os._exit``) instead: SQLite's
        close of a database's last connection checkpoints its WAL into the database file, with
        a sync of each (~3 ms, and as much again for the checkpoint that :meth:`put_output_state`
        would make to spare it).  The WAL is then the database's as much as the file is (the
        next connection reads it).  It is kept short by the commits of the writer thread, which
        checkpoint it past ~4 MiB (``wal_autocheckpoint``) while the caller reads or writes files;
        the caller's own commits (the result, the renewal, the mark) do not, so that a run's end
        waits on no copy (a first run of Debian 12 amd64 spent ~6 ms there, its result's
        commit crossing the 4 MiB) -- unless the WAL's file has grown past :data:`QUIET_WAL_MAX`
        (runs that only renew a result, each rewriting its 1.8 MB state row, and never read a
        module): then they copy it as any commit would.  Measured on a one-module update of Debian 12's amd64 tree
        (a new alias), 21 alternating runs: median 108 -> 97 ms."""
        self._settle()
        if self._db is not None:
            if self._wrote:
                with contextlib.suppress(*_DB_ERRORS), self._callers_commit():  # (maintain dates it then)
                    _mark(self._db, time.time())
            if process.owned():
                with contextlib.suppress(sqlite3.Error):  # (no transaction left holding a lock)
                    if self._db.in_transaction:
                        self._db.rollback()
                process.kept.append(self._db)
            else:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
            self._db = None


# --------------------------------------------------------------------------
# Size and age: ``moddeps cache info|prune`` and the automatic bound
# --------------------------------------------------------------------------
#
# The rows carry no write time, and adding one to them would change their
# layout (a new table, every record read again) for what only pruning needs.
# Their rowids already say the order they were written in: a row is written
# by INSERT OR REPLACE, which deletes the row it replaces and gives the new
# one the table's largest rowid plus one (sqlite.org/autoinc.html: "one larger
# than the largest ROWID currently in use").  So a side table of *marks*, one
# (table, largest rowid, time) per run that wrote something, dates every row:
# a row with rowid <= a mark's was written before that mark's time.  Pruning
# by age drops only rows written before a mark older than the limit (never a
# younger row; a row may outlive the limit by the time between two marks); a
# size bound drops the oldest rows first.  The seals are untouched: a mark
# only decides which rows are deleted, never what a row is read as.  (A
# depmod result brought up to date by renew_output keeps its rowid: it ages
# as of its first write.)

#: The table of marks (see above).
MARKS_TABLE = "cache_marks_v1"
#: The automatic bound, bytes (``$MODDEPS_CACHE_MAX_SIZE`` overrides: a size as for ``--max-size``, 0 = none).
DEFAULT_MAX_SIZE = 256 * 1024 * 1024
#: When the automatic bound is exceeded, the cache is pruned to this fraction of it (not at every run after).
_PRUNE_TO = 0.75
_CURRENT_TABLES = (RECORDS_TABLE, OUTPUTS_TABLE, STATES_TABLE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    """``500M``, ``2G``, ``64k``, ``1.5GiB``, ``1000`` (bytes): binary units. ValueError when it is none."""
    s = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = s[-1:] if s[-1:].isalpha() else ""
    number = s[: len(s) - len(unit)]
    if unit not in _SIZE_UNITS or not number:
        raise ValueError(f"{text!r} is not a size (such as 500M, 2G, 64k or a number of bytes)")
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"{text!r} is not a size (such as 500M, 2G, 64k or a number of bytes)") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{text!r} is not a size (such as 500M, 2G, 64k or a number of bytes)")
    return int(value * _SIZE_UNITS[unit])


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w``, ``7`` (days): seconds. ValueError when it is none."""
    s = text.strip().lower()
    unit = s[-1:] if s[-1:].isalpha() else "d"
    number = s[:-1] if s[-1:].isalpha() else s
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in _AGE_UNITS or not value >= 0 or value == float("inf"):
        raise ValueError(f"{text!r} is not a duration (such as 30d, 12h, 90m, 2w; a bare number is days)")
    return value * _AGE_UNITS[unit]


def env_max_size() -> int | None:
    """The automatic bound: ``$MODDEPS_CACHE_MAX_SIZE`` if set (0: none), else :data:`DEFAULT_MAX_SIZE`.
    A value that is not a size is a ValueError."""
    raw = os.environ.get("MODDEPS_CACHE_MAX_SIZE")
    if raw is None or raw == "":
        return DEFAULT_MAX_SIZE
    size = parse_size(raw)
    return size or None


def file_size(path: str) -> int:
    """Bytes the cache takes on disk: the database and its WAL (0 when absent)."""
    total = 0
    for p in (path, path + "-wal"):
        with contextlib.suppress(OSError):
            total += os.stat(p).st_size
    return total


@dataclass(frozen=True, slots=True)
class TableInfo:
    name: str
    rows: int
    bytes: int  # what its values take (keys and blobs), not counting SQLite's pages
    current: bool  # read by this moddeps; the others are earlier versions' tables, dropped by prune


@dataclass(frozen=True, slots=True)
class CacheInfo:
    path: str
    exists: bool
    size: int  # file_size
    tables: tuple[TableInfo, ...]
    oldest: float | None  # time of the oldest mark still dating rows (None: no marks)
    newest: float | None  # time of the newest mark


@dataclass(frozen=True, slots=True)
class PruneResult:
    size_before: int
    size_after: int
    dropped_tables: tuple[str, ...]
    deleted_rows: int


def _connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # as ScanCache's: WAL stays consistent; a sync at checkpoints only
    return db


def _tables(db: sqlite3.Connection) -> list[str]:
    return [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                     " AND name NOT LIKE 'sqlite_%' ORDER BY name")]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_bytes(db: sqlite3.Connection, name: str) -> tuple[int, int]:
    cols = [r[1] for r in db.execute(f"PRAGMA table_info({_quoted(name)})")]
    if not cols:
        return 0, 0
    total = " + ".join(f"coalesce(length({_quoted(c)}), 0)" for c in cols)
    rows, size = db.execute(f"SELECT count(*), coalesce(sum({total}), 0) FROM {_quoted(name)}").fetchone()
    return int(rows), int(size)


def _ensure_marks(db: sqlite3.Connection) -> None:
    db.execute(f"CREATE TABLE IF NOT EXISTS {MARKS_TABLE} (tbl TEXT NOT NULL, mark INTEGER NOT NULL,"
               " at REAL NOT NULL)")


def _mark(db: sqlite3.Connection, now: float) -> None:
    """Date what was written since the last marks: one (table, largest rowid, now) per table that grew."""
    _ensure_marks(db)
    present = set(_tables(db))
    with db:
        db.execute("BEGIN IMMEDIATE")  # one transaction (isolation_level None: else a commit per mark)
        for name in _CURRENT_TABLES:
            if name not in present:
                continue
            top = db.execute(f"SELECT max(rowid) FROM {name}").fetchone()[0]
            if top is None:
                continue
            last = db.execute(f"SELECT max(mark) FROM {MARKS_TABLE} WHERE tbl = ?", (name,)).fetchone()[0]
            if last is None or top > last:
                db.execute(f"INSERT INTO {MARKS_TABLE} (tbl, mark, at) VALUES (?, ?, ?)", (name, top, now))


def info(path: str | None = None) -> CacheInfo:
    """What the cache holds, table by table (read only; InputError when it cannot be read)."""
    path = path or default_path()
    try:
        return _info(path)
    except sqlite3.Error as exc:
        raise InputError(f"{path}: not a readable scan cache ({exc})") from None


def _info(path: str) -> CacheInfo:
    if not os.path.exists(path):
        return CacheInfo(path, False, 0, (), None, None)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    try:
        names = _tables(db)
        tables = []
        for name in names:
            if name == MARKS_TABLE:
                continue
            rows, size = _table_bytes(db, name)
            tables.append(TableInfo(name, rows, size, name in _CURRENT_TABLES))
        oldest = newest = None
        if MARKS_TABLE in names:
            oldest, newest = db.execute(f"SELECT min(at), max(at) FROM {MARKS_TABLE}").fetchone()
        return CacheInfo(path, True, file_size(path), tuple(tables), oldest, newest)
    finally:
        db.close()


def _delete_through(db: sqlite3.Connection, bounds: dict[str, int]) -> int:
    """Delete the rows with rowid <= bounds[table], and the marks that dated only them."""
    deleted = 0
    with db:
        for name, top in bounds.items():
            deleted += db.execute(f"DELETE FROM {name} WHERE rowid <= ?", (top,)).rowcount
            db.execute(f"DELETE FROM {MARKS_TABLE} WHERE tbl = ? AND mark <= ?", (name, top))
    return deleted


def _live_bytes(db: sqlite3.Connection) -> int:
    return sum(_table_bytes(db, name)[1] for name in _CURRENT_TABLES if name in set(_tables(db)))


def prune(path: str | None = None, *, older_than: float | None = None, max_size: int | None = None,
          now: float | None = None) -> PruneResult:
    """Shrink the cache: drop the tables earlier moddeps versions left (their rows are never read);
    with ``older_than`` (seconds), delete the rows written before then; with ``max_size`` (bytes),
    delete the oldest rows until what is left fits, then give the space back to the filesystem
    (VACUUM).  OutputError when the database cannot be changed."""
    path = path or default_path()
    try:
        return _prune(path, older_than, max_size, now)
    except sqlite3.Error as exc:
        raise OutputError(f"{path}: cannot prune the scan cache ({exc})") from None


def _prune(path: str, older_than: float | None, max_size: int | None, now: float | None) -> PruneResult:
    before = file_size(path)
    if not os.path.exists(path):
        return PruneResult(0, 0, (), 0)
    now = time.time() if now is None else now
    db = _connect(path)
    try:
        _mark(db, now)  # rows written by runs that left no mark are dated now: never too old
        dropped = tuple(n for n in _tables(db) if n not in (*_CURRENT_TABLES, MARKS_TABLE))
        with db:
            for name in dropped:
                db.execute(f"DROP TABLE {_quoted(name)}")
        deleted = 0
        if older_than is not None:
            limit = now - older_than
            bounds = {tbl: top for tbl, top in db.execute(
                f"SELECT tbl, max(mark) FROM {MARKS_TABLE} WHERE at <= ? GROUP BY tbl", (limit,))
                if tbl in _CURRENT_TABLES}
            deleted += _delete_through(db, bounds)
        if max_size is not None:
            deleted += _shrink_to(db, max_size)
        if dropped or deleted or (max_size is not None and file_size(path) > max_size):
            db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return PruneResult(before, file_size(path), dropped, deleted)


def _shrink_to(db: sqlite3.Connection, max_size: int) -> int:
    """Delete the oldest rows, a mark at a time (all tables' rows up to the marks of one time),
    until the values left fit in ``max_size`` with SQLite's pages around them (measured,
    after a VACUUM, by the page count); the newest rows, written after the last mark, go last."""
    deleted = 0
    times = [t for (t,) in db.execute(f"SELECT DISTINCT at FROM {MARKS_TABLE} ORDER BY at")]
    for at in [*times, None]:
        if _estimated_size(db) <= max_size:
            break
        if at is None:  # nothing dated is left: everything goes
            bounds = {n: 1 << 62 for n in _CURRENT_TABLES if n in set(_tables(db))}
        else:
            bounds = {tbl: top for tbl, top in db.execute(
                f"SELECT tbl, max(mark) FROM {MARKS_TABLE} WHERE at <= ? GROUP BY tbl", (at,))
                if tbl in _CURRENT_TABLES}
        deleted += _delete_through(db, bounds)
    return deleted


def _estimated_size(db: sqlite3.Connection) -> int:
    """What the database would take after a VACUUM: its pages in use (not its free list)."""
    page = db.execute("PRAGMA page_size").fetchone()[0]
    count = db.execute("PRAGMA page_count").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0]
    return int(page * (count - free))


def maintain(path: str | None = None, *, max_size: int | None = DEFAULT_MAX_SIZE) -> PruneResult | None:
    """After a run that used the cache: date what it wrote (a mark), and when the cache has grown
    past ``max_size`` prune it, oldest rows first, to three quarters of that (so that the next runs
    do not prune again).  Returns what pruning did, None when it was not needed.  A SQLite problem
    is left to the caller (sqlite3.Error, OutputError): :func:`upkeep` says it and goes on."""
    path = path or default_path()
    if not os.path.exists(path):
        return None
    now = time.time()
    db = _connect(path)
    try:
        _mark(db, now)
    finally:
        db.close()
    if max_size is None or file_size(path) <= max_size:
        return None
    return prune(path, max_size=int(max_size * _PRUNE_TO), now=now)


def format_size(n: int) -> str:
    """A size for people: ``1.5 GiB``, ``12.0 MiB``, ``512 B`` (what :func:`parse_size` reads back)."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def bound_from_env() -> int | None:
    """:func:`env_max_size`, a bad ``$MODDEPS_CACHE_MAX_SIZE`` being a usage error."""
    try:
        return env_max_size()
    except ValueError as exc:
        raise UsageError(f"MODDEPS_CACHE_MAX_SIZE: {exc}") from None


if TYPE_CHECKING:
    Note = Callable[[str], None]


def _silent(_text: str) -> None:
    pass


def upkeep(path: str, bound: int | None, note: Note = _silent) -> None:
    """After a run: :func:`maintain` the cache at ``path`` under ``bound``; what happened (a
    problem, or pruning) goes to ``note``, never raised: the cache only saves time."""
    try:
        pruned = maintain(path, max_size=bound)
    except (sqlite3.Error, OSError, OutputError) as exc:
        note(f"scan cache {path} not maintained ({exc})")
        return
    if pruned is not None:
        note(f"scan cache {path} was over its bound ({format_size(bound or 0)}, $MODDEPS_CACHE_MAX_SIZE): "
             f"pruned, oldest first, from {format_size(pruned.size_before)} to {format_size(pruned.size_after)}")


@contextlib.contextmanager
def session(path: str | None, note: Note = _silent) -> Iterator[ScanCache | None]:
    """The scan cache at ``path`` for one run (None: no cache), closed afterwards, then kept
    under its bound (``$MODDEPS_CACHE_MAX_SIZE``, read first: a bad value is a UsageError).
    The cache's own problem, if it had one, and its upkeep's go to ``note``."""
    if path is None:
        yield None
        return
    bound = bound_from_env()
    c = ScanCache(path)
    try:
        yield c
    finally:
        if c.problem:
            note(c.problem)
        c.close()
        upkeep(path, bound, note)
