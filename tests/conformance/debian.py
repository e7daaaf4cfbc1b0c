"""Debian kernel packages for the conformance suite: download, extract, cache.

Nothing here touches the repository.  Everything lives under the cache
directory, ``$MODDEPS_CONFORMANCE_CACHE`` (default
``/var/tmp/moddeps-conformance``)::

    CACHE/debs/NAME_VERSION_ARCH.deb       apt-get download
    CACHE/trees/NAME_VERSION_ARCH/         dpkg -x of that deb (+ .complete)
    CACHE/trees/DEB+DEB/                   dpkg -x of several debs into one root
    CACHE/tools/kmod-VERSION/              kmod 34.2 and its libraries (dpkg -x)
    CACHE/apt-trixie-forky/                the separate apt configuration
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

Debian 13 and 14 (``NEW_TREES``) come through a separate apt configuration
in ``CACHE/apt-trixie-forky/`` (its own sources list for trixie and forky
main, signed by the Debian archive keyring, its own package lists and apt
cache, all passed as ``-o`` options; the machine's apt configuration is
neither read for them nor changed):

* ``deb13-6.12``: the newest ``linux-image-6.12.N+deb13-cloud-amd64-unsigned``
  listed (or ``$MODDEPS_CONFORMANCE_DEB13_KVER``, e.g. ``6.12.117+deb13``)
  and its ``linux-headers`` (Module.symvers);
* ``deb13-6.12-amd64``: the same release's generic ``linux-image-6.12.N+deb13-amd64-unsigned``
  (about 4,200 ``.ko.xz``) and its ``linux-headers-…-amd64``;
* ``deb14-7.x``: the newest ``linux-modules-7.X.N+deb14-cloud-amd64`` with
  ``linux-base-…`` extracted into the same root (or
  ``$MODDEPS_CONFORMANCE_DEB14_KVER``, e.g. ``7.2.12+deb14``) and its
  ``linux-headers``.

Both put their modules in ``usr/lib/modules/VERSION`` only; copies get
``lib -> usr/lib`` for Debian's kmod (:func:`link_lib`).  kmod 34.2 itself
(:func:`kmod34`) is trixie's ``kmod``, ``libkmod2``, ``libc6``,
``liblzma5``, ``libzstd1`` and ``libssl3t64`` (versions from ``apt-cache
madison``), extracted together into ``CACHE/tools/kmod-VERSION/`` and run
through that libc's dynamic loader.  ``$MODDEPS_CONFORMANCE_MIRROR``
replaces http://deb.debian.org/debian.

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
_apt_updated: set[bool] = set()  # which lists were updated in this process (False: the machine's, True: SEPARATE)


def apt_options(separate: bool) -> list[str]:
    """``-o`` options selecting the separate trixie + forky configuration (none for the machine's own)."""
    return separate_apt().options() if separate else []


def _apt_update(separate: bool = False) -> bool:
    """``apt-get update`` of one configuration, at most once per process; True if it succeeded now."""
    if separate in _apt_updated:
        return False
    _apt_updated.add(separate)
    what = "the separate trixie + forky lists" if separate else "the machine's lists"
    log(f"apt-get update ({what})")
    r = _run(["apt-get", *apt_options(separate), "update"], timeout=900)
    if r.returncode != 0:
        log(f"apt-get update failed (status {r.returncode}): {r.stderr.strip()[-500:]}")
        return False
    return True


def _deb_glob(package: str, version: str | None) -> str:
    """The file-name pattern of ``package``'s .deb (apt writes an epoch's ``:`` as ``%3a``)."""
    v = "*" if version is None else glob.escape(version.replace(":", "%3a"))
    return f"{glob.escape(package)}_{v}_*.deb"


def _cached_deb(package: str, version: str | None = None) -> Path | None:
    found = sorted(glob.glob(str(cache_dir() / "debs" / _deb_glob(package, version))))
    return Path(found[-1]) if found else None


def seed_dirs() -> list[str]:
    return list(filter(None, os.environ.get("MODDEPS_CONFORMANCE_SEED", "").split(":")))


def _seeded_deb(package: str, version: str | None = None) -> Path | None:
    for d in seed_dirs():
        found = sorted(glob.glob(os.path.join(glob.escape(d), _deb_glob(package, version))))
        if found:
            return Path(found[-1])
    return None


def _apt_download(package: str, dest: Path, version: str | None, separate: bool) -> tuple[Path | None, str]:
    tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=dest))
    try:
        # _apt must be able to write here, or apt warns and downloads as root.
        os.chmod(tmp, 0o777)
        spec = package if version is None else f"{package}={version}"
        r = _run(["apt-get", *apt_options(separate), "download", spec], cwd=tmp, timeout=1800)
        debs = list(tmp.glob(_deb_glob(package, version)))
        if r.returncode != 0 or len(debs) != 1:
            return None, (r.stderr or r.stdout).strip()[-800:]
        final = dest / debs[0].name
        os.replace(debs[0], final)
        return final, ""
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_deb(package: str, version: str | None = None, *, separate: bool = False) -> Path:
    """The .deb of ``package`` (of exactly ``version`` if given) in the cache:
    cached, seeded, or ``apt-get download`` (through the separate trixie +
    forky configuration if ``separate``)."""
    with _apt_lock:
        cached = _cached_deb(package, version)
        if cached is not None:
            return cached
        dest = cache_dir() / "debs"
        dest.mkdir(parents=True, exist_ok=True)
        seeded = _seeded_deb(package, version)
        if seeded is not None:
            log(f"{package}: copying {seeded} into the cache")
            tmp = dest / f".{seeded.name}.tmp"
            shutil.copyfile(seeded, tmp)
            os.replace(tmp, dest / seeded.name)
            return dest / seeded.name
        log(f"{package}{'' if version is None else '=' + version}: apt-get download")
        deb, why = _apt_download(package, dest, version, separate)
        if deb is None and _apt_update(separate):
            deb, why = _apt_download(package, dest, version, separate)
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
        if listed is None and _apt_update():
            listed = newest_listed_xz_kver()  # the lists may just have been stale or missing
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
    return extract_together([deb])


