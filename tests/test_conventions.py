"""Command-line conventions: --version, -h, the README's exit statuses command by command, --debug,
completion, option validation, no sample-tree fallback outside a bare audit, a closure that fails loudly."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from moddeps import __version__
from moddeps.kmodversion import SUPPORTED

ROOT = Path(__file__).parent.parent
SAMPLE = ROOT / "sample_modules" / "lib" / "modules" / "6.1.0-50-cloud-amd64"
VER = SAMPLE.name


def run(*args: str, cwd: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "moddeps", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "MODDEPS_CACHE": "/nonexistent/none", **(env or {})}, timeout=120)


def test_version() -> None:
    want = f"moddeps {__version__}\nmatches kmod {', '.join(map(str, SUPPORTED))}\n"
    for args in (("--version",), ("depmod", "-V"), ("depmod", "--version")):
        r = run(*args)
        assert (r.returncode, r.stdout, r.stderr) == (0, want, ""), args


@pytest.mark.parametrize("cmd", ["", "audit", "depmod", "plan", "scan", "info", "compat", "diff", "why", "order",
                                 "graph", "index"])
def test_short_help(cmd: str) -> None:
    r = run(*([cmd] if cmd else []), "-h")
    assert r.returncode == 0 and r.stdout.startswith("Usage: ") and r.stdout == run(*([cmd] if cmd else []),
                                                                                   "--help").stdout


def test_readme_exit_status_table_lists_what_is_tested() -> None:
    text = (ROOT / "README.md").read_text()
    table = text.split("### Exit statuses", 1)[1].split("\n\n", 2)[1]
    statuses = {int(m) for m in re.findall(r"^\| (\d+) \|", table, re.M)}
    assert statuses == {0, 1, 3, 64, 66, 70, 73, 143}


# Every command, every status of the README's table that it can give (0/1/3/64/66/73;
# 70 and 143 are tested below and in test_concurrency.py).
USAGE = [  # (args) -> 64
    ("audit", "--fail-on", "sometimes", str(SAMPLE)),
    ("audit", "--bogus"),
    ("depmod", "--kmod-version", "29", "-n", "-b", "/", VER),
    ("depmod", "--no-such-option"),
    ("plan", "--source", "magic", "x"),
    ("plan", "--reasons", "x"),
    ("plan", "--allow-missing-firmware", "x"),
    ("plan",),
    ("scan", "--jobs", "-3", str(SAMPLE)),
    ("scan", "--jobs", "zero", str(SAMPLE)),
    ("info", "--kmod-version", "12", "x"),
    ("compat", str(SAMPLE)),
    ("diff", "onlyone"),
    ("why",),
    ("order", "--bogus"),
    ("graph", "--format", "png", str(SAMPLE)),
    ("graph", "--depth", "-1", str(SAMPLE)),
    ("index",),
    ("index", "dump"),
    ("nosuchcommand",),
]


@pytest.mark.parametrize("args", USAGE, ids=lambda a: " ".join(a) or "none")
def test_usage_errors_exit_64(args: tuple[str, ...]) -> None:
    r = run(*args)
    assert r.returncode == 64, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr


MISSING = [  # -> 66
    ("audit", "/nonexistent/tree"),
    ("audit", "--symvers", "/nonexistent/Module.symvers", str(SAMPLE)),
    ("scan", "/nonexistent/x.ko"),
    ("plan", "-b", "/nonexistent", "-k", VER, "x"),
    ("compat", "/nonexistent/x.ko", str(SAMPLE)),
    ("diff", "/nonexistent/a", str(SAMPLE)),
    ("why", "-t", "/nonexistent/tree", "a", "b"),
    ("why", "-t", str(SAMPLE), "no_such_module"),
    ("order", "/nonexistent/tree"),
    ("graph", "/nonexistent/tree"),
    ("index", "dump", "/nonexistent/modules.dep.bin"),
]


@pytest.mark.parametrize("args", MISSING, ids=lambda a: " ".join(a))
def test_missing_input_exits_66_and_debug_keeps_it(args: tuple[str, ...]) -> None:
    r = run(*args)
    assert r.returncode == 66, (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("moddeps: error: ")
    d = run("--debug", *args)
    assert d.returncode == 66 and "Traceback" in d.stderr


@pytest.mark.skipif(os.path.isdir(f"/lib/modules/{os.uname().release}"), reason="the running kernel's tree exists")
@pytest.mark.parametrize("cmd", [("order",), ("why", "mdx_consumer"), ("graph",)])
def test_no_sample_tree_fallback_outside_a_bare_audit(cmd: tuple[str, ...]) -> None:
    r = run(*cmd)
    assert r.returncode == 66 and "no such module directory" in r.stderr and "sample tree" not in r.stderr
    a = run("audit", "--json")
    assert a.returncode == 0 and "sample tree" in a.stderr


def _tree_copy(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    dst = root / "lib" / "modules" / VER
    shutil.copytree(SAMPLE, dst)
    for cyc in dst.rglob("mdx_cycle_*.ko"):
        cyc.unlink()
    return root


def test_status_0_1_3_and_73(tmp_path: Path) -> None:
    root = _tree_copy(tmp_path)
    tree = root / "lib" / "modules" / VER
    assert run("depmod", "-b", str(root), VER).returncode == 0
    assert run("audit", str(tree)).returncode == 1  # findings at error
    assert run("audit", "--fail-on", "never", str(tree)).returncode == 0
    assert run("plan", "-b", str(root), "-k", VER, "mdx_consumer").returncode == 0
    assert run("plan", "-b", str(root), "-k", VER, "no_such_thing").returncode == 1
    assert run("info", "-b", str(root), "-k", VER, "mdx_consumer").returncode == 0
    assert run("info", "-b", str(root), "-k", VER, "no_such_thing").returncode == 1
    assert run("order", str(tree)).returncode == 0
    assert run("why", "-t", str(tree), "mdx_consumer", "mdx_exporter").returncode == 0
    assert run("why", "-t", str(tree), "mdx_exporter", "mdx_consumer").returncode == 1
    (tree / "kernel" / "junk.ko").write_bytes(b"not a module")
    assert run("scan", str(tree)).returncode == 3
    assert run("info", "--json", str(tree / "kernel" / "junk.ko")).returncode == 3
    # 73: the output directory cannot be written (a file where the directory should be)
    out = tmp_path / "out"
    (out / "lib" / "modules").mkdir(parents=True)
    (out / "lib" / "modules" / VER).write_text("a file, not a directory")
    assert run("depmod", "-b", str(root), "-o", str(out), VER).returncode == 73


def test_closure_fails_on_an_unreadable_module(tmp_path: Path) -> None:
    root = _tree_copy(tmp_path)
    tree = root / "lib" / "modules" / VER
    assert run("depmod", "-b", str(root), VER).returncode == 0
    ok = run("plan", "-b", str(root), "-k", VER, "--closure", "mdx_consumer", "binfmt_script")
    assert ok.returncode == 0, ok.stderr
    assert "binfmt_script: built into the kernel" in ok.stderr
    exporter = tree / "kernel" / "samples" / "mdx" / "mdx_exporter.ko"
    st = exporter.stat()
    exporter.write_bytes(b"garbage" + exporter.read_bytes()[7:])
    os.utime(exporter, ns=(st.st_atime_ns, st.st_mtime_ns))  # the indexes stay current: planned from them
    bad = run("plan", "-b", str(root), "-k", VER, "--closure", "mdx_consumer")
    assert bad.returncode == 1
    assert "mdx_exporter.ko: cannot be read as a module" in bad.stderr and "incomplete" in bad.stderr
    scan = run("plan", "-b", str(root), "-k", VER, "--source", "scan", "--closure", "mdx_consumer")
    assert scan.returncode == 1 and "mdx_exporter.ko: cannot be read as a module" in scan.stderr


def test_closure_missing_firmware(tmp_path: Path) -> None:
    root = _tree_copy(tmp_path)
    assert run("depmod", "-b", str(root), VER).returncode == 0
    r = run("plan", "-b", str(root), "-k", VER, "--closure", "mdx_softdep")
    assert r.returncode == 1 and "firmware mdx/firmware.bin" in r.stderr
    r = run("plan", "-b", str(root), "-k", VER, "--closure", "--allow-missing-firmware", "mdx_softdep")
    assert r.returncode == 0 and "firmware mdx/firmware.bin" in r.stderr


def test_why_follows_softdeps_marked(tmp_path: Path) -> None:
    root = _tree_copy(tmp_path)
    r = run("why", "--json", "-t", str(root / "lib" / "modules" / VER), "mdx_softdep", "mdx_consumer")
    assert r.returncode == 0, r.stderr
    assert '"kind": "softdep-post", "symbols": []' in r.stdout


def test_internal_error_exits_70(tmp_path: Path) -> None:
    # a bug, provoked: the planner's module reader replaced by one that raises
    code = ("import sys; import moddeps.cli as c; import moddeps.read.scan as s\n"
            "def boom(*a, **k): raise RuntimeError('provoked')\n"
            "s.scan_tree = boom\nsys.argv = ['moddeps', *sys.argv[1:]]\nc.main()\n")
    for debug in ((), ("--debug",)):
        r = subprocess.run([sys.executable, "-c", code, *debug, "scan", str(SAMPLE)], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 70 and "internal error: RuntimeError: provoked" in r.stderr
        assert ("Traceback" in r.stderr) == bool(debug)


MAIN_AS_MODDEPS = "import sys; from moddeps.cli import main; sys.argv[0] = 'moddeps'; main()"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    # the shell named (detection off, as in a CI job without a parent shell); the program is 'moddeps'
    r = subprocess.run([sys.executable, "-c", MAIN_AS_MODDEPS, "--show-completion", shell], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert r.returncode == 0 and "_MODDEPS_COMPLETE=complete_" + shell in r.stdout
    assert ("complete --command moddeps" in r.stdout) == (shell == "fish")
    assert r.stdout.startswith("#compdef moddeps") == (shell == "zsh")
    words = subprocess.run([sys.executable, "-c", MAIN_AS_MODDEPS], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "_MODDEPS_COMPLETE": "complete_bash", "COMP_WORDS": "moddeps dep",
                                "COMP_CWORD": "1"})
    assert words.stdout.split() == ["depmod"]
