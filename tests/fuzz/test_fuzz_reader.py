"""Fuzzing the module reader (``moddeps.read.elfreader``): hostile and damaged ``.ko`` files.

CI runs a bounded, derandomized number of examples; a long run is::

    MODDEPS_FUZZ=long pytest tests/fuzz/test_fuzz_reader.py -p no:cacheprovider --hypothesis-show-statistics

(coverage-guided: ``python tests/fuzz/atheris_reader.py -max_total_time=3600 tests/fuzz/corpus/reader``).

Every input must end in a :class:`~moddeps.model.Module` or a
:class:`~moddeps.errors.ModuleReadError` whose message is one line naming the
file -- never another exception, never more than :data:`TIME_BOUND` seconds,
never more than :func:`memory_bound` bytes of heap -- and a Module that comes
out must survive the scan cache (marshal) and give depmod files that hold no
injected line (:func:`check_outputs`).
"""

from __future__ import annotations

import marshal
import os
import struct
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from moddeps.errors import ModuleReadError
from moddeps.model import Export as MExport
from moddeps.model import Import, Module
from moddeps.read.elfreader import parse_module, parse_module_pyelftools, read_module, read_module_or_broken

from .. import kobuild
from ..kobuild import Export, Sym, build_ko
from . import (
    TIME_BOUND,
    assert_one_line,
    check_outputs,
    corpus_files,
    expected_outcome,
    fuzz,
    memory_bound,
    peak_memory,
    render,
    time_limit,
)

SAMPLE = Path(__file__).resolve().parents[2] / "sample_modules" / "lib" / "modules"
KMOD_REASONS = ("Exec format error", "Invalid argument")
#: MODDEPS_FUZZ_OUTPUTS=0 checks the reader alone (no depmod files): for long runs while the
#: output-safety findings are open, so that they do not stop the search for reader crashes.
OUTPUTS = os.environ.get("MODDEPS_FUZZ_OUTPUTS", "1") != "0"
NAME = "kernel/fuzz/fuzz.ko"


# --------------------------------------------------------------------------
# Seeds: small modules of every shape the reader distinguishes
# --------------------------------------------------------------------------


def _rich(bits: int, endian: str, machine: int = 62, crc_mode: str = "section") -> bytes:
    return build_ko(
        bits=bits,
        endian=endian,
        machine=machine,
        crc_mode=crc_mode,  # type: ignore[arg-type]
        modinfo=[("license", "GPL"), ("alias", "pci:v00001234d*sv*"), ("alias", "devname:fuzz/ctl"),
                 ("alias", "char-major-10-99"), ("softdep", "pre: crc32c post: zlib"), ("import_ns", "NS_A"),
                 ("weakdep", "foo"), "vermagic=6.1.0 SMP mod_unload"],
        exports=[Export(name="plain_fn", crc=0x1234ABCD), Export(name="gpl_fn", gpl=True, crc=0xDEADBEEF),
                 Export(name="ns_fn", gpl=True, namespace="NS_B", crc=7)],
        undefined=["printk", ("maybe_there", True), "kfree"],
        versions=[("module_layout", 0xBCE1A965), ("printk", 0x11111111), ("kfree", 0x22222222)],
        extra_symbols=[Sym(name="local_thing", section=".text", bind="local", type="func")],
    )


SEEDS: dict[str, bytes] = {
    "rich64le": _rich(64, "little"),
    "rich32be": _rich(32, "big", machine=20),
    "abs64be": _rich(64, "big", machine=22, crc_mode="abs"),
    "nocrc32le": build_ko(bits=32, machine=3, modinfo=["license=GPL", "alias=usb:v*p*"],
                          exports=[Export(name="a_fn", namespace="NS"), Export(name="b_fn", gpl=True)],
                          undefined=["c_fn"]),
    "nosymtab": build_ko(with_symtab=False, modinfo=["alias=x"], exports=[Export(name="s")]),
    "sparc": build_ko(machine=43, undefined=["reg"], extra_symbols=[Sym(name="%g2", type="notype")]),
}
for _p in sorted(SAMPLE.rglob("*.ko"))[:3]:
    SEEDS[f"real-{_p.stem}"] = _p.read_bytes()

SEED_NAMES = sorted(SEEDS)


def _geometry(data: bytes) -> dict[str, int | str]:
    bits = 64 if data[4] == 2 else 32
    e = "<" if data[5] == 1 else ">"
    f = kobuild.ELF_HEADER_FIELDS[bits]
    g: dict[str, int | str] = {"bits": bits, "e": e}
    for name in ("e_shoff", "e_shentsize", "e_shnum", "e_shstrndx"):
        off, fmt = f[name]
        g[name] = struct.unpack_from(e + fmt, data, off)[0]
    return g


