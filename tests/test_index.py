"""kmod binary indexes: exact bytes, canonical shape, reader, lookups, builtin parsers, bad files.

Expected values marked "kmod 30" were produced by the real depmod/modprobe of
kmod 30 (Debian 12) on the same input; the rest were worked out by hand from
the format (docs/index-format.md).
"""

from __future__ import annotations

import os
import pickle
import random
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moddeps.errors import IndexFormatError
from moddeps.globmatch import fnmatch
from moddeps.index.builtin import builtin_alias_entries, builtin_entries
from moddeps.index.keys import alias_normalize
from moddeps.index.read import Index, dump_lines, escape_bytes
from moddeps.index.write import (
    build_index,
    build_index_columns,
    build_index_preorder,
    py_build_index,
    py_build_index_columns,
)

Entry = tuple[bytes, bytes, int]

# A worked example: insertion order matters only for m3/m2 (same key).
SPEC_ENTRIES: list[Entry] = [(b"usb:abc", b"m0", 0), (b"usb:a", b"m1", 1), (b"usb:c", b"m3", 3), (b"usb:c", b"m2", 2)]
SPEC_BYTES = bytes.fromhex(
    "b0 07 f4 57 00 02 00 01 20 00 00 4e 63 00 00 00"
    "00 01 00 00 00 00 6d 30 00 62 62 c0 00 00 0c 00"
    "00 00 01 00 00 00 01 6d 31 00 00 00 00 02 00 00"
    "00 02 6d 32 00 00 00 00 03 6d 33 00 73 62 3a 00"
    "61 63 60 00 00 19 00 00 00 00 40 00 00 2a 75 75"
    "a0 00 00 3c"
)
SPEC_PREORDER_HEAD = bytes.fromhex(
    "b0 07 f4 57 00 02 00 01 20 00 00 0c 75 75 a0 00 00 12 73 62 3a 00 61 63 60 00 00 24"
    "00 00 00 00 40 00 00 42 62 62 c0 00 00 35"
)
EMPTY_BYTES = bytes.fromhex("b0 07 f4 57 00 02 00 01 00 00 00 0c")

# The layouts of the real kmod 30 and kmod 34.2 on a tiny tree
#
# tests/data/index_layouts/kmod30/ and kmod34/ hold the five .bin files
# that Debian 12's kmod 30 and Debian 13's kmod 34.2 ``depmod -b ROOT -C
# ROOT/config 6.12.0-mdx`` wrote for the tree make_layout_tree() makes.
# Regenerate them with (kmod 34.2 as extracted on the team machine):
#
#   L=/var/tmp/oracle/kmod34/usr/lib/x86_64-linux-gnu
#   python -m tests.test_index --regen-layouts /usr/sbin/depmod \
#       "$L/ld-linux-x86-64.so.2 --library-path $L --argv0 depmod /var/tmp/oracle/kmod34/usr/bin/kmod"

LAYOUTS = Path(__file__).resolve().parent / "data" / "index_layouts"
LAYOUT_KVER = "6.12.0-mdx"
LAYOUT_FILES = ("modules.dep.bin", "modules.alias.bin", "modules.symbols.bin", "modules.builtin.bin",
                "modules.builtin.alias.bin")


# ---------------------------------------------------------------------------
# An independent, naive reference writer: recursive grouping on a dict trie.


