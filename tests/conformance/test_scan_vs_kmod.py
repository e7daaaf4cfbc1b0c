"""``moddeps scan --json`` against kmod's own readers, for every module of
the Debian packages: both 6.1 ones (``.ko``) and the 6.12 cloud kernel
(``.ko.xz``, which libkmod and moddeps both decompress).

kmod's side (kmod 30, libkmod):

* ``modprobe --show-exports FILE``: ``kmod_module_get_symbols``, one
  ``0x%08x\\tNAME`` line per export in kmod's order (the order depmod uses);
  a module without exports fails with "could not get symbols of FILE: No such
  file or directory".  A missing CRC prints as 0.
* ``modprobe --show-modversions FILE``: ``kmod_module_get_versions``, the
  ``__versions`` records in section order, same line format.  moddeps lists
  these records as the imports that carry a CRC (in symtab order, with the
  records matching no undefined symbol appended, ``versions_only``), so the
  comparison is as multisets, plus the order of the ``versions_only`` ones.
* ``modinfo -0 FILE...``: ``kmod_module_get_info``, NUL-separated: a
  ``filename:`` record, then ``KEY=VALUE`` for every ``.modinfo`` string in
  file order except ``parm``/``parmtype``, then the signature fields libkmod
  appends for signed modules (``sig_id signer sig_key sig_hashalgo
  signature``, excluded here), then the ``parm``/``parmtype`` pairs merged by
  tools/modinfo.c (``process_parm``), which is reproduced below from the
  moddeps fields.  Compared as bytes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.debian import WITH_XZ, KernelTree, Kmod, first_difference

pytestmark = [pytest.mark.conformance, pytest.mark.parametrize("tree", WITH_XZ, indirect=True)]

SIG_KEYS = [b"sig_id", b"signer", b"sig_key", b"sig_hashalgo", b"signature"]
FILENAME_TAG = b"filename:".ljust(16)
PARM_TAG = b"parm:".ljust(16)
WORKERS = max(4, 2 * (os.cpu_count() or 1))
SHOW = 15  # mismatches shown in a failure message


def b(s: str) -> bytes:
    """The bytes behind a moddeps JSON string (non-UTF-8 kept as \\udcXX)."""
    return s.encode("utf-8", "surrogateescape")


@dataclass
class Scan:
    modules: list[dict[str, Any]]
    seconds: float
    tree: KernelTree
    raw: bytes

    def full_path(self, m: dict[str, Any]) -> str:
        p = m["path"]
        return p if p.startswith("/") else f"{self.tree.moddir}/{p}"


@dataclass
class KmodModule:
    exports: list[tuple[bytes, int]] | None = None
    versions: list[tuple[bytes, int]] | None = None
    modinfo: list[bytes] | None = None  # records after filename:
    errors: list[str] = field(default_factory=list)


@dataclass
class KmodScan:
    by_path: dict[str, KmodModule]
    seconds: float


# --------------------------------------------------------------------------
# both sides
# --------------------------------------------------------------------------


def run_scan(moddeps_cmd: list[str], tree: KernelTree, *options: str) -> tuple[bytes, float]:
    t0 = time.monotonic()
    argv = [*moddeps_cmd, "scan", "--json", *options, str(tree.moddir)]
    r = subprocess.run(argv, capture_output=True, timeout=1800)
    seconds = time.monotonic() - t0
    assert r.returncode == 0, f"{' '.join(argv)}: status {r.returncode}\n{r.stderr.decode()[-3000:]}"
    return r.stdout, seconds


@pytest.fixture(scope="session")
def scan(tree: KernelTree, moddeps_cmd: list[str]) -> Scan:
    """``moddeps scan --json --no-cache``: every module read by the reader itself."""
    raw, seconds = run_scan(moddeps_cmd, tree, "--no-cache")
    doc = json.loads(raw)
    assert doc["schema"] == 1
    return Scan(doc["modules"], seconds, tree, raw)


Symbols = list[tuple[bytes, int]]


def _symbols(modprobe: str, config: Path, option: str, what: str, path: str) -> tuple[Symbols | None, str]:
    r = subprocess.run([modprobe, "-C", str(config), option, path], capture_output=True, timeout=300)
    if r.returncode != 0:
        if f"could not get {what} of {path}: No such file or directory".encode() in r.stderr:
            return [], ""  # libkmod: -ENOENT for an empty list
        return None, f"{option} {path}: status {r.returncode}: {r.stderr.decode(errors='replace').strip()}"
    out = []
    for line in r.stdout.split(b"\n"):
        if not line:
            continue
        m = re.fullmatch(rb"0x([0-9a-f]{8,16})\t(.*)", line, re.S)
        if not m:
            return None, f"{option} {path}: unexpected line {line!r}"
        out.append((m.group(2), int(m.group(1), 16)))
    return out, ""


def _modinfo_batch(modinfo: str, paths: list[str]) -> tuple[dict[str, list[bytes]], str]:
    r = subprocess.run([modinfo, "-0", *paths], capture_output=True, timeout=600)
    records = r.stdout.split(b"\0")
    if records and records[-1] == b"":
        records.pop()
    got: dict[str, list[bytes]] = {}
    current: list[bytes] | None = None
    for rec in records:
        if rec.startswith(FILENAME_TAG):
            current = got.setdefault(os.fsdecode(rec[len(FILENAME_TAG):]), [])
        elif current is None:
            return {}, f"modinfo -0: output starts with {rec[:80]!r}"
        else:
            current.append(rec)
    err = ""
    if r.returncode != 0 or r.stderr:
        err = f"modinfo -0 (batch of {len(paths)}): status {r.returncode}: {r.stderr.decode(errors='replace')[:2000]}"
    return got, err


@pytest.fixture(scope="session")
def kmod_scan(tree: KernelTree, kmod: Kmod, empty_config: Path) -> KmodScan:
    paths = [str(p) for p in tree.module_files()]
    by_path = {p: KmodModule() for p in paths}
    t0 = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        exp = pool.map(lambda p: _symbols(kmod.modprobe, empty_config, "--show-exports", "symbols", p), paths)
        ver = pool.map(lambda p: _symbols(kmod.modprobe, empty_config, "--show-modversions", "modversions", p), paths)
        batches = [paths[i : i + 200] for i in range(0, len(paths), 200)]
        info = pool.map(lambda chunk: _modinfo_batch(kmod.modinfo, chunk), batches)
        for p, (syms, err) in zip(paths, exp, strict=True):
            by_path[p].exports = syms
            if err:
                by_path[p].errors.append(err)
        for p, (syms, err) in zip(paths, ver, strict=True):
            by_path[p].versions = syms
            if err:
                by_path[p].errors.append(err)
        for chunk, (got, err) in zip(batches, info, strict=True):
            for p in chunk:
                by_path[p].modinfo = got.get(p)
                if err:
                    by_path[p].errors.append(err)
    return KmodScan(by_path, time.monotonic() - t0)


# --------------------------------------------------------------------------
# reproductions of kmod's printing
# --------------------------------------------------------------------------


def kmod_parm_lines(modinfo: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    """tools/modinfo.c (kmod 30) process_parm/add_param and the ``parm:``
    lines of modinfo_do, from the raw (key, value) pairs."""
    params: list[dict[str, bytes | None]] = []  # newest first, like the C list
    for key, value in modinfo:
        if key not in (b"parm", b"parmtype"):
            continue
        colon = value.find(b":")
        if colon < 0:
            continue  # "Found invalid ...: missing ':'" on stderr, nothing printed
        name, rest = value[:colon], value[colon + 1 :]
        it = next((p for p in params if p["name"] == name), None)
        if it is None:
            it = {"name": name, "param": None, "type": None}
            params.insert(0, it)
        if key == b"parm":
            it["param"] = rest
        else:
            it["type"] = rest
    out = []
    for p in params:
        name, param, typ = p["name"] or b"", p["param"], p["type"]
        if param is None:
            out.append(PARM_TAG + name + b":" + (typ or b""))
        elif typ is not None:
            out.append(PARM_TAG + name + b":" + param + b" (" + typ + b")")
        else:
            out.append(PARM_TAG + name + b":" + param)
    return out


def split_kmod_modinfo(records: list[bytes]) -> tuple[list[tuple[bytes, bytes]], list[bytes], bool]:
    """(KEY=VALUE pairs without the appended signature fields, parm lines, signed)."""
    parms = [r for r in records if r.startswith(PARM_TAG)]
    pairs = [r.partition(b"=") for r in records if not r.startswith(PARM_TAG)]
    kv = [(k, v) for k, _, v in pairs]
    signed = [k for k, _ in kv[-len(SIG_KEYS) :]] == SIG_KEYS
    if signed:
        kv = kv[: -len(SIG_KEYS)]
    return kv, parms, signed


def _is_subsequence(small: list[Any], big: list[Any]) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def _fail(what: str, tree: KernelTree, compared: str, mismatches: list[str]) -> str:
    head = "\n  ".join(mismatches[:SHOW])
    more = f"\n  ... and {len(mismatches) - SHOW} more" if len(mismatches) > SHOW else ""
    return f"{tree.package}: {what}: {len(mismatches)} mismatches ({compared})\n  {head}{more}"


def _crc(c: int | None) -> str:
    return "none" if c is None else f"0x{c:08x}"


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------


def test_scan_cache_round_trip(
    tree: KernelTree, scan: Scan, moddeps_cmd: list[str], workdir: Path, summary: list[str]
) -> None:
    """Through moddeps' scan cache, cold then warm, the document is the same bytes as without it."""
    db = workdir / f"scan-round-trip-{tree.flavour}.sqlite3"
    cold, t_cold = run_scan(moddeps_cmd, tree, "--cache", str(db))
    warm, t_warm = run_scan(moddeps_cmd, tree, "--cache", str(db))
    summary.append(
        f"scan {tree.package}: moddeps scan --json: --no-cache {scan.seconds:.2f} s, "
        f"cache cold {t_cold:.2f} s, warm {t_warm:.2f} s"
    )
    for label, raw in (("cold cache", cold), ("warm cache", warm)):
        if raw != scan.raw:
            a = scan.raw.decode(errors="replace").splitlines()
            c = raw.decode(errors="replace").splitlines()
            i = first_difference(a, c)
            pytest.fail(
                f"{tree.package}: scan --json with a {label} differs from --no-cache at line {i + 1}: "
                f"{a[i] if i < len(a) else None!r} vs {c[i] if i < len(c) else None!r}",
                pytrace=False,
            )


