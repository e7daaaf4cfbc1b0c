"""The bytes of a module file, decompressed by magic (not by suffix), within bounds.

What is accepted follows libkmod 34.2 (libkmod/libkmod-file-xz.c,
libkmod-file-zstd.c, libkmod-file-zlib.c @v34.2), checked by hand against
the real kmod 34.2 and 30 (``depmod -n``, its "failed to load symbols from
X: REASON" line) and kept in ``tests/test_compression.py``:

* **xz**: liblzma with ``LZMA_CONCATENATED`` (kmod 30 and 34 alike).  Several
  streams one after the other are one module; zero bytes between or after
  them are stream padding, in multiples of four; anything else after a
  stream (garbage, three zero bytes), a truncated or a corrupt stream makes
  the module unreadable.
* **zstd**: kmod 34 reads the first frame's content size
  (``ZSTD_getFrameContentSize``: a frame that does not declare one, or
  declares 0, is refused) and decompresses the whole file into a buffer of
  exactly that size (``ZSTD_decompress``): further frames may only be
  skippable or empty, and trailing garbage, a truncated frame or corrupt
  data are refused.  kmod 30 streamed any number of frames and took a
  truncated file's partial output as the module ("Exec format error");
  kmod 34's rule is followed.
* **gzip**: zlib's ``gzread`` (kmod built with zlib; Debian's is not, and
  its depmod skips ``.ko.gz``): members one after the other are one module,
  bytes after the last member that do not start another one are ignored, a
  truncated or corrupt member is refused.

Every refusal gives kmod's reason, "Invalid argument" (EINVAL), and the
decompressor's own line that libkmod 34 logs
(:attr:`moddeps.errors.DecompressionError.detail`, e.g. "xz: File is corrupt").

Bounds that kmod lacks, for hostile files:

* the output may not exceed ``max_size`` (1 GiB): when the file declares its
  size (the xz index, the zstd frame header) a larger one is refused before
  anything is decompressed, otherwise as soon as the output passes the
  bound, so a bomb never holds more than ``max_size`` plus one piece;
* the decompressor's own memory: xz dictionaries and zstd windows above
  128 MiB are refused (xz's strongest preset, ``-9e``, needs 65 MiB);
* decompression runs in pieces of 8 MiB, between which a :class:`Deadline`
  is checked and a :class:`MemoryBudget` shared by concurrent loads is drawn on.

The usual ``.ko.xz`` (one stream, nothing after it, exactly the size its index
declares) is decoded by the C decoder ``moddeps.read._xz`` where it is built
(:func:`xz_happy_path`, :func:`load_module_data`): one liblzma stream kept per
thread, so that liblzma keeps its dictionary from module to module, and output
regions reused once the module is parsed.  It declines everything else, and
the Python path here then decides, with the messages above.  A loader opens,
reads, decodes and closes such a file in one call of it (:func:`_load_in_c`).
"""

from __future__ import annotations

import errno
import io
import os
import sys
import threading
import time
import zlib

from .. import process
from ..native import DECLINED

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any

    from ..errors import ModuleReadError
    from ..native import Declined

#: A module bigger than this once decompressed is refused (a "bomb").
DEFAULT_MAX_SIZE = 1 << 30

#: Memory a decompressor may use for its dictionary / window.
DECODER_MEMLIMIT = 1 << 27

#: Output produced between two checks of the deadline and the budget.
PIECE = 1 << 23

#: The clock of deadlines (a test may replace it).
_clock = time.monotonic

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
XZ_MAGIC = b"\xfd7zXZ\x00"
GZIP_MAGIC = b"\x1f\x8b"

EINVAL = "Invalid argument"
ENOEXEC = "Exec format error"


class CompressedDataError(ValueError):
    """Bytes that look compressed but cannot be decompressed within the bounds
    (from :func:`decompress`; :func:`load_module_file` raises it as the
    :class:`~moddeps.errors.DecompressionError` of the file).

    ``detail`` is the line libkmod 34 logs for it (without "depmod: ERROR: "),
    or None where it logs none (or kmod would have read the file: a bound).
    """

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.detail = detail


class ReadTimedOut(Exception):
    """A :class:`Deadline` passed: ``elapsed`` seconds were spent, ``limit`` allowed."""

    def __init__(self, elapsed: float, limit: float) -> None:
        super().__init__(f"reading took {elapsed:.2f} s, more than the {limit:g} s limit; given up")
        self.elapsed = elapsed
        self.limit = limit


#: The largest $MODDEPS_READ_TIMEOUT (seconds, ~31 years): what the interval timer can hold.
MAX_READ_TIMEOUT = 1e9