def _tie_order(values: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    # Insert each before the first existing value with priority >= its own.
    out: list[tuple[int, bytes]] = []
    for prio, value in values:
        pos = next((i for i, (p, _) in enumerate(out) if p >= prio), len(out))
        out.insert(pos, (prio, value))
    return out


def _common_prefix(keys: list[bytes]) -> bytes:
    lo, hi = min(keys), max(keys)
    n = 0
    while n < len(lo) and lo[n] == hi[n]:
        n += 1
    return lo[:n]


def reference_build(entries: Iterable[Entry]) -> bytes:
    groups: dict[bytes, list[tuple[int, bytes]]] = {}
    for key, value, prio in entries:
        groups.setdefault(key, []).append((prio, value))

    def make(items: list[tuple[bytes, bytes]], root: bool) -> tuple[bytes, bytes | None, dict[int, object]]:
        prefix = b"" if root else _common_prefix([k for k, _ in items])
        vals = None
        children: dict[int, list[tuple[bytes, bytes]]] = {}
        for k, full in items:
            rest = k[len(prefix) :]
            if rest:
                children.setdefault(rest[0], []).append((rest[1:], full))
            else:
                vals = full
        return prefix, vals, {c: make(g, False) for c, g in children.items()}

    out = bytearray(12)

    def ser(node: tuple[bytes, bytes | None, dict[int, object]]) -> int:
        prefix, full, children = node
        words = {c: ser(child) for c, child in sorted(children.items())}  # type: ignore[arg-type]
        word = len(out)
        if prefix:
            out.extend(prefix + b"\0")
            word |= 0x80000000
        if words:
            lo, hi = min(words), max(words)
            out.extend(bytes([lo, hi]))
            for c in range(lo, hi + 1):
                out.extend(struct.pack(">I", words.get(c, 0)))
            word |= 0x20000000
        if full is not None:
            vals = _tie_order(groups[full])
            out.extend(struct.pack(">I", len(vals)))
            for prio, value in vals:
                out.extend(struct.pack(">I", prio) + value + b"\0")
            word |= 0x40000000
        return word

    root = make([(k, k) for k in groups], True)
    out[0:12] = struct.pack(">III", 0xB007F457, 0x00020001, ser(root))
    return bytes(out)


def expected_items(entries: list[Entry]) -> list[Entry]:
    groups: dict[bytes, list[tuple[int, bytes]]] = {}
    for key, value, prio in entries:
        groups.setdefault(key, []).append((prio, value))
    return [(k, v, p) for k in sorted(groups) for p, v in _tie_order(groups[k])]


def relayout_preorder(data: bytes) -> bytes:
    """The reference for kmod 34's layout: any index re-laid out through the
    reader, node by node (pre-order ids, subtree totals, then offsets)."""
    index = Index.from_bytes(data)
    n = index.node_count
    if n == 0:
        return struct.pack(">III", 0xB007F457, 0x00020001, 12)
    prefixes, firsts, kids, vals = index._prefix, index._first, index._kids, index._values
    flags: list[int] = []
    body: list[int] = []
    for node in range(n):
        f = size = 0
        if prefixes[node]:
            f |= 0x80000000
            size += len(prefixes[node]) + 1
        if kids[node]:
            f |= 0x20000000
            size += 2 + 4 * len(kids[node])
        if vals[node]:
            f |= 0x40000000
            size += 4 + sum(5 + len(v) for _, v in vals[node])
        flags.append(f)
        body.append(size)
    # Node ids are in pre-order: children have larger ids than their parents.
    total = body[:]
    for node in range(n - 1, -1, -1):
        total[node] += sum(total[c] for c in kids[node] if c >= 0)
    offset = [12] * n
    for node in range(n):
        at = offset[node] + body[node]
        for c in kids[node]:
            if c >= 0:
                offset[c] = at
                at += total[c]
    out = bytearray(struct.pack(">III", 0xB007F457, 0x00020001, offset[0] | flags[0]))
    for node in range(n):
        if prefixes[node]:
            out += prefixes[node] + b"\0"
        if kids[node]:
            out += bytes([firsts[node], firsts[node] + len(kids[node]) - 1])
            out += b"".join(struct.pack(">I", offset[c] | flags[c] if c >= 0 else 0) for c in kids[node])
        if vals[node]:
            out += struct.pack(">I", len(vals[node]))
            out += b"".join(struct.pack(">I", p) + v + b"\0" for p, v in vals[node])
    return bytes(out)


keys_st = st.lists(st.sampled_from(list(b"ab*?[]-:_.c0z")), max_size=7).map(bytes)
entries_st = st.lists(
    st.tuples(keys_st, st.sampled_from([b"m0", b"mod_a", b"x", b""]), st.integers(0, 3)),
    max_size=25,
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------
# Writer


def test_spec_worked_example_bytes() -> None:
    data = build_index(SPEC_ENTRIES)
    assert len(data) == 84
    assert data == SPEC_BYTES
    assert reference_build(SPEC_ENTRIES) == SPEC_BYTES


def test_spec_worked_example_preorder() -> None:
    data = build_index_preorder(SPEC_ENTRIES)
    assert len(data) == 84
    assert data.startswith(SPEC_PREORDER_HEAD)
    assert list(Index.from_bytes(data).items()) == list(Index.from_bytes(SPEC_BYTES).items())


def test_empty_index() -> None:
    assert build_index([]) == EMPTY_BYTES
    assert build_index_preorder([]) == EMPTY_BYTES
    index = Index.from_bytes(EMPTY_BYTES)
    assert list(index.items()) == []
    assert index.lookup_exact(b"") is None
    assert index.lookup_wildcard(b"x") == []


def test_tie_order_newest_first() -> None:
    # kmod 30: modinfo records mod_a, mod_b, mod_c, mod_j, mod_a for one
    # alias are stored as mod_a, mod_j, mod_c, mod_b, mod_a.
    names = [b"mod_a", b"mod_b", b"mod_c", b"mod_j", b"mod_a"]
    index = Index.from_bytes(build_index((b"same_alias", n, 0) for n in names))
    assert [v for _, v, _ in index.items()] == [b"mod_a", b"mod_j", b"mod_c", b"mod_b", b"mod_a"]
    # modprobe -R same-alias (kmod 30): the mmap reader re-reverses the ties,
    # the stdio reader (used when modules.builtin.bin is unusable) does not.
    assert [v for _, v in index.lookup_wildcard(b"same_alias")] == names
    assert [v for _, v in index.lookup_wildcard(b"same_alias", reader="stdio")] == [
        b"mod_a",
        b"mod_j",
        b"mod_c",
        b"mod_b",
        b"mod_a",
    ]


def test_priorities_sort_values_and_duplicates_are_kept() -> None:
    entries = [(b"k", b"c", 7), (b"k", b"a", 2), (b"k", b"b", 2), (b"k", b"a", 2)]
    index = Index.from_bytes(build_index(entries))
    assert list(index.items()) == [(b"k", b"a", 2), (b"k", b"b", 2), (b"k", b"a", 2), (b"k", b"c", 7)]
    assert index.lookup_exact(b"k") == b"a"


def test_root_never_has_a_prefix() -> None:
    data = build_index([(b"symbol:foo", b"m", 0), (b"symbol:bar", b"n", 1)])
    (root_word,) = struct.unpack_from(">I", data, 8)
    assert root_word & 0xE0000000 == 0x20000000  # CHILDS only
    root = root_word & 0x0FFFFFFF
    assert data[root : root + 2] == b"ss"  # one child, 's'
    assert root + 6 == len(data)  # post-order: the root is last
    (child_word,) = struct.unpack_from(">I", data, root + 2)
    child = child_word & 0x0FFFFFFF
    assert data[child : child + 7] == b"ymbol:\0"


def test_empty_key_lives_on_the_root() -> None:
    data = build_index([(b"", b"e", 0), (b"a", b"x", 1)])
    assert data == reference_build([(b"", b"e", 0), (b"a", b"x", 1)])
    index = Index.from_bytes(data)
    assert index.lookup_exact(b"") == b"e"
    assert list(index.items()) == [(b"", b"e", 0), (b"a", b"x", 1)]


@pytest.mark.parametrize(
    "entry",
    [(b"a\0b", b"m", 0), (b"a", b"m\0", 0), (b"a", b"m", -1), (b"a", b"m", 1 << 32)],
)
def test_writer_rejects_what_kmod_cannot_store(entry: Entry) -> None:
    with pytest.raises(ValueError):
        build_index([entry])


def test_non_ascii_bytes_inside_prefixes_are_kept_but_not_as_branches() -> None:
    """kmod 30 writes non-ASCII key bytes inside prefixes; a branch on one would
    index its 128-slot child array with a negative number (garbage)."""
    data = build_index([(b"caf\xe9", b"m", 0), (b"cab", b"n", 1)])
    assert Index.from_bytes(data).lookup_exact(b"caf\xe9") == b"m"
    with pytest.raises(ValueError, match="branch"):
        build_index([(b"ca\xe9", b"m", 0), (b"ca\xea", b"n", 1)])


@FAST
@given(entries_st)
def test_matches_naive_reference_writer(entries: list[Entry]) -> None:
    assert build_index(entries) == reference_build(entries)


@FAST
@given(entries_st, st.randoms(use_true_random=False))
def test_shape_does_not_depend_on_insertion_order(entries: list[Entry], rnd: random.Random) -> None:
    # Keep each key's own sequence (its ties are order-sensitive), shuffle the rest.
    by_key: dict[bytes, list[Entry]] = {}
    for e in entries:
        by_key.setdefault(e[0], []).append(e)
    keys = list(by_key)
    rnd.shuffle(keys)
    assert build_index([e for k in keys for e in by_key[k]]) == build_index(entries)


@FAST
@given(entries_st)
def test_round_trip(entries: list[Entry]) -> None:
    expected = expected_items(entries)
    for data in (build_index(entries), build_index_preorder(entries)):
        index = Index.from_bytes(data)
        assert list(index.items()) == expected
        for key in {e[0] for e in entries}:
            assert index.lookup_exact(key) == next(v for k, v, _ in expected if k == key)
        assert index.lookup_exact(b"\x7fnot-a-key") is None
    # The dump order replays into the same file when each key's ties are reversed.
    assert build_index(reversed(expected)) == build_index(entries)
    assert len(build_index_preorder(entries)) == len(build_index(entries))


any_keys_st = st.lists(st.sampled_from([*b"ab*?[]-:_.c0z", 0x7F, 0x80, 0xE9]), max_size=7).map(bytes)


def outcome(fn: Callable[[], bytes]) -> tuple[str, bytes | str]:
    try:
        return "ok", fn()
    except ValueError as exc:
        return "ValueError", str(exc)


@FAST
@given(st.lists(st.tuples(any_keys_st, st.sampled_from([b"m0", b"mod_a", b""]), st.integers(0, 3)), max_size=30),
       st.booleans())
def test_preorder_is_the_relayout_of_postorder(entries: list[Entry], with_dropped: bool) -> None:
    """Both writers (C when built, and Python): the pre-order file is the
    post-order one re-laid out node by node; same errors, same dropped keys."""
    for writer in (build_index, py_build_index):
        d_post: list[bytes] | None = [] if with_dropped else None
        d_pre: list[bytes] | None = [] if with_dropped else None
        post = outcome(lambda: writer(entries, d_post))  # noqa: B023
        pre = outcome(lambda: writer(entries, d_pre, preorder=True))  # noqa: B023
        assert d_pre == d_post
        if post[0] == "ok":
            assert isinstance(post[1], bytes)
            assert pre == ("ok", relayout_preorder(post[1]))
        else:
            assert pre == post


def test_preorder_error_names_the_post_order_node() -> None:
    """Several non-ASCII branches: the pre-order walk (keys descending) meets
    the last one first, yet both layouts name the one post-order meets first."""
    entries = [(b"a\xe1", b"m", 0), (b"a\xe2", b"m", 0), (b"b\xe3", b"m", 0), (b"b\xe4", b"m", 0)]
    message = "index keys b'a\\xe1'... branch on byte 0xe2: kmod 30 cannot index a non-ASCII byte at a branch"
    for writer in (build_index, py_build_index):
        for preorder in (False, True):
            with pytest.raises(ValueError) as err:
                writer(entries, preorder=preorder)
            assert str(err.value) == message


def test_preorder_layout_by_hand() -> None:
    """Offsets worked out by hand: the root at 12 (table 'a'..'b': 2 + 8
    bytes), then 'a' at 22 (prefix "bc", one value: 3 + 4 + 4 + 2 bytes),
    then 'b' at 35."""
    data = build_index([(b"abc", b"x", 5), (b"b", b"yy", 6)], preorder=True)
    assert data == bytes.fromhex(
        "b007f457 00020001 2000000c"
        "61 62 c0000016 40000023"
        "626300 00000001 00000005 7800"
        "00000001 00000006 797900"
    )
    assert py_build_index([(b"abc", b"x", 5), (b"b", b"yy", 6)], preorder=True) == data
    assert build_index_columns([b"abc", b"b"], [b"x", b"yy"], [5, 6], preorder=True) == data
    assert py_build_index_columns([b"abc", b"b"], [b"x", b"yy"], [5, 6], preorder=True) == data
    assert build_index_preorder([(b"abc", b"x", 5), (b"b", b"yy", 6)]) == data


@pytest.mark.parametrize("name", LAYOUT_FILES)
def test_kmod30_and_kmod34_files_byte_for_byte(name: str) -> None:
    """The real kmod 30 and kmod 34.2 files of one tiny tree (see
    make_layout_tree): they hold the same entries, the reader reads both
    layouts alike, and each writer reproduces each file."""
    k30 = (LAYOUTS / "kmod30" / name).read_bytes()
    k34 = (LAYOUTS / "kmod34" / name).read_bytes()
    assert k30 != k34 and len(k30) == len(k34)
    assert struct.unpack_from(">I", k34, 8)[0] & 0x0FFFFFFF == 12  # pre-order: the root first
    i30 = Index.from_bytes(k30)
    i34 = Index.from_bytes(k34)
    items = list(i30.items())
    assert len(items) >= 3
    assert list(i34.items()) == items
    assert i34.node_count == i30.node_count
    for key in {k for k, _v, _p in items} | {b"mdx_a", b"usb:v1234p5678d1dc2", b"net_pf_42", b"zz"}:
        assert i34.lookup_exact(key) == i30.lookup_exact(key)
        for reader in ("mmap", "stdio"):
            assert i34.lookup_wildcard(key, reader=reader) == i30.lookup_wildcard(key, reader=reader)
    # The dump order replays into the same files when each key's ties are reversed.
    entries = list(reversed(items))
    for writer in (build_index, py_build_index):
        assert writer(entries) == k30
        assert writer(entries, preorder=True) == k34
    assert relayout_preorder(k30) == k34


def test_layout_fixtures_cover_every_node_shape() -> None:
    index = Index.from_bytes((LAYOUTS / "kmod34" / "modules.alias.bin").read_bytes())
    assert any(p for p in index._prefix)  # prefixes
    assert any(-1 in row for row in index._kids)  # a child table with gaps
    assert any(v and row for v, row in zip(index._values, index._kids))  # values on an inner node
    assert any(len(v) > 1 for v in index._values)
    builtin = Index.from_bytes((LAYOUTS / "kmod34" / "modules.builtin.alias.bin").read_bytes())
    assert [v for k, v, _p in builtin.items() if k == b"crc_8"] == [b"crc7", b"crc8"]  # an equal-priority tie


def brute_force_wildcard(entries: list[Entry], query: bytes) -> list[tuple[int, bytes]]:
    """Values of every key whose literal part equals the query's and whose
    pattern part fnmatches the rest (queries without wildcard bytes)."""
    hits = []
    for key, value, prio in expected_items(entries):
        # A key without wildcard bytes behaves as if its pattern part were empty.
        wild = min((i for i, b in enumerate(key) if b in b"*?["), default=len(key))
        if key[:wild] == query[:wild] and (fnmatch(key[wild:], query[wild:]) if wild < len(key) else key == query):
            hits.append((prio, value))
    return hits


@settings(max_examples=200, deadline=None)
@given(entries_st, st.lists(st.sampled_from(list(b"ab]-:_.c0z")), max_size=7).map(bytes))
def test_wildcard_lookup_against_brute_force(entries: list[Entry], query: bytes) -> None:
    index = Index.from_bytes(build_index(entries))
    got = index.lookup_wildcard(query)
    assert sorted(got) == sorted(brute_force_wildcard(entries, query))
    assert [p for p, _ in got] == sorted(p for p, _ in got)
    assert sorted(index.lookup_wildcard(query, reader="stdio")) == sorted(got)


def test_wildcard_lookup_examples() -> None:
    # Verified with kmod 30 modprobe -R on hand-made files.
    index = Index.from_bytes(SPEC_BYTES)
    assert index.lookup_wildcard(b"usb:abc") == [(0, b"m0")]
    assert index.lookup_wildcard(b"usb:a") == [(1, b"m1")]
    assert index.lookup_wildcard(b"usb:c") == [(2, b"m2"), (3, b"m3")]
    assert index.lookup_wildcard(b"usb:ab") == []
    assert index.lookup_wildcard(b"usb:b") == []
    fake = Index.from_bytes(
        build_index([(b"fake:a*b", b"star", 10), (b"fake:a?c", b"qm", 11), (b"fake:a[0-9]", b"br", 12)])
    )
    assert fake.lookup_wildcard(b"fake:aXYZb") == [(10, b"star")]
    assert fake.lookup_wildcard(b"fake:a7") == [(12, b"br")]
    # A query spelling a stored pattern follows the '*' edge literally too.
    assert fake.lookup_wildcard(b"fake:a*b") == [(10, b"star"), (10, b"star")]
    assert fake.lookup_wildcard(b"fake:a[0-9]") == [(12, b"br")]
    # Results are merged by priority across nodes.
    mixed = Index.from_bytes(build_index([(b"pci:v*", b"late", 9), (b"pci:v1*", b"early", 1), (b"pci:v1", b"x", 5)]))
    assert mixed.lookup_wildcard(b"pci:v1") == [(1, b"early"), (5, b"x"), (9, b"late")]


def test_deep_and_long_keys_do_not_recurse() -> None:
    # 1200 nested keys make a 1200-level trie; one key is 10,000 bytes long.
    entries = [(b"a" * i, b"m%d" % i, i) for i in range(1, 1201)]
    entries += [(b"a" * 500 + b"*", b"star", 0), (b"x" * 10_000, b"long", 0)]
    data = build_index(entries)
    index = Index.from_bytes(data)
    assert index.node_count > 1200
    assert len(list(index.items())) == len(entries)
    assert index.lookup_exact(b"a" * 1200) == b"m1200"
    assert index.lookup_exact(b"x" * 10_000) == b"long"
    assert index.lookup_wildcard(b"a" * 700) == [(0, b"star"), (700, b"m700")]
    assert Index.from_bytes(build_index_preorder(entries)).node_count == index.node_count
    # A 1000-level chain below a wildcard: enumeration is iterative too.
    chain = Index.from_bytes(build_index((b"a*" + b"b" * i, b"m", i) for i in range(1000)))
    assert len(chain.lookup_wildcard(b"axyz" + b"b" * 600)) == 601


def alias_like_entries(count: int = 26_000) -> list[tuple[bytes, bytes, int]]:
    """Synthetic entries shaped like the 6.1 amd64 alias index (~26,000 entries,
    ~35,000 nodes); the real file is checked by the conformance suite.  Also
    what benchmarks/bench_index.py times."""
    rnd = random.Random(1)
    entries = []
    for i in range(26_000):
        vendor = rnd.choice([b"8086", b"10DE", b"1002", b"14E4", b"10EC"])
        kind = rnd.random()
        if kind < 0.5:
            key = b"pci:v0000%sd0000%04Xsv*sd*bc*sc*i*" % (vendor, rnd.randrange(65536))
        elif kind < 0.8:
            key = b"usb:v%sp%04Xd*dc*dsc*dp*ic*isc*ip*in*" % (vendor, rnd.randrange(65536))
        else:
            key = b"of:N*T*Cvendor,chip%d" % rnd.randrange(100_000)
        entries.append((key, b"mod%d" % (i % 4000), i % 4000))
    return entries


def test_alias_index_of_real_size() -> None:
    """A real-size index in both layouts, bounded by counts rather than time:
    each holds every entry, and its trie has at most two nodes a distinct key
    (a radix trie's branching nodes are fewer than its keys) -- the same nodes
    in both layouts.  The build time is benchmarks/bench_index.py's."""
    entries = alias_like_entries()
    distinct = len({k for k, _v, _p in entries})
    post = Index.from_bytes(build_index(entries))
    pre = Index.from_bytes(build_index(entries, preorder=True))
    assert post.node_count == pre.node_count <= 2 * distinct
    assert sorted(post.items()) == sorted(pre.items()) == sorted(entries)


# ---------------------------------------------------------------------------
# alias_normalize (kmod shared/util.c)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        (b"snd-hda-intel", b"snd_hda_intel"),
        (b"pci:v*d*sv*sd*bc0Csc03i30*", b"pci:v*d*sv*sd*bc0Csc03i30*"),
        (b"of:N*T*Cfsl,imx-uart", b"of:N*T*Cfsl,imx_uart"),
        (b"a-b[0-9]-c", b"a_b[0-9]_c"),  # dashes inside brackets stay
        (b"x[-]y", b"x[-]y"),
        (b"x[y", None),  # unmatched '['
        (b"y]z", None),  # ']' outside a group
        (b"[a][b-c]-", b"[a][b-c]_"),
        (b"", b""),
        (b"a-b\0c-d", b"a_b"),  # a C string
    ],
)
def test_alias_normalize(raw: bytes, normalized: bytes | None) -> None:
    assert alias_normalize(raw) == normalized


