"""Scan a module tree: walk it, lay out kmod's module array, read every module.

:func:`layout_tree` walks and orders (:mod:`.walk`, :mod:`.order`) without
reading a module; :func:`read_layout` reads the modules of that layout
(:mod:`.pool`) into a :class:`Tree`; :func:`scan_tree` does both.  The order
of the steps is kmod's (tools/depmod.c@v34.2: depmod_modules_search,
depmod_modules_sort, depmod_load_modules).
"""

from __future__ import annotations

import os

from ..config import DepmodConfig
from ..inputfiles import read_optional
from ..model import FileProblem, Module, modname_from_path
from ..records import dataclass, field
from .fileid import FileStat
from .order import module_array
from .walk import ModuleFile, discover

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:  # the cache module (and sqlite3) only when a caller has a cache
    from collections.abc import Sequence

    from .cache import Key, ScanCache
    from .pool import ProgressFn

# The readers (.pool, and with it .elfreader, .compression and moddeps.signature)
# are imported where modules are read: a depmod rerun answered from the cache
# reads none (start-up cost).


@dataclass(frozen=True, slots=True)
class Duplicate:
    """One module name met in several files, and which one depmod keeps."""

    name: str
    winner: str
    losers: tuple[str, ...]
    reasons: tuple[str, ...]  # one per decision, in the order they were made


@dataclass(frozen=True, slots=True)
class WalkedTree:
    """A tree walked (:mod:`.walk`) and laid out in kmod's module array (:mod:`.order`),
    its modules not read yet: :func:`layout_tree` makes it, :func:`read_layout` reads it."""

    dirname: str
    version: str
    files: tuple[ModuleFile, ...]  # the module array
    order_listed: frozenset[str]
    order_applied: bool
    order_text: bytes | None
    duplicates: tuple[Duplicate, ...]
    problems: tuple[FileProblem, ...]
    messages: tuple[str, ...]
    config: DepmodConfig
    #: what the walk saw, taken before it was listed: each directory's identity (the top's names), None for each
    #: dangling symlink and missing external directory (``layout_tree(..., record=True)``)
    walked: tuple[tuple[str, FileStat | frozenset[str] | None], ...] = ()


@dataclass(frozen=True, slots=True)
class Tree:
    """A scanned module tree: the module array and what was found around it."""

    dirname: str
    version: str
    modules: tuple[Module, ...]  # the module array (modules.dep line order)
    files: tuple[ModuleFile, ...]  # same order as modules
    order_listed: frozenset[str] = frozenset()  # module names placed by modules.order
    order_applied: bool = False
    builtin: tuple[str, ...] = ()  # module names from modules.builtin
    duplicates: tuple[Duplicate, ...] = ()
    problems: tuple[FileProblem, ...] = ()
    messages: tuple[str, ...] = ()  # kmod-style messages ("WARNING: ...") in kmod's order
    config: DepmodConfig = field(default_factory=DepmodConfig)

    def by_name(self) -> dict[str, Module]:
        return {m.name: m for m in self.modules}

    @property
    def broken(self) -> tuple[Module, ...]:
        return tuple(m for m in self.modules if m.error is not None)


def layout_tree(dirname: str, *, version: str | None = None, config: DepmodConfig | None = None,
                order_first_wins: bool = True, record: bool = False) -> WalkedTree:
    """Walk ``dirname`` and lay out kmod's module array, without reading a module.

    ``order_first_wins``: see :func:`~moddeps.read.order.module_array` (kmod 34's rule by default);
    ``record``: keep what the walk saw (:attr:`WalkedTree.walked`)."""
    from ..errors import InputError

    cfg = config or DepmodConfig()
    dirname = dirname.rstrip("/") or "/"
    if not os.path.isdir(dirname):
        raise InputError(f"{dirname}: no such module directory")
    problems: list[FileProblem] = []
    walked: list[tuple[str, FileStat | frozenset[str] | None]] | None = [] if record else None
    registry = discover(dirname, cfg, problems, walked)
    order_text = read_optional(f"{dirname}/modules.order")
    array, listed, applied, messages = module_array(registry.by_name.values(), dirname, order_text,
                                                    first_wins=order_first_wins)
    duplicates = tuple(
        Duplicate(
            name=name,
            winner=registry.by_name[name].shown,
            losers=tuple(dropped for _kept, dropped, _why in events),
            reasons=tuple(f"{kept} kept over {dropped}: {why}" for kept, dropped, why in events),
        )
        for name, events in registry.dups.items()
    )
    return WalkedTree(
        dirname=dirname,
        version=version or os.path.basename(os.path.abspath(dirname)),
        files=tuple(array),
        order_listed=listed,
        order_applied=applied,
        order_text=order_text,
        duplicates=duplicates,
        problems=tuple(problems),
        # kmod's order: config, (symbol lists,) the walk, then modules.order
        messages=tuple(cfg.messages) + tuple(p.kmod_message for p in problems if p.kmod_message) + tuple(messages),
        config=cfg,
        walked=tuple(walked or ()),
    )


def read_layout(
    layout: WalkedTree, *, jobs: int | None = None, progress: ProgressFn | None = None, cache: ScanCache | None = None,
    keys: Sequence[Key | None] | None = None,
) -> Tree:
    """Read the modules of a walked tree (``keys``: see :func:`~moddeps.read.pool.read_modules`)."""
    from .pool import read_modules

    modules = read_modules([(mf.path, mf.shown) for mf in layout.files], jobs, progress, cache, keys)
    return Tree(
        dirname=layout.dirname,
        version=layout.version,
        modules=tuple(modules),
        files=layout.files,
        order_listed=layout.order_listed,
        order_applied=layout.order_applied,
        builtin=builtin_names(read_optional(f"{layout.dirname}/modules.builtin")),
        duplicates=layout.duplicates,
        problems=layout.problems,
        messages=layout.messages,
        config=layout.config,
    )


def scan_tree(
    dirname: str,
    *,
    version: str | None = None,
    config: DepmodConfig | None = None,
    jobs: int | None = None,
    progress: ProgressFn | None = None,
    cache: ScanCache | None = None,
) -> Tree:
    """Scan the module directory ``dirname`` (``.../lib/modules/VERSION``): walk, order, read."""
    return read_layout(layout_tree(dirname, version=version, config=config), jobs=jobs, progress=progress,
                       cache=cache)


def scan_files(
    paths: Sequence[str], *, jobs: int | None = None, progress: ProgressFn | None = None,
    cache: ScanCache | None = None,
) -> list[Module]:
    """Read individual module files (paths shown as given)."""
    from .pool import read_modules

    return read_modules([(p, p) for p in paths], jobs, progress, cache)


def builtin_names(text: bytes | None) -> tuple[str, ...]:
    """Module names listed in ``modules.builtin`` (one path per line)."""
    if not text:
        return ()
    out = []
    for line in text.split(b"\n"):
        if line:
            out.append(modname_from_path(line.decode("utf-8", "surrogateescape")))
    return tuple(out)
