#!/usr/bin/env python3
"""moddeps against kmod's depmod, side by side, on real Debian module trees.

Run by a person (not a test):

    python benchmarks/bench_depmod.py                 # 5 rounds on Debian's trees, kmod 30 and 34.2
    python benchmarks/bench_depmod.py --rounds 9 --trees amd64 deb13-amd64-xz
    python benchmarks/bench_depmod.py --tree DIR:VERSION   # any extracted tree (DIR/lib/modules/VERSION)
    python benchmarks/bench_depmod.py --kmod 30       # kmod 30 alone

Each row has a column group per kmod release: ``kmod 30`` is kmod's ``depmod`` on PATH (Debian 12's
kmod 30) against ``moddeps depmod --kmod-version 30``; ``kmod 34.2`` is Debian 13's kmod, libkmod2,
libc6, liblzma5, libzstd1 and libssl3t64 packages extracted into one directory and run through that
libc's loader (as the conformance suite runs it), against ``moddeps depmod --kmod-version 34``.
kmod 34.2 is ``$MODDEPS_KMOD34_ROOT``, else the one the conformance suite extracted into its cache
(``python -m tests.conformance.debian kmod34-version`` makes it); without either, ``--kmod`` defaults
to 30 alone.  The releases alternate within each round, each on its own copy of the tree and cache.

Needs kmod's ``depmod`` on PATH and ``moddeps`` installed (``pip install .`` byte-compiles it;
PYTHONDONTWRITEBYTECODE is dropped for the timed runs, otherwise an editable install would
compile every module of moddeps on every run, ~40 ms).  Trees come from the conformance suite's
cache when it holds them (``$MODDEPS_CONFORMANCE_CACHE``, default /var/tmp/moddeps-conformance),
else packages are fetched with ``apt-get download`` into ``$MODDEPS_BENCH_CACHE`` (default
/var/tmp/moddeps-bench).

Trees:
  cloud           linux-image-6.1.0-N-cloud-amd64 (~1,100 .ko)
  amd64           linux-image-6.1.0-N-amd64 (~4,000 .ko)
  deb13-cloud-xz  Debian 13's linux-image-6.12.N+deb13-cloud-amd64-unsigned (~1,140 .ko.xz, merged /usr)
  deb13-amd64-xz  Debian 13's linux-image-6.12.N+deb13-amd64-unsigned (~4,230 .ko.xz, merged /usr)
  deb14-cloud-xz  Debian 14's linux-modules-7.N+deb14-cloud-amd64 (~1,000 .ko.xz)
                  (these three from the conformance cache only: its suite extracts them)
  6.12-xz         linux-image-6.12.N+deb12-amd64-unsigned (~4,200 .ko.xz), the newest 6.12 kernel that
                  bookworm-security carries (Debian compresses its 6.12 modules with xz)
  amd64-xz        the 6.1 amd64 tree with every module compressed as Kbuild's CONFIG_MODULE_COMPRESS_XZ
                  does (xz --check=crc32 --lzma2=dict=1MiB)
  amd64-10x       ten renamed copies of every amd64 module (~40,000 .ko), for scaling
A merged-/usr tree gets ROOT/lib -> usr/lib in its copies, as on such a system (kmod finds
/lib/modules through it).

Rows, each timed in alternating rounds (kmod, then moddeps) and reported as medians:
  depmod-cold   moddeps depmod --no-cache      vs  depmod      (all output files)
  first-run     moddeps depmod with an empty cache (reads everything and fills the cache)
  depmod-warm   moddeps depmod (cache primed)  vs  depmod
  all-cached    moddeps depmod after deleting modules.dep: every module comes from its cache record
                (each record's checksum verified), everything is computed and written again
  one-touched   moddeps depmod after touching one module (cache otherwise warm)
  one-rebuilt   ... after replacing one module with a rebuild whose bytes differ but not what
                depmod reads of it (another srcversion: a bug fix rebuilt, a package reinstalled)
  one-changed   ... after replacing one module with one whose first alias differs (a driver update
                with a new device id): what depmod reads changed, so every output is computed again
  one-export    ... after replacing a library module with one where an export that 2-20 other
                modules import is renamed: the owner of two symbols moves, and with it the
                dependencies of the modules importing them
  one-added     ... after adding a module of a new name under extra/ (a copy of that library, as
                DKMS adds one: its exports are now exported twice, and the copy owns them)
  one-removed   ... after removing it again
                The changes replace the module the way a package manager does (new file, rename), and
                the module is put back (and moddeps run once, untimed) before the next round.
  scan --json   moddeps scan --json --no-cache >/dev/null  vs  depmod
  scan_tree()   the library scan alone (walk, order, read every module; no cache, no output)
                vs depmod (the reader's target: a scan faster than kmod's whole run)
  decompression floor (compressed trees): the CPU time Python's lzma needs to decompress every
                module of the tree once (benchmarks/xzdecode.py, in a process of its own, once a
                round), divided by the cores; its row holds the floor in the kmod column and
                moddeps' depmod-cold beside it, and the ratio cold / floor.  A second row: the
                same with moddeps' C decoder (xzdecode.py --decoder moddeps-c: the same liblzma,
                one stream reused from module to module), when this checkout has it built.  With
                kmod 34.2 a third floor row uses kmod 34.2's own liblzma (Debian 13's) under
                Python's lzma.
Times are wall seconds; CPU x is the ratio of user + system time (wait4's rusage), mem x that of
peak RSS (ru_maxrss).  Outputs of both tools are compared with cmp after the rounds
(byte-identical is required; a difference is reported).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conformance.mutate import (  # the changes the conformance tests make too
    module_bytes,
    pick_victim,
    rename_export,
    replace_file,
    variants,
)

CACHE = Path(os.environ.get("MODDEPS_BENCH_CACHE", "/var/tmp/moddeps-bench"))
#: the conformance suite's cache: its extracted kernel trees and kmod 34.2 are used when present
CONFORMANCE = Path(os.environ.get("MODDEPS_CONFORMANCE_CACHE") or "/var/tmp/moddeps-conformance")
ABI = os.environ.get("MODDEPS_BENCH_ABI", "6.1.0-50")
OUTPUTS = ["modules.dep", "modules.dep.bin", "modules.alias", "modules.alias.bin", "modules.softdep",
           "modules.symbols", "modules.symbols.bin", "modules.builtin.bin", "modules.builtin.alias.bin",
           "modules.devname"]


def kmod34_root() -> str | None:
    """The extracted kmod 34.2 (with its C library): $MODDEPS_KMOD34_ROOT, else the one the
    conformance suite extracted (``python -m tests.conformance.debian kmod34-version`` makes it)."""
    root = os.environ.get("MODDEPS_KMOD34_ROOT")
    if root:
        return root
    found = sorted(p for p in (CONFORMANCE / "tools").glob("kmod-34.2-*") if (p / ".complete").exists())
    return str(found[-1]) if found else None


def kmod_depmod(release: int) -> list[str]:
    """argv prefix of the real depmod of ``release`` (30: on PATH; 34: kmod 34.2, see kmod34_root)."""
    if release == 30:
        return ["depmod"]
    root = kmod34_root()
    if not root:
        sys.exit("--kmod 34 needs kmod 34.2: MODDEPS_KMOD34_ROOT (an extracted kmod 34.2 with its C library), or "
                 "run `python -m tests.conformance.debian kmod34-version` once (extracts one into its cache)")
    lib = os.path.join(root, "usr/lib/x86_64-linux-gnu")
    return [os.path.join(lib, "ld-linux-x86-64.so.2"), "--library-path", lib, "--argv0", "depmod",
            os.path.join(root, "usr/bin/kmod")]


def conformance_tree(pattern: str) -> tuple[Path, str] | None:
    """A kernel tree the conformance suite extracted (``CACHE/trees/PACKAGE_VERSION_ARCH``):
    the newest whose directory name matches ``pattern``, and its module directory's version."""
    for root in sorted(CONFORMANCE.glob(f"trees/{pattern}"), reverse=True):
        for moduledir in ("lib/modules", "usr/lib/modules"):
            versions = [p.name for p in (root / moduledir).glob("*") if (p / "modules.order").is_file()]
            if len(versions) == 1:
                return root, versions[0]
    return None


