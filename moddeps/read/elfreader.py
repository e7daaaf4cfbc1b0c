"""Read one kernel module file into a :class:`~moddeps.model.Module`.

This is the only module that knows about ELF, and the only one that imports
pyelftools.  Two decoders live here:

* the **fast path** (:func:`parse_module`), used for every scan: the ELF
  header, the section table and the symbol table are decoded in bulk with
  ``struct`` over the file's bytes.  Per module this costs a fraction of a
  millisecond; building pyelftools objects for the section table alone was
  measured at 1.08 ms per module (4.3 s of CPU for Debian's 4,022-module
  amd64 tree, four times kmod's whole depmod run), and per-symbol objects
  are ~45x slower than bulk decoding;
* the **reference path** (:func:`parse_module_pyelftools`), which extracts the
  same record through pyelftools.  Tests check that both agree on every
  module in ``sample_modules/`` and on the synthetic fixtures.

The rules follow kmod 30 (libkmod-elf.c, libkmod-module.c) exactly; each
quirk is cited beside the code that reproduces it.  Two things kmod does not
read come from the kernel instead: the GPL-only flag of an export (the
section of its ``__ksymtab_*`` symbol, or the ``__kflagstab`` byte of Linux
7.1+) and the CRCs of the extended modversions tables of Linux 6.14+; they
never change what kmod's rules make of a module.
"""

from __future__ import annotations

import os
import struct
import sys
from itertools import compress, repeat

from ..errors import ModuleReadError
from ..model import Export, Import, Module, SignatureFacts, fsdecode, modname_from_path
from ..native import DECLINED, Declined
from ..native import load as _load_native
from .compression import DEFAULT_MAX_SIZE, Deadline

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

#: The C fast path (moddeps/_elfscan.c) for plain, well-formed modules, or None.
_elfscan = _load_native("_elfscan")

_HOST_BO = "<" if sys.byteorder == "little" else ">"

if TYPE_CHECKING:
    #: Equal imports of many modules as one object (see :meth:`Module.from_wire`).
    ImportMemo = dict[Any, Import]

ENOEXEC = "Exec format error"
EINVAL = "Invalid argument"

SHN_UNDEF = 0
SHN_ABS = 0xFFF1
STB_WEAK = 2
STT_SPARC_REGISTER = 13
EM_SPARC = (2, 43)  # EM_SPARC, EM_SPARCV9

MACHINES = {
    2: "SPARC",
    3: "i386",
    8: "MIPS",
    20: "PowerPC",
    21: "PowerPC64",
    22: "S390",
    40: "ARM",
    43: "SPARCv9",
    50: "IA-64",
    62: "x86-64",
    183: "AArch64",
    243: "RISC-V",
    258: "LoongArch",
}


def machine_name(machine: int) -> str:
    return MACHINES.get(machine, f"EM_{machine}")


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


def load_bytes(path: str | os.PathLike[str], max_size: int = DEFAULT_MAX_SIZE) -> tuple[bytes, str | None]:
    """The ELF bytes of a module file (decompressed by magic) and the compression used.

    Read as the scan reads (:func:`moddeps.read.compression.load_module_file`):
    regular files only (a FIFO is refused at once), bounded by ``max_size``
    and by ``$MODDEPS_READ_TIMEOUT``; :class:`ModuleReadError` otherwise.
    """
    from .compression import Deadline, ReadTimedOut, load_module_file, read_timeout, timed_out_error

    p = os.fspath(path)
    try:
        return load_module_file(p, max_size, deadline=Deadline(read_timeout()))
    except ReadTimedOut as exc:
        raise timed_out_error(p, exc) from None


def read_module(
    path: str | os.PathLike[str],
    *,
    relpath: str | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
    memo: ImportMemo | None = None,
) -> Module:
    """Read a module file.  Raises :class:`ModuleReadError` when it is not a usable module.

    ``relpath`` is the path recorded in the Module (relative to the tree, or
    absolute for external modules); it defaults to ``path``.  ``memo``: see
    :func:`parse_module`.
    """
    p = os.fspath(path)
    shown = relpath if relpath is not None else p
    data, kind = load_bytes(p, max_size)
    return parse_module(data, shown, compression=kind, display_path=p, memo=memo)


def read_module_or_broken(
    path: str | os.PathLike[str], *, relpath: str | None = None, max_size: int = DEFAULT_MAX_SIZE,
    memo: ImportMemo | None = None,
) -> Module:
    """Like :func:`read_module`, but a broken file gives a Module with ``error`` set.

    This is what depmod does: an unreadable module still has its line in
    ``modules.dep``, with no dependencies.
    """
    p = os.fspath(path)
    shown = relpath if relpath is not None else p
    try:
        return read_module(p, relpath=shown, max_size=max_size, memo=memo)
    except ModuleReadError as exc:
        return broken_module(shown, exc)


