"""Audit, compat and diff on trees shaped like Linux 6.12-7.x ones, without false findings.

Synthetic modules (tests/kobuild.py) in the shapes the Debian 13 (6.12) and
Debian 14 (7.2, MODVERSIONS off) trees have: exports without CRCs whose
namespaces kmod reads as exports, ``module:`` namespaces (Linux 6.16),
symbol lists without CRCs, and indexes written in either kmod layout.
"""

from __future__ import annotations

import json
from dataclasses import replace
from importlib.resources import files as pkg_files
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console
from typer.testing import CliRunner

from moddeps.abidiff import diff, side_from_symvers
from moddeps.audit import AuditResult, audit_tree, module_namespace_allows
from moddeps.cli import app
from moddeps.compat import compat_check, vermagic_problem
from moddeps.index.read import Index
from moddeps.index.write import build_index, build_index_preorder
from moddeps.kernelsyms import load_kernel_symbols
from moddeps.model import Module
from moddeps.read.elfreader import read_module
from moddeps.read.scan import scan_tree
from moddeps.report.audit import audit_document
from moddeps.report.compat import diff_document, render_diff

from .kobuild import Export, build_ko

SCHEMA = json.loads(pkg_files("moddeps").joinpath("schemas/audit.schema.json").read_text())

VER = "7.2.0-test"
VM = f"{VER} SMP preempt mod_unload "  # no "modversions": a kernel without CONFIG_MODVERSIONS
VM_CRC = "6.12.0-test SMP preempt mod_unload modversions "


def ko(name: str, *, exports: list[Export] | None = None, needs: list[str] | None = None,
       import_ns: list[str] | None = None, intree: bool = True, vermagic: str = VM,
       versions: list[tuple[str, int]] | None = None) -> bytes:
    modinfo = [("name", name), ("license", "GPL"), ("vermagic", vermagic)]
    modinfo += [("import_ns", ns) for ns in import_ns or []]
    if intree:
        modinfo.append(("intree", "Y"))
    return build_ko(modinfo=modinfo, exports=exports or [], undefined=needs or [], versions=versions or [])


def make_tree(root: Path, mods: dict[str, bytes], version: str = VER) -> Path:
    tree = root / "lib" / "modules" / version
    (tree / "kernel").mkdir(parents=True)
    for name, data in mods.items():
        (tree / "kernel" / f"{name}.ko").write_bytes(data)
    (tree / "modules.order").write_text("".join(f"kernel/{n}.ko\n" for n in mods))
    return tree


def symvers(path: Path, lines: list[tuple[int, str, str]]) -> Path:
    """A Module.symvers of vmlinux exports: (crc, name, namespace)."""
    path.write_text("".join(f"0x{c:08x}\t{n}\tvmlinux\tEXPORT_SYMBOL_GPL\t{ns}\n" for c, n, ns in lines))
    return path


def audit(tree: Path, kernel: Path | None = None, check_index: bool = False) -> AuditResult:
    ks = load_kernel_symbols(str(kernel), "symvers") if kernel else None
    result = audit_tree(scan_tree(str(tree), jobs=1), ks, check_index=check_index)
    jsonschema.validate(audit_document(result), SCHEMA)
    return result


def kinds(result: AuditResult) -> list[str]:
    return [f.kind for f in result.findings if f.kind != "not-in-modules-order"]


# --------------------------------------------------------------------------
# 1. namespace names kmod reads as exports
# --------------------------------------------------------------------------


def test_namespace_names_are_read_as_exports_but_are_not_exports(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, {
        "cxl_pmem": ko("cxl_pmem", exports=[Export(name="pmem_fn", namespace="CXL")]),
        "cxl_mem": ko("cxl_mem", exports=[Export(name="mem_fn", namespace="CXL"),
                                          Export(name="mem_fn2", namespace="CXL")]),
        "user": ko("user", needs=["pmem_fn", "mem_fn"], import_ns=["CXL"]),
    })
    # the reader keeps kmod's view: the namespace name is an export (pseudo)
    mem = read_module(str(tree / "kernel/cxl_mem.ko"))
    assert [(e.name, e.pseudo) for e in mem.exports if e.name == "CXL"] == [("CXL", True), ("CXL", True)]
    kernel = symvers(tmp_path / "Module.symvers", [(0, "printk", "")])
    r = audit(tree, kernel)
    assert kinds(r) == []  # no duplicate-export CXL, no namespace finding


