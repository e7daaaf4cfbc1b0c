"""The xz happy path (moddeps/read/_xz.c) against compression.py's Python path.

The C decoder takes only the usual ``.ko.xz``: one stream that ends with the
file, exactly the size its index declares, within the memory limit and the
deadline.  Whatever it declines, the Python path decides, so every case must
give the same result with and without it: the same bytes, or the same error,
reason and libkmod line.  Also: its output regions are reused only once no view
of them is left, and each thread keeps its own decoder.

In CI (``CI=true``) the extension must be built (liblzma's headers are there);
elsewhere the module is skipped without it.
"""

from __future__ import annotations

import lzma
import os
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moddeps.errors import ModuleReadError
from moddeps.native import DECLINED
from moddeps.read import compression as cz
from moddeps.read.compression import (
    CompressedDataError,
    Deadline,
    MemoryBudget,
    decompress,
    load_module_data,
    load_module_file,
    xz_declared_size,
    xz_happy_path,
)

from .kobuild import build_ko, compress
from .test_compression import CASES, _xz_declaring

try:
    from moddeps.read import _xz as native
except ImportError:  # pragma: no cover - depends on the build
    if os.environ.get("CI") == "true":
        pytest.fail("moddeps.read._xz is not built; CI must build it (liblzma-dev, python setup.py build_ext "
                    "--inplace)", pytrace=False)
    pytest.skip("moddeps.read._xz is not built (needs lzma.h)", allow_module_level=True)
if os.environ.get("MODDEPS_PURE", "") not in ("", "0"):
    pytest.skip("the C decoder is switched off (MODDEPS_PURE)", allow_module_level=True)


@pytest.fixture
def python_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """compression.py without the C decoder (as without lzma.h at build time, or MODDEPS_PURE=1)."""
    monkeypatch.setattr(cz, "_xz_ext", None)
    monkeypatch.setattr(cz, "_xz_looked_up", True)
    yield


def _outcome(path: str, loader: object = load_module_data) -> tuple[object, ...]:
    try:
        data, kind = loader(path)  # type: ignore[operator]
    except ModuleReadError as exc:
        return ("error", type(exc).__name__, str(exc), exc.kmod_reason, getattr(exc, "detail", None))
    return ("ok", bytes(data), kind)


def _both(path: str, monkeypatch: pytest.MonkeyPatch) -> tuple[tuple[object, ...], tuple[object, ...]]:
    fast = _outcome(path)
    with monkeypatch.context() as m:
        m.setattr(cz, "_xz_ext", None)
        m.setattr(cz, "_xz_looked_up", True)
        slow = _outcome(path)
    return fast, slow


XZ_CASES = sorted(name for name in CASES if name.startswith("xz_"))


