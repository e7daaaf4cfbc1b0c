"""The kernel's own symbols: ``Module.symvers`` and ``System.map``.

Two views of each file:

* the full records (:func:`parse_symvers`), for audits and ABI diffs:
  every line with its CRC, owner, export type and namespace;
* kmod 30's view (:func:`kmod_kernel_table`), which depmod ``-E``/``-F``
  uses, with its exact quirks and messages (tools/depmod.c,
  depmod_load_symvers / depmod_load_system_map; shared/specs/depmod-text.md §6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .inputfiles import read_input
from .model import KernelSymbol, KernelSymbols, fsdecode


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


def load_kernel_symbols(path: str, kind: str) -> KernelSymbols:
    """The kernel's exports with their details, for audits (not kmod's quirks)."""
    data = read_text(path)
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
