"""Audit findings on the sample tree (real Kbuild modules) and on clean trees."""

from __future__ import annotations

import json
import shutil
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from moddeps.audit import AuditResult, audit_tree
from moddeps.cli import app
from moddeps.kernelsyms import load_kernel_symbols
from moddeps.read.scan import scan_tree
from moddeps.report.audit import audit_document

from .kobuild import Export, build_ko

REPO = Path(__file__).resolve().parent.parent
SAMPLE_TREE = REPO / "sample_modules" / "lib" / "modules" / "6.1.0-50-cloud-amd64"
SYMVERS = REPO / "sample_modules" / "symvers" / "Module.symvers-6.1.0-50-cloud-amd64"
SCHEMA = json.loads(files("moddeps").joinpath("schemas/audit.schema.json").read_text())


@pytest.fixture(scope="module")
def sample_audit() -> AuditResult:
    return audit_tree(scan_tree(str(SAMPLE_TREE), jobs=1), load_kernel_symbols(str(SYMVERS), "symvers"))


def by_kind(result: AuditResult, kind: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    return sorted((f.modules, f.symbols) for f in result.findings if f.kind == kind)


def test_each_kind_on_the_sample_tree(sample_audit: AuditResult) -> None:
    r = sample_audit
    assert by_kind(r, "cycle") == [(("mdx_cycle_a", "mdx_cycle_b"), ("mdx_cycle_a_value", "mdx_cycle_b_value"))]
    assert by_kind(r, "unknown-symbol") == [(("mdx_unknown",), ("mdx_does_not_exist",))]
    assert by_kind(r, "crc-mismatch") == [(("mdx_oldkernel",), ("module_layout",))]
    assert by_kind(r, "gpl-only-misuse") == [(("mdx_proprietary", "mdx_exporter"), ("mdx_gpl_mul",))]
    assert by_kind(r, "namespace-not-imported") == [(("mdx_nsmissing", "mdx_exporter"), ("mdx_ns_version",))]
    assert by_kind(r, "vermagic-mismatch") == [(("mdx_oldkernel",), ())]
    assert by_kind(r, "duplicate-export") == [(("mdx_dup_b", "mdx_dup_a"), ("mdx_dup_hello",))]
    assert by_kind(r, "duplicate-module") == [(("mdx_consumer",), ())]
    assert by_kind(r, "permanent-module") == [(("mdx_noexit",), ())]
    assert [m for m, _ in by_kind(r, "not-in-modules-order")] == [("mdx_consumer",), ("mdx_dup_b",), ("mdx_noexit",)]
    assert by_kind(r, "broken-file") == []
    ns = next(f for f in r.findings if f.kind == "namespace-not-imported")
    assert ns.details["fix"] == "MODULE_IMPORT_NS(MDX_CORE);"
    dup = next(f for f in r.findings if f.kind == "duplicate-export")
    assert dup.details["bound_to"] == "mdx_dup_b" and dup.details["affected"] == ["mdx_dup_user"]
    cyc = next(f for f in r.findings if f.kind == "cycle")
    assert len(cyc.details["break_cycle"]) == 1
    assert {(e["from"], e["to"]) for e in cyc.details["edges"]} == {("mdx_cycle_a", "mdx_cycle_b"),
                                                                     ("mdx_cycle_b", "mdx_cycle_a")}


def test_findings_sorted_worst_first(sample_audit: AuditResult) -> None:
    sev = [f.severity for f in sample_audit.findings]
    assert sev == sorted(sev, key=["error", "warning", "info"].index)
    assert sample_audit.exit_status("error") == 1
    assert sample_audit.exit_status("never") == 0


def test_json_document_validates(sample_audit: AuditResult) -> None:
    doc = audit_document(sample_audit)
    jsonschema.validate(doc, SCHEMA)
    assert doc["summary"]["by_kind"]["cycle"] == 1
    assert doc["summary"]["modules"] == 13


def test_without_kernel_symbols_unknown_is_not_reported_but_said_once() -> None:
    r = audit_tree(scan_tree(str(SAMPLE_TREE), jobs=1))
    assert by_kind(r, "unknown-symbol") == []
    assert len([n for n in r.notes if "no kernel symbol list" in n]) == 1
    # CRCs between modules are still compared: the sample modules agree
    assert by_kind(r, "crc-mismatch") == []


def make_clean_tree(root: Path) -> Path:
    tree = root / "lib/modules/1.0.0"
    (tree / "kernel").mkdir(parents=True)
    (tree / "kernel/lib.ko").write_bytes(build_ko(
        modinfo=["license=GPL", "vermagic=1.0.0 SMP mod_unload modversions "],
        exports=[Export(name="lib_fn", crc=0x1111), Export(name="lib_gpl", gpl=True, crc=0x2222)]))
    (tree / "kernel/user.ko").write_bytes(build_ko(
        modinfo=["license=Dual BSD/GPL", "vermagic=1.0.0 SMP mod_unload modversions "],
        undefined=["lib_fn", "lib_gpl"], versions=[("lib_fn", 0x1111), ("lib_gpl", 0x2222)]))
    (tree / "modules.order").write_text("kernel/lib.ko\nkernel/user.ko\n")
    return tree


def test_clean_tree_has_no_findings(tmp_path: Path) -> None:
    tree = make_clean_tree(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["depmod", "-b", str(tmp_path), "-C", str(tmp_path / "none"), "1.0.0"])
    assert res.exit_code == 0, res.output
    r = audit_tree(scan_tree(str(tree), jobs=1))
    assert r.findings == ()
    # touching a module's dependency makes the index stale
    (tree / "kernel/other.ko").write_bytes(build_ko(modinfo=["license=GPL"], undefined=["lib_fn"]))
    r2 = audit_tree(scan_tree(str(tree), jobs=1))
    stale = [f for f in r2.findings if f.kind == "stale-index"]
    assert stale and "modules.dep" in stale[0].details["stale"]


def test_crc_mismatch_between_modules(tmp_path: Path) -> None:
    tree = make_clean_tree(tmp_path)
    (tree / "kernel/user.ko").write_bytes(build_ko(
        modinfo=["license=GPL"], undefined=["lib_fn"], versions=[("lib_fn", 0x9999)]))
    r = audit_tree(scan_tree(str(tree), jobs=1), check_index=False)
    assert by_kind(r, "crc-mismatch") == [(("user",), ("lib_fn",))]


def test_cli_audit_json_and_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["audit", str(SAMPLE_TREE), "--json", "--symvers", str(SYMVERS)])
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert res.exit_code == 1
    res2 = runner.invoke(app, ["audit", str(SAMPLE_TREE), "--json", "--fail-on", "never"])
    assert res2.exit_code == 0
    res3 = runner.invoke(app, ["audit", str(SAMPLE_TREE), "--fail-on", "bogus"])
    assert res3.exit_code == 64
    res4 = runner.invoke(app, ["audit", str(tmp_path / "missing")])
    assert res4.exit_code == 66


def test_audit_copy_with_cycle_removed_is_consistent(tmp_path: Path) -> None:
    tree = tmp_path / "lib/modules/6.1.0-50-cloud-amd64"
    shutil.copytree(SAMPLE_TREE, tree)
    for name in ("mdx_cycle_a.ko", "mdx_cycle_b.ko"):
        (tree / "kernel/samples/mdx" / name).unlink()
    r = audit_tree(scan_tree(str(tree), jobs=1))
    assert by_kind(r, "cycle") == []
    assert [f.kind for f in r.findings if f.kind == "stale-index"] == ["stale-index"]  # no modules.dep yet
