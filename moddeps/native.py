"""The optional C accelerators, or None where they are not built or are switched off.

Every accelerated function has a pure-Python twin that gives the same result
(the tests compare them); ``MODDEPS_PURE=1`` forces the pure-Python paths.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def load(name: str) -> ModuleType | None:
    """``moddeps.<name>`` if it is built and not switched off, else None."""
    if os.environ.get("MODDEPS_PURE", "") not in ("", "0"):
        return None
    try:
        return importlib.import_module(f"moddeps.{name}")
    except ImportError:
        return None
