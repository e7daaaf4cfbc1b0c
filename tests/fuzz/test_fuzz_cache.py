"""Damage to the scan cache never changes what ``moddeps depmod`` writes (issue 15, item 1).

The cache database (:mod:`moddeps.read.cache`) is a file anyone with write access
to it, or a crashing machine, may damage.  SQLite keeps no checksums of its
own: a flipped bit inside a module record used to decode into another module
(a symbol renamed, dependencies lost, a module name edited so that
``modules.symbols`` named a module absent from ``modules.dep``).  Every row is
now sealed (a checksum over the row and its key); these targets damage the
database and require the outputs of a run *without* the cache:

* :func:`test_damaged_database_never_changes_the_outputs`: a fixed seed, a
  few hundred damages -- random bit flips anywhere in the file, a zeroed
  4 KiB page, and edits a bit flip could make in one row (a bit of a record,
  a key column, a record moved to another key, a module renamed inside its
  record, a result or state column) -- each followed by a run on the tree as
  it was, with an output file gone (every record read), with a module touched
  (the previous result kept), and with a module changed (the incremental
  path, which reads the other modules' records);
* :func:`test_fuzz_damaged_record_is_missed_never_misread`: hypothesis edits
  the records table; every lookup gives the module as it was stored, or
  nothing (and then the module is read again, and said once).

CI runs both bounded and derandomized; a long run is::

    MODDEPS_FUZZ=long pytest tests/fuzz/test_fuzz_cache.py -p no:cacheprovider
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moddeps.depmod.run import DepmodOptions, DepmodResult, run
from moddeps.model import Module
from moddeps.read import cache as cache_mod
from moddeps.read import recordcodec
from moddeps.read.cache import ScanCache
from tests.kobuild import Export, build_ko

from . import LONG, LONG_EXAMPLES, TIME_BOUND, fuzz, time_limit

KVER = "6.1.0-1-cachefuzz"
#: damages of the fixed-seed run (CI); MODDEPS_FUZZ=long: MODDEPS_FUZZ_EXAMPLES of them
DAMAGES = LONG_EXAMPLES if LONG else 240
SEED = 15


# --------------------------------------------------------------------------
# A small tree whose outputs depend on every kind of record field
# --------------------------------------------------------------------------

def _module(i: int, *, alias: str | None = None, export: str | None = None) -> bytes:
    """Module ``m{i}``: exports ``sym{i}`` (and a GPL-only one), imports the two before it,
    an alias, a softdep for some, a devname for one."""
    modinfo = ["license=GPL", f"alias={alias or f'pci:v0000{i:04X}d*sv*sd*bc*sc*i*'}", f"description=module {i}"]
    if i % 4 == 1:
        modinfo.append(f"softdep=pre: m{i - 1}")
    if i == 5:
        modinfo += ["alias=devname:mfuzz5", "alias=char-major-240-5"]
    needs = [f"sym{j}" for j in (i - 1, i - 2) if j >= 0]
    return build_ko(modinfo=[*modinfo, f"name=m{i}"],
                    exports=[Export(name=export or f"sym{i}", crc=0x1000 + i),
                             Export(name=f"gplsym{i}", gpl=True, crc=0x2000 + i)],
                    undefined=needs, versions=[(n, 0x1000 + int(n[3:])) for n in needs])


MODULES = 12


def _make_tree(base: Path) -> Path:
    root = base / "lib/modules" / KVER
    (root / "kernel/fuzz").mkdir(parents=True)
    for i in range(MODULES):
        (root / f"kernel/fuzz/m{i}.ko").write_bytes(_module(i))
    (root / "modules.order").write_text("".join(f"kernel/fuzz/m{i}.ko\n" for i in range(MODULES)))
    return root


@dataclasses.dataclass
class Scenario:
    """A change made to the tree before the run on the damaged cache, and its undoing."""

    name: str
    apply: Callable[[Path], None]
    undo: Callable[[Path], None]


def _touch(root: Path) -> None:
    p = root / "kernel/fuzz/m3.ko"
    st_ = p.stat()
    os.utime(p, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000_000))


def _restore(root: Path, i: int) -> None:
    """Module ``m{i}`` back as _make_tree wrote it (another file, as a package manager installs one)."""
    p = root / f"kernel/fuzz/m{i}.ko"
    tmp = p.with_suffix(".new")
    tmp.write_bytes(_module(i))
    os.replace(tmp, p)


def _replace(root: Path, i: int, data: bytes) -> None:
    p = root / f"kernel/fuzz/m{i}.ko"
    tmp = p.with_suffix(".new")
    tmp.write_bytes(data)
    os.replace(tmp, p)


SCENARIOS = [
    Scenario("again", lambda root: None, lambda root: None),
    Scenario("output gone", lambda root: (root / "modules.symbols").unlink(missing_ok=True), lambda root: None),
    Scenario("touched", _touch, lambda root: _restore(root, 3)),
    Scenario("alias changed", lambda root: _replace(root, 7, _module(7, alias="usb:v1234p*")),
             lambda root: _restore(root, 7)),
    Scenario("export renamed", lambda root: _replace(root, 4, _module(4, export="sym4_renamed")),
             lambda root: _restore(root, 4)),
]


def _options(base: Path, db: Path | None, **kw: Any) -> DepmodOptions:
    return DepmodOptions(version=KVER, basedir=str(base), config=(str(base / "no-config"),), fsync=False,
                         kmod_version=34, cache=None if db is None else str(db), **kw)


def _truth(base: Path, root: Path) -> tuple[dict[str, bytes], tuple[str, ...]]:
    """What a run without any cache writes and says for the tree as it is now."""
    result = run(_options(base, None, outdir=str(base.parent / "truth")))
    return dict(result.files), result.messages


def _on_disk(root: Path, names: list[str]) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in names if (root / name).exists()}


# --------------------------------------------------------------------------
# Damages
# --------------------------------------------------------------------------

def _flip_bits(data: bytearray, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data))
        data[at] ^= 1 << rng.randrange(8)
    return "bit flips"


def _zero_page(data: bytearray, rng: random.Random) -> str:
    pages = max(1, len(data) // 4096)
    page = rng.randrange(pages)
    data[page * 4096:(page + 1) * 4096] = bytes(len(data[page * 4096:(page + 1) * 4096]))
    return f"page {page} zeroed"


def _tables(con: sqlite3.Connection) -> list[str]:
    wanted = (cache_mod.RECORDS_TABLE, cache_mod.OUTPUTS_TABLE, cache_mod.STATES_TABLE)
    have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return [t for t in wanted if t in have]


def _edit_value(value: object, rng: random.Random) -> object:
    if isinstance(value, bytes) and value:
        b = bytearray(value)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if isinstance(value, str) and value:
        at = rng.randrange(len(value))
        return value[:at] + chr((ord(value[at]) ^ (1 << rng.randrange(5))) or 0x41) + value[at + 1:]
    if isinstance(value, int):
        return value ^ (1 << rng.randrange(40))
    return value


def _edit_row(db: Path, rng: random.Random) -> str:
    """One row edited as a bit flip could edit it, through SQLite (so that it certainly lands in a row)."""
    con = sqlite3.connect(db, isolation_level=None)
    try:
        tables = _tables(con)
        table = rng.choice(tables)
        rows = con.execute(f"SELECT rowid, * FROM {table}").fetchall()
        columns = [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description]
        if not rows:
            return "nothing to edit"
        row = rng.choice(rows)
        kind = rng.random()
        if table == cache_mod.RECORDS_TABLE and kind < 0.25 and len(rows) > 1:
            # a record moved to another key: two rows swap their records
            other = rng.choice([r for r in rows if r[0] != row[0]])
            at = columns.index("record") + 1
            con.execute(f"UPDATE {table} SET record = ? WHERE rowid = ?", (other[at], row[0]))
            con.execute(f"UPDATE {table} SET record = ? WHERE rowid = ?", (row[at], other[0]))
            return f"{table}: records of two rows swapped"
        if table == cache_mod.RECORDS_TABLE and kind < 0.5:
            # the module's name edited inside a well-formed record
            at = columns.index("record") + 1
            m = recordcodec.unpack(row[at])
            new = recordcodec.pack(dataclasses.replace(m, name=m.name + "x" if rng.random() < 0.5 else "m0"))
            con.execute(f"UPDATE {table} SET record = ? WHERE rowid = ?", (new, row[0]))
            return f"{table}: module {m.name} renamed inside its record"
        column = rng.choice(columns)
        value = _edit_value(row[columns.index(column) + 1], rng)
        con.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (value, row[0]))
        return f"{table}: column {column} edited"
    finally:
        con.close()


def _damage(db: Path, good: bytes, rng: random.Random) -> str:
    _forget(db)
    kind = rng.random()
    if kind < 0.4:
        data = bytearray(good)
        what = _flip_bits(data, rng)
        db.write_bytes(bytes(data))
        return what
    if kind < 0.55:
        data = bytearray(good)
        what = _zero_page(data, rng)
        db.write_bytes(bytes(data))
        return what
    db.write_bytes(good)
    return _edit_row(db, rng)


def _forget(db: Path) -> None:
    """No database at ``db``, and none of SQLite's files beside it (-wal, -shm, a hot -journal:
    a damaged header may have turned the database back to rollback journalling)."""
    for extra in (db, *db.parent.glob(db.name + "-*")):
        if extra.exists():
            extra.unlink()


def _settled(db: Path) -> bytes:
    """The database file with nothing left in its write-ahead log (every connection closed)."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return db.read_bytes()


