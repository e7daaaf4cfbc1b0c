"""The man pages shipped in moddeps/man/man1 are what moddeps.manpages makes from the CLI's help now.

When a command, option or help text changes, regenerate them:
``python -m moddeps.manpages`` (and commit moddeps/man/).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import typer.main

from moddeps import manpages
from moddeps.cli import app

MAN1 = Path(manpages.default_dir()) / "man1"


def test_committed_pages_are_current() -> None:
    made = manpages.pages()
    committed = {p.name: p.read_text(encoding="utf-8") for p in MAN1.glob("*.1")}
    assert sorted(committed) == sorted(made), "pages added or removed: run python -m moddeps.manpages"
    stale = [name for name in made if committed[name] != made[name]]
    assert not stale, f"stale man pages {stale}: run python -m moddeps.manpages"


def test_a_page_for_moddeps_and_every_command() -> None:
    root = typer.main.get_command(app)
    names = set(manpages.pages())
    for name in root.list_commands(None):  # type: ignore[attr-defined]
        assert f"moddeps-{name}.1" in names
    assert {"moddeps.1", "moddeps-index-dump.1", "moddeps-cache-info.1", "moddeps-cache-prune.1"} <= names


def test_pages_carry_the_help() -> None:
    page = manpages.pages()["moddeps-cache-prune.1"]
    assert page.startswith('.TH "MODDEPS-CACHE-PRUNE" "1"')
    assert ".B \\-\\-older\\-than D" in page and "Delete what was written more than D ago" in page
    depmod = manpages.pages()["moddeps-depmod.1"]
    assert ".B \\-b, \\-\\-basedir" in depmod and ".SH EXIT STATUS" in depmod
    top = manpages.pages()["moddeps.1"]
    assert ".SH COMMANDS" in top and ".BR moddeps\\-depmod (1)" in top


def test_roff_escapes() -> None:
    assert manpages._roff(".hidden\n'quote\\x-y") == "\\&.hidden\n\\&'quote\\ex\\-y"


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
def test_man_renders_a_page() -> None:
    r = subprocess.run(["man", "-l", str(MAN1 / "moddeps-depmod.1")], capture_output=True, text=True,
                       env={"MANWIDTH": "200", "PATH": "/usr/bin:/bin", "MAN_KEEP_FORMATTING": ""}, timeout=60)
    assert r.returncode == 0 and "byte for byte as kmod's depmod" in r.stdout
    assert "warning" not in r.stderr