def read_timeout() -> float:
    """Seconds one module may take to read ($MODDEPS_READ_TIMEOUT, default 60; 0: no bound).

    Anything but a number from 0 to :data:`MAX_READ_TIMEOUT` (``inf``,
    ``1e400``, ``-1``, ``nan``, ``abc``) is a usage error."""
    import math

    from ..errors import UsageError

    text = os.environ.get("MODDEPS_READ_TIMEOUT", "").strip()
    if not text:
        return 60.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= MAX_READ_TIMEOUT:  # also false for nan
        raise UsageError(f"MODDEPS_READ_TIMEOUT={text!r}: not a number of seconds from 0 (no bound) "
                         f"to {MAX_READ_TIMEOUT:g}")
    return value


def timed_out_error(path: str, exc: ReadTimedOut) -> ModuleReadError:
    """The unreadable-module error for a read given up at its deadline (the time really spent)."""
    from ..errors import ModuleReadError

    return ModuleReadError(
        path, f"reading took longer than {exc.limit:g} s ({exc.elapsed:.2f} s, $MODDEPS_READ_TIMEOUT); given up",
        EINVAL)


class Deadline:
    """A time limit for one read (``seconds`` <= 0: none), checked between pieces."""

    __slots__ = ("limit", "start", "end")

    def __init__(self, seconds: float) -> None:
        self.limit = seconds
        self.start = _clock()
        self.end = self.start + seconds if seconds > 0 else None

    def elapsed(self) -> float:
        return _clock() - self.start

    def remaining(self) -> float | None:
        """Seconds left (negative once passed), None without a limit."""
        return None if self.end is None else self.end - _clock()

    def pause(self, seconds: float) -> None:
        """Do not count ``seconds`` (spent waiting for memory, not reading)."""
        self.start += seconds
        if self.end is not None:
            self.end += seconds

    def check(self) -> None:
        if self.end is not None and _clock() > self.end:
            raise ReadTimedOut(self.elapsed(), self.limit)


class MemoryBudget:
    """Bytes that the modules being loaded at the same time may hold together.

    A load opens a :class:`Hold` and asks for what it will need before
    reading (the file size, then the size a compressed file declares) and for
    more as its output grows past that.  A request is granted when it fits
    within ``limit`` and no older request waits (first come, first served).
    One that does not fit waits for others to release -- unless every other
    open hold is waiting too (loads that grow past their estimate, as gzip
    does, could otherwise wait for each other for ever): then the oldest
    waiter proceeds, up to the per-module bound that decompression enforces.
    A hold is released by its owner once the bytes are no longer referenced.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._holds: dict[int, int] = {}
        self._waiting: set[int] = set()
        self._next = 0
        self._cond = threading.Condition()

    def open(self) -> Hold:
        with self._cond:
            ticket = self._next
            self._next += 1
            self._holds[ticket] = 0
        return Hold(self, ticket)

    def _may(self, ticket: int, n: int) -> bool:
        older_waits = any(w < ticket for w in self._waiting)
        if self.used + n <= self.limit:
            return not older_waits
        return not older_waits and all(t in self._waiting for t in self._holds if t != ticket)

    def _grow(self, ticket: int, n: int, deadline: Deadline | None) -> None:
        waited = 0.0
        with self._cond:
            # a hold closed by someone else (a load given up) no longer counts
            while ticket in self._holds and not self._may(ticket, n):
                if not waited:
                    waited = _clock()
                    self._waiting.add(ticket)
                    self._cond.notify_all()  # the oldest waiter may now be the only one able to go on
                self._cond.wait()
            self._waiting.discard(ticket)
            self._cond.notify_all()
            if ticket not in self._holds:
                return
            self.used += n
            self._holds[ticket] += n
            self.peak = max(self.peak, self.used)
        if waited and deadline is not None:
            deadline.pause(_clock() - waited)

    def _grab(self, ticket: int, n: int) -> int:
        """Up to ``n`` bytes more for ``ticket``, as many as fit now, without waiting
        (none while a request waits: they are its)."""
        with self._cond:
            if self._waiting or ticket not in self._holds:
                return 0
            n = max(0, min(n, self.limit - self.used))
            self.used += n
            self._holds[ticket] += n
            self.peak = max(self.peak, self.used)
            return n

    def _shrink(self, ticket: int, n: int) -> None:
        with self._cond:
            if ticket in self._holds:
                self.used -= n
                self._holds[ticket] -= n
                if self._waiting:  # (only a request in _grow waits on the condition)
                    self._cond.notify_all()

    def _close(self, ticket: int) -> None:
        with self._cond:
            self.used -= self._holds.pop(ticket, 0)
            if self._waiting:  # (only a request in _grow waits on the condition, and says so first:
                self._waiting.discard(ticket)  # this ticket's own, closed by another thread, too)
                self._cond.notify_all()


class Hold:
    """One load's share of a :class:`MemoryBudget` (see there)."""

    __slots__ = ("budget", "ticket", "held")

    def __init__(self, budget: MemoryBudget, ticket: int) -> None:
        self.budget = budget
        self.ticket = ticket
        self.held = 0

    def need(self, total: int, deadline: Deadline | None = None) -> None:
        """Make sure ``total`` bytes are held, waiting for room if need be (the
        wait does not count against ``deadline``)."""
        if total > self.held:
            self.budget._grow(self.ticket, total - self.held, deadline)
            self.held = total

    def grab(self, total: int) -> int:
        """Hold up to ``total`` bytes, as much of it as the budget has free now, without
        waiting; what is held then (at least what was held before)."""
        if total > self.held:
            self.held += self.budget._grab(self.ticket, total - self.held)
        return self.held

    def settle(self, total: int) -> None:
        """Hold exactly ``total`` bytes: give back what was held beyond it (or :meth:`need` more)."""
        if total > self.held:
            self.need(total)
        elif total < self.held:
            self.budget._shrink(self.ticket, self.held - total)
            self.held = total

    def release(self) -> None:
        self.budget._close(self.ticket)
        self.held = 0


