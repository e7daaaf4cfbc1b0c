"""glibc ``fnmatch(3)`` with ``flags=0`` in the C locale, on bytes.

libkmod matches the wildcard keys of ``modules.alias.bin``,
``modules.symbols.bin`` and ``modules.builtin.alias.bin`` with
``fnmatch(pattern, subject, 0)`` (kmod libkmod/libkmod-index.c:
index_mm_searchwild_all).  kmod's tools never call ``setlocale``, so glibc runs
its single-byte matcher in the C locale.  Python's :mod:`fnmatch` is not
equivalent (no backslash escape, ``[^...]`` is not a negation, different
handling of malformed brackets), hence this module.

Semantics reproduced (glibc 2.36, posix/fnmatch_loop.c, read as a description):

* ``*`` matches any run of bytes, including ``/`` and a leading ``.``;
  ``?`` matches any one byte.
* ``\\x`` matches ``x`` literally; a trailing backslash never matches.
* ``[...]`` is a bracket expression: ``!`` or ``^`` right after ``[``
  negates it, a ``]`` in first position is a member, ``a-z`` ranges compare
  byte values (the C locale's collation sequence is the identity),
  ``[:alpha:]`` and the other eleven POSIX classes use the C-locale ctype
  tables, ``[=x=]`` and ``[.x.]`` accept only the one-character form.
  Backslash escapes work inside brackets too.
* A ``[`` whose bracket expression never closes is an ordinary ``[``
  (glibc bug 28792, fixed in 2.36), but some malformed brackets make the
  whole match fail instead (a backslash or a range with nothing after it, an
  unknown class name, an unterminated ``[.``): glibc returns ``FNM_NOMATCH``
  on the spot there, and so do we.  The odd corners are reproduced exactly;
  ``tests/test_globmatch.py`` compares this module with the real libc.
* Both strings are C strings: anything from the first NUL on is ignored.

Cost, linear like glibc's: glibc commits to the leftmost match of each
``*``-separated segment (fnmatch_loop.c: a ``*`` matches the rest up to the
next ``*`` at the first position where it can, then goes on from there).
Every element of a segment consumes exactly one byte, so a pattern compiles
(once, cached) to fixed-width segments, each either literal bytes or a
regular expression of byte classes: the first is matched at the start, the
last at the end, the ones between found leftmost with ``bytes.find`` or
``re.search``, each search starting where the previous segment ended -- one
pass over the subject in C.  2,000 modprobe.d aliases ``*a*a...*[b]`` against
a 10,000-byte target: 15 s with the element-at-a-time loop, 0.013 s so
(``moddeps plan`` on such a modprobe.d: 7.4 s before, 0.39 s now, of which
~0.3 s is start-up; modprobe 0.08 s).  A
bracket expression whose end in the pattern depends on the byte it is
matched against (possible only with malformed ``[:``, ``[=`` or ``[.``
pieces) cannot be compiled this way; such patterns use the element-at-a-time
loop (:func:`_fnmatch_stepwise`), which gives the same answers in
O(len(pattern) * len(subject)) steps.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

from .records import dataclass

__all__ = ["fnmatch"]

_STAR = 0x2A  # *
_QUESTION = 0x3F  # ?
_BACKSLASH = 0x5C  # \
_LBRACKET = 0x5B  # [
_RBRACKET = 0x5D  # ]
_COLON = 0x3A  # :
_EQUALS = 0x3D  # =
_DOT = 0x2E  # .
_DASH = 0x2D  # -
_BANG = 0x21  # !
_CARET = 0x5E  # ^
_LOWER_A = 0x61  # a
_LOWER_Z = 0x7A  # z

# glibc bits/posix2_lim.h: CHARCLASS_NAME_MAX.  A longer [:name:] fails the match.
_CHARCLASS_NAME_MAX = 2048

# Results of _bracket() other than "index after the closing ]".
_FAIL = -1  # no match here (glibc: return FNM_NOMATCH from this attempt)
_UNTERMINATED = -2  # no closing ]: the [ is an ordinary character


def _ctype_class(test: str) -> frozenset[int]:
    return frozenset(b for b in range(128) if _C_LOCALE_TESTS[test](b))


_C_LOCALE_TESTS: dict[str, Callable[[int], bool]] = {
    "upper": lambda b: 0x41 <= b <= 0x5A,
    "lower": lambda b: 0x61 <= b <= 0x7A,
    "digit": lambda b: 0x30 <= b <= 0x39,
    "xdigit": lambda b: 0x30 <= b <= 0x39 or 0x41 <= b <= 0x46 or 0x61 <= b <= 0x66,
    "space": lambda b: b == 0x20 or 0x09 <= b <= 0x0D,
    "blank": lambda b: b in (0x20, 0x09),
    "cntrl": lambda b: b < 0x20 or b == 0x7F,
    "print": lambda b: 0x20 <= b <= 0x7E,
    "graph": lambda b: 0x21 <= b <= 0x7E,
}

#: The twelve classes of glibc's C locale (locale/C-ctype.c,
#: _NL_CTYPE_CLASS_NAMES).  Bytes >= 0x80 belong to none of them.
_CLASSES: dict[bytes, frozenset[int]] = {name.encode(): _ctype_class(name) for name in _C_LOCALE_TESTS}
_CLASSES[b"alpha"] = _CLASSES[b"upper"] | _CLASSES[b"lower"]
_CLASSES[b"alnum"] = _CLASSES[b"alpha"] | _CLASSES[b"digit"]
_CLASSES[b"punct"] = _CLASSES[b"graph"] - _CLASSES[b"alnum"]


def fnmatch(pattern: bytes, subject: bytes) -> bool:
    """True when glibc's ``fnmatch(pattern, subject, 0)`` returns 0 (C locale)."""
    nul = pattern.find(0)
    if nul >= 0:
        pattern = pattern[:nul]
    nul = subject.find(0)
    if nul >= 0:
        subject = subject[:nul]
    compiled = _CACHE.get(pattern)
    if compiled is None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        compiled = _CACHE[pattern] = _compile(pattern)
    if compiled is _STEPWISE:
        return _fnmatch_stepwise(pattern, subject)
    return compiled.match(subject)


