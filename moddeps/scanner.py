"""Walk a module tree the way depmod does, order it, and read every module.

The steps, in kmod's order (tools/depmod.c @v30 and @v34.2: depmod_modules_search,
depmod_modules_sort, depmod_load_modules):

1. Walk the module directory, then each ``external`` directory, in raw
   ``readdir`` order (never sorted: same-priority duplicates are decided by
   it).  ``build``, ``source`` and ``exclude`` names are skipped at every
   depth; symlinks are followed (with loop protection, which kmod lacks).
2. Register each module file by name; a second file of the same name either
   replaces the first or is dropped, by the override and search rules.
3. Lay the registered modules out in kmod's hash-table order, then sort them
   stably by their position in ``modules.order``.  That is the *module
   array*: the line order of ``modules.dep`` and the tie-breaker of every
   later step (the last exporter of a symbol wins).
4. Read the modules: serially, in loader threads (compressed trees) or in a
   process pool, each under a deadline ($MODDEPS_READ_TIMEOUT) checked
   between pieces of its read and decompression, the loads in flight sharing
   one memory budget (:class:`~moddeps.read.compression.MemoryBudget`).
"""

from __future__ import annotations

import gc
import marshal
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

from .config import DepmodConfig
from .errors import ModuleReadError
from .inputfiles import MAX_INPUT_SIZE, NotRegularFile, TooLarge, open_regular, read_bounded
from .kmodhash import hash_order
from .kmodnames import MODULE_SUFFIXES
from .model import FileProblem, Module, fsencode, modname_from_path, printable
from .read.cache import Key, ScanCache
from .read.compression import (
    DEFAULT_MAX_SIZE,
    Deadline,
    Hold,
    MemoryBudget,
    ReadTimedOut,
    load_module_file,
    read_timeout,
    timed_out_error,
)
from .read.elfreader import ImportMemo, broken_module, parse_module

SKIP_NAMES = frozenset({".", "..", "build", "source"})

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ModuleFile:
    """A module file found by the walk."""

    name: str
    path: str  # absolute (or as given) path to open
    relpath: str | None  # relative to the module directory; None for external modules

    @property
    def shown(self) -> str:
        """What depmod prints for it: the relpath, or the absolute path for externals."""
        return self.relpath if self.relpath is not None else self.path

    @property
    def uncrelpath(self) -> str | None:
        """The string matched against ``modules.order``.

        kmod tools/depmod.c (depmod_module_add): the first
        ``len(reldir) + 1 + len(modname) + 3`` characters of the relpath, so
        ``kernel/fs/foo-bar.ko.xz`` gives ``kernel/fs/foo-bar.ko`` and
        ``kernel/foo.bar.ko`` gives the odd ``kernel/foo.ba``.
        """
        if self.relpath is None:
            return None
        slash = self.relpath.rfind("/")
        reldir_len = slash if slash >= 0 else 0
        return self.relpath[: reldir_len + 1 + len(self.name) + 3]


@dataclass(frozen=True, slots=True)
class Duplicate:
    """One module name met in several files, and which one depmod keeps."""

    name: str
    winner: str
    losers: tuple[str, ...]
    reasons: tuple[str, ...]  # one per decision, in the order they were made


@dataclass(frozen=True, slots=True)
class Tree:
    """A scanned module tree: the module array and what was found around it."""

    dirname: str
    version: str
    modules: tuple[Module, ...]  # the module array (modules.dep line order)
    files: tuple[ModuleFile, ...]  # same order as modules
    order_listed: frozenset[str] = frozenset()  # module names placed by modules.order
    order_applied: bool = False
    builtin: tuple[str, ...] = ()  # module names from modules.builtin
    duplicates: tuple[Duplicate, ...] = ()
    problems: tuple[FileProblem, ...] = ()
    messages: tuple[str, ...] = ()  # kmod-style messages ("WARNING: ...") in kmod's order
    config: DepmodConfig = field(default_factory=DepmodConfig)

    def by_name(self) -> dict[str, Module]:
        return {m.name: m for m in self.modules}

    @property
    def broken(self) -> tuple[Module, ...]:
        return tuple(m for m in self.modules if m.error is not None)


def is_module_filename(name: str) -> bool:
    """kmod tools/depmod.c (depmod_modules_search_file): a name longer than its
    extension that ends in a module extension."""
    if name.endswith(MODULE_SUFFIXES):
        for suffix in MODULE_SUFFIXES:  # the suffixes exclude each other
            if name.endswith(suffix):
                return len(name) > len(suffix)
    return False