def test_import_bound_to_a_namespace_name_is_unknown_to_the_kernel(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, {
        "cxl_mem": ko("cxl_mem", exports=[Export(name="mem_fn", namespace="CXL")]),
        "odd": ko("odd", needs=["CXL"]),
    })
    kernel = symvers(tmp_path / "Module.symvers", [(0, "printk", "")])
    r = audit(tree, kernel)
    [f] = [f for f in r.findings if f.kind == "unknown-symbol"]
    assert f.modules == ("odd", "cxl_mem") and f.symbols == ("CXL",)
    assert f.details["depmod_warns"] is False and "only has a symbol namespace" in f.message
    # a real export of that name, anywhere, is a real provider
    tree2 = make_tree(tmp_path / "b", {
        "cxl_mem": ko("cxl_mem", exports=[Export(name="mem_fn", namespace="CXL")]),
        "odd": ko("odd", needs=["CXL"]),
    })
    kernel2 = symvers(tmp_path / "Module.symvers2", [(0, "CXL", "")])
    assert [f.kind for f in audit(tree2, kernel2).findings if f.kind == "unknown-symbol"] == []


def test_real_export_shadowed_by_a_namespace_name_is_reported(tmp_path: Path) -> None:
    # "lib" exports a symbol NET; "drv", later in module order, puts its exports in namespace NET:
    # depmod binds NET's users to drv
    tree = make_tree(tmp_path, {
        "lib": ko("lib", exports=[Export(name="NET")]),
        "drv": ko("drv", exports=[Export(name="drv_fn", namespace="NET")]),
        "user": ko("user", needs=["NET"]),
    })
    r = audit(tree)
    [f] = [f for f in r.findings if f.kind == "duplicate-export"]
    assert f.symbols == ("NET",) and f.details["bound_to"] == "drv" and f.details["exporters"] == ["lib"]
    assert f.details["bound_to_namespace_name"] is True and f.details["affected"] == ["user"]


# --------------------------------------------------------------------------
# 2. module: namespaces (Linux 6.16)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("namespace", "name", "allowed"), [
    ("module:kvm", "kvm", True),
    ("module:kvm", "kvm_amd", False),
    ("module:kvm-amd,kvm-intel", "kvm_amd", True),  # '-' and '_' are one character
    ("module:kvm_amd", "kvm-amd", True),
    ("module:kvm,kvm-*", "kvm_intel", True),  # tail glob
    ("module:kvm,kvm-*", "kvmx", False),
    ("module:kvm*", "kvm", True),
    ("module:kvm-amd,kvm-intel", "kvm", False),
    ("module:", "kvm", False),
    ("module:,kvm", "kvm", True),
    ("KVM", "kvm", False),  # not a module namespace
])
def test_module_namespace_rule(namespace: str, name: str, allowed: bool) -> None:
    assert module_namespace_allows(namespace, name) is allowed


def kvm_tree(root: Path, extra: dict[str, bytes] | None = None) -> Path:
    return make_tree(root, {
        "kvm": ko("kvm", exports=[Export(name="kvm_fn", namespace="module:kvm-amd,kvm-intel"),
                                  Export(name="kvm_get")]),
        "kvm_amd": ko("kvm_amd", needs=["kvm_fn", "host_fn"]),
        "kvm_intel": ko("kvm_intel", needs=["kvm_fn"]),
        **(extra or {}),
    })


def test_module_namespace_allows_the_named_modules(tmp_path: Path) -> None:
    kernel = symvers(tmp_path / "Module.symvers", [(0, "host_fn", "module:kvm,kvm-amd,kvm-intel")])
    assert kinds(audit(kvm_tree(tmp_path), kernel)) == []


