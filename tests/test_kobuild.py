"""Tests for the test-only ELF writer tests/kobuild.py.

The images are checked with pyelftools and with a few independent struct
reads below (deliberately not reusing kobuild's own parser).
"""

from __future__ import annotations

import gzip
import io
import lzma
import struct
from pathlib import Path
from typing import Any

import pytest
import zstandard
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from tests.kobuild import Export, Sym, build_ko, compress, corrupt_header, corrupt_section, truncate, zero_section

MACHINES = {"x86_64": 62, "i386": 3, "aarch64": 183, "arm": 40, "ppc64": 21, "s390": 22, "riscv": 243, "mips": 8}
REAL_CRC7 = Path("/work/trees/cloud-amd64/lib/modules/6.1.0-50-cloud-amd64/kernel/lib/crc7.ko")


# ---------------------------------------------------------------------------
# independent raw readers


def raw_header(data: bytes) -> dict[str, Any]:
    bits = {1: 32, 2: 64}[data[4]]
    e = {1: "<", 2: ">"}[data[5]]
    w = "Q" if bits == 64 else "I"
    names = ("e_type", "e_machine", "e_version", "e_entry", "e_phoff", "e_shoff", "e_flags", "e_ehsize",
             "e_phentsize", "e_phnum", "e_shentsize", "e_shnum", "e_shstrndx")
    vals = struct.unpack_from(e + "HHI" + w * 3 + "IHHHHHH", data, 16)
    return {"bits": bits, "e": e, **dict(zip(names, vals, strict=True))}


def raw_sections(data: bytes) -> dict[str, dict[str, int]]:
    h = raw_header(data)
    fmt = h["e"] + ("IIQQQQIIQQ" if h["bits"] == 64 else "IIIIIIIIII")
    keys = ("name", "type", "flags", "addr", "offset", "size", "link", "info", "align", "entsize")
    hdrs = [dict(zip(keys, struct.unpack_from(fmt, data, h["e_shoff"] + i * h["e_shentsize"]), strict=True))
            for i in range(h["e_shnum"])]
    strs = hdrs[h["e_shstrndx"]]
    out = {}
    for i, s in enumerate(hdrs):
        at = strs["offset"] + s["name"]
        name = data[at:data.index(b"\0", at)].decode()
        out[name] = {**s, "index": i}
    return out


def elf(data: bytes) -> ELFFile:
    return ELFFile(io.BytesIO(data))


def sec(f: ELFFile, name: str) -> Any:
    """Section ``name`` of ``f``, which must exist."""
    found = f.get_section_by_name(name)
    assert found is not None, name
    return found


def symbols(data: bytes) -> list[tuple[str, str, str, str]]:
    """(name, bind, type, section name or SHN_*) for each symbol after NULL."""
    f = elf(data)
    st = sec(f, ".symtab")
    out = []
    for s in list(st.iter_symbols())[1:]:
        shn = s["st_shndx"]
        where = shn
        if isinstance(shn, int):
            where = f.get_section(shn).name if shn < f.num_sections() else str(shn)
        out.append((s.name, s["st_info"]["bind"][4:].lower(), s["st_info"]["type"][4:].lower(), where))
    return out


def sym(data: bytes, name: str) -> Any:
    found = sec(elf(data), ".symtab").get_symbol_by_name(name)
    assert found is not None and len(found) == 1, name
    return found[0]


def section_bytes(data: bytes, name: str) -> bytes:
    return bytes(sec(elf(data), name).data())


# ---------------------------------------------------------------------------
# a full module over the whole matrix

EXPORTS = [
    Export(name="zeta_fn", crc=0x11223344),
    Export(name="alpha_fn", crc=0xDEADBEEF),
    Export(name="gpl_thing", gpl=True, namespace="MY_NS", crc=0x0BADF00D),
]
MODINFO: list[str | tuple[str, str]] = [
    "license=GPL", ("name", "demo"), ("depends", "a,b"), "vermagic=6.1.0 SMP mod_unload modversions ",
]
VERSIONS = [("module_layout", 0x82164FBB), ("printk", 0x92997ED8)]


def full(bits: int, endian: str, machine: int) -> bytes:
    return build_ko(
        bits=bits, endian=endian, machine=machine, modinfo=MODINFO, exports=EXPORTS,
        undefined=["printk", ("maybe_there", True)], versions=VERSIONS,
        extra_symbols=[Sym(name="local_obj", section=".data.x", value=4, size=8, bind="local", type="object")],
        extra_sections=[(".data.x", b"0123456789ab")],
    )


