"""Fuzzing of moddeps' readers of hostile input (issue 8).

Three hypothesis targets, one file each, plus an atheris entry point:

* ``test_fuzz_reader.py``  the module reader (``.ko``, compressed or not)
* ``test_fuzz_index.py``   the ``.bin`` index reader and the builtin-index writers
* ``test_fuzz_config.py``  depmod.d, Module.symvers, System.map, modules.order, modules.builtin*
* ``atheris_reader.py``    coverage-guided fuzzing of the reader (not collected by pytest)

Every target is bounded by a settings profile:

* default (CI, plain ``pytest``): few examples per test, derandomized (the same
  inputs on every run), no example database; the whole ``tests/fuzz`` directory
  runs in well under a minute;
* long, for a real fuzzing session::

      MODDEPS_FUZZ=long pytest tests/fuzz -p no:cacheprovider --hypothesis-show-statistics

  (``MODDEPS_FUZZ_EXAMPLES=N`` sets the examples per test, default 20000; inputs
  are random, failures are saved in ``.hypothesis/`` and replayed first next time).

What a target checks on every input (:func:`check_reader_result` and friends):
it returns or raises the documented error (``ModuleReadError`` /
``IndexFormatError``) whose message is one line starting with the file name,
within a time bound (:func:`time_limit`; a hang becomes a failure, not a stuck
CI run) and a memory bound (:func:`peak_memory`).

``corpus/`` holds minimised crashing and tricky inputs, one file each, replayed
by ``test_corpus_*`` tests in the three files; ``corpus/README.md`` says how the
expected outcome is encoded in each file name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, settings

from moddeps.kmodversion import KmodTarget

CORPUS = Path(__file__).resolve().parent / "corpus"

LONG = os.environ.get("MODDEPS_FUZZ", "").lower() == "long"
LONG_EXAMPLES = int(os.environ.get("MODDEPS_FUZZ_EXAMPLES", "20000"))

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
           HealthCheck.large_base_example]

settings.register_profile(
    "moddeps-fuzz-ci",
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    # no shrinking in CI: a failure is reported at once (its minimised form
    # belongs in corpus/, replayed by its own test)
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=_HEALTH,
)
settings.register_profile(
    "moddeps-fuzz-long",
    max_examples=LONG_EXAMPLES,
    derandomize=False,
    deadline=None,
    print_blob=True,
    suppress_health_check=_HEALTH,
)

PROFILE = "moddeps-fuzz-long" if LONG else "moddeps-fuzz-ci"

F = TypeVar("F", bound=Callable[..., Any])


def fuzz(ci_examples: int) -> Callable[[F], F]:
    """The settings of one fuzz test: ``ci_examples`` in CI, the long profile's count otherwise."""
    base = settings.get_profile(PROFILE)
    if LONG:
        return settings(base)  # type: ignore[return-value]
    return settings(base, max_examples=ci_examples)  # type: ignore[return-value]


#: Per-input time bound (seconds).  Real modules of 20 MB parse in ~0.1 s; the
#: fuzz inputs are a few KB, so anything near this bound is a hang.
TIME_BOUND = float(os.environ.get("MODDEPS_FUZZ_TIME_BOUND", "5"))


class Hang(BaseException):
    """Raised by :func:`time_limit` (a BaseException, so ``except Exception`` in the code under test cannot hide it)."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str = "input") -> Iterator[None]:
    """Fail with :class:`Hang` if the body runs longer than ``seconds`` (SIGALRM; main thread only)."""

    def on_alarm(signum: int, frame: object) -> None:
        raise Hang(f"{what}: still running after {seconds:.1f} s (a hang or a quadratic blow-up)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Peak:
    bytes: int = 0
    seconds: float = 0.0


@contextlib.contextmanager
def peak_memory() -> Iterator[Peak]:
    """Peak Python heap allocated inside the body (tracemalloc) and the time it took."""
    result = Peak()
    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.monotonic()
    try:
        yield result
    finally:
        result.seconds = time.monotonic() - t0
        result.bytes = max(0, tracemalloc.get_traced_memory()[1] - base)
        if not was:
            tracemalloc.stop()


def memory_bound(input_size: int) -> int:
    """What reading an input of ``input_size`` bytes may allocate at peak.

    The reader slices the file and builds a record whose strings come from
    the file: a small multiple of the input, never gigabytes.
    """
    return 16 * 1024 * 1024 + 16 * input_size


def assert_one_line(message: str, name: str) -> None:
    assert "\n" not in message and "\r" not in message, f"error message is not one line: {message!r}"
    assert message.startswith(f"{name}: "), f"error message does not start with the file name {name!r}: {message!r}"
    assert len(message) > len(name) + 2, f"error message says nothing after the file name: {message!r}"


def corpus_files(kind: str, *suffixes: str) -> list[Path]:
    d = CORPUS / kind
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_file() and (not suffixes or p.name.endswith(suffixes)))


def expected_outcome(path: Path) -> str:
    """``ok``, ``err`` or ``any``: the prefix of a corpus file's name (see corpus/README.md)."""
    prefix = path.name.split("-", 1)[0]
    assert prefix in ("ok", "err", "any"), f"corpus file {path.name} must start with ok-, err- or any-"
    return prefix


