"""The five indexes modprobe reads, and whether a tree's own can be trusted.

libkmod's kmod_load_resources maps ``modules.dep.bin``, ``modules.alias.bin``,
``modules.symbols.bin``, ``modules.builtin.alias.bin`` (optional) and
``modules.builtin.bin``; when one of the others cannot be opened it drops them
all and every lookup opens its file anew (the "stdio" reader).  moddeps uses
the tree's own files when they are current (:func:`index_state`), otherwise
the files its depmod would write now, computed from a scan (:func:`open_tree`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from ..errors import CycleError, IndexFormatError, InputError, UsageError
from ..globmatch import fnmatch
from ..index.read import Index
from ..kmodnames import config_basedir
from ..model import Module, fsdecode, fsencode
from ..records import dataclass

if TYPE_CHECKING:
    from ..index.format import ReaderKind
    from ..read.scan import Tree
    from ..resolve import Resolution

__all__ = [
    "INDEX_FILES",
    "OPTIONAL_INDEX",
    "Source",
    "SourceKind",
    "TreeData",
    "index_state",
    "open_tree",
]

#: libkmod/libkmod.c index_files[], in kmod_load_resources' order.
INDEX_FILES = ("modules.dep", "modules.alias", "modules.symbols", "modules.builtin.alias", "modules.builtin")
#: The one index kmod_load_resources may fail to open without falling back to stdio.
OPTIONAL_INDEX = "modules.builtin.alias"


SourceKind = Literal["index", "scan"]


@dataclass(frozen=True, slots=True)
class Source:
    """Where the indexes came from, and why."""

    kind: SourceKind  # "index": the tree's own .bin files; "scan": computed from the modules now
    reason: str
    reader: ReaderKind  # which libkmod reader the lookups imitate


class TreeData:
    """The five indexes modprobe reads, the module-side config files, and access
    to what each module file says (symbols, exit function, firmware)."""

    def __init__(
        self,
        dirname: str,
        indexes: dict[str, Index | None],
        source: Source,
        module_files: dict[str, bytes | None],
        tree: Tree | None = None,
        resolution: Resolution | None = None,
    ) -> None:
        self.dirname = dirname
        self.indexes = indexes
        self.source = source
        self.reader: ReaderKind = source.reader
        self.module_files = module_files  # "modules.softdep"/"modules.weakdep" contents (scan), else empty
        #: the scan the indexes were computed from, and its resolution (None: the tree's own index files)
        self.tree = tree
        self.resolution = resolution
        self._by_name: dict[str, int] = {}
        if self.tree is not None:
            self._by_name = {m.name: i for i, m in enumerate(self.tree.modules)}
        self._modules: dict[str, Module | None] = {}
        self._owners: dict[str, str | None] = {}
        self._edges: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}
        self._patterns: dict[str, dict[bytes, list[bytes]]] = {}

    @property
    def version(self) -> str:
        return os.path.basename(self.dirname.rstrip("/"))

    # -- index lookups, with libkmod's semantics (docs/index-format.md; libkmod/libkmod-index.c@v34.2) --

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
        if self.tree is not None:
            i = self._by_name.get(name)
            if i is not None:
                return self.tree.modules[i]
        if path is None:
            return None
        key = path
        if key not in self._modules:
            from ..read.elfreader import read_module_or_broken  # here: only an indexed tree reads files (start-up cost)

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
        if self.tree is not None and self.resolution is not None and name in self._by_name:
            i = self._by_name[name]
            mods = self.tree.modules
            for d, syms in self.resolution.edge_symbols[i].items():
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
    # imported here, not at the top: planning from given indexes never walks the tree (start-up cost)
    from .. import config as depmod_config
    from ..read.walk import discover

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


def _reader_for(indexes: dict[str, Index | None]) -> ReaderKind:
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
    base = config_basedir(dirname, basedir)
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
            from ..inputfiles import read_optional

            data = read_optional(f"{dirname}/{name}.bin")  # regular files only, bounded
            indexes[name] = None if data is None else _parse_or_none(data, f"{dirname}/{name}.bin")
        reader = _reader_for(indexes)
        return TreeData(dirname, indexes, Source(kind="index", reason=why, reader=reader), {})
    return _scanned(dirname, base, why, depmod_config, jobs, progress)


def _scanned(
    dirname: str,
    basedir: str,
    why: str,
    depmod_config: Sequence[str] | None,
    jobs: int | None,
    progress: Callable[[int, int], None] | None,
) -> TreeData:
    # imported here, not at the top: only a scan needs depmod (start-up cost)
    from .. import config as depmod_cfg
    from ..depmod.render import render_files
    from ..read.scan import scan_tree
    from ..resolve import resolve

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
    return TreeData(dirname, indexes, Source(kind="scan", reason=why, reader=reader), module_files, tree, res)

