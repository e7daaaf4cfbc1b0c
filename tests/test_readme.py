"""The README's examples are real: its audit output is what moddeps prints, its JSON fits the schema."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import jsonschema

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def block(name: str) -> str:
    m = re.search(rf"<!-- {name}: begin -->\n```\w*\n(.*?)```\n<!-- {name}: end -->", README, re.S)
    assert m, f"README block {name} missing"
    return m.group(1)


def test_quick_start_is_exactly_the_two_commands() -> None:
    m = re.search(r"## Quick start\n\n```sh\n(.*?)```", README, re.S)
    assert m and m.group(1).splitlines() == ["pip install . && moddeps audit", "pip install '.[test]' && pytest"]


def test_readme_audit_output_is_real() -> None:
    lines = block("readme-audit").splitlines()
    assert lines[0].startswith("$ cd ") and lines[1].startswith("$ moddeps ")
    cwd = REPO / lines[0][5:]
    args = lines[1][len("$ moddeps "):].split()
    env = {**os.environ, "COLUMNS": "100", "TERM": "dumb"}
    proc = subprocess.run([sys.executable, "-m", "moddeps", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 1  # the sample tree has errors
    shown = [line.rstrip() for line in lines[2:]]
    actual = [line.rstrip() for line in proc.stdout.splitlines()]
    assert actual == shown


def test_readme_json_example_fits_the_schema() -> None:
    schema = json.loads(files("moddeps").joinpath("schemas/audit.schema.json").read_text())
    jsonschema.validate(json.loads(block("readme-json")), schema)


def test_the_sample_tree_ships_with_the_package() -> None:
    """`moddeps audit` falls back to it where /lib/modules/$(uname -r) does not exist."""
    from moddeps.cli.shared import sample_tree

    tree = Path(sample_tree())
    assert tree.name == "6.1.0-50-cloud-amd64"
    assert len(list(tree.rglob("*.ko"))) == 14
    assert (tree / "modules.order").is_file() and (tree / "modules.builtin.modinfo").is_file()


def test_quick_start_audit_runs_without_arguments() -> None:
    env = {**os.environ, "COLUMNS": "100"}
    proc = subprocess.run([sys.executable, "-m", "moddeps", "audit"], env=env, capture_output=True, text=True,
                          cwd="/")
    assert proc.returncode in (0, 1), proc.stderr
    assert proc.stdout.startswith("moddeps audit of ")
