"""Debian kernel packages for the conformance suite: download, extract, cache.

Nothing here touches the repository.  Everything lives under the cache
directory, ``$MODDEPS_CONFORMANCE_CACHE`` (default
``/var/tmp/moddeps-conformance``)::

    CACHE/debs/NAME_VERSION_ARCH.deb       apt-get download
    CACHE/trees/NAME_VERSION_ARCH/         dpkg -x of that deb (+ .complete)
    CACHE/work/run-XXXX/                   per-session scratch copies

The kernel ABI is ``$MODDEPS_CONFORMANCE_KVER`` (default ``6.1.0-50``).  When
the default ABI can no longer be downloaded (Debian rotates old ABIs out of
the archive), the newest ``linux-image-6.1.0-N-cloud-amd64`` that
``apt-cache search`` lists is used instead, so CI does not break on the
rotation.  An ABI given explicitly in the environment is never replaced.

The ``cloud-6.12`` flavour is Debian's 6.12 cloud kernel from
bookworm-security, whose modules are xz-compressed (``.ko.xz``): the newest
``linux-image-6.12.N+deb12-cloud-amd64-unsigned`` that ``apt-cache search``
lists (Debian keeps only the last few), or ``$MODDEPS_CONFORMANCE_XZ_KVER``
(e.g. ``6.12.117+deb12``), which is never replaced.  With no such package
listed (no bookworm-security in the apt sources), the newest one already in
the cache or in ``$MODDEPS_CONFORMANCE_SEED`` is used.

Already-downloaded debs can be offered in ``$MODDEPS_CONFORMANCE_SEED`` (a
``:``-separated list of directories); they are copied into the cache instead
of being downloaded.  ``MODDEPS_CONFORMANCE_KEEP=1`` keeps the session's
scratch copies (``CACHE/work/run-XXXX``) for inspection.

Failures to obtain a package raise :class:`Unavailable`; the fixtures turn
that into a test failure under ``CI=true`` and into a skip elsewhere.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

DEFAULT_KVER = "6.1.0-50"
DEFAULT_CACHE = "/var/tmp/moddeps-conformance"

#: flavour -> (image package template, headers package template)
FLAVOURS = {
    "cloud": ("linux-image-{abi}-cloud-amd64", "linux-headers-{abi}-cloud-amd64"),
    "generic": ("linux-image-{abi}-amd64", "linux-headers-{abi}-amd64"),
}

_ABI_RE = re.compile(r"^linux-image-(6\.1\.0-(\d+))-cloud-amd64\s")

#: the xz-compressed flavour: Debian's 6.12 cloud kernel (bookworm-security)
XZ_FLAVOUR = "cloud-6.12"
XZ_PACKAGES = ("linux-image-{kver}-cloud-amd64-unsigned", "linux-headers-{kver}-cloud-amd64")
#: the ``tree`` fixture's parameters; a test module that also wants the xz
#: tree parametrizes ``tree`` indirectly over WITH_XZ
TREES = ("cloud", "generic")
WITH_XZ = (*TREES, XZ_FLAVOUR)

_XZ_KVER_RE = re.compile(r"^linux-image-(6\.12\.(\d+)\+deb12)-cloud-amd64-unsigned(?:\s|_)")


@dataclass(frozen=True)
class Kmod:
    """The real kmod tools."""

    depmod: str
    modprobe: str
    modinfo: str
    version: str


class Unavailable(Exception):
    """A package, a tool or the network is missing: the suite cannot run."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Fail under ``CI=true``, skip elsewhere."""
    if in_ci():
        pytest.fail(f"conformance prerequisites missing under CI=true: {reason}", pytrace=False)
    pytest.skip(f"conformance prerequisites missing: {reason}")


def cache_dir() -> Path:
    path = Path(os.environ.get("MODDEPS_CONFORMANCE_CACHE") or DEFAULT_CACHE)
    path.mkdir(parents=True, exist_ok=True)
    return path


def log(message: str) -> None:
    sys.stderr.write(f"[conformance] {message}\n")
    sys.stderr.flush()


