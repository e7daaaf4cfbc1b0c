"""The scan cache's record format (moddeps.read.recordcodec): the C codec of
``moddeps._elfscan`` against the pure-Python one.

Checked here:

* every module of ``sample_modules/``, kobuild-made modules and
  hypothesis-made Module values (odd strings, surrogates included, None and
  0 and 64-bit CRCs, empty tuples, error modules) come back equal from
  both codecs, which write the very same bytes and read each other's;
* values the format cannot hold are refused alike (same exception class);
* hostile blobs (truncated at every length, every byte overwritten, random
  corruption, other formats, non-blobs) give ValueError (TypeError for a
  non-blob) or a Module -- the same in C and Python -- and never make the C
  code read past the blob;
* the memo makes equal imports one object, module_type is checked, no leaks;
* the scan cache reads what either codec wrote, never reads the marshalled
  rows of earlier versions, and a damaged record disables it with one
  message and the right result.

In CI (``CI=true``) the extension must be built: the C tests fail instead of
being skipped.
"""

from __future__ import annotations

import marshal
import os
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moddeps.model import READER_SCHEMA, Export, Import, Module, fsdecode
from moddeps.native import DECLINED
from moddeps.read import cache as cache_mod
from moddeps.read import recordcodec as rc
from moddeps.read.cache import ScanCache
from moddeps.read.elfreader import parse_module
from moddeps.read.scan import scan_tree

from . import kobuild
from .fuzz.test_fuzz_reader import well_formed
from .guardpage import MPROTECT, guarded
from .kobuild import build_ko
from .leakcheck import heap_growth

try:
    from moddeps import _elfscan as _native_mod
except ImportError:  # pragma: no cover - depends on the build
    _native_mod = None  # type: ignore[assignment]

native: Any = _native_mod if _native_mod is not None and hasattr(_native_mod, "unpack_many") else None

REPO = Path(__file__).resolve().parent.parent
SAMPLE_TREES = sorted(p for p in (REPO / "sample_modules/lib/modules").iterdir() if p.is_dir())


def need_native() -> Any:
    """The C codec, or a skip (a failure in CI)."""
    if native is None:
        why = "moddeps._elfscan with pack/unpack is not built (python setup.py build_ext --inplace)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; CI must build it", pytrace=False)
        pytest.skip(why)
    return native


def c_pack(m: Module) -> bytes:
    return need_native().pack(m)  # type: ignore[no-any-return]


def c_unpack(blob: Any, memo: dict[Any, Any] | None = None) -> Module:
    return need_native().unpack(blob, Module, Export, Import, memo)  # type: ignore[no-any-return]


def c_unpack_many(blobs: list[Any], memo: dict[Any, Any] | None = None) -> list[Module]:
    return need_native().unpack_many(blobs, Module, Export, Import, memo)  # type: ignore[no-any-return]


def strict(m: Module) -> str:
    """A form of a Module where True and 1, a NamedTuple and a tuple, differ."""
    return repr(
        [(f, type(getattr(m, f)).__name__, getattr(m, f)) for f in rc._FIELDS]
        + [type(r).__name__ for r in m.exports + m.imports]
    )


def roundtrip(m: Module) -> bytes:
    """Both codecs on one module; returns the record."""
    blob = rc.py_pack(m)
    back = rc.py_unpack(blob)
    assert back == m
    if native is None and os.environ.get("CI") != "true":
        return blob
    assert c_pack(m) == blob, "C and Python write different bytes"
    for got in (c_unpack(blob), c_unpack(blob, {}), c_unpack_many([blob])[0], rc.py_unpack(blob, {})):
        assert got == m
        assert strict(got) == strict(back)
    fields = need_native().unpack(blob, None, Export, Import)
    assert type(fields) is tuple and Module(*fields) == m
    assert rc.py_unpack_fields(blob) == fields
    return blob


def norm(m: Module) -> Module:
    """``m`` as it comes back from a record: bools are bools, records Export / Import."""
    return Module(
        m.name, m.path,
        tuple(Export(e[0], e[1], bool(e[2]), e[3], bool(e[4])) for e in m.exports),
        tuple(Import(i[0], i[1], bool(i[2]), bool(i[3]), bool(i[4])) for i in m.imports),
        m.modinfo, bool(m.has_init), bool(m.has_exit), m.machine, m.elf_class, m.byte_order, m.compression,
        m.error, m.kmod_error,
    )


# --------------------------------------------------------------------------
# Real modules
# --------------------------------------------------------------------------


def test_the_extension_is_used() -> None:
    need_native()
    if os.environ.get("MODDEPS_PURE", "") in ("", "0"):
        assert rc._native is native


@pytest.mark.parametrize("tree", SAMPLE_TREES, ids=lambda p: p.name)
def test_sample_trees(tree: Path) -> None:
    mods = list(scan_tree(str(tree), jobs=1).modules)
    assert mods
    blobs = [roundtrip(m) for m in mods]
    assert rc.py_unpack_many(blobs, {}) == mods
    if native is not None:
        assert c_unpack_many(blobs, {}) == mods
    # smaller than what the cache stored before
    assert sum(map(len, blobs)) < sum(len(marshal.dumps(m.to_wire())) for m in mods)  # type: ignore[arg-type, misc]