def sh(*cmd: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload,no-any-return]


def newest_612() -> str:
    """The newest linux-image-6.12.*-amd64-unsigned package name apt knows."""
    out = subprocess.run(["apt-cache", "pkgnames", "linux-image-6.12."], capture_output=True, text=True,
                         check=True).stdout.split()
    names = [n for n in out if n.endswith("+deb12-amd64-unsigned")]
    if not names:
        sys.exit("no linux-image-6.12.*+deb12-amd64-unsigned package known to apt (bookworm-security)")
    return max(names, key=lambda n: [int(x) for x in n.split("-")[2].split("+")[0].split(".")])


def fetch(flavour: str, pkg: str | None = None) -> tuple[Path, str]:
    version = f"{ABI}-{flavour}"
    if pkg is not None:
        version = pkg.removeprefix("linux-image-").removesuffix("-unsigned")
    root = CACHE / f"tree-{version}"
    if not (root / "lib/modules" / version).is_dir():
        found = conformance_tree(f"{pkg or f'linux-image-{version}'}_*")
        if found is not None and found[1] == version:
            return found
        CACHE.mkdir(parents=True, exist_ok=True)
        pkg = pkg or f"linux-image-{version}"
        debs = list(CACHE.glob(f"{pkg}_*.deb"))
        if not debs:
            sh("apt-get", "download", pkg, cwd=CACHE)
            debs = list(CACHE.glob(f"{pkg}_*.deb"))
        tmp = root.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        sh("dpkg", "-x", str(debs[0]), str(tmp))
        tmp.rename(root)
    return root, version


