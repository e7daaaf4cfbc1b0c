"""Load and unload plans, exactly as kmod 30's ``modprobe`` makes them, with the reasons.

What ``modprobe --show-depends TARGET`` does (kmod tools/modprobe.c and
libkmod/libkmod-module.c, libkmod.c), step by step; this module repeats each
step on moddeps' data and records why every module ends up in the plan:

1. **Context.**  The module directory is ``ROOT/lib/modules/VERSION``
   (``-d``/``-S``), made absolute with the working directory and never
   normalised (kmod libkmod/libkmod.c, get_kernel_release).  modprobe.d is
   read (see :mod:`moddeps.modprobe_config`), ``modules.softdep`` of the tree
   included, the kernel command line last.
2. **Indexes.**  ``kmod_load_resources`` maps ``modules.dep.bin``,
   ``modules.alias.bin``, ``modules.symbols.bin``, ``modules.builtin.alias.bin``
   (optional) and ``modules.builtin.bin``; when one of the others cannot be
   opened it drops them all and every lookup opens its file anew (the
   "stdio" reader, which orders equal-priority values the other way round).
   moddeps uses the tree's own files when they are present and current, and
   otherwise the files its depmod would write now (from a scan).
3. **Lookup** (kmod_module_new_from_lookup).  The target is normalised with
   ``alias_normalize`` (``-`` -> ``_`` outside brackets; an unmatched bracket
   fails), then the first source that yields anything wins:
   a. config ``alias`` lines whose pattern fnmatches it (all of them);
   b. ``modules.dep.bin``, exactly, unless the name holds a ``:``;
   c. ``modules.symbols.bin`` (wildcards) for ``symbol:NAME``;
   d. an ``install`` (else a ``remove``) line whose name is exactly it;
   e. ``modules.alias.bin``, with glibc fnmatch on the stored patterns;
   f. ``modules.builtin.bin``, exactly;
   g. ``modules.builtin.alias.bin`` (wildcards).
   Nothing found: ``Module X not found in directory DIR``.  Each module found
   is a libkmod object keyed by name, or by name and alias when it came from
   an alias (a, c, e, g): options and blacklist see that alias.
4. **Blacklist.**  A module found through an alias whose name is
   blacklisted is skipped silently (KMOD_PROBE_APPLY_BLACKLIST_ALIAS_ONLY);
   module names, dependencies and softdeps are never filtered.
5. **Probe list** (kmod_module_get_probe_list), per module found:
   a. every "visited" mark is cleared;
   b. a visited module is skipped; otherwise it is marked, and for each of
      its dependencies -- the ``modules.dep`` list in *reverse*, so
      libraries first -- step 6 runs (dependencies are never marked, so they
      can be listed again through a softdep);
   c. then step 6 for the module itself.
6. **Softdeps** (__kmod_module_fill_softdep): the *first* ``softdep`` entry
   whose pattern fnmatches the module name (config files and
   ``modules.softdep`` in file-name order) gives ``pre:`` and ``post:`` names,
   each looked up as in step 3 (every module found counts).  Each ``pre``
   module goes through step 5b, then the module is appended, then each
   ``post`` module through 5b.  A module with softdeps ignores its
   ``install`` command.
7. **Actions**, in list order (kmod_module_probe_insert_module, print_action):
   an ``install`` command (first fnmatching entry) prints
   ``install CMD OPTIONS``; otherwise a module with a path prints
   ``insmod PATH OPTIONS``; a module without a path prints ``builtin NAME``
   when ``modules.builtin.bin`` knows it, and nothing otherwise.  OPTIONS are
   the config ``options`` for the name or the alias, joined by spaces, plus a
   space and the command-line options for the module asked for; with
   nothing at all it is empty, so the line ends with a space.
8. Several targets (``modprobe -a``) share one context; each is planned in
   turn.  ``--show-depends`` ignores what the running kernel has loaded.

Unloading (``modprobe -r``, tools/modprobe.c rmmod_do_module): the post
softdeps are removed first (in reverse, recursively), then the holders (with
``--remove-holders``), then the module (``rmmod NAME`` or its ``remove``
command, ``$CMDLINE_OPTS`` replaced by nothing), then dependencies nobody
uses any more, then the pre softdeps in reverse.

Differences from kmod 30, all deliberate: a target starting with ``/`` or
``./`` is a module file (kmod 31's modprobe; kmod 30 says "not found"); the
running kernel's ``/proc/cmdline`` and ``/sys/module`` are never read (give
``kernel_cmdline`` and ``loaded`` to reproduce a host); weakdeps (kmod 33)
are followed by :func:`closure` only, never printed by a load plan.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from . import modprobe_config
from .depmod.index import Index, IndexFormatError, alias_normalize
from .errors import CycleError, InputError, UsageError
from .kmodnames import modname_normalize, path_to_modname
from .model import Module, fsdecode, fsencode
from .modprobe_config import ModprobeConfig, Rule

__all__ = [
    "Closure",
    "ClosureItem",
    "Plan",
    "PlanContext",
    "PlanSet",
    "Source",
    "Step",
    "TreeData",
    "closure",
    "cmdline_options",
    "index_state",
    "loaded_from_proc_modules",
    "modprobe_dirname",
    "open_context",
    "open_tree",
    "plan_load",
    "plan_remove",
    "plan_targets",
]

#: libkmod/libkmod.c index_files[], in kmod_load_resources' order.
INDEX_FILES = ("modules.dep", "modules.alias", "modules.symbols", "modules.builtin.alias", "modules.builtin")
#: The one index kmod_load_resources may fail to open without falling back to stdio.
OPTIONAL_INDEX = "modules.builtin.alias"


Action = Literal["insmod", "builtin", "install", "skip", "rmmod", "remove"]
Reason = Literal["target", "dependency", "softdep-pre", "softdep-post", "weakdep", "holder", "unused-dependency"]
SourceKind = Literal["index", "scan"]
Reader = Literal["mmap", "stdio"]


# --------------------------------------------------------------------------
# Public records
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """Where the indexes came from, and why."""

    kind: SourceKind  # "index": the tree's own .bin files; "scan": computed from the modules now
    reason: str
    reader: Reader  # which libkmod reader the lookups imitate


@dataclass(frozen=True, slots=True)
class Step:
    """One line of a plan (or one module modprobe passes over silently)."""

    action: Action  # "skip": modprobe does nothing and prints nothing for it
    module: str
    path: str | None  # the file insmod would open (absolute, as modprobe prints it)
    reason: Reason
    because: tuple[str, ...]  # symbols (dependency) or the rule (softdep, lookup, holder)
    line: str | None  # exactly the --show-depends line, None when modprobe prints nothing
    via: str | None = None  # the module that pulled this one in (None: the target itself)
    root: str | None = None  # the module found for the target whose probe made this step
    options: str = ""
    alias: str | None = None  # the alias libkmod's object carries (options and blacklist see it)
    needed_by: tuple[tuple[str, tuple[str, ...]], ...] = ()  # dependency: (user, symbols) pairs
    config: tuple[str, ...] = ()  # install/remove/options rules used, as "TEXT (FILE:LINE)"
    builtin: bool = False
    permanent: bool | None = None  # init but no exit: can never be unloaded (None: unknown)
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What modprobe does for one target."""

    target: str
    remove: bool
    resolved: tuple[str, ...]  # module names the lookup found, in order (blacklisted ones included)
    found_by: str | None  # which lookup found them (step 3 a-g), None when nothing did
    error: str | None  # None: success
    kmod_message: str | None  # what modprobe prints on stderr for it (without "modprobe: FATAL: ")
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()  # skipped modules (blacklist, already loaded) and other remarks
    messages: tuple[str, ...] = ()  # libkmod's own errors met on the way ("ERROR: ...")

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(s.line for s in self.steps if s.line is not None)


