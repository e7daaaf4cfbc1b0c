"""Signatures in ``audit`` and ``compat``: a signed, an unsigned and a foreign-key module.

The trees are copies of the sample tree (real Kbuild modules) whose in-tree
modules are given the signature of tests/data/signed/mdx_signed.ko (the
throwaway RSA key), as a distribution signs its modules, then one module is
stripped and one re-signed with the other throwaway key (tests/sigtools.py).
"""

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
from moddeps.compat import compat_check
from moddeps.read.elfreader import read_module
from moddeps.read.scan import scan_tree
from moddeps.report.audit import audit_document
from moddeps.report.compat import compat_document
from moddeps.signature import out_of_tree_path, read_kernel_config

from .sigtools import RSA_DONOR, SHA1_DONOR, elf_image, rewrite_module

REPO = Path(__file__).resolve().parent.parent
SAMPLE_TREE = REPO / "sample_modules" / "lib" / "modules" / "6.1.0-50-cloud-amd64"
SCHEMA = json.loads(files("moddeps").joinpath("schemas/audit.schema.json").read_text())
SIG_KINDS = ("unsigned-module", "signer-mismatch", "weak-signature-hash")
RSA_KEY = ("moddeps throwaway test key", "01:D2:C3:B4:A5:96:87:78:69:5A:4B:3C:2D:1E:0F")


def signed_tree(tmp_path: Path, config: str | None = "CONFIG_MODULE_SIG=y\n", sign_out_of_tree: bool = False) -> Path:
    """A copy of the sample tree, its kernel/ modules signed with the RSA key; with ``config``, a ``config`` file."""
    dst = tmp_path / "lib" / "modules" / SAMPLE_TREE.name
    shutil.copytree(SAMPLE_TREE, dst)
    for ko in sorted(dst.rglob("*.ko")):
        rel = ko.relative_to(dst).as_posix()
        if not out_of_tree_path(rel) or sign_out_of_tree:
            rewrite_module(ko, "resign", RSA_DONOR)
    if config is not None:
        (dst / "config").write_text("# a kernel config\n" + config)
    return dst


def sig_findings(result: AuditResult) -> list[tuple[str, str, str]]:
    return sorted((f.kind, f.modules[0], f.severity) for f in result.findings if f.kind in SIG_KINDS)


def test_a_tree_signed_with_one_key_has_no_signature_finding(tmp_path: Path) -> None:
    tree = scan_tree(str(signed_tree(tmp_path, sign_out_of_tree=True)), jobs=1)
    assert all(m.signature is not None and (m.signature.signer, m.signature.key_id) == RSA_KEY for m in tree.modules)
    assert sig_findings(audit_tree(tree)) == []


def test_unsigned_foreign_and_weak_modules(tmp_path: Path) -> None:
    d = signed_tree(tmp_path)
    rewrite_module(d / "kernel/samples/mdx/mdx_noexit.ko", "strip")
    rewrite_module(d / "kernel/samples/mdx/mdx_softdep.ko", "resign", SHA1_DONOR)
    rewrite_module(d / "updates/mdx_consumer.ko", "resign", SHA1_DONOR)
    # extra/mdx_dup_b.ko stays unsigned (out of tree)
    result = audit_tree(scan_tree(str(d), jobs=1))
    assert sig_findings(result) == [
        ("signer-mismatch", "mdx_consumer", "info"),  # updates/: a DKMS or MOK key is expected there
        ("signer-mismatch", "mdx_softdep", "warning"),
        ("unsigned-module", "mdx_dup_b", "warning"),
        ("unsigned-module", "mdx_noexit", "warning"),
        ("weak-signature-hash", "mdx_consumer", "warning"),
        ("weak-signature-hash", "mdx_softdep", "warning"),
    ]
    by = {(f.kind, f.modules[0]): f for f in result.findings}
    mismatch = by[("signer-mismatch", "mdx_softdep")]
    assert mismatch.details["signer"] == "key without a common name" and mismatch.details["key_id"] == "07"
    assert (mismatch.details["expected_signer"], mismatch.details["expected_key_id"]) == RSA_KEY
    assert "'moddeps throwaway test key' (key id 01:D2:" in mismatch.message
    unsigned = by[("unsigned-module", "mdx_noexit")]
    assert "CONFIG_MODULE_SIG=y" in unsigned.details["basis"] and not unsigned.details["enforced"]
    assert unsigned.details["kernel_log"] == [
        "mdx_noexit: module verification failed: signature and/or required key missing - tainting kernel"]
    assert by[("weak-signature-hash", "mdx_softdep")].details["hash_algo"] == "sha1"
    doc = audit_document(result)
    jsonschema.validate(doc, SCHEMA)
    assert doc["summary"]["by_kind"]["unsigned-module"] == 2