def test_scan_finds_every_module(tree: KernelTree, scan: Scan, kmod_scan: KmodScan, summary: list[str]) -> None:
    ours = [scan.full_path(m) for m in scan.modules]
    on_disk = set(kmod_scan.by_path)
    problems = [f"{m['path']}: moddeps error: {m['error']}" for m in scan.modules if m["error"] is not None]
    problems += [f"read by moddeps, not found on disk: {p}" for p in sorted(set(ours) - on_disk)]
    problems += [f"on disk, not read by moddeps: {p}" for p in sorted(on_disk - set(ours))]
    problems += [f"listed twice: {p}" for p, n in Counter(ours).items() if n > 1]
    harness = [f"{p}: {e}" for p, k in kmod_scan.by_path.items() for e in k.errors]
    summary.append(
        f"scan {tree.package}: {len(ours)} modules; moddeps scan --json {scan.seconds:.2f} s; "
        f"kmod (modprobe --show-exports/--show-modversions per module, modinfo -0 batched, "
        f"{WORKERS} threads) {kmod_scan.seconds:.2f} s"
    )
    assert not problems, _fail("module files", tree, f"{len(on_disk)} files on disk", problems)
    assert not harness, _fail("kmod tools failed", tree, f"{len(on_disk)} files", harness)
    assert len(ours) > 500


