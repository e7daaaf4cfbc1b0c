#!/usr/bin/env python3
"""Where one cold ``moddeps depmod --no-cache`` spends its time, phase by phase.

Run by a person (not a test):

    python benchmarks/profile_depmod.py                          # Debian 13 cloud and amd64 (.ko.xz), 6.1 amd64 (.ko)
    python benchmarks/profile_depmod.py --rounds 9 --trees deb13-amd64-xz
    python benchmarks/profile_depmod.py --tree DIR:VERSION       # any extracted tree
    python benchmarks/profile_depmod.py --cprofile 25 --trees amd64   # and the 25 costliest functions

Each run is a process of its own, as ``python -m moddeps depmod --no-cache -b COPY VERSION`` on a
hard-linked copy of the tree (merged-/usr trees get ROOT/lib -> usr/lib).  moddeps is instrumented
from outside: the child imports moddeps, wraps the functions of each phase (module attributes
replaced before the run, nothing in moddeps changed) and calls ``moddeps.cli.main`` as ``-m
moddeps`` does.  The trees alternate within each round; the table gives medians of wall and CPU
milliseconds (CPU: user + system of the whole process, all threads, ``time.process_time``).
The wrappers cost ~1-2 us a call (load, decompress and parse are called once a module: ~10 ms on
4,000 modules, counted in those phases); ``--cprofile`` runs are extra and not in the table.

Phases:
  interpreter start     from the spawn to the first line of the child (the interpreter, site,
                        the venv's .pth files; the child's own few lines)
  imports (CLI)         ``import moddeps.cli`` (what ``python -m moddeps`` imports before parsing)
  imports (depmod)      the modules a depmod run imports lazily (depmod.run, resolve, render, the
                        readers, the C extensions), imported here up front so they can be wrapped
  CLI                   typer's parsing and the command's own code around ``run`` (main, stderr)
  kmod release, depmod.d  ``kmodversion.select``, ``config.load``
  walk and stat         ``read.scan.layout_tree``: the walk, kmod's module array, modules.order
  read and parse        ``read.scan.read_layout``: every module read, decompressed and parsed;
                        the indented lines below it add up CPU *per thread*:
    load (thread CPU)   ``load_module_file`` (open, read, decompress) in the loader threads; 0 for a
                        plain ``.ko`` that the C reader reads in part, inside parse (below)
    decompress          ``compression.decompress`` alone, within load
    parse (thread CPU)  ``parse_module`` (the C parser, else pyelftools' twin) in the main thread; for a
                        plain ``.ko`` read in part (``elfreader.PlainFile``), its reads too; and
                        ``elfreader.read_plain_files``, the C reader's runs of plain ``.ko`` files
                        (each read in part, parsed, its record made: one call for many modules)
  resolve               ``resolve.resolve``: symbol owners, dependencies, numbering
  render: GROUP         ``sanitize``, the symbols' checks, then each row of ``depmod.outputs.TABLE``
                        by its group (dep, alias, softdep, symbols, builtin, devname)
  write                 ``depmod.writer.write_all`` (temporaries, fsync, journal, renames)
  other (in run)        the rest of ``depmod.run.run`` (the lock, building records)
  exit, unaccounted     wall: from the end of main (os._exit) to the parent seeing the exit; CPU: what
                        wait4 counts beyond the phases above (its tick accounting is coarser)
  total                 spawn to exit, measured by the parent (wall) and wait4 (CPU)
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# --------------------------------------------------------------------------
# The child: one instrumented run
# --------------------------------------------------------------------------


class Clock:
    """Wall and CPU time of named phases (process CPU, or this thread's)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.order: list[str] = []

    def add(self, name: str, wall: float, cpu: float) -> None:
        if name not in self.wall:
            self.order.append(name)
            self.wall[name] = self.cpu[name] = 0.0
        self.wall[name] += wall
        self.cpu[name] += cpu

    def wrap(self, name: str, fn: Callable[..., Any], per_thread: bool = False) -> Callable[..., Any]:
        """``fn`` timed under ``name``; ``per_thread``: CPU of the calling thread (calls in
        several threads add up)."""
        cpu_clock = time.thread_time if per_thread else time.process_time
        clock = self

        def timed(*args: Any, **kw: Any) -> Any:
            w, c = time.perf_counter(), cpu_clock()
            try:
                return fn(*args, **kw)
            finally:
                clock.add(name, time.perf_counter() - w, cpu_clock() - c)

        return timed


def child(t0: float, c0: float, argv: list[str], out: str, cprofile: int) -> None:
    """Run ``moddeps`` with ``argv``, its phases timed; the result goes to the file ``out``."""
    clock = Clock()
    clock.add("interpreter start", 0.0, c0)  # wall: the parent's (spawn to t0)
    w, c = time.perf_counter(), time.process_time()
    import moddeps.cli

    clock.add("imports (CLI)", time.perf_counter() - w, time.process_time() - c)
    w, c = time.perf_counter(), time.process_time()
    import dataclasses

    import moddeps.config
    import moddeps.depmod.outputs
    import moddeps.depmod.render
    import moddeps.depmod.run
    import moddeps.kmodversion
    import moddeps.read.compression
    import moddeps.read.pool
    import moddeps.resolve
    from moddeps.native import load

    load("_elfscan")
    load("depmod._trie")
    clock.add("imports (depmod)", time.perf_counter() - w, time.process_time() - c)

    def patch(module: Any, attr: str, phase: str, per_thread: bool = False) -> None:
        setattr(module, attr, clock.wrap(phase, getattr(module, attr), per_thread))

    run_mod, render, pool = moddeps.depmod.run, moddeps.depmod.render, moddeps.read.pool
    patch(moddeps.kmodversion, "select", "kmod release, depmod.d")
    patch(moddeps.config, "load", "kmod release, depmod.d")
    patch(run_mod, "layout_tree", "walk and stat")
    patch(run_mod, "read_layout", "read and parse")
    # (load_module_data: checkouts with the xz happy path, moddeps/read/_xz.c, whose decode is xz_happy_path)
    patch(pool, "load_module_data" if hasattr(pool, "load_module_data") else "load_module_file", "  load (thread CPU)",
          per_thread=True)
    patch(moddeps.read.compression, "decompress", "  decompress (thread CPU)", per_thread=True)
    if hasattr(moddeps.read.compression, "xz_happy_path"):
        patch(moddeps.read.compression, "xz_happy_path", "  decompress (thread CPU)", per_thread=True)
    patch(pool, "parse_module", "  parse (thread CPU)", per_thread=True)
    if hasattr(pool, "read_plain_files"):  # (checkouts before it: every module through parse_module)
        patch(pool, "read_plain_files", "  parse (thread CPU)", per_thread=True)
    patch(moddeps.resolve, "resolve", "resolve")
    patch(render, "sanitize", "render: sanitize")
    patch(render, "safe_symbols", "render: symbols")
    patch(render, "module_symbols", "render: symbols")
    render.TABLE = tuple(dataclasses.replace(row, write=clock.wrap(f"render: {row.group}", row.write))  # type: ignore[attr-defined]
                         for row in moddeps.depmod.outputs.TABLE)
    patch(run_mod, "write_all", "write")
    patch(run_mod, "run", "run")
    real_exit = os._exit
    profiler = None
    main_w = main_c = 0.0

    def leave(status: int) -> None:
        clock.add("main", time.perf_counter() - main_w, time.process_time() - main_c)
        if profiler is not None:
            profiler.disable()
            import pstats

            with open(out + ".prof.txt", "w") as f:
                pstats.Stats(profiler, stream=f).sort_stats("tottime").print_stats(cprofile)
        with open(out, "w") as f:
            json.dump({"status": status, "t0": t0, "end": time.perf_counter(), "order": clock.order,
                       "wall": clock.wall, "cpu": clock.cpu}, f)
        real_exit(status)

    os._exit = leave  # type: ignore[assignment]
    sys.argv = ["moddeps", *argv]
    if cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    main_w, main_c = time.perf_counter(), time.process_time()
    moddeps.cli.main()


# --------------------------------------------------------------------------
# The parent
# --------------------------------------------------------------------------

CHILD = ("import time; t0 = time.perf_counter(); c0 = time.process_time(); import sys; "
         "sys.path.insert(0, sys.argv[1]); import profile_depmod; "
         "profile_depmod.child(t0, c0, sys.argv[5:], sys.argv[2], int(sys.argv[3]))")


def one_run(root: Path, version: str, kmod_version: str, cprofile: int = 0) -> dict[str, Any]:
    fd, out = tempfile.mkstemp(prefix="moddeps-profile-", suffix=".json")
    os.close(fd)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as an installed moddeps: byte-compiled once
    argv = ["depmod", "--no-cache", "--kmod-version", kmod_version, "-b", str(root), version]
    spawn = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(HERE), out, str(cprofile), "-", *argv],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=REPO)
    _, status, usage = os.wait4(p.pid, 0)
    done = time.perf_counter()
    err = p.stderr.read().decode() if p.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"moddeps depmod failed on {root}:\n{err}")
    with open(out) as f:
        got: dict[str, Any] = json.load(f)
    os.unlink(out)
    if cprofile:
        with open(out + ".prof.txt") as f:
            got["profile"] = f.read()
        os.unlink(out + ".prof.txt")
    wall, cpu = got["wall"], got["cpu"]
    wall["interpreter start"] = got["t0"] - spawn
    total_cpu = usage.ru_utime + usage.ru_stime
    # the CLI: main less run; run's other: run less the phases inside it
    inside = [k for k in got["order"] if k not in ("interpreter start", "imports (CLI)", "imports (depmod)", "main",
                                                   "run") and not k.startswith("  ")]
    for d in (wall, cpu):
        d["CLI"] = d.pop("main") - d["run"]
        d["other (in run)"] = d.pop("run") - sum(d[k] for k in inside)
    wall["exit, unaccounted"] = done - got["end"]
    cpu["exit, unaccounted"] = max(0.0, total_cpu - sum(v for k, v in cpu.items() if not k.startswith("  ")))
    wall["total"], cpu["total"] = done - spawn, total_cpu
    return got


