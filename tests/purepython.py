"""Run moddeps' module reader without its C accelerator, for the tests that compare the two."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from moddeps.read import elfreader


@contextmanager
def pure_python() -> Iterator[None]:
    """The Python reader alone while the block runs (elfreader falls back to it without ``_elfscan``)."""
    saved = elfreader._elfscan
    elfreader._elfscan = None
    try:
        yield
    finally:
        elfreader._elfscan = saved
