"""``moddeps depmod`` against the real kmod 30 ``depmod`` on the Debian trees:
both 6.1 packages (``.ko``) and the 6.12 cloud kernel (``.ko.xz``, see
``debian.XZ_FLAVOUR``).

Each comparison runs the two tools on two fresh copies of the same pristine
tree (hard links, see ``debian.copy_tree``), with an empty ``-C`` directory,
and compares every output file byte for byte, the set of files, the exit
status and stderr (program-name prefix stripped, the copy's path replaced by
``<BASEDIR>``).  Finally modprobe itself resolves modules, aliases and
symbols through the indexes moddeps wrote.
"""

from __future__ import annotations

import collections
import os
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conformance.debian import WITH_XZ, XZ_FLAVOUR, KernelTree, Kmod
from tests.conformance.outputs import KMOD30_OUTPUTS as OUTPUTS
from tests.conformance.outputs import Run, compare_outputs, explain, fail_message, listing, run_depmod

pytestmark = [pytest.mark.conformance, pytest.mark.parametrize("tree", WITH_XZ, indirect=True)]

WORKERS = max(4, 2 * (os.cpu_count() or 1))
SAMPLE = 500  # aliases and symbols looked up with modprobe, per tree
SHOW = 15
#: moddeps reproduces kmod 30 here (its default is the root's kmod, else 34)
KMOD30 = ("--kmod-version", "30")

FreshCopy = Callable[[KernelTree, str], Path]


@dataclass(frozen=True)
class Pair:
    tree: KernelTree
    kmod: Run
    moddeps: Run

    def moddir(self, run: Run) -> Path:
        return run.root / "lib" / "modules" / self.tree.version


def depmod_pair(
    tree: KernelTree, kmod: Kmod, moddeps_cmd: list[str], fresh_copy: FreshCopy, config: Path, label: str,
    *args: str, prepare: Callable[[Path], None] | None = None, moddeps_options: tuple[str, ...] = (),
) -> Pair:
    a = fresh_copy(tree, f"{label}-kmod")
    b = fresh_copy(tree, f"{label}-moddeps")
    if prepare is not None:
        prepare(a)
        prepare(b)
    ra = run_depmod("kmod", [kmod.depmod], a, tree.version, "-C", str(config), *args)
    rb = run_depmod(
        "moddeps", [*moddeps_cmd, "depmod", *KMOD30, *moddeps_options], b, tree.version, "-C", str(config), *args
    )
    return Pair(tree, ra, rb)


def warm_page_cache(tree: KernelTree) -> None:
    """Read every module once, so that the first tool timed does not pay for a cold cache."""
    for path in tree.module_files():
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass


@pytest.fixture(scope="session")
def indexed(tree: KernelTree, kmod: Kmod, moddeps_cmd: list[str], fresh_copy: FreshCopy, empty_config: Path,
            summary: list[str]) -> Pair:
    """Both tools on fresh copies of the tree, plain ``depmod -C EMPTY -b ROOT VERSION``
    (moddeps with ``--no-cache``: every module read; the scan cache has its own test)."""
    warm_page_cache(tree)
    pair = depmod_pair(tree, kmod, moddeps_cmd, fresh_copy, empty_config, "plain", moddeps_options=("--no-cache",))
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(tree.module_kinds().items()))
    summary.append(
        f"depmod {tree.package} ({kinds}): kmod {pair.kmod.seconds:.2f} s, "
        f"moddeps {pair.moddeps.seconds:.2f} s (x{pair.moddeps.seconds / max(pair.kmod.seconds, 1e-3):.1f})"
    )
    return pair


# --------------------------------------------------------------------------
# comparisons
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------


def test_module_compression(tree: KernelTree) -> None:
    """The 6.1 packages ship plain ``.ko`` files, the 6.12 one only ``.ko.xz``."""
    kinds = tree.module_kinds()
    expected = ".ko.xz" if tree.flavour == XZ_FLAVOUR else ".ko"
    assert set(kinds) == {expected}, f"{tree.package}: module files {kinds}, expected only {expected}"
    assert kinds[expected] > 500


