"""``moddeps depmod`` parsed without typer (moddeps.cli.depmod_argv): the same options as typer's, or none.

Every depmod case of tests/depmod_cases.py also checks the two parsers agree
on its arguments (``run_moddeps``); here: the option table against the typer
command, arguments the fast parser must leave to typer, and the process
itself (no typer imported, the same exit statuses and output).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import moddeps.cli.depmod as typer_command
from moddeps.cli import app
from moddeps.cli.depmod_argv import FLAGS, VALUED, fast_options

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_modules"
MAIN = "import sys; from moddeps.cli import main; sys.argv[0] = 'moddeps'; main()"


def typer_parsed(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[object]]:
    """(exit status, the options typer handed to the run) for ``moddeps depmod ARGS``, nothing run."""
    parsed: list[object] = []
    monkeypatch.setattr(typer_command, "run_depmod", parsed.append)
    r = CliRunner().invoke(app, ["depmod", *args])
    return r.exit_code, parsed


def test_table_names_every_option_of_the_typer_command() -> None:
    import typer.main

    command = typer.main.get_command(app).commands["depmod"]  # type: ignore[attr-defined]
    spelled: set[str] = set()
    for param in command.params:
        if param.param_type_name != "option" or param.hidden or "--version" in param.opts:
            continue
        spelled.update(param.opts, param.secondary_opts)
    assert spelled - {"-h", "--help"} == set(FLAGS) | set(VALUED)


FAST = [
    [],
    ["6.1.0-1-amd64"],
    ["-a", "6.1.0-1-amd64"],
    ["-b", "/tmp/root", "6.1.0-1-amd64"],
    ["--basedir=/tmp/root", "-a", "6.1.0-1-amd64"],
    ["6.1.0-1-amd64", "-b", "/tmp/root"],  # interspersed
    ["-A", "-e", "-n", "-v", "-w", "--no-cache", "6.1"],
    ["--all", "--quick", "--errsyms", "--show", "--verbose", "--warn", "6.1"],
    ["--dry-run", "6.1"],
    ["-o", "/tmp/out", "-m", "usr/lib/modules", "-C", "/a.conf", "--config", "/b", "--config=/c", "6.1"],
    ["-E", "/k/Module.symvers", "-e", "-P", "_", "6.1"],
    ["-F", "/boot/System.map", "--symbol-prefix", "_", "6.1"],
    ["-j", "2", "6.1"],
    ["--jobs=3", "6.1"],
    ["--cache", "/tmp/c.sqlite3", "--kmod-version", "30", "6.1"],
    ["--kmod-version=34", "6.1", "/lib/modules/6.1/kernel/a.ko", "/lib/modules/6.1/kernel/b.ko"],
    ["--", "6.1", "-a"],  # after "--", words are positional
    ["-b", "", "6.1"],
    ["--basedir=-odd", "6.1"],
]


@pytest.mark.parametrize("args", FAST, ids=[" ".join(a) or "(none)" for a in FAST])
def test_fast_parser_agrees_with_typer(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    fast = fast_options(args)
    assert fast is not None
    status, parsed = typer_parsed(args, monkeypatch)
    assert status == 0 and parsed == [fast]


LEFT_TO_TYPER = [
    ["-h"], ["--help"], ["-V"], ["--version"],
    ["-u", "6.1"], ["--map", "6.1"], ["-q", "6.1"],  # kmod 30's deprecated options (warned, or refused by 34)
    ["-an", "6.1"],  # bundled flags
    ["-a", "-a", "6.1"],  # given twice
    ["-b", "/x", "-b", "/y", "6.1"],  # a value given twice: click keeps the last
    ["-b"],  # missing value
    ["-b", "-a", "6.1"],  # a value that looks like an option
    ["-b/tmp/root", "6.1"],  # attached short value
    ["-b=/tmp/root", "6.1"],
    ["-j", "0", "6.1"], ["-j", "x", "6.1"], ["-j", "+2", "6.1"], ["--jobs= 2", "6.1"],
    ["--bogus", "6.1"], ["-X"],
    ["-", "6.1"],
]


@pytest.mark.parametrize("args", LEFT_TO_TYPER, ids=[" ".join(a) for a in LEFT_TO_TYPER])
def test_fast_parser_leaves_the_rest_to_typer(args: list[str]) -> None:
    assert fast_options(args) is None


def test_typer_still_answers_what_the_fast_parser_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    # the same command line gives typer's usage error (64), its -V, its deprecated-option run
    assert typer_parsed(["-j", "0", "6.1"], monkeypatch)[0] == 64
    assert typer_parsed(["--bogus"], monkeypatch)[0] == 64
    status, parsed = typer_parsed(["-u", "6.1"], monkeypatch)
    assert status == 0 and [getattr(o, "deprecated", None) for o in parsed] == [("-u",)]
    status, parsed = typer_parsed(["-b", "/x", "-b", "/y", "6.1"], monkeypatch)
    assert status == 0 and [getattr(o, "basedir", None) for o in parsed] == ["/y"]


def _run_main(args: list[str], tmp: Path, *extra: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "MODDEPS_CACHE": str(tmp / "cache.sqlite3"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *extra, "-c", MAIN, "depmod", *args], capture_output=True, env=env,
                          timeout=120, cwd=tmp)


def _sample_copy(tmp: Path) -> tuple[Path, str]:
    root = tmp / "root"
    shutil.copytree(SAMPLE, root, symlinks=True)
    version = sorted(os.listdir(root / "lib" / "modules"))[0]
    for cycle in (root / "lib" / "modules" / version).rglob("mdx_cycle_*.ko"):  # the sample's deliberate cycle
        cycle.unlink()
    return root, version


def test_process_runs_depmod_without_importing_typer(tmp_path: Path) -> None:
    root, version = _sample_copy(tmp_path)
    r = _run_main(["-b", str(root), version], tmp_path, "-X", "importtime")
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stderr.decode().splitlines()
    imported = [line.split("|")[-1].strip() for line in lines if line.startswith("import time")]
    assert "moddeps.depmod.run" in imported
    assert not [m for m in imported if m.split(".")[0] in ("typer", "click", "rich")]
    assert (root / "lib" / "modules" / version / "modules.dep.bin").exists()


def test_process_gives_the_same_output_and_status_both_ways(tmp_path: Path) -> None:
    root, version = _sample_copy(tmp_path)
    fast = _run_main(["-n", "-b", str(root), version], tmp_path)
    slow = _run_main(["-n", "-b", str(root), "-b", str(root), version], tmp_path)  # twice: typer parses it
    assert fast.returncode == slow.returncode == 0
    assert fast.stdout == slow.stdout and b"kernel/" in fast.stdout
    missing = _run_main(["-b", str(tmp_path / "nowhere"), version], tmp_path)
    assert missing.returncode == 66
    assert missing.stderr.decode().startswith("moddeps: error: ") and missing.stderr.count(b"\n") == 1
    bad = _run_main(["-b", str(root), "not-a-version"], tmp_path)
    assert bad.returncode == 64 and b"Bad version passed not-a-version" in bad.stderr
