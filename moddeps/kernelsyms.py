"""The kernel's own symbols: ``Module.symvers`` and ``System.map``.

Two views of each file:

* the full records (:func:`parse_symvers`), for audits and ABI diffs:
  every line with its CRC, owner, export type and namespace;
* kmod 30's view (:func:`kmod_kernel_table`), which depmod ``-E``/``-F``
  uses, with its exact quirks and messages (kmod tools/depmod.c,
  depmod_load_symvers / depmod_load_system_map @v30).

Before a file is used as *the kernel's* symbol list by ``audit``, ``compat``
or ``diff`` it is validated (:func:`validate`): a wrong file would not fail,
it would mislead -- Debian's ``/boot/System.map-VER`` is an 83-byte
placeholder ("The real System.map is in the linux-image-<version>-dbg
package"), read naively it lists no export, and every kernel symbol becomes
"unknown".  ``depmod -E/-F`` keeps kmod's behaviour (it reads any file and
says what it skips), so :func:`kmod_kernel_table` does not validate.
"""

from __future__ import annotations

import re

from .errors import InputError
from .inputfiles import read_input
from .model import KernelSymbol, KernelSymbols, fsdecode
from .records import dataclass


@dataclass(frozen=True, slots=True)
class SymversEntry:
    """One line of a ``Module.symvers`` (modpost's output)."""

    crc: int
    name: str
    module: str  # "vmlinux" or the module's path without ".ko" (e.g. "fs/jbd2/jbd2")
    export_type: str  # "EXPORT_SYMBOL", "EXPORT_SYMBOL_GPL", ...
    namespace: str | None

    @property
    def gpl_only(self) -> bool:
        return self.export_type in ("EXPORT_SYMBOL_GPL", "EXPORT_SYMBOL_GPL_FUTURE")


def read_text(path: str) -> bytes:
    """The bytes of a symbol list (or another input file named on the command line).

    A regular file only, opened without blocking and read with a size bound
    (:mod:`moddeps.inputfiles`): a FIFO or ``/dev/zero`` in its place gives
    one InputError line naming the file, never a wait or a MemoryError."""
    return read_input(path)


def parse_symvers(data: bytes) -> list[SymversEntry]:
    """All well-formed lines of a Module.symvers (tab-separated, 4 or 5 fields)."""
    out: list[SymversEntry] = []
    for line in data.split(b"\n"):
        fields = line.split(b"\t")
        if len(fields) < 3:
            continue
        try:
            crc = int(fields[0], 16)
        except ValueError:
            continue
        export_type = fsdecode(fields[3]) if len(fields) > 3 else "EXPORT_SYMBOL"
        ns = fsdecode(fields[4]) if len(fields) > 4 and fields[4] else None
        out.append(SymversEntry(crc, fsdecode(fields[1]), fsdecode(fields[2]), export_type, ns))
    return out


_STRTOULL16 = re.compile(rb"[ \t\n\v\f\r]*[+-]?(?:0[xX])?[0-9a-fA-F]+")


def _strip_prefix(name: bytes, prefix: bytes | None) -> bytes:
    if prefix and name[:1] == prefix:
        return name[1:]
    return name


def kmod_kernel_table(
    data: bytes, path: str, kind: str, prefix: bytes | None = None, errno_text: str = "Success"
) -> tuple[dict[bytes, int], list[str]]:
    """The kernel part of depmod's symbol table and the messages kmod prints.

    ``kind`` is "symvers" (``-E``) or "system.map" (``-F``).  The three fake
    kernel symbols are *not* added here (see :mod:`moddeps.resolve`).

    ``errno_text``: kmod prints "Invalid symbol version VER: %m" with whatever
    errno is left over (strtoull does not set it for junk): at that point
    libkmod has just tried to open DIRNAME/modules.softdep, so it is "No such
    file or directory" when that file is missing and "Success" otherwise; a
    hex value that overflows leaves "Numerical result out of range" for the
    rest of the file.
    """
    table: dict[bytes, int] = {}
    messages: list[str] = []
    lines = data.split(b"\n")
    has_final_newline = data.endswith(b"\n")
    for lineno, line in enumerate(lines, start=1):
        if lineno == len(lines) and not line:
            break
        raw = line + (b"\n" if (lineno < len(lines) or has_final_newline) else b"")
        if kind == "symvers":
            # kmod splits on " \t" only: the newline stays in the last field,
            # so a 3-field line has "vmlinux\n" and is skipped.
            fields = [f for f in re.split(rb"[ \t]+", raw) if f]
            if len(fields) < 3 or fields[2] != b"vmlinux":
                continue
            ver = fields[0]
            m = _STRTOULL16.match(ver)
            value = 0
            if m is not None:
                text = m.group(0).strip()
                neg = text.startswith(b"-")
                value = int(text.lstrip(b"+-"), 16)
                if value > 0xFFFFFFFFFFFFFFFF:  # strtoull: ERANGE, ULLONG_MAX
                    errno_text = "Numerical result out of range"
                    value = 0xFFFFFFFFFFFFFFFF
                elif neg:
                    value = (-value) & 0xFFFFFFFFFFFFFFFF
            if m is None or m.end() != len(ver):
                messages.append(f"ERROR: {path}:{lineno} Invalid symbol version {fsdecode(ver)}: {errno_text}")
                continue
            table[_strip_prefix(fields[1], prefix)] = value
        else:
            first = raw.find(b" ")
            second = raw.find(b" ", first + 1) if first >= 0 else -1
            if first < 0 or second < 0:
                messages.append(f"ERROR: {path}:{lineno}: invalid line: {fsdecode(raw)}")
                continue
            symbol = raw[second + 1 :]
            if symbol.endswith(b"\n"):
                symbol = symbol[:-1]
            symbol = _strip_prefix(symbol, prefix)
            if symbol.startswith(b"__ksymtab_"):
                table[symbol[10:]] = 0
    return table, messages