#: <malloc.h>'s mallopt parameter for the most arenas
M_ARENA_MAX = -8

_heap_limited: bool | None = None  # None: not tried yet


def limit_heap_retention() -> bool:
    """Have threads that decompress allocate from glibc malloc's main heap, not from arenas of their own.

    glibc gives each thread an arena, and raises its thresholds as big
    blocks are freed (up to 32 MiB for a mapping of their own, twice that
    kept free at the top of a heap): after the first large modules each
    loader's arena keeps up to twice the largest output it made, unused, to
    the end of the process -- where the main thread, resolving and
    rendering afterwards, cannot use it.  One arena for every thread (what
    ``MALLOC_ARENA_MAX=1`` does) lets the later phases reuse what the loaders
    freed: the peak RSS of ``depmod --no-cache`` on Debian 13's cloud tree
    (1,138 ``.ko.xz``) fell from 57 to 43-46 MB, on its amd64 tree (4,230;
    amdgpu: 29 MiB) from 118-120 to 92-95 MB -- the same trees decompressed
    beforehand peak at 42 and 91 MB -- at the same CPU time (no more system
    time: the loaders take the heap's lock a few times a module).  Fixed
    thresholds instead (4 MiB, trim at 1 MiB) gave 44 MB but doubled the
    system time (the loaders' heaps shrank and refilled every module).

    Call it before the threads start (a thread takes its arena at its first
    allocation).  It is for the rest of the process, once; only on glibc, only
    when the process is the ``moddeps`` command (a program using moddeps as a
    library keeps its malloc as it set it), and not when the environment sets
    malloc's arenas itself (``MALLOC_ARENA_MAX``, ``GLIBC_TUNABLES``).  True when applied.
    """
    global _heap_limited
    if _heap_limited is None:
        if not process.owned():
            return False
        _heap_limited = _one_arena()
    return _heap_limited


def _one_arena() -> bool:
    env = os.environ
    if "MALLOC_ARENA_MAX" in env or "glibc.malloc" in env.get("GLIBC_TUNABLES", ""):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
    except (AttributeError, ValueError, OSError):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):  # a Python built without ctypes; no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, 1))


_trim: Callable[[int], int] | None = None


def return_free_heap() -> None:
    """Give the free memory of malloc's heap back to the system (glibc's ``malloc_trim``),
    where :func:`limit_heap_retention` applied (the ``moddeps`` command on glibc).

    With one arena, what the loaders free stays in the main heap, and glibc
    raises its trim threshold to twice the largest block freed: after a read
    of Debian 13's cloud tree (1,138 ``.ko.xz``) the heap held 11-15 MB, 2 of
    them in use.  Records and the later phases' objects (Python's own small
    objects live in mappings of their own) then come on top of that."""
    global _trim
    if not _heap_limited:
        return
    if _trim is None:
        import ctypes

        fn = ctypes.CDLL(None).malloc_trim
        fn.argtypes = (ctypes.c_size_t,)
        fn.restype = ctypes.c_int
        _trim = fn
    _trim(0)


def detect(head: bytes) -> str | None:
    """Compression of a file from its first bytes: "zstd", "xz", "gzip" or None.

    kmod libkmod/libkmod-file.c: the magic decides, the suffix only decides
    whether a file is considered at all.
    """
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    return None