def make_xz(src_root: Path, version: str) -> tuple[Path, str]:
    root = CACHE / f"tree-{version}-xz"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(src_root, root, symlinks=True)
        kos = [str(p) for p in (root / "lib/modules" / version).rglob("*.ko")]
        for i in range(0, len(kos), 200):
            sh("xz", "--check=crc32", "--lzma2=dict=1MiB", "-T1", *kos[i : i + 200])
        (root / "done").write_text("")
    return root, version


def make_10x(src_root: Path, version: str) -> tuple[Path, str]:
    root = CACHE / f"tree-{version}-10x"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        mdir = root / "lib/modules" / version
        src = src_root / "lib/modules" / version
        mdir.mkdir(parents=True)
        for extra in ("modules.builtin", "modules.builtin.modinfo"):
            shutil.copy(src / extra, mdir / extra)
        order = (src / "modules.order").read_text().splitlines()
        lines = []
        for k in range(10):
            for ko in src.rglob("*.ko"):
                rel = ko.relative_to(src)
                new = Path(f"kernel/copy{k}") / rel.parent / f"{ko.name[:-3]}_c{k}.ko"
                (mdir / new).parent.mkdir(parents=True, exist_ok=True)
                os.link(ko, mdir / new)
            lines += [f"kernel/copy{k}/{line[:-3]}_c{k}.ko" for line in order]
        (mdir / "modules.order").write_text("\n".join(lines) + "\n")
        (root / "done").write_text("")
    return root, version


class Run(NamedTuple):
    """One timed child: wall seconds, CPU seconds (user + system, from wait4), peak RSS (KiB),
    minor page faults."""

    wall: float
    cpu: float
    rss: int
    faults: int = 0


def timed(cmd: list[str], env: dict[str, str] | None = None, cwd: str | Path | None = None) -> Run:
    """Wall time, CPU time, peak RSS and minor faults of one run of ``cmd`` (in ``cwd``)."""
    env = dict(env if env is not None else os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode() if p.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, usage.ru_minflt)


def copy_tree(root: Path, dst: Path) -> None:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(root, dst, symlinks=True, copy_function=os.link)
    if (dst / "usr/lib/modules").is_dir() and not (dst / "lib").exists():
        # a merged-/usr tree (Debian 13 on): kmod (built with /lib/modules) finds it through
        # ROOT/lib -> usr/lib, as on such a system (tests/conformance/debian.py:link_lib)
        (dst / "lib").symlink_to("usr/lib")


def release_name(release: int) -> str:
    return "34.2" if release == 34 else str(release)


