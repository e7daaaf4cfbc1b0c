"""Writing kmod's binary indexes (``modules.*.bin``) byte for byte as depmod does.

:func:`build_index` (and :func:`build_index_columns`, which takes three lists
instead of tuples) give the file for a list of (key, value, priority)
entries, in kmod 30's post-order layout or, with ``preorder``, kmod 34's
pre-order one (see :mod:`moddeps.index.format` and docs/index-format.md).
They use the C twin in ``moddeps.depmod._trie`` when it is built and fall
back to :func:`py_build_index` / :func:`py_build_index_columns`, the
references: same bytes, same :class:`ValueError` cases and messages.
:func:`start_index` and :func:`start_index_columns` build the same file in a
thread of the C code's own, without the GIL, while the caller goes on: their
``result()`` gives it (or raises what the builders raise).

Both writers walk the sorted distinct keys once with an explicit stack
(:func:`_walk`), never building node objects: post-order appends each node as
it completes; pre-order walks the keys in descending order and writes the
file back to front.

A branch on a byte >= 0x80 cannot be written the way kmod 30 writes it (its
child table is indexed with a signed char, so the result is garbage); such
keys are refused, or left out and reported when the caller asks for that.
"""

from __future__ import annotations

import struct

from ..native import load, twin
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
    U32_PAIR,
    Entry,
)

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any, Protocol

    class Started(Protocol):
        """An index being built (:func:`start_index`): ``_trie.PendingIndex``, or :class:`Built`."""

        def result(self) -> bytes: ...

__all__ = ["Built", "build_index", "build_index_columns", "build_index_preorder", "py_build_index",
           "py_build_index_columns", "start_index", "start_index_columns"]


def _check_key(key: bytes) -> None:
    """Keys are NUL-free.  Bytes >= 0x80 are accepted (kmod 30 writes them
    inside prefixes); only a *branch* on such a byte is refused, in ``emit``."""
    if 0 in key:
        raise ValueError(f"index key {key!r} contains a NUL byte at position {key.index(0)}")


def _value_lists(entries: Iterable[Entry]) -> dict[bytes, bytes]:
    """Group by key and encode each key's value list (count, then prio+value+NUL).

    As kmod tools/depmod.c:index_add_value@v34.2: a new value goes before the
    first existing one whose priority is >= its own, so the list ends up
    sorted by priority with equal priorities in reverse insertion order.
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
    pack2 = U32_PAIR.pack
    pack1 = U32.pack
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

    kmod 30 (kmod tools/depmod.c:index_insert@v30) indexes a 128-slot child array with
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
    items = entries if trie is None or isinstance(entries, list) else list(entries)  # an iterator is read once
    return twin(trie, lambda t: t.build_index(items, dropped, preorder),
                lambda: py_build_index(items, dropped, preorder=preorder))


def build_index_columns(keys: list[bytes], values: list[bytes], priorities: list[int] | None = None,
                        dropped: list[bytes] | None = None, *, preorder: bool = False) -> bytes:
    """``build_index(zip(keys, values, priorities), dropped, preorder=preorder)``
    without making the tuples (priorities None: 0, 1, 2, ...); the columns must
    have one length (:class:`ValueError` otherwise).  C twin when built, else
    :func:`py_build_index_columns`."""
    return twin(load("depmod._trie"),
                lambda trie: trie.build_index_columns(keys, values, priorities, dropped, preorder),
                lambda: py_build_index_columns(keys, values, priorities, dropped, preorder=preorder))


class Built:
    """An index already built: what :func:`start_index` gives when the C builder is not there
    or does not take the entries (the Python writer ran at once)."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def result(self) -> bytes:
        return self._data


def start_index(entries: Iterable[Entry], dropped: list[bytes] | None = None, *, preorder: bool = False) -> Started:
    """:func:`build_index`, sorted and laid out by a thread of the C code's own, which holds
    no GIL (``_trie.start_index``): the entries are checked here (the same exceptions), its
    ``result()`` waits for the bytes (or raises what :func:`build_index` raises).  ``dropped``
    is complete on return: the C code builds at once when a key may be dropped."""
    trie = load("depmod._trie")
    items = entries if trie is None or isinstance(entries, list) else list(entries)  # an iterator is read once
    return _started(twin(trie, lambda t: t.start_index(items, dropped, preorder),
                         lambda: py_build_index(items, dropped, preorder=preorder)))


def start_index_columns(keys: list[bytes], values: list[bytes], priorities: list[int] | None = None,
                        dropped: list[bytes] | None = None, *, preorder: bool = False) -> Started:
    """:func:`start_index` of three columns, as :func:`build_index_columns` takes them."""
    return _started(twin(load("depmod._trie"),
                         lambda trie: trie.start_index_columns(keys, values, priorities, dropped, preorder),
                         lambda: py_build_index_columns(keys, values, priorities, dropped, preorder=preorder)))


