"""Test-wide settings.

* The tests import moddeps from this source tree (``tests`` is a package, so
  pytest puts the tree first on ``sys.path``), not from where ``pip install .``
  put it: the C accelerators are built here, in place, when they are missing or
  older than their sources (``setup.py build_ext --inplace``, as pip builds
  them).  Without a compiler the tests run on the pure-Python paths, and the
  accelerator tests skip -- or fail under ``CI=true``.
* The CLI's scan cache goes to a temporary directory, never to ~/.cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: each C accelerator -> its sources and headers (setup.py's sources and depends)
ACCELERATORS = {
    "moddeps/_elfscan": ("moddeps/_elfscan.c", "moddeps/_elfscan_codec.c", "moddeps/_elfscan_walk.c",
                         "moddeps/_crc32.c", "moddeps/_elfscan.h", "moddeps/_native.h", "moddeps/_crc32.h"),
    "moddeps/depmod/_trie": ("moddeps/depmod/_trie.c", "moddeps/depmod/_trie_resolve.c", "moddeps/depmod/_trie.h",
                             "moddeps/_native.h"),
    "moddeps/read/_xz": ("moddeps/read/_xz.c", "moddeps/_crc32.c", "moddeps/_native.h", "moddeps/_crc32.h"),
}


def _stale_accelerators() -> list[str]:
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    stale = []
    for stem, sources in ACCELERATORS.items():
        built = ROOT / (stem + suffix)
        if not built.exists() or built.stat().st_mtime < max((ROOT / s).stat().st_mtime for s in sources):
            stale.append(stem)
    return stale


def pytest_configure(config: pytest.Config) -> None:
    if not (ROOT / "setup.py").exists() or not _stale_accelerators():
        return
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    still = _stale_accelerators()
    if still:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        sys.stderr.write(f"note: could not build {', '.join(still)} in place (pure-Python paths are tested): "
                         f"{' | '.join(tail)}\n")


@pytest.fixture(autouse=True, scope="session")
def _private_scan_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("MODDEPS_CACHE", str(Path(tmp_path_factory.mktemp("cache")) / "scan.sqlite3"))
    yield
    mp.undo()