class PlainFile:
    """A module file not read yet, for :func:`parse_module` to read.

    The scan's serial reader hands plain (``.ko``) files over this way: the C
    reader then reads only the parts of the file that it parses
    (``_elfscan.parse_file``: the ELF header, the section table and names,
    the sections of ``_WANTED_SECTIONS``, the CRC tables, the appended
    signature; about a fifth of Debian's modules' bytes), where reading the
    whole file first cost more than parsing it.  Whatever it declines -- a
    file that is not a plain, well-formed module, or that cannot be opened
    or read -- is read whole by :meth:`load`, as
    :func:`~moddeps.read.compression.load_module_file` reads any module,
    and parsed from those bytes, so records and errors stay those of a
    complete read.
    """

    __slots__ = ("path", "deadline", "max_size", "in_part")

    def __init__(self, path: str, deadline: Deadline | None = None, max_size: int = DEFAULT_MAX_SIZE,
                 in_part: bool = True) -> None:
        self.path = path
        self.deadline = deadline
        self.max_size = max_size
        #: False: the C reader declined it already (:func:`read_plain_files`): read it whole at once
        self.in_part = in_part

    def load(self) -> tuple[bytes, str | None]:
        """The whole file's bytes (decompressed by magic) and the compression, under the deadline."""
        from .compression import ReadTimedOut, load_module_file, timed_out_error

        try:
            return load_module_file(self.path, self.max_size, deadline=self.deadline)
        except ReadTimedOut as exc:
            raise timed_out_error(self.path, exc) from None


def reads_in_part() -> bool:
    """Whether :func:`parse_module` reads a :class:`PlainFile` in part (the C reader is built)."""
    return _elfscan is not None


def read_plain_files(
    items: Sequence[tuple[str, str]], start: int, stop: int, memo: ImportMemo | None, timeout: float = 0.0,
    alarm: type[BaseException] | None = None, ahead: bool = False, packed: list[bytes | None] | None = None,
) -> tuple[list[Module], float | None, float | None]:
    """The Modules of ``items[start:stop]`` ((path, shown) pairs), read by the C reader
    (:func:`reads_in_part` must be true) one after the other, each as :func:`parse_module`
    reads a :class:`PlainFile` of it, until one that it does not read.

    Returns ``(modules, started, elapsed)``: ``modules`` are those of the first
    ``len(modules)`` items; when that is fewer than ``stop - start``, the next item was not
    read: it is not a ``.ko``, or the C reader declines it (``elapsed`` None: read it as
    :func:`parse_module` reads what the C reader declines, a ``PlainFile(..., in_part=False)``),
    or it took longer than ``timeout`` seconds (``elapsed``: how long); ``started`` is when its
    read started, on :class:`~moddeps.read.compression.Deadline`'s clock (None: unknown).

    ``timeout`` > 0: the read timeout of each module, enforced with the SIGALRM timer as the
    scan's reader does (see ``_elfscan.parse_files``); the caller holds, in the main thread,
    a SIGALRM handler that raises ``alarm``.  The per-module work of the Python reader --
    a deadline, the timer set and cleared, the record's ``__init__`` -- is done once a call
    or not at all.

    ``ahead``: a C thread (at the lowest priority) opens the files and reads their parts
    while this one parses them; this one reads a file itself when that thread has not come
    to it.  The modules, messages and timeouts are those of the serial read.  Worth it with
    a second core to run on.

    ``packed``: given the scan-cache record of each module read (:func:`moddeps.read.recordcodec.pack`,
    made while the module is fresh; None where it cannot be stored).
    """
    assert _elfscan is not None, "read_plain_files needs the C reader (reads_in_part())"
    got: tuple[list[Module], float | None, float | None] = _elfscan.parse_files(
        items, start, stop, DEFAULT_MAX_SIZE, Module, Export, Import, SignatureFacts, memo, timeout, alarm,
        ahead=ahead, packed=packed)
    return got


def release() -> None:
    """Give back what the C reader keeps between modules: the buffer files are read
    into, and the table that finds a scan's memo's imports (and the memo with it)."""
    if _elfscan is not None:
        _elfscan.release()


def broken_module(shown: str, exc: ModuleReadError) -> Module:
    """The record of an unreadable module: its name and path, and why."""
    return Module(name=modname_from_path(shown), path=shown, error=exc.reason, kmod_error=exc.kmod_reason)


# --------------------------------------------------------------------------
# The fast path
# --------------------------------------------------------------------------