def test_exports_match_kmod(tree: KernelTree, scan: Scan, kmod_scan: KmodScan, summary: list[str]) -> None:
    mismatches: list[str] = []
    n_mod = n_exp = n_pseudo = n_nocrc = 0
    for m in scan.modules:
        k = kmod_scan.by_path.get(scan.full_path(m))
        if k is None or k.exports is None:
            continue
        n_mod += 1
        ours = [(b(e["name"]), int(e["crc"], 16) if e["crc"] is not None else 0) for e in m["exports"]]
        n_exp += len(ours)
        n_pseudo += sum(1 for e in m["exports"] if e.get("pseudo"))
        n_nocrc += sum(1 for e in m["exports"] if e["crc"] is None)
        if ours == k.exports:
            continue
        if sorted(ours) == sorted(k.exports):
            first = first_difference(ours, k.exports)
            mismatches.append(
                f"{m['path']}: same exports, different order from #{first}: "
                f"moddeps {ours[first][0]!r}, kmod {k.exports[first][0]!r}"
            )
            continue
        ok, kk = dict(ours), dict(k.exports)
        only_ours = sorted(set(ok) - set(kk))
        only_kmod = sorted(set(kk) - set(ok))
        crcs = [f"{n!r} moddeps {_crc(ok[n])} kmod {_crc(kk[n])}" for n in sorted(set(ok) & set(kk)) if ok[n] != kk[n]]
        mismatches.append(
            f"{m['path']}: exports differ ({len(ours)} vs {len(k.exports)}): only moddeps {only_ours[:5]}, "
            f"only kmod {only_kmod[:5]}, CRCs {crcs[:5]}"
        )
    summary.append(
        f"scan {tree.package}: exports: {n_mod} modules, {n_exp} exports compared "
        f"(names, CRCs, order; {n_pseudo} namespace pseudo-exports, {n_nocrc} without CRC)"
    )
    assert n_mod == len(kmod_scan.by_path), "some modules were not compared (see test_scan_finds_every_module)"
    assert not mismatches, _fail(
        "exports (modprobe --show-exports)", tree, f"{n_mod} modules, {n_exp} exports", mismatches
    )