# --------------------------------------------------------------------------
# Output safety: what depmod may write for a set of modules
# --------------------------------------------------------------------------
#
# The rules (issue 8; tests/test_hostile.py checks them end to end and
# documents what kmod 30 does instead):
#
# * a module whose path, as written in modules.dep, holds a newline, a blank
#   (space, tab), a carriage return or a colon is left out of every file
#   (modules.dep cannot represent it: libkmod splits a dependency line at the
#   first ':' and the dependency list at blanks), with an error naming the file;
# * an alias, an exported symbol or a softdep/weakdep value holding a line
#   break (newline, carriage return, vertical tab, form feed) is left out of its
#   files; a softdep/weakdep value ending in a backslash too (libkmod's config
#   reader joins the next line onto it); blanks stay, as kmod writes them (they
#   add no line; kmod's own tests use "char-major- 4-+5");
# * a devname holding any C white space, absolute or with a ".." component
#   is left out of modules.devname (kmod-static-nodes splits at white space and
#   creates /dev/DEVNAME);
# * a key that is not 7-bit ASCII may be left out of a .bin index (kmod 30
#   corrupts its memory on some of them), but never crashes the run;
# * everything else is written exactly as kmod 30 writes it.

LINE_BREAKS = (b"\n", b"\r", b"\v", b"\f")
BLANKS = (b"\n", b"\r", b" ", b"\t")
C_SPACE = (*BLANKS, b"\v", b"\f")


def safe_field(value: bytes) -> bool:
    return not any(c in value for c in LINE_BREAKS)


def safe_dep_value(value: bytes) -> bool:
    """A softdep or weakdep value: no line break, no trailing backslash."""
    return safe_field(value) and not value.endswith(b"\\")


def safe_path(path: bytes) -> bool:
    return not any(c in path for c in BLANKS) and b":" not in path


def safe_devname(devname: bytes) -> bool:
    return (not any(c in devname for c in C_SPACE) and not devname.startswith(b"/")
            and b".." not in devname.split(b"/"))


def is_ascii_key(key: bytes) -> bool:
    return key.isascii() and 0 not in key


def render(modules: list[Any], shown: list[str]) -> tuple[dict[str, bytes], list[str], Any] | None:
    """depmod's files for these modules (as ``moddeps depmod`` renders them), or None on cycles."""
    from moddeps.depmod.render import render_files
    from moddeps.read.scan import Tree
    from moddeps.read.walk import ModuleFile
    from moddeps.resolve import resolve

    dirname = "/nonexistent/moddeps-fuzz/lib/modules/6.1.0-1-amd64"
    files = tuple(ModuleFile(m.name, f"{dirname}/{s}", s) for m, s in zip(modules, shown))
    tree = Tree(dirname, "6.1.0-1-amd64", tuple(modules), files)
    res = resolve(modules, [f.path for f in files])
    if res.topo is None:
        return None
    out, messages = render_files(tree, res, KmodTarget(30, "fuzz"))
    check_kmod34(tree, res, dict(out), messages)
    return dict(out), messages, res


def check_kmod34(tree: Any, res: Any, kmod30: dict[str, bytes], messages30: list[str]) -> None:
    """kmod 34 mode: the same text files, modules.weakdep always, the indexes
    in pre-order (root at offset 12) with the same entries -- or, when an index
    string is not 7-bit ASCII, kmod 34's FATAL message and no files."""
    from moddeps.depmod.outputs import NonAsciiIndexString
    from moddeps.depmod.render import render_files
    from moddeps.index.read import Index

    try:
        out34, _messages = render_files(tree, res, KmodTarget(34, "fuzz"))
    except NonAsciiIndexString as exc:
        assert exc.message.startswith("FATAL: Module index: bad character '")
        non_ascii = any(not (k.isascii() and v.isascii())
                        for name, data in kmod30.items() if name.endswith(".bin") and data
                        for k, v, _prio in Index.from_bytes(data).items())
        assert non_ascii or any("cannot index a non-ASCII byte" in m for m in messages30)
        return
    files34 = dict(out34)
    assert set(files34) - set(kmod30) <= {"modules.weakdep"}
    for name, data in kmod30.items():
        if not name.endswith(".bin") or not data:
            assert files34[name] == data, name
            continue
        assert int.from_bytes(files34[name][8:12], "big") & 0x0FFFFFFF == 12, name
        assert list(Index.from_bytes(files34[name]).items()) == list(Index.from_bytes(data).items()), name