class _Elf:
    """The ELF header and section table of a module, validated as kmod does.

    kmod libkmod-elf.c (kmod_elf_new): size > 16 and ``\\x7fELF``
    (ENOEXEC otherwise); class 1 or 2 with the file larger than the header;
    data encoding 1 or 2; ``e_shentsize`` 40 or 64; the section table inside
    the file; the section-name table inside the file, non-empty and ending in
    NUL (EINVAL otherwise).
    """

    __slots__ = ("data", "path", "bits", "bo", "machine", "shnum", "_names", "_offsets", "_sizes", "_shstr",
                 "_by_name")

    def __init__(self, data: bytes, path: str) -> None:
        from array import array  # (here: the C reader never needs it; start-up)
        self.data = data
        self.path = path
        size = len(data)
        if size <= 16 or data[:4] != b"\x7fELF":
            raise ModuleReadError(path, "not an ELF file (bad magic)", ENOEXEC)
        ei_class, ei_data = data[4], data[5]
        if ei_class == 1:
            self.bits, hdr_size, shentsize_ok = 32, 52, 40
        elif ei_class == 2:
            self.bits, hdr_size, shentsize_ok = 64, 64, 64
        else:
            raise ModuleReadError(path, f"unknown ELF class {ei_class}", EINVAL)
        if size <= hdr_size:
            raise ModuleReadError(path, f"truncated ELF header ({size} bytes)", EINVAL)
        if ei_data == 1:
            self.bo = "<"
        elif ei_data == 2:
            self.bo = ">"
        else:
            raise ModuleReadError(path, f"unknown ELF data encoding {ei_data}", EINVAL)
        if self.bits == 64:
            (machine, shoff, shentsize, shnum, shstrndx) = _unpack(self.bo + "18xH20xQ10xHHH", data, 0)
        else:
            (machine, shoff, shentsize, shnum, shstrndx) = _unpack(self.bo + "18xH12xI10xHHH", data, 0)
        self.machine = machine
        if shentsize != shentsize_ok:
            raise ModuleReadError(path, f"section header size {shentsize}, expected {shentsize_ok}", EINVAL)
        if shoff + shnum * shentsize > size:
            raise ModuleReadError(path, "section header table runs past the end of the file", EINVAL)
        self.shnum = shnum
        # Section header columns, sliced out of word views of the table:
        # Elf64_Shdr is 8 u64 (name|type, flags, addr, offset, size, ...),
        # Elf32_Shdr is 10 u32 (name, type, flags, addr, offset, size, ...).
        table = data[shoff : shoff + shnum * shentsize]
        words = array("I", table)
        if self.bits == 64:
            quads = array("Q", table)
            if self.bo != _HOST_BO:
                words.byteswap()
                quads.byteswap()
            self._names, self._offsets, self._sizes = words[0::16], quads[3::8], quads[4::8]
        else:
            if self.bo != _HOST_BO:
                words.byteswap()
            self._names, self._offsets, self._sizes = words[0::10], words[4::10], words[5::10]
        if shstrndx >= shnum:
            raise ModuleReadError(path, f"section name table index {shstrndx} out of range", EINVAL)
        str_off, str_size = self._offsets[shstrndx], self._sizes[shstrndx]
        if str_size == 0 or str_off + str_size > size or data[str_off + str_size - 1] != 0:
            raise ModuleReadError(path, "section name table is empty, truncated or not NUL-terminated", EINVAL)
        self._shstr = data[str_off : str_off + str_size]
        # kmod libkmod-elf.c (kmod_elf_get_section): scan from index 1, take the
        # first section of that name whose bytes lie inside the file; sections
        # with a name offset outside the name table never match.  Only the
        # names moddeps looks up are located (by searching the name table).
        at: dict[int, bytes] = {}
        shstr = self._shstr
        for want in _WANTED_SECTIONS:
            pos = shstr.find(want + b"\0")
            while pos >= 0:
                at[pos] = want
                pos = shstr.find(want + b"\0", pos + 1)
        by_name: dict[bytes, int] = {}
        offsets, sizes = self._offsets, self._sizes
        for idx in compress(range(1, shnum), map(at.__contains__, self._names[1:])):
            if offsets[idx] + sizes[idx] <= size:
                by_name.setdefault(at[self._names[idx]], idx)
        self._by_name = by_name

    def section_name(self, idx: int) -> bytes:
        off = self._names[idx]
        if off >= len(self._shstr):
            return b""
        return _cstring(self._shstr, off)

    def section(self, name: bytes) -> tuple[int, int] | None:
        """(offset, size) of the first usable section with that name (one of _WANTED_SECTIONS)."""
        idx = self._by_name.get(name)
        if idx is None:
            return None
        return self._offsets[idx], self._sizes[idx]

    def section_bytes(self, name: bytes) -> bytes | None:
        loc = self.section(name)
        if loc is None:
            return None
        return self.data[loc[0] : loc[0] + loc[1]]

    def section_range(self, idx: int) -> tuple[int, int] | None:
        """(offset, size) of section ``idx`` if it exists and lies inside the file."""
        if idx <= 0 or idx >= self.shnum:
            return None
        off, sz = self._offsets[idx], self._sizes[idx]
        if off + sz > len(self.data):
            return None
        return off, sz


_WANTED_SECTIONS = (b".symtab", b".strtab", b".modinfo", b"__versions", b"__ksymtab_strings", b"__kflagstab",
                    b"__version_ext_names", b"__version_ext_crcs")

#: The GPL-only bit of a ``__kflagstab`` byte: KSYM_FLAG_GPL_ONLY = 1 << 0 of
#: ``enum ksym_flags`` in the kernel's include/linux/module_symbol.h (series
#: "scalable symbol flags with __kflagstab", Siddharth Nayyar, 2026, patch 1
#: "define ksym_flags enumeration to represent kernel symbol flags"; the
#: kernel's find_exported_symbol_in_section tests ``flags & KSYM_FLAG_GPL_ONLY``).
KSYM_FLAG_GPL_ONLY = 0x01
#: sizeof(struct kernel_symbol) with a namespace field, per ELF class (see _kflag)
_KSYM_ENTRY_SIZES = {32: (12,), 64: (12, 24)}
_GPL_SECTIONS = (b"__ksymtab_gpl", b"__ksymtab_gpl_future")


def _unpack(fmt: str, data: bytes, offset: int) -> tuple[Any, ...]:
    return struct.unpack_from(fmt, data, offset)


#: Longest symbol or namespace name accepted (the kernel's KSYM_NAME_LEN is 512).
MAX_NAME = 4096


def _cstring(data: bytes, pos: int, limit: int = MAX_NAME) -> bytes:
    """A C string at ``pos``, at most ``limit`` bytes (longer ones are cut there)."""
    end = data.find(b"\0", pos, pos + limit)
    return data[pos : pos + limit] if end < 0 else data[pos:end]


