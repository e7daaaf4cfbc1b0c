#!/usr/bin/env python3
"""Two checkouts of moddeps on the one-module updates of bench_depmod.py (a person runs it, not a test)

    python benchmarks/ab_updates.py OLD_CHECKOUT NEW_CHECKOUT --tree ROOT:VERSION [--rounds 9]
        [--kmod-version 34] [--rows changed export added removed touched rebuilt warm cold first]

Each checkout runs as ``PYTHONPATH=CHECKOUT python -m moddeps depmod`` (build its C accelerators
in place first: ``python setup.py build_ext --inplace``) on its own copy of the tree (hard links,
but for the two modules the rows replace) with its own scan cache.  The rows make the changes of
``bench_depmod.py`` (tests/conformance/mutate.py): a module replaced by one with another first
alias (changed), a library with an export renamed (export), a copy of it added under extra/ and
removed again (added, removed), a module touched or rebuilt with the same view (touched,
rebuilt), nothing (warm), ``--no-cache`` (cold), an empty cache (first).  Each round runs every
checkout once, in turns (the order flips every round), each change made before and undone (with
an untimed run) after its timed run.  Printed per row and checkout: medians of wall and CPU time
(user + system), of the minor page faults and of the peak RSS (``wait4``'s rusage), then the
ratios new/old.  After the
rounds every output file of the two copies must be byte-identical, or the script fails.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_depmod import Run, copy_tree, timed  # (copy_tree: hard links; a merged-/usr tree gets ROOT/lib)

from tests.conformance.mutate import (  # the changes bench_depmod.py makes
    module_bytes,
    pick_victim,
    rename_export,
    replace_file,
    variants,
)

ROWS = ("changed", "export", "added", "removed", "touched", "rebuilt", "warm", "cold", "first")


class Side:
    """One checkout on its own copy of the tree."""

    def __init__(self, checkout: str, work: Path, root: Path, version: str, kmod: str) -> None:
        self.version = version
        self.root, self.work = work / "root", work
        work.mkdir()
        copy_tree(root, self.root)
        self.moddir = self.root / "lib/modules" / version
        for out in self.moddir.glob("modules.*"):
            if out.name not in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
                out.unlink()
        (work / "empty").mkdir()
        self.cache = work / "cache.sqlite3"
        self.env = {**os.environ, "PYTHONPATH": checkout, "MODDEPS_CACHE": str(self.cache)}
        self.argv = [sys.executable, "-m", "moddeps", "depmod", "--kmod-version", kmod, "-C", str(work / "empty"),
                     "-b", str(self.root), version]

    def own_copy(self, rel: Path) -> None:
        """The file at ``rel`` a copy of its own (the tree is hard links to its source)."""
        path = self.moddir / rel
        data = path.read_bytes()
        path.unlink()
        path.write_bytes(data)

    def timed(self, *extra: str) -> Run:
        """One run (in the work directory: ``-m`` puts the cwd before PYTHONPATH)."""
        return timed([*self.argv[:4], *extra, *self.argv[4:]], self.env, cwd=self.work)

    def untimed(self) -> None:
        self.timed()

    def forget(self) -> None:
        """An empty cache (the database, its WAL and its stamps)."""
        for f in self.cache.parent.glob("cache.sqlite3*"):
            shutil.rmtree(f) if f.is_dir() else f.unlink()


def one(side: Side, row: str, victim: Path, library: Path, lib_bytes: bytes, renaming: bytes,
        original: bytes, rebuilt: bytes, changed: bytes) -> Run:
    """The row's timed run on ``side``, its change made before and undone after."""
    moddir = side.moddir
    added = moddir / "extra" / f"moddeps_ab_added{''.join(library.suffixes)}"
    side.untimed()
    if row in ("changed", "rebuilt"):
        replace_file(moddir / victim, changed if row == "changed" else rebuilt)
        got = side.timed()
        replace_file(moddir / victim, original)
    elif row == "touched":
        os.utime(moddir / victim)
        got = side.timed()
    elif row == "export":
        replace_file(moddir / library, renaming)
        got = side.timed()
        replace_file(moddir / library, lib_bytes)
    elif row in ("added", "removed"):
        added.parent.mkdir(exist_ok=True)
        replace_file(added, lib_bytes)
        if row == "removed":
            side.untimed()
            added.unlink()
        got = side.timed()
        added.unlink(missing_ok=True)
    elif row == "cold":
        got = side.timed("--no-cache")
    elif row == "first":
        side.forget()
        got = side.timed()
    else:
        got = side.timed()
    side.untimed()
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--tree", required=True, help="ROOT:VERSION (ROOT/lib/modules/VERSION or ROOT/usr/lib/...)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--kmod-version", default="34")
    ap.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    ap.add_argument("--work", default=None, help="where the copies go (default: a temporary directory)")
    args = ap.parse_args()
    root_s, _, version = args.tree.rpartition(":")
    work = Path(tempfile.mkdtemp(prefix="moddeps-ab-", dir=args.work))
    try:
        sides = {name: Side(os.path.abspath(co), work / name, Path(root_s), version, args.kmod_version)
                 for name, co in (("old", args.old), ("new", args.new))}
        first = sides["old"]
        victim = pick_victim(first.moddir).relative_to(first.moddir)
        picked = subprocess.run(  # (in a process of its own: its scan would stay in this one's memory)
            [sys.executable, "-c", "import sys, json; sys.path.insert(0, sys.argv[1]); from tests.conformance.mutate "
             "import pick_library; p, s, r = pick_library(sys.argv[2]); "
             "print(json.dumps([str(p), s.decode(), r.decode()]))",
             str(Path(__file__).resolve().parent.parent), str(first.moddir)],
            check=True, capture_output=True, text=True).stdout
        lib_path, symbol, renamed = json.loads(picked)
        library = Path(lib_path).relative_to(first.moddir)
        for side in sides.values():
            for rel in (victim, library):
                side.own_copy(rel)
        original, lib_bytes = module_bytes(first.moddir / victim), module_bytes(first.moddir / library)
        rebuilt, changed = variants(original)
        renaming = rename_export(lib_bytes, symbol.encode(), renamed.encode())
        print(f"{args.tree}: {args.rounds} rounds, old {args.old}, new {args.new}; medians")
        print("| row | checkout | wall ms | CPU ms | minor faults | peak RSS MiB |")
        print("|---|---|---|---|---|---|")
        for row in args.rows:
            got: dict[str, list[Run]] = {name: [] for name in sides}
            for k in range(args.rounds):
                order = list(sides.items()) if k % 2 == 0 else list(sides.items())[::-1]
                for name, side in order:
                    got[name].append(one(side, row, victim, library, lib_bytes, renaming, original, rebuilt, changed))
            med = {name: [statistics.median(getattr(r, f) for r in runs) for f in ("wall", "cpu", "faults", "rss")]
                   for name, runs in got.items()}
            for name, (wall, cpu, faults, rss) in med.items():
                print(f"| {row} | {name} | {wall * 1000:.1f} | {cpu * 1000:.1f} | {faults:.0f} | {rss / 1024:.1f} |")
            ratios = " | ".join(f"{n / o:.2f}" for n, o in zip(med["new"], med["old"]))
            print(f"| {row} | new/old | {ratios} |")
        outs = {name: {p.name: p.read_bytes() for p in side.moddir.glob("modules.*")} for name, side in sides.items()}
        if outs["old"] != outs["new"]:
            sys.exit("the two checkouts' output files differ")
        print(f"outputs: {len(outs['new'])} files, identical")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