def test_alias_normalize_truncates_at_4095_bytes() -> None:
    assert alias_normalize(b"a-" * 3000) == (b"a_" * 3000)[:4095]
    # A ']' beyond the 4095-byte window is never seen, so no error.
    assert alias_normalize(b"x" * 4095 + b"]") == b"x" * 4095
    # A group that starts inside the window is copied whole (the C loop does not bound it).
    assert alias_normalize(b"x" * 4094 + b"[" + b"-" * 10 + b"]-") == b"x" * 4094 + b"[" + b"-" * 10 + b"]"
    assert alias_normalize(b"x" * 4094 + b"[abc") is None


# ---------------------------------------------------------------------------
# modules.builtin, every expectation checked against kmod 30's depmod


def test_builtin_entries_quirks() -> None:
    text = (
        b"kernel/a/first.ko\n"
        b"kernel/x/\n"  # basename is "\n"
        b"0bad\n"  # not a letter: rejected
        b"foo\0bar.ko\n"  # C string: "foo"
        b"kernel/b/-dash-.ko\n"
        b"kernel/d/qux\n"  # no '.': the newline stays in the key
        b"\n"
        b"/abs.ko\n"
        b"_x.ko\n"
        b"zz/"  # empty basename: kmod reuses the previous name
    )
    messages: list[str] = []
    entries = builtin_entries(text, messages)
    assert [k for k, _, _ in entries] == [b"first", b"\n", b"foo", b"_dash_", b"qux\n", b"qux\n"]
    assert all(v == b"" and p == 0 for _, v, p in entries)
    # depmod prints "depmod: " + each message + "\n"; the line keeps its own newline.
    assert messages == [
        "ERROR: Invalid modules.builtin line: 0bad\n",
        "ERROR: Invalid modules.builtin line: \n",
        "ERROR: Invalid modules.builtin line: /abs.ko\n",
        "ERROR: Invalid modules.builtin line: _x.ko\n",
    ]