GEOMETRY = {k: _geometry(v) for k, v in SEEDS.items()}

# (offset, size) of each section-header field
_SHDR_FIELDS = {
    64: {"name": (0, 4), "type": (4, 4), "flags": (8, 8), "offset": (24, 8), "size": (32, 8), "link": (40, 4),
         "info": (44, 4), "entsize": (56, 8)},
    32: {"name": (0, 4), "type": (4, 4), "flags": (8, 4), "offset": (16, 4), "size": (20, 4), "link": (24, 4),
         "info": (28, 4), "entsize": (36, 4)},
}
# (offset, size) of each symbol field
_SYM_FIELDS = {
    64: {"name": (0, 4), "info": (4, 1), "shndx": (6, 2), "value": (8, 8)},
    32: {"name": (0, 4), "value": (4, 4), "info": (12, 1), "shndx": (14, 2)},
}
_HDR_FIELDS = ["EI_CLASS", "EI_DATA", "e_machine", "e_shoff", "e_shentsize", "e_shnum", "e_shstrndx"]


def _put(buf: bytearray, e: str, off: int, size: int, value: int) -> None:
    if off < 0 or off + size > len(buf):
        return
    value &= (1 << (8 * size)) - 1
    buf[off : off + size] = value.to_bytes(size, "little" if e == "<" else "big")


def _section_location(data: bytes, name: bytes) -> tuple[int, int] | None:
    g = _geometry(data)
    bits, e = int(g["bits"]), str(g["e"])
    fields = _SHDR_FIELDS[bits]
    shoff, ent, num, stridx = (int(g[k]) for k in ("e_shoff", "e_shentsize", "e_shnum", "e_shstrndx"))

    def field(i: int, f: str) -> int:
        off, size = fields[f]
        at = shoff + i * ent + off
        return int.from_bytes(data[at : at + size], "little" if e == "<" else "big")

    str_off = field(stridx, "offset")
    for i in range(1, num):
        at = str_off + field(i, "name")
        if data[at : data.index(b"\0", at)] == name:
            return field(i, "offset"), field(i, "size")
    return None


SYMTAB = {k: _section_location(v, b".symtab") for k, v in SEEDS.items()}
STRINGS = {k: [loc for n in (b".strtab", b".modinfo", b"__ksymtab_strings", b".shstrtab", b"__versions")
               if (loc := _section_location(v, n)) is not None] for k, v in SEEDS.items()}