@pytest.mark.parametrize("machine", MACHINES.values(), ids=MACHINES.keys())
@pytest.mark.parametrize("endian", ["little", "big"])
@pytest.mark.parametrize("bits", [32, 64])
def test_full_module_matrix(bits: int, endian: str, machine: int) -> None:
    data = full(bits, endian, machine)
    f = elf(data)
    assert f.elfclass == bits
    assert f.little_endian == (endian == "little")
    assert f["e_type"] == "ET_REL"
    assert f["e_machine"] == ELFFile(io.BytesIO(data))["e_machine"]
    h = raw_header(data)
    assert h["e_machine"] == machine
    assert h["e_shentsize"] == (64 if bits == 64 else 40)
    assert h["e_ehsize"] == (64 if bits == 64 else 52)
    assert (h["e_phoff"], h["e_phnum"], h["e_phentsize"]) == (0, 0, 0)
    assert f.get_section(h["e_shstrndx"]).name == ".shstrtab"

    assert [s.name for s in f.iter_sections()] == [
        "", ".text", "__ksymtab", "__ksymtab_gpl", "__kcrctab", "__kcrctab_gpl", "__ksymtab_strings",
        ".modinfo", "__versions", ".data.x", ".gnu.linkonce.this_module", ".symtab", ".strtab", ".shstrtab",
    ]
    symtab = sec(f, ".symtab")
    assert symtab["sh_entsize"] == (24 if bits == 64 else 16)
    assert f.get_section(symtab["sh_link"]).name == ".strtab"
    assert symtab["sh_size"] == symtab["sh_entsize"] * symtab.num_symbols()

    null = symtab.get_symbol(0)
    assert (null.name, null["st_value"], null["st_size"], null["st_info"]["type"], null["st_shndx"]) == (
        "", 0, 0, "STT_NOTYPE", "SHN_UNDEF")
    binds = [s["st_info"]["bind"] for s in symtab.iter_symbols()]
    first_global = symtab["sh_info"]
    assert all(b == "STB_LOCAL" for b in binds[:first_global])
    assert all(b != "STB_LOCAL" for b in binds[first_global:])

    assert symbols(data) == [
        ("__kstrtab_zeta_fn", "local", "notype", "__ksymtab_strings"),
        ("__kstrtabns_zeta_fn", "local", "notype", "__ksymtab_strings"),
        ("__ksymtab_zeta_fn", "local", "notype", "__ksymtab"),
        ("__crc_zeta_fn", "local", "notype", "__kcrctab"),
        ("__kstrtab_alpha_fn", "local", "notype", "__ksymtab_strings"),
        ("__kstrtabns_alpha_fn", "local", "notype", "__ksymtab_strings"),
        ("__ksymtab_alpha_fn", "local", "notype", "__ksymtab"),
        ("__crc_alpha_fn", "local", "notype", "__kcrctab"),
        ("__kstrtab_gpl_thing", "local", "notype", "__ksymtab_strings"),
        ("__kstrtabns_gpl_thing", "local", "notype", "__ksymtab_strings"),
        ("__ksymtab_gpl_thing", "local", "notype", "__ksymtab_gpl"),
        ("__crc_gpl_thing", "local", "notype", "__kcrctab_gpl"),
        ("local_obj", "local", "object", ".data.x"),
        ("__this_module", "global", "object", ".gnu.linkonce.this_module"),
        ("zeta_fn", "global", "func", ".text"),
        ("alpha_fn", "global", "func", ".text"),
        ("gpl_thing", "global", "func", ".text"),
        ("init_module", "global", "func", ".text"),
        ("cleanup_module", "global", "func", ".text"),
        ("printk", "global", "notype", "SHN_UNDEF"),
        ("maybe_there", "weak", "notype", "SHN_UNDEF"),
    ]
    assert (sym(data, "local_obj")["st_value"], sym(data, "local_obj")["st_size"]) == (4, 8)
    text_size = sec(f, ".text")["sh_size"]
    for name in ("zeta_fn", "alpha_fn", "gpl_thing", "init_module", "cleanup_module"):
        s = sym(data, name)
        assert s["st_value"] + s["st_size"] <= text_size
    assert len({sym(data, n)["st_value"] for n in ("zeta_fn", "alpha_fn", "init_module")}) == 3

    assert section_bytes(data, ".modinfo") == (
        b"license=GPL\0name=demo\0depends=a,b\0vermagic=6.1.0 SMP mod_unload modversions \0")
    assert section_bytes(data, ".data.x") == b"0123456789ab"

    # __versions: 64-byte records, crc width = word size, file byte order.
    ver = section_bytes(data, "__versions")
    assert len(ver) == 64 * len(VERSIONS)
    crc_fmt = h["e"] + ("Q" if bits == 64 else "I")
    clen = bits // 8
    got = [(ver[i + clen:i + 64].rstrip(b"\0").decode(), struct.unpack_from(crc_fmt, ver, i)[0])
           for i in range(0, len(ver), 64)]
    assert got == VERSIONS
    assert ver[clen + len("module_layout"):64] == bytes(64 - clen - len("module_layout"))

    # __ksymtab_strings: name\0 namespace\0 per export, in declaration order.
    kstr = section_bytes(data, "__ksymtab_strings")
    assert kstr == b"zeta_fn\0\0alpha_fn\0\0gpl_thing\0MY_NS\0"
    for x in EXPORTS:
        v = sym(data, f"__kstrtab_{x.name}")["st_value"]
        assert kstr[v:kstr.index(b"\0", v)] == x.name.encode()
        v = sym(data, f"__kstrtabns_{x.name}")["st_value"]
        assert kstr[v:kstr.index(b"\0", v)] == (x.namespace or "").encode()

    # __ksymtab: 12-byte entries sorted by name; __kcrctab likewise, crcs in file byte order.
    assert sec(f, "__ksymtab")["sh_size"] == 24
    assert sec(f, "__ksymtab_gpl")["sh_size"] == 12
    assert sym(data, "__ksymtab_alpha_fn")["st_value"] == 0
    assert sym(data, "__ksymtab_zeta_fn")["st_value"] == 12
    crcs = section_bytes(data, "__kcrctab")
    assert crcs == struct.pack(h["e"] + "II", 0xDEADBEEF, 0x11223344)
    for x in EXPORTS:
        s = sym(data, f"__crc_{x.name}")
        table = section_bytes(data, f.get_section(s["st_shndx"]).name)
        assert struct.unpack_from(h["e"] + "I", table, s["st_value"])[0] == x.crc

    # struct module: name field at offsetof(struct module, name).
    mod = section_bytes(data, ".gnu.linkonce.this_module")
    name_at = 24 if bits == 64 else 12
    assert mod[name_at:name_at + 5] == b"demo\0"
    assert sym(data, "__this_module")["st_size"] == len(mod)

    # every section lies inside the file and honours its alignment
    for s in f.iter_sections():
        if s["sh_type"] != "SHT_NOBITS":
            assert s["sh_offset"] + s["sh_size"] <= len(data)
        if s["sh_addralign"] > 1:
            assert s["sh_offset"] % s["sh_addralign"] == 0, s.name


