"""moddeps/_crc32.c: zlib's CRC-32, folded with carry-less multiplication where the CPU can.

``_elfscan.crc32`` must equal ``zlib.crc32`` for every length, start, alignment and
initial value, on both of its ways (folding, tables); the folding constants in the C
source are derived here again from the polynomial, as its header comment says."""

from __future__ import annotations

import os
import platform
import re
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moddeps import native

elfscan = native.load("_elfscan")
if elfscan is None:  # pragma: no cover - depends on the build
    if os.environ.get("CI") == "true":
        pytest.fail("moddeps._elfscan is not built; CI must build it", pytrace=False)
    pytest.skip("moddeps._elfscan is not built (or MODDEPS_PURE)", allow_module_level=True)

SOURCE = Path(__file__).resolve().parent.parent / "moddeps" / "_crc32.c"
POLY = 0x104C11DB7  # CRC-32's polynomial, x^32 + x^26 + ... + 1


def _mod(a: int) -> int:
    while a.bit_length() > 32:
        a ^= POLY << (a.bit_length() - 33)
    return a


def _reflect64(v: int) -> int:
    return int(f"{v:064b}"[::-1], 2)


def _constant(exponent: int) -> int:
    """x^exponent mod P, bit-reflected over 64 bits."""
    return _reflect64(_mod(1 << exponent))


def test_the_folding_constants_are_the_polynomials() -> None:
    """K512 folds a lane 512 bits on (x^(63+512), x^(512-1)), K128 128 bits on."""
    text = SOURCE.read_text()
    got = {m[0]: int(m[1], 16) for m in re.findall(r"#define (K\d+_(?:LO|HI)) (0x[0-9a-f]+)ull", text)}
    assert got == {"K512_LO": _constant(63 + 512), "K512_HI": _constant(512 - 1),
                   "K128_LO": _constant(63 + 128), "K128_HI": _constant(128 - 1)}


def test_it_folds_where_the_cpu_multiplies_without_carries() -> None:
    flags: set[str] = set()
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if platform.machine() in ("x86_64", "AMD64") and flags:
        assert elfscan.crc32_folds() == ("pclmulqdq" in flags)
    else:
        assert elfscan.crc32_folds() is False


@given(st.binary(max_size=2000), st.integers(0, 0xFFFFFFFF), st.integers(0, 15))
def test_equals_zlib_on_both_ways(data: bytes, value: int, start: int) -> None:
    view = memoryview(data)[start:]  # (unaligned starts)
    want = zlib.crc32(view, value)
    assert elfscan.crc32(view, value) == want
    assert elfscan.crc32(view, value, tables=True) == want
    assert native.crc32(view, value) == want


@pytest.mark.parametrize("size", [0, 1, 15, 16, 63, 64, 65, 79, 80, 127, 128, 129, 191, 192, 255, 256, 4096 + 7,
                                  65535, 65536, (1 << 20) + 13])
def test_every_tail_and_the_gil_free_sizes(size: int) -> None:
    data = os.urandom(size)
    for value in (0, 1, 0xFFFFFFFF, 0x12345678):
        assert elfscan.crc32(data, value) == zlib.crc32(data, value) == elfscan.crc32(data, value, tables=True)
    # chained as zlib chains: the CRC of a whole is the CRC of its second part from the first's
    cut = size // 3
    assert elfscan.crc32(data[cut:], elfscan.crc32(data[:cut])) == zlib.crc32(data)


def test_buffers_of_every_kind() -> None:
    data = os.urandom(300)
    want = zlib.crc32(data)
    assert elfscan.crc32(bytearray(data)) == elfscan.crc32(memoryview(data)) == want
    with pytest.raises(TypeError):
        elfscan.crc32("text")  # type: ignore[arg-type]


def test_the_python_twin_without_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODDEPS_PURE", "1")
    data = os.urandom(1000)
    assert native.crc32(data, 7) == zlib.crc32(data, 7)
