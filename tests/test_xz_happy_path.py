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