def test_deterministic() -> None:
    assert full(64, "little", 62) == full(64, "little", 62)
    assert full(64, "little", 62) != full(64, "big", 62)


def test_minimal_module() -> None:
    data = build_ko(init=False, exit=False)
    f = elf(data)
    assert [s.name for s in f.iter_sections()] == [
        "", ".text", ".gnu.linkonce.this_module", ".symtab", ".strtab", ".shstrtab"]
    assert symbols(data) == [("__this_module", "global", "object", ".gnu.linkonce.this_module")]
    assert sec(f, ".symtab")["sh_info"] == 1


def test_crc_mode_abs() -> None:
    data = build_ko(exports=[Export(name="f", crc=0xCAFEBABE), Export(name="g", gpl=True, crc=7)], crc_mode="abs")
    f = elf(data)
    assert f.get_section_by_name("__kcrctab") is None
    assert f.get_section_by_name("__kcrctab_gpl") is None
    for name, crc in (("f", 0xCAFEBABE), ("g", 7)):
        s = sym(data, f"__crc_{name}")
        assert (s["st_shndx"], s["st_value"], s["st_info"]["bind"], s["st_info"]["type"]) == (
            "SHN_ABS", crc, "STB_GLOBAL", "STT_NOTYPE")


def test_export_without_crc_and_crc_symbols_off() -> None:
    data = build_ko(exports=[Export(name="a", crc=1), Export(name="b")])
    names = [s[0] for s in symbols(data)]
    assert "__crc_a" in names and "__crc_b" not in names
    assert len(section_bytes(data, "__kcrctab")) == 4

    data = build_ko(exports=[Export(name="a", crc=1)], crc_symbols=False)
    assert not any(s[0].startswith("__crc_") for s in symbols(data))
    assert elf(data).get_section_by_name("__kcrctab") is None