def test_forced_signatures_make_unsigned_an_error(tmp_path: Path) -> None:
    d = signed_tree(tmp_path, config="CONFIG_MODULE_SIG=y\nCONFIG_MODULE_SIG_FORCE=y\n")
    rewrite_module(d / "kernel/samples/mdx/mdx_noexit.ko", "strip")
    result = audit_tree(scan_tree(str(d), jobs=1))
    unsigned = [f for f in result.findings if f.kind == "unsigned-module"]
    assert sorted((f.modules[0], f.severity) for f in unsigned) == [
        ("mdx_consumer", "error"), ("mdx_dup_b", "error"), ("mdx_noexit", "error")]  # updates/, extra/, kernel/
    assert unsigned[0].details["kernel_log"] == ["Loading of unsigned module is rejected"]


def test_a_kernel_without_module_sig_checks_nothing(tmp_path: Path) -> None:
    d = signed_tree(tmp_path, config="# CONFIG_MODULE_SIG is not set\n")
    rewrite_module(d / "kernel/samples/mdx/mdx_noexit.ko", "strip")
    rewrite_module(d / "kernel/samples/mdx/mdx_softdep.ko", "resign", SHA1_DONOR)
    assert read_kernel_config(str(d), d.name) == (str(d / "config"), {"CONFIG_MODULE_SIG": "n"})
    # only the weak digest stays: it is the module's, whatever the kernel does
    assert sig_findings(audit_tree(scan_tree(str(d), jobs=1))) == [("weak-signature-hash", "mdx_softdep", "warning")]


def test_without_config_most_in_tree_modules_signed_decides(tmp_path: Path) -> None:
    d = signed_tree(tmp_path, config=None)
    rewrite_module(d / "kernel/samples/mdx/mdx_noexit.ko", "strip")
    assert ("unsigned-module", "mdx_noexit", "warning") in sig_findings(audit_tree(scan_tree(str(d), jobs=1)))
    # the sample tree itself (nothing signed): no signature finding
    assert sig_findings(audit_tree(scan_tree(str(SAMPLE_TREE), jobs=1))) == []


def test_boot_config_of_the_root_is_found(tmp_path: Path) -> None:
    d = signed_tree(tmp_path, config=None)
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / f"config-{d.name}").write_text("CONFIG_MODULE_SIG=y\nCONFIG_MODULE_SIG_FORCE=y\n")
    got = read_kernel_config(str(d), d.name)
    assert got is not None and got[0] == str(tmp_path / "boot" / f"config-{d.name}")
    rewrite_module(d / "kernel/samples/mdx/mdx_noexit.ko", "strip")
    assert ("unsigned-module", "mdx_noexit", "error") in sig_findings(audit_tree(scan_tree(str(d), jobs=1)))


def test_fail_on_works_with_signature_findings(tmp_path: Path) -> None:
    base = tmp_path / "lib" / "modules" / "6.1.0-50-cloud-amd64"
    (base / "kernel").mkdir(parents=True)
    signed = (RSA_DONOR.parent / "mdx_signed.ko").read_bytes()
    (base / "kernel" / "mdx_softdep.ko").write_bytes(signed)
    (base / "kernel" / "mdx_plain.ko").write_bytes(elf_image(signed))
    (base / "config").write_text("CONFIG_MODULE_SIG=y\n")
    runner = CliRunner()
    args = ["audit", str(base), "--json"]
    res = runner.invoke(app, args)
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, SCHEMA)
    kinds = {f["kind"] for f in doc["findings"]}
    assert "unsigned-module" in kinds
    assert res.exit_code == 0  # a warning: the default --fail-on is error
    assert runner.invoke(app, [*args, "--fail-on", "warning"]).exit_code == 1
    (base / "config").write_text("CONFIG_MODULE_SIG=y\nCONFIG_MODULE_SIG_FORCE=y\n")
    assert runner.invoke(app, args).exit_code == 1
    assert runner.invoke(app, [*args, "--fail-on", "never"]).exit_code == 0


# --------------------------------------------------------------------------
# compat
# --------------------------------------------------------------------------


@pytest.fixture
def vendor_files(tmp_path: Path) -> dict[str, Path]:
    """The sample's mdx_noexit three ways: signed with the tree's key, unsigned, signed with another key."""
    src = SAMPLE_TREE / "kernel/samples/mdx/mdx_noexit.ko"
    out = {}
    for label, change, donor in (("trusted", "resign", RSA_DONOR), ("unsigned", "strip", RSA_DONOR),
                                 ("foreign", "resign", SHA1_DONOR)):
        d = tmp_path / "vendor" / label
        d.mkdir(parents=True)
        shutil.copy(src, d / "mdx_noexit.ko")
        rewrite_module(d / "mdx_noexit.ko", change, donor)
        out[label] = d / "mdx_noexit.ko"
    return out