KOBUILD_MODULES: dict[str, bytes] = {
    "plain": build_ko(),
    "rich-32-big": build_ko(
        bits=32, endian="big", machine=20, modinfo=[("license", "GPL"), ("author", "Rafał Miłecki"), "novalue",
                                                    "a=b=c", b"bad=\xff\xfe", ("alias", "pci:v*")],
        exports=[kobuild.Export(name="plain_fn", crc=0x1234ABCD), kobuild.Export(name="gpl", gpl=True, crc=0),
                 kobuild.Export(name="ns_fn", namespace="NS_B", crc=0xFFFFFFFF), kobuild.Export(name="nocrc")],
        undefined=["printk", ("maybe", True), "kfree"], versions=[("module_layout", 1), ("printk", 0)],
        init=False,
    ),
    "abs-crcs": build_ko(exports=[kobuild.Export(name="a", crc=5), kobuild.Export(name="b", crc=6)],
                         crc_mode="abs", exit=False),
    "strings-fallback": build_ko(exports=[kobuild.Export(name="x", namespace="NS")], crc_symbols=False),
    "versions-only": build_ko(versions=[("module_layout", 0xBCE1A965), ("gone", 2)]),
    # names and modinfo that are not UTF-8 (same-length markers replaced after the build)
    "non-utf8": build_ko(undefined=["sym_MARK1"], exports=[kobuild.Export(name="e_MARK2", crc=3, namespace="MARK3")],
                         modinfo=[b"MARK4=v", b"alias=MARK5"])
    .replace(b"MARK1", b"\xc3\x28\xff\x80Z").replace(b"MARK2", b"\xed\xa0\x80\xf4\x90")
    .replace(b"MARK3", b"\xe2\x82=\xc0\xaf").replace(b"MARK4", b"\xc3\xa9\x80\xe2\xff")
    .replace(b"MARK5", b"\xf0\x9f\x98\x80\xfe"),
}


@pytest.mark.parametrize("case", sorted(KOBUILD_MODULES))
@pytest.mark.parametrize("compression", [None, "xz", "zstd"])
def test_kobuild_modules(case: str, compression: str | None) -> None:
    m = parse_module(KOBUILD_MODULES[case], f"kernel/x/{case}.ko", compression=compression)
    roundtrip(m)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(well_formed())
def test_random_kobuild_modules(data: bytes) -> None:
    roundtrip(parse_module(data, "kernel/x/m.ko"))


def test_error_modules() -> None:
    roundtrip(Module("broken", "kernel/broken.ko", error="truncated ELF header", kmod_error="Exec format error"))
    roundtrip(Module("", "", error="", kmod_error=""))


# --------------------------------------------------------------------------
# Generated Module values
# --------------------------------------------------------------------------

ODD = st.one_of(
    st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=12),
    st.binary(max_size=12).map(fsdecode),  # what module files give: lone surrogates U+DC80..U+DCFF
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()), max_size=4),
    st.lists(st.sampled_from(["a", "\0", "\ud800", "\udc80", "é", "\U0010ffff", "\x7f", "\x80"]),
             max_size=6).map("".join),
    st.sampled_from(["", "\0", "\ud800", "\udfff\ud800", "\ud83d\ude00", "\U0001f600", "é", "a\0b", "=", "\udcff"]),
)
CRC = st.one_of(st.none(), st.just(0), st.integers(0, 0xFFFFFFFF), st.integers(0, 2**64 - 1),
                st.sampled_from([2**32 - 1, 2**32, 2**64 - 1]))
OPT = st.one_of(st.none(), ODD)

EXPORTS = st.lists(st.builds(Export, ODD, CRC, st.booleans(), OPT, st.booleans()), max_size=6).map(tuple)
IMPORTS = st.lists(st.builds(Import, ODD, CRC, st.booleans(), st.booleans(), st.booleans()), max_size=8).map(tuple)
MODULES = st.builds(
    Module,
    name=ODD, path=ODD, exports=EXPORTS, imports=IMPORTS,
    modinfo=st.lists(st.tuples(ODD, ODD), max_size=6).map(tuple),
    has_init=st.booleans(), has_exit=st.booleans(),
    machine=st.one_of(st.sampled_from([0, 3, 62, 183, 0xFFFF]), st.integers(0, 0xFFFF)),
    elf_class=st.one_of(st.sampled_from([0, 32, 64]), st.integers(0, 255)),
    byte_order=st.one_of(st.sampled_from(["", "little", "big"]), ODD),
    compression=st.one_of(st.sampled_from([None, "xz", "zstd", "gzip"]), OPT),
    error=OPT, kmod_error=OPT,
)

