"""depmod's outputs rendered in groups, in kmod's write order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import kmodversion
from ..scanner import Tree, read_optional

if TYPE_CHECKING:
    from ..resolve import Resolution

#: depmod's outputs in groups, in kmod's write order: the files and messages
#: of a group come from the same inputs, and a group's messages follow the
#: previous group's (moddeps.depmod.incremental renders again only the
#: groups a changed module touches).
GROUPS = ("sanitize", "symsafe", "dep", "alias", "softdep", "symbols", "builtin", "devname")

#: group -> (its files in write order, its messages)
Rendered = dict[str, tuple[list[tuple[str, bytes]], list[str]]]


def render_files(
    tree: Tree, res: Resolution, kmod: kmodversion.KmodTarget | None = None, *, warn_dups: bool = False,
    dry_run: bool = False,
) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Every output file of depmod for a scanned tree (no cycles), in kmod's
    write order, and the messages kmod prints while writing them, as the
    release ``kmod`` writes them (None: :data:`moddeps.kmodversion.DEFAULT`)."""
    if kmod is None:
        kmod = kmodversion.KmodTarget(kmodversion.DEFAULT, "the default")
    return flatten(render_tree(tree, res, kmod, warn_dups=warn_dups, dry_run=dry_run)[0])


def flatten(groups: Rendered) -> tuple[list[tuple[str, bytes]], list[str]]:
    """The files and the messages of every group, in order."""
    files: list[tuple[str, bytes]] = []
    messages: list[str] = []
    for group in GROUPS:
        got = groups.get(group)
        if got is not None:
            files += got[0]
            messages += got[1]
    return files, messages


def render_tree(
    tree: Tree, res: Resolution, kmod: kmodversion.KmodTarget, *, warn_dups: bool = False, dry_run: bool = False
) -> tuple[Rendered, Any]:
    """Every group of outputs for a scanned tree (no cycles), and the writers' input."""
    from . import outputs
    from .safety import sanitize

    # what must not reach the line-based files (see moddeps.depmod.safety)
    modules, messages = sanitize(tree.modules)
    wi = outputs.WriterInput(modules, [f.shown for f in tree.files], res)
    groups: Rendered = {"sanitize": ([], messages)}
    groups.update(render_groups(wi, tree.dirname, GROUPS[1:], kmod, warn_dups=warn_dups, dry_run=dry_run))
    return groups, wi


def render_groups(
    wi: Any, dirname: str, which: Sequence[str], kmod: kmodversion.KmodTarget, *, warn_dups: bool = False,
    dry_run: bool = False,
) -> Rendered:
    """The groups ``which`` (but "sanitize", which needs the modules) of an
    :class:`outputs.WriterInput` of sanitized modules, as the kmod release ``kmod`` writes them."""
    from . import outputs
    from .safety import safe_symbols

    out: Rendered = {}
    pre = kmod.preorder_index
    names = outputs._names(wi)
    if "symsafe" in which or "symbols" in which:
        symsafe: list[str] = []
        symbols = safe_symbols(outputs.module_symbols(wi), names, symsafe)
        out["symsafe"] = ([], symsafe)
    if "dep" in which:
        messages: list[str] = []
        lines = outputs.dep_lines(wi)
        out["dep"] = ([("modules.dep", outputs.modules_dep(lines)),
                       ("modules.dep.bin", outputs.modules_dep_bin(wi, lines, messages, preorder=pre))], messages)
    if "alias" in which:
        messages = []
        out["alias"] = ([("modules.alias", outputs.modules_alias(wi)),
                         ("modules.alias.bin", outputs.modules_alias_bin(wi, messages, warn_dups, preorder=pre))],
                        messages)
    if "softdep" in which:
        files = [("modules.softdep", outputs.modules_softdep(wi))]
        # kmod >= 33 always writes modules.weakdep; for older releases moddeps
        # writes it only when a module declares a weak dependency
        if kmod.always_weakdep or outputs.has_weakdeps(wi):
            files.append(("modules.weakdep", outputs.modules_weakdep(wi)))
        out["softdep"] = (files, [])
    if "symbols" in which:
        messages = []
        out["symbols"] = ([("modules.symbols", outputs.modules_symbols(wi, symbols)),
                           ("modules.symbols.bin", outputs.modules_symbols_bin(wi, symbols, messages,
                                                                               preorder=pre))],
                          messages)
    if "builtin" in which:
        builtin = read_optional(f"{dirname}/modules.builtin")
        builtin_modinfo = read_optional(f"{dirname}/modules.builtin.modinfo")
        # kmod's message order: each builtin file's "could not open" warning
        # or its parse warnings, at write steps 8 and 9.  With -n those two
        # writers return before opening their inputs: no message at all.
        messages = []
        if builtin is None:
            messages.append(f"WARNING: could not open modules.builtin at {dirname}: No such file or directory")
        files = [("modules.builtin.bin", outputs.modules_builtin_bin(builtin, messages, preorder=pre))]
        if builtin_modinfo is None:
            messages.append(
                f"WARNING: could not open modules.builtin.modinfo at {dirname}: No such file or directory"
            )
        files.append(("modules.builtin.alias.bin",
                      outputs.modules_builtin_alias_bin(builtin_modinfo, messages, preorder=pre)))
        out["builtin"] = (files, [] if dry_run else messages)
    if "devname" in which:
        devname, errors = outputs.modules_devname(wi)
        out["devname"] = ([("modules.devname", devname)], errors)
    return {group: out[group] for group in GROUPS if group in which}
