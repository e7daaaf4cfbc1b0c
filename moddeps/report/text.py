"""``scan``'s renderings: a rich table, and plain-text records (:mod:`moddeps.report.render`).

Renderers only render: they never decide or exit.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..model import Module
from ..read.scan import Tree
from .render import record, sentence


def _init_exit(m: Module) -> str:
    return ("init" if m.has_init else "-") + "/" + ("exit" if m.has_exit else "-")


def scan_lines(tree: Tree | None, modules: Sequence[Module]) -> list[str]:
    """The plain-text scan: a headline, then one record per module and per problem::

        module<TAB>NAME<TAB>PATH<TAB>EXPORTS<TAB>NEEDS<TAB>LICENSE<TAB>INIT/EXIT
        unreadable<TAB>NAME<TAB>PATH<TAB>ERROR
        duplicate<TAB>NAME<TAB>WINNER<TAB>LOSERS (comma-separated)
        problem<TAB>PATH<TAB>REASON

    PATH is relative to the tree (as the headline names it), or as given for files.
    """
    out = [sentence(f"moddeps scan of {tree.dirname}: {len(modules)} modules" if tree
                    else f"moddeps scan: {len(modules)} module file(s)")]
    for m in modules:
        if m.error:
            out.append(record("unreadable", m.name, m.path, m.error))
        else:
            out.append(record("module", m.name, m.path, len(m.exports), len(m.imports), m.license or "-",
                              _init_exit(m)))
    if tree is not None:
        out.append(sentence(_tree_summary(tree)))
        out += [record("duplicate", d.name, d.winner, ",".join(d.losers)) for d in tree.duplicates]
        out += [record("problem", p.path, p.reason) for p in tree.problems]
    return out


def render_scan(console: Console, tree: Tree | None, modules: Sequence[Module]) -> None:
    table = Table(title=f"{tree.dirname} ({len(modules)} modules)" if tree else f"{len(modules)} modules",
                  box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("module", no_wrap=True)
    table.add_column("path", overflow="fold")
    table.add_column("exports", justify="right")
    table.add_column("needs", justify="right")
    table.add_column("license")
    table.add_column("init/exit")
    for m in modules:
        if m.error:
            table.add_row(Text(m.name), Text(m.path), "", "", Text(f"unreadable: {m.error}", style="red"), "")
            continue
        table.add_row(Text(m.name), Text(m.path), str(len(m.exports)), str(len(m.imports)),
                      Text(m.license or "-"), _init_exit(m))
    console.print(table)
    if tree is not None:
        render_tree_notes(console, tree)


def _tree_summary(tree: Tree) -> str:
    return (f"{len(tree.modules)} modules, {len(tree.broken)} unreadable, {len(tree.duplicates)} duplicate names, "
            f"{len(tree.problems)} other problems; modules.order "
            f"{'applied' if tree.order_applied else 'not applied'}")


def render_tree_notes(console: Console, tree: Tree) -> None:
    lines = [_tree_summary(tree)]
    for d in tree.duplicates:
        lines.append(f"duplicate {d.name}: {d.winner} wins over {', '.join(d.losers)}")
    for p in tree.problems:
        lines.append(f"problem {p.path}: {p.reason}")
    for line in lines:
        console.print(line, highlight=False, markup=False)