class KernelSymbolsError(InputError):
    """A file given (or found) as the kernel's symbol list is not one: one line naming it and why."""

    code = "bad-kernel-symbols"

    def __init__(self, path: str, kind: str, reason: str) -> None:
        from .model import printable

        what = "Module.symvers" if kind == "symvers" else "System.map"
        super().__init__(f"{printable(path)}: not a usable {what}: {reason}")
        self.path = path
        self.kind = kind
        self.reason = reason


# modpost's Module.symvers line (scripts/mod/modpost.c: write_dump):
#   0xCRC \t NAME \t MODULE \t EXPORT_TYPE \t NAMESPACE   (namespace empty or absent;
# before Linux 5.4 the 4-column form CRC NAME MODULE EXPORT_TYPE).
_SYMVERS_LINE = re.compile(rb"0x[0-9a-fA-F]{1,16}\t[^\t\s]+\t[^\t\s]+\tEXPORT_[A-Z_]+(?:\t[^\t\s]*)?")
# System.map (scripts/mksysmap: nm -n output): ADDRESS TYPE NAME, one space apart;
# /proc/kallsyms adds "\t[module]" to module symbols.
_SYSTEM_MAP_LINE = re.compile(rb"[0-9a-fA-F]{1,16} [A-Za-z?] [^\s]+(?:\t\[[^\s\]]+\])?")


def _describe(line: bytes) -> str:
    from .model import printable

    text = printable(fsdecode(line[:60]))
    return repr(text + ("…" if len(line) > 60 else ""))


def validate(data: bytes, path: str, kind: str) -> None:
    """Refuse a file that is not a real ``Module.symvers`` / ``System.map``.

    * A ``Module.symvers`` has, on every line, 4 or 5 tab-separated columns
      (a ``0x`` CRC, the name, the owner, ``EXPORT_...``, the namespace) and
      lists exports of ``vmlinux`` (a module build's own Module.symvers lists
      only its modules' exports: it says nothing about the kernel).
    * A ``System.map`` has ``ADDRESS TYPE NAME`` lines and holds the kernel's
      export table entries (``__ksymtab_NAME``), which is what depmod ``-F``
      and moddeps read from it.

    Raises :class:`KernelSymbolsError` naming the file and the first reason.
    """
    if not data.strip():
        raise KernelSymbolsError(path, kind, "the file is empty")
    if b"\0" in data[:4096] or data[:4] == b"\x7fELF":
        raise KernelSymbolsError(path, kind, "binary data, not a text symbol list")
    lines = data.split(b"\n")
    if kind == "symvers":
        vmlinux = 0
        for lineno, line in enumerate(lines, start=1):
            if not line:
                continue
            if _SYMVERS_LINE.fullmatch(line) is None:
                ncols = len(line.split(b"\t"))
                raise KernelSymbolsError(path, kind, f"line {lineno} is not 'CRC<TAB>NAME<TAB>MODULE<TAB>EXPORT_TYPE"
                                         f"[<TAB>NAMESPACE]' ({ncols} tab-separated column(s): {_describe(line)})")
            if line.split(b"\t")[2] == b"vmlinux":
                vmlinux += 1
        if not vmlinux:
            raise KernelSymbolsError(path, kind, "it lists no export of vmlinux (the Module.symvers of an external "
                                     "module build? the kernel's is in its linux-headers package)")
        return
    ksymtab = 0
    for lineno, line in enumerate(lines, start=1):
        if not line:
            continue
        if _SYSTEM_MAP_LINE.fullmatch(line) is None:
            hint = ""
            if b"System.map" in line or b"dbg" in line:
                hint = " -- a placeholder; the real System.map is in the kernel's debug package"
            raise KernelSymbolsError(path, kind, f"line {lineno} is not 'ADDRESS TYPE NAME': {_describe(line)}{hint}")
        if line.split(b" ", 2)[2].startswith(b"__ksymtab_"):
            ksymtab += 1
    if not ksymtab:
        raise KernelSymbolsError(path, kind, "it holds no __ksymtab_ entry, so it lists none of the kernel's exports")


def load_kernel_symbols(path: str, kind: str) -> KernelSymbols:
    """The kernel's exports with their details, for audits (not kmod's quirks).

    The file is validated first (:func:`validate`): junk or a placeholder
    raises :class:`KernelSymbolsError` (an input error, exit 66)."""
    data = read_text(path)
    validate(data, path, kind)
    symbols: dict[str, KernelSymbol] = {}
    if kind == "symvers":
        for e in parse_symvers(data):
            if e.module == "vmlinux":
                symbols[e.name] = KernelSymbol(e.name, e.crc, e.gpl_only, e.namespace)
    else:
        for line in data.split(b"\n"):
            parts = line.split(b" ")
            if len(parts) >= 3 and parts[2].startswith(b"__ksymtab_"):
                name = fsdecode(parts[2][10:])
                symbols[name] = KernelSymbol(name, None)
    return KernelSymbols(source=path, kind=kind, symbols=symbols)