def _verdict(files: dict[str, Path], label: str, target: Path, enforce: bool = False) -> tuple[object, ...]:
    r = compat_check([str(files[label])], scan_tree(str(target), jobs=1), None, enforce_signatures=enforce)
    v = r.verdicts[0]
    assert v.signature is not None
    sig = [f for f in r.findings if f.kind in ("unsigned-module", "signer-mismatch")]
    return (v.loads, v.signature.status, v.signature.refused, v.errno,
            tuple((f.kind, f.severity) for f in sig))


def test_compat_signatures_not_enforced(tmp_path: Path, vendor_files: dict[str, Path]) -> None:
    target = signed_tree(tmp_path / "t")
    assert _verdict(vendor_files, "trusted", target) == (True, "trusted", False, None, ())
    assert _verdict(vendor_files, "unsigned", target) == (True, "unsigned", False, None,
                                                          (("unsigned-module", "warning"),))
    assert _verdict(vendor_files, "foreign", target) == (True, "other-key", False, None,
                                                         (("signer-mismatch", "warning"),))


def test_compat_enforce_signatures(tmp_path: Path, vendor_files: dict[str, Path]) -> None:
    target = signed_tree(tmp_path / "t")
    assert _verdict(vendor_files, "trusted", target, True) == (True, "trusted", False, None, ())
    assert _verdict(vendor_files, "unsigned", target, True) == (False, "unsigned", True, "EKEYREJECTED",
                                                                (("unsigned-module", "error"),))
    assert _verdict(vendor_files, "foreign", target, True) == (False, "other-key", True, "EKEYREJECTED",
                                                               (("signer-mismatch", "error"),))
    r = compat_check([str(vendor_files["foreign"])], scan_tree(str(target), jobs=1), None, enforce_signatures=True)
    f = next(f for f in r.findings if f.kind == "signer-mismatch")
    # the key it would have to be signed with (or its own key enrolled)
    assert (f.details["trusted_signer"], f.details["trusted_key_id"]) == RSA_KEY
    assert "the kernel trusts 'moddeps throwaway test key' (key id 01:D2:" in f.message
    assert r.verdicts[0].kernel_log == ("Loading of module with unavailable key is rejected",)
    assert f.details["lockdown_errno"] == "EPERM"
    doc = compat_document([r])
    assert doc["verdicts"][0]["signature"] == {
        "status": "other-key", "refused": True, "enforced": True, "signer": "key without a common name",
        "key_id": "07", "hash_algo": "sha1", "trusted_signer": RSA_KEY[0], "trusted_key_id": RSA_KEY[1]}


def test_compat_config_forces_signatures(tmp_path: Path, vendor_files: dict[str, Path]) -> None:
    target = signed_tree(tmp_path / "t", config="CONFIG_MODULE_SIG=y\nCONFIG_MODULE_SIG_FORCE=y\n")
    assert _verdict(vendor_files, "unsigned", target)[:4] == (False, "unsigned", True, "EKEYREJECTED")
    assert _verdict(vendor_files, "trusted", target)[:3] == (True, "trusted", False)


def test_compat_kernel_that_does_not_check(vendor_files: dict[str, Path]) -> None:
    r = compat_check([str(vendor_files["unsigned"])], scan_tree(str(SAMPLE_TREE), jobs=1), None,
                     enforce_signatures=True)
    assert r.verdicts[0].signature is not None and r.verdicts[0].signature.status == "not-checked"
    assert r.verdicts[0].loads
    assert any("does not check module signatures" in n for n in r.notes)


def test_compat_cli_enforce_signatures(tmp_path: Path, vendor_files: dict[str, Path]) -> None:
    target = signed_tree(tmp_path / "t")
    runner = CliRunner()
    base = ["compat", str(vendor_files["unsigned"]), str(target), "--json", "--no-cache"]
    ok = runner.invoke(app, base)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["verdicts"][0]["signature"]["status"] == "unsigned"
    refused = runner.invoke(app, [*base, "--enforce-signatures"])
    assert refused.exit_code == 1
    v = json.loads(refused.stdout)["verdicts"][0]
    assert (v["loads"], v["reasons"], v["errno"]) == (False, ["unsigned-module"], "EKEYREJECTED")
    text = runner.invoke(app, ["compat", str(vendor_files["unsigned"]), str(target), "--no-cache",
                               "--enforce-signatures"])
    assert text.exit_code == 1 and "unsigned-module" in text.stdout


def test_the_signed_fixture_reads_as_signed() -> None:
    m = read_module(RSA_DONOR)
    assert m.signature is not None and (m.signature.signer, m.signature.key_id) == RSA_KEY
