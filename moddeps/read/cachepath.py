"""Where the scan cache lives (kept apart from :mod:`.cache` so that a rerun
answered by a stamp, :mod:`moddeps.depmod.stamp`, finds it without importing SQLite)."""

from __future__ import annotations

import os


def default_path() -> str:
    """``$MODDEPS_CACHE``, else ``$XDG_CACHE_HOME/moddeps/scan.sqlite3`` (``~/.cache`` without it)."""
    env = os.environ.get("MODDEPS_CACHE")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "moddeps", "scan.sqlite3")