def interesting(size: int) -> st.SearchStrategy[int]:
    """Values that sit on the reader's boundaries (the file size, word limits) or anywhere."""
    return st.one_of(
        st.sampled_from([0, 1, 2, 3, 4, 7, 8, 12, 16, 24, 40, 52, 64, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000,
                         0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 0xFFFFFFFF, 1 << 32, 1 << 63, (1 << 64) - 1,
                         size - 1, size, size + 1, size // 2, 0xFFF1, 0xFF00]),
        st.integers(0, (1 << 64) - 1),
    )


MUTATIONS = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("bytes"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 7)),
    st.tuples(st.just("header"), st.sampled_from(_HDR_FIELDS), st.integers(0, 1 << 64)),
    st.tuples(st.just("section"), st.integers(0, 40), st.sampled_from(sorted(_SHDR_FIELDS[64])), st.integers(0, 1)),
    st.tuples(st.just("symbol"), st.integers(0, 60), st.sampled_from(sorted(_SYM_FIELDS[64])), st.integers(0, 1)),
    st.tuples(st.just("fill"), st.integers(0, 10), st.sampled_from([0x00, 0x0A, 0x20, 0x41, 0x80, 0xFF])),
)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    seed = draw(st.sampled_from(SEED_NAMES))
    data = bytearray(SEEDS[seed])
    g = GEOMETRY[seed]
    bits, e = int(g["bits"]), str(g["e"])
    for op in draw(st.lists(MUTATIONS, min_size=1, max_size=4)):
        kind = op[0]
        n = len(data)
        if kind == "truncate":
            del data[int(op[1] * n):]
        elif kind == "bytes" and n:
            pos = min(n - 1, int(op[1] * n))
            data[pos : pos + len(op[2])] = op[2]
        elif kind == "flip" and n:
            data[min(n - 1, int(op[1] * n))] ^= 1 << op[2]
        elif kind == "header":
            off, fmt = kobuild.ELF_HEADER_FIELDS[bits][op[1]]
            value = draw(interesting(n)) if op[2] % 2 else op[2]
            _put(data, e, off, struct.calcsize(fmt), value)
        elif kind == "section":
            idx = op[1] % max(1, int(g["e_shnum"]))
            off, size = _SHDR_FIELDS[bits][op[2]]
            _put(data, e, int(g["e_shoff"]) + idx * int(g["e_shentsize"]) + off, size, draw(interesting(n)))
        elif kind == "symbol" and SYMTAB[seed] is not None:
            sym_off, sym_size = SYMTAB[seed]  # type: ignore[misc]
            ent = 24 if bits == 64 else 16
            idx = op[1] % max(1, sym_size // ent)
            off, size = _SYM_FIELDS[bits][op[2]]
            _put(data, e, sym_off + idx * ent + off, size, draw(interesting(n)))
        elif kind == "fill" and STRINGS[seed]:
            # every byte of one string section set to one value: NULs gone,
            # newlines or blanks everywhere, or all zero
            s_off, s_size = STRINGS[seed][op[1] % len(STRINGS[seed])]
            end = min(len(data), s_off + s_size)
            if s_off < end:
                data[s_off:end] = bytes([op[2]]) * (end - s_off)
    return seed, bytes(data)


# --------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------


def check_module(m: Module) -> None:
    """A record the rest of moddeps can use: plain types, survives the cache's encoding."""
    assert m.error is None and m.name == "fuzz" and m.path == NAME
    assert all(isinstance(x, MExport) and isinstance(x.name, str) for x in m.exports)
    assert all(isinstance(x, Import) and isinstance(x.name, str) for x in m.imports)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in m.modinfo)
    wire = m.to_wire()
    assert Module.from_wire(wire) == m
    assert Module.from_wire(marshal.loads(zlib.decompress(zlib.compress(marshal.dumps(wire), 1)))) == m


def check_depmod_outputs(m: Module) -> None:
    """depmod's files for this module next to a well-formed user: no crash, no injected line."""
    user = parse_module(build_ko(undefined=["plain_fn", "a_fn", "s"], modinfo=["alias=user"]), "kernel/user.ko")
    modules = [m, user]
    shown = [NAME, "kernel/user.ko"]
    rendered = render(modules, shown)
    if rendered is None:  # a cycle (the module needs its own export): depmod writes nothing
        return
    files, messages, res = rendered
    assert all("\n" not in msg for msg in messages if not msg.startswith(("ERROR: Invalid modules.builtin",)))
    check_outputs(modules, shown, files, res)


def check_reader(data: bytes, name: str = NAME, *, outputs: bool = OUTPUTS) -> Module | None:
    """Parse ``data`` under the time and memory bounds; return the Module or None (a clean error)."""
    with time_limit(TIME_BOUND, name), peak_memory() as peak:
        try:
            m: Module | None = parse_module(data, name)
        except ModuleReadError as exc:
            assert_one_line(str(exc), name)
            assert exc.kmod_reason in KMOD_REASONS
            m = None
    bound = memory_bound(len(data))
    assert peak.bytes <= bound, (
        f"reading {len(data)} bytes allocated {peak.bytes / 1e6:.0f} MB at peak (bound {bound / 1e6:.0f} MB)")
    if m is not None:
        check_module(m)
        if outputs:
            with time_limit(TIME_BOUND, f"{name} (depmod outputs)"):
                check_depmod_outputs(m)
    return m


# --------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------


@fuzz(300)
@given(mutated())
def test_mutated_modules(case: tuple[str, bytes]) -> None:
    """Truncations, garbage, bit flips, header/section/symbol fields on boundaries, strings without NULs."""
    check_reader(case[1])


_ELF_PREFIXES = [b"", b"\x7fELF", b"\x7fELF\x01\x01\x01", b"\x7fELF\x02\x01\x01", b"\x7fELF\x02\x02\x01",
                 b"\x7fELF\x01\x02\x01"]


@fuzz(200)
@given(st.sampled_from(_ELF_PREFIXES), st.binary(max_size=400))
@example(b"\x7fELF\x02\x01\x01", b"\0" * 57 + b"\x40\0\x01\0\0\0")
def test_raw_bytes(prefix: bytes, body: bytes) -> None:
    """Short garbage, with or without a plausible ELF identification."""
    check_reader(prefix + body)


