"""``compat``: module files checked against a target tree, as the kernel checks them at load time.

Offline: the sample tree (real Kbuild modules) and small synthetic trees built
with tests/kobuild.py.  Where kmod 30's depmod is installed, the unknown-symbol
and crc-mismatch pairs are also compared with what it prints (``-e -E``) for the
tree with the files in a directory searched first, minus what it prints without
them; :func:`depmod_new_pairs` is shared with the conformance suite.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zlib
from collections.abc import Sequence
from importlib.resources import files as pkg_files
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console

from moddeps.compat import (
    CompatResult,
    Verdict,
    compat_check,
    compat_matrix,
    discover_kernel_symbols,
    kernel_vermagic,
    matrix_exit_status,
    read_files,
    vermagic_problem,
)
from moddeps.errors import UsageError
from moddeps.kernelsyms import load_kernel_symbols
from moddeps.model import Import, KernelSymbols, Module, modname_from_path
from moddeps.read.scan import Tree, scan_tree
from moddeps.report.compat import compat_document, render_compat

from .kobuild import Export, build_ko

REPO = Path(__file__).resolve().parent.parent
SAMPLE_TREE = REPO / "sample_modules" / "lib" / "modules" / "6.1.0-50-cloud-amd64"
SAMPLE_SYMVERS = REPO / "sample_modules" / "symvers" / "Module.symvers-6.1.0-50-cloud-amd64"
MDX = SAMPLE_TREE / "kernel" / "samples" / "mdx"
AUDIT_SCHEMA = json.loads(pkg_files("moddeps").joinpath("schemas/audit.schema.json").read_text())

VER = "6.1.0-77-test"
VM = f"{VER} SMP preempt mod_unload modversions "
LAYOUT = 0x82164FBB
#: the synthetic kernel's exports: name -> (crc, type, namespace)
KERNEL = {
    "module_layout": (LAYOUT, "EXPORT_SYMBOL", ""),
    "_printk": (0x92997ED8, "EXPORT_SYMBOL", ""),
    "ktime_get": (0xB43F9365, "EXPORT_SYMBOL_GPL", ""),
    "k_ns_fn": (0x11111111, "EXPORT_SYMBOL_GPL", "KNS"),
    "jiffies": (0x15BA50A6, "EXPORT_SYMBOL", ""),
}


def crc(name: str) -> int:
    return KERNEL[name][0] if name in KERNEL else zlib.crc32(name.encode())


def ko(name: str, *, exports: Sequence[Export] = (), needs: Sequence[str | tuple[str, bool]] = (),
       crcs: dict[str, int | None] | None = None, licence: str | None = "GPL", vermagic: str | None = VM,
       import_ns: Sequence[str] = (), versions: bool = True, layout: int = LAYOUT, machine: int = 62) -> bytes:
    """A module needing ``needs`` (with CRCs from ``crc()`` unless ``crcs`` says otherwise; None: no record)."""
    crcs = crcs or {}
    modinfo: list[tuple[str, str]] = [("name", name)]
    if licence is not None:
        modinfo.append(("license", licence))
    modinfo += [("import_ns", ns) for ns in import_ns]
    if vermagic is not None:
        modinfo.append(("vermagic", vermagic))
    recs: list[tuple[str, int]] = []
    if versions:
        for n in needs:
            sym = n if isinstance(n, str) else n[0]
            c = crcs.get(sym, crc(sym))
            if c is not None:
                recs.append((sym, c))
        recs.append(("module_layout", layout))
    return build_ko(modinfo=modinfo, exports=exports, undefined=list(needs), versions=recs, machine=machine)


def exp(name: str, *, gpl: bool = False, ns: str | None = None, c: int | None = None) -> Export:
    return Export(name=name, gpl=gpl, namespace=ns, crc=crc(name) if c is None else c)


def write_symvers(path: Path, symbols: dict[str, tuple[int, str, str]] = KERNEL) -> Path:
    path.write_text("".join(f"0x{c:08x}\t{n}\tvmlinux\t{t}\t{ns}\n" for n, (c, t, ns) in symbols.items()))
    return path


def make_tree(root: Path, mods: dict[str, bytes], version: str = VER) -> Path:
    """ROOT/lib/modules/VERSION with the modules; modules.order lists the kernel/ ones."""
    md = root / "lib" / "modules" / version
    for rel, data in mods.items():
        p = md / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (md / "modules.order").write_text("".join(f"{r}\n" for r in mods if r.startswith("kernel/")))
    return md


def put_files(d: Path, mods: dict[str, bytes]) -> list[str]:
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name, data in mods.items():
        (d / name).write_bytes(data)
        out.append(str(d / name))
    return out


# --------------------------------------------------------------------------
# The real depmod, where installed
# --------------------------------------------------------------------------


def kmod30_depmod() -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    depmod = shutil.which("depmod", path=path)
    if depmod is None:
        return None
    out = subprocess.run([depmod, "--version"], capture_output=True, text=True).stdout
    return depmod if out.startswith("kmod version 30") else None


def _depmod_warnings(depmod: str, base: Path, version: str, symvers: Path, conf: Path) -> set[tuple[str, str]]:
    r = subprocess.run([depmod, "-n", "-e", "-E", str(symvers), "-b", str(base), "-C", str(conf), version],
                       capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"))
    assert r.returncode in (0, 1), r.stderr[-2000:]  # 1: dependency cycles (warnings are printed before)
    out = set()
    for line in r.stderr.splitlines():
        for sep in (" needs unknown symbol ", " disagrees about version of symbol "):
            if line.startswith("depmod: WARNING: ") and sep in line:
                path, sym = line[len("depmod: WARNING: "):].split(sep, 1)
                out.add((path, sym))
    return out


def depmod_new_pairs(depmod: str, moddir: Path, symvers: Path, files: Sequence[str], work: Path,
                     subdir: str = "compat-files", link: bool = False) -> set[tuple[str, str]]:
    """(module, symbol) pairs real ``depmod -e -E`` warns about once ``files`` are installed in
    ``subdir/`` of a copy of ``moddir``, searched first (``search SUBDIR updates``, i.e. kmod's
    default order with SUBDIR in front), minus those it warns about without them.

    Warnings are compared by path: a file's path (``SUBDIR/x.ko``) never equals the in-tree
    path it replaces, so the files' own problems are all kept, and the in-tree modules' are
    kept when the files cause them.
    """
    version = moddir.name
    base = work / "root"
    dst = base / "lib" / "modules" / version
    dst.parent.mkdir(parents=True)
    if link:
        subprocess.run(["cp", "-al", str(moddir), str(dst)], check=True)
    else:
        shutil.copytree(moddir, dst, symlinks=True)
    conf = work / "depmod.d"
    conf.mkdir()
    (conf / "compat.conf").write_text(f"search {subdir} updates\n")
    before = _depmod_warnings(depmod, base, version, symvers, conf)
    (dst / subdir).mkdir()
    for f in files:
        target = dst / subdir / os.path.basename(f)
        if link:
            os.link(f, target)
        else:
            shutil.copyfile(f, target)
    after = _depmod_warnings(depmod, base, version, symvers, conf)
    return {(modname_from_path(path), sym) for path, sym in after - before}


@pytest.fixture(scope="module")
def depmod() -> str:
    d = kmod30_depmod()
    if d is None:
        pytest.skip("kmod 30's depmod is not installed")
    return d


# --------------------------------------------------------------------------
# The sample tree
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> Tree:
    return scan_tree(str(SAMPLE_TREE), jobs=1)


@pytest.fixture(scope="module")
def sample_kernel() -> KernelSymbols:
    return load_kernel_symbols(str(SAMPLE_SYMVERS), "symvers")


def by_module(r: CompatResult) -> dict[str, Verdict]:
    return {v.module: v for v in r.verdicts}


def kinds_of(r: CompatResult, module: str) -> list[tuple[str, str, tuple[str, ...]]]:
    return sorted((f.kind, f.severity, f.symbols) for f in r.findings if f.modules[0] == module)


def test_sample_modules_against_the_sample_tree(sample: Tree, sample_kernel: KernelSymbols) -> None:
    names = ["mdx_oldkernel", "mdx_consumer", "mdx_proprietary", "mdx_nsmissing", "mdx_unknown", "mdx_exporter"]
    r = compat_check([str(MDX / f"{n}.ko") for n in names], sample, sample_kernel)
    v = {x.module: x for x in r.verdicts}
    assert [x.module for x in r.verdicts] == names
    assert {n for n, x in v.items() if x.loads} == {"mdx_consumer", "mdx_exporter"}
    # module_layout is checked first (check_modstruct_version): nothing else is logged
    assert v["mdx_oldkernel"].kernel_log == ("mdx_oldkernel: disagrees about version of symbol module_layout",)
    assert v["mdx_oldkernel"].errno == "ENOEXEC" and v["mdx_oldkernel"].reasons == ("crc-mismatch",)
    assert kinds_of(r, "mdx_oldkernel") == [("crc-mismatch", "error", ("module_layout",)),
                                            ("vermagic-mismatch", "info", ())]
    assert v["mdx_proprietary"].kernel_log == (
        "mdx_proprietary: loading out-of-tree module taints kernel.",
        "mdx_proprietary: module license 'Proprietary' taints kernel.",
        "mdx_proprietary: Unknown symbol mdx_gpl_mul (err -2)")
    assert v["mdx_nsmissing"].kernel_log[-2:] == (
        "mdx_nsmissing: module uses symbol (mdx_ns_version) from namespace MDX_CORE, but does not import it.",
        "mdx_nsmissing: Unknown symbol mdx_ns_version (err -22)")
    assert v["mdx_nsmissing"].errno == "EINVAL"
    assert v["mdx_unknown"].kernel_log[-1] == "mdx_unknown: Unknown symbol mdx_does_not_exist (err -2)"
    assert v["mdx_unknown"].errno == "ENOENT"
    # kernel/.../mdx_consumer.ko takes the place of updates/mdx_consumer.ko (the tree's winner)
    assert v["mdx_consumer"].replaces == "updates/mdx_consumer.ko"
    assert v["mdx_exporter"].replaces == "kernel/samples/mdx/mdx_exporter.ko"
    assert r.broken_in_tree == ()
    assert r.depmod_pairs() == {("mdx_oldkernel", "module_layout"), ("mdx_unknown", "mdx_does_not_exist")}
    assert r.exit_status() == 1
    assert any("already has" in n for n in r.notes)
    ns = next(f for f in r.findings if f.kind == "namespace-not-imported")
    assert ns.modules == ("mdx_nsmissing", "mdx_exporter") and ns.details["fix"] == "MODULE_IMPORT_NS(MDX_CORE);"


def test_the_tree_own_files_change_nothing(sample: Tree, sample_kernel: KernelSymbols) -> None:
    """Re-installing the tree's good modules: everything loads, nothing breaks, exit 0."""
    paths = [str(SAMPLE_TREE / f.shown) for f, m in zip(sample.files, sample.modules)
             if m.name in ("mdx_exporter", "mdx_consumer", "mdx_softdep", "mdx_dup_a", "mdx_dup_user")]
    r = compat_check(paths, sample, sample_kernel)
    assert all(v.loads for v in r.verdicts) and r.findings == () and r.exit_status() == 0


