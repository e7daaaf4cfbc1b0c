"""The persistent scan cache (SQLite).

One database, ``$MODDEPS_CACHE`` or ``$XDG_CACHE_HOME/moddeps/scan.sqlite3``
(default ``~/.cache/moddeps/scan.sqlite3``).  A row holds one module as the
reader saw it, keyed by the file's identity -- path, size, mtime (ns),
inode, device -- and the reader's schema version, so a changed file or a
changed reader never reuses an old record.  Records are the module's wire
form (:meth:`moddeps.model.Module.to_wire`), marshalled (about 2.3 KB per
module; zlib would halve that but cost 0.2 s per 4,000 modules each way).

Safety: WAL journal and a busy timeout let several moddeps processes share
the database; any SQLite or decoding problem disables the cache for the
run (said once on stderr by the caller) and never changes the output --
the modules are simply read again.
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import os
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from .model import READER_SCHEMA, Module

Key = tuple[str, int, int, int, int]  # path, size, mtime_ns, inode, device


def default_path() -> str:
    env = os.environ.get("MODDEPS_CACHE")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "moddeps", "scan.sqlite3")


def file_key(path: str) -> Key | None:
    """The identity of a module file (following symlinks), or None if it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (_absolute(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


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
        self._writer: Any = None  # the thread of put_many, until waited for
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            # check_same_thread off: put_many writes from a thread of its own;
            # every other method first waits for that thread (_settle).
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS module_records ("
                " path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
                " inode INTEGER NOT NULL, device INTEGER NOT NULL, schema INTEGER NOT NULL,"
                " shown TEXT NOT NULL, record BLOB NOT NULL,"
                " PRIMARY KEY (path, schema))"
            )
            # The last depmod result per module directory, keyed by a digest
            # of everything it was computed from (see moddeps.depmod.run).
            db.execute(
                "CREATE TABLE IF NOT EXISTS outputs ("
                " dirname TEXT PRIMARY KEY, digest BLOB NOT NULL, record BLOB NOT NULL)"
            )
            self._db = db
        except (sqlite3.Error, OSError) as exc:
            self._fail(f"scan cache {self.path} unusable ({exc}); reading every module")

    @property
    def problem(self) -> str | None:
        """What went wrong with the cache (said once by the caller), after any pending write."""
        self._settle()
        return self._problem

    def _fail(self, message: str) -> None:
        if self._problem is None:
            self._problem = message
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None

    @property
    def usable(self) -> bool:
        return self._db is not None

    def get_many(self, items: Sequence[tuple[Key | None, str]]) -> list[Module | None]:
        """Cached modules for (key, shown-path) pairs; None where there is no valid record."""
        self._settle()
        out: list[Module | None] = [None] * len(items)
        if self._db is None:
            return out
        try:
            rows = self._db.execute(
                "SELECT path, size, mtime_ns, inode, device, shown, record FROM module_records WHERE schema = ?",
                (READER_SCHEMA,),
            ).fetchall()
        except sqlite3.Error as exc:
            self._fail(f"scan cache {self.path} unreadable ({exc}); reading every module")
            return out
        table = {r[0]: r for r in rows}
        from_wire = Module.from_wire
        memo: dict[tuple[object, ...], Any] = {}
        # 200,000 small tuples for a big tree and nothing cyclic: the cyclic
        # collector would only rescan them (it doubled this loop's time).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for i, (key, shown) in enumerate(items):
                if key is None:
                    continue
                row = table.get(key[0])
                if row is None or tuple(row[1:5]) != key[1:] or row[5] != shown:
                    continue
                out[i] = from_wire(marshal.loads(row[6]), memo)
        except (ValueError, EOFError, TypeError, IndexError) as exc:
            self._fail(f"scan cache {self.path} holds damaged records ({exc}); reading every module")
            return [None] * len(items)
        finally:
            if gc_was_enabled:
                gc.enable()
        return out

    def put_many(self, entries: Iterable[tuple[Key | None, str, Module]]) -> None:
        """Store modules, in a thread of their own: the caller goes on while
        the records are encoded and written (SQLite works without the GIL).
        Any later call on this cache, and :meth:`close`, waits for it."""
        self._settle()
        if self._db is None:
            return
        import threading

        work = list(entries)
        self._writer = threading.Thread(target=self._put_many, args=(work,), name="moddeps-cache-writer")
        self._writer.start()

    def _settle(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.join()

    def _put_many(self, entries: list[tuple[Key | None, str, Module]]) -> None:
        if self._db is None:
            return
        rows = [
            (*key, READER_SCHEMA, shown, marshal.dumps(m.to_wire()))  # type: ignore[arg-type]
            for key, shown, m in entries
            if key is not None
        ]
        if not rows:
            return
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR REPLACE INTO module_records"
                    " (path, size, mtime_ns, inode, device, schema, shown, record)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        except sqlite3.Error as exc:
            self._fail(f"scan cache {self.path} not updated ({exc})")

    def get_output(self, dirname: str, digest: bytes) -> Any:
        """The stored result for ``dirname`` if it was computed from the same inputs."""
        self._settle()
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT digest, record FROM outputs WHERE dirname = ?", (dirname,)).fetchone()
            if row is None or row[0] != digest:
                return None
            # stored uncompressed: zlib cost 15 ms of a 150 ms warm depmod (amd64)
            record = marshal.loads(row[1])
            if not isinstance(record, tuple) or len(record) != 4:
                raise ValueError("unexpected record")
            return record
        except (sqlite3.Error, ValueError, EOFError, TypeError) as exc:
            self._fail(f"scan cache {self.path} unreadable ({exc}); computing everything")
            return None

    def put_output(self, dirname: str, digest: bytes, record: Any) -> None:
        self._settle()
        if self._db is None:
            return
        try:
            blob = marshal.dumps(record)
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO outputs (dirname, digest, record) VALUES (?, ?, ?)",
                                 (dirname, digest, blob))
        except (sqlite3.Error, ValueError) as exc:
            self._fail(f"scan cache {self.path} not updated ({exc})")

    def close(self) -> None:
        self._settle()
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