def _split_strings(blob: bytes | None) -> list[bytes]:
    """kmod's string-section split (.modinfo, __ksymtab_strings).

    kmod libkmod-elf.c (kmod_elf_get_strings): skip leading NULs but keep at
    least one byte; with one byte or less left there are no strings; then
    split on NUL and drop the empty pieces.
    """
    if not blob:
        return []
    stripped = blob.lstrip(b"\0")
    if not stripped:
        stripped = blob[-1:]
    if len(stripped) <= 1:
        return []
    return [piece for piece in stripped.split(b"\0") if piece]


# Name prefixes (and whole names) that the reader looks for in .strtab.
_SPECIAL = (b"__crc_", b"__ksymtab_", b"__kstrtabns_", b"init_module\0", b"cleanup_module\0")


class _Symtab:
    """Columns of ``.symtab`` decoded in bulk, with names resolved against ``.strtab``."""

    __slots__ = ("name_offs", "infos", "shndx", "strtab_size", "count", "special", "_raw", "_bits", "_bo",
                 "_data", "_str_off", "_path", "_seen", "_values")

    def __init__(self, elf: _Elf) -> None:
        from array import array  # (here: the C reader never needs it; start-up)
        self.count = 0
        symtab = elf.section(b".symtab")
        strtab = elf.section(b".strtab")
        if symtab is None or strtab is None:
            raise LookupError("no symbol table")
        sym_off, sym_size = symtab
        str_off, str_size = strtab
        entsize = 24 if elf.bits == 64 else 16
        # kmod uses the fixed entry size, not sh_entsize.
        if sym_size % entsize:
            raise LookupError("symbol table size is not a multiple of the entry size")
        raw = elf.data[sym_off : sym_off + sym_size]
        # Column extraction without a Python loop: view the table as 32-bit
        # and 16-bit words and slice out every entry's field.
        # Elf64_Sym: name@0 info@4 other@5 shndx@6 value@8 size@16 (24 bytes)
        # Elf32_Sym: name@0 value@4 size@8 info@12 other@13 shndx@14 (16 bytes)
        words = array("I", raw)
        halves = array("H", raw)
        if elf.bo != _HOST_BO:
            words.byteswap()
            halves.byteswap()
        if elf.bits == 64:
            name_offs = words[0::6]
            infos = raw[4::24]
            shndx = halves[3::12]
        else:
            name_offs = words[0::4]
            infos = raw[12::16]
            shndx = halves[7::8]
        self._raw = raw
        self._bits = elf.bits
        self._bo = elf.bo
        self.count = len(name_offs)
        self.name_offs = name_offs
        self.infos = infos
        self.shndx = shndx
        self.strtab_size = str_size
        self._data = elf.data
        self._str_off = str_off
        self._path = elf.path
        self._seen: dict[int, bytes] = {}
        self._values: array[int] | None = None
        # Indices of the few symbols whose names matter beyond imports
        # (__crc_*, __ksymtab_*, __kstrtabns_*, init_module, cleanup_module),
        # found by searching the string table (memmem, in C) instead of
        # decoding every name: a symbol qualifies iff its name offset is a
        # match position.  A little of the file after the table is searched
        # too, for a name that is not terminated inside it.
        region = elf.data[str_off : min(len(elf.data), str_off + str_size + 16)]
        wanted: set[int] = set()
        for pat in _SPECIAL:
            pos = region.find(pat)
            while pos >= 0:
                wanted.add(pos)
                pos = region.find(pat, pos + 1)
        if wanted:
            self.special = [i for i in compress(range(len(name_offs)), map(wanted.__contains__, name_offs)) if i]
        else:
            self.special = []

    def name(self, i: int) -> bytes:
        """The name of symbol ``i``: a C string read from ``.strtab`` (onwards, as kmod's read would).

        Names longer than :data:`MAX_NAME` are refused: a string table
        without NUL bytes would otherwise give every symbol a copy of the
        rest of the file (hundreds of MB from a 170 KB file).
        """
        off = self.name_offs[i]
        if off >= self.strtab_size:
            return b""
        known = self._seen.get(off)
        if known is not None:
            return known  # many symbols may share one string: one copy
        data = self._data
        start = self._str_off + off
        end = data.find(b"\0", start, start + MAX_NAME + 1)
        if end < 0:
            if len(data) - start <= MAX_NAME:
                name = self._seen[off] = data[start:]
                return name
            raise ModuleReadError(self._path, f"symbol name at .strtab offset {off} is longer than {MAX_NAME} bytes")
        name = self._seen[off] = data[start:end]
        return name

    def names(self, idxs: list[int]) -> list[bytes]:
        """Names of many symbols, as :meth:`name` gives them (one loop, no calls)."""
        data = self._data
        find = data.find
        base = self._str_off
        offs = self.name_offs
        size = self.strtab_size
        out = []
        for i in idxs:
            off = offs[i]
            start = base + off
            end = find(b"\0", start, start + MAX_NAME + 1)
            out.append(data[start:end] if end >= 0 and off < size else self.name(i))
        return out

    def value(self, i: int) -> int:
        """``st_value`` of symbol ``i`` (the column is sliced out on first use)."""
        from array import array  # (here: the C reader never needs it; start-up)
        values = self._values
        if values is None:
            if self._bits == 64:
                column = array("Q", self._raw)
                step = 3  # Elf64_Sym is 3 u64 words; st_value is the second
            else:
                column = array("I", self._raw)
                step = 4  # Elf32_Sym is 4 u32 words; st_value is the second
            if self._bo != _HOST_BO:
                column.byteswap()
            values = self._values = column[1::step]
        return int(values[i])

    def any_name_out_of_range(self) -> bool:
        return len(self.name_offs) > 1 and max(self.name_offs[1:]) >= self.strtab_size


