"""The C module reader (``moddeps._elfscan``) against the pure-Python reader.

``_elfscan.parse(data)`` must give exactly the fields of the Module that
:func:`moddeps.read.elfreader.parse_module` builds (in the ``Module.to_wire()``
form), or DECLINED -- and DECLINED is only allowed where the input is not a
plain, well-formed module (the Python reader then decides).  Checked here:

* every module of ``sample_modules/`` and every well-formed fixture of the
  ELF writer (all classes, byte orders and the machines the tests use, kmod's
  quirks) is read by C, with the same result as Python;
* hostile input (truncation at every length, every byte overwritten, random
  mutations, the corrupt fixtures and the fuzz corpus) never crashes it, and
  whatever it returns equals the Python result;
* the hook in ``parse_module`` gives the same Module, and the C code leaks
  neither references nor memory.

In CI (``CI=true``) the extension must be built: the module fails instead of
being skipped.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

import moddeps.read.elfreader as elfreader
from moddeps.errors import ModuleReadError
from moddeps.model import Export as MExport
from moddeps.model import Import, Module
from moddeps.native import DECLINED
from moddeps.read.compression import CompressedDataError
from moddeps.read.elfreader import load_bytes, parse_module

from . import kobuild
from .fuzz import CORPUS, fuzz
from .fuzz.test_fuzz_reader import mutated, well_formed
from .guardpage import MPROTECT, guarded
from .kobuild import Export, Sym, build_ko
from .leakcheck import heap_growth
from .purepython import pure_python

try:
    from moddeps import _elfscan as native
except ImportError:  # pragma: no cover - depends on the build
    if os.environ.get("CI") == "true":
        pytest.fail("moddeps._elfscan is not built; CI must build it (python setup.py build_ext --inplace)",
                    pytrace=False)
    pytest.skip("moddeps._elfscan is not built (python setup.py build_ext --inplace)", allow_module_level=True)

REPO = Path(__file__).resolve().parent.parent
SAMPLE_KOS = sorted(p for p in (REPO / "sample_modules").rglob("*.ko*") if p.is_file())
NAME = "kernel/drivers/x/foo-bar.ko"


# --------------------------------------------------------------------------
# The two readers
# --------------------------------------------------------------------------


def wire_fields(m: Module) -> tuple[object, ...]:
    """The fields parse() returns, from a Module (Module.to_wire() without name, path, compression, errors)."""
    w = m.to_wire()
    return w[2:10]


def python_result(data: bytes) -> tuple[object, ...] | None:
    """The pure-Python reader's fields, or None when it refuses the input."""
    with pure_python():
        try:
            return wire_fields(parse_module(data, NAME))
        except ModuleReadError:
            return None


def strict(value: object) -> str:
    """A form of a result where True and 1, or a NamedTuple and a tuple, differ."""
    return repr(value)




def check(data: bytes, *, must_read: bool = False) -> tuple[object, ...] | None:
    """C against Python on one input; returns the C result."""
    got = native.parse(data)
    if MPROTECT is not None:
        with guarded(data) as view:
            assert native.parse(view) == got
    want = python_result(data)
    if want is None:
        assert got is DECLINED, "C read an input that the Python reader refuses"
        return None
    if must_read:
        assert got is not DECLINED, "C gave up on a plain, well-formed module"
    if got is not DECLINED:
        assert got == want
        assert strict(got) == strict(want)
        typed = native.parse(data, MExport, Import)
        assert typed == got
        assert all(type(e) is MExport for e in typed[0]) and all(type(i) is Import for i in typed[1])
    return got


# --------------------------------------------------------------------------
# Well-formed modules: C must read them, and agree
# --------------------------------------------------------------------------


def test_extension_is_active() -> None:
    """Where the extension is built, parse_module uses it (unless MODDEPS_PURE switches it off)."""
    if os.environ.get("MODDEPS_PURE", "") in ("", "0"):
        assert elfreader._elfscan is native