def _cache_notes(result: DepmodResult) -> list[str]:
    return [n for n in result.extra if "scan cache" in n]


def test_damaged_database_never_changes_the_outputs(tmp_path: Path) -> None:
    base = tmp_path / "root"
    root = _make_tree(base)
    truths = {}
    for sc in SCENARIOS:
        sc.apply(root)
        truths[sc.name] = _truth(base, root)
        sc.undo(root)
    db = tmp_path / "c.db"
    first = run(_options(base, db))
    assert (dict(first.files), first.messages) == truths["again"]
    good = _settled(db)
    rng = random.Random(SEED)
    wrong: list[str] = []
    for n in range(DAMAGES):
        sc = SCENARIOS[n % len(SCENARIOS)]
        what = _damage(db, good, rng)
        sc.apply(root)
        with time_limit(TIME_BOUND, f"damage {n}"):
            result = run(_options(base, db))
        want_files, want_messages = truths[sc.name]
        got = (dict(result.files), _on_disk(root, list(want_files)), result.messages)
        if got != (want_files, want_files, want_messages):
            wrong.append(f"damage {n} ({what}), then {sc.name}: "
                         + ", ".join(sorted(name for name in want_files if got[1].get(name) != want_files[name]
                                            or got[0].get(name) != want_files[name]))
                         + ("" if result.messages == want_messages else " and the messages"))
        assert len(_cache_notes(result)) <= 1, result.extra
        sc.undo(root)
        # back to an undamaged cache for the tree as it was: the next damage starts from there
        _forget(db)
        db.write_bytes(good)
        again = run(_options(base, db))
        assert (dict(again.files), again.messages) == truths["again"], f"after damage {n}"
        assert _cache_notes(again) == [], (n, what, again.extra)
        good = _settled(db)
    assert not wrong, f"{len(wrong)} of {DAMAGES} damages changed the outputs:\n" + "\n".join(wrong[:20])


