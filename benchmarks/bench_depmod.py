#!/usr/bin/env python3
"""moddeps against kmod's depmod, side by side, on real Debian module trees.

Run by a person (not a test):

    python benchmarks/bench_depmod.py                 # fetches Debian packages, 5 rounds
    python benchmarks/bench_depmod.py --rounds 9 --trees amd64 amd64-xz
    python benchmarks/bench_depmod.py --tree DIR:VERSION   # any extracted tree (DIR/lib/modules/VERSION)
    MODDEPS_KMOD34_ROOT=K python benchmarks/bench_depmod.py --kmod 30 34   # against both releases

``--kmod 30`` (the default) times kmod's ``depmod`` on PATH (Debian 12's kmod 30) against
``moddeps depmod --kmod-version 30``; ``--kmod 34`` times kmod 34.2 from ``$MODDEPS_KMOD34_ROOT``
(Debian 13's kmod, libkmod2, libc6, liblzma5, libzstd1 and libssl3t64 packages extracted into one
directory, run through that libc's loader) against ``moddeps depmod --kmod-version 34``.

Needs kmod's ``depmod`` on PATH and ``moddeps`` installed (``pip install .`` byte-compiles it;
PYTHONDONTWRITEBYTECODE is dropped for the timed runs, otherwise an editable install would
compile every module of moddeps on every run, ~40 ms).  Packages are fetched with
``apt-get download`` into ``$MODDEPS_BENCH_CACHE`` (default /var/tmp/moddeps-bench).

Trees:
  cloud      linux-image-6.1.0-N-cloud-amd64 (~1,100 .ko)
  amd64      linux-image-6.1.0-N-amd64 (~4,000 .ko)
  6.12-xz    linux-image-6.12.N+deb12-amd64-unsigned (~4,200 .ko.xz), the newest 6.12 kernel that
             bookworm-security carries (Debian compresses its 6.12 modules with xz)
  amd64-xz   the 6.1 amd64 tree with every module compressed as Kbuild's CONFIG_MODULE_COMPRESS_XZ
             does (xz --check=crc32 --lzma2=dict=1MiB)
  amd64-10x  ten renamed copies of every amd64 module (~40,000 .ko), for scaling

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
Peak RSS is the child's ru_maxrss from wait4().  Outputs of both tools are compared with cmp
after the rounds (byte-identical is required; a difference is reported).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conformance.mutate import (  # the changes the conformance tests make too
    module_bytes,
    pick_victim,
    rename_export,
    replace_file,
    variants,
)

CACHE = Path(os.environ.get("MODDEPS_BENCH_CACHE", "/var/tmp/moddeps-bench"))
ABI = os.environ.get("MODDEPS_BENCH_ABI", "6.1.0-50")
OUTPUTS = ["modules.dep", "modules.dep.bin", "modules.alias", "modules.alias.bin", "modules.softdep",
           "modules.symbols", "modules.symbols.bin", "modules.builtin.bin", "modules.builtin.alias.bin",
           "modules.devname"]


def kmod_depmod(release: int) -> list[str]:
    """argv prefix of the real depmod of ``release`` (30: on PATH; 34: $MODDEPS_KMOD34_ROOT)."""
    if release == 30:
        return ["depmod"]
    root = os.environ.get("MODDEPS_KMOD34_ROOT")
    if not root:
        sys.exit("--kmod 34 needs MODDEPS_KMOD34_ROOT (an extracted kmod 34.2 with its C library)")
    lib = os.path.join(root, "usr/lib/x86_64-linux-gnu")
    return [os.path.join(lib, "ld-linux-x86-64.so.2"), "--library-path", lib, "--argv0", "depmod",
            os.path.join(root, "usr/bin/kmod")]


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


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall time and peak RSS (KiB) of one run of ``cmd``."""
    env = dict(env if env is not None else os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode() if p.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    return wall, usage.ru_maxrss


def copy_tree(root: Path, dst: Path) -> None:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(root, dst, symlinks=True, copy_function=os.link)


def bench(name: str, root: Path, version: str, rounds: int, moddeps: list[str],
          release: int) -> list[tuple[str, ...]]:
    work = Path(tempfile.mkdtemp(prefix="moddeps-bench-"))
    empty = work / "empty"
    empty.mkdir()
    kdir, mdir = work / "kmod", work / "moddeps"
    copy_tree(root, kdir)
    copy_tree(root, mdir)
    db = work / "cache.sqlite3"
    env = {**os.environ, "MODDEPS_CACHE": str(db)}
    kmod = [*kmod_depmod(release), "-C", str(empty), "-b", str(kdir), version]
    mode = ["--kmod-version", str(release)]
    cold = [*moddeps, "depmod", *mode, "--no-cache", "-C", str(empty), "-b", str(mdir), version]
    warm = [*moddeps, "depmod", *mode, "-C", str(empty), "-b", str(mdir), version]
    scan = [*moddeps, "scan", "--json", "--no-cache", str(mdir / "lib/modules" / version)]
    scan_lib = [sys.executable, "-c", "import sys; from moddeps.read.scan import scan_tree; scan_tree(sys.argv[1])",
                str(mdir / "lib/modules" / version)]
    timed(warm, env)  # prime the cache
    victim = pick_victim(mdir / "lib/modules" / version)
    original = module_bytes(victim)
    rebuilt, changed = variants(original)
    # picked in a process of its own: the tree it scans would otherwise stay in this process's
    # memory, and each timed child's peak RSS (wait4) counts the parent's pages it was forked with
    picked = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); from tests.conformance.mutate import "
         "pick_library; p, s, r = pick_library(sys.argv[2]); print(p); print(s.decode()); print(r.decode())",
         str(Path(__file__).resolve().parent.parent), str(mdir / "lib/modules" / version)],
        check=True, capture_output=True, text=True).stdout.splitlines()
    library, symbol, renamed = Path(picked[0]), picked[1].encode(), picked[2].encode()
    library_bytes = module_bytes(library)
    renaming = rename_export(library_bytes, symbol, renamed)
    # a module of a new name, as DKMS installs one: a copy of the library under extra/
    added = mdir / "lib/modules" / version / "extra" / f"moddeps_bench_added{''.join(library.suffixes)}"
    res: dict[str, list[tuple[float, int]]] = {
        k: [] for k in ("kmod", "cold", "first", "warm", "cached", "touched", "rebuilt", "changed", "export", "added",
                        "removed", "scan", "lib")}
    for _ in range(rounds):
        res["kmod"].append(timed(kmod))
        res["cold"].append(timed(cold, env))
        for f in work.glob("cache.sqlite3*"):  # with its -wal and -shm files
            f.unlink()
        res["first"].append(timed(warm, env))
        res["kmod"].append(timed(kmod))
        res["warm"].append(timed(warm, env))
        (mdir / "lib/modules" / version / "modules.dep").unlink()
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
        res["kmod"].append(timed(kmod))
        res["scan"].append(timed(scan, env))
        res["lib"].append(timed(scan_lib, env))
    outputs = [*OUTPUTS, "modules.weakdep"] if release >= 33 else OUTPUTS
    same = all(
        (kdir / "lib/modules" / version / f).read_bytes() == (mdir / "lib/modules" / version / f).read_bytes()
        for f in outputs
    )
    med = {k: statistics.median(w for w, _ in v) for k, v in res.items()}
    rss = {k: max(r for _, r in v) for k, v in res.items()}
    n_mod = sum(1 for _ in (kdir / "lib/modules" / version).rglob("*.ko*"))
    shutil.rmtree(work, ignore_errors=True)
    rows = []
    for key, label in (("cold", "depmod-cold"), ("first", "first-run"), ("warm", "depmod-warm"),
                       ("cached", "all-cached"), ("touched", "one-touched"), ("rebuilt", "one-rebuilt"),
                       ("changed", "one-changed"),
                       ("export", "one-export"), ("added", "one-added"), ("removed", "one-removed"),
                       ("scan", "scan --json"), ("lib", "scan_tree()")):
        rows.append((name, str(n_mod), str(release), label, f"{med['kmod']:.3f}", f"{med[key]:.3f}",
                     f"{med[key] / med['kmod']:.2f}",
                     f"{rss['kmod'] / 1024:.0f}", f"{rss[key] / 1024:.0f}", f"{rss[key] / rss['kmod']:.2f}",
                     "identical" if same else "DIFFERENT"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--trees", nargs="*", default=["cloud", "amd64", "6.12-xz", "amd64-10x"])
    ap.add_argument("--tree", action="append", default=[], help="DIR:VERSION of an extracted tree")
    ap.add_argument("--moddeps", default=f"{sys.executable} -m moddeps", help="how to run moddeps")
    ap.add_argument("--kmod", nargs="*", type=int, default=[30], choices=[30, 34],
                    help="the kmod releases to compare with (moddeps in the same mode)")
    args = ap.parse_args()
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
    header = ("tree", "modules", "kmod", "row", "kmod s", "moddeps s", "ratio", "kmod MiB", "moddeps MiB", "mem ratio",
              "outputs")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, root, version in trees:
        for release in args.kmod:
            for row in bench(name, root, version, args.rounds, moddeps, release):
                print("| " + " | ".join(row) + " |", flush=True)
    print(f"\n{os.cpu_count()} CPUs; medians of {args.rounds} rounds (kmod: {3 * args.rounds} runs)")


if __name__ == "__main__":
    main()