@pytest.mark.parametrize("path", SAMPLE_KOS, ids=lambda p: str(p.relative_to(REPO / "sample_modules")))
def test_sample_modules(path: Path) -> None:
    data, kind = load_bytes(path)
    got = check(data, must_read=True)
    assert got is not None
    # the hook: the same Module as the pure-Python reader, name, path and compression included
    hooked = parse_module(data, str(path), compression=kind)
    with pure_python():
        assert hooked == parse_module(data, str(path), compression=kind)


MACHINES = [(62, 64), (3, 32), (183, 64), (40, 32), (21, 64), (22, 64), (243, 64), (8, 64), (8, 32), (20, 32),
            (2, 32), (43, 64), (258, 64), (50, 64), (0, 64), (0xFFFF, 32)]


def rich(bits: int = 64, endian: str = "little", machine: int = 62, **kw: Any) -> bytes:
    args: dict[str, Any] = dict(
        bits=bits, endian=endian, machine=machine,
        modinfo=[("license", "GPL"), ("alias", "pci:v00001234d*"), "depends=", ("alias", "foo-bar"), "intree=Y",
                 ("import_ns", "NS_A"), "novalue", "a=b=c", "=x"],
        exports=[Export(name="plain_fn", crc=0x1234ABCD), Export(name="gpl_fn", gpl=True, crc=0xDEADBEEF),
                 Export(name="ns_fn", gpl=True, namespace="NS_B", crc=7), Export(name="ns2_fn", namespace="NS_B"),
                 Export(name="nocrc_fn")],
        undefined=["printk", ("maybe_there", True), "kfree", "kfree", "printk"],
        versions=[("module_layout", 0xBCE1A965), ("printk", 0x11111111), ("kfree", 0x22222222), ("printk", 3),
                  ("", 9)],
        extra_symbols=[Sym(name="local_thing", section=".text", bind="local", type="func"),
                       Sym(name="weak_def", section=".text", bind="weak")],
    )
    args.update(kw)
    return build_ko(**args)


@pytest.mark.parametrize(("machine", "bits"), MACHINES)
@pytest.mark.parametrize("endian", ["little", "big"])
@pytest.mark.parametrize("crc_mode", ["section", "abs"])
def test_every_layout(machine: int, bits: int, endian: str, crc_mode: str) -> None:
    got = check(rich(bits, endian, machine, crc_mode=crc_mode), must_read=True)
    assert got is not None
    assert got[5:] == (machine, bits, endian)


def _marked(data: bytes, marks: dict[bytes, bytes]) -> bytes:
    """Replace placeholder bytes (same length) everywhere in an image: raw bytes in names."""
    for old, new in marks.items():
        assert len(old) == len(new) and old in data
        data = data.replace(old, new)
    return data


class Build:
    """build_ko for one class and byte order; ``top`` is the largest st_value there."""

    def __init__(self, bits: int = 64, endian: str = "little") -> None:
        self.bits, self.endian, self.top = bits, endian, (1 << bits) - 1

    def __call__(self, **kw: Any) -> bytes:
        return build_ko(bits=self.bits, endian=self.endian, **kw)