class Side:
    """One kmod release and moddeps in that release's mode, each on its own copy of the tree."""

    def __init__(self, release: int, root: Path, version: str, work: Path, moddeps: list[str]) -> None:
        self.release = release
        base = work / f"kmod{release}"
        empty = work / "empty"
        empty.mkdir(exist_ok=True)
        self.kdir, self.mdir = base / "kmod", base / "moddeps"
        copy_tree(root, self.kdir)
        copy_tree(root, self.mdir)
        self.moddir = self.mdir / "lib/modules" / version
        self.db = base / "cache.sqlite3"
        self.env = {**os.environ, "MODDEPS_CACHE": str(self.db)}
        self.kmod = [*kmod_depmod(release), "-C", str(empty), "-b", str(self.kdir), version]
        mode = ["--kmod-version", str(release)]
        self.cold = [*moddeps, "depmod", *mode, "--no-cache", "-C", str(empty), "-b", str(self.mdir), version]
        self.warm = [*moddeps, "depmod", *mode, "-C", str(empty), "-b", str(self.mdir), version]
        self.scan = [*moddeps, "scan", "--json", "--no-cache", str(self.moddir)]
        self.scan_lib = [sys.executable, "-c",
                         "import sys; from moddeps.read.scan import scan_tree; scan_tree(sys.argv[1])",
                         str(self.moddir)]
        self.res: dict[str, list[Run]] = {k: [] for k in ("kmod", *(key for key, _label in ROWS))}

    def same_outputs(self) -> bool:
        outputs = [*OUTPUTS, "modules.weakdep"] if self.release >= 33 else OUTPUTS
        kmoddir = self.kdir / "lib/modules" / self.moddir.name
        return all((kmoddir / f).read_bytes() == (self.moddir / f).read_bytes() for f in outputs)


#: the rows of moddeps' runs: key, label (see the docstring)
ROWS = (("cold", "depmod-cold"), ("first", "first-run"), ("warm", "depmod-warm"), ("cached", "all-cached"),
        ("touched", "one-touched"), ("rebuilt", "one-rebuilt"), ("changed", "one-changed"),
        ("export", "one-export"), ("added", "one-added"), ("removed", "one-removed"), ("scan", "scan --json"),
        ("lib", "scan_tree()"))


def floor_run(moddir: Path, liblzma: str | None = None, decoder: str = "lzma") -> dict[str, object]:
    """One run of xzdecode.py: every compressed module of ``moddir`` decompressed once by
    Python's lzma (on ``liblzma``, else the one the loader finds), or by ``decoder``
    (``moddeps-c``: moddeps' own C decoder, a stream reused from module to module), in a
    process of its own."""
    if liblzma:
        decoder = f"lzma:{liblzma}"
    out = subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "xzdecode.py"), "--json",
                          "--decoder", decoder, str(moddir)], check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out))


