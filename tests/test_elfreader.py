"""The module reader: kmod's extraction rules, the fast decoder against pyelftools, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from moddeps.errors import ModuleReadError
from moddeps.model import Export as MExport
from moddeps.model import Import
from moddeps.read.elfreader import (
    load_bytes,
    parse_module,
    parse_module_pyelftools,
    read_module,
    read_module_or_broken,
)

from . import kobuild
from .kobuild import Export, Sym, build_ko

SAMPLE = Path(__file__).resolve().parent.parent / "sample_modules" / "lib" / "modules"
SAMPLE_KOS = sorted(SAMPLE.rglob("*.ko"))

MACHINES = [(62, 64), (3, 32), (183, 64), (40, 32), (21, 64), (22, 64), (243, 64), (8, 64), (8, 32), (20, 32)]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def rich_module(bits: int = 64, endian: str = "little", machine: int = 62) -> bytes:
    return build_ko(
        bits=bits,
        endian=endian,
        machine=machine,
        modinfo=[("license", "GPL"), ("alias", "pci:v00001234d*"), "depends=", ("alias", "foo-bar"), "intree=Y",
                 ("import_ns", "NS_A"), "novalue"],
        exports=[Export(name="plain_fn", crc=0x1234ABCD), Export(name="gpl_fn", gpl=True, crc=0xDEADBEEF),
                 Export(name="ns_fn", gpl=True, namespace="NS_B", crc=7)],
        undefined=["printk", ("maybe_there", True), "kfree"],
        versions=[("module_layout", 0xBCE1A965), ("printk", 0x11111111), ("kfree", 0x22222222)],
    )


@pytest.mark.parametrize("path", SAMPLE_KOS, ids=lambda p: str(p.relative_to(SAMPLE)))
def test_fast_decoder_agrees_with_pyelftools_on_sample_modules(path: Path) -> None:
    data, kind = load_bytes(path)
    fast = parse_module(data, str(path), compression=kind)
    ref = parse_module_pyelftools(data, str(path), compression=kind)
    assert fast == ref
    assert fast.exports or fast.imports  # real modules have symbols


@pytest.mark.parametrize(("machine", "bits"), MACHINES)
@pytest.mark.parametrize("endian", ["little", "big"])
def test_fast_decoder_agrees_with_pyelftools_on_every_layout(machine: int, bits: int, endian: str) -> None:
    data = rich_module(bits, endian, machine)
    fast = parse_module(data, "kernel/x/foo-bar.ko")
    assert fast == parse_module_pyelftools(data, "kernel/x/foo-bar.ko")
    assert fast.elf_class == bits and fast.byte_order == endian and fast.machine == machine


@pytest.mark.parametrize(("machine", "bits"), MACHINES)
@pytest.mark.parametrize("endian", ["little", "big"])
def test_reader_extracts_everything(machine: int, bits: int, endian: str) -> None:
    m = parse_module(rich_module(bits, endian, machine), "kernel/x/foo-bar.ko")
    assert m.name == "foo_bar"
    assert m.exports == (
        MExport("plain_fn", 0x1234ABCD, False, None),
        MExport("gpl_fn", 0xDEADBEEF, True, None),
        MExport("ns_fn", 7, True, "NS_B"),
    )
    # symtab order of undefined symbols, CRC from __versions, then leftover __versions records
    assert m.imports == (
        Import("printk", 0x11111111, False, False),
        Import("maybe_there", None, True, False),
        Import("kfree", 0x22222222, False, False),
        Import("module_layout", 0xBCE1A965, False, True),
    )
    assert m.modinfo == (
        ("license", "GPL"), ("alias", "pci:v00001234d*"), ("depends", ""), ("alias", "foo-bar"), ("intree", "Y"),
        ("import_ns", "NS_A"), ("novalue", ""),
    )
    assert m.aliases == ("pci:v00001234d*", "foo-bar")
    assert m.has_init and m.has_exit and not m.permanent


def test_init_without_exit_is_permanent() -> None:
    m = parse_module(build_ko(exit=False), "a.ko")
    assert m.has_init and not m.has_exit and m.permanent
    m2 = parse_module(build_ko(init=False, exit=False), "b.ko")
    assert not m2.permanent


def test_ksymtab_strings_fallback_counts_namespace_strings() -> None:
    """kmod 30 without __crc_ symbols reads __ksymtab_strings and keeps namespace names."""
    data = build_ko(exports=[Export(name="a_fn"), Export(name="b_fn", namespace="MY_NS")], crc_symbols=False)
    m = parse_module(data, "m.ko")
    assert [e.name for e in m.exports] == ["a_fn", "b_fn", "MY_NS"]
    assert [e.pseudo for e in m.exports] == [False, False, True]
    assert all(e.crc is None for e in m.exports)
    assert m == parse_module_pyelftools(data, "m.ko")


def test_crc_from_absolute_symbols() -> None:
    m = parse_module(build_ko(exports=[Export(name="f", crc=0xCAFE)], crc_mode="abs"), "m.ko")
    assert m.exports[0].crc == 0xCAFE


def test_crc_outside_its_section_is_all_ones() -> None:
    """kmod: st_value past the section's end gives CRC 0xffffffff."""
    data = build_ko(extra_symbols=[Sym(name="__crc_weird", section=".text", value=10_000)])
    m = parse_module(data, "m.ko")
    assert ("weird", 0xFFFFFFFF) in [(e.name, e.crc) for e in m.exports]