def parse_module(
    data: bytes | memoryview | PlainFile,
    path: str,
    *,
    compression: str | None = None,
    display_path: str | None = None,
    memo: ImportMemo | None = None,
) -> Module:
    """Decode an in-memory (decompressed) module, or a :class:`PlainFile`.  Raises :class:`ModuleReadError`.

    ``memo``, a dict shared by the modules of one scan, makes equal imports
    one object (see :meth:`Module.from_wire`).
    """
    if isinstance(data, PlainFile):
        if _elfscan is not None and data.in_part:  # native.twin written out, as below
            got: tuple[Any, ...] | Declined = _elfscan.parse_file(data.path, data.max_size, Export, Import, memo)
            if got is not DECLINED:
                exp, imp, info, init, exit_, machine, bits, order, sig = got
                return Module(modname_from_path(path), path, exp, imp, info, init, exit_, machine, bits, order, None,
                              None, None, None if sig is None else tuple.__new__(SignatureFacts, sig))
        data, compression = data.load()
    got_c = parse_native(data, path, compression, memo)
    if got_c is not None:
        return got_c
    # the reference for the C reader: every module, every quirk, every error
    if isinstance(data, memoryview):  # (a region of the xz happy path: compression.load_module_data)
        data = data.tobytes()
    elf = _Elf(data, display_path or path)
    try:
        symtab: _Symtab | None = _Symtab(elf)
    except LookupError:
        symtab = None

    exports = _exports(elf, symtab)
    pieces = _split_strings(elf.section_bytes(b".modinfo"))
    modinfo: tuple[tuple[str, str], ...] = ()
    if pieces:
        # one decode for the whole section (pieces hold no NUL), then split;
        # partition()[::2] is (key, value), the value empty without "="
        text = b"\0".join(pieces).decode("utf-8", "surrogateescape")
        modinfo = tuple([s.partition("=")[::2] for s in text.split("\0")])
    imports = _imports(elf, symtab)
    if memo is not None:
        put = memo.setdefault
        imports = tuple([put(i, i) for i in imports])
    has_init = has_exit = False
    if symtab is not None:
        shndx = symtab.shndx
        for i in symtab.special:
            if shndx[i] != SHN_UNDEF:
                nm = symtab.name(i)
                if nm == b"init_module":
                    has_init = True
                elif nm == b"cleanup_module":
                    has_exit = True
    return Module(
        name=modname_from_path(path),
        path=path,
        exports=exports,
        imports=imports,
        modinfo=modinfo,
        has_init=has_init,
        has_exit=has_exit,
        machine=elf.machine,
        elf_class=elf.bits,
        byte_order="little" if elf.bo == "<" else "big",
        compression=compression,
        signature=signature_facts(data),
    )


def parse_native(data: bytes | memoryview, path: str, compression: str | None = None,
                 memo: ImportMemo | None = None) -> Module | None:
    """:func:`parse_module` by the C reader alone: None where it declines the module (or is
    not built), which the Python reader then decides.  The C reader never raises for a
    module's bytes, so this may run in any thread that holds the GIL (the scan's loaders)."""
    if _elfscan is None:
        return None
    # native.twin written out (see native.py): once a module, no call to spare
    w: tuple[Any, ...] | Declined = _elfscan.parse(data, Export, Import, memo)
    if w is DECLINED:
        return None
    exp, imp, info, init, exit_, machine, bits, order = w
    return Module(modname_from_path(path), path, exp, imp, info, init, exit_, machine, bits, order, compression,
                  None, None, signature_facts(data))


def signature_facts(data: bytes | memoryview) -> SignatureFacts | None:
    """The appended signature's facts (moddeps.signature.scan_facts), through
    the C walker when it is built and the signature has the usual shape.

    Cheap for an unsigned module: the trailer's magic is compared at the end
    of the bytes, nothing else is read.
    """
    if _elfscan is not None:  # native.twin written out (see native.py): once a module, no call to spare
        got: tuple[str, str, str, str] | Declined | None = _elfscan.sig_facts(data)
        if got is not DECLINED:
            return None if got is None else tuple.__new__(SignatureFacts, got)  # None: no signature
    from ..signature import scan_facts  # (here: the C walker is the usual path; start-up)

    return scan_facts(data.tobytes() if isinstance(data, memoryview) else data)


def _kflag(elf: _Elf, sec: int, value: int, flags: bytes | None) -> int:
    """The ``__kflagstab`` byte of the ``__ksymtab`` entry at offset ``value`` of section ``sec``; 0 without one.

    Linux 7.1 (series "scalable symbol flags with __kflagstab") dropped
    ``__ksymtab_gpl``: every export has an entry in the one ``__ksymtab`` and
    a flag byte at the same index in ``__kflagstab`` (the kernel reads
    ``flagstab[sym - start]``).  The entry size depends on the architecture,
    so it is taken as size(__ksymtab) / size(__kflagstab), and must be one
    of struct kernel_symbol's (include/linux/export-internal.h): three 32-bit
    offsets (CONFIG_HAVE_ARCH_PREL32_RELOCATIONS) or three pointers, i.e. 12
    bytes, or 24 on 64-bit.  Any other ratio (a flag table shorter or longer
    than the symbol table), or a ``__ksymtab_<name>`` value that is not at
    an entry, gives no flag.
    """
    if not flags:
        return 0
    rng = elf.section_range(sec)
    if rng is None:
        return 0
    entsize, rest = divmod(rng[1], len(flags))
    if rest or entsize not in _KSYM_ENTRY_SIZES[elf.bits] or value % entsize:
        return 0
    idx = value // entsize
    return flags[idx] if idx < len(flags) else 0


