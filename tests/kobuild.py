"""A tiny in-memory ELF writer for kernel-module (``.ko``) test fixtures.

Kbuild can only make modules for the host's toolchain.  The tests need exact,
small modules of any class (ELF32/ELF64), byte order and ``e_machine``, and
deliberately broken ones, so this module writes ET_REL images by hand.

The layout of exports mirrors what a Debian 6.1 amd64 module carries
(``lib/crc7.ko``, ``net/netfilter/nf_nat.ko``, ``mana.ko`` were inspected):

* ``__ksymtab`` / ``__ksymtab_gpl``: 12-byte entries (three 32-bit PC-relative
  offsets: value, name, namespace), sorted by symbol name (``SORT(___ksymtab+*)``
  in scripts/module.lds.S).  ``__ksymtab_<name>`` is a LOCAL NOTYPE symbol in
  that section whose value is the entry's offset.  Contents are zeros here (real
  modules fill them through ``.rela__ksymtab``, which is not written).
* ``__ksymtab_strings`` (SHF_ALLOC|SHF_MERGE|SHF_STRINGS, entsize 1): for each
  export, in declaration order, ``name\\0`` then ``namespace\\0`` (an empty
  string, i.e. a lone NUL, when there is no namespace; namespace strings are
  not shared between exports).  ``__kstrtab_<name>`` and ``__kstrtabns_<name>``
  are LOCAL NOTYPE symbols in that section pointing at the two strings.
* ``__kcrctab`` / ``__kcrctab_gpl``: 4-byte CRCs in file byte order, sorted by
  symbol name like the ksymtab; ``__crc_<name>`` is a LOCAL NOTYPE symbol in
  that section whose value is the entry's offset (no relocations).  This is
  ``crc_mode="section"``, the default.  ``crc_mode="abs"`` instead writes the
  pre-5.19 form: ``__crc_<name>`` GLOBAL NOTYPE with st_shndx SHN_ABS and
  st_value = crc, and no ``__kcrctab`` section.
* The exported symbol itself is a GLOBAL FUNC in ``.text``.

``ksymtab_layout="flagstab"`` writes the Linux 7.1+ form instead (Debian
7.2 amd64 ``drivers/cxl/cxl_mem.ko`` was inspected): no ``_gpl`` sections;
every export has an entry in the one ``__ksymtab`` (sorted by name) and, at
the same index, one byte in ``__kflagstab`` (SHF_ALLOC, align 1) holding the
symbol's flags, KSYM_FLAG_GPL_ONLY (0x01) for EXPORT_SYMBOL_GPL; CRCs, if
any, go in the one ``__kcrctab``.

``version_ext`` writes the Linux 6.14+ extended modversions tables
(CONFIG_EXTENDED_MODVERSIONS): ``__version_ext_names``, the names back to
back, each followed by a NUL, and ``__version_ext_crcs``, one 32-bit CRC per
name in file byte order (scripts/mod/modpost.c, add_extended_versions).

Nothing here is specific to the project's reader: it only writes bytes.
"""

from __future__ import annotations

import gzip
import lzma
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import zstandard

__all__ = [
    "ELF_HEADER_FIELDS",
    "KSYM_FLAG_GPL_ONLY",
    "SHN_ABS",
    "SHN_UNDEF",
    "Export",
    "Sym",
    "build_ko",
    "compress",
    "corrupt_header",
    "corrupt_section",
    "truncate",
    "zero_section",
]

# ELF constants used below.
ET_REL = 1
EV_CURRENT = 1
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2
SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS = 0, 1, 2, 3, 8
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR, SHF_MERGE, SHF_STRINGS = 0x1, 0x2, 0x4, 0x10, 0x20
SHN_UNDEF = 0
SHN_ABS = 0xFFF1

EM_X86_64 = 62

#: ``enum ksym_flags`` of Linux 7.1+ (include/linux/module_symbol.h).
KSYM_FLAG_GPL_ONLY = 0x01

_BIND = {"local": 0, "global": 1, "weak": 2}
_TYPE = {"notype": 0, "object": 1, "func": 2, "section": 3, "file": 4}

#: Size of ``.gnu.linkonce.this_module`` (``struct module``); 0x380 is the
#: Debian 6.1 amd64 value, the 32-bit one is arbitrary but plausible.
THIS_MODULE_SIZE = {64: 0x380, 32: 0x240}

