"""The entries of the builtin indexes, from ``modules.builtin`` and ``modules.builtin.modinfo``.

depmod reads both files with C stdio and fixed PATH_MAX buffers, and what it
stores follows from how those reads cut the text (kmod
tools/depmod.c:output_builtin_bin@v30 and output_builtin_alias_bin@v30).
These parsers work on the whole file as bytes and reproduce those cuts, the
odd ones included, and kmod's diagnostics; the entries then go to
:func:`moddeps.index.write.build_index` like any others.
"""

from __future__ import annotations

from ..kmodnames import PATH_MAX
from .format import Entry
from .keys import alias_normalize

__all__ = ["builtin_alias_entries", "builtin_entries"]


def _is_c_alpha(b: int) -> bool:
    return 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A


def _modname_normalize(name: bytes) -> bytes:
    """kmod's modname_normalize on bytes: up to the first ``.`` (or NUL, or
    4095 bytes), with ``-`` → ``_``.  The same rule as
    :func:`moddeps.kmodnames.modname_normalize`, which works on text: here a
    byte is a byte, whatever its encoding, and the limit counts bytes."""
    dot = name.find(b".")
    if dot >= 0:
        name = name[:dot]
    return name[: PATH_MAX - 1].replace(b"-", b"_")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def builtin_entries(modules_builtin: bytes, messages: list[str] | None = None) -> list[Entry]:
    """Entries of ``modules.builtin.bin`` from the text of ``modules.builtin``.

    kmod tools/depmod.c:output_builtin_bin@v30, reproduced with its quirks:

    * lines are read with ``fgets`` into a 4096-byte buffer: a line longer
      than 4095 bytes is handled as several lines, and **the newline stays
      in the line**; after a NUL byte the rest of the line is ignored (C
      string);
    * a line not starting with an ASCII letter is rejected with
      ``ERROR: Invalid modules.builtin line: LINE`` (LINE still holding its
      newline, so kmod's output shows an empty line after it);
    * key = kmod's module name of the line: the text after the last ``/``, cut
      at the first ``.``, ``-`` → ``_``.  A name without ``.`` therefore keeps
      its newline (``kernel/d/qux\\n`` → key ``qux\\n``, verified with kmod 30);
    * when the text after the last ``/`` is empty (only possible for a last
      line without newline, or a 4095-byte fragment, ending in ``/``),
      path_to_modname fails and kmod reuses its buffer: the previous line's
      key is inserted again.  For the very first key that buffer is
      uninitialised stack memory (kmod inserted bits of the kernel command
      line in a test); we insert nothing then;
    * value ``b""``, priority 0, duplicates kept.

    Diagnostics are appended to ``messages`` (kmod's text after the
    ``depmod: `` prefix, without the final newline kmod adds).
    """
    entries: list[Entry] = []
    modname: bytes | None = None
    size = len(modules_builtin)
    pos = 0
    find = modules_builtin.find
    while pos < size:
        newline = find(b"\n", pos, pos + PATH_MAX - 1)
        end = min(size, pos + PATH_MAX - 1) if newline < 0 else newline + 1
        line = modules_builtin[pos:end]
        pos = end
        nul = line.find(0)
        if nul >= 0:
            line = line[:nul]
        if not line or not _is_c_alpha(line[0]):
            if messages is not None:
                messages.append("ERROR: Invalid modules.builtin line: " + _decode(line))
            continue
        base = line[line.rfind(b"/") + 1 :]
        if base:
            modname = _modname_normalize(base)
        if modname is not None:
            entries.append((modname, b"", 0))
    return entries


class _Stream:
    """The FILE* reads of kmod tools/depmod.c:output_builtin_alias_bin@v30, on bytes."""

    __slots__ = ("data", "eof", "messages", "pos")

    def __init__(self, data: bytes, messages: list[str] | None) -> None:
        self.data = data
        self.pos = 0
        self.eof = False  # feof(): set once a read hit the end
        self.messages = messages

    def read_to(self, endchar: int) -> bytes:
        """kmod flush_stream_to with a PATH_MAX buffer.

        Reads bytes until ``endchar``, NUL or EOF (the terminator is
        consumed).  Returns what was read if it stopped at ``endchar``, else
        b"".  After 4096 bytes without a terminator the buffer is full: kmod
        warns "Could not flush stream", has consumed (and lost) one more
        byte, keeps 4095 bytes, and still returns them only if that extra
        byte was ``endchar``.
        """
        data = self.data
        pos = self.pos
        size = len(data)
        limit = min(size, pos + PATH_MAX)
        stop = data.find(endchar, pos, limit)
        if endchar != 0:
            nul = data.find(0, pos, limit)
            if nul >= 0 and (stop < 0 or nul < stop):
                stop = nul
        if stop >= 0:
            self.pos = stop + 1
            return data[pos:stop] if data[stop] == endchar else b""
        if limit - pos < PATH_MAX:  # EOF before the buffer filled up
            self.pos = size
            self.eof = True
            return b""
        full = data[pos:limit]
        if self.messages is not None:
            self.messages.append(f"WARNING: Could not flush stream: 28. Partial content: {_decode(full)}")
        if limit == size:
            self.pos = size
            self.eof = True
            return b""
        self.pos = limit + 1
        return full[: PATH_MAX - 1] if data[limit] == endchar else b""

    def skip_record(self) -> None:
        """kmod flush_stream(in, '\\0'): skip through the next NUL or to EOF."""
        nul = self.data.find(0, self.pos)
        if nul < 0:
            self.pos = len(self.data)
            self.eof = True
        else:
            self.pos = nul + 1


def builtin_alias_entries(modules_builtin_modinfo: bytes, messages: list[str] | None = None) -> list[Entry]:
    """Entries of ``modules.builtin.alias.bin`` from ``modules.builtin.modinfo``.

    kmod tools/depmod.c:output_builtin_alias_bin@v30 parses the records
    ``modname.key=value\\0`` as a stream with three "read until" steps, and
    we do the same, quirks included:

    * A: read the module name up to ``.``; a record without ``.`` (or an empty
      name) is dropped;
    * B: read the key up to ``=``; if it is not ``alias`` skip to the next
      NUL -- when the record had no ``=`` that NUL ends the *following*
      record, which is swallowed;
    * C: read the value up to NUL; an empty value, or a last record without
      NUL, is dropped;
    * key = :func:`~moddeps.index.keys.alias_normalize` (value); on an unmatched bracket
      ``WARNING: Unmatched bracket in VALUE`` and the record is dropped;
    * value = the module name exactly as written (not normalised),
      priority 0, so equal keys keep reverse file order (the value order of
      :mod:`moddeps.index.format`).

    Diagnostics are appended to ``messages`` like :func:`builtin_entries`.
    """
    entries: list[Entry] = []
    stream = _Stream(modules_builtin_modinfo, messages)
    while not stream.eof:
        modname = stream.read_to(0x2E)  # '.'
        if not modname:
            continue
        if stream.read_to(0x3D) != b"alias":  # '='
            stream.skip_record()
            continue
        value = stream.read_to(0)
        if not value:
            continue
        key = alias_normalize(value)
        if key is None:
            if messages is not None:
                messages.append("WARNING: Unmatched bracket in " + _decode(value))
            continue
        entries.append((key, modname, 0))
    return entries
