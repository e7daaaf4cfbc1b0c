"""The key of an alias in kmod's alias indexes: kmod shared/util.c:alias_normalize@v34.2.

depmod stores every alias under this key (``modules.alias.bin``,
``modules.builtin.alias.bin``), and modprobe and modinfo normalise what they
look up the same way before a wildcard lookup, so writers and readers share
this one function.
"""

from __future__ import annotations

from ..kmodnames import PATH_MAX

__all__ = ["alias_normalize"]


def alias_normalize(s: bytes) -> bytes | None:
    """kmod's ``alias_normalize``: ``-`` becomes ``_`` outside brackets.

    A ``[...]`` group is copied unchanged up to its ``]`` (so ``[0-9]`` keeps
    its dash); a ``[`` without a later ``]``, or a ``]`` outside a group, is an
    error and gives None (depmod then skips the alias).  Like the C
    code, only the first 4095 bytes are looked at (the ``PATH_MAX - 1`` loop
    bound) and the string ends at its first NUL.  The C loop does not bound
    the copy of a bracket group, so a group that starts before byte 4095 is
    copied whole (a buffer overrun in kmod; we keep the bytes).
    """
    nul = s.find(0)
    if nul >= 0:
        s = s[:nul]
    limit = PATH_MAX - 1
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