# --------------------------------------------------------------------------
# Compiled patterns: fixed-width segments between the stars
# --------------------------------------------------------------------------

#: A segment: literal bytes, or a compiled expression and its width.
_Segment = bytes | tuple["re.Pattern[bytes]", int]

_ALL_BYTES = frozenset(range(1, 256))


@dataclass(frozen=True, slots=True)
class _Compiled:
    """``segments[0]`` is anchored at the start; with ``star`` the last one is
    anchored at the end and those between are searched leftmost; without,
    the single segment must cover the whole subject.  ``never``: some
    element matches no byte at all."""

    segments: tuple[_Segment, ...]
    star: bool
    never: bool = False
    literal: bool = False  # every segment is literal bytes (the common case, matched without regexes)

    def match(self, subject: bytes) -> bool:
        if self.never:
            return False
        segs = self.segments
        if self.literal:
            return _match_literal(cast("tuple[bytes, ...]", segs), self.star, subject)
        if not self.star:
            return _at(segs[0], subject, 0, whole=True)
        first, last = segs[0], segs[-1]
        if not _at(first, subject, 0):
            return False
        n = _width(first)
        for seg in segs[1:-1]:
            found = _find(seg, subject, n)
            if found < 0:
                return False
            n = found + _width(seg)
        start = len(subject) - _width(last)
        return start >= n and _at(last, subject, start)


def _match_literal(segs: tuple[bytes, ...], star: bool, subject: bytes) -> bool:
    if not star:
        return subject == segs[0]
    first, last = segs[0], segs[-1]
    if not subject.startswith(first):
        return False
    n = len(first)
    find = subject.find
    for seg in segs[1:-1]:
        n = find(seg, n)
        if n < 0:
            return False
        n += len(seg)
    return len(subject) - len(last) >= n and subject.endswith(last)


def _width(seg: _Segment) -> int:
    return len(seg) if isinstance(seg, bytes) else seg[1]


def _at(seg: _Segment, subject: bytes, pos: int, whole: bool = False) -> bool:
    if isinstance(seg, bytes):
        if whole:
            return subject == seg
        return subject.startswith(seg, pos)
    rx, width = seg
    if whole:
        return len(subject) == width and rx.match(subject) is not None
    return rx.match(subject, pos) is not None


