#!/usr/bin/env python3
"""The threaded read of a compressed tree alone, two checkouts side by side, against the floor.

Run by a person (not a test):

    python benchmarks/bench_xzread.py OLD_CHECKOUT NEW_CHECKOUT DIR [--rounds 7] [--jobs 2]

DIR is a module directory (every ``*.ko.xz``, ``*.ko.zst``, ``*.ko.gz`` under it).  Each round runs,
in a process of its own and alternating (the order flips every round), ``xzdecode.py``'s floor (Python's
``lzma`` decompressing every module once, one thread, the files read beforehand; and, when this checkout
has ``moddeps.read._xz`` built, the reused-stream floor: ``--decoder moddeps-c``) and, for each
checkout, ``moddeps.read.pool._read_uncached`` on every module (the strategy moddeps picks: threads for
a compressed tree), after its imports.  Medians of:

  CPU s        user + system of the process during the read (all threads, ``time.process_time``)
  wall s       the read's wall time; ``floor/cores`` is the floor's CPU divided by ``--jobs``
  cores        CPU / wall: how many cores the read kept busy (at most ``--jobs``, less on a shared machine)
  first ms     from the call to the first decompression starting (what the read does before it
               gets going: sizes, threads)
  peak MiB     the process's peak RSS (``ru_maxrss``) less its RSS before the read: what the images in
               flight and the records cost, the allocator's leftovers included

The records of the two checkouts are compared (``Module.to_wire()`` of every module); the script
fails if they differ.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import gc, hashlib, json, marshal, resource, sys, threading, time
sys.path.insert(0, sys.argv[1])
from moddeps.read import compression, pool
import moddeps.read.elfreader  # noqa: F401  (imports out of the timing)
files = json.loads(sys.stdin.read())
first = []
def timing(real):
    def timed(*a, **k):
        if not first:
            first.append(time.perf_counter())
        return real(*a, **k)
    return timed

compression.decompress = timing(compression.decompress)
if hasattr(compression, "xz_happy_path"):  # (checkouts with moddeps/read/_xz.c)
    compression.xz_happy_path = timing(compression.xz_happy_path)
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) * 1024
gc.disable()
before = rss()
c0, t0 = time.process_time(), time.perf_counter()
mods = pool._read_uncached([(f, f) for f in files], int(sys.argv[2]), None)
c1, t1 = time.process_time(), time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"cpu": c1 - c0, "wall": t1 - t0, "first": (first[0] - t0) if first else 0.0,
                  "peak": peak - before, "n": len(mods),
                  "records": hashlib.sha256(marshal.dumps([m.to_wire() for m in mods])).hexdigest()}))
"""


def module_files(top: str) -> list[str]:
    return sorted(str(p) for p in Path(top).rglob("*") if p.name.endswith((".ko.xz", ".ko.zst", ".ko.gz")))


def read_run(checkout: str, files: list[str], jobs: int) -> dict[str, float | str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", CHILD, checkout, str(jobs)], input=json.dumps(files),
                         capture_output=True, text=True, env=env, check=True).stdout
    return dict(json.loads(out))


def floor_run(files: list[str], decoder: str = "lzma") -> float:
    script = Path(__file__).resolve().parent / "xzdecode.py"
    xz = [f for f in files if f.endswith(".xz")]
    out = subprocess.run([sys.executable, str(script), "--json", "--decoder", decoder, *xz], capture_output=True,
                         text=True, check=True).stdout
    return float(json.loads(out)["cpu"])


def has_c_decoder() -> bool:
    """moddeps.read._xz is built in this checkout (xzdecode.py --decoder moddeps-c imports it from there)."""
    return subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import moddeps.read._xz",
                           str(Path(__file__).resolve().parent.parent)], capture_output=True).returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("dir")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    files = module_files(args.dir)
    sides = {"old": os.path.abspath(args.old), "new": os.path.abspath(args.new)}
    runs: dict[str, list[dict[str, float | str]]] = {s: [] for s in sides}
    floors: list[float] = []
    reused: list[float] = []
    c_decoder = has_c_decoder()
    load = os.getloadavg()
    for r in range(args.rounds):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        floors.append(floor_run(files))
        if c_decoder:
            reused.append(floor_run(files, "moddeps-c"))
        for side in order:
            runs[side].append(read_run(sides[side], files, args.jobs))
    records = {side: {str(x["records"]) for x in rs} for side, rs in runs.items()}
    print(f"{len(files)} modules, {args.jobs} jobs, {args.rounds} rounds; load average before "
          f"{load[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    floor = statistics.median(floors)
    print(f"floor (Python lzma, a fresh decoder a module): {floor:.3f} s CPU, {floor / args.jobs:.3f} s on "
          f"{args.jobs} cores")
    if reused:
        other = statistics.median(reused)
        print(f"reused-stream floor (xzdecode.py --decoder moddeps-c, the same liblzma): {other:.3f} s CPU, "
              f"{other / args.jobs:.3f} s on {args.jobs} cores; the ratios below are against the first")
    print()
    print("| checkout | CPU s | CPU / floor | wall s | wall / (floor/cores) | cores | first ms | peak MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for side, rs in runs.items():
        def med(key: str, rs: list[dict[str, float | str]] = rs) -> float:
            return statistics.median(float(x[key]) for x in rs)

        cores = statistics.median(float(x["cpu"]) / float(x["wall"]) for x in rs)
        print(f"| {side} | {med('cpu'):.3f} | {med('cpu') / floor:.2f} | {med('wall'):.3f} | "
              f"{med('wall') / (floor / args.jobs):.2f} | {cores:.2f} | {med('first') * 1e3:.1f} | "
              f"{med('peak') / 2**20:.1f} |")
    if len(records["old"] | records["new"]) != 1:
        sys.exit(f"the records differ: {records}")
    print("\nrecords (to_wire of every module): identical")


if __name__ == "__main__":
    main()
