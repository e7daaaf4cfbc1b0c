"""Issue 15, item 8: every input file is a regular file read without blocking, within a bound.

A FIFO in place of an input file used to hang for ever (``open(2)`` of a FIFO waits for a
writer), and a symlink to ``/dev/zero`` ended in "internal error: MemoryError" without naming
the file.  Each path is run in a subprocess with a generous timeout (a hang fails the test
instead of stalling the suite) and must end with one line naming the file and the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from moddeps.errors import InputError
from moddeps.inputfiles import NotRegularFile, TooLarge, open_regular, read_bounded, read_input, try_read

from .kobuild import Export, build_ko

REPO = Path(__file__).resolve().parent.parent
V = "6.1.0-1-test"
#: A hang shows as this timeout; the runs themselves take about a second.
HANG = 120


def _tree(root: Path) -> Path:
    md = root / "lib/modules" / V
    (md / "kernel").mkdir(parents=True)
    (md / "kernel/a.ko").write_bytes(build_ko(modinfo=["license=GPL", "alias=pci:v0000AAAAd*"],
                                              exports=[Export(name="a_sym", crc=1)]))
    (md / "kernel/b.ko").write_bytes(build_ko(modinfo=["license=GPL"], undefined=["a_sym"], versions=[("a_sym", 1)]))
    (md / "modules.order").write_text("kernel/a.ko\nkernel/b.ko\n")
    (md / "modules.builtin").write_text("")
    (md / "modules.builtin.modinfo").write_bytes(b"")
    (root / "cfg").mkdir()
    return md


def _special(path: Path, what: str) -> None:
    if path.exists() or path.is_symlink():
        path.unlink()
    if what == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([sys.executable, "-m", "moddeps", *argv], capture_output=True, text=True,
                              cwd=REPO, timeout=HANG, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"moddeps {' '.join(argv)} still running after {HANG} s: it waits on the input")


def _one_line_naming(r: subprocess.CompletedProcess[str], path: Path, what: str) -> str:
    kind = "a FIFO" if what == "fifo" else "a character device"
    lines = [ln for ln in r.stderr.splitlines() if str(path) in ln]
    assert len(lines) == 1, r.stderr
    assert f"not a regular file ({kind})" in lines[0]
    assert "MemoryError" not in r.stderr and "internal error" not in r.stderr
    return lines[0]


KINDS = ["fifo", "zero"]


@pytest.mark.parametrize("what", KINDS)
@pytest.mark.parametrize("name", ["modules.order", "modules.builtin", "modules.builtin.modinfo"])
def test_depmod_tree_inputs(tmp_path: Path, name: str, what: str) -> None:
    md = _tree(tmp_path)
    _special(md / name, what)
    r = _run("depmod", "--no-cache", "-C", str(tmp_path / "cfg"), "-b", str(tmp_path), V)
    line = _one_line_naming(r, md / name, what)
    assert r.returncode == 66, r.stderr  # an input error
    assert line.startswith("moddeps: error: ")
    assert not (md / "modules.dep").exists()


@pytest.mark.parametrize("what", KINDS)
def test_depmod_config_file_in_a_directory_is_said_and_skipped(tmp_path: Path, what: str) -> None:
    md = _tree(tmp_path)
    _special(tmp_path / "cfg/x.conf", what)
    r = _run("depmod", "--no-cache", "-C", str(tmp_path / "cfg"), "-b", str(tmp_path), V)
    line = _one_line_naming(r, tmp_path / "cfg/x.conf", what)
    assert "skipped" in line
    assert r.returncode == 0, r.stderr
    assert b"kernel/b.ko: kernel/a.ko\n" in (md / "modules.dep").read_bytes()


@pytest.mark.parametrize("what", KINDS)
def test_depmod_config_file_given_with_C(tmp_path: Path, what: str) -> None:
    _tree(tmp_path)
    _special(tmp_path / "x.conf", what)
    r = _run("depmod", "--no-cache", "-C", str(tmp_path / "x.conf"), "-b", str(tmp_path), "-n", V)
    _one_line_naming(r, tmp_path / "x.conf", what)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("what", KINDS)
@pytest.mark.parametrize("option", ["-E", "-F"])
def test_depmod_symbol_lists(tmp_path: Path, option: str, what: str) -> None:
    _tree(tmp_path)
    _special(tmp_path / "syms", what)
    r = _run("depmod", "--no-cache", "-C", str(tmp_path / "cfg"), "-b", str(tmp_path), "-e", option,
             str(tmp_path / "syms"), "-n", V)
    _one_line_naming(r, tmp_path / "syms", what)
    assert r.returncode == 66


@pytest.mark.parametrize("what", KINDS)
@pytest.mark.parametrize("option", ["--symvers", "--system-map"])
def test_audit_symbol_lists(tmp_path: Path, option: str, what: str) -> None:
    md = _tree(tmp_path)
    _special(tmp_path / "syms", what)
    r = _run("audit", "--no-cache", option, str(tmp_path / "syms"), str(md))
    _one_line_naming(r, tmp_path / "syms", what)
    assert r.returncode == 66


@pytest.mark.parametrize("what", KINDS)
def test_diff_inputs(tmp_path: Path, what: str) -> None:
    good = tmp_path / "Module.symvers"
    good.write_text("0x00000001\ta_sym\tvmlinux\tEXPORT_SYMBOL\t\n")
    _special(tmp_path / "new", what)
    r = _run("diff", str(good), str(tmp_path / "new"))
    _one_line_naming(r, tmp_path / "new", what)
    assert r.returncode == 66


@pytest.mark.parametrize("what", KINDS)
def test_plan_modprobe_d_file_is_said_and_skipped(tmp_path: Path, what: str) -> None:
    _tree(tmp_path)
    r = _run("depmod", "--no-cache", "-C", str(tmp_path / "cfg"), "-b", str(tmp_path), V)
    assert r.returncode == 0, r.stderr
    mp = tmp_path / "modprobe.d"
    mp.mkdir()
    (mp / "a.conf").write_text("alias foo b\n")
    _special(mp / "x.conf", what)
    r = _run("plan", "-b", str(tmp_path), "-k", V, "-C", str(mp), "--show-depends", "foo")
    _one_line_naming(r, mp / "x.conf", what)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1].endswith("kernel/b.ko ")


# --------------------------------------------------------------------------
# The reader itself
# --------------------------------------------------------------------------


def test_open_regular_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = {fifo: "a FIFO", tmp_path: "a directory", Path("/dev/zero"): "a character device",
             Path("/dev/null"): "a character device"}
    for path, kind in cases.items():
        with pytest.raises(NotRegularFile, match=rf"not a regular file \({kind}\)"):
            open_regular(str(path))
    with pytest.raises(InputError, match=rf"^{fifo}: cannot read: not a regular file \(a FIFO\)$"):
        read_input(str(fifo))
    assert try_read(str(fifo)) == (None, "not a regular file (a FIFO)")
    assert try_read(str(tmp_path / "missing")) == (None, None)


def test_the_size_bound_holds_whatever_st_size_says(tmp_path: Path) -> None:
    """A sparse file over the bound is refused; a file of /proc (st_size 0) is read to its end;
    a file that grows while it is read is still bounded."""
    big = tmp_path / "big"
    with big.open("wb") as f:
        f.truncate(1 << 20)
    with pytest.raises(InputError, match="larger than the 65536-byte limit"):
        read_input(str(big), limit=1 << 16)
    status = read_input("/proc/self/status")
    assert os.stat("/proc/self/status").st_size == 0 and b"Name:" in status
    grown = tmp_path / "grown"
    grown.write_bytes(b"x" * 100)
    fd, _st = open_regular(str(grown))
    try:
        with grown.open("ab") as f:
            f.write(b"y" * (1 << 20))
        with pytest.raises(TooLarge):
            read_bounded(fd, 100, 1 << 16)
    finally:
        os.close(fd)
    assert read_input(str(grown)) == b"x" * 100 + b"y" * (1 << 20)


# --------------------------------------------------------------------------
# The remaining readers: indexes, plan's extra inputs, the kmod release's package database
# --------------------------------------------------------------------------


@pytest.mark.parametrize("what", KINDS)
def test_index_dump_of_a_special_file(tmp_path: Path, what: str) -> None:
    path = tmp_path / "modules.alias.bin"
    _special(path, what)
    r = _run("index", "dump", str(path))
    assert r.returncode == 66, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if str(path) in ln]
    assert len(lines) == 1 and "MemoryError" not in r.stderr, r.stderr


@pytest.mark.parametrize("what", KINDS)
def test_plan_with_a_special_index(tmp_path: Path, what: str) -> None:
    md = _tree(tmp_path)
    r = _run("depmod", "--no-cache", "-C", str(tmp_path / "cfg"), "-b", str(tmp_path), V)
    assert r.returncode == 0, r.stderr
    _special(md / "modules.alias.bin", what)
    r = _run("plan", "-b", str(tmp_path), "-k", V, "-C", str(tmp_path / "cfg"), "--source", "index",
             "--show-depends", "b")
    _one_line_naming(r, md / "modules.alias.bin", what)
    assert r.returncode == 66


@pytest.mark.parametrize("what", KINDS)
@pytest.mark.parametrize("option", ["--kernel-cmdline", "--loaded"])
def test_plan_extra_inputs(tmp_path: Path, option: str, what: str) -> None:
    _tree(tmp_path)
    r = _run("depmod", "--no-cache", "-C", str(tmp_path / "cfg"), "-b", str(tmp_path), V)
    assert r.returncode == 0, r.stderr
    special = tmp_path / "input"
    _special(special, what)
    r = _run("plan", "-b", str(tmp_path), "-k", V, "-C", str(tmp_path / "cfg"), option, str(special), "b")
    _one_line_naming(r, special, what)
    assert r.returncode == 66


@pytest.mark.parametrize("what", KINDS)
def test_a_special_dpkg_status_does_not_choose_the_kmod_release(tmp_path: Path, what: str) -> None:
    _tree(tmp_path)
    status = tmp_path / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    _special(status, what)
    env = {k: v for k, v in os.environ.items() if k != "MODDEPS_KMOD_VERSION"}
    argv = ["depmod", "-v", "-n", "--no-cache", "-C", str(tmp_path / "cfg"), "-b", str(tmp_path), V]
    r = subprocess.run([sys.executable, "-m", "moddeps", *argv], capture_output=True, text=True, cwd=REPO,
                       timeout=HANG, stdin=subprocess.DEVNULL, env=env)
    assert r.returncode == 0, r.stderr
    assert "matching kmod 34 (no kmod package found" in r.stderr
