"""Renderings of ``compat`` and ``diff``: rich tables for people, versioned JSON documents for machines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..abidiff import CHANGE_KINDS, Change, DiffResult, Side
from ..compat import COMPAT_KINDS, CompatResult, SignatureVerdict, Verdict
from ..findings import Finding
from .audit import finding_dict
from .render import document, more_hint, record, sentence

#: rows shown per kind in the human reports (the JSON has all of them)
PER_KIND = 15

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
_SEVERITIES = ("error", "warning", "info")


# --------------------------------------------------------------------------
# compat
# --------------------------------------------------------------------------


def verdict_dict(v: Verdict) -> dict[str, Any]:
    return {
        "file": v.file,
        "module": v.module,
        "kernel": v.kernel,
        "loads": v.loads,
        "summary": v.summary,
        "checked": list(v.checked),
        "unchecked": list(v.unchecked),
        "replaces": v.replaces,
        "reasons": list(v.reasons),
        "errno": v.errno,
        "needs_failing": list(v.needs_failing),
        "breaks": list(v.breaks),
        "kernel_log": list(v.kernel_log),
        "signature": signature_verdict_dict(v.signature),
    }


def signature_verdict_dict(sv: SignatureVerdict | None) -> dict[str, Any] | None:
    """A verdict's signature part (None for a file that could not be read)."""
    if sv is None:
        return None
    return {"status": sv.status, "refused": sv.refused, "enforced": sv.enforced, "signer": sv.signer,
            "key_id": sv.key_id, "hash_algo": sv.hash_algo, "trusted_signer": sv.trusted_signer,
            "trusted_key_id": sv.trusted_key_id}


def _sorted_findings(findings: Sequence[Finding]) -> list[Finding]:
    rank = {k: i for i, k in enumerate(COMPAT_KINDS)}
    return sorted(findings, key=lambda f: (_SEVERITIES.index(f.severity), rank.get(f.kind, len(rank)),
                                           f.details.get("scope") != "file", f.modules, f.symbols))


def compat_document(results: Sequence[CompatResult]) -> dict[str, Any]:
    """The ``compat --json`` document: one verdict per file and kernel, findings in the audit's format."""
    return document({
        "kernels": [
            {
                "kernel": r.kernel,
                "tree": r.tree,
                "kernel_symbols": r.kernel_symbols,
                "vermagic": r.vermagic,
                "loads": r.loads,
                "checked": list(r.checked),
                "broken_in_tree": list(r.broken_in_tree),
                "preexisting_problems": r.preexisting,
                "notes": list(r.notes),
            }
            for r in results
        ],
        "verdicts": [verdict_dict(v) for r in results for v in r.verdicts],
        "findings": [finding_dict(f, r.kernel) for r in results for f in _sorted_findings(r.findings)],
    })


def _why(v: Verdict) -> str:
    if v.loads:
        return ""
    parts = [k for k in v.reasons if k != "dependency"]
    if "dependency" in v.reasons:
        parts.append(f"needs {', '.join(v.needs_failing)}")
    return ", ".join(parts)


def _headlines(r: CompatResult) -> list[tuple[str, bool]]:
    """(line, dim) for one kernel: the counts, the symbol list, the notes."""
    nfiles = len(r.verdicts)
    ok = sum(1 for v in r.verdicts if v.loads)
    line = (f"moddeps compat: {nfiles} file(s) on {r.kernel} ({r.tree}): {ok} load, {nfiles - ok} do not"
            + (f"; {len(r.broken_in_tree)} in-tree module(s) would no longer load" if r.broken_in_tree else ""))
    out = [(line, False)]
    if r.kernel_symbols:
        out.append((f"kernel symbols: {r.kernel_symbols}", True))
    out += [(f"note: {n}", True) for n in r.notes]
    return out


def _detail(v: Verdict) -> str:
    """Why a file does not load and what the kernel logs; what it breaks."""
    detail = _why(v)
    if not v.loads and v.kernel_log:
        detail += (": " if detail else "") + v.kernel_log[-1]
    if v.breaks:
        detail += ("; " if detail else "") + f"breaks {', '.join(v.breaks)}"
    return detail


def compat_lines(results: Sequence[CompatResult]) -> list[str]:
    """The plain-text compat report: each kernel's headline and notes, then::

        verdict<TAB>KERNEL<TAB>MODULE<TAB>yes|no<TAB>VERDICT<TAB>WHY NOT / WHAT THE KERNEL LOGS; breaks ...<TAB>FILE
        breaks<TAB>KERNEL<TAB>MODULE<TAB>IN-TREE MODULE          (one per in-tree module broken)
        finding<TAB>SEVERITY<TAB>KIND<TAB>KERNEL<TAB>MODULE<TAB>MESSAGE
    """
    out = [sentence(line) for r in results for line, _dim in _headlines(r)]
    for r in results:
        for v in r.verdicts:
            out.append(record("verdict", r.kernel, v.module, "yes" if v.loads else "no", v.summary,
                              _detail(v) or "-", v.file))
    out += [record("breaks", r.kernel, v.module, b) for r in results for v in r.verdicts for b in v.breaks]
    out += [record("finding", f.severity, f.kind, r.kernel, f.modules[0] if f.modules else "", f.message)
            for r in results for f in _sorted_findings(r.findings)]
    return out


