"""Hostile and damaged input, end to end (issue 8): ``moddeps depmod`` as a subprocess.

* **Output safety.**  Names, aliases, softdeps, devnames and symbols that hold
  newlines, blanks, ``/``, ``..`` or non-ASCII bytes must not inject lines or
  fields into ``modules.*`` nor write outside the output directory.  The rules
  (``tests/fuzz/__init__.py`` states them too): what cannot be written safely is
  left out -- exactly as if it were absent -- with a one-line diagnostic naming
  the module; everything else is written as kmod 30 writes it.  What kmod 30
  itself does on each input is checked against the installed ``depmod``
  (``test_kmod30_*``, skipped without kmod 30).
* **Kill tests.**  SIGINT, SIGTERM or SIGKILL at a random point of a run (and
  right inside the write phase) leave the previous files intact byte for byte,
  or a complete new set; the next run leaves no temporary file.
* **Concurrency.**  Two runs at once on one tree end with the files of a single
  run; the scan cache survives concurrent writers and a truncated database.
* **Limits.**  Decompression bombs, a module that never finishes reading (a
  per-file time bound), deep directory nesting.
* **Messages.**  Every error names the file in one line; ``--debug`` gives the traceback.

The tree for the kill and concurrency tests is a hard-linked copy of the Debian
cloud tree when ``/work/trees/cloud-amd64`` (or the conformance cache) has it,
else a synthetic tree of 400 modules.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from moddeps.depmod.writer import JOURNAL_NAME, LOCK_NAME, is_temporary, locked
from moddeps.index.read import Index

from .kobuild import Export, build_ko

V = "6.1.0-1-amd64"
REPO = Path(__file__).resolve().parent.parent
INPUTS = ("modules.order", "modules.builtin", "modules.builtin.modinfo")
TMP_MARK = ".moddeps-tmp."


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def moddir(root: Path, version: str = V) -> Path:
    return root / "lib" / "modules" / version


def make_tree(root: Path, modules: dict[bytes, bytes], *, order: Iterable[bytes] | None = None,
              builtin: bytes | None = b"", builtin_modinfo: bytes | None = b"") -> Path:
    """A tree under ``root``: ``modules`` maps relpath (bytes, any byte but NUL) to file contents."""
    md = moddir(root)
    md.mkdir(parents=True)
    (root / "cfg").mkdir()
    for rel, data in modules.items():
        path = os.path.join(os.fsencode(md), rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    (md / "modules.order").write_bytes(b"".join(o + b"\n" for o in (order if order is not None else modules)))
    if builtin is not None:
        (md / "modules.builtin").write_bytes(builtin)
    if builtin_modinfo is not None:
        (md / "modules.builtin.modinfo").write_bytes(builtin_modinfo)
    return root


def moddeps_argv(root: Path, *extra: str, version: str = V, cfg: Path | None = None) -> list[str]:
    # compared with kmod 30's depmod
    return [sys.executable, "-m", "moddeps", "depmod", "--kmod-version", "30", "--no-cache",
            "-C", str(cfg or root / "cfg"), "-b", str(root), *extra, version]


def run_moddeps(root: Path, *extra: str, version: str = V, timeout: float = 300,
                cfg: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(moddeps_argv(root, *extra, version=version, cfg=cfg), capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=timeout, cwd=REPO, env=env)


def outputs(root: Path, version: str = V) -> dict[str, bytes]:
    md = moddir(root, version)
    return {p.name: p.read_bytes() for p in md.iterdir()
            if p.is_file() and p.name.startswith("modules.") and p.name not in INPUTS}


def temporaries(root: Path, version: str = V) -> list[str]:
    """moddeps' own files in the module directory (temporaries, the lock, the journal): none after a run."""
    return sorted(n for n in os.listdir(moddir(root, version))
                  if TMP_MARK in n or n.endswith(".tmp") or n in (LOCK_NAME, JOURNAL_NAME))


def settled(md: Path) -> None:
    """What the next run does first: complete (or drop) a set left half renamed, remove temporaries."""
    with locked(str(md)):
        pass


def lines(r: subprocess.CompletedProcess[bytes]) -> list[str]:
    return r.stderr.decode("utf-8", "surrogateescape").splitlines()


def assert_ok(r: subprocess.CompletedProcess[bytes]) -> None:
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 0, f"exit status {r.returncode}:\n{err[-3000:]}"
    assert "internal error" not in err and "Traceback" not in err, err[-3000:]


def shown(raw: bytes) -> list[str]:
    """How a path or value with control characters may appear in a one-line message."""
    text = raw.decode("utf-8", "surrogateescape")
    esc = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return [esc, repr(text)[1:-1], text]