# --------------------------------------------------------------------------
# Declared sizes
# --------------------------------------------------------------------------


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """An xz multibyte integer (7 bits a byte, at most 9 bytes) at ``pos``."""
    value = 0
    for i in range(9):
        if pos >= end:
            raise ValueError("truncated integer")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return value, pos
    raise ValueError("integer too long")


def xz_declared_size(data: bytes) -> int | None:
    """The total uncompressed size that the indexes of an xz file declare, or None.

    The streams are walked from the end (xz file format 1.1.0, sections 2.1.2
    and 4): stream padding, then each stream's footer gives its index, which
    lists each block's unpadded and uncompressed size.  None when the
    structure does not hold together (decompression then says why).
    liblzma checks every index against the blocks it decoded, so output
    beyond the declared size means a corrupt file.
    """
    total = 0
    end = len(data)
    try:
        while end > 0:
            pad = 0
            while end > 0 and data[end - 1] == 0:
                end -= 1
                pad += 1
            if pad % 4 or end == 0:
                return None
            if end < 24 or data[end - 2 : end] != b"YZ":
                return None
            index_size = (int.from_bytes(data[end - 8 : end - 4], "little") + 1) * 4
            index_start = end - 12 - index_size
            if index_start < 12 or data[index_start] != 0:
                return None
            pos = index_start + 1
            count, pos = _varint(data, pos, end - 12)
            blocks = 0
            for _ in range(count):
                unpadded, pos = _varint(data, pos, end - 12)
                size, pos = _varint(data, pos, end - 12)
                blocks += (unpadded + 3) & ~3
                total += size
            start = index_start - blocks - 12
            if start < 0 or data[start : start + 6] != XZ_MAGIC:
                return None
            end = start
    except ValueError:
        return None
    return total


def zstd_frame_size(data: bytes) -> int | None:
    """The content size the first zstd frame declares; None when it declares none
    or its header is broken (kmod 34: "Failed to determine decompression size")."""
    import zstandard

    try:
        size = zstandard.frame_content_size(data)
    except zstandard.ZstdError:
        return None
    return size if size > 0 else None


def declared_size(data: bytes, kind: str | None) -> int | None:
    """What ``data`` says it decompresses to, when it says so reliably, else None."""
    if kind is None:
        return len(data)
    if kind == "xz":
        return xz_declared_size(data)
    if kind == "zstd":
        return zstd_frame_size(data)
    return None


# --------------------------------------------------------------------------
# Decompression
# --------------------------------------------------------------------------


class _Sink:
    """Output in pieces, bounded, with the deadline and the budget checked per piece.

    A module of one piece (up to :data:`PIECE` bytes: nearly every module) is
    that piece, handed on without a copy; longer ones are gathered in a
    ``BytesIO`` from the second piece on (about their size, plus one piece)."""

    __slots__ = ("first", "buf", "total", "max_size", "deadline", "hold")

    def __init__(self, max_size: int, deadline: Deadline | None, hold: Hold | None) -> None:
        self.first = b""
        self.buf: io.BytesIO | None = None
        self.total = 0
        self.max_size = max_size
        self.deadline = deadline
        self.hold = hold

    def room(self, expected: int | None = None) -> int:
        """How much the next piece may hold (one byte over the bound shows a bomb).

        ``expected``: the whole output's size when known (an xz index): no
        more than one byte past it then, so that Python's ``lzma`` allocates
        for what it will write -- asked for 8 MiB, it allocates its output
        in blocks of 32 KiB to 8 MiB, the last one mostly unused, and then
        copies them into the piece."""
        bound = self.max_size if expected is None else min(self.max_size, expected)
        return max(1, min(PIECE, bound + 1 - self.total))

    def restart(self) -> None:
        """Drop what was put (the memory held stays held)."""
        self.first = b""
        self.buf = None
        self.total = 0

    def put(self, piece: bytes) -> None:
        if not piece:
            return
        self.total += len(piece)
        if self.total > self.max_size:
            raise CompressedDataError(f"decompresses to more than {self.max_size} bytes")
        if self.hold is not None:
            self.hold.need(self.total, self.deadline)
        if self.buf is not None:
            self.buf.write(piece)
        elif not self.first:
            self.first = piece
        else:
            self.buf = io.BytesIO()
            self.buf.write(self.first)
            self.first = b""
            self.buf.write(piece)
        if self.deadline is not None:
            self.deadline.check()

    def value(self) -> bytes:
        if self.buf is None:
            out, self.first = self.first, b""
            return out
        return self.buf.getvalue()


#: What one output region kept for reuse by the C decoder (moddeps/read/_xz.c, three at most)
#: may keep resident: past that, a region given back after a bigger module returns its pages.
XZ_KEEP_RESIDENT = 1 << 20

#: :func:`decompress`'s ``xz_declared`` when the caller has not read the index
NOT_TAKEN = -1