@pytest.mark.parametrize("name", XZ_CASES)
def test_every_xz_case_reads_the_same_with_and_without_the_c_decoder(
        tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data, module, detail = CASES[name]
    path = tmp_path / f"{name}.ko.xz"
    path.write_bytes(data)
    fast, slow = _both(str(path), monkeypatch)
    assert fast == slow
    assert fast == (("ok", module, "xz") if detail is None else fast)
    assert fast == _outcome(str(path), load_module_file)
    if detail is not None:
        assert fast[0] == "error" and fast[-1] == detail


def test_only_the_usual_shape_is_decoded_in_c() -> None:
    """One stream, nothing after it, exactly the declared size: decoded; every other xz case
    of test_compression (and an index that lies either way) is declined."""
    dec = native.Decoder()
    usual = {"xz_ok"}
    for name in XZ_CASES:
        data, module, _detail = CASES[name]
        declared = xz_declared_size(data)
        got = dec.decode(data, declared if declared is not None else len(module), -1.0)
        if name in usual:
            assert isinstance(got, memoryview) and got.readonly and bytes(got) == module, name
        else:
            assert got is DECLINED, name
    for declared in (199, 201, 300):
        lying = _xz_declaring(b"A" * 200, 200)
        assert dec.decode(lying, 200, -1.0) is not DECLINED
        assert dec.decode(lying, declared, -1.0) is DECLINED  # (the index says 200: the size asked for differs)
    assert dec.decode(_xz_declaring(b"A" * 300, 200), 200, -1.0) is DECLINED  # more output than declared
    assert dec.decode(_xz_declaring(b"A" * 300, 400), 400, -1.0) is DECLINED  # less
    assert dec.decode(b"", 10, -1.0) is DECLINED
    assert dec.decode(CASES["xz_ok"][0], 0, -1.0) is DECLINED
    assert dec.decode(CASES["xz_ok"][0], (1 << 30) + 1, -1.0) is DECLINED  # past the size bound
    with pytest.raises(TypeError):
        dec.decode("text", 10, -1.0)  # type: ignore[arg-type]


def test_an_unsupported_check_and_no_check_go_the_same_way() -> None:
    elf = build_ko(modinfo=["license=GPL"])
    for check in (lzma.CHECK_NONE, lzma.CHECK_CRC64, lzma.CHECK_SHA256):
        data = lzma.compress(elf, format=lzma.FORMAT_XZ, check=check)
        got = xz_happy_path(data, len(elf))
        assert got is not None and bytes(got) == elf == decompress(data, "xz")


def test_a_lying_index_is_a_corrupt_file_either_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for size, declared in ((300, 200), (200, 300)):
        path = tmp_path / f"lie{size}.ko.xz"
        path.write_bytes(_xz_declaring(b"A" * size, declared))
        fast, slow = _both(str(path), monkeypatch)
        assert fast == slow and fast[0] == "error" and fast[-1] == "xz: File is corrupt"


def test_a_bound_smaller_than_the_declared_size_is_the_python_paths_refusal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elf = build_ko(modinfo=["license=GPL"])
    path = tmp_path / "m.ko.xz"
    path.write_bytes(compress(elf, "xz"))
    assert xz_happy_path(path.read_bytes(), len(elf), max_size=len(elf) - 1) is None
    with pytest.raises(ModuleReadError, match="decompresses to more than"):
        load_module_data(str(path), len(elf) - 1)


def test_the_deadline_sends_a_module_to_the_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its deadline a module is declined (before it starts, or between pieces of
    PIECE bytes), and the Python path then reports the time spent, as before."""
    big = os.urandom(1 << 10) * ((cz.PIECE >> 10) + 64)  # more than one piece
    data = lzma.compress(big, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=0)
    dec = native.Decoder()
    assert dec.decode(data, len(big), 0.0) is DECLINED  # a piece decoded, then the clock looked at
    assert bytes(dec.decode(data, len(big), -1.0)) == big
    now = [100.0]
    monkeypatch.setattr(cz, "_clock", lambda: now[0])
    deadline = Deadline(1.0)
    now[0] += 2.0
    assert xz_happy_path(data, len(big), deadline=deadline) is None
    with pytest.raises(cz.ReadTimedOut):
        decompress(data, "xz", deadline=deadline)


def test_a_load_past_its_deadline_says_so_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.ko.xz"
    path.write_bytes(compress(build_ko(modinfo=["license=GPL"]), "xz"))
    now = [100.0]
    monkeypatch.setattr(cz, "_clock", lambda: now[0])
    deadline = Deadline(1.0)
    now[0] += 2.0
    monkeypatch.setattr(cz, "decompress", lambda *a, **k: pytest.fail("decompressed past the deadline"))
    with pytest.raises(cz.ReadTimedOut) as info:
        load_module_data(str(path), deadline=deadline)
    assert (info.value.elapsed, info.value.limit) == (2.0, 1.0)


def test_the_hold_covers_what_the_c_decoder_writes(tmp_path: Path) -> None:
    elf = build_ko(modinfo=["license=GPL"])
    path = tmp_path / "m.ko.xz"
    path.write_bytes(compress(elf, "xz"))
    hold = MemoryBudget(1 << 30).open()
    data, kind = load_module_data(str(path), hold=hold)
    assert isinstance(data, memoryview) and bytes(data) == elf and kind == "xz"
    assert hold.held == len(path.read_bytes()) + len(elf)
    hold.release()


def test_a_region_is_reused_only_once_no_view_of_it_is_left() -> None:
    native.release()
    a, b = build_ko(modinfo=["license=GPL", "name=a"]), build_ko(modinfo=["license=MIT", "name=b"])
    xa, xb = compress(a, "xz"), compress(b, "xz")
    dec = native.Decoder()
    va = dec.decode(xa, len(a), -1.0)
    vb = dec.decode(xb, len(b), -1.0)
    assert bytes(va) == a and bytes(vb) == b  # two regions: a's is still seen
    assert native.pooled()[0] == 0
    del va
    assert native.pooled()[0] == 1
    kept = memoryview(vb)  # a view of a view keeps the region too
    del vb
    assert native.pooled()[0] == 1
    del kept
    assert native.pooled()[0] == 2
    for _ in range(20):  # from the pool: no more regions than were freed
        assert bytes(dec.decode(xa, len(a), -1.0)) == a
    assert native.pooled()[0] == 2
    native.release()
    assert native.pooled() == (0, 0, 0)


def test_a_region_kept_after_a_big_module_keeps_no_more_than_a_mib_resident() -> None:
    native.release()
    big = os.urandom(1 << 10) * (3 << 10)  # 3 MiB
    data = lzma.compress(big, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=0)
    dec = native.Decoder()
    view = dec.decode(data, len(big), -1.0)
    assert bytes(view) == big
    del view
    count, mapped, resident = native.pooled()
    assert count == 1 and mapped >= len(big) and resident == cz.XZ_KEEP_RESIDENT
    assert bytes(dec.decode(data, len(big), -1.0)) == big  # the same region, its pages faulted in again
    assert native.pooled()[0] == 1
    native.release()


def test_threads_decode_with_decoders_of_their_own() -> None:
    mods = [build_ko(modinfo=[f"name=m{i}", "license=GPL"]) for i in range(8)]
    files = [compress(m, "xz") for m in mods]
    bad: list[int] = []

    def work(k: int) -> None:
        for _ in range(30):
            for i, (m, f) in enumerate(zip(mods, files)):
                got = xz_happy_path(f, len(m))
                if got is None or bytes(got) != m:
                    bad.append(i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


_MODULE = build_ko(modinfo=["license=GPL", "name=h"])
_XZ = compress(_MODULE, "xz")


@st.composite
def _xz_inputs(draw: st.DrawFn) -> bytes:
    """Valid xz files, and files a few edits away from valid ones."""
    payload = draw(st.one_of(st.just(_MODULE), st.binary(max_size=3000)))
    data = bytearray(lzma.compress(payload, format=lzma.FORMAT_XZ,
                                   check=draw(st.sampled_from([lzma.CHECK_CRC32, lzma.CHECK_CRC64, lzma.CHECK_NONE]))))
    for _ in range(draw(st.integers(0, 3))):
        edit = draw(st.sampled_from(["flip", "cut", "pad", "garbage", "stream"]))
        if edit == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif edit == "cut" and data:
            del data[draw(st.integers(0, len(data) - 1)):]
        elif edit == "pad":
            data += b"\0" * draw(st.integers(1, 9))
        elif edit == "garbage":
            data += draw(st.binary(min_size=1, max_size=16))
        elif edit == "stream":
            data += lzma.compress(draw(st.binary(max_size=64)), format=lzma.FORMAT_XZ)
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_xz_inputs())
def test_random_xz_inputs_give_what_the_python_path_gives(data: bytes) -> None:
    """Whatever the C decoder returns, the Python path returns too; what it declines,
    only the Python path decides (so messages are the Python path's)."""
    declared = xz_declared_size(data)
    try:
        slow: object = decompress(data, "xz", xz_declared=declared)
    except CompressedDataError as exc:
        slow = exc
    if declared is None:
        return
    fast = xz_happy_path(data, declared)
    if fast is not None:
        assert bytes(fast) == slow
    elif isinstance(slow, bytes):  # declined although the Python path reads it: only unusual shapes
        assert (len(data) != len(data.rstrip(b"\0")) or data.count(cz.XZ_MAGIC) > 1 or not slow
                or lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data) != slow)


# --------------------------------------------------------------------------
# Decoder.load: open, fstat, read, decode and close in one call
# --------------------------------------------------------------------------


def _held_outcome(path: str, python: bool, monkeypatch: pytest.MonkeyPatch,
                  max_size: int = cz.DEFAULT_MAX_SIZE) -> tuple[object, ...]:
    """What load_module_data gives for ``path`` (with or without the C decoder), and what its hold holds then."""
    with monkeypatch.context() as m:
        if python:
            m.setattr(cz, "_xz_ext", None)
            m.setattr(cz, "_xz_looked_up", True)
        budget = MemoryBudget(1 << 30)
        hold = budget.open()
        got = _outcome(path, lambda p: load_module_data(p, max_size, deadline=Deadline(60.0), hold=hold))
        held = hold.held
        hold.release()
        assert budget.used == 0
    return (*got, held)


def _edge_files(tmp_path: Path) -> list[Path]:
    files = []
    for name, (data, _module, _detail) in sorted(CASES.items()):
        files.append(tmp_path / f"{name}.ko.xz")
        files[-1].write_bytes(data)
    elf = build_ko(modinfo=["license=GPL", "name=plain"])
    for name, data in [("plain.ko", elf), ("empty.ko.xz", b""), ("short.ko.xz", CASES["xz_ok"][0][:5]),
                       ("magic-only.ko.xz", cz.XZ_MAGIC), ("padded.ko.xz", CASES["xz_ok"][0] + b"\0" * 4),
                       ("cut.ko.xz", CASES["xz_ok"][0][:-1]), ("gz.ko.xz", compress(elf, "gz")),
                       ("twice.ko.xz", CASES["xz_ok"][0] * 2)]:
        files.append(tmp_path / name)
        files[-1].write_bytes(data)
    (tmp_path / "dir.ko.xz").mkdir()
    os.mkfifo(tmp_path / "fifo.ko.xz")
    os.symlink(files[0], tmp_path / "link.ko.xz")
    others = ["dir.ko.xz", "fifo.ko.xz", "link.ko.xz", "missing.ko.xz"]
    return [*files, *(tmp_path / name for name in others)]


def test_the_one_call_load_gives_what_the_python_path_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every edge file of test_compression and a few more (not a regular file, missing,
    empty, cut, padded, two streams, not xz): the same bytes or the same error, and the
    hold left at the same size, with the one-call C load as on the Python path alone."""
    loads: list[object] = []

    class Counted:
        real = native.Decoder()

        def load(self, *args: object) -> object:
            got = self.real.load(*args)  # type: ignore[arg-type]
            loads.append(type(got).__name__)
            return got

        def decode(self, *args: object) -> object:
            return self.real.decode(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(cz._thread_decoder, "decoder", Counted())
    for path in _edge_files(tmp_path):
        for max_size in (cz.DEFAULT_MAX_SIZE, 100):
            fast = _held_outcome(str(path), False, monkeypatch, max_size)
            assert fast == _held_outcome(str(path), True, monkeypatch, max_size), (path.name, max_size)
    assert {"tuple", "bytes", "Declined"} <= set(loads)  # each way out of the C call was taken


def test_what_load_returns_and_when() -> None:
    native.release()
    dec = native.Decoder()
    module = build_ko(modinfo=["license=GPL", "name=l"])
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.ko.xz")
        data = compress(module, "xz")
        with open(path, "wb") as f:
            f.write(data)
        need = len(data) + len(module)
        got = dec.load(path, 1 << 30, need, -1.0)
        assert isinstance(got, tuple) and bytes(got[0]) == module and got[0].readonly and got[1] == len(data)
        assert dec.load(Path(path), 1 << 30, need, 5.0)[1] == len(data)  # type: ignore[index]  # (a path-like)
        assert dec.load(path, 1 << 30, need - 1, -1.0) == data  # read, but its module does not fit: the bytes
        assert dec.load(path, 1 << 30, len(data) - 1, -1.0) is DECLINED  # the file does not fit: not read
        assert dec.load(path, len(data) - 1, need, -1.0) is DECLINED  # larger than max_size: not read
        assert dec.load(path, len(module) - 1, need, -1.0) == data  # its module is: left to the Python path
        assert dec.load(path, 1 << 30, need, 0.0) == data  # no time left: read, not decoded
        assert dec.load(os.path.join(tmp, "absent.ko.xz"), 1 << 30, need, -1.0) is DECLINED
        assert dec.load(tmp, 1 << 30, need, -1.0) is DECLINED  # a directory
        with pytest.raises(TypeError):
            dec.load(None, 1 << 30, need, -1.0)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            dec.load(path + "\0x", 1 << 30, need, -1.0)
    native.release()


def test_the_hold_before_the_file_is_opened_never_waits_nor_takes_a_waiters_room(tmp_path: Path) -> None:
    """What _load_in_c holds up front is what the budget has free (up to XZ_ROOM), none while an
    older load waits; a module that fits in none is read as before, holding its size first."""
    module = build_ko(modinfo=["license=GPL", "name=w"])
    path = tmp_path / "m.ko.xz"
    path.write_bytes(compress(module, "xz"))
    need = path.stat().st_size + len(module)
    budget = MemoryBudget(need + 10)
    other = budget.open()
    other.need(need + 10)  # the budget is full
    hold = budget.open()
    assert hold.grab(cz.XZ_ROOM) == 0
    other.release()
    assert hold.grab(cz.XZ_ROOM) == need + 10 and budget.used == need + 10
    hold.settle(need)
    assert budget.used == need
    hold.release()
    small = MemoryBudget(need - 1)
    hold = small.open()
    data, kind = load_module_data(str(path), hold=hold)  # the oldest load: proceeds past the limit, as before
    assert bytes(data) == module and kind == "xz" and hold.held == need and small.peak == need
    hold.release()
    assert small.used == 0


def test_threads_load_with_decoders_of_their_own_and_one_pool_of_regions(tmp_path: Path) -> None:
    mods = [build_ko(modinfo=[f"name=t{i}", "license=GPL"], extra_sections=[(".pad", bytes(70_000 * (i % 3)))])
            for i in range(8)]
    paths = []
    for i, m in enumerate(mods):
        paths.append(str(tmp_path / f"t{i}.ko.xz"))
        Path(paths[-1]).write_bytes(compress(m, "xz"))
    bad: list[int] = []
    budget = MemoryBudget(1 << 30)

    def work() -> None:
        for _ in range(30):
            for i, (m, p) in enumerate(zip(mods, paths)):
                hold = budget.open()
                data, kind = load_module_data(p, hold=hold)
                if not isinstance(data, memoryview) or bytes(data) != m or kind != "xz":
                    bad.append(i)
                del data
                hold.release()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad and budget.used == 0
    assert native.pooled()[0] <= 3
    native.release()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_xz_inputs())
def test_random_xz_files_load_in_one_call_as_on_the_python_path(data: bytes) -> None:
    """The file-level twin of the test above: load_module_data with the one-call C load and on
    the Python path alone give the same bytes or the same error, and hold the same."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        path = os.path.join(tmp, "r.ko.xz")
        with open(path, "wb") as f:
            f.write(data)
        assert _held_outcome(path, False, mp) == _held_outcome(path, True, mp)


# --------------------------------------------------------------------------
# The CRC32 check, computed by moddeps/_crc32.c (liblzma is told to skip it)
# --------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _xz_blocks(parts: list[bytes]) -> bytes:
    """One xz stream (CRC32 check) with a block for each of ``parts``, put together after the
    xz file format 1.1.0 (sections 2, 3, 4): what ``xz --block-size`` writes."""
    flags = b"\0\x01"  # CRC32
    out = bytearray(b"\xfd7zXZ\0" + flags + zlib.crc32(flags).to_bytes(4, "little"))
    records = []
    for part in parts:
        # block header: its size / 4 - 1, flags (one filter, no sizes), LZMA2 (0x21), one byte
        # of properties (a 1 MiB dictionary: 16), padding, CRC32
        header = bytes([0x02, 0x00, 0x21, 0x01, 16]) + b"\0" * 3
        header += zlib.crc32(header).to_bytes(4, "little")
        data = lzma.compress(part, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 20}])
        unpadded = len(header) + len(data) + 4
        out += _pad4(header + data) + zlib.crc32(part).to_bytes(4, "little")
        records.append(_varint(unpadded) + _varint(len(part)))
    index = _pad4(b"\0" + _varint(len(parts)) + b"".join(records))
    index += zlib.crc32(index).to_bytes(4, "little")
    out += index
    tail = (len(index) // 4 - 1).to_bytes(4, "little") + flags
    out += zlib.crc32(tail).to_bytes(4, "little") + tail + b"YZ"
    return bytes(out)


def _check_offsets(xz: bytes, count: int) -> list[int]:
    """Where each block's CRC32 is in ``_xz_blocks``' output: the four bytes before the next block."""
    index_size = (int.from_bytes(xz[-8:-4], "little") + 1) * 4
    pos, ends = len(xz) - 12 - index_size + 2, []
    block = 12
    for _ in range(count):
        unpadded, pos = cz._varint(xz, pos, len(xz))
        _size, pos = cz._varint(xz, pos, len(xz))
        block += (unpadded + 3) & ~3
        ends.append(block - 4)
    return ends


_PARTS = [_MODULE[:1000], _MODULE[1000:1001], os.urandom(3000), _MODULE[1001:]]


def test_a_stream_of_several_blocks_is_checked_block_by_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each block's check is its own part's CRC-32: a good stream of four blocks (one of a single
    byte, one of random bytes) is decoded in C; a bit flipped in any byte of any block's check
    declines it, and both paths then give the same error -- liblzma's, on the Python path."""
    good = _xz_blocks(_PARTS)
    assert lzma.decompress(good) == b"".join(_PARTS)  # (put together right: liblzma agrees)
    dec = native.Decoder()
    size = sum(map(len, _PARTS))
    got = dec.decode(good, size, -1.0)
    assert isinstance(got, memoryview) and bytes(got) == b"".join(_PARTS)
    offsets = _check_offsets(good, len(_PARTS))
    for block, at in enumerate(offsets):
        assert good[at:at + 4] == zlib.crc32(_PARTS[block]).to_bytes(4, "little")
        for byte in range(4):
            bad = bytearray(good)
            bad[at + byte] ^= 0x10
            assert dec.decode(bytes(bad), size, -1.0) is DECLINED, (block, byte)
            path = tmp_path / f"bad{block}{byte}.ko.xz"
            path.write_bytes(bad)
            fast, slow = _both(str(path), monkeypatch)
            assert fast == slow and fast[0] == "error", (block, byte)
    path = tmp_path / "good.ko.xz"
    path.write_bytes(good)
    assert _both(str(path), monkeypatch) == (("ok", b"".join(_PARTS), "xz"),) * 2
    assert dec.decode(good, size, -1.0) is not DECLINED  # (a declined stream leaves the decoder usable)


def test_a_crc32_stream_loads_checked_in_one_call(tmp_path: Path) -> None:
    """Decoder.load checks as decode does: the good file is the module, the one with a flipped
    check comes back as its bytes (read, not decoded here: the Python path decides)."""
    good = _xz_blocks([_MODULE[:500], _MODULE[500:]])
    bad = bytearray(good)
    bad[_check_offsets(good, 2)[1]] ^= 1
    dec = native.Decoder()
    (tmp_path / "good.ko.xz").write_bytes(good)
    (tmp_path / "bad.ko.xz").write_bytes(bad)
    view, size = dec.load(str(tmp_path / "good.ko.xz"), cz.DEFAULT_MAX_SIZE, 1 << 30, -1.0)
    assert bytes(view) == _MODULE and size == len(good)
    assert dec.load(str(tmp_path / "bad.ko.xz"), cz.DEFAULT_MAX_SIZE, 1 << 30, -1.0) == bytes(bad)


def test_other_checks_are_still_liblzmas() -> None:
    """A CRC64 or SHA-256 stream keeps liblzma's own check: one flipped is declined too."""
    for check, size in ((lzma.CHECK_CRC64, 8), (lzma.CHECK_SHA256, 32)):
        good = lzma.compress(_MODULE, format=lzma.FORMAT_XZ, check=check)
        index_size = (int.from_bytes(good[-8:-4], "little") + 1) * 4
        at = len(good) - 12 - index_size - size  # the one block's check, just before the index
        bad = bytearray(good)
        bad[at] ^= 1
        assert bytes(native.Decoder().decode(good, len(_MODULE), -1.0)) == _MODULE
        assert native.Decoder().decode(bytes(bad), len(_MODULE), -1.0) is DECLINED
