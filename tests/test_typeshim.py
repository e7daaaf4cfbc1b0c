"""What a depmod run does not import, and the stand-ins that spare it.

A ``moddeps depmod`` imports neither :mod:`typing`, :mod:`re`, :mod:`enum`,
``signal.py`` nor :mod:`dataclasses` (each costs 10-40 M instructions of
start-up, a cloud tree's whole run is ~330 M): :mod:`moddeps.typeshim` stands
in for ``typing.NamedTuple``, ``cast`` and ``overload``, :mod:`moddeps.records`
for dataclasses, and the few regular expressions of the depmod path became
small parsers.  Here: the stand-in against ``typing.NamedTuple``, each parser
against the expression it replaced, and the processes' imports.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from moddeps import kmodversion
from moddeps.depmod import outputs, writer
from moddeps.depmod.run import check_version
from moddeps.errors import UsageError
from moddeps.typeshim import NamedTuple

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_modules"


class Mine(NamedTuple):
    """A record."""

    name: str
    count: int = 0
    tags: tuple[str, ...] = ()

    def shown(self) -> str:
        return f"{self.name}:{self.count}"


class Theirs(typing.NamedTuple):
    """A record."""

    name: str
    count: int = 0
    tags: tuple[str, ...] = ()

    def shown(self) -> str:
        return f"{self.name}:{self.count}"


def test_named_tuple_behaves_as_typing_makes_it() -> None:
    mine, theirs = Mine("a", 2), Theirs("a", 2)
    assert type(mine).__mro__[1:] == type(theirs).__mro__[1:] == (tuple, object)
    assert mine == theirs == ("a", 2, ())
    assert repr(mine) == repr(theirs).replace("Theirs", "Mine")
    assert Mine._fields == Theirs._fields and Mine._field_defaults == Theirs._field_defaults
    assert Mine.__doc__ == Theirs.__doc__ == "A record."
    assert mine.shown() == theirs.shown() == "a:2"
    assert mine._replace(count=3) == Mine(name="a", count=3)
    assert mine._asdict() == theirs._asdict()
    assert Mine._make(["b", 1, ("x",)]).tags == ("x",)
    assert Mine.__module__ == __name__ and Mine.__qualname__ == "Mine"
    assert typing.get_type_hints(Mine) == typing.get_type_hints(Theirs)
    assert pickle.loads(pickle.dumps(mine)) == mine and type(pickle.loads(pickle.dumps(mine))) is Mine
    match mine:
        case Mine(name, count):
            assert (name, count) == ("a", 2)
    with pytest.raises(AttributeError):
        mine.name = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Mine()  # type: ignore[call-arg]


def test_named_tuple_refuses_what_typing_refuses() -> None:
    with pytest.raises(TypeError, match="without a default follows"):
        class _Bad(NamedTuple):  # pyright: ignore
            a: int = 0
            b: int  # type: ignore[misc]
    with pytest.raises(AttributeError, match="_replace"):
        class _Worse(NamedTuple):
            a: int

            def _replace(self) -> None:  # type: ignore[override]
                pass


BLANKS = st.sampled_from([" ", "\t", "\n", "\v", "\f", "\r", "\x1c", "\u00a0", ""])
TEXT = st.lists(st.one_of(st.sampled_from(["+", "-", ".", "1", "23", "0", "\u0663", "x", "kmod", "KMOD",
                                           "\u212amod", ":", "-"]), BLANKS), max_size=8).map("".join)


@given(TEXT)
@example("6.1.0-50-amd64")
@example(" +6.\t-1")
@example("\u0663.\u0664")
@example("6")
@example("6.")
def test_version_check_reads_what_the_pattern_read(version: str) -> None:
    pattern = re.compile(r"[ \t\n\v\f\r]*[+-]?\d+\.[ \t\n\v\f\r]*[+-]?\d+")
    try:
        check_version(version)
        accepted = True
    except UsageError:
        accepted = False
    assert accepted == (pattern.match(version) is not None)


NAMES = st.lists(st.sampled_from(["modules", ".", "dep", "bin", "alias", "D", "\u00e9", "1", "", "-",
                                  ".moddeps-tmp.", "42", "\u0663", "\n", "x"]), max_size=8).map("".join)


@given(NAMES)
@example("modules.dep.bin")
@example(".modules.dep.moddeps-tmp.123")
@example(".modules.dep.moddeps-tmp.")
@example(".modules.moddeps-tmp.1")
@example(".modules.dep.moddeps-tmp.\u0663")
@example("modules.dep\n")
def test_output_and_temporary_names_are_those_of_the_patterns(name: str) -> None:
    output = re.compile(r"modules(?:\.[a-z]+)+\Z")
    tmp = re.compile(r"\.(modules(?:\.[a-z]+)+)\.moddeps-tmp\.[0-9]+\Z")
    assert writer.is_output_name(name) == (output.match(name) is not None)
    assert writer.is_temporary(name) == (tmp.match(name) is not None or name == ".moddeps.journal.moddeps-tmp")


ALIASES = st.lists(st.sampled_from([b"char-major-", b"block-major-", b"-", b"+", b"1", b"42", b"4294967297",
                                    b" ", b"\t", b"\x0b", b"x", b"*", b"\xd9\xa3"]), max_size=8).map(b"".join)


@given(ALIASES)
@example(b"char-major-10-200")
@example(b"block-major-\t7-+1")
@example(b"char-major--1- -2x")
@example(b"char-major-10")
def test_devname_majors_are_read_as_the_patterns_read_them(alias: bytes) -> None:
    u = rb"[ \t\n\v\f\r]*([+-]?[0-9]+)"
    found = None
    for letter, pattern in ((b"c", rb"char-major-" + u + rb"-" + u), (b"b", rb"block-major-" + u + rb"-" + u)):
        mt = re.match(pattern, alias)
        if mt:
            found = (letter, int(mt.group(1)) & 0xFFFFFFFF, int(mt.group(2)) & 0xFFFFFFFF)
            break
    aliases = ["devname:foo", alias.decode("utf-8", "surrogateescape")]
    line, _devname, _error = outputs.devname_of("m", aliases)
    if found is None:
        assert line is None
    else:
        letter, major, minor = found
        assert line == b"m foo " + letter + b"%u:%u" % (major, minor) + b"\n"


@given(TEXT)
@example(" 34 ")
@example("kmod 33")
@example("\u212amod 34.2")
@example("\u0663\u0664")
@example("34\n")
def test_kmod_release_values_are_read_as_the_pattern_read_them(value: str) -> None:
    mt = re.match(r"^\s*(?:kmod\s*)?(\d+)(?:\.\d+)*\s*$", value, re.IGNORECASE)
    expected = int(mt.group(1)) if mt else None
    try:
        got: int | None = kmodversion.parse(value).version
    except UsageError:
        got = None
    assert got == (expected if expected in kmodversion.SUPPORTED else None)


@given(st.lists(st.sampled_from([b"Package: kmod\n", b"package:\tKMOD \n", b"Package: kmod-extra\n",
                                 b"Xpackage: kmod\n", b"Status: install ok installed\n", b"Version: 34.2-2\n",
                                 b"\n", b"Package: kmod", b"Package: kmod\r\n", b" package: kmod\n"]),
                max_size=10).map(b"".join))
def test_dpkg_stanzas_are_found_as_the_pattern_found_them(data: bytes) -> None:
    pattern = re.compile(rb"^package:[ \t]*kmod[ \t]*$", re.MULTILINE | re.IGNORECASE)
    assert kmodversion._kmod_package_lines(data) == [(m.start(), m.end()) for m in pattern.finditer(data)]


# ---------------------------------------------------------------------------
# the processes
# ---------------------------------------------------------------------------

#: Modules no depmod run imports (signal: the Python module over _signal).
NEVER = ("typing", "re", "enum", "signal", "dataclasses", "inspect", "ast", "typer", "click", "rich")
MAIN = "import sys; from moddeps.cli import main; sys.argv[0] = 'moddeps'; main()"


def _imports(args: list[str], tmp: Path) -> list[str]:
    """The modules a ``moddeps depmod ARGS`` process imports (``-S``: none by site or .pth files)."""
    env = {**os.environ, "MODDEPS_CACHE": str(tmp / "cache.sqlite3"), "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-S", "-X", "importtime", "-c", MAIN, "depmod", *args],
                       capture_output=True, env=env, timeout=120, cwd=tmp)
    assert r.returncode == 0, r.stderr.decode()
    return [line.split("|")[-1].strip() for line in r.stderr.decode().splitlines() if line.startswith("import time")]


@pytest.mark.parametrize("cache", [False, True], ids=["no-cache", "cache"])
def test_a_depmod_run_imports_none_of_the_costly_modules(cache: bool, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(SAMPLE, root, symlinks=True)
    version = sorted(os.listdir(root / "lib" / "modules"))[0]
    for cycle in (root / "lib" / "modules" / version).rglob("mdx_cycle_*.ko"):  # the sample's deliberate cycle
        cycle.unlink()
    args = ["-b", str(root), version, *([] if cache else ["--no-cache"])]
    runs = [_imports(args, tmp_path)] + ([_imports(args, tmp_path)] if cache else [])  # first run, then a rerun
    for imported in runs:
        assert not [m for m in imported if m.split(".")[0] in NEVER]
    assert "moddeps.depmod.run" in runs[0] and "moddeps.read.elfreader" in runs[0]
    assert ("sqlite3" in runs[0]) == cache
    assert "lzma" not in runs[0]  # no compressed module in the sample
    assert (root / "lib" / "modules" / version / "modules.dep.bin").exists()
