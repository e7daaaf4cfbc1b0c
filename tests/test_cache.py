"""The SQLite scan cache: hits, invalidation, damage and concurrency never change results."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from moddeps.read import cache as cache_mod
from moddeps.read.cache import ScanCache
from moddeps.read.scan import scan_tree

SAMPLE_TREE = Path(__file__).resolve().parent.parent / "sample_modules/lib/modules/6.1.0-50-cloud-amd64"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    dst = tmp_path / "lib/modules/6.1.0-50-cloud-amd64"
    shutil.copytree(SAMPLE_TREE, dst)
    return dst


def scan(tree: Path, db: Path | None) -> tuple[object, ScanCache | None]:
    c = ScanCache(str(db)) if db is not None else None
    try:
        return scan_tree(str(tree), jobs=1, cache=c).modules, c
    finally:
        if c is not None:
            c.close()


def test_warm_scan_equals_cold_and_reads_nothing(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "c.db"
    cold, _ = scan(tree, None)
    first, _ = scan(tree, db)
    assert first == cold
    import moddeps.read.pool as pool

    def boom(*a: object, **k: object) -> object:
        raise AssertionError("a module was read although the cache holds it")

    monkeypatch.setattr(pool, "_read_uncached", boom)
    warm, c = scan(tree, db)
    assert warm == cold and c is not None and c.problem is None


def test_changed_module_is_read_again(tree: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    scan(tree, db)
    victim = tree / "kernel/samples/mdx/mdx_exporter.ko"
    other = tree / "kernel/samples/mdx/mdx_noexit.ko"
    victim.write_bytes(other.read_bytes())  # same name, new content
    os.utime(victim, ns=(1, 1))
    warm, _ = scan(tree, db)
    cold, _ = scan(tree, None)
    assert warm == cold
    exporter = next(m for m in warm if m.name == "mdx_exporter")  # type: ignore[attr-defined]
    assert exporter.exports == ()


def test_reader_schema_change_invalidates(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "c.db"
    scan(tree, db)
    monkeypatch.setattr(cache_mod, "READER_SCHEMA", 999)
    c = ScanCache(str(db))
    keys = [(cache_mod.file_key(str(p)), str(p)) for p in tree.rglob("*.ko")]
    assert c.get_many(keys) == [None] * len(keys)
    c.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "directory"])
def test_damaged_database_is_ignored_not_trusted(tree: Path, tmp_path: Path, damage: str) -> None:
    db = tmp_path / "c.db"
    scan(tree, db)
    if damage == "garbage":
        db.write_bytes(b"this is not sqlite" * 100)
    elif damage == "truncated":
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3])
        for extra in tmp_path.glob("c.db-*"):
            extra.unlink()
    else:
        db.unlink()
        db.mkdir()
    cold, _ = scan(tree, None)
    warm, c = scan(tree, db)
    assert warm == cold
    if damage != "truncated":  # a truncated file may still open; it must still give the right answer
        assert c is not None and c.problem


def _writer(args: tuple[str, str]) -> int:
    tree, db = args
    c = ScanCache(db)
    mods = scan_tree(tree, jobs=1, cache=c).modules
    c.close()
    return len(mods)


def test_concurrent_writers(tree: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        counts = pool.map(_writer, [(str(tree), db)] * 8)
    assert counts == [13] * 8
    c = ScanCache(db)
    assert c.problem is None
    c.close()


def test_depmod_rerun_comes_from_the_output_cache_and_matches(tree: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from moddeps.depmod.run import DepmodOptions, run

    base = tmp_path
    for cyc in ("mdx_cycle_a.ko", "mdx_cycle_b.ko"):
        (tree / "kernel/samples/mdx" / cyc).unlink()
    db = str(tmp_path / "c.db")
    opts = DepmodOptions(version=tree.name, basedir=str(base), config=(str(tmp_path / "none"),), cache=db,
                         fsync=False)
    second = run(opts)
    assert second.tree is not None  # computed
    import moddeps.read.scan as scanmod  # (where a run that walks takes its reader from)

    def boom(*a: object, **k: object) -> object:
        raise AssertionError("recomputed although nothing changed")

    monkeypatch.setattr(scanmod, "read_layout", boom)
    third = run(opts)
    assert third.tree is None  # from the cache
    assert third.files == second.files and third.messages == second.messages
    monkeypatch.undo()
    # one module touched: its record is read again, and as depmod reads the
    # same of it, the previous result stands (the fresh run below agrees)
    victim = tree / "kernel/samples/mdx/mdx_noexit.ko"
    os.utime(victim, ns=(10**18, 10**18))
    fourth = run(opts)
    assert fourth.tree is None and fourth.files == second.files
    nocache = run(DepmodOptions(version=tree.name, basedir=str(base), config=(str(tmp_path / "none"),),
                                dry_run=True))
    assert dict(nocache.files) == dict(fourth.files)


def _depmod_opts(tree: Path, tmp_path: Path, **kw: object) -> object:
    from moddeps.depmod.run import DepmodOptions

    for cyc in ("mdx_cycle_a.ko", "mdx_cycle_b.ko"):
        with_cycle = tree / "kernel/samples/mdx" / cyc
        if with_cycle.exists():
            with_cycle.unlink()
    return DepmodOptions(version=tree.name, basedir=str(tmp_path), config=(str(tmp_path / "none"),),
                         cache=str(tmp_path / "c.db"), fsync=False, **kw)  # type: ignore[arg-type]


def test_warm_rerun_leaves_the_very_files_it_wrote(tree: Path, tmp_path: Path) -> None:
    """Unchanged inputs and untouched outputs: nothing is rewritten (same inodes), same result."""
    from moddeps.depmod.run import run

    opts = _depmod_opts(tree, tmp_path)
    first = run(opts)  # type: ignore[arg-type]
    before = {name: os.stat(tree / name) for name, _ in first.files}
    again = run(opts)  # type: ignore[arg-type]
    assert again.tree is None
    assert again.files == first.files and again.messages == first.messages
    for name, st in before.items():
        now = os.stat(tree / name)
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), name


@pytest.mark.parametrize("tamper", ["delete", "rewrite", "truncate"])
def test_an_output_changed_by_someone_else_is_computed_and_written_again(tree: Path, tmp_path: Path,
                                                                          tamper: str) -> None:
    from moddeps.depmod.run import run

    opts = _depmod_opts(tree, tmp_path)
    first = run(opts)  # type: ignore[arg-type]
    target = tree / "modules.alias.bin"
    if tamper == "delete":
        target.unlink()
    elif tamper == "rewrite":  # another tool rewrote it in place, same size
        data = bytearray(target.read_bytes())
        data[-1] ^= 0xFF
        target.write_bytes(bytes(data))
    else:
        with open(target, "r+b") as fh:
            fh.truncate(10)
    again = run(opts)  # type: ignore[arg-type]
    assert again.tree is not None  # recomputed, not trusted
    assert again.files == first.files
    assert target.read_bytes() == dict(first.files)["modules.alias.bin"]


def test_another_output_directory_is_written_not_skipped(tree: Path, tmp_path: Path) -> None:
    from moddeps.depmod.run import run

    first = run(_depmod_opts(tree, tmp_path))  # type: ignore[arg-type]
    out = tmp_path / "elsewhere"
    second = run(_depmod_opts(tree, tmp_path, outdir=str(out)))  # type: ignore[arg-type]
    written = out / "lib/modules" / tree.name
    assert {name: (written / name).read_bytes() for name, _ in second.files} == dict(first.files)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_big_scan_is_stored_in_batches_while_it_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        jobs: int) -> None:
    """More modules than one batch (512): the cache receives them in several batches during the read,
    and afterwards holds every module (a rerun reads nothing and gives the same records)."""
    import moddeps.read.pool as pool
    from tests.kobuild import Export, build_ko

    root = tmp_path / "lib/modules/6.1.0-1-test"
    (root / "kernel").mkdir(parents=True)
    for i in range(1100):
        (root / f"kernel/m{i}.ko").write_bytes(build_ko(modinfo=["license=GPL"],
                                                        exports=[Export(name=f"s{i}", crc=i)], undefined=["printk"]))
    calls: list[int] = []
    real_put = ScanCache.put_many

    def counting(self: ScanCache, entries: object) -> None:
        entries = list(entries)  # type: ignore[call-overload]
        calls.append(len(entries))
        real_put(self, entries)

    monkeypatch.setattr(ScanCache, "put_many", counting)
    db = tmp_path / "c.db"
    c = ScanCache(str(db))
    first = scan_tree(str(root), jobs=jobs, cache=c).modules
    c.close()
    assert sum(calls) == 1100 and len(calls) >= 3 and max(calls) <= 512

    def boom(*a: object, **k: object) -> object:
        raise AssertionError("a module was read although the cache holds it")

    monkeypatch.setattr(pool, "_read_uncached", boom)
    c = ScanCache(str(db))
    again = scan_tree(str(root), jobs=jobs, cache=c).modules
    assert again == first and c.problem is None
    c.close()


# A rerun after a few module files changed keeps the previous result when
# what depmod reads of them is the same (moddeps.depmod.rerun._update_previous).

def _small_tree(tmp_path: Path) -> Path:
    from tests.kobuild import Export, build_ko

    root = tmp_path / "lib/modules/6.1.0-1-test"
    (root / "kernel").mkdir(parents=True)
    (root / "kernel/lib.ko").write_bytes(build_ko(modinfo=["license=GPL", "alias=lib-alias"],
                                                  exports=[Export(name="lib_sym", crc=1)]))
    _write_user(root)
    (root / "modules.order").write_text("kernel/lib.ko\nkernel/user.ko\n")
    return root


def _write_user(root: Path, *, description: str = "one", alias: str = "user-alias", export: str = "user_sym",
                needs: str = "lib_sym") -> None:
    from tests.kobuild import Export, build_ko

    (root / "kernel/user.ko").write_bytes(build_ko(
        modinfo=["license=GPL", f"description={description}", f"alias={alias}", "srcversion=" + description * 4],
        exports=[Export(name=export, crc=2)], undefined=[needs]))


def _small_run(root: Path, tmp_path: Path, **kw: object) -> object:
    from moddeps.depmod.run import DepmodOptions, run

    return run(DepmodOptions(version=root.name, basedir=str(tmp_path), config=(str(tmp_path / "none"),),
                             cache=str(tmp_path / "c.db"), fsync=False, **kw))  # type: ignore[arg-type]


def _fresh(root: Path, tmp_path: Path) -> dict[str, bytes]:
    """What a run without any cache computes for the tree as it is now."""
    from moddeps.depmod.run import DepmodOptions, run

    result = run(DepmodOptions(version=root.name, basedir=str(tmp_path), config=(str(tmp_path / "none"),),
                               dry_run=True))
    return dict(result.files)


def _inodes(root: Path, names: object) -> dict[str, tuple[int, int]]:
    return {n: (os.stat(root / n).st_ino, os.stat(root / n).st_mtime_ns) for n in names}  # type: ignore[attr-defined]


@pytest.mark.parametrize("change", ["touch", "rebuilt"])
def test_a_module_changed_in_nothing_depmod_reads_keeps_the_previous_result(tmp_path: Path, change: str) -> None:
    root = _small_tree(tmp_path)
    first = _small_run(root, tmp_path)
    names = [n for n, _ in first.files]  # type: ignore[attr-defined]
    before = _inodes(root, names)
    user = root / "kernel/user.ko"
    if change == "touch":
        st = user.stat()
        os.utime(user, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    else:  # rebuilt: other bytes, other description and srcversion, the same symbols and aliases
        old = user.read_bytes()
        _write_user(root, description="two")
        assert user.read_bytes() != old
    again = _small_run(root, tmp_path)
    assert again.tree is None  # type: ignore[attr-defined]  # nothing was computed
    assert again.files == first.files and again.messages == first.messages  # type: ignore[attr-defined]
    assert _inodes(root, names) == before  # nothing was written
    assert dict(again.files) == _fresh(root, tmp_path)  # type: ignore[attr-defined]
    # the new record is in the scan cache: the next rerun is the warm one
    third = _small_run(root, tmp_path)
    assert third.tree is None and third.files == first.files  # type: ignore[attr-defined]


@pytest.mark.parametrize(("change", "computed"), [("alias", False), ("import", False), ("export", False),
                                                  ("unreadable", True)])
def test_a_module_changed_in_what_depmod_reads_gives_the_new_result(tmp_path: Path, change: str,
                                                                    computed: bool) -> None:
    """New aliases, imports or exports: the groups they touch are rendered
    again (moddeps.depmod.incremental); a module that became unreadable:
    everything is computed again."""
    root = _small_tree(tmp_path)
    first = _small_run(root, tmp_path)
    kw = {"alias": {"alias": "user-alias-2"}, "export": {"export": "user_sym_2"}, "import": {"needs": "nothing"}}
    if change == "unreadable":
        (root / "kernel/user.ko").write_bytes(b"\x7fELF broken")
    else:
        _write_user(root, **kw[change])  # type: ignore[arg-type]
    again = _small_run(root, tmp_path)
    assert (again.tree is not None) == computed  # type: ignore[attr-defined]
    got = dict(again.files)  # type: ignore[attr-defined]
    assert got != dict(first.files) and got == _fresh(root, tmp_path)  # type: ignore[attr-defined]
    assert {n: (root / n).read_bytes() for n in got} == got


def test_a_changed_module_whose_old_record_is_gone_is_computed_again(tmp_path: Path) -> None:
    import sqlite3

    root = _small_tree(tmp_path)
    first = _small_run(root, tmp_path)
    with sqlite3.connect(tmp_path / "c.db") as db:
        db.execute(f"DELETE FROM {cache_mod.RECORDS_TABLE} WHERE path LIKE '%user.ko'")
    db.close()
    _write_user(root, description="two")
    again = _small_run(root, tmp_path)
    assert again.tree is not None and again.files == first.files  # type: ignore[attr-defined]


def test_many_changed_modules_are_computed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _small_tree(tmp_path)
    first = _small_run(root, tmp_path)
    monkeypatch.setattr(cache_mod, "FEW", 1)
    for name in ("lib.ko", "user.ko"):
        st = (root / "kernel" / name).stat()
        os.utime(root / "kernel" / name, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    again = _small_run(root, tmp_path)
    assert again.tree is not None and again.files == first.files  # type: ignore[attr-defined]


@pytest.mark.parametrize("other", ["option", "output touched"])
def test_a_changed_module_with_other_changes_is_computed_again(tmp_path: Path, other: str) -> None:
    root = _small_tree(tmp_path)
    first = _small_run(root, tmp_path)
    _write_user(root, description="two")  # alone, this would keep the previous result
    kw: dict[str, object] = {}
    if other == "option":
        kw["warn_dups"] = True
    else:
        (root / "modules.alias").write_bytes(b"# someone else's\n")
    again = _small_run(root, tmp_path, **kw)
    assert again.tree is not None  # type: ignore[attr-defined]
    assert dict(again.files) == _fresh(root, tmp_path)  # type: ignore[attr-defined]
    assert again.files == first.files  # type: ignore[attr-defined]


# The ctime in every identity (issue 15, item 2): a file rewritten in place
# with its size kept and its mtime put back (touch -r, os.utime) still has
# another ctime, which no user can set.

def _rewrite_in_place(path: Path, data: bytes) -> None:
    """Overwrite ``path`` (same inode) with ``data`` of the same size and put
    its atime and mtime back; again until its ctime differs (a coarse
    ctime clock may not have ticked since it was last changed)."""
    before = path.stat()
    assert len(data) == before.st_size
    while True:
        with open(path, "r+b") as fh:
            fh.write(data)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        now = path.stat()
        if now.st_ctime_ns != before.st_ctime_ns:
            break
        import time

        time.sleep(0.01)
    assert (now.st_size, now.st_mtime_ns, now.st_ino, now.st_dev) == (
        before.st_size, before.st_mtime_ns, before.st_ino, before.st_dev)
    assert path.read_bytes() == data


def test_a_module_rewritten_with_its_size_and_mtime_kept_is_read_again(tmp_path: Path) -> None:
    from tests.kobuild import Export, build_ko

    root = tmp_path / "lib/modules/6.1.0-1-test"
    (root / "kernel").mkdir(parents=True)
    old = build_ko(modinfo=["license=GPL"], exports=[Export(name="sym_aaaa", crc=1)])
    new = build_ko(modinfo=["license=GPL"], exports=[Export(name="sym_bbbb", crc=1)])
    assert len(old) == len(new) and old != new
    victim = root / "kernel/victim.ko"
    victim.write_bytes(old)
    db = tmp_path / "c.db"
    first, _ = scan(root, db)
    assert [e.name for e in first[0].exports] == ["sym_aaaa"]  # type: ignore[index]
    _rewrite_in_place(victim, new)
    again, c = scan(root, db)
    assert [e.name for e in again[0].exports] == ["sym_bbbb"]  # type: ignore[index]
    assert again == scan(root, None)[0]
    assert c is not None and c.problem is None  # a changed file, not a damaged cache


def test_depmod_after_a_module_rewritten_with_its_size_and_mtime_kept(tmp_path: Path) -> None:
    """depmod reads the module again (its symbol renamed) and writes what a run without cache writes."""
    root = _small_tree(tmp_path)
    _small_run(root, tmp_path)
    user = root / "kernel/user.ko"
    old = user.read_bytes()
    _write_user(root, export="user_zzz")  # the same length as user_sym
    new = user.read_bytes()
    user.write_bytes(old)
    os.utime(user, ns=(10**18, 10**18))
    first = _small_run(root, tmp_path)  # the cache knows the file as it is now
    assert b"user_sym" in dict(first.files)["modules.symbols"]  # type: ignore[attr-defined]
    _rewrite_in_place(user, new)
    again = _small_run(root, tmp_path)
    got = dict(again.files)  # type: ignore[attr-defined]
    assert b"user_zzz" in got["modules.symbols"] and b"user_sym" not in got["modules.symbols"]
    assert got == _fresh(root, tmp_path)
    assert {n: (root / n).read_bytes() for n in got} == got


@pytest.mark.parametrize("name", ["modules.alias", "modules.dep.bin"])
def test_an_output_edited_with_its_size_and_mtime_kept_is_written_again(tmp_path: Path, name: str) -> None:
    root = _small_tree(tmp_path)
    first = _small_run(root, tmp_path)
    target = root / name
    data = bytearray(target.read_bytes())
    data[-2] ^= 0x01
    _rewrite_in_place(target, bytes(data))
    again = _small_run(root, tmp_path)
    assert again.tree is not None  # type: ignore[attr-defined]  # not trusted: computed again
    assert again.files == first.files  # type: ignore[attr-defined]
    assert target.read_bytes() == dict(first.files)[name]  # type: ignore[attr-defined]


def test_an_output_whose_bytes_differ_from_its_identity_is_not_trusted(tmp_path: Path) -> None:
    """Even with every stat field the same (an edit within one tick of a
    coarse ctime clock), the CRC of the bytes read tells the file changed."""
    from moddeps.depmod import rerun as runmod

    root = _small_tree(tmp_path)
    first = _small_run(root, tmp_path)
    names = [n for n, _ in first.files]  # type: ignore[attr-defined]
    ids = runmod._output_identities(str(root), names)
    assert ids is not None and [i[0] for i in ids] == names
    assert runmod._outputs_unchanged(str(root), ids) == list(first.files)  # type: ignore[attr-defined]
    for k in range(1, 7):  # each field of one identity: size, mtime, ctime, inode, device, CRC
        wrong = list(ids)
        fields: list[Any] = list(wrong[0])
        fields[k] += 1
        wrong[0] = wrong[0]._make(fields)
        assert runmod._outputs_unchanged(str(root), wrong) is None, k


def test_a_module_path_sqlite_cannot_store_is_read_the_others_cached(tmp_path: Path) -> None:
    """A file name that is not UTF-8 (a lone surrogate in Python) cannot be bound
    by SQLite: that module is read every time, the others come from the cache,
    and the cache has nothing to say (it used to be disabled for the whole run)."""
    from tests.kobuild import Export, build_ko

    root = tmp_path / "lib/modules/6.1.0-1-test"
    (root / "kernel").mkdir(parents=True)
    odd = os.path.join(os.fsencode(root / "kernel"), b"odd\xff.ko")
    with open(odd, "wb") as fh:
        fh.write(build_ko(modinfo=["license=GPL"], exports=[Export(name="odd_sym", crc=1)]))
    (root / "kernel/plain.ko").write_bytes(build_ko(modinfo=["license=GPL"], undefined=["odd_sym"]))
    db = tmp_path / "c.db"
    first, c = scan(root, db)
    assert c is not None and c.problem is None
    c = ScanCache(str(db))
    keys = [(cache_mod.file_key(os.fsdecode(p)), s) for p, s in ((odd, "kernel/odd\udcff.ko"),
                                                                 (os.fsencode(root / "kernel/plain.ko"),
                                                                  "kernel/plain.ko"))]
    got = c.get_many(keys)
    assert got[0] is None and got[1] is not None and got[1].name == "plain"
    assert c.problem is None
    c.close()
    again, c = scan(root, db)
    assert again == first and c is not None and c.problem is None


def test_inode_and_device_numbers_beyond_63_bits_are_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite stores signed 64-bit integers: a key's inode or device with the top bit set is kept
    as the signed number of the same bits, stored and found again."""
    from moddeps.model import Module

    real = os.stat(tmp_path)

    class Big:
        st_size, st_mtime_ns, st_ctime_ns = real.st_size, real.st_mtime_ns, real.st_ctime_ns
        st_ino, st_dev = (1 << 64) - 5, (1 << 63) + 7

    monkeypatch.setattr(cache_mod.os, "stat", lambda path: Big)
    key = cache_mod.file_key("/nonexistent/big.ko")
    monkeypatch.undo()
    assert key is not None and key[4:] == (-5, -(1 << 63) + 7)
    other = cache_mod.file_key(str(tmp_path))
    assert other is not None and key != other
    c = ScanCache(str(tmp_path / "c.db"))
    module = Module("big", "big.ko")
    c.put_many([(key, "big.ko", module)])
    assert c.get_many([(key, "big.ko")]) == [module]
    assert c.problem is None
    c.close()