#: Well-formed fixtures, made with a build_ko of a given class and byte order.
WELL_FORMED: dict[str, Callable[[Build], bytes]] = {
    "empty": lambda b: b(),
    "no-init-no-exit": lambda b: b(init=False, exit=False),
    "init-only": lambda b: b(exit=False),
    "ksymtab-strings-fallback": lambda b: b(
        exports=[Export(name="a_fn"), Export(name="b_fn", namespace="MY_NS", gpl=True), Export(name="MY_NS")],
        crc_symbols=False),
    "fallback-namespace-equals-export": lambda b: b(
        exports=[Export(name="NS1", namespace="NS2"), Export(name="x", namespace="NS1")], crc_symbols=False),
    "fallback-no-strings": lambda b: b(exports=[Export(name="a_fn")], crc_symbols=False,
                                            ksymtab_strings=False),
    "crc-outside-section": lambda b: b(extra_symbols=[Sym(name="__crc_weird", section=".text", value=10_000),
                                                           Sym(name="__crc_edge", section=".text", value=12),
                                                           Sym(name="__crc_edge2", section=".text", value=13)]),
    "crc-bad-sections": lambda b: b(extra_symbols=[Sym(name="__crc_big", section=999),
                                                        Sym(name="__crc_common", section=0xFFF2),
                                                        Sym(name="__crc_xindex", section=0xFFFF),
                                                        Sym(name="__crc_undef", value=b.top),
                                                        Sym(name="__crc_", section="ABS", value=5)]),
    "crc-wide-abs": lambda b: b(extra_symbols=[Sym(name="__crc_wide", section="ABS", value=b.top)]),
    "undefined-specials": lambda b: b(undefined=["__crc_u", "__ksymtab_u", "__kstrtabns_u", "init_module"]),
    "gpl-future": lambda b: b(
        exports=[Export(name="f", crc=1)],
        extra_sections=[("__ksymtab_gpl_future", b"\0" * 12)],
        extra_symbols=[Sym(name="__ksymtab_f", section="__ksymtab_gpl_future")]),
    "namespace-past-section": lambda b: b(
        exports=[Export(name="f", crc=1, namespace="NS")],
        extra_symbols=[Sym(name="__kstrtabns_g", section="__ksymtab_strings", value=1 << 20),
                       Sym(name="__kstrtabns_h", section=".gnu.linkonce.this_module", value=0),
                       Sym(name="__kstrtabns_j", section="__ksymtab_strings", value=b.top),
                       Sym(name="__kstrtabns_i", section=".modinfo", value=0),
                       Sym(name="__crc_i", section="ABS", value=3)],
        modinfo=["license=GPL"]),
    "duplicate-sections": lambda b: b(
        modinfo=["a=1"], undefined=["u"], versions=[("u", 5)],
        extra_sections=[(".modinfo", b"b=2\0"), ("__versions", b"\0" * 64), ("__ksymtab_strings", b"zz\0")]),
    "modinfo-quirks": lambda b: b(extra_sections=[(".modinfo", b"\0\0a=1\0\0\0b\0=x\0c=d=e")]),
    "modinfo-one-byte": lambda b: b(extra_sections=[(".modinfo", b"\0\0x")]),
    "modinfo-all-nul": lambda b: b(extra_sections=[(".modinfo", b"\0\0\0")]),
    "modinfo-empty": lambda b: b(extra_sections=[(".modinfo", b"")]),
    "modinfo-unterminated": lambda b: b(extra_sections=[(".modinfo", b"a=1\0b=2")]),
    "versions-only": lambda b: b(versions=[("module_layout", 1), ("x" * 56, 2)]),
    "versions-empty-section": lambda b: b(undefined=["a"], extra_sections=[("__versions", b"")]),
    "versions-full-width-names": lambda b: b(
        undefined=["y" * 56], versions=[("y" * 56, 2), ("z" * 55, 3)]),
    "many-symbols": lambda b: b(
        exports=[Export(name=f"e{i}", crc=i, gpl=i % 3 == 0, namespace=f"N{i % 5}" if i % 2 else None)
                 for i in range(300)],
        undefined=[(f"u{i}", i % 7 == 0) for i in range(500)],
        versions=[(f"u{i}", i) for i in range(0, 700, 2)]),
    "long-name-4096": lambda b: b(undefined=["A" * 4096], exports=[Export(name="B" * 4090, crc=1)]),
    "non-utf8-names": lambda b: _marked(
        b(undefined=["sym_MARK1", "MARK2"], exports=[Export(name="exp_MARK3", crc=1, namespace="NS_MARK4")],
          modinfo=[b"alias=MARK5", b"MARK6=v"], versions=[("MARK2", 3)]),
        {b"MARK1": b"\xc3\x28\xff\x80Z", b"MARK2": b"\xed\xa0\x80\xf4\x90", b"MARK3": b"\xe2\x82=\xc0\xaf",
         b"MARK4": b"\xf0\x9f\x98\x80\xfe", b"MARK5": b"\xe2\x82\x3d\xff\xc3", b"MARK6": b"\xc3\xa9\x80=\xe2"}),
    "all-symbols-undefined-weak": lambda b: b(undefined=[(f"w{i}", True) for i in range(20)]),
    # Linux 7.1+: one __ksymtab and a __kflagstab byte per entry
    "kflagstab": lambda b: b(
        ksymtab_layout="flagstab", crc_symbols=False,
        exports=[Export(name="z_gpl", gpl=True, namespace="NS"), Export(name="a_fn"), Export(name="m_gpl", gpl=True)]),
    "kflagstab-crcs-24": lambda b: b(
        ksymtab_layout="flagstab", ksymtab_entry_size=24,
        exports=[Export(name="z_gpl", gpl=True, crc=1), Export(name="a_fn", crc=2)]),
    "kflagstab-duplicate-section": lambda b: b(
        ksymtab_layout="flagstab", exports=[Export(name=f"e{i}", gpl=i % 2 == 0, crc=i) for i in range(4)],
        extra_sections=[("__kflagstab", b"\x01")]),
    # Linux 6.14+: extended modversions
    "version-ext": lambda b: b(
        undefined=["printk", "R" * 80, ("w" * 70, True), "none"], versions=[("printk", 1), ("module_layout", 2)],
        version_ext=[("printk", 1), ("R" * 80, 3), ("w" * 70, 4), ("module_layout", 2), ("only_ext", 5),
                     ("R" * 80, 6), ("", 7)]),
    "version-ext-damaged": lambda b: b(
        undefined=["a", "b", "c"],
        extra_sections=[("__version_ext_names", b"a\0\0b\0c"), ("__version_ext_crcs", b"\1\0\0\0\2\0\0\0\3\0\0\0\4")]),
}