def _find(seg: _Segment, subject: bytes, pos: int) -> int:
    if isinstance(seg, bytes):
        return subject.find(seg, pos)
    m = seg[0].search(subject, pos)
    return -1 if m is None else m.start()


#: Marks a pattern that only the element-at-a-time loop can match.
_STEPWISE = _Compiled((), False, True)
#: A pattern with an element that matches no byte: it matches nothing.
_NEVER = _Compiled((), False, True)
_CACHE: dict[bytes, _Compiled] = {}
_CACHE_SIZE = 8192


def _compile(pattern: bytes) -> _Compiled:
    """Split ``pattern`` (no NUL) into segments of one-byte elements, or :data:`_STEPWISE`."""
    plen = len(pattern)
    segments: list[list[frozenset[int]]] = [[]]
    star = False
    p = 0
    while p < plen:
        c = pattern[p]
        if c == _STAR:
            star = True
            while p < plen and pattern[p] == _STAR:
                p += 1
            segments.append([])
            continue
        if c == _QUESTION:
            members, p = _ALL_BYTES, p + 1
        elif c == _BACKSLASH:
            if p + 1 == plen:  # a trailing backslash never matches
                members, p = frozenset(), p + 1
            else:
                members, p = frozenset((pattern[p + 1],)), p + 2
        elif c == _LBRACKET:
            element = _simple_bracket(pattern, p) or _bracket_element(pattern, p, plen)
            if element is None:
                return _STEPWISE
            members, p = element
        else:
            members, p = frozenset((c,)), p + 1
        if not members:
            return _NEVER
        segments[-1].append(members)
    compiled = tuple(_segment(seg) for seg in segments)
    return _Compiled(compiled, star, literal=all(isinstance(seg, bytes) for seg in compiled))


def _segment(elements: list[frozenset[int]]) -> _Segment:
    if all(len(e) == 1 for e in elements):
        return bytes(next(iter(e)) for e in elements)
    return re.compile(b"".join(_byte_class(e) for e in elements), re.DOTALL), len(elements)


def _byte_class(members: frozenset[int]) -> bytes:
    if members >= _ALL_BYTES:
        return b"."
    if len(members) == 1:
        return re.escape(bytes(members))
    out = bytearray(b"[")
    run: list[int] = []
    for b in [*sorted(members), -1]:
        if run and b == run[-1] + 1:
            run.append(b)
            continue
        if run:
            out += b"\\x%02x" % run[0]
            if len(run) > 1:
                out += b"-\\x%02x" % run[-1]
        run = [b]
    out += b"]"
    return bytes(out)


def _simple_bracket(pat: bytes, p: int) -> tuple[frozenset[int], int] | None:
    """The members and end of a plain ``[...]`` (bytes and ``x-y`` ranges only, no
    ``\\``, ``[`` or NUL inside, closed): what most patterns hold, decided
    without glibc's full scan.  None for anything else."""
    i = p + 1
    negate = i < len(pat) and pat[i] in (_BANG, _CARET)
    if negate:
        i += 1
    close = pat.find(b"]", i + 1)  # a "]" right after "[" or "[!" is a member
    if close < 0:
        return None
    body = pat[i:close]
    if b"\\" in body or b"[" in body:
        return None
    members: set[int] = set()
    k = 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == _DASH:
            members.update(range(body[k], body[k + 2] + 1))
            k += 3
        else:
            members.add(body[k])
            k += 1
    result = _ALL_BYTES - members if negate else frozenset(members) & _ALL_BYTES
    return frozenset(result), close + 1


def _bracket_element(pat: bytes, p: int, plen: int) -> tuple[frozenset[int], int] | None:
    """Members and end of the bracket expression at ``p`` by glibc's full scan
    (:func:`_bracket`) for every byte, or None if the end depends on the byte."""
    members: set[int] = set()
    ends: set[int] = set()
    for b in range(1, 256):
        nxt = _bracket(pat, p + 1, plen, b)
        if nxt == _UNTERMINATED:
            nxt = p + 1 if b == _LBRACKET else _FAIL
        if nxt >= 0:
            members.add(b)
            ends.add(nxt)
    if len(ends) > 1:
        return None
    return frozenset(members), (ends.pop() if ends else p + 1)


# --------------------------------------------------------------------------
# The element-at-a-time loop
# --------------------------------------------------------------------------