def _exports(elf: _Elf, symtab: _Symtab | None) -> tuple[Export, ...]:
    """Exports in kmod's order.

    kmod libkmod-elf.c (kmod_elf_get_symbols): when ``.symtab`` has any
    ``__crc_*`` symbol, those symbols are the export list, in symtab order,
    whatever their binding, type or section; otherwise (no symtab, no
    ``__crc_``, or any name offset outside ``.strtab``) the strings of
    ``__ksymtab_strings`` are, with CRC 0 -- including namespace names, which
    kmod 30 does not filter.

    GPL-only (not read by kmod; the kernel's view): the ``__ksymtab_<name>``
    symbol is in ``__ksymtab_gpl`` / ``__ksymtab_gpl_future`` (up to Linux
    7.0), or in ``__ksymtab`` with KSYM_FLAG_GPL_ONLY in its ``__kflagstab``
    byte (7.1+, see :func:`_kflag`).
    """
    gpl: set[bytes] = set()
    ksym: set[bytes] = set()
    namespaces: dict[bytes, bytes] = {}
    crc_syms: list[int] = []
    kflags = elf.section_bytes(b"__kflagstab")
    if symtab is not None:
        shndx = symtab.shndx
        names = dict(zip(symtab.special, symtab.names(symtab.special)))
        for i in symtab.special:
            nm = names[i]
            if nm.startswith(b"__crc_"):
                crc_syms.append(i)
            elif nm.startswith(b"__ksymtab_"):
                sec = shndx[i]
                ksym.add(nm[10:])
                if 0 < sec < elf.shnum:
                    secname = elf.section_name(sec)
                    if secname in _GPL_SECTIONS or (
                        kflags and secname == b"__ksymtab" and _kflag(elf, sec, symtab.value(i), kflags)
                        & KSYM_FLAG_GPL_ONLY
                    ):
                        gpl.add(nm[10:])
            elif nm.startswith(b"__kstrtabns_"):
                rng = elf.section_range(shndx[i])
                value = symtab.value(i)
                if rng is not None and value < rng[1]:
                    ns = _cstring(elf.data, rng[0] + value)
                    if ns:
                        namespaces[nm[12:]] = ns

    def make(name: bytes, crc: int | None, pseudo: bool = False) -> Export:
        ns = namespaces.get(name)
        return Export(fsdecode(name), crc, name in gpl, fsdecode(ns) if ns else None, pseudo)

    if symtab is not None and crc_syms and not symtab.any_name_out_of_range():
        out = []
        data, bo = elf.data, elf.bo
        for i in crc_syms:
            sec = symtab.shndx[i]
            value = symtab.value(i)
            if sec in (SHN_ABS, SHN_UNDEF):
                crc = value
            else:
                rng = elf.section_range(sec) if sec < elf.shnum else None
                # kmod: st_value > size - 4 (unsigned) or a bad section -> all ones
                if rng is None or rng[1] < 4 or value > rng[1] - 4:
                    crc = 0xFFFFFFFF
                else:
                    crc = struct.unpack_from(bo + "I", data, rng[0] + value)[0]
            out.append(make(names[i][6:], crc))
        return tuple(out)

    strings = _split_strings(elf.section_bytes(b"__ksymtab_strings"))
    all_ns = set(namespaces.values())
    return tuple(make(s, None, pseudo=(s in all_ns and s not in ksym)) for s in strings)