def bench(name: str, root: Path, version: str, rounds: int, moddeps: list[str],
          releases: list[int]) -> tuple[list[tuple[str, ...]], list[str]]:
    """The table's rows for one tree and the notes under it (the decompression floor)."""
    work = Path(tempfile.mkdtemp(prefix="moddeps-bench-"))
    sides = [Side(release, root, version, work, moddeps) for release in releases]
    first = sides[0]
    for side in sides:
        timed(side.warm, side.env)  # prime the cache
    victim_rel = pick_victim(first.moddir).relative_to(first.moddir)
    for side in sides:  # the trees are hard links to their source: the victim, which is touched, is a copy
        victim = side.moddir / victim_rel
        copy = victim.with_name(victim.name + ".bench-copy")
        copy.write_bytes(victim.read_bytes())
        copy.rename(victim)
        timed(side.warm, side.env)
    original = module_bytes(first.moddir / victim_rel)
    rebuilt, changed = variants(original)
    # picked in a process of its own: the tree it scans would otherwise stay in this process's
    # memory, and each timed child's peak RSS (wait4) counts the parent's pages it was forked with
    picked = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); from tests.conformance.mutate import "
         "pick_library; p, s, r = pick_library(sys.argv[2]); print(p); print(s.decode()); print(r.decode())",
         str(Path(__file__).resolve().parent.parent), str(first.moddir)],
        check=True, capture_output=True, text=True).stdout.splitlines()
    library_rel = Path(picked[0]).relative_to(first.moddir)
    symbol, renamed = picked[1].encode(), picked[2].encode()
    library_bytes = module_bytes(first.moddir / library_rel)
    renaming = rename_export(library_bytes, symbol, renamed)
    # a module of a new name, as DKMS installs one: a copy of the library under extra/
    added_rel = Path("extra") / f"moddeps_bench_added{''.join(library_rel.suffixes)}"
    n_mod = sum(1 for _ in first.moddir.rglob("*.ko*"))
    compressed = sum(1 for _ in first.moddir.rglob("*.ko.xz"))
    kmod34_lzma = None
    if compressed and 34 in releases:
        kmod34_lzma = os.path.join(kmod34_root() or "", "usr/lib/x86_64-linux-gnu/liblzma.so.5")
    floors: dict[str, list[dict[str, object]]] = {"system": [], "reused": [], "kmod34": []}
    reused = compressed and subprocess.run(  # moddeps' C decoder is built in this checkout (xzdecode imports it)
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import moddeps.read._xz",
         str(Path(__file__).resolve().parent.parent)], capture_output=True).returncode == 0
    for _ in range(rounds):
        for side in sides:  # the releases alternate within each round
            res, warm, env, moddir = side.res, side.warm, side.env, side.moddir
            victim, library, added = moddir / victim_rel, moddir / library_rel, moddir / added_rel
            res["kmod"].append(timed(side.kmod))
            res["cold"].append(timed(side.cold, env))
            for f in side.db.parent.glob("cache.sqlite3*"):  # with its -wal and -shm files, and depmod's stamps
                if f.is_dir():
                    shutil.rmtree(f)
                else:
                    f.unlink()
            res["first"].append(timed(warm, env))
            res["kmod"].append(timed(side.kmod))
            res["warm"].append(timed(warm, env))
            (moddir / "modules.dep").unlink()
            res["cached"].append(timed(warm, env))
            os.utime(victim)
            res["touched"].append(timed(warm, env))
            replace_file(victim, rebuilt)
            res["rebuilt"].append(timed(warm, env))
            replace_file(victim, changed)
            res["changed"].append(timed(warm, env))
            replace_file(victim, original)
            timed(warm, env)
            replace_file(library, renaming)
            res["export"].append(timed(warm, env))
            replace_file(library, library_bytes)
            timed(warm, env)
            added.parent.mkdir(exist_ok=True)
            replace_file(added, library_bytes)
            res["added"].append(timed(warm, env))
            added.unlink()
            res["removed"].append(timed(warm, env))
            res["kmod"].append(timed(side.kmod))
            res["scan"].append(timed(side.scan, env))
            res["lib"].append(timed(side.scan_lib, env))
        if compressed:
            floors["system"].append(floor_run(first.moddir))
            if reused:
                floors["reused"].append(floor_run(first.moddir, decoder="moddeps-c"))
            if kmod34_lzma:
                floors["kmod34"].append(floor_run(first.moddir, kmod34_lzma))
    same = {side.release: side.same_outputs() for side in sides}
    shutil.rmtree(work, ignore_errors=True)

    def med(runs: list[Run], what: str = "wall") -> float:
        return statistics.median(float(getattr(r, what)) for r in runs)

    rows = []
    for key, label in ROWS:
        row = [name, str(n_mod), label]
        for side in sides:
            k, m = side.res["kmod"], side.res[key]
            row += [f"{med(k):.3f}", f"{med(m):.3f}", f"{med(m) / med(k):.2f}",
                    f"{med(m, 'cpu') / med(k, 'cpu'):.2f}", f"{max(r.rss for r in m) / max(r.rss for r in k):.2f}"]
        row += [f"{max(r.rss for side in sides for r in side.res[key]) / 1024:.0f}",
                ", ".join(f"{release_name(r)}: {'identical' if ok else 'DIFFERENT'}" for r, ok in same.items())]
        rows.append(tuple(row))
    notes = []
    cores = os.cpu_count() or 1
    for which, runs in floors.items():
        if not runs:
            continue
        cpu = statistics.median(float(r["cpu"]) for r in runs)  # type: ignore[arg-type]
        floor = cpu / cores
        label = {"system": "decompression floor (Python lzma, moddeps' liblzma)",
                 "reused": "decompression floor (a reused stream, the same liblzma)",
                 "kmod34": "decompression floor (Python lzma, kmod 34.2's liblzma)"}[which]
        row = [name, str(n_mod), label]
        for side in sides:
            cold = side.res["cold"]
            row += [f"{floor:.3f}", f"{med(cold):.3f}", f"{med(cold) / floor:.2f}",
                    f"{med(cold, 'cpu') / cpu:.2f}", ""]
        rows.append(tuple([*row, "", ""]))
        kmod_ratios = "; ".join(f"kmod {release_name(s.release)} cold {med(s.res['kmod']):.3f} s = "
                                f"{med(s.res['kmod']) / floor:.2f}x the floor" for s in sides)
        notes.append(f"{name}: {runs[0]['what']}: {runs[0]['files']} modules decompressed once in "
                     f"{cpu:.3f} s of CPU (median of {len(runs)}); floor = {cpu:.3f} / {cores} cores = {floor:.3f} s; "
                     f"{kmod_ratios}")
    return rows, notes


