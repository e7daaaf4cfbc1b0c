"""kmod's binary index files (``modules.*.bin``): writer, reader and lookups.

Specification: shared/specs/index-bin.md (kmod 30, verified against the real
tools).  Section numbers below (§n) refer to it.

File format (kmod 30, "version 2.1"), all integers 32-bit big-endian and
unaligned, strings NUL-terminated without padding::

    header   u32 magic 0xB007F457 | u32 version 0x00020001 | u32 root word
    node     [prefix bytes, NUL]                      if PREFIX
             [u8 first, u8 last, (last-first+1) x u32 child word]
                                                      if CHILDS
             [u32 count, count x (u32 priority, value bytes, NUL)]
                                                      if VALUES

A *word* (the root word and every child slot) is ``offset | flags``: bit 31
PREFIX, bit 30 VALUES, bit 29 CHILDS, bit 28 unused, bits 27..0 the node's
byte offset.  The flags live only in the referencing word, never in the node.
A child slot of 0 means "no child for this byte"; ``first``/``last`` are the
smallest and largest child bytes.

The tree is a radix trie over the keys, in one canonical shape (§6): the root
has an empty prefix; every other node's prefix is the longest common prefix
of the rest of the keys below it (after its edge byte); a node carries values
iff a key ends exactly there.  A node's values are sorted by priority, equal
priorities newest first (kmod tools/depmod.c index_add_value inserts before
the first value whose priority is >= the new one, §6.1); duplicates are kept.

kmod 30 writes nodes in post-order (tools/depmod.c index_write__node: every
child subtree, ascending by byte, then the node itself), so the root is the
last node and its word is patched into the header afterwards (§7).  kmod 34
writes the same nodes in pre-order (tools/depmod.c index_write__node @v34,
commit dada048cbf57 "depmod: Write index in pre-order"): header word 3 is
12 | the root's flags, each node comes before its children, and a child's
offset is its parent's offset + the parent's own size + the whole subtrees
of its earlier siblings.  Node records, flags, values and the empty index
are the same.  ``build_index(..., preorder=True)`` gives that layout.

Reading (§10) follows libkmod/libkmod-index.c: exact lookup for
``modules.dep.bin`` and ``modules.builtin.bin``, wildcard lookup (keys are
glibc ``fnmatch`` patterns) for the alias, symbol and builtin-alias indexes.
"""

from __future__ import annotations

import re
import struct
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

from ..globmatch import fnmatch
from ..native import load

__all__ = [
    "INDEX_MAGIC",
    "INDEX_VERSION",
    "Index",
    "IndexFormatError",
    "Reader",
    "alias_normalize",
    "build_index",
    "build_index_columns",
    "build_index_preorder",
    "builtin_alias_entries",
    "builtin_entries",
    "dump_lines",
    "escape_bytes",
    "py_build_index",
    "py_build_index_columns",
]

INDEX_MAGIC = 0xB007F457
INDEX_VERSION = 0x00020001  # major 2, minor 1; readers check only the major

_F_PREFIX = 0x80000000
_F_VALUES = 0x40000000
_F_CHILDS = 0x20000000
_OFFSET_MASK = 0x0FFFFFFF
_HEADER_SIZE = 12
_CHILD_MAX = 128  # kmod INDEX_CHILDMAX: keys are 7-bit

# kmod's PATH_MAX buffers (shared/util.c, tools/depmod.c).
_PATH_MAX = 4096

_U32 = struct.Struct(">I")
_U32_PAIR = struct.Struct(">II")
_HEADER = struct.Struct(">III")
# One Struct per child-table width, so packing never re-parses a format.
_SLOTS = [struct.Struct(f">{n}I") for n in range(_CHILD_MAX + 1)]

Entry = tuple[bytes, bytes, int]
"""(key, value, priority), as depmod inserts them."""

_AddFn = Callable[[Iterable[tuple[int, bytes]]], None]

Reader = Literal["mmap", "stdio"]
"""Which libkmod 30 reader to imitate (§10.1); they differ only in tie order."""