def test_depmod_outputs_identical(indexed: Pair, moddeps_cmd: list[str], summary: list[str]) -> None:
    assert indexed.kmod.status == 0, indexed.kmod.describe()
    assert indexed.moddeps.status == 0, indexed.moddeps.describe()
    ours, theirs = indexed.moddir(indexed.moddeps), indexed.moddir(indexed.kmod)
    problems = compare_outputs(ours, theirs, moddeps_cmd)
    compared = sorted(f for f in listing(theirs) if "/" not in f)
    summary.append(
        f"depmod {indexed.tree.package}: {len(compared)} top-level files compared byte for byte "
        f"({sum((theirs / f).stat().st_size for f in compared) / 1e6:.1f} MB), "
        f"{len(listing(theirs))} files in the tree"
    )
    assert not problems, fail_message("depmod outputs differ", indexed.tree, problems)


def test_depmod_messages_identical(indexed: Pair) -> None:
    assert indexed.moddeps.status == indexed.kmod.status, (indexed.kmod.describe(), indexed.moddeps.describe())
    assert indexed.moddeps.messages() == indexed.kmod.messages()
    assert indexed.moddeps.stdout == indexed.kmod.stdout == b""


def test_depmod_scan_cache_identical(
    tree: KernelTree, indexed: Pair, moddeps_cmd: list[str], fresh_copy: FreshCopy, empty_config: Path,
    workdir: Path, summary: list[str],
) -> None:
    """With moddeps' scan cache, cold then warm (same copy, same files), the outputs are still kmod's."""
    root = fresh_copy(tree, "scan-cache")
    db = workdir / f"depmod-cache-{tree.flavour}.sqlite3"
    cmd = [*moddeps_cmd, "depmod", *KMOD30, "--cache", str(db)]
    cold = run_depmod("moddeps", cmd, root, tree.version, "-C", str(empty_config))
    assert cold.status == 0, cold.describe()
    problems = [f"cold cache: {p}" for p in compare_outputs(root / "lib/modules" / tree.version,
                                                             indexed.moddir(indexed.kmod), moddeps_cmd)]
    warm = run_depmod("moddeps", cmd, root, tree.version, "-C", str(empty_config))
    assert warm.status == 0, warm.describe()
    problems += [f"warm cache: {p}" for p in compare_outputs(root / "lib/modules" / tree.version,
                                                              indexed.moddir(indexed.kmod), moddeps_cmd)]
    summary.append(
        f"depmod {tree.package}: moddeps --no-cache {indexed.moddeps.seconds:.2f} s, "
        f"cache cold {cold.seconds:.2f} s, warm {warm.seconds:.2f} s (kmod {indexed.kmod.seconds:.2f} s)"
    )
    assert cold.messages() == warm.messages() == indexed.kmod.messages()
    assert not problems, fail_message("depmod outputs through the scan cache differ", tree, problems)


def test_dry_run_identical(
    tree: KernelTree, kmod: Kmod, moddeps_cmd: list[str], fresh_copy: FreshCopy, empty_config: Path
) -> None:
    pair = depmod_pair(tree, kmod, moddeps_cmd, fresh_copy, empty_config, "dry-run", "-n")
    assert pair.kmod.status == 0, pair.kmod.describe()
    assert pair.moddeps.status == 0, pair.moddeps.describe()
    assert pair.moddeps.messages() == pair.kmod.messages()
    assert len(pair.kmod.stdout) > 100_000
    if pair.moddeps.stdout != pair.kmod.stdout:
        pytest.fail(fail_message("depmod -n stdout differs", tree, [explain(
            "stdout", pair.moddeps.stdout, pair.kmod.stdout, Path(), Path(), moddeps_cmd)]), pytrace=False)
    written = [
        f"{run.tool} wrote {f} despite -n"
        for run in (pair.kmod, pair.moddeps) for f in OUTPUTS if (pair.moddir(run) / f).exists()
    ]
    assert not written