def decompress(
    data: bytes, kind: str, max_size: int = DEFAULT_MAX_SIZE, *,
    deadline: Deadline | None = None, hold: Hold | None = None, xz_declared: int | None = NOT_TAKEN,
) -> bytes:
    """Decompress ``data`` (a whole file) of the given kind as libkmod 34 does,
    refusing more than ``max_size`` bytes (see the module's docstring).

    ``xz_declared``: what :func:`xz_declared_size` says of ``data``, when the
    caller has taken it already (a load does, for its memory hold), so the
    index is walked once a file.

    Raises :class:`CompressedDataError`, or :class:`ReadTimedOut` when
    ``deadline`` passes.
    """
    sink = _Sink(max_size, deadline, hold)
    if kind == "xz":
        _xz(data, sink, xz_declared_size(data) if xz_declared == NOT_TAKEN else xz_declared)
    elif kind == "gzip":
        _gzip(data, sink)
    elif kind == "zstd":
        _zstd(data, sink)
    else:
        raise CompressedDataError(f"unknown compression {kind!r}")
    return sink.value()


_LZMA_DETAIL = {
    # liblzma's return codes as libkmod 34 names them (xz_uncompress_belch)
    "Corrupt input data": "xz: File is corrupt",
    "Input format not supported by decoder": "xz: File format not recognized",
    "Invalid or unsupported options": "xz: Unsupported compression options",
    "Memory usage limit was reached": None,
}


def _xz(data: bytes, sink: _Sink, declared: int | None) -> None:
    if declared is not None and declared > sink.max_size:
        raise CompressedDataError(f"decompresses to more than {sink.max_size} bytes (its index says {declared})")
    if declared is not None:
        try:
            _xz_streams(data, sink, declared, fitted=True)
            return
        except _PastDeclared:  # a corrupt file: decompressed again as below, for the same messages
            sink.restart()
    _xz_streams(data, sink, declared, fitted=False)


class _PastDeclared(Exception):
    """More output than the index declares, met in pieces fitted to it (see :func:`_xz_streams`)."""


def _xz_streams(data: bytes, sink: _Sink, declared: int | None, fitted: bool) -> None:
    """Decompress ``data``'s streams into ``sink``.  ``fitted``: pieces no larger
    than ``declared`` plus one byte (nearly every module then takes a single
    call); output past ``declared`` then raises :class:`_PastDeclared`, so that
    the caller starts again with pieces of :data:`PIECE`, whose messages for
    a corrupt file do not depend on the declared size."""
    import lzma  # here: a tree of plain modules never needs it

    expected = declared if fitted else None
    rest = data
    while True:
        dec = lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=DECODER_MEMLIMIT)
        try:
            sink.put(dec.decompress(rest, max_length=sink.room(expected)))
            del rest
            if fitted and declared is not None and sink.total > declared:
                raise _PastDeclared
            while not dec.eof:
                if dec.needs_input:
                    raise CompressedDataError("truncated xz data", "xz: Unexpected end of input")
                sink.put(dec.decompress(b"", max_length=sink.room(expected)))
                if declared is not None and sink.total > declared:
                    if fitted:
                        raise _PastDeclared
                    raise CompressedDataError("corrupt xz data (more output than its index declares)",
                                             "xz: File is corrupt")
        except lzma.LZMAError as exc:
            text = str(exc)
            if text.startswith("Memory usage limit"):
                raise CompressedDataError(
                    f"xz data needs more than {DECODER_MEMLIMIT >> 20} MiB to decompress; refused") from None
            detail = _LZMA_DETAIL.get(text, "xz: File is corrupt")
            raise CompressedDataError(f"broken xz data ({text})", detail) from None
        rest = dec.unused_data
        # Stream padding: zero bytes, a multiple of four (liblzma, LZMA_CONCATENATED)
        stripped = rest.lstrip(b"\0")
        if (len(rest) - len(stripped)) % 4:
            raise CompressedDataError("broken xz data (stream padding not a multiple of four bytes)",
                                     "xz: File is corrupt")
        if not stripped:
            return
        if len(stripped) < 12:
            raise CompressedDataError("broken xz data (trailing bytes after the last stream)",
                                     "xz: Unexpected end of input")
        if not stripped.startswith(XZ_MAGIC):
            raise CompressedDataError("broken xz data (trailing garbage after the last stream)",
                                     "xz: File is corrupt")
        rest = stripped


