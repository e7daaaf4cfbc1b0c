"""``compat``: the in-tree modules a file breaks add up to the headline's count.

A chain core <- mid <- top: a new core with another CRC for core_fn breaks mid
(a CRC mismatch) and, as modprobe loads dependencies first, top with it.  The
headline, the verdict's ``breaks`` (rows and JSON) and ``broken_in_tree`` all
say both (the headline said 2 while the verdict named only mid).
"""

from __future__ import annotations

from pathlib import Path

from moddeps.compat import compat_check
from moddeps.kernelsyms import load_kernel_symbols
from moddeps.read.scan import scan_tree
from moddeps.report.compat import compat_document, compat_lines

from .test_compat import exp, ko, make_tree, put_files, write_symvers


def test_dependents_of_a_broken_module_are_counted_once_everywhere(tmp_path: Path) -> None:
    md = make_tree(tmp_path / "root", {
        "kernel/core.ko": ko("core", needs=["_printk"], exports=[exp("core_fn")]),
        "kernel/mid.ko": ko("mid", needs=["core_fn"], exports=[exp("mid_fn")]),
        "kernel/top.ko": ko("top", needs=["mid_fn"]),
        "kernel/other.ko": ko("other", needs=["_printk"]),
    })
    kernel = load_kernel_symbols(str(write_symvers(tmp_path / "Module.symvers")), "symvers")
    files = put_files(tmp_path / "files", {"core.ko": ko("core", needs=["_printk"],
                                                          exports=[exp("core_fn", c=0x1234)])})
    r = compat_check(files, scan_tree(str(md), jobs=1), kernel)
    (v,) = r.verdicts
    assert v.loads and v.breaks == ("mid", "top") and r.broken_in_tree == ("mid", "top")
    lines = compat_lines([r])
    assert "2 in-tree module(s) would no longer load" in lines[0]
    assert sorted(line.split("\t")[3] for line in lines if line.startswith("breaks\t")) == ["mid", "top"]
    doc = compat_document([r])
    assert doc["kernels"][0]["broken_in_tree"] == ["mid", "top"] and doc["verdicts"][0]["breaks"] == ["mid", "top"]
    assert r.exit_status() == 1


def test_two_files_each_named_for_what_they_break(tmp_path: Path) -> None:
    md = make_tree(tmp_path / "root", {
        "kernel/a.ko": ko("a", needs=["_printk"], exports=[exp("a_fn")]),
        "kernel/b.ko": ko("b", needs=["_printk"], exports=[exp("b_fn")]),
        "kernel/ua.ko": ko("ua", needs=["a_fn"]),
        "kernel/ub.ko": ko("ub", needs=["b_fn"], exports=[exp("ub_fn")]),
        "kernel/uub.ko": ko("uub", needs=["ub_fn"]),
    })
    kernel = load_kernel_symbols(str(write_symvers(tmp_path / "Module.symvers")), "symvers")
    files = put_files(tmp_path / "files", {"a.ko": ko("a", needs=["_printk"], exports=[exp("a_fn", c=1)]),
                                           "b.ko": ko("b", needs=["_printk"], exports=[exp("b_fn", c=2)])})
    r = compat_check(files, scan_tree(str(md), jobs=1), kernel)
    by = {v.module: v.breaks for v in r.verdicts}
    assert by == {"a": ("ua",), "b": ("ub", "uub")}
    assert set(r.broken_in_tree) == {b for v in r.verdicts for b in v.breaks}