def test_outdir_matches_kmod_in_place(
    tree: KernelTree, indexed: Pair, moddeps_cmd: list[str], fresh_copy: FreshCopy, empty_config: Path,
    workdir: Path,
) -> None:
    """kmod 30 has no -o; ``moddeps depmod -o OUT`` must write under OUT exactly
    what kmod writes in place, and leave the source tree alone."""
    src = fresh_copy(tree, "outdir-src")
    out = workdir / f"{tree.flavour}-outdir"
    r = run_depmod("moddeps", [*moddeps_cmd, "depmod", *KMOD30], src, tree.version, "-C", str(empty_config),
                   "-o", str(out))
    assert r.status == 0, r.describe()
    assert r.messages() == indexed.kmod.messages()
    written_in_src = [f for f in OUTPUTS if (src / "lib/modules" / tree.version / f).exists()]
    assert not written_in_src, f"moddeps depmod -o wrote into the source tree: {written_in_src}"
    got = out / "lib" / "modules" / tree.version
    kmod_dir = indexed.moddir(indexed.kmod)
    expected = {f for f in listing(kmod_dir) if "/" not in f} - set(os.listdir(tree.moddir))
    problems = [f"only moddeps -o wrote {f}" for f in sorted(listing(got) - expected)]
    problems += [f"moddeps -o did not write {f}" for f in sorted(expected - listing(got))]
    for f in sorted(expected & listing(got)):
        x, y = (got / f).read_bytes(), (kmod_dir / f).read_bytes()
        if x != y:
            problems.append(explain(f, x, y, got / f, kmod_dir / f, moddeps_cmd))
    assert not problems, fail_message("depmod -o outputs differ from kmod's in-place outputs", tree, problems)


def test_symvers_no_unknown_symbols(
    tree: KernelTree, kmod: Kmod, moddeps_cmd: list[str], fresh_copy: FreshCopy, empty_config: Path,
    symvers: Path, summary: list[str],
) -> None:
    pair = depmod_pair(tree, kmod, moddeps_cmd, fresh_copy, empty_config, "symvers", "-e", "-E", str(symvers))
    summary.append(
        f"depmod -e -E {tree.package}: kmod {pair.kmod.seconds:.2f} s, moddeps {pair.moddeps.seconds:.2f} s"
    )
    assert pair.kmod.status == 0, pair.kmod.describe()
    assert pair.moddeps.status == 0, pair.moddeps.describe()
    assert pair.kmod.messages() == [], f"kmod itself warns with {symvers}: {pair.kmod.messages()[:10]}"
    assert pair.moddeps.messages() == pair.kmod.messages()
    problems = compare_outputs(pair.moddir(pair.moddeps), pair.moddir(pair.kmod), moddeps_cmd)
    assert not problems, fail_message("depmod -e -E outputs differ", tree, problems)


def most_needed_module(modules_dep: Path) -> str:
    """The relpath with the most direct users in modules.dep (whose lines list
    the transitive closure: a direct dependency is one that no other listed
    dependency already needs)."""
    deps: dict[str, list[str]] = {}
    for line in modules_dep.read_text("utf-8", "surrogateescape").splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    users: collections.Counter[str] = collections.Counter()
    for closure in deps.values():
        indirect = {x for d in closure for x in deps.get(d, ())}
        users.update(d for d in closure if d not in indirect)
    return max(users.items(), key=lambda kv: (kv[1], kv[0]))[0]


