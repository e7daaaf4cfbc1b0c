"""``compat`` and ``diff`` on two ABI versions of Debian 12's 6.1 kernel, against modpost and kmod.

The packages are the *cloud* flavour (``linux-image-6.1.0-N-cloud-amd64`` and
``linux-headers-6.1.0-N-cloud-amd64``, whose ``usr/src/linux-headers-*/Module.symvers``
is modpost's output for that build): the same amd64 kernel source and ABI numbering
as the generic flavour, a quarter of the download.  The newer ABI is the suite's
(``$MODDEPS_CONFORMANCE_KVER``, default 6.1.0-50, see ``debian.py``); the older is
``$MODDEPS_CONFORMANCE_OLD_KVER`` (default 6.1.0-47, or the newest ABI below the newer
one that ``apt-cache`` lists when 6.1.0-47 is gone from the archive).

1. ``diff`` of the two trees read from the ``.ko`` files alone: its export changes
   (kind, module, symbol, old, new) equal those of ``diff`` of the two Module.symvers,
   restricted to module-owned symbols (a tree cannot describe vmlinux's exports).
   And each tree against its own Module.symvers shows no export change at all.
2. ``compat``: modules of one tree, as FILES, against the other tree and its
   Module.symvers.  The (module, symbol) pairs of the unknown-symbol and
   crc-mismatch findings equal what the real ``depmod -e -E`` prints for a copy of
   the target tree with the FILES in ``compat-files/`` searched first
   (``search compat-files updates``), minus what it prints for the tree alone;
   see ``tests/test_compat.py::depmod_new_pairs`` for why the difference is taken
   by path (the files' own problems are all kept; in-tree modules' are kept when
   the files cause them -- kmod warns for every module of the tree).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from moddeps.abidiff import diff, export_changes, side_from_symvers, side_from_tree
from moddeps.compat import compat_check
from moddeps.kernelsyms import load_kernel_symbols
from moddeps.read.scan import Tree, scan_tree
from tests.conformance import debian
from tests.conformance.debian import Kmod, unavailable
from tests.test_compat import depmod_new_pairs

pytestmark = pytest.mark.conformance

DEFAULT_OLD_KVER = "6.1.0-47"
_ABI_RE = re.compile(r"^linux-image-(6\.1\.0-(\d+))-cloud-amd64\s")


@dataclass(frozen=True)
class Kernel:
    abi: str
    tree: debian.KernelTree
    symvers: Path
    scanned: Tree


def _listed_abis() -> list[tuple[int, str]]:
    try:
        r = subprocess.run(["apt-cache", "search", "--names-only", r"^linux-image-6\.1\.0-[0-9]+-cloud-amd64$"],
                           capture_output=True, text=True, timeout=300, env=dict(os.environ, LC_ALL="C"))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise debian.Unavailable(f"apt-cache search: {exc}") from None
    out = []
    for line in r.stdout.splitlines():
        m = _ABI_RE.match(line + " ")
        if m:
            out.append((int(m.group(2)), m.group(1)))
    return sorted(out)


def _kernel(abi: str) -> Kernel:
    image, headers = (t.format(abi=abi) for t in debian.FLAVOURS["cloud"])
    deb = debian.fetch_deb(image)
    root = debian.extract(deb)
    versions = sorted(p.name for p in (root / "lib" / "modules").glob("*") if p.is_dir())
    if len(versions) != 1:
        raise debian.Unavailable(f"{deb.name}: expected one lib/modules/VERSION directory, found {versions}")
    found = sorted(debian.extract(debian.fetch_deb(headers)).glob("usr/src/linux-headers-*/Module.symvers"))
    if len(found) != 1:
        raise debian.Unavailable(f"{headers}: expected one usr/src/linux-headers-*/Module.symvers, found {found}")
    tree = debian.KernelTree("cloud", image, deb, root, versions[0])
    return Kernel(abi, tree, found[0], scan_tree(str(tree.moddir)))


def _old_abi(new: str) -> str:
    explicit = os.environ.get("MODDEPS_CONFORMANCE_OLD_KVER")
    if explicit:
        return explicit
    if new != DEFAULT_OLD_KVER:
        try:
            debian.fetch_deb(debian.FLAVOURS["cloud"][0].format(abi=DEFAULT_OLD_KVER))
            return DEFAULT_OLD_KVER
        except debian.Unavailable as exc:
            debian.log(f"{DEFAULT_OLD_KVER}: {exc}; looking for another older ABI")
    new_n = int(new.rsplit("-", 1)[1])
    older = [abi for n, abi in _listed_abis() if n < new_n]
    if not older:
        raise debian.Unavailable(f"no cloud kernel ABI older than {new} is listed by apt-cache")
    return older[-1]


@pytest.fixture(scope="module")
def kernels() -> tuple[Kernel, Kernel]:
    try:
        new_abi = debian.abi()
        old_abi = _old_abi(new_abi)
        return _kernel(old_abi), _kernel(new_abi)
    except debian.Unavailable as exc:
        unavailable(str(exc))


def test_diff_of_trees_equals_diff_of_module_symvers(kernels: tuple[Kernel, Kernel], summary: list[str]) -> None:
    old, new = kernels
    trees = diff(side_from_tree(old.scanned), side_from_tree(new.scanned))
    symvers = diff(side_from_symvers(str(old.symvers)), side_from_symvers(str(new.symvers)))
    from_ko = export_changes(trees.changes)
    from_symvers = export_changes(symvers.changes)  # module-owned symbols only
    assert from_ko, "two ABIs without a single module export change: not a meaningful comparison"
    missing, extra = sorted(from_symvers - from_ko), sorted(from_ko - from_symvers)
    assert not missing and not extra, f"missing from the .ko diff: {missing[:10]}; not in Module.symvers: {extra[:10]}"
    for k in kernels:
        own = diff(side_from_symvers(str(k.symvers)), side_from_tree(k.scanned))
        assert export_changes(own.changes) == set(), f"{k.tree.version}: its tree and Module.symvers disagree"
    counts = trees.counts()
    summary.append(
        f"diff {old.tree.version} -> {new.tree.version}: {len(from_ko)} module export changes from the .ko files "
        f"identical to the two Module.symvers ({', '.join(f'{k} {n}' for k, n in counts.items())}; "
        f"{len(symvers.changes) - len(from_symvers)} more vmlinux changes in Module.symvers)")


@pytest.mark.parametrize(("direction", "step"), [("old-on-new", 10), ("old-on-new", 1), ("new-on-old", 10),
                                                  ("old-on-old", 1)])
def test_compat_pairs_equal_depmod(kernels: tuple[Kernel, Kernel], kmod: Kmod, workdir: Path, summary: list[str],
                                   direction: str, step: int) -> None:
    old, new = kernels
    source, target = {"old-on-new": (old, new), "new-on-old": (new, old), "old-on-old": (old, old)}[direction]
    files = sorted(str(source.tree.moddir / f.relpath) for f in source.scanned.files if f.relpath)[::step]
    r = compat_check(files, target.scanned, load_kernel_symbols(str(target.symvers), "symvers"),
                     subdir="compat-files")
    expected = depmod_new_pairs(kmod.depmod, target.tree.moddir, target.symvers, files,
                                workdir / f"compat-{direction}-{step}", link=True)
    got = r.depmod_pairs()
    missing, extra = sorted(expected - got), sorted(got - expected)
    assert not missing and not extra, f"depmod only: {missing[:10]}; moddeps only: {extra[:10]}"
    names = {v.module for v in r.verdicts}
    own = sum(1 for m, _s in got if m in names)
    loads = sum(1 for v in r.verdicts if v.loads)
    if direction == "old-on-old":
        # a tree's own modules on their own kernel: everything loads, nothing is found
        assert loads == len(files) and not r.findings and not expected
    else:
        assert expected
    unknown = sum(len(f.symbols) for f in r.findings if f.kind == "unknown-symbol")
    sampled = "" if step == 1 else f", every {step}th module"
    summary.append(
        f"compat {source.tree.version} -> {target.tree.version} ({len(files)} files{sampled}): {len(expected)} "
        f"pairs ({unknown} unknown-symbol; {own} of the files, {len(got) - own} in-tree) identical to "
        f"depmod -e -E; {loads} load, {len(r.broken_in_tree)} in-tree modules broken")
