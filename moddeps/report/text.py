"""Human renderings with rich.  Renderers only render: they never decide or exit."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from ..elfreader import machine_name
from ..model import Module, crc_text
from ..scanner import Tree


def _crc(crc: int | None) -> str:
    return crc_text(crc) or "-"


def render_scan(console: Console, tree: Tree | None, modules: Sequence[Module]) -> None:
    table = Table(title=f"{tree.dirname} ({len(modules)} modules)" if tree else f"{len(modules)} modules")
    table.add_column("module")
    table.add_column("path", overflow="fold")
    table.add_column("exports", justify="right")
    table.add_column("needs", justify="right")
    table.add_column("license")
    table.add_column("init/exit")
    for m in modules:
        if m.error:
            table.add_row(m.name, m.path, "", "", f"[red]unreadable: {m.error}[/red]", "")
            continue
        ie = ("init" if m.has_init else "-") + "/" + ("exit" if m.has_exit else "-")
        table.add_row(m.name, m.path, str(len(m.exports)), str(len(m.imports)), m.license or "-", ie)
    console.print(table)
    if tree is not None:
        render_tree_notes(console, tree)


def render_tree_notes(console: Console, tree: Tree) -> None:
    broken = tree.broken
    lines = [
        f"{len(tree.modules)} modules, {len(broken)} unreadable, {len(tree.duplicates)} duplicate names, "
        f"{len(tree.problems)} other problems; modules.order {'applied' if tree.order_applied else 'not applied'}"
    ]
    for d in tree.duplicates:
        lines.append(f"duplicate {d.name}: {d.winner} wins over {', '.join(d.losers)}")
    for p in tree.problems:
        lines.append(f"problem {p.path}: {p.reason}")
    for line in lines:
        console.print(line, highlight=False, markup=False)


def render_info(console: Console, m: Module, shown_path: str) -> None:
    """Like modinfo, plus what the module exports and needs."""
    console.print(f"{'filename:':16}{shown_path}", highlight=False, markup=False)
    if m.error:
        console.print(f"{'error:':16}{m.error}", highlight=False, markup=False)
        return
    for k, v in m.modinfo:
        console.print(f"{k + ':':16}{v}", highlight=False, markup=False)
    comp = f", {m.compression}" if m.compression else ""
    console.print(
        f"{'elf:':16}{machine_name(m.machine)}, ELF{m.elf_class}, {m.byte_order}-endian{comp}",
        highlight=False,
        markup=False,
    )
    console.print(f"{'init/exit:':16}{'yes' if m.has_init else 'no'}/{'yes' if m.has_exit else 'no'}"
                  + ("  (can never be unloaded)" if m.permanent else ""), highlight=False, markup=False)
    if m.exports:
        t = Table(title=f"exports ({len(m.exports)})", show_edge=False)
        t.add_column("symbol")
        t.add_column("crc")
        t.add_column("type")
        t.add_column("namespace")
        for e in m.exports:
            t.add_row(e.name, _crc(e.crc), "GPL-only" if e.gpl_only else "any", e.namespace or "")
        console.print(t)
    if m.imports:
        t = Table(title=f"needs ({len(m.imports)})", show_edge=False)
        t.add_column("symbol")
        t.add_column("crc")
        t.add_column("")
        for i in m.imports:
            flags = ", ".join(f for f, on in (("weak", i.weak), ("__versions only", i.versions_only)) if on)
            t.add_row(i.name, _crc(i.crc), flags)
        console.print(t)
