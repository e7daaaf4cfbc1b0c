"""The disk format of kmod's binary index files (``modules.*.bin``).

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
"""

from __future__ import annotations

import struct
from typing import Literal

__all__ = [
    "CHILD_MAX",
    "CHILD_WORDS",
    "F_CHILDS",
    "F_PREFIX",
    "F_VALUES",
    "HEADER",
    "HEADER_SIZE",
    "INDEX_MAGIC",
    "INDEX_VERSION",
    "OFFSET_MASK",
    "U32",
    "U32_PAIR",
    "Entry",
    "ReaderKind",
]

INDEX_MAGIC = 0xB007F457
INDEX_VERSION = 0x00020001  # major 2, minor 1; readers check only the major

F_PREFIX = 0x80000000
F_VALUES = 0x40000000
F_CHILDS = 0x20000000
OFFSET_MASK = 0x0FFFFFFF
HEADER_SIZE = 12
CHILD_MAX = 128  # kmod INDEX_CHILDMAX: keys are 7-bit

U32 = struct.Struct(">I")
U32_PAIR = struct.Struct(">II")
HEADER = struct.Struct(">III")
# One Struct per child-table width, so packing never re-parses a format.
CHILD_WORDS = [struct.Struct(f">{n}I") for n in range(CHILD_MAX + 1)]

Entry = tuple[bytes, bytes, int]
"""(key, value, priority), as depmod inserts them."""

ReaderKind = Literal["mmap", "stdio"]
"""Which libkmod 30 reader to imitate (§10.1); they differ only in tie order."""
