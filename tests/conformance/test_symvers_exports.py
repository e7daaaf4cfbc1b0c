"""What moddeps reads as each module's exports, against the kernel build's
own record of them: ``Module.symvers`` from the matching linux-headers
package, on Debian 12's 6.1 cloud tree, Debian 13's 6.12 and Debian 14's 7.x.

``Module.symvers`` (written by modpost, ``scripts/mod/modpost.c``
``write_dump``) has one line per export, tab-separated: CRC (``0x%08x``;
``0x00000000`` for every symbol when CONFIG_MODVERSIONS is off, as on
Debian's 7.x), symbol, module (``vmlinux``, or the module's path in the build
tree without ``.ko``), ``EXPORT_SYMBOL`` or ``EXPORT_SYMBOL_GPL``, and the
namespace (empty if none).

moddeps' side is ``moddeps scan --json --no-cache MODDIR``: every export of
every module, except those marked ``"pseudo": true`` (namespace names kmod
counts as exports when a module has no CRCs, see moddeps.model.Export); a
module's name here is its path under ``kernel/`` without ``.ko*``.  The two
must agree on the set of symbols and, for each, on the module, GPL-only,
namespace and CRC (JSON ``null`` where the symvers CRC is 0).

Linux 7.1 replaced ``__ksymtab_gpl`` by a per-symbol flag byte in
``__kflagstab`` ("module: add kflagstab section to vmlinux and modules"), so
on the 7.x tree the GPL-only flag must come from there.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conformance.debian import DEB13, DEB13_AMD64, DEB14, KernelTree

pytestmark = [pytest.mark.conformance,
              pytest.mark.parametrize("tree", ("cloud", DEB13, DEB13_AMD64, DEB14), indirect=True)]

SHOW = 15
KINDS = {"EXPORT_SYMBOL": False, "EXPORT_SYMBOL_GPL": True}


@dataclass(frozen=True)
class Record:
    module: str
    gpl_only: bool
    namespace: str | None
    crc: int | None  # None: no CRC (moddeps' null, symvers' 0x00000000)


def read_symvers(path: Path) -> tuple[dict[str, Record], int, list[str]]:
    """symbol -> record of the module exports; the number of vmlinux exports; problems."""
    out: dict[str, Record] = {}
    vmlinux = 0
    problems = []
    for n, line in enumerate(path.read_text("utf-8", "surrogateescape").splitlines(), 1):
        cols = line.split("\t")
        if len(cols) != 5 or cols[3] not in KINDS:
            problems.append(f"{path}:{n}: not 5 columns CRC SYMBOL MODULE KIND NAMESPACE: {line!r}")
            continue
        crc, symbol, module, kind, namespace = cols
        if module == "vmlinux":
            vmlinux += 1
            continue
        if symbol in out:
            problems.append(f"{path}:{n}: {symbol} listed twice ({out[symbol].module}, {module})")
        value = int(crc, 16)
        out[symbol] = Record(module, KINDS[kind], namespace or None, value or None)
    return out, vmlinux, problems


@dataclass(frozen=True)
class Scan:
    exports: dict[str, Record]
    pseudo: int
    modules: int
    with_exports: int
    problems: list[str]
    seconds: float


def scan_exports(moddeps_cmd: list[str], tree: KernelTree) -> Scan:
    t0 = time.monotonic()
    r = subprocess.run([*moddeps_cmd, "scan", "--json", "--no-cache", str(tree.moddir)], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=1800)
    seconds = time.monotonic() - t0
    assert r.returncode == 0, f"moddeps scan failed ({r.returncode}): {r.stderr.decode(errors='replace')[-2000:]}"
    doc = json.loads(r.stdout)
    out: dict[str, Record] = {}
    problems = []
    pseudo = with_exports = 0
    for m in doc["modules"]:
        if m.get("error"):
            problems.append(f"{m['path']}: moddeps could not read it: {m['error']}")
        path = m["path"]
        if not path.startswith("kernel/"):
            problems.append(f"{path}: not under kernel/")
            continue
        module = path.removeprefix("kernel/").rpartition(".ko")[0]
        real = [e for e in m["exports"] if not e.get("pseudo")]
        pseudo += len(m["exports"]) - len(real)
        with_exports += bool(real)
        for e in real:
            rec = Record(module, e["gpl_only"], e["namespace"], None if e["crc"] is None else int(e["crc"], 16))
            if e["name"] in out:
                problems.append(f"{e['name']}: exported by {out[e['name']].module} and {module}")
            out[e["name"]] = rec
    return Scan(out, pseudo, len(doc["modules"]), with_exports, problems, seconds)


def test_exports_match_module_symvers(tree: KernelTree, symvers: Path, moddeps_cmd: list[str],
                                      summary: list[str]) -> None:
    theirs, vmlinux, problems = read_symvers(symvers)
    ours = scan_exports(moddeps_cmd, tree)
    problems += ours.problems
    kinds: Counter[str] = Counter()

    def bad(kind: str, text: str) -> None:
        kinds[kind] += 1
        problems.append(text)

    for sym in sorted(ours.exports.keys() - theirs.keys()):
        bad("only-moddeps", f"{sym}: moddeps reads it as an export of {ours.exports[sym].module}; "
                            "Module.symvers does not list it")
    for sym in sorted(theirs.keys() - ours.exports.keys()):
        bad("only-symvers", f"{sym}: Module.symvers says {theirs[sym].module} exports it; moddeps does not")
    for sym in sorted(theirs.keys() & ours.exports.keys()):
        o, t = ours.exports[sym], theirs[sym]
        if o.module != t.module:
            bad("module", f"{sym}: module {o.module} (moddeps) vs {t.module} (Module.symvers)")
        if o.gpl_only != t.gpl_only:
            bad("gpl", f"{sym} ({t.module}): gpl_only {o.gpl_only} (moddeps) vs {t.gpl_only} (Module.symvers)")
        if o.namespace != t.namespace:
            bad("namespace", f"{sym} ({t.module}): namespace {o.namespace!r} (moddeps) vs {t.namespace!r}")
        if o.crc != t.crc:
            def show(c: int | None) -> str:
                return "null" if c is None else f"0x{c:08x}"
            bad("crc", f"{sym} ({t.module}): crc {show(o.crc)} (moddeps) vs {show(t.crc)} (Module.symvers)")
    with_crc = sum(1 for r in theirs.values() if r.crc is not None)
    summary.append(
        f"exports vs Module.symvers {tree.package}: {len(theirs)} module exports in Module.symvers "
        f"({sum(r.gpl_only for r in theirs.values())} GPL-only, "
        f"{sum(r.namespace is not None for r in theirs.values())} in a namespace, {with_crc} with a CRC; "
        f"{vmlinux} vmlinux exports not compared), moddeps {len(ours.exports)} from {ours.with_exports} of "
        f"{ours.modules} modules ({ours.pseudo} pseudo skipped) in {ours.seconds:.1f} s; "
        f"mismatches: {dict(kinds) or 'none'}"
    )
    assert len(theirs) > 1000
    more = f"\n  ... and {len(problems) - SHOW} more" if len(problems) > SHOW else ""
    assert not problems, (f"{tree.package}: {len(problems)} difference(s) from {symvers} "
                          f"{dict(kinds)}:\n  " + "\n  ".join(problems[:SHOW]) + more)