def _imports(elf: _Elf, symtab: _Symtab | None) -> tuple[Import, ...]:
    """Required symbols in kmod's order (libkmod-elf.c, kmod_elf_get_dependency_symbols).

    Undefined symbols of ``.symtab`` in table order (not STT_REGISTER on
    SPARC, non-empty names), each with the CRC of the first ``__versions``
    record of the same name; then the ``__versions`` records no undefined
    symbol matched (``module_layout``), in table order.  One undefined
    symbol whose name offset lies outside ``.strtab`` discards the whole list.

    Linux 6.14+ extended modversions (not read by kmod 34): an undefined
    symbol without a ``__versions`` record takes the CRC of the first
    extended record of its name, marked ``ext_crc``.  (modpost writes the
    same CRC in both tables for a name that fits ``__versions``, and the
    ``__versions`` one is kept: it is the one kmod sees.)  Extended records
    whose name is neither an undefined symbol nor in ``__versions`` (the
    ``module_layout`` of a kernel without basic modversions) come last, in
    table order, marked ``versions_only`` and ``ext_crc``.
    """
    if symtab is None:
        return ()
    vcrcs, vnames = _versions(elf)
    # the first record of each name (later duplicates are left over, as in kmod)
    first_version = dict(zip(reversed(vnames), range(len(vnames) - 1, -1, -1)))

    infos, shndx, offs = symtab.infos, symtab.shndx, symtab.name_offs
    # entry 0 is the null symbol
    undefined = list(compress(range(1, len(shndx)), map((SHN_UNDEF).__eq__, shndx[1:])))
    if elf.machine in EM_SPARC:
        undefined = [i for i in undefined if infos[i] & 0xF != STT_SPARC_REGISTER]
    if undefined and max([offs[i] for i in undefined]) >= symtab.strtab_size:
        return ()
    und_names = symtab.names(undefined)
    if b"" in und_names:
        undefined = [i for i, nm in zip(undefined, und_names) if nm]
        und_names = [nm for nm in und_names if nm]
    vidx = list(map(first_version.get, und_names))
    crcs = [None if v is None else vcrcs[v] for v in vidx]
    weak = [infos[i] >> 4 == STB_WEAK for i in undefined]
    ext = _version_ext(elf)
    from_ext: list[bool] | repeat[bool] = repeat(False)
    if ext:
        from_ext = [crc is None and nm in ext for nm, crc in zip(und_names, crcs)]
        crcs = [ext[nm] if e else crc for nm, crc, e in zip(und_names, crcs, from_ext)]
    # One C-level decode for all names (symbol names hold no NUL).
    decoded = b"\0".join(und_names).decode("utf-8", "surrogateescape").split("\0") if und_names else []
    new = tuple.__new__
    out: list[Import] = [new(Import, t) for t in zip(decoded, crcs, weak, repeat(False), from_ext)]
    if vnames:
        used = set(vidx)
        out.extend(
            new(Import, (fsdecode(vname), crc, False, True, False))
            for idx, (crc, vname) in enumerate(zip(vcrcs, vnames))
            if idx not in used
        )
    if ext:
        known = set(und_names).union(vnames)
        out.extend(new(Import, (fsdecode(nm), crc, False, True, True)) for nm, crc in ext.items() if nm not in known)
    return tuple(out)


