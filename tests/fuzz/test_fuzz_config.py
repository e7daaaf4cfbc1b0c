"""Fuzzing the text parsers depmod reads besides modules: depmod.d
(``moddeps.config``), ``Module.symvers`` / ``System.map``
(``moddeps.kernelsyms``), ``modules.order`` (``moddeps.read.order.module_array``).

CI runs a bounded, derandomized number of examples; a long run is::

    MODDEPS_FUZZ=long pytest tests/fuzz/test_fuzz_config.py -p no:cacheprovider --hypothesis-show-statistics

Every input must be parsed within the time bound, with no exception
(diagnostics are kmod-style messages, never a crash).  The version patterns
of ``override`` and ``external`` lines are POSIX extended regular
expressions (kmod: ``regcomp(REG_EXTENDED|REG_NOSUB)`` + ``regexec`` on the
kernel version); the real glibc, through ctypes, is the oracle.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from moddeps.config import DepmodConfig, load, parse_text
from moddeps.kernelsyms import kmod_kernel_table, parse_symvers
from moddeps.read.order import module_array
from moddeps.read.walk import ModuleFile

from . import TIME_BOUND, corpus_files, fuzz, time_limit

KVER = "6.1.0-50-cloud-amd64"
#: A config line must be parsed in well under this (kmod: microseconds).
LINE_BOUND = 2.0


# --------------------------------------------------------------------------
# glibc's POSIX regex, the oracle for version patterns
# --------------------------------------------------------------------------

_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_REG_EXTENDED, _REG_NOSUB = 1, 8


def glibc_matches(pattern: str, kver: str = KVER) -> bool:
    """kmod tools/depmod.c cfg_kernel_matches: ``*``, else regcomp(ERE|NOSUB) + regexec."""
    if pattern == "*":
        return True
    raw = pattern.encode("utf-8", "surrogateescape")
    if b"\0" in raw:
        raw = raw[: raw.index(b"\0")]
    buf = ctypes.create_string_buffer(1024)  # > sizeof(regex_t) on every glibc ABI
    if _LIBC.regcomp(buf, raw, _REG_EXTENDED | _REG_NOSUB) != 0:
        return False
    try:
        return bool(_LIBC.regexec(buf, kver.encode(), 0, None, 0) == 0)
    finally:
        _LIBC.regfree(buf)


def _applied(pattern: str, kver: str = KVER) -> bool:
    """Does moddeps apply ``override m PATTERN dir`` for ``kver``?"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg, _errors = parse_text(f"override m {pattern} dir\n", "fuzz.conf", kver)
    return bool(cfg.overrides)


# Small ERE pieces: kept small so that glibc itself answers at once.
_ERE_ATOM = st.sampled_from([
    "a", "d", "6", "1", ".", "-", "c", "l", "o", "u", "amd64", "cloud", "\\.", "\\d", "\\w", "\\", "[0-9]",
    "[[:digit:]]", "[[:alpha:]]", "[^0-9]", "[a-z]", "[]", "[", "]", "(", ")", "()", "|", "^", "$", "*", "+",
    "?", "{2}", "{1,3}", "{,2}", "(?i)", "(?:", "\\b", "x", "6\\.1", ".*", "[.]", "[-]", "[[.-.]]", "[[=a=]]",
])


@fuzz(300)
@given(st.lists(_ERE_ATOM, min_size=1, max_size=7).map("".join), st.sampled_from([KVER, "6.1.0-50-amd64", "5.10.0"]))
@example("[[:digit:]]", KVER)
@example("^\\d", KVER)
@example("(?i)CLOUD", KVER)
def test_version_patterns_match_like_glibc(pattern: str, kver: str) -> None:
    with time_limit(LINE_BOUND, f"override pattern {pattern!r}"):
        got = _applied(pattern, kver)
    # kmod reads config lines with its backslash rule first (a backslash before
    # any character is dropped, the character kept), then splits at blanks:
    # regcomp sees the third token of what is left (too few tokens: a bad line).
    line = re.sub(r"\\(.)", r"\1", f"override m {pattern} dir", flags=re.S)
    tokens = [t for t in re.split(r"[ \t]+", line) if t]
    expected = len(tokens) >= 4 and glibc_matches(tokens[2], kver)
    assert got == expected, (
        f"override pattern {pattern!r} on {kver!r}: moddeps {'applies' if got else 'ignores'} it, "
        f"kmod 30 (glibc regexec) {'applies' if not got else 'ignores'} it"
    )


