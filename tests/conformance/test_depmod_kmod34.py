"""``moddeps depmod --kmod-version 34`` against Debian 13's real kmod 34.2
``depmod``, and ``--kmod-version 30`` against Debian 12's kmod 30, on the
Debian 13 (6.12) and Debian 14 (7.x) cloud trees (``debian.NEW_TREES``).

Those packages put the modules under ``usr/lib/modules`` only (merged /usr)
while Debian's kmod looks in ``/lib/modules`` (its MODULE_DIRECTORY), so the
kmod copies get ``lib -> usr/lib`` (``debian.link_lib``); moddeps runs on
such a copy and on one with no ``lib`` at all, and must write the same bytes
under ``usr/lib/modules/VERSION`` in both.

Compared as in test_depmod_vs_kmod: the set of files, every file byte for
byte (first difference described), exit status, stdout and stderr (program
name stripped, the copy's path as ``<BASEDIR>``).  The kmod release moddeps
reproduces is chosen by ``--kmod-version`` everywhere except in
``test_version_from_dpkg_status``, where it comes from the root's dpkg
status database.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conformance.debian import NEW_TREES, KernelTree, KmodCmd
from tests.conformance.outputs import (
    KMOD30_OUTPUTS,
    KMOD34_OUTPUTS,
    Run,
    compare_outputs,
    explain,
    fail_message,
    listing,
    run_depmod,
)

pytestmark = [pytest.mark.conformance, pytest.mark.parametrize("tree", NEW_TREES, indirect=True)]

FreshCopy = Callable[..., Path]

#: a dpkg status database naming one installed kmod (and its library)
DPKG_STATUS = """\
Package: libkmod2
Status: install ok installed
Priority: optional
Section: libs
Architecture: amd64
Multi-Arch: same
Source: kmod
Version: {version}
Description: libkmod shared library

Package: kmod
Status: install ok installed
Priority: important
Section: admin
Architecture: amd64
Version: {version}
Depends: libc6 (>= 2.38), libkmod2 (= {version})
Description: tools for managing Linux kernel modules

"""
KMOD34_DEB = "34.2-2"
KMOD30_DEB = "30+20221128-1"


@dataclass(frozen=True)
class KmodRun:
    """kmod's run on a copy with ``lib -> usr/lib``."""

    tree: KernelTree
    run: Run
    release: int

    @property
    def moddir(self) -> Path:
        return self.run.root / self.tree.moduledir / self.tree.version


def kmod_run(tool: KmodCmd, tree: KernelTree, fresh_copy: FreshCopy, config: Path, label: str,
             *args: str) -> Run:
    root = fresh_copy(tree, label)
    assert (root / "lib").is_symlink()
    return run_depmod("kmod", list(tool.depmod), root, tree.version, "-C", str(config), *args)


def moddeps_run(moddeps_cmd: list[str], tree: KernelTree, fresh_copy: FreshCopy, config: Path, label: str,
                *args: str, release: int | None, lib_link: bool = True,
                env: dict[str, str] | None = None) -> Run:
    root = fresh_copy(tree, label, lib_link=lib_link)
    chosen = () if release is None else ("--kmod-version", str(release))
    return run_depmod("moddeps", [*moddeps_cmd, "depmod", "--no-cache", *chosen], root, tree.version,
                      "-C", str(config), *args, env=env)


@pytest.fixture(scope="session")
def k34(tree: KernelTree, kmod34: KmodCmd, fresh_copy: FreshCopy, empty_config: Path,
        summary: list[str]) -> KmodRun:
    r = kmod_run(kmod34, tree, fresh_copy, empty_config, "k34")
    assert r.status == 0, r.describe()
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(tree.module_kinds().items()))
    summary.append(f"kmod 34.2 depmod {tree.package} ({kinds}): {r.seconds:.2f} s")
    return KmodRun(tree, r, 34)


