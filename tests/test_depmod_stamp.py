"""A depmod rerun answered by its stamp (moddeps.depmod.stamp): only when nothing it was computed from changed.

Each change below is made after a run that wrote a stamp; the stamp must then
refuse to answer, and the next run's files must be those of a run without any
cache.  The racy rule (no stamp while inputs are fresh) is switched off here
(``RACY_NS = 0``) except where it is the subject.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moddeps.depmod import stamp
from moddeps.depmod.run import DepmodOptions, run

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_modules"
VERSION = sorted(os.listdir(SAMPLE / "lib" / "modules"))[0]


def _tree(tmp: Path, name: str = "root") -> Path:
    root = tmp / name
    shutil.copytree(SAMPLE, root, symlinks=True)
    for cycle in (root / "lib" / "modules" / VERSION).rglob("mdx_cycle_*.ko"):  # the sample's deliberate cycle
        cycle.unlink()
    return root


def _fields(root: Path, cache: Path, **more: object) -> dict[str, object]:
    fields = {name: default for name, default in stamp.FIELDS}
    fields.update(version=VERSION, basedir=str(root), cache=str(cache), **more)
    return fields


def _run(root: Path, cache: Path | None, known: stamp.Known | None = None, **more: object) -> None:
    run(DepmodOptions(version=VERSION, basedir=str(root), cache=None if cache is None else str(cache),
                      fsync=False, **more), known=known)  # type: ignore[arg-type]


def _outputs(root: Path) -> dict[str, bytes]:
    d = root / "lib" / "modules" / VERSION
    return {p.name: p.read_bytes() for p in sorted(d.glob("modules.*")) if p.name not in ("modules.order",
                                                                                           "modules.builtin",
                                                                                           "modules.builtin.modinfo")}


def _replay(root: Path, cache: Path, **more: object) -> list[str] | None:
    fields = _fields(root, cache, **more)
    return stamp.replay(str(cache), stamp.key(fields))


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stamp, "RACY_NS", 0)


def test_a_rerun_on_unchanged_inputs_is_answered(tmp_path: Path, settled: None) -> None:
    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    assert _replay(root, cache) is None  # nothing run yet
    _run(root, cache)
    lines = _replay(root, cache)
    assert lines is not None
    # the same lines as the run said: here none but what kmod says for this tree
    before = _outputs(root)
    assert _replay(root, cache) == lines  # and again (now settled: no CRC)
    assert _outputs(root) == before


def test_other_options_or_environment_are_another_stamp(tmp_path: Path, settled: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _run(root, cache)
    assert _replay(root, cache) is not None
    assert _replay(root, cache, warn_dups=True) is None
    assert _replay(root, cache, kmod_version="30") is None
    monkeypatch.setenv("MODDEPS_KMOD_VERSION", "30")
    assert _replay(root, cache) is None


def test_no_stamp_for_dry_run_verbose_quick_or_files(tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite3"
    for more in ({"dry_run": True}, {"verbose": True}, {"quick": True}, {"files": ("/x.ko",)}):
        assert not stamp.wanted(_fields(tmp_path, cache, **more))
    assert stamp.wanted(_fields(tmp_path, cache))
    assert not stamp.wanted(_fields(tmp_path, cache) | {"cache": None})


def _same_content_new_bytes(path: Path) -> None:
    """Rewrite a file in place with the same size and mtime (ctime moves)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _new_alias(path: Path, rename: bool = False) -> None:
    """Change the last letter of the module's first alias (same size; in place with its mtime
    kept, or a new file renamed over it as a package manager installs one)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    end = data.index(b"\0", data.index(b"alias=")) - 1
    data[end] = ord("Y") if data[end] == ord("Z") else ord("Z")
    if rename:
        tmp = path.with_name(path.name + ".new")
        tmp.write_bytes(bytes(data))
        tmp.rename(path)
        return
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def some_alias(d: Path) -> Path:
    """The last module (path order) with an alias (in the sample tree, one of the module array:
    the first is a duplicate that updates/ overrides)."""
    return [p for p in sorted(d.rglob("*.ko")) if b"alias=" in p.read_bytes()][-1]


def _changes(root: Path) -> dict[str, object]:
    d = root / "lib" / "modules" / VERSION
    some = sorted(d.rglob("*.ko"))
    sub = some[0].parent

    def add_module() -> None:
        shutil.copy(some[0], sub / "mdx_added_copy.ko")

    def add_top_module() -> None:
        shutil.copy(some[0], d / "mdx_top_copy.ko")

    def remove_module() -> None:
        some[-1].unlink()

    def new_config() -> None:
        (root / "etc" / "depmod.d").mkdir(parents=True, exist_ok=True)
        (root / "etc" / "depmod.d" / "x.conf").write_text(f"exclude {sub.name}\n")

    def order() -> None:
        (d / "modules.order").write_text("".join(f"{p.relative_to(d)}\n" for p in reversed(some)))

    def new_dir() -> None:
        (d / "updates").mkdir(exist_ok=True)
        shutil.copy(some[0], d / "updates" / some[0].name)

    def package_db() -> None:
        status = root / "var" / "lib" / "dpkg" / "status"
        status.parent.mkdir(parents=True, exist_ok=True)
        status.write_text("Package: kmod\nStatus: install ok installed\nVersion: 30+20221128-1\n\n")

    def output_edited() -> None:
        _same_content_new_bytes(d / "modules.alias")

    def output_removed() -> None:
        (d / "modules.symbols.bin").unlink()

    return {
        "a module's alias rewritten in place, size and mtime kept": lambda: _new_alias(some_alias(d)),
        "a module added": add_module,
        "a module added at the top": add_top_module,
        "a module removed": remove_module,
        "a depmod.d file added": new_config,
        "modules.order written": order,
        "a directory added": new_dir,
        "the kmod package installed": package_db,
        "an output edited in place": output_edited,
        "an output removed": output_removed,
    }


CHANGES = list(_changes(SAMPLE))  # (only the names: nothing is changed here)


@pytest.mark.parametrize("change", CHANGES)
def test_any_change_is_a_miss_and_the_next_run_is_right(change: str, tmp_path: Path, settled: None) -> None:
    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _run(root, cache)
    assert _replay(root, cache) is not None
    _changes(root)[change]()  # type: ignore[operator]
    assert _replay(root, cache) is None
    _run(root, cache)  # moddeps as a user runs it: the usual way now, and a new stamp
    expected = _tree(tmp_path, "expected")
    if not change.startswith("an output"):  # (the outputs are depmod's: written again)
        _changes(expected)[change]()  # type: ignore[operator]
    _run(expected, None)
    assert _outputs(root) == _outputs(expected)
    assert _replay(root, cache) is not None  # settled again


def _rebuilt(path: Path, rename: bool) -> None:
    """Another build of the module: its last byte differs (not what depmod reads)."""
    if rename:
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        tmp = path.with_name(path.name + ".new")
        tmp.write_bytes(bytes(data))
        tmp.rename(path)
    else:
        _same_content_new_bytes(path)


def _no_duplicates(root: Path) -> None:
    """The sample tree without its duplicate module names (a tree with some keeps no names of its directories)."""
    d = root / "lib" / "modules" / VERSION
    (d / "updates" / "mdx_consumer.ko").unlink()


SAME_VIEW = {
    "touched": lambda path: os.utime(path),
    "rewritten in place, size and mtime kept": lambda path: _rebuilt(path, rename=False),
    "rebuilt and renamed over it": lambda path: _rebuilt(path, rename=True),
}


@pytest.mark.parametrize("change", list(SAME_VIEW))
def test_a_module_whose_view_is_the_same_is_read_again_and_answered(change: str, tmp_path: Path,
                                                                    settled: None) -> None:
    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _no_duplicates(root)
    _run(root, cache)
    said = _replay(root, cache)
    assert said is not None
    victim = some_alias(root / "lib" / "modules" / VERSION)
    before = _outputs(root)
    SAME_VIEW[change](victim)
    stamp.reread_log.clear()
    assert _replay(root, cache) == said
    assert stamp.reread_log == [str(victim)]  # that module alone was read again
    assert _replay(root, cache) == said
    assert stamp.reread_log == [str(victim)]  # and the stamp holds its identity now
    expected = _tree(tmp_path, "expected")
    _no_duplicates(expected)
    SAME_VIEW[change](some_alias(expected / "lib" / "modules" / VERSION))
    _run(expected, None)
    assert _outputs(root) == before == _outputs(expected)
    # what the replay stored (the record, the result renewed) brings a later change up to date without a walk
    for tree in (root, expected):
        _new_alias(next((tree / "lib" / "modules" / VERSION).rglob("mdx_consumer.ko")))
    known = stamp.replay(str(cache), stamp.key(_fields(root, cache)), known=True)
    assert isinstance(known, stamp.Known)
    from moddeps.read import scan as scan_module  # (the walk, imported by a run that walks)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(scan_module, "layout_tree", None)  # (a walk would fail)
        _run(root, cache, known=known)
    _run(expected, None)
    assert _outputs(root) == _outputs(expected) != before


@pytest.mark.parametrize("rename", [False, True])
def test_a_module_whose_view_changed_is_a_miss(rename: bool, tmp_path: Path, settled: None) -> None:
    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _no_duplicates(root)
    _run(root, cache)
    assert _replay(root, cache) is not None
    victim = some_alias(root / "lib" / "modules" / VERSION)
    _new_alias(victim, rename)
    stamp.reread_log.clear()
    assert _replay(root, cache) is None
    assert stamp.reread_log == [str(victim)]
    _run(root, cache)
    expected = _tree(tmp_path, "expected")
    _no_duplicates(expected)
    _new_alias(some_alias(expected / "lib" / "modules" / VERSION), rename)
    _run(expected, None)
    assert _outputs(root) == _outputs(expected)
    assert _replay(root, cache) is not None


def _export_renamed(path: Path, rename: bool) -> None:
    """mdx_exporter.ko's export mdx_plain_add renamed (same length): its importers lose that dependency."""
    data = path.read_bytes()
    assert data.count(b"mdx_plain_add") >= 1
    new = data.replace(b"mdx_plain_add", b"mdx_plain_adX")
    if rename:
        tmp = path.with_name(path.name + ".new")
        tmp.write_bytes(new)
        tmp.rename(path)
    else:
        path.write_bytes(new)