def test_builtin_entries_fgets_splits_long_lines() -> None:
    # fgets with a 4096-byte buffer hands out at most 4095 bytes at a time.
    text = b"b" * 4095 + b"/c\n" + b"k" * 4094 + b"\n" + b"k" * 4095 + b"\nend.ko\n"
    messages: list[str] = []
    keys = [k for k, _, _ in builtin_entries(text, messages)]
    assert keys == [b"b" * 4095, b"k" * 4094 + b"\n", b"k" * 4095, b"end"]
    assert messages == ["ERROR: Invalid modules.builtin line: /c\n", "ERROR: Invalid modules.builtin line: \n"]


def test_builtin_entries_first_line_without_basename_is_skipped() -> None:
    # kmod would insert uninitialised stack bytes here; we insert nothing.
    assert builtin_entries(b"kernel/x/") == []
    assert build_index(builtin_entries(b"")) == EMPTY_BYTES


def test_builtin_duplicates_kept() -> None:
    index = Index.from_bytes(build_index(builtin_entries(b"kernel/a.ko\nkernel/a.ko\n")))
    assert list(index.items()) == [(b"a", b"", 0), (b"a", b"", 0)]


# ---------------------------------------------------------------------------
# modules.builtin.modinfo, every expectation checked against kmod 30