def _gzip(data: bytes, sink: _Sink) -> None:
    rest = data
    while True:
        dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            sink.put(dec.decompress(rest, sink.room()))
            del rest
            while not dec.eof:
                tail = dec.unconsumed_tail
                if not tail:
                    raise CompressedDataError("truncated gzip data")
                sink.put(dec.decompress(tail, sink.room()))
        except zlib.error as exc:
            raise CompressedDataError(f"broken gzip data ({exc})") from None
        rest = dec.unused_data
        # zlib gzread: another member follows only where its magic does; other
        # trailing bytes are ignored without an error.
        if not rest.startswith(GZIP_MAGIC):
            return


def _zstd(data: bytes, sink: _Sink) -> None:
    try:
        import zstandard
    except ImportError:  # pragma: no cover - zstandard is a declared dependency
        raise CompressedDataError("zstd module, but the zstandard package is not installed") from None
    size = zstd_frame_size(data)
    if size is None:
        raise CompressedDataError("zstd data that does not declare its decompressed size",
                                 "zstd: Failed to determine decompression size")
    if size > sink.max_size:
        raise CompressedDataError(f"decompresses to more than {sink.max_size} bytes (its frame says {size})")
    problem = _zstd_frames_problem(data)
    if problem is not None:
        raise CompressedDataError(f"broken zstd data ({problem})", "zstd: Src size is incorrect")
    try:
        dctx = zstandard.ZstdDecompressor(max_window_size=DECODER_MEMLIMIT)
        with dctx.stream_reader(data, read_across_frames=True) as reader:
            while True:
                piece = reader.read(min(sink.room(), size + 1 - sink.total))
                if not piece:
                    break
                if sink.total + len(piece) > size:
                    raise CompressedDataError("broken zstd data (more output than its first frame declares)",
                                             "zstd: Destination buffer is too small")
                sink.put(piece)
    except zstandard.ZstdError as exc:
        text = str(exc).removeprefix("zstd decompress error: ")
        if "window" in text.lower() or "memory" in text.lower():
            raise CompressedDataError(f"zstd data needs more than {DECODER_MEMLIMIT >> 20} MiB to decompress; "
                                     f"refused ({text})") from None
        raise CompressedDataError(f"broken zstd data ({text})", f"zstd: {text}") from None
    if sink.total != size:
        raise CompressedDataError("truncated zstd data", "zstd: Src size is incorrect")


def _zstd_frames_problem(data: bytes) -> str | None:
    """Whether ``data`` is a sequence of complete zstd frames (RFC 8878, section 3.1)
    and nothing else: ZSTD_decompress refuses trailing bytes and truncated frames,
    which a streaming reader would silently take for the end of the input."""
    import zstandard

    pos, n = 0, len(data)
    while pos < n:
        magic = int.from_bytes(data[pos : pos + 4], "little")
        if n - pos < 4 or (magic != 0xFD2FB528 and magic & 0xFFFFFFF0 != 0x184D2A50):
            return "trailing bytes after the last frame"
        if magic != 0xFD2FB528:  # skippable frame: magic, 4-byte size, contents
            if n - pos < 8:
                return "truncated skippable frame"
            pos += 8 + int.from_bytes(data[pos + 4 : pos + 8], "little")
            if pos > n:
                return "truncated skippable frame"
            continue
        try:
            header = zstandard.frame_header_size(data[pos : pos + 18])
        except zstandard.ZstdError:
            return "truncated frame header"
        checksum = bool(data[pos + 4] & 0x04)
        pos += header
        while True:
            if n - pos < 3:
                return "truncated frame"
            bh = int.from_bytes(data[pos : pos + 3], "little")
            btype = (bh >> 1) & 3
            if btype == 3:
                return "reserved block type"
            pos += 3 + (1 if btype == 1 else bh >> 3)
            if pos > n:
                return "truncated frame"
            if bh & 1:
                break
        pos += 4 if checksum else 0
        if pos > n:
            return "truncated frame checksum"
    return None


def libkmod34_lines(kind: str | None, detail: str | None) -> tuple[list[str], list[str]]:
    """The decompressor's lines libkmod 34 logs around depmod's "failed to load
    symbols from X: Invalid argument" for a file refused with ``detail``: (before, after).

    Observed with kmod 34.2: depmod reads a module up to three times; the first
    attempt logs ``detail``, the two others, which reuse the file descriptor
    left at the end of the file, log "xz: Unexpected end of input" for xz and
    ``detail`` again for zstd (it maps the whole file each time).
    """
    if detail is None or kind not in ("xz", "zstd"):
        return [], []
    again = "xz: Unexpected end of input" if kind == "xz" else detail
    return [f"ERROR: {detail}"], [f"ERROR: {again}"] * 2


# --------------------------------------------------------------------------
# A module file
# --------------------------------------------------------------------------