#: Size of one ``.text`` slot given to each function defined by build_ko.
FUNC_SLOT = 16

# ELF header fields: name -> (offset, struct format) for ELF32 and ELF64.
# e_ident bytes are addressed by their usual names.
_IDENT_FIELDS: dict[str, tuple[int, str]] = {
    "EI_MAG": (0, "4s"),
    "EI_CLASS": (4, "B"),
    "EI_DATA": (5, "B"),
    "EI_VERSION": (6, "B"),
    "EI_OSABI": (7, "B"),
    "EI_ABIVERSION": (8, "B"),
}
_HDR_ORDER_32 = [
    ("e_type", "H"), ("e_machine", "H"), ("e_version", "I"), ("e_entry", "I"), ("e_phoff", "I"),
    ("e_shoff", "I"), ("e_flags", "I"), ("e_ehsize", "H"), ("e_phentsize", "H"), ("e_phnum", "H"),
    ("e_shentsize", "H"), ("e_shnum", "H"), ("e_shstrndx", "H"),
]
_HDR_ORDER_64 = [(n, "Q" if n in ("e_entry", "e_phoff", "e_shoff") else f) for n, f in _HDR_ORDER_32]


def _field_table(order: list[tuple[str, str]]) -> dict[str, tuple[int, str]]:
    table = dict(_IDENT_FIELDS)
    off = 16
    for name, fmt in order:
        table[name] = (off, fmt)
        off += struct.calcsize(fmt)
    return table


#: ELF header field layout per class: {bits: {field: (offset, struct format)}}.
ELF_HEADER_FIELDS: dict[int, dict[str, tuple[int, str]]] = {
    32: _field_table(_HDR_ORDER_32),
    64: _field_table(_HDR_ORDER_64),
}

# Section header: (name, type, flags, addr, offset, size, link, info, addralign, entsize)
_SHDR_FMT = {32: "IIIIIIIIII", 64: "IIQQQQIIQQ"}
_SHDR_FIELDS = ("sh_name", "sh_type", "sh_flags", "sh_addr", "sh_offset", "sh_size",
                "sh_link", "sh_info", "sh_addralign", "sh_entsize")
_EHDR_SIZE = {32: 52, 64: 64}
_SHDR_SIZE = {32: 40, 64: 64}
_SYM_SIZE = {32: 16, 64: 24}


@dataclass(frozen=True, kw_only=True)
class Sym:
    """One extra symbol-table entry.

    ``section`` is a section name, ``None`` for SHN_UNDEF, ``"ABS"`` for
    SHN_ABS, or a raw st_shndx integer (e.g. an out-of-range index).
    """

    name: str
    section: str | int | None = None
    value: int = 0
    size: int = 0
    bind: Literal["local", "global", "weak"] = "global"
    type: Literal["notype", "object", "func", "section", "file"] = "notype"


@dataclass(frozen=True, kw_only=True)
class Export:
    """One EXPORT_SYMBOL*(): ``gpl`` selects the ``_gpl`` tables (the ``__kflagstab`` bit with
    ``ksymtab_layout="flagstab"``), ``namespace``
    fills ``__kstrtabns_``, ``crc`` (32-bit) adds ``__crc_<name>``.  With
    ``define=False`` the exported symbol itself is not defined in ``.text``."""

    name: str
    gpl: bool = False
    namespace: str | None = None
    crc: int | None = None
    define: bool = True


@dataclass
class _Section:
    name: str
    type: int
    flags: int
    data: bytes
    align: int = 1
    entsize: int = 0
    link: str | None = None  # name of the linked section
    info: int = 0
    size: int | None = None  # for NOBITS


@dataclass
class _SymEntry:
    name: str
    shndx: str | int | None
    value: int
    size: int
    bind: int
    type: int


def _ends(endian: str) -> str:
    if endian == "little":
        return "<"
    if endian == "big":
        return ">"
    raise ValueError(f"endian must be 'little' or 'big', not {endian!r}")


def _align(n: int, a: int) -> int:
    return n if a <= 1 else (n + a - 1) // a * a