@dataclass(frozen=True, slots=True)
class PlanSet:
    """Plans for several targets, like one ``modprobe -a`` run."""

    dirname: str
    version: str
    source: Source
    config_files: tuple[str, ...]
    plans: tuple[Plan, ...]
    remove: bool = False
    messages: tuple[str, ...] = ()  # config diagnostics

    @property
    def exit_status(self) -> int:
        """modprobe's: 1 when any target failed."""
        return 0 if all(p.ok for p in self.plans) else 1


@dataclass(frozen=True, slots=True)
class ClosureItem:
    kind: Literal["module", "firmware", "builtin"]
    name: str  # module name, or firmware file name as declared
    path: str | None  # module file, or the firmware file found (or where it should be)
    reason: str  # "target", "dependency", "softdep-pre", "softdep-post", "weakdep", "firmware", "install-command"
    because: tuple[str, ...]
    via: str | None
    exists: bool = True


@dataclass(frozen=True, slots=True)
class Closure:
    """Everything an initramfs needs to load the targets."""

    dirname: str
    source: Source
    targets: tuple[str, ...]
    items: tuple[ClosureItem, ...]
    errors: tuple[tuple[str, str], ...]  # (target, message) for targets that cannot be loaded
    notes: tuple[str, ...] = ()
    #: (name, message) for what makes the closure incomplete although every target was found: a module
    #: file missing or unreadable, unreadable module files in a scanned tree, a firmware file missing
    #: (unless allowed: then it is a note)
    problems: tuple[tuple[str, str], ...] = ()

    @property
    def exit_status(self) -> int:
        """0 when the closure is complete; 1 when a target cannot be loaded or anything is missing."""
        return 0 if not self.errors and not self.problems else 1


# --------------------------------------------------------------------------
# kmod's small string functions
# --------------------------------------------------------------------------






def _make_absolute(path: str) -> str:
    """kmod shared/util.c (path_make_absolute_cwd): cwd + "/" + path, nothing normalised."""
    return path if path.startswith("/") else f"{os.getcwd()}/{path}"


def modprobe_dirname(basedir: str | None, version: str | None) -> str:
    """The module directory modprobe uses for ``-d BASEDIR -S VERSION``.

    kmod tools/modprobe.c: ``snprintf("%s/lib/modules/%s", root, kversion)``
    (so ``-d /x/`` gives ``/x//lib/modules/...``), made absolute by kmod_new.
    A merged-/usr root without ``lib/modules/VERSION`` but with
    ``usr/lib/modules/VERSION`` gives the latter (a kmod built with
    MODULE_DIRECTORY=/usr/lib/modules, as on Fedora and Arch).
    """
    from .kmodnames import MODULE_DIRECTORIES

    release = version or os.uname().release
    path = _make_absolute(f"{basedir or ''}/lib/modules/{release}")
    if not os.path.isdir(path):
        merged = _make_absolute(f"{basedir or ''}/{MODULE_DIRECTORIES[1]}/{release}")
        if os.path.isdir(merged):
            return merged
    return path


def cmdline_options(args: Sequence[str]) -> str | None:
    """Options given after the module name (kmod tools/modprobe.c, options_from_array):
    joined by spaces; ``key=value with blanks`` becomes ``key="value with blanks"``
    unless the value already starts with a quote.  None without arguments."""
    if not args:
        return None
    parts = []
    for arg in args:
        eq = arg.find("=")
        if eq >= 0:
            value = arg[eq + 1 :]
            if value[:1] not in ('"', "'") and " " in value:
                parts.append(f'{arg[: eq + 1]}"{value}"')
                continue
        parts.append(arg)
    return " ".join(parts)


def loaded_from_proc_modules(text: str) -> frozenset[str]:
    """Module names of a ``/proc/modules`` text (the first word of each line), for ``loaded``."""
    return frozenset(line.split()[0].replace("-", "_") for line in text.splitlines() if line.strip())


def _options_concat(opt: str | None, extra: str | None) -> str | None:
    """kmod libkmod/libkmod-module.c (module_options_concat): ``opt`` then a space then
    ``extra``; the space is there whenever ``opt`` is, hence ``a=1 `` alone."""
    if not opt and not extra:
        return None
    return (opt + " " if opt is not None else "") + (extra or "")


# --------------------------------------------------------------------------
# The indexes and what the modules say
# --------------------------------------------------------------------------


class TreeData:
    """The five indexes modprobe reads, the module-side config files, and access
    to what each module file says (symbols, exit function, firmware)."""

    def __init__(
        self,
        dirname: str,
        indexes: dict[str, Index | None],
        source: Source,
        module_files: dict[str, bytes | None],
        tree: object | None = None,
        resolution: object | None = None,
    ) -> None:
        from .resolve import Resolution
        from .scanner import Tree

        self.dirname = dirname
        self.indexes = indexes
        self.source = source
        self.reader: Reader = source.reader
        self.module_files = module_files  # "modules.softdep"/"modules.weakdep" contents (scan), else empty
        self._tree: Tree | None = tree if isinstance(tree, Tree) else None
        self._res: Resolution | None = resolution if isinstance(resolution, Resolution) else None
        self._by_name: dict[str, int] = {}
        if self._tree is not None:
            self._by_name = {m.name: i for i, m in enumerate(self._tree.modules)}
        self._modules: dict[str, Module | None] = {}
        self._owners: dict[str, str | None] = {}
        self._edges: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}
        self._patterns: dict[str, dict[bytes, list[bytes]]] = {}

    @property
    def version(self) -> str:
        return os.path.basename(self.dirname.rstrip("/"))

    # -- index lookups (libkmod-index.c semantics, §10 of shared/specs/index-bin.md) --

    def exact(self, index: str, key: str) -> str | None:
        idx = self.indexes.get(index)
        if idx is None:
            return None
        value = idx.lookup_exact(fsencode(key), reader=self.reader)
        return None if value is None else fsdecode(value)

    def wildcard(self, index: str, key: str) -> list[str] | None:
        """Values of every pattern ``key`` matches; None when the index cannot be opened
        (libkmod: -ENOSYS, the lookup chain goes on)."""
        idx = self.indexes.get(index)
        if idx is None:
            return None
        return [fsdecode(v) for _p, v in idx.lookup_wildcard(fsencode(key), reader=self.reader)]

    def alias_patterns(self, index: str, query: str, module: str) -> list[str]:
        """The stored patterns of ``index`` that matched ``query`` for ``module`` (for reasons only)."""
        from .globmatch import fnmatch

        by_value = self._patterns.get(index)
        if by_value is None:
            by_value = {}
            idx = self.indexes.get(index)
            if idx is not None:
                for k, val, _p in idx.items():
                    by_value.setdefault(val, []).append(k)
            self._patterns[index] = by_value
        q = fsencode(query)
        return [fsdecode(k) for k in by_value.get(fsencode(module), ()) if fnmatch(k, q)]

    # -- module contents ------------------------------------------------------

    def module(self, name: str, path: str | None) -> Module | None:
        """What moddeps read from the module file (scan) or reads now (index)."""
        if self._tree is not None:
            i = self._by_name.get(name)
            if i is not None:
                return self._tree.modules[i]
        if path is None:
            return None
        key = path
        if key not in self._modules:
            from .elfreader import read_module_or_broken

            if os.path.isfile(path):
                m = read_module_or_broken(path)
                self._modules[key] = m if m.error is None else None
            else:
                self._modules[key] = None
        return self._modules[key]

    def symbol_owner(self, symbol: str) -> str | None:
        if symbol not in self._owners:
            self._owners[symbol] = self.exact("modules.symbols", "symbol:" + symbol)
        return self._owners[symbol]

    def direct_deps(self, name: str, path: str | None) -> dict[str, tuple[str, ...]]:
        """Modules ``name`` needs directly, with the symbols bound to each (depmod's binding)."""
        key = (name, path or "")
        cached = self._edges.get(key)
        if cached is not None:
            return cached
        out: dict[str, list[str]] = {}
        if self._tree is not None and self._res is not None and name in self._by_name:
            i = self._by_name[name]
            mods = self._tree.modules
            for d, syms in self._res.edge_symbols[i].items():
                out.setdefault(mods[d].name, []).extend(syms)
        else:
            m = self.module(name, path)
            if m is not None:
                for imp in m.imports:
                    sym = imp.name[1:] if imp.name.startswith(".") else imp.name
                    owner = self.symbol_owner(sym)
                    if owner is not None and owner != name:
                        out.setdefault(owner, []).append(imp.name)
        result = {k: tuple(v) for k, v in out.items()}
        self._edges[key] = result
        return result


