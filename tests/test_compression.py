"""Compressed modules: what kmod 34.2 reads and refuses, and the bounds moddeps adds.

The expectations in ``KMOD_34`` were observed with the real kmod 34.2 (Debian 13's
package, ``depmod -n`` on a tree holding one such file: its "failed to load symbols
from X: REASON" line, and the decompressor's own lines that libkmod 34 logs before
it) and kmod 30 (Debian 12).  Both agree on every xz case; on zstd kmod 30 streamed
any number of frames and took a truncated file's partial output as the module
("Exec format error"), kmod 34's rule is the one followed.  Fixtures are made here
with ``tests/kobuild.py`` (``compress`` writes what Kbuild writes).
"""

from __future__ import annotations

import gzip
import lzma
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from moddeps.errors import ModuleReadError
from moddeps.read import compression as cz
from moddeps.read.compression import (
    CompressedDataError,
    Deadline,
    MemoryBudget,
    ReadTimedOut,
    decompress,
    load_module_file,
    xz_declared_size,
)
from moddeps.read.elfreader import parse_module

from .kobuild import Export, build_ko, compress

REPO = Path(__file__).resolve().parent.parent


def _module(name: str) -> bytes:
    return build_ko(modinfo=[("alias", f"pci:v0000ABCDd*{name}"), ("license", "GPL"), ("name", name)],
                    exports=[Export(name=f"{name}_sym")], undefined=["printk"])


def _skippable(payload: bytes) -> bytes:
    return (0x184D2A50).to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload


def _cases() -> dict[str, tuple[bytes, bytes, str | None]]:
    """name -> (file bytes, the module inside, None if kmod 34.2 reads it else its decompressor line)."""
    m = _module("m")
    h = len(m) // 2
    xz, zs, gz = (lambda b: compress(b, "xz")), (lambda b: compress(b, "zst")), (lambda b: compress(b, "gz"))
    corrupt_xz = bytearray(xz(m))
    corrupt_xz[40] ^= 0xFF
    corrupt_zs = bytearray(zs(m))
    corrupt_zs[30] ^= 0xFF
    nosize = zstandard.ZstdCompressor(write_content_size=False)
    return {
        # xz: liblzma, LZMA_CONCATENATED (kmod 30 and 34 alike)
        "xz_ok": (xz(m), m, None),
        "xz_two_streams": (xz(m[:h]) + xz(m[h:]), m, None),
        "xz_then_empty_stream": (xz(m) + xz(b""), m, None),
        "xz_padding_4": (xz(m) + b"\0" * 4, m, None),
        "xz_padding_8_between": (xz(m[:h]) + b"\0" * 8 + xz(m[h:]), m, None),
        "xz_padding_3": (xz(m) + b"\0" * 3, m, "xz: File is corrupt"),
        "xz_garbage_8": (xz(m) + b"garbage!", m, "xz: Unexpected end of input"),
        "xz_garbage_1": (xz(m) + b"G", m, "xz: Unexpected end of input"),
        "xz_truncated": (xz(m)[:-10], m, "xz: Unexpected end of input"),
        "xz_truncated_header": (xz(m)[:30], m, "xz: Unexpected end of input"),
        "xz_corrupt": (bytes(corrupt_xz), m, "xz: File is corrupt"),
        # zstd: ZSTD_getFrameContentSize + one ZSTD_decompress of the whole file (kmod 34)
        "zst_ok": (zs(m), m, None),
        "zst_then_skippable": (zs(m) + _skippable(b"abcd"), m, None),
        "zst_then_empty_frame": (zs(m) + zs(b""), m, None),
        "zst_two_frames": (zs(m[:h]) + zs(m[h:]), m, "zstd: Destination buffer is too small"),
        "zst_no_content_size": (nosize.compress(m), m, "zstd: Failed to determine decompression size"),
        "zst_garbage_8": (zs(m) + b"garbage!", m, "zstd: Src size is incorrect"),
        "zst_garbage_1": (zs(m) + b"G", m, "zstd: Src size is incorrect"),
        "zst_zeros_4": (zs(m) + b"\0" * 4, m, "zstd: Src size is incorrect"),
        "zst_truncated": (zs(m)[:-5], m, "zstd: Src size is incorrect"),
        "zst_corrupt": (bytes(corrupt_zs), m, "zstd: Data corruption detected"),
        # gzip: zlib's gzread (kmod built with zlib; Debian's kmod has none and skips .ko.gz)
        "gz_ok": (gz(m), m, None),
        "gz_two_members": (gz(m[:h]) + gz(m[h:]), m, None),
        "gz_then_garbage": (gz(m) + b"garbage!", m, None),
    }


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_compressed_edges_are_read_or_refused_as_kmod_34_does(tmp_path: Path, name: str) -> None:
    data, module, detail = CASES[name]
    suffix = {"xz": ".ko.xz", "zs": ".ko.zst", "gz": ".ko.gz"}[name[:2]]
    path = tmp_path / f"{name}{suffix}"
    path.write_bytes(data)
    if detail is None or name.startswith("gz_"):
        got, kind = load_module_file(str(path))
        assert got == module
        assert kind == {"xz": "xz", "zs": "zstd", "gz": "gzip"}[name[:2]]
        assert parse_module(got, path.name).exports[0].name == "m_sym"
        return
    with pytest.raises(ModuleReadError) as info:
        load_module_file(str(path))
    assert info.value.kmod_reason == "Invalid argument"  # kmod 34.2: "failed to load symbols from X: Invalid argument"
    assert getattr(info.value, "detail", None) == detail  # the line libkmod 34 logs first ("depmod: ERROR: ...")