HYP = settings(max_examples=300, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@HYP
@given(MODULES)
def test_generated_modules(m: Module) -> None:
    roundtrip(m)


@HYP
@given(st.lists(MODULES, min_size=1, max_size=5))
def test_generated_modules_many(mods: list[Module]) -> None:
    blobs = [rc.py_pack(m) for m in mods]
    assert rc.py_unpack_many(blobs) == mods
    if native is not None:
        assert c_unpack_many(blobs) == mods
        assert c_unpack_many(blobs, {}) == mods


@pytest.mark.parametrize("length", [0, 1, 255, 256, 65535, 65536, 70000])
def test_string_length_widths(length: int) -> None:
    s = "x" * (length - 1) + "é" if length > 1 else "y" * length
    m = Module("m", s, modinfo=(("k", s),), imports=(Import(s, None),))
    blob = roundtrip(m)
    assert blob[1] >> 6 == (0 if len(s.encode()) < 256 else 1 if len(s.encode()) < 65536 else 2)


def test_crc_width_and_none_versus_zero() -> None:
    small = Module("m", "p", exports=(Export("a", 0), Export("b", None)), imports=(Import("c", 0), Import("d", None)))
    assert not roundtrip(small)[1] & rc.F_CRC64
    big = replace(small, imports=(Import("c", 2**64 - 1), Import("d", None), Import("e", 0)))
    assert roundtrip(big)[1] & rc.F_CRC64
    assert rc.py_unpack(rc.py_pack(big)).imports[1].crc is None
    assert rc.py_unpack(rc.py_pack(big)).imports[2].crc == 0


def test_tuples_and_truthy_values_are_stored_as_the_model_holds_them() -> None:
    """Plain tuples for records and truthy non-bools come back as Export / Import and bools."""
    m = Module("m", "p", exports=(("a", 1, 1, None, 0),), imports=(("b", None, [], "x", 2),),  # type: ignore[arg-type]
               has_init=1, has_exit=0)  # type: ignore[arg-type]
    blob = rc.py_pack(m)
    assert rc.py_unpack(blob) == norm(m)
    if native is not None:
        assert c_pack(m) == blob
        assert strict(c_unpack(blob)) == strict(rc.py_unpack(blob))


def test_str_and_int_subclasses_are_stored_as_their_values() -> None:
    class S(str):
        def encode(self, *a: Any, **k: Any) -> bytes:
            return b"wrong"

    class N(int):
        def __int__(self) -> int:
            return 99

    m = Module(S("m"), S("pé"), exports=(Export(S("e"), N(5), False, S("ns")),), imports=(Import(S("i"), N(2**40)),),
               modinfo=((S("k"), S("v\udcff")),), machine=N(62), elf_class=N(64))
    want = Module("m", "pé", exports=(Export("e", 5, False, "ns"),), imports=(Import("i", 2**40),),
                  modinfo=(("k", "v\udcff"),), machine=62, elf_class=64)
    blob = rc.py_pack(m)
    assert blob == rc.py_pack(want)
    assert strict(rc.py_unpack(blob)) == strict(want)
    if native is not None:
        assert c_pack(m) == blob


# --------------------------------------------------------------------------
# What the format cannot hold
# --------------------------------------------------------------------------

BASE = Module("m", "p", exports=(Export("e", 1),), imports=(Import("i", 2),), modinfo=(("k", "v"),))
INVALID: dict[str, tuple[Module, type[Exception]]] = {
    "crc-negative": (replace(BASE, imports=(Import("i", -1),)), ValueError),
    "crc-65-bits": (replace(BASE, exports=(Export("e", 2**64),)), ValueError),
    "crc-float": (replace(BASE, imports=(Import("i", 1.0),)), TypeError),  # type: ignore[arg-type]
    "crc-str": (replace(BASE, exports=(Export("e", "1"),)), TypeError),  # type: ignore[arg-type]
    "machine-big": (replace(BASE, machine=0x10000), ValueError),
    "machine-negative": (replace(BASE, machine=-1), ValueError),
    "machine-huge": (replace(BASE, machine=2**100), ValueError),
    "elf-class-256": (replace(BASE, elf_class=256), ValueError),
    "elf-class-str": (replace(BASE, elf_class="64"), TypeError),  # type: ignore[arg-type]
    "name-bytes": (replace(BASE, name=b"m"), TypeError),  # type: ignore[arg-type]
    "path-none": (replace(BASE, path=None), TypeError),  # type: ignore[arg-type]
    "byte-order-none": (replace(BASE, byte_order=None), TypeError),  # type: ignore[arg-type]
    "error-int": (replace(BASE, error=1), TypeError),  # type: ignore[arg-type]
    "exports-list": (replace(BASE, exports=[Export("e", 1)]), TypeError),  # type: ignore[arg-type]
    "export-short": (replace(BASE, exports=(("e", 1, False, None),)), TypeError),  # type: ignore[arg-type]
    "import-long": (replace(BASE, imports=(("i", 1, False, False, False, 0),)), TypeError),  # type: ignore[arg-type]
    "import-short": (replace(BASE, imports=(("i", 1, False, False),)), TypeError),  # type: ignore[arg-type]
    "import-not-tuple": (replace(BASE, imports=(["i", 1, False, False],)), TypeError),  # type: ignore[arg-type]
    "modinfo-triple": (replace(BASE, modinfo=(("k", "v", "w"),)), TypeError),  # type: ignore[arg-type]
    "modinfo-value-none": (replace(BASE, modinfo=(("k", None),)), TypeError),  # type: ignore[arg-type]
    "namespace-bytes": (replace(BASE, exports=(Export("e", 1, False, b"NS"),)), TypeError),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_values_the_format_cannot_hold(case: str) -> None:
    m, exc = INVALID[case]
    with pytest.raises(exc):
        rc.py_pack(m)
    if native is not None:
        with pytest.raises(exc):
            c_pack(m)


def test_pack_needs_the_fields() -> None:
    with pytest.raises(AttributeError):
        rc.py_pack(object())  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        c_pack(object())  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Hostile blobs
# --------------------------------------------------------------------------




def outcome(decode: Callable[[Any], Module], blob: Any) -> tuple[str, str]:
    try:
        return "ok", strict(decode(blob))
    except ValueError:
        return "ValueError", ""


def agree(blob: bytes, *, guard: bool = False) -> tuple[str, str]:
    """C and Python on one blob: the same Module or both ValueError."""
    want = outcome(rc.py_unpack, blob)
    if native is None:
        return want
    assert outcome(c_unpack, blob) == want
    assert outcome(lambda b: c_unpack_many([b], {})[0], blob) == want
    if guard and MPROTECT is not None:
        with guarded(blob) as view:
            assert outcome(c_unpack, view) == want
            assert outcome(lambda b: rc.py_unpack(bytes(b)), view) == want
    return want


SEED_MODULES = {
    "small": Module("m", "kernel/m.ko", exports=(Export("e", 7, True, "NS", False), Export("f", None)),
                    imports=(Import("printk", 0x1234), Import("w", None, True, False),
                             Import("ml", 2**40, False, True), Import("_RNv6kernel", 7, False, False, True),
                             Import("ext_layout", 9, False, True, True)),
                    modinfo=(("license", "GPL"), ("author", "Ŝ\udcff")), has_init=True, machine=62, elf_class=64,
                    byte_order="little", compression="xz", error=None, kmod_error="x"),
    "empty": Module("", ""),
    "wide": Module("w", "x" * 300, imports=(Import("i", 1),), modinfo=(("k", "v" * 70000),)),
}
SEED_BLOBS = {k: rc.py_pack(m) for k, m in SEED_MODULES.items()}


@pytest.mark.parametrize("seed", ["small", "empty"])
def test_truncated_at_every_length(seed: str) -> None:
    blob = SEED_BLOBS[seed]
    for n in range(len(blob)):
        assert agree(blob[:n], guard=True)[0] == "ValueError", n
    assert agree(blob + b"\0")[0] == "ValueError"
    assert agree(blob, guard=True) == ("ok", strict(SEED_MODULES[seed]))


def test_truncated_wide_record() -> None:
    blob = SEED_BLOBS["wide"]
    for n in [*range(0, 400), *range(len(blob) - 300, len(blob))]:
        assert agree(blob[:n], guard=n > len(blob) - 5)[0] == "ValueError", n


@pytest.mark.parametrize("value", [0x00, 0x01, 0x7F, 0x80, 0xFF])
def test_every_byte_overwritten(value: int) -> None:
    blob = SEED_BLOBS["small"]
    results = set()
    for pos in range(len(blob)):
        data = bytearray(blob)
        data[pos] = value
        results.add(agree(bytes(data), guard=pos % 7 == 0)[0])
    assert "ValueError" in results


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.sampled_from(sorted(SEED_BLOBS)), st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                                 st.integers(0, 255)), min_size=1, max_size=6))
def test_random_corruption(seed: str, edits: list[tuple[float, int]]) -> None:
    data = bytearray(SEED_BLOBS[seed])
    for where, value in edits:
        data[int(where * len(data))] = value
    agree(bytes(data))


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.binary(max_size=64), st.sampled_from([b"", b"\x01", b"\x01\x00", b"\x01\xc0"]))
def test_random_bytes(body: bytes, prefix: bytes) -> None:
    agree(prefix + body)


