"""Fuzzing the kmod ``.bin`` index reader (``moddeps.index``) and the
builders of the builtin indexes from hostile ``modules.builtin*`` files.

CI runs a bounded, derandomized number of examples; a long run is::

    MODDEPS_FUZZ=long pytest tests/fuzz/test_fuzz_index.py -p no:cacheprovider --hypothesis-show-statistics

Every input must give an :class:`~moddeps.index.read.Index` or an
:class:`~moddeps.errors.IndexFormatError` whose message is one line
naming the file, within the time bound; a parsed index must then answer
every reader entry point (items, dump, exact and wildcard lookups) in
bounded time.
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from moddeps.errors import IndexFormatError
from moddeps.index.builtin import builtin_alias_entries, builtin_entries
from moddeps.index.read import Index, dump_lines
from moddeps.index.write import build_index, build_index_preorder, py_build_index

from ..test_index import relayout_preorder
from . import TIME_BOUND, assert_one_line, corpus_files, expected_outcome, fuzz, peak_memory, time_limit

NAME = "modules.fuzz.bin"
HEADER = bytes.fromhex("b007f457 00020001")

_KEY = st.binary(max_size=12).map(lambda b: bytes(c & 0x7F for c in b if c & 0x7F))
_ENTRY = st.tuples(_KEY, st.binary(max_size=10).map(lambda b: b.replace(b"\0", b"")), st.integers(0, 0xFFFFFFFF))
_QUERIES = [b"", b"a", b"usb:v1d9", b"pci:x", b"\x7f", b"*", b"[", b"symbol:foo", b"a" * 300]


def check_index(data: bytes, name: str = NAME) -> Index | None:
    """Parse, then exercise every reader entry point, all under the time bound."""
    with time_limit(TIME_BOUND, name), peak_memory() as peak:
        try:
            index = Index.from_bytes(data, name=name)
        except IndexFormatError as exc:
            assert_one_line(str(exc), name)
            assert exc.name == name
            return None
    assert peak.bytes <= 16 * 1024 * 1024 + 200 * len(data), f"parsing {len(data)} bytes took {peak.bytes} bytes"
    with time_limit(TIME_BOUND, f"{name} (lookups)"):
        items = list(index.items())
        lines = list(dump_lines(index))
        assert len(lines) == len(items)
        assert all("\n" not in line and line.count("\t") == 2 for line in lines)
        keys = {k for k, _v, _p in items}
        for q in [*_QUERIES, *list(keys)[:5]]:
            for reader in ("mmap", "stdio"):
                index.lookup_exact(q, reader=reader)  # type: ignore[arg-type]
                index.lookup_wildcard(q, reader=reader)  # type: ignore[arg-type]
        for k in list(keys)[:5]:
            if b"\0" not in k:
                assert index.lookup_exact(k) is not None or not any(kk == k for kk, _, _ in items)
    return index


def _words(*ws: int) -> bytes:
    return b"".join(struct.pack(">I", w) for w in ws)


@st.composite
def valid_index(draw: st.DrawFn) -> bytes:
    entries = draw(st.lists(_ENTRY, max_size=20))
    if draw(st.booleans()):
        return build_index(entries)
    return build_index_preorder(entries)


_FLAGS = st.sampled_from([0, 0x80000000, 0x40000000, 0x20000000, 0xE0000000, 0x10000000, 0xA0000000, 0x60000000])

MUTATIONS = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 7)),
    st.tuples(st.just("bytes"), st.floats(0, 1), st.binary(min_size=1, max_size=8)),
    # a word anywhere replaced by a plausible node reference: flags | offset
    st.tuples(st.just("word"), st.floats(0, 1), _FLAGS, st.integers(0, 64)),
    st.tuples(st.just("root"), _FLAGS, st.integers(0, 200)),
)


@st.composite
def mutated_index(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(valid_index()))
    for op in draw(st.lists(MUTATIONS, min_size=1, max_size=4)):
        n = len(data)
        if op[0] == "truncate":
            del data[int(op[1] * n):]
        elif op[0] == "flip" and n:
            data[min(n - 1, int(op[1] * n))] ^= 1 << op[2]
        elif op[0] == "bytes" and n:
            pos = min(n - 1, int(op[1] * n))
            data[pos : pos + len(op[2])] = op[2]
        elif op[0] == "word" and n >= 4:
            pos = min(n - 4, int(op[1] * n))
            data[pos : pos + 4] = struct.pack(">I", op[2] | min(op[3] + 12, 0x0FFFFFFF))
        elif op[0] == "root" and n >= 12:
            data[8:12] = struct.pack(">I", op[1] | op[2])
    return bytes(data)


@fuzz(400)
@given(mutated_index())
def test_mutated_indexes(data: bytes) -> None:
    check_index(data)


@st.composite
def node_soup(draw: st.DrawFn) -> bytes:
    """A header and a body made of node-like pieces: prefixes, child tables, value lists, words."""
    parts = [HEADER, _words(draw(_FLAGS) | draw(st.integers(12, 80)))]
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.integers(0, 4))
        if kind == 0:
            parts.append(draw(st.binary(max_size=6)) + b"\0")
        elif kind == 1:
            first = draw(st.integers(0, 130))
            last = draw(st.integers(0, 130))
            parts.append(bytes([first, last]) + b"".join(
                _words(draw(_FLAGS) | draw(st.integers(0, 120))) for _ in range(max(0, min(8, last - first + 1)))))
        elif kind == 2:
            count = draw(st.sampled_from([0, 1, 2, 3, 0xFFFFFFFF, 0x7FFFFFFF]))
            values = b"".join(_words(draw(st.integers(0, 9))) + b"v\0" for _ in range(min(3, count)))
            parts.append(_words(count) + values)
        elif kind == 3:
            parts.append(_words(draw(_FLAGS) | draw(st.integers(0, 120))))
        else:
            parts.append(draw(st.binary(max_size=16)))
    return b"".join(parts)


@fuzz(300)
@given(node_soup())
@example(HEADER + _words(0x20000000 | 12) + b"\x00\x7f" + _words(0) * 128)
def test_node_soup(data: bytes) -> None:
    check_index(data)


@fuzz(100)
@given(st.lists(_ENTRY, max_size=30), st.lists(_KEY, max_size=5))
def test_valid_indexes_round_trip(entries: list[tuple[bytes, bytes, int]], queries: list[bytes]) -> None:
    index = check_index(build_index(entries))
    assert index is not None
    assert sorted(index.items()) == sorted(entries)
    for q in queries:
        index.lookup_wildcard(q)


_ANY_KEY = st.lists(st.sampled_from([*b"ab:*?[-_0", 0x7F, 0x80, 0xFF]), max_size=10).map(bytes)


@fuzz(150)
@given(st.lists(st.tuples(_ANY_KEY, st.sampled_from([b"", b"m", b"mod_x"]), st.integers(0, 3)), max_size=40),
       st.booleans())
def test_preorder_writers_agree_with_the_relayout(entries: list[tuple[bytes, bytes, int]], with_dropped: bool) -> None:
    """kmod 34's layout from the C and the Python writer is the post-order
    file re-laid out through the reader; errors and dropped keys are those of
    the post-order writer."""
    outcomes = []
    for writer in (build_index, py_build_index):
        for preorder in (False, True):
            dropped: list[bytes] | None = [] if with_dropped else None
            try:
                result: bytes | str = writer(entries, dropped, preorder=preorder)
            except ValueError as exc:
                result = str(exc)
            outcomes.append((result, dropped))
    c_post, c_pre, py_post, py_pre = outcomes
    assert c_post == py_post and c_pre == py_pre
    assert c_pre[1] == c_post[1]
    if isinstance(c_post[0], bytes):
        assert c_pre[0] == relayout_preorder(c_post[0])
        check_index(c_pre[0])
    else:
        assert c_pre[0] == c_post[0]


@fuzz(40)
@given(mutated_index())
def test_open_names_the_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "modules.alias.bin"
        path.write_bytes(data)
        try:
            Index.open(str(path))
        except IndexFormatError as exc:
            assert_one_line(str(exc), str(path))


# --------------------------------------------------------------------------
# modules.builtin / modules.builtin.modinfo: hostile text in, index entries out
# --------------------------------------------------------------------------

_BUILTIN_LINE = st.one_of(
    st.sampled_from([b"kernel/fs/ext4.ko", b"kernel/a/b-c.ko", b"kernel/x/", b"kernel/\xc3\xa9t\xc3\xa9.ko",
                     b"kernel/d/qux", b"/abs.ko", b"1bad.ko", b"kernel/" + b"a" * 5000 + b".ko", b""]),
    st.binary(max_size=40),
)


@fuzz(200)
@given(st.lists(_BUILTIN_LINE, max_size=12), st.booleans())
def test_builtin_entries(lines: list[bytes], final_newline: bool) -> None:
    text = b"\n".join(lines) + (b"\n" if final_newline else b"")
    messages: list[str] = []
    with time_limit(TIME_BOUND, "modules.builtin"):
        entries = builtin_entries(text, messages)
    assert all(0 not in k and v == b"" and p == 0 for k, v, p in entries)
    _build_or_refuse([(k, v, p) for k, v, p in entries])


_MODINFO_RECORD = st.one_of(
    st.sampled_from([b"ext4.alias=fs-ext4", b"ext4.alias=", b"noalias", b"x.alias=a[b", b"x.alias=caf\xc3\xa9",
                     b"x.license=GPL", b"x.alias=a\nb", b"x.alias=" + b"z" * 5000, b".alias=x",
                     b"y.alias=devname:../x"]),
    st.binary(max_size=30),
)


@fuzz(200)
@given(st.lists(_MODINFO_RECORD, max_size=12), st.booleans())
def test_builtin_alias_entries(records: list[bytes], final_nul: bool) -> None:
    text = b"\0".join(records) + (b"\0" if final_nul else b"")
    messages: list[str] = []
    with time_limit(TIME_BOUND, "modules.builtin.modinfo"):
        entries = builtin_alias_entries(text, messages)
    assert all(0 not in k and 0 not in v and p == 0 for k, v, p in entries)
    _build_or_refuse(entries)


def _build_or_refuse(entries: list[tuple[bytes, bytes, int]]) -> None:
    """build_index either writes an index that reads back, or refuses with ValueError
    (only for keys kmod 30 cannot store: a branch on a byte >= 0x80)."""
    try:
        data = build_index(entries)
    except ValueError as exc:
        assert "\n" not in str(exc)
        assert any(not k.isascii() for k, _v, _p in entries), f"refused an all-ASCII index: {exc}"
        return
    index = check_index(data)
    assert index is not None and sorted(index.items()) == sorted(entries)


# --------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------

INDEX_CORPUS = corpus_files("index")


@pytest.mark.parametrize("path", INDEX_CORPUS, ids=[p.name for p in INDEX_CORPUS])
def test_corpus_index(path: Path) -> None:
    want = expected_outcome(path)
    got = "ok" if check_index(path.read_bytes(), name=str(path)) is not None else "err"
    assert want in ("any", got), f"{path.name}: expected {want}, got {got}"


def test_corpus_is_present() -> None:
    assert len(INDEX_CORPUS) >= 8
