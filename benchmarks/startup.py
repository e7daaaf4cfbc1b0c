#!/usr/bin/env python3
"""What a warm ``moddeps depmod`` imports, and which of it the run never uses.

Run by a person (not a test):

    python benchmarks/startup.py                       # Debian 12's 6.1 cloud tree, 9 rounds
    python benchmarks/startup.py --tree DIR:VERSION --rounds 15

On a hard-linked copy of the tree, with a scan cache primed by two runs, it measures in
alternating rounds (medians; wall, and CPU = user + system from wait4):

  python -c pass                       the interpreter alone (site, the venv's .pth files)
  python -m moddeps --help
  python -m moddeps depmod (warm)      a rerun answered from the cache (nothing to compute)
  python -X importtime -m moddeps depmod (warm)   each module's own import time (median) and count

and once, with a profiler hook (``sys.setprofile``, every thread) that notes which module's code
runs *outside* any module body: a module imported by the warm run whose functions never run once
the imports are done -- not one of its functions, methods, dataclass-made ``__init__`` or C
functions -- is listed as imported but unused, with its own import time and who imported it.
A module used only for its constants or its classes' ``isinstance`` checks shows up there too:
read the list, do not take it as a verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# --------------------------------------------------------------------------
# The traced child
# --------------------------------------------------------------------------


def traced(out: str, argv: list[str]) -> None:
    """Run ``python -m moddeps ARGV`` with the profiler hook; write what ran, by module, to ``out``."""
    import runpy
    import threading
    import types

    used: set[str] = set()
    bodies = 0  # module bodies being executed (imports in progress), in this thread's view

    def body(frame: types.FrameType) -> bool:
        """A module body being imported (not ``moddeps/__main__.py``'s, which is the run)."""
        return frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") != "__main__"

    def hook(frame: types.FrameType, event: str, arg: Any) -> None:
        nonlocal bodies
        if event == "call":
            if body(frame):
                bodies += 1
            elif not bodies:
                used.add(str(frame.f_globals.get("__name__")))
        elif event == "return":
            if body(frame):
                bodies -= 1
        elif event == "c_call" and not bodies:
            owner = getattr(arg, "__self__", None)
            if isinstance(owner, types.ModuleType):
                used.add(owner.__name__)
            elif owner is not None:
                used.add(type(owner).__module__)
            module = getattr(arg, "__module__", None)
            if module:
                used.add(module)

    def leave(status: int) -> None:
        sys.setprofile(None)
        threading.setprofile(None)
        with open(out, "w") as f:
            json.dump({"status": status, "used": sorted(used), "modules": sorted(sys.modules)}, f)
        real_exit(status)

    real_exit = os._exit
    os._exit = leave  # type: ignore[assignment]
    sys.argv = ["moddeps", *argv]
    threading.setprofile(hook)
    sys.setprofile(hook)
    runpy.run_module("moddeps", run_name="__main__", alter_sys=True)


# --------------------------------------------------------------------------
# The parent
# --------------------------------------------------------------------------

IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall and CPU seconds of one run, and its stderr."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=REPO)
    err = p.stderr.read().decode() if p.stderr else ""
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    return wall, usage.ru_utime + usage.ru_stime, err


def importtime(stderr: str) -> list[tuple[str, int, int]]:
    """(module, self us, depth) of each import, in -X importtime's order."""
    out = []
    for line in stderr.splitlines():
        m = IMPORTTIME.match(line)
        if m:
            out.append((m.group(4), int(m.group(1)), len(m.group(3)) // 2))
    return out


def importers(rows: list[tuple[str, int, int]]) -> dict[str, str]:
    """module -> the module whose import imported it (-X importtime lists children first)."""
    parent: dict[str, str] = {}
    pending: list[tuple[str, int]] = []  # (module, depth) waiting for their parent
    for name, _self, depth in rows:
        still = []
        for child, d in pending:
            if d == depth + 1:
                parent[child] = name
            else:
                still.append((child, d))
        pending = [*still, (name, depth)]
    return parent


def main() -> None:
    sys.path.insert(0, str(HERE))
    from bench_depmod import fetch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--tree", help="DIR:VERSION of an extracted tree (default: Debian 12's 6.1 cloud tree)")
    ap.add_argument("--top", type=int, default=40, help="how many unused modules to list")
    args = ap.parse_args()
    if args.tree:
        d, version = args.tree.rsplit(":", 1)
        root = Path(d)
    else:
        root, version = fetch("cloud-amd64")
    work = Path(tempfile.mkdtemp(prefix="moddeps-startup-"))
    try:
        copy = work / "tree"
        shutil.copytree(root, copy, symlinks=True, copy_function=os.link)
        if (copy / "usr/lib/modules").is_dir() and not (copy / "lib").exists():
            (copy / "lib").symlink_to("usr/lib")
        env = {**os.environ, "MODDEPS_CACHE": str(work / "cache.sqlite3"),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as an installed moddeps: byte-compiled once
        py = sys.executable
        depmod = [py, "-m", "moddeps", "depmod", "-b", str(copy), version]
        for _ in range(2):
            run(depmod, env)  # fill the cache; the second run is already warm
        cases = {"python -c pass": [py, "-c", "pass"], "moddeps --help": [py, "-m", "moddeps", "--help"],
                 "depmod (warm)": depmod}
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
        selfs: dict[str, list[int]] = {}
        counts: list[int] = []
        base: set[str] = set()
        rows: list[tuple[str, int, int]] = []
        for _ in range(args.rounds):
            for name, cmd in cases.items():
                wall, cpu, _err = run(cmd, env)
                times[name].append((wall, cpu))
            _w, _c, err = run([py, "-X", "importtime", *depmod[1:]], env)
            rows = importtime(err)
            counts.append(len(rows))
            for module, us, _depth in rows:
                selfs.setdefault(module, []).append(us)
            base |= {m for m, _us, _d in importtime(run([py, "-X", "importtime", "-c", "pass"], env)[2])}
        fd, out = tempfile.mkstemp(prefix="moddeps-startup-", suffix=".json")
        os.close(fd)
        run([py, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import startup; startup.traced(sys.argv[2], "
             "sys.argv[3:])", str(HERE), out, *depmod[3:]], env)
        with open(out) as f:
            trace = json.load(f)
        os.unlink(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("| run | wall ms | CPU ms |")
    print("|---|---|---|")
    for name, got in times.items():
        print(f"| {name} | {statistics.median(w for w, _c in got) * 1e3:.0f} | "
              f"{statistics.median(c for _w, c in got) * 1e3:.0f} |")
    med = {m: statistics.median(v) for m, v in selfs.items()}
    ours = [m for m, _us, _d in rows if m not in base]
    print(f"\nwarm depmod imports {statistics.median(counts):.0f} modules (-X importtime), "
          f"{len(ours)} beyond `python -c pass`'s {len(base)}, their own import times adding up to "
          f"{sum(med[m] for m in ours) / 1e3:.1f} ms (medians of {args.rounds} rounds)")
    used = set(trace["used"])
    parent = importers(rows)
    unused = [m for m in ours if m not in used]
    print(f"\n{len(unused)} of them run no code of theirs once imported "
          f"({sum(med[m] for m in unused) / 1e3:.1f} ms of own import time); the costliest:\n")
    print("| module | own import ms | imported by |")
    print("|---|---|---|")
    for m in sorted(unused, key=lambda m: -med[m])[: args.top]:
        print(f"| {m} | {med[m] / 1e3:.2f} | {parent.get(m, '(top level)')} |")
    print(f"\n{os.cpu_count()} CPUs; medians of {args.rounds} rounds, the runs alternating; "
          f"Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