def test_builtin_alias_entries_quirks() -> None:
    data = (
        b"mod-i.alias=a-b[0-9]-c\0"  # key normalised, value (module name) not
        b"mod_f.noeq\0"  # no '=': step B stops at this NUL, and the skip...
        b"swallowed.alias=gone\0"  # ...swallows this whole record
        b"x.alias=\0"  # empty alias
        b"nodot\0"
        b"m.alias=x[y\0"
        b"m.alias=y]z\0"
        b"m.description=foo\0"
        b"ok.alias=fine\0"
        b"m2.alias=last-unterminated"  # dropped
    )
    messages: list[str] = []
    entries = builtin_alias_entries(data, messages)
    assert entries == [(b"a_b[0-9]_c", b"mod-i", 0), (b"fine", b"ok", 0)]
    assert messages == ["WARNING: Unmatched bracket in x[y", "WARNING: Unmatched bracket in y]z"]


def test_builtin_alias_entries_buffer_overflow() -> None:
    # flush_stream_to fills 4096 bytes, warns, consumes one more byte, keeps 4095.
    records = [
        b"m" * 4096 + b".alias=x\0",  # the '.' is the extra byte: name kept, cut to 4095
        b"n" * 4095 + b".alias=y\0",  # fits exactly
        b"m" * 4097 + b"z.alias=q\0",  # extra byte is 'm': name lost, "z" follows
        b"mod.alias=" + b"v" * 4096 + b"\0",
    ]
    data = b"".join(records)
    messages: list[str] = []
    entries = builtin_alias_entries(data, messages)
    assert entries == [
        (b"x", b"m" * 4095, 0),
        (b"y", b"n" * 4095, 0),
        (b"q", b"z", 0),
        (b"v" * 4095, b"mod", 0),
    ]
    partial = "WARNING: Could not flush stream: 28. Partial content: "
    assert messages == [partial + "m" * 4096, partial + "m" * 4096, partial + "v" * 4096]


