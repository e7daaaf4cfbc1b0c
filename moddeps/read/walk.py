"""Walk a module tree as depmod does and register its module files by name.

The steps of kmod tools/depmod.c:depmod_modules_search@v34.2 (the same in
v30): the module directory is walked, then each ``external`` directory, in
raw ``readdir`` order (never sorted: of two files of one name with the same
priority, the order decides).  ``build``, ``source`` and the ``exclude``
names are skipped at every depth; symlinks are followed (with a guard
against loops, which kmod lacks).  Each module file is registered by its
name; a second file of a name that is already registered replaces the first
or is dropped, by the ``override`` and ``search`` rules of depmod.d.
"""

from __future__ import annotations

import os
import stat

from ..config import DepmodConfig
from ..kmodnames import MODULE_SUFFIXES
from ..model import FileProblem, modname_from_path, printable
from ..native import DECLINED, Declined, load, twin
from ..records import dataclass
from .fileid import FileStat, identity, tree_names

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

SKIP_NAMES = frozenset({".", "..", "build", "source"})

_native = load("_elfscan")


def order_key(relpath: str, name: str) -> str:
    """:attr:`ModuleFile.uncrelpath` of a module file of ``relpath`` and module name ``name``
    (a function: :func:`moddeps.read.order.module_array` takes it for every module)."""
    slash = relpath.rfind("/")
    return relpath[: (slash if slash >= 0 else 0) + 1 + len(name) + 3]


@dataclass(frozen=True, slots=True)
class ModuleFile:
    """A module file found by the walk."""

    name: str
    path: str  # absolute (or as given) path to open
    relpath: str | None  # relative to the module directory; None for external modules

    @property
    def shown(self) -> str:
        """What depmod prints for it: the relpath, or the absolute path for externals."""
        return self.relpath if self.relpath is not None else self.path

    @property
    def uncrelpath(self) -> str | None:
        """The string matched against ``modules.order``.

        kmod tools/depmod.c:depmod_module_add@v34.2: the first
        ``len(reldir) + 1 + len(modname) + 3`` characters of the relpath, so
        ``kernel/fs/foo-bar.ko.xz`` gives ``kernel/fs/foo-bar.ko`` and
        ``kernel/foo.bar.ko`` gives the odd ``kernel/foo.ba``.
        """
        return None if self.relpath is None else order_key(self.relpath, self.name)



def is_module_filename(name: str) -> bool:
    """kmod tools/depmod.c:depmod_modules_search_file@v34.2: a name longer than its
    extension that ends in a module extension."""
    if name.endswith(MODULE_SUFFIXES):
        for suffix in MODULE_SUFFIXES:  # the suffixes exclude each other
            if name.endswith(suffix):
                return len(name) > len(suffix)
    return False