@dataclass(frozen=True)
class KernelTree:
    """An extracted linux-image package."""

    flavour: str  # "cloud", "generic", "cloud-6.12" (XZ_FLAVOUR), or one of NEW_TREES
    package: str
    deb: Path
    root: Path  # the -b BASEDIR: ROOT/MODULEDIR/VERSION
    version: str  # e.g. 6.1.0-50-cloud-amd64
    #: where the package puts the modules: Debian 13 and 14 ship them under
    #: usr/lib/modules only (merged /usr); see link_lib()
    moduledir: str = "lib/modules"
    #: further packages extracted into the same root (Debian 14's linux-base)
    extra: tuple[str, ...] = ()

    @property
    def moddir(self) -> Path:
        return self.root / self.moduledir / self.version

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
    if flavour in NEW_TREES:
        return new_kernel_tree(flavour)
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
    if flavour in NEW_TREES:
        series = SERIES[flavour]
        package = series.headers.format(kver=series.kver())
        root = extract(fetch_deb(package, separate=True))
    else:
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


# --------------------------------------------------------------------------
# Debian 13 and 14: a separate apt configuration, their kernels, kmod 34.2
# --------------------------------------------------------------------------

#: the suites of the separate configuration; the machine's own apt
#: configuration (Debian 12's) is never changed
SEPARATE_SUITES = ("trixie", "forky")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class SeparateApt:
    """``CACHE/apt-trixie-forky/``: a sources list, package lists and apt's
    own cache, used through ``-o`` options only."""

    base: Path

    @property
    def sources(self) -> Path:
        return self.base / "sources.list"

    def options(self) -> list[str]:
        return [
            "-o", f"Dir::Etc::SourceList={self.sources}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={self.base / 'lists'}",
            "-o", f"Dir::Cache={self.base / 'cache'}",  # not /var/cache/apt's pkgcache.bin
        ]


_separate: SeparateApt | None = None


def separate_apt() -> SeparateApt:
    global _separate
    if _separate is None:
        base = cache_dir() / "apt-trixie-forky"
        for d in ("lists/partial", "cache/archives/partial"):
            (base / d).mkdir(parents=True, exist_ok=True)
        mirror = os.environ.get("MODDEPS_CONFORMANCE_MIRROR") or MIRROR
        text = "".join(f"deb [signed-by={KEYRING}] {mirror} {suite} main\n" for suite in SEPARATE_SUITES)
        apt = SeparateApt(base)
        if not apt.sources.exists() or apt.sources.read_text() != text:
            apt.sources.write_text(text)
        _separate = apt
    return _separate


def _separate_lists_present() -> bool:
    return bool(glob.glob(str(separate_apt().base / "lists" / "*_Packages*")))


