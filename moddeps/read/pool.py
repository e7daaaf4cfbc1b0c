"""Read many module files into Module records, each within its bounds.

A batch is read serially, in loader threads (compressed trees: decompression
releases the GIL) or with forked workers (the pure-Python parser), whichever
costs least (:func:`_strategy`).  Each module is read under a deadline
($MODDEPS_READ_TIMEOUT) that the read and the decompression check between
pieces and that a SIGALRM timer enforces on the Python parse where one is
usable (the C parse cannot be interrupted: the deadline is looked at once it returns);
the loads in flight share one memory budget
(:class:`~moddeps.read.compression.MemoryBudget`).  A module that cannot be
read, or takes too long, becomes an unreadable module (``Module.error``), not
an exception.  With a scan cache, unchanged files come from it.
"""

from __future__ import annotations

import gc
import marshal
import os
import sys
import threading
import time

from .. import process
from ..errors import ModuleReadError
from ..model import Module
from ..typeshim import cast
from .compression import (
    Deadline,
    Hold,
    MemoryBudget,
    ReadTimedOut,
    limit_heap_retention,
    load_module_data,
    read_timeout,
    release_xz_regions,
    return_free_heap,
    timed_out_error,
)
from .elfreader import (
    PlainFile,
    broken_module,
    parse_module,
    parse_native,
    read_plain_files,
    reads_in_part,
    release,
)

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    import signal
else:  # signal.py's C module (signal.py's enum wrappers cost ~20 M instructions of start-up)
    import _signal as signal
if TYPE_CHECKING:  # (and the cache module, with sqlite3, only when a caller has a cache)
    from collections.abc import Callable, Sequence

    from .cache import Key, ScanCache
    from .elfreader import ImportMemo

    ProgressFn = Callable[[int, int], None]


class _ReadTimeout(Exception):
    pass


#: What each loader, and each load waiting to be parsed, may hold in the thread
#: pipeline before the others wait (:func:`memory_budget`).
LOAD_SHARE = 64 << 20


def memory_budget(jobs: int = 2) -> MemoryBudget:
    """What the modules being loaded at the same time by ``jobs`` threads may hold
    together: a share each, and two more for the loads waiting to be parsed.

    A share (64 MiB) is nearly twice what the largest module of Debian 13's
    kernels holds (amdgpu: 28.3 MiB, and its 3.9 MiB file), so on real trees no load
    waits; a bigger one (up to the size bound) still proceeds once it is the
    oldest (see :class:`MemoryBudget`), so memory stays below the budget plus
    one module whatever the tree.  The loads in flight hold much less: what
    decides the peak is each thread's current module (see
    :func:`~moddeps.read.compression.limit_heap_retention`).
    """
    return MemoryBudget((jobs + 2) * LOAD_SHARE)


def _on_alarm(signum: int, frame: object) -> None:
    raise _ReadTimeout


def _timer_usable() -> bool:
    import threading

    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


class _LoadContext(threading.local):
    """The deadline and memory hold of the load running in this thread (see :func:`_load_or_error`)."""

    deadline: Deadline | None = None
    hold: Hold | None = None


_load_context = _LoadContext()


def _load_or_error(path: str) -> tuple[bytes | memoryview, str | None] | ModuleReadError:
    """Read and decompress one module file under this thread's deadline and hold (an ``.ko.xz``
    of the usual shape into a reused region: :func:`~moddeps.read.compression.load_module_data`)."""
    ctx = _load_context
    try:
        return load_module_data(path, deadline=ctx.deadline, hold=ctx.hold)
    except ModuleReadError as exc:
        return exc
    except ReadTimedOut as exc:
        return _timed_out(path, exc.elapsed, exc.limit)