def _run(argv: list[str], cwd: str | Path | None = None, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LC_ALL="C", DEBIAN_FRONTEND="noninteractive")
    try:
        return subprocess.run(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )
    except FileNotFoundError as exc:
        raise Unavailable(f"{argv[0]}: not installed ({exc})") from None
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{' '.join(argv)}: timed out after {timeout:.0f}s") from None


# --------------------------------------------------------------------------
# apt
# --------------------------------------------------------------------------

_apt_lock = threading.Lock()
_apt_updated = False


def _apt_update() -> bool:
    """``apt-get update``, at most once per process; True if it succeeded now."""
    global _apt_updated
    if _apt_updated:
        return False
    _apt_updated = True
    log("apt-get update")
    r = _run(["apt-get", "update"], timeout=900)
    if r.returncode != 0:
        log(f"apt-get update failed (status {r.returncode}): {r.stderr.strip()[-500:]}")
        return False
    return True


def _cached_deb(package: str) -> Path | None:
    found = sorted(glob.glob(str(cache_dir() / "debs" / f"{glob.escape(package)}_*.deb")))
    return Path(found[-1]) if found else None


def _seeded_deb(package: str) -> Path | None:
    for d in filter(None, os.environ.get("MODDEPS_CONFORMANCE_SEED", "").split(":")):
        found = sorted(glob.glob(os.path.join(glob.escape(d), f"{glob.escape(package)}_*.deb")))
        if found:
            return Path(found[-1])
    return None


def _apt_download(package: str, dest: Path) -> tuple[Path | None, str]:
    tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=dest))
    try:
        # _apt must be able to write here, or apt warns and downloads as root.
        os.chmod(tmp, 0o777)
        r = _run(["apt-get", "download", package], cwd=tmp, timeout=1800)
        debs = list(tmp.glob(f"{glob.escape(package)}_*.deb"))
        if r.returncode != 0 or len(debs) != 1:
            return None, (r.stderr or r.stdout).strip()[-800:]
        final = dest / debs[0].name
        os.replace(debs[0], final)
        return final, ""
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_deb(package: str) -> Path:
    """The .deb of ``package`` in the cache: cached, seeded, or ``apt-get download``."""
    with _apt_lock:
        cached = _cached_deb(package)
        if cached is not None:
            return cached
        dest = cache_dir() / "debs"
        dest.mkdir(parents=True, exist_ok=True)
        seeded = _seeded_deb(package)
        if seeded is not None:
            log(f"{package}: copying {seeded} into the cache")
            tmp = dest / f".{seeded.name}.tmp"
            shutil.copyfile(seeded, tmp)
            os.replace(tmp, dest / seeded.name)
            return dest / seeded.name
        log(f"{package}: apt-get download")
        deb, why = _apt_download(package, dest)
        if deb is None and _apt_update():
            deb, why = _apt_download(package, dest)
        if deb is None:
            raise Unavailable(f"cannot download {package}: {why or 'apt-get download failed'}")
        log(f"{package}: {deb.name} ({deb.stat().st_size / 1e6:.1f} MB)")
        return deb


def newest_listed_abi() -> str | None:
    """The newest ``6.1.0-N`` with a ``linux-image-6.1.0-N-cloud-amd64`` in ``apt-cache search``."""
    r = _run(["apt-cache", "search", "--names-only", r"^linux-image-6\.1\.0-[0-9]+-cloud-amd64$"], timeout=300)
    best: tuple[int, str] | None = None
    for line in r.stdout.splitlines():
        m = _ABI_RE.match(line + " ")
        if m and (best is None or int(m.group(2)) > best[0]):
            best = (int(m.group(2)), m.group(1))
    return best[1] if best else None


_abi_lock = threading.Lock()
_abi: str | None = None