# ---------------------------------------------------------------------------
# Alias normalisation


def alias_normalize(s: bytes) -> bytes | None:
    """kmod shared/util.c ``alias_normalize``: ``-`` becomes ``_`` outside brackets.

    A ``[...]`` group is copied unchanged up to its ``]`` (so ``[0-9]`` keeps
    its dash); a ``[`` without a later ``]``, or a ``]`` outside a group, is an
    error and gives None (depmod then skips the alias, §9.2).  Like the C
    code, only the first 4095 bytes are looked at (the ``PATH_MAX - 1`` loop
    bound) and the string ends at its first NUL.  The C loop does not bound
    the copy of a bracket group, so a group that starts before byte 4095 is
    copied whole (a buffer overrun in kmod; we keep the bytes).
    """
    nul = s.find(0)
    if nul >= 0:
        s = s[:nul]
    limit = _PATH_MAX - 1
    if 0x5B not in s and 0x5D not in s:  # no '[' or ']': the common case
        return s[:limit].replace(b"-", b"_")
    out = bytearray()
    i = 0
    n = len(s)
    while i < limit and i < n:
        c = s[i]
        if c == 0x2D:  # '-'
            out.append(0x5F)
        elif c == 0x5D:  # ']' outside a group
            return None
        elif c == 0x5B:  # '[': copy through the next ']'
            close = s.find(b"]", i)
            if close < 0:
                return None
            out += s[i : close + 1]
            i = close
        else:
            out.append(c)
        i += 1
    return bytes(out)


# ---------------------------------------------------------------------------
# Writer


def _check_key(key: bytes) -> None:
    """Keys are NUL-free.  Bytes >= 0x80 are accepted (kmod 30 writes them
    inside prefixes); only a *branch* on such a byte is refused, in ``emit``."""
    if 0 in key:
        raise ValueError(f"index key {key!r} contains a NUL byte at position {key.index(0)}")


def _value_lists(entries: Iterable[Entry]) -> dict[bytes, bytes]:
    """Group by key and encode each key's value list (count, then prio+value+NUL).

    kmod tools/depmod.c index_add_value: a new value goes before the first
    existing one whose priority is >= its own, so the list ends up sorted by
    priority with equal priorities in reverse insertion order (§6.1).
    """
    groups: dict[bytes, list[tuple[int, bytes]]] = {}
    for key, value, priority in entries:
        if 0 in value:
            raise ValueError(f"index value {value!r} for key {key!r} contains a NUL byte")
        if not 0 <= priority <= 0xFFFFFFFF:
            raise ValueError(f"index priority {priority} for key {key!r} is not a u32")
        group = groups.get(key)
        if group is None:
            groups[key] = [(priority, value)]
        else:
            group.append((priority, value))
    encoded: dict[bytes, bytes] = {}
    pack2 = _U32_PAIR.pack
    pack1 = _U32.pack
    for key, group in groups.items():
        _check_key(key)
        if len(group) == 1:
            priority, value = group[0]
            encoded[key] = pack2(1, priority) + value + b"\0"
        else:
            # sorted() is stable: reversing first puts equal priorities newest first.
            ordered = sorted(reversed(group), key=lambda pv: pv[0])
            parts = [pack1(len(ordered))]
            for priority, value in ordered:
                parts.append(pack1(priority))
                parts.append(value)
                parts.append(b"\0")
            encoded[key] = b"".join(parts)
    return encoded


def _drop_non_ascii_branches(keys: list[bytes], dropped: list[bytes]) -> list[bytes]:
    """Leave out the keys that would make the trie branch on a byte >= 0x80.

    kmod 30 (tools/depmod.c index_insert) indexes a 128-slot child array with
    such a byte read as a negative char: the file is garbage and depmod
    usually crashes.  Every branch of the trie shows up between two keys that
    are neighbours in sorted order, at their common prefix; the whole subtree
    behind a non-ASCII branch byte goes.  Repeated until no such pair is left.
    The root has no prefix, so the first byte of every key is a branch byte
    there, even for a key alone or keys that all share it.
    """
    while True:
        bad: set[bytes] = {k[:1] for k in keys if k[:1] >= b"\x80"}
        for prev, key in zip(keys, keys[1:]):
            m = min(len(prev), len(key))
            c = next((i for i in range(m) if prev[i] != key[i]), m)
            for k in (prev, key):
                if c < len(k) and k[c] >= 0x80:
                    bad.add(k[: c + 1])
        if not bad:
            return keys
        prefixes = tuple(bad)
        kept = []
        for k in keys:
            if k.startswith(prefixes):
                dropped.append(k)
            else:
                kept.append(k)
        keys = kept


