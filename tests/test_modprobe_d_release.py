"""modprobe.d directories and file names per kmod release, against ``modprobe -c``
of the real kmod 30 and kmod 34.2.

The fixtures are ``tests/data/modprobe_d/``: ``root`` (a root that is not
merged-/usr, with a ``same.conf`` in both ``/usr/lib/modprobe.d`` and
``/lib/modprobe.d`` and ``*.alias`` files), ``merged`` (``lib -> usr/lib``)
and ``cdir`` (a ``-C`` directory).  ``expected.json`` is what the real
binaries printed, recorded by ``tests/data/modprobe_d/record.py`` (its
docstring has the commands): kmod 30 reads no ``/usr/lib/modprobe.d`` and
reads ``*.alias``; kmod 34.2 reads ``/usr/lib/modprobe.d`` before
``/lib/modprobe.d`` and only ``*.conf``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from moddeps import kmodversion
from moddeps.kmodversion import KmodTarget
from moddeps.modprobe import config as mc
from moddeps.modprobe.config import ModprobeConfig
from moddeps.modprobe.plan import open_context
from tests.test_plan import VER, make_tree

DATA = Path(__file__).parent / "data" / "modprobe_d"
EXPECTED = json.loads((DATA / "expected.json").read_text())
END = "\n# End of configuration files."


def dump(cfg: ModprobeConfig) -> str:
    """The aliases and options of ``modprobe -c`` (the only entries the fixtures hold)."""
    out = [f"alias {a.pattern} {a.modname}\n" for a in cfg.aliases]
    out += [f"options {o.modname} {o.options}\n" for o in cfg.options]
    return "".join(out)


def recorded(case: str, release: int) -> str:
    run = EXPECTED["cases"][case]["runs"][str(release)]
    assert run["status"] == 0 and run["stderr"] == ""
    stdout: str = run["stdout"]
    return stdout[: stdout.index(END)]


def load(case: str, kmod: KmodTarget, tmp_path: Path) -> ModprobeConfig:
    # copied: the checkout may not keep the merged root's lib -> usr/lib link as one
    where = tmp_path / case
    shutil.copytree(DATA / case, where, symlinks=True)
    if EXPECTED["cases"][case]["default_dirs"]:
        return mc.load(None, dirname=None, basedir=str(where), usr_lib_dir=kmod.usr_lib_modprobe_d,
                       alias_files=kmod.modprobe_d_alias_files)
    return mc.load([str(where)], dirname=None, usr_lib_dir=kmod.usr_lib_modprobe_d,
                   alias_files=kmod.modprobe_d_alias_files)


@pytest.mark.parametrize("case", ["root", "merged", "cdir"])
@pytest.mark.parametrize("release", [30, 34])
def test_config_matches_real_modprobe_c(case: str, release: int, tmp_path: Path) -> None:
    cfg = load(case, KmodTarget(release, "test"), tmp_path)
    assert dump(cfg) == recorded(case, release)
    assert cfg.messages == ()


def test_the_recorded_differences() -> None:
    root30, root34 = recorded("root", 30), recorded("root", 34)
    assert "alias same_from_lib lib_mod\n" in root30 and "only_usrlib" not in root30
    assert "alias same_from_usrlib usrlib_mod\n" in root34 and "same_from_lib" not in root34
    assert "from_alias_file" in root30 and "from_alias_file" not in root34
    assert "c_alias" in recorded("cdir", 30) and "c_alias" not in recorded("cdir", 34)


@pytest.mark.parametrize(("release", "usr_lib", "alias_files"),
                         [(30, False, True), (31, False, True), (32, True, True), (33, True, False),
                          (34, True, False)])
def test_rules_per_release(release: int, usr_lib: bool, alias_files: bool, tmp_path: Path) -> None:
    """kmod 31 is kmod 30 here, 32 adds /usr/lib/modprobe.d (8463809f8a29), 33 drops
    ``*.alias`` (29cc8c2e700d): the fixture's answer is then kmod 30's or 34's lines mixed."""
    kmod = KmodTarget(release, "test")
    assert (kmod.usr_lib_modprobe_d, kmod.modprobe_d_alias_files) == (usr_lib, alias_files)
    paths = mc.default_config_paths("/r", usr_lib_dir=kmod.usr_lib_modprobe_d)
    assert ("/r/usr/lib/modprobe.d" in paths) == usr_lib
    assert paths[-1] == "/r/lib/modprobe.d"
    names = [a.modname for a in load("root", kmod, tmp_path).aliases]
    assert ("usrlib_mod" in names, "lib_mod" in names) == (usr_lib, not usr_lib)
    assert ("a_mod" in names) == alias_files
    assert ("ua_mod" in names) == (usr_lib and alias_files)


def _tree_with_fixture_root(tmp_path: Path) -> str:
    dirname = make_tree(tmp_path / "root")
    shutil.copytree(DATA / "root", tmp_path / "root", symlinks=True, dirs_exist_ok=True)
    return dirname


@pytest.mark.parametrize("release", [30, 34])
def test_open_context_follows_the_release(release: int, tmp_path: Path) -> None:
    dirname = _tree_with_fixture_root(tmp_path)
    ctx = open_context(dirname, kmod=KmodTarget(release, "test"))
    assert dump(ctx.config) == recorded("root", release)


def test_open_context_chooses_like_depmod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dirname = _tree_with_fixture_root(tmp_path)
    monkeypatch.setenv(kmodversion.ENV, "30")
    assert dump(open_context(dirname).config) == recorded("root", 30)
    monkeypatch.delenv(kmodversion.ENV)  # no package database in the root: the default, 34
    assert kmodversion.DEFAULT == 34
    assert dump(open_context(dirname).config) == recorded("root", 34)


def test_plan_command_takes_the_release(tmp_path: Path) -> None:
    """``moddeps plan --kmod-version N`` reads modprobe.d as kmod N does (``*.alias`` files up to 32)."""
    from typer.testing import CliRunner

    from moddeps.cli import app

    _tree_with_fixture_root(tmp_path)
    files = {}
    for release in (30, 34):
        r = CliRunner().invoke(app, ["plan", "-b", str(tmp_path / "root"), "-k", VER, "--json",
                                     "--kmod-version", str(release), "libb"])
        assert r.exit_code == 0, r.output
        files[release] = json.loads(r.stdout)["config_files"]
    assert any(f.endswith(".alias") for f in files[30])
    assert not any(f.endswith(".alias") for f in files[34])