# --------------------------------------------------------------------------
# depmod.d text
# --------------------------------------------------------------------------

_TOKEN = st.one_of(
    st.sampled_from(["*", "updates", "built-in", "external", "extra", "/abs/dir", "../up", "foo-bar", "x\r",
                     "(.*.*)*!", "6\\.1.*", "\\", "#", "include", "a" * 300]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=12),
)
_COMMAND = st.sampled_from(["search", "override", "external", "exclude", "include", "make_map_files", "#",
                            "bogus", "", "Search", "override\t"])


@st.composite
def config_text(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        words = [draw(_COMMAND), *draw(st.lists(_TOKEN, max_size=5))]
        sep = draw(st.sampled_from([" ", "\t", "  ", " \t "]))
        line = sep.join(words)
        end = draw(st.sampled_from(["\n", "\\\n", "\r\n", "", "\\"]))
        lines.append(line + end)
    return "".join(lines)


def check_config(text: str, name: str = "fuzz.conf", bound: float = TIME_BOUND) -> DepmodConfig:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with time_limit(bound, name):
            cfg, errors = parse_text(text, name, KVER)
    assert all(isinstance(e, str) and e.startswith(f"{name}:") for e in errors)
    for entries in (cfg.search, cfg.externals, cfg.excludes):
        assert all(isinstance(x, str) and x and not any(c in x for c in " \t\n") for x in entries)
    return cfg


@fuzz(300)
@given(config_text())
def test_config_lines(text: str) -> None:
    check_config(text)


@fuzz(150)
@given(st.text(max_size=300))
def test_config_any_text(text: str) -> None:
    check_config(text)


@fuzz(60)
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=4))
def test_config_files(contents: list[bytes]) -> None:
    """Whole directories of config files with arbitrary bytes (not UTF-8, NULs, no final newline)."""
    with tempfile.TemporaryDirectory() as d:
        for i, data in enumerate(contents):
            (Path(d) / f"{i:02d}-fuzz.conf").write_bytes(data)
        (Path(d) / "sub.conf").mkdir()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with time_limit(TIME_BOUND, d):
                cfg = load([d], KVER)
    assert len(cfg.files) == len(contents)
    assert all(m.startswith("ERROR: ") for m in cfg.messages)


# --------------------------------------------------------------------------
# Module.symvers, System.map, modules.order
# --------------------------------------------------------------------------

_SYMVERS_LINE = st.one_of(
    st.sampled_from([b"0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\t", b"0x1\tfoo\tvmlinux\tEXPORT_SYMBOL_GPL\tNS",
                     b"-0x1\tneg\tvmlinux", b"0x" + b"f" * 5000 + b"\tbig\tvmlinux", b"zz\tbad\tvmlinux",
                     b"0x1 spaced vmlinux", b"\t\t\t", b"0x1\t\tvmlinux", b"0x1_0\tus\tvmlinux", b"+0x\tx\tvmlinux"]),
    st.binary(max_size=40),
)


@fuzz(200)
@given(st.lists(_SYMVERS_LINE, max_size=10), st.booleans(), st.sampled_from([None, b"_", b"."]))
def test_kernel_symbol_tables(lines: list[bytes], final_newline: bool, prefix: bytes | None) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")
    with time_limit(TIME_BOUND, "Module.symvers"):
        for kind in ("symvers", "system.map"):
            table, messages = kmod_kernel_table(data, "/k/Module.symvers", kind, prefix)
            assert all(isinstance(k, bytes) and 0 <= v < 1 << 64 for k, v in table.items())
            assert all(m.startswith("ERROR: /k/Module.symvers:") for m in messages)
        for entry in parse_symvers(data):
            assert entry.crc >= 0 or entry.crc < 0  # any int; the parse itself must not raise