class _StrTab:
    """A string table with a leading NUL; identical strings share one offset."""

    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self._seen: dict[str, int] = {"": 0}

    def add(self, s: str) -> int:
        if s not in self._seen:
            self._seen[s] = len(self.data)
            self.data += s.encode() + b"\0"
        return self._seen[s]


def _modinfo_bytes(modinfo: Sequence[tuple[str, str] | str | bytes]) -> bytes:
    out = bytearray()
    for item in modinfo:
        if isinstance(item, tuple):
            key, value = item
            out += f"{key}={value}".encode() + b"\0"
        elif isinstance(item, bytes):
            out += item + b"\0"
        else:
            out += item.encode() + b"\0"
    return bytes(out)


def _versions_bytes(versions: Sequence[tuple[str, int] | tuple[int, str]], bits: int, e: str) -> bytes:
    crc_len = bits // 8
    name_len = 64 - crc_len
    out = bytearray()
    for rec in versions:
        a, b = rec
        if isinstance(a, str) and isinstance(b, int):
            name, crc = a, b
        elif isinstance(a, int) and isinstance(b, str):
            crc, name = a, b
        else:
            raise TypeError(f"__versions record must be (name, crc): {rec!r}")
        raw = name.encode()
        if len(raw) > name_len:
            raise ValueError(f"__versions name longer than {name_len} bytes: {name!r}")
        if not 0 <= crc < 1 << (8 * crc_len):
            raise ValueError(f"crc {crc:#x} does not fit {crc_len} bytes")
        out += struct.pack(e + ("Q" if crc_len == 8 else "I"), crc) + raw.ljust(name_len, b"\0")
    return bytes(out)


def _module_name(modinfo: Sequence[tuple[str, str] | str | bytes]) -> str | None:
    for item in modinfo:
        if isinstance(item, tuple):
            if item[0] == "name":
                return item[1]
        elif isinstance(item, str) and item.startswith("name="):
            return item[5:]
    return None


