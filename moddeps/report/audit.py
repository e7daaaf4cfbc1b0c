"""Renderings of an audit: a grouped rich report for people, a versioned JSON document for machines."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from ..audit import AuditResult
from ..findings import FINDING_KINDS, SEVERITIES, Finding
from .render import document, more_hint, record, sentence

#: findings shown per kind in the human report (the JSON has all of them)
PER_KIND = 15

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def audit_document(result: AuditResult) -> dict[str, Any]:
    """The ``audit --json`` document (schema: moddeps/schemas/audit.schema.json)."""
    counts = result.counts()
    by_sev = {s: sum(1 for f in result.findings if f.severity == s) for s in SEVERITIES}
    return document({
        "tree": result.tree,
        "kernel": result.kernel,
        "summary": {
            "modules": result.module_count,
            "findings": len(result.findings),
            "by_severity": by_sev,
            "by_kind": {k: counts[k] for k in FINDING_KINDS if k in counts},
            "kernel_symbols": result.kernel_symbols,
            "notes": list(result.notes),
        },
        "findings": [finding_dict(f) for f in result.findings],
    })


def finding_dict(f: Finding, kernel: str | None = None) -> dict[str, Any]:
    """A finding in JSON (``$defs/finding`` of audit.schema.json); with ``kernel``,
    the kernel it was found on goes in ``details.kernel`` (compat)."""
    details = dict(f.details)
    if kernel is not None:
        details["kernel"] = kernel
    return {
        "kind": f.kind,
        "severity": f.severity,
        "modules": list(f.modules),
        "symbols": list(f.symbols),
        "files": list(f.files),
        "message": f.message,
        "details": details,
    }


def _headline(result: AuditResult) -> str:
    by_sev = {s: sum(1 for f in result.findings if f.severity == s) for s in SEVERITIES}
    return (f"moddeps audit of {result.tree}: {result.module_count} modules, "
            + (", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in by_sev.items()) if result.findings
               else "no findings"))


def _groups(result: AuditResult) -> list[tuple[str, str, list[Finding]]]:
    """(severity, kind, findings) in report order; the signature kinds' severity
    depends on the finding, so a kind can have a group per severity."""
    counts = result.counts()
    groups = [(sev, kind, [f for f in result.findings if f.kind == kind and f.severity == sev])
              for sev in SEVERITIES for kind in FINDING_KINDS if kind in counts]
    return [g for g in groups if g[2]]


def _subject(f: Finding) -> str:
    return f.modules[0] if f.modules else (f.files[0] if f.files else "")


def audit_lines(result: AuditResult) -> list[str]:
    """The plain-text audit: the headline, ``note:`` lines, then one record per kind
    and per finding, every finding whole::

        count<TAB>SEVERITY<TAB>KIND<TAB>N
        finding<TAB>SEVERITY<TAB>KIND<TAB>MODULE<TAB>MESSAGE
    """
    out = [sentence(_headline(result))]
    out += [sentence(f"note: {n}") for n in result.notes]
    groups = _groups(result)
    out += [record("count", sev, kind, len(items)) for sev, kind, items in groups]
    out += [record("finding", sev, kind, _subject(f), f.message) for sev, kind, items in groups for f in items]
    return out


def render_audit(console: Console, result: AuditResult) -> None:
    console.print(_headline(result), highlight=False, markup=False)
    for note in result.notes:
        console.print(f"note: {note}", style="dim", highlight=False, markup=False)
    if not result.findings:
        return
    summary = Table(box=box.SIMPLE_HEAD, show_edge=False)
    summary.add_column("severity")
    summary.add_column("kind")
    summary.add_column("count", justify="right")
    groups = _groups(result)
    for sev, kind, items in groups:
        summary.add_row(f"[{_STYLE[sev]}]{sev}[/]", kind, str(len(items)))
    console.print(summary)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("kind", no_wrap=True)
    table.add_column("module", no_wrap=True)
    table.add_column("finding", overflow="fold")
    for sev, kind, items in groups:
        shown = items[:PER_KIND]
        for i, f in enumerate(shown):
            last = i == len(shown) - 1 and len(items) <= PER_KIND
            table.add_row(f"[{_STYLE[sev]}]{kind}[/]" if i == 0 else "",
                          _subject(f), f.message, end_section=last)
        if len(items) > PER_KIND:
            table.add_row("", "…", more_hint(len(items) - PER_KIND), end_section=True)
    console.print(table)
