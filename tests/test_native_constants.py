"""The constants, tables and texts the C accelerators share with Python are equal.

The C sources mark each constant that mirrors a Python one with the name it
must equal, after the value::

    #define MAX_NAME 4096 /* = moddeps.read.elfreader:MAX_NAME */
    #define PKEY_ID_COUNT 3 /* = len(moddeps.signature:PKEY_ID_TYPE) */
    #define EM_SPARCV9 43u /* = moddeps.read.elfreader:EM_SPARC[1] */
    enum { E_GPL = 1, ... }; /* = moddeps.read.recordcodec:* */   (each name, the same name there)

A string is compared as bytes, or as text with each printf conversion (``%S``,
``%U``) standing for a ``{}`` of the Python format.  The tables the C code
walks (section names, digest OIDs, the record's fields) are compared here one
by one, and the build files must name every C source and header.  Nothing
here needs the extensions built: the sources are read as text.
"""

from __future__ import annotations

import ast
import importlib
import re

import pytest

from moddeps import signature
from moddeps.depmod.reads import MODINFO_KEYS
from moddeps.read import elfreader, recordcodec

from .conftest import ACCELERATORS, ROOT

SOURCES = sorted(p for p in (ROOT / "moddeps").rglob("*") if p.suffix in (".c", ".h"))

_DEFINE = re.compile(r"^#define\s+(\w+)\s+(.+?)\s*/\*\s*=\s*(.+?)\s*\*/\s*$", re.M)
_ENUM = re.compile(r"enum\s*\{([^}]*)\}\s*;\s*/\*\s*=\s*([\w.]+):\*\s*\*/")
_TARGET = re.compile(r"^(len\()?([\w.]+):(\w+)(?:\[(\d+)\])?(\))?(?:,.*)?$")


def _text(name: str) -> str:
    return (ROOT / "moddeps" / name).read_text()


def _c_value(literal: str) -> int | bytes:
    """An integer or string literal of the C sources (parentheses and suffixes allowed)."""
    literal = literal.strip()
    while literal.startswith("(") and literal.endswith(")"):
        literal = literal[1:-1].strip()
    if literal.startswith('"'):
        value = ast.literal_eval("b" + literal)  # the escapes used (\n, \xNN) mean the same in both
        assert isinstance(value, bytes)
        return value
    return int(literal.rstrip("uUlL"), 0)


def _python_value(target: str) -> object:
    m = _TARGET.match(target)
    assert m is not None, f"cannot read the annotation {target!r}"
    length, module, name, index, close = m.groups()
    assert bool(length) == bool(close), f"unbalanced len(...) in {target!r}"
    value = getattr(importlib.import_module(module), name)
    if index is not None:
        value = value[int(index)]
    return len(value) if length else value


def _annotations() -> list[tuple[str, str, str, str]]:
    """(source, C name, C value, annotation) for every annotated constant."""
    found = []
    for path in SOURCES:
        text = path.read_text()
        rel = str(path.relative_to(ROOT))
        for m in _DEFINE.finditer(text):
            found.append((rel, m.group(1), m.group(2), m.group(3)))
        for m in _ENUM.finditer(text):
            for member in m.group(1).split(","):
                if member.strip():
                    cname, _, value = member.partition("=")
                    found.append((rel, cname.strip(), value.strip(), f"{m.group(2)}:{cname.strip()}"))
    return found


ANNOTATED = _annotations()


@pytest.mark.parametrize(("source", "cname", "cvalue", "target"), ANNOTATED, ids=[f"{a[0]}:{a[1]}" for a in ANNOTATED])
def test_constant_equals_its_python_twin(source: str, cname: str, cvalue: str, target: str) -> None:
    want = _python_value(target)
    got = _c_value(cvalue)
    if isinstance(want, str):
        assert isinstance(got, bytes)
        text = re.sub(r"%[SUsd]", "{}", got.decode())
        assert text == want, f"{source}: {cname} is {text!r}, {target} is {want!r}"
    else:
        assert got == want, f"{source}: {cname} is {got!r}, {target} is {want!r}"