def test_seeded_random_mutations_of_real_records() -> None:
    mods = list(scan_tree(str(SAMPLE_TREES[0]), jobs=1).modules)
    rnd = random.Random(8)
    for m in mods:
        blob = rc.py_pack(m)
        for _ in range(40):
            data = bytearray(blob)
            for _ in range(rnd.randint(1, 3)):
                data[rnd.randrange(len(data))] = rnd.randrange(256)
            agree(bytes(data))


def test_counts_that_claim_too_much() -> None:
    """Huge counts and lengths in a small blob are refused before anything is sized from them."""
    header = rc._HEADER
    for fields in [(0xFFFFFFFF, 0, 0), (0, 0xFFFFFFFF, 0), (0, 0, 0xFFFFFFFF), (0xFFFFFFFF,) * 3]:
        for flags in (0, 0x20, 0x40, 0x80, 0x3F):
            assert agree(header.pack(rc.FORMAT, flags, 64, 62, *fields) + b"\0" * 40)[0] == "ValueError"
    # lengths that add up to more than the blob, or wrap around in 32 bits
    lengths = (0xFFFFFFFF).to_bytes(4, "little") * 2 + (2).to_bytes(4, "little")
    assert agree(header.pack(rc.FORMAT, 0x80, 0, 0, 0, 0, 0) + lengths + b"ab")[0] == "ValueError"