def test_versions_duplicate_records_and_bad_size() -> None:
    data = build_ko(undefined=["a"], versions=[("a", 1), ("a", 2), ("b", 3)])
    m = parse_module(data, "m.ko")
    # the first record gives the CRC; the unmatched duplicate and "b" are appended
    assert m.imports == (Import("a", 1), Import("a", 2, False, True), Import("b", 3, False, True))
    bad = build_ko(undefined=["a"], extra_sections=[("__versions", b"\0" * 65)])
    assert parse_module(bad, "m.ko").imports == (Import("a", None),)


def test_modinfo_split_like_kmod() -> None:
    data = build_ko(extra_sections=[(".modinfo", b"\0\0a=1\0\0\0b\0=x\0c=d=e")])
    m = parse_module(data, "m.ko")
    assert m.modinfo == (("a", "1"), ("b", ""), ("", "x"), ("c", "d=e"))
    single = build_ko(extra_sections=[(".modinfo", b"\0\0x")])
    assert parse_module(single, "m.ko").modinfo == ()  # one byte left: no entries (kmod)


def test_no_symtab_means_no_imports_and_string_exports() -> None:
    data = build_ko(exports=[Export(name="f", crc=1)], undefined=["g"], with_symtab=False)
    m = parse_module(data, "m.ko")
    assert m.imports == ()
    assert [e.name for e in m.exports] == ["f"]
    assert not m.has_init


def _set_symbol_type(data: bytes, name: str, stt: int) -> bytes:
    import io

    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(data))
    symtab = elf.get_section_by_name(".symtab")
    out = bytearray(data)
    entsize = 24 if elf.elfclass == 64 else 16
    info_at = 4 if elf.elfclass == 64 else 12
    for i, sym in enumerate(symtab.iter_symbols()):
        if sym.name == name:
            pos = symtab["sh_offset"] + i * entsize + info_at
            out[pos] = (out[pos] & 0xF0) | stt
    return bytes(out)


@pytest.mark.parametrize(("machine", "skipped"), [(43, True), (2, True), (62, False)])
def test_sparc_register_symbols_are_not_requirements(machine: int, skipped: bool) -> None:
    """kmod: undefined STT_REGISTER (13) symbols are skipped on SPARC only."""
    data = build_ko(machine=machine, endian="big", undefined=["real", "%g2"])
    m = parse_module(_set_symbol_type(data, "%g2", 13), "m.ko")
    assert [i.name for i in m.imports] == (["real"] if skipped else ["real", "%g2"])


