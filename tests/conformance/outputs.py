"""Running depmod (kmod's or moddeps') on a copy of a tree and comparing
what two runs wrote: the file sets, then every file byte for byte, with a
short description of the first difference."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.conformance.debian import KernelTree, first_difference

#: what kmod 30 writes (tools/depmod.c, depmod_output)
KMOD30_OUTPUTS = (
    "modules.dep", "modules.dep.bin", "modules.alias", "modules.alias.bin", "modules.softdep",
    "modules.symbols", "modules.symbols.bin", "modules.builtin.bin", "modules.builtin.alias.bin",
    "modules.devname",
)
#: what kmod 34.2 writes: modules.weakdep too, always, after modules.softdep
#: (kmod commit 05828b4a6e93, "libkmod: add weak dependecies", v33)
KMOD34_OUTPUTS = (*KMOD30_OUTPUTS[:5], "modules.weakdep", *KMOD30_OUTPUTS[5:])
SHOW = 15


@dataclass(frozen=True)
class Run:
    tool: str  # "kmod" or "moddeps"
    root: Path  # the -b BASEDIR
    argv: tuple[str, ...]
    status: int
    stdout: bytes
    stderr: bytes
    seconds: float

    def messages(self) -> list[str]:
        """stderr lines without "depmod: "/"moddeps: ", the copy's path as <BASEDIR>."""
        prefix = "depmod: " if self.tool == "kmod" else "moddeps: "
        out = []
        for line in self.stderr.decode("utf-8", "surrogateescape").splitlines():
            line = line.removeprefix(prefix)
            out.append(line.replace(str(self.root), "<BASEDIR>"))
        return out

    def describe(self) -> str:
        return f"{' '.join(self.argv)} -> status {self.status}, stderr:\n{self.stderr.decode(errors='replace')[-2000:]}"


def run_depmod(
    tool: str, cmd: list[str], root: Path, version: str, *args: str, env: dict[str, str] | None = None
) -> Run:
    """``CMD ARGS -b ROOT VERSION`` (``env``: the whole environment, default this process's)."""
    argv = [*cmd, *args, "-b", str(root), version]
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=1800, env=env)
    return Run(tool, root, tuple(argv), r.returncode, r.stdout, r.stderr, time.monotonic() - t0)


def listing(moddir: Path) -> set[str]:
    out: set[str] = set()
    for dirpath, _dirs, files in os.walk(moddir):
        rel = os.path.relpath(dirpath, moddir)
        out.update(os.path.normpath(os.path.join(rel, f)) for f in files)
    return out


def _dump(cmd: list[str], path: Path) -> list[str]:
    r = subprocess.run([*cmd, "index", "dump", str(path)], capture_output=True, timeout=600)
    if r.returncode != 0:
        return [f"<moddeps index dump failed: {r.stderr.decode(errors='replace').strip()}>"]
    return r.stdout.decode("utf-8", "surrogateescape").splitlines()


def explain(name: str, ours: bytes, theirs: bytes, ours_path: Path, theirs_path: Path, moddeps_cmd: list[str]) -> str:
    """A short description of how two versions of an output file differ."""
    offset = first_difference(ours, theirs)
    text = f"{name}: moddeps {len(ours)} bytes, kmod {len(theirs)} bytes, first difference at byte {offset}"
    if name.endswith(".bin"):
        ol, kl = _dump(moddeps_cmd, ours_path), _dump(moddeps_cmd, theirs_path)
    else:
        ol = ours.decode("utf-8", "surrogateescape").splitlines()
        kl = theirs.decode("utf-8", "surrogateescape").splitlines()
    i = first_difference(ol, kl)
    what = "index dump line" if name.endswith(".bin") else "line"
    text += (
        f"; {what} {i + 1} of {len(ol)}/{len(kl)}: moddeps {ol[i] if i < len(ol) else None!r}, "
        f"kmod {kl[i] if i < len(kl) else None!r}"
    )
    if set(ol) != set(kl):
        text += f"; {len(set(ol) - set(kl))} lines only in moddeps', {len(set(kl) - set(ol))} only in kmod's"
    else:
        text += "; same lines, different order" if ol != kl else "; same lines"
    return text


def compare_outputs(
    ours_dir: Path, kmod_dir: Path, moddeps_cmd: list[str], expected: Sequence[str] = KMOD30_OUTPUTS
) -> list[str]:
    """Differences between two module directories: file sets, then bytes."""
    problems = []
    ol, kl = listing(ours_dir), listing(kmod_dir)
    problems += [f"only moddeps wrote {f}" for f in sorted(ol - kl)]
    problems += [f"only kmod wrote {f}" for f in sorted(kl - ol)]
    problems += [f"kmod did not write {f}" for f in expected if f not in kl]
    for f in sorted(ol & kl):
        if "/" in f:
            continue  # module files (hard links to the same pristine inodes)
        x, y = (ours_dir / f).read_bytes(), (kmod_dir / f).read_bytes()
        if x != y:
            problems.append(explain(f, x, y, ours_dir / f, kmod_dir / f, moddeps_cmd))
    return problems


def fail_message(what: str, tree: KernelTree, problems: list[str]) -> str:
    more = f"\n  ... and {len(problems) - SHOW} more" if len(problems) > SHOW else ""
    return f"{tree.package}: {what}: {len(problems)} problem(s)\n  " + "\n  ".join(problems[:SHOW]) + more