def test_missing_library_warnings(
    tree: KernelTree, indexed: Pair, kmod: Kmod, moddeps_cmd: list[str], fresh_copy: FreshCopy,
    empty_config: Path, symvers: Path, summary: list[str],
) -> None:
    victim = most_needed_module(indexed.moddir(indexed.kmod) / "modules.dep")

    def remove(root: Path) -> None:
        (root / "lib" / "modules" / tree.version / victim).unlink()

    pair = depmod_pair(
        tree, kmod, moddeps_cmd, fresh_copy, empty_config, "missing-lib", "-e", "-E", str(symvers), prepare=remove
    )
    assert pair.kmod.status == 0, pair.kmod.describe()
    assert pair.moddeps.status == 0, pair.moddeps.describe()
    km, mm = pair.kmod.messages(), pair.moddeps.messages()
    unknown = [line for line in km if "needs unknown symbol" in line]
    summary.append(
        f"depmod -e -E {tree.package} without {victim}: {len(unknown)} 'needs unknown symbol' warnings "
        f"from kmod, {sum('needs unknown symbol' in line for line in mm)} from moddeps"
    )
    assert unknown, f"kmod gave no warning with {victim} removed: {km[:5]}"
    only_kmod = sorted(set(km) - set(mm))
    only_ours = sorted(set(mm) - set(km))
    assert not (only_kmod or only_ours), fail_message(
        f"warnings with {victim} removed", tree,
        [f"only kmod: {x}" for x in only_kmod] + [f"only moddeps: {x}" for x in only_ours],
    )
    assert mm == km, f"same warnings, different order or multiplicity ({len(mm)} vs {len(km)} lines)"
    problems = compare_outputs(pair.moddir(pair.moddeps), pair.moddir(pair.kmod), moddeps_cmd)
    assert not problems, fail_message(f"depmod outputs with {victim} removed differ", tree, problems)


def test_depmod_reruns_after_a_module_changed(
    tree: KernelTree, kmod: Kmod, fresh_copy: FreshCopy, empty_config: Path, moddeps_cmd: list[str],
    workdir: Path, summary: list[str],
) -> None:
    """moddeps depmod with its cache, then the same module changes on both
    copies, each followed by a rerun of both tools: moddeps' result is
    brought up to date (moddeps.depmod.incremental; nothing is read but the
    changed module) or kept (the change is nothing depmod reads), and every
    output and message is still kmod's."""
    from moddeps.depmod.run import DepmodOptions, run
    from tests.conformance import mutate

    ours, theirs = fresh_copy(tree, "rerun-moddeps"), fresh_copy(tree, "rerun-kmod")
    mdir = ours / "lib/modules" / tree.version
    opts = DepmodOptions(version=tree.version, basedir=str(ours), config=(str(empty_config),), fsync=False,
                         kmod_version=30,
                         cache=str(workdir / f"rerun-{tree.flavour}.sqlite3"))
    first = run(opts)
    assert first.tree is not None
    victim = mutate.pick_victim(mdir)
    original = mutate.module_bytes(victim)
    rebuilt, new_alias = mutate.variants(original)
    library, symbol, renamed = mutate.pick_library(mdir)
    library_bytes = mutate.module_bytes(library)
    # a module of a new name: a copy of the library (its exports twice: the copy, later in the array, owns them)
    suffix = "".join(library.suffixes)
    copy = mdir / "extra" / f"moddeps_copy_of_{library.name.split('.')[0].replace('-', '_')}{suffix}"
    # (a file is always replaced or removed, never changed in place: the copies share the pristine tree's inodes)
    steps = [("reinstalled", victim, original), ("rebuilt", victim, rebuilt), ("new alias", victim, new_alias),
             ("back", victim, original), ("renamed export", library, mutate.rename_export(library_bytes, symbol,
                                                                                         renamed)),
             ("export back", library, library_bytes), ("removed", library, None), ("added back", library,
                                                                                    library_bytes),
             ("new module", copy, library_bytes), ("new module removed", copy, None)]
    problems: list[str] = []
    for what, path, data in steps:
        for root in (ours, theirs):
            target = root / path.relative_to(ours)
            if data is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                mutate.replace_file(target, data)
        result = run(opts)
        k = run_depmod("kmod", [kmod.depmod], theirs, tree.version, "-C", str(empty_config))
        assert k.status == 0, k.describe()
        if result.tree is not None:
            problems.append(f"{what}: computed in full, not brought up to date")
        problems += [f"{what}: {p}" for p in compare_outputs(mdir, theirs / "lib/modules" / tree.version,
                                                             moddeps_cmd)]
        if list(result.messages) != [m.replace("<BASEDIR>", str(ours)) for m in k.messages()]:
            problems.append(f"{what}: messages {list(result.messages)[:3]} vs kmod's {k.messages()[:3]}")
    summary.append(f"depmod {tree.package}: {len(steps)} changes ({', '.join(s[0] for s in steps)}) to "
                   f"{victim.name} and {library.name} ({symbol.decode()}), each rerun compared with kmod")
    assert not problems, fail_message("depmod reruns after a module changed", tree, problems)