def separate_query(argv: list[str]) -> str:
    """stdout of ``apt-cache ARGV`` in the separate configuration (its lists
    fetched first if there are none yet)."""
    with _apt_lock:
        if not _separate_lists_present():
            _apt_update(separate=True)
    r = _run(["apt-cache", *separate_apt().options(), *argv], timeout=300)
    return r.stdout if r.returncode == 0 else ""


def suite_version(package: str, suite: str, prefix: str = "") -> str | None:
    """The version of ``package`` in ``suite`` (``apt-cache madison``), starting with ``prefix``."""
    for line in separate_query(["madison", package]).splitlines():
        cols = [c.strip() for c in line.split("|")]
        if (len(cols) == 3 and cols[0] == package and cols[1].startswith(prefix)
                and re.search(rf"\s{re.escape(suite)}/", " " + cols[2])):
            return cols[1]
    return None


def _stored_versions(package: str) -> list[str]:
    """Versions of ``package`` whose .deb is in the cache or a seed directory."""
    dirs = [str(cache_dir() / "debs"), *seed_dirs()]
    out = []
    for d in dirs:
        for f in glob.glob(os.path.join(glob.escape(d), _deb_glob(package, None))):
            out.append(os.path.basename(f)[len(package) + 1 :].rsplit("_", 1)[0].replace("%3a", ":"))
    return out


@dataclass(frozen=True)
class Series:
    """A Debian kernel series found by name in the separate lists (Debian
    keeps only the newest few versions, so the newest listed one is used)."""

    flavour: str
    env: str  # an explicit KVER (e.g. 6.12.117+deb13), never replaced
    packages: tuple[str, ...]  # extracted into one root; {kver} stands for the version
    headers: str
    pattern: str  # apt-cache search regex for packages[0]
    name_re: re.Pattern[str]  # packages[0] -> (kver, then the numbers to sort by)
    example: str

    def _newest(self, names: list[str]) -> str | None:
        best: tuple[tuple[int, ...], str] | None = None
        for name in names:
            m = self.name_re.match(name + " ")
            if m:
                key = tuple(int(x) for x in m.groups()[1:])
                if best is None or key > best[0]:
                    best = (key, m.group(1))
        return best[1] if best else None

    def newest_listed(self) -> str | None:
        return self._newest(separate_query(["search", "--names-only", self.pattern]).splitlines())

    def newest_stored(self) -> str | None:
        stem = self.packages[0].partition("{kver}")
        pattern = f"{glob.escape(stem[0])}*{glob.escape(stem[2])}_*.deb"
        found = [f for d in [str(cache_dir() / "debs"), *seed_dirs()]
                 for f in glob.glob(os.path.join(glob.escape(d), pattern))]
        return self._newest([os.path.basename(f) for f in found])

    def kver(self) -> str:
        with _series_lock:
            if self.flavour in _series_kver:
                return _series_kver[self.flavour]
            explicit = os.environ.get(self.env)
            if explicit:
                try:
                    fetch_deb(self.packages[0].format(kver=explicit), separate=True)
                except Unavailable as exc:
                    raise Unavailable(f"{self.env}={explicit}: {exc}") from None
                kver = explicit
            else:
                listed = self.newest_listed()
                if listed is None:
                    stored = self.newest_stored()
                    if stored is None:
                        raise Unavailable(
                            f"the separate apt lists ({', '.join(SEPARATE_SUITES)}) name no {self.example} "
                            f"(apt-cache search '{self.pattern}'), and none is cached")
                    log(f"no {self.example} listed; using the cached {stored}")
                    listed = stored
                try:
                    fetch_deb(self.packages[0].format(kver=listed), separate=True)
                except Unavailable as exc:
                    again = self.newest_listed()  # fetch_deb updated the lists
                    if again is None or again == listed:
                        raise
                    log(f"{self.packages[0].format(kver=listed)} is not downloadable ({exc}); trying {again}")
                    fetch_deb(self.packages[0].format(kver=again), separate=True)
                    listed = again
                kver = listed
            _series_kver[self.flavour] = kver
            return kver


_series_lock = threading.Lock()
_series_kver: dict[str, str] = {}

