"""The scan JSON document: the fast encoder writes exactly what json.dumps writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moddeps.read.elfreader import parse_module
from moddeps.read.scan import scan_tree
from moddeps.report.jsonout import dumps, scan_document, scan_json

from .kobuild import Export, build_ko

SAMPLE_TREE = Path(__file__).resolve().parent.parent / "sample_modules" / "lib" / "modules" / "6.1.0-50-cloud-amd64"


def test_scan_json_is_json_dumps_of_the_document_on_the_sample_tree() -> None:
    tree = scan_tree(str(SAMPLE_TREE), jobs=1)
    text = scan_json(tree, tree.modules)
    assert text == dumps(scan_document(tree, tree.modules))
    assert json.loads(text)["modules"][0]["name"] == tree.modules[0].name


@pytest.mark.parametrize("odd", [
    'imports', '"imports": []', "back\\slash", 'quo"te', "caf\u00e9", "\x7f\x01", "\udcff\udc80",
])
def test_scan_json_with_odd_strings(odd: str) -> None:
    """Strings that look like JSON, escapes, non-UTF-8 bytes (surrogates) in every field."""
    raw = odd.encode("utf-8", "surrogateescape")
    sym = odd.encode("ascii", "backslashreplace").decode().replace('"', "q")  # symbol names are built from str
    mods = []
    for n in range(3):
        ko = build_ko(modinfo=[b"license=GPL", b"description=" + raw, b"alias=" + raw],
                      exports=[Export(name=f"e{n}_{sym}", crc=n)],
                      undefined=["printk", f"x_{sym}"], versions=[("printk", 7)])
        mods.append(parse_module(ko, f"kernel/m{n}.ko"))
    mods.append(mods[0])  # the same module twice: its imports are encoded once and reused
    assert scan_json(None, mods) == dumps(scan_document(None, mods))


@pytest.mark.parametrize("per_part", [1, 2, 5, 256])
def test_scan_json_parts_join_to_the_same_text(per_part: int) -> None:
    """The CLI writes the parts as they come; joined, they are the document."""
    from moddeps.report.jsonout import scan_json_parts

    tree = scan_tree(str(SAMPLE_TREE), jobs=1)
    parts = list(scan_json_parts(tree, tree.modules, per_part))
    assert "".join(parts) == dumps(scan_document(tree, tree.modules))
    assert len(parts) == max(1, -(-len(tree.modules) // per_part))