def test_libkmod_34s_lines_around_depmods_own() -> None:
    """kmod 34.2, ``depmod -n`` on a tree with xz_corrupt, xz_garbage_8 and zst_two_frames (in
    that order) printed, after the modules.order warning, exactly these lines."""
    observed = [
        "ERROR: xz: File is corrupt",
        "ERROR: failed to load symbols from xz_corrupt.ko.xz: Invalid argument",
        "ERROR: xz: Unexpected end of input",
        "ERROR: xz: Unexpected end of input",
        "ERROR: xz: Unexpected end of input",
        "ERROR: failed to load symbols from xz_garbage_8.ko.xz: Invalid argument",
        "ERROR: xz: Unexpected end of input",
        "ERROR: xz: Unexpected end of input",
        "ERROR: zstd: Destination buffer is too small",
        "ERROR: failed to load symbols from zst_two_frames.ko.zst: Invalid argument",
        "ERROR: zstd: Destination buffer is too small",
        "ERROR: zstd: Destination buffer is too small",
    ]
    got: list[str] = []
    for name, kind in (("xz_corrupt", "xz"), ("xz_garbage_8", "xz"), ("zst_two_frames", "zstd")):
        with pytest.raises(CompressedDataError) as info:
            decompress(CASES[name][0], kind)
        before, after = cz.libkmod34_lines(kind, info.value.detail)
        suffix = ".ko.xz" if kind == "xz" else ".ko.zst"
        got += [*before, f"ERROR: failed to load symbols from {name}{suffix}: Invalid argument", *after]
    assert got == observed
    assert cz.libkmod34_lines("gzip", None) == ([], [])


def test_gzip_truncated_or_corrupt_is_refused() -> None:
    m = _module("g")
    good = compress(m, "gz")
    for bad in (good[:-6], good[:20], good[:10] + bytes([good[10] ^ 0xFF]) + good[11:]):
        with pytest.raises(CompressedDataError):
            decompress(bad, "gzip")
    # a second member that starts like one must be a whole one
    with pytest.raises(CompressedDataError):
        decompress(good + good[:12], "gzip")


