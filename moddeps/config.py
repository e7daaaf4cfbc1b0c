"""depmod.d configuration: ``search``, ``override``, ``external``, ``exclude``.

Semantics of kmod 30 to 34.2 (kmod tools/depmod.c:cfg_load, cfg_file_parse@v34.2),
the same in every release but for the default directories (:func:`default_dirs`).
Files are read as bytes (a ``\r`` stays in its token, as in kmod) through
:mod:`moddeps.inputfiles`: one that is not a regular file is said and
skipped instead of waited on.  One deliberate difference: kmod reads the
*host's* default directories (``/etc/depmod.d``...) even under ``-b``;
moddeps reads them under BASEDIR so that a run is hermetic (``-C`` names
config explicitly, exactly as in kmod).  See ``docs/depmod-outputs.md#configuration``.
"""

from __future__ import annotations

import functools
import os

from .inputfiles import try_read
from .kmodnames import config_basedir
from .model import printable
from .records import dataclass

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Sequence

#: kmod 32 and later's default directories, in priority order: of two files with one base
#: name the one in the earlier directory is read (kmod tools/depmod.c:default_cfg_paths@v34.2;
#: /usr/lib is the build's DISTCONFDIR, Debian's and kmod's default, added by commit 8463809f8a29)
DEFAULT_DIRS = ("/etc/depmod.d", "/run/depmod.d", "/usr/local/lib/depmod.d", "/usr/lib/depmod.d", "/lib/depmod.d")
#: kmod 30 and 31's: the same without /usr/lib/depmod.d (kmod tools/depmod.c:default_cfg_paths@v30)
DEFAULT_DIRS_KMOD30 = tuple(d for d in DEFAULT_DIRS if d != "/usr/lib/depmod.d")


def default_dirs(usr_lib_dir: bool = True) -> tuple[str, ...]:
    """The default depmod.d directories: kmod >= 32's (``usr_lib_dir``,
    :attr:`~moddeps.kmodversion.KmodTarget.usr_lib_depmod_d`) or kmod 30's."""
    return DEFAULT_DIRS if usr_lib_dir else DEFAULT_DIRS_KMOD30


@dataclass(frozen=True, slots=True)
class Override:
    modname: str  # verbatim, not normalised (kmod compares file-name characters)
    subdir: str

    @property
    def path(self) -> str:
        return f"{self.subdir}/{self.modname}"


@dataclass(frozen=True, slots=True)
class DepmodConfig:
    """Parsed depmod.d.  Lists are in *file order*; kmod's internal lists are
    built by prepending, so its walks run from the last entry to the first
    (the :attr:`search_internal` etc. properties give that order)."""

    search: tuple[str, ...] = ()  # directory paths, "built-in", "external"
    overrides: tuple[Override, ...] = ()
    externals: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # config files read, in parse order
    messages: tuple[str, ...] = ()  # kmod-style "depmod: ERROR: ..." lines

    @property
    def effective_search(self) -> tuple[str, ...]:
        """Search entries in priority order (highest first); default ``updates``.

        kmod tools/depmod.c (cfg_load): with no ``search`` line the list is
        exactly ``[updates]``: no implicit ``built-in`` entry.
        """
        return self.search if self.search else ("updates",)


def _version_matches(pattern: str, kver: str) -> bool:
    """kmod tools/depmod.c (cfg_kernel_matches): ``*``, or ``regcomp(REG_EXTENDED |
    REG_NOSUB)`` + ``regexec`` (an unanchored POSIX ERE search); a pattern that
    does not compile matches nothing.

    The C library's own regex engine is used, so that classes like
    ``[[:digit:]]`` work and Python-only syntax (``\\d``, ``(?i)``) does not,
    exactly as in kmod; Python's ``re`` would also hang on ``(.*.*)*!``.
    """
    if pattern == "*":
        return True
    return _posix_ere_search(pattern.encode("utf-8", "surrogateescape"), kver.encode("utf-8", "surrogateescape"))


_REG_EXTENDED = 1
_REG_NOSUB = 8


@functools.cache
def _libc() -> object | None:
    """The C library's regex functions, loaded when the first pattern is matched, not
    at import, which every depmod run pays for: ctypes.util's find_library runs
    ``ldconfig -p``, and with ctypes' imports that was 3% of a warm depmod's
    instructions."""
    try:
        import ctypes
        import ctypes.util

        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        for name in ("regcomp", "regexec", "regfree"):
            getattr(lib, name)
        return lib
    except (OSError, AttributeError):  # pragma: no cover - no C library regex here
        return None