def index_state(dirname: str, basedir: str = "") -> tuple[bool, str]:
    """Whether the tree's indexes can be trusted as what depmod would write now.

    The cheap test (no module is read): every index depmod writes exists and
    opens; ``modules.dep.bin`` lists exactly the module files depmod would
    pick (the same walk, with the tree's depmod.d: search, override, exclude,
    external), at the same paths; and none of them is newer than
    ``modules.dep.bin`` (depmod -A's test).  Returns (current, reason).
    """
    from . import config as depmod_config
    from .scanner import discover

    dep_bin = f"{dirname}/modules.dep.bin"
    try:
        dep_mtime = os.stat(dep_bin).st_mtime_ns
    except OSError:
        return False, "modules.dep.bin is missing"
    for name in INDEX_FILES:
        path = f"{dirname}/{name}.bin"
        if not os.path.exists(path):
            return False, f"{name}.bin is missing (depmod always writes it)"
    try:
        dep = Index.open(dep_bin)
    except (OSError, IndexFormatError) as exc:
        return False, f"modules.dep.bin cannot be read: {exc}"
    indexed: dict[str, str] = {}
    for key, value, _prio in dep.items():
        line = fsdecode(value)
        indexed[fsdecode(key)] = line[: line.find(":")] if ":" in line else line
    cfg = depmod_config.load(None, os.path.basename(dirname.rstrip("/")), basedir)
    registry = discover(dirname, cfg, [])
    on_disk = {name: mf.shown for name, mf in registry.by_name.items()}
    missing = sorted(set(on_disk) - set(indexed))
    if missing:
        return False, f"{len(missing)} module(s) not in modules.dep.bin: {', '.join(missing[:5])}"
    gone = sorted(set(indexed) - set(on_disk))
    if gone:
        return False, f"{len(gone)} module(s) in modules.dep.bin no longer exist: {', '.join(gone[:5])}"
    moved = sorted(n for n, p in on_disk.items() if indexed[n] != p)
    if moved:
        n = moved[0]
        return False, f"modules.dep.bin has {n} at {indexed[n]}, depmod would now pick {on_disk[n]}"
    for mf in registry.by_name.values():
        try:
            if os.stat(mf.path).st_mtime_ns > dep_mtime:
                return False, f"{mf.shown} is newer than modules.dep.bin"
        except OSError:
            continue
    return True, "modules.dep.bin and the other indexes are current"


def _reader_for(indexes: dict[str, Index | None]) -> Reader:
    """kmod_load_resources: all maps or none (modules.builtin.alias.bin may fail alone)."""
    ok = all(indexes.get(n) is not None for n in INDEX_FILES if n != OPTIONAL_INDEX)
    return "mmap" if ok else "stdio"


def _parse_or_none(data: bytes | None, name: str) -> Index | None:
    if data is None:
        return None
    try:
        return Index.from_bytes(data, name=name)
    except IndexFormatError:
        return None  # kmod: bad magic or a short file cannot be opened


