"""``moddeps plan --show-depends`` against kmod 30's ``modprobe --show-depends``.

On Debian's cloud kernel package, indexed by the real depmod:

* every module of the tree, by name and (where it has a ``_``) with dashes;
* every name of ``modules.builtin``;
* every alias of ``modules.alias`` as written (the pattern itself used as
  a query) and turned into concrete device strings, as udev passes them;
* every ``symbol:NAME`` of ``modules.symbols``, and unknown targets;
* ``-a`` runs of several targets; ``-r`` for every module;
* all of it again with a modprobe.d that uses every directive (options,
  softdep, blacklist, install, remove, alias, a bad line).

modprobe runs with ``-C`` (an empty directory, or the test config) so the
host's modprobe.d cannot interfere.  It still reads the running kernel's
``/proc/cmdline`` (module options and ``modprobe.blacklist=``), so moddeps
is given the same text.  Compared: stdout byte for byte, and the exit status.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from moddeps.globmatch import fnmatch
from moddeps.kmodversion import KmodTarget
from moddeps.model import modname_from_path
from moddeps.modprobe.plan import PlanContext, modprobe_dirname, open_context, plan_load, plan_remove
from moddeps.report.plan import show_depends_text
from tests.conformance import debian
from tests.conformance.conftest import unavailable
from tests.conformance.debian import KernelTree, Kmod

pytestmark = pytest.mark.conformance

WORKERS = max(4, 2 * (os.cpu_count() or 1))
SHOW = 15

TEST_CONFIG = """\
# every directive kmod 30 knows, and a few of its corner cases
options xfs allocsize=64k  largeio=1
options  xfs	wsync
options libcrc32c dummy=1
options my_alias opt_for_alias=1
options crc32c alias_opt=yes
softdep xfs pre: dm-mod post: raid1
softdep nfsd  pre: zlib_deflate
softdep btrfs pre:   raid456 post:loop xor
softdep lockd pre: nonexistent_mod grace post: sunrpc
softdep virtio_n* post: virtio_rng
blacklist virtio_rng
blacklist e1000
blacklist crc32c_intel
install dummy /bin/true $CMDLINE_OPTS
install bonding /sbin/modprobe --ignore-install bonding $CMDLINE_OPTS && /bin/echo bonded
install configured_only /bin/echo only in config
install tun* /bin/echo tun-like
remove dummy /bin/echo bye $CMDLINE_OPTS
remove removed_only /bin/false
alias my-alias xfs
alias brack-[a-c]-et xfs
alias eth* e1000
alias net-pf-* af_packet
alias pci:v000010ECd00008139* 8139too
weakdep xfs crc32_generic
frobnicate this line is bad
"""


@dataclass(frozen=True)
class Case:
    category: str
    targets: tuple[str, ...]
    remove: bool = False
    all_mode: bool = True  # -a (several targets) or a single target without -a


@dataclass
class Result:
    case: Case
    kmod_out: str
    kmod_rc: int
    ours_out: str
    ours_rc: int

    @property
    def same(self) -> bool:
        return self.kmod_out == self.ours_out and self.kmod_rc == self.ours_rc


# --------------------------------------------------------------------------
# the tree
# --------------------------------------------------------------------------


#: The packages to compare on: the cloud kernel by default (the issue's
#: conformance target); MODDEPS_PLAN_FLAVOURS=cloud,generic adds the big one.
FLAVOURS = tuple(f for f in os.environ.get("MODDEPS_PLAN_FLAVOURS", "cloud").split(",") if f)


@pytest.fixture(scope="module", params=FLAVOURS)
def cloud(request: pytest.FixtureRequest) -> KernelTree:
    try:
        return debian.kernel_tree(request.param)
    except debian.Unavailable as exc:
        unavailable(str(exc))


@pytest.fixture(scope="module")
def indexed(cloud: KernelTree, kmod: Kmod, fresh_copy: Callable[[KernelTree, str], Path],
            empty_config: Path) -> Path:
    """A copy of the tree indexed by the real depmod; returns its root (-d)."""
    root = fresh_copy(cloud, "plan")
    r = subprocess.run([kmod.depmod, "-b", str(root), "-C", str(empty_config), cloud.version],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"depmod failed: {r.stderr[-2000:]}"
    return root


@pytest.fixture(scope="module")
def test_config(workdir: Path) -> Path:
    d = workdir / "plan-modprobe.d"
    d.mkdir(exist_ok=True)
    (d / "50-moddeps-test.conf").write_text(TEST_CONFIG)
    # sorts before modules.softdep, so this softdep beats the module's own
    (d / "0-early.conf").write_text("softdep cifs pre: md4\n")
    return d


def _kernel_cmdline() -> bytes | None:
    try:
        with open("/proc/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


# --------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------


def concrete(pattern: str, star: str) -> str | None:
    """A string ``pattern`` matches (glibc fnmatch), ``star`` standing for each ``*``."""
    out = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append(star)
        elif c == "?":
            out.append("0")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(pattern[i])
        elif c == "[":
            j = i + 1
            negate = j < n and pattern[j] in "!^"
            if negate:
                j += 1
            close = pattern.find("]", j + 1)
            if close < 0:
                out.append("[")
            else:
                body = pattern[j:close]
                members = set()
                k = 0
                while k < len(body):
                    if k + 2 < len(body) and body[k + 1] == "-":
                        members.update(chr(x) for x in range(ord(body[k]), ord(body[k + 2]) + 1))
                        k += 3
                    else:
                        members.add(body[k])
                        k += 1
                if negate:
                    pick = next((ch for ch in "0aA_Z9" if ch not in members), None)
                else:
                    pick = min(members) if members else None
                if pick is None:
                    return None
                out.append(pick)
                i = close
        else:
            out.append(c)
        i += 1
    s = "".join(out)
    return s if fnmatch(pattern.encode(), s.encode()) else None


def tree_targets(moddir: Path) -> dict[str, list[str]]:
    dep = (moddir / "modules.dep").read_text().splitlines()
    names = [modname_from_path(line.split(":", 1)[0]) for line in dep if line]
    aliases = []
    for line in (moddir / "modules.alias").read_text().splitlines():
        if line.startswith("alias "):
            aliases.append(line[len("alias ") : line.rindex(" ")])
    symbols = [line.split(" ")[1] for line in (moddir / "modules.symbols").read_text().splitlines()
               if line.startswith("alias symbol:")]
    builtin = [modname_from_path(line) for line in (moddir / "modules.builtin").read_text().splitlines() if line]
    modalias: list[str] = []
    seen: set[str] = set()
    for a in aliases:
        for star in ("", "00", "v1"):
            c = concrete(a, star)
            if c is not None and c not in seen:
                seen.add(c)
                modalias.append(c)
    return {
        "module": names,
        "module-dashed": [n.replace("_", "-") for n in names if "_" in n],
        "builtin": builtin,
        "alias-pattern": aliases,
        "modalias": modalias,
        "symbol": symbols,
        "unknown": ["no_such_module", "no-such-module", "symbol:no_such_symbol", "pci:v0000FFFFd0000FFFF",
                    "bad[bracket", "bad]bracket", "usb:v*", "", "platform:", "fs-no_such_fs"],
    }


def cases(targets: dict[str, list[str]], *, with_remove: bool = True) -> list[Case]:
    out = [Case(cat, (t,), all_mode=False) for cat, ts in targets.items() for t in ts]
    mixed = [t for cat in ("module", "modalias", "symbol", "builtin", "unknown") for t in targets[cat][::7]]
    for i in range(0, len(mixed), 6):
        out.append(Case("-a", tuple(mixed[i : i + 6])))
    if with_remove:
        out += [Case("remove", (t,), remove=True, all_mode=False) for t in targets["module"]]
        out += [Case("remove", (t,), remove=True, all_mode=False) for t in targets["modalias"][::5]]
        out += [Case("remove", (t,), remove=True, all_mode=False) for t in targets["unknown"]]
    return out


# --------------------------------------------------------------------------
# running both sides
# --------------------------------------------------------------------------


def run_modprobe(kmod: Kmod, config: Path, root: Path, version: str, case: Case) -> tuple[str, int]:
    argv = [kmod.modprobe, "-C", str(config), "-d", str(root), "-S", version, "--show-depends"]
    if case.remove:
        argv.append("-r")
    if case.all_mode:
        argv.append("-a")
    r = subprocess.run([*argv, "--", *case.targets], capture_output=True, timeout=120,
                       env=dict(os.environ, LC_ALL="C"))
    return r.stdout.decode("utf-8", "surrogateescape"), r.returncode


def run_ours(ctx: PlanContext, case: Case) -> tuple[str, int]:
    plans = plan_remove(ctx, case.targets) if case.remove else plan_load(ctx, case.targets)
    return show_depends_text(plans), 0 if all(p.ok for p in plans) else 1


def compare(kmod: Kmod, ctx: PlanContext, config: Path, root: Path, version: str,
            all_cases: list[Case]) -> Iterator[Result]:
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [pool.submit(run_modprobe, kmod, config, root, version, c) for c in all_cases]
        for case, fut in zip(all_cases, futures):
            kout, krc = fut.result()
            oout, orc = run_ours(ctx, case)
            yield Result(case, kout, krc, oout, orc)


def report(results: list[Result], label: str, summary: list[str]) -> list[Result]:
    total: Counter[str] = Counter()
    same: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    for r in results:
        total[r.case.category] += 1
        lines[r.case.category] += r.kmod_out.count("\n")
        if r.same:
            same[r.case.category] += 1
    parts = [f"{cat} {same[cat]}/{total[cat]}" for cat in total]
    n_same = sum(same.values())
    summary.append(f"plan --show-depends vs modprobe ({label}): {n_same}/{len(results)} identical "
                   f"({sum(lines.values())} modprobe lines): " + ", ".join(parts))
    return [r for r in results if not r.same]


def _explain(bad: list[Result]) -> str:
    out = []
    for r in bad[:SHOW]:
        flag = "-r " if r.case.remove else ""
        out.append(f"[{r.case.category}] modprobe {flag}{' '.join(map(repr, r.case.targets))}\n"
                   f"  modprobe (status {r.kmod_rc}): {r.kmod_out!r}\n"
                   f"  moddeps  (status {r.ours_rc}): {r.ours_out!r}")
    if len(bad) > SHOW:
        out.append(f"... and {len(bad) - SHOW} more")
    return "\n".join(out)


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------


def test_show_depends_identical_empty_config(cloud: KernelTree, indexed: Path, kmod: Kmod, empty_config: Path,
                                             summary: list[str]) -> None:
    moddir = indexed / "lib" / "modules" / cloud.version
    t0 = time.monotonic()
    ctx = open_context(modprobe_dirname(str(indexed), cloud.version), config_paths=[str(empty_config)],
                       kernel_cmdline=_kernel_cmdline())
    assert ctx.source.kind == "index", ctx.source
    assert ctx.source.reader == "mmap"
    targets = tree_targets(moddir)
    results = list(compare(kmod, ctx, empty_config, indexed, cloud.version, cases(targets)))
    bad = report(results, f"{cloud.package}, empty -C, {time.monotonic() - t0:.0f}s", summary)
    assert not bad, f"{len(bad)} of {len(results)} differ:\n{_explain(bad)}"
    # the categories really ran
    assert sum(1 for r in results if r.case.category == "module") == len(targets["module"]) > 500


def test_show_depends_identical_with_config(cloud: KernelTree, indexed: Path, kmod: Kmod, test_config: Path,
                                            summary: list[str]) -> None:
    moddir = indexed / "lib" / "modules" / cloud.version
    t0 = time.monotonic()
    ctx = open_context(modprobe_dirname(str(indexed), cloud.version), config_paths=[str(test_config)],
                       kernel_cmdline=_kernel_cmdline())
    targets = tree_targets(moddir)
    targets["modalias"] = targets["modalias"][::3]
    targets["alias-pattern"] = targets["alias-pattern"][::3]
    targets["symbol"] = targets["symbol"][::5]
    targets["config"] = [
        "my-alias", "my_alias", "brack-b-et", "brack_d_et", "eth0", "net-pf-17",
        "pci:v000010ECd00008139sv0sd0bc0sc0i0", "dummy", "bonding", "configured_only", "removed_only", "tun",
        "tunnel4", "crc32c", "virtio_net", "virtio_rng", "e1000", "btrfs", "lockd", "nfsd", "cifs", "xfs"]
    all_cases = cases(targets)
    all_cases += [Case("config-remove", (t,), remove=True, all_mode=False) for t in targets["config"]]
    results = list(compare(kmod, ctx, test_config, indexed, cloud.version, all_cases))
    bad = report(results, f"{cloud.package}, test modprobe.d, {time.monotonic() - t0:.0f}s", summary)
    assert not bad, f"{len(bad)} of {len(results)} differ:\n{_explain(bad)}"
    # the config really changed something modprobe printed
    changed = [r for r in results if r.case.category == "config" and re.search(r"^(install|insmod .* \S+=)",
                                                                                r.kmod_out, re.M)]
    assert changed


def test_remove_softdep_loop(cloud: KernelTree, indexed: Path, kmod: Kmod, workdir: Path) -> None:
    """A softdep that matches its own module: ``modprobe -r`` recurses until it
    crashes; moddeps stops and says why (the one deliberate difference)."""
    conf = workdir / "plan-loop.d"
    conf.mkdir(exist_ok=True)
    (conf / "loop.conf").write_text("softdep virtio_* post: virtio_rng\n")
    r = subprocess.run([kmod.modprobe, "-C", str(conf), "-d", str(indexed), "-S", cloud.version, "--show-depends",
                        "-r", "virtio_net"], capture_output=True, timeout=120)
    assert r.returncode != 0 and r.stdout == b""
    ctx = open_context(modprobe_dirname(str(indexed), cloud.version), config_paths=[str(conf)])
    (plan,) = plan_remove(ctx, ["virtio_net"])
    assert not plan.ok and plan.error is not None and "softdep loop" in plan.error
    assert show_depends_text([plan]) == ""


def test_plan_from_scan_matches_index(cloud: KernelTree, indexed: Path, kmod: Kmod, empty_config: Path,
                                      summary: list[str]) -> None:
    """Planning from a scan (no indexes) gives modprobe's output on the indexed copy."""
    moddir = indexed / "lib" / "modules" / cloud.version
    t0 = time.monotonic()
    dirname = modprobe_dirname(str(indexed), cloud.version)
    ctx = open_context(dirname, config_paths=[str(empty_config)], kernel_cmdline=_kernel_cmdline(), source="scan")
    assert ctx.source.kind == "scan"
    targets = tree_targets(moddir)
    small = {k: v[::4] for k, v in targets.items()}
    results = list(compare(kmod, ctx, empty_config, indexed, cloud.version, cases(small, with_remove=False)))
    bad = report(results, f"{cloud.package}, from a scan, {time.monotonic() - t0:.0f}s", summary)
    assert not bad, f"{len(bad)} of {len(results)} differ:\n{_explain(bad)}"


