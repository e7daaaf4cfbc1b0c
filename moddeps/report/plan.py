"""Renderings of load/unload plans and closures: modprobe's text, JSON, rich trees.

Renderers only render: the decisions are in :mod:`moddeps.modprobe`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree as RichTree

from ..modprobe.closure import Closure, ClosureItem
from ..modprobe.indexes import Source
from ..modprobe.plan import Plan, PlanSet, Step
from .render import document, record

__all__ = [
    "closure_document",
    "closure_lines",
    "kmod_stderr_lines",
    "plan_document",
    "plan_lines",
    "render_closure",
    "render_plans",
    "show_depends_text",
    "source_note",
]


# --------------------------------------------------------------------------
# modprobe's own text
# --------------------------------------------------------------------------


def show_depends_text(plans: Iterable[Plan]) -> str:
    """stdout of ``modprobe --show-depends -a TARGET...`` (or ``-r``): every line, in order."""
    return "".join(line + "\n" for p in plans for line in p.lines)


def kmod_stderr_lines(plans: Iterable[Plan], *, all_mode: bool = True, program: str = "modprobe") -> list[str]:
    """What modprobe prints on stderr for failed targets.

    kmod tools/modprobe.c: ``LOG()`` is FATAL by default and WARNING with
    ``-a`` (log_priority = LOG_WARNING); a failed lookup of ``-r`` prints
    nothing.
    """
    level = "WARNING" if all_mode else "FATAL"
    return [f"{program}: {level}: {p.kmod_message}" for p in plans if p.kmod_message]


def source_note(source: Source, dirname: str) -> str:
    """One stderr line saying where the indexes came from."""
    if source.kind == "index":
        return f"using the indexes of {dirname} ({source.reason})"
    return f"planning from a scan of {dirname}: its indexes are absent or stale ({source.reason})"


# --------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------


def _step_dict(s: Step) -> dict[str, Any]:
    return {
        "action": s.action,
        "module": s.module,
        "path": s.path,
        "reason": s.reason,
        "because": list(s.because),
        "line": s.line,
        "via": s.via,
        "root": s.root,
        "options": s.options,
        "alias": s.alias,
        "needed_by": [{"module": m, "symbols": list(syms)} for m, syms in s.needed_by],
        "config": list(s.config),
        "builtin": s.builtin,
        "permanent": s.permanent,
        "note": s.note,
    }


def _plan_dict(p: Plan) -> dict[str, Any]:
    return {
        "target": p.target,
        "resolved": list(p.resolved),
        "found_by": p.found_by,
        "error": p.error,
        "steps": [_step_dict(s) for s in p.steps],
        "notes": list(p.notes),
        "messages": list(p.messages),
    }


def _source_dict(source: Source) -> dict[str, Any]:
    return {"kind": source.kind, "reason": source.reason, "reader": source.reader}


def plan_document(ps: PlanSet) -> dict[str, Any]:
    """``{"schema": 1, "plans": [...]}``: one plan per target, in the order given."""
    return document({
        "dirname": ps.dirname,
        "kernel": ps.version,
        "mode": "remove" if ps.remove else "load",
        "source": _source_dict(ps.source),
        "config_files": list(ps.config_files),
        "messages": list(ps.messages),
        "exit_status": ps.exit_status,
        "plans": [_plan_dict(p) for p in ps.plans],
    })


def _closure_item_dict(i: ClosureItem) -> dict[str, Any]:
    return {"kind": i.kind, "name": i.name, "path": i.path, "reason": i.reason, "because": list(i.because),
            "via": i.via, "exists": i.exists, "builtin": i.kind == "builtin"}


def closure_document(c: Closure) -> dict[str, Any]:
    return document({
        "dirname": c.dirname,
        "source": _source_dict(c.source),
        "targets": list(c.targets),
        "items": [_closure_item_dict(i) for i in c.items],
        "errors": [{"target": t, "error": e} for t, e in c.errors],
        "problems": [{"name": n, "message": m} for n, m in c.problems],
        "notes": list(c.notes),
        "exit_status": c.exit_status,
    })


def closure_lines(c: Closure, *, reasons: bool = False) -> list[str]:
    """One line per file (modules, then firmware found), in the closure's order.

    A built-in module has no file: it is listed as ``builtin NAME``, the line
    ``modprobe --show-depends`` prints for it (a module path is never
    ``builtin`` followed by a space: the paths are the tree's, absolute or
    under the module directory), so ``grep -v '^builtin '`` keeps the files.
    With ``reasons``: ``PATH<TAB>KIND<TAB>REASON<TAB>BECAUSE`` (missing
    firmware included, its PATH where it was expected; a built-in's PATH is
    ``builtin NAME`` and its KIND ``builtin``; every symbol, as every
    plain-text record is whole).
    """
    out = []
    for i in c.items:
        if i.kind == "builtin":
            first = f"builtin {i.name}"
        elif i.path is None or (not i.exists and not reasons):
            continue
        else:
            first = i.path
        if reasons:
            via = f" (via {i.via})" if i.via else ""
            out.append("\t".join(_field(x) for x in (
                first, f"{i.kind}{'' if i.exists else ' (missing)'}", f"{i.reason}{via}", "; ".join(i.because))))
        else:
            out.append(first)
    return out


def _field(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ").replace("\r", " ")


def plan_lines(ps: PlanSet) -> list[str]:
    """The plain-text plans, one record per line, in execution order::

        target<TAB>TARGET<TAB>RESOLVED (comma-separated, - for none)<TAB>FOUND BY
        step<TAB>TARGET<TAB>N<TAB>ACTION<TAB>MODULE<TAB>WHY<TAB>COMMAND (modprobe's line, - for none)<TAB>FLAGS
        error<TAB>TARGET<TAB>ERROR
        note<TAB>TARGET<TAB>NOTE
        message<TAB>TARGET<TAB>LIBKMOD MESSAGE

    FLAGS: comma-separated ``builtin``, ``permanent``, ``alias=ALIAS``,
    ``note=NOTE`` (- for none).
    """
    out = []
    for p in ps.plans:
        out.append(record("target", p.target, ",".join(p.resolved) or None, p.found_by))
        if p.error:
            out.append(record("error", p.target, p.error))
        for n, s in enumerate(p.steps, 1):
            flags = [*(["builtin"] if s.builtin else []), *(["permanent"] if s.permanent else []),
                     *([f"alias={s.alias}"] if s.alias else []), *([f"note={s.note}"] if s.note else [])]
            out.append(record("step", p.target, n, s.action, s.module, _why(s, most=None), s.line,
                              ",".join(flags) or None))
        out += [record("note", p.target, n) for n in p.notes]
        out += [record("message", p.target, m) for m in p.messages]
    return out


# --------------------------------------------------------------------------
# rich
# --------------------------------------------------------------------------

_STYLE = {"insmod": "green", "builtin": "cyan", "install": "yellow", "skip": "dim", "rmmod": "red",
          "remove": "yellow"}


def _symbols(syms: tuple[str, ...], most: int | None) -> str:
    if most is None or len(syms) <= most:
        return ", ".join(syms)
    return ", ".join(syms[:most]) + " …"


def _why(s: Step, most: int | None = 4) -> str:
    """Why a step is there (``most``: symbols named per user; None: all)."""
    if s.reason == "dependency":
        if s.needed_by:
            parts = [f"{u} needs {_symbols(syms, most)}" for u, syms in s.needed_by]
            return "dependency: " + "; ".join(parts)
        return f"dependency of {s.via}"
    if s.reason in ("softdep-pre", "softdep-post", "weakdep"):
        kind = {"softdep-pre": "pre-softdep", "softdep-post": "post-softdep", "weakdep": "weakdep"}[s.reason]
        return f"{kind} of {s.via}: {'; '.join(s.because)}"
    if s.reason == "holder":
        return f"holds {s.via}" + (f" ({_symbols(s.because, most)})" if s.because else "")
    if s.reason == "unused-dependency":
        return f"left unused by {s.via}"
    return "target: " + "; ".join(s.because)


def _label(n: int, s: Step) -> str:
    style = _STYLE.get(s.action, "")
    what = escape(s.line) if s.line is not None else f"(nothing: {escape(s.note or 'skipped')})"
    head = f"[bold]{n}.[/bold] [{style}]{s.action}[/{style}] [bold]{escape(s.module)}[/bold]"
    flags = []
    if s.builtin and s.action != "builtin":
        flags.append("[cyan]built in[/cyan]")
    if s.permanent:
        flags.append("[magenta]permanent (no exit function)[/magenta]")
    if s.alias:
        flags.append(f"alias {escape(s.alias)}")
    tail = f" [dim]{escape(_why(s))}[/dim]"
    extra = f"\n   [dim]{what}[/dim]"
    if s.note and s.line is not None:
        extra += f"\n   [yellow]{escape(s.note)}[/yellow]"
    return head + (" " + " ".join(flags) if flags else "") + tail + extra


def render_plans(console: Console, ps: PlanSet) -> None:
    """Each target as a tree: steps under the module that pulled them in, numbered in execution order."""
    for p in ps.plans:
        title = f"[bold]{'modprobe -r' if p.remove else 'modprobe'} {escape(p.target)}[/bold]"
        if p.resolved:
            title += f" -> {escape(', '.join(p.resolved))} [dim]({escape(p.found_by or '')})[/dim]"
        root = RichTree(title)
        if p.error:
            root.add(f"[red]error: {escape(p.error)}[/red]")
        nodes: dict[tuple[str | None, str], RichTree] = {}
        # A step hangs under the latest node of the module it came through;
        # those nodes appear later in the list (dependencies load first), so
        # children are attached after all nodes exist.
        order: list[tuple[Step, RichTree]] = []
        for n, s in enumerate(p.steps, 1):
            node = RichTree(_label(n, s))
            nodes[(s.root, s.module)] = node
            order.append((s, node))
        parent_of: dict[int, RichTree] = {}
        for s, node in order:
            parent = nodes.get((s.root, s.via)) if s.via is not None else None
            # never hang a node below itself (softdep loops can point both ways)
            up = parent
            while up is not None and up is not node:
                up = parent_of.get(id(up))
            if parent is None or up is node:
                parent = root
            parent_of[id(node)] = parent
            parent.children.append(node)
        for note in p.notes:
            root.add(f"[dim]note: {escape(note)}[/dim]")
        for msg in p.messages:
            root.add(f"[yellow]{escape(msg)}[/yellow]")
        console.print(root)


def render_closure(console: Console, c: Closure) -> None:
    table = Table(title=f"closure of {', '.join(c.targets)} ({len(c.items)} items)")
    table.add_column("kind")
    table.add_column("name")
    table.add_column("path", overflow="fold")
    table.add_column("reason")
    table.add_column("because", overflow="fold")
    for i in c.items:
        shown = escape(i.path or "-")
        path = shown if i.exists else f"[red]{shown} (missing)[/red]"
        reason = i.reason + (f" of {i.via}" if i.via else "")
        table.add_row(i.kind, escape(i.name), path, escape(reason), escape("; ".join(i.because)))
    console.print(table)
    for t, e in c.errors:
        console.print(f"[red]error: {escape(t)}: {escape(e)}[/red]")
    for n in c.notes:
        console.print(f"[dim]note: {escape(n)}[/dim]")