def test_a_new_cache_has_large_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    # 64 KiB pages: a first run of a 4,000-module tree writes ~800 pages instead of ~9,800
    new, old = tmp_path / "new.sqlite3", tmp_path / "old.sqlite3"
    con = sqlite3.connect(old)
    con.execute("PRAGMA page_size=4096")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    for path, size in ((new, 65536), (old, 4096)):
        c = ScanCache(str(path))
        assert c.usable
        c.close()
        con = sqlite3.connect(path)
        assert con.execute("PRAGMA page_size").fetchone()[0] == size
        con.close()


@pytest.mark.parametrize("owned", [True, False])
def test_the_command_leaves_its_connection_to_the_process_end(tree: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch, owned: bool) -> None:
    """The moddeps command (which leaves by os._exit) does not close its connection: SQLite's close
    of the last one would checkpoint the WAL into the database; what it wrote stays in the WAL,
    committed, for the next connection.  A program importing moddeps gets its connection closed."""
    from moddeps import process

    monkeypatch.setattr(process, "_owned", owned)
    monkeypatch.setattr(process, "kept", [])
    db = tmp_path / "c.db"
    wal = Path(f"{db}-wal")
    fresh, _ = scan(tree, db)  # (a first run: records, then closed)
    kept = [c for c in process.kept if isinstance(c, sqlite3.Connection)]
    if owned:
        assert len(kept) == 1 and not kept[0].in_transaction
        assert wal.stat().st_size > 0  # not checkpointed: the records are in the WAL
    else:
        assert kept == [] and (not wal.exists() or wal.stat().st_size == 0)  # checkpointed on close
    # the next run (another connection) reads every record from the cache; maintenance works beside
    # the connection left open (no lock held: a lock would make these wait, then fail)
    again, _ = scan(tree, db)
    assert again == fresh
    assert cache_mod.maintain(str(db), max_size=None) is None
    pruned = cache_mod.prune(str(db), max_size=1)
    assert pruned.deleted_rows > 0
    for c in process.kept:
        c.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("in_writer", [False, True])