DEB13 = "deb13-6.12"
DEB13_AMD64 = "deb13-6.12-amd64"
DEB14 = "deb14-7.x"
#: the trees kmod 34.2 is compared on (``tree`` fixture parameters)
NEW_TREES = (DEB13, DEB13_AMD64, DEB14)
SERIES = {
    DEB13: Series(
        DEB13, "MODDEPS_CONFORMANCE_DEB13_KVER",
        ("linux-image-{kver}-cloud-amd64-unsigned",), "linux-headers-{kver}-cloud-amd64",
        r"^linux-image-6\.12\.[0-9]+\+deb13-cloud-amd64-unsigned$",
        re.compile(r"^linux-image-(6\.12\.(\d+)\+deb13)-cloud-amd64-unsigned(?:\s|_)"),
        "linux-image-6.12.N+deb13-cloud-amd64-unsigned",
    ),
    # Debian 13's generic amd64 kernel: ~4,200 .ko.xz, the size of a real machine's tree
    DEB13_AMD64: Series(
        DEB13_AMD64, "MODDEPS_CONFORMANCE_DEB13_KVER",
        ("linux-image-{kver}-amd64-unsigned",), "linux-headers-{kver}-amd64",
        r"^linux-image-6\.12\.[0-9]+\+deb13-amd64-unsigned$",
        re.compile(r"^linux-image-(6\.12\.(\d+)\+deb13)-amd64-unsigned(?:\s|_)"),
        "linux-image-6.12.N+deb13-amd64-unsigned",
    ),
    DEB14: Series(
        DEB14, "MODDEPS_CONFORMANCE_DEB14_KVER",
        ("linux-modules-{kver}-cloud-amd64", "linux-base-{kver}-cloud-amd64"), "linux-headers-{kver}-cloud-amd64",
        r"^linux-modules-7\.[0-9]+\.[0-9]+\+deb14-cloud-amd64$",
        re.compile(r"^linux-modules-(7\.(\d+)\.(\d+)\+deb14)-cloud-amd64(?:\s|_)"),
        "linux-modules-7.X.N+deb14-cloud-amd64",
    ),
}


def extract_together(debs: Sequence[Path]) -> Path:
    """``dpkg -x`` of one or several debs into one root, ``CACHE/trees/NAME[+NAME...]``
    (reused when complete and no depmod output has been written into it)."""
    trees = cache_dir() / "trees"
    trees.mkdir(parents=True, exist_ok=True)
    final = trees / "+".join(d.name.removesuffix(".deb") for d in debs)
    stamp = "".join(d.name + "\n" for d in debs)
    if (final / ".complete").exists() and not any(
        (md / g).exists()
        for pattern in ("lib/modules/*", "usr/lib/modules/*") for md in final.glob(pattern) for g in GENERATED
    ):
        return final
    if final.exists():
        log(f"{final}: incomplete or modified, extracting again")
        shutil.rmtree(final)
    _extract_into(debs, final, stamp, prefix=f".{final.name[:40]}-", timeout=1800)
    return final