def test_a_new_exporter_breaks_in_tree_users(tmp_path: Path, sample: Tree, sample_kernel: KernelSymbols) -> None:
    files = put_files(tmp_path / "files", {"mdx_exporter.ko": ko(
        "mdx_exporter", vermagic="6.1.0-50-cloud-amd64 SMP preempt mod_unload modversions ", needs=["_printk"],
        exports=[exp("mdx_plain_add", c=0x1234), exp("mdx_ns_version", gpl=True, ns="MDX_CORE", c=0xF09E15E7)])})
    r = compat_check(files, sample, sample_kernel)
    (v,) = r.verdicts
    assert v.loads and v.breaks == ("mdx_consumer",)
    assert r.broken_in_tree == ("mdx_consumer",)  # proprietary and oldkernel did not load before either
    assert r.depmod_pairs() == {("mdx_consumer", "mdx_plain_add"), ("mdx_oldkernel", "mdx_plain_add"),
                                ("mdx_proprietary", "mdx_plain_add"), ("mdx_proprietary", "mdx_gpl_mul")}
    crc_f = next(f for f in r.findings if f.kind == "crc-mismatch" and f.modules[0] == "mdx_consumer")
    assert crc_f.modules == ("mdx_consumer", "mdx_exporter") and crc_f.details["scope"] == "in-tree"
    assert crc_f.details["symbols_detail"] == [{"symbol": "mdx_plain_add", "module_crc": "0x0e3a17d5",
                                                "provider_crc": "0x00001234", "provider": "mdx_exporter"}]
    assert crc_f.details["kernel_log"] == ["mdx_consumer: disagrees about version of symbol mdx_plain_add",
                                           "mdx_consumer: Unknown symbol mdx_plain_add (err -22)"]
    gone = next(f for f in r.findings if f.kind == "unknown-symbol")
    assert gone.modules == ("mdx_proprietary", "mdx_exporter") and "its replacement does not" in gone.message
    assert r.exit_status() == 1