def test_module_namespace_refuses_everyone_else(tmp_path: Path) -> None:
    kernel = symvers(tmp_path / "Module.symvers", [(0, "host_fn", "module:kvm,kvm-amd,kvm-intel")])
    tree = kvm_tree(tmp_path, {
        "vfio": ko("vfio", needs=["kvm_fn", "kvm_get"]),
        # importing it does not help: the import itself is refused
        "sneaky": ko("sneaky", needs=["host_fn"], import_ns=["module:kvm,kvm-amd,kvm-intel"]),
    })
    r = audit(tree, kernel)
    found = sorted((f.modules[0], f.symbols, f.details["reason"]) for f in r.findings if f.kind == "namespace-reserved")
    assert found == [("sneaky", (), "explicit import"), ("sneaky", ("host_fn",), "not listed"),
                     ("vfio", ("kvm_fn",), "not listed")]
    vfio = next(f for f in r.findings if f.kind == "namespace-reserved" and f.modules[0] == "vfio")
    assert vfio.modules == ("vfio", "kvm") and vfio.severity == "error"
    assert "reserved for kvm-amd, kvm-intel" in vfio.message and "refuses" in vfio.message
    assert vfio.details["reserved_for"] == ["kvm-amd", "kvm-intel"]
    assert not [f for f in r.findings if f.kind == "namespace-not-imported"]


def test_compat_module_namespace(tmp_path: Path) -> None:
    kernel_path = symvers(tmp_path / "Module.symvers", [(0, "host_fn", "module:kvm,kvm-amd,kvm-intel")])
    target = scan_tree(str(kvm_tree(tmp_path / "t")), jobs=1)
    kernel = load_kernel_symbols(str(kernel_path), "symvers")
    files = tmp_path / "files"
    files.mkdir()
    (files / "kvm-amd.ko").write_bytes(ko("kvm_amd", needs=["kvm_fn", "host_fn"]))  # a rebuilt in-tree module
    (files / "vendor.ko").write_bytes(ko("vendor", needs=["kvm_fn"], intree=False))
    (files / "kvm-intel.ko").write_bytes(ko("kvm_intel", needs=["kvm_fn"], intree=False))  # named, out of tree
    (files / "imp.ko").write_bytes(ko("imp", import_ns=["module:kvm"]))
    r = compat_check([str(files / n) for n in ("kvm-amd.ko", "vendor.ko", "kvm-intel.ko", "imp.ko")], target, kernel)
    loads = {v.module: (v.loads, v.reasons, v.errno) for v in r.verdicts}
    assert loads == {
        "kvm_amd": (True, (), None),
        "vendor": (False, ("namespace-reserved",), "EINVAL"),
        "kvm_intel": (False, ("namespace-reserved",), "EINVAL"),
        "imp": (False, ("namespace-reserved",), "EPERM"),
    }
    reasons = {f.modules[0]: f.details["reason"] for f in r.findings if f.kind == "namespace-reserved"}
    assert reasons == {"vendor": "not listed", "kvm_intel": "out-of-tree", "imp": "explicit import"}
    imp = next(v for v in r.verdicts if v.module == "imp")
    assert imp.kernel_log[-1] == "imp: module tries to import module namespace: module:kvm"


# --------------------------------------------------------------------------
# 3. kernels without MODVERSIONS
# --------------------------------------------------------------------------


def test_compat_on_a_kernel_without_modversions(tmp_path: Path) -> None:
    target = scan_tree(str(make_tree(tmp_path / "t", {"lib": ko("lib", exports=[Export(name="lib_fn")])})), jobs=1)
    kernel = load_kernel_symbols(str(symvers(tmp_path / "Module.symvers", [(0, "printk", "")])), "symvers")
    files = tmp_path / "files"
    files.mkdir()
    # built for this kernel, but carrying CRCs that nothing here has: the kernel compares none
    (files / "same.ko").write_bytes(ko("same", needs=["lib_fn", "printk"], intree=False,
                                       versions=[("lib_fn", 0x1234), ("printk", 0x5678)]))
    # built for another release with MODVERSIONS: the whole vermagic differs
    (files / "old.ko").write_bytes(ko("old", needs=["printk"], vermagic=VM_CRC, intree=False,
                                      versions=[("printk", 0x5678)]))
    r = compat_check([str(files / "same.ko"), str(files / "old.ko")], target, kernel)
    assert {v.module: v.loads for v in r.verdicts} == {"same": True, "old": False}
    assert not [f for f in r.findings if f.kind == "crc-mismatch"]
    old = next(f for f in r.findings if f.modules[0] == "old")
    assert old.kind == "vermagic-mismatch" and old.severity == "error"
    assert any("CONFIG_MODVERSIONS" in n for n in r.notes)