def test_other_formats_and_reserved_bits_are_refused() -> None:
    blob = SEED_BLOBS["small"]
    assert agree(bytes([2]) + blob[1:])[0] == "ValueError"
    assert agree(bytes([0]) + blob[1:])[0] == "ValueError"
    assert agree(blob[:1] + bytes([blob[1] | 0xC0]) + blob[2:])[0] == "ValueError"  # length width 3
    e_at = rc.HEADER_SIZE  # the first export's flags
    assert agree(blob[:e_at] + bytes([blob[e_at] | 0x10]) + blob[e_at + 1:])[0] == "ValueError"
    i_at = rc.HEADER_SIZE + 2  # the first import's flags
    assert agree(blob[:i_at] + bytes([blob[i_at] | 0x10]) + blob[i_at + 1:])[0] == "ValueError"
    # 0x08 is ext_crc (READER_SCHEMA 2): set on the first import, it comes back set
    flipped = blob[:i_at] + bytes([blob[i_at] | 0x08]) + blob[i_at + 1:]
    assert agree(flipped)[0] != "ValueError"
    assert rc.py_unpack(flipped).imports[0] == Import("printk", 0x1234, ext_crc=True)
    # the marshalled wire form of earlier versions
    assert agree(marshal.dumps(SEED_MODULES["small"].to_wire()))[0] == "ValueError"  # type: ignore[arg-type]
    # invalid UTF-8 in a string (surrogatepass accepts encoded surrogates, nothing else)
    bad = rc.py_pack(Module("ab", "p"))
    at = bad.index(b"abp")
    assert agree(bad[:at] + b"\xff" + bad[at + 1:])[0] == "ValueError"


def test_a_multibyte_character_split_between_two_strings_is_refused() -> None:
    blob = rc.py_pack(Module("a\u00e9", "b"))  # name: 61 c3 a9, path: 62
    at = blob.index(b"a\xc3\xa9b")
    lens = blob.index(bytes([3, 1]), rc.HEADER_SIZE)
    moved = bytearray(blob)
    moved[lens : lens + 2] = bytes([2, 2])  # "a\xc3" and "\xa9b": the whole is valid UTF-8, each string is not
    assert bytes(moved[at:at + 4]) == b"a\xc3\xa9b"
    assert agree(bytes(moved))[0] == "ValueError"


def test_non_blobs() -> None:
    for bad in ("text", 3, None):
        with pytest.raises(TypeError):
            rc.py_unpack(bad)  # type: ignore[arg-type]
        if native is not None:
            with pytest.raises(TypeError):
                c_unpack(bad)
            with pytest.raises(TypeError):
                c_unpack_many([SEED_BLOBS["small"], bad])
    # any bytes-like object is read alike
    blob = SEED_BLOBS["small"]
    for like in (bytearray(blob), memoryview(blob)):
        assert rc.py_unpack(like) == SEED_MODULES["small"]  # type: ignore[arg-type]
        if native is not None:
            assert c_unpack(like) == SEED_MODULES["small"]


# --------------------------------------------------------------------------
# The memo, the module type, the Python API, leaks
# --------------------------------------------------------------------------


def test_memo_makes_equal_imports_one_object() -> None:
    mods = list(scan_tree(str(SAMPLE_TREES[0]), jobs=1).modules)
    blobs = [rc.py_pack(m) for m in mods]
    decoders: list[Callable[[list[bytes], dict[Any, Any]], list[Module]]] = [rc.py_unpack_many]
    if native is not None:
        decoders += [c_unpack_many, lambda bs, memo: [c_unpack(b, memo) for b in bs]]
    for decode in decoders:
        memo: dict[Any, Any] = {}
        got = decode(blobs, memo)
        assert got == mods
        seen: dict[Import, Import] = {}
        for m in got:
            for i in m.imports:
                assert type(i) is Import
                assert seen.setdefault(i, i) is i
                assert memo[i] is i
        # a second call with the same memo gives the very same objects
        again = decode(blobs, memo)
        assert all(a is b for m1, m2 in zip(got, again) for a, b in zip(m1.imports, m2.imports))


def test_module_type_is_checked() -> None:
    c = need_native()
    blob = SEED_BLOBS["small"]

    @dataclass(frozen=True, slots=True)
    class WithPostInit(Module):
        def __post_init__(self) -> None:  # pragma: no cover - never called
            pass

    class NotSlots:
        pass

    for bad in (WithPostInit, NotSlots, int, 3, tuple):
        with pytest.raises(TypeError):
            c.unpack(blob, bad, Export, Import)
    with pytest.raises(TypeError):
        c.unpack(blob, Module, list, Import)
    with pytest.raises(TypeError):
        c.unpack(blob, Module, Export, Import, [])
    # a subclass that is a plain slots dataclass is fine
    @dataclass(frozen=True, slots=True)
    class Sub(Module):
        pass

    got = c.unpack(blob, Sub, Export, Import)
    assert type(got) is Sub
    assert all(getattr(got, f) == getattr(SEED_MODULES["small"], f) for f in rc._FIELDS)
    # plain tuples for records
    fields = c.unpack(blob, None, None, None)
    assert type(fields[2][0]) is tuple and fields[2][0] == tuple(SEED_MODULES["small"].exports[0])


def test_public_api_switches_with_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    m = SEED_MODULES["small"]
    for impl in (native, None):
        monkeypatch.setattr(rc, "_native", impl)
        blob = rc.pack(m)
        assert blob == SEED_BLOBS["small"]
        assert rc.unpack(blob) == m and rc.unpack_many([blob, blob], {}) == [m, m]


