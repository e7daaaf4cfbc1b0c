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
    from .outputs import Index, OutputFile

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
    job = RenderJob(wi, dirname, kmod, warn_dups=warn_dups, dry_run=dry_run, symbols=symbols,
                    threaded=len(wi.shown) >= THREADED_MIN)  # (shown: one a module, with records or columns)
    rows = [row for row in TABLE if row.group in which and row.written(job)]
    for row, (data, said) in zip(rows, write_rows(job, rows)):
        group = out.setdefault(row.group, Group([], []))
        group.files.append((row.name, data))
        group.messages.extend(said)
    return {group: out[group] for group in GROUPS if group in which}


#: From this many modules on, each index is sorted and laid out by a thread of its own
#: (``RenderJob.threaded``) while the next rows are rendered: the C code builds it without the
#: GIL (Debian 12 amd64: the five indexes took ~15 ms of a ~45 ms rendering, on one core while
#: the other was idle).  Below it, a thread is not worth its start.
THREADED_MIN = 256


def write_rows(job: RenderJob, rows: Sequence[OutputFile]) -> list[tuple[bytes, list[str]]]:
    """Each row's bytes and messages, in order.  With ``job.threaded`` the binary rows are
    written first: each starts its index (built by a thread of its own, ``start_index``) and
    the text rows are written while they are built; then each pending index is waited for.
    Every row has its own list of messages, so the order of the writing changes nothing: the
    result, and of two rows that fail the one first in order raising, are those of the rows
    written in order."""
    if not job.threaded:
        return _done([_written(job, row) for row in rows])
    made: dict[int, tuple[Index | BaseException, list[str]]] = {}
    for i in sorted(range(len(rows)), key=lambda i: not rows[i].binary):
        try:
            made[i] = _written(job, rows[i])
        except Exception as exc:  # raised below, unless a row before it fails too
            made[i] = (exc, [])
    return _done([made[i] for i in range(len(rows))])


def _written(job: RenderJob, row: OutputFile) -> tuple[Index, list[str]]:
    said: list[str] = []
    return row.write(job, said), said


def _done(made: Sequence[tuple[Index | BaseException, list[str]]]) -> list[tuple[bytes, list[str]]]:
    """The rows' bytes, each pending index waited for in order: the first row that failed, or
    whose index fails, raises (the indexes started after it are waited for as they are dropped)."""
    out = []
    for data, said in made:
        if isinstance(data, BaseException):
            raise data
        out.append((data if isinstance(data, bytes) else data.result(), said))
    return out