@pytest.mark.parametrize("case", sorted(WELL_FORMED))
@pytest.mark.parametrize("layout", [(64, "little"), (32, "big"), (64, "big"), (32, "little")])
def test_well_formed_fixtures(case: str, layout: tuple[int, str]) -> None:
    check(WELL_FORMED[case](Build(*layout)), must_read=True)


def test_full_width_versions_names_32_bit() -> None:
    check(build_ko(bits=32, undefined=["y" * 60], versions=[("y" * 60, 2), ("z" * 59, 3)]), must_read=True)


def _set_symbol_type(data: bytes, name: bytes, stt: int) -> bytes:
    """Set st_info's type of every symbol called ``name`` (SPARC STT_REGISTER is 13)."""
    bits = 64 if data[4] == 2 else 32
    loc = _section(data, b".symtab")
    strtab = _section(data, b".strtab")
    assert loc and strtab
    ent, info_at = (24, 4) if bits == 64 else (16, 12)
    bo: Literal["little", "big"] = "little" if data[5] == 1 else "big"
    out = bytearray(data)
    for i in range(loc[1] // ent):
        at = loc[0] + i * ent
        off = int.from_bytes(data[at : at + 4], bo)
        start = strtab[0] + off
        if data[start : data.index(b"\0", start)] == name:
            out[at + info_at] = (out[at + info_at] & 0xF0) | stt
    return bytes(out)


def _section(data: bytes, name: bytes) -> tuple[int, int] | None:
    g = kobuild._geometry(data)
    try:
        _, i = kobuild._find_section(data, name.decode())
    except ValueError:
        return None
    hdr = kobuild._shdr(data, g, i)
    return hdr["sh_offset"], hdr["sh_size"]


@pytest.mark.parametrize("machine", [2, 43, 62])
def test_sparc_register_symbols(machine: int) -> None:
    data = _set_symbol_type(build_ko(machine=machine, endian="big", undefined=["real", "%g2"]), b"%g2", 13)
    got = check(data, must_read=True)
    assert got is not None
    names = [i[0] for i in got[1]]  # type: ignore[attr-defined]
    assert names == (["real"] if machine != 62 else ["real", "%g2"])


@fuzz(150)
@given(well_formed())
def test_random_well_formed_modules(data: bytes) -> None:
    check(data, must_read=True)


def test_bytes_like_inputs(tmp_path: Path) -> None:
    data = rich()
    want = native.parse(data)
    assert want is not DECLINED
    assert native.parse(bytearray(data)) == want
    assert native.parse(memoryview(data)) == want
    p = tmp_path / "m.ko"
    p.write_bytes(data)
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert native.parse(mm) == want
    with pytest.raises(TypeError):
        native.parse("not bytes")  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        native.parse(data, dict, None)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        native.parse(data, None, 5)  # type: ignore[call-overload]
    assert native.parse(data, tuple, tuple) == want
    assert native.parse(data, export_type=None, import_type=None) == want


# --------------------------------------------------------------------------
# Hostile input: never a crash, and any result is the Python one
# --------------------------------------------------------------------------

HOSTILE_SEEDS: dict[str, Callable[[], bytes]] = {
    "rich64le": lambda: rich(64, "little"),
    "rich32be": lambda: rich(32, "big", machine=20),
    "fallback64be": lambda: build_ko(endian="big", exports=[Export(name="a", namespace="N"), Export(name="N")],
                                     crc_symbols=False, undefined=["x"], modinfo=["a=b"]),
    "sample": lambda: SAMPLE_KOS[0].read_bytes(),
    "linux7-64le": lambda: build_ko(
        ksymtab_layout="flagstab", crc_symbols=False, undefined=["printk", "R" * 70],
        exports=[Export(name="b", gpl=True, namespace="N"), Export(name="a")],
        version_ext=[("printk", 1), ("R" * 70, 2), ("module_layout", 3)]),
}


@pytest.mark.parametrize("seed", sorted(HOSTILE_SEEDS))
def test_truncated_at_every_length(seed: str) -> None:
    data = HOSTILE_SEEDS[seed]()
    for n in range(len(data) + 1):
        check(data[:n])


@pytest.mark.parametrize("seed", ["rich64le", "rich32be"])
@pytest.mark.parametrize("byte", [0x00, 0xFF, 0x80])
def test_every_byte_overwritten(seed: str, byte: int) -> None:
    data = HOSTILE_SEEDS[seed]()
    buf = bytearray(data)
    for pos in range(len(data)):
        old = buf[pos]
        if old == byte:
            continue
        buf[pos] = byte
        check(bytes(buf))
        buf[pos] = old


def _top(data: bytes) -> int:
    """The largest offset or size of the image's class."""
    return (1 << (64 if data[4] == 2 else 32)) - 1


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda d: b"",
    "tiny": lambda d: b"\x7fEL",
    "header-only": lambda d: d[:64],
    "bad-class": lambda d: kobuild.corrupt_header(d, "EI_CLASS", 7),
    "bad-data": lambda d: kobuild.corrupt_header(d, "EI_DATA", 9),
    "bad-shentsize": lambda d: kobuild.corrupt_header(d, "e_shentsize", 32),
    "shoff-past-end": lambda d: kobuild.corrupt_header(d, "e_shoff", _top(d)),
    "shoff-wraps": lambda d: kobuild.corrupt_header(d, "e_shoff", _top(d) - 63),
    "shnum-0": lambda d: kobuild.corrupt_header(d, "e_shnum", 0),
    "absurd-shnum": lambda d: kobuild.corrupt_header(d, "e_shnum", 65535),
    "shstrndx-out-of-range": lambda d: kobuild.corrupt_header(d, "e_shstrndx", 999),
    "shstrndx-xindex": lambda d: kobuild.corrupt_header(d, "e_shstrndx", 0xFFFF),
    "shstrndx-0": lambda d: kobuild.corrupt_header(d, "e_shstrndx", 0),
    "shstrtab-past-end": lambda d: kobuild.corrupt_section(d, ".shstrtab", offset=1 << 30),
    "shstrtab-wraps": lambda d: kobuild.corrupt_section(d, ".shstrtab", offset=_top(d) - 3, size=8),
    "shstrtab-zeroed-size": lambda d: kobuild.corrupt_section(d, ".shstrtab", size=0),
    "shstrtab-no-nul": lambda d: kobuild.corrupt_section(d, ".shstrtab", size=3),
    "strtab-zeroed": lambda d: kobuild.zero_section(d, ".strtab"),
    "strtab-size-2": lambda d: kobuild.corrupt_section(d, ".strtab", size=2),
    "strtab-size-0": lambda d: kobuild.corrupt_section(d, ".strtab", size=0),
    "strtab-past-end": lambda d: kobuild.corrupt_section(d, ".strtab", offset=_top(d) - 7),
    "symtab-past-end": lambda d: kobuild.corrupt_section(d, ".symtab", offset=1 << 31),
    "symtab-wraps": lambda d: kobuild.corrupt_section(d, ".symtab", offset=_top(d) - 23, size=48),
    "symtab-size-25": lambda d: kobuild.corrupt_section(d, ".symtab", size=25),
    "symtab-size-0": lambda d: kobuild.corrupt_section(d, ".symtab", size=0),
    "symtab-is-strtab": lambda d: kobuild.corrupt_section(d, ".symtab", offset=_section(d, b".strtab")[0]),  # type: ignore[index]
    "versions-huge": lambda d: kobuild.corrupt_section(d, "__versions", size=1 << 20),
    "versions-65": lambda d: kobuild.corrupt_section(d, "__versions", size=65),
    "versions-zeroed": lambda d: kobuild.zero_section(d, "__versions"),
    "modinfo-past-end": lambda d: kobuild.corrupt_section(d, ".modinfo", offset=_top(d) - 7),
    "kcrctab-2-bytes": lambda d: kobuild.corrupt_section(d, "__kcrctab", size=2),
    "kcrctab-zeroed-size": lambda d: kobuild.corrupt_section(d, "__kcrctab", size=0),
    "kcrctab-past-end": lambda d: kobuild.corrupt_section(d, "__kcrctab", offset=_top(d)),
    "ksymtab-strings-past-end": lambda d: kobuild.corrupt_section(d, "__ksymtab_strings", offset=_top(d)),
    "ksymtab-gpl-past-end": lambda d: kobuild.corrupt_section(d, "__ksymtab_gpl", offset=_top(d)),
    "strtab-filled-A": lambda d: _fill(d, b".strtab", 0x41),
    "shstrtab-filled-A": lambda d: _fill(d, b".shstrtab", 0x41),
    "modinfo-filled-0": lambda d: _fill(d, b".modinfo", 0),
    "ksymtab-strings-filled-A": lambda d: _fill(d, b"__ksymtab_strings", 0x41),
    "versions-filled-A": lambda d: _fill(d, b"__versions", 0x41),
}