def build_ko(
    *,
    bits: int = 64,
    endian: str = "little",
    machine: int = EM_X86_64,
    flags: int = 0,
    modinfo: Sequence[tuple[str, str] | str | bytes] = (),
    exports: Sequence[Export] = (),
    undefined: Sequence[str | tuple[str, bool]] = (),
    versions: Sequence[tuple[str, int] | tuple[int, str]] = (),
    extra_symbols: Sequence[Sym] = (),
    extra_sections: Sequence[tuple[str, bytes]] = (),
    init: bool = True,
    exit: bool = True,
    with_symtab: bool = True,
    ksymtab_strings: bool = True,
    crc_symbols: bool = True,
    crc_mode: Literal["section", "abs"] = "section",
    ksymtab_entry_size: int = 12,
    ksymtab_layout: Literal["split", "flagstab"] = "split",
    version_ext: Sequence[tuple[str, int]] = (),
) -> bytes:
    """Return the bytes of an ET_REL kernel module built from the arguments.

    Sections, in this order, each only when it has something to hold:
    ``.text``, ``__ksymtab``, ``__ksymtab_gpl`` (or, with
    ``ksymtab_layout="flagstab"``, ``__ksymtab`` and ``__kflagstab``),
    ``__kcrctab``, ``__kcrctab_gpl``, ``__ksymtab_strings``, ``.modinfo``,
    ``__versions``, ``__version_ext_names`` and ``__version_ext_crcs`` (from
    ``version_ext``: ``(name, crc)`` pairs, in order), the ``extra_sections``
    (PROGBITS, SHF_ALLOC, in the given order, duplicates allowed), then always
    ``.gnu.linkonce.this_module``, ``.symtab`` and ``.strtab`` (unless
    ``with_symtab=False``) and ``.shstrtab``.  ``.text`` is always present.

    Symbols: the NULL entry, then LOCAL ones, then the others (sh_info of
    ``.symtab`` is the first non-local index).  In generation order: per export
    ``__kstrtab_``, ``__kstrtabns_``, ``__ksymtab_``, ``__crc_``; then
    ``__this_module`` (GLOBAL OBJECT), the exported symbols (GLOBAL FUNC in
    ``.text``, unless ``define=False`` or an extra symbol of that name is
    defined), ``init_module`` / ``cleanup_module`` (GLOBAL FUNC in ``.text``),
    the ``undefined`` ones (GLOBAL, or WEAK when given as ``(name, True)``,
    NOTYPE, SHN_UNDEF), then ``extra_symbols``.  The stable local/global
    partition keeps that relative order.

    ``modinfo`` items are ``"key=value"`` strings, ``(key, value)`` pairs or raw
    bytes; each is written followed by one NUL.  A ``name=`` item is also
    copied into ``struct module``'s name field.  ``versions`` are ``(name,
    crc)`` records of 64 bytes (crc as unsigned long in file byte order, then
    the NUL-padded name); ``(crc, name)`` is accepted too.
    """
    if bits not in (32, 64):
        raise ValueError(f"bits must be 32 or 64, not {bits!r}")
    if crc_mode not in ("section", "abs"):
        raise ValueError(f"crc_mode must be 'section' or 'abs', not {crc_mode!r}")
    if ksymtab_layout not in ("split", "flagstab"):
        raise ValueError(f"ksymtab_layout must be 'split' or 'flagstab', not {ksymtab_layout!r}")
    e = _ends(endian)
    word = "Q" if bits == 64 else "I"

    sections: list[_Section] = []
    syms: list[_SymEntry] = []

    # .text: one FUNC_SLOT per function we define.
    defined_extra = {s.name for s in extra_symbols if s.section is not None}
    funcs: list[str] = [x.name for x in exports if x.define and x.name not in defined_extra]
    if init:
        funcs.append("init_module")
    if exit:
        funcs.append("cleanup_module")
    sections.append(_Section(".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR,
                             bytes(FUNC_SLOT * max(1, len(funcs))), align=16))

    # Export tables.
    # Keyed by position in ``exports``, so repeated Export values stay distinct.
    if ksymtab_layout == "flagstab":  # Linux 7.1+: one table, GPL-only in the flags
        groups = {False: list(range(len(exports))), True: []}
    else:
        groups = {gpl: [i for i, x in enumerate(exports) if x.gpl == gpl] for gpl in (False, True)}
    ksymtab_off: dict[int, tuple[str, int]] = {}
    for gpl, group in groups.items():
        if not group:
            continue
        sec = "__ksymtab_gpl" if gpl else "__ksymtab"
        ordered = sorted(group, key=lambda i: exports[i].name)
        for slot, i in enumerate(ordered):
            ksymtab_off[i] = (sec, slot * ksymtab_entry_size)
        sections.append(_Section(sec, SHT_PROGBITS, SHF_ALLOC, bytes(ksymtab_entry_size * len(group)), align=4))
        if ksymtab_layout == "flagstab":
            flags_ = bytes(KSYM_FLAG_GPL_ONLY if exports[i].gpl else 0 for i in ordered)
            sections.append(_Section("__kflagstab", SHT_PROGBITS, SHF_ALLOC, flags_, align=1))

    kcrctab_off: dict[int, tuple[str, int]] = {}
    if crc_symbols and crc_mode == "section":
        for gpl, group in groups.items():
            with_crc = sorted((i for i in group if exports[i].crc is not None), key=lambda i: exports[i].name)
            if not with_crc:
                continue
            sec = "__kcrctab_gpl" if gpl else "__kcrctab"
            data = bytearray()
            for i in with_crc:
                x = exports[i]
                assert x.crc is not None
                if not 0 <= x.crc <= 0xFFFFFFFF:
                    raise ValueError(f"crc {x.crc:#x} of {x.name} does not fit 32 bits")
                kcrctab_off[i] = (sec, len(data))
                data += struct.pack(e + "I", x.crc)
            sections.append(_Section(sec, SHT_PROGBITS, SHF_ALLOC, bytes(data), align=4))

    kstr_off: dict[int, tuple[int, int]] = {}
    if exports and ksymtab_strings:
        data = bytearray()
        for i, x in enumerate(exports):
            name_at = len(data)
            data += x.name.encode() + b"\0"
            ns_at = len(data)
            data += (x.namespace or "").encode() + b"\0"
            kstr_off[i] = (name_at, ns_at)
        sections.append(_Section("__ksymtab_strings", SHT_PROGBITS, SHF_ALLOC | SHF_MERGE | SHF_STRINGS,
                                 bytes(data), align=1, entsize=1))

    if modinfo:
        sections.append(_Section(".modinfo", SHT_PROGBITS, SHF_ALLOC, _modinfo_bytes(modinfo), align=1))
    if versions:
        sections.append(_Section("__versions", SHT_PROGBITS, SHF_ALLOC, _versions_bytes(versions, bits, e),
                                 align=32))
    if version_ext:
        names_ = b"".join(name.encode() + b"\0" for name, _ in version_ext)
        for name, crc in version_ext:
            if not 0 <= crc <= 0xFFFFFFFF:
                raise ValueError(f"crc {crc:#x} of {name} does not fit 32 bits")
        crcs_ = b"".join(struct.pack(e + "I", crc) for _, crc in version_ext)
        sections.append(_Section("__version_ext_names", SHT_PROGBITS, SHF_ALLOC, names_, align=1))
        sections.append(_Section("__version_ext_crcs", SHT_PROGBITS, SHF_ALLOC, crcs_, align=4))
    for name, data_ in extra_sections:
        sections.append(_Section(name, SHT_PROGBITS, SHF_ALLOC, bytes(data_), align=1))

    # struct module: name at offsetof(struct module, name) = state(4) + pad + list_head.
    this_module = bytearray(THIS_MODULE_SIZE[bits])
    mod_name = _module_name(modinfo)
    if mod_name is not None:
        name_at = 24 if bits == 64 else 12
        raw = mod_name.encode()[: 64 - bits // 8 - 1]
        this_module[name_at:name_at + len(raw)] = raw
    sections.append(_Section(".gnu.linkonce.this_module", SHT_PROGBITS, SHF_WRITE | SHF_ALLOC,
                             bytes(this_module), align=64))

    # Symbols.
    for i, x in enumerate(exports):
        if i in kstr_off:
            name_at, ns_at = kstr_off[i]
            syms.append(_SymEntry(f"__kstrtab_{x.name}", "__ksymtab_strings", name_at, 0, 0, 0))
            syms.append(_SymEntry(f"__kstrtabns_{x.name}", "__ksymtab_strings", ns_at, 0, 0, 0))
        sec, off = ksymtab_off[i]
        syms.append(_SymEntry(f"__ksymtab_{x.name}", sec, off, 0, 0, 0))
        if crc_symbols and x.crc is not None:
            if crc_mode == "section":
                sec, off = kcrctab_off[i]
                syms.append(_SymEntry(f"__crc_{x.name}", sec, off, 0, 0, 0))
            else:
                if not 0 <= x.crc < 1 << bits:
                    raise ValueError(f"crc {x.crc:#x} of {x.name} does not fit {bits} bits")
                syms.append(_SymEntry(f"__crc_{x.name}", SHN_ABS, x.crc, 0, _BIND["global"], 0))
    syms.append(_SymEntry("__this_module", ".gnu.linkonce.this_module", 0, len(this_module),
                          _BIND["global"], _TYPE["object"]))
    for i, fname in enumerate(funcs):
        syms.append(_SymEntry(fname, ".text", i * FUNC_SLOT, FUNC_SLOT, _BIND["global"], _TYPE["func"]))
    for u in undefined:
        uname, weak = (u, False) if isinstance(u, str) else u
        syms.append(_SymEntry(uname, None, 0, 0, _BIND["weak" if weak else "global"], _TYPE["notype"]))
    for extra in extra_symbols:
        shndx: str | int | None = SHN_ABS if extra.section == "ABS" else extra.section
        syms.append(_SymEntry(extra.name, shndx, extra.value, extra.size, _BIND[extra.bind], _TYPE[extra.type]))

    locals_ = [sym for sym in syms if sym.bind == _BIND["local"]]
    globals_ = [sym for sym in syms if sym.bind != _BIND["local"]]
    ordered_syms = locals_ + globals_

    if with_symtab:
        sections.append(_Section(".symtab", SHT_SYMTAB, 0, b"", align=bits // 8, entsize=_SYM_SIZE[bits],
                                 link=".strtab", info=1 + len(locals_)))
        sections.append(_Section(".strtab", SHT_STRTAB, 0, b"", align=1))
    sections.append(_Section(".shstrtab", SHT_STRTAB, 0, b"", align=1))

    index: dict[str, int] = {}
    for i, sec_ in enumerate(sections, start=1):
        index.setdefault(sec_.name, i)

    def shndx_of(ref: str | int | None) -> int:
        if ref is None:
            return SHN_UNDEF
        if isinstance(ref, int):
            return ref
        if ref not in index:
            raise ValueError(f"symbol refers to unknown section {ref!r}")
        return index[ref]

    if with_symtab:
        strtab = _StrTab()
        symdata = bytearray(_SYM_SIZE[bits])  # NULL entry
        for sym in ordered_syms:
            name_off = strtab.add(sym.name)
            st_info = (sym.bind << 4) | sym.type
            if bits == 64:
                symdata += struct.pack(e + "IBBHQQ", name_off, st_info, 0, shndx_of(sym.shndx), sym.value, sym.size)
            else:
                symdata += struct.pack(e + "IIIBBH", name_off, sym.value, sym.size, st_info, 0, shndx_of(sym.shndx))
        sections[index[".symtab"] - 1].data = bytes(symdata)
        sections[index[".strtab"] - 1].data = bytes(strtab.data)

    shstrtab = _StrTab()
    name_offs = [shstrtab.add(sec_.name) for sec_ in sections]
    sections[index[".shstrtab"] - 1].data = bytes(shstrtab.data)

    # Layout: ELF header, section contents, then section headers.
    out = bytearray(_EHDR_SIZE[bits])
    offsets = []
    for sec_ in sections:
        pad = _align(len(out), sec_.align) - len(out)
        out += bytes(pad)
        offsets.append(len(out))
        if sec_.type != SHT_NOBITS:
            out += sec_.data
    shoff = _align(len(out), 8)
    out += bytes(shoff - len(out))
    out += bytes(_SHDR_SIZE[bits])  # SHT_NULL header
    for sec_, off, name_off in zip(sections, offsets, name_offs, strict=True):
        size = sec_.size if sec_.size is not None else len(sec_.data)
        link = index[sec_.link] if sec_.link else 0
        out += struct.pack(e + _SHDR_FMT[bits], name_off, sec_.type, sec_.flags, 0, off, size,
                           link, sec_.info, sec_.align, sec_.entsize)

    ident = b"\x7fELF" + bytes([ELFCLASS64 if bits == 64 else ELFCLASS32,
                                ELFDATA2LSB if e == "<" else ELFDATA2MSB, EV_CURRENT]) + bytes(9)
    hdr = struct.pack(e + "16sHHI" + word * 3 + "IHHHHHH", ident, ET_REL, machine, EV_CURRENT, 0, 0, shoff,
                      flags, _EHDR_SIZE[bits], 0, 0, _SHDR_SIZE[bits], len(sections) + 1, index[".shstrtab"])
    out[: len(hdr)] = hdr
    return bytes(out)


# --------------------------------------------------------------------------
# Reading our own (or any well-formed) ELF just enough to corrupt it.


@dataclass(frozen=True)
class _Geometry:
    bits: int
    e: str
    shoff: int
    shentsize: int
    shnum: int
    shstrndx: int


def _geometry(data: bytes) -> _Geometry:
    if len(data) < 52 or data[:4] != b"\x7fELF":
        raise ValueError("not an ELF image")
    bits = {ELFCLASS32: 32, ELFCLASS64: 64}.get(data[4])
    if bits is None:
        raise ValueError(f"bad EI_CLASS {data[4]}")
    e = {ELFDATA2LSB: "<", ELFDATA2MSB: ">"}.get(data[5])
    if e is None:
        raise ValueError(f"bad EI_DATA {data[5]}")
    f = ELF_HEADER_FIELDS[bits]

    def get(name: str) -> int:
        off, fmt = f[name]
        return int(struct.unpack_from(e + fmt, data, off)[0])

    return _Geometry(bits, e, get("e_shoff"), get("e_shentsize"), get("e_shnum"), get("e_shstrndx"))


def _shdr(data: bytes, g: _Geometry, i: int) -> dict[str, int]:
    vals = struct.unpack_from(g.e + _SHDR_FMT[g.bits], data, g.shoff + i * g.shentsize)
    return dict(zip(_SHDR_FIELDS, vals, strict=True))


def _find_section(data: bytes, name: str | int) -> tuple[_Geometry, int]:
    g = _geometry(data)
    if isinstance(name, int):
        if not 0 <= name < g.shnum:
            raise ValueError(f"no section {name}")
        return g, name
    strs = _shdr(data, g, g.shstrndx)
    for i in range(g.shnum):
        at = strs["sh_offset"] + _shdr(data, g, i)["sh_name"]
        if data[at:data.index(b"\0", at)] == name.encode():
            return g, i
    raise ValueError(f"no section named {name!r}")


def truncate(data: bytes, n: int) -> bytes:
    """The first ``n`` bytes of ``data`` (0 <= n <= len(data))."""
    if not 0 <= n <= len(data):
        raise ValueError(f"cannot truncate {len(data)} bytes to {n}")
    return bytes(data[:n])


def corrupt_header(data: bytes, field: str, value: int | bytes) -> bytes:
    """``data`` with one ELF header field overwritten.

    ``field`` is an ``e_*`` name (``e_shoff``, ``e_shnum``, ``e_shstrndx``,
    ``e_shentsize``, ...) or an ``e_ident`` byte (``EI_CLASS``, ``EI_DATA``,
    ``EI_VERSION``, ``EI_OSABI``, ``EI_ABIVERSION``; ``EI_MAG`` takes 4 bytes).
    The field is located and encoded with the image's original class and
    byte order; a value that does not fit the field raises ValueError.
    """
    g = _geometry(data)
    table = ELF_HEADER_FIELDS[g.bits]
    if field not in table:
        raise ValueError(f"unknown ELF header field {field!r}")
    off, fmt = table[field]
    if fmt == "4s":
        if not isinstance(value, bytes) or len(value) != 4:
            raise ValueError("EI_MAG takes exactly 4 bytes")
        packed = value
    else:
        if not isinstance(value, int) or not 0 <= value < 1 << (8 * struct.calcsize(fmt)):
            raise ValueError(f"{value!r} does not fit {field}")
        packed = struct.pack(g.e + fmt, value)
    out = bytearray(data)
    out[off:off + len(packed)] = packed
    return bytes(out)


def corrupt_section(
    data: bytes,
    name: str | int,
    *,
    offset: int | None = None,
    size: int | None = None,
    link: int | None = None,
    info: int | None = None,
    entsize: int | None = None,
    type: int | None = None,
    flags: int | None = None,
) -> bytes:
    """``data`` with the header of section ``name`` (or index) changed: each
    given keyword replaces sh_offset / sh_size / sh_link / sh_info /
    sh_entsize / sh_type / sh_flags.  Values must fit the field."""
    g, i = _find_section(data, name)
    hdr = _shdr(data, g, i)
    changes = {"sh_offset": offset, "sh_size": size, "sh_link": link, "sh_info": info,
               "sh_entsize": entsize, "sh_type": type, "sh_flags": flags}
    fmt = _SHDR_FMT[g.bits]
    for field, new in changes.items():
        if new is None:
            continue
        code = fmt[_SHDR_FIELDS.index(field)]
        if not 0 <= new < 1 << (8 * struct.calcsize(code)):
            raise ValueError(f"{new!r} does not fit {field}")
        hdr[field] = new
    out = bytearray(data)
    struct.pack_into(g.e + fmt, out, g.shoff + i * g.shentsize, *(hdr[k] for k in _SHDR_FIELDS))
    return bytes(out)


def zero_section(data: bytes, name: str | int) -> bytes:
    """``data`` with the bytes of section ``name`` (or index) set to zero."""
    g, i = _find_section(data, name)
    hdr = _shdr(data, g, i)
    out = bytearray(data)
    if hdr["sh_type"] != SHT_NOBITS:
        start, end = hdr["sh_offset"], hdr["sh_offset"] + hdr["sh_size"]
        if end > len(out):
            raise ValueError(f"section {name!r} extends past the end of the image")
        out[start:end] = bytes(end - start)
    return bytes(out)


def compress(data: bytes, fmt: Literal["xz", "zst", "gz"]) -> bytes:
    """``data`` compressed the way kmod expects ``.ko.xz`` / ``.ko.zst`` /
    ``.ko.gz`` files (xz with a CRC32 check like Kbuild; gzip with mtime 0)."""
    if fmt == "xz":
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    if fmt == "zst":
        return bytes(zstandard.ZstdCompressor().compress(data))
    if fmt == "gz":
        return gzip.compress(data, mtime=0)
    raise ValueError(f"unknown compression {fmt!r}")