def kmod30() -> str:
    depmod = shutil.which("depmod", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if depmod is None:
        pytest.skip("kmod's depmod is not installed")
    out = subprocess.run([depmod, "--version"], capture_output=True, text=True).stdout
    if not out.startswith("kmod version 30"):
        pytest.skip(f"this documents kmod 30, {depmod} is {out.splitlines()[:1]}")
    return depmod


def run_kmod(root: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([kmod30(), "-C", str(root / "cfg"), "-b", str(root), V], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def exporter(*aliases: str | bytes, exports: tuple[str, ...] = ("exp_sym",), **kw: object) -> bytes:
    info = [b"license=GPL", *[b"alias=" + (a.encode() if isinstance(a, str) else a) for a in aliases]]
    return build_ko(modinfo=[*info, *kw.pop("modinfo", [])],  # type: ignore[list-item]
                    exports=[Export(name=e, crc=0x1000 + i) for i, e in enumerate(exports)], **kw)  # type: ignore[arg-type]


USER = build_ko(modinfo=["license=GPL", "alias=user-alias"], undefined=["exp_sym"])
OTHER = build_ko(modinfo=["license=GPL", "alias=other-alias", "softdep=pre: user"], exports=[Export(name="other_sym")])


# --------------------------------------------------------------------------
# Output safety: module paths
# --------------------------------------------------------------------------

BAD_PATHS = {
    "newline-in-name": b"kernel/foo\nbar.ko",
    "newline-in-dir": b"kernel/a\nb/foo.ko",
    "space-in-name": b"kernel/foo bar.ko",
    "tab-in-name": b"kernel/foo\tbar.ko",
    "space-in-dir": b"kernel/my dir/foo.ko",
    "colon-in-name": b"kernel/foo:bar.ko",
}


@pytest.mark.parametrize("case", sorted(BAD_PATHS))
def test_module_path_that_modules_dep_cannot_hold_is_skipped(tmp_path: Path, case: str) -> None:
    """Left out of every file, as if absent, with "ERROR: PATH: ...; skipped" naming it on one line.

    kmod 30 writes such a path verbatim (test_kmod30_writes_paths_verbatim): a
    newline adds lines to modules.dep and modules.alias; a blank or a colon
    makes libkmod read a different dependency list (it splits a line at the
    first ':' and the list at blanks).
    """
    bad = BAD_PATHS[case]
    good = {b"kernel/user.ko": USER, b"kernel/other.ko": OTHER}
    hostile = make_tree(tmp_path / "hostile", {bad: exporter("bad-alias"), **good})
    clean = make_tree(tmp_path / "clean", good)
    r = run_moddeps(hostile)
    assert_ok(r)
    assert_ok(run_moddeps(clean))
    assert outputs(hostile) == outputs(clean)
    forms = shown(bad)
    hits = [ln for ln in lines(r) if "ERROR" in ln and "skipped" in ln and any(f in ln for f in forms)]
    assert len(hits) == 1, (
        f"expected one 'ERROR: {forms[0]}: ...; skipped' line, stderr was:\n{r.stderr.decode(errors='replace')}")


def test_kmod30_writes_paths_verbatim(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "k", {b"kernel/foo\nbar.ko": exporter("x"), b"kernel/user.ko": USER})
    r = run_kmod(root)
    assert r.returncode == 0
    dep = outputs(root)["modules.dep"]
    assert b"kernel/foo\nbar.ko:\n" in dep and b"kernel/user.ko: kernel/foo\nbar.ko\n" in dep
    assert b"alias x foo\nbar\n" in outputs(root)["modules.alias"]


# --------------------------------------------------------------------------
# Output safety: modinfo values and symbols
# --------------------------------------------------------------------------


def _compare_with_variant(tmp_path: Path, hostile_mod: bytes, clean_mod: bytes, module_name: str,
                          what: str, expect_same: Iterable[str] | None = None) -> dict[str, bytes]:
    """Run on a tree holding ``hostile_mod`` as kernel/m.ko and on one holding ``clean_mod``;
    the files must be equal (all of them, or ``expect_same``) and a warning must name the module."""
    hostile = make_tree(tmp_path / "hostile", {b"kernel/m.ko": hostile_mod, b"kernel/user.ko": USER})
    clean = make_tree(tmp_path / "clean", {b"kernel/m.ko": clean_mod, b"kernel/user.ko": USER})
    r = run_moddeps(hostile)
    assert_ok(r)
    assert_ok(run_moddeps(clean))
    got, want = outputs(hostile), outputs(clean)
    for name in expect_same or sorted(set(got) | set(want)):
        assert got.get(name) == want.get(name), f"{name}:\n got {got.get(name)!r}\nwant {want.get(name)!r}"
    warn = [ln for ln in lines(r) if ("WARNING" in ln or "ERROR" in ln) and module_name in ln and what in ln.lower()]
    assert warn, f"no warning naming {module_name} and mentioning {what!r}:\n{r.stderr.decode(errors='replace')}"
    assert all(ln.startswith("moddeps: ") for ln in lines(r)), "a diagnostic spans several lines"
    return got


@pytest.mark.parametrize("alias", [b"foo\nalias evil other", b"\n", b"foo\r"])
def test_alias_with_newline_is_left_out(tmp_path: Path, alias: bytes) -> None:
    """kmod 30 writes "alias foo\\nalias evil other m": a line of its own choosing in modules.alias."""
    _compare_with_variant(tmp_path, exporter(alias, "kept"), exporter("kept"), "m", "alias")


@pytest.mark.parametrize("alias", [b"foo other", b"foo\tother"])
def test_alias_with_blank_is_kept_as_kmod_writes_it(tmp_path: Path, alias: bytes) -> None:
    """A blank adds no line (and kmod's own tests use "char-major- 4-+5"): kmod's bytes."""
    root = make_tree(tmp_path / "t", {b"kernel/m.ko": exporter(alias), b"kernel/user.ko": USER})
    assert_ok(run_moddeps(root))
    assert b"alias " + alias + b" m\n" in outputs(root)["modules.alias"]


@pytest.mark.parametrize("softdep", [b"pre: a\nsoftdep evil pre: b", b"\n"])
def test_softdep_with_newline_is_left_out(tmp_path: Path, softdep: bytes) -> None:
    """kmod 30 writes "softdep m pre: a\\nsoftdep evil pre: b": a softdep for another module."""
    _compare_with_variant(tmp_path, exporter(modinfo=[b"softdep=" + softdep, b"softdep=post: c"]),
                          exporter(modinfo=[b"softdep=post: c"]), "m", "softdep")


def test_weakdep_with_newline_is_left_out(tmp_path: Path) -> None:
    _compare_with_variant(tmp_path, exporter(modinfo=[b"weakdep=a\nweakdep evil b", b"weakdep=c"]),
                          exporter(modinfo=[b"weakdep=c"]), "m", "weakdep")


def _plan(root: Path, *targets: str) -> list[str]:
    r = subprocess.run([sys.executable, "-m", "moddeps", "plan", "-b", str(root), "-k", V, "--show-depends",
                        *targets], capture_output=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return [ln.rsplit("/", 1)[-1] for ln in r.stdout.decode().splitlines()]


@pytest.mark.parametrize("key", ["softdep", "weakdep"])
@pytest.mark.parametrize("value", [b"pre: a\\", b"pre: a \\\\", b"\\"], ids=["one", "two", "alone"])
def test_softdep_ending_in_a_backslash_is_left_out(tmp_path: Path, key: str, value: bytes) -> None:
    """issue 15, item 3: libkmod reads modules.softdep/weakdep as modprobe.d files (shared/util.c
    freadline_wrapped): "softdep m pre: a\\" joins the next line, so the next module's softdep is
    lost (test_kmod_joins_a_softdep_ending_in_a_backslash).  Left out, with a warning naming m."""
    if key == "weakdep":
        value = value.replace(b"pre: ", b"")
    # kernel/m.ko sorts before kernel/user.ko, whose softdep line follows m's
    _compare_with_variant(tmp_path, exporter(modinfo=[f"{key}=".encode() + value]), exporter(), "m", key)
    # the next line keeps its meaning for moddeps plan (and modprobe)
    root = make_tree(tmp_path / "plan", {b"kernel/m.ko": exporter(modinfo=[f"{key}=".encode() + value]),
                                         b"kernel/other.ko": OTHER, b"kernel/user.ko": USER})
    assert_ok(run_moddeps(root))
    assert b"\\\n" not in outputs(root)["modules.softdep"] + outputs(root).get("modules.weakdep", b"")
    assert _plan(root, "other") == ["m.ko ", "user.ko ", "other.ko "]


def test_kmod_joins_a_softdep_ending_in_a_backslash(tmp_path: Path) -> None:
    """What kmod 30 writes, and what its modprobe then makes of it: other's "softdep other pre: user"
    line is swallowed by m's."""
    root = make_tree(tmp_path / "k", {b"kernel/m.ko": exporter(modinfo=[b"softdep=pre: a\\"]),
                                      b"kernel/other.ko": OTHER, b"kernel/user.ko": USER})
    assert run_kmod(root).returncode == 0
    assert b"softdep m pre: a\\\nsoftdep other pre: user\n" in outputs(root)["modules.softdep"]
    modprobe = shutil.which("modprobe", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    assert modprobe is not None
    r = subprocess.run([modprobe, "-d", str(root), "-S", V, "--show-depends", "other"], capture_output=True,
                       timeout=60)
    assert [ln.rsplit(b"/", 1)[-1] for ln in r.stdout.splitlines()] == [b"other.ko "]


@pytest.mark.parametrize("char", [b"\v", b"\f"], ids=["vt", "ff"])
@pytest.mark.parametrize("key", ["alias", "softdep", "weakdep"])
def test_vertical_white_space_in_a_value_is_left_out(tmp_path: Path, char: bytes, key: str) -> None:
    """\\v and \\f end lines for Python's splitlines and tools splitting at vertical white space."""
    value = {"alias": b"foo" + char + b"bar", "softdep": b"pre: a" + char + b"b", "weakdep": b"a" + char + b"b"}[key]
    _compare_with_variant(tmp_path, exporter(modinfo=[f"{key}=".encode() + value]), exporter(), "m", key)


@pytest.mark.parametrize("char", ["\v", "\f"], ids=["vt", "ff"])
def test_exported_symbol_with_vertical_white_space_is_left_out(tmp_path: Path, char: str) -> None:
    got = _compare_with_variant(tmp_path, exporter(exports=(f"f{char}g", "exp_sym")), exporter(exports=("exp_sym",)),
                                "m", "symbol")
    assert got["modules.dep"] == b"kernel/m.ko:\nkernel/user.ko: kernel/m.ko\n"


@pytest.mark.parametrize("devname", [b"x\vb1:1", b"x\fb1:1", b"x\rb1:1"], ids=["vt", "ff", "cr"])
def test_devname_with_vertical_white_space_is_left_out(tmp_path: Path, devname: bytes) -> None:
    """issue 15, item 3: kmod tools/static-nodes.c reads modules.devname with sscanf("%s %s %c%u:%u"),
    so "m x\\vb1:1 c10:99" is device "x", a block node 1:1.  The devname is left out, the rest stays."""
    got = _compare_with_variant(tmp_path, exporter(b"devname:" + devname, "char-major-10-99"),
                                exporter("char-major-10-99"), "m", "devname")
    assert b"x" not in got.get("modules.devname", b"").replace(b"# Device nodes", b"")


@pytest.mark.parametrize("devname", [b"../../etc/evil", b"/etc/evil", b"a/../../b", b".."])
def test_devname_that_escapes_dev_is_left_out(tmp_path: Path, devname: bytes) -> None:
    """kmod-static-nodes creates /dev/DEVNAME at boot (tmpfiles "c! /dev/DEVNAME ..."):
    a devname with a ".." component or a leading "/" names a path outside /dev.
    kmod 30 writes "m ../../etc/evil c10:99".  The alias itself stays in modules.alias."""
    alias = b"devname:" + devname
    got = _compare_with_variant(tmp_path, exporter(alias, "char-major-10-99"), exporter("char-major-10-99"),
                                "m", "devname", expect_same=["modules.devname", "modules.dep", "modules.symbols"])
    assert b"alias " + alias + b" m\n" in got["modules.alias"]


@pytest.mark.parametrize("devname", [b"x\nevil y c1:1", b"a b"])
def test_devname_with_newline_or_blank_is_left_out(tmp_path: Path, devname: bytes) -> None:
    """A newline is left out everywhere (it would add lines); a blank only from modules.devname, whose
    reader splits at blanks (the alias itself stays, as kmod writes it)."""
    _compare_with_variant(tmp_path, exporter(b"devname:" + devname, "char-major-10-99"),
                          exporter("char-major-10-99"), "m", "devname",
                          expect_same=None if b"\n" in devname else ["modules.devname", "modules.dep"])


def test_devname_in_a_subdirectory_is_kept(tmp_path: Path) -> None:
    """Real devnames have directories (snd/timer, net/tun, mapper/control): kmod's output, unchanged."""
    root = make_tree(tmp_path / "t", {b"kernel/m.ko": exporter("devname:net/tun", "char-major-10-200")})
    assert_ok(run_moddeps(root))
    want = b"# Device nodes to trigger on-demand module loading.\nm net/tun c10:200\n"
    assert outputs(root)["modules.devname"] == want


@pytest.mark.parametrize("symbol", ["f\nalias symbol:evil x", "f\r"])
def test_exported_symbol_with_newline_is_left_out(tmp_path: Path, symbol: str) -> None:
    """kmod 30 writes "alias symbol:f\\nalias symbol:evil x m".  The dependency on m stays."""
    got = _compare_with_variant(tmp_path, exporter(exports=(symbol, "exp_sym")), exporter(exports=("exp_sym",)),
                                "m", "symbol")
    assert got["modules.dep"] == b"kernel/m.ko:\nkernel/user.ko: kernel/m.ko\n"


@pytest.mark.parametrize(
    ("label", "files"),
    [
        ("alias", {b"kernel/m.ko": exporter(b"caf\xc3\xa9")}),
        ("module-name", {b"kernel/caf\xc3\xa9.ko": exporter(), b"kernel/user.ko": USER}),
        ("symbol", {b"kernel/m.ko": exporter(exports=("caf\u00e9",))}),
    ],
    ids=["alias", "module-name", "symbol"],
)
def test_non_ascii_key_kmod_can_store_is_written_as_kmod(tmp_path: Path, label: str, files: dict[bytes, bytes]) -> None:
    """A non-ASCII byte that ends up inside a node prefix: kmod 30 writes a good index; so must we, byte for byte."""
    ours = make_tree(tmp_path / "ours", files)
    theirs = make_tree(tmp_path / "kmod", files)
    assert run_kmod(theirs).returncode == 0
    assert_ok(run_moddeps(ours))
    assert outputs(ours) == outputs(theirs)


@pytest.mark.parametrize(
    ("what", "hostile", "clean"),
    [
        ("alias", exporter(b"caf\xc3\xa9", b"cafe", b"caf\xc3\xa8"), exporter(b"cafe")),
        ("symbol", exporter(exports=("caf\u00e9", "cafe", "exp_sym")), exporter(exports=("cafe", "exp_sym"))),
        ("alias", exporter(b"\xc3\xa9t\xc3\xa9", b"cafe"), exporter(b"cafe")),  # a root branch: first byte
    ],
    ids=["alias", "symbol", "alias-first-byte"],
)
def test_non_ascii_branch_does_not_stop_the_run(tmp_path: Path, what: str, hostile: bytes, clean: bytes) -> None:
    """Keys that branch on a byte >= 0x80: kmod 30 writes children[-61] and dies (SIGSEGV, half the files
    written).  One module must not stop depmod for the whole tree: the keys are left out of the .bin
    with a warning naming the module; the text files are kmod's."""
    hostile_root = make_tree(tmp_path / "hostile", {b"kernel/m.ko": hostile, b"kernel/user.ko": USER})
    clean_root = make_tree(tmp_path / "clean", {b"kernel/m.ko": clean, b"kernel/user.ko": USER})
    r = run_moddeps(hostile_root)
    assert_ok(r)
    assert_ok(run_moddeps(clean_root))
    got, want = outputs(hostile_root), outputs(clean_root)
    text = "modules.alias" if what == "alias" else "modules.symbols"
    binary = text + ".bin"
    for name in set(got) | set(want):
        if name not in (text, binary):
            assert got.get(name) == want.get(name), name
    index = Index.from_bytes(got[binary], name=binary)
    stored = {k for k, _v, _p in index.items()}
    assert {k for k, _v, _p in Index.from_bytes(want[binary]).items()} <= stored
    if all(k.isascii() for k in stored):  # the non-ASCII keys were left out: say so, naming the module
        assert any(re.search(r"\bm\b", ln) and ("WARNING" in ln or "ERROR" in ln) for ln in lines(r)), lines(r)


def test_kmod30_crashes_on_non_ascii_branch(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "k", {b"kernel/m.ko": exporter(b"caf\xc3\xa9", b"cafe", b"caf\xc3\xa8")})
    r = run_kmod(root)
    assert r.returncode == -signal.SIGSEGV
    assert "modules.alias.bin" not in outputs(root)


@pytest.mark.parametrize(
    ("label", "builtin", "builtin_modinfo"),
    [
        ("modules.builtin", b"kernel/caf\xc3\xa9.ko\nkernel/cafe.ko\nkernel/caf\xc3\xa8.ko\n", b""),
        ("modules.builtin.modinfo", b"", b"m.alias=caf\xc3\xa9\0m.alias=cafe\0m.alias=caf\xc3\xa8\0"),
    ],
    ids=["modules.builtin", "modules.builtin.modinfo"],
)
def test_hostile_builtin_lists_do_not_stop_the_run(tmp_path: Path, label: str, builtin: bytes,
                                                   builtin_modinfo: bytes) -> None:
    root = make_tree(tmp_path / "t", {b"kernel/m.ko": exporter(), b"kernel/user.ko": USER},
                     builtin=builtin, builtin_modinfo=builtin_modinfo)
    r = run_moddeps(root)
    assert_ok(r)
    files = outputs(root)
    assert files["modules.dep"] == b"kernel/m.ko:\nkernel/user.ko: kernel/m.ko\n"
    for name in ("modules.builtin.bin", "modules.builtin.alias.bin"):
        Index.from_bytes(files[name], name=name)


def test_nothing_is_written_outside_the_output_directory(tmp_path: Path) -> None:
    """Hostile strings everywhere, a symlinked modules.dep pointing outside: only the output
    directory changes, and the symlink is replaced, not followed (kmod renames too)."""
    evil = build_ko(modinfo=[b"alias=../../../../outside-alias", b"alias=devname:../../outside-dev",
                             b"alias=char-major-1-1", b"softdep=pre: ../../outside", b"name=../../x",
                             b"firmware=../../../fw"],
                    exports=[Export(name="../../sym", crc=1)], undefined=["/etc/passwd"])
    root = make_tree(tmp_path / "t", {b"kernel/..evil...ko": evil, b"kernel/user.ko": USER})
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious\n")
    os.symlink(outside, moddir(root) / "modules.dep")

    def snapshot() -> dict[str, tuple[int, float]]:
        acc = {}
        for dirpath, _dirs, names in os.walk(tmp_path):
            for n in names:
                p = os.path.join(dirpath, n)
                st = os.lstat(p)
                acc[p] = (st.st_size, st.st_mtime_ns)
        return acc

    before = snapshot()
    r = run_moddeps(root)
    assert r.returncode == 0, r.stderr
    after = snapshot()
    md = str(moddir(root))
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert all(os.path.dirname(p) == md and os.path.basename(p).startswith("modules.") for p in changed), changed
    assert outside.read_bytes() == b"precious\n"
    assert not os.path.islink(moddir(root) / "modules.dep")
    # -o: the module tree itself is left alone
    out = tmp_path / "out"
    before = snapshot()
    assert run_moddeps(root, "-o", str(out)).returncode == 0
    after = snapshot()
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert changed and all(p.startswith(str(moddir(out)) + "/") for p in changed), changed


# --------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------

DAMAGED = {
    b"kernel/trunc.ko": exporter()[:100],
    b"kernel/garbage.ko": b"\x7fELF" + b"\xff" * 200,
    b"kernel/notelf.ko": b"#!/bin/sh\n" * 10,
    b"kernel/bad\nname.ko": b"x" * 10,
}


def test_scan_names_every_unreadable_file_on_one_line(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t", {**DAMAGED, b"kernel/m.ko": exporter(), b"kernel/user.ko": USER})
    r = subprocess.run([sys.executable, "-m", "moddeps", "scan", "--no-cache", "--json", str(moddir(root))],
                       capture_output=True, cwd=REPO, timeout=120)
    assert r.returncode == 3
    errs = lines(r)
    for rel in DAMAGED:
        hits = [ln for ln in errs if any(f in ln for f in shown(rel))]
        assert len(hits) == 1, f"{rel!r} named on {len(hits)} lines: {errs}"
    assert len(errs) == len(DAMAGED), errs


def test_depmod_names_every_unreadable_file(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t", {**{k: v for k, v in DAMAGED.items() if b"\n" not in k},
                                      b"kernel/m.ko": exporter(), b"kernel/user.ko": USER})
    r = run_moddeps(root)
    assert_ok(r)
    for rel in DAMAGED:
        if b"\n" not in rel:
            assert any(rel.decode() in ln for ln in lines(r)), (rel, lines(r))
    assert b"kernel/user.ko: kernel/m.ko\n" in outputs(root)["modules.dep"]


@pytest.mark.parametrize("name", ["bad.ko", "bad\nname.ko"])
def test_info_error_is_one_line_naming_the_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 100)
    r = subprocess.run([sys.executable, "-m", "moddeps", "info", "--json", str(path)], capture_output=True,
                       cwd=REPO, timeout=60)
    assert r.returncode == 3
    errs = lines(r)
    assert len(errs) == 1, f"not one line: {errs}"
    assert any(f in errs[0] for f in shown(os.fsencode(path)))


def test_index_dump_error_and_debug_traceback(tmp_path: Path) -> None:
    path = tmp_path / "modules.alias.bin"
    path.write_bytes(bytes.fromhex("b007f457 00020001 8000ffff"))
    r = subprocess.run([sys.executable, "-m", "moddeps", "index", "dump", str(path)], capture_output=True,
                       cwd=REPO, timeout=60)
    assert r.returncode == 66
    assert lines(r) == [lines(r)[0]] and str(path) in lines(r)[0] and "past the end" in lines(r)[0]
    r = subprocess.run([sys.executable, "-m", "moddeps", "--debug", "index", "dump", str(path)],
                       capture_output=True, cwd=REPO, timeout=60)
    assert r.returncode != 0
    assert "Traceback (most recent call last)" in r.stderr.decode() and str(path) in r.stderr.decode()


def test_missing_symbol_list_is_one_line(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t", {b"kernel/m.ko": exporter()})
    missing = tmp_path / "no" / "Module.symvers"
    r = run_moddeps(root, "-e", "-E", str(missing))
    assert r.returncode == 66
    assert len(lines(r)) == 1 and str(missing) in lines(r)[0]


# --------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------


def _zstd_rle_bomb(total: int, *, declared: bool = True) -> bytes:
    """A zstd frame of ``total`` bytes made of RLE blocks; ``declared``: its header
    holds the content size (8 bytes), as libkmod 34 requires of a module."""
    if declared:
        out = bytearray(b"\x28\xb5\x2f\xfd\xc0" + bytes([(17 - 10) << 3]) + total.to_bytes(8, "little"))
    else:
        out = bytearray(b"\x28\xb5\x2f\xfd\x00" + bytes([(17 - 10) << 3]))
    left = total
    while left:
        n = min(128 * 1024, left)
        left -= n
        out += ((1 if left == 0 else 0) | (1 << 1) | (n << 3)).to_bytes(3, "little") + b"A"
    return bytes(out)


@pytest.mark.parametrize("declared", [True, False])
@pytest.mark.parametrize("limit_mib", [64])
def test_decompression_bomb_is_refused_within_the_limit(tmp_path: Path, limit_mib: int, declared: bool) -> None:
    """A 64 kB zstd file of 4 GiB: refused with a clear error, memory never far above the limit
    (a frame that does not declare its size is refused at once, as libkmod 34 does)."""
    bomb = tmp_path / "bomb.ko.zst"
    bomb.write_bytes(_zstd_rle_bomb(4 << 30, declared=declared))
    code = textwrap.dedent(f"""
        import resource, sys
        from moddeps.read.elfreader import read_module_or_broken
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        m = read_module_or_broken({str(bomb)!r}, max_size={limit_mib} << 20)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(m.error)
        print((after - before) // 1024)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    error, grown = r.stdout.splitlines()
    if declared:
        assert "more than" in error and str(limit_mib << 20) in error, error
    else:
        assert "does not declare its decompressed size" in error, error
    assert int(grown) < 2 * limit_mib + 32, f"reading the bomb grew the process by {grown} MiB"


def _synthetic_tree(root: Path, count: int, extra: dict[bytes, bytes] | None = None) -> Path:
    mods: dict[bytes, bytes] = {}
    for i in range(count):
        needs = [f"sym_{(i - 1) // 2}"] if i else []
        mods[f"kernel/d{i % 7}/mod_{i}.ko".encode()] = build_ko(
            modinfo=["license=GPL", f"alias=pci:v{i:08X}d*"], exports=[Export(name=f"sym_{i}", crc=i)],
            undefined=needs, versions=[(n, 0) for n in needs])
    mods.update(extra or {})
    return make_tree(root, mods)


def test_one_module_that_never_finishes_reading_does_not_stall_the_scan(tmp_path: Path) -> None:
    """A per-file time bound in the read pool.  The reader is made to hang on one file (monkeypatched
    in the workers; where the C reader reads runs of .ko files itself, its read of that file waits as
    on a file system that does not answer); with MODDEPS_READ_TIMEOUT=2 the run must finish, name the
    file, and list it in modules.dep like any unreadable module."""
    root = _synthetic_tree(tmp_path / "t", 80, {b"kernel/slow.ko": exporter(exports=("slow_sym",))})
    code = textwrap.dedent(f"""
        import sys, time
        import moddeps.read.elfreader as er
        real = er.parse_module
        def parse_module(data, path, **kw):
            if "slow.ko" in path or "slow.ko" in str(kw.get("display_path")):
                time.sleep(3600)
            return real(data, path, **kw)
        er.parse_module = parse_module
        if er._elfscan is not None:
            real_files = er._elfscan.parse_files
            def parse_files(items, start, stop, *args, **kw):
                stall = [k for k in range(start, min(stop, len(items))) if "slow.ko" in items[k][0]]
                return real_files(items, start, stop, *args, **kw, **({{"stall": stall[0]}} if stall else {{}}))
            er._elfscan.parse_files = parse_files
        sys.argv = {moddeps_argv(root, "-j", "2")[2:]!r}
        sys.argv[0] = "moddeps"
        from moddeps.cli import main
        main()
    """)
    env = dict(os.environ, MODDEPS_READ_TIMEOUT="2")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=REPO, env=env, start_new_session=True)
    try:
        _out, err = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("moddeps depmod was still reading after 40 s: one slow module stalls the whole scan")
    finally:
        _reap_group(proc.pid)
    assert proc.returncode == 0, err.decode(errors="replace")
    assert any("slow.ko" in ln for ln in err.decode().splitlines())
    assert b"kernel/slow.ko:\n" in outputs(root)["modules.dep"]


@pytest.fixture
def deep_root(tmp_path: Path) -> Iterable[Path]:
    """A root for a very deep tree, removed with rm -rf afterwards (shutil.rmtree, and so pytest's
    own clean-up of old temporary directories, recurses once per level and fails past ~1000)."""
    root = tmp_path / "t"
    yield root
    subprocess.run(["rm", "-rf", str(root)], check=False)


def _deep_tree(root: Path, depth: int) -> bytes:
    make_tree(root, {b"kernel/user.ko": USER})
    fd = os.open(moddir(root) / "kernel", os.O_RDONLY)
    try:  # level by level, relative to the previous one (os.makedirs recurses; paths grow past PATH_MAX)
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        wfd = os.open("deep.ko", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(wfd, exporter())
        os.close(wfd)
    finally:
        os.close(fd)
    rel = b"kernel/" + b"d/" * depth + b"deep.ko"
    (moddir(root) / "modules.order").write_bytes(b"kernel/user.ko\n" + rel + b"\n")
    return rel


@pytest.mark.parametrize("depth", [300, 1200])
def test_deep_nesting_is_walked_like_kmod(deep_root: Path, depth: int) -> None:
    """kmod 30 walks any depth (openat per level, no PATH_MAX limit; checked: 1200 levels): the module is
    in modules.dep.  moddeps stops at 256 levels, silently, calling it a symlink loop."""
    rel = _deep_tree(deep_root, depth)
    r = run_moddeps(deep_root)
    assert_ok(r)
    dep = outputs(deep_root)["modules.dep"]
    assert rel + b":\n" in dep and b"kernel/user.ko: " + rel in dep


def test_absurd_nesting_gives_a_clear_error(deep_root: Path) -> None:
    """5000 levels: no crash (no RecursionError); the module is found, or one line names the
    directory that was not descended and says why."""
    rel = _deep_tree(deep_root, 5000)
    r = run_moddeps(deep_root)
    assert_ok(r)
    dep = outputs(deep_root)["modules.dep"]
    assert b"kernel/user.ko:" in dep
    if rel + b":\n" not in dep:
        said = [ln for ln in lines(r) if "kernel/d/d/d" in ln and ("deep" in ln or "level" in ln)]
        assert len(said) == 1, lines(r)


# --------------------------------------------------------------------------
# Kill tests
# --------------------------------------------------------------------------


def _cloud_source() -> Path | None:
    candidates = [Path("/work/trees/cloud-amd64")]
    cache = Path(os.environ.get("MODDEPS_CONFORMANCE_CACHE") or "/var/tmp/moddeps-conformance") / "trees"
    candidates += sorted(cache.glob("linux-image-*-cloud-amd64_*"))
    for c in candidates:
        versions = sorted(p.name for p in (c / "lib" / "modules").glob("*") if p.is_dir())
        if len(versions) == 1 and (c / "lib" / "modules" / versions[0] / "modules.order").is_file():
            return c
    return None


@pytest.fixture
def big_tree(tmp_path: Path) -> tuple[Path, str]:
    """(root, version): a hard-linked copy of the Debian cloud tree, or 400 synthetic modules."""
    src = _cloud_source()
    root = tmp_path / "tree"
    if src is not None:
        version = next(p.name for p in (src / "lib" / "modules").iterdir() if p.is_dir())
        dst = moddir(root, version)
        dst.parent.mkdir(parents=True)
        r = subprocess.run(["cp", "-al", str(moddir(src, version)), str(dst)], capture_output=True)
        if r.returncode != 0:
            shutil.copytree(moddir(src, version), dst)
        for name in os.listdir(dst):  # generated files never come from the pristine tree
            if name.startswith("modules.") and name not in INPUTS:
                os.unlink(dst / name)
        (root / "cfg").mkdir()
        return root, version
    _synthetic_tree(root, 400)
    return root, V


def _reap_group(pgid: int) -> bool:
    """True if processes of the group were still alive (they are killed)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    os.killpg(pgid, signal.SIGKILL)
    return True


def _restore(root: Path, version: str, files: dict[str, bytes]) -> None:
    md = moddir(root, version)
    for name in os.listdir(md):
        if (name.startswith("modules.") and name not in INPUTS) or TMP_MARK in name or name == JOURNAL_NAME:
            os.unlink(md / name)
    for name, data in files.items():
        (md / name).write_bytes(data)


def _kill_run(root: Path, version: str, sig: int, mode: str, rnd: random.Random, full: float) -> None:
    md = moddir(root, version)
    proc = subprocess.Popen(moddeps_argv(root, version=version), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=REPO, start_new_session=True)
    if mode == "random":
        time.sleep(rnd.uniform(0.05, 1.1) * full)
    else:  # the write phase: as soon as the first temporary file appears (or the run ends)
        t0 = time.monotonic()
        while proc.poll() is None and time.monotonic() - t0 < 60:
            if any(TMP_MARK in n for n in os.listdir(md)):
                time.sleep(rnd.uniform(0, 0.004))
                break
            time.sleep(0.0005)
    if proc.poll() is None:
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        _reap_group(proc.pid)
        pytest.fail(f"moddeps did not stop within 60 s of {signal.Signals(sig).name}")
    # pool workers finish the chunk in hand, then see the closed pipes and exit (~2 s at most, measured)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    assert not _reap_group(proc.pid), f"worker processes still alive 10 s after {signal.Signals(sig).name}"
    proc.stderr.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_killed_run_leaves_previous_files_or_complete_new_set(big_tree: tuple[Path, str], tmp_path: Path,
                                                               sig: int) -> None:
    root, version = big_tree
    md = moddir(root, version)
    # the previous set P, from the tree as it was
    t0 = time.monotonic()
    assert_ok(run_moddeps(root, version=version))
    full = time.monotonic() - t0
    previous = outputs(root, version)
    # the tree changes (a module goes away): the new set N, computed with -o elsewhere
    victim = sorted(p for p in md.rglob("*.ko*"))[len(previous["modules.dep"]) % 50]
    victim.unlink()
    new_root = tmp_path / "expected"
    assert_ok(run_moddeps(root, "-o", str(new_root), version=version))
    new = outputs(new_root, version)
    assert new != previous
    rnd = random.Random(f"{sig}")
    for mode in ("random", "write", "random", "write"):
        _restore(root, version, previous)
        _kill_run(root, version, sig, mode, rnd, full)
        got = outputs(root, version)
        leftovers = [n for n in os.listdir(md) if n.startswith(".") and n not in got]
        assert all(is_temporary(n) or n in (LOCK_NAME, JOURNAL_NAME) for n in leftovers), (
            f"unexpected files after the kill: {leftovers}")
        if sig == signal.SIGKILL:
            # nothing can make N renames atomic against SIGKILL: each file is whole, old or new, and
            # a mix only with the journal, which the next run (or settled()) completes to the new set
            for name in set(previous) | set(new):
                assert got.get(name) in (previous.get(name), new.get(name)), f"{name} is neither old nor new ({mode})"
            journal = (md / JOURNAL_NAME).exists()
            assert got in (previous, new) or journal, f"a mixed set without a journal ({mode})"
            settled(md)
            assert outputs(root, version) == (new if journal else got)
            assert temporaries(root, version) == []
        else:
            assert got in (previous, new), (
                f"{signal.Signals(sig).name} ({mode}) left a mixed set: "
                f"new {sorted(n for n in got if got[n] == new.get(n) != previous.get(n))}, "
                f"old {sorted(n for n in got if got[n] == previous.get(n) != new.get(n))}")
        # the next run: complete, and no temporary file left
        assert_ok(run_moddeps(root, version=version))
        assert outputs(root, version) == new
        assert temporaries(root, version) == []


_INTERRUPT_RENAMES = """
import os, signal, sys
calls = []
real_replace, real_rename = os.replace, os.rename
def hit(real):
    def f(a, b, **kw):
        real(a, b, **kw)
        if str(b).rsplit("/", 1)[-1].startswith("modules.") and not calls:
            calls.append(b)
            sys.stderr.write("moddeps-test: signal after the first rename\\n")
            sys.stderr.flush()
            os.kill(os.getpid(), {sig})
    return f
os.replace, os.rename = hit(real_replace), hit(real_rename)
sys.argv = {argv!r}
from moddeps.cli import main
main()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_signal_between_renames_keeps_the_set_consistent(tmp_path: Path, sig: int) -> None:
    """SIGINT/SIGTERM arriving right after the first file is renamed into place: the run must finish
    its renames first (block the signals around them), so the files are all new or all old."""
    root = _synthetic_tree(tmp_path / "t", 20)
    assert_ok(run_moddeps(root))
    previous = outputs(root)
    (moddir(root) / "kernel" / "d0" / "mod_7.ko").unlink()
    assert_ok(run_moddeps(root, "-o", str(tmp_path / "new")))
    new = outputs(tmp_path / "new")
    argv = ["moddeps", *moddeps_argv(root)[3:]]
    r = subprocess.run([sys.executable, "-c", _INTERRUPT_RENAMES.format(sig=int(sig), argv=argv)],
                       capture_output=True, cwd=REPO, timeout=120)
    assert b"signal after the first rename" in r.stderr, "the writer no longer renames with os.replace/os.rename"
    got = outputs(root)
    renamed = sorted(n for n in got if got[n] == new.get(n) != previous.get(n))
    kept = sorted(n for n in got if got[n] == previous.get(n) != new.get(n))
    assert got in (previous, new), f"mixed set after {signal.Signals(sig).name}: new {renamed}, old {kept}"
    assert_ok(run_moddeps(root))
    assert outputs(root) == new and temporaries(root) == []


# --------------------------------------------------------------------------
# Concurrency and the scan cache
# --------------------------------------------------------------------------


def test_two_concurrent_runs_end_with_one_runs_files(big_tree: tuple[Path, str], tmp_path: Path) -> None:
    root, version = big_tree
    assert_ok(run_moddeps(root, "-o", str(tmp_path / "single"), version=version))
    single = outputs(tmp_path / "single", version)
    for _ in range(3):
        _restore(root, version, {})
        procs = [subprocess.Popen(moddeps_argv(root, version=version), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, cwd=REPO) for _ in range(2)]
        for p in procs:
            _out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err.decode(errors="replace")
        assert outputs(root, version) == single
        assert temporaries(root, version) == []


def test_concurrent_runs_share_the_scan_cache(big_tree: tuple[Path, str], tmp_path: Path) -> None:
    root, version = big_tree
    assert_ok(run_moddeps(root, "-o", str(tmp_path / "single"), version=version))
    single = outputs(tmp_path / "single", version)
    db = tmp_path / "cache" / "scan.sqlite3"
    argv = [a for a in moddeps_argv(root, version=version) if a != "--no-cache"]
    argv[4:4] = ["--cache", str(db)]
    procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO) for _ in range(3)]
    for p in procs:
        _out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode(errors="replace")
    assert outputs(root, version) == single
    # warm, then damaged: truncated, and garbage
    for damage in ("none", "truncated", "garbage"):
        if damage == "truncated":
            data = db.read_bytes()
            db.write_bytes(data[: len(data) // 3])
            for extra in db.parent.glob("scan.sqlite3-*"):
                extra.unlink()
        elif damage == "garbage":
            db.write_bytes(b"SQLite format 3\0" + os.urandom(8192))
        _restore(root, version, {})
        r = subprocess.run(argv, capture_output=True, cwd=REPO, timeout=300)
        assert_ok(r)
        assert outputs(root, version) == single, damage
        assert all(len(ln) < 400 for ln in lines(r))


def test_stale_temporaries_of_dead_runs_are_removed(tmp_path: Path) -> None:
    root = _synthetic_tree(tmp_path / "t", 5)
    md = moddir(root)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = md / f".modules.dep{TMP_MARK}{dead.stdout.strip()}"
    stale.write_bytes(b"half a file")
    foreign = md / "unrelated.tmp"
    foreign.write_bytes(b"not ours")
    assert_ok(run_moddeps(root))
    assert not stale.exists() and foreign.exists()
    assert re.search(rb"mod_4", outputs(root)["modules.dep"])