def load_module_file(
    path: str, max_size: int = DEFAULT_MAX_SIZE, *, deadline: Deadline | None = None, hold: Hold | None = None,
) -> tuple[bytes, str | None]:
    """The ELF bytes of a module file (decompressed by magic) and the compression used.

    The file must be a regular file (opened without blocking: a FIFO gives an
    error at once).  Raises :class:`~moddeps.errors.ModuleReadError` with
    kmod's reason (:class:`~moddeps.errors.DecompressionError` when the data
    cannot be decompressed), or :class:`ReadTimedOut`.  ``hold``: see :class:`MemoryBudget`.
    """
    raw, kind, xz_declared = _read_module_file(path, max_size, deadline, hold)
    if kind is None:
        return raw, None
    return _decompressed(path, raw, kind, max_size, deadline, hold, xz_declared), kind


def load_module_data(
    path: str, max_size: int = DEFAULT_MAX_SIZE, *, deadline: Deadline | None = None, hold: Hold | None = None,
) -> tuple[bytes | memoryview, str | None]:
    """:func:`load_module_file`, but an ``.ko.xz`` module of the usual shape comes back as a
    read-only memoryview of an output region that is reused once the view is gone
    (:func:`xz_happy_path`).  For a caller that parses it and lets it go (the scan's loaders).

    Where the C decoder is built, the file is first opened, read, decoded and closed by it
    in one call (:func:`_load_in_c`); what it leaves -- a file it did not read, one it read
    but did not decode -- goes on here as before, with the same messages."""
    fast = _load_in_c(path, max_size, deadline, hold)
    if isinstance(fast, tuple):
        return fast
    if hold is not None and hold.held:  # what _load_in_c took up front: held as before from here
        hold.settle(0 if fast is None else len(fast))
    if fast is None:
        raw, kind, xz_declared = _read_module_file(path, max_size, deadline, hold)
    else:
        raw = fast
        kind, xz_declared = _classified(path, raw, max_size, deadline, hold)
    if kind is None:
        return raw, None
    if kind == "xz" and xz_declared is not None:
        out = xz_happy_path(raw, xz_declared, max_size, deadline)
        if out is not None:
            return out, kind
        if deadline is not None:
            deadline.check()  # (declined for its deadline: said at once, as between two pieces below)
    return _decompressed(path, raw, kind, max_size, deadline, hold, xz_declared), kind


def _read_module_file(
    path: str, max_size: int, deadline: Deadline | None, hold: Hold | None,
) -> tuple[bytes, str | None, int | None]:
    """The file's bytes, its compression and the size its xz index declares; the
    hold then covers the file and what it declares it decompresses to."""
    from ..errors import ModuleReadError
    from ..inputfiles import open_regular, read_bounded

    try:
        fd, st = open_regular(path)
        try:
            if st.st_size > max_size:
                raise ModuleReadError(path, f"file is larger than the {max_size}-byte limit", EINVAL)
            if hold is not None:
                hold.need(st.st_size, deadline)
            raw = read_bounded(fd, st.st_size, max_size, deadline.check if deadline is not None else None)
        finally:
            os.close(fd)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EFBIG:  # from read_bounded
            raise ModuleReadError(path, f"file is {reason}", EINVAL) from None
        raise ModuleReadError(path, f"cannot read: {reason}", EINVAL if exc.errno == errno.EINVAL else reason) from None
    kind, xz_declared = _classified(path, raw, max_size, deadline, hold)
    return raw, kind, xz_declared


def _classified(
    path: str, raw: bytes, max_size: int, deadline: Deadline | None, hold: Hold | None,
) -> tuple[str | None, int | None]:
    """The compression of a file read whole (``raw``) and the size its xz index declares;
    the hold then covers the file and what it declares it decompresses to."""
    from ..errors import ModuleReadError

    if hold is not None:
        hold.need(len(raw), deadline)
    if len(raw) < 6:
        # kmod libkmod-file.c reads a 6-byte magic first; shorter files fail with EINVAL.
        raise ModuleReadError(path, f"too short to be a module ({len(raw)} bytes)", EINVAL)
    kind = detect(raw[:6])
    if kind is None:
        return None, None
    xz_declared = xz_declared_size(raw) if kind == "xz" else None
    if hold is not None:
        declared = xz_declared if kind == "xz" else declared_size(raw, kind)
        hold.need(len(raw) + min(declared or 4 * len(raw), max_size), deadline)
    return kind, xz_declared


def _decompressed(
    path: str, raw: bytes, kind: str, max_size: int, deadline: Deadline | None, hold: Hold | None,
    xz_declared: int | None,
) -> bytes:
    from ..errors import DecompressionError

    try:
        return decompress(raw, kind, max_size, deadline=deadline, hold=hold, xz_declared=xz_declared)
    except CompressedDataError as exc:
        raise DecompressionError(path, str(exc), exc.detail, kind) from None  # detail: see libkmod34_lines