# --------------------------------------------------------------------------
# The records table alone, edited by hypothesis
# --------------------------------------------------------------------------

class Stored:
    """A database holding the records of the tree's modules, their keys and the modules."""

    def __init__(self, root: Path, db: bytes, keys: list[tuple[Any, str]], modules: list[Module]) -> None:
        self.root, self.db, self.keys, self.modules = root, db, keys, modules

    def __repr__(self) -> str:  # what hypothesis prints of a failing example
        return f"Stored({str(self.root)!r}, <{len(self.db)} bytes>, <{len(self.keys)} keys>)"


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Stored:
    from moddeps.read.scan import scan_tree

    tmp = tmp_path_factory.mktemp("cachefuzz")
    root = _make_tree(tmp / "stored")
    db = tmp / "stored.db"
    c = ScanCache(str(db))
    modules = list(scan_tree(str(root), jobs=1, cache=c).modules)
    c.close()
    keys = [(cache_mod.file_key(f"{root}/{m.path}"), m.path) for m in modules]
    assert all(k is not None for k, _shown in keys)
    return Stored(root, _settled(db), keys, modules)


_EDIT = st.tuples(st.integers(0, MODULES - 1), st.sampled_from(["record", "key", "shown", "swap", "name"]),
                  st.integers(0, 1 << 20), st.integers(0, 7))


