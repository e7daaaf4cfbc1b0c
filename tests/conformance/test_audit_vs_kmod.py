"""The audit against kmod on Debian's cloud kernel (issue: audit "done when").

* With that kernel's Module.symvers the audit reports no unknown-symbol and
  no crc-mismatch (kmod's ``depmod -e -E`` prints no warning either).
* On a copy with a library module deleted, and with a perturbed
  Module.symvers, the audit's (module, symbol) pairs for both kinds equal
  exactly the pairs of kmod's warnings.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conformance import debian
from tests.conformance.debian import Kmod

pytestmark = pytest.mark.conformance

WARN = re.compile(r"^depmod: WARNING: (\S+) (needs unknown symbol|disagrees about version of symbol) (\S+)$")


def kmod_pairs(kmod: Kmod, root: Path, version: str, symvers: Path, empty: Path) -> dict[str, set[tuple[str, str]]]:
    r = subprocess.run([kmod.depmod, "-n", "-e", "-E", str(symvers), "-C", str(empty), "-b", str(root), version],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    out: dict[str, set[tuple[str, str]]] = {"unknown-symbol": set(), "crc-mismatch": set()}
    for line in r.stderr.splitlines():
        m = WARN.match(line)
        if m:
            name = Path(m.group(1)).name.split(".", 1)[0].replace("-", "_")
            kind = "unknown-symbol" if m.group(2).startswith("needs") else "crc-mismatch"
            out[kind].add((name, m.group(3)))
    return out


def audit_pairs(moddeps_cmd: list[str], moddir: Path, symvers: Path) -> tuple[dict[str, set[tuple[str, str]]], dict]:
    r = subprocess.run([*moddeps_cmd, "audit", str(moddir), "--json", "--symvers", str(symvers), "--no-cache",
                        "--fail-on", "never"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    out: dict[str, set[tuple[str, str]]] = {"unknown-symbol": set(), "crc-mismatch": set()}
    for f in doc["findings"]:
        if f["kind"] in out:
            out[f["kind"]].update((f["modules"][0], s) for s in f["symbols"])
    return out, doc


@pytest.fixture(scope="module")
def cloud() -> debian.KernelTree:
    try:
        return debian.kernel_tree("cloud")
    except debian.Unavailable as exc:
        debian.unavailable(str(exc))


@pytest.fixture(scope="module")
def cloud_symvers() -> Path:
    try:
        return debian.module_symvers("cloud")
    except debian.Unavailable as exc:
        debian.unavailable(str(exc))


def test_clean_tree_has_no_unknown_or_crc_findings(
    cloud: debian.KernelTree, cloud_symvers: Path, kmod: Kmod, moddeps_cmd: list[str], empty_config: Path,
    summary: list[str],
) -> None:
    ours, doc = audit_pairs(moddeps_cmd, cloud.moddir, cloud_symvers)
    theirs = kmod_pairs(kmod, cloud.root, cloud.version, cloud_symvers, empty_config)
    assert theirs == {"unknown-symbol": set(), "crc-mismatch": set()}
    assert ours == theirs
    kinds = doc["summary"]["by_kind"]
    assert "cycle" not in kinds and "broken-file" not in kinds and "gpl-only-misuse" not in kinds
    summary.append(f"audit cloud ({doc['summary']['modules']} modules) with Module.symvers: "
                   f"0 unknown-symbol, 0 crc-mismatch, as kmod; other findings {kinds}")


def test_deleted_library_and_perturbed_symvers_match_kmod_pairs(
    cloud: debian.KernelTree, cloud_symvers: Path, kmod: Kmod, moddeps_cmd: list[str], empty_config: Path,
    fresh_copy: Callable[[debian.KernelTree, str], Path], tmp_path: Path, summary: list[str],
) -> None:
    root = fresh_copy(cloud, "audit-deleted")
    moddir = root / "lib/modules" / cloud.version
    # the module that the most others depend on (from a real depmod run on the copy)
    subprocess.run([kmod.depmod, "-C", str(empty_config), "-b", str(root), cloud.version], check=True)
    users: dict[str, int] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        for dep in line.split(":", 1)[1].split():
            users[dep] = users.get(dep, 0) + 1
    victim = max(sorted(users), key=lambda p: users[p])
    (moddir / victim).unlink()
    # perturb some kernel CRCs too, so crc-mismatch has something to find
    lines = cloud_symvers.read_text().splitlines()
    perturbed = tmp_path / "Module.symvers"
    out = []
    for i, line in enumerate(lines):
        f = line.split("\t")
        if i % 97 == 0 and len(f) >= 3 and f[2] == "vmlinux":
            f[0] = f"0x{int(f[0], 16) ^ 0x5A5A5A5A:08x}"
        out.append("\t".join(f))
    perturbed.write_text("\n".join(out) + "\n")
    theirs = kmod_pairs(kmod, root, cloud.version, perturbed, empty_config)
    ours, _doc = audit_pairs(moddeps_cmd, moddir, perturbed)
    assert theirs["unknown-symbol"] and theirs["crc-mismatch"]
    for kind in ("unknown-symbol", "crc-mismatch"):
        missing = sorted(theirs[kind] - ours[kind])[:10]
        extra = sorted(ours[kind] - theirs[kind])[:10]
        assert ours[kind] == theirs[kind], f"{kind}: kmod only {missing}; moddeps only {extra}"
    summary.append(f"audit cloud minus {victim}, perturbed symvers: unknown-symbol {len(ours['unknown-symbol'])} "
                   f"pairs, crc-mismatch {len(ours['crc-mismatch'])} pairs, identical to depmod -e -E")