def _fill(data: bytes, name: bytes, byte: int) -> bytes:
    loc = _section(data, name)
    assert loc is not None
    out = bytearray(data)
    out[loc[0] : loc[0] + loc[1]] = bytes([byte]) * loc[1]
    return bytes(out)


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
@pytest.mark.parametrize("layout", [(64, "little"), (32, "big")])
def test_corrupt_fixtures(case: str, layout: tuple[int, str]) -> None:
    check(CORRUPTIONS[case](rich(*layout)))


def test_long_names_are_left_to_python() -> None:
    """Names longer than MAX_NAME: the Python reader refuses special ones; C never reads past them."""
    for data in (build_ko(undefined=["A" * 4097]), build_ko(exports=[Export(name="B" * 4100, crc=1)]),
                 build_ko(extra_symbols=[Sym(name="local_" + "C" * 5000, section=".text", bind="local")])):
        check(data)


def test_name_offsets_outside_strtab_are_left_to_python() -> None:
    data = build_ko(undefined=["a", "b"], exports=[Export(name="f", crc=1)])
    for size in range(0, 12):
        check(kobuild.corrupt_section(data, ".strtab", size=size))


def _corpus_inputs() -> list[Path]:
    return sorted(p for p in (CORPUS / "reader").iterdir() if p.is_file())


