"""What depmod reads of a module (moddeps.depmod.reads): nothing outside
``depmod_view`` changes its outputs or messages.  A rerun keeps its previous
result when a changed module's view is the same, so a writer that reads
another field without adding it to the view would make stale output."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from moddeps.depmod.reads import MODINFO_KEYS, depmod_view
from moddeps.depmod.render import render_files
from moddeps.kernelsyms import kmod_kernel_table, read_text
from moddeps.model import Module, SignatureFacts, fsdecode
from moddeps.read.scan import Tree, scan_tree
from moddeps.resolve import ResolveOptions, resolve

ROOT = Path(__file__).resolve().parent.parent / "sample_modules"
TREE = ROOT / "lib/modules/6.1.0-50-cloud-amd64"
SYMVERS = ROOT / "symvers/Module.symvers-6.1.0-50-cloud-amd64"

#: The fields of a Module that depmod_view leaves out, each with a change to it.
OTHER_FIELDS = {
    "has_init": lambda m: not m.has_init,
    "has_exit": lambda m: not m.has_exit,
    "machine": lambda m: m.machine + 1,
    "elf_class": lambda m: 32 if m.elf_class == 64 else 64,
    "byte_order": lambda m: "big" if m.byte_order == "little" else "little",
    "compression": lambda m: "zstd" if m.compression != "zstd" else None,
    "signature": lambda m: None if m.signature else SignatureFacts("PKCS#7", "x", "01", "sha256"),
    # modinfo: every other key changed, dropped, added and moved around the ones depmod reads
    "modinfo": lambda m: (
        ("description", "changed"),
        *((k, v) for k, v in m.modinfo if k in MODINFO_KEYS),
        ("srcversion", "0" * 24), ("vermagic", "other"), ("depends", "x,y"), ("import_ns", "NS"),
    ),
}


@pytest.fixture(scope="module")
def tree() -> Tree:
    t = scan_tree(str(TREE))
    assert t.modules and all(m.ok for m in t.modules)
    return t


def _everything(tree: Tree, modules: tuple[Module, ...], opts: ResolveOptions) -> object:
    """Every output file and message depmod makes of these modules."""
    cycle_free = tuple(m for m in modules if "cycle" not in m.name)
    keep = [i for i, m in enumerate(modules) if "cycle" not in m.name]
    t = dataclasses.replace(tree, modules=cycle_free, files=tuple(tree.files[i] for i in keep))
    full = [f"{tree.dirname}/{f.relpath}" for f in t.files]
    res = resolve(t.modules, full, opts)
    assert res.topo is not None
    return res.messages, res.deps, res.edge_symbols, render_files(t, res)


@pytest.mark.parametrize("checked", [False, True], ids=["plain", "symvers-e"])
def test_no_field_outside_the_view_changes_any_output(tree: Tree, checked: bool) -> None:
    assert {f.name for f in dataclasses.fields(Module)} == {
        "name", "path", "exports", "imports", "error", "kmod_error", *OTHER_FIELDS}, \
        "a new Module field: add it to depmod_view or to OTHER_FIELDS here"
    opts = ResolveOptions()
    if checked:
        table, _ = kmod_kernel_table(read_text(str(SYMVERS)), str(SYMVERS), "symvers", None)
        opts = ResolveOptions(kernel_table={fsdecode(k): v for k, v in table.items()}, check_crcs=True, warn=True)
    want = _everything(tree, tree.modules, opts)
    for name, change in OTHER_FIELDS.items():
        changed = tuple(dataclasses.replace(m, **{name: change(m)}) for m in tree.modules)  # type: ignore[no-untyped-call]
        assert all(depmod_view(a) == depmod_view(b) for a, b in zip(changed, tree.modules))
        assert _everything(tree, changed, opts) == want, name


def test_each_part_of_the_view_is_read(tree: Tree) -> None:
    """The other side: a change to each modinfo key of the view or to the
    symbols changes what depmod makes (the view is no wider
    than it has to be, so a rebuilt module keeps the previous result as
    often as it can)."""
    want = _everything(tree, tree.modules, ResolveOptions())
    exporter = next(i for i, m in enumerate(tree.modules) if m.exports and "cycle" not in m.name)
    kept = [i for i, m in enumerate(tree.modules) if "cycle" not in m.name]
    importer = kept[next(i for i, deps in enumerate(want[1]) if deps)]  # type: ignore[index]
    changes: list[tuple[int, dict[str, object]]] = [(exporter, {"exports": tree.modules[exporter].exports[1:]}),
                                                    (importer, {"imports": ()})]
    changes += [(0, {"modinfo": (*tree.modules[0].modinfo, (key, "devname:x" if key == "alias" else "pre: y"))})
                for key in MODINFO_KEYS]
    for idx, change in changes:
        modules = list(tree.modules)
        modules[idx] = dataclasses.replace(modules[idx], **change)  # type: ignore[arg-type]
        assert depmod_view(modules[idx]) != depmod_view(tree.modules[idx])
        assert _everything(tree, tuple(modules), ResolveOptions()) != want, change