@fuzz(60)
@given(mutated(), st.sampled_from(["xz", "zst", "gz"]), st.one_of(st.none(), st.floats(0, 1)),
       st.binary(max_size=8))
def test_compressed_files(case: tuple[str, bytes], fmt: str, cut: float | None, tail: bytes) -> None:
    """The file path: compressed (xz/zstd/gzip), possibly truncated or with trailing junk."""
    packed = kobuild.compress(case[1], fmt)  # type: ignore[arg-type]
    if cut is not None:
        packed = packed[: int(cut * len(packed))] + tail
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"fuzz.ko.{fmt}"
        path.write_bytes(packed)
        with time_limit(TIME_BOUND, str(path)):
            m = read_module_or_broken(path, relpath=NAME)
            try:
                read_module(path, relpath=NAME)
            except ModuleReadError as exc:
                assert_one_line(str(exc), str(path))
        assert m.name == "fuzz" and m.path == NAME
        if m.error is not None:
            assert "\n" not in m.error and m.kmod_error in KMOD_REASONS


# Well-formed modules with arbitrary (7-bit) names and modinfo: the fast
# decoder must agree with the pyelftools reference, and depmod's files must
# stay safe whatever the strings hold.
_NAME = st.text(st.characters(min_codepoint=1, max_codepoint=127), min_size=1, max_size=24)
_INFO_KEY = st.sampled_from(["alias", "softdep", "weakdep", "license", "depends", "import_ns", "firmware",
                             "name", "vermagic", "alias", "alias"])
_INFO_VALUE = st.one_of(
    st.binary(max_size=24).map(lambda b: b.replace(b"\0", b"")),
    st.sampled_from([b"devname:fuzz", b"devname:../../etc/x", b"devname:/abs", b"char-major-10-1",
                     b"block-major-8-0", b"pre: a\nsoftdep evil pre: b", b"a b", b"pci:v*d[0-9]*", b"x]",
                     b"caf\xc3\xa9", b"", b"devname:a\nb"]),
)


@st.composite
def well_formed(draw: st.DrawFn) -> bytes:
    bits = draw(st.sampled_from([32, 64]))
    names = draw(st.lists(_NAME, max_size=5, unique=True))
    exports = [Export(name=n, gpl=draw(st.booleans()), crc=draw(st.one_of(st.none(), st.integers(0, 0xFFFFFFFF))),
                      namespace=draw(st.one_of(st.none(), _NAME)))
               for n in names]
    undefined = draw(st.lists(_NAME, max_size=5))
    vlen = 56 if bits == 64 else 60
    versions = draw(st.lists(st.tuples(_NAME.filter(lambda s: len(s.encode()) <= vlen),
                                       st.integers(0, 0xFFFFFFFF)), max_size=4))
    modinfo = [k.encode() + b"=" + v for k, v in draw(st.lists(st.tuples(_INFO_KEY, _INFO_VALUE), max_size=8))]
    return build_ko(
        bits=bits,
        endian=draw(st.sampled_from(["little", "big"])),
        machine=draw(st.sampled_from([62, 3, 183, 40, 20, 21, 22, 2, 43, 8])),
        modinfo=modinfo,
        exports=exports,
        undefined=undefined,
        versions=versions,
        crc_mode=draw(st.sampled_from(["section", "abs"])),
        ksymtab_strings=draw(st.booleans()),
        init=draw(st.booleans()),
        exit=draw(st.booleans()),
    )


@fuzz(150)
@given(well_formed())
def test_well_formed_modules_agree_with_reference(data: bytes) -> None:
    m = check_reader(data)
    assert m is not None
    assert m == parse_module_pyelftools(data, NAME)


# --------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------

READER_CORPUS = corpus_files("reader")


@pytest.mark.parametrize("path", READER_CORPUS, ids=[p.name for p in READER_CORPUS])
def test_corpus_reader(path: Path) -> None:
    """Replay of a minimised input: as a file (through decompression) and in memory."""
    want = expected_outcome(path)
    with time_limit(TIME_BOUND, str(path)):
        try:
            read_module(path, relpath=NAME)
            got = "ok"
        except ModuleReadError as exc:
            assert_one_line(str(exc), str(path))
            assert exc.kmod_reason in KMOD_REASONS
            got = "err"
    assert want in ("any", got), f"{path.name}: expected {want}, got {got}"
    raw = path.read_bytes()
    if raw.startswith(b"\x7fELF"):
        check_reader(raw)


def test_corpus_is_present() -> None:
    assert len(READER_CORPUS) >= 10