class Registry:
    """Module files by name, resolving duplicates as kmod does (:meth:`add`).

    depmod given file arguments fills ``by_name`` itself (``moddeps.depmod.run``)."""

    def __init__(self, dirname: str, config: DepmodConfig) -> None:
        self.dirname = dirname
        self.config = config
        self.by_name: dict[str, ModuleFile] = {}
        self.dups: dict[str, list[tuple[str, str, str]]] = {}  # name -> [(kept, dropped, reason)]

    def add(self, mf: ModuleFile) -> None:
        old = self.by_name.get(mf.name)
        if old is None:
            self.by_name[mf.name] = mf
            return
        new_wins, reason = self._new_wins(old, mf)
        kept, dropped = (mf, old) if new_wins else (old, mf)
        self.dups.setdefault(mf.name, []).append((kept.shown, dropped.shown, reason))
        if new_wins:
            self.by_name[mf.name] = mf

    def _override_key(self, mf: ModuleFile) -> str | None:
        if mf.relpath is None:
            return None
        slash = mf.relpath.rfind("/")
        reldir = mf.relpath[:slash] if slash >= 0 else ""
        base = mf.relpath[slash + 1 :]
        return f"{reldir}/{base[: len(mf.name)]}"

    def _new_wins(self, old: ModuleFile, new: ModuleFile) -> tuple[bool, str]:
        """kmod tools/depmod.c:depmod_module_is_higher_priority@v34.2."""
        cfg = self.config
        new_key, old_key = self._override_key(new), self._override_key(old)
        # kmod prepends each override, so the last configured is tested first;
        # within one override, the new file is tested before the old one.
        for ov in reversed(cfg.overrides):
            if ov.path == new_key:
                return True, f"override {ov.modname} {ov.subdir}"
            if ov.path == old_key:
                return False, f"override {ov.modname} {ov.subdir}"
        i = 0
        bprio = oldprio = newprio = -1
        externals_internal = list(reversed(cfg.externals))
        for entry in reversed(cfg.effective_search):
            if entry == "built-in":
                bprio = i
            elif entry == "external":
                for d in externals_internal:
                    if new.path.startswith(d + "/"):
                        newprio = i
                    if old.path.startswith(d + "/"):
                        oldprio = i
                    i += 1
            else:
                # kmod's else-if: old is only tested when new did not match,
                # so of two files in one search directory the later one wins.
                if new.relpath is not None and new.relpath.startswith(entry + "/"):
                    newprio = i
                elif old.relpath is not None and old.relpath.startswith(entry + "/"):
                    oldprio = i
            i += 1
        if newprio < 0:
            newprio = bprio
        if oldprio < 0:
            oldprio = bprio
        if newprio <= oldprio:
            if newprio == oldprio:
                return False, "equal search priority: the file found first in directory order is kept"
            return False, "kept file is in a higher-priority search directory"
        if any(new.relpath and new.relpath.startswith(e + "/") and old.relpath and old.relpath.startswith(e + "/")
               for e in cfg.effective_search):
            return True, "both in one search directory: kmod keeps the file found later in directory order"
        return True, "kept file is in a higher-priority search directory"


def discover(dirname: str, config: DepmodConfig, problems: list[FileProblem],
             seen: list[tuple[str, FileStat | frozenset[str] | None]] | None = None) -> Registry:
    """Walk ``dirname`` and the external directories.  ``seen`` is given the identity of each
    directory entered (of ``dirname``, its :func:`~.fileid.tree_names`), taken before it is
    listed, and None for each dangling symlink and missing external directory
    (:mod:`moddeps.depmod.stamp` checks them again)."""
    registry = Registry(dirname, config)
    excludes = frozenset(config.excludes)
    _walk(dirname, "", registry, excludes, problems, seen)
    # kmod walks the external list in internal (reversed) order.
    for ext in reversed(config.externals):
        if os.path.isdir(ext):
            _walk(ext.rstrip("/") or "/", None, registry, excludes, problems, seen)
        else:
            if seen is not None:
                seen.append((ext, None))
            # kmod tools/depmod.c:depmod_modules_search_path@v34.2: reported, then skipped
            problems.append(FileProblem(
                ext, "external directory does not exist",
                f"ERROR: could not open directory {ext}: No such file or directory",
            ))
    return registry


#: Characters that a path written into modules.dep cannot hold: libkmod splits
#: a line at its first ":" and the dependency list at blanks.
_UNSAFE_PATH = {"\n": "a newline", " ": "a blank", "\t": "a tab", ":": "a colon", "\r": "a carriage return"}


_UNSAFE_CHARS = frozenset(_UNSAFE_PATH)


def _unsafe_path(path: str) -> str | None:
    if _UNSAFE_CHARS.isdisjoint(path):
        return None
    for ch, what in _UNSAFE_PATH.items():
        if ch in path:
            return what
    return None


def _walk(top: str, rel: str | None, registry: Registry, excludes: frozenset[str], problems: list[FileProblem],
          seen: list[tuple[str, FileStat | frozenset[str] | None]] | None) -> None:
    """Walk ``top`` (:func:`_walk_exact`; in C when every entry is a directory or a regular file:
    ``_elfscan.walk``, 25 -> 8 ms for Debian 12's amd64 tree)."""
    twin(_native, lambda c: _walk_c(c, top, rel, registry, excludes, seen),
         lambda: _walk_exact(top, rel, registry, excludes, problems, set(), seen))