_ORDER_LINE = st.one_of(st.sampled_from([b"kernel/a.ko", b"kernel/b-c.ko", b"kernel/a.ko", b"", b"kernel/x" * 600]),
                        st.binary(max_size=20))


@fuzz(150)
@given(st.lists(_ORDER_LINE, max_size=10), st.booleans())
def test_modules_order(lines: list[bytes], final_newline: bool) -> None:
    text = b"\n".join(lines) + (b"\n" if final_newline else b"")
    files = [ModuleFile("a", "/t/kernel/a.ko", "kernel/a.ko"), ModuleFile("b_c", "/t/kernel/b-c.ko", "kernel/b-c.ko"),
             ModuleFile("x", "/t/kernel/x.ko.xz", "kernel/x.ko.xz")]
    with time_limit(TIME_BOUND, "modules.order"):
        array, listed, _, messages = module_array(files, "/t", text)
    assert sorted(mf.name for mf in array) == ["a", "b_c", "x"]
    assert listed <= {"a", "b_c", "x"}
    assert all("\n" not in m.rstrip("\n") for m in messages)


# --------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------

CONF_CORPUS = corpus_files("config", ".conf")
TABLE_CORPUS = corpus_files("config", ".symvers", ".map")
ORDER_CORPUS = corpus_files("config", ".order")


@pytest.mark.parametrize("path", CONF_CORPUS, ids=[p.name for p in CONF_CORPUS])
def test_corpus_config(path: Path) -> None:
    """Within the time bound, no exception, and each override/external applied iff kmod 30 applies it."""
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    cfg = check_config(text, str(path), LINE_BOUND)
    want_overrides = []
    want_externals = []
    for line in text.split("\n"):
        tokens = [t for t in re.split(r"[ \t]+", line) if t]
        if len(tokens) >= 4 and tokens[0] == "override" and glibc_matches(tokens[2]):
            want_overrides.append((tokens[1], tokens[3]))
        if len(tokens) >= 3 and tokens[0] == "external" and glibc_matches(tokens[1]):
            want_externals.append(tokens[2])
    assert [(o.modname, o.subdir) for o in cfg.overrides] == want_overrides
    assert list(cfg.externals) == want_externals


@pytest.mark.parametrize("path", TABLE_CORPUS, ids=[p.name for p in TABLE_CORPUS])
def test_corpus_kernel_tables(path: Path) -> None:
    data = path.read_bytes()
    with time_limit(TIME_BOUND, str(path)):
        for kind in ("symvers", "system.map"):
            kmod_kernel_table(data, str(path), kind)
        parse_symvers(data)


@pytest.mark.parametrize("path", ORDER_CORPUS, ids=[p.name for p in ORDER_CORPUS])
def test_corpus_modules_order(path: Path) -> None:
    files = [ModuleFile("a", "/t/kernel/a.ko", "kernel/a.ko")]
    with time_limit(TIME_BOUND, str(path)):
        module_array(files, "/t", path.read_bytes())


def test_corpus_is_present() -> None:
    assert len(CONF_CORPUS) >= 5 and TABLE_CORPUS and ORDER_CORPUS


# --------------------------------------------------------------------------
# modprobe.d text and its glob patterns (issue 15)
# --------------------------------------------------------------------------

_MP_COMMAND = st.sampled_from(["alias", "options", "install", "remove", "blacklist", "softdep", "weakdep",
                               "include", "#", "bogus", "", "Alias", "softdep\t"])