def abi() -> str:
    """The kernel ABI to test, e.g. ``6.1.0-50`` (resolved once per process)."""
    global _abi
    with _abi_lock:
        if _abi is not None:
            return _abi
        explicit = os.environ.get("MODDEPS_CONFORMANCE_KVER")
        wanted = explicit or DEFAULT_KVER
        probe = FLAVOURS["cloud"][0].format(abi=wanted)
        try:
            fetch_deb(probe)
            _abi = wanted
            return _abi
        except Unavailable as exc:
            if explicit:
                raise Unavailable(f"MODDEPS_CONFORMANCE_KVER={explicit}: {exc}") from None
            newest = newest_listed_abi()
            if newest is None or newest == wanted:
                raise
            log(f"{probe} is not downloadable ({exc}); falling back to the newest listed ABI {newest}")
            fetch_deb(FLAVOURS["cloud"][0].format(abi=newest))
            _abi = newest
            return _abi


def _newest_xz_kver(names: list[str]) -> str | None:
    """The newest ``6.12.N+deb12`` among package names (or .deb file names)."""
    best: tuple[int, str] | None = None
    for name in names:
        m = _XZ_KVER_RE.match(name + " ")
        if m and (best is None or int(m.group(2)) > best[0]):
            best = (int(m.group(2)), m.group(1))
    return best[1] if best else None


def newest_listed_xz_kver() -> str | None:
    """The newest ``6.12.N+deb12`` with a ``linux-image-6.12.N+deb12-cloud-amd64-unsigned`` in ``apt-cache search``."""
    r = _run(
        ["apt-cache", "search", "--names-only", r"^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$"],
        timeout=300,
    )
    return _newest_xz_kver(r.stdout.splitlines())


def _newest_stored_xz_kver() -> str | None:
    """The newest 6.12 cloud image already in the cache or a seed directory."""
    dirs = [str(cache_dir() / "debs"), *filter(None, os.environ.get("MODDEPS_CONFORMANCE_SEED", "").split(":"))]
    pattern = "linux-image-6.12.*+deb12-cloud-amd64-unsigned_*.deb"
    found = [f for d in dirs for f in glob.glob(os.path.join(glob.escape(d), pattern))]
    return _newest_xz_kver([os.path.basename(f) for f in found])


_xz_lock = threading.Lock()
_xz_kver: str | None = None


def xz_kver() -> str:
    """The 6.12 kernel version to test, e.g. ``6.12.117+deb12`` (resolved once per process)."""
    global _xz_kver
    with _xz_lock:
        if _xz_kver is not None:
            return _xz_kver
        explicit = os.environ.get("MODDEPS_CONFORMANCE_XZ_KVER")
        if explicit:
            try:
                fetch_deb(XZ_PACKAGES[0].format(kver=explicit))
            except Unavailable as exc:
                raise Unavailable(f"MODDEPS_CONFORMANCE_XZ_KVER={explicit}: {exc}") from None
            _xz_kver = explicit
            return _xz_kver
        listed = newest_listed_xz_kver()
        if listed is None:
            stored = _newest_stored_xz_kver()
            if stored is None:
                raise Unavailable(
                    "apt-cache search lists no linux-image-6.12.N+deb12-cloud-amd64-unsigned "
                    "(bookworm-security missing from the apt sources?), and none is cached"
                )
            log(f"no 6.12 cloud image listed by apt-cache search; using the cached {stored}")
            listed = stored
        try:
            fetch_deb(XZ_PACKAGES[0].format(kver=listed))
        except Unavailable as exc:
            # fetch_deb ran apt-get update: the lists may now name a newer version
            again = newest_listed_xz_kver()
            if again is None or again == listed:
                raise
            log(f"{XZ_PACKAGES[0].format(kver=listed)} is not downloadable ({exc}); trying {again}")
            fetch_deb(XZ_PACKAGES[0].format(kver=again))
            listed = again
        _xz_kver = listed
        return _xz_kver


def packages(flavour: str) -> tuple[str, str]:
    """(image package, headers package) of a flavour."""
    if flavour == XZ_FLAVOUR:
        kver = xz_kver()
        return XZ_PACKAGES[0].format(kver=kver), XZ_PACKAGES[1].format(kver=kver)
    image, headers = FLAVOURS[flavour]
    return image.format(abi=abi()), headers.format(abi=abi())


# --------------------------------------------------------------------------
# extraction
# --------------------------------------------------------------------------