def test_no_leaks() -> None:
    c = need_native()
    blobs = list(SEED_BLOBS.values())
    mods = list(SEED_MODULES.values())
    bad = [SEED_BLOBS["small"][:-1], b"\x01" + b"\xff" * 30, b"", marshal.dumps((1, 2))]

    def run(n: int) -> None:
        for _ in range(n):
            for m in mods:
                c.pack(m)
            for m, exc in INVALID.values():
                with pytest.raises(exc):
                    c.pack(m)
            c.unpack_many(blobs, Module, Export, Import, {})
            c.unpack_many(blobs, None, Export, Import)
            for b in blobs:
                c.unpack(b, Module, Export, Import, {})
            for b in bad:
                with pytest.raises(ValueError):
                    c.unpack(b, Module, Export, Import, {})
                with pytest.raises(ValueError):
                    c.unpack_many([*blobs, b], Module, Export, Import, {})

    grown = heap_growth(run, warm=20, settle=10, rounds=300)
    assert grown < 64 * 1024, f"the heap grew by {grown} bytes"


# --------------------------------------------------------------------------
# The scan cache
# --------------------------------------------------------------------------


def _keys(tree: Path) -> list[tuple[Any, str]]:
    """(key, shown path) of each module, as scan_tree asks the cache for them."""
    return [(cache_mod.file_key(str(p)), str(p.relative_to(tree))) for p in sorted(tree.rglob("*.ko*"))]


def test_cache_written_by_one_codec_is_read_by_the_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_native()
    tree = SAMPLE_TREES[0]
    cold = scan_tree(str(tree), jobs=1).modules
    for writer, reader in ((None, native), (native, None)):
        db = tmp_path / f"{writer is None}.db"
        monkeypatch.setattr(rc, "_native", writer)
        c = ScanCache(str(db))
        assert scan_tree(str(tree), jobs=1, cache=c).modules == cold
        c.close()
        monkeypatch.setattr(rc, "_native", reader)
        import moddeps.read.pool as pool

        with monkeypatch.context() as mp:
            mp.setattr(pool, "_read_uncached", lambda *a, **k: pytest.fail("a cached module was read again"))
            c = ScanCache(str(db))
            assert scan_tree(str(tree), jobs=1, cache=c).modules == cold
            assert c.problem is None
            c.close()


def test_cache_never_reads_old_marshalled_rows(tmp_path: Path) -> None:
    """A database of an earlier version (marshalled records in module_records) is simply missed."""
    tree = SAMPLE_TREES[0]
    db = tmp_path / "old.db"
    keys = _keys(tree)
    with sqlite3.connect(db) as old:
        old.execute("CREATE TABLE module_records (path TEXT NOT NULL, size INTEGER NOT NULL,"
                    " mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, device INTEGER NOT NULL,"
                    " schema INTEGER NOT NULL, shown TEXT NOT NULL, record BLOB NOT NULL, PRIMARY KEY (path, schema))")
        wrong = Module("wrong", "wrong").to_wire()
        old.executemany("INSERT INTO module_records VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(*k[:3], *k[4:], READER_SCHEMA, shown, marshal.dumps(wrong))  # type: ignore[arg-type]
                         for k, shown in keys if k])
    c = ScanCache(str(db))
    assert c.get_many(keys) == [None] * len(keys)
    assert c.problem is None
    # the same keys find what this version wrote
    scan_tree(str(tree), jobs=1, cache=c)
    assert any(m is not None for m in c.get_many(keys))
    c.close()


def test_cache_never_reads_the_unsealed_rows_of_format_1(tmp_path: Path) -> None:
    """The records of the previous layout (format 1, no ctime, no seal: ``module_records_f1``),
    well-formed and keyed as the files are but for the ctime, are never read."""
    tree = SAMPLE_TREES[0]
    db = tmp_path / "old.db"
    keys = _keys(tree)
    assert cache_mod.RECORDS_TABLE != "module_records_f1"
    with sqlite3.connect(db) as old:
        old.execute("CREATE TABLE module_records_f1 (path TEXT NOT NULL, size INTEGER NOT NULL,"
                    " mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, device INTEGER NOT NULL,"
                    " schema INTEGER NOT NULL, shown TEXT NOT NULL, record BLOB NOT NULL, PRIMARY KEY (path, schema))")
        old.executemany("INSERT INTO module_records_f1 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(*k[:3], *k[4:], READER_SCHEMA, shown, rc.pack(Module("wrong", "wrong")))
                         for k, shown in keys if k])
    c = ScanCache(str(db))
    assert c.get_many(keys) == [None] * len(keys)
    assert c.problem is None
    assert scan_tree(str(tree), jobs=1, cache=c).modules == scan_tree(str(tree), jobs=1).modules
    c.close()


@pytest.mark.parametrize("damage", ["truncated", "flipped-format", "text", "garbage", "one bit", "renamed",
                                    "moved", "seal"])