def _fnmatch_stepwise(pattern: bytes, subject: bytes) -> bool:
    """fnmatch for any pattern, one element at a time ("backtrack to the last star")."""
    plen = len(pattern)
    slen = len(subject)

    p = 0  # position in pattern
    n = 0  # position in subject
    star_p = -1  # pattern position just after the last '*' seen
    star_n = 0  # subject position that '*' currently stops at
    while True:
        if p < plen:
            c = pattern[p]
            if c == _STAR:
                while p < plen and pattern[p] == _STAR:
                    p += 1
                if p == plen:
                    return True  # trailing '*' swallows the rest
                width = _plain_tail_width(pattern, p, plen)
                if width >= 0:
                    # Last '*' and no bracket after it: glibc tries the rest at
                    # every later position, but it consumes exactly `width`
                    # bytes, so only the position `width` before the end can
                    # work.  Checking just that one keeps typical cases linear.
                    start = slen - width
                    return start >= n and _plain_match(pattern, p, plen, subject, start)
                star_p = p
                star_n = n
                continue
            if n < slen:
                ch = subject[n]
                if c == _QUESTION:
                    nxt = p + 1
                elif c == _BACKSLASH:
                    # "Trailing \ loses": p + 1 == plen never matches.
                    nxt = p + 2 if p + 1 < plen and pattern[p + 1] == ch else _FAIL
                elif c == _LBRACKET:
                    nxt = _bracket(pattern, p + 1, plen, ch)
                    if nxt == _UNTERMINATED:
                        nxt = p + 1 if ch == _LBRACKET else _FAIL
                else:
                    nxt = p + 1 if c == ch else _FAIL
                if nxt >= 0:
                    p = nxt
                    n += 1
                    continue
            # Every element other than '*' needs one subject byte.
        elif n == slen:
            return True
        # This attempt failed: let the last '*' swallow one more byte.
        if star_p < 0 or star_n >= slen:
            return False
        star_n += 1
        n = star_n
        p = star_p


def _plain_tail_width(pat: bytes, p: int, plen: int) -> int:
    """Subject bytes consumed by ``pat[p:]`` if it has no ``*`` and no ``[``, else -1.

    Literals, ``?`` and ``\\x`` each consume one byte.  A trailing backslash
    (which never matches) also gives -1: the general loop handles it.
    """
    width = 0
    while p < plen:
        c = pat[p]
        if c in (_STAR, _LBRACKET):
            return -1
        if c == _BACKSLASH:
            if p + 1 == plen:
                return -1
            p += 2
        else:
            p += 1
        width += 1
    return width


def _plain_match(pat: bytes, p: int, plen: int, subject: bytes, n: int) -> bool:
    """Match a tail accepted by :func:`_plain_tail_width` against ``subject[n:]``."""
    while p < plen:
        c = pat[p]
        if c == _BACKSLASH:
            p += 1
            if pat[p] != subject[n]:
                return False
        elif c != _QUESTION and c != subject[n]:
            return False
        p += 1
        n += 1
    return True