def _read_one(args: tuple[str, str], timeout: float = 0.0, memo: ImportMemo | None = None,
              budget: MemoryBudget | None = None, spent: float = 0.0, declined: bool = False) -> Module:
    """Read one module.  A module that takes longer than ``timeout`` seconds
    becomes an unreadable one instead of stalling the scan: the read and the
    decompression check the time between pieces, the parse runs under the
    SIGALRM timer where one is usable (the caller holds the handler, see
    :func:`_alarm_handler`).  A ``.ko`` file that the C reader reads in part
    (:class:`~moddeps.read.elfreader.PlainFile`) is read and parsed under
    the timer, its reads included.  ``spent``: seconds already spent on it
    (they count); ``declined``: the C reader declined to read it in part
    already (:func:`_read_in_part`), so it is read whole."""
    path, shown = args
    deadline = Deadline(timeout)
    if spent:
        deadline.pause(-spent)
    if budget is None and path.endswith(".ko") and reads_in_part():
        # read in part by the C reader, within the parse's deadline (see PlainFile)
        return _parse_or_broken(PlainFile(path, deadline, in_part=not declined), None, path, shown, deadline, memo)
    hold = budget.open() if budget is not None else None
    _load_context.deadline, _load_context.hold = deadline, hold
    try:
        loaded = _load_or_error(path)
        if isinstance(loaded, ModuleReadError):
            return broken_module(shown, loaded)
        data, kind = loaded
        del loaded
        return _parse_or_broken(data, kind, path, shown, deadline, memo)
    finally:
        _load_context.deadline = _load_context.hold = None
        if hold is not None:
            hold.release()


def _bounded(deadline: Deadline, path: str, work: Callable[[], Module]) -> Module:
    """``work()`` under the SIGALRM timer, for what is left of ``deadline`` (the
    caller holds the handler, see :func:`_alarm_handler`); running out raises
    ModuleReadError with the time really spent."""
    left = deadline.remaining()
    if left is None or not _alarm_installed():
        return work()
    if left <= 0:
        raise _timed_out(path, deadline.elapsed(), deadline.limit)
    try:
        signal.setitimer(signal.ITIMER_REAL, left)
        try:
            return work()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _ReadTimeout:
        raise _timed_out(path, deadline.elapsed(), deadline.limit) from None


def _timed_out(path: str, elapsed: float, limit: float) -> ModuleReadError:
    return timed_out_error(path, ReadTimedOut(elapsed, limit))


#: how many :class:`_alarm_handler` blocks have installed the SIGALRM handler (main thread only)
_alarm_depth = 0


def _alarm_installed() -> bool:
    """The handler is in place and this thread is the one SIGALRM interrupts.
    Asked once a module, so it reads a counter rather than
    ``signal.getsignal`` (~6 us a call, 8% of a plain-.ko scan)."""
    return _alarm_depth > 0 and threading.get_ident() == threading.main_thread().ident


