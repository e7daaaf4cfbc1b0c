#!/usr/bin/env python3
"""depmod's outputs rendered with and without their indexes built in threads (a person runs it, not a test)

    python benchmarks/render_threads.py --tree ROOT/lib/modules/VERSION [--rounds 100]

The tree is scanned and resolved once; then, in alternating rounds, every output is rendered
(``moddeps.depmod.render.render_tree``) with ``THREADED_MIN`` set so that each index is built by a
thread of its own while the text files render, and so that all are built one after another; then
the groups an update with a new alias renders again (alias and devname, from the columns alone,
as ``moddeps.depmod.incremental`` does).  Medians and minima of the wall time, in this process
(the minimum: the rendering when nothing else on the machine got in its way);
every rendering must give the same files, or the script fails.  What it isolates: the rendering
alone, without the start-up, the read and the writes that make a whole run's time vary by more
than this.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", required=True, help="a module directory (ROOT/lib/modules/VERSION)")
    ap.add_argument("--rounds", type=int, default=100)
    args = ap.parse_args()

    from moddeps.depmod import render
    from moddeps.depmod.outputs import WriterInput
    from moddeps.kmodversion import KmodTarget
    from moddeps.read.scan import scan_tree
    from moddeps.resolve import ResolveOptions, resolve

    tree = scan_tree(args.tree)
    res = resolve(tree.modules, [f"{tree.dirname}/{f.relpath}" for f in tree.files], ResolveOptions())
    kmod = KmodTarget(34, "kmod 34")
    _groups, wi = render.render_tree(tree, res, kmod)
    columns = wi.columns()

    def whole() -> Callable[[], object]:
        return lambda: render.flatten(render.render_tree(tree, res, kmod)[0])

    def update() -> Callable[[], object]:  # (a fresh input each time, made before the clock starts)
        again = WriterInput.of_columns(list(wi.names()), list(wi.shown), res,
                                       {key: (list(v), list(o)) for key, (v, o) in columns.items()})
        return lambda: render.render_groups(again, tree.dirname, ["alias", "devname"], kmod)

    print(f"{tree.dirname}: {len(tree.modules)} modules, {args.rounds} alternating rounds (ms)")
    for label, job in (("every output", whole), ("an update's alias and devname groups", update)):
        times: dict[str, list[float]] = {"one after another": [], "in threads": []}
        first: object = None
        for _ in range(args.rounds):
            for mode in times:
                render.THREADED_MIN = 0 if mode == "in threads" else sys.maxsize
                got, took = _timed(job())
                times[mode].append(took)
                if first is None:
                    first = got
                elif got != first:
                    sys.exit(f"{label}: the renderings differ")
        row = "  ".join(f"{mode} {statistics.median(xs) * 1000:.1f} (min {min(xs) * 1000:.1f})"
                        for mode, xs in times.items())
        ratio = statistics.median(times["in threads"]) / statistics.median(times["one after another"])
        print(f"{label}: {row}  ratio {ratio:.2f}")


def _timed(job: Callable[[], object]) -> tuple[object, float]:
    t = time.perf_counter()
    got = job()
    return got, time.perf_counter() - t


if __name__ == "__main__":
    main()
