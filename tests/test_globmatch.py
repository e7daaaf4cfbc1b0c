"""moddeps.globmatch.fnmatch against glibc's real fnmatch(3), flags 0, C locale."""

from __future__ import annotations

import ctypes
import ctypes.util
import locale
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from moddeps import globmatch
from moddeps.globmatch import fnmatch


def _load_libc_fnmatch() -> Callable[[bytes, bytes, int], int] | None:
    for name in (ctypes.util.find_library("c"), "libc.so.6"):
        if not name:
            continue
        try:
            libc = ctypes.CDLL(name)
            func = libc.fnmatch
        except (OSError, AttributeError):
            continue
        func.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
        func.restype = ctypes.c_int
        return func  # type: ignore[no-any-return]
    return None


LIBC_FNMATCH = _load_libc_fnmatch()


@pytest.fixture(scope="module")
def c_locale() -> Iterator[None]:
    """kmod never calls setlocale, so glibc matches single bytes in the C locale.

    Python starts in the environment's locale (often C.UTF-8), where glibc
    first tries a wide-character match; switch to "C" for the comparison.
    """
    saved = locale.setlocale(locale.LC_ALL)
    locale.setlocale(locale.LC_ALL, "C")
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def libc_match(pattern: bytes, subject: bytes) -> bool:
    if LIBC_FNMATCH is None:
        pytest.skip("libc fnmatch cannot be loaded")
    return LIBC_FNMATCH(pattern, subject, 0) == 0


# Single bytes and whole constructs that exercise every branch of glibc's
# bracket parser: classes, equivalence classes, collating symbols, escapes.
PATTERN_TOKENS = [bytes([b]) for b in b"*?[]!^-\\/.abc:="] + [
    b"[:alpha:]",
    b"[:digit:]",
    b"[:upper:]",
    b"[:punct:]",
    b"[:space:]",
    b"[:foo:]",
    b"[::]",
    b"[:a",
    b"[=a=]",
    b"[=]",
    b"[.a.]",
    b"[.-.]",
    b"[.ab.]",
    b"\x80",
    b"A",
    b"1",
]
SUBJECT_BYTES = b"*?[]!^-\\/.abc:=A1 \x80"

patterns = st.lists(st.sampled_from(PATTERN_TOKENS), max_size=10).map(b"".join)
subjects = st.lists(st.sampled_from([bytes([b]) for b in SUBJECT_BYTES]), max_size=8).map(b"".join)


@pytest.mark.usefixtures("c_locale")
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pattern=patterns, subject=subjects)
@example(pattern=b"[", subject=b"[")
@example(pattern=b"[[", subject=b"[[")
@example(pattern=b"[\\]", subject=b"[]")
@example(pattern=b"[[\\]", subject=b"[[]")
@example(pattern=b"[a", subject=b"a")
@example(pattern=b"[a-", subject=b"[a-")
@example(pattern=b"[[.a.]-]", subject=b"a")
@example(pattern=b"[a[=ab=]]", subject=b"a")
def test_matches_glibc(pattern: bytes, subject: bytes) -> None:
    assert fnmatch(pattern, subject) == libc_match(pattern, subject)