# --------------------------------------------------------------------------
# Synthetic trees: one rule at a time
# --------------------------------------------------------------------------


@pytest.fixture()
def small(tmp_path: Path) -> tuple[Tree, KernelSymbols, Path]:
    """core exports core_fn (+ GPL core_gpl, + core_ns in namespace CORE); user needs core_fn."""
    md = make_tree(tmp_path / "root", {
        "kernel/core.ko": ko("core", needs=["_printk"],
                             exports=[exp("core_fn"), exp("core_gpl", gpl=True), exp("core_ns", ns="CORE")]),
        "kernel/user.ko": ko("user", needs=["core_fn", "_printk"]),
        "kernel/nsuser.ko": ko("nsuser", needs=["core_ns"], import_ns=["CORE"]),
    })
    symvers = write_symvers(tmp_path / "Module.symvers")
    return scan_tree(str(md), jobs=1), load_kernel_symbols(str(symvers), "symvers"), symvers


def check(tmp_path: Path, small: tuple[Tree, KernelSymbols, Path], mods: dict[str, bytes]) -> CompatResult:
    tree, kernel, _ = small
    return compat_check(put_files(tmp_path / "files", mods), tree, kernel)


def test_clean_out_of_tree_module_loads(tmp_path: Path, small: tuple[Tree, KernelSymbols, Path]) -> None:
    r = check(tmp_path, small, {"ext.ko": ko("ext", needs=["core_fn", "ktime_get", "k_ns_fn"], import_ns=["KNS"])})
    (v,) = r.verdicts
    assert v.loads and v.replaces is None and r.findings == () and r.exit_status() == 0
    assert v.kernel_log == ("ext: loading out-of-tree module taints kernel.",)


