"""The C twins in ``moddeps.depmod._trie`` against their pure-Python references.

Every C function must give the reference's result exactly: the same bytes,
the same objects, the same ValueError and message.  Where the C code declines
an input shape (it returns moddeps.native.DECLINED), the callers fall back to
Python; those paths are checked too.  Without the extension these tests skip locally and fail in CI
(``CI=true``).
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import struct
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moddeps.depmod import outputs
from moddeps.depmod.safety import LINE_BREAKS
from moddeps.index.keys import alias_normalize
from moddeps.index.read import Index
from moddeps.index.write import (
    build_index,
    build_index_columns,
    py_build_index,
    py_build_index_columns,
    start_index,
    start_index_columns,
)
from moddeps.kmodhash import hash_order, kmod_hash, py_hash_order, py_kmod_hash
from moddeps.model import Export, Import, Module, fsdecode, fsencode
from moddeps.native import DECLINED
from moddeps.resolve import KERNEL, ResolveOptions, _bind_py, kmod_view, lookup_name, resolve

from .leakcheck import heap_growth


def _load() -> ModuleType | None:
    try:
        from moddeps.depmod import _trie
    except ImportError:
        return None
    return _trie


_TRIE = _load()


@pytest.fixture
def trie() -> ModuleType:
    if _TRIE is None:
        if os.environ.get("CI") == "true":
            pytest.fail("moddeps.depmod._trie is not built (CI=true): run setup.py build_ext --inplace")
        pytest.skip("moddeps.depmod._trie is not built (python setup.py build_ext --inplace)")
    return _TRIE


@pytest.fixture
def pure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bool], None]]:
    """pure(True) switches the accelerators off (MODDEPS_PURE=1), pure(False) on."""

    def switch(on: bool) -> None:
        if on:
            monkeypatch.setenv("MODDEPS_PURE", "1")
        else:
            monkeypatch.delenv("MODDEPS_PURE", raising=False)

    yield switch


FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.function_scoped_fixture])


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """("ok", result) or (exception type name, message): what must be identical."""
    try:
        return "ok", fn(*args)
    except (ValueError, TypeError) as exc:
        return type(exc).__name__, str(exc)


# ---------------------------------------------------------------------------
# build_index

_KEY_BYTES = [*b"ab:*?[]-_.0z", 0x7F, 0x80, 0xE9, 0xFF]
keys_st = st.lists(st.sampled_from(_KEY_BYTES), max_size=9).map(bytes)
ascii_keys_st = st.lists(st.sampled_from(list(b"ab:*?[]-_.0z")), max_size=9).map(bytes)
values_st = st.sampled_from([b"", b"m0", b"mod_a", b"kernel/x.ko: kernel/y.ko", b"\xe9t\xe9"])
prio_st = st.one_of(st.integers(0, 3), st.integers(0, 0xFFFFFFFF))


def finished(start: Callable[..., Any]) -> Callable[..., Any]:
    """``start`` (start_index, start_index_columns) and the result of what it started: a pending
    index, or the bytes (or DECLINED) it gave at once."""
    def run(*args: Any) -> Any:
        got = start(*args)
        return got.result() if hasattr(got, "result") else got
    return run


def both_build(trie: ModuleType, entries: list[tuple[bytes, bytes, int]], with_dropped: bool) -> None:
    """C == Python in both layouts (kmod 30's post-order, kmod 34's pre-order), built at once or
    in a thread of its own (start_index: a layout that fails there raises from result())."""
    for preorder in (False, True):
        d_python: list[bytes] | None = [] if with_dropped else None
        want = outcome(lambda e, d: py_build_index(e, d, preorder=preorder), entries, d_python)  # noqa: B023
        for build in (trie.build_index, finished(trie.start_index)):
            d_native: list[bytes] | None = [] if with_dropped else None
            assert outcome(build, entries, d_native, preorder) == want
            assert d_native == d_python
        # the column form gives the same, too
        keys = [k for k, _v, _p in entries]
        values = [v for _k, v, _p in entries]
        prios = [p for _k, _v, p in entries]
        for build in (trie.build_index_columns, finished(trie.start_index_columns)):
            c_native: list[bytes] | None = [] if with_dropped else None
            assert outcome(build, keys, values, prios, c_native, preorder) == want
            assert c_native == d_python


@FAST
@given(st.lists(st.tuples(ascii_keys_st, values_st, prio_st), max_size=40), st.booleans())
def test_build_index_ascii(trie: ModuleType, entries: list[tuple[bytes, bytes, int]], with_dropped: bool) -> None:
    both_build(trie, entries, with_dropped)


@FAST
@given(st.lists(st.tuples(keys_st, values_st, st.integers(0, 5)), max_size=40), st.booleans())
def test_build_index_non_ascii_and_dropped(
    trie: ModuleType, entries: list[tuple[bytes, bytes, int]], with_dropped: bool
) -> None:
    both_build(trie, entries, with_dropped)


@FAST
@given(st.lists(st.tuples(st.binary(max_size=6), st.binary(max_size=4), st.integers(-2, 2**32 + 1)), max_size=12))
def test_build_index_any_bytes(trie: ModuleType, entries: list[tuple[bytes, bytes, int]]) -> None:
    """NULs in keys and values, priorities outside u32: same ValueError, same message."""
    both_build(trie, entries, False)
    both_build(trie, entries, True)


@pytest.mark.parametrize(
    "entries",
    [
        [],
        [(b"", b"e", 0)],
        [(b"", b"e", 0), (b"", b"f", 0), (b"a", b"x", 1)],
        [(b"x" * 20_000, b"long", 7), (b"x" * 19_999 + b"y", b"other", 1)],
        [(b"pci:v00008086d" + b"%04X" % i + b"sv*sd*bc*sc*i*", b"m%d" % (i % 7), i % 5) for i in range(3000)],
        [(b"a" * i, b"m%d" % i, i) for i in range(1, 600)],
        [(b"k", b"v%d" % i, i % 4) for i in range(500)] + [(b"k2", b"w", 0)],
        [(b"same", b"mod_%d" % i, 0) for i in range(50)],
        [(b"caf\xe9", b"m", 0), (b"cab", b"n", 1)],  # non-ASCII inside a prefix: fine
        [(b"ca\xe9", b"m", 0), (b"ca\xea", b"n", 1)],  # a branch on 0xea: ValueError
        [(b"\x80", b"m", 0)],  # the root's only child is non-ASCII: ValueError even with dropped
        [(b"a\0b", b"m", 0)],
        [(b"a", b"m\0", 0)],
        [(b"a", b"m", -1)],
        [(b"a", b"m", 1 << 32)],
        [(b"a", b"m", True)],
        [(b"x\x81a", b"1", 0), (b"x\x82", b"2", 0), (b"x\x81b", b"3", 0), (b"y", b"4", 0), (b"x\x81\x90", b"5", 0)],
    ],
)
@pytest.mark.parametrize("with_dropped", [False, True])
def test_build_index_cases(trie: ModuleType, entries: list[tuple[bytes, bytes, int]], with_dropped: bool) -> None:
    both_build(trie, entries, with_dropped)


def test_build_index_error_messages(trie: ModuleType) -> None:
    cases: list[tuple[list[tuple[bytes, bytes, int]], str]] = [
        ([(b"ok", b"m", 0), (b"a\0b", b"m", 0), (b"c\0", b"m", 0)],
         "index key b'a\\x00b' contains a NUL byte at position 1"),
        ([(b"a\0", b"m", 0), (b"b", b"m\0", 0)], "index value b'm\\x00' for key b'b' contains a NUL byte"),
        ([(b"a", b"m", -5)], "index priority -5 for key b'a' is not a u32"),
        ([(b"ca\xe9", b"m", 0), (b"ca\xea", b"n", 1)],
         "index keys b'ca\\xe9'... branch on byte 0xea: kmod 30 cannot index a non-ASCII byte at a branch"),
    ]
    for entries, message in cases:
        with pytest.raises(ValueError) as native:
            trie.build_index(entries)
        with pytest.raises(ValueError) as started:
            finished(trie.start_index)(entries)
        with pytest.raises(ValueError) as python:
            py_build_index(entries)
        assert str(native.value) == str(started.value) == str(python.value) == message


def test_build_index_too_large(trie: ModuleType) -> None:
    """An index past kmod's 28-bit offsets: same ValueError from both.

    Post-order puts the root last, so one 256 MiB value is too much; in
    pre-order only a node *after* it is: that file is fine with one key, not
    with a second one behind it."""
    big = b"v" * (1 << 28)
    entries = [(b"k", big, 0)]
    got = outcome(trie.build_index, entries)
    want = outcome(py_build_index, entries)
    assert got == want
    assert got[0] == "ValueError" and "28-bit" in got[1]
    pending = trie.start_index(entries)
    assert outcome(pending.result) == want  # found in its thread, raised by result()
    with pytest.raises(ValueError, match="failed already"):
        pending.result()
    got = outcome(trie.build_index, entries, None, True)
    assert got[0] == "ok"
    assert got[1][:22] == bytes.fromhex("b007f457 00020001 2000000c 6b 6b 40000012 00000001")
    assert got == outcome(lambda e: py_build_index(e, preorder=True), entries)
    del got
    entries.append((b"m", b"x", 1))
    got = outcome(trie.build_index, entries, None, True)
    assert got == outcome(lambda e: py_build_index(e, preorder=True), entries)
    assert outcome(finished(trie.start_index), entries, None, True) == got
    # 'm' follows the root (a table of 3 slots, 'k'..'m') and 'k' (one value)
    assert got == ("ValueError", f"index of {12 + 2 + 12 + 4 + 4 + (1 << 28) + 1}+ bytes does not fit kmod's "
                                 "28-bit node offsets")


def test_build_index_preorder_argument(trie: ModuleType) -> None:
    entries = [(b"abc", b"x", 5), (b"b", b"yy", 6)]
    post = trie.build_index(entries)
    pre = trie.build_index(entries, None, True)
    assert post != pre and pre == py_build_index(entries, preorder=True)
    assert trie.build_index(entries, None, 1) == pre  # any truth value
    assert trie.build_index(entries, None, False) == post
    assert trie.build_index_columns([b"abc", b"b"], [b"x", b"yy"], [5, 6], None, True) == pre
    assert build_index(entries, preorder=True) == pre
    assert build_index_columns([b"abc", b"b"], [b"x", b"yy"], [5, 6], preorder=True) == pre
    with pytest.raises(TypeError):
        trie.build_index(entries, None, True, 0)
    pending = trie.start_index(entries, None, True)
    assert pending.result() == pre and pending.result() == pre  # (kept: a second call gives it again)
    assert start_index(entries, preorder=True).result() == pre
    assert start_index_columns([b"abc", b"b"], [b"x", b"yy"], [5, 6], preorder=True).result() == pre
    with pytest.raises(TypeError):
        trie.start_index(entries, None, True, 0)
    with pytest.raises(TypeError):
        trie.start_index_columns([b"abc"], [b"x"], [5], None, True, 0)


def _many_aliases(n: int) -> tuple[list[bytes], list[bytes], list[int]]:
    keys = [b"pci:v%08Xd%08Xsv*sd*bc*sc*i*" % (i * 7919 % 65521, i) for i in range(n)]
    return keys, [b"mod_%d" % (i % 997) for i in range(n)], [i % 13 for i in range(n)]


def _fresh(items: list[bytes]) -> list[bytes]:
    """Equal bytes objects of their own (``bytes(b)`` of a bytes object is that object)."""
    return [bytes(bytearray(x)) for x in items]


def _threads() -> set[str]:
    """The process's threads (of other tests too, which may end meanwhile: compared as sets)."""
    return set(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts the process's threads in /proc")
@pytest.mark.parametrize("preorder", [False, True])
def test_start_index_builds_in_a_thread_holding_its_inputs(trie: ModuleType, preorder: bool) -> None:
    """start_index_columns returns with a thread of its own building the index (the process has
    a new one: 150,000 keys take it milliseconds, the listing a few microseconds), and the lists
    emptied meanwhile change nothing: it holds the keys and values it reads, and builds the
    file of the lists as they were."""
    keys, values, prios = _many_aliases(150_000)
    want = trie.build_index_columns(keys, values, prios, None, preorder)
    k, v = _fresh(keys), _fresh(values)  # (the lists hold the only references)
    before = _threads()
    pending = trie.start_index_columns(k, v, prios, None, preorder)
    started = _threads() - before
    k.clear()
    v.clear()
    assert pending.result() == want
    assert started, "no thread was started"


def test_start_index_left_pending(trie: ModuleType) -> None:
    """Pending indexes dropped without their result, while their threads build (what an
    exception in a later row leaves): each is waited for as it goes (the thread reads memory
    the object frees), and the next builds are whole."""
    keys, values, prios = _many_aliases(50_000)
    want = trie.build_index_columns(keys, values, prios, None, True)
    for _ in range(5):
        pending = trie.start_index_columns(_fresh(keys), _fresh(values), prios, None, True)
        del pending
    assert trie.start_index_columns(keys, values, prios, None, True).result() == want


def test_start_index_waited_for_by_two_threads(trie: ModuleType) -> None:
    """result() asked by a second Python thread while the first waits for the index: the second
    gets RuntimeError (a thread is joined once), or the bytes if the first was done; never a
    second join of one thread."""
    import threading

    keys, values, prios = _many_aliases(150_000)
    want = trie.build_index_columns(keys, values, prios, None, True)
    pending = trie.start_index_columns(keys, values, prios, None, True)
    first: list[bytes] = []
    waiting = threading.Thread(target=lambda: first.append(pending.result()))
    waiting.start()
    while not first and waiting.is_alive() and "being waited" not in _second(pending):
        pass  # (until the other thread is seen waiting, or is done)
    waiting.join()
    assert first == [want]
    assert pending.result() == want  # (kept once made)


def _second(pending: Any) -> str:
    """What a second result() gives: the RuntimeError's message, or "bytes"."""
    try:
        pending.result()
    except RuntimeError as exc:
        return str(exc)
    return "bytes"


def test_start_index_keeps_the_heap_flat(trie: ModuleType) -> None:
    """Indexes started and waited for, started and dropped, failing in their thread and refused
    as they start: the heap (references, and what the thread allocates) stays flat."""
    keys, values, prios = _many_aliases(300)
    branching = [(b"ca\xe9", b"m", 0), (b"ca\xea", b"n", 1)]  # no dropped list: fails in the thread

    def run(n: int) -> None:
        for _ in range(n):
            # (objects of their own each time: a reference the index kept would keep them alive)
            trie.start_index_columns(_fresh(keys), _fresh(values), prios, None, True).result()
            pending = trie.start_index_columns(_fresh(keys), _fresh(values), prios, None, False)
            del pending
            with pytest.raises(ValueError):
                trie.start_index([(b"a\0", b"m", 0)])
            for preorder in (False, True):
                failing = trie.start_index(branching, None, preorder)
                with pytest.raises(ValueError, match="branch on byte 0xea"):
                    failing.result()

    grown = heap_growth(run, warm=20, settle=20, rounds=300)
    assert grown < 64 * 1024, f"the heap grew by {grown} bytes over 1,500 indexes"


def test_start_index_kmod30_drop_is_done_at_once(trie: ModuleType) -> None:
    """A key that kmod 30 may have to drop (a byte >= 0x80) with a dropped list: built at once,
    the list complete on return."""
    entries = [(b"ca\xe9", b"m", 0), (b"ca\xea", b"n", 1), (b"ok", b"o", 2)]
    dropped: list[bytes] = []
    got = trie.start_index(entries, dropped)
    assert isinstance(got, bytes)
    assert dropped and got == py_build_index(entries, [])


def test_build_index_result_reads_back(trie: ModuleType) -> None:
    rnd = random.Random(5)
    entries = [(bytes(rnd.choice(b"abc:*-") for _ in range(rnd.randrange(12))), b"m%d" % i, rnd.randrange(9))
               for i in range(2000)]
    data = trie.build_index(entries)
    assert data == py_build_index(entries)
    index = Index.from_bytes(data)
    assert sorted(index.items()) == sorted(entries)


def test_build_index_odd_shapes_fall_back(trie: ModuleType) -> None:
    """Entries the C code does not take (lists, str keys) go to the Python writer."""
    assert trie.build_index([[b"a", b"m", 0]]) is DECLINED
    with pytest.raises(TypeError):  # not an entry: a call that breaks the stub
        trie.build_index([(b"a", b"m", 0)], ())
    assert build_index([[b"a", b"m", 0]]) == py_build_index([(b"a", b"m", 0)])  # type: ignore[list-item]
    gen = ((b"k%d" % i, b"v", i) for i in range(10))
    assert build_index(gen) == py_build_index((b"k%d" % i, b"v", i) for i in range(10))
    assert build_index_columns([b"a", b"b"], [b"x", b"y"]) == py_build_index_columns([b"a", b"b"], [b"x", b"y"])
    assert build_index_columns([b"a", b"b"], [b"x", b"y"], [3, 3]) == py_build_index([(b"a", b"x", 3), (b"b", b"y", 3)])
    for fn in (build_index_columns, py_build_index_columns):
        with pytest.raises(ValueError, match="different lengths"):
            fn([b"a"], [b"x", b"y"])


# ---------------------------------------------------------------------------
# kmod hash


@settings(FAST, max_examples=500)
@given(st.binary(max_size=80))
def test_kmod_hash(trie: ModuleType, key: bytes) -> None:
    assert trie.kmod_hash(key) == py_kmod_hash(key)


def test_kmod_hash_every_length_and_high_bytes(trie: ModuleType) -> None:
    rnd = random.Random(30)
    for n in range(65):
        for _ in range(20):
            key = bytes(rnd.randrange(256) for _ in range(n))
            assert trie.kmod_hash(key) == py_kmod_hash(key), key
        for fill in (0x00, 0x7F, 0x80, 0xFF):
            key = bytes([fill]) * n
            assert trie.kmod_hash(key) == py_kmod_hash(key)
    assert kmod_hash(b"usbcore") == py_kmod_hash(b"usbcore")


@FAST
@given(st.lists(st.binary(max_size=12), max_size=60),
       st.sampled_from([1, 2, 512, 2048, 0, 3, -4, 1 << 16, (1 << 16) + 1, 1 << 40]))
def test_hash_order(trie: ModuleType, keys: list[bytes], buckets: int) -> None:
    # (the C code counts by bucket up to 2**16 buckets, and sorts whole above that)
    assert trie.hash_order(keys, buckets) == py_hash_order(keys, buckets)
    assert hash_order(dict.fromkeys(keys), buckets) == py_hash_order(keys and list(dict.fromkeys(keys)), buckets)


@pytest.mark.parametrize("buckets", [1, 2, 512, 2048])
def test_hash_order_of_many_keys(trie: ModuleType, buckets: int) -> None:
    """Buckets of many entries, equal keys in them (their order: their positions)."""
    rnd = random.Random(buckets)
    keys = [bytes(rnd.randrange(97, 100) for _ in range(rnd.randrange(6))) for _ in range(3000)]
    assert trie.hash_order(keys, buckets) == py_hash_order(keys, buckets)
    owners = {fsdecode(k): (i % 7 - 1, 0) for i, k in enumerate(keys)}
    owned = {fsencode(n): o for n, (o, _c) in owners.items() if o != KERNEL}
    order = py_hash_order(owned, buckets)
    assert trie.symbol_order(owners, buckets, b"") == (order, [owned[k] for k in order])


# ---------------------------------------------------------------------------
# Writer helpers

alias_text_st = st.one_of(
    st.text(alphabet="abc-_:*[]?0\x00é", max_size=12),
    st.binary(max_size=10).map(fsdecode),
)


@FAST
@given(st.lists(alias_text_st, max_size=30))
def test_alias_keys(trie: ModuleType, aliases: list[str]) -> None:
    assert trie.alias_keys(aliases) == [alias_normalize(fsencode(a)) for a in aliases]
    raw = [fsencode(a) for a in aliases]
    assert trie.alias_keys(raw) == [alias_normalize(r) for r in raw]


def test_alias_keys_long_and_brackets(trie: ModuleType) -> None:
    cases = [
        "a-" * 3000,
        "x" * 4094 + "[0-9]-y",
        "x" * 4095 + "]",
        "x" * 4090 + "[" + "-" * 20 + "]" + "-" * 10,
        "[-]-[-",
        "a]b",
        "usb:v*p*d*dc*dsc*dp*ic0Eisc01ip00in*",
        "pci:v0000-8086d*[0-9]\x00-ignored",
        "caf\udce9-x",
    ]
    assert trie.alias_keys(cases) == [alias_normalize(fsencode(a)) for a in cases]


def test_alias_keys_rejects(trie: ModuleType) -> None:
    assert trie.alias_keys([1]) is DECLINED
    with pytest.raises(UnicodeEncodeError):
        trie.alias_keys(["\ud800"])


@FAST
@given(st.lists(st.tuples(alias_text_st, st.integers(0, 4)), max_size=30))
def test_format_rows(trie: ModuleType, rows: list[tuple[str, int]]) -> None:
    seconds = [b"", b"m1", b"\xff", b"name_3", b"x y"]
    firsts = [f for f, _ in rows]
    owners = [o for _, o in rows]
    want = b"".join(b"H" + fsencode(f) + b"--" + seconds[o] + b"\n" for f, o in rows)
    assert trie.format_rows(b"H", firsts, b"--", owners, seconds, b"\n") == want
    assert trie.format_rows(b"H", [fsencode(f) for f in firsts], b"--", owners, seconds, b"\n") == want


def test_format_rows_declines_bad_owners(trie: ModuleType) -> None:
    for owners in ([5], [-1], ["0"]):
        assert trie.format_rows(b"", ["a"], b"", owners, [b"x"], b"") is DECLINED


@FAST
@given(st.lists(st.sampled_from(["devname:fuse", "devname:", "devnam", "xdevname:a", "", "devname:\udce9"]),
                max_size=20))
def test_starting_with(trie: ModuleType, values: list[str]) -> None:
    assert trie.starting_with(values, "devname:") == [i for i, v in enumerate(values) if v.startswith("devname:")]
    assert trie.starting_with(values, "d\udce9") == [i for i, v in enumerate(values) if v.startswith("d\udce9")]


@FAST
@given(st.lists(st.one_of(st.text(alphabet="ab\t\n\r\x0b\x0c\x0e\u2028\u010a\udce9\U0001f600", max_size=6),
                          st.binary(max_size=6)), max_size=20))
def test_line_breaks(trie: ModuleType, values: list[str | bytes]) -> None:
    def has(v: str | bytes) -> bool:
        return any(c in v for c in LINE_BREAKS) if isinstance(v, str) else any(c.encode() in v for c in LINE_BREAKS)

    assert trie.line_breaks(values) == [i for i, v in enumerate(values) if has(v)]
    assert trie.line_breaks([1]) is DECLINED


@st.composite
def dags(draw: st.DrawFn) -> tuple[tuple[int, ...], ...]:
    n = draw(st.integers(0, 25))
    deps = []
    for m in range(n):
        later = list(range(m + 1, n))
        chosen = draw(st.lists(st.sampled_from(later), unique=True, max_size=4)) if later else []
        deps.append(tuple(chosen))
    perm = draw(st.permutations(list(range(n))))
    # relabel so the array order is not the dependency order
    inv = {old: new for new, old in enumerate(perm)}
    out: list[tuple[int, ...]] = [()] * n
    for old, ds in enumerate(deps):
        out[inv[old]] = tuple(inv[d] for d in ds)
    return tuple(out)


def _resolution_for(deps: tuple[tuple[int, ...], ...]) -> Any:
    from moddeps.resolve import Resolution, _number

    users = [0] * len(deps)
    for ds in deps:
        for d in ds:
            users[d] += 1
    topo = _number(deps, users)
    return Resolution({}, {}, deps, tuple({} for _ in deps), (), (), topo, ())


@FAST
@given(dags())
def test_dep_lines(trie: ModuleType, deps: tuple[tuple[int, ...], ...]) -> None:
    res = _resolution_for(deps)
    assert res.topo is not None
    shown = [f"kernel/m{i}.ko" for i in range(len(deps))]
    layout = outputs.WriterInput([], shown, res)
    lists = outputs.dependency_lists(layout)
    enc = [fsencode(s) for s in shown]
    want = [enc[i] + (b": " + b" ".join(enc[d] for d in ds) if ds else b":") for i, ds in enumerate(lists)]
    assert trie.dep_lines(deps, res.topo, enc) == want


def test_dep_lines_declines_a_bad_numbering(trie: ModuleType) -> None:
    assert trie.dep_lines(((1,), ()), (0, 0), [b"a", b"b"]) is DECLINED
    assert trie.dep_lines(((5,), ()), (0, 1), [b"a", b"b"]) is DECLINED


@FAST
@given(st.dictionaries(st.text(alphabet="ab_\udce9", max_size=6), st.tuples(st.integers(-1, 5), st.integers(0, 3)),
                       max_size=40))
def test_symbol_order(trie: ModuleType, owners: dict[str, tuple[int, int]]) -> None:
    owned = {fsencode(n): o for n, (o, _c) in owners.items() if o != KERNEL}
    order = py_hash_order(owned, 2048)
    # the names are hashed and sorted, the prefix only put in front of each
    for prefix in (b"", b"symbol:", b"\xff\x00"):
        want = ([prefix + k for k in order], [owned[k] for k in order])
        assert trie.symbol_order(owners, 2048, prefix) == want
    assert trie.symbol_order(owners, 2048, b"symbol:") == outputs._module_symbols_py(owners)
    assert trie.symbol_order(owners, 2048, "symbol:") is DECLINED


# ---------------------------------------------------------------------------
# Modules: modinfo selection and resolution

names_st = st.sampled_from(["a", "b", ".a", "_a", "__x", "crc", "c\udce9", "TOC.", "__this_module"])


@st.composite
def module_arrays(draw: st.DrawFn) -> list[Module]:
    n = draw(st.integers(0, 8))
    mods = []
    for i in range(n):
        exports = tuple(Export(draw(names_st), draw(st.one_of(st.none(), st.integers(0, 3)))) for _ in
                        range(draw(st.integers(0, 3))))
        # versions_only and ext_crc too: both twins take the imports as kmod reads them (resolve.kmod_view)
        imports = tuple(Import(draw(names_st), draw(st.one_of(st.none(), st.integers(0, 3))), draw(st.booleans()),
                               draw(st.booleans()), draw(st.booleans()))
                        for _ in range(draw(st.integers(0, 5))))
        modinfo = tuple(draw(st.lists(st.tuples(st.sampled_from(["alias", "softdep", "weakdep", "license"]),
                                                alias_text_st), max_size=5)))
        mods.append(Module(f"m{i}", f"kernel/m{i}.ko", exports, imports, modinfo))
    return mods


def _py_select(modules: list[Module]) -> list[tuple[list[str], list[int]]]:
    out = []
    for key in outputs._SELECTED:
        vals = [v for m in modules for k, v in m.modinfo if k == key]
        owners = [i for i, m in enumerate(modules) for k, _v in m.modinfo if k == key]
        out.append((vals, owners))
    return out


@FAST
@given(module_arrays())
def test_select_modinfo(trie: ModuleType, modules: list[Module]) -> None:
    assert trie.select_modinfo(modules, outputs._SELECTED) == _py_select(modules)


@FAST
@given(module_arrays(), st.sampled_from([None, "_", "."]), st.booleans(), st.booleans(),
       st.one_of(st.none(), st.dictionaries(names_st, st.integers(0, 3), max_size=4)))
def test_resolve_twins(trie: ModuleType, modules: list[Module], prefix: str | None, check: bool, warn: bool,
                       kernel: dict[str, int] | None) -> None:
    base: dict[str, tuple[int, int]] = {k: (KERNEL, v) for k, v in (kernel or {}).items()}
    paths = [f"/lib/modules/x/{m.path}" for m in modules]
    owners_c = dict(base)
    exporters = trie.resolve_exports(modules, Export, prefix, owners_c)
    bound = trie.resolve_imports(modules, Import, owners_c, prefix, check, warn, paths)
    owners_py = dict(base)
    want_exporters, want_bound = _bind_py(modules, paths, owners_py, prefix, check, warn)
    assert list(owners_c.items()) == list(owners_py.items())
    assert list(exporters.items()) == list(want_exporters.items())
    assert bound == want_bound
    # unbound: each module's imports (as kmod reads them) that no module exports, kernel's or not
    for m, loose in zip(kmod_view(modules), want_bound[5]):
        keys = [lookup_name(imp.name, prefix) for imp in m.imports]
        assert list(loose) == [k for k in keys if k not in want_exporters]


@FAST
@given(module_arrays(), st.sampled_from([None, "_"]), st.booleans(),
       st.one_of(st.none(), st.dictionaries(names_st, st.integers(0, 3), max_size=4)))
def test_resolve_native_equals_pure(pure: Callable[[bool], None], trie: ModuleType, modules: list[Module],
                                    prefix: str | None, warn: bool, kernel: dict[str, int] | None) -> None:
    paths = [m.path for m in modules]
    opts = ResolveOptions(kernel_table=kernel, check_crcs=kernel is not None, warn=warn, prefix=prefix)
    pure(False)
    native = resolve(modules, paths, opts)
    pure(True)
    python = resolve(modules, paths, opts)
    assert native == python
    assert list(native.owners.items()) == list(python.owners.items())


class _OtherExport(Export):
    pass


class _OtherImport(Import):
    pass


@pytest.mark.parametrize("foreign", ["export", "import"])
def test_resolve_falls_back_on_foreign_records(trie: ModuleType, foreign: str) -> None:
    """Records of another type than Import/Export: the C loops decline, Python binds them."""
    exp = _OtherExport("sym", 5) if foreign == "export" else Export("sym", 5)
    imp = _OtherImport("sym", 5) if foreign == "import" else Import("sym", 5)
    mods = [
        Module("a", "a.ko", exports=(exp,)),
        Module("b", "b.ko", imports=(imp, Import("nope", None))),
    ]
    owners: dict[str, tuple[int, int]] = {}
    got = trie.resolve_exports(mods, Export, None, owners) if foreign == "export" else trie.resolve_imports(
        mods, Import, {"sym": (0, 5)}, None, False, False, ["a", "b"])
    assert got is DECLINED
    assert owners == {}
    res = resolve(mods, ["a", "b"])
    assert res.deps == ((), (0,))
    assert res.unknown == ((1, "nope"),)
    assert res.exporters == {"sym": (0,)}


# ---------------------------------------------------------------------------
# The writers, native against pure


def _render(modules: list[Module], warn_dups: bool) -> list[Any]:
    paths = [m.path for m in modules]
    res = resolve(modules, paths)
    if res.topo is None:
        return ["cycle"]
    layout = outputs.WriterInput(modules, paths, res)
    messages: list[str] = []
    lines = outputs.dep_lines(layout)
    symbols = outputs.module_symbols(layout)
    got: list[Any] = [
        lines,
        outputs.modules_dep(lines),
        outcome(outputs.modules_dep_bin, layout, lines, messages),
        outputs.modules_alias(layout),
        outcome(outputs.modules_alias_bin, layout, messages, warn_dups),
        outputs.modules_softdep(layout),
        outputs.has_weakdeps(layout),
        outputs.modules_weakdep(layout),
        symbols,
        outputs.modules_symbols(layout, symbols),
        outcome(outputs.modules_symbols_bin, layout, symbols, messages),
        outputs.modules_devname(layout),
        messages,
    ]
    return got


devname_aliases = st.sampled_from(["devname:fuse", "char-major-10-229", "block-major-7-*", "devname:bad name",
                                   "devname:../x", "pci:v*d*", "a-b[0-9]", "a]", "x\udce9-\udcff"])


@st.composite
def writer_modules(draw: st.DrawFn) -> list[Module]:
    mods = draw(module_arrays())
    out = []
    for m in mods:
        extra = tuple(("alias", draw(devname_aliases)) for _ in range(draw(st.integers(0, 3))))
        info = tuple((k, v.replace("\n", "").replace("\r", "")) for k, v in m.modinfo) + extra
        out.append(Module(m.name, m.path, m.exports, m.imports, info))
    return out


@FAST
@given(writer_modules(), st.booleans())
def test_writers_native_equals_pure(pure: Callable[[bool], None], trie: ModuleType, modules: list[Module],
                                    warn_dups: bool) -> None:
    pure(False)
    native = _render(modules, warn_dups)
    pure(True)
    python = _render(modules, warn_dups)
    assert native == python


def test_writers_native_equals_pure_on_a_sample(pure: Callable[[bool], None], trie: ModuleType) -> None:
    rnd = random.Random(11)
    mods = []
    for i in range(300):
        exports = tuple(Export(f"sym_{i}_{j}", rnd.choice([None, j])) for j in range(rnd.randrange(4)))
        imports = (*(Import(f"sym_{d}_{rnd.randrange(3)}", None) for d in range(i + 1, min(300, i + 4))
                     if rnd.random() < 0.5), Import("printk", 1))
        modinfo = tuple(("alias", f"pci:v0000{rnd.randrange(65536):04X}d*sv*-{j}") for j in range(rnd.randrange(5)))
        if i % 50 == 0:
            modinfo += (("alias", f"devname:dev{i}"), ("alias", f"char-major-{i}-{i + 1}"), ("softdep", "pre: x"))
        mods.append(Module(f"m{i}", f"kernel/m-{i}.ko", exports, imports, modinfo))
    pure(False)
    native = _render(mods, True)
    pure(True)
    python = _render(mods, True)
    assert native == python
    assert native[11][0].count(b"\n") == 7  # the devname lines (6 modules + header)


def test_sample_index_layout_is_stable(trie: ModuleType) -> None:
    """A small worked example stays what it always was (kmod 30, docs/index-format.md#node-placement)."""
    entries = [(b"usb:abc", b"m0", 0), (b"usb:a", b"m1", 1), (b"usb:c", b"m3", 3), (b"usb:c", b"m2", 2)]
    data = trie.build_index(entries)
    assert struct.unpack_from(">III", data) == (0xB007F457, 0x00020001, 0x2000004E)
    assert len(data) == 84


# ---------------------------------------------------------------------------
# The seam (moddeps/native.py): a declined call falls back, an error does not


def _spy(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[tuple[Any, ...]]:
    """Record the calls of ``module.name`` (a Python twin) and let them through."""
    calls: list[tuple[Any, ...]] = []
    real = getattr(module, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


def test_declined_calls_fall_back_to_python(trie: ModuleType, pure: Callable[[bool], None],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Data the C code does not take gives DECLINED there, and the twin's result through the callers."""
    pure(False)
    import moddeps.kmodhash as kh

    # a key that is not bytes
    assert trie.kmod_hash(bytearray(b"usbcore")) is DECLINED
    assert kmod_hash(bytearray(b"usbcore")) == py_kmod_hash(b"usbcore")  # type: ignore[arg-type]
    # a bucket count past the C code's 64 bits
    keys = [b"a", b"b", b"usbcore"]
    assert trie.hash_order(keys, 1 << 70) is DECLINED
    calls = _spy(monkeypatch, kh, "py_hash_order")
    assert hash_order(keys, 1 << 70) == sorted(keys, key=lambda k: (py_kmod_hash(k), k))
    assert len(calls) == 1
    # records of a shape the C binder does not take (owners are left as they were: resolve_exports declines
    # before it changes anything)
    import moddeps.resolve as rs

    mods = [Module("a", "a.ko", exports=[Export("sym", 5)]), Module("b", "b.ko", imports=(Import("sym", 5),))]  # type: ignore[arg-type]
    owners: dict[str, tuple[int, int]] = {}
    assert trie.resolve_exports(mods, Export, None, owners) is DECLINED and owners == {}
    calls = _spy(monkeypatch, rs, "_bind_py")
    assert resolve(mods, ["a", "b"]).deps == ((), (0,))
    assert len(calls) == 1
    # modinfo that is not a tuple: sanitize checks every module in Python
    from moddeps.depmod import safety

    odd = [Module("m", "m.ko", modinfo=[("alias", "x\ny"), ("alias", "ok")])]  # type: ignore[arg-type]
    assert trie.select_modinfo(odd, ("alias",)) is DECLINED
    calls = _spy(monkeypatch, safety, "_sanitize")
    fixed, messages = safety.sanitize(odd)
    assert fixed[0].modinfo == (("alias", "ok"),) and len(messages) == 1
    assert len(calls) == 1


class _Boom(TypeError):
    pass


class _Exploding:
    """A stand-in module whose ``exports`` and ``modinfo`` raise: an error in Python code the C helpers run."""

    name = "x"
    path = "x.ko"
    imports = ()

    @property
    def exports(self) -> Any:
        raise _Boom("exports")

    @property
    def modinfo(self) -> Any:
        raise _Boom("modinfo")


def test_errors_raised_in_c_reach_the_caller(trie: ModuleType, pure: Callable[[bool], None],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A TypeError raised inside a C call (or by Python code it runs) propagates: the Python twin
    does not run, so no error there becomes the slow path unseen (before native.DECLINED these
    were TypeErrors that the callers took for a declined input)."""
    pure(False)
    import moddeps.kmodhash as kh
    import moddeps.resolve as rs
    from moddeps.depmod import safety

    # a bucket count that is not an int: the C function's own TypeError, not the twin's
    calls = _spy(monkeypatch, kh, "py_hash_order")
    with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
        hash_order([b"a"], "512")  # type: ignore[arg-type]
    assert calls == []
    # a call that breaks the stub
    with pytest.raises(TypeError, match="select_modinfo"):
        trie.select_modinfo([], ["alias"])
    with pytest.raises(TypeError, match="prefix"):
        trie.resolve_exports([], Export, 5, {})
    # an exception from Python code the C code runs (an attribute)
    boom: Any = _Exploding()
    calls = _spy(monkeypatch, rs, "_bind_py")
    with pytest.raises(_Boom, match="exports"):
        resolve([boom], ["x.ko"])
    assert calls == []
    calls = _spy(monkeypatch, safety, "_sanitize")
    with pytest.raises(_Boom, match="modinfo"):
        safety.sanitize([boom])
    assert calls == []


def test_symbol_refs_stand_for_the_tuple_of_pairs() -> None:
    from moddeps.resolve import SymbolRefs

    refs = SymbolRefs([("a", "b"), (), ("c",)])
    pairs = ((0, "a"), (0, "b"), (2, "c"))
    assert refs == pairs and pairs == refs
    assert refs == SymbolRefs([("a", "b"), (), ("c",), ()])  # the pairs compare, not the modules
    assert refs != SymbolRefs([("a",), ("b",), ("c",)])
    assert refs != list(pairs)  # as a tuple: not equal to a list
    assert hash(refs) == hash(pairs)
    assert len(refs) == 3 and refs[1] == (0, "b") and refs[-1] == (2, "c") and refs[1:] == pairs[1:]
    assert list(refs) == list(pairs) and (2, "c") in refs and (1, "c") not in refs
    assert set(refs) == set(pairs) and repr(refs) == repr(pairs)
    assert SymbolRefs([]) == () and not SymbolRefs([(), ()])


@FAST
@given(module_arrays(), st.booleans())
def test_resolve_unknown_pairs(trie: ModuleType, modules: list[Module], weak_known: bool) -> None:
    """Every import (as kmod reads it) that neither a module nor the kernel table has, unless weak."""
    kernel = {"a": 0} if weak_known else None
    res = resolve(modules, [m.path for m in modules], ResolveOptions(kernel_table=kernel))
    seen = kmod_view(modules)
    want = tuple((i, imp.name) for i, m in enumerate(seen) for imp in m.imports
                 if not imp.weak and lookup_name(imp.name, None) not in res.owners)
    assert res.unknown == want


@FAST
@given(st.lists(st.binary(max_size=20), max_size=30))
def test_first_non_ascii(trie: ModuleType, values: list[bytes]) -> None:
    want = next((i for i, v in enumerate(values) if any(b >= 0x80 for b in v)), -1)
    assert trie.first_non_ascii(values) == want == outputs._first_non_ascii_py(values)
    assert trie.first_non_ascii([*values, "x"]) is DECLINED
    assert trie.first_non_ascii(tuple(values)) is DECLINED


@st.composite
def graphs(draw: st.DrawFn) -> tuple[tuple[int, ...], ...]:
    """Dependency lists of any shape, cycles and self-edges included."""
    n = draw(st.integers(0, 12))
    if n == 0:
        return ()
    return tuple(tuple(draw(st.lists(st.integers(0, n - 1), unique=True, max_size=4))) for _ in range(n))


@FAST
@given(st.one_of(dags(), graphs()))
def test_number(trie: ModuleType, deps: tuple[tuple[int, ...], ...]) -> None:
    from moddeps.resolve import _numbering_py, numbering

    want = _numbering_py(deps)
    assert trie.number(deps) == want == numbering(deps)
    assert trie.number(list(deps)) == want


def test_number_declines_what_python_decides(trie: ModuleType) -> None:
    assert trie.number(((1,), ())) == (0, 1)
    for bad in [((2,), ()), ((-1,), ()), ([1], ()), (("1",), ())]:
        assert trie.number(bad) is DECLINED, bad
    assert trie.number(iter([()])) is DECLINED


def test_line_breaks_in_long_values(trie: ModuleType) -> None:
    """Every position of a long value, and the bytes around the four line breaks (9, 14, 0x8a, 0xff)."""
    values: list[str | bytes] = []
    for n in (7, 8, 9, 15, 16, 17, 40):
        for pos in range(n):
            for ch in (9, 10, 11, 12, 13, 14, 0, 0x8A, 0xFF):
                raw = bytearray(b"pci:v00008086d*" * 3)[:n]
                raw[pos] = ch
                values.append(bytes(raw))
                values.append(fsdecode(bytes(raw)))
    want = [i for i, v in enumerate(values)
            if any((c.encode() if isinstance(v, bytes) else c) in v for c in LINE_BREAKS)]
    assert trie.line_breaks(values) == want
    assert want  # (both kinds of value met)


def test_check_7bit_with_a_pool_of_values() -> None:
    """The pool (every value one of its names) is looked at instead of the values: a non-ASCII name no
    value holds raises nothing; otherwise the first non-ASCII key or value, in insertion order, is named."""
    names = [b"a", b"b\xe9"]
    outputs._check_7bit([b"k1", b"k2"], [b"a", b"a"], names)
    with pytest.raises(outputs.NonAsciiIndexString, match=r"=0xe9 .*\nb\udce9$"):
        outputs._check_7bit([b"k1", b"k2\xff"], [b"a", b"b\xe9"][::-1], names)
    with pytest.raises(outputs.NonAsciiIndexString, match=r"=0xff .*\nk2\udcff$"):
        outputs._check_7bit([b"k1", b"k2\xff"], [b"a", b"b\xe9"], names)
    with pytest.raises(outputs.NonAsciiIndexString, match=r"=0xff"):
        outputs._check_7bit(iter([b"k\xff"]), iter([b"a"]))


@pytest.mark.parametrize("shown", [["kernel/d\udce9/a.ko", "kernel/b.ko"], ["kernel/a.ko", "kernel/d\udce9/b.ko"]])
def test_kmod34_stops_at_a_non_ascii_path_in_modules_dep_bin(shown: list[str]) -> None:
    """The 7-bit check of the dep lines looks at the shown paths they are made of: a non-ASCII
    directory (the module's name ASCII) is still found, in the first line that holds it."""
    from moddeps.kmodversion import KmodTarget

    mods = [Module("a", shown[0], imports=(Import("sb", None),)), Module("b", shown[1], exports=(Export("sb", None),))]
    res = resolve(mods, shown)
    job = outputs.RenderJob(outputs.WriterInput(mods, shown, res), "/nonexistent", KmodTarget(34, "test"))
    row = next(r for r in outputs.TABLE if r.name == "modules.dep.bin")
    first = "kernel/d\udce9/a.ko: kernel/b.ko" if "\udce9" in shown[0] else "kernel/a.ko: kernel/d\udce9/b.ko"
    with pytest.raises(outputs.NonAsciiIndexString, match=r"=0xe9 - only 7-bit ASCII is supported:\n" + re.escape(first)
                       ):
        row.write(job, [])
    assert row.write(dataclasses.replace(job, kmod=KmodTarget(30, "test")), [])  # kmod 30 writes it


NAMES = st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=12)


@FAST
@given(st.lists(st.lists(st.sampled_from(["a", "b", "printk", "kmalloc", "é", ""]) | NAMES, max_size=8), max_size=30))
def test_joined_names_as_the_twin(trie: ModuleType, groups: list[list[str]]) -> None:
    from moddeps.depmod.incremental import _name_list

    # the same name as objects of their own, as records decoded apart hold them
    tuples = [tuple("".join(list(n)) if i % 2 else n for i, n in enumerate(g)) for g in groups]
    want = _name_list(n for t in tuples for n in t)
    assert trie.joined_names(tuples) == want == trie.joined_names(tuple(tuples))
    if want:
        assert want[0] == want[-1] == "\0" and len(want[1:-1].split("\0")) == len({n for t in tuples for n in t})


def test_joined_names_many_and_declined(trie: ModuleType) -> None:
    many = [tuple(f"sym{(i * 7 + j) % 5000}" for j in range(40)) for i in range(3000)]  # (past every table growth)
    from moddeps.depmod.incremental import _name_list

    assert trie.joined_names(many) == _name_list(n for t in many for n in t)
    assert trie.joined_names([]) == "" and trie.joined_names([(), ()]) == ""
    assert trie.joined_names([["a"]]) is DECLINED  # (a list, not a tuple)
    assert trie.joined_names([("a", b"b")]) is DECLINED

    class Name(str):
        pass

    assert trie.joined_names([(Name("a"),)]) is DECLINED