@pytest.mark.usefixtures("c_locale")
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pattern=st.binary(max_size=12).filter(lambda b: 0 not in b),
    subject=st.binary(max_size=8).filter(lambda b: 0 not in b),
)
def test_matches_glibc_any_bytes(pattern: bytes, subject: bytes) -> None:
    assert fnmatch(pattern, subject) == libc_match(pattern, subject)


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        (b"*", b"a/b", True),  # '*' crosses '/' without FNM_PATHNAME
        (b"*", b".hidden", True),  # and matches a leading '.' without FNM_PERIOD
        (b"?", b"/", True),
        (b"a\\*b", b"a*b", True),  # backslash escapes
        (b"a\\*b", b"axb", False),
        (b"ab\\", b"ab\\", False),  # trailing backslash never matches
        (b"[!a]", b"b", True),
        (b"[^a]", b"a", False),  # '^' negates too (no POSIXLY_CORRECT)
        (b"[]a]", b"]", True),  # leading ']' is a member
        (b"[a-c]", b"b", True),
        (b"[a-c]", b"d", False),
        (b"[[:digit:]]x", b"7x", True),
        (b"[[:alpha:]]", b"\xe9", False),  # C locale: bytes >= 0x80 are in no class
        (b"[[:nosuch:]]", b"a", False),  # unknown class: no match at all
        (b"[ab", b"[ab", True),  # unterminated: '[' is literal (glibc bug 28792 fix)
        (b"[ab", b"a", False),
        (b"usb:v*p*d*", b"usb:v046Dp0A4Dd0100dc00", True),
        (b"pci:v00008086d*sv*sd*bc02sc00i*", b"pci:v00008086d000010D3sv00001234sd00005678bc02sc00i00", True),
        (b"a\x00b", b"a", True),  # C strings: the pattern ends at NUL
    ],
)
def test_examples(pattern: bytes, subject: bytes, expected: bool) -> None:
    assert fnmatch(pattern, subject) is expected


@pytest.mark.usefixtures("c_locale")
@pytest.mark.parametrize("length", [2046, 2047, 2048, 2049])
def test_class_name_length_limit(length: int) -> None:
    # glibc gives up on a [:name:] of CHARCLASS_NAME_MAX (2048) letters or more,
    # with different counting in its two bracket-scanning phases.
    pattern = b"[[:" + b"a" * length + b":]]"
    assert fnmatch(pattern, b"a") == libc_match(pattern, b"a")
    pattern = b"[x[:" + b"a" * length + b":]]"
    assert fnmatch(pattern, b"x") == libc_match(pattern, b"x")


@pytest.mark.usefixtures("c_locale")
def test_many_stars_are_not_exponential(monkeypatch: pytest.MonkeyPatch) -> None:
    """Star-separated literal segments compile to literal searches (bytes.find); the
    element-at-a-time loop is never entered for them."""
    monkeypatch.setattr(globmatch, "_fnmatch_stepwise", _must_not_run)
    globmatch._CACHE.clear()
    pattern = b"*a" * 40 + b"b"
    subject = b"a" * 200
    assert fnmatch(pattern, subject) is False
    assert fnmatch(pattern[:-1], subject) is True
    assert libc_match(pattern, subject) is False
    assert libc_match(pattern[:-1], subject) is True


def _must_not_run(pattern: bytes, subject: bytes) -> bool:
    raise AssertionError(f"the element-at-a-time loop ran for {pattern!r}")


@pytest.mark.usefixtures("c_locale")
def test_issue_15_aliases_compile_to_one_pass_over_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15: 2,000 modprobe.d aliases like ``*a*a...*[b]`` against a long target took 7.5 s in
    ``plan``.  Each compiles to literal segments (``[b]`` is the byte b), found left to right:
    the element-at-a-time loop never runs, and every answer is glibc's."""
    monkeypatch.setattr(globmatch, "_fnmatch_stepwise", _must_not_run)
    globmatch._CACHE.clear()
    target = b"a" * 5000 + b"b"
    for k in range(1, 2001):
        pattern = b"*a" * (k % 37 + 1) + b"*[b]"
        compiled = globmatch._compile(pattern)
        assert all(isinstance(seg, bytes) for seg in compiled.segments)
        assert fnmatch(pattern, target) is True
        assert fnmatch(pattern, target[:-1]) is False
    for pattern in (b"*a*a*[b]", b"*a" * 30 + b"*[b]"):
        assert libc_match(pattern, target) is True
        assert libc_match(pattern, target[:-1]) is False


LONG_SUBJECT_BYTES = b"ab[]-!\\*?:=A"
long_patterns = st.lists(st.sampled_from([*PATTERN_TOKENS, b"[a-c]", b"[!a]", b"[]a]", b"[!]b]", b"[a-]"]),
                         max_size=14).map(b"".join)
