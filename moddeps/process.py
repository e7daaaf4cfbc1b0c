"""The process moddeps runs in: whether the ``moddeps`` command owns it, and what it leaves to its end.

The command owns its process (:func:`moddeps.cli.base.run_process` says so with :func:`claim`):
it may make process-wide settings (malloc's arenas, giving the heap back) and it leaves by
``os._exit``, without tearing the interpreter down, so nothing in :data:`kept` is ever freed or
finalized.  A program that imports moddeps owns its process itself: moddeps then changes nothing
process-wide and closes what it opens.
"""

from __future__ import annotations

import os

#: What the command made and wants to outlive it: freed by nobody, since the process leaves with
#: ``os._exit`` (freeing depmod's records one by one on the way out cost ~16 ms of a 4,000-module
#: run; closing the scan cache's connection, a checkpoint of its WAL: see :meth:`moddeps.read.cache.ScanCache.close`).
kept: list[object] = []

_owned = False


def claim() -> None:
    """Say that the ``moddeps`` command runs this process (and leaves it by ``os._exit``)."""
    global _owned
    _owned = True


def owned() -> bool:
    """Whether the ``moddeps`` command runs this process, not a program that imports moddeps."""
    return _owned


#: :func:`quicker_heap`: how far malloc's heap grows beyond what is asked (and is advised for huge
#: pages), and the size from which a block gets a mapping of its own (glibc's most: 32 MiB).
HEAP_PAD = 64 << 20
HEAP_MMAP_THRESHOLD = 32 << 20
#: :func:`quicker_heap`: the smallest module tree it is applied for.
HEAP_MIN_MODULES = 2000


def quicker_heap(modules: int) -> bool:
    """Fewer page faults for the rest of a ``moddeps`` command that works on ``modules`` modules.

    A first touch of a page of new memory costs a page fault: ~2.2 us on this project's
    2-core VM, where a one-module ``depmod`` update of Debian 12's amd64 tree (4,022
    modules) took ~12,000 of them (~26 ms of a ~100 ms run) and a cold run ~20,000.
    glibc's malloc maps every block past its threshold on its own and unmaps it when freed
    (the next one is faulted in again), and Python makes each arena of its small objects a
    mapping of its own; all of it comes in 4 KiB pages.  Here
    (``moddeps._elfscan.huge_heap``): blocks up to 32 MiB come from malloc's heap, which
    grows 64 MiB at a time, is not trimmed back below twice that, and whose new part is
    advised for transparent huge pages (``MADV_HUGEPAGE``: a fault then brings in 2 MiB
    where the kernel's THP setting is "madvise" or "always"); and Python's arenas come from
    that heap too (unless ``PYTHONMALLOC`` chose an allocator).  The one-module update then
    takes ~4,000 faults and a cold run ~7,500 (benchmarks/README.md, *Page faults*).

    Pages come in 2 MiB steps, so a run's peak RSS can grow by ~2 MiB: nothing next to a
    large tree's, but up to a twentieth of a small one's (Debian 12's cloud tree, 1,121
    modules: a first run's peak went from 1.45x to 1.51x kmod 30's), where there are too
    few faults to save.  So it is done only from :data:`HEAP_MIN_MODULES` modules on.

    Only for the process the command runs in: its callers are the command's own code
    (:func:`moddeps.cli.depmod_argv.depmod_main`, through the stamp's replay) or check
    :func:`owned` (:mod:`moddeps.depmod.run`), so a program using moddeps as a library keeps
    its malloc as it set it.  Only on glibc with the C extension built, and not when the
    environment tunes malloc itself (``MALLOC_*``, ``GLIBC_TUNABLES`` with ``glibc.malloc``).
    Once a process; True when applied (now or before)."""
    env = os.environ
    if modules < HEAP_MIN_MODULES or any(name.startswith("MALLOC_") for name in env) \
            or "glibc.malloc" in env.get("GLIBC_TUNABLES", ""):
        return False
    from .native import load

    c = load("_elfscan")
    if c is None:
        return False
    return bool(c.huge_heap(HEAP_PAD, HEAP_MMAP_THRESHOLD, not env.get("PYTHONMALLOC")))