@pytest.mark.parametrize("fmt", ["xz", "zst", "gz"])
def test_compressed_modules_chosen_by_magic(tmp_path: Path, fmt: str) -> None:
    raw = rich_module()
    # a misleading suffix: the magic decides
    p = _write(tmp_path, "foo-bar.ko", kobuild.compress(raw, fmt))  # type: ignore[arg-type]
    m = read_module(p, relpath="kernel/foo-bar.ko")
    assert m.compression == {"xz": "xz", "zst": "zstd", "gz": "gzip"}[fmt]
    plain = parse_module(raw, "kernel/foo-bar.ko")
    assert m.exports == plain.exports and m.imports == plain.imports and m.modinfo == plain.modinfo


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    p = _write(tmp_path, "bomb.ko.xz", kobuild.compress(b"\0" * (4 << 20), "xz"))
    with pytest.raises(ModuleReadError, match="more than"):
        read_module(p, max_size=1 << 20)


BAD_CASES = {
    "empty": lambda d: b"",
    "tiny": lambda d: b"\x7fEL",
    "not-elf": lambda d: b"#!/bin/sh\necho hello\n" * 4,
    "truncated-header": lambda d: kobuild.truncate(d, 40),
    "truncated-sections": lambda d: kobuild.truncate(d, len(d) - 30),
    "bad-class": lambda d: kobuild.corrupt_header(d, "EI_CLASS", 7),
    "bad-data": lambda d: kobuild.corrupt_header(d, "EI_DATA", 9),
    "bad-shentsize": lambda d: kobuild.corrupt_header(d, "e_shentsize", 32),
    "shoff-past-end": lambda d: kobuild.corrupt_header(d, "e_shoff", 1 << 40),
    "absurd-shnum": lambda d: kobuild.corrupt_header(d, "e_shnum", 65535),
    "shstrndx-out-of-range": lambda d: kobuild.corrupt_header(d, "e_shstrndx", 999),
    "shstrtab-past-end": lambda d: kobuild.corrupt_section(d, ".shstrtab", offset=1 << 30),
    "shstrtab-zeroed-size": lambda d: kobuild.corrupt_section(d, ".shstrtab", size=0),
    "broken-xz": lambda d: kobuild.truncate(kobuild.compress(d, "xz"), 100),
    "broken-zstd": lambda d: kobuild.compress(d, "zst")[:50] + b"garbage" * 10,
    "broken-gzip": lambda d: kobuild.truncate(kobuild.compress(d, "gz"), 60),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_gives_one_line_reason(tmp_path: Path, case: str) -> None:
    p = _write(tmp_path, "bad.ko", BAD_CASES[case](rich_module()))
    with pytest.raises(ModuleReadError) as info:
        read_module(p)
    msg = str(info.value)
    assert msg.startswith(str(p) + ": ") and "\n" not in msg
    broken = read_module_or_broken(p, relpath="kernel/bad.ko")
    assert broken.error and broken.name == "bad" and broken.path == "kernel/bad.ko"
    assert broken.exports == () and broken.imports == ()
    assert broken.kmod_error in ("Exec format error", "Invalid argument")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: kobuild.zero_section(d, ".strtab"),
        lambda d: kobuild.corrupt_section(d, ".symtab", offset=1 << 31),
        lambda d: kobuild.corrupt_section(d, ".symtab", size=25),
        lambda d: kobuild.corrupt_section(d, ".strtab", size=3),
        lambda d: kobuild.corrupt_section(d, "__versions", size=1 << 20),
        lambda d: kobuild.corrupt_section(d, ".modinfo", offset=1 << 33),
        lambda d: kobuild.corrupt_section(d, "__kcrctab", size=2),
    ],
)
def test_damaged_tables_never_raise_anything_but_module_errors(mutate: object) -> None:
    data = mutate(rich_module())  # type: ignore[operator]
    try:
        m = parse_module(data, "m.ko")
    except ModuleReadError:
        return
    assert m.name == "m"


def test_bad_strtab_offset_discards_requirements() -> None:
    """kmod: an undefined symbol whose name lies outside .strtab drops the whole list."""
    data = build_ko(undefined=["a", "b"])
    m = parse_module(kobuild.corrupt_section(data, ".strtab", size=2), "m.ko")
    assert m.imports == ()


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ModuleReadError, match="cannot read"):
        read_module(tmp_path / "missing.ko")
    link = tmp_path / "dangling.ko"
    os.symlink(tmp_path / "nowhere", link)
    assert read_module_or_broken(link).error is not None