def render_compat(console: Console, results: Sequence[CompatResult]) -> None:
    """A verdict per file (a matrix with several kernels), then the findings."""
    for r in results:
        for line, dim in _headlines(r):
            console.print(line, style="dim" if dim else None, highlight=False, markup=False)
    if not results:
        return
    if len(results) == 1:
        r = results[0]
        table = Table(box=box.SIMPLE_HEAD, show_edge=False)
        table.add_column("module", no_wrap=True)
        table.add_column("loads", no_wrap=True)
        table.add_column("why not / what the kernel logs", overflow="fold")
        for v in r.verdicts:
            verdict = (Text("yes", style="green") + (Text(f" ({' and '.join(v.unchecked)} unchecked)", style="yellow")
                                                        if v.unchecked else Text(""))
                       if v.loads else Text("no", style="bold red"))
            table.add_row(v.module, verdict, Text(_detail(v)))
        console.print(table)
    else:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False)
        table.add_column("module", no_wrap=True)
        for r in results:
            table.add_column(r.kernel, overflow="fold")
        by_file: dict[str, dict[str, Verdict]] = {}
        names: dict[str, str] = {}
        for r in results:
            for v in r.verdicts:
                by_file.setdefault(v.file, {})[r.kernel] = v
                names[v.file] = v.module
        for file, per in by_file.items():
            cells: list[Text] = []
            for r in results:
                cell = per.get(r.kernel)
                if cell is None:
                    cells.append(Text("-"))
                elif cell.loads:
                    cells.append(Text(cell.summary, style="yellow" if cell.unchecked else "green")
                                 + (Text(f" (breaks {len(cell.breaks)})", style="yellow") if cell.breaks else Text("")))
                else:
                    cells.append(Text("no: " + _why(cell), style="red"))
            table.add_row(names[file], *cells)
        console.print(table)
    _render_findings(console, [(r.kernel, f) for r in results for f in _sorted_findings(r.findings)],
                     show_kernel=len(results) > 1)


def _render_findings(console: Console, items: Sequence[tuple[str, Finding]], show_kernel: bool) -> None:
    if not items:
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("kind", no_wrap=True)
    if show_kernel:
        table.add_column("kernel", no_wrap=True)
    table.add_column("module", no_wrap=True)
    table.add_column("finding", overflow="fold")
    groups: dict[tuple[str, str], list[tuple[str, Finding]]] = {}
    for kernel, f in items:
        groups.setdefault((f.severity, f.kind), []).append((kernel, f))
    for (severity, kind), rows in groups.items():
        shown = rows[:PER_KIND]
        for i, (kernel, f) in enumerate(shown):
            last = i == len(shown) - 1 and len(rows) <= PER_KIND
            first_cell = Text(kind, style=_STYLE[severity]) if i == 0 else Text("")
            cells = [first_cell, *([Text(kernel)] if show_kernel else []), Text(f.modules[0] if f.modules else ""),
                     Text(f.message)]
            table.add_row(*cells, end_section=last)
        if len(rows) > PER_KIND:
            filler = [Text("")] * (2 if show_kernel else 1)
            table.add_row(*filler, Text("…"), Text(more_hint(len(rows) - PER_KIND)), end_section=True)
    console.print(table)


# --------------------------------------------------------------------------
# diff
# --------------------------------------------------------------------------


def _side_dict(s: Side) -> dict[str, Any]:
    # "crcs": false says why every CRC of that side is null (a kernel without CONFIG_MODVERSIONS)
    return {"path": s.path, "kind": s.kind, "version": s.version, "modules": len(s.modules),
            "exports": len(s.exports), "crcs": s.crcs}


def change_dict(c: Change) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": c.kind, "module": c.module, "symbol": c.symbol, "old": c.old, "new": c.new,
                           "incompatible": c.incompatible}
    if c.symbols:
        out["symbols"] = list(c.symbols)
    return out


def diff_document(result: DiffResult) -> dict[str, Any]:
    """The ``diff --json`` document."""
    counts = result.counts()
    return document({
        "old": _side_dict(result.old),
        "new": _side_dict(result.new),
        "incompatible": bool(result.incompatible),
        "summary": {k: counts[k] for k in CHANGE_KINDS if k in counts},
        "notes": list(result.notes),
        "changes": [change_dict(c) for c in result.changes],
    })


#: what a null CRC means on a side with CRCs, and on one without
_NO_CRC = ("no CRC", "no CRCs (MODVERSIONS off)")


