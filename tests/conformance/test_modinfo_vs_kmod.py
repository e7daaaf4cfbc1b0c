"""``moddeps info`` against kmod 30's and kmod 34.2's ``modinfo`` on Debian's signed modules.

Trees: Debian 12's 6.1 cloud kernel (plain ``.ko``), Debian 13's 6.12 and
Debian 14's 7.x cloud kernels (``.ko.xz``, merged ``/usr``: the copies get
``lib -> usr/lib``, which Debian's kmod needs).  Each copy is indexed by the
depmod of the kmod that ships with that Debian release; both modinfo
releases then read it.

Queries: every module by name, every built-in, a sample of alias patterns,
``symbol:`` names, module files by relative and absolute path, unknown
names, ``-m``, and each option (``-F`` with the signature fields, ``-0``,
``-a -d -l -p -n``, ``-F name``/``filename``/``parm``/``parmtype``).
Compared: stdout byte for byte, stderr with the program name replaced, and
the exit status -- through the library for every query (one modinfo process
per query) and through the ``moddeps info`` command line for a sample.
The summary prints identical/total per tree and kmod release.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from moddeps import modinfo as mi
from tests.conformance.debian import DEB13, DEB14, KernelTree, KmodCmd

pytestmark = [pytest.mark.conformance, pytest.mark.parametrize("tree", ["cloud", DEB13, DEB14], indirect=True)]

WORKERS = max(4, 2 * (os.cpu_count() or 1))
SHOW = 10
FLAG_SETS: tuple[tuple[str, ...], ...] = (
    (), ("-0",), ("-F", "signer"), ("-F", "sig_key"), ("-F", "sig_hashalgo"), ("-F", "signature"),
    ("-F", "sig_id"), ("-F", "parm"), ("-F", "parmtype"), ("-F", "alias"), ("-F", "name"), ("-a",), ("-d",),
    ("-l",), ("-p",), ("-n",), ("-F", "filename"), ("-0", "-F", "signature"), ("-0", "-p"),
)


@pytest.fixture(scope="session")
def indexed(tree: KernelTree, kmod30: KmodCmd, kmod34: KmodCmd,
            fresh_copy: Callable[..., Path], empty_config: Path) -> Path:
    """A copy of the tree indexed by its Debian release's depmod; its root (-b)."""
    root = fresh_copy(tree, "modinfo")
    depmod = kmod30 if tree.flavour == "cloud" else kmod34
    r = subprocess.run([*depmod.depmod, "-b", str(root), "-C", str(empty_config), tree.version],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"depmod failed: {r.stderr[-2000:]}"
    return root


def _kmod_run(cmd: KmodCmd, root: Path, version: str, args: tuple[str, ...], cwd: str) -> tuple[bytes, bytes, int]:
    r = subprocess.run([*cmd.modinfo, "-b", str(root), "-k", version, *args], capture_output=True, cwd=cwd,
                       timeout=60, env=dict(os.environ, LC_ALL="C"))
    return r.stdout, r.stderr.replace(b"modinfo: ERROR: ", b"ERROR: "), r.returncode


def _library(t: mi.Tree, args: tuple[str, ...], version: int, cwd: str) -> tuple[bytes, bytes, int]:
    """What ``moddeps info`` prints for modinfo ``args`` (options first, then targets)."""
    opts_field: str | None = None
    null = modname = False
    targets: list[str] = []
    it = iter(args)
    for a in it:
        if a == "-F":
            opts_field = next(it)
        elif a in mi.SHORTCUTS:
            opts_field = mi.SHORTCUTS[a]
        elif a == "-0":
            null = True
        elif a == "-m":
            modname = True
        else:
            targets.append(a)
    opts = mi.InfoOptions(field=opts_field, null=null, modname=modname, kmod_version=version)
    out: list[str] = []
    err: list[str] = []
    old = os.getcwd()
    os.chdir(cwd)
    try:
        queries = [mi.query(t, a, opts) for a in targets]
    finally:
        os.chdir(old)
    for q in queries:
        if q.error is not None:
            err.append(f"ERROR: {q.error}")
            continue
        for one in q.infos:
            messages: list[str] = []
            out.append(mi.render(one, opts, messages))
            err += [m if m.startswith("libkmod: ") else f"ERROR: {m}" for m in messages]
    return ("".join(out).encode("utf-8", "surrogateescape"),
            "".join(e + "\n" for e in err).encode("utf-8", "surrogateescape"), mi.status(queries))


def _queries(tree: KernelTree, root: Path) -> list[tuple[str, ...]]:
    moddir = root / tree.moduledir / tree.version
    names = []
    for line in (moddir / "modules.dep").read_text().splitlines():
        rel = line.partition(":")[0]
        names.append((rel, mi.path_to_modname(rel) or ""))
    builtins = [mi.path_to_modname(x) or "" for x in (moddir / "modules.builtin").read_text().split()]
    aliases = [line.split()[1] for line in (moddir / "modules.alias").read_text().splitlines()[1:]]
    symbols = [line.split()[1] for line in (moddir / "modules.symbols").read_text().splitlines()[1:]]
    q: list[tuple[str, ...]] = [(n,) for _rel, n in names]
    q += [(b,) for b in builtins]
    q += [(a,) for a in aliases[:: max(1, len(aliases) // 200)]]
    q += [(s,) for s in symbols[:: max(1, len(symbols) // 50)]]
    q += [("-m", n.replace("_", "-")) for _rel, n in names[::25]]
    q += [(f"{tree.moduledir}/{tree.version}/{rel}",) for rel, _n in names[::20]]  # relative to the root
    q += [(str(moddir / rel),) for rel, _n in names[::40]]
    q += [("no_such_module",), ("pci:v0000FFFFd0000FFFFsv*",), ("bad[alias",), ("missing.ko",)]
    sample = [n for _rel, n in names[::15]] + builtins[::10]
    q += [(*flags, s) for flags in FLAG_SETS for s in sample]
    q += [("-F", "signer", *[n for _rel, n in names[:30]])]  # several targets, one run
    return q


def _compare(tree: KernelTree, root: Path, cmd: KmodCmd, version: int, summary: list[str]) -> None:
    t = mi.Tree(str(root) + f"/lib/modules/{tree.version}")
    queries = _queries(tree, root)
    cwd = str(root)
    with ThreadPoolExecutor(WORKERS) as pool:
        kmod_results = list(pool.map(lambda a: _kmod_run(cmd, root, tree.version, a, cwd), queries))
    bad = []
    for args, kres in zip(queries, kmod_results):
        mres = _library(t, args, version, cwd)
        if mres != kres:
            bad.append((args, kres, mres))
    summary.append(f"modinfo {tree.flavour} vs kmod {cmd.version}: {len(queries) - len(bad)}/{len(queries)} "
                   "identical (stdout, stderr, status)")
    assert not bad, "\n".join(f"{a}\n  kmod:    {k!r:.600}\n  moddeps: {m!r:.600}" for a, k, m in bad[:SHOW])


def test_library_vs_kmod30(tree: KernelTree, indexed: Path, kmod30: KmodCmd, summary: list[str]) -> None:
    _compare(tree, indexed, kmod30, 30, summary)


def test_library_vs_kmod34(tree: KernelTree, indexed: Path, kmod34: KmodCmd, summary: list[str]) -> None:
    _compare(tree, indexed, kmod34, 34, summary)


@pytest.mark.parametrize("release", [30, 34])
def test_command_line(tree: KernelTree, indexed: Path, kmod30: KmodCmd, kmod34: KmodCmd, moddeps_cmd: list[str],
                      release: int, summary: list[str]) -> None:
    """The ``moddeps info`` command itself: one process per flag set, several targets each."""
    cmd = kmod30 if release == 30 else kmod34
    moddir = indexed / tree.moduledir / tree.version
    names = [mi.path_to_modname(line.partition(":")[0]) or ""
             for line in (moddir / "modules.dep").read_text().splitlines()[::60]]
    builtin = (moddir / "modules.builtin").read_text().split()[0]
    targets = [*names, mi.path_to_modname(builtin) or "", "no_such_module"]
    bad = []
    for flags in FLAG_SETS:
        args = (*flags, *targets)
        k = _kmod_run(cmd, indexed, tree.version, args, str(indexed))
        r = subprocess.run([*moddeps_cmd, "info", "--kmod-version", str(release), "-b", str(indexed),
                            "-k", tree.version, *args], capture_output=True, cwd=str(indexed), timeout=120)
        m = (r.stdout, r.stderr.replace(b"moddeps: ERROR: ", b"ERROR: "), r.returncode)
        if m != k:
            bad.append((flags, k, m))
    summary.append(f"moddeps info {tree.flavour} vs kmod {cmd.version}: {len(FLAG_SETS) - len(bad)}/{len(FLAG_SETS)} "
                   f"command lines identical ({len(targets)} targets each)")
    assert not bad, "\n".join(f"{a}\n  kmod:    {k!r:.600}\n  moddeps: {m!r:.600}" for a, k, m in bad[:SHOW])