def open_tree(
    dirname: str,
    *,
    source: Literal["auto", "index", "scan"] = "auto",
    basedir: str | None = None,
    depmod_config: Sequence[str] | None = None,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TreeData:
    """The indexes of ``dirname``: its own files when current (or ``source="index"``),
    else the ones moddeps' depmod computes from a scan (``source="scan"``)."""
    if not os.path.isdir(dirname):
        raise InputError(f"{dirname}: no such module directory")
    base = basedir if basedir is not None else _basedir_of(dirname)
    if source == "auto":
        current, why = index_state(dirname, base)
        kind: SourceKind = "index" if current else "scan"
    elif source == "index":
        kind, why = "index", "the tree's indexes, as asked"
    elif source == "scan":
        kind, why = "scan", "computed from the modules, as asked"
    else:
        raise UsageError(f"source must be auto, index or scan, not {source!r}")
    if kind == "index":
        indexes: dict[str, Index | None] = {}
        for name in INDEX_FILES:
            from .scanner import read_optional

            data = read_optional(f"{dirname}/{name}.bin")  # regular files only, bounded
            indexes[name] = None if data is None else _parse_or_none(data, f"{dirname}/{name}.bin")
        reader = _reader_for(indexes)
        return TreeData(dirname, indexes, Source("index", why, reader), {})
    return _scanned(dirname, base, why, depmod_config, jobs, progress)


def _scanned(
    dirname: str,
    basedir: str,
    why: str,
    depmod_config: Sequence[str] | None,
    jobs: int | None,
    progress: Callable[[int, int], None] | None,
) -> TreeData:
    from . import config as depmod_cfg
    from .depmod.render import render_files
    from .resolve import resolve
    from .scanner import scan_tree

    version = os.path.basename(dirname.rstrip("/"))
    cfg = depmod_cfg.load(list(depmod_config) if depmod_config else None, version, basedir)
    tree = scan_tree(dirname, version=version, config=cfg, jobs=jobs, progress=progress)
    full = [f"{dirname}/{f.relpath}" if f.relpath else f.path for f in tree.files]
    res = resolve(tree.modules, full)
    if res.topo is None:
        raise CycleError(f"{dirname}: dependency cycles: depmod would write no index, so modprobe finds nothing; "
                         "see `moddeps audit`")
    files, _messages = render_files(tree, res)
    contents = dict(files)
    indexes = {name: _parse_or_none(contents.get(name + ".bin"), name + ".bin") for name in INDEX_FILES}
    module_files = {"modules.softdep": contents.get("modules.softdep"),
                    "modules.weakdep": contents.get("modules.weakdep")}
    reader = _reader_for(indexes)
    return TreeData(dirname, indexes, Source("scan", why, reader), module_files, tree, res)


def _basedir_of(dirname: str) -> str:
    """BASEDIR for the config directories: the part before ``/lib/modules/VERSION``.

    A directory elsewhere gets a base that holds nothing, so the host's
    /etc/modprobe.d never leaks into a plan for an unrelated tree.
    """
    from .kmodnames import basedir_of

    base = basedir_of(dirname)
    return "/nonexistent-moddeps-basedir" if base is None else base


# --------------------------------------------------------------------------
# libkmod's module objects and context
# --------------------------------------------------------------------------


class _KMod:
    """A libkmod ``struct kmod_module``: one per name, or per (name, alias)."""

    __slots__ = ("alias", "builtin", "dep", "dep_init", "ignorecmd", "install", "install_init", "key", "name",
                 "options", "options_init", "options_rules", "path", "remove", "remove_init", "required", "visited")

    def __init__(self, key: str, name: str, alias: str | None) -> None:
        self.key = key
        self.name = name
        self.alias = alias
        self.path: str | None = None
        self.dep: list[_KMod] | None = None
        self.dep_init = False
        self.builtin: bool | None = None
        self.visited = False
        self.required = False
        self.ignorecmd = False
        self.options_init = False
        self.options: str | None = None
        self.options_rules: tuple[modprobe_config.Options, ...] = ()
        self.install_init = False
        self.install: modprobe_config.Command | None = None
        self.remove_init = False
        self.remove: modprobe_config.Command | None = None


@dataclass(slots=True)
class _Entry:
    mod: _KMod
    reason: Reason
    via: _KMod | None
    rule: Rule | None


class _Libkmod:
    """One ``struct kmod_ctx``: the pool of module objects and the lookups."""

    def __init__(self, data: TreeData, config: ModprobeConfig, dirname: str) -> None:
        self.data = data
        self.config = config
        self.dirname = dirname
        self.pool: dict[str, _KMod] = {}
        self.messages: list[str] = []
        self._exists: dict[str, bool] = {}

    # -- objects (libkmod-module.c kmod_module_new*) ---------------------------

    def _new(self, key: str, name: str, alias: str | None) -> _KMod:
        m = self.pool.get(key)
        if m is None:
            m = _KMod(key, name, alias)
            self.pool[key] = m
        return m

    def new_from_name(self, name: str) -> _KMod:
        n = modname_normalize(name)
        return self._new(n, n, None)

    def new_from_alias(self, alias: str, name: str) -> _KMod:
        # kmod_module_new_from_alias: the name is used as given, not normalised.
        return self._new(f"{name}\\{alias}", name, alias)

    def new_from_path(self, path: str) -> _KMod | str:
        """kmod_module_new_from_path; a string is the error."""
        abspath = _make_absolute(path)
        exists = self._exists.get(abspath)
        if exists is None:
            exists = self._exists[abspath] = os.path.exists(abspath)
        if not exists:
            return f"{path}: No such file or directory"
        name = path_to_modname(path)
        if name is None:
            return f"{path}: No such file or directory"
        m = self.pool.get(name)
        if m is not None:
            if m.path is None:
                m.path = abspath
            elif m.path != abspath:
                return (f"kmod_module '{name}' already exists with different path: new-path='{abspath}' "
                        f"old-path='{m.path}'")
        else:
            m = self._new(name, name, None)
            m.path = abspath
        m.builtin = False
        return m

    # -- modules.dep -----------------------------------------------------------

    def search_moddep(self, name: str) -> str | None:
        return self.data.exact("modules.dep", name)

    def parse_depline(self, mod: _KMod, line: str) -> None:
        """kmod_module_parse_depline: the path, then the dependencies *prepended*
        one by one, so the list ends up reversed (libraries first)."""
        if mod.dep_init:
            return
        mod.dep_init = True
        colon = line.find(":")
        if colon < 0:
            return
        prefix = self.dirname + "/"
        rel = line[:colon]
        if mod.path is None:
            mod.path = rel if rel.startswith("/") else prefix + rel
        deps: list[_KMod] = []
        for tok in line[colon + 1 :].replace("\t", " ").split(" "):
            if not tok:
                continue
            d = self.new_from_path(tok if tok.startswith("/") else prefix + tok)
            if isinstance(d, str):
                # kmod: the whole list is dropped and dep stays uninitialised.
                self.messages.append(f"ERROR: ctx path={tok} error={d}")
                mod.dep_init = False
                return
            deps.insert(0, d)
        mod.dep = deps

    def get_dependencies(self, mod: _KMod) -> list[_KMod]:
        if not mod.dep_init:
            line = self.search_moddep(mod.name)
            if line is not None:
                self.parse_depline(mod, line)
        return list(mod.dep or ())

    def get_path(self, mod: _KMod) -> str | None:
        if mod.path is not None:
            return mod.path
        if mod.dep_init:
            return None
        line = self.search_moddep(mod.name)
        if line is None:
            return None
        self.parse_depline(mod, line)
        return mod.path

    def is_builtin(self, mod: _KMod) -> bool:
        if mod.builtin is None:
            mod.builtin = self.data.exact("modules.builtin", mod.name) is not None
        return mod.builtin

    # -- config-derived, cached per object ---------------------------------------

    def get_options(self, mod: _KMod) -> str | None:
        if not mod.options_init:
            mod.options, mod.options_rules = self.config.options_for(mod.name, mod.alias)
            mod.options_init = True
        return mod.options

    def get_install(self, mod: _KMod) -> modprobe_config.Command | None:
        if not mod.install_init:
            mod.install = self.config.install_for(mod.name)
            mod.install_init = True
        return mod.install

    def get_remove(self, mod: _KMod) -> modprobe_config.Command | None:
        if not mod.remove_init:
            mod.remove = self.config.remove_for(mod.name)
            mod.remove_init = True
        return mod.remove

    # -- the lookup chain (libkmod.c kmod_lookup_alias_from_*) --------------------

    def lookup(self, given: str) -> tuple[list[_KMod], str | None, str | None]:
        """kmod_module_new_from_lookup: (modules, which lookup found them, error)."""
        raw = alias_normalize(fsencode(given))
        if raw is None:
            return [], None, "invalid alias (unmatched bracket)"
        name = fsdecode(raw)
        found = [a for a in self.config.aliases_matching(name)]
        if found:
            return [self.new_from_alias(a.pattern, a.modname) for a in found], "config alias", None
        if ":" not in name:
            line = self.search_moddep(name)
            if line is not None:
                m = self.new_from_name(name)
                self.parse_depline(m, line)
                return [m], "module", None
        if name.startswith("symbol:"):
            values = self.data.wildcard("modules.symbols", name)
            if values:
                return [self.new_from_alias(name, v) for v in values], "symbol", None
        cmd = self.config.install_exact(name)
        if cmd is not None:
            m = self.new_from_name(cmd.pattern)
            m.install, m.install_init = cmd, True
            return [m], "install command", None
        cmd = self.config.remove_exact(name)
        if cmd is not None:
            m = self.new_from_name(cmd.pattern)
            m.remove, m.remove_init = cmd, True
            return [m], "remove command", None
        values = self.data.wildcard("modules.alias", name)
        if values:
            return [self.new_from_alias(name, v) for v in values], "alias", None
        if self.data.exact("modules.builtin", name) is not None:
            m = self.new_from_name(name)
            m.builtin = True
            return [m], "builtin", None
        values = self.data.wildcard("modules.builtin.alias", name)
        if values:
            mods = [self.new_from_alias(name, v) for v in values]
            for m in mods:
                m.builtin = True
            return mods, "builtin alias", None
        return [], None, None

    def _lookup_list(self, names: Sequence[str]) -> list[_KMod]:
        """lookup_softdep: every module each name finds, in order."""
        out: list[_KMod] = []
        for n in names:
            mods, _how, err = self.lookup(n)
            if err is not None:
                self.messages.append(f"ERROR: failed to lookup soft dependency '{n}', continuing anyway.")
                continue
            out.extend(mods)
        return out

    def get_softdeps(self, mod: _KMod) -> tuple[list[_KMod], list[_KMod], modprobe_config.Softdep | None]:
        sd = self.config.softdep_for(mod.name)
        if sd is None:
            return [], [], None
        return self._lookup_list(sd.pre), self._lookup_list(sd.post), sd

    def get_weakdeps(self, mod: _KMod) -> tuple[list[_KMod], str | None]:
        """kmod 33 kmod_module_get_weakdeps; with no config entry (kmod 30 trees have
        no modules.weakdep), the module's own ``weakdep=`` modinfo."""
        wd = self.config.weakdep_for(mod.name)
        if wd is not None:
            return self._lookup_list(wd.weak), str(wd.rule)
        info = self.data.module(mod.name, self.get_path(mod))
        names = info.weakdeps if info is not None else ()
        if not names:
            return [], None
        return self._lookup_list(names), f"weakdep={' '.join(names)} (modinfo of {mod.name})"

    # -- probe (kmod_module_probe_insert_module) ----------------------------------

    def probe_list(self, mod: _KMod) -> list[_Entry]:
        for m in self.pool.values():
            m.visited = False
            m.required = False
        entries: list[_Entry] = []
        self._get_probe_list(mod, True, entries, "target", None, None)
        return entries

    def _get_probe_list(self, mod: _KMod, required: bool, entries: list[_Entry], reason: Reason,
                        via: _KMod | None, rule: Rule | None) -> None:
        if mod.visited:
            return
        mod.visited = True
        deps = self.get_dependencies(mod)
        if required:
            mod.required = True
            for d in deps:
                d.required = True
        for d in deps:
            self._fill_softdep(d, entries, "dependency", mod, None)
        self._fill_softdep(mod, entries, reason, via, rule)

    def _fill_softdep(self, mod: _KMod, entries: list[_Entry], reason: Reason, via: _KMod | None,
                      rule: Rule | None) -> None:
        pre, post, sd = self.get_softdeps(mod)
        srule = sd.rule if sd is not None else None
        for p in pre:
            self._get_probe_list(p, False, entries, "softdep-pre", mod, srule)
        entries.append(_Entry(mod, reason, via, rule))
        # kmod: a module with softdeps is loaded by modprobe itself, never by its install command.
        mod.ignorecmd = bool(pre or post)
        for q in post:
            self._get_probe_list(q, False, entries, "softdep-post", mod, srule)


# --------------------------------------------------------------------------
# Contexts
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanContext:
    """A module tree with its indexes and modprobe.d: what one modprobe run sees."""

    dirname: str  # as modprobe prints paths under it
    data: TreeData = field(compare=False)
    config: ModprobeConfig

    @property
    def source(self) -> Source:
        return self.data.source

    def _libkmod(self) -> _Libkmod:
        return _Libkmod(self.data, self.config, self.dirname)


def open_context(
    dirname: str,
    *,
    config_paths: Sequence[str] | None = None,
    basedir: str | None = None,
    kernel_cmdline: str | bytes | None = None,
    source: Literal["auto", "index", "scan"] = "auto",
    depmod_config: Sequence[str] | None = None,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PlanContext:
    """Open a tree for planning.

    ``dirname`` is the module directory, used verbatim in the paths printed
    (build it with :func:`modprobe_dirname` to match ``modprobe -d -S``).
    ``config_paths`` are ``-C`` paths (only they are read, as in kmod);
    without them the modprobe.d directories under ``basedir`` (default: the
    root above ``lib/modules/VERSION``).  ``kernel_cmdline``: text of a
    ``/proc/cmdline`` to apply (never read implicitly).
    """
    dirname = _make_absolute(dirname)
    base = basedir if basedir is not None else _basedir_of(dirname)
    data = open_tree(dirname, source=source, basedir=base, depmod_config=depmod_config, jobs=jobs, progress=progress)
    cfg = modprobe_config.load(config_paths, dirname=dirname, basedir=base, kernel_cmdline=kernel_cmdline,
                               module_files=data.module_files if data.source.kind == "scan" else None)
    return PlanContext(dirname, data, cfg)


# --------------------------------------------------------------------------
# Load plans
# --------------------------------------------------------------------------


def _is_path_target(target: str) -> bool:
    """kmod 31 tools/modprobe.c (insmod): a target starting with "/" or "./" is a file."""
    return target.startswith("/") or target.startswith("./")


def _target_because(lk: _Libkmod, target: str, how: str | None, mod: _KMod) -> tuple[str, ...]:
    norm_raw = alias_normalize(fsencode(target))
    norm = fsdecode(norm_raw) if norm_raw is not None else target
    if how == "module":
        return (f"module name {mod.name}",)
    if how == "file":
        return (f"module file {mod.path}",)
    if how == "config alias":
        rules = [str(a.rule) for a in lk.config.aliases_matching(norm) if a.pattern == mod.alias]
        return tuple(rules[:1]) or (f"alias {mod.alias} {mod.name} (config)",)
    if how == "symbol":
        return (f"{norm} is exported by {mod.name} (modules.symbols)",)
    if how in ("install command", "remove command"):
        cmd = mod.install if how == "install command" else mod.remove
        return (str(cmd.rule),) if cmd is not None else ()
    if how == "alias":
        pats = lk.data.alias_patterns("modules.alias", norm, mod.name)
        return tuple(f"alias {p} {mod.name} (modules.alias)" for p in pats[:3]) or (f"alias of {mod.name}",)
    if how == "builtin":
        return (f"{mod.name} is built into the kernel (modules.builtin)",)
    if how == "builtin alias":
        pats = lk.data.alias_patterns("modules.builtin.alias", norm, mod.name)
        return tuple(f"alias {p} {mod.name} (modules.builtin.modinfo)" for p in pats[:3]) or (
            f"built-in alias of {mod.name}",)
    return ()


_NeededBy = tuple[tuple[str, tuple[str, ...]], ...]


def _dependency_because(lk: _Libkmod, mod: _KMod, via: _KMod) -> tuple[tuple[str, ...], _NeededBy]:
    """The symbols ``via``'s dependency tree needs from ``mod``, and who needs them."""
    users = [via, *lk.get_dependencies(via)]
    needed: list[tuple[str, tuple[str, ...]]] = []
    symbols: list[str] = []
    seen: set[str] = set()
    for u in users:
        if u is mod or u.name == mod.name:
            continue
        syms = lk.data.direct_deps(u.name, lk.get_path(u)).get(mod.name)
        if syms:
            needed.append((u.name, syms))
            for s in syms:
                if s not in seen:
                    seen.add(s)
                    symbols.append(s)
    return tuple(symbols), tuple(needed)


def _probe_steps(lk: _Libkmod, root: _KMod, extra: str | None, target: str, how: str | None,
                 loaded: frozenset[str] | None, notes: list[str]) -> list[Step]:
    """kmod_module_probe_insert_module for one module found, in show mode
    (KMOD_PROBE_IGNORE_LOADED | DRY_RUN) or against a given loaded set."""
    if loaded is not None and (lk.is_builtin(root) or root.name in loaded):
        notes.append(f"{root.name}: already in the kernel ({'built in' if lk.is_builtin(root) else 'loaded'}); "
                     "nothing to do")
        return []
    if root.alias is not None:
        bl = lk.config.blacklisted(root.name)
        if bl is not None:
            # kmod: KMOD_PROBE_APPLY_BLACKLIST_ALIAS_ONLY, the probe stops with a positive status.
            notes.append(f"{root.name}: blacklisted ({bl.rule}); found through alias {root.alias}, so skipped")
            return []
    entries = lk.probe_list(root)
    steps: list[Step] = []
    for e in entries:
        m = e.mod
        path = lk.get_path(m)
        builtin = path is None and lk.is_builtin(m)
        needed: tuple[tuple[str, tuple[str, ...]], ...] = ()
        if e.reason == "target":
            because = _target_because(lk, target, how, m)
        elif e.reason == "dependency" and e.via is not None:
            because, needed = _dependency_because(lk, m, e.via)
        else:
            because = (str(e.rule),) if e.rule is not None else ()
        via = e.via.name if e.via is not None else None
        if loaded is not None and (lk.is_builtin(m) or m.name in loaded):
            steps.append(Step("skip", m.name, path, e.reason, because, None, via, root.name, "", m.alias, needed,
                              builtin=lk.is_builtin(m), note="already in the kernel"))
            continue
        opts = _options_concat(lk.get_options(m), extra if m is root else None)
        config = tuple(str(o.rule) for o in m.options_rules)
        cmd = lk.get_install(m)
        info = lk.data.module(m.name, path)
        permanent = info.permanent if info is not None else None
        if cmd is not None and not m.ignorecmd:
            line = f"install {cmd.command} {opts or ''}"
            steps.append(Step("install", m.name, path, e.reason, because, line, via, root.name, opts or "", m.alias,
                              needed, (str(cmd.rule), *config), builtin, permanent))
        elif path is None:
            if builtin:
                steps.append(Step("builtin", m.name, None, e.reason, because, f"builtin {m.name}", via, root.name,
                                  opts or "", m.alias, needed, config, True, None))
            else:
                steps.append(Step("skip", m.name, None, e.reason, because, None, via, root.name, opts or "",
                                  m.alias, needed, config, False, None,
                                  note="not in modules.dep and not built in: modprobe passes over it silently"))
        else:
            note = None
            if cmd is not None:
                note = f"install command ignored because {m.name} has softdeps ({cmd.rule})"
            steps.append(Step("insmod", m.name, path, e.reason, because, f"insmod {path} {opts or ''}", via,
                              root.name, opts or "", m.alias, needed, config, False, permanent, note))
    return steps


def _not_found(target: str, dirname: str) -> str:
    return f"Module {target} not found in directory {dirname}"


def plan_load(
    ctx: PlanContext,
    targets: Sequence[str],
    *,
    options: Sequence[str] = (),
    loaded: Collection[str] | None = None,
) -> tuple[Plan, ...]:
    """What ``modprobe --show-depends -a TARGET...`` does, target by target.

    ``options`` are the command-line module options (``modprobe TARGET
    opt=1 ...``); they need exactly one target.  ``loaded``: names of modules
    the kernel has loaded; None (the default) ignores the kernel's state like
    ``--show-depends``, otherwise loaded and built-in modules are skipped like
    a real ``modprobe`` run.
    """
    if options and len(targets) != 1:
        raise UsageError("module options on the command line need exactly one target (as in modprobe)")
    extra = cmdline_options(options)
    loaded_set = frozenset(n.replace("-", "_") for n in loaded) if loaded is not None else None
    lk = ctx._libkmod()
    plans = []
    for target in targets:
        plans.append(_plan_one_load(lk, ctx, target, extra, loaded_set))
    return tuple(plans)


def _plan_one_load(lk: _Libkmod, ctx: PlanContext, target: str, extra: str | None,
                   loaded: frozenset[str] | None) -> Plan:
    before = len(lk.messages)
    notes: list[str] = []
    if _is_path_target(target):
        m = lk.new_from_path(target)
        if isinstance(m, str):
            msg = f"Failed to get module from path {target}: No such file or directory"
            return Plan(target, False, (), None, msg, msg, ())
        mods: list[_KMod] = [m]
        how: str | None = "file"
        err: str | None = None
        indexed = lk.search_moddep(m.name)
        if indexed is not None:
            rel = indexed[: indexed.find(":")]
            idx_path = rel if rel.startswith("/") else f"{ctx.dirname}/{rel}"
            if os.path.realpath(idx_path) != os.path.realpath(m.path or ""):
                notes.append(f"{target} is not the file indexed for {m.name} ({idx_path}); "
                             "its dependencies come from the index entry of that name")
        notes.append("a module file as target needs kmod 31's modprobe; kmod 30 reports it as not found")
    else:
        mods, how, err = lk.lookup(target)
    if not mods or err is not None:
        msg = _not_found(target, ctx.dirname)
        return Plan(target, False, tuple(m.name for m in mods), how, err or msg, msg, (), tuple(notes),
                    tuple(lk.messages[before:]))
    steps: list[Step] = []
    for m in mods:
        steps.extend(_probe_steps(lk, m, extra, target, how, loaded, notes))
    return Plan(target, False, tuple(m.name for m in mods), how, None, None, tuple(steps), tuple(notes),
                tuple(lk.messages[before:]))


# --------------------------------------------------------------------------
# Unload plans
# --------------------------------------------------------------------------

_RM_HOLDERS = 1
_RM_IGNORE_BUILTIN = 2
_MAX_RM_DEPTH = 64


class _SoftdepLoop(Exception):
    """kmod tools/modprobe.c (rmmod_do_module) recurses into softdeps without any
    guard: a softdep loop makes ``modprobe -r`` recurse until it crashes."""


class _Remover:
    """tools/modprobe.c rmmod_do_module, on a simulated kernel state."""

    def __init__(self, lk: _Libkmod, loaded: set[str] | None) -> None:
        self.lk = lk
        self.loaded = loaded  # None: --show-depends (the kernel's state is ignored)
        self.steps: list[Step] = []
        self.notes: list[str] = []
        self.errors: list[str] = []

    def holders(self, name: str) -> list[str]:
        if self.loaded is None:
            return []
        out = []
        for other in sorted(self.loaded):
            if other == name:
                continue
            om = self.lk.new_from_name(other)
            if name in self.lk.data.direct_deps(other, self.lk.get_path(om)):
                out.append(other)
        return out

    def _step(self, mod: _KMod, action: Action, line: str, reason: Reason, because: tuple[str, ...],
              via: _KMod | None, root: _KMod, config: tuple[str, ...] = ()) -> None:
        path = self.lk.get_path(mod)
        builtin = self.lk.is_builtin(mod) if path is None else False
        info = self.lk.data.module(mod.name, path)
        permanent = info.permanent if info is not None else None
        note = None
        if builtin:
            note = "built into the kernel: it can never be unloaded"
        elif permanent:
            note = "no exit function: the kernel refuses to unload it"
        self.steps.append(Step(action, mod.name, path, reason, because, line, via.name if via else None, root.name,
                               "", mod.alias, (), config, builtin, permanent, note))

    def remove_module(self, mod: _KMod, reason: Reason, because: tuple[str, ...], via: _KMod | None,
                      root: _KMod) -> bool:
        """rmmod_do_remove_module: prints ``rmmod NAME``; False when the kernel would refuse."""
        self._step(mod, "rmmod", f"rmmod {mod.name}", reason, because, via, root)
        if self.loaded is not None:
            step = self.steps[-1]
            if mod.name not in self.loaded:
                # kmod 30: the module went away meanwhile (removed as an unused
                # dependency of a holder); delete_module fails with ENOENT.
                self.errors.append(f"could not remove '{mod.name}': No such file or directory")
                return False
            if step.permanent:
                self.errors.append(f"could not remove '{mod.name}': Device or resource busy")
                return False
            self.loaded.discard(mod.name)
        return True

    def rm(self, mod: _KMod, flags: int, reason: Reason, because: tuple[str, ...], via: _KMod | None,
           root: _KMod, depth: int = 0) -> bool:
        if depth > _MAX_RM_DEPTH:
            raise _SoftdepLoop(f"softdep loop through {mod.name}: modprobe -r recurses until it crashes "
                               "(kmod 30 has no guard)")
        lk = self.lk
        pre, post, sd = lk.get_softdeps(mod)
        cmd = lk.get_remove(mod)
        srule = (str(sd.rule),) if sd is not None else ()
        if cmd is None and self.loaded is not None:
            if lk.is_builtin(mod):
                if flags & _RM_IGNORE_BUILTIN:
                    return True
                self.errors.append(f"Module {mod.name} is builtin.")
                return False
            if mod.name not in self.loaded:
                self.notes.append(f"{mod.name} is not loaded: nothing to do")
                return True
        for m in reversed(post):
            self.rm(m, _RM_IGNORE_BUILTIN, "softdep-post", srule, mod, root, depth + 1)
        if flags & _RM_HOLDERS:
            if self.loaded is None:
                self.notes.append(f"holders of {mod.name} are not known without the kernel's state "
                                  "(modprobe reads /sys/module/NAME/holders)")
            else:
                holders = self.holders(mod.name)
                for h in reversed(holders):
                    hm = lk.new_from_name(h)
                    syms = lk.data.direct_deps(h, lk.get_path(hm)).get(mod.name, ())
                    if not self.rm(hm, _RM_IGNORE_BUILTIN, "holder", syms, mod, root, depth + 1):
                        return False
        if cmd is None and self.loaded is not None:
            holders = self.holders(mod.name)
            if holders:
                self.errors.append(f"Module {mod.name} is in use.")
                self.notes.append(f"{mod.name} is held by {', '.join(holders)}")
                return False
        if cmd is None:
            if not self.remove_module(mod, reason, because, via, root):
                return False
        else:
            command = cmd.command.replace("$CMDLINE_OPTS", "")
            self._step(mod, "remove", f"remove {command}", reason, because, via, root, (str(cmd.rule),))
            if self.loaded is not None:
                self.loaded.discard(mod.name)
        if cmd is None and self.loaded is not None:
            for d in lk.get_dependencies(mod):
                if d.name in self.loaded and not lk.is_builtin(d) and not self.holders(d.name):
                    self.remove_module(d, "unused-dependency", (f"no longer used after {mod.name}",), mod, root)
        for m in reversed(pre):
            self.rm(m, _RM_IGNORE_BUILTIN, "softdep-pre", srule, mod, root, depth + 1)
        return True


def plan_remove(
    ctx: PlanContext,
    targets: Sequence[str],
    *,
    remove_holders: bool = False,
    loaded: Collection[str] | None = None,
) -> tuple[Plan, ...]:
    """What ``modprobe -r [--remove-holders] TARGET...`` does.

    With ``loaded=None`` this is exactly ``modprobe -r --show-depends`` on a
    kernel that has none of the modules loaded (the kernel's state is
    ignored, so holders and unused dependencies are unknown).  With
    ``loaded`` (module names, e.g. from /proc/modules) the removal is
    simulated: modules not loaded are skipped, holders come first, a module
    still in use stops the plan, and dependencies left unused follow.
    """
    lk = ctx._libkmod()
    state = {n.replace("-", "_") for n in loaded} if loaded is not None else None
    plans = []
    for target in targets:
        before = len(lk.messages)
        mods, how, err = lk.lookup(target)
        if err is not None:
            # kmod tools/modprobe.c (rmmod): a failed lookup returns without a message.
            plans.append(Plan(target, True, (), None, err, None, (), (), tuple(lk.messages[before:])))
            continue
        if not mods:
            msg = f"Module {target} not found."
            plans.append(Plan(target, True, (), None, msg, msg, (), (), tuple(lk.messages[before:])))
            continue
        rem = _Remover(lk, state)
        error: str | None = None
        message: str | None = None
        for m in mods:
            because = _target_because(lk, target, how, m)
            flags = _RM_HOLDERS if remove_holders else 0
            try:
                ok = rem.rm(m, flags, "target", because, None, m)
            except _SoftdepLoop as exc:
                error = str(exc)  # modprobe prints nothing more: it dies
                break
            if not ok:
                error = message = rem.errors[-1] if rem.errors else "removal failed"
                break
        plans.append(Plan(target, True, tuple(m.name for m in mods), how, error, message, tuple(rem.steps),
                          tuple(rem.notes), tuple(lk.messages[before:])))
    return tuple(plans)


# --------------------------------------------------------------------------
# Closure (initramfs)
# --------------------------------------------------------------------------

_FW_SUFFIXES = ("", ".zst", ".xz")


def _firmware_dirs(dirname: str, version: str) -> list[str]:
    """The kernel's firmware search path (drivers/base/firmware_loader/main.c,
    fw_path[]) under the tree's root."""
    base = _basedir_of(dirname)
    if base.startswith("/nonexistent"):
        base = ""
    return [f"{base}/lib/firmware/updates/{version}", f"{base}/lib/firmware/updates",
            f"{base}/lib/firmware/{version}", f"{base}/lib/firmware"]


def closure(
    ctx: PlanContext,
    targets: Sequence[str],
    *,
    firmware_dirs: Sequence[str] | None = None,
    allow_missing_firmware: bool = False,
) -> Closure:
    """Module files (softdeps and weakdeps followed) and firmware for ``targets``.

    Every step of each target's load plan is included with its reason, then
    the weakdeps of everything included (kmod 33 ``weakdep`` config, else the
    module's ``weakdep=`` modinfo) with their own plans, until nothing new
    appears; then the firmware each included module declares.  A target
    that cannot be found (or is blacklisted) is an error, never silently
    dropped.  Built-in modules are listed as such, without a file (and
    named in a note).

    An initramfs built from an incomplete list fails at boot, so anything
    missing is a *problem* (exit status 1): a module file of the closure
    that does not exist or cannot be read as a module; in a tree planned
    from a scan, any module file that could not be read (what it exports is
    unknown, so a dependency on it cannot be seen); a firmware file not found
    in the firmware directories (a note instead with
    ``allow_missing_firmware``: many drivers declare firmware for hardware
    variants that a given machine does not have).
    """
    lk = ctx._libkmod()
    items: list[ClosureItem] = []
    seen: dict[str, int] = {}
    errors: list[tuple[str, str]] = []
    notes: list[str] = []
    order: list[_KMod] = []

    def add_steps(steps: Iterable[Step], first_reason: str | None, first_because: tuple[str, ...],
                  first_via: str | None) -> None:
        for s in steps:
            if s.action == "skip":
                if s.note:
                    notes.append(f"{s.module}: {s.note}")
                continue
            if s.module in seen:
                continue
            reason: str = s.reason
            because, via = s.because, s.via
            if first_reason is not None and s.reason == "target":
                reason, because, via = first_reason, first_because, first_via
            if s.action == "install":
                reason = f"{reason}; install-command"
                notes.append(f"{s.module}: loaded by an install command ({s.config[0] if s.config else ''}); "
                             "the file is included, what the command runs is not")
            kind: Literal["module", "builtin"] = "builtin" if s.action == "builtin" else "module"
            if kind == "module" and s.path is None:
                continue
            seen[s.module] = len(items)
            items.append(ClosureItem(kind, s.module, s.path, reason, because, via,
                                     s.path is None or os.path.exists(s.path)))
            order.append(lk.new_from_name(s.module))

    for target in targets:
        plan = _plan_one_load(lk, ctx, target, None, None)
        if not plan.ok:
            errors.append((target, plan.error or "not found"))
            continue
        if not plan.steps:
            errors.append((target, "; ".join(plan.notes) or f"{target}: nothing to load"))
            continue
        add_steps(plan.steps, None, (), None)

    # weakdeps, to a fixpoint
    done: set[str] = set()
    i = 0
    while i < len(order):
        m = order[i]
        i += 1
        if m.name in done:
            continue
        done.add(m.name)
        weak, rule = lk.get_weakdeps(m)
        for w in weak:
            if w.name in seen:
                continue
            for_notes: list[str] = []
            steps = _probe_steps(lk, w, None, w.name, "module", None, for_notes)
            notes.extend(for_notes)
            add_steps(steps, "weakdep", (rule,) if rule else (), m.name)

    problems: list[tuple[str, str]] = []
    for item in items:
        if item.kind == "builtin":
            notes.append(f"{item.name}: built into the kernel (modules.builtin): no file to include")
        elif item.path is not None and not item.exists:
            problems.append((item.name, f"{item.path}: no such module file ({item.reason}"
                             f"{f' of {item.via}' if item.via else ''}): the closure is incomplete"))
        elif (what := ctx.data.module(item.name, item.path)) is None or what.error is not None:
            problems.append((item.name, f"{item.path}: cannot be read as a module ({item.reason}"
                             f"{f' of {item.via}' if item.via else ''}): its dependencies and firmware are "
                             "unknown, the closure is incomplete"))
    tree = ctx.data._tree
    if tree is not None:
        named = {name for name, _ in problems}
        for bad in tree.broken:
            if bad.name in named:
                continue
            problems.append((bad.name, f"{tree.dirname}/{bad.path}: cannot be read as a module ({bad.error}): what it "
                             "exports is unknown, so the closure may lack it"))
        for fp in tree.problems:
            problems.append((os.path.basename(fp.path), f"{tree.dirname}/{fp.path}: {fp.reason}: the closure may "
                             "lack it"))

    # firmware
    version = os.path.basename(ctx.dirname.rstrip("/"))
    dirs = list(firmware_dirs) if firmware_dirs is not None else _firmware_dirs(ctx.dirname, version)
    fw_seen: set[str] = set()
    for item in list(items):
        if item.kind != "module":
            continue
        info = ctx.data.module(item.name, item.path)
        if info is None:
            continue
        for fw in info.firmware:
            if fw in fw_seen:
                continue
            fw_seen.add(fw)
            found = None
            for d in dirs:
                for suffix in _FW_SUFFIXES:
                    cand = f"{d}/{fw}{suffix}"
                    if os.path.isfile(cand):
                        found = cand
                        break
                if found:
                    break
            items.append(ClosureItem("firmware", fw, found or f"{dirs[-1]}/{fw}", "firmware",
                                     (f"firmware={fw} (modinfo of {item.name})",), item.name, found is not None))
            if found is None:
                text = f"firmware {fw} (declared by {item.name}) not found in {', '.join(dirs)}"
                if allow_missing_firmware:
                    notes.append(f"{text} (--allow-missing-firmware)")
                else:
                    problems.append((fw, f"{text}; --allow-missing-firmware to accept"))
    return Closure(ctx.dirname, ctx.source, tuple(targets), tuple(items), tuple(errors), tuple(notes),
                   tuple(problems))


# --------------------------------------------------------------------------
# One call for the CLI
# --------------------------------------------------------------------------


def plan_targets(
    dirname: str,
    targets: Sequence[str],
    *,
    config_paths: Sequence[str] | None = None,
    basedir: str | None = None,
    remove: bool = False,
    remove_holders: bool = False,
    show_depends_mode: bool = True,
    loaded: Collection[str] | None = None,
    options: Sequence[str] = (),
    kernel_cmdline: str | bytes | None = None,
    source: Literal["auto", "index", "scan"] = "auto",
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PlanSet:
    """Plans for ``targets`` in ``dirname``, like one ``modprobe -a`` (or ``-r``) run.

    ``show_depends_mode`` ignores the kernel's state (``--show-depends``);
    turn it off and give ``loaded`` to plan against a kernel's loaded modules.
    """
    ctx = open_context(dirname, config_paths=config_paths, basedir=basedir, kernel_cmdline=kernel_cmdline,
                       source=source, jobs=jobs, progress=progress)
    state = None if show_depends_mode else frozenset(loaded or ())
    if remove:
        plans = plan_remove(ctx, targets, remove_holders=remove_holders, loaded=state)
    else:
        plans = plan_load(ctx, targets, options=options, loaded=state)
    return PlanSet(ctx.dirname, ctx.data.version, ctx.source, ctx.config.files, plans, remove, ctx.config.messages)