#: The C constants that must stay annotated (an annotation dropped would stop its check unseen).
MUST_BE_CHECKED = {
    "moddeps/_elfscan.c": {"MAX_NAME", "SHN_UNDEF", "SHN_ABS", "STB_WEAK", "STT_SPARC_REGISTER", "EM_SPARC",
                           "EM_SPARCV9", "KSYM_FLAG_GPL_ONLY", "SIG_MAGIC", "PKEY_ALGO_COUNT", "PKEY_HASH_COUNT",
                           "PKEY_ID_COUNT", "PKEY_ID_PKCS7", "SIGNED_DATA_OID"},
    "moddeps/_elfscan_codec.c": {"RC_FORMAT", "RC_FORMAT_SIGNED", "RC_HEADER", "RC_FIELDS", "F_INIT", "F_EXIT",
                                 "F_COMPRESSION", "F_ERROR", "F_KMOD_ERROR", "F_CRC64", "E_GPL", "E_PSEUDO", "E_NS",
                                 "E_CRC", "I_WEAK", "I_VERSIONS_ONLY", "I_CRC", "I_EXT_CRC"},
    "moddeps/depmod/_trie.c": {"INDEX_MAGIC", "INDEX_VERSION", "F_PREFIX", "F_VALUES", "F_CHILDS", "OFFSET_MASK",
                               "HEADER_SIZE", "CHILD_MAX", "PATH_MAX_"},
    "moddeps/depmod/_trie.h": {"KERNEL"},
    "moddeps/depmod/_trie_resolve.c": {"MSG_UNKNOWN_SYMBOL", "MSG_DISAGREES"},
}


def test_the_shared_constants_are_annotated() -> None:
    have: dict[str, set[str]] = {}
    for source, cname, _value, _target in ANNOTATED:
        have.setdefault(source, set()).add(cname)
    for source, names in MUST_BE_CHECKED.items():
        assert names <= have.get(source, set()), f"{source}: not annotated: {sorted(names - have.get(source, set()))}"


def _strings(block: str) -> list[bytes]:
    return [ast.literal_eval('b"' + s + '"') for s in re.findall(r'"((?:[^"\\]|\\.)*)"', block)]


def test_section_names() -> None:
    """The sections the C reader locates are elfreader's, with their lengths right."""
    block = re.search(r"\} wanted\[S_COUNT\] = \{(.*?)\};", _text("_elfscan.c"), re.S)
    assert block is not None
    pairs = re.findall(r'\{"([^"]*)",\s*(\d+)\}', block.group(1))
    assert [name.encode() for name, _ in pairs] == list(elfreader._WANTED_SECTIONS)
    assert all(len(name) == int(n) for name, n in pairs)


def _oid_text(der: bytes) -> str:
    """The dotted form of DER OBJECT IDENTIFIER contents."""
    arcs, value = [], 0
    for b in der:
        value = value << 7 | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))


def test_digest_names() -> None:
    """Each digest the C walker names has the name signature.py gives its OID."""
    block = re.search(r"\} digest_names\[\] = \{(.*?)\};", _text("_elfscan.c"), re.S)
    assert block is not None
    rows = re.findall(r'\{"((?:[^"\\]|\\.)*)",\s*(\d+),\s*"([^"]*)"\}', block.group(1))
    assert len(rows) >= 8
    for oid, n, name in rows:
        der = ast.literal_eval('b"' + oid + '"')
        assert len(der) == int(n), oid
        assert signature._OPENSSL_DIGEST_NAMES[_oid_text(der)] == name


def test_record_fields() -> None:
    block = re.search(r"field_names\[RC_FIELDS\] = \{(.*?)\};", _text("_elfscan_codec.c"), re.S)
    assert block is not None
    assert tuple(s.decode() for s in _strings(block.group(1))) == recordcodec._FIELDS


def test_select_modinfo_takes_every_key_the_writers_read() -> None:
    """More keys than SELECT_MAX would make the C select_modinfo decline on every run."""
    m = re.search(r"^#define SELECT_MAX (\d+)$", _text("depmod/_trie.c"), re.M)
    assert m is not None
    assert len(MODINFO_KEYS) <= int(m.group(1))


def test_build_files_name_every_source() -> None:
    """setup.py builds every C source and rebuilds on every header; conftest's staleness check watches them."""
    setup = (ROOT / "setup.py").read_text()
    watched = {s for sources in ACCELERATORS.values() for s in sources}
    for path in SOURCES:
        rel = str(path.relative_to(ROOT))
        assert f'"{rel}"' in setup, f"setup.py does not name {rel}"
        assert rel in watched, f"tests/conftest.py ACCELERATORS does not watch {rel}"