def _started(got: Any) -> Started:
    """A pending index, or bytes built already (the C code's at once, or the Python writer's)."""
    return Built(got) if isinstance(got, bytes) else got


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

    ``entries`` are (key, value, priority) in depmod's insertion order;
    the order matters only between values of one key with equal priorities.
    Keys must be NUL-free (and may branch only on 7-bit bytes), values NUL-free, priorities u32
    (:class:`ValueError` otherwise, unless ``dropped`` is a list: then the keys
    that would branch on a non-ASCII byte are left out and appended to it).
    No entries give the 12-byte header with root word 0x0000000C.

    The nodes are kmod 30's post-order (kmod tools/depmod.c:index_write__node@v30),
    or with ``preorder`` kmod 34's pre-order (kmod tools/depmod.c:index_write__node@v34.2,
    since commit dada048cbf57): same nodes, same size, other offsets.  A node
    offset past 28 bits is a :class:`ValueError`.
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
    # (kmod tools/depmod.c:index_insert@v30): the file it writes is garbage, so there
    # is nothing byte-identical to produce.
    return ValueError(f"index keys {key[:depth + 1]!r}... branch on byte 0x{last:02x}: "
                      "kmod 30 cannot index a non-ASCII byte at a branch")


class _NonAsciiBranch(Exception):
    """The pre-order walk met a branch on a byte >= 0x80 (see _write_preorder)."""


def _too_large(offset: int) -> ValueError:
    return ValueError(f"index of {offset}+ bytes does not fit kmod's 28-bit node offsets")


if TYPE_CHECKING:
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
    out = bytearray(HEADER_SIZE)
    extend = out.extend
    append = out.append
    slots = CHILD_WORDS

    def emit(key: bytes, parent_depth: int, depth: int, children: list[tuple[int, int]], vals: bytes | None) -> int:
        # Append one node body; return its word.  The edge byte is
        # key[parent_depth]; the prefix is the rest of the edge label.
        word = len(out)
        if depth - parent_depth > 1:
            extend(key[parent_depth + 1 : depth])
            append(0)
            word |= F_PREFIX
        if children:
            first = children[0][0]
            last = children[-1][0]
            if last >= CHILD_MAX:
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
            word |= F_CHILDS
        if vals is not None:
            extend(vals)
            word |= F_VALUES
        return word

    root = _walk(keys, values, emit)
    # The root is written last, so its offset is the largest: if it fits in
    # 28 bits, every word does (kmod 30 does not check; it would corrupt flags).
    if len(out) > OFFSET_MASK:
        raise _too_large(len(out))
    # The root never has a prefix, even when every key shares one.
    root_word = emit(b"", -1, 0, root[2], root[3])
    HEADER.pack_into(out, 0, INDEX_MAGIC, INDEX_VERSION, root_word)
    return bytes(out)


# A child table backwards: the words last to first, then last, first, each
# little-endian; one Struct per width.
_TABLES_BACKWARDS = [struct.Struct(f"<{n}IBB") for n in range(CHILD_MAX + 1)]
_ZEROS = [bytes(2 + 4 * n) for n in range(CHILD_MAX + 1)]


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
            flags = F_VALUES
        if children:
            first = children[-1][0]
            last = children[0][0]
            if last >= CHILD_MAX:
                raise _NonAsciiBranch
            width = last - first + 1
            tables.append((len(out), children, width, last, first))
            extend(zeros[width])
            flags |= F_CHILDS
        if depth - parent_depth > 1:
            append(0)
            extend(key[depth - 1 : parent_depth : -1])
            flags |= F_PREFIX
        return flags - len(out)

    try:
        root = _walk(reversed(keys), values, close)
        root_flags = close(b"", -1, 0, root[2], root[3]) + len(out)
    except _NonAsciiBranch:
        # This walk meets the nodes in another order than the post-order one:
        # let that one name the node, so that both layouts give one message.
        _write_postorder(keys, values)
        raise AssertionError("the post-order writer found no branch on a non-ASCII byte") from None
    size = HEADER_SIZE + len(out)
    # The last node has the largest offset: the node of the largest key (a
    # leaf below the node at its common prefix with the key before it), or
    # the root when there is no other node.
    last_key = keys[-1] if keys else b""
    last_offset = HEADER_SIZE
    if last_key:
        parent_depth = _lcp(keys[-2], last_key) if len(keys) > 1 else 0
        edge = len(last_key) - parent_depth
        last_offset = size - len(values[last_key]) - (edge if edge > 1 else 0)
    if last_offset > OFFSET_MASK:
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
    return HEADER.pack(INDEX_MAGIC, INDEX_VERSION, HEADER_SIZE | root_flags) + out
