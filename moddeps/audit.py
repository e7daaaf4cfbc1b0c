"""``moddeps audit``: everything depmod never says about a module tree.

:func:`audit_tree` returns an :class:`AuditResult` of :class:`Finding`
records; it prints nothing (see :mod:`moddeps.report.audit`).  Each finding
has a stable ``kind``; ``modules[0]`` is the module it is about.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from .findings import FINDING_KINDS, SEVERITIES, Finding
from .kernelsyms import kmod_kernel_table, read_text
from .model import Export, KernelSymbols, Module, crc_text, fsdecode
from .read.scan import Tree
from .records import dataclass
from .resolve import KERNEL, Resolution, ResolveOptions, resolve, strongly_connected_cycles
from .signature import UNDECODABLE, WEAK_HASHES, SigningPolicy, key_text, out_of_tree_path, signing_policy

#: The kernel's list (include/linux/license.h, license_is_gpl_compatible).
GPL_COMPATIBLE = frozenset(
    {"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL"}
)


#: Namespaces named ``module:LIST`` hold exports reserved for the modules LIST names.
MODULE_NS_PREFIX = "module:"


def module_namespace_allows(namespace: str, modname: str) -> bool:
    """Whether a ``module:`` namespace lets the module called ``modname`` (the
    kernel's ``mod->name``) use its symbols; False for any other namespace.

    Linux 6.16, kernel/module/main.c (verify_module_namespace): commit
    092a4f5985f2 "module: Add module specific symbol namespace support" made
    ``module:NAME`` mean "exported only to NAME"; "module: Extend the module
    namespace parsing" made the part after ``module:`` a comma-separated list
    whose items may end in ``*`` (a prefix match, the only glob); and "module:
    Account for the build time module name mangling" compares with
    ``mod_strncmp``, for which ``-`` and ``_`` are the same character
    (``EXPORT_SYMBOL_FOR_MODULES(sym, "kvm-amd")`` admits ``kvm_amd``).
    """
    if not namespace.startswith(MODULE_NS_PREFIX):
        return False
    name = modname.replace("-", "_")
    for pattern in namespace[len(MODULE_NS_PREFIX):].split(","):
        p = pattern.replace("-", "_")
        if p.endswith("*") and name.startswith(p[:-1]):
            return True
        if p and p == name:
            return True
    return False


def namespace_use_refused(namespace: str, modname: str, intree: bool) -> bool:
    """Whether the kernel refuses a module's use of a symbol in ``module:`` namespace ``namespace``.

    Besides the name, the module must be in-tree (modinfo ``intree=Y``):
    "module: Restrict module namespace access to in-tree modules" (Vlastimil
    Babka, July 2025, the series that renamed the macro to
    EXPORT_SYMBOL_FOR_MODULES).  An import (MODULE_IMPORT_NS) never helps:
    the kernel refuses a module that imports a ``module:`` namespace at all
    (kernel/module/main.c, setup_modinfo, -EPERM).
    """
    return not (intree and module_namespace_allows(namespace, modname))


def kernel_name(m: Module) -> str:
    """The name the kernel knows a module by (``mod->name``): modinfo ``name=``, else the file's module name."""
    return m.info_first("name") or m.name


def has_crcs(kernel: KernelSymbols) -> bool:
    """Whether a Module.symvers carries symbol versions: modpost writes 0x00000000
    for every symbol of a kernel built without CONFIG_MODVERSIONS."""
    return kernel.kind == "symvers" and any(s.crc for s in kernel.symbols.values())


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
    # Without CONFIG_MODVERSIONS modpost writes CRC 0 for every symbol and the
    # kernel checks none (kernel/module/internal.h: check_version is a stub
    # returning 1): a symbol list without CRCs cannot disagree with anyone.
    crcs = kernel is not None and has_crcs(kernel)
    if kernel is not None and kernel.kind == "symvers" and not crcs:
        notes.append(f"{kernel.source} has no CRCs (a kernel without CONFIG_MODVERSIONS): symbol versions against "
                     "the kernel were not checked")
    res = resolve(modules, full, ResolveOptions(kernel_table=kernel_table, check_crcs=crcs, warn=True))
    findings: list[Finding] = []
    findings += _cycles(tree, res, names, shown)
    findings += _broken(tree)
    # (exporter index, symbol) -> Export, shared by the checks that look at the bound export.
    # Namespace names kmod reads as exports (Export.pseudo) are not exports: kept
    # apart, so that an export of the same name is the one found.
    export_of: dict[tuple[int, str], Export] = {}
    for idx, m in enumerate(modules):
        for e in m.exports:
            if not e.pseudo or (idx, e.name) not in export_of:
                export_of[(idx, e.name)] = e
    if kernel is not None:
        unknown = list(res.unknown)
        pseudo = _pseudo_bound(tree, res, export_of, kernel_table or {})
        findings += _grouped(unknown, "unknown-symbol", names, shown, res, kernel,
                             "needs {n} symbol(s) that neither the kernel nor any module provides: {syms}")
        findings += _pseudo_findings(pseudo, names, shown)
        if crcs:
            findings += _crc_findings(res.mismatched, names, shown, tree, res, kernel)
    if (kernel is None or kernel.kind != "symvers" or crcs) and tree_modversions(tree) is not False:
        findings += _module_crc_mismatches(tree, res, names, shown, export_of,
                                           skip=set(res.mismatched) if kernel else set())
    findings += _licence_and_namespace(tree, res, names, shown, export_of, kernel)
    findings += _vermagic(tree, shown)
    findings += _duplicate_exports(tree, res, names, shown, kernel, export_of)
    findings += _duplicate_modules(tree)
    if check_index:
        f, note = _stale_index(tree, res)
        findings += f
        if note:
            notes.append(note)
    findings += _signatures(tree, shown)
    findings += _permanent(tree, shown)
    findings += _order(tree, shown)

    kind_rank = {k: i for i, k in enumerate(FINDING_KINDS)}
    findings.sort(key=lambda f: (SEVERITIES.index(f.severity), kind_rank[f.kind], f.modules, f.symbols))
    return AuditResult(
        tree=tree.dirname,
        kernel=tree.version,
        module_count=len(modules),
        findings=tuple(findings),
        notes=tuple(notes),
        kernel_symbols=kernel.source if kernel else None,
    )


def tree_modversions(tree: Tree) -> bool | None:
    """Whether the tree's kernel has CONFIG_MODVERSIONS, from the vermagic its
    own modules carry (include/linux/vermagic.h adds ``modversions`` to it);
    None when no module of the tree's release carries one."""
    magic = Counter(m.vermagic for m in tree.modules
                    if m.error is None and m.vermagic and m.vermagic.split(" ", 1)[0] == tree.version)
    if not magic:
        return None
    return "modversions" in magic.most_common(1)[0][0].split()


def _f(kind: str, modules: Sequence[str], symbols: Sequence[str], files: Sequence[str], message: str,
       **details: Any) -> Finding:
    return Finding(kind, FINDING_KINDS[kind], tuple(modules), tuple(symbols), tuple(files), message, details)


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


def _pseudo_bound(tree: Tree, res: Resolution, export_of: Mapping[tuple[int, str], Export],
                  kernel_table: Mapping[str, int]) -> dict[int, list[tuple[str, str]]]:
    """Imports that depmod binds to a namespace name (Export.pseudo) and that
    nothing exports for real: module index -> [(symbol, module depmod binds it to)].

    depmod does not warn about them (the name is in its table), but the
    kernel finds no such symbol and refuses the module (Unknown symbol).
    """
    out: dict[int, list[tuple[str, str]]] = {}
    for idx, m in enumerate(tree.modules):
        for imp in m.imports:
            if imp.versions_only or imp.weak:
                continue
            key = imp.name[1:] if imp.name.startswith(".") else imp.name
            found = res.owners.get(key)
            if found is None or found[0] == KERNEL or key in kernel_table:
                continue
            exp = export_of.get((found[0], key))
            if exp is not None and exp.pseudo:
                out.setdefault(idx, []).append((imp.name, tree.modules[found[0]].name))
    return out


def _pseudo_findings(pseudo: Mapping[int, list[tuple[str, str]]], names: list[str],
                     shown: list[str]) -> list[Finding]:
    out = []
    for idx, pairs in pseudo.items():
        syms = [s for s, _o in pairs]
        owners = sorted({o for _s, o in pairs})
        out.append(_f("unknown-symbol", [names[idx], *owners], syms, [shown[idx]],
                      f"{names[idx]} needs {len(syms)} symbol(s) that no module exports: {', '.join(syms)}; depmod "
                      f"binds them to {', '.join(owners)}, which only has a symbol namespace of that name (kmod reads "
                      "namespace names as exports when modules carry no CRCs)",
                      kernel_log=[f"{names[idx]}: Unknown symbol {s} (err -2)" for s in syms],
                      depmod_warns=False, namespace_named=dict(pairs)))
    return out


def _crc_findings(pairs: Sequence[tuple[int, str]], names: list[str], shown: list[str], tree: Tree,
                  res: Resolution, kernel: KernelSymbols) -> list[Finding]:
    by_mod: dict[int, list[str]] = {}
    for idx, sym in pairs:
        by_mod.setdefault(idx, []).append(sym)
    out = []
    for idx, all_syms in by_mod.items():
        mod = tree.modules[idx]
        wanted = {i.name: i.crc for i in mod.imports}
        # a CRC from the extended modversions tables (Linux 6.14+) is one the
        # kernel checks but kmod does not read: judge it by its real value
        ext = {i.name for i in mod.imports if i.ext_crc}
        syms = [s for s in all_syms
                if s not in ext or wanted.get(s) != res.owners.get(s.lstrip("."), (KERNEL, 0))[1]]
        if not syms:
            continue
        detail = []
        for s in syms:
            owner, crc = res.owners.get(s.lstrip("."), (KERNEL, 0))
            detail.append({"symbol": s, "module_crc": crc_text(wanted.get(s)), "provider_crc": crc_text(crc),
                           "provider": "vmlinux" if owner == KERNEL else names[owner]})
        if all(i.crc is None for i in mod.imports):
            # no __versions at all: check_version finds no record for the first
            # symbol it checks and calls try_to_force_load (kernel/module/version.c)
            out.append(_f("crc-mismatch", [names[idx]], syms, [shown[idx]],
                          f"{names[idx]} carries no symbol versions (built without CONFIG_MODVERSIONS) but the "
                          f"kernel's symbols have CRCs: depmod -E disagrees for {len(syms)} symbol(s), and the kernel "
                          "refuses the module unless forced loading is configured", symbols_detail=detail,
                          reason="no symbol versions", kernel_log=[]))
            continue
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
        kname = kernel_name(m)
        intree = bool(m.info_first("intree"))
        gpl_used: list[str] = []
        gpl_from: dict[str, str] = {}
        missing: dict[str, list[str]] = {}
        reserved: dict[str, list[str]] = {}
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
                if exp is not None and exp.pseudo:
                    continue  # a namespace name, not a symbol: see _pseudo_bound
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
            if ns and ns.startswith(MODULE_NS_PREFIX):
                # kernel/module/main.c, verify_namespace_is_imported: a module:
                # namespace admits the modules it names and no import helps
                if namespace_use_refused(ns, kname, intree):
                    reserved.setdefault(ns, []).append(imp.name)
                    provider_of[imp.name] = provider
            elif ns and ns not in imported:
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
        for ns, syms in reserved.items():
            out.append(_reserved_finding(m.name, kname, ns, syms, sorted({provider_of[s] for s in syms}),
                                         shown[idx]))
        for ns in dict.fromkeys(n for n in m.imported_namespaces if n.startswith(MODULE_NS_PREFIX)):
            out.append(_f(
                "namespace-reserved", [m.name], [], [shown[idx]],
                f"{m.name} imports the module namespace {ns} (MODULE_IMPORT_NS): such namespaces cannot be imported, "
                "the kernel refuses to load it",
                namespace=ns, reserved_for=reserved_for(ns), reason="explicit import",
                kernel_log=[f"{kname}: module tries to import module namespace: {ns}"],
            ))
    return out


def reserved_for(namespace: str) -> list[str]:
    """The module names (or ``prefix*`` patterns) a ``module:`` namespace lists."""
    return [p for p in namespace[len(MODULE_NS_PREFIX):].split(",") if p]


def reserved_message(name: str, kname: str, namespace: str, listed: str) -> str:
    """The text of a ``namespace-reserved`` finding about symbols used (audit and compat share it)."""
    allowed = ", ".join(reserved_for(namespace)) or "no module"
    if module_namespace_allows(namespace, kname):  # named, but not in-tree
        return (f"{name} uses {listed}: the export is reserved for in-tree modules named {allowed} (namespace "
                f"{namespace}) and {name} is out-of-tree; the kernel refuses it")
    return (f"{name} uses {listed}: the export is reserved for {allowed} (namespace {namespace}); the kernel refuses "
            "it, and no MODULE_IMPORT_NS can lift that")


def _reserved_finding(name: str, kname: str, ns: str, syms: list[str], providers: list[str],
                      shown: str) -> Finding:
    return _f(
        "namespace-reserved", [name, *providers], syms, [shown],
        reserved_message(name, kname, ns, ", ".join(syms)),
        namespace=ns, reserved_for=reserved_for(ns), reason="not listed" if
        not module_namespace_allows(ns, kname) else "out-of-tree",
        kernel_log=[f"{kname}: module uses symbol ({s}) from namespace {ns}, but does not import it." for s in syms],
    )


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
                       kernel: KernelSymbols | None, export_of: Mapping[tuple[int, str], Export]) -> list[Finding]:
    """Symbols exported more than once (by modules, or by a module and the kernel).

    Only real exports count: the namespace names kmod reads as exports
    (Export.pseudo) are not symbols, so a namespace used by many modules is
    no clash.  One case involving them is reported: when depmod binds a real
    export's users to a module that only has a namespace of that name.
    """
    users: dict[str, list[str]] = {}
    for m in tree.modules:
        for imp in m.imports:
            users.setdefault(imp.name[1:] if imp.name.startswith(".") else imp.name, []).append(m.name)
    out = []
    for sym, idxs in res.exporters.items():
        real = list(dict.fromkeys(i for i in idxs if not export_of[(i, sym)].pseudo))
        in_kernel = kernel is not None and sym in kernel.symbols
        bound = res.owners[sym][0]
        shadowed = bool(real) and bound not in real
        if not real or (len(real) < 2 and not in_kernel and not shadowed):
            continue
        exporters = [names[i] for i in real]
        winner = names[bound]
        all_exporters = (["vmlinux"] if in_kernel else []) + exporters
        affected = sorted(set(users.get(sym, ())))
        if shadowed:
            text = (f"{sym} is exported by {', '.join(all_exporters)}; depmod binds it to {winner}, which only has a "
                    "symbol namespace of that name (kmod reads namespace names as exports when modules carry no CRCs)")
        else:
            text = (f"{sym} is exported by {', '.join(all_exporters)}; depmod binds it to {winner} (last in module "
                    "order)")
        out.append(_f(
            "duplicate-export", [winner, *[e for e in all_exporters if e != winner]], [sym],
            [shown[i] for i in dict.fromkeys([*real, bound])],
            text + (f"; used by {', '.join(affected)}" if affected else ""),
            exporters=all_exporters, bound_to=winner, affected=affected,
            **({"bound_to_namespace_name": True} if shadowed else {}),
        ))
    return out


