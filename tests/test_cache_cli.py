"""The scan cache's upkeep: ``moddeps cache info|prune`` and the automatic bound.

Rows carry no write time: they are dated by marks (a table's largest rowid and
the time, taken after each run that wrote).  These tests check the property
that relies on -- a row written again gets the largest rowid -- and that
pruning drops exactly the old rows, the old tables, and nothing a later scan
would read differently.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from moddeps.read import cache as sc
from moddeps.read.cache import ScanCache
from moddeps.read.scan import scan_tree

SAMPLE = Path(__file__).resolve().parent.parent / "sample_modules" / "lib" / "modules" / "6.1.0-50-cloud-amd64"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    dst = tmp_path / "tree"
    shutil.copytree(SAMPLE, dst)
    return dst


def _scan(tree: Path, db: Path) -> list[object]:
    c = ScanCache(str(db))
    try:
        return list(scan_tree(str(tree), jobs=1, cache=c).modules)
    finally:
        c.close()


def _rows(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        return {p: r for p, r in con.execute(f"SELECT path, rowid FROM {sc.RECORDS_TABLE}")}
    finally:
        con.close()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "moddeps", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_a_row_written_again_gets_the_largest_rowid(tree: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    _scan(tree, db)
    before = _rows(db)
    changed = tree / "kernel" / "samples" / "mdx" / "mdx_noexit.ko"
    changed.write_bytes(changed.read_bytes())  # a new ctime: read and stored again
    os.utime(changed, ns=(1, 2))
    _scan(tree, db)
    after = _rows(db)
    (path,) = [p for p in after if after[p] != before.get(p)]
    assert path.endswith("mdx_noexit.ko") and after[path] == max(after.values()) > max(before.values())


def test_older_than_drops_only_rows_dated_before_the_limit(tree: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    _scan(tree, db)
    sc.maintain(str(db), max_size=None)  # the first run's rows are dated now
    con = sqlite3.connect(db)
    with con:
        con.execute(f"UPDATE {sc.MARKS_TABLE} SET at = at - 10 * 86400")  # ... ten days ago
    con.close()
    first = _rows(db)
    changed = tree / "kernel" / "samples" / "mdx" / "mdx_noexit.ko"
    changed.write_bytes(changed.read_bytes())
    _scan(tree, db)
    sc.maintain(str(db), max_size=None)
    assert sc.prune(str(db), older_than=30 * 86400).deleted_rows == 0
    r = sc.prune(str(db), older_than=7 * 86400)
    left = _rows(db)
    assert r.deleted_rows == len(first) - 1 and [p for p in left] == [p for p in left if p.endswith("mdx_noexit.ko")]
    assert len(left) == 1
    # what is left and what is read again give the modules a cold scan gives
    assert _scan(tree, db) == _scan(tree, tmp_path / "cold.sqlite3")


def test_max_size_drops_the_oldest_first_and_gives_the_space_back(tree: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    other = tmp_path / "other"
    shutil.copytree(SAMPLE, other)
    con = sqlite3.connect(db)  # a cache of 4 KiB pages (moddeps makes 64 KiB ones): a few rows free some
    con.execute("PRAGMA page_size=4096")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    _scan(other, db)
    sc.maintain(str(db), max_size=None)
    con = sqlite3.connect(db)
    with con:  # padding that makes the older rows big
        con.execute(f"UPDATE {sc.MARKS_TABLE} SET at = at - 100")
        con.execute("CREATE TABLE filler AS SELECT zeroblob(2000000) AS b")
    con.close()
    _scan(tree, db)
    stored = len(_rows(db))
    size = sc.file_size(str(db))
    r = sc.prune(str(db), max_size=size // 2)
    assert r.dropped_tables == ("filler",) and r.size_after < size // 2
    # dropping the old table was enough: every module row is kept
    assert len(_rows(db)) == stored and any(p.startswith(str(other)) for p in _rows(db))
    r = sc.prune(str(db), max_size=sc.file_size(str(db)) - 1)
    left = _rows(db)
    assert r.deleted_rows > 0 and left and all(p.startswith(str(tree)) for p in left)  # the older tree went first


def test_automatic_bound(tree: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    env = {"MODDEPS_CACHE": str(db)}
    assert cli("scan", "--json", str(tree), env=env).returncode == 0
    assert _rows(db)
    r = cli("scan", "--json", str(tree), env={**env, "MODDEPS_CACHE_MAX_SIZE": "1k"})
    assert r.returncode == 0 and "over its bound (1.0 KiB" in r.stderr
    assert not _rows(db)
    bad = cli("scan", "--json", str(tree), env={**env, "MODDEPS_CACHE_MAX_SIZE": "lots"})
    assert bad.returncode == 64 and "MODDEPS_CACHE_MAX_SIZE" in bad.stderr


def test_cli_info_and_prune(tree: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    assert cli("scan", "--cache", str(db), "--json", str(tree)).returncode == 0
    con = sqlite3.connect(db)
    with con:
        con.execute("CREATE TABLE module_records (path TEXT, record BLOB)")  # what an earlier version left
        con.execute("INSERT INTO module_records VALUES ('x', zeroblob(5000))")
    con.close()
    info = cli("cache", "info", "--cache", str(db))
    assert info.returncode == 0, info.stderr
    lines = [line.split("\t") for line in info.stdout.splitlines()]
    tables = {f[1]: f[2:] for f in lines if f[0] == "table"}
    assert tables["module_records"] == ["1", "5001", "old"]
    assert tables[sc.RECORDS_TABLE][2] == "current" and int(tables[sc.RECORDS_TABLE][0]) > 0
    assert lines[0][:2] == ["cache", str(db)] and any(f[0] == "written" and f[1] != "-" for f in lines)
    pruned = cli("cache", "prune", "--cache", str(db))
    assert pruned.returncode == 0 and "1 old table(s) dropped (module_records)" in pruned.stdout
    assert "module_records\t" not in cli("cache", "info", "--cache", str(db)).stdout
    for bad in (("--older-than", "soon"), ("--max-size", "-1"), ("--max-size", "3q")):
        r = cli("cache", "prune", "--cache", str(db), *bad)
        assert r.returncode == 64 and "moddeps: error:" in r.stderr, bad
    absent = cli("cache", "info", "--cache", str(tmp_path / "none.sqlite3"))
    assert absent.returncode == 0 and absent.stdout.splitlines()[0].endswith("\t0\tabsent")


@pytest.mark.parametrize(("text", "value"), [("500M", 500 << 20), ("2G", 2 << 30), ("64k", 64 << 10),
                                             ("1.5GiB", 3 << 29), ("1000", 1000), ("10MB", 10 << 20)])
def test_parse_size(text: str, value: int) -> None:
    assert sc.parse_size(text) == value


@pytest.mark.parametrize(("text", "value"), [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("2w", 1209600),
                                             ("7", 7 * 86400), ("45s", 45)])
def test_parse_age(text: str, value: float) -> None:
    assert sc.parse_age(text) == value


@pytest.mark.parametrize("text", ["", "M", "-5M", "3q", "nan", "inf"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        sc.parse_size(text)
