"""A libkmod emulator: module objects and the context that looks them up.

libkmod keeps one ``struct kmod_module`` per name (or per name and alias) in
its context and caches on it what it learns (path, dependencies, options,
install and remove commands, built-in or not); a probe marks modules as it
walks them.  The planner repeats libkmod's calls on these objects in the same
order, so the caching, the marks and the order of the lookups give kmod's
answers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal, NamedTuple

from ..index.keys import alias_normalize
from ..kmodnames import modname_normalize, path_to_modname
from ..model import fsdecode, fsencode
from ..records import dataclass
from .config import Command, ModprobeConfig, ModprobeOptions, Rule, Softdep
from .indexes import TreeData

__all__ = [
    "KModule",
    "Libkmod",
    "Lookup",
    "ProbeEntry",
    "Reason",
    "Softdeps",
    "Weakdeps",
    "make_absolute",
]

#: Why a module is on a probe list or in a plan.
Reason = Literal["target", "dependency", "softdep-pre", "softdep-post", "weakdep", "holder", "unused-dependency"]


def make_absolute(path: str) -> str:
    """kmod shared/util.c (path_make_absolute_cwd): cwd + "/" + path, nothing normalised."""
    return path if path.startswith("/") else f"{os.getcwd()}/{path}"


class KModule:
    """A libkmod ``struct kmod_module``: one per name, or per (name, alias).

    Objects live in :attr:`Libkmod.pool` and are shared by every lookup and
    probe of that context, so what one lookup learnt is what the next one
    sees, as in libkmod.  Only :class:`Libkmod` writes the fields; the planner
    reads them.  Three kinds of state:

    * identity, fixed at creation: ``key`` (the pool key: the name, or
      ``name\\alias``), ``name``, ``alias`` (the alias the object was found
      through; options and the blacklist see it);
    * what libkmod learns and keeps, each asked at most once (a ``*_init``
      flag says it was asked, since None is a valid answer):
      ``path`` (from the ``modules.dep`` line or the file given), ``dep`` and
      ``dep_init`` (the dependencies, libraries first; ``dep_init`` goes back
      to False when a dependency path is bad, as libkmod drops the list),
      ``builtin`` (None: not asked yet), ``options``, ``options_rules`` and
      ``options_init``, ``install`` and ``install_init``, ``remove`` and
      ``remove_init`` (a lookup through an install or remove command sets
      them at once, as kmod_module_set_install_commands does);
    * marks of the probe under way (:meth:`Libkmod.probe_list`):
      ``visited`` (cleared for every object when a probe starts) and
      ``ignorecmd`` (the module has softdeps, so its install command is
      ignored; set whenever the module is put on a probe list, read when the
      list becomes plan steps).
    """

    __slots__ = ("alias", "builtin", "dep", "dep_init", "ignorecmd", "install", "install_init", "key", "name",
                 "options", "options_init", "options_rules", "path", "remove", "remove_init", "visited")

    def __init__(self, key: str, name: str, alias: str | None) -> None:
        # identity
        self.key = key
        self.name = name
        self.alias = alias
        # learnt once
        self.path: str | None = None
        self.dep: list[KModule] | None = None
        self.dep_init = False
        self.builtin: bool | None = None
        self.options_init = False
        self.options: str | None = None
        self.options_rules: tuple[ModprobeOptions, ...] = ()
        self.install_init = False
        self.install: Command | None = None
        self.remove_init = False
        self.remove: Command | None = None
        # probe marks
        self.visited = False
        self.ignorecmd = False


@dataclass(frozen=True, slots=True)
class ProbeEntry:
    """One module of a probe list, in load order, and why it is there."""

    mod: KModule
    reason: Reason
    via: KModule | None  # the module that pulled this one in (None: the module probed)
    rule: Rule | None  # the softdep entry that did, if one did


class Lookup(NamedTuple):
    """What kmod_module_new_from_lookup gives for one name."""

    modules: list[KModule]  # every module found, in order (empty: none)
    found_by: str | None  # which lookup of the chain found them ("config alias", "module", ...), None when none did
    error: str | None  # the name cannot be looked up at all (an unmatched bracket)


class Softdeps(NamedTuple):
    """A module's softdeps, each name looked up."""

    pre: list[KModule]
    post: list[KModule]
    entry: Softdep | None  # the config entry they come from (None: no softdep)


