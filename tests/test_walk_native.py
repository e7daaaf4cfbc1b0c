"""The C walk of a module tree (``_elfscan.walk``) against its twin, ``moddeps.read.walk._walk_exact``.

Every tree is walked both ways through :func:`moddeps.read.walk.discover`: the same modules in the
same order, the same duplicates and reasons, problems and recorded directories.  Trees that hold
what only the twin decides (symlinks, a name modules.dep cannot hold, a deep tree) must be
DECLINED by the C walk, which is checked directly too.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moddeps.config import DepmodConfig, Override
from moddeps.native import DECLINED
from moddeps.read import walk

try:
    from moddeps import _elfscan as _native_mod
except ImportError:  # pragma: no cover - depends on the build
    _native_mod = None  # type: ignore[assignment]


def need_c() -> Any:
    if _native_mod is None or not hasattr(_native_mod, "walk"):
        if os.environ.get("CI") == "true":
            pytest.fail("moddeps._elfscan.walk is not built; CI must build it", pytrace=False)
        pytest.skip("moddeps._elfscan.walk is not built (python setup.py build_ext --inplace)")
    return _native_mod


def both(top: Path, cfg: DepmodConfig | None = None, record: bool = True) -> tuple[Any, Any]:
    """discover() with the C walk and with the twin alone: (registry, problems, seen) of each."""
    out = []
    for native in (need_c(), None):
        saved = walk._native
        walk._native = native
        try:
            problems: list[Any] = []
            seen: list[Any] | None = [] if record else None
            reg = walk.discover(str(top), cfg or DepmodConfig(), problems, seen)
            out.append((list(reg.by_name.items()), dict(reg.dups), problems, seen))
        finally:
            walk._native = saved
    return out[0], out[1]


def c_walk(top: Path, rel: str | None = "", excludes: frozenset[str] = frozenset(), record: bool = False) -> Any:
    return need_c().walk(str(top), rel, walk._skip_bytes(excludes), record)


def touch(p: Path, data: bytes = b"") -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def test_a_plain_tree_is_walked_in_c_as_by_the_twin(tmp_path: Path) -> None:
    for rel in ("kernel/fs/ext4/ext4.ko", "kernel/fs/foo-bar.ko.xz", "kernel/drivers/a.b.ko", "updates/x.ko.zst",
                "kernel/net/y.ko.gz", "kernel/notes.txt", "kernel/.ko", "kernel/z.ko.bz2", "build/skipped.ko",
                "kernel/source/skipped.ko", "extra/caf\xe9.ko", "modules.dep", "modules.order"):
        touch(tmp_path / rel)
    (tmp_path / "empty").mkdir()
    os.mkdir(os.fsencode(tmp_path / "kernel") + b"/\xff\xfe")
    touch(Path(os.fsdecode(os.fsencode(tmp_path / "kernel") + b"/\xff\xfe/odd-name.ko")))
    c, twin = both(tmp_path)
    assert c == twin
    names = [name for name, _mf in c[0]]
    assert {"ext4", "foo_bar", "a", "x", "y", "caf\xe9", "odd_name"} <= set(names) and "skipped" not in names
    got = c_walk(tmp_path, record=True)
    assert got is not DECLINED
    dirs, files = got
    assert dirs[0][0] == str(tmp_path) and len(dirs) == len(c[3])
    assert [(n, p, r) for n, p, r in files] == [(mf.name, mf.path, mf.relpath) for mf in
                                                 (walk.ModuleFile(*f) for f in files)]
    assert c_walk(tmp_path, record=False)[0] is None


def test_duplicates_overrides_and_excludes_follow_the_twin(tmp_path: Path) -> None:
    for rel in ("kernel/a/dup.ko", "updates/dup.ko", "extra/dup.ko.xz", "kernel/b/dup.ko", "kernel/skipme/x.ko",
                "kernel/b/other.ko"):
        touch(tmp_path / rel)
    cfg = DepmodConfig(search=("updates", "extra", "built-in"), overrides=(Override("dup", "extra"),),
                       excludes=("skipme",))
    c, twin = both(tmp_path, cfg)
    assert c == twin and c[1]  # there were duplicates
    assert "x" not in dict(c[0])


def test_externals_get_no_relpath(tmp_path: Path) -> None:
    top, ext = tmp_path / "lib", tmp_path / "ext"
    touch(top / "kernel/a.ko")
    touch(ext / "sub/b.ko")
    cfg = DepmodConfig(externals=(str(ext),), search=("external", "built-in"))
    c, twin = both(top, cfg)
    assert c == twin
    assert dict(c[0])["b"].relpath is None and dict(c[0])["b"].path == f"{ext}/sub/b.ko"
    assert c_walk(ext, rel=None)[1] == [("b", f"{ext}/sub/b.ko", None)]


@pytest.mark.parametrize("make", ["symlink-file", "symlink-dir", "dangling", "fifo", "blank", "colon", "newline",
                                  "deep"])
def test_what_the_twin_decides_is_declined(tmp_path: Path, make: str) -> None:
    touch(tmp_path / "kernel/a.ko")
    target = tmp_path / "kernel/x"
    if make == "symlink-file":
        (tmp_path / "kernel/link.ko").symlink_to(tmp_path / "kernel/a.ko")
    elif make == "symlink-dir":
        (tmp_path / "kernel/linked").symlink_to(tmp_path / "kernel")  # a loop, too
    elif make == "dangling":
        (tmp_path / "kernel/gone.ko").symlink_to(tmp_path / "nowhere")
    elif make == "fifo":
        os.mkfifo(tmp_path / "kernel/pipe")
    elif make == "deep":
        target = tmp_path.joinpath(*(["d"] * 70))
        touch(target / "deep.ko")
    else:
        touch(tmp_path / "kernel" / {"blank": "a b.ko", "colon": "a:b.ko", "newline": "a\nb.ko"}[make])
    assert c_walk(tmp_path) is DECLINED
    c, twin = both(tmp_path)
    assert c == twin  # the twin walked it all again


def test_the_c_walk_refuses_what_it_does_not_take(tmp_path: Path) -> None:
    touch(tmp_path / "a.ko")
    c = need_c()
    assert c.walk(str(tmp_path), "kernel", (), False) is DECLINED  # only "" or None
    assert c.walk("", "", (), False) is DECLINED
    assert c.walk(str(tmp_path / "missing"), "", (), False) is DECLINED
    assert c.walk(str(tmp_path / "a.ko"), "", (), False) is DECLINED  # not a directory
    with pytest.raises(TypeError):
        c.walk(str(tmp_path), "", ("build",), False)
    with pytest.raises(TypeError):
        c.walk(str(tmp_path), 3, (), False)


NAMES = st.sampled_from(["a.ko", "a-b.ko", "b.ko.xz", "c.ko.zst", "d.ko.gz", "e.txt", ".ko", "f.g.ko", "build",
                         "source", "x", "y", "kernel", "updates", "h-i.j.ko"])


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.lists(st.lists(NAMES, min_size=1, max_size=4), min_size=1, max_size=25), st.integers(0, 2**32 - 1))
def test_random_trees(paths: list[list[str]], seed: int) -> None:
    import tempfile

    rnd = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp)
        for parts in paths:
            *dirs, leaf = parts
            d = top.joinpath(*dirs) if dirs else top
            if any(p.is_file() for p in [top.joinpath(*dirs[:i]) for i in range(1, len(dirs) + 1)]):
                continue
            d.mkdir(parents=True, exist_ok=True)
            if not (d / leaf).exists():
                if rnd.random() < 0.2:
                    (d / leaf).mkdir()
                else:
                    (d / leaf).write_bytes(b"")
        cfg = DepmodConfig(search=tuple(rnd.sample(["updates", "kernel", "x", "built-in"], 3)))
        c, twin = both(top, cfg, record=rnd.random() < 0.5)
        assert c == twin


@pytest.mark.parametrize("copies", [1, 300])  # 300 copies: past the split, so two threads stat
def test_stat_changed_matches_identity(tmp_path: Path, copies: int) -> None:
    c = need_c()
    touch(tmp_path / "a.ko", b"abc")
    (tmp_path / "d").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a.ko")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/\xff"))
    touch(odd)
    paths = [str(p) for p in (tmp_path / "a.ko", tmp_path / "d", tmp_path / "link", tmp_path / "dangling",
                              tmp_path / "missing", odd)] + ["relative-missing"]
    paths *= copies

    def twin(p: str, follow: bool) -> Any:
        try:
            return walk.identity(os.stat(p) if follow else os.lstat(p))
        except OSError:
            return None

    for follow in (True, False):
        now = [twin(p, follow) for p in paths]
        unable = [i for i, ident in enumerate(now) if ident is None]
        assert unable  # (the dangling link stat'ed, the missing files)
        assert c.stat_changed(paths, now, follow) == unable  # every identity kept
        wants: list[Any] = list(now)
        moved = list(range(0, len(paths), 5))
        for i in moved:
            if wants[i] is not None:
                size, *rest = wants[i]
                wants[i] = (size + 1, *rest) if i % 2 else list(wants[i])  # (a list: not the tuple)
        wants[1] = None  # never kept
        expected = sorted({*unable, *moved, 1})
        assert c.stat_changed(paths, wants, follow) == expected
    size, *rest = twin(paths[0], True)
    assert c.stat_changed(paths[:1], [(float(size), *rest)], True) == []  # (compared as Python compares it)
    link = [walk.identity(os.stat(paths[2])), walk.identity(os.lstat(paths[2]))]
    assert c.stat_changed([paths[2]] * 2, link, True) == [1] and c.stat_changed([paths[2]] * 2, link, False) == [0]
    assert c.stat_changed([], [], True) == []
    with pytest.raises(ValueError, match="different lengths"):
        c.stat_changed(paths[:2], [None], True)
    assert c.stat_changed(["/x\0y"], [None], True) is DECLINED
    assert c.stat_changed([b"/tmp"], [None], True) is DECLINED