def test_kernel_checks_one_by_one(tmp_path: Path, small: tuple[Tree, KernelSymbols, Path]) -> None:
    r = check(tmp_path, small, {
        "unk.ko": ko("unk", needs=["nowhere", ("weak_nowhere", True)]),
        "crc.ko": ko("crc", needs=["core_fn", "_printk"], crcs={"core_fn": 1, "_printk": 2}),
        "prop.ko": ko("prop", needs=["core_gpl", "ktime_get", "core_fn"], licence="Proprietary"),
        "nolic.ko": ko("nolic", needs=["ktime_get"], licence=None),
        "ns.ko": ko("ns", needs=["core_ns", "k_ns_fn"]),
        "dual.ko": ko("dual", needs=["core_gpl"], licence="Dual MIT/GPL"),
    })
    v = by_module(r)
    assert kinds_of(r, "unk") == [("unknown-symbol", "error", ("nowhere",))]  # weak symbols may stay unresolved
    assert kinds_of(r, "crc") == [("crc-mismatch", "error", ("core_fn", "_printk"))]
    assert kinds_of(r, "prop") == [("gpl-only-misuse", "error", ("core_gpl", "ktime_get"))]
    assert kinds_of(r, "nolic") == [("gpl-only-misuse", "error", ("ktime_get",))]
    assert "module license 'unspecified' taints kernel." in v["nolic"].kernel_log[1]
    ns = sorted((f.symbols, f.details["namespace"]) for f in r.findings if f.modules[0] == "ns")
    assert ns == [(("core_ns",), "CORE"), (("k_ns_fn",), "KNS")]
    assert v["dual"].loads
    assert {m for m, x in v.items() if not x.loads} == {"unk", "crc", "prop", "nolic", "ns"}


