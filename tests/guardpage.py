"""A buffer that ends right before an inaccessible page, for testing C code on hostile input:
a read past the end is a crash (the test fails loudly), not a quiet out-of-bounds read."""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _libc_mprotect() -> Any:
    if sys.platform != "linux":
        return None
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).mprotect
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


MPROTECT = _libc_mprotect()


@contextmanager
def guarded(data: bytes) -> Iterator[memoryview]:
    """``data`` ending right before an inaccessible page."""
    page = mmap.PAGESIZE
    pages = (len(data) + page - 1) // page + 1
    mm = mmap.mmap(-1, pages * page)
    start = (pages - 1) * page - len(data)
    mm[start : start + len(data)] = data
    window = (ctypes.c_char * (pages * page)).from_buffer(mm)
    guard = ctypes.addressof(window) + (pages - 1) * page
    del window
    assert MPROTECT(guard, page, 0) == 0, os.strerror(ctypes.get_errno())  # PROT_NONE
    view = memoryview(mm)[start : start + len(data)]
    try:
        yield view
    finally:
        view.release()
        mm.close()
