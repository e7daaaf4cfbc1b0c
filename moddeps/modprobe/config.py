"""modprobe.d, parsed exactly as libkmod parses it (kmod 30's rules, or kmod 33's with ``weakdep``).

What libkmod reads, in this order (kmod libkmod/libkmod-config.c,
kmod_config_new):

1. The file list.  ``modules.softdep`` of the module directory is entered
   first, then every config path in the order given: a directory contributes
   each entry whose name does not start with ``.`` and ends in ``.conf`` or,
   up to kmod 32, ``.alias`` (at least 6 characters; subdirectories are
   refused with an error), a plain file contributes itself whatever its name.
   kmod 33 reads no ``.alias`` file from a directory (libkmod/libkmod-config.c:
   conf_files_filter_out@v34.2, commit 29cc8c2e700d).  The list is
   kept sorted by *file name* (byte order) and a name already present is
   ignored, so the first directory wins a name, and ``modules.softdep`` sorts
   among the config files: a config ``softdep`` in ``a.conf`` is seen before
   the module's own, one in ``z.conf`` after it.
2. Each file is read as logical lines (kmod shared/util.c,
   freadline_wrapped): backslash-newline joins lines, a backslash before any
   other byte is dropped, a backslash at end of file becomes byte 0xFF.
3. Each line is split with ``strtok_r(" \\t")``.  ``alias``, ``blacklist``,
   ``options``, ``install``, ``remove`` and ``softdep`` are understood;
   ``include`` and ``config`` are "deprecated and not parsed"; ``weakdep`` is
   understood from kmod 33 on (``weakdep=False``: kmod 30-32); anything else
   is "ignoring bad line".  Module names and
   alias patterns go through kmod's ``underscores()`` (``-`` -> ``_`` outside
   ``[...]``; an unmatched bracket makes the line bad).
4. The kernel command line is parsed last (``modprobe.blacklist=a,b`` and
   ``module.param=value``): its options come after every file's.  moddeps
   never reads the running kernel's ``/proc/cmdline`` on its own; pass its
   text as ``kernel_cmdline`` to reproduce a host's modprobe.

Every list keeps file order; lookups take the *first* match where libkmod
does (softdep, weakdep, install, remove) and every match where it does
(alias, options, blacklist).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from ..globmatch import fnmatch
from ..inputfiles import try_read
from ..model import fsdecode, fsencode, printable
from ..records import dataclass, field

__all__ = [
    "Alias",
    "Blacklist",
    "Command",
    "ModprobeConfig",
    "ModprobeOptions",
    "Rule",
    "Softdep",
    "Weakdep",
    "config_file_list",
    "default_config_paths",
    "load",
    "parse_kernel_cmdline",
    "parse_text",
    "underscores",
]

#: kmod 32 to 34 (libkmod/libkmod.c: default_config_paths@v34.2): SYSCONFDIR/modprobe.d,
#: /run/modprobe.d, /usr/local/lib/modprobe.d, DISTCONFDIR/modprobe.d (/usr/lib/modprobe.d
#: as distributions build kmod; added by commit 8463809f8a29, v32), /lib/modprobe.d.  A file
#: name met twice is read once, from the first directory, so on a root that is not
#: merged-/usr ``/usr/lib/modprobe.d/x.conf`` hides ``/lib/modprobe.d/x.conf``.
DEFAULT_DIRS = ("/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/usr/lib/modprobe.d",
                "/lib/modprobe.d")
#: kmod 30 and 31: no /usr/lib/modprobe.d
DEFAULT_DIRS_KMOD30 = tuple(d for d in DEFAULT_DIRS if d != "/usr/lib/modprobe.d")

#: kmod libkmod/libkmod-config.c: KCMD_LINE_SIZE; read_str_safe keeps one byte for the NUL.
_KCMD_LINE_SIZE = 4096
_C_SPACE = " \t\n\v\f\r"  # isspace() in the C locale


@dataclass(frozen=True, slots=True)
class Rule:
    """Where a configuration entry comes from."""

    file: str  # the path read ("<kernel command line>" for /proc/cmdline)
    line: int  # kmod's line counter: the last physical line of the logical line
    text: str  # the logical line as read

    def __str__(self) -> str:
        return f"{self.text.strip()} ({self.file}:{self.line})" if self.line else f"{self.text} ({self.file})"


@dataclass(frozen=True, slots=True)
class Alias:
    pattern: str  # fnmatch pattern, underscored
    modname: str  # underscored, not otherwise normalised
    rule: Rule


@dataclass(frozen=True, slots=True)
class ModprobeOptions:
    modname: str  # a module name or a config alias pattern, matched with == (not fnmatch)
    options: str  # as written after the name, tabs turned into spaces
    rule: Rule


@dataclass(frozen=True, slots=True)
class Command:
    pattern: str  # fnmatch pattern (install/remove lookups), underscored
    command: str  # as written after the name
    rule: Rule


@dataclass(frozen=True, slots=True)
class Blacklist:
    modname: str
    rule: Rule


@dataclass(frozen=True, slots=True)
class Softdep:
    pattern: str
    pre: tuple[str, ...]
    post: tuple[str, ...]
    rule: Rule


@dataclass(frozen=True, slots=True)
class Weakdep:
    """kmod 33's ``weakdep MODULE DEP...`` (kmod 30-32 call the line bad)."""

    pattern: str
    weak: tuple[str, ...]
    rule: Rule