KNOWN_CHANGES = {
    "an alias, in place": lambda d: _new_alias(some_alias(d)),
    "an alias, renamed over it": lambda d: _new_alias(some_alias(d), rename=True),
    "an alias changed and another module touched": lambda d: (_new_alias(some_alias(d)),
                                                              os.utime(sorted(d.rglob("*.ko"))[0])),
    "an export renamed": lambda d: _export_renamed(next(d.rglob("mdx_exporter.ko")), rename=True),
}


@pytest.mark.parametrize("change", list(KNOWN_CHANGES))
def test_a_changed_view_is_brought_up_to_date_without_a_walk(change: str, tmp_path: Path, settled: None,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from moddeps.read import scan as scan_module  # (the walk, imported by a run that walks)

    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _no_duplicates(root)
    d = root / "lib" / "modules" / VERSION
    _run(root, cache)
    assert _replay(root, cache) is not None
    before = _outputs(root)
    KNOWN_CHANGES[change](d)  # type: ignore[no-untyped-call]
    known = stamp.replay(str(cache), stamp.key(_fields(root, cache)), known=True)
    assert isinstance(known, stamp.Known)

    def no_walk(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tree was walked")

    monkeypatch.setattr(scan_module, "layout_tree", no_walk)
    _run(root, cache, known=known)
    monkeypatch.undo()
    expected = _tree(tmp_path, "expected")
    _no_duplicates(expected)
    KNOWN_CHANGES[change](expected / "lib" / "modules" / VERSION)  # type: ignore[no-untyped-call]
    _run(expected, None)
    assert _outputs(root) == _outputs(expected) != before
    # the stamp it wrote answers the next run, and what it stored brings a later change up to date
    stamp.reread_log.clear()
    assert _replay(root, cache) is not None and stamp.reread_log == []
    for tree in (root, expected):
        _new_alias(next((tree / "lib" / "modules" / VERSION).rglob("mdx_consumer.ko")))
    _run(root, cache)
    _run(expected, None)
    assert _outputs(root) == _outputs(expected)


def test_a_renamed_over_module_in_a_tree_with_duplicates_is_a_miss(tmp_path: Path, settled: None) -> None:
    # which of two files of one name wins can depend on the order of a directory's entries,
    # which a rename may change: no directory of such a tree passes by its names
    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _run(root, cache)
    assert _replay(root, cache) is not None
    _rebuilt(some_alias(root / "lib" / "modules" / VERSION), rename=True)
    stamp.reread_log.clear()
    assert _replay(root, cache) is None and stamp.reread_log == []


def test_a_directory_with_another_name_is_a_miss(tmp_path: Path, settled: None) -> None:
    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _no_duplicates(root)
    _run(root, cache)
    victim = some_alias(root / "lib" / "modules" / VERSION)
    (victim.parent / "notes.txt").write_text("not a module\n")  # a name the walk passes over: no change
    assert _replay(root, cache) is not None
    (victim.parent / "sub").mkdir()  # a directory the walk would enter
    assert _replay(root, cache) is None
    (victim.parent / "sub").rmdir()
    assert _replay(root, cache) is not None  # the same names again
    victim.rename(victim.parent / "renamed.ko")
    assert _replay(root, cache) is None


def test_a_module_changed_just_before_the_run_is_read_again_every_time(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # the racy rule: a module file changed within RACY_NS of the run's start is recorded, but its identity
    # is never trusted (an edit in the same tick of the clock keeps it): every replay reads it again
    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _no_duplicates(root)
    time.sleep(0.6)
    monkeypatch.setattr(stamp, "RACY_NS", 300_000_000)  # the tree is settled, the module below is not
    victim = some_alias(root / "lib" / "modules" / VERSION)
    _rebuilt(victim, rename=False)
    _run(root, cache)
    stamp.reread_log.clear()
    said = _replay(root, cache)
    assert said is not None and stamp.reread_log == [str(victim)]
    _new_alias(victim)  # size, mtime and (perhaps) ctime kept: only its bytes tell
    stamp.reread_log.clear()
    assert _replay(root, cache) is None and stamp.reread_log == [str(victim)]


def test_a_module_touched_just_before_the_replay_is_read_again_until_it_settles(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # its new identity is not recorded while it is racy (the stamp is not written): every replay
    # reads it again, until one after it settled records it
    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _no_duplicates(root)
    time.sleep(0.6)
    monkeypatch.setattr(stamp, "RACY_NS", 300_000_000)
    _run(root, cache)
    time.sleep(0.4)
    said = _replay(root, cache)  # (the outputs settle: the stamp is written again)
    assert said is not None
    path = Path(stamp.path_for(str(cache), stamp.key(_fields(root, cache))))
    victim = some_alias(root / "lib" / "modules" / VERSION)
    os.utime(victim)
    kept = path.stat()
    for _ in range(2):
        stamp.reread_log.clear()
        assert _replay(root, cache) == said and stamp.reread_log == [str(victim)]
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)  # not written
    time.sleep(0.4)
    assert _replay(root, cache) == said and path.stat().st_ino != kept.st_ino  # settled: recorded
    stamp.reread_log.clear()
    assert _replay(root, cache) == said and stamp.reread_log == []


def test_a_dangling_symlink_must_stay_dangling(tmp_path: Path, settled: None) -> None:
    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    d = root / "lib" / "modules" / VERSION
    some = sorted(d.rglob("*.ko"))[0]
    (d / "kernel" / "later.ko").symlink_to(tmp_path / "target.ko")
    _run(root, cache)
    assert _replay(root, cache) is not None
    shutil.copy(some, tmp_path / "target.ko")  # the link now leads to a module: a new one in the tree
    assert _replay(root, cache) is None


def test_fresh_inputs_write_no_stamp(tmp_path: Path) -> None:
    # a tree copied just now: its ctimes are within RACY_NS of the run
    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _run(root, cache)
    assert _replay(root, cache) is None
    now, d = time.time_ns(), str(tmp_path)
    assert not stamp.write(str(cache), "x", now, d, d, [(str(root), (0, 0, now, 0, 0))], [], [])
    assert stamp.write(str(cache), "x", now, d, d, [(str(root), (0, 0, 0, 0, 0))], [], [])
    # a racy walked directory needs its names, a racy module file nothing (it is read again every time)
    assert not stamp.write(str(cache), "x", now, d, d, [], [], [], [(str(root), (0, 0, now, 0, 0), None)])
    assert stamp.write(str(cache), "x", now, d, d, [], [], [], [(str(root), (0, 0, now, 0, 0), "names")],
                       [(str(root), (0, 0, now, 0, 0), "x.ko")])


def test_a_damaged_stamp_is_ignored(tmp_path: Path, settled: None) -> None:
    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _run(root, cache)
    path = Path(stamp.path_for(str(cache), stamp.key(_fields(root, cache))))
    good = path.read_bytes()
    assert _replay(root, cache) is not None
    for i in (0, 3, 4, len(good) // 2, len(good) - 1):  # the seal, the marshalled stamp
        bad = bytearray(good)
        bad[i] ^= 0x10
        path.write_bytes(bytes(bad))
        assert _replay(root, cache) is None
    for bad in (b"", good[:3], good[: len(good) // 2]):
        path.write_bytes(bad)
        assert _replay(root, cache) is None
    path.write_bytes(good)
    assert _replay(root, cache) is not None


MAIN = "import sys; from moddeps.cli import main; sys.argv[0] = 'moddeps'; main()"


def test_the_command_answers_from_the_stamp_without_importing_the_rest(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    time.sleep(stamp.RACY_NS / 1e9 + 0.1)  # the tree settles: the first run may write a stamp
    env = {**os.environ, "MODDEPS_CACHE": str(tmp_path / "c.sqlite3"), "PYTHONPATH": str(REPO)}

    def moddeps(*extra: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, *extra, "-c", MAIN, "depmod", "-b", str(root), VERSION],
                              capture_output=True, env=env, timeout=120)

    first = moddeps()
    assert first.returncode == 0, first.stderr
    dep = root / "lib" / "modules" / VERSION / "modules.dep"
    inode = dep.stat().st_ino
    again = moddeps("-X", "importtime")
    assert again.returncode == 0
    lines = again.stderr.decode().splitlines()
    imported = [line.split("|")[-1].strip() for line in lines if line.startswith("import time")]
    said = [line for line in lines if not line.startswith("import time")]
    assert "moddeps.depmod.stamp" in imported
    assert "moddeps.depmod.run" not in imported and "sqlite3" not in imported and "typer" not in imported
    assert said == first.stderr.decode().splitlines()
    assert dep.stat().st_ino == inode  # nothing written
    # a module touched: read again and compared with its cached record, still without the rest of moddeps
    os.utime(some_alias(root / "lib" / "modules" / VERSION))
    touched = moddeps("-X", "importtime")
    assert touched.returncode == 0
    lines = touched.stderr.decode().splitlines()
    imported = [line.split("|")[-1].strip() for line in lines if line.startswith("import time")]
    assert "moddeps.read.cache" in imported  # (the record it was computed from)
    assert "moddeps.depmod.run" not in imported and "typer" not in imported
    assert [line for line in lines if not line.startswith("import time")] == first.stderr.decode().splitlines()
    assert dep.stat().st_ino == inode


def test_suffixes_are_kmods() -> None:
    from moddeps import kmodnames
    from moddeps.read import fileid, walk

    assert fileid._MODULE_SUFFIXES == kmodnames.MODULE_SUFFIXES
    assert walk.SKIP_NAMES - {".", ".."} == stamp.SKIPPED_NAMES


def test_cache_info_counts_and_prune_deletes_stamps(tmp_path: Path, settled: None) -> None:
    from typer.testing import CliRunner

    from moddeps.cli import app

    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _run(root, cache)
    _run(root, cache, warn_dups=True)  # another stamp (its files written again: the first one's stamp is stale)
    _run(root, cache)
    assert stamp.held(str(cache))[0] == 2
    info = CliRunner().invoke(app, ["cache", "info", "--cache", str(cache)])
    assert info.exit_code == 0 and [line.split("\t")[:2] for line in info.stdout.splitlines()
                                    if line.startswith("stamps")] == [["stamps", "2"]]
    kept = CliRunner().invoke(app, ["cache", "prune", "--older-than", "1d", "--cache", str(cache)])
    assert kept.exit_code == 0 and "0 depmod stamp(s) deleted" in kept.stdout
    assert _replay(root, cache) is not None
    gone = CliRunner().invoke(app, ["cache", "prune", "--max-size", "1G", "--cache", str(cache)])
    assert gone.exit_code == 0 and "2 depmod stamp(s) deleted" in gone.stdout
    assert stamp.held(str(cache)) == (0, 0) and _replay(root, cache) is None


def test_a_changed_view_with_an_output_edited_is_computed_again(tmp_path: Path, settled: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The replay hands a changed view over without reading the outputs (the run checks them under
    its lock): an output edited in place meanwhile sends the run the usual way, which rewrites it."""
    from moddeps.read import scan as scan_module  # (the walk, imported by a run that walks)

    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _no_duplicates(root)
    d = root / "lib" / "modules" / VERSION
    _run(root, cache)
    _new_alias(some_alias(d))
    _same_content_new_bytes(d / "modules.symbols")
    known = stamp.replay(str(cache), stamp.key(_fields(root, cache)), known=True)
    assert isinstance(known, stamp.Known)
    walks: list[object] = []
    real = scan_module.layout_tree
    monkeypatch.setattr(scan_module, "layout_tree", lambda *a, **k: walks.append(a) or real(*a, **k))
    _run(root, cache, known=known)
    assert len(walks) == 1  # the usual way
    expected = _tree(tmp_path, "expected")
    _no_duplicates(expected)
    _new_alias(some_alias(expected / "lib" / "modules" / VERSION))
    _run(expected, None)
    assert _outputs(root) == _outputs(expected)


def _mdx(d: Path, name: str) -> Path:
    return d / "kernel" / "samples" / "mdx" / name


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(exist_ok=True)
    shutil.copy(src, dst)


#: Module files added or removed: each change, and whether the stamp's run brings the result up to
#: date without a walk (False: a walk's rules decide, so the run goes the usual way).
ADDED_REMOVED = {
    "an exporter's copy added beside it": (
        lambda d: _copy(_mdx(d, "mdx_exporter.ko"), _mdx(d, "mdx_added_copy.ko")), True),
    "an exporter's copy added in extra/": (
        lambda d: _copy(_mdx(d, "mdx_exporter.ko"), d / "extra" / "mdx_zz_copy.ko"), True),
    "an exporter removed": (lambda d: _mdx(d, "mdx_exporter.ko").unlink(), True),
    "a module not in modules.order removed": (lambda d: (d / "extra" / "mdx_dup_b.ko").unlink(), True),
    "one removed and one added": (lambda d: (_mdx(d, "mdx_softdep.ko").unlink(),
                                             _copy(_mdx(d, "mdx_consumer.ko"), d / "extra" / "mdx_c2.ko")), True),
    "one added and another's alias changed": (
        lambda d: (_copy(_mdx(d, "mdx_exporter.ko"), d / "extra" / "mdx_e2.ko"), _new_alias(some_alias(d))), True),
    "a module moved to another directory": (
        lambda d: (d / "extra" / "mdx_dup_b.ko").rename(_mdx(d, "mdx_dup_b.ko")), True),
    "one added with another module's name": (
        lambda d: _copy(_mdx(d, "mdx_softdep.ko"), d / "extra" / "mdx_softdep.ko"), False),
    "one added that modules.order places": (
        lambda d: _copy(d / "extra" / "mdx_dup_b.ko", _mdx(d, "mdx_unknown.ko")), False),
    "one added that depmod.d excludes": (
        lambda d: _copy(_mdx(d, "mdx_exporter.ko"), d / "extra" / "mdx_excluded.ko"), False),
    "a symlink to a module added": (
        lambda d: (d / "extra" / "mdx_link.ko").symlink_to(_mdx(d, "mdx_exporter.ko")), False),
}


def _before_added(root: Path) -> None:
    """The sample tree as these tests start from it: no duplicates, mdx_unknown.ko (listed by
    modules.order) not installed, depmod.d excluding the name ``mdx_excluded.ko``."""
    _no_duplicates(root)
    _mdx(root / "lib" / "modules" / VERSION, "mdx_unknown.ko").unlink()
    (root / "etc" / "depmod.d").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "depmod.d" / "x.conf").write_text("exclude mdx_excluded.ko\n")


@pytest.mark.parametrize("change", list(ADDED_REMOVED))
def test_module_files_added_or_removed_are_brought_up_to_date_without_a_walk(
        change: str, tmp_path: Path, settled: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from moddeps.read import scan as scan_module  # (the walk, imported by a run that walks)

    make, fast = ADDED_REMOVED[change]
    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _before_added(root)
    d = root / "lib" / "modules" / VERSION
    _run(root, cache)
    assert _replay(root, cache) is not None
    before = _outputs(root)
    make(d)  # type: ignore[no-untyped-call]
    assert _replay(root, cache) is None  # (not answered as it is)
    stamp.reread_log.clear()
    known = stamp.replay(str(cache), stamp.key(_fields(root, cache)), known=True)
    walks: list[object] = []
    real = scan_module.layout_tree
    monkeypatch.setattr(scan_module, "layout_tree", lambda *a, **k: walks.append(a) or real(*a, **k))
    _run(root, cache, known=known if isinstance(known, stamp.Known) else None)
    monkeypatch.undo()
    if fast:
        assert isinstance(known, stamp.Known) and (known.added or known.removed)
        assert walks == []  # no walk: the stamp said which files came and went
        # (only the module whose alias changed was read again, not the tree)
        assert stamp.reread_log == ([str(some_alias(d))] if "alias" in change else [])
    else:
        assert len(walks) == 1
    expected = _tree(tmp_path, "expected")
    _before_added(expected)
    make(expected / "lib" / "modules" / VERSION)  # type: ignore[no-untyped-call]
    _run(expected, None)
    assert _outputs(root) == _outputs(expected)
    assert (_outputs(root) == before) == ("excludes" in change)  # (an excluded file changes nothing)
    # the stamp it wrote answers the next run, without reading a module again
    stamp.reread_log.clear()
    assert _replay(root, cache) is not None and stamp.reread_log == []
    # and what it stored brings the next change up to date: the tree as it was
    for tree in (root, expected):
        _new_alias(_mdx(tree / "lib" / "modules" / VERSION, "mdx_consumer.ko"))
    _run(root, cache)
    _run(expected, None)
    assert _outputs(root) == _outputs(expected)


def test_a_module_added_just_before_the_run_is_read_again_until_it_settles(tmp_path: Path) -> None:
    """Racy: a module file added (and its directory changed) within RACY_NS of the run is recorded,
    but read again (and its directory listed again) by every replay until it settles."""
    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _before_added(root)
    d = root / "lib" / "modules" / VERSION
    _run(root, cache)
    old = time.time_ns() - 2 * stamp.RACY_NS
    for p in [*d.rglob("*.ko"), d / "modules.order", d / "modules.builtin", d / "modules.builtin.modinfo"]:
        os.utime(p, ns=(old, old))
    # (ctimes cannot be set back: wait for the tree's to settle, as a package upgrade would)
    time.sleep(stamp.RACY_NS / 1e9 + 0.1)
    _run(root, cache)
    assert _replay(root, cache) is not None
    added = d / "extra" / "mdx_zz_copy.ko"
    _copy(_mdx(d, "mdx_exporter.ko"), added)
    known = stamp.replay(str(cache), stamp.key(_fields(root, cache)), known=True)
    assert isinstance(known, stamp.Known) and [a[0] for a in known.added] == [str(added)]
    _run(root, cache, known=known)
    stamp.reread_log.clear()
    assert _replay(root, cache) is not None
    assert stamp.reread_log == [str(added)]  # racy: read again (the same: answered)
    expected = _tree(tmp_path, "expected")
    _before_added(expected)
    _copy(_mdx(expected / "lib" / "modules" / VERSION, "mdx_exporter.ko"),
          expected / "lib" / "modules" / VERSION / "extra" / "mdx_zz_copy.ko")
    _run(expected, None)
    assert _outputs(root) == _outputs(expected)


def test_a_settled_stamp_spares_the_run_the_outputs_crc(tmp_path: Path, settled: None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a stamp is settled, its outputs' identities prove their bytes: the run that brings a
    changed view up to date reads them (it returns them) without a CRC-32, and is still right."""
    from moddeps.depmod import rerun

    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _no_duplicates(root)
    d = root / "lib" / "modules" / VERSION
    _run(root, cache)
    assert _replay(root, cache) is not None  # (settles it: RACY_NS is 0 here)
    _new_alias(some_alias(d))
    known = stamp.replay(str(cache), stamp.key(_fields(root, cache)), known=True)
    assert isinstance(known, stamp.Known) and known.settled
    crcs: list[bool] = []
    real = rerun.output_identity

    def counting(outdir: str, name: str, crc: bool = True) -> object:
        crcs.append(crc)
        return real(outdir, name, crc)

    monkeypatch.setattr(rerun, "output_identity", counting)
    _run(root, cache, known=known)
    monkeypatch.undo()
    assert crcs and not any(crcs[:len(_outputs(root))])  # (the previous files: no CRC; the rewritten: read back)
    expected = _tree(tmp_path, "expected")
    _no_duplicates(expected)
    _new_alias(some_alias(expected / "lib" / "modules" / VERSION))
    _run(expected, None)
    assert _outputs(root) == _outputs(expected)