#: trees the conformance suite extracts (tests/conformance/debian.py), by name
CONFORMANCE_TREES = {
    "deb13-cloud-xz": "linux-image-6.12.*+deb13-cloud-amd64-unsigned_*",
    "deb13-amd64-xz": "linux-image-6.12.*+deb13-amd64-unsigned_*",
    "deb14-cloud-xz": "linux-modules-7.*+deb14-cloud-amd64_*",
}


def liblzma_here() -> str:
    """The liblzma that Python's lzma uses in this process (moddeps' decoder)."""
    import lzma  # noqa: F401  (maps liblzma)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from xzdecode import liblzma_version, one_mapped

    path = one_mapped("liblzma")
    return f"liblzma {liblzma_version(path)} ({path})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--trees", nargs="*", default=["cloud", "amd64", "deb13-cloud-xz", "deb13-amd64-xz", "amd64-10x"])
    ap.add_argument("--tree", action="append", default=[], help="DIR:VERSION of an extracted tree")
    ap.add_argument("--moddeps", default=f"{sys.executable} -m moddeps", help="how to run moddeps")
    ap.add_argument("--kmod", nargs="*", type=int, default=None, choices=[30, 34],
                    help="the kmod releases to compare with, moddeps in the same mode (default: 30 and 34, "
                         "or 30 alone when kmod 34.2 is not found)")
    args = ap.parse_args()
    releases = args.kmod if args.kmod is not None else ([30, 34] if kmod34_root() else [30])
    moddeps = args.moddeps.split()
    trees: list[tuple[str, Path, str]] = []
    for spec in args.tree:
        d, v = spec.rsplit(":", 1)
        trees.append((Path(d).name, Path(d), v))
    for t in args.trees:
        if t == "cloud":
            trees.append((t, *fetch("cloud-amd64")))
        elif t == "amd64":
            trees.append((t, *fetch("amd64")))
        elif t == "6.12-xz":
            trees.append((t, *fetch("", newest_612())))
        elif t == "amd64-xz":
            trees.append((t, *make_xz(*fetch("amd64"))))
        elif t == "amd64-10x":
            trees.append((t, *make_10x(*fetch("amd64"))))
        elif t in CONFORMANCE_TREES:
            found = conformance_tree(CONFORMANCE_TREES[t])
            if found is None:
                sys.exit(f"{t}: not in {CONFORMANCE}/trees (the conformance suite extracts it: "
                         "pytest -m conformance tests/conformance)")
            trees.append((t, *found))
        else:
            sys.exit(f"unknown tree {t!r}")
    header = ["tree", "modules", "row"]
    for release in releases:
        header += [f"kmod {release_name(release)} s", "moddeps s", "×", "CPU ×", "mem ×"]
    header += ["moddeps MiB", "outputs"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    notes: list[str] = []
    for name, root, version in trees:
        rows, tree_notes = bench(name, root, version, args.rounds, moddeps, releases)
        for row in rows:
            print("| " + " | ".join(row) + " |", flush=True)
        notes += tree_notes
    print(f"\n{os.cpu_count()} CPUs; medians of {args.rounds} rounds (kmod: {3 * args.rounds} runs a release), the "
          "releases alternating within each round; × = moddeps / kmod (wall), CPU × = the same of user + system "
          "time, mem × = peak RSS.")
    print(f"moddeps: Python {sys.version.split()[0]}, {liblzma_here()}")
    if 34 in releases:
        print(f"kmod 34.2: {kmod34_root()} (its own libc and liblzma, through its dynamic loader)")
    if notes:
        print("Decompression floor rows: the kmod column holds the floor (the CPU time Python's lzma needs to "
              "decompress every module once, a fresh decoder a module, benchmarks/xzdecode.py, divided by the "
              "cores; the reused-stream row: moddeps' C decoder, moddeps.read._xz, one liblzma stream kept from "
              "module to module -- the same liblzma, the decoder moddeps' loaders use), moddeps s its depmod-cold, "
              "× = moddeps cold / floor, CPU × = moddeps cold CPU / the floor's CPU.")
        for note in notes:
            print(note)


if __name__ == "__main__":
    main()