# --------------------------------------------------------------------------
# 1-2. Walk and register
# --------------------------------------------------------------------------


class _Registry:
    """Module files by name, resolving duplicates as kmod does."""

    def __init__(self, dirname: str, config: DepmodConfig) -> None:
        self.dirname = dirname
        self.config = config
        self.by_name: dict[str, ModuleFile] = {}
        self.dups: dict[str, list[tuple[str, str, str]]] = {}  # name -> [(kept, dropped, reason)]

    def add(self, mf: ModuleFile) -> None:
        old = self.by_name.get(mf.name)
        if old is None:
            self.by_name[mf.name] = mf
            return
        new_wins, reason = self._new_wins(old, mf)
        kept, dropped = (mf, old) if new_wins else (old, mf)
        self.dups.setdefault(mf.name, []).append((kept.shown, dropped.shown, reason))
        if new_wins:
            self.by_name[mf.name] = mf

    def _override_key(self, mf: ModuleFile) -> str | None:
        if mf.relpath is None:
            return None
        slash = mf.relpath.rfind("/")
        reldir = mf.relpath[:slash] if slash >= 0 else ""
        base = mf.relpath[slash + 1 :]
        return f"{reldir}/{base[: len(mf.name)]}"

    def _new_wins(self, old: ModuleFile, new: ModuleFile) -> tuple[bool, str]:
        """kmod tools/depmod.c (depmod_module_is_higher_priority)."""
        cfg = self.config
        new_key, old_key = self._override_key(new), self._override_key(old)
        # kmod prepends each override, so the last configured is tested first;
        # within one override, the new file is tested before the old one.
        for ov in reversed(cfg.overrides):
            if ov.path == new_key:
                return True, f"override {ov.modname} {ov.subdir}"
            if ov.path == old_key:
                return False, f"override {ov.modname} {ov.subdir}"
        i = 0
        bprio = oldprio = newprio = -1
        externals_internal = list(reversed(cfg.externals))
        for entry in reversed(cfg.effective_search):
            if entry == "built-in":
                bprio = i
            elif entry == "external":
                for d in externals_internal:
                    if new.path.startswith(d + "/"):
                        newprio = i
                    if old.path.startswith(d + "/"):
                        oldprio = i
                    i += 1
            else:
                # kmod's else-if: old is only tested when new did not match,
                # so of two files in one search directory the later one wins.
                if new.relpath is not None and new.relpath.startswith(entry + "/"):
                    newprio = i
                elif old.relpath is not None and old.relpath.startswith(entry + "/"):
                    oldprio = i
            i += 1
        if newprio < 0:
            newprio = bprio
        if oldprio < 0:
            oldprio = bprio
        if newprio <= oldprio:
            if newprio == oldprio:
                return False, "equal search priority: the file found first in directory order is kept"
            return False, "kept file is in a higher-priority search directory"
        if any(new.relpath and new.relpath.startswith(e + "/") and old.relpath and old.relpath.startswith(e + "/")
               for e in cfg.effective_search):
            return True, "both in one search directory: kmod keeps the file found later in directory order"
        return True, "kept file is in a higher-priority search directory"


def discover(dirname: str, config: DepmodConfig, problems: list[FileProblem]) -> _Registry:
    registry = _Registry(dirname, config)
    excludes = frozenset(config.excludes)
    _walk_exact(dirname, "", registry, excludes, problems, set())
    # kmod walks the external list in internal (reversed) order.
    for ext in reversed(config.externals):
        if os.path.isdir(ext):
            _walk_exact(ext.rstrip("/") or "/", None, registry, excludes, problems, set())
        else:
            # kmod tools/depmod.c (depmod_modules_search_path): reported, then skipped
            problems.append(FileProblem(
                ext, "external directory does not exist",
                f"ERROR: could not open directory {ext}: No such file or directory",
            ))
    return registry


#: Characters that a path written into modules.dep cannot hold: libkmod splits
#: a line at its first ":" and the dependency list at blanks.
_UNSAFE_PATH = {"\n": "a newline", " ": "a blank", "\t": "a tab", ":": "a colon", "\r": "a carriage return"}


_UNSAFE_CHARS = frozenset(_UNSAFE_PATH)


def _unsafe_path(path: str) -> str | None:
    if _UNSAFE_CHARS.isdisjoint(path):
        return None
    for ch, what in _UNSAFE_PATH.items():
        if ch in path:
            return what
    return None


