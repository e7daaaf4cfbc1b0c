"""``diff``: module ABI changes between two trees and/or Module.symvers files (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from moddeps.abidiff import (
    Change,
    diff,
    diff_sides,
    export_changes,
    load_side,
    location,
    side_from_symvers,
    side_from_tree,
)
from moddeps.errors import InputError
from moddeps.read.scan import scan_tree
from moddeps.report.compat import diff_document, render_diff

from .kobuild import Export, build_ko

REPO = Path(__file__).resolve().parent.parent
SAMPLE_TREE = REPO / "sample_modules" / "lib" / "modules" / "6.1.0-50-cloud-amd64"
SAMPLE_SYMVERS = REPO / "sample_modules" / "symvers" / "Module.symvers-6.1.0-50-cloud-amd64"


def ko(*, exports: list[Export] | None = None, needs: list[str] | None = None) -> bytes:
    return build_ko(modinfo=[("license", "GPL")], exports=exports or [], undefined=needs or [])


def tree(root: Path, version: str, mods: dict[str, bytes]) -> Path:
    md = root / "lib" / "modules" / version
    for rel, data in mods.items():
        (md / rel).parent.mkdir(parents=True, exist_ok=True)
        (md / rel).write_bytes(data)
    (md / "modules.order").write_text("".join(f"{r}\n" for r in mods))
    return md


def keys(changes: list[Change]) -> list[tuple[str, str, str | None, str | None, str | None]]:
    return [c.key() for c in changes]


@pytest.fixture()
def two_trees(tmp_path: Path) -> tuple[Path, Path]:
    old = tree(tmp_path / "old", "1.0", {
        "kernel/a.ko": ko(exports=[Export(name="a_fn", crc=1), Export(name="a_gone", crc=2),
                                   Export(name="a_gpl", crc=3), Export(name="a_ns", crc=4, namespace="NS1"),
                                   Export(name="a_moves", crc=5)]),
        "kernel/b.ko": ko(needs=["a_fn"]),
        "kernel/old/c.ko": ko(exports=[Export(name="c_fn", crc=6)]),
        "kernel/removed.ko": ko(needs=["c_fn"]),
    })
    new = tree(tmp_path / "new", "1.1", {
        "kernel/a.ko": ko(exports=[Export(name="a_fn", crc=10), Export(name="a_gpl", crc=3, gpl=True),
                                   Export(name="a_ns", crc=4, namespace="NS2"), Export(name="a_new", crc=7)]),
        "kernel/b.ko": ko(needs=["a_fn", "c_fn"]),
        "kernel/new/c.ko.xz": ko(exports=[Export(name="c_fn", crc=6), Export(name="a_moves", crc=5)]),
        "kernel/added.ko": ko(),
    })
    return old, new


def test_two_trees(two_trees: tuple[Path, Path]) -> None:
    old, new = (side_from_tree(scan_tree(str(p), jobs=1)) for p in two_trees)
    changes = diff_sides(old, new)
    assert keys(changes) == [
        ("module-added", "added", None, None, "kernel/added"),
        ("module-removed", "removed", None, "kernel/removed", None),
        ("module-moved", "c", None, "kernel/old/c", "kernel/new/c"),
        ("export-added", "a", "a_new", None, "0x00000007"),
        ("export-added", "c", "a_moves", None, "0x00000005"),
        ("export-removed", "a", "a_gone", "0x00000002", None),
        ("export-removed", "a", "a_moves", "0x00000005", None),
        ("crc-changed", "a", "a_fn", "0x00000001", "0x0000000a"),
        ("export-type-changed", "a", "a_gpl", "EXPORT_SYMBOL", "EXPORT_SYMBOL_GPL"),
        ("namespace-changed", "a", "a_ns", "NS1", "NS2"),
        ("dependency-added", "b", None, None, "c"),
        ("dependency-removed", "removed", None, "c", None),
    ]
    incompatible = {(c.kind, c.symbol) for c in changes if c.incompatible}
    # a_moves is still exported (by c) with its CRC: its users just bind to c
    assert incompatible == {("export-removed", "a_gone"), ("crc-changed", "a_fn"),
                            ("export-type-changed", "a_gpl"), ("namespace-changed", "a_ns")}
    dep = next(c for c in changes if c.kind == "dependency-added")
    assert dep.symbols == ("c_fn",)
    result = diff(old, new)
    assert result.exit_status() == 1
    assert diff(new, new).exit_status() == 0 and diff(new, new).changes == ()
    assert any("vmlinux" in n for n in result.notes)


def test_relaxing_changes_are_compatible(tmp_path: Path) -> None:
    old = side_from_symvers("old", b"0x1\ta\tvmlinux\tEXPORT_SYMBOL_GPL\tNS\n0x2\tb\tfs/x\tEXPORT_SYMBOL\t\n")
    new = side_from_symvers("new", b"0x1\ta\tvmlinux\tEXPORT_SYMBOL\t\n0x2\tb\tfs/x\tEXPORT_SYMBOL\t\n"
                                   b"0x3\tc\tfs/y\tEXPORT_SYMBOL\t\n")
    changes = diff_sides(old, new)
    assert keys(changes) == [
        ("module-added", "y", None, None, "kernel/fs/y"),
        ("export-added", "y", "c", None, "0x00000003"),
        ("export-type-changed", "vmlinux", "a", "EXPORT_SYMBOL_GPL", "EXPORT_SYMBOL"),
        ("namespace-changed", "vmlinux", "a", "NS", None),
    ]
    assert not any(c.incompatible for c in changes)


def test_symvers_sides_include_vmlinux(tmp_path: Path) -> None:
    old = tmp_path / "old.symvers"
    new = tmp_path / "new.symvers"
    old.write_text("0x00000001\tk_fn\tvmlinux\tEXPORT_SYMBOL\t\n0x00000002\tm_fn\tdrivers/m-x\tEXPORT_SYMBOL_GPL\tMNS\n"
                   "0x00000003\tk_moves\tvmlinux\tEXPORT_SYMBOL\t\n")
    new.write_text("0x00000009\tk_fn\tvmlinux\tEXPORT_SYMBOL\t\n0x00000003\tk_moves\tdrivers/m-x\tEXPORT_SYMBOL\t\n")
    result = diff(load_side(str(old)), load_side(str(new)))
    assert keys(list(result.changes)) == [
        ("export-added", "m_x", "k_moves", None, "0x00000003"),
        ("export-removed", "m_x", "m_fn", "0x00000002", None),
        ("export-removed", "vmlinux", "k_moves", "0x00000003", None),
        ("crc-changed", "vmlinux", "k_fn", "0x00000001", "0x00000009"),
    ]
    assert [c.incompatible for c in result.changes] == [False, True, False, True]
    assert export_changes(result.changes) == {("export-added", "m_x", "k_moves", None, "0x00000003"),
                                              ("export-removed", "m_x", "m_fn", "0x00000002", None)}
    assert not any("vmlinux exports" in n for n in result.notes)


def test_tree_against_its_own_symvers(tmp_path: Path) -> None:
    """A tree and the Module.symvers modpost would write for it: no change (exports, locations)."""
    t = scan_tree(str(SAMPLE_TREE), jobs=1)
    lines = [f"0x{e.crc:08x}\t{e.name}\t{f.shown.removeprefix('kernel/').removesuffix('.ko')}\t"
             f"{'EXPORT_SYMBOL_GPL' if e.gpl_only else 'EXPORT_SYMBOL'}\t{e.namespace or ''}\n"
             for m, f in zip(t.modules, t.files) if f.shown.startswith("kernel/") for e in m.exports]
    symvers = tmp_path / "Module.symvers"
    symvers.write_text(SAMPLE_SYMVERS.read_text() + "".join(lines))
    sym_side = load_side(str(symvers))
    assert sym_side.modules["mdx_exporter"] == "kernel/samples/mdx/mdx_exporter"
    tree_side = side_from_tree(t)
    # extra/mdx_dup_b.ko is the only exporting module outside kernel/: modpost never saw it
    assert keys(diff_sides(sym_side, tree_side)) == [
        ("module-added", "mdx_dup_b", None, None, "extra/mdx_dup_b"),
        ("export-added", "mdx_dup_b", "mdx_dup_hello", None, "0xb36a373f"),
    ]
    assert any("export symbols" in n for n in diff(sym_side, tree_side).notes)


def test_bad_symvers_is_an_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "x"
    bad.write_text("hello\n")
    with pytest.raises(InputError):
        load_side(str(bad))
    with pytest.raises(InputError):
        load_side(str(tmp_path / "missing"))


def test_location() -> None:
    assert location("kernel/fs/foo-bar.ko.xz") == "kernel/fs/foo-bar"
    assert location("updates/x.ko") == "updates/x"
    assert location("/abs/x.ko.zst") == "/abs/x"


def test_document_and_rendering(two_trees: tuple[Path, Path]) -> None:
    result = diff(*(load_side(str(p), jobs=1) for p in two_trees))
    doc = diff_document(result)
    assert doc["schema"] == 1 and doc["incompatible"] is True
    assert doc["old"]["kind"] == "tree" and doc["old"]["version"] == "1.0"
    assert doc["summary"]["export-removed"] == 2
    first = doc["changes"][0]
    assert {k: first[k] for k in ("kind", "module", "symbol", "old", "new")} == {
        "kind": "module-added", "module": "added", "symbol": None, "old": None, "new": "kernel/added"}
    dep = next(c for c in doc["changes"] if c["kind"] == "dependency-added")
    assert dep["symbols"] == ["c_fn"]
    json.dumps(doc)
    con = Console(record=True, width=140)
    render_diff(con, result)
    text = con.export_text()
    assert "12 change(s), 4 incompatible" in text and "a_fn" in text and "!: incompatible" in text
