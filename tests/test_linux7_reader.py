"""Linux 7.1+ ``__kflagstab`` GPL flags and 6.14+ extended modversions, in both readers.

Fixtures come from tests/kobuild.py (``ksymtab_layout="flagstab"``,
``version_ext=``).  Every fixture is read by the pure-Python reader, the C
reader (which must give the very same fields, or decline where it says so)
and the pyelftools reference where the input is well-formed.  Then: damaged
tables never crash and give no flag / no CRC; the record codec keeps
``Import.ext_crc``; and depmod -e, which follows kmod 34.2 (it reads no
extended tables), sees a module with them exactly as the same module without.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

import moddeps.resolve as resolve_mod
from moddeps.errors import ModuleReadError
from moddeps.model import READER_SCHEMA, Import, Module
from moddeps.model import Export as MExport
from moddeps.native import DECLINED
from moddeps.read import elfreader
from moddeps.read import recordcodec as rc
from moddeps.read.elfreader import KSYM_FLAG_GPL_ONLY, parse_module, parse_module_pyelftools
from moddeps.resolve import KERNEL, ResolveOptions, kmod_view, resolve

from . import kobuild
from .kobuild import Export, Sym, build_ko
from .purepython import pure_python

NAME = "kernel/drivers/x/linux7.ko"
NATIVE = elfreader._elfscan
LAYOUTS = [(64, "little"), (64, "big"), (32, "little"), (32, "big")]
#: A Rust v0-mangled import, longer than the 56 (or 60) bytes a __versions name holds.
RUST = "_RNvXs4_NtNtCsdJ13ReMSUMg_6kernel3net3phyNtB5_12RegistrationNtNtNtCsbZfwWpAStWS_4core3ops4drop4Drop4drop"


def read(data: bytes, *, c_must_read: bool = True, reference: bool = True) -> Module:
    """The Python reader's Module; the C reader gives the same fields (or, without
    ``c_must_read``, may decline), and so does pyelftools when ``reference``."""
    with pure_python():
        m = parse_module(data, NAME)
    if NATIVE is not None:
        got = NATIVE.parse(data, MExport, Import)
        if c_must_read:
            assert got is not DECLINED, "the C reader gave up on a well-formed module"
        if got is not DECLINED:
            assert got == m.to_wire()[2:10]
            assert repr(NATIVE.parse(data)) == repr(m.to_wire()[2:10])  # True vs 1
            assert repr(got[:2]) == repr((m.exports, m.imports))  # NamedTuple vs tuple
        assert parse_module(data, NAME) == m
    if reference:
        ref = parse_module_pyelftools(data, NAME)
        assert (ref.exports, ref.imports) == (m.exports, m.imports)
    return m


def hostile(data: bytes) -> Module | None:
    """A damaged input: no crash, C and Python agree; None if the reader refuses it."""
    try:
        return read(data, c_must_read=False, reference=False)
    except ModuleReadError:
        if NATIVE is not None:
            assert NATIVE.parse(data) is DECLINED
        return None


def test_c_reader_is_built() -> None:
    if NATIVE is None:
        if os.environ.get("CI") == "true":
            pytest.fail("moddeps._elfscan is not built")
        pytest.skip("moddeps._elfscan is not built: only the Python reader was checked")


# --------------------------------------------------------------------------
# __kflagstab (Linux 7.1+)
# --------------------------------------------------------------------------

#: Declared in an order that differs from __ksymtab's (sorted by name), so a
#: flag read at the declaration index instead of the entry index is caught.
EXPORTS7 = [
    Export(name="zz_gpl", gpl=True, namespace="NS_A"),
    Export(name="aa_plain"),
    Export(name="mm_gpl", gpl=True),
    Export(name="bb_plain", namespace="NS_A"),
    Export(name="cc_gpl", gpl=True, namespace="NS_B"),
]


def build7(bits: int, endian: str, **kw: Any) -> bytes:
    args: dict[str, Any] = dict(bits=bits, endian=endian, ksymtab_layout="flagstab", exports=EXPORTS7,
                                crc_symbols=False, modinfo=["license=GPL"], undefined=["printk"])
    args.update(kw)
    return build_ko(**args)


def gpl_of(m: Module) -> dict[str, bool]:
    return {e.name: e.gpl_only for e in m.exports if not e.pseudo}


WANT_GPL = {x.name: x.gpl for x in EXPORTS7}


@pytest.mark.parametrize(("bits", "endian"), LAYOUTS)
@pytest.mark.parametrize("entsize", [12, 24])
def test_kflagstab_gpl_flags(bits: int, endian: str, entsize: int) -> None:
    data = build7(bits, endian, ksymtab_entry_size=entsize)
    m = read(data)
    # kmod's export list is unchanged: __ksymtab_strings (no __crc_), namespace names as pseudo exports
    assert [(e.name, e.pseudo) for e in m.exports] == [
        ("zz_gpl", False), ("NS_A", True), ("aa_plain", False), ("mm_gpl", False), ("bb_plain", False),
        ("NS_A", True), ("cc_gpl", False), ("NS_B", True)]
    assert all(e.crc is None for e in m.exports)
    assert {e.name: e.namespace for e in m.exports if not e.pseudo} == {x.name: x.namespace for x in EXPORTS7}
    if entsize == 24 and bits == 32:
        # three 32-bit pointers make 12 bytes: 24-byte entries are not a struct kernel_symbol
        assert not any(e.gpl_only for e in m.exports)
    else:
        assert gpl_of(m) == WANT_GPL
        assert not any(e.gpl_only for e in m.exports if e.pseudo)


@pytest.mark.parametrize(("bits", "endian"), LAYOUTS)
def test_kflagstab_with_crcs(bits: int, endian: str) -> None:
    """MODVERSIONS on a 7.1+ kernel: one __kcrctab, exports from __crc_*, GPL from the flags."""
    exports = [Export(name=x.name, gpl=x.gpl, namespace=x.namespace, crc=0x1000 + i) for i, x in enumerate(EXPORTS7)]
    m = read(build7(bits, endian, exports=exports, crc_symbols=True))
    assert [(e.name, e.crc, e.gpl_only, e.namespace) for e in m.exports] == [
        (x.name, x.crc, x.gpl, x.namespace) for x in exports]


def test_the_layout_of_a_real_72_module() -> None:
    """kobuild's flagstab layout is that of Debian 7.2 amd64 drivers/cxl/cxl_mem.ko (two GPL exports,
    namespace CXL): ``readelf -S -s -x __kflagstab -x __ksymtab_strings`` of the decompressed file gives
    __ksymtab 0x18 bytes, __kflagstab ``01 01``, the strings below and __ksymtab_<name> at 0 and 0xc."""
    data = build_ko(ksymtab_layout="flagstab", exports=[Export(name="devm_cxl_add_classdev", gpl=True, namespace="CXL"),
                                                         Export(name="devm_cxl_probe_mem", gpl=True, namespace="CXL")])
    elf = elfreader._Elf(data, NAME)
    assert elf.section_bytes(b"__kflagstab") == b"\x01\x01"
    assert elf.section_bytes(b"__ksymtab_strings") == b"devm_cxl_add_classdev\0CXL\0devm_cxl_probe_mem\0CXL\0"
    m = read(data)
    assert [(e.name, e.gpl_only, e.namespace, e.pseudo) for e in m.exports] == [
        ("devm_cxl_add_classdev", True, "CXL", False), ("CXL", False, None, True),
        ("devm_cxl_probe_mem", True, "CXL", False), ("CXL", False, None, True)]


def test_split_tables_still_give_gpl() -> None:
    """Up to Linux 7.0: __ksymtab_gpl, and no __kflagstab."""
    m = read(build_ko(exports=EXPORTS7, crc_symbols=False))
    assert gpl_of(m) == WANT_GPL


def test_other_flag_bits_are_not_gpl() -> None:
    data = build7(64, "little")
    loc = elfreader._Elf(data, NAME).section(b"__kflagstab")
    assert loc is not None
    flags = bytes(b ^ 0xFE for b in data[loc[0]:loc[0] + loc[1]])  # every other bit flipped
    m = read(data[:loc[0]] + flags + data[loc[0] + loc[1]:])
    assert gpl_of(m) == WANT_GPL
    assert KSYM_FLAG_GPL_ONLY == 1


def _kflagstab_damage(bits: int, endian: str) -> dict[str, bytes]:
    base = build7(bits, endian)
    top = (1 << bits) - 1
    return {
        "shorter-than-ksymtab": kobuild.corrupt_section(base, "__kflagstab", size=2),  # 60 / 2 = 30 bytes
        "longer-than-ksymtab": kobuild.corrupt_section(base, "__kflagstab", size=6),
        "empty": kobuild.corrupt_section(base, "__kflagstab", size=0),
        "past-end": kobuild.corrupt_section(base, "__kflagstab", offset=top),
        "wraps": kobuild.corrupt_section(base, "__kflagstab", offset=top - 1, size=5),
        "ksymtab-past-end": kobuild.corrupt_section(base, "__ksymtab", offset=top),
        "ksymtab-empty": kobuild.corrupt_section(base, "__ksymtab", size=0),
        "ksymtab-one-less": kobuild.corrupt_section(base, "__ksymtab", size=48),
    }


@pytest.mark.parametrize(("bits", "endian"), [(64, "little"), (32, "big")])
@pytest.mark.parametrize("case", sorted(_kflagstab_damage(64, "little")))
def test_damaged_kflagstab_gives_no_flag(bits: int, endian: str, case: str) -> None:
    m = hostile(_kflagstab_damage(bits, endian)[case])
    assert m is not None
    assert [e.name for e in m.exports if not e.pseudo] == [x.name for x in EXPORTS7]
    assert not any(e.gpl_only for e in m.exports)


@pytest.mark.parametrize(("bits", "endian"), [(64, "little"), (32, "big")])
def test_ksymtab_symbols_not_at_an_entry(bits: int, endian: str) -> None:
    """A __ksymtab_<name> between entries, past the table or in another section has no flag;
    one at an entry has that entry's flag (entries are sorted by name: index 3 is mm_gpl)."""
    where: dict[str, str | int] = {"odd": "__ksymtab", "past": "__ksymtab", "far": "__ksymtab",
                                   "text": ".text", "badsec": 999, "entry3": "__ksymtab"}
    value = {"odd": 5, "past": 60, "far": 12 * 10**6, "text": 0, "badsec": 0, "entry3": 36}
    extra = [Sym(name=f"__ksymtab_{n}", section=where[n], value=value[n], bind="local") for n in where]
    extra += [Sym(name=f"__crc_{n}", section="ABS", value=1) for n in where]
    exports = [Export(name=x.name, gpl=x.gpl, namespace=x.namespace, crc=2) for x in EXPORTS7]
    # (not for pyelftools: the reference path assumes every section index is valid)
    m = read(build7(bits, endian, exports=exports, crc_symbols=True, extra_symbols=extra), reference=False)
    assert gpl_of(m) == {**WANT_GPL, "odd": False, "past": False, "far": False, "text": False, "badsec": False,
                         "entry3": True}


