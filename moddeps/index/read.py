"""Reading kmod's binary indexes (``modules.*.bin``) and answering lookups as libkmod does.

:class:`Index` checks a whole file when it is built (a bad one is an
:class:`~moddeps.errors.IndexFormatError`), then answers the two lookups of
libkmod/libkmod-index.c@v34.2: an exact one (``modules.dep.bin``,
``modules.builtin.bin``) and a wildcard one, where the stored keys are glibc
``fnmatch`` patterns (the alias, symbol and builtin-alias indexes).
:func:`dump_lines` is ``moddeps index dump``.  The format itself:
:mod:`moddeps.index.format` and docs/index-format.md.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator

from ..errors import IndexFormatError
from ..globmatch import fnmatch
from .format import (
    CHILD_MAX,
    CHILD_WORDS,
    F_CHILDS,
    F_PREFIX,
    F_VALUES,
    HEADER,
    HEADER_SIZE,
    INDEX_MAGIC,
    INDEX_VERSION,
    OFFSET_MASK,
    U32,
    Entry,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .format import ReaderKind

__all__ = ["Index", "dump_lines", "escape_bytes"]

_AddFn = Callable[[Iterable[tuple[int, bytes]]], None]


_WILDCARD = re.compile(rb"[*?\[]")
_WILD_CHILDREN = (0x2A, 0x3F, 0x5B)  # '*', '?', '[': the order libkmod tries them


class Index:
    """A parsed ``.bin`` index, checked as a whole when it is built.

    Construction decodes every node reachable from the root (iteratively, so
    deep tries are fine) and raises :class:`IndexFormatError` for anything a
    reader could trip on: a short file, a wrong magic or major version, a
    node offset inside the header or past the end, a string or table running
    off the end, a child range outside 0..127 or reversed, a node reachable
    twice (a loop or a shared subtree), or node bodies that overlap (more
    node bytes than the file holds).  Parsing therefore always terminates,
    in time linear in the file size.  Harmless oddities libkmod also accepts
    are tolerated: bit 28 of a word, a word with flags but offset 0 (no
    node), empty slots at the ends of a child range, a value count of 0,
    bytes after the last node.

    Nodes are numbered in pre-order (root 0, children by ascending byte).
    """

    __slots__ = ("_first", "_kids", "_prefix", "_values", "name")

    def __init__(self, data: bytes, *, name: str = "<index>") -> None:
        self.name = name
        self._prefix: list[bytes] = []
        self._first: list[int] = []
        self._kids: list[list[int]] = []  # child id per slot first.., -1 = none
        self._values: list[tuple[tuple[int, bytes], ...]] = []
        self._parse(bytes(data))

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str = "<index>") -> Index:
        return cls(data, name=name)

    @classmethod
    def open(cls, path: str) -> Index:
        """Read and parse a file.  OSError propagates (also for a FIFO, a device
        or a file over the input bound: moddeps.inputfiles); bad contents raise
        IndexFormatError."""
        import os

        from ..inputfiles import MAX_INPUT_SIZE, open_regular, read_bounded

        fd, st = open_regular(path)
        try:
            data = read_bounded(fd, st.st_size, MAX_INPUT_SIZE)
        finally:
            os.close(fd)
        return cls(data, name=path)

    # -- parsing -----------------------------------------------------------

    def _fail(self, reason: str) -> IndexFormatError:
        return IndexFormatError(self.name, reason)

    def _parse(self, data: bytes) -> None:
        size = len(data)
        if size < HEADER_SIZE:
            raise self._fail(f"{size} bytes: too short for the 12-byte index header")
        magic, version, root_word = HEADER.unpack_from(data, 0)
        if magic != INDEX_MAGIC:
            raise self._fail(f"bad magic 0x{magic:08x} (expected 0x{INDEX_MAGIC:08x})")
        if version >> 16 != INDEX_VERSION >> 16:
            raise self._fail(f"unsupported index version {version >> 16}.{version & 0xFFFF} (expected major 2)")
        if root_word & OFFSET_MASK == 0:
            return  # libkmod: no root node, every lookup finds nothing
        prefixes = self._prefix
        firsts = self._first
        kids = self._kids
        values = self._values
        find = data.find
        unpack_u32 = U32.unpack_from
        seen: set[int] = set()
        budget = size - HEADER_SIZE  # node bodies never overlap in a real file
        # Pending references: (word, parent id, slot); popped in pre-order.
        todo: list[tuple[int, int, int]] = [(root_word, -1, 0)]
        while todo:
            word, parent, slot = todo.pop()
            off = word & OFFSET_MASK
            where = f"node at offset {off}"
            if off < HEADER_SIZE:
                raise self._fail(f"{where} points into the header")
            if off > size:
                raise self._fail(f"{where} is past the end of the file ({size} bytes)")
            if off in seen:
                raise self._fail(f"{where} is reached twice (a loop or a shared node)")
            seen.add(off)
            p = off
            prefix = b""
            if word & F_PREFIX:
                end = find(b"\0", p)
                if end < 0:
                    raise self._fail(f"{where}: prefix runs past the end of the file")
                prefix = data[p:end]
                p = end + 1
            first = 0
            child_words: tuple[int, ...] = ()
            if word & F_CHILDS:
                if p + 2 > size:
                    raise self._fail(f"{where}: child range runs past the end of the file")
                first = data[p]
                last = data[p + 1]
                if first > last or last >= CHILD_MAX:
                    raise self._fail(f"{where}: bad child range {first}..{last}")
                p += 2
                width = last - first + 1
                if p + 4 * width > size:
                    raise self._fail(f"{where}: child table runs past the end of the file")
                child_words = CHILD_WORDS[width].unpack_from(data, p)
                p += 4 * width
            vals: tuple[tuple[int, bytes], ...] = ()
            if word & F_VALUES:
                if p + 4 > size:
                    raise self._fail(f"{where}: value count runs past the end of the file")
                (count,) = unpack_u32(data, p)
                p += 4
                if count * 5 > size - p:
                    raise self._fail(f"{where}: {count} values cannot fit in the file")
                acc = []
                for _ in range(count):
                    if p + 4 > size:
                        raise self._fail(f"{where}: value runs past the end of the file")
                    (priority,) = unpack_u32(data, p)
                    end = find(b"\0", p + 4)
                    if end < 0:
                        raise self._fail(f"{where}: value runs past the end of the file")
                    acc.append((priority, data[p + 4 : end]))
                    p = end + 1
                vals = tuple(acc)
            budget -= p - off
            if budget < 0:
                raise self._fail("node bodies overlap (they hold more bytes than the file)")
            node = len(prefixes)
            prefixes.append(prefix)
            firsts.append(first)
            kids.append([-1] * len(child_words))
            values.append(vals)
            if parent >= 0:
                kids[parent][slot] = node
            for i in range(len(child_words) - 1, -1, -1):
                if child_words[i] & OFFSET_MASK:
                    todo.append((child_words[i], node, i))

    # -- inspection --------------------------------------------------------

    @property
    def node_count(self) -> int:
        return len(self._prefix)

    def _child(self, node: int, ch: int) -> int:
        slot = ch - self._first[node]
        kids = self._kids[node]
        if 0 <= slot < len(kids):
            return kids[slot]
        return -1

    def _node_values(self, node: int, reader: ReaderKind) -> tuple[tuple[int, bytes], ...] | list[tuple[int, bytes]]:
        vals = self._values[node]
        if reader == "stdio" and len(vals) > 1:
            # libkmod/libkmod-index.c@v30 index_read: the stdio reader
            # rebuilds the list with add_value (insert before the first
            # priority >= own), which reverses runs of equal priority.
            return sorted(reversed(vals), key=lambda pv: pv[0])
        return vals

    def items(self) -> Iterator[Entry]:
        """(key, value, priority) in kmod's dump order (libkmod/libkmod-index.c@v34.2 index_mm_dump):
        pre-order, a node's values in stored order before its children,
        children by ascending byte."""
        if not self._prefix:
            return
        prefixes = self._prefix
        firsts = self._first
        kids = self._kids
        values = self._values
        stack: list[tuple[int, bytes]] = [(0, prefixes[0])]
        while stack:
            node, key = stack.pop()
            for priority, value in values[node]:
                yield key, value, priority
            first = firsts[node]
            row = kids[node]
            for i in range(len(row) - 1, -1, -1):
                child = row[i]
                if child >= 0:
                    stack.append((child, key + bytes((first + i,)) + prefixes[child]))

    def lookup_exact(self, key: bytes, *, reader: ReaderKind = "mmap") -> bytes | None:
        """libkmod's ``index_mm_search``: the first value of exactly ``key``.

        Used for ``modules.dep.bin`` and ``modules.builtin.bin``.  With the
        stdio reader the first value is the lowest priority stored last.
        """
        nul = key.find(0)
        if nul >= 0:
            key = key[:nul]
        if not self._prefix:
            return None
        prefixes = self._prefix
        node = 0
        i = 0
        n = len(key)
        while True:
            prefix = prefixes[node]
            if prefix:
                if key[i : i + len(prefix)] != prefix:
                    return None
                i += len(prefix)
            if i == n:
                vals = self._node_values(node, reader)
                return vals[0][1] if vals else None
            node = self._child(node, key[i])
            if node < 0:
                return None
            i += 1

    def lookup_wildcard(self, query: bytes, *, reader: ReaderKind = "mmap") -> list[tuple[int, bytes]]:
        """libkmod's ``index_mm_searchwild``: (priority, value) of every
        stored pattern that ``query`` matches, in libkmod's result order.

        Descends literally until the stored keys hold a wildcard (``*``,
        ``?``, ``[``); there the rest of each key below is matched with glibc
        ``fnmatch`` against the rest of the query.  Results are merged by
        libkmod's add_value (insert before the first priority >= own), so they
        come out by priority, ties in reverse order of being found.  The
        query is used as given (libkmod normalises it with
        :func:`~moddeps.index.keys.alias_normalize` before calling this).
        """
        nul = query.find(0)
        if nul >= 0:
            query = query[:nul]
        out: list[tuple[int, bytes]] = []
        prios: list[int] = []

        def add(vals: Iterable[tuple[int, bytes]]) -> None:
            for priority, value in vals:
                pos = bisect_left(prios, priority)
                prios.insert(pos, priority)
                out.insert(pos, (priority, value))

        if not self._prefix:
            return out
        prefixes = self._prefix
        node = 0
        i = 0
        n = len(query)
        while True:
            prefix = prefixes[node]
            if prefix:
                m = _WILDCARD.search(prefix)
                if m is not None:
                    j = m.start()
                    if query[i : i + j] == prefix[:j]:
                        self._enumerate(node, prefix[j:], query[i + j :], reader, add)
                    return out
                if query[i : i + len(prefix)] != prefix:
                    return out
                i += len(prefix)
            for wild in _WILD_CHILDREN:
                child = self._child(node, wild)
                if child >= 0:
                    self._enumerate(child, bytes((wild,)) + prefixes[child], query[i:], reader, add)
            if i == n:
                add(self._node_values(node, reader))
                return out
            node = self._child(node, query[i])
            if node < 0:
                return out
            i += 1

    def _enumerate(self, start: int, pattern: bytes, subject: bytes, reader: ReaderKind, add: _AddFn) -> None:
        """libkmod's index_mm_searchwild_all: every node below ``start`` (whose
        pattern so far is ``pattern``) in post-order, children ascending; a
        node's values are added when its full pattern matches ``subject``."""
        prefixes = self._prefix
        firsts = self._first
        kids = self._kids
        values = self._values
        stack: list[tuple[int, bytes, bool]] = [(start, pattern, False)]
        while stack:
            node, pat, expanded = stack.pop()
            if expanded:
                if values[node] and fnmatch(pat, subject):
                    add(self._node_values(node, reader))
                continue
            stack.append((node, pat, True))
            first = firsts[node]
            row = kids[node]
            for i in range(len(row) - 1, -1, -1):
                child = row[i]
                if child >= 0:
                    stack.append((child, pat + bytes((first + i,)) + prefixes[child], False))