# --------------------------------------------------------------------------
# modprobe reads moddeps' indexes
# --------------------------------------------------------------------------


def _sample(items: list[str], n: int) -> list[str]:
    if len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def lookups(moddir: Path) -> dict[str, list[str]]:
    """What to ask modprobe: every module and built-in name, a sample of aliases and symbols."""
    def text(name: str) -> list[str]:
        return (moddir / name).read_text("utf-8", "surrogateescape").splitlines()

    modules = [os.path.basename(line.partition(":")[0]).split(".")[0] for line in text("modules.dep")]
    builtins = [os.path.basename(line).split(".")[0] for line in text("modules.builtin") if line]
    aliases = sorted({line.split(" ", 2)[1] for line in text("modules.alias") if line.startswith("alias ")})
    symbols = sorted({line.split(" ", 2)[1] for line in text("modules.symbols") if line.startswith("alias ")})
    return {
        "modules": modules,
        "builtin": builtins,
        "aliases": _sample(aliases, SAMPLE),
        "symbols": _sample(symbols, SAMPLE),
    }


def show_depends(modprobe: str, config: Path, root: Path, version: str, name: str) -> tuple[int, str]:
    r = subprocess.run(
        [modprobe, "-C", str(config), "-d", str(root), "-S", version, "--show-depends", "--", name],
        capture_output=True, timeout=300,
    )
    out = (r.stdout + b"\n--stderr--\n" + r.stderr).decode("utf-8", "surrogateescape")
    return r.returncode, out.replace(str(root), "<BASEDIR>")


def test_modprobe_reads_moddeps_indexes(
    indexed: Pair, kmod: Kmod, empty_config: Path, summary: list[str]
) -> None:
    """modprobe --show-depends through the indexes each tool wrote gives the same answers."""
    tree = indexed.tree
    assert indexed.kmod.status == 0 and indexed.moddeps.status == 0
    queries = lookups(indexed.moddir(indexed.kmod))
    names = [n for group in queries.values() for n in group]
    t0 = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        theirs = list(pool.map(
            lambda n: show_depends(kmod.modprobe, empty_config, indexed.kmod.root, tree.version, n), names))
        ours = list(pool.map(
            lambda n: show_depends(kmod.modprobe, empty_config, indexed.moddeps.root, tree.version, n), names))
    seconds = time.monotonic() - t0
    problems = [
        f"modprobe --show-depends {n!r}: on moddeps' indexes status {o[0]} {o[1]!r}; on kmod's status {k[0]} {k[1]!r}"
        for n, o, k in zip(names, ours, theirs, strict=True)
        if o != k
    ]
    failed = sum(1 for k in theirs if k[0] != 0)
    summary.append(
        f"modprobe {tree.package}: {len(names)} lookups x 2 trees in {seconds:.1f} s ("
        + ", ".join(f"{len(v)} {k}" for k, v in queries.items())
        + f"); {failed} fail on kmod's own indexes too"
    )
    assert len(queries["modules"]) > 500
    assert not problems, fail_message("modprobe answers differ", tree, problems)