def _duplicate_modules(tree: Tree) -> list[Finding]:
    return [
        _f("duplicate-module", [d.name], [], [d.winner, *d.losers],
           f"module {d.name} exists in {1 + len(d.losers)} files; {d.winner} is used ({'; '.join(d.reasons)})",
           winner=d.winner, losers=list(d.losers), reasons=list(d.reasons))
        for d in tree.duplicates
    ]


def _render_current(tree: Tree, res: Resolution) -> list[tuple[str, bytes]]:
    """What depmod would write for the tree now, in the node layout of the
    tree's own ``modules.dep.bin`` where it tells (its root node right after
    the 12-byte header: kmod 34's pre-order; elsewhere: kmod 30 to 33's
    post-order), so that current indexes compare equal byte for byte and
    only differing ones are decoded (:func:`_same_index`)."""
    from .depmod.render import render_files
    from .kmodversion import KmodTarget

    try:
        with open(f"{tree.dirname}/modules.dep.bin", "rb") as fh:
            head = fh.read(12)
    except OSError:
        head = b""
    if len(head) < 12:
        return render_files(tree, res)[0]
    preorder = int.from_bytes(head[8:12], "big") & 0x0FFFFFFF == 12
    return render_files(tree, res, KmodTarget(34 if preorder else 30, "the layout of modules.dep.bin"))[0]