def test_no_ksymtab_strings() -> None:
    data = build_ko(exports=[Export(name="a", crc=1)], ksymtab_strings=False)
    assert elf(data).get_section_by_name("__ksymtab_strings") is None
    names = [s[0] for s in symbols(data)]
    assert not any(n.startswith("__kstrtab") for n in names)
    assert "__ksymtab_a" in names and "__crc_a" in names


def test_without_symtab() -> None:
    data = build_ko(exports=[Export(name="a")], modinfo=["license=GPL"], with_symtab=False)
    f = elf(data)
    assert [s.name for s in f.iter_sections()] == [
        "", ".text", "__ksymtab", "__ksymtab_strings", ".modinfo", ".gnu.linkonce.this_module", ".shstrtab"]


def test_export_define_false_and_extra_definition() -> None:
    data = build_ko(exports=[Export(name="ext", define=False), Export(name="tbl")], init=False, exit=False,
                    extra_symbols=[Sym(name="tbl", section=".rodata", size=4, type="object")],
                    extra_sections=[(".rodata", b"\1\2\3\4")])
    syms = {s[0]: s for s in symbols(data)}
    assert "ext" not in syms
    assert syms["tbl"] == ("tbl", "global", "object", ".rodata")
    assert [s[0] for s in symbols(data)].count("tbl") == 1


def test_extra_symbol_section_forms() -> None:
    data = build_ko(extra_symbols=[
        Sym(name="abs_sym", section="ABS", value=0x1234),
        Sym(name="bad_index", section=0xFF00, bind="weak", type="func"),
        Sym(name="undef_obj", type="object"),
        Sym(name="", section=".text", bind="local", type="section"),
    ], init=False, exit=False)
    syms = symbols(data)
    assert syms[0] == ("", "local", "section", ".text")
    assert ("abs_sym", "global", "notype", "SHN_ABS") in syms
    assert ("undef_obj", "global", "object", "SHN_UNDEF") in syms
    assert sym(data, "abs_sym")["st_value"] == 0x1234
    assert ("bad_index", "weak", "func", str(0xFF00)) in syms
    with pytest.raises(ValueError, match="unknown section"):
        build_ko(extra_symbols=[Sym(name="x", section=".nope")])


def test_namespace_string_per_export() -> None:
    data = build_ko(exports=[Export(name="a", namespace="NS"), Export(name="b", namespace="NS")])
    assert section_bytes(data, "__ksymtab_strings") == b"a\0NS\0b\0NS\0"
    assert sym(data, "__kstrtabns_b")["st_value"] == 7