def test_modversions_match_kmod(tree: KernelTree, scan: Scan, kmod_scan: KmodScan, summary: list[str]) -> None:
    mismatches: list[str] = []
    n_mod = n_ver = n_vo = 0
    for m in scan.modules:
        k = kmod_scan.by_path.get(scan.full_path(m))
        if k is None or k.versions is None:
            continue
        n_mod += 1
        ours = [(b(i["name"]), int(i["crc"], 16)) for i in m["imports"] if i["crc"] is not None]
        versions_only = [(b(i["name"]), int(i["crc"], 16)) for i in m["imports"] if i.get("versions_only")]
        bad_vo = [i["name"] for i in m["imports"] if i.get("versions_only") and i["crc"] is None]
        n_ver += len(k.versions)
        n_vo += len(versions_only)
        if bad_vo:
            mismatches.append(f"{m['path']}: versions_only imports without a CRC: {bad_vo[:5]}")
        if Counter(ours) != Counter(k.versions):
            oc, kc = Counter(ours), Counter(k.versions)
            only_ours = sorted((oc - kc).elements())
            only_kmod = sorted((kc - oc).elements())
            mismatches.append(
                f"{m['path']}: __versions differ ({len(ours)} moddeps imports with a CRC vs {len(k.versions)} "
                f"kmod records): only moddeps {[(n, _crc(c)) for n, c in only_ours[:5]]}, "
                f"only kmod {[(n, _crc(c)) for n, c in only_kmod[:5]]}"
            )
        elif not _is_subsequence(versions_only, k.versions):
            mismatches.append(
                f"{m['path']}: versions_only imports {versions_only[:5]} not in __versions order"
            )
    summary.append(
        f"scan {tree.package}: modversions: {n_mod} modules, {n_ver} __versions records compared "
        f"(name+CRC multisets; {n_vo} versions-only records also in order)"
    )
    assert n_mod == len(kmod_scan.by_path), "some modules were not compared (see test_scan_finds_every_module)"
    assert not mismatches, _fail(
        "modversions (modprobe --show-modversions)", tree, f"{n_mod} modules, {n_ver} records", mismatches
    )


def test_modinfo_match_kmod(tree: KernelTree, scan: Scan, kmod_scan: KmodScan, summary: list[str]) -> None:
    mismatches: list[str] = []
    n_mod = n_fields = n_parm = n_signed = 0
    for m in scan.modules:
        k = kmod_scan.by_path.get(scan.full_path(m))
        if k is None or k.modinfo is None:
            continue
        n_mod += 1
        ours = [(b(key), b(value)) for key, value in m["modinfo"]]
        kv, parms, signed = split_kmod_modinfo(k.modinfo)
        n_signed += signed
        expected_kv = [(key, v) for key, v in ours if key not in (b"parm", b"parmtype")]
        expected_parms = kmod_parm_lines(ours)
        n_fields += len(ours)
        n_parm += len(expected_parms)
        if kv != expected_kv:
            first = first_difference(expected_kv, kv)
            mismatches.append(
                f"{m['path']}: modinfo field #{first} ({len(expected_kv)} moddeps vs {len(kv)} kmod fields): "
                f"moddeps {expected_kv[first] if first < len(expected_kv) else None!r}, "
                f"kmod {kv[first] if first < len(kv) else None!r}"
            )
        if parms != expected_parms:
            mismatches.append(
                f"{m['path']}: parm lines differ: moddeps-derived {expected_parms[:4]!r}, kmod {parms[:4]!r}"
            )
    summary.append(
        f"scan {tree.package}: modinfo: {n_mod} modules, {n_fields} .modinfo fields compared as bytes "
        f"({n_parm} merged parm lines; libkmod's signature fields of {n_signed} signed modules excluded)"
    )
    assert n_mod == len(kmod_scan.by_path), "some modules were not compared (see test_scan_finds_every_module)"
    assert not mismatches, _fail("modinfo (modinfo -0)", tree, f"{n_mod} modules, {n_fields} fields", mismatches)