def test_xz_declared_size_walks_every_stream_and_its_padding() -> None:
    """The xz indexes give the exact output size (checked on every .ko.xz of Debian's 6.12
    and 7.2 cloud trees by hand: 2,156 files); here on multi-block, multi-stream files."""
    a = os.urandom(300_000)
    b = bytes(1_000_000)
    one = lzma.compress(a, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    two = one + b"\0" * 12 + lzma.compress(b, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64)
    assert xz_declared_size(one) == len(a)
    assert xz_declared_size(two) == len(a) + len(b)
    assert decompress(two, "xz") == a + b
    assert xz_declared_size(one[:-1]) is None  # no footer
    assert xz_declared_size(one + b"\0\0") is None  # padding not a multiple of four
    assert xz_declared_size(b"\0" * 64) is None


def test_zstd_multi_block_frames_with_checksums_are_read() -> None:
    data = os.urandom(200_000) + bytes(3_000_000) + os.urandom(50_000)
    for checksum in (False, True):
        frame = zstandard.ZstdCompressor(write_checksum=checksum).compress(data)
        assert decompress(frame, "zstd") == data
        assert decompress(frame + _skippable(b"x" * 100) + compress(b"", "zst"), "zstd") == data
        with pytest.raises(CompressedDataError):
            decompress(frame[:-1], "zstd")


# --------------------------------------------------------------------------
# Bombs
# --------------------------------------------------------------------------


def test_a_bomb_that_declares_its_size_is_refused_before_decompressing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The xz index or the zstd frame header says more than the bound: refused without
    producing one byte of output (the decompressor is never asked)."""
    big = bytes(8 << 20)
    xz = lzma.compress(big, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    zs = compress(big, "zst")

    class NoDecompressor:
        def __init__(self, *a: object, **k: object) -> None:
            raise AssertionError("decompression started")

    monkeypatch.setattr(lzma, "LZMADecompressor", NoDecompressor)  # the module compression imports when it decompresses
    monkeypatch.setattr(zstandard, "ZstdDecompressor", NoDecompressor)
    for data, kind in ((xz, "xz"), (zs, "zstd")):
        with pytest.raises(CompressedDataError, match=f"more than {1 << 20} bytes"):
            decompress(data, kind, 1 << 20)


@pytest.mark.parametrize("kind", ["xz", "gzip", "zstd"])
def test_a_bomb_that_hides_its_size_stops_one_piece_past_the_bound(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No usable declaration (an xz file cut before its index, gzip, a zstd frame whose
    declared size was cut... here a lying one): the output stops once past the bound."""
    monkeypatch.setattr(cz, "PIECE", 1 << 16)
    big = bytes(4 << 20)
    if kind == "xz":
        data = lzma.compress(big, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)[:-40]  # index and footer gone
    elif kind == "gzip":
        data = gzip.compress(big)
    else:
        data = compress(big, "zst")
    seen: list[int] = []
    real_put = cz._Sink.put

    def put(self: cz._Sink, piece: bytes) -> None:
        seen.append(len(piece))
        real_put(self, piece)

    monkeypatch.setattr(cz._Sink, "put", put)
    with pytest.raises(CompressedDataError, match="more than"):
        decompress(data, kind, 1 << 20)
    assert sum(seen) <= (1 << 20) + 1 + (1 << 16)


def test_the_memory_of_a_bomb_stays_near_the_limit(tmp_path: Path) -> None:
    """In a child process (ru_maxrss): a 512 MiB gzip bomb (gzip declares nothing usable) read
    with a 64 MiB limit grows the process by little more than the limit."""
    limit = 64 << 20
    bomb = tmp_path / "bomb.ko.gz"
    co = zlib_compressobj()
    with bomb.open("wb") as f:
        f.write(co.compress(b""))
        chunk = bytes(1 << 24)
        for _ in range(32):
            f.write(co.compress(chunk))
        f.write(co.flush())
    code = textwrap.dedent(f"""
        import resource
        from moddeps.read.compression import load_module_file
        from moddeps.errors import ModuleReadError
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_module_file({str(bomb)!r}, {limit})
        except ModuleReadError as exc:
            print(exc.reason)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) * 1024)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    reason, grown = r.stdout.splitlines()
    assert f"more than {limit} bytes" in reason
    assert int(grown) < limit * 1.1 + cz.PIECE + (4 << 20), f"grew by {int(grown) >> 20} MiB"


def zlib_compressobj() -> Any:
    import zlib

    return zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)


# --------------------------------------------------------------------------
# Deadline and budget
# --------------------------------------------------------------------------


def test_decompression_checks_the_deadline_between_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deadline that passes after the third piece stops decompression there (a fake
    clock, so no wall-clock bound): the error says the time spent and the limit."""
    monkeypatch.setattr(cz, "PIECE", 1 << 16)
    data = compress(bytes(4 << 20), "xz")
    clock = iter(range(10_000))
    monkeypatch.setattr(cz, "_clock", lambda: float(next(clock)))
    deadline = Deadline(3.5)  # start = 0; each check reads the clock once more
    pieces: list[int] = []
    real_put = cz._Sink.put
    monkeypatch.setattr(cz._Sink, "put", lambda self, piece: (pieces.append(len(piece)), real_put(self, piece))[1])
    with pytest.raises(ReadTimedOut) as info:
        decompress(data, "xz", deadline=deadline)
    assert len(pieces) <= 4
    assert info.value.limit == 3.5 and info.value.elapsed >= 3.5
    assert "more than the 3.5 s limit" in str(info.value)


def test_the_budget_makes_a_load_wait_until_the_others_release() -> None:
    budget = MemoryBudget(100)
    first, second = budget.open(), budget.open()
    first.need(80)
    granted = threading.Event()

    def grow() -> None:
        second.need(50)
        granted.set()

    t = threading.Thread(target=grow, daemon=True)
    t.start()
    assert not granted.wait(0.2)  # 80 + 50 > 100 and `second` is not the oldest hold
    assert budget.used == 80
    first.release()
    assert granted.wait(30)
    t.join(30)
    assert budget.used == 50 and budget.peak == 80
    second.release()
    assert budget.used == 0


def _in_thread(work: Callable[[], None]) -> threading.Event:
    done = threading.Event()

    def run() -> None:
        work()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done


def test_first_come_first_served_and_no_jump_over_a_waiting_older_load() -> None:
    """Issue 15's 5.2 GB: two loads each granted most of the budget at once.  A request that
    does not fit waits while some other load can still finish; a younger one that would fit
    does not overtake an older waiter."""
    budget = MemoryBudget(100)
    a, b, c = budget.open(), budget.open(), budget.open()
    a.need(60)
    b_done = _in_thread(lambda: b.need(60))  # does not fit; `a` is not waiting, so it will release
    assert not b_done.wait(0.2)
    c_done = _in_thread(lambda: c.need(30))  # would fit, but `b` (older) waits first
    assert not c_done.wait(0.2)
    a.release()
    assert b_done.wait(30) and c_done.wait(30)
    assert budget.used == 90 and budget.peak <= 100
    b.release()
    c.release()


def test_when_every_load_waits_the_oldest_proceeds() -> None:
    """Loads that grow past their estimate (gzip) could wait for each other for ever: when
    every open hold waits, the oldest waiter is granted beyond the limit."""
    budget = MemoryBudget(100)
    old, young = budget.open(), budget.open()
    old.need(40)
    young.need(50)
    young_done = _in_thread(lambda: young.need(80))
    assert not young_done.wait(0.2)  # `old` can still finish: wait
    old.need(70)  # now both wait on growth: `old` is the oldest waiter, granted over the limit
    assert budget.used == 120
    old.release()
    assert young_done.wait(30)
    young.release()
    assert budget.used == 0


def test_a_released_hold_of_a_given_up_load_no_longer_counts() -> None:
    budget = MemoryBudget(100)
    stuck, other = budget.open(), budget.open()
    stuck.need(90)
    stuck.release()  # given up by the scan while its thread is still inside a read
    other.need(100)
    stuck.need(500)  # the stuck thread carries on: not counted, not waiting
    assert budget.used == 100


def test_waiting_for_memory_does_not_count_against_the_deadline() -> None:
    budget = MemoryBudget(10)
    first, second = budget.open(), budget.open()
    first.need(10)
    deadline = Deadline(1000)
    start = deadline.start
    threading.Timer(0.2, first.release).start()
    second.need(5, deadline)
    assert deadline.start > start  # the wait was taken off


def test_a_fifo_module_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "m.ko"
    os.mkfifo(fifo)
    with pytest.raises(ModuleReadError, match=r"not a regular file \(a FIFO\)"):
        load_module_file(str(fifo))
    zero = tmp_path / "z.ko.xz"
    zero.symlink_to("/dev/zero")
    with pytest.raises(ModuleReadError, match=r"not a regular file \(a character device\)"):
        load_module_file(str(zero))


# --------------------------------------------------------------------------
# The output's copies, the index read once, malloc's arenas
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["xz", "gzip", "zstd"])
def test_a_module_of_one_piece_is_the_decompressors_own_output(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Up to PIECE bytes (nearly every module) the decompressor's output is handed on as it is,
    without a copy; longer outputs are gathered piece by piece into the same bytes."""
    elf = build_ko(modinfo=["license=GPL"], extra_sections=[(".data.pad", os.urandom(300_000))])
    data = compress(elf, {"xz": "xz", "gzip": "gz", "zstd": "zst"}[kind])
    pieces: list[bytes] = []
    real_put = cz._Sink.put

    def put(self: cz._Sink, piece: bytes) -> None:
        pieces.append(piece)
        real_put(self, piece)

    monkeypatch.setattr(cz._Sink, "put", put)
    out = decompress(data, kind)
    assert out == elf and [p for p in pieces if p] == [out] and pieces[0] is out
    pieces.clear()
    monkeypatch.setattr(cz, "PIECE", 1 << 16)
    out = decompress(data, kind)
    assert out == elf and len([p for p in pieces if p]) == -(-len(elf) // (1 << 16))
    assert all(p is not out for p in pieces)


def test_a_load_reads_the_xz_index_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_module_file takes the declared size for its memory hold and hands it to
    decompression, which checks the output against it: one walk of the index a file."""
    elf = build_ko(modinfo=["license=GPL"])
    path = tmp_path / "m.ko.xz"
    path.write_bytes(compress(elf, "xz"))
    calls: list[int] = []
    real = cz.xz_declared_size

    def counted(data: bytes) -> int | None:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(cz, "xz_declared_size", counted)
    budget = MemoryBudget(1 << 30)
    hold = budget.open()
    assert load_module_file(str(path), hold=hold) == (elf, "xz")
    assert len(calls) == 1 and hold.held == len(path.read_bytes()) + len(elf)
    hold.release()
    calls.clear()
    assert load_module_file(str(path)) == (elf, "xz")
    assert len(calls) == 1


def _xz_declaring(data: bytes, declared: int) -> bytes:
    """``data`` in one xz stream of one block whose index says ``declared`` bytes
    (a varint of the same length as the true size's; the index's CRC32 made right)."""
    import zlib

    xz = bytearray(lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32))
    index_size = (int.from_bytes(xz[-8:-4], "little") + 1) * 4
    start = len(xz) - 12 - index_size
    index = bytes(xz[start : start + index_size - 4])  # indicator, count, the record, padding
    assert index[:2] == b"\0\1"
    pos = cz._varint(index, 2, len(index))[1]  # past the record's unpadded size
    size, end = cz._varint(index, pos, len(index))
    assert size == len(data)
    enc = bytes(((declared >> s) & 0x7F) | (0x80 if declared >> (s + 7) else 0) for s in range(0, (end - pos) * 7, 7))
    assert cz._varint(enc, 0, len(enc)) == (declared, end - pos)
    index = index[:pos] + enc + index[end:]
    xz[start : start + index_size] = index + zlib.crc32(index).to_bytes(4, "little")
    return bytes(xz)


def test_output_past_what_the_index_declares_is_a_corrupt_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The size the index declares, taken once a file before decompressing, is the one the
    output is checked against between pieces: past it, the file is corrupt (before liblzma
    reaches the index); in one piece, liblzma's own check at the index says so."""
    lying = _xz_declaring(b"A" * 300, 200)
    assert cz.xz_declared_size(lying) == 200
    with pytest.raises(CompressedDataError, match=r"broken xz data \(Corrupt input data\)") as whole:
        decompress(lying, "xz")
    monkeypatch.setattr(cz, "PIECE", 64)
    with pytest.raises(CompressedDataError, match=r"more output than its index declares") as pieces:
        decompress(lying, "xz")
    assert whole.value.detail == pieces.value.detail == "xz: File is corrupt"


def test_an_xz_module_is_decompressed_in_one_piece_fitted_to_its_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked for PIECE bytes, Python's lzma allocates blocks up to 8 MiB for a small module:
    the first call asks for the declared size and one byte more; a file whose index declares
    less than it holds is decompressed again in pieces of PIECE (the messages of before)."""
    asked: list[int] = []
    real = lzma.LZMADecompressor

    class Recording:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.dec = real(*args, **kwargs)  # type: ignore[arg-type]

        def decompress(self, data: bytes, max_length: int = -1) -> bytes:
            asked.append(max_length)
            return self.dec.decompress(data, max_length)

        def __getattr__(self, name: str) -> object:
            return getattr(self.dec, name)

    monkeypatch.setattr(lzma, "LZMADecompressor", Recording)
    data = b"moddeps" * 5000
    assert decompress(lzma.compress(data, format=lzma.FORMAT_XZ), "xz") == data
    assert asked == [len(data) + 1]
    asked.clear()
    lying = _xz_declaring(b"A" * 300, 200)
    with pytest.raises(CompressedDataError, match=r"broken xz data \(Corrupt input data\)"):
        decompress(lying, "xz")
    assert asked == [201, cz.PIECE]


def test_return_free_heap_only_where_the_heap_was_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    """A library caller's malloc is left alone: without limit_heap_retention, no malloc_trim."""
    monkeypatch.setattr(cz, "_heap_limited", None)
    monkeypatch.setattr(cz, "_trim", None)
    cz.return_free_heap()
    assert cz._trim is None
    calls: list[int] = []
    monkeypatch.setattr(cz, "_heap_limited", True)
    monkeypatch.setattr(cz, "_trim", calls.append)
    cz.return_free_heap()
    assert calls == [0]


ARENAS = textwrap.dedent("""
    import ctypes, sys, threading
    from moddeps.read import compression as cz
    if sys.argv[1:] != ["library"]:  # the moddeps command, not a program importing moddeps
        from moddeps import process
        process.claim()
    print(cz.limit_heap_retention() if sys.argv[1] in ("limit", "library") else None, flush=True)

    together = threading.Barrier(3)

    def work():  # the three threads alive at once, so none takes over an arena another left
        b = [bytes(1 << (12 + n % 10)) for n in range(20)]
        together.wait()
        del b

    ts = [threading.Thread(target=work) for _ in range(3)]
    for t in ts: t.start()
    for t in ts: t.join()
    ctypes.CDLL(None).malloc_stats()  # one "Arena N:" paragraph an arena, on stderr
""")


@pytest.mark.skipif(not hasattr(os, "confstr") or "glibc" not in (os.confstr("CS_GNU_LIBC_VERSION") or ""),
                    reason="glibc's malloc")
def test_decompressing_threads_share_mallocs_main_arena() -> None:
    """With limit_heap_retention, threads started afterwards allocate from the main arena
    (what they free serves the rest of the run) instead of one arena each; the environment's
    own setting, and a program that uses moddeps as a library, are left alone."""

    def arenas(*argv: str, **env: str) -> tuple[str, int]:
        full = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
        r = subprocess.run([sys.executable, "-c", ARENAS, *argv], capture_output=True, text=True, cwd=REPO,
                           timeout=120, env={**full, **env})
        assert r.returncode == 0, r.stderr
        return r.stdout.strip(), r.stderr.count("Arena ")

    assert arenas("limit") == ("True", 1)
    assert arenas("none") == ("None", 4)
    assert arenas("library") == ("False", 4)  # a program using moddeps keeps its malloc as it is
    assert arenas("limit", MALLOC_ARENA_MAX="4") == ("False", 4)