def test_builtin_alias_empty_and_tie() -> None:
    assert builtin_alias_entries(b"") == []
    data = b"".join(b"%s.alias=same-alias\0" % n for n in (b"mod_a", b"mod_b", b"mod_c", b"mod_j", b"mod_a"))
    index = Index.from_bytes(build_index(builtin_alias_entries(data)))
    assert [v for _, v, _ in index.items()] == [b"mod_a", b"mod_j", b"mod_c", b"mod_b", b"mod_a"]


# ---------------------------------------------------------------------------
# Malformed files: always IndexFormatError, never a hang or another exception


def _words(*ws: int) -> bytes:
    return b"".join(struct.pack(">I", w) for w in ws)


HEADER = bytes.fromhex("b0 07 f4 57 00 02 00 01")
SAMPLE = build_index(
    [(b"usb:v1d*", b"a", 1), (b"usb:v2", b"b", 2), (b"pci:*", b"c", 3), (b"pci:*", b"d", 0), (b"", b"e", 4)]
)


def _exercise(data: bytes) -> None:
    """Parse; if that works, every reader entry point must work too."""
    try:
        index = Index.from_bytes(data, name="bad.bin")
    except IndexFormatError as err:
        assert str(err).startswith("bad.bin: ")
        assert "\n" not in str(err)
        return
    list(index.items())
    list(dump_lines(index))
    for q in (b"", b"usb:v1d9", b"pci:x", b"a", b"\x7f"):
        index.lookup_exact(q)
        index.lookup_wildcard(q)


