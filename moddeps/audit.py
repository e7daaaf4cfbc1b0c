"""``moddeps audit``: everything depmod never says about a module tree.

:func:`audit_tree` returns an :class:`AuditResult` of :class:`Finding`
records; it prints nothing (see :mod:`moddeps.report.audit`).  Each finding
has a stable ``kind``; ``modules[0]`` is the module it is about.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .kernelsyms import kmod_kernel_table, read_text
from .model import Export, KernelSymbols, crc_text, fsdecode
from .resolve import KERNEL, Options, Resolution, resolve, strongly_connected_cycles
from .scanner import Tree

SEVERITIES = ("error", "warning", "info")

#: kind -> severity, in report order (worst first within a severity)
KINDS: dict[str, str] = {
    "cycle": "error",
    "broken-file": "error",
    "unknown-symbol": "error",
    "crc-mismatch": "error",
    "gpl-only-misuse": "error",
    "namespace-not-imported": "error",
    "vermagic-mismatch": "error",
    "duplicate-export": "warning",
    "duplicate-module": "warning",
    "stale-index": "warning",
    "permanent-module": "info",
    "not-in-modules-order": "info",
}

#: The kernel's list (include/linux/license.h, license_is_gpl_compatible).
GPL_COMPATIBLE = frozenset(
    {"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL"}
)


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    severity: str
    modules: tuple[str, ...]
    symbols: tuple[str, ...]
    files: tuple[str, ...]
    message: str
    details: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class AuditResult:
    tree: str
    kernel: str
    module_count: int
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]  # things the audit could not check, said once
    kernel_symbols: str | None  # the Module.symvers / System.map used

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.kind] = out.get(f.kind, 0) + 1
        return out

    def exit_status(self, fail_on: str) -> int:
        """0, or 1 when a finding at or above ``fail_on`` exists ("never": always 0)."""
        if fail_on == "never":
            return 0
        worst = SEVERITIES.index(fail_on)
        return 1 if any(SEVERITIES.index(f.severity) <= worst for f in self.findings) else 0


def audit_tree(
    tree: Tree,
    kernel: KernelSymbols | None = None,
    *,
    check_index: bool = True,
) -> AuditResult:
    modules = tree.modules
    names = [m.name for m in modules]
    shown = [f.shown for f in tree.files]
    full = [f"{tree.dirname}/{f.relpath}" if f.relpath is not None else f.path for f in tree.files]
    notes: list[str] = []

    kernel_table: dict[str, int] | None = None
    if kernel is not None:
        # kmod's own reading of the file, so unknown/CRC pairs equal depmod -e -E/-F
        raw, _msgs = kmod_kernel_table(read_text(kernel.source), kernel.source, kernel.kind)
        kernel_table = {fsdecode(k): v for k, v in raw.items()}
    else:
        notes.append(
            "no kernel symbol list given (--symvers or --system-map): unknown-symbol and kernel CRC checks skipped"
        )
    res = resolve(modules, full, Options(kernel_table=kernel_table, check_crcs=kernel is not None and
                                         kernel.kind == "symvers", warn=True))
    findings: list[Finding] = []
    findings += _cycles(tree, res, names, shown)
    findings += _broken(tree)
    if kernel is not None:
        findings += _grouped(res.unknown, "unknown-symbol", names, shown, res, kernel,
                             "needs {n} symbol(s) that neither the kernel nor any module provides: {syms}")
        if kernel.kind == "symvers":
            findings += _crc_findings(res.mismatched, names, shown, tree, res, kernel)
    # (exporter index, symbol) -> Export, shared by the checks that look at the bound export
    export_of = {(idx, e.name): e for idx, m in enumerate(modules) for e in m.exports}
    findings += _module_crc_mismatches(tree, res, names, shown, export_of,
                                       skip=set(res.mismatched) if kernel else set())
    findings += _licence_and_namespace(tree, res, names, shown, export_of, kernel)
    findings += _vermagic(tree, shown)
    findings += _duplicate_exports(tree, res, names, shown, kernel)
    findings += _duplicate_modules(tree)
    if check_index:
        f, note = _stale_index(tree, res)
        findings += f
        if note:
            notes.append(note)
    findings += _permanent(tree, shown)
    findings += _order(tree, shown)

    kind_rank = {k: i for i, k in enumerate(KINDS)}
    findings.sort(key=lambda f: (SEVERITIES.index(f.severity), kind_rank[f.kind], f.modules, f.symbols))
    return AuditResult(
        tree=tree.dirname,
        kernel=tree.version,
        module_count=len(modules),
        findings=tuple(findings),
        notes=tuple(notes),
        kernel_symbols=kernel.source if kernel else None,
    )


def _f(kind: str, modules: Sequence[str], symbols: Sequence[str], files: Sequence[str], message: str,
       **details: Any) -> Finding:
    return Finding(kind, KINDS[kind], tuple(modules), tuple(symbols), tuple(files), message, details)


def _cycles(tree: Tree, res: Resolution, names: list[str], shown: list[str]) -> list[Finding]:
    comps = strongly_connected_cycles(res.deps)
    if not comps:
        return []
    from .graph import build_graph, min_feedback_edges, simple_cycles

    g = build_graph(tree.modules, shown, res)
    out = []
    for comp in comps:
        comp_names = [names[i] for i in comp]
        sub = g.subgraph(comp_names)
        breakers = min_feedback_edges(g, comp_names)
        for cyc in simple_cycles(sub):
            ring = [*cyc, cyc[0]]
            edges = [{"from": a, "to": b, "symbols": list(g.edges[a, b]["symbols"])} for a, b in zip(ring, ring[1:])]
            syms = sorted({s for e in edges for s in e["symbols"]})
            cheapest = min(edges, key=lambda e: (len(e["symbols"]), e["from"]))
            text = "; ".join(f"{e['from']} needs {e['to']} for {', '.join(e['symbols'])}" for e in edges)
            out.append(_f(
                "cycle", cyc, syms, [g.nodes[n]["path"] for n in cyc],
                f"dependency cycle {' -> '.join(ring)} ({text}); depmod refuses to write any index",
                edges=edges,
                break_cycle=[{"from": cheapest["from"], "to": cheapest["to"], "symbols": cheapest["symbols"]}],
                component=sorted(comp_names),
                component_feedback_edges=[{"from": a, "to": b, "symbols": list(g.edges[a, b]["symbols"])}
                                          for a, b in breakers],
            ))
    return out


def _broken(tree: Tree) -> list[Finding]:
    out = [
        _f("broken-file", [m.name], [], [f.shown], f"{f.shown}: {m.error}", reason=m.error,
           kmod_message=f"failed to load symbols from {f.shown}: {m.kmod_error}")
        for m, f in zip(tree.modules, tree.files) if m.error is not None
    ]
    out += [_f("broken-file", [], [], [p.path], f"{p.path}: {p.reason}", reason=p.reason) for p in tree.problems]
    return out


def _grouped(pairs: Sequence[tuple[int, str]], kind: str, names: list[str], shown: list[str], res: Resolution,
             kernel: KernelSymbols | None, template: str) -> list[Finding]:
    by_mod: dict[int, list[str]] = {}
    for idx, sym in pairs:
        by_mod.setdefault(idx, []).append(sym)
    out = []
    for idx, syms in by_mod.items():
        out.append(_f(kind, [names[idx]], syms, [shown[idx]],
                      f"{names[idx]} " + template.format(n=len(syms), syms=", ".join(syms)),
                      kernel_log=[f"{names[idx]}: Unknown symbol {s} (err -2)" for s in syms]))
    return out


def _crc_findings(pairs: Sequence[tuple[int, str]], names: list[str], shown: list[str], tree: Tree,
                  res: Resolution, kernel: KernelSymbols) -> list[Finding]:
    by_mod: dict[int, list[str]] = {}
    for idx, sym in pairs:
        by_mod.setdefault(idx, []).append(sym)
    out = []
    for idx, syms in by_mod.items():
        mod = tree.modules[idx]
        wanted = {i.name: i.crc for i in mod.imports}
        detail = []
        for s in syms:
            owner, crc = res.owners.get(s.lstrip("."), (KERNEL, 0))
            detail.append({"symbol": s, "module_crc": crc_text(wanted.get(s)), "provider_crc": crc_text(crc),
                           "provider": "vmlinux" if owner == KERNEL else names[owner]})
        out.append(_f("crc-mismatch", [names[idx]], syms, [shown[idx]],
                      f"{names[idx]} was built against other versions of {len(syms)} symbol(s): {', '.join(syms)}",
                      symbols_detail=detail,
                      kernel_log=[f"{names[idx]}: disagrees about version of symbol {s}" for s in syms]))
    return out


def _module_crc_mismatches(tree: Tree, res: Resolution, names: list[str], shown: list[str],
                           export_of: Mapping[tuple[int, str], Export],
                           skip: set[tuple[int, str]]) -> list[Finding]:
    """CRC disagreements between modules (needs no kernel symbol list)."""
    out = []
    for idx, m in enumerate(tree.modules):
        bad = []
        detail = []
        for imp in m.imports:
            if imp.crc is None or imp.weak or (idx, imp.name) in skip:
                continue
            key = imp.name[1:] if imp.name.startswith(".") else imp.name
            found = res.owners.get(key)
            if found is None or found[0] == KERNEL:
                continue
            exp = export_of.get((found[0], key))
            have = exp.crc if exp is not None else None
            if have is not None and have != imp.crc:
                bad.append(imp.name)
                detail.append({"symbol": imp.name, "module_crc": crc_text(imp.crc), "provider_crc": crc_text(have),
                               "provider": names[found[0]]})
        if bad:
            out.append(_f("crc-mismatch", [m.name], bad, [shown[idx]],
                          f"{m.name} was built against other versions of {len(bad)} symbol(s) than the modules "
                          f"providing them: {', '.join(bad)}", symbols_detail=detail,
                          kernel_log=[f"{m.name}: disagrees about version of symbol {s}" for s in bad]))
    return out


def _licence_and_namespace(tree: Tree, res: Resolution, names: list[str], shown: list[str],
                           export_of: Mapping[tuple[int, str], Export],
                           kernel: KernelSymbols | None) -> list[Finding]:
    out = []
    for idx, m in enumerate(tree.modules):
        if m.error is not None:
            continue
        licence = m.license
        gpl_ok = licence in GPL_COMPATIBLE
        imported = set(m.imported_namespaces)
        gpl_used: list[str] = []
        gpl_from: dict[str, str] = {}
        missing: dict[str, list[str]] = {}
        provider_of: dict[str, str] = {}
        for imp in m.imports:
            if imp.versions_only:
                continue
            key = imp.name[1:] if imp.name.startswith(".") else imp.name
            found = res.owners.get(key)
            gpl_only = False
            ns: str | None = None
            provider = None
            if found is not None and found[0] != KERNEL:
                exp = export_of.get((found[0], key))
                if exp is not None:
                    gpl_only, ns = exp.gpl_only, exp.namespace
                provider = names[found[0]]
            elif kernel is not None and key in kernel.symbols:
                ks = kernel.symbols[key]
                gpl_only, ns, provider = ks.gpl_only, ks.namespace, "vmlinux"
            if provider is None:
                continue
            if gpl_only and not gpl_ok:
                gpl_used.append(imp.name)
                gpl_from[imp.name] = provider
            if ns and ns not in imported:
                missing.setdefault(ns, []).append(imp.name)
                provider_of[imp.name] = provider
        if gpl_used:
            out.append(_f(
                "gpl-only-misuse", [m.name, *sorted(set(gpl_from.values()))], gpl_used, [shown[idx]],
                f"{m.name} (license {licence!r}, not GPL-compatible) uses GPL-only symbol(s) "
                f"{', '.join(gpl_used)}: the kernel refuses to load it",
                license=licence, providers=gpl_from,
                kernel_log=[f"{m.name}: Unknown symbol {s} (err -2)" for s in gpl_used],
            ))
        for ns, syms in missing.items():
            out.append(_f(
                "namespace-not-imported", [m.name, *sorted({provider_of[s] for s in syms})], syms, [shown[idx]],
                f"{m.name} uses {', '.join(syms)} from namespace {ns} without importing it; "
                f"add MODULE_IMPORT_NS({ns});",
                namespace=ns, fix=f"MODULE_IMPORT_NS({ns});",
                kernel_log=[f"{m.name}: module uses symbol ({s}) from namespace {ns}, but does not import it."
                            for s in syms],
            ))
    return out


def _vermagic(tree: Tree, shown: list[str]) -> list[Finding]:
    out = []
    for m, path in zip(tree.modules, shown):
        vm = m.vermagic
        if not vm:
            continue
        release = vm.split(" ", 1)[0]
        if release != tree.version:
            out.append(_f("vermagic-mismatch", [m.name], [], [path],
                          f"{m.name} was built for kernel {release}, not {tree.version}",
                          vermagic=vm, expected_release=tree.version))
    return out


def _duplicate_exports(tree: Tree, res: Resolution, names: list[str], shown: list[str],
                       kernel: KernelSymbols | None) -> list[Finding]:
    users: dict[str, list[str]] = {}
    for m in tree.modules:
        for imp in m.imports:
            users.setdefault(imp.name[1:] if imp.name.startswith(".") else imp.name, []).append(m.name)
    out = []
    for sym, idxs in res.exporters.items():
        in_kernel = kernel is not None and sym in kernel.symbols
        if len(idxs) < 2 and not in_kernel:
            continue
        exporters = [names[i] for i in idxs]
        winner = names[idxs[-1]]
        all_exporters = (["vmlinux"] if in_kernel else []) + exporters
        affected = sorted(set(users.get(sym, ())))
        out.append(_f(
            "duplicate-export", [winner, *[e for e in all_exporters if e != winner]], [sym],
            [shown[i] for i in idxs],
            f"{sym} is exported by {', '.join(all_exporters)}; depmod binds it to {winner} (last in module order)"
            + (f"; used by {', '.join(affected)}" if affected else ""),
            exporters=all_exporters, bound_to=winner, affected=affected,
        ))
    return out


def _duplicate_modules(tree: Tree) -> list[Finding]:
    return [
        _f("duplicate-module", [d.name], [], [d.winner, *d.losers],
           f"module {d.name} exists in {1 + len(d.losers)} files; {d.winner} is used ({'; '.join(d.reasons)})",
           winner=d.winner, losers=list(d.losers), reasons=list(d.reasons))
        for d in tree.duplicates
    ]


def _stale_index(tree: Tree, res: Resolution) -> tuple[list[Finding], str | None]:
    if res.has_cycles:
        return [], "dependency cycles: depmod writes no index, so the on-disk indexes were not compared"
    from .depmod.run import render_files

    if not os.path.exists(f"{tree.dirname}/modules.dep"):
        return [_f("stale-index", [], [], ["modules.dep"],
                   "the tree has no modules.dep: modprobe cannot load anything; run depmod",
                   missing=["modules.dep"])], None
    files, _ = render_files(tree, res)
    stale = []
    missing = []
    for name, content in files:
        path = f"{tree.dirname}/{name}"
        try:
            with open(path, "rb") as fh:
                if fh.read() != content:
                    stale.append(name)
        except FileNotFoundError:
            missing.append(name)
        except OSError:
            stale.append(name)
    if not stale and not missing:
        return [], None
    what = ", ".join(stale + missing)
    return [_f("stale-index", [], [], stale + missing,
               f"on-disk index files differ from what depmod would write now: {what}; run depmod",
               stale=stale, missing=missing)], None


def _permanent(tree: Tree, shown: list[str]) -> list[Finding]:
    return [
        _f("permanent-module", [m.name], [], [path],
           f"{m.name} has an init function but no exit function: once loaded it can never be unloaded")
        for m, path in zip(tree.modules, shown) if m.error is None and m.permanent
    ]


def _order(tree: Tree, shown: list[str]) -> list[Finding]:
    if not tree.order_applied:
        return []
    return [
        _f("not-in-modules-order", [m.name], [], [path],
           f"{m.name} is not listed in modules.order: depmod places it after all listed modules")
        for m, path, f in zip(tree.modules, shown, tree.files)
        if m.name not in tree.order_listed
    ]