def _posix_ere_search(pattern: bytes, subject: bytes) -> bool:
    if b"\0" in pattern:  # C sees the pattern up to its first NUL
        pattern = pattern[: pattern.index(b"\0")]
    lib = _libc()
    if lib is None:  # pragma: no cover - fall back to Python's engine
        import re

        try:
            return re.search(pattern.decode("latin-1"), subject.decode("latin-1")) is not None
        except (re.error, RecursionError, OverflowError):
            return False
    import ctypes

    buf = ctypes.create_string_buffer(1024)  # larger than regex_t on every glibc ABI
    if lib.regcomp(buf, pattern, _REG_EXTENDED | _REG_NOSUB) != 0:  # type: ignore[attr-defined]
        return False
    try:
        return bool(lib.regexec(buf, subject, 0, None, 0) == 0)  # type: ignore[attr-defined]
    finally:
        lib.regfree(buf)  # type: ignore[attr-defined]


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Split config text as kmod's getline_wrapped does.

    A backslash-newline joins lines (no space); a backslash before any other
    character is dropped and the character kept.  Each logical line is paired
    with the number of the last physical line it covers.
    """
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    lineno = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "\n":
                lineno += 1
            else:
                buf.append(nxt)
            i += 2
            continue
        if c == "\n":
            lineno += 1
            out.append((lineno, "".join(buf)))
            buf = []
        else:
            buf.append(c)
        i += 1
    if buf:
        out.append((lineno + 1, "".join(buf)))
    return out


def collect_files(paths: list[str]) -> tuple[list[str], list[str]]:
    """The config files to parse, sorted by basename, first path winning a name clash.

    kmod tools/depmod.c (conf_files_list): a non-directory is one file; in a
    directory, entries starting with ``.``, not ending in ``.conf`` (or
    shorter than 6 characters) and subdirectories are skipped.
    """
    seen: dict[str, str] = {}
    messages: list[str] = []
    for path in paths:
        try:
            is_dir = os.path.isdir(path)
        except OSError:
            continue
        if not os.path.exists(path):
            continue
        if not is_dir:
            seen.setdefault(os.path.basename(path), path)
            continue
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if name.startswith(".") or len(name) < 6 or not name.endswith(".conf"):
                continue
            if entry.is_dir():
                messages.append(f"Directories inside directories are not supported: {path}/{name}")
                continue
            seen.setdefault(name, os.path.join(path, name))
    ordered = [seen[k] for k in sorted(seen, key=lambda s: s.encode("utf-8", "surrogateescape"))]
    return ordered, messages


def parse_text(text: str, filename: str, kver: str) -> tuple[DepmodConfig, list[str]]:
    """Parse one depmod.d file.  Returns the entries and kmod-style error texts."""
    search: list[str] = []
    overrides: list[Override] = []
    externals: list[str] = []
    excludes: list[str] = []
    errors: list[str] = []
    for lineno, line in _logical_lines(text):
        if not line or line.startswith("#"):
            continue
        # kmod splits on runs of blanks and tabs only (a "\r" stays in a token)
        tokens = [t for t in line.replace("\t", " ").split(" ") if t]
        if not tokens:
            continue
        cmd = tokens[0]
        if cmd == "search":
            search.extend(tokens[1:])
        elif cmd == "override" and len(tokens) >= 4:
            if _version_matches(tokens[2], kver):
                overrides.append(Override(tokens[1], tokens[3]))
        elif cmd == "external" and len(tokens) >= 3:
            if _version_matches(tokens[1], kver):
                externals.append(tokens[2])
        elif cmd == "exclude":
            excludes.extend(tokens[1:])
        elif cmd in ("include", "make_map_files"):
            pass
        else:
            errors.append(f"{filename}:{lineno}: ignoring bad line starting with '{cmd}'")
    return DepmodConfig(tuple(search), tuple(overrides), tuple(externals), tuple(excludes)), errors


def load(paths: list[str] | None, kver: str, basedir: str = "", *, usr_lib_dir: bool = True) -> DepmodConfig:
    """Read depmod.d.  ``paths`` are ``-C`` arguments (used as given); without
    them the default directories are read under ``basedir``: kmod 32 and
    later's, ``/usr/lib/depmod.d`` included (``usr_lib_dir``, the default
    release's rule), or kmod 30's (see :func:`default_dirs`)."""
    if paths:
        search_paths = list(paths)
    else:
        base = basedir.rstrip("/")
        search_paths = [base + d for d in default_dirs(usr_lib_dir)]
    files, messages = collect_files(search_paths)
    search: list[str] = []
    overrides: list[Override] = []
    externals: list[str] = []
    excludes: list[str] = []
    errors = [f"ERROR: {m}" for m in messages]
    for path in files:
        data, why = try_read(path)
        if data is None:
            if why is not None:  # a FIFO, a device, too big: said, then skipped (never waited on)
                errors.append(f"ERROR: {printable(path)}: cannot read: {why}; skipped")
            continue
        # bytes as kmod reads them: no newline translation, a "\r" stays in its token
        text = data.decode("utf-8", "surrogateescape")
        cfg, errs = parse_text(text, path, kver)
        search.extend(cfg.search)
        overrides.extend(cfg.overrides)
        externals.extend(cfg.externals)
        excludes.extend(cfg.excludes)
        errors.extend(f"ERROR: {e}" for e in errs)
    return DepmodConfig(tuple(search), tuple(overrides), tuple(externals), tuple(excludes), tuple(files), tuple(errors))


def for_tree(dirname: str, *, basedir: str | None = None, paths: Sequence[str] | None = None) -> DepmodConfig:
    """depmod.d as depmod reads it for the module directory ``dirname`` (``.../VERSION``):
    ``paths`` (``-C``) when given, else the default directories under ``basedir`` (``-b``),
    else under the root above ``[usr/]lib/modules/VERSION``; none for a directory elsewhere
    (:func:`moddeps.kmodnames.config_basedir`).  What every command but depmod reads."""
    version = os.path.basename(os.path.abspath(dirname))
    return load(list(paths) if paths else None, version, config_basedir(dirname, basedir))
