"""The disk format of kmod's binary indexes (``modules.*.bin``), in one place.

The format is described at length in docs/index-format.md; kmod's reader is
libkmod/libkmod-index.c@v34.2, its writer kmod tools/depmod.c:index_write@v34.2.
In short:

* Everything is big-endian; numbers are u32 and need not be aligned; strings
  end with a NUL and are not padded.
* The file opens with three u32: the magic 0xB007F457, the version 0x00020001
  (a reader looks only at the major half, 2), and the *word* of the root node.
* A word locates a node and says what the node holds: its low 28 bits are the
  node's byte offset in the file, bit 31 says the node has a prefix, bit 30
  values, bit 29 children; bit 28 means nothing.  A node's own bytes carry no
  flags: only the word pointing at it does.  A word with offset 0 points at
  nothing.
* A node is, in this order and each part only when its flag is set: the
  prefix (the bytes of its edge after the first, NUL-terminated); two bytes,
  the smallest and the largest byte its children hang from, and one word per
  byte in between (0 where no child hangs); a u32 count followed by that
  many (u32 priority, value, NUL).
* The trie is a radix trie with one possible shape for a set of keys: the
  root has no prefix; below it, every edge is as long as the keys under it
  allow (the longest prefix they share); a node holds values exactly when a
  key ends there.  Child bytes fit in 7 bits, so a child table has at most
  128 words.
* A key's values are ordered by priority, and among equal priorities the one
  added last comes first (kmod tools/depmod.c:index_add_value@v34.2 inserts a
  value in front of the first one whose priority is not smaller); duplicates
  stay.
* Only the order of the nodes in the file differs between kmod releases.
  Up to kmod 33 each node follows all of its children (post-order, children
  by ascending byte), so the root comes last and its word is written into
  the header at the end (kmod tools/depmod.c:index_write__node@v30).  From
  kmod 34 on (commit dada048cbf57) each node precedes its children
  (pre-order): the root sits at offset 12, and a child starts where its
  parent's bytes and the complete subtrees of its smaller siblings end.
  The node bodies, and the empty index (a header whose root word is 12 with
  no flags), are the same in both.

libkmod has two readers (one maps the file, one reads it through stdio);
they return the same values except in the order of equal priorities, hence
:data:`ReaderKind`.
"""

from __future__ import annotations

import struct

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
]

INDEX_MAGIC = 0xB007F457
INDEX_VERSION = 0x00020001  # major 2, minor 1; readers check only the major

# The flags of a word, and the part of it that is the node's offset.
F_PREFIX = 0x80000000
F_VALUES = 0x40000000
F_CHILDS = 0x20000000
OFFSET_MASK = 0x0FFFFFFF
HEADER_SIZE = 12  # magic, version, root word
CHILD_MAX = 128  # INDEX_CHILDMAX in libkmod/libkmod-index.c@v34.2: branch bytes are 7-bit

U32 = struct.Struct(">I")
U32_PAIR = struct.Struct(">II")  # a value count of 1 and its priority, packed at once
HEADER = struct.Struct(">III")
# One Struct per child-table width, so packing never re-parses a format.
CHILD_WORDS = [struct.Struct(f">{n}I") for n in range(CHILD_MAX + 1)]

Entry = tuple[bytes, bytes, int]
"""(key, value, priority), as depmod inserts them."""

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from typing import Literal

    #: Which libkmod 30 reader to imitate: the mmap one or the stdio one (they differ only
    #: in the order of values with equal priorities).
    ReaderKind = Literal["mmap", "stdio"]