def test_in_the_command_only_the_writer_threads_commits_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    in_writer: bool) -> None:
    """A commit past wal_autocheckpoint's 4 MiB copies the WAL into the database: in the moddeps
    command, only the writer thread's (beside the caller's reads and writes), never the caller's own
    (the result, a renewal, the mark), so that the end of a run waits on no copy."""
    from moddeps import process

    monkeypatch.setattr(process, "_owned", True)
    monkeypatch.setattr(process, "kept", [])
    db = tmp_path / "c.db"
    c = ScanCache(str(db))
    assert c._db is not None
    big = os.urandom(6 << 20)
    c._execute_all([(f"INSERT OR REPLACE INTO {cache_mod.STATES_TABLE} (dirname, digest, state, seal)"
                     " VALUES (?, ?, ?, ?)", ("/d", b"k", big, b"s"))], in_writer=in_writer)
    assert (db.stat().st_size > len(big)) is in_writer  # copied into the database, or still in the WAL only
    assert c._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == (4 << 20) // 65536  # (as it was)
    c.close()
    con = sqlite3.connect(db)  # what either wrote is there for the next connection
    assert con.execute(f"SELECT state FROM {cache_mod.STATES_TABLE}").fetchone()[0] == big
    con.close()
    for k in process.kept:
        k.close()  # type: ignore[attr-defined]


