"""depmod's outputs rendered in groups, in kmod's write order.

:func:`render_groups` walks :data:`moddeps.depmod.outputs.TABLE`; a group
is the files of that table rendered from the same inputs, with the messages
kmod prints while writing them.  :func:`render_tree` renders every group of
a scanned tree; :mod:`moddeps.depmod.incremental` renders again only the
groups a changed module touches.
"""

from __future__ import annotations

from .. import kmodversion
from ..typeshim import NamedTuple
from .outputs import TABLE, RenderJob, WriterInput, module_symbols
from .safety import safe_symbols, sanitize

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..read.scan import Tree
    from ..resolve import Resolution

#: depmod's outputs in groups, in kmod's write order: the files and messages
#: of a group come from the same inputs, and a group's messages follow the
#: previous group's.  Two groups hold messages only: "sanitize" (values left
#: out of the modules, moddeps.depmod.safety.sanitize) and "symsafe" (symbols
#: left out of modules.symbols); the others are the groups of :data:`TABLE`.
GROUPS = ("sanitize", "symsafe", *dict.fromkeys(f.group for f in TABLE))


class Group(NamedTuple):
    """A group of outputs, rendered."""

    files: list[tuple[str, bytes]]  # (name, bytes), in write order
    messages: list[str]


#: group -> the group rendered
Rendered = dict[str, Group]


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
            files += got.files
            messages += got.messages
    return files, messages


def render_tree(
    tree: Tree, res: Resolution, kmod: kmodversion.KmodTarget, *, warn_dups: bool = False, dry_run: bool = False
) -> tuple[Rendered, WriterInput]:
    """Every group of outputs for a scanned tree (no cycles), and the writers' input."""
    # what must not reach the line-based files (see moddeps.depmod.safety)
    columns: dict[str, tuple[list[str], list[int]]] = {}
    modules, messages = sanitize(tree.modules, columns)
    wi = WriterInput(modules, [f.shown for f in tree.files], res)
    if columns:  # the values the writers read, selected by the check already
        wi.memo["select"] = columns
    groups: Rendered = {"sanitize": Group([], messages)}
    groups.update(render_groups(wi, tree.dirname, GROUPS[1:], kmod, warn_dups=warn_dups, dry_run=dry_run))
    return groups, wi


def render_groups(
    wi: WriterInput, dirname: str, which: Sequence[str], kmod: kmodversion.KmodTarget, *, warn_dups: bool = False,
    dry_run: bool = False,
) -> Rendered:
    """The groups ``which`` (but "sanitize", which needs the modules) of a
    :class:`~moddeps.depmod.outputs.WriterInput` of sanitized modules, as
    the kmod release ``kmod`` writes them."""
    out: Rendered = {}
    symbols = None
    if "symsafe" in which or "symbols" in which:
        symsafe: list[str] = []
        symbols = safe_symbols(module_symbols(wi), wi.names(), symsafe)
        out["symsafe"] = Group([], symsafe)
    job = RenderJob(wi, dirname, kmod, warn_dups=warn_dups, dry_run=dry_run, symbols=symbols)
    for row in TABLE:
        if row.group in which and row.written(job):
            group = out.setdefault(row.group, Group([], []))
            group.files.append((row.name, row.write(job, group.messages)))
    return {group: out[group] for group in GROUPS if group in which}