def test_versions_limits_and_order() -> None:
    for bits, room in ((64, 56), (32, 60)):
        data = build_ko(bits=bits, versions=[("x" * room, 1)])
        assert section_bytes(data, "__versions")[bits // 8:] == b"x" * room
        with pytest.raises(ValueError):
            build_ko(bits=bits, versions=[("x" * (room + 1), 1)])
    with pytest.raises(ValueError):
        build_ko(bits=32, versions=[("x", 1 << 32)])
    # (crc, name) is accepted as well as (name, crc)
    assert build_ko(versions=[(5, "s")]) == build_ko(versions=[("s", 5)])


@pytest.mark.parametrize("endian", ["little", "big"])
@pytest.mark.parametrize(("bits", "entsize"), [(64, 12), (64, 24), (32, 12)])
def test_flagstab_layout(bits: int, endian: str, entsize: int) -> None:
    """Linux 7.1+: one __ksymtab sorted by name, a parallel __kflagstab, one __kcrctab, no *_gpl."""
    exports = [Export(name="zeta", gpl=True, crc=1), Export(name="alpha", crc=2), Export(name="mid", gpl=True, crc=3)]
    data = build_ko(bits=bits, endian=endian, exports=exports, ksymtab_layout="flagstab", ksymtab_entry_size=entsize)
    names = [s.name for s in elf(data).iter_sections()]
    assert names[:5] == ["", ".text", "__ksymtab", "__kflagstab", "__kcrctab"]
    assert not {"__ksymtab_gpl", "__kcrctab_gpl"} & set(names)
    assert raw_sections(data)["__kflagstab"]["flags"] == 2  # SHF_ALLOC
    assert sec(elf(data), "__ksymtab")["sh_size"] == 3 * entsize
    # sorted: alpha, mid, zeta; KSYM_FLAG_GPL_ONLY = 1
    assert section_bytes(data, "__kflagstab") == b"\x00\x01\x01"
    assert [sym(data, f"__ksymtab_{n}")["st_value"] for n in ("alpha", "mid", "zeta")] == [0, entsize, 2 * entsize]
    assert {symbols(data)[i][3] for i, s in enumerate(symbols(data)) if s[0].startswith("__ksymtab_")} == {"__ksymtab"}
    e = "<" if endian == "little" else ">"
    assert section_bytes(data, "__kcrctab") == struct.pack(e + "III", 2, 3, 1)
    assert [sym(data, f"__crc_{n}")["st_value"] for n in ("alpha", "mid", "zeta")] == [0, 4, 8]
    with pytest.raises(ValueError):
        build_ko(ksymtab_layout="joined")  # type: ignore[arg-type]


@pytest.mark.parametrize("endian", ["little", "big"])
def test_version_ext_tables(endian: str) -> None:
    long = "_R" + "x" * 100
    data = build_ko(endian=endian, version_ext=[("printk", 0x11223344), (long, 0xCAFEF00D)])
    assert section_bytes(data, "__version_ext_names") == b"printk\0" + long.encode() + b"\0"
    e = "<" if endian == "little" else ">"
    assert section_bytes(data, "__version_ext_crcs") == struct.pack(e + "II", 0x11223344, 0xCAFEF00D)
    assert sec(elf(data), "__version_ext_crcs")["sh_addralign"] == 4
    assert "__version_ext_names" not in {s.name for s in elf(build_ko()).iter_sections()}
    with pytest.raises(ValueError):
        build_ko(version_ext=[("a", 1 << 32)])


def test_modinfo_raw_bytes() -> None:
    data = build_ko(modinfo=[b"\xffbroken", "noequals"])
    assert section_bytes(data, ".modinfo") == b"\xffbroken\0noequals\0"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        build_ko(bits=16)
    with pytest.raises(ValueError):
        build_ko(endian="middle")
    with pytest.raises(ValueError):
        build_ko(exports=[Export(name="a", crc=1 << 32)])


@pytest.mark.skipif(not REAL_CRC7.exists(), reason="Debian 6.1 tree not present")
def test_mirrors_real_debian_61_crc7() -> None:
    real = REAL_CRC7.read_bytes()
    ours = build_ko(
        exports=[Export(name="crc7_be_syndrome_table", crc=0x65AAF037), Export(name="crc7_be", crc=0xBA55D23E)],
        versions=[("__x86_return_thunk", 0x5B8239CA), ("module_layout", 0x82164FBB)],
    )
    for name in ("__ksymtab_strings", "__kcrctab", "__versions"):
        assert section_bytes(ours, name) == section_bytes(real, name), name
    assert sec(elf(ours), "__ksymtab")["sh_size"] == sec(elf(real), "__ksymtab")["sh_size"]

    def export_syms(data: bytes) -> set[tuple[str, str, str, str, int]]:
        out = set()
        for name, bind, typ, where in symbols(data):
            if name.startswith(("__ksymtab_", "__kstrtab", "__crc_")):
                out.add((name, bind, typ, where, sym(data, name)["st_value"]))
        return out

    assert export_syms(ours) == export_syms(real)


# ---------------------------------------------------------------------------
# corruption helpers

BASE = build_ko(modinfo=["license=GPL"], exports=[Export(name="a", crc=3)], versions=[("module_layout", 1)])
BASE32BE = build_ko(bits=32, endian="big", machine=8, modinfo=["license=GPL"])


def test_truncate() -> None:
    t = truncate(BASE, 100)
    assert t == BASE[:100] and len(t) == 100
    with pytest.raises(ELFError):
        sec(elf(t), ".symtab")
    with pytest.raises(ValueError):
        truncate(BASE, len(BASE) + 1)


@pytest.mark.parametrize("base", [BASE, BASE32BE], ids=["64le", "32be"])
@pytest.mark.parametrize(("field", "value"), [
    ("e_shoff", 0x7FFF0000),
    ("e_shnum", 0xFFFF),
    ("e_shstrndx", 0x1234),
    ("e_shentsize", 7),
    ("e_machine", 0xBEEF),
    ("e_type", 2),
])
def test_corrupt_header_fields(base: bytes, field: str, value: int) -> None:
    bad = corrupt_header(base, field, value)
    assert len(bad) == len(base)
    h, h0 = raw_header(bad), raw_header(base)
    assert h[field] == value != h0[field]
    assert {k: v for k, v in h.items() if k != field} == {k: v for k, v in h0.items() if k != field}


def test_corrupt_header_ident_bytes() -> None:
    bad = corrupt_header(BASE, "EI_CLASS", 0)
    assert bad[4] == 0 and bad[5:] == BASE[5:] and bad[:4] == BASE[:4]
    bad = corrupt_header(BASE, "EI_DATA", 3)
    assert bad[5] == 3 and bad[:5] == BASE[:5]
    with pytest.raises(ELFError):
        elf(bad)
    bad = corrupt_header(BASE, "EI_MAG", b"\x7fELG")
    assert bad[:4] == b"\x7fELG"
    with pytest.raises(ELFError):
        elf(bad)
    # the big-endian ELF32 header is located and encoded in its own layout
    bad = corrupt_header(BASE32BE, "e_shstrndx", 0x0102)
    assert bad[50:52] == b"\x01\x02"


def test_corrupt_header_rejects() -> None:
    with pytest.raises(ValueError):
        corrupt_header(BASE, "e_shnum", 0x10000)
    with pytest.raises(ValueError):
        corrupt_header(BASE, "e_nope", 1)
    with pytest.raises(ValueError):
        corrupt_header(BASE, "EI_MAG", b"ab")


@pytest.mark.parametrize("base", [BASE, BASE32BE], ids=["64le", "32be"])
def test_corrupt_section(base: bytes) -> None:
    before = raw_sections(base)
    bad = corrupt_section(base, ".strtab", offset=0xFFFF_FF00, size=0x7FFF_FFFF)
    after = raw_sections(bad)
    assert after[".strtab"]["offset"] == 0xFFFF_FF00
    assert after[".strtab"]["size"] == 0x7FFF_FFFF
    assert {k: v for k, v in after[".strtab"].items() if k not in ("offset", "size")} == {
        k: v for k, v in before[".strtab"].items() if k not in ("offset", "size")}
    assert {n: s for n, s in after.items() if n != ".strtab"} == {n: s for n, s in before.items() if n != ".strtab"}

    bad = corrupt_section(base, ".symtab", link=999, entsize=5, info=77)
    s = raw_sections(bad)[".symtab"]
    assert (s["link"], s["entsize"], s["info"]) == (999, 5, 77)
    assert s["offset"] == before[".symtab"]["offset"]

    bad = corrupt_section(base, 1, type=8)  # by index: .text becomes NOBITS
    assert raw_sections(bad)[".text"]["type"] == 8

    with pytest.raises(ValueError):
        corrupt_section(base, ".nope", size=1)
    if raw_header(base)["bits"] == 32:
        with pytest.raises(ValueError):
            corrupt_section(base, ".strtab", offset=1 << 32)


def test_zero_section() -> None:
    s = raw_sections(BASE)[".strtab"]
    bad = zero_section(BASE, ".strtab")
    start, end = s["offset"], s["offset"] + s["size"]
    assert bad[start:end] == bytes(s["size"]) != BASE[start:end]
    assert bad[:start] == BASE[:start] and bad[end:] == BASE[end:]
    names = [x.name for x in sec(elf(bad), ".symtab").iter_symbols()]
    assert set(names) == {""}


@pytest.mark.parametrize(("fmt", "magic", "decompress"), [
    ("xz", b"\xfd7zXZ\x00", lzma.decompress),
    ("zst", b"\x28\xb5\x2f\xfd", lambda d: zstandard.ZstdDecompressor().decompress(d)),
    ("gz", b"\x1f\x8b", gzip.decompress),
])
def test_compress_round_trip(fmt: Any, magic: bytes, decompress: Any) -> None:
    packed = compress(BASE, fmt)
    assert packed.startswith(magic)
    assert packed != BASE
    assert decompress(packed) == BASE
    assert compress(BASE, fmt) == packed  # deterministic


def test_compress_details() -> None:
    assert compress(BASE, "xz")[7] == 0x01  # stream flags: CRC32 check, as Kbuild's xz --check=crc32
    with pytest.raises(ValueError):
        compress(BASE, "bz2")  # type: ignore[arg-type]