@dataclass(frozen=True, slots=True)
class ModprobeConfig:
    """Everything libkmod knows from modprobe.d, in libkmod's list order."""

    aliases: tuple[Alias, ...] = ()
    options: tuple[ModprobeOptions, ...] = ()
    install: tuple[Command, ...] = ()
    remove: tuple[Command, ...] = ()
    blacklist: tuple[Blacklist, ...] = ()
    softdeps: tuple[Softdep, ...] = ()
    weakdeps: tuple[Weakdep, ...] = ()
    files: tuple[str, ...] = ()  # files read, in reading order
    messages: tuple[str, ...] = ()  # kmod's diagnostics ("ERROR: ...")
    notes: tuple[str, ...] = field(default=(), compare=False)  # moddeps' own remarks
    #: aliases_matching's answers by name: the planner asks again for every module an
    #: alias leads to (2,000 matching aliases: 4 million matches without it, 31 s)
    _alias_memo: dict[str, tuple[Alias, ...]] = field(default_factory=dict, init=False, compare=False, repr=False)

    # -- the lookups libkmod makes --------------------------------------------

    def aliases_matching(self, name: str) -> list[Alias]:
        """kmod libkmod/libkmod.c (kmod_lookup_alias_from_config): every alias whose pattern matches."""
        found = self._alias_memo.get(name)
        if found is None:
            key = fsencode(name)
            found = self._alias_memo[name] = tuple(a for a in self.aliases if fnmatch(fsencode(a.pattern), key))
        return list(found)

    def options_for(self, name: str, alias: str | None) -> tuple[str | None, tuple[ModprobeOptions, ...]]:
        """kmod libkmod/libkmod-module.c (kmod_module_get_options): the options of every
        entry whose name equals the module name or the alias it was found through,
        joined with single spaces; empty entries are skipped.  None when there are none."""
        used = tuple(o for o in self.options if (o.modname == name or (alias is not None and o.modname == alias))
                     and o.options)
        if not used:
            return None, ()
        return " ".join(o.options for o in used), used

    def install_for(self, name: str) -> Command | None:
        """kmod_module_get_install_commands: the first install entry whose pattern matches."""
        return _first_command(self.install, name)

    def remove_for(self, name: str) -> Command | None:
        return _first_command(self.remove, name)

    def install_exact(self, name: str) -> Command | None:
        """kmod libkmod/libkmod.c (kmod_lookup_alias_from_commands): compared with strcmp, not fnmatch."""
        return next((c for c in self.install if c.pattern == name), None)

    def remove_exact(self, name: str) -> Command | None:
        return next((c for c in self.remove if c.pattern == name), None)

    def softdep_for(self, name: str) -> Softdep | None:
        """kmod_module_get_softdeps: only the first matching entry counts ("as modprobe
        from module-init-tools does")."""
        key = fsencode(name)
        return next((s for s in self.softdeps if fnmatch(fsencode(s.pattern), key)), None)

    def weakdep_for(self, name: str) -> Weakdep | None:
        """kmod 33 kmod_module_get_weakdeps: first match, like softdeps."""
        key = fsencode(name)
        return next((w for w in self.weakdeps if fnmatch(fsencode(w.pattern), key)), None)

    def blacklisted(self, name: str) -> Blacklist | None:
        """kmod libkmod/libkmod-module.c (module_is_blacklisted): strcmp with the module name."""
        return next((b for b in self.blacklist if b.modname == name), None)