def _extract_into(debs: Sequence[Path], final: Path, stamp: str, *, prefix: str, timeout: float) -> None:
    """``dpkg -x`` of every deb into a new directory renamed to ``final`` when
    complete (``final/.complete`` holds ``stamp``)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
    try:
        for deb in debs:
            r = _run(["dpkg", "-x", str(deb), str(tmp)], timeout=timeout)
            if r.returncode != 0:
                raise Unavailable(f"dpkg -x {deb} failed: {r.stderr.strip()[-500:]}")
        (tmp / ".complete").write_text(stamp)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def new_kernel_tree(flavour: str) -> KernelTree:
    """Debian 13's 6.12 or Debian 14's 7.x cloud kernel: modules under usr/lib/modules only."""
    series = SERIES[flavour]
    kver = series.kver()
    names = tuple(p.format(kver=kver) for p in series.packages)
    debs = [fetch_deb(n, separate=True) for n in names]
    root = extract_together(debs)
    moduledir = "usr/lib/modules"
    versions = sorted(p.name for p in (root / moduledir).glob("*") if p.is_dir())
    if len(versions) != 1:
        raise Unavailable(f"{', '.join(names)}: expected one {moduledir}/VERSION directory, found {versions}")
    if (root / "lib").exists():
        raise Unavailable(f"{', '.join(names)}: expected no lib/ (merged /usr), found {root / 'lib'}")
    tree = KernelTree(flavour, names[0], debs[0], root, versions[0], moduledir, names[1:])
    for needed in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if not (tree.moddir / needed).is_file():
            raise Unavailable(f"{', '.join(names)}: {needed} missing from {tree.moddir}")
    return tree


def link_lib(root: Path) -> None:
    """``ROOT/lib -> usr/lib``, as on a merged-/usr system: Debian's kmod (30
    and 34.2) is built with MODULE_DIRECTORY=/lib/modules, so it finds the
    modules of a Debian 13/14 root only through this link."""
    if not (root / "lib").exists():
        (root / "lib").symlink_to("usr/lib")


# --------------------------------------------------------------------------
# kmod 34.2 from Debian 13
# --------------------------------------------------------------------------

KMOD34_SUITE = "trixie"
KMOD34_PREFIX = "34.2-"
#: kmod and what its binary needs at run time (libkmod dlopens liblzma and libzstd)
KMOD34_PACKAGES = ("kmod", "libkmod2", "libc6", "liblzma5", "libzstd1", "libssl3t64")
MULTIARCH = "usr/lib/x86_64-linux-gnu"


@dataclass(frozen=True)
class KmodCmd:
    """A kmod build as argv prefixes (a program, or a dynamic loader running one)."""

    depmod: tuple[str, ...]
    modprobe: tuple[str, ...]
    modinfo: tuple[str, ...]
    version: str  # what ``depmod --version`` says after "kmod version "
    home: str = ""  # the extracted packages (usr/bin/kmod, usr/lib/...), if not the system's

    @classmethod
    def installed(cls, kmod: Kmod) -> KmodCmd:
        return cls((kmod.depmod,), (kmod.modprobe,), (kmod.modinfo,), kmod.version)


def _kmod34_versions() -> dict[str, str]:
    """package -> trixie version (``apt-cache madison``), else the one cached or seeded."""
    out = {}
    for package in KMOD34_PACKAGES:
        prefix = KMOD34_PREFIX if package in ("kmod", "libkmod2") else ""
        version = suite_version(package, KMOD34_SUITE, prefix)
        if version is None:
            stored = sorted(v for v in _stored_versions(package) if v.startswith(prefix))
            if not stored:
                raise Unavailable(f"no {KMOD34_SUITE} version of {package} {prefix}* is listed "
                                  "(apt-cache madison) or cached")
            version = stored[-1]
            log(f"{package}: not listed by apt-cache madison; using the cached {version}")
        out[package] = version
    return out


_kmod34_lock = threading.Lock()
_kmod34: KmodCmd | None = None


def kmod34() -> KmodCmd:
    """kmod 34.2 of Debian 13, extracted with its libraries into
    ``CACHE/tools/kmod-VERSION/`` and run by that tree's dynamic loader
    (``--argv0`` picks the tool, as the /usr/sbin symlinks do)."""
    global _kmod34
    with _kmod34_lock:
        if _kmod34 is not None:
            return _kmod34
        versions = _kmod34_versions()
        debs = [fetch_deb(p, v, separate=True) for p, v in versions.items()]
        tools = cache_dir() / "tools"
        tools.mkdir(parents=True, exist_ok=True)
        final = tools / f"kmod-{versions['kmod']}"
        stamp = "".join(d.name + "\n" for d in debs)
        if not (final / ".complete").exists() or (final / ".complete").read_text() != stamp:
            shutil.rmtree(final, ignore_errors=True)
            _extract_into(debs, final, stamp, prefix=".kmod-", timeout=600)
        lib = final / MULTIARCH
        loader = lib / "ld-linux-x86-64.so.2"
        binary = final / "usr/bin/kmod"
        if not (loader.exists() and binary.exists()):
            raise Unavailable(f"{final}: {loader.name} or usr/bin/kmod missing after dpkg -x")

        def argv(tool: str) -> tuple[str, ...]:
            return (str(loader), "--library-path", str(lib), "--argv0", tool, str(binary))

        r = _run([*argv("depmod"), "--version"], timeout=60)
        first = r.stdout.splitlines()[0] if r.stdout else ""
        if first.strip() != "kmod version 34.2":
            raise Unavailable(f"{' '.join(argv('depmod'))} --version says {first!r} "
                              f"(status {r.returncode}, {r.stderr.strip()[-300:]!r}), not 'kmod version 34.2'")
        _kmod34 = KmodCmd(argv("depmod"), argv("modprobe"), argv("modinfo"), first.split()[-1], str(final))
        return _kmod34


if __name__ == "__main__":  # python -m tests.conformance.debian kmod34-version (.ci/run prints it)
    if sys.argv[1:] != ["kmod34-version"]:
        sys.exit("usage: python -m tests.conformance.debian kmod34-version")
    try:
        k = kmod34()
    except Unavailable as exc:
        sys.exit(f"kmod 34.2: unavailable: {exc}")
    out = subprocess.run([*k.depmod, "--version"], capture_output=True, text=True).stdout
    print(" ".join(out.split("\n")[:2]).strip())
