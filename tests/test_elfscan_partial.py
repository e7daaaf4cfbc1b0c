"""The C reader of module files read in part (``_elfscan.parse_file``) and its import table.

``parse_file(path, ...)`` must give exactly ``parse(data)`` plus ``sig_facts(data)`` of the
file's bytes -- or DECLINED where either declines, or where the file cannot be read as a
whole would be -- while reading only some of the file.  With ``fill`` the buffer starts
filled with that byte and only the ranges the parser asks for are read (no page rounding,
no merging), so a byte the parser reads without having read it first changes the result:
every input below is checked with three fills.

The scan's serial reader hands ``.ko`` files to it (``elfreader.PlainFile``); the records
and errors must be those of reading the whole file.  And with a memo, the C reader finds
equal imports through a table of its own (``import_record``): the objects must be the
memo's, whichever memo comes.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from moddeps import process
from moddeps.model import Export as MExport
from moddeps.model import Import
from moddeps.native import DECLINED
from moddeps.read import elfreader, pool
from moddeps.read.compression import DEFAULT_MAX_SIZE
from moddeps.read.elfreader import load_bytes
from moddeps.read.scan import scan_files

from . import kobuild
from .fuzz import fuzz
from .fuzz.test_fuzz_reader import mutated
from .kobuild import Export, Sym, build_ko, compress
from .leakcheck import heap_growth
from .sigtools import RSA_DONOR, SHA1_DONOR, resigned

# (the C parser as that module finds it: skipped there without a build, failed under CI)
from .test_native_elfscan import CORRUPTIONS, HOSTILE_SEEDS, SAMPLE_KOS, WELL_FORMED, Build, native, rich

FILLS = (0x00, 0xFF, 0x41)


def expected(data: bytes) -> object:
    """What parse_file must return for a file holding ``data``."""
    got = native.parse(data, MExport, Import)
    sig = native.sig_facts(data)
    if got is DECLINED or sig is DECLINED or len(data) <= 64:
        return DECLINED
    return (*got, sig)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="moddeps-partial-") as d:
        yield Path(d)


def check_file(path: Path, data: bytes, *, must_read: bool = False) -> object:
    """parse_file of ``path`` (holding ``data``) against parse + sig_facts, plain and with each fill;
    and parse_files: the Module that parse_module makes of it, or not read (DECLINED)."""
    want = expected(data)
    if must_read:
        assert want is not DECLINED
    for fill in (None, *FILLS):
        kw: dict[str, Any] = {} if fill is None else {"fill": fill}
        got = native.parse_file(str(path), DEFAULT_MAX_SIZE, MExport, Import, None, **kw)
        if want is DECLINED:
            assert got is DECLINED, f"fill {fill}: read what parse() or sig_facts() declines"
        else:
            assert got is not DECLINED, f"fill {fill}: declined a module parse() reads"
            assert repr(got) == repr(want), f"fill {fill}"
    if not elfreader.reads_in_part():
        return want
    made, started, elapsed = elfreader.read_plain_files([(str(path), "kernel/m-1.ko")], 0, 1, None)
    assert elapsed is None
    if want is DECLINED:
        assert made == [] and isinstance(started, float)
    else:
        [m] = made
        assert started is None
        assert repr(m) == repr(elfreader.parse_module(elfreader.PlainFile(str(path)), "kernel/m-1.ko"))
    return want


def check(scratch: Path, data: bytes, *, must_read: bool = False) -> object:
    path = scratch / "m.ko"
    path.write_bytes(data)
    return check_file(path, data, must_read=must_read)


#: sections that put pages between the export tables and the symbol table
PADDING = [(".data.pad", bytes(3 * 4096 + 123)), (".rodata.pad", b"\xAA" * 20000)]


def spread(b: Build, **kw: Any) -> bytes:
    """A module whose parts lie pages apart (see PADDING)."""
    return b(extra_sections=[*PADDING, *kw.pop("extra_sections", [])], **kw)


# --------------------------------------------------------------------------
# The same result as parse() + sig_facts() of the whole file
# --------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLE_KOS, ids=lambda p: p.name)
def test_sample_modules(scratch: Path, path: Path) -> None:
    data, _kind = load_bytes(path)
    check(scratch, data, must_read=True)


@pytest.mark.parametrize("case", sorted(WELL_FORMED))
@pytest.mark.parametrize("layout", [(64, "little"), (32, "big")])
@pytest.mark.parametrize("padded", [False, True])
def test_well_formed_fixtures(scratch: Path, case: str, layout: tuple[int, str], padded: bool) -> None:
    b = Build(*layout)
    data = WELL_FORMED[case](b)
    if padded:  # the same module with 32 KB of padding sections between its parts
        make = WELL_FORMED[case]
        data = make(_Padded(b))
    check(scratch, data)


class _Padded(Build):
    """A Build that adds padding sections (see spread) to every module it makes."""

    def __init__(self, b: Build) -> None:
        super().__init__(b.bits, b.endian)

    def __call__(self, **kw: Any) -> bytes:
        return spread(Build(self.bits, self.endian), **kw)


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_fixtures(scratch: Path, case: str) -> None:
    for data in (rich(), rich(extra_sections=PADDING)):
        check(scratch, CORRUPTIONS[case](data))


def test_signed_modules(scratch: Path) -> None:
    """The appended signature (read from the file's end) gives sig_facts' result."""
    for donor in (RSA_DONOR, SHA1_DONOR):
        facts = check(scratch, donor.read_bytes(), must_read=True)
        assert isinstance(facts, tuple) and facts[8] is not None
        check(scratch, resigned(spread(Build(), exports=[Export(name="f", crc=1)]), donor), must_read=True)
    from moddeps.signature import _STRUCT, SIG_MAGIC

    x509 = rich() + b"signer" + b"\x01\x02" + b"SIG" + _STRUCT.pack(1, 4, 1, 6, 2, 3) + SIG_MAGIC
    assert check(scratch, x509) is DECLINED  # sig_facts declines a pre-4.3 signature


def test_namespaces_and_crcs_outside_the_sections_read_first(scratch: Path) -> None:
    """CRCs in a __kcrctab far from the rest, namespaces in a section of their own, a namespace
    string running past its section: read where the symbols point."""
    b = Build()
    data = b(exports=[Export(name=f"e{i}", crc=i, namespace=f"NS{i % 3}") for i in range(40)],
             extra_sections=[(".data.pad", bytes(50000)), (".rodata.ns", b"\0MYNS\0" + b"x" * 6000),
                             (".rodata.tail", b"TAIL\0")],
             extra_symbols=[Sym(name="__kstrtabns_e1", section=".rodata.ns", value=1),
                            Sym(name="__kstrtabns_e2", section=".rodata.ns", value=6)])
    got = check(scratch, data, must_read=True)
    assert isinstance(got, tuple) and {e.namespace for e in got[0]} >= {"MYNS"}


def test_a_module_larger_than_the_shared_buffer(scratch: Path) -> None:
    """A file above the shared buffer's bound (8 MiB) is read into a buffer of its own, then
    the shared one serves the next file again."""
    big = rich(extra_sections=[(".data.big", bytes(9 << 20)), *PADDING])
    check(scratch, big, must_read=True)
    check(scratch, rich(extra_sections=PADDING), must_read=True)


@pytest.mark.parametrize("seed", sorted(HOSTILE_SEEDS))
def test_truncated(scratch: Path, seed: str) -> None:
    data = HOSTILE_SEEDS[seed]()
    for n in sorted({*range(0, 200), *range(0, len(data) + 1, max(1, len(data) // 150)), len(data) - 1}):
        if n >= 0:
            check(scratch, data[:n])


@fuzz(150)
@given(mutated())
def test_mutated_modules(case: tuple[str, bytes]) -> None:
    with tempfile.TemporaryDirectory(prefix="moddeps-partial-") as d:
        check(Path(d), case[1])


# --------------------------------------------------------------------------
# Files that are not read: DECLINED, at once
# --------------------------------------------------------------------------


def test_what_cannot_be_read_in_part_is_declined(tmp_path: Path) -> None:
    data = rich()
    good = tmp_path / "m.ko"
    good.write_bytes(data)
    assert native.parse_file(str(good), len(data) - 1) is DECLINED  # over max_size
    assert native.parse_file(str(good), len(data)) is not DECLINED
    assert native.parse_file(os.fsencode(good), len(data)) is not DECLINED
    fifo = tmp_path / "f.ko"
    os.mkfifo(fifo)
    assert native.parse_file(str(fifo), DEFAULT_MAX_SIZE) is DECLINED  # opened without blocking, not regular
    assert native.parse_file(str(tmp_path), DEFAULT_MAX_SIZE) is DECLINED
    assert native.parse_file(str(tmp_path / "missing.ko"), DEFAULT_MAX_SIZE) is DECLINED
    small = tmp_path / "s.ko"
    small.write_bytes(data[:64])
    assert native.parse_file(str(small), DEFAULT_MAX_SIZE) is DECLINED
    with pytest.raises(TypeError):
        native.parse_file(str(good), DEFAULT_MAX_SIZE, None, None, [])  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        native.parse_file(3, DEFAULT_MAX_SIZE)  # type: ignore[call-overload]


def test_a_file_shorter_than_its_size_is_declined() -> None:
    """A read that falls short of st_size (here a sysfs attribute: 4096 bytes by stat, fewer by
    read; a file truncated while it is read does the same) gives up instead of parsing zeros."""
    for path in ("/sys/kernel/mm/transparent_hugepage/enabled", "/sys/kernel/profiling", "/sys/power/state"):
        try:
            st = os.stat(path)
        except OSError:
            continue
        if st.st_size > 64 and len(Path(path).read_bytes()) < st.st_size:
            assert native.parse_file(path, DEFAULT_MAX_SIZE) is DECLINED
            return
    pytest.skip("no sysfs attribute to read")


# --------------------------------------------------------------------------
# Signals, threads, leaks
# --------------------------------------------------------------------------


class _Stop(Exception):
    pass


def test_a_signal_handler_that_raises_stops_the_read(tmp_path: Path) -> None:
    """The read timeout's SIGALRM interrupts a read (EINTR): the handler's exception comes out
    of parse_file, and a handler that returns lets the read go on with the same result."""
    if not hasattr(signal, "setitimer"):
        pytest.skip("no interval timer")
    path = tmp_path / "m.ko"
    data = spread(Build(), exports=[Export(name=f"e{i}", crc=i) for i in range(200)], undefined=["u"])
    path.write_bytes(data)
    want = expected(data)
    count = [0]

    def counting(signum: int, frame: object) -> None:
        count[0] += 1

    def raising(signum: int, frame: object) -> None:
        raise _Stop

    old = signal.signal(signal.SIGALRM, counting)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
        for _ in range(300):
            assert repr(native.parse_file(str(path), DEFAULT_MAX_SIZE, MExport, Import, None)) == repr(want)
        signal.setitimer(signal.ITIMER_REAL, 0)
        assert count[0] > 0
        signal.signal(signal.SIGALRM, raising)
        signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
        with pytest.raises(_Stop):
            for _ in range(100_000):
                native.parse_file(str(path), DEFAULT_MAX_SIZE, MExport, Import, None)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    # the buffer was given back: reading goes on
    assert repr(native.parse_file(str(path), DEFAULT_MAX_SIZE, MExport, Import, None)) == repr(want)


def test_threads_reading_at_once(tmp_path: Path) -> None:
    """parse_file lets go of the GIL while it reads: calls in several threads at once (one of them
    on the shared buffer, the others on buffers of their own) give each file's result."""
    files = []
    for i in range(4):
        data = spread(Build(), exports=[Export(name=f"t{i}_{k}", crc=k) for k in range(50)], undefined=[f"u{i}"])
        path = tmp_path / f"m{i}.ko"
        path.write_bytes(data)
        files.append((path, repr(expected(data))))
    bad: list[str] = []

    def work(k: int) -> None:
        for j in range(150):
            path, want = files[(k + j) % len(files)]
            if repr(native.parse_file(str(path), DEFAULT_MAX_SIZE, MExport, Import, None)) != want:
                bad.append(str(path))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []


def test_no_leaks(tmp_path: Path) -> None:
    """Repeated calls (read, declined, refused, with a memo) keep the heap flat."""
    paths = []
    for i, data in enumerate([rich(), rich(32, "big"), build_ko(with_symtab=False), b"\x7fELF" + b"\0" * 100,
                              RSA_DONOR.read_bytes()]):
        p = tmp_path / f"m{i}.ko"
        p.write_bytes(data)
        paths.append(str(p))
    memo: dict[Any, Any] = {}

    def run(n: int) -> None:
        for _ in range(n):
            for p in paths:
                native.parse_file(p, DEFAULT_MAX_SIZE)
                native.parse_file(p, DEFAULT_MAX_SIZE, MExport, Import, memo)
            native.parse_file(str(tmp_path / "missing.ko"), DEFAULT_MAX_SIZE)
            with pytest.raises(TypeError):
                native.parse_file(paths[0], DEFAULT_MAX_SIZE, None, None, [])  # type: ignore[call-overload]

    grown = heap_growth(run, warm=50, settle=20, rounds=500)
    assert grown < 64 * 1024, f"the heap grew by {grown} bytes over 5,500 calls"


# --------------------------------------------------------------------------
# The memo's imports
# --------------------------------------------------------------------------


def _imports_of(result: object) -> tuple[Import, ...]:
    assert isinstance(result, tuple)
    imports: tuple[Import, ...] = result[1]
    return imports


@pytest.mark.parametrize("reader", ["parse", "parse_file"])
def test_imports_are_the_memos_own(tmp_path: Path, reader: str) -> None:
    """With a memo, every import returned is the memo's record of that value -- one the memo
    already held (made by from_wire or by another reader), or the first one made -- and
    another memo gets its own records, also when the memos alternate."""
    data = rich(undefined=["printk", ("maybe_there", True), "kfree", "fresh", "\u00e9t\u00e9"],
                versions=[("module_layout", 1), ("printk", 2), ("kfree", 3)])
    path = tmp_path / "m.ko"
    path.write_bytes(data)

    def read(memo: dict[Any, Any] | None) -> tuple[Import, ...]:
        if reader == "parse":
            return _imports_of(native.parse(data, MExport, Import, memo))
        return _imports_of(native.parse_file(str(path), DEFAULT_MAX_SIZE, MExport, Import, memo))

    plain = read(None)
    held = Import("printk", 2, False, False, False)
    first: dict[Any, Any] = {held: held}
    second: dict[Any, Any] = {}
    for _ in range(3):
        for memo in (first, second, first):
            got = read(memo)
            assert got == plain
            assert all(memo[i] is i for i in got)
        assert next(i for i in read(first) if i == held) is held
        assert not any(a is b for a, b in zip(read(first), read(second)))
    native.release()
    again = read(second)
    assert all(second[i] is i for i in again)
    assert read(None) == plain and not any(a is b for a, b in zip(read(None), read(None)))


def test_one_memo_over_many_modules_shares_equal_imports(tmp_path: Path) -> None:
    """Many modules, one memo: equal imports are one object, as through the memo alone, and
    the table grows past its first size (1,024 slots) without losing any."""
    memo: dict[Any, Any] = {}
    seen: dict[Import, Import] = {}
    for k in range(12):
        data = build_ko(undefined=[f"sym{j}" for j in range(k * 100, k * 100 + 300)],
                        versions=[(f"sym{j}", j) for j in range(k * 100, k * 100 + 300, 3)])
        path = tmp_path / f"m{k}.ko"
        path.write_bytes(data)
        for i in _imports_of(native.parse_file(str(path), DEFAULT_MAX_SIZE, MExport, Import, memo)):
            assert seen.setdefault(i, i) is i
    assert len(memo) == len(seen) > 1024


# --------------------------------------------------------------------------
# Through the scan's reader
# --------------------------------------------------------------------------


def _tree(root: Path) -> list[tuple[str, str]]:
    """.ko files of every kind the scan's reader meets: plain, padded, signed, broken, compressed
    under a .ko name, a FIFO, a directory, too short, and a sample module."""
    root.mkdir(parents=True)
    files: dict[str, bytes | Callable[[Path], None]] = {
        "plain.ko": rich(),
        "padded.ko": spread(Build(), exports=[Export(name="p", crc=1, namespace="NS")], undefined=["u"]),
        "signed.ko": RSA_DONOR.read_bytes(),
        "bad-magic.ko": b"\x7fELG" + bytes(200),
        "bad-class.ko": kobuild.corrupt_header(rich(), "EI_CLASS", 7),
        "no-symtab.ko": build_ko(with_symtab=False),
        "xz-inside.ko": compress(rich(), "xz"),
        "broken-xz.ko": compress(rich(), "xz")[:-9],
        "short.ko": b"\x7fELF",
        "sample.ko": load_bytes(SAMPLE_KOS[0])[0],
        "fifo.ko": lambda p: os.mkfifo(p),
        "dir.ko": lambda p: p.mkdir(),
    }
    for name, what in files.items():
        if callable(what):
            what(root / name)
        else:
            (root / name).write_bytes(what)
    return [(str(root / name), f"kernel/{name}") for name in sorted(files)]


def test_scan_records_and_errors_are_those_of_whole_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    items = _tree(tmp_path / "t")
    got = pool.read_modules(items, jobs=1)
    monkeypatch.setattr(pool, "reads_in_part", lambda: False)
    want = pool.read_modules(items, jobs=1)
    assert [m.to_wire() for m in got] == [m.to_wire() for m in want]
    errors = {m.path: m.error for m in got}
    assert errors["kernel/plain.ko"] is None and errors["kernel/xz-inside.ko"] is None
    assert "not a regular file (a FIFO)" in (errors["kernel/fifo.ko"] or "")
    assert [m.compression for m in got if m.path == "kernel/xz-inside.ko"] == ["xz"]
    assert all(errors[p] for p in ("kernel/bad-magic.ko", "kernel/broken-xz.ko", "kernel/short.ko", "kernel/dir.ko"))
    # one file, as info and compat read it
    for (path, shown), m in zip(items, want):
        assert pool.read_module_bounded(path, shown).to_wire() == m.to_wire()
        assert scan_files([path], jobs=1)[0].error == m.error


def test_the_scan_reads_plain_files_in_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The serial reader gives .ko files to parse_file, and reads none of them whole unless it declines."""
    if not elfreader.reads_in_part():
        pytest.skip("the C reader is switched off (MODDEPS_PURE)")
    items = _tree(tmp_path / "t")
    whole: list[str] = []
    real = elfreader.PlainFile.load

    def load(self: elfreader.PlainFile) -> tuple[bytes, str | None]:
        whole.append(os.path.basename(self.path))
        return real(self)

    monkeypatch.setattr(elfreader.PlainFile, "load", load)
    pool.read_modules(items, jobs=1)
    assert sorted(whole) == ["bad-class.ko", "bad-magic.ko", "broken-xz.ko", "dir.ko", "fifo.ko", "no-symtab.ko",
                             "short.ko", "xz-inside.ko"]


# --------------------------------------------------------------------------
# Runs of files in one call: parse_files (the scan's serial reader)
# --------------------------------------------------------------------------


def _plain_files(root: Path, count: int) -> list[tuple[str, str]]:
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(count):
        path = root / f"p{i}.ko"
        path.write_bytes(spread(Build(), exports=[Export(name=f"r{i}", crc=i)], undefined=[f"u{i % 3}"]))
        items.append((str(path), f"kernel/p-{i}.ko"))
    return items


def _parse_files(items: list[tuple[str, str]], start: int = 0, stop: int | None = None, **kw: Any) -> Any:
    return native.parse_files(items, start, len(items) if stop is None else stop, DEFAULT_MAX_SIZE, elfreader.Module,
                              MExport, Import, elfreader.SignatureFacts, None, **kw)


def test_runs_stop_where_parse_file_declines(tmp_path: Path) -> None:
    """parse_files reads items until one that parse_file declines or that is not a .ko (the
    caller reads that one and calls again); each record is parse_module's of a PlainFile."""
    if not elfreader.reads_in_part():
        pytest.skip("the C reader is switched off (MODDEPS_PURE)")
    items = _tree(tmp_path / "t")
    made: list[Any] = []
    stops = []
    i = 0
    while i < len(items):
        got, started, elapsed = elfreader.read_plain_files(items, i, len(items), None)
        assert elapsed is None
        made += got
        i += len(got)
        if i < len(items):
            assert isinstance(started, float)
            stops.append(os.path.basename(items[i][0]))
            i += 1
    assert sorted(stops) == ["bad-class.ko", "bad-magic.ko", "broken-xz.ko", "dir.ko", "fifo.ko", "no-symtab.ko",
                             "short.ko", "xz-inside.ko"]
    read = [(p, s) for p, s in items if os.path.basename(p) not in stops]
    assert [repr(m) for m in made] == [repr(elfreader.parse_module(elfreader.PlainFile(p), s)) for p, s in read]
    # a name that is not a .ko's is never read here (whatever the file holds), and the stop is kept
    assert _parse_files(read, 0, 0)[0] == [] and len(_parse_files(read, 1, 3)[0]) == 2
    link = tmp_path / "plain.ko.xz"
    link.symlink_to(read[0][0])
    assert _parse_files([(str(link), "kernel/plain.ko.xz")])[0] == []


@pytest.mark.parametrize("shown", ["kernel/a-b-c.ko", "x.ko", "kernel/foo.bar.ko", "/abs/dir.d/mod-x",
                                   "kernel/\u00e9-t\u00e9.ko", "kernel/s\udcff-x.ko", "kernel/.hidden.ko",
                                   "dir/", "kernel/no-dot", "a/b/c-d.e-f.ko"])
def test_records_are_made_as_parse_module_makes_them(tmp_path: Path, shown: str) -> None:
    """The record made in C (no __init__): name (modname_from_path of the shown path), path,
    the fields, types, equality and hash of parse_module's."""
    [(path, _)] = _plain_files(tmp_path, 1)
    [m], _, _ = _parse_files([(path, shown)])
    want = elfreader.parse_module(elfreader.PlainFile(path), shown)
    assert type(m) is elfreader.Module and m.name == elfreader.modname_from_path(shown) and m.path is shown
    assert m == want and hash(m) == hash(want) and repr(m) == repr(want) and m.to_wire() == want.to_wire()
    signed = tmp_path / "s.ko"
    signed.write_bytes(RSA_DONOR.read_bytes())
    [s], _, _ = _parse_files([(str(signed), shown)])
    assert type(s.signature) is elfreader.SignatureFacts
    assert s == elfreader.parse_module(elfreader.PlainFile(str(signed)), shown)


def test_parse_files_refuses_what_does_not_fit_its_stub(tmp_path: Path) -> None:
    items = _plain_files(tmp_path, 2)
    for bad in ([("a.ko",)], [("a.ko", 3)], [(b"a.ko", "a.ko")], ["a.ko"]):
        with pytest.raises(TypeError):
            _parse_files(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        native.parse_files(items, 0, 2, DEFAULT_MAX_SIZE, tuple, MExport, Import, None, None)
    with pytest.raises(TypeError):  # a timeout needs the exception its SIGALRM handler raises
        _parse_files(items, timeout=1.0)
    for timeout in (-1.0, float("nan"), 2e9):
        with pytest.raises(ValueError):
            _parse_files(items, timeout=timeout)
    with pytest.raises(ValueError):
        _parse_files(items, 2, 1)
    assert _parse_files(items, 1, 99)[0][0].name == "p_1"


class _Alarm(Exception):
    pass


@pytest.fixture
def alarm_handler() -> Iterator[None]:
    """A SIGALRM handler raising _Alarm, as pool's _alarm_handler installs _ReadTimeout."""
    if not hasattr(signal, "setitimer"):
        pytest.skip("no interval timer")

    def raising(signum: int, frame: object) -> None:
        raise _Alarm

    old = signal.signal(signal.SIGALRM, raising)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_a_file_that_never_answers_runs_out_of_its_own_time(tmp_path: Path, alarm_handler: None) -> None:
    """One timer for the whole call, yet each file has its own deadline: the read of the file
    that never answers (stall) is given up when *its* time has run out -- the timer, set at the
    first file's deadline, fires earlier and is set again -- the files before it are read, and
    the timer is cleared on return."""
    items = _plain_files(tmp_path, 40)
    timeout = 0.05
    made, started, elapsed = _parse_files(items, timeout=timeout, alarm=_Alarm, stall=30)
    assert [m.name for m in made] == [f"p_{i}" for i in range(30)]
    assert isinstance(started, float) and isinstance(elapsed, float)
    assert elapsed >= timeout
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    # the next call goes on from there
    rest, started, elapsed = _parse_files(items, 31, timeout=timeout, alarm=_Alarm)
    assert [m.name for m in rest] == [f"p_{i}" for i in range(31, 40)] and started is elapsed is None
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_timer_expiries_before_a_deadline_change_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGALRMs that come before the deadline of the file being read (here sent by another thread,
    as the expiry set for an earlier file's deadline comes) are taken and the reading goes on: the
    records are those of a call without a timeout.

    At one signal every 0.2 ms the handler also runs inside code whose exceptions nobody can
    take (a finalizer the garbage collector calls in the middle of the read): that ``_Alarm`` goes
    to ``sys.unraisablehook``.  The hook here is a builtin (``list.append`` runs no bytecode, so
    no signal handler runs inside it, as one did in pytest's own hook on a CI run); every
    exception it took must be one of the handler's."""
    if not hasattr(signal, "setitimer"):
        pytest.skip("no interval timer")
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    items = _plain_files(tmp_path, 200)
    want = [repr(m) for m in _parse_files(items)[0]]
    inside = [False]
    taken = [0]
    done = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if inside[0]:  # as pool's handler, but only around the call (the sender does not stop)
            taken[0] += 1
            raise _Alarm

    def send() -> None:
        while not done.is_set():
            os.kill(os.getpid(), signal.SIGALRM)
            done.wait(0.0002)

    def call() -> Any:
        while True:
            inside[0] = True
            try:
                return _parse_files(items, timeout=30.0, alarm=_Alarm)
            except _Alarm:  # raised after the call returned, before this frame took the result
                continue
            finally:
                inside[0] = False

    old = signal.signal(signal.SIGALRM, handler)
    sender = threading.Thread(target=send)
    sender.start()
    try:
        got = [call() for _ in range(5)]
    finally:
        done.set()
        sender.join()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert taken[0] > 0
    for made, started, elapsed in got:
        assert [repr(m) for m in made] == want and started is elapsed is None
    assert [u.exc_type for u in unraisable if u.exc_type is not _Alarm] == []


def test_another_signal_handlers_exception_comes_out(tmp_path: Path) -> None:
    """A handler raising something else than ``alarm``: that exception, and the timer cleared."""
    if not hasattr(signal, "setitimer"):
        pytest.skip("no interval timer")
    items = _plain_files(tmp_path, 5)

    def raising(signum: int, frame: object) -> None:
        raise _Stop

    old = signal.signal(signal.SIGALRM, raising)
    try:
        with pytest.raises(_Stop):
            _parse_files(items, timeout=0.02, alarm=_Alarm, stall=3)
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert len(_parse_files(items)[0]) == 5  # the buffer was given back


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_serial_scan_gives_up_a_file_that_never_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            jobs: int) -> None:
    """Through read_modules: the module is unreadable with the read timeout's message (the one of
    pool._read_one), the others are read; progress and the cache's sink see every module.  With
    two jobs (a core to spare) the loader thread reads ahead, and it is the one stuck."""
    if not elfreader.reads_in_part() or not hasattr(signal, "setitimer"):
        pytest.skip("the C reader is switched off (MODDEPS_PURE), or no interval timer")
    items = _plain_files(tmp_path, 300)
    real = native.parse_files
    stalls: list[int] = []

    def stalling(items: Any, start: int, stop: int, *args: Any, **kw: Any) -> Any:
        if start <= 200 < stop:
            stalls.append(start)
            kw["stall"] = 200
        aheads.append(kw.get("ahead", False))
        return real(items, start, stop, *args, **kw)

    aheads: list[bool] = []
    monkeypatch.setattr(pool, "_spare_core", lambda: True)

    monkeypatch.setattr(native, "parse_files", stalling)
    monkeypatch.setenv("MODDEPS_READ_TIMEOUT", "0.05")
    seen: list[int] = []
    progress: list[tuple[int, int]] = []
    got = pool._read_uncached(items, jobs, lambda done, total: progress.append((done, total)),
                              lambda i, m: seen.append(i))
    assert stalls and set(aheads) == {jobs > 1}
    assert sorted(seen) == list(range(300))
    assert progress[-1] == (300, 300) and [d for d, _ in progress] == sorted(d for d, _ in progress)
    bad = got[200]
    assert bad.name == "p_200" and bad.path == "kernel/p-200.ko" and bad.exports == ()
    assert bad.error is not None and bad.error.startswith("reading took longer than 0.05 s (")
    assert bad.error.endswith(" s, $MODDEPS_READ_TIMEOUT); given up") and bad.kmod_error
    assert [m.error for i, m in enumerate(got) if i != 200] == [None] * 299
    monkeypatch.setattr(pool, "reads_in_part", lambda: False)
    assert [m.to_wire() for i, m in enumerate(pool._read_uncached(items, 1)) if i != 200] == [
        m.to_wire() for i, m in enumerate(got) if i != 200]


# --------------------------------------------------------------------------
# parse_files with a loader thread (ahead=True)
# --------------------------------------------------------------------------


def _read_all(items: list[tuple[str, str]], **kw: Any) -> tuple[list[Any], list[int], dict[Any, Any]]:
    """Every record parse_files makes of items, call after call (each stop skipped), the stops,
    and the memo."""
    memo: dict[Any, Any] = {}
    made: list[Any] = []
    stops = []
    i = 0
    while i < len(items):
        got, _started, elapsed = native.parse_files(items, i, len(items), DEFAULT_MAX_SIZE, elfreader.Module,
                                                    MExport, Import, elfreader.SignatureFacts, memo, **kw)
        assert elapsed is None
        made += got
        i += len(got)
        if i < len(items):
            stops.append(i)
            i += 1
    return made, stops, memo


def test_ahead_gives_the_records_of_the_serial_read(tmp_path: Path) -> None:
    """With the loader thread, the same records, stops (files declined in the middle of a run:
    a FIFO, a directory, a missing file, broken ones) and memo as without it, the equal imports
    one object; many small and padded (read in part) files, more than the ring holds."""
    if not elfreader.reads_in_part():
        pytest.skip("the C reader is switched off (MODDEPS_PURE)")
    plain = _plain_files(tmp_path / "p", 80)
    padded = tmp_path / "padded"
    padded.mkdir()
    for i in range(0, 80, 9):  # larger than a whole first read: read in part
        path = padded / f"q{i}.ko"
        path.write_bytes(spread(Build(), exports=[Export(name=f"q{i}", crc=i)], undefined=["u1", "u2"]))
        plain.insert(i, (str(path), f"kernel/q-{i}.ko"))
    items = plain[:40] + _tree(tmp_path / "t") + [(str(tmp_path / "missing.ko"), "kernel/missing.ko")] + plain[40:]
    serial, stops, memo = _read_all(items)
    ahead, ahead_stops, ahead_memo = _read_all(items, ahead=True)
    assert len(stops) == 9 and ahead_stops == stops
    assert [repr(m) for m in ahead] == [repr(m) for m in serial]
    assert [m.to_wire() for m in ahead] == [m.to_wire() for m in serial]
    assert sorted(map(repr, ahead_memo)) == sorted(map(repr, memo))
    first = {}
    for m in ahead:
        for imp in m.imports:
            assert first.setdefault(imp, imp) is imp and ahead_memo[imp] is imp


def test_ahead_a_loader_that_never_answers(tmp_path: Path, alarm_handler: None) -> None:
    """The loader stuck before a file (stall): the main thread gives that file up when its time
    runs out, as without the loader; the files before it are read, the timer cleared, and the
    next call (another loader) goes on."""
    items = _plain_files(tmp_path, 60)
    timeout = 0.05
    made, started, elapsed = _parse_files(items, timeout=timeout, alarm=_Alarm, stall=40, ahead=True)
    assert [m.name for m in made] == [f"p_{i}" for i in range(40)]
    assert isinstance(started, float) and isinstance(elapsed, float) and elapsed >= timeout
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    rest, started, elapsed = _parse_files(items, 10, timeout=timeout, alarm=_Alarm, ahead=True)
    assert [m.name for m in rest] == [f"p_{i}" for i in range(10, 60)] and started is elapsed is None


def test_ahead_errors_come_out(tmp_path: Path) -> None:
    """An exception in the main thread while the loader reads (an item that does not fit the
    stub, another signal handler's exception while waiting for the loader) comes out, and the
    next call reads everything (the slots were given back)."""
    if not hasattr(signal, "setitimer"):
        pytest.skip("no interval timer")
    items = _plain_files(tmp_path, 50)
    with pytest.raises(TypeError):
        _parse_files([*items[:40], ("a.ko", 3), *items[40:]], ahead=True)  # type: ignore[list-item]

    def raising(signum: int, frame: object) -> None:
        raise _Stop

    old = signal.signal(signal.SIGALRM, raising)
    try:
        with pytest.raises(_Stop):
            _parse_files(items, timeout=0.02, alarm=_Alarm, stall=35, ahead=True)
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert [repr(m) for m in _parse_files(items, ahead=True)[0]] == [repr(m) for m in _parse_files(items)[0]]


@pytest.mark.parametrize("ahead", [False, True])
def test_parse_files_does_not_leak(tmp_path: Path, ahead: bool) -> None:
    items = [*_plain_files(tmp_path, 40 if ahead else 4), (str(tmp_path / "missing.ko"), "kernel/missing.ko")]
    items += _tree(tmp_path / "t")
    memo: dict[Any, Any] = {}

    def run(n: int) -> None:
        for _ in range(n):
            i = 0
            while i < len(items):
                made, _s, _e = native.parse_files(items, i, len(items), DEFAULT_MAX_SIZE, elfreader.Module, MExport,
                                                  Import, elfreader.SignatureFacts, memo, ahead=ahead,
                                                  packed=[] if i % 2 else None)
                i += len(made) + 1
            with pytest.raises(TypeError):
                _parse_files([("a.ko", 1)])  # type: ignore[list-item]

    grown = heap_growth(run, warm=20, settle=10, rounds=200)
    assert grown < 64 * 1024, f"the heap grew by {grown} bytes over 200 runs"


@pytest.mark.parametrize("ahead", [False, True])
def test_packed_records_are_those_pack_makes(tmp_path: Path, ahead: bool) -> None:
    """parse_files(packed=[...]) gives each module's scan-cache record as it makes the module:
    pack()'s bytes, one per module made, in order (with the loader thread or without)."""
    from moddeps.read import recordcodec

    if not elfreader.reads_in_part():
        pytest.skip("the C reader is switched off (MODDEPS_PURE)")
    items = _plain_files(tmp_path, 40)
    packed: list[Any] = []
    made, _, _ = _parse_files(items, 3, 40, ahead=ahead, packed=packed)
    assert len(made) == 37 and packed == [recordcodec.pack(m) for m in made]
    assert all(type(r) is bytes for r in packed)
    with pytest.raises(TypeError):
        _parse_files(items, packed=())


def test_a_first_run_stores_the_records_the_reader_packed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """read_modules with a cache hands the C reader's records to put_many (pack is not called
    again for them), and what is stored reads back as the modules read."""
    from moddeps.read import cache as cache_mod
    from moddeps.read import pool, recordcodec

    if not elfreader.reads_in_part():
        pytest.skip("the C reader is switched off (MODDEPS_PURE)")
    items = _plain_files(tmp_path / "m", 70)
    handed: list[Any] = []
    real_put = cache_mod.ScanCache.put_many

    def put_many(self: Any, entries: Any) -> None:
        handed.extend(entries)
        real_put(self, entries)

    monkeypatch.setattr(cache_mod.ScanCache, "put_many", put_many)
    c = cache_mod.ScanCache(str(tmp_path / "c.db"))
    got = pool.read_modules(items, jobs=1, cache=c)
    c.close()
    assert len(handed) == 70 and all(len(e) == 4 and e[3] == recordcodec.pack(e[2]) for e in handed)
    c = cache_mod.ScanCache(str(tmp_path / "c.db"))
    assert c.get_many([(cache_mod.file_key(p), s) for p, s in items]) == got
    c.close()


@pytest.mark.parametrize("ours", [False, True])
def test_a_read_that_filled_the_cache_trims_the_heap_of_a_process_moddeps_owns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ours: bool) -> None:
    from moddeps import native
    from moddeps.read import cache as cache_mod
    from moddeps.read import pool

    if native.load("_elfscan") is None:
        pytest.skip("the C reader is switched off (MODDEPS_PURE)")
    assert isinstance(native.load("_elfscan").trim_heap(), bool)  # type: ignore[union-attr]
    trims: list[int] = []

    class Fake:
        def trim_heap(self) -> bool:
            trims.append(1)
            return True

    monkeypatch.setattr(process, "_owned", ours)
    monkeypatch.setattr(native, "load", lambda name: Fake() if name == "_elfscan" else None)
    items = _plain_files(tmp_path / "m", 3)
    c = cache_mod.ScanCache(str(tmp_path / "c.db"))
    pool.read_modules(items, jobs=1, cache=c)  # (the reader took its own handle on _elfscan at import)
    pool.read_modules(items, jobs=1, cache=c)  # all from the cache: nothing filled, no trim
    c.close()
    assert trims == ([1] if ours else [])
