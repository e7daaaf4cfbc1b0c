"""Load and unload plans, exactly as kmod 30's ``modprobe`` makes them, with the reasons.

What ``modprobe --show-depends TARGET`` does (kmod tools/modprobe.c and
libkmod/libkmod-module.c, libkmod.c), step by step; the ``moddeps.modprobe``
package repeats each step on moddeps' data and records why every module ends
up in the plan (step 1: :mod:`.config` and :func:`open_context`; 2:
:mod:`.indexes`; 3 to 6: :mod:`.libkmod`; 7, 8 and unloading: this module):

1. **Context.**  The module directory is ``ROOT/lib/modules/VERSION``
   (``-d``/``-S``), made absolute with the working directory and never
   normalised (kmod libkmod/libkmod.c, get_kernel_release).  modprobe.d is
   read (see :mod:`moddeps.modprobe.config`), ``modules.softdep`` of the tree
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
are followed by :func:`moddeps.modprobe.closure.closure` only, never printed
by a load plan.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from typing import Literal

from .. import kmodversion
from ..errors import UsageError
from ..index.keys import alias_normalize
from ..kmodnames import MODULE_DIRECTORIES, config_basedir
from ..model import fsdecode, fsencode
from ..records import dataclass, field
from . import config as modprobe_config
from .config import ModprobeConfig
from .indexes import Source, TreeData, open_tree
from .libkmod import KModule, Libkmod, Reason, make_absolute

__all__ = [
    "Plan",
    "PlanContext",
    "PlanSet",
    "Step",
    "cmdline_options",
    "loaded_from_proc_modules",
    "modprobe_dirname",
    "open_context",
    "plan_load",
    "plan_remove",
    "plan_targets",
]


Action = Literal["insmod", "builtin", "install", "skip", "rmmod", "remove"]


# --------------------------------------------------------------------------
# Public records
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
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


@dataclass(frozen=True, slots=True, kw_only=True)
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

    @classmethod
    def of(cls, ctx: PlanContext, plans: tuple[Plan, ...], *, remove: bool) -> PlanSet:
        """The plans of one modprobe run in ``ctx``, with what the run read."""
        return cls(dirname=ctx.dirname, version=ctx.data.version, source=ctx.source, config_files=ctx.config.files,
                   plans=plans, remove=remove, messages=ctx.config.messages)


# --------------------------------------------------------------------------
# modprobe's command line, the kernel's state
# --------------------------------------------------------------------------


def modprobe_dirname(basedir: str | None, version: str | None) -> str:
    """The module directory modprobe uses for ``-d BASEDIR -S VERSION``.

    kmod tools/modprobe.c: ``snprintf("%s/lib/modules/%s", root, kversion)``
    (so ``-d /x/`` gives ``/x//lib/modules/...``), made absolute by kmod_new.
    A merged-/usr root without ``lib/modules/VERSION`` but with
    ``usr/lib/modules/VERSION`` gives the latter (a kmod built with
    MODULE_DIRECTORY=/usr/lib/modules, as on Fedora and Arch).
    """
    release = version or os.uname().release
    path = make_absolute(f"{basedir or ''}/lib/modules/{release}")
    if not os.path.isdir(path):
        merged = make_absolute(f"{basedir or ''}/{MODULE_DIRECTORIES[1]}/{release}")
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
    kmod: kmodversion.KmodTarget | None = None,
) -> PlanContext:
    """Open a tree for planning.

    ``dirname`` is the module directory, used verbatim in the paths printed
    (build it with :func:`modprobe_dirname` to match ``modprobe -d -S``).
    ``config_paths`` are ``-C`` paths (only they are read, as in kmod);
    without them the modprobe.d directories under ``basedir`` (default: the
    root above ``lib/modules/VERSION``).  ``kernel_cmdline``: text of a
    ``/proc/cmdline`` to apply (never read implicitly).  ``kmod``: the release
    whose modprobe.d rules apply (None: :func:`moddeps.kmodversion.select`
    for the root, as depmod chooses).
    """
    dirname = make_absolute(dirname)
    base = config_basedir(dirname, basedir)
    if kmod is None:
        kmod = kmodversion.select(None, base or "/")
    data = open_tree(dirname, source=source, basedir=base, depmod_config=depmod_config, jobs=jobs, progress=progress)
    cfg = modprobe_config.load(config_paths, dirname=dirname, basedir=base, kernel_cmdline=kernel_cmdline,
                               module_files=data.module_files if data.source.kind == "scan" else None,
                               usr_lib_dir=kmod.usr_lib_modprobe_d, alias_files=kmod.modprobe_d_alias_files,
                               weakdep=kmod.modprobe_weakdep)
    return PlanContext(dirname, data, cfg)


# --------------------------------------------------------------------------
# Load plans
# --------------------------------------------------------------------------


def _is_path_target(target: str) -> bool:
    """kmod 31 tools/modprobe.c (insmod): a target starting with "/" or "./" is a file."""
    return target.startswith("/") or target.startswith("./")


def _target_because(lk: Libkmod, target: str, how: str | None, mod: KModule) -> tuple[str, ...]:
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


def _dependency_because(lk: Libkmod, mod: KModule, via: KModule) -> tuple[tuple[str, ...], _NeededBy]:
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


def probe_steps(lk: Libkmod, root: KModule, extra: str | None, target: str, how: str | None,
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
            steps.append(Step(action="skip", module=m.name, path=path, reason=e.reason, because=because, line=None,
                              via=via, root=root.name, options="", alias=m.alias, needed_by=needed,
                              builtin=lk.is_builtin(m), note="already in the kernel"))
            continue
        opts = _options_concat(lk.get_options(m), extra if m is root else None)
        config = tuple(str(o.rule) for o in m.options_rules)
        cmd = lk.get_install(m)
        info = lk.data.module(m.name, path)
        permanent = info.permanent if info is not None else None
        if cmd is not None and not m.ignorecmd:
            line = f"install {cmd.command} {opts or ''}"
            steps.append(Step(action="install", module=m.name, path=path, reason=e.reason, because=because, line=line,
                              via=via, root=root.name, options=opts or "", alias=m.alias, needed_by=needed,
                              config=(str(cmd.rule), *config), builtin=builtin, permanent=permanent))
        elif path is None:
            if builtin:
                steps.append(Step(action="builtin", module=m.name, path=None, reason=e.reason, because=because,
                                  line=f"builtin {m.name}", via=via, root=root.name, options=opts or "",
                                  alias=m.alias, needed_by=needed, config=config, builtin=True, permanent=None))
            else:
                steps.append(Step(action="skip", module=m.name, path=None, reason=e.reason, because=because,
                                  line=None, via=via, root=root.name, options=opts or "", alias=m.alias,
                                  needed_by=needed, config=config, builtin=False, permanent=None,
                                  note="not in modules.dep and not built in: modprobe passes over it silently"))
        else:
            note = None
            if cmd is not None:
                note = f"install command ignored because {m.name} has softdeps ({cmd.rule})"
            steps.append(Step(action="insmod", module=m.name, path=path, reason=e.reason, because=because,
                              line=f"insmod {path} {opts or ''}", via=via, root=root.name, options=opts or "",
                              alias=m.alias, needed_by=needed, config=config, builtin=False, permanent=permanent,
                              note=note))
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
    lk = Libkmod(ctx.data, ctx.config, ctx.dirname)
    plans = []
    for target in targets:
        plans.append(plan_one_load(lk, ctx, target, extra, loaded_set))
    return tuple(plans)


def plan_one_load(lk: Libkmod, ctx: PlanContext, target: str, extra: str | None,
                  loaded: frozenset[str] | None) -> Plan:
    before = len(lk.messages)
    notes: list[str] = []
    if _is_path_target(target):
        m = lk.new_from_path(target)
        if isinstance(m, str):
            msg = f"Failed to get module from path {target}: No such file or directory"
            return Plan(target=target, remove=False, resolved=(), found_by=None, error=msg, kmod_message=msg, steps=())
        mods: list[KModule] = [m]
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
        return Plan(target=target, remove=False, resolved=tuple(m.name for m in mods), found_by=how,
                    error=err or msg, kmod_message=msg, steps=(), notes=tuple(notes),
                    messages=tuple(lk.messages[before:]))
    steps: list[Step] = []
    for m in mods:
        steps.extend(probe_steps(lk, m, extra, target, how, loaded, notes))
    return Plan(target=target, remove=False, resolved=tuple(m.name for m in mods), found_by=how, error=None,
                kmod_message=None, steps=tuple(steps), notes=tuple(notes), messages=tuple(lk.messages[before:]))


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

    def __init__(self, lk: Libkmod, loaded: set[str] | None) -> None:
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

    def _step(self, mod: KModule, action: Action, line: str, reason: Reason, because: tuple[str, ...],
              via: KModule | None, root: KModule, config: tuple[str, ...] = ()) -> None:
        path = self.lk.get_path(mod)
        builtin = self.lk.is_builtin(mod) if path is None else False
        info = self.lk.data.module(mod.name, path)
        permanent = info.permanent if info is not None else None
        note = None
        if builtin:
            note = "built into the kernel: it can never be unloaded"
        elif permanent:
            note = "no exit function: the kernel refuses to unload it"
        self.steps.append(Step(action=action, module=mod.name, path=path, reason=reason, because=because, line=line,
                               via=via.name if via else None, root=root.name, options="", alias=mod.alias,
                               needed_by=(), config=config, builtin=builtin, permanent=permanent, note=note))

    def remove_module(self, mod: KModule, reason: Reason, because: tuple[str, ...], via: KModule | None,
                      root: KModule) -> bool:
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

    def rm(self, mod: KModule, flags: int, reason: Reason, because: tuple[str, ...], via: KModule | None,
           root: KModule, depth: int = 0) -> bool:
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
    lk = Libkmod(ctx.data, ctx.config, ctx.dirname)
    state = {n.replace("-", "_") for n in loaded} if loaded is not None else None
    plans = []
    for target in targets:
        before = len(lk.messages)
        mods, how, err = lk.lookup(target)
        if err is not None:
            # kmod tools/modprobe.c (rmmod): a failed lookup returns without a message.
            plans.append(Plan(target=target, remove=True, resolved=(), found_by=None, error=err, kmod_message=None,
                              steps=(), notes=(), messages=tuple(lk.messages[before:])))
            continue
        if not mods:
            msg = f"Module {target} not found."
            plans.append(Plan(target=target, remove=True, resolved=(), found_by=None, error=msg, kmod_message=msg,
                              steps=(), notes=(), messages=tuple(lk.messages[before:])))
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
        plans.append(Plan(target=target, remove=True, resolved=tuple(m.name for m in mods), found_by=how,
                          error=error, kmod_message=message, steps=tuple(rem.steps), notes=tuple(rem.notes),
                          messages=tuple(lk.messages[before:])))
    return tuple(plans)


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
    kmod: kmodversion.KmodTarget | None = None,
) -> PlanSet:
    """Plans for ``targets`` in ``dirname``, like one ``modprobe -a`` (or ``-r``) run.

    ``show_depends_mode`` ignores the kernel's state (``--show-depends``);
    turn it off and give ``loaded`` to plan against a kernel's loaded modules.
    """
    ctx = open_context(dirname, config_paths=config_paths, basedir=basedir, kernel_cmdline=kernel_cmdline,
                       source=source, jobs=jobs, progress=progress, kmod=kmod)
    state = None if show_depends_mode else frozenset(loaded or ())
    if remove:
        plans = plan_remove(ctx, targets, remove_holders=remove_holders, loaded=state)
    else:
        plans = plan_load(ctx, targets, options=options, loaded=state)
    return PlanSet.of(ctx, plans, remove=remove)