def check_outputs(modules: list[Any], shown: list[str], files: dict[str, bytes], res: Any) -> None:
    """Every text file holds exactly kmod's lines minus the unsafe ones; every .bin parses and agrees."""
    import dataclasses
    from collections import Counter

    from moddeps.depmod.outputs import devname_entry
    from moddeps.index.keys import alias_normalize
    from moddeps.index.read import Index
    from moddeps.model import fsencode

    paths = [fsencode(s) for s in shown]
    written = [i for i, p in enumerate(paths) if safe_path(p)]
    written_paths = {paths[i] for i in written}
    names = [fsencode(m.name) for m in modules]

    # modules.dep: one line per written module, its dependencies written modules
    dep = files["modules.dep"]
    assert dep == b"" or dep.endswith(b"\n"), "modules.dep does not end with a newline"
    lines = dep.split(b"\n")[:-1] if dep else []
    assert len(lines) == len(written), f"modules.dep has {len(lines)} lines for {len(written)} modules: {dep[:300]!r}"
    for line in lines:
        head, sep, rest = line.partition(b":")
        assert sep and head in written_paths, f"modules.dep line for no module: {line!r}"
        if rest:
            assert rest.startswith(b" "), f"modules.dep line {line!r}"
            assert all(d in written_paths for d in rest[1:].split(b" ")), f"modules.dep line {line!r}"

    def info(i: int, key: str) -> list[bytes]:
        return [fsencode(v) for k, v in modules[i].modinfo if k == key]

    alias_lines = [b"# Aliases extracted from modules themselves."]
    alias_keys: dict[bytes, set[bytes]] = {}
    for i in written:
        for a in info(i, "alias"):
            if safe_field(a):
                alias_lines.append(b"alias " + a + b" " + names[i])
                key = alias_normalize(a)
                if key is not None:
                    alias_keys.setdefault(key, set()).add(names[i])
    assert files["modules.alias"].split(b"\n") == [*alias_lines, b""], (
        "modules.alias has other lines than the safe aliases")

    soft = [b"# Soft dependencies extracted from modules themselves."]
    for i in written:
        soft.extend(b"softdep " + names[i] + b" " + v for v in info(i, "softdep") if safe_dep_value(v))
    assert files["modules.softdep"].split(b"\n") == [*soft, b""], (
        "modules.softdep has other lines than the safe softdeps")
    if "modules.weakdep" in files:
        weak = [b"# Weak dependencies extracted from modules themselves."]
        for i in written:
            weak.extend(b"weakdep " + names[i] + b" " + v for v in info(i, "weakdep") if safe_dep_value(v))
        assert files["modules.weakdep"].split(b"\n") == [*weak, b""]

    owned = Counter()
    sym_keys: set[bytes] = set()
    for sym, (owner, _crc) in res.owners.items():
        if isinstance(owner, int) and owner >= 0 and owner in written and safe_field(fsencode(sym)):
            owned[b"alias symbol:" + fsencode(sym) + b" " + names[owner]] += 1
            sym_keys.add(b"symbol:" + fsencode(sym))
    sym_lines = files["modules.symbols"].split(b"\n")
    assert sym_lines[0] == b"# Aliases for symbols, used by symbol_request()." and sym_lines[-1] == b""
    assert Counter(sym_lines[1:-1]) == owned, "modules.symbols has other lines than the safe exports"

    dev: list[bytes] = []
    for i in written:
        kept = tuple((k, v) for k, v in modules[i].modinfo
                     if k != "alias" or (safe_field(fsencode(v)) and (not fsencode(v).startswith(b"devname:")
                                                                      or safe_devname(fsencode(v)[8:]))))
        line, _devname, _err = devname_entry(dataclasses.replace(modules[i], modinfo=kept))
        if line is not None:
            dev.append(line.rstrip(b"\n"))
    want_dev = b"" if not dev else b"\n".join([b"# Device nodes to trigger on-demand module loading.", *dev, b""])
    assert files["modules.devname"] == want_dev, "modules.devname has other lines than the safe devnames"

    # the indexes: parse, hold only safe keys, and every ASCII one
    def keys(name: str) -> dict[bytes, set[bytes]]:
        acc: dict[bytes, set[bytes]] = {}
        for k, v, _prio in Index.from_bytes(files[name], name=name).items():
            acc.setdefault(k, set()).add(v)
        return acc

    got = keys("modules.alias.bin")
    assert set(got) <= set(alias_keys), f"modules.alias.bin keys that are no safe alias: {set(got) - set(alias_keys)}"
    assert {k for k in alias_keys if is_ascii_key(k)} <= set(got), "modules.alias.bin lacks safe aliases"
    got = keys("modules.symbols.bin")
    assert set(got) <= sym_keys and {k for k in sym_keys if is_ascii_key(k)} <= set(got)
    got = keys("modules.dep.bin")
    want = {names[i] for i in written}
    assert set(got) <= want and {k for k in want if is_ascii_key(k)} <= set(got)
    for vals in got.values():
        assert all(v.split(b":", 1)[0] in written_paths for v in vals)