def _bracket(pat: bytes, start: int, plen: int, fn: int) -> int:
    """Match byte ``fn`` against the bracket expression opening at ``start - 1``.

    Returns the pattern index after the closing ``]`` on a match, ``_FAIL``,
    or ``_UNTERMINATED``.  Follows glibc's two scanning phases literally: the
    first scans members until one matches, the second ("matched") skips the
    rest of the expression, and the two do not treat malformed ``[:``, ``[=``
    and ``[.`` the same way.
    """

    def at(i: int) -> int:
        return pat[i] if i < plen else 0

    p = start
    negate = at(p) in (_BANG, _CARET)  # '^' too, unless POSIXLY_CORRECT is set
    if negate:
        p += 1
    c = at(p)
    p += 1
    matched = False
    while True:
        normal = False  # "goto normal_bracket" with member byte c
        member = False  # c is the byte after a member: maybe a range dash
        cold = 0
        if c == _BACKSLASH:
            if at(p) == 0:
                return _FAIL
            c = at(p)
            p += 1
            normal = True
        elif c == _LBRACKET and at(p) == _COLON:
            startp = p
            name_len = 0
            is_name = True
            while True:
                if name_len == _CHARCLASS_NAME_MAX:
                    return _FAIL
                p += 1
                c = at(p)
                if c == _COLON and at(p + 1) == _RBRACKET:
                    p += 2
                    break
                if c < _LOWER_A or c >= _LOWER_Z:
                    # Cannot be a class name: the '[' is an ordinary member.
                    p = startp
                    c = _LBRACKET
                    is_name = False
                    break
                name_len += 1
            if is_name:
                members = _CLASSES.get(pat[startp + 1 : startp + 1 + name_len])
                if members is None:
                    return _FAIL  # unknown class name
                if fn in members:
                    matched = True
                    break
                c = at(p)
                p += 1
            else:
                normal = True
        elif c == _LBRACKET and at(p) == _EQUALS:
            startp = p
            p += 1
            c = at(p)
            if c == 0:
                p = startp
                c = _LBRACKET
                normal = True
            else:
                equiv = c
                p += 1
                c = at(p)
                if c != _EQUALS or at(p + 1) != _RBRACKET:
                    p = startp
                    c = _LBRACKET
                    normal = True
                else:
                    p += 2
                    if fn == equiv:  # C locale: no collation rules, [=x=] is x
                        matched = True
                        break
                    c = at(p)
                    p += 1
        elif c == 0:
            return _UNTERMINATED
        else:
            if c == _LBRACKET and at(p) == _DOT:
                startp = p
                sym_len = 0
                while True:
                    p += 1
                    c = at(p)
                    if c == _DOT and at(p + 1) == _RBRACKET:
                        p += 2
                        break
                    if c == 0:
                        return _FAIL
                    sym_len += 1
                # No ']' test here, unlike the plain member case below.
                is_range = at(p) == _DASH and at(p + 1) != 0
                if sym_len != 1:
                    return _FAIL  # C locale: only the one-character [.x.]
                sym = pat[startp + 1]
                if not is_range and fn == sym:
                    matched = True
                    break
                cold = sym
                c = at(p)
                p += 1
                member = True
            else:
                normal = True
        if normal:
            # glibc "normal_bracket": c is a member byte, maybe a range start.
            is_range = at(p) == _DASH and at(p + 1) not in (0, _RBRACKET)
            if not is_range and c == fn:
                matched = True
                break
            cold = c
            c = at(p)
            p += 1
            member = True
        if member and c == _DASH and at(p) != _RBRACKET:
            # A range cold-cend; the end may be escaped or a [.x.].
            cend = at(p)
            p += 1
            if cend == _LBRACKET and at(p) == _DOT:
                startp = p
                sym_len = 0
                while True:
                    p += 1
                    if at(p) == _DOT and at(p + 1) == _RBRACKET:
                        p += 2
                        break
                    if at(p) == 0:
                        return _FAIL
                    sym_len += 1
                if sym_len != 1:
                    return _FAIL
                cend = pat[startp + 1]
            else:
                if cend == _BACKSLASH:
                    cend = at(p)
                    p += 1
                if cend == 0:
                    return _FAIL
            if cold <= fn <= cend:
                matched = True
                break
            c = at(p)
            p += 1
        if c == _RBRACKET:
            break
    if not matched:
        return _FAIL if not negate else p
    # Skip the rest of the expression that already matched.
    while True:
        c = at(p)
        p += 1
        if c == _RBRACKET:
            break
        if c == 0:
            return _UNTERMINATED
        if c == _BACKSLASH:
            if at(p) == 0:
                return _FAIL
            p += 1
        elif c == _LBRACKET and at(p) == _COLON:
            startp = p
            count = 0
            while True:
                p += 1
                c = at(p)
                count += 1
                if count == _CHARCLASS_NAME_MAX:
                    return _FAIL
                if c == _COLON and at(p + 1) == _RBRACKET:
                    break
                if c < _LOWER_A or c >= _LOWER_Z:
                    p = startp - 2
                    break
            p += 2
        elif c == _LBRACKET and at(p) == _EQUALS:
            p += 1
            if at(p) == 0:
                return _FAIL
            p += 1
            if at(p) != _EQUALS or at(p + 1) != _RBRACKET:
                return _FAIL
            p += 2
        elif c == _LBRACKET and at(p) == _DOT:
            while True:
                p += 1
                c = at(p)
                if c == 0:
                    return _FAIL
                if c == _DOT and at(p + 1) == _RBRACKET:
                    break
            p += 2
    return _FAIL if negate else p