def test_in_the_command_a_wal_past_its_bound_is_copied_by_any_commit(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs that commit only on the caller's side (renewals rewriting the state row) would grow the
    WAL without end: past QUIET_WAL_MAX of file, the caller's commits copy it as any commit does."""
    from moddeps import process

    monkeypatch.setattr(process, "_owned", True)
    monkeypatch.setattr(process, "kept", [])
    db = tmp_path / "c.db"
    wal = Path(f"{db}-wal")
    c = ScanCache(str(db))
    big = os.urandom(6 << 20)

    def commit(key: bytes) -> None:
        c._execute_all([(f"INSERT OR REPLACE INTO {cache_mod.STATES_TABLE} (dirname, digest, state, seal)"
                         " VALUES (?, ?, ?, ?)", ("/d" + key.decode(), key, big, b"s"))])

    commit(b"1")
    commit(b"2")  # (the file was within the bound before this commit: left uncopied)
    assert db.stat().st_size < len(big) and wal.stat().st_size > cache_mod.QUIET_WAL_MAX
    commit(b"3")  # past the bound: copied
    assert db.stat().st_size > 3 * len(big) // 2
    c._execute_all([(f"DELETE FROM {cache_mod.STATES_TABLE} WHERE dirname = ?", ("/d1",))])
    assert wal.stat().st_size <= cache_mod.QUIET_WAL_MAX  # (the WAL started again: its file cut back)
    c.close()
    for k in process.kept:
        k.close()  # type: ignore[attr-defined]