def test_vermagic_rules() -> None:
    def mod(vm: str | None, versions: bool = True) -> Module:
        imps = (Import("module_layout", LAYOUT if versions else None, False, True),)
        return Module("m", "m.ko", imports=imps, modinfo=(("vermagic", vm),) if vm is not None else ())

    kmagic = "6.1.0-50-cloud-amd64 SMP preempt mod_unload modversions "
    assert vermagic_problem(mod(kmagic), kmagic, "6.1.0-50-cloud-amd64") is None
    # same_magic() with has_crcs: the release is not compared
    p = vermagic_problem(mod("6.1.0-47-cloud-amd64 SMP preempt mod_unload modversions "), kmagic,
                         "6.1.0-50-cloud-amd64")
    assert p is not None and not p.blocking and p.detail["release_only"]
    # ... but everything after it is
    p = vermagic_problem(mod("6.1.0-50-cloud-amd64 SMP mod_unload modversions "), kmagic, "6.1.0-50-cloud-amd64")
    assert p is not None and p.blocking and p.errno == "ENOEXEC"
    assert p.log == ("m: version magic '6.1.0-50-cloud-amd64 SMP mod_unload modversions ' should be "
                     f"'{kmagic}'",)
    # without __versions the whole string counts
    p = vermagic_problem(mod("6.1.0-47-cloud-amd64 SMP preempt mod_unload modversions ", versions=False), kmagic,
                         "6.1.0-50-cloud-amd64")
    assert p is not None and p.blocking
    # a kernel without CONFIG_MODVERSIONS compares whole strings too
    plain = "6.1.0-50 SMP preempt mod_unload "
    p = vermagic_problem(mod("6.1.0-47 SMP preempt mod_unload "), plain, "6.1.0-50")
    assert p is not None and p.blocking
    p = vermagic_problem(mod(None), kmagic, "6.1.0-50-cloud-amd64")
    assert p is not None and p.blocking
    # the kernel's vermagic unknown: only the release is compared
    p = vermagic_problem(mod("6.1.0-47 SMP "), None, "6.1.0-50")
    assert p is not None and not p.blocking


def test_vermagic_arch_and_missing_versions(tmp_path: Path, small: tuple[Tree, KernelSymbols, Path]) -> None:
    r = check(tmp_path, small, {
        "arm.ko": ko("arm", needs=["core_fn"], machine=183),
        "nover.ko": ko("nover", needs=["core_fn"], versions=False),
        "flags.ko": ko("flags", needs=["core_fn"], vermagic=f"{VER} SMP mod_unload modversions "),
        "oldrel.ko": ko("oldrel", needs=["core_fn"], vermagic="6.1.0-1-test SMP preempt mod_unload modversions "),
    })
    v = by_module(r)
    arm = next(f for f in r.findings if f.modules[0] == "arm" and f.kind == "vermagic-mismatch")
    assert arm.details["reason"] == "architecture" and "AArch64" in arm.message
    assert v["arm"].kernel_log == ("Invalid architecture in ELF header: 183",)
    assert not v["nover"].loads and not v["flags"].loads
    assert v["flags"].kernel_log[-1].startswith("flags: version magic")
    assert v["oldrel"].loads
    assert kinds_of(r, "oldrel") == [("vermagic-mismatch", "info", ())]
    assert kernel_vermagic(small[0]) == VM


def test_dependencies_and_cycles(tmp_path: Path, small: tuple[Tree, KernelSymbols, Path]) -> None:
    r = check(tmp_path, small, {
        "base.ko": ko("base", needs=["nowhere"], exports=[exp("base_fn")]),
        "top.ko": ko("top", needs=["base_fn"]),
        "ca.ko": ko("ca", needs=["cb_fn"], exports=[exp("ca_fn")]),
        "cb.ko": ko("cb", needs=["ca_fn"], exports=[exp("cb_fn")]),
    })
    v = by_module(r)
    assert v["top"].reasons == ("dependency",) and v["top"].needs_failing == ("base",)
    assert not v["top"].loads and v["top"].kernel_log == ()
    cycles = [f for f in r.findings if f.kind == "cycle"]
    assert [f.modules for f in cycles] == [("ca", "cb")]
    assert not v["ca"].loads and not v["cb"].loads