_MP_TOKEN = st.one_of(
    st.sampled_from(["pre:", "post:", "pci:v*d*", "*a*a*a*[b]", "usb:v046Dp*", "[!a]*", "snd-hda", "snd_hda",
                     "x\\", "\\", "a=b", "opt=\"q u\"", "[[:alpha:]]*", "*" * 50, "a" * 300, "x\r", "\v", "\f"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\0"), max_size=12),
)


@st.composite
def modprobe_text(draw: st.DrawFn) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        words = [draw(_MP_COMMAND), *draw(st.lists(_MP_TOKEN, max_size=5))]
        line = draw(st.sampled_from([" ", "\t", "  "])).join(words)
        lines.append(line + draw(st.sampled_from(["\n", "\\\n", "\r\n", "", "\\"])))
    return "".join(lines).encode("utf-8", "surrogateescape")


@fuzz(200)
@given(modprobe_text(), st.sampled_from(["snd_hda_intel", "pci:v00008086d00001234", "aaaaaaaaab", "x"]))
def test_modprobe_config_lines(data: bytes, target: str) -> None:
    """Any modprobe.d text parses within the bound, every message is one kmod-style line, and
    every lookup the planner makes answers (the alias patterns are glob-matched) within the bound."""
    from moddeps.modprobe.config import parse_text as parse_modprobe

    with time_limit(TIME_BOUND, "modprobe.d"):
        cfg = parse_modprobe(data, "fuzz.conf")
        cfg.aliases_matching(target)
        cfg.options_for(target, None)
        cfg.install_for(target)
        cfg.remove_for(target)
        cfg.softdep_for(target)
        cfg.weakdep_for(target)
        cfg.blacklisted(target)
    assert all(isinstance(m, str) and "\n" not in m for m in cfg.messages)


@fuzz(100)
@given(st.lists(st.sampled_from(["*", "a", "b", "?", "[b]", "[!a]", "[a-c]", "\\*", "[", "]", "[[:alpha:]]",
                                 "[]a-[=a=]]"]), max_size=40).map("".join),
       st.integers(0, 3000))
def test_glob_patterns_against_long_targets(pattern: str, length: int) -> None:
    """modprobe.d alias patterns against long targets: glibc's fnmatch answers (C locale), within
    the bound whatever the pattern (issue 15: ``*a*a...*[b]`` took 7.5 s for 2,000 aliases)."""
    import locale

    from moddeps.globmatch import fnmatch

    raw = pattern.encode()
    subject = (b"ab" * length)[:length] + b"b"
    saved = locale.setlocale(locale.LC_ALL)
    locale.setlocale(locale.LC_ALL, "C")
    try:
        with time_limit(TIME_BOUND, f"fnmatch {pattern!r}"):
            got = [fnmatch(raw, subject[:n]) for n in (length, length + 1)]
        expected = [_LIBC.fnmatch(raw, subject[:n], 0) == 0 for n in (length, length + 1)]
    finally:
        locale.setlocale(locale.LC_ALL, saved)
    assert got == expected


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_config_directories_with_a_fifo_or_a_device_never_wait(tmp_path: Path, kind: str) -> None:
    """A FIFO or a /dev/zero symlink among depmod.d and modprobe.d files: said in one line and
    skipped (kmod would wait on the FIFO for ever), the other files still read."""
    import os

    from moddeps.modprobe.config import load as load_modprobe

    (tmp_path / "a.conf").write_text("search updates\nalias foo bar\n")
    special = tmp_path / "b.conf"
    if kind == "fifo":
        os.mkfifo(special)
    else:
        special.symlink_to("/dev/zero")
    what = "a FIFO" if kind == "fifo" else "a character device"
    with time_limit(TIME_BOUND, "depmod.d with a FIFO"):
        cfg = load([str(tmp_path)], KVER)
        mp = load_modprobe([str(tmp_path)], dirname=None)
    assert cfg.search == ("updates",)
    assert [m for m in cfg.messages if "b.conf" in m] == [
        f"ERROR: {special}: cannot read: not a regular file ({what}); skipped"]
    assert [a.pattern for a in mp.aliases] == ["foo"]
    assert [m for m in mp.messages if "b.conf" in m] == [
        f"ERROR: {special}: cannot read: not a regular file ({what}); skipped"]
