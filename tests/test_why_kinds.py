"""``why`` through softdeps and weakdeps: such an edge says its kind and has no symbols.

mdx_softdep (sample tree) has ``softdep=pre: mdx_exporter post: mdx_consumer`` and
no symbol dependency on either; ``why`` follows those edges as modprobe does.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
from typer.testing import CliRunner

from moddeps.cli import app
from moddeps.graph import DependencyPath, DependencyPaths, Edge
from moddeps.report import deps

REPO = Path(__file__).resolve().parent.parent
TREE = REPO / "sample_modules" / "lib" / "modules" / "6.1.0-50-cloud-amd64"
SCHEMA = json.loads(files("moddeps").joinpath("schemas/why.schema.json").read_text())


def _why(*args: str) -> Any:
    r = CliRunner().invoke(app, ["why", "-t", str(TREE), *args])
    return r


def test_json_edges_carry_their_kind() -> None:
    r = _why("--json", "mdx_softdep")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    edges = {(e["from"], e["to"]): e for e in doc["edges"]}
    assert edges["mdx_softdep", "mdx_exporter"] == {"from": "mdx_softdep", "to": "mdx_exporter",
                                                    "kind": "softdep-pre", "symbols": []}
    assert edges["mdx_softdep", "mdx_consumer"]["kind"] == "softdep-post"
    # a symbol edge has its symbols and no kind
    plain = edges["mdx_consumer", "mdx_exporter"]
    assert "kind" not in plain and plain["symbols"]


def test_json_path_through_a_softdep() -> None:
    r = _why("--json", "mdx_softdep", "mdx_consumer")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    first = doc["paths"][0][0]
    assert (first["kind"], first["symbols"]) == ("softdep-post", [])


def test_text_shows_the_kind_in_place_of_symbols() -> None:
    r = _why("--format", "text", "mdx_softdep", "mdx_consumer")
    assert r.exit_code == 0, r.output
    assert "edge\t1\tmdx_softdep\tmdx_consumer\t(softdep-post)" in r.stdout.splitlines()


def test_schema_refuses_a_kind_with_symbols_or_an_unknown_kind() -> None:
    edge = Edge("a", "b", kind="weakdep")
    doc = deps.paths_document(DependencyPaths("a", "b", (DependencyPath(("a", "b"), (edge,)),)))
    jsonschema.validate(doc, SCHEMA)
    assert doc["paths"][0][0] == {"from": "a", "to": "b", "kind": "weakdep", "symbols": []}
    bad = json.loads(json.dumps(doc))
    bad["paths"][0][0]["symbols"] = ["(weakdep)"]
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(bad)
    bad["paths"][0][0] = {"from": "a", "to": "b", "kind": "softdep", "symbols": []}
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(bad)