def build_index(entries: Iterable[Entry], dropped: list[bytes] | None = None, *, preorder: bool = False) -> bytes:
    """The ``.bin`` file depmod writes for these entries, byte for byte: kmod 30's
    post-order layout, or with ``preorder`` kmod 34's.

    The C twin in ``moddeps.depmod._trie`` when it is built (12-15x faster:
    4 ms instead of 62 for the 26,000 aliases of a Debian tree), else
    :func:`py_build_index`, the reference; same bytes, same
    :class:`ValueError` cases and messages, same ``dropped`` behaviour.  The
    C code takes only (bytes, bytes, int) tuples: other entry shapes go to
    the Python writer.
    """
    trie = load("depmod._trie")
    if trie is not None:
        items = entries if isinstance(entries, list) else list(entries)
        try:
            data: bytes = trie.build_index(items, dropped, preorder)
        except TypeError:
            pass  # an entry that is not a (bytes, bytes, int) tuple: let Python judge it
        else:
            return data
        return py_build_index(items, dropped, preorder=preorder)
    return py_build_index(entries, dropped, preorder=preorder)


def build_index_columns(keys: list[bytes], values: list[bytes], priorities: list[int] | None = None,
                        dropped: list[bytes] | None = None, *, preorder: bool = False) -> bytes:
    """``build_index(zip(keys, values, priorities), dropped, preorder=preorder)``
    without making the tuples (priorities None: 0, 1, 2, ...); the columns must
    have one length (:class:`ValueError` otherwise).  C twin when built, else
    :func:`py_build_index_columns`."""
    trie = load("depmod._trie")
    if trie is not None:
        try:
            data: bytes = trie.build_index_columns(keys, values, priorities, dropped, preorder)
        except TypeError:
            pass  # not three lists of bytes, bytes and ints: let Python judge them
        else:
            return data
    return py_build_index_columns(keys, values, priorities, dropped, preorder=preorder)


def build_index_preorder(entries: Iterable[Entry], dropped: list[bytes] | None = None) -> bytes:
    """``build_index(entries, dropped, preorder=True)``: kmod >= 34's layout."""
    return build_index(entries, dropped, preorder=True)


def py_build_index_columns(keys: Sequence[bytes], values: Sequence[bytes], priorities: Sequence[int] | None = None,
                           dropped: list[bytes] | None = None, *, preorder: bool = False) -> bytes:
    """The reference for :func:`build_index_columns`."""
    prios = range(len(keys)) if priorities is None else priorities
    if not len(keys) == len(values) == len(prios):
        raise ValueError("build_index_columns(): columns of different lengths")
    return py_build_index(zip(keys, values, prios), dropped, preorder=preorder)


def py_build_index(entries: Iterable[Entry], dropped: list[bytes] | None = None, *, preorder: bool = False) -> bytes:
    """The ``.bin`` file depmod writes for these entries, byte for byte.

    ``entries`` are (key, value, priority) in depmod's insertion order (§9);
    the order matters only between values of one key with equal priorities.
    Keys must be NUL-free (and may branch only on 7-bit bytes), values NUL-free, priorities u32
    (:class:`ValueError` otherwise, unless ``dropped`` is a list: then the keys
    that would branch on a non-ASCII byte are left out and appended to it).
    No entries give the 12-byte header with root word 0x0000000C (§7.3).

    The nodes are kmod 30's post-order (kmod tools/depmod.c index_write__node
    @v30), or with ``preorder`` kmod 34's pre-order (the same function @v34,
    commit dada048cbf57 "depmod: Write index in pre-order"): same nodes, same
    size, other offsets.  A node offset past 28 bits is a :class:`ValueError`.
    """
    values = _value_lists(entries)
    keys = sorted(values)
    if dropped is not None and not all(k.isascii() for k in keys):
        keys = _drop_non_ascii_branches(keys, dropped)
    if preorder:
        return _write_preorder(keys, values)
    return _write_postorder(keys, values)


