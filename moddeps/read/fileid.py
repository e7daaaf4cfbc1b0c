"""A file's identity as the caches compare it: size, mtime, ctime, inode, device (and BLAKE2b, their digest).

Kept apart (and free of imports) because :mod:`moddeps.depmod.stamp` checks
thousands of them before anything else of moddeps is imported.
"""

from __future__ import annotations

import os

try:  # hashlib would initialise OpenSSL first (~3 ms of every start-up) for a hash it does not provide
    from _blake2 import blake2b as blake2b
except ImportError:  # pragma: no cover - a Python built without the module
    from hashlib import blake2b as blake2b

#: A file's identity without its path: size, mtime_ns, ctime_ns, inode, device.
FileStat = tuple[int, int, int, int, int]

_TOP, _WRAP = 1 << 63, 1 << 64


def identity(st: os.stat_result) -> FileStat:
    """The identity of a stat result.  SQLite's integers are signed 64-bit: an
    inode or device number with the top bit set (overlayfs' xino, some FUSE and
    network filesystems) is kept as the signed number of the same 64 bits."""
    ino, dev = st.st_ino, st.st_dev
    if ino >= _TOP:
        ino -= _WRAP
    if dev >= _TOP:
        dev -= _WRAP
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, ino, dev)


def file_stat(path: str) -> FileStat | None:
    """The identity of ``path`` (following symlinks), or None if it cannot be stat'ed."""
    try:
        return identity(os.stat(path))
    except OSError:
        return None


def tree_names(path: str) -> frozenset[str]:
    """The names in directory ``path`` that can change what a walk of it finds: every entry but
    a regular file (not a symlink) whose name is not a module's -- so not depmod's own output
    files, temporaries and lock, which are written into the directory the walk starts from.
    Read from the directory entries' types alone (no stat).  OSError if it cannot be listed."""
    with os.scandir(path) as it:
        return frozenset(e.name for e in it
                         if not e.is_file(follow_symlinks=False) or e.name.endswith(_MODULE_SUFFIXES))


#: kmod's module file suffixes: moddeps.kmodnames.MODULE_SUFFIXES, which
#: tests/test_depmod_stamp.py checks this against (kmodnames is not imported here: start-up)
_MODULE_SUFFIXES = (".ko", ".ko.gz", ".ko.xz", ".ko.zst")