def test_replacing_a_module_breaks_its_users(tmp_path: Path, small: tuple[Tree, KernelSymbols, Path]) -> None:
    r = check(tmp_path, small, {"core.ko": ko("core", needs=["_printk"], exports=[
        exp("core_fn", c=7), exp("core_ns", ns="OTHER")])})
    (v,) = r.verdicts
    assert v.loads and v.replaces == "kernel/core.ko"
    assert set(v.breaks) == {"user", "nsuser"} == set(r.broken_in_tree)
    assert kinds_of(r, "user") == [("crc-mismatch", "error", ("core_fn",))]
    assert kinds_of(r, "nsuser") == [("namespace-not-imported", "error", ("core_ns",))]
    assert all(f.details["scope"] == "in-tree" for f in r.findings)


def test_a_replacement_that_does_not_load_breaks_its_users(tmp_path: Path,
                                                           small: tuple[Tree, KernelSymbols, Path]) -> None:
    r = check(tmp_path, small, {"core.ko": ko("core", needs=["nowhere"], exports=[
        exp("core_fn"), exp("core_gpl", gpl=True), exp("core_ns", ns="CORE")])})
    (v,) = r.verdicts
    assert not v.loads and set(v.breaks) == {"user", "nsuser"}
    assert r.depmod_pairs() == {("core", "nowhere")}  # depmod says nothing about the users


def test_duplicate_of_a_kernel_export(tmp_path: Path, small: tuple[Tree, KernelSymbols, Path]) -> None:
    r = check(tmp_path, small, {"dup.ko": ko("dup", exports=[exp("jiffies")])})
    (v,) = r.verdicts
    assert not v.loads and v.kernel_log[-1] == "dup: exports duplicate symbol jiffies (owned by kernel)"


def test_a_builtin_name_is_never_loaded(tmp_path: Path) -> None:
    md = make_tree(tmp_path / "root", {"kernel/a.ko": ko("a")})
    (md / "modules.builtin").write_text("kernel/fs/bi.ko\n")
    symvers = write_symvers(tmp_path / "Module.symvers")
    r = compat_check(put_files(tmp_path / "files", {"bi.ko": ko("bi", needs=["_printk"])}),
                     scan_tree(str(md), jobs=1), load_kernel_symbols(str(symvers), "symvers"))
    (v,) = r.verdicts
    assert not v.loads and v.reasons == ("duplicate-module",) and v.kernel_log == ()
    assert "built into the kernel" in r.findings[0].message


def test_depmod_versus_kernel_on_missing_crcs(tmp_path: Path, small: tuple[Tree, KernelSymbols, Path]) -> None:
    """depmod compares a missing CRC as 0; the kernel accepts it (check_version): a warning, the module loads."""
    r = check(tmp_path, small, {"norec.ko": ko("norec", needs=["core_fn"], crcs={"core_fn": None})})
    (v,) = r.verdicts
    assert v.loads and v.kernel_log[-1] == "norec: no symbol version for core_fn"
    assert kinds_of(r, "norec") == [("crc-mismatch", "warning", ("core_fn",))]
    assert r.depmod_pairs() == {("norec", "core_fn")}


def test_without_kernel_symbols_and_with_system_map(tmp_path: Path, small: tuple[Tree, KernelSymbols, Path]) -> None:
    tree, _, _ = small
    files = put_files(tmp_path / "files", {"x.ko": ko("x", needs=["core_fn", "vmlinux_only"], crcs={"core_fn": 3})})
    r = compat_check(files, tree, None)
    assert kinds_of(r, "x") == [("crc-mismatch", "error", ("core_fn",))]  # between modules: still checked
    assert any("no kernel symbol list" in n for n in r.notes)
    smap = tmp_path / "System.map"
    smap.write_text("".join(f"ffffffff81000000 r __ksymtab_{n}\n" for n in KERNEL))
    r = compat_check(files, tree, load_kernel_symbols(str(smap), "system.map"))
    # a System.map has no CRCs (depmod -F checks none); between modules the kernel still compares them
    assert kinds_of(r, "x") == [("crc-mismatch", "error", ("core_fn",)), ("unknown-symbol", "error", ("vmlinux_only",))]
    assert any("System.map" in n for n in r.notes)


def test_two_files_of_one_module_is_a_usage_error(tmp_path: Path, small: tuple[Tree, KernelSymbols, Path]) -> None:
    a = put_files(tmp_path / "a", {"x.ko": ko("x")})
    b = put_files(tmp_path / "b", {"x.ko.xz": ko("x")})
    with pytest.raises(UsageError):
        compat_check(a + b, small[0], small[1])