def _same_index(on_disk: bytes, expected: bytes) -> bool:
    """Whether two ``.bin`` indexes hold the same entries, whatever their node layout.

    kmod 30 to 33 write the trie nodes in post-order, kmod 34 in pre-order
    (tools/depmod.c, index_write: commit dada048cbf57 "depmod: Write index in
    pre-order", v34); both decode to the same (key, value, priority)
    sequence, in key order.  A file that does not decode is stale.
    """
    if on_disk == expected:
        return True
    from .errors import IndexFormatError
    from .index.read import Index

    try:
        return list(Index(on_disk).items()) == list(Index(expected).items())
    except IndexFormatError:
        return False


def _entries(text: bytes) -> list[bytes]:
    """The lines of a depmod text file that are not comments."""
    return [line for line in text.split(b"\n") if line and not line.startswith(b"#")]


def _stale_index(tree: Tree, res: Resolution) -> tuple[list[Finding], str | None]:
    """The on-disk outputs of depmod that do not say what it would write now.

    Compared by meaning, so that the files of any kmod release 30 to 34 that
    are current pass: text files byte for byte (their bytes are the same
    across these releases), ``.bin`` indexes by their decoded entries
    (:func:`_same_index`), and ``modules.weakdep`` only where the tree has
    one (kmod 33 introduced it and always writes it, a header alone when no
    module declares a weak dependency; kmod 30 to 32 never write it) and
    then by its non-comment lines.
    """
    from .depmod.writer import pending

    # a moddeps depmod stopped between two renames (moddeps.depmod.writer):
    # the files mix two runs until the next run completes the set
    interrupted = pending(tree.dirname)
    if interrupted:
        return [_f("stale-index", [], [], interrupted,
                   f"an interrupted moddeps depmod left {len(interrupted)} file(s) to rename into place "
                   f"({', '.join(interrupted)}): the on-disk files mix two runs; run moddeps depmod to complete them",
                   stale=interrupted, missing=[], interrupted=True)], None
    if res.has_cycles:
        return [], "dependency cycles: depmod writes no index, so the on-disk indexes were not compared"

    if not os.path.exists(f"{tree.dirname}/modules.dep"):
        return [_f("stale-index", [], [], ["modules.dep"],
                   "the tree has no modules.dep: modprobe cannot load anything; run depmod",
                   missing=["modules.dep"])], None
    files = dict(_render_current(tree, res))
    files.setdefault("modules.weakdep", b"")
    stale = []
    missing = []
    for name, content in files.items():
        path = f"{tree.dirname}/{name}"
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            if name != "modules.weakdep":
                missing.append(name)
            continue
        except OSError:
            stale.append(name)
            continue
        if name.endswith(".bin"):
            same = _same_index(data, content)
        elif name == "modules.weakdep":
            same = _entries(data) == _entries(content)
        else:
            same = data == content
        if not same:
            stale.append(name)
    if not stale and not missing:
        return [], None
    what = ", ".join(stale + missing)
    return [_f("stale-index", [], [], stale + missing,
               f"on-disk index files differ from what depmod would write now: {what}; run depmod",
               stale=stale, missing=missing)], None