class _alarm_handler:
    """Install the SIGALRM handler for a batch of reads (0: no timer possible here)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout if timeout > 0 and _timer_usable() else 0.0
        self.old: object = None

    def __enter__(self) -> float:
        global _alarm_depth
        if self.timeout:
            self.old = signal.signal(signal.SIGALRM, _on_alarm)
            _alarm_depth += 1
        return self.timeout

    def __exit__(self, *exc: object) -> None:
        global _alarm_depth
        if self.timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)  # type: ignore[arg-type]
            _alarm_depth -= 1


def read_module_bounded(path: str, shown: str | None = None, memo: ImportMemo | None = None) -> Module:
    """One module file, read as a scan reads it: a regular file only (a FIFO is
    refused at once), decompressed within the size bound, given up after
    $MODDEPS_READ_TIMEOUT seconds (an unreadable module then, labelled with
    the time spent).  For commands that read single files (``info``,
    ``compat``, ``plan`` on a path)."""
    timeout = read_timeout()
    try:
        with _alarm_handler(timeout):
            return _read_one((path, path if shown is None else shown), timeout, memo)
    finally:
        release()


def _read_chunk(chunk: list[tuple[str, str]], timeout: float = 0.0) -> bytes:
    """Worker side: read a chunk and return it in wire form, marshalled."""
    with _alarm_handler(timeout):
        return marshal.dumps([_read_one(item, timeout).to_wire() for item in chunk])


def read_modules(
    items: Sequence[tuple[str, str]],
    jobs: int | None = None,
    progress: ProgressFn | None = None,
    cache: ScanCache | None = None,
    keys: Sequence[Key | None] | None = None,
) -> list[Module]:
    """Read (path, shown-path) pairs, in order; ``jobs`` processes (None: all cores).

    With a ``cache``, modules whose file is unchanged come from it and only
    the others are read (and then stored).  ``keys``: the files' identities
    when the caller has already taken them (:func:`moddeps.read.cache.file_key`).
    """
    read_timeout()  # a bad $MODDEPS_READ_TIMEOUT is a usage error, cache or not
    if cache is None or not cache.usable:
        return _read_uncached(items, jobs, progress)
    if keys is None:
        from .cache import file_keys

        keys = file_keys([path for path, _shown in items])
    found = cache.get_many([(k, shown) for k, (_p, shown) in zip(keys, items)])
    todo = [i for i, m in enumerate(found) if m is None]
    if todo:
        batch: list[tuple[Key | None, str, Module] | tuple[Key | None, str, Module, bytes | None]] = []
        packed: dict[int, bytes | None] = {}  # records the C reader made as it read (_read_in_part)

        def store(j: int, m: Module) -> None:
            # handed to the cache in batches while the rest is read (its writes overlap the reading)
            if m.error is None:
                i = todo[j]
                if j in packed:
                    batch.append((keys[i], items[i][1], m, packed.pop(j)))
                else:
                    batch.append((keys[i], items[i][1], m))
                if len(batch) >= CACHE_BATCH:
                    cache.put_many(batch)
                    batch.clear()

        fresh = _read_uncached([items[i] for i in todo], jobs, progress, store, packed)
        for i, m in zip(todo, fresh):
            found[i] = m
        cache.put_many(batch)
        # The last batch alone takes ~10 ms; left to run beside the caller's
        # next steps (depmod's C-heavy resolve and render, which hold the GIL
        # for long stretches) it took 70-90 ms (amd64).
        cache.wait()
        _trim_after_fill()
    elif progress is not None:
        progress(len(items), len(items))
    return [m for m in found if m is not None]


def _trim_after_fill() -> None:
    """After a read that filled the cache, give malloc's free pages back (``_elfscan.trim_heap``),
    when the ``moddeps`` command owns the process.  The records packed, their rows' copies and
    SQLite's buffers leave holes in the heap that the outputs rendered next often did not reuse:
    a first run of Debian 12's cloud tree peaked at 33 MB or at 36-37 MB from one run to the next
    (the later phases' large blocks mapped anew); with the trim ~1 ms, at 33-35."""
    if not process.owned():
        return
    from ..native import load

    c = load("_elfscan")
    if c is not None:
        c.trim_heap()


def _read_uncached(
    items: Sequence[tuple[str, str]], jobs: int | None = None, progress: ProgressFn | None = None,
    sink: Callable[[int, Module], None] | None = None, packed: dict[int, bytes | None] | None = None,
) -> list[Module]:
    """Read every item; ``sink(i, module)`` is called as each one is done (in any order).
    ``packed``: where the C reader (plain files read serially) puts the record of each module
    it read (:func:`moddeps.read.elfreader.read_plain_files`), by index, before ``sink`` is called."""
    total = len(items)
    if jobs is None:
        jobs = os.cpu_count() or 1
    # The reader allocates many small tuples and nothing cyclic: the cyclic
    # garbage collector only costs time here (25% of a scan, measured).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        timeout = read_timeout()
        how = "serial" if jobs <= 1 or total < 64 else _strategy(items)
        if how == "threads":
            return _read_pipelined(items, jobs, progress, timeout, sink)
        if how == "processes":
            return _read_parallel(items, jobs, progress, timeout, sink)
        out = []
        memo: ImportMemo = {}
        with _alarm_handler(timeout) as bound:
            if reads_in_part():  # the C reader, else its twin: _read_one, module by module
                return _read_in_part(items, timeout, bound, memo, progress, sink, ahead=jobs > 1 and _spare_core(),
                                     packed=packed)
            for i, item in enumerate(items):
                m = _read_one(item, timeout, memo)
                out.append(m)
                if sink is not None:
                    sink(i, m)
                if progress is not None:
                    progress(i + 1, total)
        return out
    finally:
        release()
        if gc_was_enabled:
            gc.enable()


#: Modules read by one call of the C reader when progress is reported (it is,
#: after each call); else every one in one call, or with a sink (a first run
#: storing what it reads) :data:`SINK_RUN`.
_RUN = 128
#: Modules read by one call when only a sink is fed: a call starts its loader
#: thread empty, so runs of 128 (32 calls, amd64) made the caller read the first
#: files of each run itself.
SINK_RUN = 512
#: Modules handed to the scan cache at once while a read goes on: the cache's writer
#: keeps closer to the reader with 256 than with 512, and what the read waits for at its
#: end is shorter (amd64 first run: 8.3-10 -> 3.4-3.7 ms).
CACHE_BATCH = 256


def _spare_core() -> bool:
    """Whether this process may run on more than one core (its affinity, not the machine's)."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    return len(getaffinity(0)) > 1 if getaffinity is not None else (os.cpu_count() or 1) > 1


def _read_in_part(
    items: Sequence[tuple[str, str]], timeout: float, bound: float, memo: ImportMemo,
    progress: ProgressFn | None = None, sink: Callable[[int, Module], None] | None = None,
    ahead: bool = False, packed: dict[int, bytes | None] | None = None,
) -> list[Module]:
    """The serial reader, as :func:`_read_one` reads each item, with runs of ``.ko``
    files read by the C reader in one call (:func:`~moddeps.read.elfreader.read_plain_files`):
    the ~10 us of Python a module cost (deadline, timer set and cleared, wrappers, the
    record's ``__init__``) are paid once a call.  ``bound``: the timeout that the
    SIGALRM timer enforces here (0: none usable, as :func:`_bounded`; the caller holds
    the handler).  What the C reader leaves -- a compressed file, one it declines, one
    that ran out of time -- is read (or labelled) here as :func:`_read_one` does, with
    its deadline counted from when its read started.  ``ahead``: a C thread opens and reads
    the files while this one parses (``_elfscan.parse_files``; with a second core to run on)."""
    total = len(items)
    out: list[Module] = []
    run = _RUN if progress is not None else SINK_RUN if sink is not None else total
    i = 0
    while i < total:
        stop = min(total, i + run)
        records: list[bytes | None] | None = [] if packed is not None else None
        made, started, elapsed = read_plain_files(items, i, stop, memo, bound, _ReadTimeout, ahead, records)
        if packed is not None and records is not None:
            packed.update(enumerate(records, i))
        if sink is not None:
            for k, m in enumerate(made, i):
                sink(k, m)
        out += made
        i += len(made)
        if i < stop:  # items[i] was not read there
            path, shown = item = items[i]
            if elapsed is not None:
                m = broken_module(shown, _timed_out(path, elapsed, timeout))
            else:  # what the C reader spent on it counts (measured on its clock, time.monotonic)
                spent = 0.0 if started is None else max(0.0, time.monotonic() - started)
                m = _read_one(item, timeout, memo, spent=spent, declined=True)
            out.append(m)
            if sink is not None:
                sink(i, m)
            i += 1
        if progress is not None:
            progress(i, total)
    return out


def _strategy(items: Sequence[tuple[str, str]]) -> str:
    """How to read many modules: "serial", "threads" or "processes".

    Decompression (zlib, liblzma, zstd) releases the GIL, so threads
    decompress on every core at no transfer cost (4,230 ``.ko.xz``: 5.1 s
    serial, 2.6 s in two threads) while this thread parses.  Plain ``.ko``
    files cost only a read and the parse: with the C parser that is ~35 us a
    module, less than handing modules between threads or processes costs
    (amd64, 4,022 modules: serial 0.15 s, two threads 0.22 s), so they are
    read here; the pure-Python parser (~150 us) pays for a forked worker.
    Since the C reader reads plain files in part (``PlainFile``), the read
    and parse of a module cost ~36 us of CPU (amd64: 146 ms); read in runs by
    one C call (:func:`_read_in_part`), ~31 us (amd64: 124 ms).  With a second
    core, a C loader thread (lowest priority) opens and reads the files while
    this thread parses (``_elfscan.parse_files(ahead=True)``; this thread reads
    a file itself when the loader has not come to it): with a core free, the
    read's wall 148 -> 89 ms (amd64); with none, about the serial CPU and wall.
    """
    from ..native import load

    compressed = sum(1 for path, _shown in items if not path.endswith(".ko"))
    if compressed * 4 > len(items):
        return "threads"
    return "serial" if load("_elfscan") is not None else "processes"


#: How long the parsing thread of :func:`_read_pipelined` sleeps when it finds no load to
#: collect.  The loaders parse what the C reader takes and give back its hold and slot
#: themselves, so nothing waits for this thread but the records: collected in batches, not
#: woken by each one.  amd64 ``.ko.xz``, 10 alternating rounds: woken by each, 3.000 s of wall
#: and 5.79 s of CPU; with a 4 ms nap, 2.866 s and 5.51 s (it no longer takes the GIL from
#: the loaders once a module).
COLLECT_NAP = 0.004


def _read_pipelined(
    items: Sequence[tuple[str, str]], jobs: int, progress: ProgressFn | None, timeout: float = 0.0,
    sink: Callable[[int, Module], None] | None = None,
) -> list[Module]:
    """Load (read + decompress) in ``jobs`` threads from both ends of the files sorted by size
    (:class:`_Schedule`); each loader makes the record of what the C reader takes
    (:func:`_parse_in_loader`), and what it declines is parsed here as loads finish.

    One loader takes the largest file left, the others the smallest: the
    last loads are mid-sized, so no thread is left alone with a big module at
    the end (amdgpu: 0.3 s to decompress), and two big modules are not
    decompressed at the same time (each holds about twice its size while
    Python's ``lzma`` joins its output).  The parse order does not matter
    (records are put back in place).  The first few loads
    start in the given order, before the sizes are known (4,230 ``stat``
    calls take 15 ms), so the loaders are busy from the start.  Only a few
    loads run ahead of the parse, and what they hold together -- being
    decompressed or waiting to be parsed -- is bounded by one
    :class:`MemoryBudget` (a load waits for room; the oldest always proceeds),
    so memory stays bounded whatever the tree.  Each load checks its own
    deadline between pieces; a load stuck inside one system call for longer
    (a hung file system) is given up from here, and as the threads are
    daemons a fresh one carries on without the stuck one keeping the process
    alive at exit.

    Measured on 4,230 ``.ko.xz`` (2 cores; decompression alone: 2.75 s in
    two threads): in tree order 3.1 s; with this thread also loading while
    it waits, 3.8 s (the loaders starve for the GIL); with the switch
    interval at 0.5 ms while parsing (a finished load waits less for the
    GIL), 2.9-3.0 s.  Parsing in the loaders instead of here saved no CPU
    time at first (1,138 ``.ko.xz``: 1.35 s either way, the Python reader
    parsing); with the C reader it does, the module's bytes being in the
    loader's cache (amd64, 5 alternating rounds: wall 3.048 -> 2.975 s, CPU
    5.86 -> 5.74 s), and the loader then giving back the hold and the slot
    itself saves the hand-off (2.944 -> 2.911 s, CPU 5.68 -> 5.59 s).  Both loaders taking the
    largest file left, as before the two ends: CPU and wall time the same
    within the noise of a shared machine, the read's peak higher (with the
    fitted xz pieces: 25.3 -> 17.8 MiB, ``bench_xzread.py`` on Debian 13's
    cloud tree; see benchmarks/README.md).
    """
    import queue

    total = len(items)
    done: queue.SimpleQueue[tuple[int, object, Hold | None]] = queue.SimpleQueue()
    loading: dict[int, tuple[int, Deadline, Hold]] = {}  # thread number -> (index being loaded, deadline, hold)
    budget = memory_budget(jobs)
    ahead = 8 * jobs
    first = min(total, ahead)
    schedule = _Schedule(list(range(first)), ahead)

    def worker(number: int) -> None:
        while True:
            index = schedule.take(number)
            if index is None:
                return
            deadline = Deadline(timeout)
            hold = budget.open()
            loading[number] = (index, deadline, hold)
            _load_context.deadline, _load_context.hold = deadline, hold
            try:
                path, shown = items[index]
                result: object = _load_or_error(path)
                if type(result) is tuple:
                    parsed = _parse_in_loader(result[0], result[1], path, shown, deadline, memo)
                    if parsed is not None:
                        result = parsed
            except BaseException as exc:  # handed to the parsing thread
                result = exc
            _load_context.deadline = _load_context.hold = None
            mine = loading.pop(number, None) is not None  # (not: the parsing thread gave it up meanwhile)
            if type(result) is Module and mine:  # parsed here: its bytes are gone, room for the next loads
                hold.release()
                schedule.handed_back()
                done.put((index, result, None))
            else:
                done.put((index, result, hold))
            del result

    threads: list[threading.Thread] = []

    def start_thread() -> None:
        th = threading.Thread(target=worker, args=(len(threads),), name=f"moddeps-load-{len(threads)}", daemon=True)
        threads.append(th)
        th.start()

    limit_heap_retention()
    out: list[Module | None] = [None] * total
    given_up: set[int] = set()
    memo: ImportMemo = {}
    finished = 0
    # A load past its deadline reports itself within a piece (~8 MiB); one
    # stuck in a system call is given up after this grace.
    grace = min(1.0, timeout / 2)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        for _ in range(jobs):
            start_thread()
        # the rest by size, sorted while the first ones load
        schedule.sort(sorted(range(first, total), key=lambda i: -_file_size(items[i][0])))
        with _alarm_handler(timeout):
            while finished < total:
                try:
                    index, loaded, hold = done.get(timeout=(grace or None) if timeout else None)
                except queue.Empty:
                    for number, (stuck, deadline, stuck_hold) in list(loading.items()):
                        if deadline.elapsed() <= timeout + grace or loading.pop(number, None) is None:
                            continue  # (None: its loader has just finished it)
                        stuck_hold.release()  # what it holds no longer stops the others
                        given_up.add(stuck)
                        path, shown = items[stuck]
                        out[stuck] = broken = broken_module(shown, _timed_out(path, deadline.elapsed(), timeout))
                        if sink is not None:
                            sink(stuck, broken)
                        finished += 1
                        schedule.handed_back()
                        schedule.replace(number, len(threads))  # its role (which end) goes to the fresh one
                        start_thread()
                    continue
                if index in given_up:
                    if hold is not None:
                        hold.release()
                    continue
                if hold is None:  # parsed by the loader, which has given back its hold and slot
                    out[index] = cast(Module, loaded)
                else:
                    try:
                        path, shown = items[index]
                        if isinstance(loaded, ModuleReadError):
                            out[index] = broken_module(shown, loaded)
                        elif isinstance(loaded, BaseException):
                            raise loaded
                        else:
                            data, kind = cast("tuple[bytes | memoryview, str | None]", loaded)
                            del loaded
                            out[index] = _parse_or_broken(data, kind, path, shown, Deadline(timeout), memo)
                            del data
                    finally:
                        loaded = None
                        hold.release()  # the bytes are gone: room for the next loads
                    schedule.handed_back()
                if sink is not None:
                    sink(index, cast(Module, out[index]))
                finished += 1
                if progress is not None:
                    progress(finished, total)
                if hold is None and finished < total and done.empty():
                    time.sleep(COLLECT_NAP)  # (see COLLECT_NAP)
    finally:
        sys.setswitchinterval(switch)
        schedule.close()
        release_xz_regions()
    # Once, at the end: what the loaders' heap held (the files read, Python's lzma's output where
    # the C decoder declined) goes back before the later phases allocate.  Trims every 32 MiB
    # parsed as well were needed while each module's output came from malloc's heap; with the C
    # decoder's reused regions (moddeps/read/_xz.c) they no longer lowered the peak (Debian 13
    # cloud, 7 alternating runs: depmod's first run 35.1 MB with them, 35.0 without; scan --json
    # 36.3 and 34.0) and cost faults and CPU (amd64, cold: 7.22 -> 6.98 s of CPU).
    return_free_heap()
    return cast("list[Module]", out)


class _Schedule:
    """Which file each loader thread of :func:`_read_pipelined` loads next.

    First the ``first`` indexes in the given order (while the others' sizes
    are taken), then the others sorted largest first (:meth:`sort`): the
    thread numbered :attr:`front` takes from the large end, every other one
    from the small end.  At most ``ahead`` loads are taken and not yet
    handed back (parsed, or given up) at any time.  Slots are tokens in a
    ``SimpleQueue`` and the ends are deques (whose pops are atomic): a
    ``Condition`` instead cost ~20,000 instructions a module in Python
    (callgrind, Debian 13 cloud: +25 M over the queue of before).
    """

    def __init__(self, first: list[int], ahead: int) -> None:
        import queue
        from collections import deque

        self._first = deque(first)
        self._rest: deque[int] = deque()
        self._sorted = threading.Event()
        self._slots: queue.SimpleQueue[bool] = queue.SimpleQueue()
        for _ in range(ahead):
            self._slots.put(True)
        self._closed = False
        self.front = 0

    def sort(self, rest: list[int]) -> None:
        from collections import deque

        self._rest = deque(rest)
        self._sorted.set()

    def take(self, number: int) -> int | None:
        """The next index for thread ``number`` (waiting for a slot), None when none is left."""
        self._slots.get()
        if not self._closed:
            try:
                return self._first.popleft()
            except IndexError:
                pass
            if not self._sorted.is_set():
                self._sorted.wait()
            if not self._closed:
                try:
                    return self._rest.popleft() if number == self.front else self._rest.pop()
                except IndexError:
                    pass
        self._slots.put(True)  # nothing for this thread: the slot goes to the next one asking
        return None

    def handed_back(self) -> None:
        """One load taken is done with: room for the next."""
        self._slots.put(True)

    def replace(self, old: int, new: int) -> None:
        """Thread ``new`` takes thread ``old``'s end (``old`` was given up)."""
        if self.front == old:
            self.front = new

    def close(self) -> None:
        self._closed = True
        self._sorted.set()
        self._slots.put(True)  # each thread woken puts it back for the next


def _parse_in_loader(data: bytes | memoryview, kind: str | None, path: str, shown: str, deadline: Deadline,
                     memo: ImportMemo) -> Module | None:
    """The record of a module a loader thread has just loaded, made there by the C reader while
    the module's bytes are still in that core's cache; None where the C reader declines it (the
    parsing thread then reads it with the Python reader, under the timer, as before).

    amd64 ``.ko.xz`` (4,230 modules): the C parse of a module decoded on the other core took
    ~45 us in the parsing thread, against ~12 us on bytes in cache.  The C parse never raises
    and holds the GIL throughout (``memo`` is shared), and no signal can interrupt it: the
    timer of :func:`_bounded` could only say, once it returned, that the deadline had passed,
    which is what is looked at here."""
    got = parse_native(data, shown, kind, memo)
    if got is None:
        return None
    left = deadline.remaining()
    if left is not None and left <= 0:
        return broken_module(shown, _timed_out(path, deadline.elapsed(), deadline.limit))
    return got


def _sink_chunk(sink: Callable[[int, Module], None] | None, start: int, modules: list[Module]) -> None:
    if sink is not None:
        for k, m in enumerate(modules):
            sink(start + k, m)


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _parse_or_broken(
    data: bytes | memoryview | PlainFile, kind: str | None, path: str, shown: str, deadline: Deadline,
    memo: ImportMemo | None = None,
) -> Module:
    try:
        return _bounded(deadline, path,
                        lambda: parse_module(data, shown, compression=kind, display_path=path, memo=memo))
    except ModuleReadError as exc:
        return broken_module(shown, exc)


#: In the forked pool, files bigger than this (and compressed ones, whose
#: size is known only once decompressed) are read by the parent itself, one
#: at a time: the workers then never hold more than this each.
_POOL_FILE_LIMIT = 1 << 26


def _read_parallel(
    items: Sequence[tuple[str, str]], jobs: int, progress: ProgressFn | None, timeout: float = 0.0,
    sink: Callable[[int, Module], None] | None = None,
) -> list[Module]:
    """Read with ``jobs - 1`` forked workers while this process reads its own share.

    Chunks are dealt round-robin: every ``jobs``-th chunk stays here, the
    others go to the pool and come back as one marshal blob each (marshal is
    5x faster than pickle at producing it); results are put back in order.
    A chunk holding a big or compressed file stays here too (see
    :data:`_POOL_FILE_LIMIT`), so the memory of concurrent reads stays bounded.
    """
    total = len(items)
    import multiprocessing

    ctx = multiprocessing.get_context("fork") if hasattr(os, "fork") else multiprocessing.get_context()
    size = max(8, min(64, total // (jobs * 8) or 1))
    chunks = [list(items[i : i + size]) for i in range(0, total, size)]
    here = [ci for ci, chunk in enumerate(chunks)
            if ci % jobs == 0 or any(not p.endswith(".ko") or _file_size(p) > _POOL_FILE_LIMIT for p, _s in chunk)]
    kept = set(here)
    done: list[list[Module] | None] = [None] * len(chunks)
    from_wire = Module.from_wire
    memo: ImportMemo = {}
    count = 0
    with ctx.Pool(jobs - 1, initializer=gc.disable) as pool:
        pending = [(ci, pool.apply_async(_read_chunk, (chunk, timeout)))
                   for ci, chunk in enumerate(chunks) if ci not in kept]
        with _alarm_handler(timeout):
            for ci in here:
                done[ci] = part = [_read_one(item, timeout, memo) for item in chunks[ci]]
                _sink_chunk(sink, ci * size, part)
                count += len(chunks[ci])
                if progress is not None:
                    progress(count, total)
        for ci, result in pending:
            done[ci] = part = [from_wire(w, memo) for w in marshal.loads(result.get())]
            _sink_chunk(sink, ci * size, part)
            count += len(chunks[ci])
            if progress is not None:
                progress(count, total)
    return [m for part in done if part is not None for m in part]