def test_vermagic_release_only_is_an_error_without_modversions() -> None:
    m = read_module_bytes(ko("m", needs=["printk"], vermagic=VM_CRC, versions=[("printk", 1)]))
    info = vermagic_problem(m, None, VER)
    assert info is not None and not info.blocking  # symbol versions may stand in for the release
    err = vermagic_problem(m, None, VER, modversions=False)
    assert err is not None and err.blocking and err.errno == "ENOEXEC"


def read_module_bytes(data: bytes) -> Module:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".ko") as f:
        f.write(data)
        f.flush()
        return read_module(f.name)


def test_audit_against_a_symbol_list_without_crcs(tmp_path: Path) -> None:
    # modules with CRCs audited against a Module.symvers without any: nothing to compare
    tree = make_tree(tmp_path, {
        "user": ko("user", needs=["printk"], vermagic=VM_CRC, versions=[("printk", 0x5678)]),
    }, version="6.12.0-test")
    kernel = symvers(tmp_path / "Module.symvers", [(0, "printk", "")])
    r = audit(tree, kernel)
    assert kinds(r) == []
    assert any("has no CRCs" in n for n in r.notes)
    # the reverse: a module without symbol versions against a kernel that has them
    tree2 = make_tree(tmp_path / "b", {"user": ko("user", needs=["printk"], vermagic=VM_CRC)},
                      version="6.12.0-test")
    r2 = audit(tree2, symvers(tmp_path / "Module.symvers2", [(0x5678, "printk", "")]))
    [f] = [f for f in r2.findings if f.kind == "crc-mismatch"]
    assert f.details["reason"] == "no symbol versions" and "built without CONFIG_MODVERSIONS" in f.message


def test_diff_against_a_kernel_without_crcs(tmp_path: Path) -> None:
    old = tmp_path / "old.symvers"
    new = tmp_path / "new.symvers"
    old.write_text("0x11111111\tkept\tvmlinux\tEXPORT_SYMBOL\t\n0x22222222\tgone\tvmlinux\tEXPORT_SYMBOL\t\n"
                   "0x33333333\tmoved\tdrivers/a\tEXPORT_SYMBOL\t\n")
    new.write_text("0x00000000\tkept\tvmlinux\tEXPORT_SYMBOL\t\n0x00000000\tadded\tvmlinux\tEXPORT_SYMBOL\t\n"
                   "0x00000000\tmoved\tdrivers/b\tEXPORT_SYMBOL\t\n")
    result = diff(side_from_symvers(str(old)), side_from_symvers(str(new)))
    got = sorted((c.kind, c.module, c.symbol, c.old, c.new, c.incompatible) for c in result.changes
                 if c.symbol is not None)
    assert got == [
        ("export-added", "b", "moved", None, None, False),  # still exported: its users bind to b
        ("export-added", "vmlinux", "added", None, None, False),
        ("export-removed", "a", "moved", "0x33333333", None, False),
        ("export-removed", "vmlinux", "gone", "0x22222222", None, True),
    ]
    assert any("no CRCs (MODVERSIONS off)" in n for n in result.notes)
    doc = diff_document(result)
    assert doc["old"]["crcs"] is True and doc["new"]["crcs"] is False
    console = Console(width=200, record=True)
    render_diff(console, result)
    text = console.export_text()
    assert "None" not in text and "no CRCs (MODVERSIONS off)" in text


