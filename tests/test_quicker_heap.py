"""moddeps.process.quicker_heap: malloc's heap grown in big steps and advised for huge pages,
Python's arenas taken from it, for the ``moddeps`` command only (each case in a process of its
own: the settings are the whole process's)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from moddeps import native, process

REPO = Path(__file__).resolve().parent.parent
GLIBC = hasattr(os, "confstr") and "glibc" in (os.confstr("CS_GNU_LIBC_VERSION") or "")
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled").exists()
needs_c_glibc = pytest.mark.skipif(not GLIBC or native.load("_elfscan") is None,
                                   reason="glibc's malloc and the C extension")

# Objects made before, then the call, then objects made after: where their arenas are, and
# whether every object reads back right while arenas of both kinds are freed and made again.
PROBE = textwrap.dedent("""
    import json, sys
    from moddeps import process

    def heap_range():  # (advised, the heap is two mappings, both "[heap]")
        spans = [[int(x, 16) for x in line.split()[0].split("-")]
                 for line in open("/proc/self/maps") if line.rstrip().endswith("[heap]")]
        return (min(lo for lo, _hi in spans), max(hi for _lo, hi in spans)) if spans else (0, 0)

    def advised():  # a heap mapping with VmFlags "hg" (MADV_HUGEPAGE)
        lo, hi = heap_range()
        inside = False
        for line in open("/proc/self/smaps"):
            head = line.split()
            if "-" in head[0] and len(head) >= 5:
                a, b = (int(x, 16) for x in head[0].split("-"))
                inside = lo <= a < hi
            elif head[0] == "VmFlags:" and inside and "hg" in head[1:]:
                return True
        return False

    before = [(i, str(i)) for i in range(300_000)]  # arenas mapped by Python's own allocator
    small = process.quicker_heap(process.HEAP_MIN_MODULES - 1)
    got = process.quicker_heap(int(sys.argv[1]))
    again = process.quicker_heap(int(sys.argv[1]))
    after = [(i, str(i)) for i in range(300_000)]
    lo, hi = heap_range()
    in_heap = sum(lo <= id(t) < hi for t in after[::1000])
    del before  # their arenas go back through the allocator that mapped them
    ok = all(t == (i, str(i)) for i, t in enumerate(after))
    del after
    rounds = [sum(len(s) for _i, s in [(i, str(i)) for i in range(200_000)]) for _ in range(3)]
    print(json.dumps({"small": small, "got": got, "again": again, "in_heap": in_heap, "advised": advised(), "ok": ok,
                      "rounds": rounds}))
""")


def _probe(modules: int = 4000, **env: str) -> dict[str, object]:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "PYTHONMALLOC", "MODDEPS_PURE")}
    r = subprocess.run([sys.executable, "-c", PROBE, str(modules)], capture_output=True, text=True, cwd=REPO,
                       timeout=120, env={**full, **env})
    assert r.returncode == 0, r.stderr
    import json

    got: dict[str, object] = json.loads(r.stdout)
    return got


@needs_c_glibc
def test_heap_advised_and_arenas_taken_from_it() -> None:
    got = _probe()
    assert got["small"] is False  # (a small tree: nothing done, see below)
    assert got["again"] is got["got"]
    assert got["got"] is True or not THP  # (a kernel without THP refuses the advice: nothing done)
    assert got["ok"] is True
    assert got["rounds"] == [sum(len(str(i)) for i in range(200_000))] * 3
    assert got["advised"] is got["got"]
    if got["got"]:
        # the later objects live in arenas of the heap, but for a few in free room of the earlier ones
        assert got["in_heap"] >= 270


@needs_c_glibc
@pytest.mark.parametrize("env", [{"MALLOC_ARENA_MAX": "2"}, {"MALLOC_TOP_PAD_": "0"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, {"MODDEPS_PURE": "1"}])
def test_a_malloc_tuned_by_the_environment_is_left_alone(env: dict[str, str]) -> None:
    got = _probe(**env)
    assert got["got"] is False and got["ok"] is True
    assert got["advised"] is False
    assert got["in_heap"] == 0  # Python's arenas stay mappings of their own


@needs_c_glibc
def test_a_small_tree_is_left_alone() -> None:
    """Under HEAP_MIN_MODULES modules there are too few faults to save for ~2 MiB more peak RSS."""
    got = _probe(process.HEAP_MIN_MODULES - 1)
    assert got == {**got, "small": False, "got": False, "again": False, "advised": False, "in_heap": 0, "ok": True}


@needs_c_glibc
def test_pythonmalloc_keeps_its_allocator() -> None:
    """PYTHONMALLOC=malloc: no arenas at all (every object is malloc's); the heap is still advised."""
    got = _probe(PYTHONMALLOC="malloc")
    assert (got["got"] is True or not THP) and got["advised"] is got["got"] and got["ok"] is True


@needs_c_glibc
@pytest.mark.parametrize("pad, threshold", [(0, 1), (1, 0), (-1, 1), (2**30 + 1, 1), (1, 2**31)])
def test_bad_sizes_are_refused_before_anything_is_set(pad: int, threshold: int) -> None:
    c = native.load("_elfscan")
    assert c is not None
    with pytest.raises(ValueError, match="huge_heap"):
        c.huge_heap(pad, threshold)


def test_depmod_asks_with_the_trees_size_only_for_the_command(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk's run asks once the tree is laid out, the stamp's replay before it reads module files
    again, the run brought up to date from it before its update: each with the number of module
    files, and only in the process the command owns (a program using moddeps keeps its malloc)."""
    from moddeps.depmod import stamp
    from moddeps.depmod.run import DepmodOptions, run

    from .test_depmod_stamp import VERSION, _new_alias, _no_duplicates, _tree, some_alias

    root, cache = _tree(tmp_path), tmp_path / "c.sqlite3"
    _no_duplicates(root)
    version, moddir = VERSION, root / "lib" / "modules" / VERSION
    asked: list[int] = []
    monkeypatch.setattr(process, "quicker_heap", lambda n: asked.append(n) or False)
    monkeypatch.setattr(stamp, "RACY_NS", 0)
    opts = DepmodOptions(version=version, basedir=str(root), cache=str(cache), fsync=False)

    run(opts)
    assert asked == []  # a library call
    modules = len((moddir / "modules.dep").read_bytes().splitlines())  # (a line a module of the array)
    monkeypatch.setattr(process, "_owned", True)
    run(opts)
    assert asked == [modules]  # (run() walks the tree: the stamp is the command's shortcut)
    fields = {name: default for name, default in stamp.FIELDS}
    fields.update(version=version, basedir=str(root), cache=str(cache))
    asked.clear()
    assert stamp.replay(str(cache), stamp.key(fields), known=True, sized=process.quicker_heap) is not None
    assert asked == []  # answered by identities alone: nothing to gain
    _new_alias(some_alias(moddir), rename=True)  # a changed view
    known = stamp.replay(str(cache), stamp.key(fields), known=True, sized=process.quicker_heap)
    assert isinstance(known, stamp.Known) and asked == [modules]
    run(opts, known=known)
    assert asked == [modules, modules]
