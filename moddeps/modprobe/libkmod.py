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
from dataclasses import dataclass
from typing import Literal

from ..depmod.index import alias_normalize
from ..kmodnames import modname_normalize, path_to_modname
from ..model import fsdecode, fsencode
from . import config as modprobe_config
from .config import ModprobeConfig, Rule
from .indexes import TreeData

Reason = Literal["target", "dependency", "softdep-pre", "softdep-post", "weakdep", "holder", "unused-dependency"]


def make_absolute(path: str) -> str:
    """kmod shared/util.c (path_make_absolute_cwd): cwd + "/" + path, nothing normalised."""
    return path if path.startswith("/") else f"{os.getcwd()}/{path}"


class KModule:
    """A libkmod ``struct kmod_module``: one per name, or per (name, alias)."""

    __slots__ = ("alias", "builtin", "dep", "dep_init", "ignorecmd", "install", "install_init", "key", "name",
                 "options", "options_init", "options_rules", "path", "remove", "remove_init", "required", "visited")

    def __init__(self, key: str, name: str, alias: str | None) -> None:
        self.key = key
        self.name = name
        self.alias = alias
        self.path: str | None = None
        self.dep: list[KModule] | None = None
        self.dep_init = False
        self.builtin: bool | None = None
        self.visited = False
        self.required = False
        self.ignorecmd = False
        self.options_init = False
        self.options: str | None = None
        self.options_rules: tuple[modprobe_config.ModprobeOptions, ...] = ()
        self.install_init = False
        self.install: modprobe_config.Command | None = None
        self.remove_init = False
        self.remove: modprobe_config.Command | None = None


@dataclass(slots=True)
class ProbeEntry:
    mod: KModule
    reason: Reason
    via: KModule | None
    rule: Rule | None


class Libkmod:
    """One ``struct kmod_ctx``: the pool of module objects and the lookups."""

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

    def get_install(self, mod: KModule) -> modprobe_config.Command | None:
        if not mod.install_init:
            mod.install = self.config.install_for(mod.name)
            mod.install_init = True
        return mod.install

    def get_remove(self, mod: KModule) -> modprobe_config.Command | None:
        if not mod.remove_init:
            mod.remove = self.config.remove_for(mod.name)
            mod.remove_init = True
        return mod.remove

    # -- the lookup chain (libkmod.c kmod_lookup_alias_from_*) --------------------

    def lookup(self, given: str) -> tuple[list[KModule], str | None, str | None]:
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

    def get_softdeps(self, mod: KModule) -> tuple[list[KModule], list[KModule], modprobe_config.Softdep | None]:
        sd = self.config.softdep_for(mod.name)
        if sd is None:
            return [], [], None
        return self._lookup_list(sd.pre), self._lookup_list(sd.post), sd

    def get_weakdeps(self, mod: KModule) -> tuple[list[KModule], str | None]:
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

    def probe_list(self, mod: KModule) -> list[ProbeEntry]:
        for m in self.pool.values():
            m.visited = False
            m.required = False
        entries: list[ProbeEntry] = []
        self._get_probe_list(mod, True, entries, "target", None, None)
        return entries

    def _get_probe_list(self, mod: KModule, required: bool, entries: list[ProbeEntry], reason: Reason,
                        via: KModule | None, rule: Rule | None) -> None:
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

    def _fill_softdep(self, mod: KModule, entries: list[ProbeEntry], reason: Reason, via: KModule | None,
                      rule: Rule | None) -> None:
        pre, post, sd = self.get_softdeps(mod)
        srule = sd.rule if sd is not None else None
        for p in pre:
            self._get_probe_list(p, False, entries, "softdep-pre", mod, srule)
        entries.append(ProbeEntry(mod, reason, via, rule))
        # kmod: a module with softdeps is loaded by modprobe itself, never by its install command.
        mod.ignorecmd = bool(pre or post)
        for q in post:
            self._get_probe_list(q, False, entries, "softdep-post", mod, srule)