def config_errors(stderr: str) -> list[str]:
    """libkmod's complaints about modprobe.d in ``stderr``, without its prefix (kmod 30: ``libkmod:
    ERROR ../libkmod/libkmod-config.c:712 kmod_config_parse: ``; kmod 34: ``libkmod: ERROR:
    kmod_config_parse: ``), as moddeps says them after its ``ERROR: ``."""
    return [line.split("kmod_config_parse: ", 1)[1] for line in stderr.splitlines() if "kmod_config_parse: " in line]


def test_config_errors_are_kmod_30s(cloud: KernelTree, indexed: Path, kmod: Kmod, test_config: Path) -> None:
    """What kmod 30's libkmod says of the test modprobe.d -- its ``weakdep`` line a bad line, as the
    ``frobnicate`` one -- moddeps says in kmod 30 mode, in the same order."""
    r = subprocess.run([kmod.modprobe, "-C", str(test_config), "-d", str(indexed), "-S", cloud.version,
                        "--show-depends", "xfs"], capture_output=True, text=True, timeout=120)
    theirs = config_errors(r.stderr)
    assert any("starting with 'weakdep'" in e for e in theirs) and any("'frobnicate'" in e for e in theirs)
    ctx = open_context(modprobe_dirname(str(indexed), cloud.version), config_paths=[str(test_config)],
                       kmod=KmodTarget(30, "conformance"))
    assert [m.removeprefix("ERROR: ") for m in ctx.config.messages] == theirs
    assert ctx.config.weakdeps == ()