@fuzz(150)
@given(edits=st.lists(_EDIT, min_size=1, max_size=4))
def test_fuzz_damaged_record_is_missed_never_misread(stored: Stored, edits: list[tuple[int, str, int, int]]) -> None:
    good, keys, modules = stored.db, stored.keys, stored.modules
    db = stored.root.parent / "edited.db"
    _forget(db)
    db.write_bytes(good)
    con = sqlite3.connect(db, isolation_level=None)
    table = cache_mod.RECORDS_TABLE
    paths = [k[0] for k, _shown in keys]
    keyed = f"SELECT path, size, mtime_ns, ctime_ns, inode, device, shown FROM {table}"
    original = dict(con.execute(f"SELECT path, record FROM {table}").fetchall())
    original_keys = {row[0]: row for row in con.execute(keyed)}
    for row, what, at, bit in edits:
        path = paths[row]
        record, shown = con.execute(f"SELECT record, shown FROM {table} WHERE path = ?", (path,)).fetchone()
        if what == "record":
            b = bytearray(record)
            b[at % len(b)] ^= 1 << bit
            con.execute(f"UPDATE {table} SET record = ? WHERE path = ?", (bytes(b), path))
        elif what == "key":
            columns = [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description
                       if d[0] in ("size", "mtime_ns", "ctime_ns", "inode", "device")]
            column = columns[at % len(columns)]
            con.execute(f"UPDATE {table} SET {column} = ({column} | ?1) - ({column} & ?1) WHERE path = ?2",
                        (1 << bit, path))
        elif what == "shown":
            con.execute(f"UPDATE {table} SET shown = ? WHERE path = ?", (shown + "x", path))
        elif what == "swap":
            other = paths[at % len(paths)]
            if other != path:
                (theirs,) = con.execute(f"SELECT record FROM {table} WHERE path = ?", (other,)).fetchone()
                con.execute(f"UPDATE {table} SET record = ? WHERE path = ?", (theirs, path))
                con.execute(f"UPDATE {table} SET record = ? WHERE path = ?", (record, other))
        else:  # (from the record as stored: an earlier edit may have damaged this one)
            m = recordcodec.unpack(original[path])
            con.execute(f"UPDATE {table} SET record = ? WHERE path = ?",
                        (recordcodec.pack(dataclasses.replace(m, name=modules[at % len(modules)].name + "_")), path))
    edited = {path for path, record in con.execute(f"SELECT path, record FROM {table}") if record != original[path]}
    # rows whose key or shown path differ now: a miss, as for a changed file
    rekeyed = {row[0] for row in con.execute(keyed) if row != original_keys[row[0]]}
    con.close()
    c = ScanCache(str(db))
    try:
        got = c.get_many(keys)
        for found, want, path in zip(got, modules, paths):
            if path in rekeyed:
                assert found is None or found == want, f"{want.path}: a damaged record was read as another module"
            elif path in edited:
                assert found is None, f"{want.path}: a damaged record was read as {found}"
            else:
                assert found == want, f"{want.path}: an intact record was not served"
        if edited - rekeyed:
            assert c.problem is not None and "\n" not in c.problem and "damaged module record" in c.problem
        else:
            assert c.problem is None
        # the scan reads the missed modules again: the right modules, and their records are stored again
        from moddeps.read.scan import scan_tree

        assert list(scan_tree(str(stored.root), jobs=1, cache=c).modules) == modules
        assert c.get_many(keys) == modules
    finally:
        c.close()


def test_the_fixture_is_sealed_at_all(tmp_path: Path) -> None:
    """The targets above are not vacuous: the tree has records, results and states to damage."""
    base = tmp_path / "root"
    _make_tree(base)
    db = tmp_path / "c.db"
    run(_options(base, db))
    con = sqlite3.connect(db)
    counts = [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in (cache_mod.RECORDS_TABLE, cache_mod.OUTPUTS_TABLE, cache_mod.STATES_TABLE)]
    con.close()
    assert counts == [MODULES, 1, 1]
    shutil.rmtree(base)