# ---------------------------------------------------------------------------
# Dump


def _escape_table() -> list[str]:
    table = []
    for b in range(256):
        if b == 0x5C:
            table.append("\\\\")
        elif b == 0x09:
            table.append("\\t")
        elif b == 0x0A:
            table.append("\\n")
        elif b == 0x0D:
            table.append("\\r")
        elif 0x20 <= b < 0x7F:
            table.append(chr(b))
        else:
            table.append(f"\\x{b:02x}")
    return table


_ESCAPES = _escape_table()


def escape_bytes(data: bytes) -> str:
    """Printable ASCII as is; ``\\\\``, ``\\t``, ``\\n``, ``\\r``; any other byte ``\\xHH``."""
    if data.isascii() and data.isalnum():
        return data.decode("ascii")
    return "".join([_ESCAPES[b] for b in data])


def dump_lines(index: Index) -> Iterator[str]:
    """Readable lines for ``moddeps index dump FILE.bin``, one per stored value.

    Format: ``KEY<TAB>PRIORITY<TAB>VALUE`` (no trailing newline), in kmod's
    dump order (:meth:`Index.items`).  KEY and VALUE are escaped with
    :func:`escape_bytes`: printable ASCII except the backslash stays as is,
    backslash, tab, newline and carriage return become ``\\\\``, ``\\t``,
    ``\\n``, ``\\r``, every other byte ``\\xHH`` (lowercase hex).  So a line
    never contains a raw tab or newline inside a field, and the bytes can be
    recovered exactly.  PRIORITY is decimal.  Example::

        snd_hda_intel\t1234\tkernel/sound/pci/hda/snd-hda-intel.ko: ...
    """
    for key, value, priority in index.items():
        yield f"{escape_bytes(key)}\t{priority}\t{escape_bytes(value)}"