#: files depmod writes; a pristine tree must have none of them
GENERATED = (
    "modules.dep", "modules.dep.bin", "modules.alias", "modules.alias.bin", "modules.softdep",
    "modules.symbols", "modules.symbols.bin", "modules.devname", "modules.builtin.bin",
    "modules.builtin.alias.bin", "modules.weakdep",
)


def extract(deb: Path) -> Path:
    """``dpkg -x`` of ``deb`` in the cache (reused when complete and untouched)."""
    trees = cache_dir() / "trees"
    trees.mkdir(parents=True, exist_ok=True)
    final = trees / deb.name.removesuffix(".deb")
    if (final / ".complete").exists() and not any(
        (md / g).exists() for md in final.glob("lib/modules/*") for g in GENERATED
    ):
        return final
    if final.exists():
        log(f"{final}: incomplete or modified, extracting again")
        shutil.rmtree(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=trees))
    try:
        r = _run(["dpkg", "-x", str(deb), str(tmp)], timeout=1800)
        if r.returncode != 0:
            raise Unavailable(f"dpkg -x {deb} failed: {r.stderr.strip()[-500:]}")
        (tmp / ".complete").write_text(deb.name + "\n")
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


@dataclass(frozen=True)
class KernelTree:
    """An extracted linux-image package."""

    flavour: str  # "cloud", "generic" or "cloud-6.12" (XZ_FLAVOUR)
    package: str
    deb: Path
    root: Path  # the -b BASEDIR: ROOT/lib/modules/VERSION
    version: str  # e.g. 6.1.0-50-cloud-amd64

    @property
    def moddir(self) -> Path:
        return self.root / "lib" / "modules" / self.version

    def module_files(self) -> list[Path]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.moddir):
            dirnames[:] = [d for d in dirnames if d not in ("build", "source")]
            for f in filenames:
                if f.endswith((".ko", ".ko.xz", ".ko.zst", ".ko.gz")):
                    out.append(Path(dirpath) / f)
        return sorted(out)

    def module_kinds(self) -> dict[str, int]:
        """How many module files end in ``.ko``, ``.ko.xz``, ..."""
        kinds: dict[str, int] = {}
        for path in self.module_files():
            kind = ".ko" + path.name.rpartition(".ko")[2]
            kinds[kind] = kinds.get(kind, 0) + 1
        return kinds


def kernel_tree(flavour: str) -> KernelTree:
    package = packages(flavour)[0]
    deb = fetch_deb(package)
    root = extract(deb)
    versions = sorted(p.name for p in (root / "lib" / "modules").glob("*") if p.is_dir())
    if len(versions) != 1:
        raise Unavailable(f"{deb.name}: expected one lib/modules/VERSION directory, found {versions}")
    tree = KernelTree(flavour, package, deb, root, versions[0])
    for needed in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if not (tree.moddir / needed).is_file():
            raise Unavailable(f"{deb.name}: {needed} missing from {tree.moddir}")
    return tree


def module_symvers(flavour: str) -> Path:
    """Module.symvers of the flavour, from its linux-headers package."""
    package = packages(flavour)[1]
    root = extract(fetch_deb(package))
    found = sorted(root.glob("usr/src/linux-headers-*/Module.symvers"))
    if len(found) != 1:
        raise Unavailable(f"{package}: expected one usr/src/linux-headers-*/Module.symvers, found {found}")
    return found[0]


# --------------------------------------------------------------------------
# scratch copies
# --------------------------------------------------------------------------


def copy_tree(src: Path, dst: Path) -> Path:
    """A writable copy of ``src`` at ``dst``: hard links (depmod and moddeps
    replace their outputs by rename and never write into module files), or a
    full copy when hard links are impossible."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["cp", "-al", str(src), str(dst)], capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(dst, ignore_errors=True)
        r = subprocess.run(["cp", "-a", str(src), str(dst)], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"cp -a {src} {dst}: {r.stderr.strip()}")
    (dst / ".complete").unlink(missing_ok=True)
    return dst


def first_difference(a: Sequence[Any], b: Sequence[Any]) -> int:
    """The first index where ``a`` and ``b`` differ (the shorter length if one is a prefix)."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