def _versions(elf: _Elf) -> tuple[list[int], list[bytes]]:
    """CRCs and names of the ``__versions`` records (64 bytes each: a CRC of 8 bytes
    on 64-bit ELF, 4 on 32-bit, then the NUL-padded name); a size that is not a
    multiple of 64 means no table (kmod)."""
    from array import array  # (here: the C reader never needs it; start-up)
    blob = elf.section_bytes(b"__versions")
    if not blob or len(blob) % 64:
        return [], []
    n = len(blob) // 64
    width = 8 if elf.bits == 64 else 4
    words = array("Q" if width == 8 else "I", blob)
    if elf.bo != _HOST_BO:
        words.byteswap()
    crcs = list(words[0 :: 64 // width])
    find = blob.find
    names = []
    for start in range(width, n * 64, 64):
        end = find(b"\0", start, start + 64 - width)
        names.append(blob[start : start + 64 - width] if end < 0 else blob[start:end])
    return crcs, names


def _version_ext(elf: _Elf) -> dict[bytes, int]:
    """The extended modversions of Linux 6.14+: name -> CRC of its first record, in table order.

    Commit 54ac1ac8edeb ("modules: Support extended MODVERSIONS info") and
    Documentation/kbuild/modules.rst ("Version Information Formats"):
    ``__version_ext_names`` holds the names back to back, each ending in NUL;
    ``__version_ext_crcs`` a 32-bit CRC per name, in the ELF's byte order,
    index-aligned.  Both or neither are present.  As the kernel's walk
    (elf_validity_cache_index_versions, modversion_ext_start/advance) pairs
    them, a name counts only with its NUL, and the pairs stop at the shorter
    table (the kernel refuses a module with more CRCs than names; here the
    extra CRCs are dropped); check_version takes the first record of a name.
    Empty names are dropped (no symbol has one).
    """
    from array import array  # (here: the C reader never needs it; start-up)
    names_blob = elf.section_bytes(b"__version_ext_names")
    crcs_blob = elf.section_bytes(b"__version_ext_crcs")
    if not names_blob or not crcs_blob:
        return {}
    names = names_blob.split(b"\0")[:-1]  # the piece after the last NUL is not a name
    n = min(len(names), len(crcs_blob) // 4)
    words = array("I", crcs_blob[: 4 * n])
    if elf.bo != _HOST_BO:
        words.byteswap()
    out: dict[bytes, int] = {}
    for nm, crc in zip(names, words):
        if nm and nm not in out:
            out[nm] = crc
    return out


# --------------------------------------------------------------------------
# The reference path (pyelftools)
# --------------------------------------------------------------------------


def parse_module_pyelftools(data: bytes, path: str, *, compression: str | None = None) -> Module:
    """The same record as :func:`parse_module`, extracted through pyelftools.

    Slow (per-symbol objects); used to cross-check the fast path.  It
    assumes a well-formed file: validation is the fast path's job.
    """
    import io

    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    elf = ELFFile(io.BytesIO(data))
    bo = "<" if elf.little_endian else ">"
    secs = list(elf.iter_sections())

    def first(name: str) -> Any:
        for s in secs[1:]:
            if s.name == name and s["sh_offset"] + s["sh_size"] <= len(data):
                return s
        return None

    symsec = first(".symtab")
    syms = list(symsec.iter_symbols()) if isinstance(symsec, SymbolTableSection) else []

    gpl: set[str] = set()
    namespaces: dict[str, str] = {}
    ksym: set[str] = set()
    crcs: list[tuple[str, int]] = []
    flagsec = first("__kflagstab")
    flagstab = flagsec.data() if flagsec is not None else b""
    for sym in syms[1:]:
        nm = sym.name
        idx = sym["st_shndx"]
        value = sym["st_value"]
        if nm.startswith("__crc_"):
            if idx in ("SHN_ABS", "SHN_UNDEF"):
                crc = value
            else:
                sec = secs[idx]
                crc = struct.unpack(bo + "I", sec.data()[value : value + 4])[0]
            crcs.append((nm[6:], crc))
        elif nm.startswith("__ksymtab_"):
            ksym.add(nm[10:])
            if isinstance(idx, int) and secs[idx].name in ("__ksymtab_gpl", "__ksymtab_gpl_future"):
                gpl.add(nm[10:])
            elif isinstance(idx, int) and secs[idx].name == "__ksymtab" and flagstab:
                # one flag byte per entry; entry size = size(__ksymtab) / size(__kflagstab)
                entsize, rest = divmod(secs[idx]["sh_size"], len(flagstab))
                ok = not rest and entsize in _KSYM_ENTRY_SIZES[elf.elfclass] and not value % entsize
                at = value // entsize if ok else len(flagstab)
                if at < len(flagstab) and flagstab[at] & KSYM_FLAG_GPL_ONLY:
                    gpl.add(nm[10:])
        elif nm.startswith("__kstrtabns_") and isinstance(idx, int):
            raw = secs[idx].data()[value:]
            ns = raw.split(b"\0", 1)[0]
            if ns:
                namespaces[nm[12:]] = fsdecode(ns)

    if crcs:
        exports = tuple(Export(n, c, n in gpl, namespaces.get(n), False) for n, c in crcs)
    else:
        strsec = first("__ksymtab_strings")
        strings = _split_strings(strsec.data() if strsec is not None else None)
        all_ns = set(namespaces.values())
        exports = tuple(
            Export(fsdecode(s), None, fsdecode(s) in gpl, namespaces.get(fsdecode(s)),
                   fsdecode(s) in all_ns and fsdecode(s) not in ksym)
            for s in strings
        )

    modsec = first(".modinfo")
    modinfo = tuple(
        (fsdecode(k), fsdecode(v))
        for k, _, v in (p.partition(b"=") for p in _split_strings(modsec.data() if modsec is not None else None))
    )

    versions: list[tuple[int, str]] = []
    versec = first("__versions")
    if versec is not None and versec["sh_size"] % 64 == 0:
        vdata = versec.data()
        width = 8 if elf.elfclass == 64 else 4
        for off in range(0, len(vdata), 64):
            crc = int.from_bytes(vdata[off : off + width], "little" if bo == "<" else "big")
            versions.append((crc, fsdecode(vdata[off + width : off + 64].split(b"\0", 1)[0])))
    ext: list[tuple[str, int]] = []
    ext_names, ext_crcs = first("__version_ext_names"), first("__version_ext_crcs")
    if ext_names is not None and ext_crcs is not None:
        terminated = ext_names.data().split(b"\0")[:-1]
        cdata = ext_crcs.data()
        for k, raw in enumerate(terminated[: len(cdata) // 4]):
            ext.append((fsdecode(raw), int.from_bytes(cdata[4 * k : 4 * k + 4], "little" if bo == "<" else "big")))
    imports: list[Import] = []
    used: set[int] = set()
    sparc = elf["e_machine"] in ("EM_SPARC", "EM_SPARCV9")
    for sym in syms[1:]:
        if sym["st_shndx"] != "SHN_UNDEF" or not sym.name:
            continue
        if sparc and sym["st_info"]["type"] == "STT_SPARC_REGISTER":
            continue
        crc_v: int | None = None
        for vi, (vcrc, vname) in enumerate(versions):
            if vname == sym.name:
                crc_v = vcrc
                used.add(vi)
                break
        from_ext = False
        if crc_v is None:
            for ename, ecrc in ext:
                if ename == sym.name:
                    crc_v, from_ext = ecrc, True
                    break
        imports.append(Import(sym.name, crc_v, sym["st_info"]["bind"] == "STB_WEAK", False, from_ext))
    for vi, (vcrc, vname) in enumerate(versions):
        if vi not in used:
            imports.append(Import(vname, vcrc, False, True))
    taken = {i.name for i in imports} | {v[1] for v in versions}
    for ename, ecrc in ext:
        if ename and ename not in taken:
            taken.add(ename)
            imports.append(Import(ename, ecrc, False, True, True))

    defined = {s.name for s in syms[1:] if s["st_shndx"] != "SHN_UNDEF"}
    machine = elf.header["e_machine"]
    from elftools.elf.enums import ENUM_E_MACHINE

    machine_num = ENUM_E_MACHINE.get(machine, machine) if isinstance(machine, str) else machine
    return Module(
        name=modname_from_path(path),
        path=path,
        exports=exports,
        imports=tuple(imports),
        modinfo=modinfo,
        has_init="init_module" in defined,
        has_exit="cleanup_module" in defined,
        machine=int(machine_num),
        elf_class=elf.elfclass,
        byte_order="little" if elf.little_endian else "big",
        compression=compression,
        signature=_reference_signature(data),
    )


def _reference_signature(data: bytes) -> SignatureFacts | None:
    """The signature facts through asn1crypto alone (no walker), for the reference path."""
    from ..signature import UNDECODABLE, facts_of, read_signature, read_trailer

    if read_trailer(data) is None:
        return None
    sig = read_signature(data)
    return SignatureFacts("PKCS#7", "", "", UNDECODABLE) if sig is None else facts_of(sig)