def _lcp(a: bytes, b: bytes) -> int:
    """Length of the common prefix of two keys, at C speed: the first
    differing byte holds the highest set bit of the XOR."""
    m = min(len(a), len(b))
    x = int.from_bytes(a[:m], "big") ^ int.from_bytes(b[:m], "big")
    return m - (x.bit_length() + 7) // 8


def _branch_error(key: bytes, depth: int, last: int) -> ValueError:
    # kmod indexes a 128-slot child array with a signed char here
    # (tools/depmod.c index_insert): the file it writes is garbage, so there
    # is nothing byte-identical to produce.
    return ValueError(f"index keys {key[:depth + 1]!r}... branch on byte 0x{last:02x}: "
                      "kmod 30 cannot index a non-ASCII byte at a branch")


class _NonAsciiBranch(Exception):
    """The pre-order walk met a branch on a byte >= 0x80 (see _write_preorder)."""


def _too_large(offset: int) -> ValueError:
    return ValueError(f"index of {offset}+ bytes does not fit kmod's 28-bit node offsets")


#: a node completed by :func:`_walk`: (key, parent depth, depth, children, values) -> its entry in the parent
_Close = Callable[[bytes, int, int, list[tuple[int, int]], "bytes | None"], int]


def _walk(keys: Iterable[bytes], values: dict[bytes, bytes], close: _Close) -> list[Any]:
    """The radix trie of sorted distinct ``keys``, ascending or descending:
    each node but the root is handed to ``close(key, parent_depth, depth,
    children, values)`` as soon as it is complete, and what ``close`` returns
    goes into its parent's children as ``(edge byte, result)``; returns the
    root, still open: ``[0, b"", children, values]``.

    A stack holds the open nodes ``[string depth, a key below the node,
    finished children, values]``.  The longest common prefix of a key with
    the previous one says how many open nodes are complete; when it ends
    inside an edge, a branching node is opened at that depth.  A key can end
    on an open node: the empty key (ascending) or a key that is a prefix of
    the keys before it (descending).  No recursion, no node objects.
    """
    root: list[Any] = [0, b"", [], None]
    stack: list[list[Any]] = [root]
    prev = b""
    from_bytes = int.from_bytes
    for key in keys:
        m = min(len(prev), len(key))
        x = from_bytes(prev[:m], "big") ^ from_bytes(key[:m], "big")
        common = m - (x.bit_length() + 7) // 8  # _lcp(prev, key), inlined
        top = stack[-1]
        while top[0] > common:
            stack.pop()
            parent = stack[-1]
            parent_depth = parent[0]
            if parent_depth < common:
                parent = [common, top[1], [], None]
                stack.append(parent)
                parent_depth = common
            k = top[1]
            parent[2].append((k[parent_depth], close(k, parent_depth, top[0], top[2], top[3])))
            top = parent
        if len(key) == top[0]:
            top[3] = values[key]
        else:
            stack.append([len(key), key, [], values[key]])
        prev = key
    while len(stack) > 1:
        top = stack.pop()
        parent = stack[-1]
        k = top[1]
        parent[2].append((k[parent[0]], close(k, parent[0], top[0], top[2], top[3])))
    return root


