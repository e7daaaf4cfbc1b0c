"""Fixtures of the conformance suite (all session-scoped: downloads and
extractions are cached in ``$MODDEPS_CONFORMANCE_CACHE``, see ``debian.py``).

* ``kmod``          the real kmod 30 tools (depmod, modprobe, modinfo)
* ``kmod30``        the same as a ``debian.KmodCmd`` (argv prefixes)
* ``kmod34``        Debian 13's kmod 34.2, a ``debian.KmodCmd``, downloaded with
                    its libraries through a separate apt configuration
                    (``debian.kmod34``)
* ``moddeps_cmd``   argv prefix running the installed moddeps CLI
* ``tree``          an extracted pristine tree, parametrized over both 6.1
                    packages (``debian.TREES``); test_depmod_vs_kmod and
                    test_scan_vs_kmod parametrize it over ``debian.WITH_XZ``,
                    which adds the 6.12 cloud kernel with ``.ko.xz`` modules
                    (the Debian 13 and 14 trees, ``debian.NEW_TREES``, are
                    parameters test modules add the same way)
* ``fresh_copy``    ``fresh_copy(tree, label)`` -> root of a new writable copy;
                    a Debian 13/14 copy gets ``lib -> usr/lib`` unless
                    ``lib_link=False``
* ``empty_config``  an empty directory for ``-C``
* ``summary``       lines printed in the terminal summary (counts, timings)

``$MODDEPS_CACHE`` (moddeps' scan cache) points into the session's scratch
directory, so runs never see or fill ``~/.cache/moddeps``.

A missing tool or package fails the tests under ``CI=true`` and skips them
elsewhere (with the reason).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conformance import debian
from tests.conformance.debian import TREES, Kmod, KmodCmd, unavailable

_SUMMARY = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = config.stash.get(_SUMMARY, [])
    if lines:
        terminalreporter.section("moddeps conformance summary")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def summary(pytestconfig: pytest.Config) -> list[str]:
    return pytestconfig.stash.setdefault(_SUMMARY, [])


@pytest.fixture(scope="session")
def kmod() -> Kmod:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
    tools = {name: shutil.which(name, path=path) for name in ("depmod", "modprobe", "modinfo")}
    missing = [n for n, p in tools.items() if p is None]
    if missing:
        unavailable(f"kmod tools not installed: {', '.join(missing)} (apt-get install kmod)")
    depmod = tools["depmod"] or ""
    out = subprocess.run([depmod, "--version"], capture_output=True, text=True).stdout
    first = out.splitlines()[0] if out else ""
    if first.strip() != "kmod version 30":
        unavailable(f"moddeps reproduces kmod 30; {depmod} --version says {first!r}")
    return Kmod(depmod, tools["modprobe"] or "", tools["modinfo"] or "", first.split()[-1])


@pytest.fixture(scope="session")
def kmod30(kmod: Kmod) -> KmodCmd:
    return KmodCmd.installed(kmod)


@pytest.fixture(scope="session")
def kmod34() -> KmodCmd:
    try:
        return debian.kmod34()
    except debian.Unavailable as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def moddeps_cmd() -> list[str]:
    exe = shutil.which("moddeps")
    return [exe] if exe else [sys.executable, "-m", "moddeps"]


@pytest.fixture(scope="session", params=TREES)
def tree(request: pytest.FixtureRequest) -> debian.KernelTree:
    try:
        return debian.kernel_tree(request.param)
    except debian.Unavailable as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    base = debian.cache_dir() / "work"
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    yield path
    if os.environ.get("MODDEPS_CONFORMANCE_KEEP") != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _isolated_scan_cache(workdir: Path) -> Iterator[Path]:
    """moddeps' scan cache for this session only (not ~/.cache): tests that
    want the reader itself pass --no-cache, the others start from empty."""
    path = workdir / "scan-cache.sqlite3"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODDEPS_CACHE", str(path))
        yield path


@pytest.fixture(scope="session")
def fresh_copy(workdir: Path) -> Callable[..., Path]:
    """``fresh_copy(tree, label, lib_link=True)``: the root (``-b`` BASEDIR)
    of a new writable copy of ``tree``, made of hard links to the pristine
    files; with ``lib -> usr/lib`` if the tree has only usr/lib/modules
    (``debian.link_lib``) and ``lib_link``."""
    counter = itertools.count(1)

    def make(tree: debian.KernelTree, label: str, lib_link: bool = True) -> Path:
        dst = debian.copy_tree(tree.root, workdir / f"{tree.flavour}-{label}-{next(counter)}")
        if lib_link and tree.moduledir != "lib/modules":
            debian.link_lib(dst)
        return dst

    return make


@pytest.fixture(scope="session")
def empty_config(workdir: Path) -> Path:
    path = workdir / "empty-depmod.d"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def symvers(tree: debian.KernelTree) -> Path:
    """Module.symvers of the ``tree`` the requesting test uses, from its linux-headers package."""
    try:
        return debian.module_symvers(tree.flavour)
    except debian.Unavailable as exc:
        unavailable(str(exc))