@pytest.fixture(scope="session")
def k30(tree: KernelTree, kmod30: KmodCmd, fresh_copy: FreshCopy, empty_config: Path) -> KmodRun:
    r = kmod_run(kmod30, tree, fresh_copy, empty_config, "k30")
    assert r.status == 0, r.describe()
    return KmodRun(tree, r, 30)


def check_same(theirs: KmodRun, ours: Run, moddeps_cmd: list[str], what: str, *, writes: bool = True) -> None:
    """ours (a moddeps run) wrote and printed exactly what kmod did (``writes``: kmod wrote its index files)."""
    tree = theirs.tree
    assert ours.status == theirs.run.status, (theirs.run.describe(), ours.describe())
    expected = () if not writes else KMOD34_OUTPUTS if theirs.release >= 33 else KMOD30_OUTPUTS
    mine = ours.root / tree.moduledir / tree.version
    problems = compare_outputs(mine, theirs.moddir, moddeps_cmd, expected)
    if ours.messages() != theirs.run.messages():
        problems.append(f"stderr: moddeps {ours.messages()[:5]}, kmod {theirs.run.messages()[:5]}")
    if ours.stdout != theirs.run.stdout:
        problems.append(explain("stdout", ours.stdout, theirs.run.stdout, Path(), Path(), moddeps_cmd))
    assert not problems, fail_message(f"{what}: moddeps differs from kmod {theirs.release}", tree, problems)


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------


def test_tree_layout(tree: KernelTree) -> None:
    """The packages ship .ko.xz under usr/lib/modules only, and no lib/."""
    kinds = tree.module_kinds()
    assert set(kinds) == {".ko.xz"} and kinds[".ko.xz"] > 500, kinds
    assert tree.moduledir == "usr/lib/modules"
    assert not (tree.root / "lib").exists()
    assert all(not (tree.moddir / f).exists() for f in KMOD34_OUTPUTS), "the pristine tree has index files"


def test_kmod34_writes_weakdep(k34: KmodRun) -> None:
    """kmod 34.2 writes exactly its eleven files (modules.weakdep too), and no lib/ of its own."""
    top = {f for f in listing(k34.moddir) if "/" not in f}
    pristine = set(os.listdir(k34.tree.moddir))
    assert top - pristine == set(KMOD34_OUTPUTS)
    assert (k34.moddir / "modules.weakdep").read_bytes().startswith(b"# Weak dependencies")


def test_depmod34_identical(k34: KmodRun, moddeps_cmd: list[str], fresh_copy: FreshCopy, empty_config: Path,
                            summary: list[str]) -> None:
    ours = moddeps_run(moddeps_cmd, k34.tree, fresh_copy, empty_config, "m34", release=34)
    compared = sorted(f for f in listing(k34.moddir) if "/" not in f)
    summary.append(
        f"depmod --kmod-version 34 {k34.tree.package}: kmod 34.2 {k34.run.seconds:.2f} s, "
        f"moddeps {ours.seconds:.2f} s; "
        f"{len(compared)} top-level files ({sum((k34.moddir / f).stat().st_size for f in compared) / 1e6:.1f} MB)"
    )
    check_same(k34, ours, moddeps_cmd, "depmod, root with lib -> usr/lib")


def test_depmod34_identical_without_lib(k34: KmodRun, moddeps_cmd: list[str], fresh_copy: FreshCopy,
                                        empty_config: Path) -> None:
    """A merged-/usr root with only usr/lib/modules: moddeps finds the modules there
    and writes kmod 34.2's bytes beside them, and creates no lib/."""
    ours = moddeps_run(moddeps_cmd, k34.tree, fresh_copy, empty_config, "m34-nolib", release=34, lib_link=False)
    assert not (ours.root / "lib").exists(), f"moddeps created {ours.root / 'lib'}"
    check_same(k34, ours, moddeps_cmd, "depmod, root with only usr/lib/modules")


