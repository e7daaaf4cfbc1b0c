#!/usr/bin/env python3
"""What a loader thread spends on one ``.ko.xz`` besides decoding it: the load, as the thread
pipeline runs it, against the C decoder alone on bytes read beforehand.

Run by a person (not a test):

    python benchmarks/bench_xzload.py DIR                 # every *.ko.xz under DIR, 5 rounds
    python benchmarks/bench_xzload.py --rounds 9 DIR

One thread, this checkout.  Each round, alternating: ``decode`` (``_xz.Decoder.decode`` of
every file read into memory beforehand: the floor), then ``load`` (``compression.load_module_data``
with a fresh Deadline and MemoryBudget hold a module, the hold released after, as
``pool._read_pipelined``'s worker does: open, fstat, read, close, the hold, the deadline, the
decode).  Prints the medians of the thread's CPU time (``time.thread_time``) and the
difference per module.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from moddeps.read import compression
from moddeps.read.pool import memory_budget


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    paths = sorted(os.path.join(d, f) for d, _s, fs in os.walk(args.dir) for f in fs if f.endswith(".ko.xz"))
    datas = [Path(p).read_bytes() for p in paths]
    sizes = [compression.xz_declared_size(d) or 0 for d in datas]
    xz = compression._xz_accelerator()
    assert xz is not None, "moddeps.read._xz is not built"
    dec = xz.Decoder()
    budget = memory_budget(2)
    results: dict[str, list[float]] = {"decode": [], "load": []}
    for _ in range(args.rounds):
        t = time.thread_time()
        for data, size in zip(datas, sizes):
            view = dec.decode(data, size, 60.0)
            del view
        results["decode"].append(time.thread_time() - t)
        t = time.thread_time()
        for p in paths:
            deadline = compression.Deadline(60.0)
            hold = budget.open()
            got = compression.load_module_data(p, deadline=deadline, hold=hold)
            del got
            hold.release()
        results["load"].append(time.thread_time() - t)
    med = {k: statistics.median(v) for k, v in results.items()}
    n = len(paths)
    for k, v in med.items():
        print(f"{k:8} {v * 1000:9.1f} ms CPU ({n} files, median of {args.rounds})")
    print(f"load - decode: {(med['load'] - med['decode']) * 1000:.1f} ms, "
          f"{(med['load'] - med['decode']) / n * 1e6:.1f} us a module")


if __name__ == "__main__":
    main()