@pytest.mark.parametrize("path", _corpus_inputs(), ids=lambda p: p.name)
def test_fuzz_corpus(path: Path) -> None:
    raw = path.read_bytes()
    check(raw)
    try:
        data, _ = load_bytes(path)
    except (ModuleReadError, CompressedDataError):
        return
    check(data)


@fuzz(400)
@given(mutated())
def test_mutated_modules(case: tuple[str, bytes]) -> None:
    check(case[1])


@st.composite
def flipped(draw: st.DrawFn) -> bytes:
    """A seed with a few random bytes replaced anywhere."""
    data = bytearray(HOSTILE_SEEDS[draw(st.sampled_from(sorted(HOSTILE_SEEDS)))]())
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    return bytes(data)


@fuzz(400)
@given(flipped())
def test_random_byte_flips(data: bytes) -> None:
    check(data)


@fuzz(200)
@given(st.sampled_from([b"\x7fELF\x01\x01\x01", b"\x7fELF\x02\x01\x01", b"\x7fELF\x02\x02\x01",
                        b"\x7fELF\x01\x02\x01"]), st.binary(max_size=600))
def test_random_bytes_after_an_elf_ident(prefix: bytes, body: bytes) -> None:
    check(prefix + body)


# --------------------------------------------------------------------------
# The seam (moddeps/native.py): declined input falls back, errors propagate
# --------------------------------------------------------------------------