long_subjects = st.lists(st.sampled_from([bytes([b]) for b in LONG_SUBJECT_BYTES]), max_size=40).map(b"".join)


@pytest.mark.usefixtures("c_locale")
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pattern=long_patterns, subject=long_subjects)
@example(pattern=b"*[a-c]*a", subject=b"xxbxxa")
@example(pattern=b"a*?*b", subject=b"ab")
@example(pattern=b"*[]a]*", subject=b"]")
def test_compiled_segments_agree_with_the_stepwise_loop_and_glibc(pattern: bytes, subject: bytes) -> None:
    """Longer subjects than above, where leftmost segment searches matter: the compiled
    matcher, the element-at-a-time loop and glibc give the same answer."""
    expected = libc_match(pattern, subject)
    assert globmatch._fnmatch_stepwise(pattern, subject) == expected
    assert fnmatch(pattern, subject) == expected


bracket_bodies = st.lists(st.sampled_from([bytes([b]) for b in b"ab-]!^:=.z\x80\xff"]), max_size=6).map(b"".join)


@settings(max_examples=2000, deadline=None)
@given(body=bracket_bodies, negate=st.sampled_from([b"", b"!", b"^"]))
def test_the_plain_bracket_shortcut_agrees_with_glibcs_full_scan(body: bytes, negate: bytes) -> None:
    """``_simple_bracket`` (bytes and ranges only) gives the members and end that glibc's
    two-phase scan (``_bracket``, tried for every byte) gives, whenever it answers."""
    pattern = b"[" + negate + body + b"]x"
    quick = globmatch._simple_bracket(pattern, 0)
    if quick is None:
        return
    full = globmatch._bracket_element(pattern, 0, len(pattern))
    assert full is not None
    assert full[0] == quick[0]
    if quick[0]:  # an element matching nothing makes the pattern match nothing: its end is moot
        assert full[1] == quick[1]


@pytest.mark.usefixtures("c_locale")
@pytest.mark.parametrize("bracket", [b"[]a-[=a=]]", b"[[:-[=a=]]", b"[-=-[=a=]]]", b"[b!-[=a=]]]"])
def test_patterns_whose_bracket_end_depends_on_the_byte_use_the_stepwise_loop(bracket: bytes) -> None:
    """A bracket that glibc's matching and skipping phases end at different places (found by
    a random search) cannot be a one-byte element: the pattern goes to the element-at-a-time
    loop, whose answers are glibc's."""
    for pattern in (bracket, b"*" + bracket + b"*", b"x*" + bracket):
        assert globmatch._compile(pattern) is globmatch._STEPWISE
        for subject in (b"a", b"b", b"]", b"=", b"-", b"[", b"a]", b"]]", b"x]a", b"xa]", b"x-]"):
            assert fnmatch(pattern, subject) == libc_match(pattern, subject), (pattern, subject)


def test_the_planner_asks_each_name_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """2,000 aliases that all match the target lead to module ``b`` 2,000 times: the alias
    lookups are remembered per name (without that, 4 million matches: 31 s in ``plan``)."""
    from moddeps.modprobe.config import parse_text as parse_modprobe

    text = "".join(f"alias {'*a' * (k % 37 + 1)}*[b] b\n" for k in range(2000)).encode()
    cfg = parse_modprobe(text, "x.conf")
    calls = []
    real = globmatch.fnmatch

    def counting(pattern: bytes, subject: bytes) -> bool:
        calls.append(subject)
        return real(pattern, subject)

    monkeypatch.setattr("moddeps.modprobe.config.fnmatch", counting)
    target = "a" * 4000 + "b"
    for _ in range(2000):
        assert len(cfg.aliases_matching(target)) == 2000
        assert cfg.aliases_matching("b") == []
    assert len(calls) == 4000