@pytest.mark.parametrize("data", [SAMPLE, build_index_preorder(list(Index.from_bytes(SAMPLE).items()))])
def test_every_truncation_is_rejected(data: bytes) -> None:
    for size in range(len(data)):
        with pytest.raises(IndexFormatError):
            Index.from_bytes(data[:size], name="bad.bin")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too short"),
        (HEADER, "too short"),
        (bytes.fromhex("b0 07 fa 57 00 02 00 01 00 00 00 0c"), "bad magic"),
        (bytes.fromhex("b0 07 f4 57 00 01 00 01 00 00 00 0c"), "version"),
        (HEADER + _words(0x20000000 | 4), "into the header"),
        (HEADER + _words(99), "past the end"),
        # A node whose only child is itself.
        (HEADER + _words(0x20000000 | 12) + b"aa" + _words(0x20000000 | 12), "reached twice"),
        # Two slots pointing at the same leaf.
        (HEADER + _words(0x20000000 | 14) + b"x\0" + b"ab" + _words(0x80000000 | 12) * 2, "reached twice"),
        (HEADER + _words(0x20000000 | 12) + b"ba" + _words(0), "child range"),
        (HEADER + _words(0x20000000 | 12) + b"\x80\x80" + _words(0), "child range"),
        (HEADER + _words(0x40000000 | 12) + _words(0xFFFFFFFF), "cannot fit"),
        (HEADER + _words(0x40000000 | 12) + _words(1, 0) + b"abc", "past the end"),
        (HEADER + _words(0x80000000 | 12) + b"abc", "past the end"),
    ],
)
def test_malformed(data: bytes, reason: str) -> None:
    with pytest.raises(IndexFormatError, match=reason):
        Index.from_bytes(data, name="bad.bin")


def test_overlapping_nodes_are_rejected() -> None:
    # Four children start inside one shared string: each offset is new and
    # each node is fine alone, but together they claim more bytes than exist.
    string_at = 12 + 2 + 4 * 4
    body = b"\x00\x03" + _words(*[0x80000000 | (string_at + i) for i in range(4)]) + b"z" * 10 + b"\0"
    with pytest.raises(IndexFormatError, match="overlap"):
        Index.from_bytes(HEADER + _words(0x20000000 | 12) + body, name="bad.bin")


def test_error_pickles() -> None:
    err = IndexFormatError("x.bin", "bad magic")
    copy = pickle.loads(pickle.dumps(err))
    assert (str(copy), copy.name, copy.reason) == ("x.bin: bad magic", "x.bin", "bad magic")


def test_tolerated_oddities() -> None:
    # Minor version is ignored, bit 28 and flags-with-offset-0 too (libkmod does the same).
    data = bytearray(SAMPLE)
    data[7] = 0x63
    assert list(Index.from_bytes(bytes(data)).items()) == list(Index.from_bytes(SAMPLE).items())
    assert list(Index.from_bytes(HEADER + _words(0x40000000)).items()) == []
    assert Index.from_bytes(SAMPLE + b"trailing").lookup_exact(b"") == b"e"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_garbage_bodies(body: bytes) -> None:
    for root in (12, 0x20000000 | 12, 0xE0000000 | 12, 0x20000000 | (12 + len(body) // 2)):
        _exercise(HEADER + _words(root) + body)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(SAMPLE) - 1), st.integers(0, 7)), min_size=1, max_size=4))
def test_bit_flips(flips: list[tuple[int, int]]) -> None:
    data = bytearray(SAMPLE)
    for pos, bit in flips:
        data[pos] ^= 1 << bit
    _exercise(bytes(data))


def test_open_names_the_file(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "modules.alias.bin")
    with open(path, "wb") as f:
        f.write(b"\0" * 12)
    with pytest.raises(IndexFormatError, match=r"^.*modules\.alias\.bin: bad magic"):
        Index.open(path)
    with open(path, "wb") as f:
        f.write(SAMPLE)
    assert Index.open(path).lookup_exact(b"usb:v2") == b"b"


# ---------------------------------------------------------------------------
# Dump


