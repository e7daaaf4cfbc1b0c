"""Issue 15, items 9 and 10: MODDEPS_READ_TIMEOUT on every reading path, validated, with the
real time in its label; the memory of concurrent loads bounded by one budget.

Time is a fake clock here (``moddeps.read.compression._clock``, one tick a call) wherever a
deadline is checked, so no test depends on how fast the machine is.
"""

from __future__ import annotations

import itertools
import lzma
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import moddeps.read.compression as cz
import moddeps.read.elfreader as er
import moddeps.read.pool as pool
from moddeps.errors import UsageError
from moddeps.read.compression import read_timeout
from moddeps.read.scan import scan_files, scan_tree

from .kobuild import Export, build_ko, compress

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("value", ["inf", "1e400", "-1", "abc", "nan", "-0.5", "1e10", "0x10"])
def test_a_bad_timeout_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MODDEPS_READ_TIMEOUT", value)
    with pytest.raises(UsageError, match="MODDEPS_READ_TIMEOUT="):
        read_timeout()


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("2.5", 2.5), (" 7 ", 7.0), ("", 60.0), (None, 60.0),
                                                ("1e9", 1e9)])
def test_good_timeouts(monkeypatch: pytest.MonkeyPatch, value: str | None, seconds: float) -> None:
    if value is None:
        monkeypatch.delenv("MODDEPS_READ_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("MODDEPS_READ_TIMEOUT", value)
    assert read_timeout() == seconds


def test_the_cli_says_a_bad_timeout_in_one_line(tmp_path: Path) -> None:
    md = tmp_path / "lib/modules/6.1.0-1-test"
    md.mkdir(parents=True)
    (md / "a.ko").write_bytes(build_ko(modinfo=["license=GPL"]))
    r = subprocess.run([sys.executable, "-m", "moddeps", "depmod", "--no-cache", "-b", str(tmp_path), "-n",
                        "6.1.0-1-test"], capture_output=True, text=True, cwd=REPO, timeout=120,
                       env={**__import__("os").environ, "MODDEPS_READ_TIMEOUT": "inf"})
    assert r.returncode == 64, r.stderr
    assert r.stderr.strip().splitlines() == [
        "moddeps: error: MODDEPS_READ_TIMEOUT='inf': not a number of seconds from 0 (no bound) to 1e+09"]


def _big_xz_module(path: Path, mib: int) -> None:
    elf = build_ko(modinfo=["license=GPL"], exports=[Export(name="big_sym")],
                   extra_sections=[(".data.big", bytes(mib << 20))])
    path.write_bytes(lzma.compress(elf, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=0))


def _ticking_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock that ticks a second each time it is read.  Only the Python decompression sees it (one
    tick a piece); the C decoder (moddeps/read/_xz.c) keeps the real clock, so it is switched off here
    (tests/test_xz_happy_path.py checks its deadline)."""
    ticks = itertools.count()
    monkeypatch.setattr(cz, "_clock", lambda: float(next(ticks)))
    monkeypatch.setattr(cz, "_xz_ext", None)
    monkeypatch.setattr(cz, "_xz_looked_up", True)


@pytest.mark.parametrize("pure", [False, True])
def test_the_serial_path_gives_up_during_decompression_with_the_time_spent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pure: bool
) -> None:
    """Serial reading (the C parser, or the Python one): a module whose decompression passes
    the deadline is given up between two pieces -- not after it was read completely -- and
    its label gives the time really spent."""
    import moddeps.read.elfreader as er

    big = tmp_path / "big.ko.xz"
    _big_xz_module(big, 8)
    if pure:
        monkeypatch.setattr(er, "_elfscan", None)
    monkeypatch.setattr(cz, "PIECE", 1 << 16)
    pieces: list[int] = []
    real_put = cz._Sink.put
    monkeypatch.setattr(cz._Sink, "put", lambda self, piece: (pieces.append(len(piece)), real_put(self, piece))[1])
    _ticking_clock(monkeypatch)
    monkeypatch.setenv("MODDEPS_READ_TIMEOUT", "5")
    [m] = scan_files([str(big)], jobs=1)
    assert m.error is not None and m.exports == ()
    assert "reading took longer than 5 s (" in m.error and "given up" in m.error
    elapsed = float(m.error.split("(")[1].split(" s")[0])
    assert 5 <= elapsed < 10
    assert len(pieces) < 10  # of 128: stopped where the deadline passed
    monkeypatch.setenv("MODDEPS_READ_TIMEOUT", "0")  # no bound: the same module reads fine
    [m] = scan_files([str(big)], jobs=1)
    assert m.error is None and m.exports[0].name == "big_sym"


def test_the_thread_pipeline_bounds_what_loads_hold_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """80 compressed modules load in two threads under a budget smaller than three of them:
    the records are those of a serial read, and the budget's peak stays within the limit plus
    the one load that may always proceed (the oldest)."""
    root = tmp_path / "lib/modules/6.1.0-1-test"
    (root / "kernel").mkdir(parents=True)
    sizes, holds = {}, {}
    for i in range(80):
        elf = build_ko(modinfo=["license=GPL", f"alias=pci:v{i:08X}d*"], exports=[Export(name=f"s{i}")],
                       extra_sections=[(".data.pad", bytes(20_000 * (i % 7 + 1)))])
        data = compress(elf, "xz")
        sizes[i], holds[i] = len(elf), len(data) + len(elf)  # a load holds the file and its output
        (root / f"kernel/m{i}.ko.xz").write_bytes(data)
    (root / "modules.order").write_text("".join(f"kernel/m{i}.ko\n" for i in range(80)))
    reference = scan_tree(str(root), jobs=1).modules
    limit = 3 * max(sizes.values())
    budgets: list[cz.MemoryBudget] = []

    def small_budget(jobs: int = 2) -> cz.MemoryBudget:
        budgets.append(cz.MemoryBudget(limit))
        return budgets[-1]

    monkeypatch.setattr(pool, "memory_budget", small_budget)
    monkeypatch.setattr(pool, "_strategy", lambda items: "threads")
    got = scan_tree(str(root), jobs=2).modules
    assert got == reference
    [budget] = budgets
    assert budget.used == 0  # every hold released
    assert max(holds.values()) < budget.peak <= limit + max(holds.values())


def test_a_fifo_given_as_a_module_is_refused_at_once(tmp_path: Path) -> None:
    """``moddeps info FIFO`` used to wait for a writer for ever: the reading function it calls
    (through scan_files or elfreader) opens without blocking and refuses a FIFO."""
    import os

    fifo = tmp_path / "m.ko"
    os.mkfifo(fifo)
    code = f"from moddeps.read.scan import scan_files; print(scan_files([{str(fifo)!r}], jobs=1)[0].error)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "not a regular file (a FIFO)" in r.stdout


def test_read_module_bounded_is_the_scan_reader_for_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader offered to single-file commands (``info``, ``compat``): the same record as a
    scan, a FIFO refused, the timeout applied (fake clock) and validated."""
    good = tmp_path / "g.ko.xz"
    good.write_bytes(compress(build_ko(modinfo=["license=GPL"], exports=[Export(name="g_sym")]), "xz"))
    assert pool.read_module_bounded(str(good)) == scan_files([str(good)], jobs=1)[0]
    fifo = tmp_path / "f.ko"
    import os

    os.mkfifo(fifo)
    assert "not a regular file (a FIFO)" in (pool.read_module_bounded(str(fifo)).error or "")
    big = tmp_path / "big.ko.xz"
    _big_xz_module(big, 4)
    monkeypatch.setattr(cz, "PIECE", 1 << 16)
    _ticking_clock(monkeypatch)
    monkeypatch.setenv("MODDEPS_READ_TIMEOUT", "3")
    assert "reading took longer than 3 s" in (pool.read_module_bounded(str(big)).error or "")
    monkeypatch.setenv("MODDEPS_READ_TIMEOUT", "1e400")
    with pytest.raises(UsageError):
        pool.read_module_bounded(str(good))


def _xz_tree(tmp_path: Path, count: int) -> tuple[list[tuple[str, str]], dict[int, int]]:
    """``count`` compressed modules of different sizes; the items and each one's hold (file + output)."""
    items, holds = [], {}
    for i in range(count):
        elf = build_ko(modinfo=["license=GPL"], exports=[Export(name=f"s{i}")],
                       extra_sections=[(".data.pad", bytes(range(256)) * (40 * ((i * 7) % count + 1)))])
        data = compress(elf, "xz")
        path = tmp_path / f"m{i}.ko.xz"
        path.write_bytes(data)
        items.append((str(path), f"m{i}.ko.xz"))
        holds[i] = len(data) + len(elf)
    return items, holds


def test_the_loaders_start_before_the_sizes_are_known_then_go_largest_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first 8 loads a loader thread is given go in the given order (the stat calls that
    order the rest take 15 ms on 4,230 files); the rest go largest file first."""
    items, _holds = _xz_tree(tmp_path, 30)
    reference = [pool._read_one(item) for item in items]
    seen: list[str] = []
    real = pool._load_or_error

    def load(path: str) -> object:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(pool, "_load_or_error", load)
    assert pool._read_pipelined(items, 1, None) == reference
    paths = [p for p, _s in items]
    rest = sorted(paths[8:], key=lambda p: -Path(p).stat().st_size)
    assert seen == paths[:8] + rest


def test_one_loader_takes_the_largest_files_the_others_the_smallest() -> None:
    """After the first loads (given order), thread ``front`` takes from the large end of the
    sorted files and every other thread from the small end, at most ``ahead`` loads out at a
    time; a fresh thread replacing the front one takes its end; nothing left: None."""
    sched = pool._Schedule([7, 8], ahead=3)
    assert [sched.take(1), sched.take(0)] == [7, 8]  # the given order first, whoever asks
    sched.sort([4, 3, 2, 1, 0])  # largest first
    assert sched.take(1) == 0  # the smallest
    got: list[int | None] = []
    waiter = threading.Thread(target=lambda: got.append(sched.take(0)))
    waiter.start()
    waiter.join(0.05)
    assert waiter.is_alive() and not got  # three out: it waits for one to be handed back
    sched.handed_back()
    waiter.join(5)
    assert got == [4]  # the largest
    for _ in range(3):
        sched.handed_back()
    sched.replace(0, 2)
    assert [sched.take(2), sched.take(0), sched.take(1)] == [3, 1, 2]
    for _ in range(3):
        sched.handed_back()
    assert sched.take(0) is None and sched.take(1) is None
    sched.close()
    assert pool._Schedule([1], ahead=1).take(0) == 1


def test_both_ends_read_every_module_and_trim_the_heap_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two loaders from both ends give the records of a serial read; the heap is trimmed
    once, at the end, and the xz decoder's regions are given back."""
    items, _holds = _xz_tree(tmp_path, 30)
    trims: list[int] = []
    monkeypatch.setattr(pool, "return_free_heap", lambda: trims.append(1))
    released: list[int] = []
    monkeypatch.setattr(pool, "release_xz_regions", lambda: released.append(1))
    assert pool._read_pipelined(items, 2, None) == [pool._read_one(item) for item in items]
    assert len(trims) == 1 and len(released) == 1


def test_a_module_bigger_than_the_whole_budget_is_read_once_it_is_the_oldest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline's budget is a share per loader: loads that need more than all of it
    together still go, one at a time, when no older one waits -- no deadlock, the records of
    a serial read, and the budget's peak within the limit plus one load."""
    items, holds = _xz_tree(tmp_path, 40)
    monkeypatch.setattr(pool, "LOAD_SHARE", min(holds.values()) // 8)
    budgets: list[cz.MemoryBudget] = []
    real = pool.memory_budget

    def kept(jobs: int = 2) -> cz.MemoryBudget:
        budgets.append(real(jobs))
        return budgets[-1]

    monkeypatch.setattr(pool, "memory_budget", kept)
    got = pool._read_pipelined(items, 2, None)
    assert got == [pool._read_one(item) for item in items]
    [budget] = budgets
    assert budget.limit == 4 * pool.LOAD_SHARE < min(holds.values())
    assert budget.used == 0 and max(holds.values()) <= budget.peak <= budget.limit + max(holds.values())


def test_the_pipeline_budget_is_a_share_per_loader_not_the_size_bound() -> None:
    """Far below the 1 GiB a single module may decompress to, and growing with the loaders."""
    assert pool.memory_budget(2).limit == 4 * pool.LOAD_SHARE <= cz.DEFAULT_MAX_SIZE // 4
    assert pool.memory_budget(8).limit == 10 * pool.LOAD_SHARE
    assert pool.LOAD_SHARE >= 2 * (29 << 20)  # Debian 13's amdgpu.ko decompressed, twice


def test_the_loaders_parse_what_the_c_reader_takes_the_parsing_thread_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A module the C reader takes is made into its record by the loader thread that loaded it
    (its bytes still in that core's cache); one it declines goes to the parsing thread, whose
    Python reader decides under the timer, as before.  The records are a serial read's, and
    every hold and every slot of the schedule is given back once."""
    if er._elfscan is None:
        pytest.skip("the C reader is not built (MODDEPS_PURE)")
    items, _holds = _xz_tree(tmp_path, 24)
    reference = [pool._read_one(item) for item in items]
    declined = {items[3][1], items[17][1]}
    c_threads: list[str] = []
    py_threads: list[str] = []
    real_native, real_parse = pool.parse_native, pool.parse_module

    def native(data: object, path: str, *a: object) -> object:
        c_threads.append(threading.current_thread().name)
        return None if path in declined else real_native(data, path, *a)  # type: ignore[arg-type]

    def parse(data: object, path: str, **kw: object) -> object:
        py_threads.append(path)
        assert threading.current_thread() is threading.main_thread()
        return real_parse(data, path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(pool, "parse_native", native)
    monkeypatch.setattr(pool, "parse_module", parse)
    budgets: list[cz.MemoryBudget] = []
    real_budget = pool.memory_budget
    monkeypatch.setattr(pool, "memory_budget", lambda jobs=2: budgets.append(real_budget(jobs)) or budgets[-1])
    scheds: list[pool._Schedule] = []
    real_sched = pool._Schedule
    monkeypatch.setattr(pool, "_Schedule", lambda first, ahead: scheds.append(real_sched(first, ahead)) or scheds[-1])
    assert pool._read_pipelined(items, 2, None) == reference
    assert len(c_threads) == len(items) and all(name.startswith("moddeps-load-") for name in c_threads)
    assert sorted(py_threads) == sorted(declined)
    [budget] = budgets
    assert budget.used == 0
    [sched] = scheds
    assert sched._slots.qsize() == 2 * 8 + 1  # every slot back (and close()'s wake-up token)


def test_a_loader_parse_past_the_deadline_gives_the_timed_out_module(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C parse cannot be interrupted (nor could the timer do so in the parsing thread: it said
    so once the parse returned): a module whose deadline passed during it is unreadable, named,
    with the time spent; the other modules are read."""
    items, _holds = _xz_tree(tmp_path, 12)
    reference = [pool._read_one(item) for item in items]
    slow = items[5][1]
    real_native = pool.parse_native
    now = [0.0]
    monkeypatch.setattr(cz, "_clock", lambda: now[0])

    def native(data: object, path: str, *a: object) -> object:
        if path == slow:
            now[0] += 5.0  # this parse takes 5 s of the fake clock
        return real_native(data, path, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(pool, "parse_native", native)
    monkeypatch.setenv("MODDEPS_READ_TIMEOUT", "2")
    got = pool._read_pipelined(items, 1, None, timeout=2.0)  # (one loader: the clock's jump is in no other load)
    broken = [m for m in got if m.error]
    assert [m.path for m in broken] == [slow]
    assert "took longer than 2 s (5.00 s" in (broken[0].error or "")
    assert [m for m in got if not m.error] == [m for m in reference if m.path != slow]