# --------------------------------------------------------------------------
# The xz happy path (moddeps/read/_xz.c)
# --------------------------------------------------------------------------


class _ThreadDecoder(threading.local):
    """This thread's ``_xz.Decoder``: its liblzma stream, and so its dictionary, kept from module to module."""

    decoder: Any = None


_thread_decoder = _ThreadDecoder()

#: moddeps.read._xz, once looked up (None: not built, or MODDEPS_PURE); a test may set both
_xz_ext: ModuleType | None = None
_xz_looked_up = False


def _xz_accelerator() -> ModuleType | None:
    global _xz_ext, _xz_looked_up
    if not _xz_looked_up:
        from ..native import load  # (here: a tree of plain modules never needs it)

        _xz_ext, _xz_looked_up = load("read._xz"), True
    return _xz_ext


def xz_happy_path(data: bytes, declared: int, max_size: int = DEFAULT_MAX_SIZE,
                  deadline: Deadline | None = None) -> memoryview | None:
    """``data`` (a whole ``.ko.xz`` file) decompressed by this thread's ``_xz.Decoder``
    when it is the usual case, else None (then :func:`decompress` decides, with kmod's messages).

    The usual case: one xz stream that ends with the file, whose output is
    exactly ``declared`` (:func:`xz_declared_size`) and no more than
    ``max_size``, decoded within what is left of ``deadline``.  It is decoded
    in one call with the GIL released, into an output region that the next
    modules reuse once the memoryview is gone.  None as well where the
    extension is not built (no ``lzma.h`` at build time) or ``MODDEPS_PURE``
    is set.
    """
    if declared > max_size:
        return None
    ready = _decoder_for(deadline)
    if ready is None:
        return None
    decoder, seconds = ready
    got: memoryview | Declined = decoder.decode(data, declared, seconds)
    return None if got is DECLINED else got


def _decoder_for(deadline: Deadline | None) -> tuple[Any, float] | None:
    """This thread's ``_xz.Decoder`` and the seconds left of ``deadline`` (-1: none), or None:
    the extension is not built, or the deadline has passed."""
    xz = _xz_accelerator()
    if xz is None:
        return None
    seconds = -1.0
    if deadline is not None:
        left = deadline.remaining()
        if left is not None:
            if left <= 0:
                return None
            seconds = left
    decoder = _thread_decoder.decoder
    if decoder is None:
        decoder = _thread_decoder.decoder = xz.Decoder()
    return decoder, seconds


#: What a load holds, when the budget has it free, before the C decoder opens its file
#: (:func:`_load_in_c`): a file and its module that fit in it are read and decoded in one
#: call; a bigger one is read here, holding its size first, as before.  Debian 13 amd64:
#: all but the largest ~1% of 4,230 modules (file + module) fit in 8 MiB.
XZ_ROOM = 8 << 20


def _load_in_c(
    path: str, max_size: int, deadline: Deadline | None, hold: Hold | None,
) -> tuple[memoryview, str] | bytes | None:
    """The module file at ``path`` opened, read, decoded and closed by this thread's
    ``_xz.Decoder`` in one call that holds the GIL only to start and to return
    (``Decoder.load``): (the module, "xz") when it is the usual ``.ko.xz``; the file's
    bytes when it was read but is left to the Python path (not xz, not of the usual
    shape, bigger than the hold, past the deadline); None when it was not read (not a
    regular file, an error, larger than ``max_size`` or the hold, a size that changed
    while it was read: :func:`_read_module_file` reads it again and says why), or where
    the extension is not built.

    The hold: before the file is opened, up to :data:`XZ_ROOM` of what the budget has
    free, without waiting; the C call reads and decodes only a file that fits in it with
    its declared size, and the hold is then settled to exactly that (the file and its
    module, as :func:`_read_module_file` takes it).  The deadline: what is left of it,
    looked at between the decoder's pieces."""
    if _xz_accelerator() is None:
        return None
    room = sys.maxsize if hold is None else hold.grab(XZ_ROOM)
    if room <= 0:  # the budget is full, or a request waits: read as before, waiting in turn
        return None
    ready = _decoder_for(deadline)
    if ready is None:
        return None
    decoder, seconds = ready
    got: tuple[memoryview, int] | bytes | Declined = decoder.load(path, max_size, room, seconds)
    if isinstance(got, bytes):
        return got
    if not isinstance(got, tuple):  # DECLINED
        return None
    view, size = got
    if hold is not None:
        hold.settle(size + len(view))
    return view, "xz"


def release_xz_regions() -> None:
    """Unmap the output regions the xz happy path keeps for reuse (at the end of a read)."""
    if _xz_ext is not None:
        _xz_ext.release()
