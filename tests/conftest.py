"""Test-wide settings: the CLI's scan cache goes to a temporary directory, never to ~/.cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_scan_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("MODDEPS_CACHE", str(Path(tmp_path_factory.mktemp("cache")) / "scan.sqlite3"))
    yield
    mp.undo()