def test_declined_input_falls_back_to_python() -> None:
    """What the C reader declines (a module without a symbol table, a pre-4.3 signature) the Python
    reader reads, through parse_module and signature_facts."""
    from moddeps.signature import _STRUCT, SIG_MAGIC, scan_facts

    data = build_ko(with_symtab=False)
    assert native.parse(data) is DECLINED
    with pure_python():
        want = parse_module(data, NAME)
    assert parse_module(data, NAME) == want
    x509 = rich() + b"signer" + b"\x01\x02" + b"SIG" + _STRUCT.pack(1, 4, 1, 6, 2, 3) + SIG_MAGIC
    assert native.sig_facts(x509) is DECLINED
    assert elfreader.signature_facts(x509) == scan_facts(x509) is not None


def test_errors_raised_in_c_reach_the_caller() -> None:
    """A call the C reader refuses raises its TypeError; nothing takes it for a declined input."""
    data = rich()
    for args in (("not bytes",), (data, dict, None), (data, None, 5), (data, None, None, [])):
        with pytest.raises(TypeError):
            native.parse(*args)
    with pytest.raises(TypeError):
        native.sig_facts(3)
    if elfreader._elfscan is not None:  # the C reader is on (not MODDEPS_PURE): its error, not the Python one
        with pytest.raises(TypeError, match="memo must be a dict or None"):
            parse_module(data, NAME, memo=[])  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# No leaks
# --------------------------------------------------------------------------


def test_no_leaks() -> None:
    """Repeated calls (read, given up, refused, bad arguments) keep the heap flat (references and PyMem)."""
    inputs: list[bytes | bytearray] = [rich(), rich(32, "big"), build_ko(with_symtab=False), b"\x7fELF" + b"\0" * 60,
              CORRUPTIONS["versions-65"](rich()), WELL_FORMED["ksymtab-strings-fallback"](Build()),
              WELL_FORMED["non-utf8-names"](Build()), bytearray(rich())]

    def run(n: int) -> None:
        for _ in range(n):
            for data in inputs:
                native.parse(data)
                native.parse(data, MExport, Import)
            with pytest.raises(TypeError):
                native.parse(3)  # type: ignore[call-overload]

    grown = heap_growth(run, warm=50, settle=20, rounds=1000)
    assert grown < 64 * 1024, f"the heap grew by {grown} bytes over 8,000 calls"
