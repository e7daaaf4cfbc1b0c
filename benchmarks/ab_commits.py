#!/usr/bin/env python3
"""Two checkouts of moddeps side by side: is a change slower? (a person runs it, not a test)

    python benchmarks/ab_commits.py OLD_CHECKOUT NEW_CHECKOUT --tree ROOT:VERSION [--tree ...] [--rounds 5]

Each checkout runs as ``PYTHONPATH=CHECKOUT python -m moddeps`` (build its C accelerators in place
first: ``python setup.py build_ext --inplace``), on its own copy of each tree (``ROOT/lib/modules/
VERSION`` or ``ROOT/usr/lib/modules/VERSION``, copied under --work), with its own scan cache.
Rows: ``depmod --no-cache``, a warm ``depmod`` (cache primed), ``scan --json --no-cache``,
``--help``; rounds alternate old/new (the order flips every round) and the medians of wall and CPU
time (the child's rusage) are printed with the ratios new/old.  After the rounds every
``modules.*`` file of the two copies must be byte-identical, or the script fails.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run(checkout: str, argv: list[str], cache: str) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=checkout, MODDEPS_CACHE=cache)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # (cwd: ``-m`` puts the working directory before PYTHONPATH, so run from a checkout's root both
    # sides would import that checkout)
    p = subprocess.run([sys.executable, "-m", "moddeps", *argv], env=env, capture_output=True,
                       cwd=os.path.dirname(cache))
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"{checkout}: moddeps {' '.join(argv)} failed: {p.stderr.decode(errors='replace')[-400:]}")
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def _bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--tree", action="append", required=True, metavar="ROOT:VERSION")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", default=None, help="where the tree copies go (default: a temporary directory)")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="moddeps-ab-")
    sides = {"old": os.path.abspath(args.old), "new": os.path.abspath(args.new)}
    for checkout in sides.values():  # byte-compile both, so neither pays for it in a timed run
        subprocess.run([sys.executable, "-m", "compileall", "-q", f"{checkout}/moddeps"], check=True)
    for spec in args.tree:
        src, version = spec.rsplit(":", 1)
        moddir = "usr/lib" if os.path.isdir(f"{src}/usr/lib/modules/{version}") else "lib"
        roots = {}
        for side in sides:
            root = f"{work}/{side}-{version}"
            shutil.rmtree(root, ignore_errors=True)
            shutil.copytree(f"{src}/{moddir}/modules/{version}", f"{root}/{moddir}/modules/{version}", symlinks=True)
            if moddir == "usr/lib":
                os.symlink("usr/lib", f"{root}/lib")
            roots[side] = root
        rows = {
            "depmod --no-cache": ["depmod", "-b", "ROOT", "--no-cache", version],
            "depmod warm (cache)": ["depmod", "-b", "ROOT", version],
            "scan --json --no-cache": ["scan", "--json", "--no-cache", f"ROOT/{moddir}/modules/{version}"],
            "--help": ["--help"],
        }
        for row, template in rows.items():
            def argv(root: str, template: list[str] = template) -> list[str]:
                return [a.replace("ROOT", root, 1) for a in template]

            got: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
            for side, checkout in sides.items():  # prime the caches, untimed
                run(checkout, argv(roots[side]), f"{work}/cache-{side}.sqlite3")
            for i in range(args.rounds):
                for side in (("old", "new") if i % 2 == 0 else ("new", "old")):
                    got[side].append(run(sides[side], argv(roots[side]), f"{work}/cache-{side}.sqlite3"))
            med = {s: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for s, v in got.items()}
            old, new = med["old"], med["new"]
            print(f"{version}\t{row}\told {old[0]:.3f}s ({old[1]:.3f} cpu)\t"
                  f"new {new[0]:.3f}s ({new[1]:.3f} cpu)\t"
                  f"new/old wall {new[0] / old[0]:.2f} cpu {new[1] / old[1]:.2f}", flush=True)
        outdir = {s: f"{roots[s]}/{moddir}/modules/{version}" for s in sides}
        names = sorted(n for n in os.listdir(outdir["old"]) if n.startswith("modules."))
        differ = [n for n in names if _bytes(f"{outdir['old']}/{n}") != _bytes(f"{outdir['new']}/{n}")]
        if differ:
            sys.exit(f"{version}: the two checkouts wrote different files: {', '.join(differ)}")
        print(f"{version}\tevery modules.* file identical ({len(names)} files)", flush=True)


if __name__ == "__main__":
    main()
