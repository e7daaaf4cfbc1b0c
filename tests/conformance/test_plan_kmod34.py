"""``moddeps.modprobe --show-depends`` against Debian 13's kmod 34.2 ``modprobe
--show-depends`` on the Debian 13 (6.12) and Debian 14 (7.x) cloud trees.

Each tree is copied (with ``lib -> usr/lib``, as Debian's kmod needs, see
``debian.link_lib``) and indexed by kmod 34.2's own depmod, whose tries are
written in pre-order (kmod 34).  Then, for the same targets as
test_plan_vs_modprobe (modules, dashed names, built-ins, alias patterns,
concrete modalias strings, ``symbol:`` targets, unknown names):

* the command line, ``moddeps plan -b ROOT -k VERSION -C EMPTY
  --kernel-cmdline /proc/cmdline --show-depends X`` against ``modprobe -C
  EMPTY -d ROOT -S VERSION --show-depends X``, for a sample (one process per
  target on each side);
* the library (``moddeps.modprobe``) for every module, built-in, symbol and
  unknown target and a sample of the aliases, load and (for modules) remove.

modprobe reads the running kernel's ``/proc/cmdline`` (module options), so
moddeps is given the same text.  Compared: stdout byte for byte and the exit
status (moddeps' stderr notes are not modprobe's and are not compared).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from moddeps.kmodversion import KmodTarget
from moddeps.modprobe.plan import modprobe_dirname, open_context, plan_load, plan_remove
from tests.conformance.debian import NEW_TREES, KernelTree, KmodCmd
from tests.conformance.test_plan_vs_modprobe import TEST_CONFIG, _kernel_cmdline, config_errors, tree_targets

pytestmark = [pytest.mark.conformance, pytest.mark.parametrize("tree", NEW_TREES, indirect=True)]

WORKERS = max(4, 2 * (os.cpu_count() or 1))
SHOW = 15
#: targets per category given to the moddeps command line (every one for "unknown")
CLI_SAMPLE = {"module": 30, "module-dashed": 8, "builtin": 8, "alias-pattern": 8, "modalias": 20, "symbol": 20}
LIBRARY_SAMPLE = {"alias-pattern": 800, "modalias": 1500}
CMDLINE = "/proc/cmdline"


def sample(items: list[str], n: int) -> list[str]:
    """``n`` items spread evenly over ``items`` (all of them if there are fewer)."""
    if len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def modprobe(kmod: KmodCmd, config: Path, root: Path, version: str, target: str,
             remove: bool = False) -> tuple[str, int]:
    argv = [*kmod.modprobe, "-C", str(config), "-d", str(root), "-S", version, "--show-depends",
            *(["-r"] if remove else []), "--", target]
    r = subprocess.run(argv, capture_output=True, timeout=120, env=dict(os.environ, LC_ALL="C"))
    return r.stdout.decode("utf-8", "surrogateescape"), r.returncode


@pytest.fixture(scope="session")
def indexed34(tree: KernelTree, kmod34: KmodCmd, fresh_copy: Callable[..., Path], empty_config: Path) -> Path:
    """A copy of the tree indexed by kmod 34.2's depmod; its root (-d)."""
    root = fresh_copy(tree, "plan34")
    r = subprocess.run([*kmod34.depmod, "-b", str(root), "-C", str(empty_config), tree.version],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"kmod 34.2 depmod failed: {r.stderr[-2000:]}"
    header = (root / "lib/modules" / tree.version / "modules.dep.bin").read_bytes()[:12]
    assert header[8:12] == b"\x20\x00\x00\x0c", f"not a pre-order trie (root word {header[8:12].hex()})"
    return root


def _explain(bad: list[tuple[str, str, int, str, int]]) -> str:
    out = [f"{what}\n  modprobe (status {krc}): {kout!r}\n  moddeps  (status {orc}): {oout!r}"
           for what, kout, krc, oout, orc in bad[:SHOW]]
    if len(bad) > SHOW:
        out.append(f"... and {len(bad) - SHOW} more")
    return "\n".join(out)


def test_cli_show_depends(tree: KernelTree, indexed34: Path, kmod34: KmodCmd, empty_config: Path,
                          moddeps_cmd: list[str], summary: list[str]) -> None:
    targets = tree_targets(indexed34 / "lib/modules" / tree.version)
    chosen = [(cat, t) for cat, ts in targets.items() for t in sample(ts, CLI_SAMPLE.get(cat, len(ts)))]
    cmd = [*moddeps_cmd, "plan", "-b", str(indexed34), "-k", tree.version, "-C", str(empty_config),
           "--kernel-cmdline", CMDLINE, "--show-depends", "--"]

    def ours(target: str) -> tuple[str, int]:
        r = subprocess.run([*cmd, target], capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
        return r.stdout.decode("utf-8", "surrogateescape"), r.returncode

    t0 = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        theirs = list(pool.map(lambda ct: modprobe(kmod34, empty_config, indexed34, tree.version, ct[1]), chosen))
        mine = list(pool.map(lambda ct: ours(ct[1]), chosen))
    bad = [(f"[{cat}] {target!r}", k[0], k[1], o[0], o[1])
           for (cat, target), k, o in zip(chosen, theirs, mine, strict=True) if k != o]
    summary.append(f"moddeps.modprobe --show-depends (command line) vs kmod 34.2 modprobe {tree.package}: "
                   f"{len(chosen) - len(bad)}/{len(chosen)} identical in {time.monotonic() - t0:.0f} s "
                   f"({sum(1 for k in theirs if k[1] == 0)} found by modprobe)")
    assert sum(1 for k in theirs if k[1] == 0 and "insmod " in k[0]) > 30
    assert not bad, f"{len(bad)} of {len(chosen)} differ:\n{_explain(bad)}"


def test_library_show_depends(tree: KernelTree, indexed34: Path, kmod34: KmodCmd, empty_config: Path,
                              summary: list[str]) -> None:
    from moddeps.report.plan import show_depends_text

    targets = tree_targets(indexed34 / "lib/modules" / tree.version)
    for cat, n in LIBRARY_SAMPLE.items():
        targets[cat] = sample(targets[cat], n)
    ctx = open_context(modprobe_dirname(str(indexed34), tree.version), config_paths=[str(empty_config)],
                       kernel_cmdline=_kernel_cmdline())
    assert ctx.source.kind == "index", ctx.source
    cases = [(cat, t, False) for cat, ts in targets.items() for t in ts]
    cases += [("remove", t, True) for t in targets["module"]]
    t0 = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        theirs = list(pool.map(lambda c: modprobe(kmod34, empty_config, indexed34, tree.version, c[1], c[2]),
                               cases))
    bad = []
    for (cat, target, remove), k in zip(cases, theirs, strict=True):
        plans = plan_remove(ctx, [target]) if remove else plan_load(ctx, [target])
        o = (show_depends_text(plans), 0 if all(p.ok for p in plans) else 1)
        if k != o:
            bad.append((f"[{cat}] {'-r ' if remove else ''}{target!r}", k[0], k[1], o[0], o[1]))
    summary.append(f"moddeps.modprobe --show-depends vs kmod 34.2 modprobe {tree.package}: "
                   f"{len(cases) - len(bad)}/{len(cases)} identical in {time.monotonic() - t0:.0f} s ("
                   + ", ".join(f"{len(v)} {k}" for k, v in targets.items()) + f", {len(targets['module'])} -r)")
    assert len(targets["module"]) > 500
    assert not bad, f"{len(bad)} of {len(cases)} differ:\n{_explain(bad)}"



def test_config_errors_are_kmod_34s(tree: KernelTree, indexed34: Path, kmod34: KmodCmd, tmp_path: Path) -> None:
    """kmod 34.2 reads the test modprobe.d's ``weakdep`` line (only the ``frobnicate`` one is bad):
    moddeps in kmod 34 mode says what its libkmod says, and keeps the weakdep."""
    conf = tmp_path / "modprobe.d"
    conf.mkdir()
    (conf / "50-moddeps-test.conf").write_text(TEST_CONFIG)
    r = subprocess.run([*kmod34.modprobe, "-C", str(conf), "-d", str(indexed34), "-S", tree.version,
                        "--show-depends", "xfs"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, LC_ALL="C"))
    theirs = config_errors(r.stderr)
    assert any("'frobnicate'" in e for e in theirs) and not any("'weakdep'" in e for e in theirs)
    ctx = open_context(modprobe_dirname(str(indexed34), tree.version), config_paths=[str(conf)],
                       kmod=KmodTarget(34, "conformance"))
    assert [m.removeprefix("ERROR: ") for m in ctx.config.messages] == theirs
    assert [(w.pattern, w.weak) for w in ctx.config.weakdeps if w.rule.file.endswith(".conf")] == [
        ("xfs", ("crc32_generic",))]

