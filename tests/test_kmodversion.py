"""Which kmod release moddeps matches (moddeps.kmodversion), what -v says about it,
the options that differ between releases, and merged-/usr roots."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moddeps import kmodversion
from moddeps.cli import app
from moddeps.errors import UsageError
from moddeps.index.read import Index
from moddeps.kmodnames import basedir_of, find_module_dir

from .kobuild import Export, build_ko

VER = "6.12.0-test"

DPKG_STATUS = """\
Package: kmod-doc
Status: install ok installed
Version: 99.0-1

Package: kmod
Status: install ok installed
Priority: important
Architecture: amd64
Version: {version}
Description: tools for managing Linux kernel modules
 This package contains a set of programs for loading, inserting, and
 Version: 12.0 (a continuation line, not a field)

Package: libkmod2
Status: install ok installed
Version: 30+20221128-1
"""


def _dpkg_root(tmp_path: Path, version: str, status: str = "install ok installed") -> Path:
    path = tmp_path / "var/lib/dpkg/status"
    path.parent.mkdir(parents=True)
    path.write_text(DPKG_STATUS.format(version=version).replace(
        "Status: install ok installed\nPriority", f"Status: {status}\nPriority"))
    return tmp_path


@pytest.mark.parametrize(("version", "expected"), [
    ("34.2-2", 34), ("30+20221128-1", 30), ("33-1", 33), ("1:32-3", 32), ("34.2-2+b2", 34),
])
def test_dpkg_status_gives_the_installed_release(tmp_path: Path, version: str, expected: int) -> None:
    got = kmodversion.select(None, str(_dpkg_root(tmp_path, version)), environ={})
    assert got.version == expected
    assert f"kmod {version} installed" in got.reason
    assert str(tmp_path / "var/lib/dpkg/status") in got.reason


def test_removed_package_with_config_files_is_not_installed(tmp_path: Path) -> None:
    root = _dpkg_root(tmp_path, "30+20221128-1", status="deinstall ok config-files")
    got = kmodversion.select(None, str(root), environ={})
    assert (got.version, "default" in got.reason) == (kmodversion.DEFAULT, True)


@pytest.mark.parametrize(("version", "expected", "words"), [("29-1", 30, "oldest"), ("35-1", 34, "newest")])
def test_an_unsupported_installed_release_maps_to_the_nearest(tmp_path: Path, version: str, expected: int,
                                                               words: str) -> None:
    got = kmodversion.select(None, str(_dpkg_root(tmp_path, version)), environ={})
    assert got.version == expected
    assert words in got.reason


def test_pacman_local_database(tmp_path: Path) -> None:
    desc = tmp_path / "var/lib/pacman/local/kmod-33.1-2/desc"
    desc.parent.mkdir(parents=True)
    desc.write_text("%NAME%\nkmod\n\n%VERSION%\n33.1-2\n\n%DESC%\nLinux kernel module management tools\n")
    other = tmp_path / "var/lib/pacman/local/kmod-extra-1.0-1/desc"
    other.parent.mkdir(parents=True)
    other.write_text("%NAME%\nkmod-extra\n\n%VERSION%\n99-1\n")
    got = kmodversion.select(None, str(tmp_path), environ={})
    assert got.version == 33
    assert "pacman" in got.reason and "33.1-2" in got.reason


def test_precedence_option_then_environment_then_database_then_default(tmp_path: Path) -> None:
    root = str(_dpkg_root(tmp_path, "30+20221128-1"))
    assert kmodversion.select("33", root, environ={"MODDEPS_KMOD_VERSION": "31"}).version == 33
    env = kmodversion.select(None, root, environ={"MODDEPS_KMOD_VERSION": "31"})
    assert (env.version, env.reason) == (31, "$MODDEPS_KMOD_VERSION=31")
    assert kmodversion.select(None, root, environ={}).version == 30
    empty = tmp_path / "empty"
    empty.mkdir()
    assert kmodversion.select(None, str(empty), environ={}).version == kmodversion.DEFAULT == 34


@pytest.mark.parametrize("value", ["29", "35", "abc", "3x", "", " "])
def test_unsupported_values_are_usage_errors(value: str) -> None:
    if not value.strip():
        assert kmodversion.select(value, "/nonexistent", environ={}).version == kmodversion.DEFAULT
        return
    with pytest.raises(UsageError, match="unsupported kmod version"):
        kmodversion.parse(value)
    with pytest.raises(UsageError, match="MODDEPS_KMOD_VERSION"):
        kmodversion.select(None, "/nonexistent", environ={"MODDEPS_KMOD_VERSION": value})


@pytest.mark.parametrize("value", ["34", "34.2", "kmod 34", " 34 "])
def test_accepted_spellings(value: str) -> None:
    assert kmodversion.parse(value).version == 34


def test_behaviour_by_release() -> None:
    flags = {v: (t.preorder_index, t.order_first_wins, t.always_weakdep, t.rejects_deprecated_options)
             for v in kmodversion.SUPPORTED for t in [kmodversion.KmodTarget(v, "test")]}
    assert flags == {
        30: (False, False, False, False), 31: (False, False, False, False), 32: (False, False, False, False),
        33: (False, False, True, False), 34: (True, True, True, True),
    }


# --------------------------------------------------------------------------
# through the command line


def _tree(root: Path, moddir: str = "lib/modules") -> Path:
    md = root / moddir / VER
    (md / "kernel").mkdir(parents=True)
    (md / "kernel/a.ko").write_bytes(build_ko(exports=[Export(name="a_fn", crc=1)], modinfo=["license=GPL",
                                                                                             "alias=a-alias"]))
    (md / "kernel/b.ko").write_bytes(build_ko(undefined=["a_fn"], modinfo=["license=GPL"]))
    (md / "modules.order").write_text("kernel/a.ko\nkernel/b.ko\n")
    (md / "modules.builtin").write_text("")
    (md / "modules.builtin.modinfo").write_text("")
    (root / "cfg").mkdir(exist_ok=True)
    return md


def _depmod(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    r = CliRunner().invoke(app, ["depmod", "--no-cache", *args], env=env or {"MODDEPS_KMOD_VERSION": ""})
    return r.exit_code, r.stderr, r.stdout_bytes


def test_verbose_says_which_release_and_why(tmp_path: Path) -> None:
    _tree(tmp_path)
    _dpkg_root(tmp_path, "34.2-2")
    code, err, _ = _depmod("-v", "-n", "-C", str(tmp_path / "cfg"), "-b", str(tmp_path), VER)
    assert code == 0
    assert f"moddeps: NOTE: matching kmod 34 ({tmp_path}/var/lib/dpkg/status: kmod 34.2-2 installed)" in err
    code, err, _ = _depmod("-v", "-n", "--kmod-version", "30", "-C", str(tmp_path / "cfg"), "-b", str(tmp_path), VER)
    assert "moddeps: NOTE: matching kmod 30 (--kmod-version 30)" in err
    code, err, _ = _depmod("-n", "-C", str(tmp_path / "cfg"), "-b", str(tmp_path), VER)
    assert "matching kmod" not in err  # only with -v


def test_kmod_version_option_error_is_a_usage_error(tmp_path: Path) -> None:
    _tree(tmp_path)
    code, err, _ = _depmod("--kmod-version", "29", "-b", str(tmp_path), VER)
    assert code == 64
    assert "unsupported kmod version '29'" in err
    code, err, _ = _depmod("-b", str(tmp_path), VER, env={"MODDEPS_KMOD_VERSION": "36"})
    assert code == 64 and "MODDEPS_KMOD_VERSION" in err


def test_deprecated_options_warn_before_34_and_are_refused_by_34(tmp_path: Path) -> None:
    _tree(tmp_path)
    base = ["-n", "-C", str(tmp_path / "cfg"), "-b", str(tmp_path)]
    code, err, out = _depmod("--kmod-version", "33", "-u", "--quiet", "-r", "--map", *base, VER)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "deprecated" in line]
    assert warnings == [f"moddeps: WARNING: Ignored deprecated option {o}" for o in ("-u", "--quiet", "-r", "--map")]
    assert out.startswith(b"kernel/a.ko:")
    for option, text in (("-q", "invalid option -- 'q'"), ("--map", "unrecognized option '--map'")):
        code, err, _ = _depmod("--kmod-version", "34", option, *base, VER)
        assert code == 64
        assert text in err


def test_weakdep_file_is_always_written_from_33(tmp_path: Path) -> None:
    md = _tree(tmp_path)
    header = b"# Weak dependencies extracted from modules themselves.\n"
    for release, present in (("30", False), ("32", False), ("33", True), ("34", True)):
        for name in os.listdir(md):
            if name.startswith("modules.") and name not in ("modules.order", "modules.builtin",
                                                            "modules.builtin.modinfo"):
                os.unlink(md / name)
        code, err, out = _depmod("--kmod-version", release, "-C", str(tmp_path / "cfg"), "-b", str(tmp_path), VER)
        assert code == 0, err
        assert (md / "modules.weakdep").exists() == present, release
        if present:
            assert (md / "modules.weakdep").read_bytes() == header
        code, err, out = _depmod("--kmod-version", release, "-n", "-C", str(tmp_path / "cfg"), "-b", str(tmp_path),
                                 VER)
        # -n: after modules.softdep, before modules.symbols
        softdep = out.index(b"# Soft dependencies")
        assert (header in out) == present
        if present:
            assert softdep < out.index(header) < out.index(b"# Aliases for symbols")


def test_index_layout_follows_the_release(tmp_path: Path) -> None:
    md = _tree(tmp_path)
    words = {}
    for release in ("30", "34"):
        code, err, _ = _depmod("--kmod-version", release, "-C", str(tmp_path / "cfg"), "-b", str(tmp_path), VER)
        assert code == 0, err
        data = (md / "modules.alias.bin").read_bytes()
        words[release] = int.from_bytes(data[8:12], "big") & 0x0FFFFFFF
        assert list(Index.from_bytes(data).items()) == [(b"a_alias", b"a", 0)]
    assert words["34"] == 12  # pre-order: the root first
    assert words["30"] > 12  # post-order: the root last


def test_order_duplicates_first_wins_for_34_last_for_30(tmp_path: Path) -> None:
    md = _tree(tmp_path)
    (md / "kernel/c.ko").write_bytes(build_ko(modinfo=["license=GPL"]))
    (md / "modules.order").write_text("kernel/c.ko\nkernel/a.ko\nkernel/b.ko\nkernel/c.ko\n")
    got = {}
    for release in ("30", "34"):
        code, err, out = _depmod("--kmod-version", release, "-n", "-C", str(tmp_path / "cfg"), "-b", str(tmp_path),
                                 VER)
        assert code == 0, err
        got[release] = [line.split(b":")[0] for line in out.split(b"\n# ")[0].splitlines()]
    assert got["34"] == [b"kernel/c.ko", b"kernel/a.ko", b"kernel/b.ko"]
    assert got["30"] == [b"kernel/a.ko", b"kernel/b.ko", b"kernel/c.ko"]


# --------------------------------------------------------------------------
# merged /usr


def test_basedir_of_both_module_directories() -> None:
    assert basedir_of("/x/usr/lib/modules/6.12") == "/x"
    assert basedir_of("/x/lib/modules/6.12/") == "/x"
    assert basedir_of("/lib/modules/6.12") == ""
    assert basedir_of("/usr/lib/modules/6.12") == ""
    assert basedir_of("/srv/tree/6.12") is None


@pytest.mark.parametrize("with_link", [False, True])
def test_merged_usr_root(tmp_path: Path, with_link: bool) -> None:
    """A root with usr/lib/modules only (or lib -> usr/lib) is indexed in place, with the same bytes
    as a classic root, and planned from."""
    classic = tmp_path / "classic"
    _tree(classic)
    merged = tmp_path / "merged"
    md = _tree(merged, "usr/lib/modules")
    if with_link:
        (merged / "lib").symlink_to("usr/lib")
    assert find_module_dir(str(merged), VER) == (f"{merged}/lib/modules/{VER}" if with_link else str(md))
    for root in (classic, merged):
        code, err, _ = _depmod("--kmod-version", "34", "-C", str(root / "cfg"), "-b", str(root), VER)
        assert code == 0, err
    assert not (merged / "lib/modules").exists() or with_link
    names = sorted(n for n in os.listdir(classic / "lib/modules" / VER) if n.startswith("modules."))
    assert "modules.dep.bin" in names
    for name in names:
        assert (md / name).read_bytes() == (classic / "lib/modules" / VER / name).read_bytes(), name
    r = CliRunner().invoke(app, ["plan", "-b", str(merged), "-k", VER, "-C", str(merged / "cfg"), "--show-depends",
                                 "b"])
    assert r.exit_code == 0, r.stderr
    moddir = f"{merged}/lib/modules/{VER}" if with_link else str(md)
    assert r.stdout == f"insmod {moddir}/kernel/a.ko \ninsmod {moddir}/kernel/b.ko \n"
    r = CliRunner().invoke(app, ["audit", "--json", "-b", str(merged), "-k", VER])
    assert r.exit_code == 0, r.stderr
    assert '"modules": 2' in r.stdout
    shutil.rmtree(merged)