# --------------------------------------------------------------------------
# 4. stale-index by meaning
# --------------------------------------------------------------------------


def depmod(root: Path, version: str = VER) -> None:
    res = CliRunner().invoke(app, ["depmod", "-b", str(root), "-C", str(root / "none"), version])
    assert res.exit_code == 0, res.output


def relayout(path: Path, preorder: bool) -> None:
    """Rewrite an index with the same entries in the other kmod node layout."""
    entries = list(Index(path.read_bytes()).items())
    data = build_index_preorder(entries) if preorder else build_index(entries)
    assert data != path.read_bytes()
    path.write_bytes(data)


def index_tree(tmp_path: Path) -> Path:
    tree = make_tree(tmp_path, {
        "lib": build_ko(modinfo=["license=GPL", "alias=pci:v00001234d*", f"vermagic={VM}"],
                        exports=[Export(name="lib_fn"), Export(name="lib_two")]),
        "user": build_ko(modinfo=["license=GPL", "alias=usb:v0001p*", f"vermagic={VM}"], undefined=["lib_fn"]),
    })
    depmod(tmp_path)
    return tree


@pytest.mark.parametrize("preorder", [True, False])
def test_indexes_in_either_kmod_layout_are_current(tmp_path: Path, preorder: bool) -> None:
    tree = index_tree(tmp_path)
    for name in ("modules.dep.bin", "modules.alias.bin", "modules.symbols.bin"):
        if preorder != _is_preorder(tree / name):
            relayout(tree / name, preorder)
    # kmod 33+ writes a modules.weakdep even when no module has a weak dependency
    (tree / "modules.weakdep").write_bytes(b"# Weak dependencies extracted from modules themselves.\n")
    assert [f for f in audit(tree, check_index=True).findings if f.kind == "stale-index"] == []


def _is_preorder(path: Path) -> bool:
    data = path.read_bytes()
    return int.from_bytes(data[8:12], "big") & 0x0FFFFFFF == 12  # the root node right after the header


def test_an_index_that_lost_an_entry_is_stale(tmp_path: Path) -> None:
    tree = index_tree(tmp_path)
    path = tree / "modules.symbols.bin"
    entries = list(Index(path.read_bytes()).items())
    assert len(entries) == 2
    path.write_bytes(build_index_preorder(entries[:1]))
    (tree / "modules.weakdep").write_bytes(b"# Weak dependencies extracted from modules themselves.\nweakdep x y\n")
    [f] = [f for f in audit(tree, check_index=True).findings if f.kind == "stale-index"]
    assert sorted(f.details["stale"]) == ["modules.symbols.bin", "modules.weakdep"] and f.details["missing"] == []
    path.write_bytes(b"not an index")
    [f] = [f for f in audit(tree, check_index=True).findings if f.kind == "stale-index"]
    assert "modules.symbols.bin" in f.details["stale"]


# --------------------------------------------------------------------------
# 6. CRCs from the extended modversions tables (Linux 6.14+)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("module_crc", "refused"), [(0xABCD, False), (0x9999, True)])
def test_compat_judges_an_extended_crc_by_its_value(tmp_path: Path, module_crc: int, refused: bool) -> None:
    target = scan_tree(str(make_tree(tmp_path / "t", {"lib": ko("lib", vermagic=VM_CRC, exports=[
        Export(name="lib_fn", crc=0x1)])}, version="6.12.0-test")), jobs=1)
    kernel = load_kernel_symbols(str(symvers(tmp_path / "Module.symvers", [(0xABCD, "_RNvlong_rust_name", "")])),
                                 "symvers")
    m = read_module_bytes(ko("rusty", needs=["_RNvlong_rust_name"], vermagic=VM_CRC,
                             versions=[("_RNvlong_rust_name", 0)]))
    imports = tuple(i._replace(crc=module_crc, ext_crc=True) for i in m.imports)
    r = compat_check([replace(m, imports=imports)], target, kernel)
    assert [v.loads for v in r.verdicts] == [not refused]
    assert [f.kind for f in r.findings if f.kind == "crc-mismatch"] == (["crc-mismatch"] if refused else [])