def test_broken_file(tmp_path: Path, small: tuple[Tree, KernelSymbols, Path]) -> None:
    r = check(tmp_path, small, {"junk.ko": b"not an elf file at all"})
    (v,) = r.verdicts
    assert not v.loads and v.reasons == ("broken-file",) and v.errno == "ENOEXEC"


def test_matrix_and_json(tmp_path: Path, small: tuple[Tree, KernelSymbols, Path], sample: Tree,
                         sample_kernel: KernelSymbols) -> None:
    files = put_files(tmp_path / "files", {"ext.ko": ko("ext", needs=["_printk", "core_fn"])})
    results = compat_matrix(read_files(files), [(small[0], small[1]), (sample, sample_kernel)])
    assert [(r.kernel, r.verdicts[0].loads) for r in results] == [(VER, True), ("6.1.0-50-cloud-amd64", False)]
    assert matrix_exit_status(results) == 1 and matrix_exit_status(results[:1]) == 0
    doc = compat_document(results)
    json.dumps(doc)
    assert doc["schema"] == 1
    assert [(v["file"], v["module"], v["kernel"], v["loads"]) for v in doc["verdicts"]] == [
        (files[0], "ext", VER, True), (files[0], "ext", "6.1.0-50-cloud-amd64", False)]
    finding_schema = {**AUDIT_SCHEMA["$defs"]["finding"], "$defs": AUDIT_SCHEMA["$defs"]}
    assert doc["findings"]
    for f in doc["findings"]:
        jsonschema.validate(f, finding_schema)
        assert f["details"]["kernel"] == "6.1.0-50-cloud-amd64"
    unknown = next(f for f in doc["findings"] if f["kind"] == "unknown-symbol")
    assert unknown["modules"] == ["ext"] and unknown["symbols"] == ["core_fn"]


def test_rendering(tmp_path: Path, small: tuple[Tree, KernelSymbols, Path], sample: Tree,
                   sample_kernel: KernelSymbols) -> None:
    files = put_files(tmp_path / "files", {"ext.ko": ko("ext", needs=["_printk", "core_fn"])})
    for targets in ([(small[0], small[1])], [(small[0], small[1]), (sample, sample_kernel)]):
        con = Console(record=True, width=140)
        render_compat(con, compat_matrix(files, targets))
        text = con.export_text()
        assert "ext" in text and "file(s) on" in text
    assert "no: unknown-symbol" in text and "loads" in text


def test_discover_kernel_symbols(tmp_path: Path) -> None:
    base = tmp_path / "root"
    md = make_tree(base, {"kernel/a.ko": ko("a")})
    assert discover_kernel_symbols(str(md)) is None
    hdr = base / "usr" / "src" / f"linux-headers-{VER}"
    hdr.mkdir(parents=True)
    write_symvers(hdr / "Module.symvers")
    (md / "build").symlink_to(f"/usr/src/linux-headers-{VER}")  # absolute, as Debian installs it
    k = discover_kernel_symbols(str(md))
    assert k is not None and k.kind == "symvers" and k.source == f"{base}/usr/src/linux-headers-{VER}/Module.symvers"
    assert "ktime_get" in k.symbols
    (md / "build").unlink()
    (hdr / "Module.symvers").unlink()
    (base / "boot").mkdir()
    (base / "boot" / f"System.map-{VER}").write_text("ffffffff81000000 r __ksymtab_jiffies\n")
    k = discover_kernel_symbols(str(md))
    assert k is not None and k.kind == "system.map"


# --------------------------------------------------------------------------
# Against the real depmod
# --------------------------------------------------------------------------


def test_pairs_equal_depmod_on_the_sample_tree(depmod: str, tmp_path: Path, sample: Tree,
                                               sample_kernel: KernelSymbols) -> None:
    files = [str(p) for p in sorted(MDX.glob("*.ko"))]
    files += put_files(tmp_path / "files", {"mdx_exporter.ko": ko(
        "mdx_exporter", needs=["_printk"], exports=[exp("mdx_plain_add", c=0x1234), exp("mdx_dup_hello", c=5)])})
    files = [f for f in files if not f.endswith("/mdx_exporter.ko") or "files" in f]
    r = compat_check(files, sample, sample_kernel, subdir="compat-files")
    expected = depmod_new_pairs(depmod, SAMPLE_TREE, SAMPLE_SYMVERS, files, tmp_path / "work")
    assert r.depmod_pairs() == expected
    assert len(expected) >= 6