def _walk_exact(
    top: str,
    rel: str | None,
    registry: _Registry,
    excludes: frozenset[str],
    problems: list[FileProblem],
    ancestors: set[tuple[int, int]],
) -> None:
    """kmod's recursive walk, entry by entry, with an explicit stack (any depth,
    no recursion): a subdirectory is descended as soon as it is met, so files
    listed after it in the parent are registered after its contents."""
    stack: list[tuple[str, str | None, Iterator[os.DirEntry[str]], tuple[int, int]]] = []

    def enter(dirpath: str, rel: str | None) -> None:
        shown = rel or dirpath
        try:
            st = os.stat(dirpath)
            ident = (st.st_dev, st.st_ino)
            if ident in ancestors:
                problems.append(FileProblem(shown, "symlink loop: a directory contains itself; not descended"))
                return
            with os.scandir(dirpath) as it:
                entries = list(it)
        except OSError as exc:
            problems.append(FileProblem(
                shown, f"cannot list directory ({len(stack)} levels deep): {exc.strerror}; not descended"))
            return
        ancestors.add(ident)
        stack.append((dirpath, rel, iter(entries), ident))

    enter(top, rel)
    while stack:
        dirpath, rel, entries, ident = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            ancestors.discard(ident)
            continue
        name = entry.name
        if name in SKIP_NAMES or name in excludes:
            continue
        path = f"{dirpath}/{name}"
        child_rel = None if rel is None else (f"{rel}/{name}" if rel else name)
        try:
            # DirEntry.is_dir/is_file use d_type and stat (following
            # symlinks) only when needed, as kmod does.
            is_dir = entry.is_dir()
            is_file = not is_dir and entry.is_file()
        except OSError as exc:
            problems.append(FileProblem(child_rel or path, f"cannot stat: {exc.strerror}"))
            continue
        if is_dir:
            enter(path, child_rel)
        elif is_file:
            if is_module_filename(name):
                shown = child_rel if child_rel is not None else path
                what = _unsafe_path(shown)
                if what is not None:
                    # kmod writes such a path verbatim, injecting lines or
                    # dependencies into modules.dep: moddeps leaves it out.
                    msg = f"{printable(shown)}: module path contains {what}, which modules.dep cannot hold; skipped"
                    problems.append(FileProblem(shown, msg, f"ERROR: {msg}"))
                    continue
                registry.add(ModuleFile(modname_from_path(name), path, child_rel))
        elif entry.is_symlink() and not os.path.exists(path):
            problems.append(FileProblem(child_rel or path, "dangling symlink"))
        else:
            try:
                fmt = stat.S_IFMT(os.stat(path).st_mode)
            except OSError:
                fmt = 0
            problems.append(FileProblem(
                child_rel or path, "unsupported file type",
                f"ERROR: unsupported file type {path}: {fmt:o}",
            ))


# --------------------------------------------------------------------------
# 3. The module array
# --------------------------------------------------------------------------


def module_array(
    files: Iterable[ModuleFile], dirname: str, order_text: bytes | None, *, first_wins: bool = True
) -> tuple[list[ModuleFile], frozenset[str], bool, list[str]]:
    """kmod's module array: hash order, then a stable sort by ``modules.order``.

    A module listed on several lines takes the position of its first line
    (``first_wins``: kmod 34, commit a1186faeac14, skips a module already
    numbered) or of its last (kmod 30-33: tools/depmod.c depmod_modules_sort
    numbers every match, so the last number stays).

    Returns (array, names placed by modules.order, whether the order file was
    applied, kmod-style messages).
    """
    by_key = {fsencode(mf.name): mf for mf in files}
    array = [by_key[k] for k in hash_order(by_key, 512)]
    messages: list[str] = []
    if order_text is None:
        messages.append(f"WARNING: could not open modules.order at {dirname}: No such file or directory")
        return array, frozenset(), False, messages
    lines = order_text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
        complete = True
    else:
        complete = False
    if not complete:
        # kmod tools/depmod.c (depmod_modules_sort): a line without "\n"
        # (only the last can be one) disables the reordering entirely.
        messages.append(f"ERROR: {dirname}/modules.order:{len(lines)} corrupted line misses '\\n'")
        return array, frozenset(), False, messages
    total = len(lines)
    by_unc: dict[bytes, ModuleFile] = {}
    for mf in array:
        unc = mf.uncrelpath
        if unc is not None:
            by_unc[fsencode(unc)] = mf
    sort_idx: dict[str, int] = {}
    for k, line in enumerate(lines, start=1):
        found = by_unc.get(line)
        if found is not None and not (first_wins and found.name in sort_idx):
            sort_idx[found.name] = k - (total + 1)
    array.sort(key=lambda mf: sort_idx.get(mf.name, 1))
    return array, frozenset(sort_idx), True, messages