def _first_command(commands: Sequence[Command], name: str) -> Command | None:
    key = fsencode(name)
    return next((c for c in commands if fnmatch(fsencode(c.pattern), key)), None)


# --------------------------------------------------------------------------
# Small kmod string functions
# --------------------------------------------------------------------------


def underscores(s: str) -> str | None:
    """kmod shared/util.c ``underscores``: ``-`` -> ``_``, except inside ``[...]``.

    A ``]`` outside a bracket, or a ``[`` never closed, is an error (None).
    """
    out = []
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "-":
            out.append("_")
        elif c == "]":
            return None
        elif c == "[":
            close = s.find("]", i)
            if close < 0:
                return None
            out.append(s[i : close + 1])  # copied as is, dashes included
            i = close + 1
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _strtok(s: str, pos: int, delims: str) -> tuple[str | None, int]:
    """glibc ``strtok_r``: skip delimiters, take the token up to the next one.

    Returns (token or None, position after the delimiter that ended it).  With
    an empty delimiter set (kmod's ``strtok_r(NULL, "\\0", ...)``) the token is
    the whole rest, leading blanks included.
    """
    n = len(s)
    while pos < n and s[pos] in delims:
        pos += 1
    if pos >= n:
        return None, n
    end = pos
    while end < n and s[end] not in delims:
        end += 1
    return s[pos:end], (end + 1 if end < n else n)


def _kmod_words(line: str) -> list[str]:
    """The words kmod_config_add_softdep / add_weakdep cut a line into.

    Whitespace (C ``isspace``) separates words, with one quirk of kmod's
    scanner (libkmod-config.c, the "analyze and count" loop): when the text
    starts with exactly one blank followed by a word, the blank stays glued to
    that first word (so ``" pre: x"`` has no ``pre:`` keyword and ``x`` is
    dropped).  The text after the module name keeps its leading blanks
    (``strtok_r(NULL, "\\0")``), so ``softdep m  pre: x`` (two spaces) hits it.
    """
    words = []
    i = 0
    n = len(line)
    glued = n >= 2 and line[0] in _C_SPACE and line[1] not in _C_SPACE
    while i < n:
        while i < n and line[i] in _C_SPACE and not (glued and i == 0):
            i += 1
        if i >= n:
            break
        start = i
        if glued and i == 0:
            i = 1
        while i < n and line[i] not in _C_SPACE:
            i += 1
        words.append(line[start:i])
    return words


