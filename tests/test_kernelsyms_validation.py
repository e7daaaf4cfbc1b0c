"""A kernel symbol list that is not one is refused, never read as "the kernel exports nothing"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from moddeps.compat import find_kernel_symbols
from moddeps.errors import InputError
from moddeps.kernelsyms import KernelSymbolsError, load_kernel_symbols, validate

DATA = Path(__file__).parent / "data"
PLACEHOLDER = DATA / "kernelsyms" / "System.map-6.12.117+deb13-cloud-amd64"
SAMPLE = Path(__file__).parent.parent / "sample_modules"
TREE = SAMPLE / "lib" / "modules" / "6.1.0-50-cloud-amd64"
SYMVERS = SAMPLE / "symvers" / "Module.symvers-6.1.0-50-cloud-amd64"
GOOD_MAP = "ffffffff81000000 T _text\nffffffff82a0b0c0 r __ksymtab_printk\nffffffff82a0b0cc r __ksymtab_kfree\n"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "moddeps", *args], capture_output=True, text=True,
                          env={**os.environ, "MODDEPS_CACHE": "/nonexistent/none"}, timeout=120)


def test_the_placeholder_is_the_debian_file() -> None:
    data = PLACEHOLDER.read_bytes()
    assert len(data) == 83 and b"linux-image-<version>-dbg" in data


def test_placeholder_system_map_refused() -> None:
    with pytest.raises(KernelSymbolsError) as err:
        load_kernel_symbols(str(PLACEHOLDER), "system.map")
    assert isinstance(err.value, InputError) and err.value.exit_status == 66
    text = str(err.value)
    assert str(PLACEHOLDER) in text and "placeholder" in text and "\n" not in text


@pytest.mark.parametrize(("data", "kind", "why"), [
    (b"", "symvers", "empty"),
    (b"\x7fELF\x02\x01\x01" + b"\0" * 60, "symvers", "binary"),
    (b"0x12345678\tprintk\tvmlinux\n", "symvers", "3 tab-separated"),
    (b"0x12345678 printk vmlinux EXPORT_SYMBOL\n", "symvers", "1 tab-separated"),
    (b"0x12345678\tmy_fn\tdrivers/x/my\tEXPORT_SYMBOL\t\n", "symvers", "no export of vmlinux"),
    (b"ffffffff81000000 T _text\n", "system.map", "no __ksymtab_"),
    (b"hello world\n", "system.map", "line 1"),
])
def test_junk_refused(data: bytes, kind: str, why: str) -> None:
    with pytest.raises(KernelSymbolsError, match=why):
        validate(data, "F", kind)


def test_real_lists_accepted(tmp_path: Path) -> None:
    validate(SYMVERS.read_bytes(), str(SYMVERS), "symvers")
    # the 4-column form of kernels before namespaces (Linux < 5.4)
    validate(b"0x1\tprintk\tvmlinux\tEXPORT_SYMBOL\n", "old", "symvers")
    smap = tmp_path / "System.map"
    smap.write_text(GOOD_MAP)
    k = load_kernel_symbols(str(smap), "system.map")
    assert sorted(k.symbols) == ["kfree", "printk"]


def test_audit_refuses_placeholder_and_junk() -> None:
    r = run("audit", "--system-map", str(PLACEHOLDER), str(TREE))
    assert r.returncode == 66, r.stderr
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(PLACEHOLDER) in lines[0] and "not a usable System.map" in lines[0]
    garbage = next(TREE.rglob("*.ko"))
    r = run("audit", "--symvers", str(garbage), str(TREE))
    assert r.returncode == 66 and "not a usable Module.symvers" in r.stderr


def test_compat_passes_over_an_auto_found_placeholder(tmp_path: Path) -> None:
    root = tmp_path / "root"
    tree = root / "lib" / "modules" / "6.1.0-50-cloud-amd64"
    tree.parent.mkdir(parents=True)
    os.symlink(TREE, tree)
    (root / "boot").mkdir()
    (root / "boot" / "System.map-6.1.0-50-cloud-amd64").write_bytes(PLACEHOLDER.read_bytes())
    kernel, notes = find_kernel_symbols(str(tree), str(root))
    assert kernel is None
    assert len(notes) == 1 and "not a usable System.map" in notes[0] and notes[0].endswith("; ignored")
    # a usable one is used, and named
    (root / "boot" / "System.map-6.1.0-50-cloud-amd64").write_text(GOOD_MAP)
    kernel, notes = find_kernel_symbols(str(tree), str(root))
    assert kernel is not None and kernel.kind == "system.map"
    assert len(notes) == 1 and "System.map-6.1.0-50-cloud-amd64 (found" in notes[0]


def test_compat_verdict_says_kernel_symbols_unchecked(tmp_path: Path) -> None:
    from moddeps.compat import compat_check
    from moddeps.read.scan import scan_tree

    target = scan_tree(str(TREE), jobs=1)
    noexit = str(TREE / "kernel" / "samples" / "mdx" / "mdx_noexit.ko")
    r = compat_check([noexit], target, None)
    (v,) = r.verdicts
    assert v.loads and v.summary == "loads (kernel symbols unchecked)"
    assert "kernel-symbols" not in v.checked and "module-symbols" in v.checked
    r = compat_check([noexit], target, load_kernel_symbols(str(SYMVERS), "symvers"))
    (v,) = r.verdicts
    assert "kernel-symbols" in v.checked and "kernel-crcs" in v.checked
    assert v.summary == ("loads" if v.loads else "no: " + ", ".join(v.reasons))
    assert r.checked == v.checked
