"""The process moddeps runs in: whether the ``moddeps`` command owns it, and what it leaves to its end.

The command owns its process (:func:`moddeps.cli.base.run_process` says so with :func:`claim`):
it may make process-wide settings (malloc's arenas, giving the heap back) and it leaves by
``os._exit``, without tearing the interpreter down, so nothing in :data:`kept` is ever freed or
finalized.  A program that imports moddeps owns its process itself: moddeps then changes nothing
process-wide and closes what it opens.
"""

from __future__ import annotations

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