def test_dump_lines() -> None:
    entries = [(b"qux\n", b"", 0), (b"a\tb", b"back\\slash", 3), (b"usb:v*", b"caf\xc3\xa9", 7)]
    index = Index.from_bytes(build_index(entries))
    assert list(dump_lines(index)) == [
        "a\\tb\t3\tback\\\\slash",
        "qux\\n\t0\t",
        "usb:v*\t7\tcaf\\xc3\\xa9",
    ]
    assert escape_bytes(b"plain") == "plain"
    assert escape_bytes(b"\r\x00\x7f") == "\\r\\x00\\x7f"


@pytest.mark.parametrize("writer", ["native", "python"])
@pytest.mark.parametrize("keys", [
    [b"\xc3\xa9t\xc3\xa9"],                      # alone: the root's only child byte is 0xc3
    [b"\xc3\xa9a", b"\xc3\xa9b"],                # all share a non-ASCII first byte
    [b"abc", b"\xe2\x82\xac", b"\xe2\x82\xacx"],  # next to ASCII keys
])
def test_a_non_ascii_first_byte_is_a_root_branch_and_is_left_out(writer: str, keys: list[bytes]) -> None:
    """The root has no prefix: kmod 30 indexes its child array with every key's first byte, so a key
    starting with a byte >= 0x80 is a non-ASCII branch even without a neighbour to branch from."""
    from moddeps.index import write as index_mod

    build = index_mod.build_index if writer == "native" else index_mod.py_build_index
    entries = [(k, b"m", n) for n, k in enumerate(keys)]
    with pytest.raises(ValueError):
        build(entries)
    dropped: list[bytes] = []
    data = build(entries, dropped)
    kept = [k for k in keys if k[:1] < b"\x80"]
    assert sorted(dropped) == sorted(k for k in keys if k not in kept)
    assert data == index_mod.py_build_index([(k, b"m", n) for n, k in enumerate(keys) if k in kept])
    assert sorted(k for k, _v, _p in Index.from_bytes(data).items()) == sorted(kept)


def make_layout_tree(root: Path) -> None:
    """Seven modules whose indexes have every node shape: prefixes, full and
    gappy child tables, values on inner nodes (a key that is a prefix of
    others: mdx, mdx_a, mdx_ab), several values per key with equal and
    different priorities, wildcard aliases; and builtin modules."""
    from tests.depmod_cases import mod

    kdir = root / "lib" / "modules" / LAYOUT_KVER
    mods = {
        "kernel/drivers/mdx.ko": mod(exports=["mdx_core", "mdx_core_get", "mdx_zz"],
                                     aliases=["pci:v00008086d*sv*sd*bc*sc*i*", "mdx-dev"]),
        "kernel/drivers/mdx_a.ko": mod(exports=["mdx_a_run"], needs=["mdx_core"],
                                       aliases=["pci:v00008086d00001234sv*sd*bc*sc*i*", "usb:v1234p*d*dc*",
                                                "mdx-dev"]),
        "kernel/drivers/mdx_ab.ko": mod(exports=["mdx_ab_1", "mdx_ab_9"], needs=["mdx_a_run", "mdx_core_get"],
                                        aliases=["usb:v1234p5678d*dc*", "of:N*T*Cmdx,ab", "mdx-dev"]),
        "kernel/net/zeta.ko": mod(exports=["zeta_tx", "alpha_rx"], aliases=["net-pf-42", "net-pf-4", "zeta"]),
        "kernel/net/alpha.ko": mod(needs=["alpha_rx", "mdx_zz"], aliases=["net-pf-42", "acpi*:MDX0001:*"]),
        "kernel/fs/q.ko": mod(aliases=["fs-q", "devname:q", "char-major-10-99"]),
        "extra/unlisted.ko": mod(exports=["mdx_zz_extra"], needs=["zeta_tx"], aliases=["zeta"]),
    }
    for rel, data in mods.items():
        path = kdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    order = [r for r in mods if not r.startswith("extra/")]
    (kdir / "modules.order").write_text("".join(f"{r}\n" for r in order))
    (kdir / "modules.builtin").write_text("kernel/lib/crc7.ko\nkernel/lib/crc8.ko\nkernel/fs/ext4/ext4.ko\n")
    (kdir / "modules.builtin.modinfo").write_bytes(
        b"crc7.license=GPL\0ext4.alias=fs-ext4\0ext4.alias=ext3\0ext4.alias=fs-ext3\0crc8.alias=crc-8\0"
        b"crc7.alias=crc-8\0"
    )
    (root / "config").mkdir(parents=True, exist_ok=True)


def _regen_layouts(kmod30: str, kmod34: str) -> None:
    import shlex
    import shutil
    import subprocess
    import tempfile

    for name, command in (("kmod30", kmod30), ("kmod34", kmod34)):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            make_layout_tree(root)
            subprocess.run([*shlex.split(command), "-b", str(root), "-C", str(root / "config"), LAYOUT_KVER],
                           check=True)
            out = LAYOUTS / name
            out.mkdir(parents=True, exist_ok=True)
            for f in LAYOUT_FILES:
                shutil.copyfile(root / "lib" / "modules" / LAYOUT_KVER / f, out / f)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 4 or sys.argv[1] != "--regen-layouts":
        sys.exit("usage: python -m tests.test_index --regen-layouts KMOD30_DEPMOD KMOD34_DEPMOD")
    _regen_layouts(sys.argv[2], sys.argv[3])