def test_a_damaged_record_is_read_again_alone_and_said_once(tmp_path: Path, damage: str) -> None:
    """A record that fails its seal is not used (the other records are); the
    module is read again, its record replaced, and the problem said once."""
    tree = SAMPLE_TREES[0]
    db = tmp_path / "c.db"
    cold = scan_tree(str(tree), jobs=1).modules
    c = ScanCache(str(db))
    scan_tree(str(tree), jobs=1, cache=c)
    keys = _keys(tree)
    served = c.get_many(keys)  # (a module overridden by updates/ is never read, so never cached)
    c.close()
    table = cache_mod.RECORDS_TABLE
    with sqlite3.connect(db) as con:
        (path, record), (_other, theirs) = con.execute(f"SELECT path, record FROM {table} ORDER BY path LIMIT 2")
        if damage == "moved":  # a well-formed, well-sealed record under another key
            con.execute(f"UPDATE {table} SET record = ? WHERE path = ?", (theirs, path))
        elif damage == "seal":
            con.execute(f"UPDATE {table} SET seal = seal + 1 WHERE path = ?", (path,))
        else:
            flipped = bytearray(record)
            flipped[len(flipped) // 2] ^= 0x10
            new: Any = {"truncated": record[:-3], "flipped-format": b"\x07" + record[1:], "text": "not a blob",
                        "garbage": b"\x01" + bytes(range(60)), "one bit": bytes(flipped),
                        "renamed": rc.pack(replace(rc.unpack(record), name="another"))}[damage]
            con.execute(f"UPDATE {table} SET record = ? WHERE path = ?", (new, path))
    con.close()
    c = ScanCache(str(db))
    got = c.get_many(keys)
    bad = [i for i, (k, _shown) in enumerate(keys) if k is not None and k[0] == path]
    assert len(bad) == 1
    assert served[bad[0]] is not None and got[bad[0]] is None
    assert [m for i, m in enumerate(got) if i not in bad] == [m for i, m in enumerate(served) if i not in bad]
    problem = c.problem
    assert problem is not None and "1 damaged module record" in problem and "\n" not in problem
    assert scan_tree(str(tree), jobs=1, cache=c).modules == cold  # read again, and stored again
    assert c.problem == problem  # said once
    c.close()
    c = ScanCache(str(db))
    assert c.get_many(keys) == served and c.problem is None
    c.close()


def test_a_module_the_format_cannot_hold_is_simply_not_cached(tmp_path: Path) -> None:
    c = ScanCache(str(tmp_path / "c.db"))
    key = ("/nonexistent/a.ko", 1, 2, 3, 4, 5)
    good = ("/nonexistent/b.ko", 1, 2, 3, 4, 5)
    c.put_many([(key, "a", replace(BASE, machine=-1)), (good, "b", BASE)])
    assert c.get_many([(key, "a"), (good, "b")]) == [None, BASE]
    assert c.problem is None
    c.close()


# --------------------------------------------------------------------------
# The cache's keys and rows in C (file_keys, pack_rows) against their twins
# --------------------------------------------------------------------------


def test_file_keys_match_file_key(tmp_path: Path) -> None:
    c = need_native()
    (tmp_path / "sub").mkdir()
    files = [tmp_path / "a.ko", tmp_path / "sub" / "b.ko", tmp_path / "sub" / "é ü.ko"]
    for i, f in enumerate(files):
        f.write_bytes(b"x" * i)
    (tmp_path / "link.ko").symlink_to(files[1])
    (tmp_path / "dangling.ko").symlink_to(tmp_path / "nowhere")
    paths = [str(f) for f in files] + [str(tmp_path / "link.ko"), str(tmp_path / "dangling.ko"),
                                       str(tmp_path / "missing.ko"), os.fsdecode(bytes(tmp_path) + b"/\xff.ko")]
    (tmp_path / os.fsdecode(b"\xff.ko")).write_bytes(b"odd name")
    got = c.file_keys(paths, cache_mod.Key)
    want = [cache_mod.file_key(p) for p in paths]
    assert got == want and cache_mod.file_keys(paths) == want
    assert got[4] is None and got[5] is None and got[6] is not None
    assert all(type(k) is cache_mod.Key for k in got if k is not None)
    assert got[3] is not None and got[3].inode == got[1].inode and got[3].path != got[1].path  # followed, own path
    # a path to make absolute first, or that os.stat refuses: the Python twin decides
    for odd in ("relative.ko", f"{tmp_path}//a.ko", f"{tmp_path}/./a.ko", f"{tmp_path}/sub/", "", "/x\0y.ko"):
        assert c.file_keys([paths[0], odd], cache_mod.Key) is DECLINED
    assert c.file_keys([], cache_mod.Key) == []
    with pytest.raises(TypeError):
        c.file_keys(paths, dict)


def test_file_keys_of_big_inode_and_device_numbers_are_signed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # the C stat's inode and device go through the same two's-complement rule as fileid.identity
    f = tmp_path / "a.ko"
    f.write_bytes(b"")
    key = need_native().file_keys([str(f)], cache_mod.Key)[0]
    st = os.stat(f)
    assert key.inode == (st.st_ino - (1 << 64) if st.st_ino >= 1 << 63 else st.st_ino)
    assert key.device == (st.st_dev - (1 << 64) if st.st_dev >= 1 << 63 else st.st_dev)
    assert (key.mtime_ns, key.ctime_ns, key.size) == (st.st_mtime_ns, st.st_ctime_ns, 0)


KEYS = st.tuples(st.one_of(ODD, st.just("/lib/modules/x.ko")), st.integers(0, 1 << 40),
                 st.integers(-(1 << 63), (1 << 63) - 1), st.integers(-(1 << 63), (1 << 63) - 1),
                 st.integers(-(1 << 63), (1 << 63) - 1), st.integers(-(1 << 63), (1 << 63) - 1)
                 ).map(lambda t: cache_mod.Key(*t))


@HYP
@given(st.lists(st.tuples(st.one_of(st.none(), KEYS), ODD, MODULES), max_size=6), st.integers(0, 1 << 20))
def test_pack_rows_matches_its_twin(entries: list[tuple[Any, str, Module]], schema: int) -> None:
    c = need_native()
    monkey = pytest.MonkeyPatch()
    with monkey.context() as m:
        m.setattr(cache_mod, "READER_SCHEMA", schema)
        want = cache_mod._rows(entries)
    got = c.pack_rows(entries, schema)
    assert got == want
    assert all(type(v) is type(w) for g, w_ in zip(got, want) for v, w in zip(g, w_))


def test_pack_rows_leaves_out_what_sqlite_or_the_format_cannot_hold() -> None:
    c = need_native()
    key = cache_mod.Key("/m/a.ko", 1, 2, 3, 4, 5)
    entries = [(None, "a.ko", BASE), (key, "bad\udcff.ko", BASE), (key._replace(path="/m/\udcff.ko"), "b.ko", BASE),
               (key, "c.ko", replace(BASE, machine=-1)), (key, "d.ko", BASE)]
    rows = c.pack_rows(entries, READER_SCHEMA)
    assert rows == cache_mod._rows(entries) and [r[7] for r in rows] == ["d.ko"]
    path, size, mtime, ctime, ino, dev, schema, shown, seal, record = rows[0]
    assert seal == cache_mod.record_seal(path, size, mtime, ctime, ino, dev, schema, shown, record)
    assert c.pack_rows([(("/m/a.ko", 1), "x", BASE)], READER_SCHEMA) is DECLINED
    assert c.pack_rows([(key, b"x", BASE)], READER_SCHEMA) is DECLINED
    with pytest.raises(TypeError):
        c.pack_rows([(key, "x")], READER_SCHEMA)


def test_the_seal_crc_matches_zlib_at_every_length() -> None:
    # pack_rows' own CRC-32 (eight bytes a step) against zlib's, across the step's edges
    c = need_native()
    key = cache_mod.Key("/m/a.ko", 1, 2, 3, 4, 5)
    for n in range(0, 40):
        m = replace(BASE, name="n" * n, modinfo=(("k", "v" * (n * 37 % 301)),))
        assert c.pack_rows([(key, "s" * n, m)], READER_SCHEMA) == cache_mod._rows([(key, "s" * n, m)])


def test_keys_rows_and_walk_do_not_leak(tmp_path: Path) -> None:
    c = need_native()
    for rel in ("kernel/a/x.ko", "kernel/b/y.ko", "extra/z.ko.xz"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"m")
    paths = [str(tmp_path / "kernel/a/x.ko"), str(tmp_path / "missing.ko")]
    key = cache_mod.Key("/m/a.ko", 1, 2, 3, 4, 5)
    big = replace(BASE, modinfo=(("description", "d" * 1000),))  # a leaked record or row shows up
    entries = [(key, "a.ko", big), (None, "b.ko", BASE), (key, "c\udcff.ko", BASE),
               (key, "d.ko", replace(BASE, machine=-1))]

    def run(n: int) -> None:
        for _ in range(n):
            c.file_keys(paths, cache_mod.Key)
            c.file_keys(["relative.ko"], cache_mod.Key)
            c.pack_rows(entries, READER_SCHEMA)
            with pytest.raises(TypeError):
                c.pack_rows([(key, "x")], READER_SCHEMA)
            c.walk(str(tmp_path), "", (b".", b".."), True)
            c.walk(str(tmp_path / "missing"), "", (), True)
            c.stat_changed([*paths, str(tmp_path)] * 200, [None, (1, 2, 3, 4, 5), (0,)] * 200, True)  # (two threads)
            c.stat_changed(["/x\0y"], [None], False)

    grown = heap_growth(run, warm=20, settle=10, rounds=300)
    assert grown < 64 * 1024, f"the heap grew by {grown} bytes"


@HYP
@given(st.lists(st.tuples(st.one_of(st.none(), KEYS), ODD, MODULES, st.sampled_from(["packed", "none", "other"])),
                max_size=6))
def test_pack_rows_takes_records_made_already(entries: list[tuple[Any, str, Module, str]]) -> None:
    c = need_native()
    made: list[Any] = []
    for key, shown, m, how in entries:
        try:
            record: bytes | None = rc.pack(m)
        except (TypeError, ValueError):
            record = None
        made.append((key, shown, m, {"packed": record, "none": None, "other": b"\x01any bytes"}[how]))
    assert c.pack_rows(made, READER_SCHEMA) == cache_mod._rows(made)
    three = [(key, shown, m) for key, shown, m, how in made]
    if all(how == "packed" for *_rest, how in entries):
        assert cache_mod._rows(made) == cache_mod._rows(three)


def test_pack_rows_declines_a_record_that_is_not_bytes() -> None:
    key = cache_mod.Key("/m/a.ko", 1, 2, 3, 4, 5)
    entry = (key, "a.ko", BASE, bytearray(rc.pack(BASE)))
    assert need_native().pack_rows([entry], READER_SCHEMA) is DECLINED
    assert cache_mod._rows([entry]) == cache_mod._rows([(key, "a.ko", BASE)])
