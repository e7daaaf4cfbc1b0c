#!/usr/bin/env python3
"""The module reader alone, two checkouts side by side (a person runs it, not a test).

    python benchmarks/bench_read.py OLD_CHECKOUT NEW_CHECKOUT --tree DIR [--tree DIR ...] [--rounds 7]

DIR is a directory of modules (``lib/modules/VERSION``).  Each run is a fresh process
``PYTHONPATH=CHECKOUT python`` that lists DIR's modules (not timed), then reads them all with
``moddeps.read.pool.read_modules`` (``jobs=2``, no cache: what a cold ``depmod --no-cache``
does between the walk and the resolve) and reports that call's CPU time (user + system of the
process, split) and the process's peak RSS.  Rounds alternate old/new (the order flips every
round); medians are printed with the ratio new/old.  Both checkouts must give the same records
(``Module.to_wire()`` of every module, compared once), or the script fails.  Build each
checkout's C accelerators in place first (``python setup.py build_ext --inplace``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import hashlib, json, marshal, os, resource, sys, time
from moddeps.read.pool import read_modules
top = sys.argv[1]
items = sorted((os.path.join(d, f), os.path.relpath(os.path.join(d, f), top))
               for d, _dirs, files in os.walk(top) for f in files if ".ko" in f)
r0 = resource.getrusage(resource.RUSAGE_SELF)
mods = read_modules(items, jobs=2)
r1 = resource.getrusage(resource.RUSAGE_SELF)
out = {"user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime, "rss": r1.ru_maxrss, "n": len(mods)}
if len(sys.argv) > 2:
    out["digest"] = hashlib.sha256(marshal.dumps([m.to_wire() for m in mods])).hexdigest()
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"""


def run(checkout: str, tree: str, digest: bool = False) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = checkout
    p = subprocess.run([sys.executable, "-c", CHILD, tree, *(["digest"] if digest else [])], env=env,
                       capture_output=True, text=True, cwd=tempfile.gettempdir())
    if p.returncode != 0:
        sys.exit(f"{checkout}: reading {tree} failed: {p.stderr[-400:]}")
    got: dict[str, float] = json.loads(p.stdout)
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--tree", action="append", required=True, metavar="DIR")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    sides = {"old": os.path.abspath(args.old), "new": os.path.abspath(args.new)}
    for checkout in sides.values():
        subprocess.run([sys.executable, "-m", "compileall", "-q", f"{checkout}/moddeps"], check=True)
    print("| tree | modules | old CPU ms (user + sys) | new CPU ms (user + sys) | new/old | old peak RSS MB "
          "| new peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for tree in args.tree:
        # the records must agree (and this warms the page cache)
        digests = {side: run(checkout, tree, digest=True) for side, checkout in sides.items()}
        if digests["old"]["digest"] != digests["new"]["digest"]:
            sys.exit(f"{tree}: the two checkouts read different records")
        got: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
        for r in range(args.rounds):
            for side in (("old", "new") if r % 2 == 0 else ("new", "old")):
                got[side].append(run(sides[side], tree))

        def med(side: str, key: str, got: dict[str, list[dict[str, float]]] = got) -> float:
            return statistics.median(g[key] for g in got[side])

        cpu = {s: statistics.median(g["user"] + g["sys"] for g in got[s]) for s in got}
        cells = [f"{cpu[s] * 1e3:.0f} ({med(s, 'user') * 1e3:.0f} + {med(s, 'sys') * 1e3:.0f})" for s in ("old", "new")]
        print(f"| {os.path.basename(tree.rstrip('/'))} | {int(digests['old']['n'])} | {cells[0]} | {cells[1]} | "
              f"{cpu['new'] / cpu['old']:.2f} | {med('old', 'rss') / 1024:.1f} | {med('new', 'rss') / 1024:.1f} |",
              flush=True)
    print(f"\nmedians of {args.rounds} alternating rounds; {os.cpu_count()} CPUs; records of both checkouts compared")


if __name__ == "__main__":
    main()
