"""A few hundred real Debian modules, damaged: ``moddeps depmod`` still finishes and gets everything else right.

Issue 8's "done when": in a copy of the Debian cloud tree, 300 modules are
damaged (truncations, garbage in the ELF header and in the section table,
offsets and sizes past the end of the file, zeroed string tables, bad magic).
Then

* ``moddeps depmod`` exits 0 and writes every file;
* every file the reader refuses is named on stderr;
* every intact module whose dependencies (its ``modules.dep`` line in the
  *undamaged* tree, which is already transitive) hold no damaged module gets
  the line it had in the undamaged tree: the same dependencies -- in the same
  order, except where kmod's order itself moves: the order within a line comes
  from kmod's *global* topological numbering (LIFO over the whole graph), so
  damaging unrelated modules can reorder it, in kmod 30 as in moddeps; the
  byte-for-byte comparison with kmod on the damaged tree covers the order;
  every module has a line;
* with kmod 30 installed, the real ``depmod`` on the same damaged tree writes
  the same files, byte for byte.

Damage that would make a module claim symbols it never had (random bytes read
as a symbol table) is drawn again: a damaged module can only lose information,
so that the expectations above are exact.

The pristine tree: ``/work/trees/cloud-amd64`` when present (a developer
machine), else the conformance fixtures (``debian.kernel_tree("cloud")``).
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from moddeps.errors import ModuleReadError
from moddeps.index.read import Index
from moddeps.read.elfreader import read_module
from tests.conformance import debian
from tests.conformance.debian import unavailable

pytestmark = pytest.mark.conformance

DAMAGED = 300
SEED = 8
LOCAL = Path("/work/trees/cloud-amd64")
GENERATED = debian.GENERATED


@pytest.fixture(scope="module")
def pristine() -> tuple[Path, str]:
    """(root, version) of a pristine Debian cloud tree."""
    versions = sorted(p.name for p in (LOCAL / "lib" / "modules").glob("*") if p.is_dir())
    if len(versions) == 1 and (LOCAL / "lib" / "modules" / versions[0] / "modules.order").is_file():
        return LOCAL, versions[0]
    try:
        tree = debian.kernel_tree("cloud")
    except debian.Unavailable as exc:
        unavailable(str(exc))
    return tree.root, tree.version


def _moddir(root: Path, version: str) -> Path:
    return root / "lib" / "modules" / version


def _copy(src: Path, dst: Path) -> Path:
    debian.copy_tree(src, dst)
    for md in (dst / "lib" / "modules").glob("*"):
        for name in GENERATED:
            (md / name).unlink(missing_ok=True)
    return dst


def _moddeps(root: Path, version: str, cfg: Path) -> subprocess.CompletedProcess[bytes]:
    # --kmod-version 30: the files are compared with kmod 30's below
    return subprocess.run([sys.executable, "-m", "moddeps", "depmod", "--no-cache", "--kmod-version", "30", "-C",
                           str(cfg), "-b", str(root), version], capture_output=True, stdin=subprocess.DEVNULL,
                          timeout=900)


def _outputs(root: Path, version: str) -> dict[str, bytes]:
    md = _moddir(root, version)
    return {n: (md / n).read_bytes() for n in GENERATED if (md / n).exists()}


def _dep_lines(dep: bytes) -> dict[bytes, bytes]:
    return {line.split(b":", 1)[0]: line for line in dep.split(b"\n") if line}


# --------------------------------------------------------------------------
# damage
# --------------------------------------------------------------------------


def _geometry(data: bytes) -> tuple[str, int, int, int, int]:
    """(byte order, class bits, e_shoff, e_shentsize, e_shnum) of a well-formed ELF."""
    e = "<" if data[5] == 1 else ">"
    if data[4] == 2:
        shoff, = struct.unpack_from(e + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(e + "HH", data, 0x3A)
        return e, 64, shoff, shentsize, shnum
    shoff, = struct.unpack_from(e + "I", data, 0x20)
    shentsize, shnum = struct.unpack_from(e + "HH", data, 0x2E)
    return e, 32, shoff, shentsize, shnum


def _section(data: bytes, name: bytes) -> tuple[int, int, int] | None:
    """(header offset, sh_offset, sh_size) of the section called ``name``."""
    e, bits, shoff, ent, num = _geometry(data)
    strndx, = struct.unpack_from(e + "H", data, 0x3E if bits == 64 else 0x32)
    fmt = e + ("IIQQQQ" if bits == 64 else "IIIIII")

    def hdr(i: int) -> tuple[int, int, int]:
        f = struct.unpack_from(fmt, data, shoff + i * ent)
        return f[0], f[4], f[5]

    _n, str_off, _s = hdr(strndx)
    for i in range(num):
        n, off, size = hdr(i)
        if data[str_off + n : data.index(b"\0", str_off + n)] == name:
            return shoff + i * ent, off, size
    return None


def _truncate(data: bytes, rnd: random.Random) -> bytes:
    return data[: rnd.choice([0, 5, 16, 40, 63, rnd.randrange(64, len(data))])]


def _garbage_header(data: bytes, rnd: random.Random) -> bytes:
    out = bytearray(data)
    start = rnd.choice([4, 16, 0x28, 0x3A])
    for i in range(start, min(64, start + rnd.randint(1, 12))):
        out[i] = rnd.randrange(256)
    return bytes(out)


def _garbage_section_table(data: bytes, rnd: random.Random) -> bytes:
    _e, _bits, shoff, ent, num = _geometry(data)
    out = bytearray(data)
    for _ in range(rnd.randint(1, 16)):
        pos = shoff + rnd.randrange(num * ent)
        out[pos] = rnd.randrange(256)
    return bytes(out)


def _past_the_end(data: bytes, rnd: random.Random) -> bytes:
    e, bits, shoff, ent, num = _geometry(data)
    out = bytearray(data)
    i = rnd.randrange(1, num)
    field = rnd.choice(["offset", "size"])
    value = rnd.choice([len(data), len(data) + 1, len(data) * 2, 0xFFFFFFFF, 1 << 40 if bits == 64 else 0x7FFFFFFF])
    if bits == 64:
        struct.pack_into(e + "Q", out, shoff + i * ent + (24 if field == "offset" else 32), value)
    else:
        struct.pack_into(e + "I", out, shoff + i * ent + (16 if field == "offset" else 20), value & 0xFFFFFFFF)
    return bytes(out)


def _zero_strings(data: bytes, rnd: random.Random) -> bytes:
    found = _section(data, rnd.choice([b".strtab", b".shstrtab", b".modinfo"]))
    if found is None:
        return data
    _hdr, off, size = found
    out = bytearray(data)
    out[off : off + size] = bytes(size)
    return bytes(out)


def _bad_magic(data: bytes, rnd: random.Random) -> bytes:
    return bytes([rnd.randrange(256)]) + data[1:]


DAMAGE: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncated": _truncate,
    "garbage-header": _garbage_header,
    "garbage-section-table": _garbage_section_table,
    "past-the-end": _past_the_end,
    "zeroed-strings": _zero_strings,
    "bad-magic": _bad_magic,
}


def _damage(path: Path, kind: str, rnd: random.Random) -> str:
    """Damage ``path`` in place (a new file: the original may be a hard link to the pristine tree).
    Returns "unreadable" or "reduced" (still read, with a subset of its symbols)."""
    original = path.read_bytes()
    before = read_module(path)
    for _attempt in range(50):
        damaged = DAMAGE[kind](original, rnd)
        if damaged == original:
            continue
        path.unlink()
        path.write_bytes(damaged)
        try:
            after = read_module(path)
        except ModuleReadError:
            return "unreadable"
        if {x.name for x in after.exports} <= {x.name for x in before.exports} and \
                {x.name for x in after.imports} <= {x.name for x in before.imports}:
            return "reduced"
    path.unlink()
    path.write_bytes(original[:10])  # give up on this kind: plainly truncated
    return "unreadable"


# --------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------


def test_damaged_modules_do_not_disturb_the_rest(pristine: tuple[Path, str], tmp_path: Path,
                                                 summary: list[str]) -> None:
    src, version = pristine
    cfg = tmp_path / "empty-depmod.d"
    cfg.mkdir()
    clean = _copy(src, tmp_path / "clean")
    r = _moddeps(clean, version, cfg)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    before = _dep_lines(_outputs(clean, version)["modules.dep"])

    damaged_root = _copy(src, tmp_path / "damaged")
    md = _moddir(damaged_root, version)
    modules = sorted(p for p in md.rglob("*") if p.name.endswith((".ko", ".ko.xz", ".ko.zst", ".ko.gz")))
    rnd = random.Random(SEED)
    victims = rnd.sample(modules, min(DAMAGED, len(modules) // 3))
    kinds = sorted(DAMAGE)
    state: dict[bytes, str] = {}
    for i, path in enumerate(victims):
        rel = os.fsencode(path.relative_to(md))
        state[rel] = _damage(path, kinds[i % len(kinds)], rnd)
    unreadable = sorted(rel for rel, s in state.items() if s == "unreadable")

    r = _moddeps(damaged_root, version, cfg)
    err = r.stderr.decode("utf-8", "surrogateescape")
    assert r.returncode == 0, err[-3000:]
    assert "internal error" not in err and "Traceback" not in err
    files = _outputs(damaged_root, version)
    assert set(files) >= set(GENERATED) - {"modules.weakdep"}
    for name, data in files.items():
        if name.endswith(".bin") and data:
            Index.from_bytes(data, name=name)

    # every unreadable file is named
    err_lines = err.splitlines()
    unnamed = [rel for rel in unreadable if not any(f"{md}/{rel.decode()}" in ln for ln in err_lines)]
    assert not unnamed, f"{len(unnamed)} unreadable files not named on stderr, e.g. {unnamed[:5]}"

    # every module has a line; intact modules that need no damaged module have the same line
    after = _dep_lines(files["modules.dep"])
    assert set(after) == set(before)
    checked = reordered = 0
    wrong = []
    for path, line in before.items():
        if path in state:
            continue
        deps = line.split(b":", 1)[1].split()
        if any(d in state for d in deps):
            continue
        checked += 1
        if after[path] != line:
            if sorted(after[path].split(b":", 1)[1].split()) == sorted(deps):
                reordered += 1
            else:
                wrong.append((path, line, after[path]))
    assert not wrong, f"{len(wrong)} intact modules got other dependencies, e.g. {wrong[:3]}"
    summary.append(
        f"damaged tree: {len(state)} modules damaged ({len(unreadable)} unreadable, "
        f"{len(state) - len(unreadable)} read with less), {checked} intact modules checked line by line "
        f"({reordered} with their dependencies in another order, as kmod), "
        f"{len(before) - len(state) - checked} intact modules depend on a damaged one"
    )

    # the real kmod 30 on the same damaged tree writes the same files
    depmod = shutil.which("depmod", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if depmod is None:
        return
    version_text = subprocess.run([depmod, "--version"], capture_output=True, text=True).stdout
    if not version_text.startswith("kmod version 30"):
        return
    kmod_root = tmp_path / "kmod"
    subprocess.run(["cp", "-al", str(damaged_root), str(kmod_root)], check=True)
    for name in GENERATED:
        (_moddir(kmod_root, version) / name).unlink(missing_ok=True)
    k = subprocess.run([depmod, "-C", str(cfg), "-b", str(kmod_root), version], capture_output=True, timeout=900)
    assert k.returncode == 0, k.stderr.decode(errors="replace")[-2000:]
    theirs = _outputs(kmod_root, version)
    differ = sorted(n for n in set(files) | set(theirs) if files.get(n) != theirs.get(n))
    assert not differ, f"moddeps and kmod 30 disagree on the damaged tree: {differ}"
    kmod_named = {ln.rsplit(": ", 1)[0].removeprefix("depmod: ERROR: failed to load symbols from ")
                  for ln in k.stderr.decode("utf-8", "surrogateescape").splitlines() if "failed to load symbols" in ln}
    ours_named = {ln.rsplit(": ", 1)[0].removeprefix("moddeps: ERROR: failed to load symbols from ")
                  for ln in err_lines if "failed to load symbols" in ln}
    assert ours_named == {n.replace(str(kmod_root), str(damaged_root)) for n in kmod_named}
