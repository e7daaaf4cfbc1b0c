"""kmod's string hash, whose bucket order decides two output orders.

kmod shared/hash.c uses Paul Hsieh's SuperFastHash.  Iterating its tables
gives buckets in ascending index and, within a bucket, keys in byte order
(hash_add keeps each bucket sorted).  Two outputs inherit that order:
the module array before ``modules.order`` is applied (512 buckets, keyed by
module name) and the lines of ``modules.symbols`` (2048 buckets).

Two host properties of the reference build (x86-64) are reproduced: the
16-bit loads are little-endian, and the tail bytes are read as *signed*
chars (docs/depmod-outputs.md#hash-order).
"""

from __future__ import annotations

from .native import load, twin

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Iterable

_M = 0xFFFFFFFF


def _sc(x: int) -> int:
    """A byte read as a signed char, sign-extended to 32 bits."""
    return (x - 256) & _M if x >= 128 else x


def kmod_hash(key: bytes) -> int:
    """The 32-bit hash value of ``key`` (C twin when built, else :func:`py_kmod_hash`)."""
    return twin(load("depmod._trie"), lambda trie: trie.kmod_hash(key), lambda: py_kmod_hash(key))


def py_kmod_hash(key: bytes) -> int:
    """The 32-bit hash value of ``key``: the reference implementation."""
    n = len(key)
    h = n
    rem = n & 3
    end = n - rem
    for i in range(0, end, 4):
        h = (h + (key[i] | key[i + 1] << 8)) & _M
        t = (((key[i + 2] | key[i + 3] << 8) << 11) ^ h) & _M
        h = ((h << 16) & _M) ^ t
        h = (h + (h >> 11)) & _M
    if rem == 3:
        h = (h + (key[end] | key[end + 1] << 8)) & _M
        h ^= (h << 16) & _M
        h ^= (_sc(key[end + 2]) << 18) & _M
        h = (h + (h >> 11)) & _M
    elif rem == 2:
        h = (h + (key[end] | key[end + 1] << 8)) & _M
        h ^= (h << 11) & _M
        h = (h + (h >> 17)) & _M
    elif rem == 1:
        h = (h + _sc(key[end])) & _M
        h ^= (h << 10) & _M
        h = (h + (h >> 1)) & _M
    h ^= (h << 3) & _M
    h = (h + (h >> 5)) & _M
    h ^= (h << 4) & _M
    h = (h + (h >> 17)) & _M
    h ^= (h << 25) & _M
    h = (h + (h >> 6)) & _M
    return h


def hash_order(keys: Iterable[bytes], buckets: int) -> list[bytes]:
    """``keys`` in the order a kmod hash table of ``buckets`` buckets iterates them
    (C twin when built, else :func:`py_hash_order`)."""
    listed = keys if isinstance(keys, list) else list(keys)  # an iterator is read once, by either twin
    return twin(load("depmod._trie"), lambda trie: trie.hash_order(listed, buckets),
                lambda: py_hash_order(listed, buckets))


def py_hash_order(keys: Iterable[bytes], buckets: int) -> list[bytes]:
    """``keys`` in the order a kmod hash table of ``buckets`` buckets iterates them:
    the reference implementation."""
    mask = buckets - 1
    return sorted(keys, key=lambda k: (py_kmod_hash(k) & mask, k))