# --------------------------------------------------------------------------
# 4. Reading, in a pool
# --------------------------------------------------------------------------


class _ReadTimeout(Exception):
    pass


def memory_budget() -> MemoryBudget:
    """What the modules being read at the same time may hold together: one
    module at the size limit, plus a tenth for the small ones beside it."""
    return MemoryBudget(DEFAULT_MAX_SIZE + DEFAULT_MAX_SIZE // 10)


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


def _load_or_error(path: str) -> tuple[bytes, str | None] | ModuleReadError:
    """Read and decompress one module file under this thread's deadline and hold."""
    ctx = _load_context
    try:
        return load_module_file(path, deadline=ctx.deadline, hold=ctx.hold)
    except ModuleReadError as exc:
        return exc
    except ReadTimedOut as exc:
        return _timed_out(path, exc.elapsed, exc.limit)


def _read_one(args: tuple[str, str], timeout: float = 0.0, memo: ImportMemo | None = None,
              budget: MemoryBudget | None = None) -> Module:
    """Read one module.  A module that takes longer than ``timeout`` seconds
    becomes an unreadable one instead of stalling the scan: the read and the
    decompression check the time between pieces, the parse runs under the
    SIGALRM timer where one is usable (the caller holds the handler, see
    :func:`_alarm_handler`)."""
    path, shown = args
    deadline = Deadline(timeout)
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
    with _alarm_handler(timeout):
        return _read_one((path, path if shown is None else shown), timeout, memo)


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
        from .read.cache import file_key

        keys = [file_key(path) for path, _shown in items]
    found = cache.get_many([(k, shown) for k, (_p, shown) in zip(keys, items)])
    todo = [i for i, m in enumerate(found) if m is None]
    if todo:
        batch: list[tuple[Key | None, str, Module]] = []

        def store(j: int, m: Module) -> None:
            # handed to the cache in batches while the rest is read (its writes overlap the reading)
            if m.error is None:
                i = todo[j]
                batch.append((keys[i], items[i][1], m))
                if len(batch) >= 512:
                    cache.put_many(batch)
                    batch.clear()

        fresh = _read_uncached([items[i] for i in todo], jobs, progress, store)
        for i, m in zip(todo, fresh):
            found[i] = m
        cache.put_many(batch)
        # The last batch alone takes ~10 ms; left to run beside the caller's
        # next steps (depmod's C-heavy resolve and render, which hold the GIL
        # for long stretches) it took 70-90 ms (amd64).
        cache.wait()
    elif progress is not None:
        progress(len(items), len(items))
    return [m for m in found if m is not None]


def _read_uncached(
    items: Sequence[tuple[str, str]], jobs: int | None = None, progress: ProgressFn | None = None,
    sink: Callable[[int, Module], None] | None = None,
) -> list[Module]:
    """Read every item; ``sink(i, module)`` is called as each one is done (in any order)."""
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
        with _alarm_handler(timeout):
            for i, item in enumerate(items):
                m = _read_one(item, timeout, memo)
                out.append(m)
                if sink is not None:
                    sink(i, m)
                if progress is not None:
                    progress(i + 1, total)
        return out
    finally:
        if gc_was_enabled:
            gc.enable()


def _strategy(items: Sequence[tuple[str, str]]) -> str:
    """How to read many modules: "serial", "threads" or "processes".

    Decompression (zlib, liblzma, zstd) releases the GIL, so threads
    decompress on every core at no transfer cost (4,230 ``.ko.xz``: 5.1 s
    serial, 2.6 s in two threads) while this thread parses.  Plain ``.ko``
    files cost only a read and the parse: with the C parser that is ~35 us a
    module, less than handing modules between threads or processes costs
    (amd64, 4,022 modules: serial 0.15 s, two threads 0.22 s), so they are
    read here; the pure-Python parser (~150 us) pays for a forked worker.
    """
    from .native import load

    compressed = sum(1 for path, _shown in items if not path.endswith(".ko"))
    if compressed * 4 > len(items):
        return "threads"
    return "serial" if load("_elfscan") is not None else "processes"


def _read_pipelined(
    items: Sequence[tuple[str, str]], jobs: int, progress: ProgressFn | None, timeout: float = 0.0,
    sink: Callable[[int, Module], None] | None = None,
) -> list[Module]:
    """Load (read + decompress) in ``jobs`` threads, largest file first; parse here as loads finish.

    Largest first, the last loads are small, so no thread is left alone with
    a big module at the end (amdgpu: 0.3 s to decompress); the parse order
    does not matter (records are put back in place).  Only a few loads run
    ahead of the parse, and what they hold together -- being decompressed or
    waiting to be parsed -- is bounded by one :class:`MemoryBudget` (a load
    waits for room; the oldest always proceeds), so memory stays bounded
    whatever the tree.  Each load checks its own deadline between pieces;
    a load stuck inside one system call for longer (a hung file system) is
    given up from here, and as the threads are daemons a fresh one carries
    on without the stuck one keeping the process alive at exit.

    Measured on 4,230 ``.ko.xz`` (2 cores; decompression alone: 2.75 s in
    two threads): in tree order 3.1 s; with this thread also loading while
    it waits, 3.8 s (the loaders starve for the GIL); with the switch
    interval at 0.5 ms while parsing (a finished load waits less for the
    GIL), 2.9-3.0 s.
    """
    import queue

    total = len(items)
    order = sorted(range(total), key=lambda i: -_file_size(items[i][0]))
    todo: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    done: queue.SimpleQueue[tuple[int, object, Hold]] = queue.SimpleQueue()
    loading: dict[int, tuple[int, Deadline, Hold]] = {}  # thread number -> (index being loaded, deadline, hold)
    budget = memory_budget()

    def worker(number: int) -> None:
        while True:
            index = todo.get()
            if index is None:
                return
            deadline = Deadline(timeout)
            hold = budget.open()
            loading[number] = (index, deadline, hold)
            _load_context.deadline, _load_context.hold = deadline, hold
            try:
                result: object = _load_or_error(items[index][0])
            except BaseException as exc:  # handed to the parsing thread
                result = exc
            _load_context.deadline = _load_context.hold = None
            loading.pop(number, None)
            done.put((index, result, hold))
            del result

    threads: list[threading.Thread] = []

    def start_thread() -> None:
        th = threading.Thread(target=worker, args=(len(threads),), name=f"moddeps-load-{len(threads)}", daemon=True)
        threads.append(th)
        th.start()

    for _ in range(jobs):
        start_thread()
    ahead = 8 * jobs
    submitted = 0
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
        with _alarm_handler(timeout):
            while finished < total:
                while submitted < total and submitted - finished < ahead:
                    todo.put(order[submitted])
                    submitted += 1
                try:
                    index, loaded, hold = done.get(timeout=(grace or None) if timeout else None)
                except queue.Empty:
                    for number, (stuck, deadline, stuck_hold) in list(loading.items()):
                        if deadline.elapsed() <= timeout + grace:
                            continue
                        loading.pop(number, None)
                        stuck_hold.release()  # what it holds no longer stops the others
                        given_up.add(stuck)
                        path, shown = items[stuck]
                        out[stuck] = broken = broken_module(shown, _timed_out(path, deadline.elapsed(), timeout))
                        if sink is not None:
                            sink(stuck, broken)
                        finished += 1
                        start_thread()
                    continue
                try:
                    if index in given_up:
                        continue
                    path, shown = items[index]
                    if isinstance(loaded, ModuleReadError):
                        out[index] = broken_module(shown, loaded)
                    elif isinstance(loaded, BaseException):
                        raise loaded
                    else:
                        data, kind = cast("tuple[bytes, str | None]", loaded)
                        del loaded
                        out[index] = _parse_or_broken(data, kind, path, shown, Deadline(timeout), memo)
                        del data
                finally:
                    loaded = None
                    hold.release()  # the bytes are gone: room for the next loads
                if sink is not None:
                    sink(index, cast(Module, out[index]))
                finished += 1
                if progress is not None:
                    progress(finished, total)
    finally:
        sys.setswitchinterval(switch)
        for _ in threads:
            todo.put(None)
    return cast("list[Module]", out)


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
    data: bytes, kind: str | None, path: str, shown: str, deadline: Deadline, memo: ImportMemo | None = None
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


def read_optional(path: str) -> bytes | None:
    """An optional input file of the tree (``modules.order``, ``modules.builtin``...):
    None when it does not exist or cannot be opened (kmod then carries on
    without it); InputError, one line naming the file, when it is not a
    regular file or is too big -- never a wait on a FIFO or an endless device."""
    from .errors import InputError

    try:
        fd, st = open_regular(path)
    except (NotRegularFile, TooLarge) as exc:
        raise InputError(f"{printable(path)}: cannot read: {exc.strerror}") from None
    except OSError:
        return None
    try:
        return read_bounded(fd, st.st_size, MAX_INPUT_SIZE)
    except (NotRegularFile, TooLarge) as exc:
        raise InputError(f"{printable(path)}: cannot read: {exc.strerror}") from None
    except OSError:
        return None
    finally:
        os.close(fd)


def builtin_names(text: bytes | None) -> tuple[str, ...]:
    """Module names listed in ``modules.builtin`` (one path per line)."""
    if not text:
        return ()
    out = []
    for line in text.split(b"\n"):
        if line:
            out.append(modname_from_path(line.decode("utf-8", "surrogateescape")))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Layout:
    """A walked and ordered tree whose modules are not read yet (steps 1-3)."""

    dirname: str
    version: str
    files: tuple[ModuleFile, ...]  # the module array
    order_listed: frozenset[str]
    order_applied: bool
    order_text: bytes | None
    duplicates: tuple[Duplicate, ...]
    problems: tuple[FileProblem, ...]
    messages: tuple[str, ...]
    config: DepmodConfig


def layout_tree(dirname: str, *, version: str | None = None, config: DepmodConfig | None = None,
                order_first_wins: bool = True) -> Layout:
    """Walk ``dirname`` and lay out kmod's module array, without reading a module.

    ``order_first_wins``: see :func:`module_array` (kmod 34's rule by default)."""
    from .errors import InputError

    cfg = config or DepmodConfig()
    dirname = dirname.rstrip("/") or "/"
    if not os.path.isdir(dirname):
        raise InputError(f"{dirname}: no such module directory")
    problems: list[FileProblem] = []
    registry = discover(dirname, cfg, problems)
    order_text = read_optional(f"{dirname}/modules.order")
    array, listed, applied, messages = module_array(registry.by_name.values(), dirname, order_text,
                                                    first_wins=order_first_wins)
    duplicates = tuple(
        Duplicate(
            name=name,
            winner=registry.by_name[name].shown,
            losers=tuple(dropped for _kept, dropped, _why in events),
            reasons=tuple(f"{kept} kept over {dropped}: {why}" for kept, dropped, why in events),
        )
        for name, events in registry.dups.items()
    )
    return Layout(
        dirname=dirname,
        version=version or os.path.basename(os.path.abspath(dirname)),
        files=tuple(array),
        order_listed=listed,
        order_applied=applied,
        order_text=order_text,
        duplicates=duplicates,
        problems=tuple(problems),
        # kmod's order: config, (symbol lists,) the walk, then modules.order
        messages=tuple(cfg.messages) + tuple(p.kmod_message for p in problems if p.kmod_message) + tuple(messages),
        config=cfg,
    )


def read_layout(
    layout: Layout, *, jobs: int | None = None, progress: ProgressFn | None = None, cache: ScanCache | None = None,
    keys: Sequence[Key | None] | None = None,
) -> Tree:
    """Step 4: read the modules of a layout (``keys``: see :func:`read_modules`)."""
    modules = read_modules([(mf.path, mf.shown) for mf in layout.files], jobs, progress, cache, keys)
    return Tree(
        dirname=layout.dirname,
        version=layout.version,
        modules=tuple(modules),
        files=layout.files,
        order_listed=layout.order_listed,
        order_applied=layout.order_applied,
        builtin=builtin_names(read_optional(f"{layout.dirname}/modules.builtin")),
        duplicates=layout.duplicates,
        problems=layout.problems,
        messages=layout.messages,
        config=layout.config,
    )


def scan_tree(
    dirname: str,
    *,
    version: str | None = None,
    config: DepmodConfig | None = None,
    jobs: int | None = None,
    progress: ProgressFn | None = None,
    cache: ScanCache | None = None,
) -> Tree:
    """Scan the module directory ``dirname`` (``.../lib/modules/VERSION``): walk, order, read."""
    return read_layout(layout_tree(dirname, version=version, config=config), jobs=jobs, progress=progress,
                       cache=cache)


def scan_files(
    paths: Sequence[str], *, jobs: int | None = None, progress: ProgressFn | None = None,
    cache: ScanCache | None = None,
) -> list[Module]:
    """Read individual module files (paths shown as given)."""
    return read_modules([(p, p) for p in paths], jobs, progress, cache)