def _crc_cell(crc: str | None, side: Side) -> str:
    return crc if crc is not None else _NO_CRC[not side.crcs]


def _value(text: str | None, absent: str) -> str:
    return absent if text is None else text


def _change_text(c: Change, result: DiffResult, most: int | None = 4) -> str:
    """The ``change`` cell: what it was and what it is.  ``most``: symbols of a
    dependency shown (None: all of them)."""
    if c.kind == "export-added":
        return _crc_cell(c.new, result.new)
    if c.kind == "export-removed":
        return _crc_cell(c.old, result.old)
    if c.kind == "crc-changed":
        return f"{_crc_cell(c.old, result.old)} -> {_crc_cell(c.new, result.new)}"
    if c.kind == "namespace-changed":
        return f"{c.old or 'no namespace'} -> {c.new or 'no namespace'}"
    if c.kind == "module-added":
        return _value(c.new, "")
    if c.kind == "module-removed":
        return _value(c.old, "")
    if c.kind in ("dependency-added", "dependency-removed"):
        target = _value(c.new if c.kind == "dependency-added" else c.old, "?")
        cut = most is not None and len(c.symbols) > most
        syms = ", ".join(c.symbols[:most] if cut else c.symbols) + (" …" if cut else "")
        return f"{target} ({syms})" if syms else target
    return f"{_value(c.old, '-')} -> {_value(c.new, '-')}"


def _diff_headline(result: DiffResult) -> str:
    return (f"moddeps diff {result.old.path} -> {result.new.path}: {len(result.changes)} change(s), "
            f"{len(result.incompatible)} incompatible")


def _diff_rows(result: DiffResult) -> list[tuple[str, list[Change]]]:
    """(kind, changes) in report order, incompatible changes first within a kind."""
    groups = []
    for kind in CHANGE_KINDS:
        rows = [c for c in result.changes if c.kind == kind]
        if rows:
            rows.sort(key=lambda c: not c.incompatible)  # stable
            groups.append((kind, rows))
    return groups


def diff_lines(result: DiffResult) -> list[str]:
    """The plain-text diff: the headline, ``note:`` lines, then every change::

        count<TAB>KIND<TAB>N<TAB>N_INCOMPATIBLE
        change<TAB>incompatible|compatible<TAB>KIND<TAB>MODULE<TAB>SYMBOL (- for none)<TAB>CHANGE
    """
    out = [sentence(_diff_headline(result))]
    out += [sentence(f"note: {n}") for n in result.notes]
    groups = _diff_rows(result)
    out += [record("count", kind, len(rows), sum(1 for c in rows if c.incompatible)) for kind, rows in groups]
    out += [record("change", "incompatible" if c.incompatible else "compatible", kind, c.module, c.symbol,
                   _change_text(c, result, most=None) or "-")
            for kind, rows in groups for c in rows]
    return out


def render_diff(console: Console, result: DiffResult) -> None:
    bad = result.incompatible
    console.print(_diff_headline(result), highlight=False, markup=False)
    for note in result.notes:
        console.print(f"note: {note}", style="dim", highlight=False, markup=False)
    if not result.changes:
        return
    counts = result.counts()
    summary = Table(box=box.SIMPLE_HEAD, show_edge=False)
    summary.add_column("kind", no_wrap=True)
    summary.add_column("count", justify="right", no_wrap=True)
    summary.add_column("incompatible", justify="right", no_wrap=True)
    for kind in CHANGE_KINDS:
        if kind in counts:
            nbad = sum(1 for c in bad if c.kind == kind)
            summary.add_row(kind, str(counts[kind]), Text(str(nbad), style="bold red") if nbad else Text("0"))
    console.print(summary)
    # the "!" and kind columns keep their width however narrow the terminal
    # (the others fold onto more lines rather than lose characters)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("!", no_wrap=True, min_width=1)  # "!": incompatible
    table.add_column("kind", no_wrap=True, min_width=max(len(k) for k in CHANGE_KINDS))
    table.add_column("module", overflow="fold")
    table.add_column("symbol", overflow="fold")
    table.add_column("change", overflow="fold", min_width=10)
    for kind, rows in _diff_rows(result):
        shown = rows[:PER_KIND]
        for i, c in enumerate(shown):
            last = i == len(shown) - 1 and len(rows) <= PER_KIND
            style = "bold red" if c.incompatible else ""
            table.add_row(Text("!" if c.incompatible else "", style=style),
                          Text(kind, style=style) if i == 0 else Text(""), Text(c.module), Text(c.symbol or ""),
                          Text(_change_text(c, result), style=style), end_section=last)
        if len(rows) > PER_KIND:
            table.add_row(Text(""), Text(""), Text("…"), Text(""), Text(more_hint(len(rows) - PER_KIND)),
                          end_section=True)
    console.print(table)
    if bad:
        console.print("!: incompatible: a module built against the old side is refused by the new one",
                      style="dim", highlight=False, markup=False)