def _softdep_lists(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``pre:``/``post:`` switch the list words go to; words before either are dropped."""
    pre: list[str] = []
    post: list[str] = []
    mode: list[str] | None = None
    for w in _kmod_words(text):
        if w == "pre:":
            mode = pre
        elif w == "post:":
            mode = post
        elif mode is not None:
            mode.append(w)
    return tuple(pre), tuple(post)


def logical_lines(data: bytes) -> list[tuple[int, bytes]]:
    """kmod shared/util.c (freadline_wrapped): (line counter, logical line) pairs.

    The counter is kmod's: the number of physical lines consumed so far,
    including the one the logical line ends on.
    """
    out: list[tuple[int, bytes]] = []
    buf = bytearray()
    count = 0
    i = 0
    n = len(data)
    while True:
        if i >= n:
            if buf:
                count += 1
                out.append((count, bytes(buf)))
            return out
        c = data[i]
        i += 1
        if c == 0x0A:  # '\n'
            count += 1
            out.append((count, bytes(buf)))
            buf.clear()
        elif c == 0x5C:  # '\\'
            if i < n and data[i] == 0x0A:
                count += 1
                i += 1
            elif i < n:
                buf.append(data[i])
                i += 1
            else:
                buf.append(0xFF)  # getc() returned EOF, stored as a char
        else:
            buf.append(c)


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


@dataclass(slots=True)
class _Acc:
    aliases: list[Alias] = field(default_factory=list)
    options: list[ModprobeOptions] = field(default_factory=list)
    install: list[Command] = field(default_factory=list)
    remove: list[Command] = field(default_factory=list)
    blacklist: list[Blacklist] = field(default_factory=list)
    softdeps: list[Softdep] = field(default_factory=list)
    weakdeps: list[Weakdep] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def freeze(self, files: Sequence[str]) -> ModprobeConfig:
        return ModprobeConfig(aliases=tuple(self.aliases), options=tuple(self.options), install=tuple(self.install),
                              remove=tuple(self.remove), blacklist=tuple(self.blacklist),
                              softdeps=tuple(self.softdeps), weakdeps=tuple(self.weakdeps), files=tuple(files),
                              messages=tuple(self.messages), notes=tuple(self.notes))


def parse_text(data: bytes, filename: str, *, weakdep_only: bool = False, weakdep: bool = True) -> ModprobeConfig:
    """Parse one file's contents (kmod libkmod/libkmod-config.c, kmod_config_parse); ``weakdep``:
    kmod >= 33's rules (:attr:`~moddeps.kmodversion.KmodTarget.modprobe_weakdep`)."""
    acc = _Acc()
    _parse_into(acc, data, filename, weakdep_only=weakdep_only, weakdep=weakdep)
    return acc.freeze((filename,))


def _parse_into(acc: _Acc, data: bytes, filename: str, *, weakdep_only: bool = False, weakdep: bool = True) -> None:
    for lineno, raw in logical_lines(data):
        nul = raw.find(0)
        line = fsdecode(raw[:nul] if nul >= 0 else raw)  # a C string ends at its NUL
        if not line or line[0] == "#":
            continue
        rule = Rule(filename, lineno, line)
        cmd, pos = _strtok(line, 0, "\t ")
        if cmd is None:
            continue
        if weakdep_only:
            # modules.weakdep is kmod 33's; kmod 30 never opens it.
            if cmd == "weakdep":
                _weakdep(acc, line, pos, rule)
            continue
        ok = True
        if cmd == "alias":
            alias, pos = _strtok(line, pos, "\t ")
            modname, pos = _strtok(line, pos, "\t ")
            a = underscores(alias) if alias is not None else None
            m = underscores(modname) if modname is not None else None
            if a is None or m is None:
                ok = False
            else:
                acc.aliases.append(Alias(a, m, rule))
        elif cmd == "blacklist":
            modname, pos = _strtok(line, pos, "\t ")
            m = underscores(modname) if modname is not None else None
            if m is None:
                ok = False
            else:
                acc.blacklist.append(Blacklist(m, rule))
        elif cmd in ("options", "install", "remove", "softdep"):
            modname, pos = _strtok(line, pos, "\t ")
            rest, pos = _strtok(line, pos, "")
            m = underscores(modname) if modname is not None else None
            if m is None or rest is None:
                ok = False
            elif cmd == "options":
                # kmod_config_add_options: tabs become spaces, leading blanks stay.
                acc.options.append(ModprobeOptions(m, rest.replace("\t", " "), rule))
            elif cmd == "install":
                acc.install.append(Command(m, rest, rule))
            elif cmd == "remove":
                acc.remove.append(Command(m, rest, rule))
            else:
                pre, post = _softdep_lists(rest)
                acc.softdeps.append(Softdep(m, pre, post, rule))
        elif cmd in ("include", "config"):
            acc.messages.append(f"ERROR: {filename}: command {cmd} is deprecated and not parsed anymore")
        elif cmd == "weakdep" and weakdep:  # (kmod 30-32: a bad line, below)
            ok = _weakdep(acc, line, pos, rule)
        else:
            ok = False
        if not ok:
            acc.messages.append(f"ERROR: {filename} line {lineno}: ignoring bad line starting with '{cmd}'")


def _weakdep(acc: _Acc, line: str, pos: int, rule: Rule) -> bool:
    modname, pos = _strtok(line, pos, "\t ")
    rest, pos = _strtok(line, pos, "")
    m = underscores(modname) if modname is not None else None
    if m is None or rest is None:
        return False
    acc.weakdeps.append(Weakdep(m, tuple(_kmod_words(rest)), rule))
    return True


def default_config_paths(basedir: str = "", *, usr_lib_dir: bool = True) -> list[str]:
    """The default modprobe.d directories, under ``basedir`` (hermetic, unlike kmod):
    kmod >= 32's (``usr_lib_dir``, :attr:`~moddeps.kmodversion.KmodTarget.usr_lib_modprobe_d`)
    or kmod 30's."""
    base = basedir.rstrip("/")
    return [base + d for d in (DEFAULT_DIRS if usr_lib_dir else DEFAULT_DIRS_KMOD30)]


def config_file_list(paths: Sequence[str], dirname: str | None,
                     messages: list[str] | None = None, *, alias_files: bool = True,
                     weakdep: bool = True) -> list[tuple[str, str]]:
    """kmod's sorted, de-duplicated (name, path) list (libkmod-config.c,
    conf_files_list / conf_files_insert_sorted), ``modules.softdep`` and (``weakdep``:
    kmod >= 33) ``modules.weakdep`` of ``dirname`` included.  ``alias_files``: a
    directory's ``*.alias`` entries count too (kmod <= 32,
    :attr:`~moddeps.kmodversion.KmodTarget.modprobe_d_alias_files`)."""
    suffixes = (".conf", ".alias") if alias_files else (".conf",)
    entries: dict[str, str] = {}
    if dirname is not None:
        entries["modules.softdep"] = f"{dirname}/modules.softdep"
        if weakdep:
            entries["modules.weakdep"] = f"{dirname}/modules.weakdep"
    for path in paths:
        try:
            is_dir = os.path.isdir(path)
            if not is_dir:
                os.stat(path)
        except OSError:
            continue  # kmod: a path that cannot be stat'ed is skipped silently
        if not is_dir:
            entries.setdefault(os.path.basename(path.rstrip("/")) or path, path)
            continue
        try:
            names = os.listdir(path)
        except OSError as exc:
            if messages is not None:
                messages.append(f"ERROR: opendir({path}): {exc.strerror}")
            continue
        for name in names:
            if name.startswith(".") or len(name) < 6 or not name.endswith(suffixes):
                continue
            full = f"{path}/{name}"
            if os.path.isdir(full):
                if messages is not None:
                    messages.append(f"ERROR: Directories inside directories are not supported: {full}")
                continue
            entries.setdefault(name, full)
    return sorted(entries.items(), key=lambda kv: fsencode(kv[0]))


def load(
    paths: Sequence[str] | None,
    *,
    dirname: str | None,
    basedir: str = "",
    kernel_cmdline: str | bytes | None = None,
    module_files: Mapping[str, bytes | None] | None = None,
    usr_lib_dir: bool = True,
    alias_files: bool = True,
    weakdep: bool = True,
) -> ModprobeConfig:
    """Read modprobe.d the way libkmod does.

    ``paths`` are ``-C`` arguments: when given, only they are read (kmod_new's
    ``config_paths``); otherwise the default directories under ``basedir``.
    ``dirname`` is the module directory whose ``modules.softdep`` (and, with
    ``weakdep``, ``modules.weakdep``) are read; ``module_files`` supplies their
    contents instead (a tree indexed from a scan).  ``kernel_cmdline`` is the text of
    ``/proc/cmdline`` to parse last, or None to ignore it.  ``usr_lib_dir``,
    ``alias_files`` and ``weakdep`` choose a kmod release's rules (see
    :func:`default_config_paths`, :func:`config_file_list` and :func:`parse_text`;
    the callers take them from :class:`~moddeps.kmodversion.KmodTarget`).
    """
    search = list(paths) if paths else default_config_paths(basedir, usr_lib_dir=usr_lib_dir)
    acc = _Acc()
    files: list[str] = []
    for name, path in config_file_list(search, dirname, acc.messages, alias_files=alias_files, weakdep=weakdep):
        data: bytes | None
        if module_files is not None and dirname is not None and path == f"{dirname}/{name}" and name in module_files:
            data = module_files[name]
        else:
            # kmod: a file that cannot be opened is skipped; one that is not a regular
            # file (a FIFO kmod would wait on for ever) or is too big is said and skipped.
            data, why = try_read(path)
            if why is not None:
                acc.messages.append(f"ERROR: {printable(path)}: cannot read: {why}; skipped")
        if data is None:
            continue
        files.append(path)
        _parse_into(acc, data, path, weakdep=weakdep,
                    weakdep_only=(name == "modules.weakdep" and dirname is not None
                                  and path == f"{dirname}/modules.weakdep"))
    if kernel_cmdline is not None:
        _cmdline_into(acc, kernel_cmdline)
    return acc.freeze(files)


# --------------------------------------------------------------------------
# Kernel command line
# --------------------------------------------------------------------------


def parse_kernel_cmdline(text: str | bytes) -> ModprobeConfig:
    """``modprobe.blacklist=`` and ``MODULE.PARAM=VALUE`` from a kernel command line
    (kmod libkmod/libkmod-config.c, kmod_config_parse_kcmdline)."""
    acc = _Acc()
    _cmdline_into(acc, text)
    return acc.freeze(())


def _cmdline_into(acc: _Acc, text: str | bytes) -> None:
    raw = fsencode(text) if isinstance(text, str) else bytes(text)
    raw = raw[: _KCMD_LINE_SIZE - 1]
    nul = raw.find(0)
    if nul >= 0:
        raw = raw[:nul]
    buf = fsdecode(raw)
    for modname, param in _cmdline_items(buf):
        rule = Rule("<kernel command line>", 0, f"{modname}.{param}")
        if modname == "modprobe" and param.startswith("blacklist="):
            # strsep on ",": every piece, empty ones too, and no underscores().
            for piece in param[len("blacklist="):].split(","):
                acc.blacklist.append(Blacklist(piece, rule))
            continue
        m = underscores(modname)
        if m is None:
            acc.messages.append(
                f"ERROR: Ignoring bad option on kernel command line while parsing module name: '{modname}'")
            continue
        acc.options.append(ModprobeOptions(m, param, rule))


def _cmdline_items(buf: str) -> Iterable[tuple[str, str]]:
    """The (module, "param[=value]") pairs kmod's command-line state machine accepts.

    States: looking for a module name, in the parameter (after the first
    ``.``), in the value (after ``=``), or ignoring the word.  A word ends at
    unquoted whitespace; double quotes may open the word (``"mod.p=a b"``,
    re-quoted to ``p="a b"``, as grub passes it) or the value; a quote
    anywhere else, a second ``.`` in the parameter, or ``=`` in the name spoil
    the word.
    """
    NAME, PARAM, VALUE, IGNORE = 0, 1, 2, 3
    state = NAME
    quoted = False
    word = 0  # start of the module name
    quote_at = -1  # position of an opening quote before the module name
    dot = -1
    eq = -1
    n = len(buf)
    for p in range(n + 1):
        c = buf[p] if p < n else "\0"
        complete = False
        if c == '"':
            quoted = not quoted
            if quoted and state == NAME and p == word:
                quote_at = p
                word = p + 1
            elif state != VALUE:
                state = IGNORE
        elif c in ("\0", " ", "\n", "\t", "\v", "\f", "\r"):
            if quoted and state == VALUE:
                pass
            elif quoted:
                state = IGNORE
            elif state in (VALUE, PARAM):
                complete = True
            else:
                word = p + 1
                state = NAME
                quote_at = -1
        elif c == ".":
            if state == NAME:
                dot = p
                state = PARAM
            elif state == PARAM:
                state = IGNORE
        elif c == "=":
            if state == PARAM:
                eq = p
                state = VALUE
            elif state == NAME:
                state = IGNORE
        if complete:
            modname = buf[word:dot]
            # A quote before the name is moved after the "=" (kmod re-quotes what grub passes).
            requote = 0 <= quote_at < word and eq > dot
            param = buf[dot + 1 : eq + 1] + '"' + buf[eq + 1 : p] if requote else buf[dot + 1 : p]
            yield modname, param
            word = p + 1
            state = NAME
            quote_at = -1