def test_depmod34_dry_run(tree: KernelTree, kmod34: KmodCmd, moddeps_cmd: list[str], fresh_copy: FreshCopy,
                          empty_config: Path) -> None:
    theirs = KmodRun(tree, kmod_run(kmod34, tree, fresh_copy, empty_config, "k34-n", "-n"), 34)
    assert theirs.run.status == 0, theirs.run.describe()
    assert b"\n# Weak dependencies extracted from modules themselves.\n" in theirs.run.stdout
    ours = moddeps_run(moddeps_cmd, tree, fresh_copy, empty_config, "m34-n", "-n", release=34)
    written = [f"{r.tool} wrote {f} despite -n" for r in (theirs.run, ours)
               for f in KMOD34_OUTPUTS if (r.root / tree.moduledir / tree.version / f).exists()]
    assert not written
    assert len(theirs.run.stdout) > 100_000
    check_same(theirs, ours, moddeps_cmd, "depmod -n", writes=False)


def test_depmod34_symvers(tree: KernelTree, kmod34: KmodCmd, moddeps_cmd: list[str], fresh_copy: FreshCopy,
                          empty_config: Path, symvers: Path, summary: list[str]) -> None:
    args = ("-e", "-E", str(symvers))
    theirs = KmodRun(tree, kmod_run(kmod34, tree, fresh_copy, empty_config, "k34-E", *args), 34)
    assert theirs.run.status == 0, theirs.run.describe()
    ours = moddeps_run(moddeps_cmd, tree, fresh_copy, empty_config, "m34-E", *args, release=34)
    summary.append(f"depmod -e -E {tree.package}: kmod 34.2 {theirs.run.seconds:.2f} s, "
                   f"{len(theirs.run.messages())} message(s); moddeps {ours.seconds:.2f} s")
    check_same(theirs, ours, moddeps_cmd, "depmod -e -E Module.symvers")


def test_depmod30_identical(k30: KmodRun, moddeps_cmd: list[str], fresh_copy: FreshCopy, empty_config: Path,
                            summary: list[str]) -> None:
    """``--kmod-version 30`` on the same tree is kmod 30's output (no modules.weakdep, post-order tries)."""
    assert not (k30.moddir / "modules.weakdep").exists()
    ours = moddeps_run(moddeps_cmd, k30.tree, fresh_copy, empty_config, "m30", release=30)
    summary.append(f"depmod --kmod-version 30 {k30.tree.package}: kmod 30 {k30.run.seconds:.2f} s, "
                   f"moddeps {ours.seconds:.2f} s")
    check_same(k30, ours, moddeps_cmd, "depmod --kmod-version 30")


@pytest.mark.parametrize("installed", [KMOD34_DEB, KMOD30_DEB])
def test_version_from_dpkg_status(tree: KernelTree, installed: str, request: pytest.FixtureRequest,
                                  moddeps_cmd: list[str], fresh_copy: FreshCopy, empty_config: Path) -> None:
    """With $MODDEPS_KMOD_VERSION unset and no --kmod-version, ``moddeps depmod -v``
    reproduces the kmod that ROOT/var/lib/dpkg/status says is installed."""
    theirs: KmodRun = request.getfixturevalue("k34" if installed == KMOD34_DEB else "k30")
    root = fresh_copy(theirs.tree, f"dpkg-{installed}")
    status = root / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True, exist_ok=True)
    status.unlink(missing_ok=True)  # (a hard link to the pristine tree's, if it had one)
    status.write_text(DPKG_STATUS.format(version=installed))
    env = {k: v for k, v in os.environ.items() if k != "MODDEPS_KMOD_VERSION"}
    ours = run_depmod("moddeps", [*moddeps_cmd, "depmod", "--no-cache", "-v"], root, theirs.tree.version,
                      "-C", str(empty_config), env=env)
    assert ours.status == 0, ours.describe()
    expected = KMOD34_OUTPUTS if theirs.release >= 33 else KMOD30_OUTPUTS
    problems = compare_outputs(root / theirs.tree.moduledir / theirs.tree.version, theirs.moddir, moddeps_cmd,
                               expected)
    assert not problems, fail_message(f"depmod -v with kmod {installed} in dpkg status", theirs.tree, problems)