def tree_signing_policy(tree: Tree) -> SigningPolicy:
    """The tree's :class:`~moddeps.signature.SigningPolicy` (its config, its in-tree modules' signatures)."""
    return signing_policy(tree.dirname, tree.version, [(f.relpath, m) for f, m in zip(tree.files, tree.modules)])


def _signatures(tree: Tree, shown: list[str]) -> list[Finding]:
    """``unsigned-module``, ``signer-mismatch`` and ``weak-signature-hash`` (see moddeps.signature's rules).

    Unsigned and foreign-key modules are reported only in a tree whose kernel
    checks signatures; an unsigned module is an error where the kernel
    enforces them (CONFIG_MODULE_SIG_FORCE=y), a warning otherwise (it loads
    and taints the kernel, and is refused under lockdown or
    module.sig_enforce=1).  A key other than the in-tree modules' is expected
    for out-of-tree modules (a DKMS or MOK key: info), not elsewhere (warning).
    """
    policy = tree_signing_policy(tree)
    out: list[Finding] = []
    trusted = key_text(*policy.key) if policy.key else None
    for m, f, path in zip(tree.modules, tree.files, shown):
        if m.error is not None:
            continue
        sig = m.signature
        oot = out_of_tree_path(f.relpath)
        kn = kernel_name(m)
        if sig is None:
            if not policy.checks:
                continue
            if policy.enforced:
                effect = "the kernel enforces signatures (CONFIG_MODULE_SIG_FORCE=y) and refuses it"
                # (module_sig_check runs before the module's name is known: the line names none)
                log = ["Loading of unsigned module is rejected"]
            else:
                effect = ("it loads but taints the kernel, and is refused under Secure Boot lockdown or "
                          "module.sig_enforce=1")
                log = [f"{kn}: module verification failed: signature and/or required key missing - tainting kernel"]
            out.append(Finding(
                "unsigned-module", "error" if policy.enforced else "warning", (m.name,), (), (path,),
                f"{m.name} is not signed, in a tree whose kernel checks module signatures ({policy.basis}): {effect}"
                + (f"; sign it with {trusted} or a key enrolled in the kernel's keyrings" if trusted else ""),
                {"basis": policy.basis, "enforced": policy.enforced, "out_of_tree": oot,
                 "expected_signer": policy.key[0] if policy.key else None,
                 "expected_key_id": policy.key[1] if policy.key else None, "kernel_log": log}))
            continue
        if policy.checks and policy.key is not None and not policy.trusts(sig):
            if sig.hash_algo == UNDECODABLE:
                what = "carries a signature that cannot be decoded (the kernel refuses it: EBADMSG)"
                severity = "warning"
            else:
                what = f"is signed by {key_text(sig.signer, sig.key_id)}"
                severity = "info" if oot else "warning"
            out.append(Finding(
                "signer-mismatch", severity, (m.name,), (), (path,),
                f"{m.name} {what}, not by {trusted}, the key of the tree's in-tree modules"
                + ("; expected for an out-of-tree module if that key is enrolled (MOK or secondary keyring)"
                   if oot and severity == "info" else ""),
                {"signer": sig.signer, "key_id": sig.key_id, "hash_algo": sig.hash_algo,
                 "expected_signer": policy.key[0], "expected_key_id": policy.key[1], "out_of_tree": oot}))
        if sig.hash_algo in WEAK_HASHES:
            out.append(Finding(
                "weak-signature-hash", "warning", (m.name,), (), (path,),
                f"{m.name} is signed with a {sig.hash_algo} digest, too weak to be trusted (collisions can be "
                f"made); sign it with sha256 or stronger",
                {"hash_algo": sig.hash_algo, "signer": sig.signer, "key_id": sig.key_id}))
    return out


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
