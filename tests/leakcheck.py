"""How much the Python heap grows over many calls of C code (a reference leak shows up here)."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable


def heap_growth(run: Callable[[int], None], *, warm: int, settle: int, rounds: int) -> int:
    """Bytes the traced heap grew by over ``run(rounds)``, after ``run(warm)`` (caches, free lists)
    and ``run(settle)`` under tracing."""
    run(warm)
    gc.collect()
    tracemalloc.start()
    try:
        run(settle)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        run(rounds)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before