# --------------------------------------------------------------------------
# Extended modversions (Linux 6.14+)
# --------------------------------------------------------------------------

def build_ext(bits: int, endian: str, *, basic: bool = True, **kw: Any) -> bytes:
    """A Rust-style module: a long import only the extended tables can hold.  With ``basic``
    (CONFIG_BASIC_MODVERSIONS) the names that fit are in __versions too, as modpost writes them."""
    ext = [("printk", 0x11111111), (RUST, 0x22222222), ("module_layout", 0x33333333), ("kfree", 0x44444444),
           ("_RNvCs_only_in_ext_tables", 0x55555555)]
    args: dict[str, Any] = dict(bits=bits, endian=endian, modinfo=["license=GPL"],
                                undefined=["printk", RUST, ("kfree", True), "no_version_at_all"],
                                version_ext=ext)
    if basic:
        args["versions"] = [(n, c) for n, c in ext if len(n) < 64 - bits // 8]
    args.update(kw)
    return build_ko(**args)


@pytest.mark.parametrize(("bits", "endian"), LAYOUTS)
def test_extended_modversions(bits: int, endian: str) -> None:
    m = read(build_ext(bits, endian))
    assert m.imports == (
        Import("printk", 0x11111111),
        Import(RUST, 0x22222222, ext_crc=True),
        Import("kfree", 0x44444444, weak=True),
        Import("no_version_at_all", None),
        Import("module_layout", 0x33333333, versions_only=True),
        Import("_RNvCs_only_in_ext_tables", 0x55555555, versions_only=True),  # in __versions (basic) too
    )


@pytest.mark.parametrize(("bits", "endian"), LAYOUTS)
def test_extended_modversions_without_basic(bits: int, endian: str) -> None:
    """CONFIG_BASIC_MODVERSIONS=n: no __versions; records of no undefined symbol come last, in table order."""
    m = read(build_ext(bits, endian, basic=False))
    assert m.imports == (
        Import("printk", 0x11111111, ext_crc=True),
        Import(RUST, 0x22222222, ext_crc=True),
        Import("kfree", 0x44444444, weak=True, ext_crc=True),
        Import("no_version_at_all", None),
        Import("module_layout", 0x33333333, versions_only=True, ext_crc=True),
        Import("_RNvCs_only_in_ext_tables", 0x55555555, versions_only=True, ext_crc=True),
    )


def test_first_extended_record_of_a_name_wins() -> None:
    data = build_ko(undefined=[RUST], version_ext=[("", 1), (RUST, 2), ("x", 3), (RUST, 4), ("x", 5), ("", 6)])
    m = read(data)
    assert m.imports == (Import(RUST, 2, ext_crc=True), Import("x", 3, versions_only=True, ext_crc=True))


def test_versions_record_is_kept_over_an_extended_one() -> None:
    """A name in both tables keeps the __versions CRC (the one kmod reads; modpost writes the same)."""
    m = read(build_ko(undefined=["printk"], versions=[("printk", 7)], version_ext=[("printk", 8)]))
    assert m.imports == (Import("printk", 7),)


def _ext_sections(names: bytes, crcs: list[int], e: str = "<") -> list[tuple[str, bytes]]:
    import struct

    return [("__version_ext_names", names), ("__version_ext_crcs", b"".join(struct.pack(e + "I", c) for c in crcs))]


DAMAGED_EXT: dict[str, tuple[bytes, list[int], list[Import]]] = {
    # (names, crcs, imports of undefined a, b, c)
    "crcs-shorter-than-names": (b"a\0b\0c\0", [1, 2], [Import("a", 1, ext_crc=True), Import("b", 2, ext_crc=True),
                                                        Import("c", None)]),
    "names-shorter-than-crcs": (b"a\0b\0", [1, 2, 3], [Import("a", 1, ext_crc=True), Import("b", 2, ext_crc=True),
                                                       Import("c", None)]),
    "no-nul-at-the-end": (b"a\0b\0c", [1, 2, 3], [Import("a", 1, ext_crc=True), Import("b", 2, ext_crc=True),
                                                  Import("c", None)]),
    "no-nul-at-all": (b"abc", [1], [Import("a", None), Import("b", None), Import("c", None)]),
    "empty-names-keep-their-index": (b"\0a\0\0c\0", [1, 2, 3, 4], [Import("a", 2, ext_crc=True), Import("b", None),
                                                                  Import("c", 4, ext_crc=True)]),
    "no-names": (b"", [1, 2], [Import("a", None), Import("b", None), Import("c", None)]),
    "no-crcs": (b"a\0b\0", [], [Import("a", None), Import("b", None), Import("c", None)]),
}


@pytest.mark.parametrize("endian", ["little", "big"])
@pytest.mark.parametrize("case", sorted(DAMAGED_EXT))
def test_damaged_extended_tables(case: str, endian: str) -> None:
    names, crcs, want = DAMAGED_EXT[case]
    e = "<" if endian == "little" else ">"
    data = build_ko(endian=endian, undefined=["a", "b", "c"], extra_sections=_ext_sections(names, crcs, e))
    m = hostile(data)
    assert m is not None
    assert m.imports == tuple(want)


def test_crcs_of_a_size_not_a_multiple_of_four() -> None:
    data = build_ko(undefined=["a", "b"], extra_sections=[("__version_ext_names", b"a\0b\0"),
                                                          ("__version_ext_crcs", b"\x01\0\0\0\x02\0")])
    assert read(data, reference=False).imports == (Import("a", 1, ext_crc=True), Import("b", None))


def test_only_one_of_the_two_tables() -> None:
    for sec in ("__version_ext_names", "__version_ext_crcs"):
        data = build_ko(undefined=["a"], extra_sections=[(sec, b"a\0\0\0")])
        assert read(data, reference=False).imports == (Import("a", None),)


@pytest.mark.parametrize(("bits", "endian"), [(64, "little"), (32, "big")])
def test_extended_tables_out_of_the_file(bits: int, endian: str) -> None:
    top = (1 << bits) - 1
    base = build_ext(bits, endian, basic=False)
    for sec in ("__version_ext_names", "__version_ext_crcs"):
        for damaged in (kobuild.corrupt_section(base, sec, offset=top), kobuild.corrupt_section(base, sec, size=top)):
            m = hostile(damaged)
            assert m is not None
            assert not any(i.ext_crc for i in m.imports)
            assert m.imports[:4] == (Import("printk", None), Import(RUST, None), Import("kfree", None, weak=True),
                                     Import("no_version_at_all", None))


def test_an_extended_name_longer_than_max_name() -> None:
    """The C reader leaves it to Python, which keeps it (it matches no symbol)."""
    long = "R" * (elfreader.MAX_NAME + 10)
    data = build_ko(undefined=[RUST], version_ext=[(long, 1), (RUST, 2)])
    m = read(data, c_must_read=False)
    assert m.imports == (Import(RUST, 2, ext_crc=True), Import(long, 1, versions_only=True, ext_crc=True))


@pytest.mark.parametrize("seed", ["flagstab", "ext"])
def test_truncated_at_every_length(seed: str) -> None:
    data = build7(64, "little", version_ext=[("printk", 5)]) if seed == "flagstab" else build_ext(32, "big")
    for n in range(0, len(data) + 1, 3):
        hostile(data[:n])


@pytest.mark.parametrize("seed", ["flagstab", "ext"])
def test_every_byte_of_the_new_sections_overwritten(seed: str) -> None:
    data = build7(32, "big") if seed == "flagstab" else build_ext(64, "little", basic=False)
    elf = elfreader._Elf(data, NAME)
    spans = [elf.section(s) for s in (b"__kflagstab", b"__version_ext_names", b"__version_ext_crcs")]
    buf = bytearray(data)
    for loc in spans:
        if loc is None:
            continue
        for pos in range(loc[0], loc[0] + loc[1]):
            for byte in (0x00, 0xFF, 0x01):
                old = buf[pos]
                buf[pos] = byte
                hostile(bytes(buf))
                buf[pos] = old


# --------------------------------------------------------------------------
# The record codec and the scan cache
# --------------------------------------------------------------------------

def test_reader_schema_is_bumped() -> None:
    assert READER_SCHEMA >= 2


def test_record_codec_keeps_ext_crc() -> None:
    m = read(build_ext(64, "little", basic=False))
    assert any(i.ext_crc for i in m.imports)
    blob = rc.py_pack(m)
    assert rc.py_unpack(blob) == m
    assert [i.ext_crc for i in rc.py_unpack(blob).imports] == [i.ext_crc for i in m.imports]
    if rc._native is not None:
        assert rc._native.pack(m) == blob
        assert rc._native.unpack(blob, Module, MExport, Import) == m
        assert rc._native.unpack_many([blob, blob], Module, MExport, Import, {}) == [m, m]
    assert Module.from_wire(m.to_wire()) == m


# --------------------------------------------------------------------------
# depmod -e: as kmod 34.2 reads the module (no extended tables)
# --------------------------------------------------------------------------

def _provider() -> bytes:
    return build_ko(modinfo=["name=prov"], exports=[Export(name=RUST, crc=0x22222222),
                                                    Export(name="_RNvCs_only_in_ext_tables", crc=9)])


@pytest.mark.parametrize("pure_binder", [False, True])
@pytest.mark.parametrize("basic", [True, False])
def test_depmod_e_sees_what_kmod_34_sees(pure_binder: bool, basic: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The module with extended tables resolves exactly as the same module without them
    (through the C binder of moddeps.depmod._trie, and through resolve's Python one)."""
    if pure_binder:
        monkeypatch.setattr(resolve_mod, "load", lambda name: None)
    with_ext = read(build_ext(64, "little", basic=basic))
    without = read(build_ext(64, "little", basic=basic, version_ext=()))
    assert with_ext.imports != without.imports
    prov = read(_provider())
    table = {"printk": 0x11111111, "kfree": 0x44444444, "module_layout": 0x33333333}
    paths = ["/lib/modules/x/a.ko", "/lib/modules/x/prov.ko"]
    for opts in (ResolveOptions(), ResolveOptions(kernel_table=table, check_crcs=True, warn=True)):
        got = resolve([with_ext, prov], paths, opts)
        want = resolve([without, prov], paths, opts)
        assert got == want
    # what that is: the Rust import's CRC counts as 0 (kmod's crc for a symbol without a
    # __versions record), so it disagrees with its provider's; the record of no undefined
    # symbol binds nothing and is unknown to nobody
    assert (0, RUST) in got.mismatched
    assert "WARNING: /lib/modules/x/a.ko disagrees about version of symbol " + RUST in got.messages
    assert got.deps[0] == (1,)
    # (with basic modversions the short one has a __versions record, which kmod binds)
    assert got.edge_symbols[0] == {1: (RUST, "_RNvCs_only_in_ext_tables") if basic else (RUST,)}
    assert all(name != "_RNvCs_only_in_ext_tables" for _, name in got.unknown)
    assert got.owners["printk"] == (KERNEL, 0x11111111)


def test_kmod_view() -> None:
    plain = Module("p", "p.ko", imports=(Import("a", 1),))
    ext = Module("e", "e.ko", imports=(Import("a", 1), Import("b", 2, ext_crc=True), Import("w", 3, True, False, True),
                                        Import("c", 4, versions_only=True), Import("d", 5, False, True, True)))
    mods = [plain, ext]
    assert kmod_view([plain]) == [plain] and kmod_view([plain])[0] is plain
    view = kmod_view(mods)
    assert view[0] is plain
    assert view[1].imports == (Import("a", 1), Import("b", None), Import("w", None, True),
                               Import("c", 4, versions_only=True))
    assert view[1].name == "e" and mods[1] is ext  # the input is left alone