PHASES_HEAD = ("interpreter start", "imports (CLI)", "imports (depmod)", "CLI", "kmod release, depmod.d",
               "walk and stat", "read and parse", "  load (thread CPU)", "  decompress (thread CPU)",
               "  parse (thread CPU)", "resolve")
PHASES_TAIL = ("write", "other (in run)", "exit, unaccounted", "total")


def phases(runs: list[dict[str, Any]]) -> list[str]:
    renders = sorted({k for r in runs for k in r["wall"] if k.startswith("render: ")},
                     key=lambda k: min(r["order"].index(k) for r in runs if k in r["order"]))
    return [*PHASES_HEAD, *renders, *PHASES_TAIL]


def copy_tree(root: Path, dst: Path) -> None:
    shutil.copytree(root, dst, symlinks=True, copy_function=os.link)
    if (dst / "usr/lib/modules").is_dir() and not (dst / "lib").exists():
        (dst / "lib").symlink_to("usr/lib")


def main() -> None:
    sys.path.insert(0, str(HERE))
    from bench_depmod import CONFORMANCE_TREES, conformance_tree, fetch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--trees", nargs="*", default=["deb13-cloud-xz", "deb13-amd64-xz", "amd64"],
                    help=f"cloud, amd64 (Debian 12's 6.1, .ko), {', '.join(CONFORMANCE_TREES)}")
    ap.add_argument("--tree", action="append", default=[], help="DIR:VERSION of an extracted tree")
    ap.add_argument("--kmod-version", default="34", help="moddeps' --kmod-version (default 34)")
    ap.add_argument("--cprofile", type=int, default=0, metavar="N",
                    help="also one run per tree under cProfile: its N costliest functions (tottime)")
    args = ap.parse_args()
    trees: list[tuple[str, Path, str]] = []
    for spec in args.tree:
        d, v = spec.rsplit(":", 1)
        trees.append((Path(d).name, Path(d), v))
    for t in args.trees:
        if t in ("cloud", "amd64"):
            trees.append((t, *fetch("cloud-amd64" if t == "cloud" else "amd64")))
        elif t in CONFORMANCE_TREES:
            found = conformance_tree(CONFORMANCE_TREES[t])
            if found is None:
                print(f"{t}: not in the conformance cache; left out", file=sys.stderr)
                continue
            trees.append((t, *found))
        else:
            sys.exit(f"unknown tree {t!r}")
    work = Path(tempfile.mkdtemp(prefix="moddeps-profile-"))
    try:
        copies = []
        for i, (name, root, version) in enumerate(trees):
            copy_tree(root, work / str(i))
            copies.append((name, work / str(i), version))
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _r, _v in copies}
        for _name, root, version in copies:  # one untimed run each: byte-compiled moddeps, warm page cache
            one_run(root, version, args.kmod_version)
        for _ in range(args.rounds):
            for name, root, version in copies:
                runs[name].append(one_run(root, version, args.kmod_version))
        counts = {name: sum(1 for _ in (root / "lib/modules" / version).rglob("*.ko*"))
                  for name, root, version in copies}
        all_phases = phases([r for rs in runs.values() for r in rs])
        header = ["phase"]
        for name, _r, _v in copies:
            header += [f"{name} ({counts[name]}) wall ms", "CPU ms"]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for phase in all_phases:
            row = [phase.replace("  ", "&nbsp;&nbsp;", 1) if phase.startswith("  ") else phase]
            for name, _r, _v in copies:
                w = [r["wall"].get(phase, 0.0) for r in runs[name]]
                c = [r["cpu"].get(phase, 0.0) for r in runs[name]]
                thread_only = phase.startswith("  ") and phase.endswith("(thread CPU)")
                row += ["" if thread_only else f"{statistics.median(w) * 1e3:.0f}", f"{statistics.median(c) * 1e3:.0f}"]
            print("| " + " | ".join(row) + " |", flush=True)
        print(f"\n{os.cpu_count()} CPUs; medians of {args.rounds} rounds, trees alternating; moddeps --kmod-version "
              f"{args.kmod_version}, Python {sys.version.split()[0]}; indented rows: CPU summed over the threads "
              "running that function, part of the phase above")
        if args.cprofile:
            for name, root, version in copies:
                got = one_run(root, version, args.kmod_version, args.cprofile)
                print(f"\n### {name}: cProfile, {args.cprofile} costliest functions (tottime)\n")
                print("```")
                print(got["profile"].strip())
                print("```")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