def test_pairs_equal_depmod_on_a_synthetic_tree(depmod: str, tmp_path: Path,
                                                small: tuple[Tree, KernelSymbols, Path]) -> None:
    tree, kernel, symvers = small
    files = put_files(tmp_path / "files", {
        "core.ko": ko("core", needs=["_printk", "gone"], exports=[exp("core_fn", c=9), exp("core_ns", ns="CORE")]),
        "norec.ko": ko("norec", needs=["core_fn", ("weak_x", True)], crcs={"core_fn": None}),
        "lay.ko": ko("lay", needs=["jiffies"], layout=1),
        "ext.ko": ko("ext", needs=["core_gpl", "ktime_get"], crcs={"ktime_get": 4}),
    })
    r = compat_check(files, tree, kernel, subdir="compat-files")
    expected = depmod_new_pairs(depmod, Path(tree.dirname), symvers, files, tmp_path / "work")
    assert r.depmod_pairs() == expected
    assert ("user", "core_fn") in expected and ("ext", "core_gpl") in expected


# --------------------------------------------------------------------------
# The command line (once the commands are wired into moddeps.cli)
# --------------------------------------------------------------------------


def _cli(name: str) -> object:
    import typer

    from moddeps.cli import app

    if name not in typer.main.get_command(app).commands:  # type: ignore[attr-defined]
        pytest.skip(f"moddeps {name} is not wired into the CLI yet")
    return app


def test_cli_compat(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    app = _cli("compat")
    runner = CliRunner()
    args = [str(MDX / "mdx_oldkernel.ko"), str(MDX / "mdx_consumer.ko"), str(SAMPLE_TREE),
            "--symvers", str(SAMPLE_SYMVERS), "--no-cache"]
    r = runner.invoke(app, ["compat", *args, "--json"])  # type: ignore[arg-type]
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert [(v["module"], v["loads"]) for v in doc["verdicts"]] == [("mdx_oldkernel", False), ("mdx_consumer", True)]
    r = runner.invoke(app, ["compat", *args[1:]])  # type: ignore[arg-type]
    assert r.exit_code == 0, r.output
    assert "mdx_consumer" in r.stdout
    r = runner.invoke(app, ["compat", str(MDX / "mdx_consumer.ko"), "--against",  # type: ignore[arg-type]
                            f"{SAMPLE_TREE}:{SAMPLE_SYMVERS}", "--against", str(SAMPLE_TREE), "--no-cache", "--json"])
    assert r.exit_code == 0, r.output
    assert [v["loads"] for v in json.loads(r.stdout)["verdicts"]] == [True, True]
    assert runner.invoke(app, ["compat", str(SAMPLE_TREE)]).exit_code == 64  # type: ignore[arg-type]
    assert runner.invoke(app, ["compat", str(tmp_path / "no.ko"), str(SAMPLE_TREE)]).exit_code == 66  # type: ignore[arg-type]


def test_cli_diff(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    app = _cli("diff")
    runner = CliRunner()
    old = write_symvers(tmp_path / "old.symvers")
    new = write_symvers(tmp_path / "new.symvers", {**KERNEL, "_printk": (1, "EXPORT_SYMBOL", "")})
    r = runner.invoke(app, ["diff", str(old), str(new), "--json"])  # type: ignore[arg-type]
    assert r.exit_code == 1, r.output
    assert json.loads(r.stdout)["changes"] == [{"kind": "crc-changed", "module": "vmlinux", "symbol": "_printk",
                                                "old": "0x92997ed8", "new": "0x00000001", "incompatible": True}]
    assert runner.invoke(app, ["diff", str(old), str(old)]).exit_code == 0  # type: ignore[arg-type]
    assert runner.invoke(app, ["diff", str(old), str(tmp_path / "missing")]).exit_code == 66  # type: ignore[arg-type]
    r = runner.invoke(app, ["diff", str(SAMPLE_TREE), str(SAMPLE_TREE), "--no-cache"])  # type: ignore[arg-type]
    assert r.exit_code == 0 and "0 change(s)" in r.stdout
