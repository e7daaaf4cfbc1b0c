"""Everything an initramfs needs to load some modules: files, softdeps, weakdeps, firmware."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Literal

from ..kmodnames import basedir_of
from ..records import dataclass
from .indexes import Source
from .libkmod import KModule, Libkmod
from .plan import PlanContext, Step, plan_one_load, probe_steps

__all__ = [
    "Closure",
    "ClosureItem",
    "closure",
]


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
# Firmware
# --------------------------------------------------------------------------

#: The names the kernel's loader tries, in its order: plain, then zstd and xz compressed (when built with them).
_FW_SUFFIXES = ("", ".zst", ".xz")


def _firmware_dirs(dirname: str, version: str) -> list[str]:
    """The kernel's firmware search path (drivers/base/firmware_loader/main.c,
    fw_path[]) under the tree's root."""
    base = basedir_of(dirname)
    if base is None:
        base = ""  # a module directory outside any lib/modules: the host's firmware directories
    return [f"{base}/lib/firmware/updates/{version}", f"{base}/lib/firmware/updates",
            f"{base}/lib/firmware/{version}", f"{base}/lib/firmware"]


def _find_firmware(name: str, dirs: Sequence[str]) -> str | None:
    """The first file the kernel would load for ``name``: the directories in
    order, each with the plain name then the compressed ones."""
    for d in dirs:
        for suffix in _FW_SUFFIXES:
            cand = f"{d}/{name}{suffix}"
            if os.path.isfile(cand):
                return cand
    return None


# --------------------------------------------------------------------------
# Closure (initramfs)
# --------------------------------------------------------------------------


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
    lk = Libkmod(ctx.data, ctx.config, ctx.dirname)
    items: list[ClosureItem] = []
    seen: dict[str, int] = {}
    errors: list[tuple[str, str]] = []
    notes: list[str] = []
    order: list[KModule] = []

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
            items.append(ClosureItem(kind=kind, name=s.module, path=s.path, reason=reason, because=because, via=via,
                                     exists=s.path is None or os.path.exists(s.path)))
            order.append(lk.new_from_name(s.module))

    for target in targets:
        plan = plan_one_load(lk, ctx, target, None, None)
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
            steps = probe_steps(lk, w, None, w.name, "module", None, for_notes)
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
    tree = ctx.data.tree
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
            found = _find_firmware(fw, dirs)
            items.append(ClosureItem(kind="firmware", name=fw, path=found or f"{dirs[-1]}/{fw}", reason="firmware",
                                     because=(f"firmware={fw} (modinfo of {item.name})",), via=item.name,
                                     exists=found is not None))
            if found is None:
                text = f"firmware {fw} (declared by {item.name}) not found in {', '.join(dirs)}"
                if allow_missing_firmware:
                    notes.append(f"{text} (--allow-missing-firmware)")
                else:
                    problems.append((fw, f"{text}; --allow-missing-firmware to accept"))
    return Closure(dirname=ctx.dirname, source=ctx.source, targets=tuple(targets), items=tuple(items),
                   errors=tuple(errors), notes=tuple(notes), problems=tuple(problems))