def _write_postorder(keys: list[bytes], values: dict[bytes, bytes]) -> bytes:
    """kmod 30's layout of the sorted distinct ``keys``.

    How: :func:`_walk` over the keys in ascending order; a completed node is
    written at once (its children were completed, hence written, before it),
    which is exactly kmod's post-order.
    """
    out = bytearray(_HEADER_SIZE)
    extend = out.extend
    append = out.append
    slots = _SLOTS

    def emit(key: bytes, parent_depth: int, depth: int, children: list[tuple[int, int]], vals: bytes | None) -> int:
        # Append one node body; return its word.  The edge byte is
        # key[parent_depth]; the prefix is the rest of the edge label.
        word = len(out)
        if depth - parent_depth > 1:
            extend(key[parent_depth + 1 : depth])
            append(0)
            word |= _F_PREFIX
        if children:
            first = children[0][0]
            last = children[-1][0]
            if last >= _CHILD_MAX:
                raise _branch_error(key, depth, last)
            width = last - first + 1
            if width == len(children):
                words = [w for _, w in children]
            else:
                words = [0] * width
                for ch, w in children:
                    words[ch - first] = w
            append(first)
            append(last)
            extend(slots[width].pack(*words))
            word |= _F_CHILDS
        if vals is not None:
            extend(vals)
            word |= _F_VALUES
        return word

    root = _walk(keys, values, emit)
    # The root is written last, so its offset is the largest: if it fits in
    # 28 bits, every word does (kmod 30 does not check; it would corrupt flags).
    if len(out) > _OFFSET_MASK:
        raise _too_large(len(out))
    # The root never has a prefix (§6), even when every key shares one.
    root_word = emit(b"", -1, 0, root[2], root[3])
    _HEADER.pack_into(out, 0, INDEX_MAGIC, INDEX_VERSION, root_word)
    return bytes(out)


# A child table backwards: the words last to first, then last, first, each
# little-endian; one Struct per width.
_TABLES_BACKWARDS = [struct.Struct(f"<{n}IBB") for n in range(_CHILD_MAX + 1)]
_ZEROS = [bytes(2 + 4 * n) for n in range(_CHILD_MAX + 1)]


def _write_preorder(keys: list[bytes], values: dict[bytes, bytes]) -> bytes:
    """kmod 34's layout of the sorted distinct ``keys``: each node before its
    children, the root at offset 12, a child at its parent's offset + the
    parent's node size + the whole subtrees of its earlier siblings.

    How: :func:`_walk` over the keys in *descending* order.  It completes the nodes in post-order with children
    descending, which is exactly the pre-order file read backwards.  So the
    file is written backwards (``out[i]`` is the byte with ``i`` bytes after
    it), and when a node is complete its distance from the end of the file, E,
    is ``len(out)``.  A child's word is its flags | (T - E), with T the file
    size, known only at the end: each child table keeps flags - E for its
    children and leaves zeros in ``out``, and is packed into place at the end.
    """
    out = bytearray()  # the file after the header, backwards
    extend = out.extend
    append = out.append
    # (start in out, children (byte, flags - E) descending, width, last, first)
    tables: list[tuple[int, list[tuple[int, int]], int, int, int]] = []
    zeros = _ZEROS

    def close(key: bytes, parent_depth: int, depth: int, children: list[tuple[int, int]], vals: bytes | None) -> int:
        # Put one node body in front (the values, the child table, the
        # prefix, each backwards); return flags - E.  The children came in
        # descending byte order.
        flags = 0
        if vals is not None:
            extend(vals[::-1])
            flags = _F_VALUES
        if children:
            first = children[-1][0]
            last = children[0][0]
            if last >= _CHILD_MAX:
                raise _NonAsciiBranch
            width = last - first + 1
            tables.append((len(out), children, width, last, first))
            extend(zeros[width])
            flags |= _F_CHILDS
        if depth - parent_depth > 1:
            append(0)
            extend(key[depth - 1 : parent_depth : -1])
            flags |= _F_PREFIX
        return flags - len(out)

    try:
        root = _walk(reversed(keys), values, close)
        root_flags = close(b"", -1, 0, root[2], root[3]) + len(out)
    except _NonAsciiBranch:
        # This walk meets the nodes in another order than the post-order one:
        # let that one name the node, so that both layouts give one message.
        _write_postorder(keys, values)
        raise AssertionError("the post-order writer found no branch on a non-ASCII byte") from None
    size = _HEADER_SIZE + len(out)
    # The last node has the largest offset: the node of the largest key (a
    # leaf below the node at its common prefix with the key before it), or
    # the root when there is no other node.
    last_key = keys[-1] if keys else b""
    last_offset = _HEADER_SIZE
    if last_key:
        parent_depth = _lcp(keys[-2], last_key) if len(keys) > 1 else 0
        edge = len(last_key) - parent_depth
        last_offset = size - len(values[last_key]) - (edge if edge > 1 else 0)
    if last_offset > _OFFSET_MASK:
        raise _too_large(last_offset)
    packers = _TABLES_BACKWARDS
    for at, children, width, last, first in tables:
        if width == len(children):
            words = [w + size for _, w in children]
        else:
            words = [0] * width
            for ch, w in children:
                words[last - ch] = w + size
        packers[width].pack_into(out, at, *words, last, first)
    out.reverse()
    return _HEADER.pack(INDEX_MAGIC, INDEX_VERSION, _HEADER_SIZE | root_flags) + out