def _walk_c(c: ModuleType, top: str, rel: str | None, registry: Registry, excludes: frozenset[str],
            seen: list[tuple[str, FileStat | frozenset[str] | None]] | None) -> Declined | None:
    """``_elfscan.walk`` of ``top``, its findings registered; DECLINED (nothing registered) for the twin."""
    names = None
    if seen is not None and rel == "":
        try:  # (taken before the walk lists the top, as _walk_exact's enter takes it)
            names = tree_names(top)
        except OSError:
            return DECLINED
    got: tuple[list[tuple[str, FileStat | frozenset[str] | None]], list[tuple[str, str, str | None]]] | Declined
    got = c.walk(top, rel, _skip_bytes(excludes), seen is not None)
    if got is DECLINED:
        return DECLINED
    dirs, files = got
    if seen is not None:
        if names is not None:
            dirs[0] = (top, names)
        seen += dirs
    add = registry.add
    for name, path, relpath in files:
        add(ModuleFile(name, path, relpath))
    return None


def _skip_bytes(excludes: frozenset[str]) -> tuple[bytes, ...]:
    return tuple(os.fsencode(n) for n in SKIP_NAMES | excludes)


def _walk_exact(
    top: str,
    rel: str | None,
    registry: Registry,
    excludes: frozenset[str],
    problems: list[FileProblem],
    ancestors: set[tuple[int, int]],
    seen: list[tuple[str, FileStat | frozenset[str] | None]] | None = None,
) -> None:
    """kmod's recursive walk, entry by entry, with an explicit stack (any depth,
    no recursion): a subdirectory is descended as soon as it is met, so files
    listed after it in the parent are registered after its contents."""
    stack: list[tuple[str, str | None, Iterator[os.DirEntry[str]], tuple[int, int]]] = []

    def enter(dirpath: str, rel: str | None) -> None:
        shown = rel or dirpath
        try:
            st = os.stat(dirpath)
            if seen is not None:
                # the top's identity changes with every depmod writing its files there: its names instead
                seen.append((dirpath, tree_names(dirpath) if rel == "" else identity(st)))
            ident = (st.st_dev, st.st_ino)
            if ident in ancestors:
                problems.append(FileProblem(shown, "symlink loop: a directory contains itself; not descended"))
                return
            with os.scandir(dirpath) as it:
                entries = list(it)
        except OSError as exc:
            problems.append(FileProblem(
                shown, f"cannot list directory ({len(stack)} levels deep): {exc.strerror}; not descended"))
            return
        ancestors.add(ident)
        stack.append((dirpath, rel, iter(entries), ident))

    enter(top, rel)
    while stack:
        dirpath, rel, entries, ident = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            ancestors.discard(ident)
            continue
        name = entry.name
        if name in SKIP_NAMES or name in excludes:
            continue
        path = f"{dirpath}/{name}"
        child_rel = None if rel is None else (f"{rel}/{name}" if rel else name)
        try:
            # DirEntry.is_dir/is_file use d_type and stat (following
            # symlinks) only when needed, as kmod does.
            is_dir = entry.is_dir()
            is_file = not is_dir and entry.is_file()
        except OSError as exc:
            problems.append(FileProblem(child_rel or path, f"cannot stat: {exc.strerror}"))
            continue
        if is_dir:
            enter(path, child_rel)
        elif is_file:
            if is_module_filename(name):
                shown = child_rel if child_rel is not None else path
                what = _unsafe_path(shown)
                if what is not None:
                    # kmod writes such a path verbatim, injecting lines or
                    # dependencies into modules.dep: moddeps leaves it out.
                    msg = f"{printable(shown)}: module path contains {what}, which modules.dep cannot hold; skipped"
                    problems.append(FileProblem(shown, msg, f"ERROR: {msg}"))
                    continue
                registry.add(ModuleFile(modname_from_path(name), path, child_rel))
        elif entry.is_symlink() and not os.path.exists(path):
            problems.append(FileProblem(child_rel or path, "dangling symlink"))
            if seen is not None:
                seen.append((path, None))
        else:
            try:
                fmt = stat.S_IFMT(os.stat(path).st_mode)
            except OSError:
                fmt = 0
            problems.append(FileProblem(
                child_rel or path, "unsupported file type",
                f"ERROR: unsupported file type {path}: {fmt:o}",
            ))
