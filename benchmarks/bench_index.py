#!/usr/bin/env python3
"""The .bin index writer alone: C and Python, kmod 30's post-order and kmod 34's pre-order layout.

Run by a person (not a test):

    python benchmarks/bench_index.py [--rounds 7]

Times ``build_index`` on ~26,000 synthetic entries shaped like Debian 6.1 amd64's
``modules.alias.bin`` (tests/test_index.py ``alias_like_entries``), each layout in
alternating rounds, and prints medians and the pre/post ratio.  kmod writes its
index inside depmod, so there is no kmod figure to compare with here:
benchmarks/bench_depmod.py compares whole runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from moddeps.index.write import build_index, py_build_index
from tests.test_index import alias_like_entries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    entries = alias_like_entries()
    print("| writer | post-order ms | pre-order ms | pre/post |")
    print("|---|---|---|---|")
    for label, build in (("C (or Python without it)", build_index), ("Python", py_build_index)):
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for pre in (False, True):
                t = time.perf_counter()
                build(entries, preorder=pre)
                times[pre].append(time.perf_counter() - t)
        post, pre = (statistics.median(times[k]) * 1000 for k in (False, True))
        print(f"| {label} | {post:.1f} | {pre:.1f} | {pre / post:.2f} |")
    print(f"\n{len(entries)} entries; medians of {args.rounds} rounds")


if __name__ == "__main__":
    main()