# ---------------------------------------------------------------------------
# Reader


class IndexFormatError(ValueError):
    """A ``.bin`` file that is not a well-formed kmod index.

    ``str(err)`` is one line: the file name, then the reason.
    """

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason

    def __reduce__(self) -> tuple[type[IndexFormatError], tuple[str, str]]:
        return (type(self), (self.name, self.reason))


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
        if size < _HEADER_SIZE:
            raise self._fail(f"{size} bytes: too short for the 12-byte index header")
        magic, version, root_word = _HEADER.unpack_from(data, 0)
        if magic != INDEX_MAGIC:
            raise self._fail(f"bad magic 0x{magic:08x} (expected 0x{INDEX_MAGIC:08x})")
        if version >> 16 != INDEX_VERSION >> 16:
            raise self._fail(f"unsupported index version {version >> 16}.{version & 0xFFFF} (expected major 2)")
        if root_word & _OFFSET_MASK == 0:
            return  # libkmod: no root node, every lookup finds nothing
        prefixes = self._prefix
        firsts = self._first
        kids = self._kids
        values = self._values
        find = data.find
        unpack_u32 = _U32.unpack_from
        seen: set[int] = set()
        budget = size - _HEADER_SIZE  # node bodies never overlap in a real file
        # Pending references: (word, parent id, slot); popped in pre-order.
        todo: list[tuple[int, int, int]] = [(root_word, -1, 0)]
        while todo:
            word, parent, slot = todo.pop()
            off = word & _OFFSET_MASK
            where = f"node at offset {off}"
            if off < _HEADER_SIZE:
                raise self._fail(f"{where} points into the header")
            if off > size:
                raise self._fail(f"{where} is past the end of the file ({size} bytes)")
            if off in seen:
                raise self._fail(f"{where} is reached twice (a loop or a shared node)")
            seen.add(off)
            p = off
            prefix = b""
            if word & _F_PREFIX:
                end = find(b"\0", p)
                if end < 0:
                    raise self._fail(f"{where}: prefix runs past the end of the file")
                prefix = data[p:end]
                p = end + 1
            first = 0
            child_words: tuple[int, ...] = ()
            if word & _F_CHILDS:
                if p + 2 > size:
                    raise self._fail(f"{where}: child range runs past the end of the file")
                first = data[p]
                last = data[p + 1]
                if first > last or last >= _CHILD_MAX:
                    raise self._fail(f"{where}: bad child range {first}..{last}")
                p += 2
                width = last - first + 1
                if p + 4 * width > size:
                    raise self._fail(f"{where}: child table runs past the end of the file")
                child_words = _SLOTS[width].unpack_from(data, p)
                p += 4 * width
            vals: tuple[tuple[int, bytes], ...] = ()
            if word & _F_VALUES:
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
                if child_words[i] & _OFFSET_MASK:
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

    def _node_values(self, node: int, reader: Reader) -> tuple[tuple[int, bytes], ...] | list[tuple[int, bytes]]:
        vals = self._values[node]
        if reader == "stdio" and len(vals) > 1:
            # kmod libkmod/libkmod-index.c index_read: the stdio reader
            # rebuilds the list with add_value (insert before the first
            # priority >= own), which reverses runs of equal priority.
            return sorted(reversed(vals), key=lambda pv: pv[0])
        return vals

    def items(self) -> Iterator[Entry]:
        """(key, value, priority) in kmod's dump order (libkmod index_mm_dump):
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

    def lookup_exact(self, key: bytes, *, reader: Reader = "mmap") -> bytes | None:
        """libkmod ``index_mm_search`` (§10.2): the first value of exactly ``key``.

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

    def lookup_wildcard(self, query: bytes, *, reader: Reader = "mmap") -> list[tuple[int, bytes]]:
        """libkmod ``index_mm_searchwild`` (§10.3): (priority, value) of every
        stored pattern that ``query`` matches, in libkmod's result order.

        Descends literally until the stored keys hold a wildcard (``*``,
        ``?``, ``[``); there the rest of each key below is matched with glibc
        ``fnmatch`` against the rest of the query.  Results are merged by
        libkmod's add_value (insert before the first priority >= own), so they
        come out by priority, ties in reverse order of being found.  The
        query is used as given (libkmod normalises it with
        :func:`alias_normalize` before calling this).
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

    def _enumerate(self, start: int, pattern: bytes, subject: bytes, reader: Reader, add: _AddFn) -> None:
        """libkmod index_mm_searchwild_all: every node below ``start`` (whose
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


# ---------------------------------------------------------------------------
# Entries of the builtin indexes (§9.4, §9.5)


def _is_c_alpha(b: int) -> bool:
    return 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A


def _modname_normalize(name: bytes) -> bytes:
    """kmod shared/util.c modname_normalize: up to the first ``.`` (or NUL, or
    4095 bytes), with ``-`` → ``_``."""
    dot = name.find(b".")
    if dot >= 0:
        name = name[:dot]
    return name[: _PATH_MAX - 1].replace(b"-", b"_")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def builtin_entries(modules_builtin: bytes, messages: list[str] | None = None) -> list[Entry]:
    """Entries of ``modules.builtin.bin`` from the text of ``modules.builtin``.

    kmod 30 tools/depmod.c output_builtin_bin, reproduced with its quirks:

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
        newline = find(b"\n", pos, pos + _PATH_MAX - 1)
        end = min(size, pos + _PATH_MAX - 1) if newline < 0 else newline + 1
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
    """The FILE* reads of kmod tools/depmod.c output_builtin_alias_bin, on bytes."""

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
        limit = min(size, pos + _PATH_MAX)
        stop = data.find(endchar, pos, limit)
        if endchar != 0:
            nul = data.find(0, pos, limit)
            if nul >= 0 and (stop < 0 or nul < stop):
                stop = nul
        if stop >= 0:
            self.pos = stop + 1
            return data[pos:stop] if data[stop] == endchar else b""
        if limit - pos < _PATH_MAX:  # EOF before the buffer filled up
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
        return full[: _PATH_MAX - 1] if data[limit] == endchar else b""

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

    kmod 30 tools/depmod.c output_builtin_alias_bin parses the records
    ``modname.key=value\\0`` as a stream with three "read until" steps, and
    we do the same, quirks included (§9.5):

    * A: read the module name up to ``.``; a record without ``.`` (or an empty
      name) is dropped;
    * B: read the key up to ``=``; if it is not ``alias`` skip to the next
      NUL -- when the record had no ``=`` that NUL ends the *following*
      record, which is swallowed;
    * C: read the value up to NUL; an empty value, or a last record without
      NUL, is dropped;
    * key = :func:`alias_normalize` (value); on an unmatched bracket
      ``WARNING: Unmatched bracket in VALUE`` and the record is dropped;
    * value = the module name exactly as written (not normalised),
      priority 0, so equal keys keep reverse file order (§6.1).

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