class Weakdeps(NamedTuple):
    """A module's weakdeps, each name looked up."""

    modules: list[KModule]
    rule: str | None  # where they come from: the config entry, or the module's own modinfo


class Libkmod:
    """One ``struct kmod_ctx``: the pool of module objects and the lookups.

    ``data``, ``config`` and ``dirname`` are read only.  What changes:
    ``pool`` gains an object for every name (or name and alias) met and never
    loses one, and the objects' own state changes as described in
    :class:`KModule`; ``messages`` collects libkmod's errors in order and is
    only appended to (a plan takes the slice added while it was made);
    ``_exists`` remembers which module files exist.  One context serves a
    whole ``modprobe -a`` run (or a closure), so the order of the calls
    matters exactly as it does in kmod.
    """

    def __init__(self, data: TreeData, config: ModprobeConfig, dirname: str) -> None:
        self.data = data
        self.config = config
        self.dirname = dirname
        self.pool: dict[str, KModule] = {}
        self.messages: list[str] = []
        self._exists: dict[str, bool] = {}

    # -- objects (libkmod-module.c kmod_module_new*) ---------------------------

    def _new(self, key: str, name: str, alias: str | None) -> KModule:
        m = self.pool.get(key)
        if m is None:
            m = KModule(key, name, alias)
            self.pool[key] = m
        return m

    def new_from_name(self, name: str) -> KModule:
        n = modname_normalize(name)
        return self._new(n, n, None)

    def new_from_alias(self, alias: str, name: str) -> KModule:
        # kmod_module_new_from_alias: the name is used as given, not normalised.
        return self._new(f"{name}\\{alias}", name, alias)

    def new_from_path(self, path: str) -> KModule | str:
        """kmod_module_new_from_path; a string is the error."""
        abspath = make_absolute(path)
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

    def parse_depline(self, mod: KModule, line: str) -> None:
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
        deps: list[KModule] = []
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

    def get_dependencies(self, mod: KModule) -> list[KModule]:
        if not mod.dep_init:
            line = self.search_moddep(mod.name)
            if line is not None:
                self.parse_depline(mod, line)
        return list(mod.dep or ())

    def get_path(self, mod: KModule) -> str | None:
        if mod.path is not None:
            return mod.path
        if mod.dep_init:
            return None
        line = self.search_moddep(mod.name)
        if line is None:
            return None
        self.parse_depline(mod, line)
        return mod.path

    def is_builtin(self, mod: KModule) -> bool:
        if mod.builtin is None:
            mod.builtin = self.data.exact("modules.builtin", mod.name) is not None
        return mod.builtin

    # -- config-derived, cached per object ---------------------------------------

    def get_options(self, mod: KModule) -> str | None:
        if not mod.options_init:
            mod.options, mod.options_rules = self.config.options_for(mod.name, mod.alias)
            mod.options_init = True
        return mod.options

    def get_install(self, mod: KModule) -> Command | None:
        if not mod.install_init:
            mod.install = self.config.install_for(mod.name)
            mod.install_init = True
        return mod.install

    def get_remove(self, mod: KModule) -> Command | None:
        if not mod.remove_init:
            mod.remove = self.config.remove_for(mod.name)
            mod.remove_init = True
        return mod.remove

    # -- the lookup chain (libkmod.c kmod_lookup_alias_from_*) --------------------

    def lookup(self, given: str) -> Lookup:
        """kmod_module_new_from_lookup: (modules, which lookup found them, error)."""
        raw = alias_normalize(fsencode(given))
        if raw is None:
            return Lookup([], None, "invalid alias (unmatched bracket)")
        name = fsdecode(raw)
        found = [a for a in self.config.aliases_matching(name)]
        if found:
            return Lookup([self.new_from_alias(a.pattern, a.modname) for a in found], "config alias", None)
        if ":" not in name:
            line = self.search_moddep(name)
            if line is not None:
                m = self.new_from_name(name)
                self.parse_depline(m, line)
                return Lookup([m], "module", None)
        if name.startswith("symbol:"):
            values = self.data.wildcard("modules.symbols", name)
            if values:
                return Lookup([self.new_from_alias(name, v) for v in values], "symbol", None)
        cmd = self.config.install_exact(name)
        if cmd is not None:
            m = self.new_from_name(cmd.pattern)
            m.install, m.install_init = cmd, True
            return Lookup([m], "install command", None)
        cmd = self.config.remove_exact(name)
        if cmd is not None:
            m = self.new_from_name(cmd.pattern)
            m.remove, m.remove_init = cmd, True
            return Lookup([m], "remove command", None)
        values = self.data.wildcard("modules.alias", name)
        if values:
            return Lookup([self.new_from_alias(name, v) for v in values], "alias", None)
        if self.data.exact("modules.builtin", name) is not None:
            m = self.new_from_name(name)
            m.builtin = True
            return Lookup([m], "builtin", None)
        values = self.data.wildcard("modules.builtin.alias", name)
        if values:
            mods = [self.new_from_alias(name, v) for v in values]
            for m in mods:
                m.builtin = True
            return Lookup(mods, "builtin alias", None)
        return Lookup([], None, None)

    def _lookup_list(self, names: Sequence[str]) -> list[KModule]:
        """lookup_softdep: every module each name finds, in order."""
        out: list[KModule] = []
        for n in names:
            mods, _how, err = self.lookup(n)
            if err is not None:
                self.messages.append(f"ERROR: failed to lookup soft dependency '{n}', continuing anyway.")
                continue
            out.extend(mods)
        return out

    def get_softdeps(self, mod: KModule) -> Softdeps:
        """kmod_module_get_softdeps: the first matching entry's modules, each name looked up."""
        sd = self.config.softdep_for(mod.name)
        if sd is None:
            return Softdeps([], [], None)
        return Softdeps(self._lookup_list(sd.pre), self._lookup_list(sd.post), sd)

    def get_weakdeps(self, mod: KModule) -> Weakdeps:
        """kmod 33 kmod_module_get_weakdeps; with no config entry (kmod 30 trees have
        no modules.weakdep), the module's own ``weakdep=`` modinfo."""
        wd = self.config.weakdep_for(mod.name)
        if wd is not None:
            return Weakdeps(self._lookup_list(wd.weak), str(wd.rule))
        info = self.data.module(mod.name, self.get_path(mod))
        names = info.weakdeps if info is not None else ()
        if not names:
            return Weakdeps([], None)
        return Weakdeps(self._lookup_list(names), f"weakdep={' '.join(names)} (modinfo of {mod.name})")

    # -- probe (kmod_module_probe_insert_module) ----------------------------------

    def probe_list(self, mod: KModule) -> list[ProbeEntry]:
        """kmod_module_get_probe_list: the modules to load for ``mod``, in order.

        libkmod also marks the modules it must load (``required``) to decide
        which insertion errors are fatal; a plan inserts nothing, so that
        mark is not kept here."""
        for m in self.pool.values():
            m.visited = False
        entries: list[ProbeEntry] = []
        self._get_probe_list(mod, entries, "target", None, None)
        return entries

    def _get_probe_list(self, mod: KModule, entries: list[ProbeEntry], reason: Reason,
                        via: KModule | None, rule: Rule | None) -> None:
        if mod.visited:
            return
        mod.visited = True
        deps = self.get_dependencies(mod)
        for d in deps:
            self._fill_softdep(d, entries, "dependency", mod, None)
        self._fill_softdep(mod, entries, reason, via, rule)

    def _fill_softdep(self, mod: KModule, entries: list[ProbeEntry], reason: Reason, via: KModule | None,
                      rule: Rule | None) -> None:
        pre, post, sd = self.get_softdeps(mod)
        srule = sd.rule if sd is not None else None
        for p in pre:
            self._get_probe_list(p, entries, "softdep-pre", mod, srule)
        entries.append(ProbeEntry(mod, reason, via, rule))
        # kmod: a module with softdeps is loaded by modprobe itself, never by its install command.
        mod.ignorecmd = bool(pre or post)
        for q in post:
            self._get_probe_list(q, entries, "softdep-post", mod, srule)
