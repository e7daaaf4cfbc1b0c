"""``moddeps compat``: would these module files load on that kernel, and what would they break?

The FILES (out-of-tree or rebuilt modules: a DKMS build, a vendor driver, a
weak-updates candidate) are treated as installed into the target tree in a
directory searched first (``updates/`` by default), so they replace in-tree
modules of the same name exactly as depmod's search priority makes them do
(kmod tools/depmod.c:depmod_module_is_higher_priority@v34.2, and
docs/depmod-outputs.md#duplicate-names).  Then moddeps simulates what the kernel
checks when each file is loaded -- the steps of ``load_module`` in Linux 6.1
(kernel/module/main.c), in that order:

0. (modprobe) a name listed in ``modules.builtin`` is reported as built in
   and the file is never read;
1. ``elf_validity_check``: the ELF machine must be the kernel's
   (``Invalid architecture in ELF header: N``, ``-ENOEXEC``);
2. ``check_modstruct_version`` (kernel/module/version.c): the CRC of
   ``module_layout`` in ``__versions`` must be the kernel's
   (``disagrees about version of symbol module_layout``, ``-ENOEXEC``), and a
   module without ``__versions`` is refused unless forced loading is
   configured (``try_to_force_load``; Debian sets no CONFIG_MODULE_FORCE_LOAD);
3. ``check_modinfo``: the ``vermagic`` (``version magic 'X' should be 'Y'``,
   ``-ENOEXEC``; see :func:`vermagic_problem` for what is compared), then the
   licence taint;
4. ``simplify_symbols`` / ``resolve_symbol``: every undefined symbol must be
   exported by the kernel or a loaded module (``Unknown symbol X (err -2)``);
   GPL-only exports are invisible to modules whose licence is not
   GPL-compatible (``find_symbol`` with ``gplok`` false, so also err -2); the
   CRCs must agree where both sides carry one (``check_version``:
   ``disagrees about version of symbol X`` then ``Unknown symbol X (err
   -22)``); a namespaced export needs ``MODULE_IMPORT_NS``
   (``verify_namespace_is_imported``, err -22), except in a ``module:LIST``
   namespace (6.16+), which admits exactly the in-tree modules LIST names
   and which no module may import (``setup_modinfo`` refuses the import
   with -EPERM before symbols are resolved): ``namespace-reserved``;
   without CONFIG_MODVERSIONS (Debian's 7.x kernels) no CRC is compared at
   all and ``same_magic`` compares the whole vermagic, release included;
5. ``complete_formation`` / ``verify_exported_symbols``: a module may not
   export a symbol the kernel already exports
   (``exports duplicate symbol X (owned by kernel)``, ``-ENOEXEC``);
6. and modprobe loads dependencies first: a module that needs one which does
   not load does not load either (nor does a dependency cycle).

The *pairs* of ``unknown-symbol`` and ``crc-mismatch`` findings are exactly
the (module, symbol) pairs real ``depmod -e -E Module.symvers`` prints for
the target tree with the files added, minus those it already prints for the
tree without them (problems the files do not cause are counted in a note,
``moddeps audit`` reports them).  Where depmod and the kernel disagree --
depmod compares a missing CRC as 0, the kernel accepts it; depmod checks
``__versions`` records the kernel never looks up -- the pair is still
reported, as a *warning* that does not stop the load.  Two exceptions: a
module without any symbol version on a kernel that checks them gets one
finding (``check_modstruct_version`` finds no ``__versions`` and needs forced loading),
not one pair per symbol; and against a kernel without CONFIG_MODVERSIONS no
CRC pair is reported.  An import depmod binds to a namespace *name* (kmod
reads namespace names as exports from modules without CRCs) is an
``unknown-symbol`` that depmod does not print (``details.depmod_warns``
false).

A weak undefined symbol whose CRC disagrees is refused by the kernel but
ignored by depmod; it is not reported (pairs stay depmod's).  Not modelled:
taint inherited from a proprietary dependency (``inherit_taint``,
which can make a GPL module refuse or lose GPL-only symbols), parameters, and
anything ``init`` does.

Signatures (``module_integrity_check`` / ``module_sig_check``, the first step
of ``load_module``; the rules are restated in moddeps.signature): on a kernel
that checks them (CONFIG_MODULE_SIG=y in the target's config, or most in-tree
modules signed when there is no config), a file that is unsigned
(``unsigned-module``) or signed by a key other than the one of the in-tree
modules (``signer-mismatch``: the only key moddeps can know the kernel
trusts; a key enrolled through MOK is not visible in a tree) is refused when
signatures are enforced -- CONFIG_MODULE_SIG_FORCE=y, or
``enforce_signatures`` (``--enforce-signatures``), which models
``module.sig_enforce=1`` and Secure Boot lockdown alike -- with
``EKEYREJECTED``; otherwise it loads and taints the kernel (a warning).  A
signature that cannot be decoded is refused even then (``EBADMSG``).

Everything here is computed; nothing is printed (see :mod:`moddeps.report.compat`).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from .audit import (
    GPL_COMPATIBLE,
    MODULE_NS_PREFIX,
    has_crcs,
    kernel_name,
    module_namespace_allows,
    namespace_use_refused,
    reserved_for,
    reserved_message,
    tree_signing_policy,
)
from .errors import UsageError
from .findings import Finding
from .kernelsyms import kmod_kernel_table, load_kernel_symbols, read_text
from .kmodhash import hash_order
from .model import Export, KernelSymbols, Module, crc_text, fsdecode, fsencode
from .read.elfreader import machine_name, read_module_or_broken
from .read.scan import Tree
from .records import dataclass, field
from .resolve import KERNEL, Resolution, ResolveOptions, resolve, strongly_connected_cycles
from .signature import UNDECODABLE, SigningPolicy, key_text

#: Where the files are considered installed (kmod's default first search directory).
DEFAULT_SUBDIR = "updates"

#: Finding kinds compat reports, and their severity when the kernel refuses the module.
COMPAT_KINDS: dict[str, str] = {
    "broken-file": "error",
    "cycle": "error",
    "unknown-symbol": "error",
    "crc-mismatch": "error",
    "gpl-only-misuse": "error",
    "namespace-not-imported": "error",
    "namespace-reserved": "error",
    "vermagic-mismatch": "error",
    "duplicate-export": "error",
    "duplicate-module": "error",
    "unsigned-module": "error",
    "signer-mismatch": "error",
}

# Load stages, in the order of load_module() in kernel/module/main.c (6.1; _SETUP is
# setup_modinfo, which refuses module: imports since 6.16); modprobe's own checks come
# first (a built-in name) and last (dependencies, cycles).
# module_integrity_check (_SIG: the signature) comes before elf_validity_check.
_MODPROBE, _SIG, _ELF, _LAYOUT, _MODINFO, _SETUP, _SYMBOLS, _EXPORTS, _DEPS = range(-1, 8)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether one file loads on one kernel (``modprobe`` of it, dependencies first)."""

    file: str  # the path as given
    module: str
    kernel: str  # the target's release (its lib/modules directory name)
    loads: bool
    replaces: str | None = None  # the in-tree file it takes the place of (relative to the tree)
    reasons: tuple[str, ...] = ()  # finding kinds that stop it (and "dependency")
    errno: str | None = None  # what init_module(2) would fail with: ENOEXEC, ENOENT, EINVAL
    needs_failing: tuple[str, ...] = ()  # modules it needs that do not load
    breaks: tuple[str, ...] = ()  # in-tree modules that load now and would not with this file
    kernel_log: tuple[str, ...] = ()  # what the kernel logs when it is loaded (first failing step)
    #: the file's signature against the kernel's policy (see :class:`SignatureVerdict`)
    signature: SignatureVerdict | None = None
    #: what the verdict rests on (:data:`CHECKS`); what is missing is said in :attr:`summary`
    checked: tuple[str, ...] = ()
    #: the checks a "loads" could not make ("kernel symbols", "kernel CRCs")
    unchecked: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """The verdict in words: ``loads``, ``loads (kernel symbols unchecked)``, ``no: crc-mismatch``."""
        if not self.loads:
            return "no: " + ", ".join(self.reasons or ("dependency",))
        if self.unchecked:
            return f"loads ({' and '.join(self.unchecked)} unchecked)"
        return "loads"


#: The checks a verdict can rest on, in this order in ``Verdict.checked``:
#: symbols and CRCs between modules (always), symbols the kernel exports (a
#: kernel symbol list), their CRCs (a Module.symvers with CRCs, on a kernel
#: with MODVERSIONS), the vermagic (some module of the tree carries the
#: kernel's), signatures (the kernel checks them).
CHECKS = ("module-symbols", "kernel-symbols", "kernel-crcs", "vermagic", "signatures")


@dataclass(frozen=True, slots=True)
class SignatureVerdict:
    """What the target kernel makes of one file's signature."""

    #: "trusted" (the in-tree modules' key), "unsigned", "other-key", "undecodable",
    #: or "not-checked" (the kernel does not check signatures)
    status: str
    refused: bool  # the kernel refuses the file for its signature
    enforced: bool  # signatures are enforced (CONFIG_MODULE_SIG_FORCE=y or --enforce-signatures)
    signer: str | None = None  # the file's own signer and key id (None: unsigned)
    key_id: str | None = None
    hash_algo: str | None = None
    #: the key the kernel is known to trust (the in-tree modules'), None when no in-tree module is signed
    trusted_signer: str | None = None
    trusted_key_id: str | None = None


@dataclass(frozen=True, slots=True)
class CompatResult:
    """Compatibility of the files with one target kernel."""

    tree: str
    kernel: str
    kernel_symbols: str | None  # the Module.symvers / System.map used
    vermagic: str | None  # the kernel's vermagic (the one its modules carry)
    verdicts: tuple[Verdict, ...]
    findings: tuple[Finding, ...]  # the files' own problems, then the in-tree modules they break
    broken_in_tree: tuple[str, ...]  # in-tree modules that load now and would not with the files
    notes: tuple[str, ...] = ()
    preexisting: int = 0  # problems the tree already has without the files (not in findings)
    checked: tuple[str, ...] = ()  # what the verdicts rest on (:data:`CHECKS`)

    @property
    def loads(self) -> bool:
        return all(v.loads for v in self.verdicts)

    def exit_status(self) -> int:
        """0 when every file loads and breaks nothing, else 1."""
        return 0 if self.loads and not self.broken_in_tree else 1

    def depmod_pairs(self) -> set[tuple[str, str]]:
        """(module, symbol) of every unknown-symbol and crc-mismatch finding (depmod's warnings)."""
        return {
            (f.modules[0], s)
            for f in self.findings
            if f.kind in ("unknown-symbol", "crc-mismatch") and f.details.get("depmod_warns", True)
            for s in f.symbols
        }


def matrix_exit_status(results: Sequence[CompatResult]) -> int:
    return max((r.exit_status() for r in results), default=0)


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


def read_files(paths: Sequence[str]) -> list[Module]:
    """Read the candidate files (paths kept as given; unreadable ones get ``error`` set)."""
    return [read_module_or_broken(p) for p in paths]


def discover_kernel_symbols(dirname: str, basedir: str | None = None) -> KernelSymbols | None:
    """The kernel's symbol list for a module tree (:func:`find_kernel_symbols` without its notes)."""
    return find_kernel_symbols(dirname, basedir)[0]


def find_kernel_symbols(dirname: str, basedir: str | None = None) -> tuple[KernelSymbols | None, list[str]]:
    """The kernel's symbol list for a module tree, where distributions put it, and what to say about it.

    In order: ``DIR/build/Module.symvers`` (Debian's linux-headers package
    installs ``lib/modules/VER/build -> /usr/src/linux-headers-VER``, which
    holds it; an absolute link is followed inside ``basedir``),
    ``BASE/usr/src/linux-headers-VER/Module.symvers``, then
    ``BASE/boot/System.map-VER`` (no CRCs).  A file found that is not a real
    symbol list (Debian's 83-byte placeholder System.map, see
    :func:`moddeps.kernelsyms.validate`) is passed over with a note; the file
    used is named in a note too, since nobody asked for it.  None when
    nothing usable is found.
    """
    from .kernelsyms import KernelSymbolsError

    dirname = dirname.rstrip("/") or "/"
    version = os.path.basename(dirname)
    base = basedir
    if base is None:
        from .kmodnames import basedir_of

        base = basedir_of(dirname)  # also the root of a merged-/usr usr/lib/modules/VER
    candidates: list[tuple[str, str]] = []
    build = f"{dirname}/build"
    if os.path.islink(build):
        target = os.readlink(build)
        if os.path.isabs(target) and base:
            candidates.append((f"{base.rstrip('/')}{target}/Module.symvers", "symvers"))
        candidates.append((f"{os.path.join(dirname, target)}/Module.symvers", "symvers"))
    else:
        candidates.append((f"{build}/Module.symvers", "symvers"))
    if base is not None:
        b = base.rstrip("/")
        candidates.append((f"{b}/usr/src/linux-headers-{version}/Module.symvers", "symvers"))
        candidates.append((f"{b}/boot/System.map-{version}", "system.map"))
    notes: list[str] = []
    for path, kind in candidates:
        if os.path.isfile(path):
            try:
                found = load_kernel_symbols(path, kind)
            except KernelSymbolsError as exc:
                notes.append(f"{exc}; ignored")
                continue
            notes.append(f"kernel symbols for {dirname}: {path} (found; --symvers or --system-map to choose)")
            return found, notes
    return None, notes


def kernel_vermagic(tree: Tree) -> str | None:
    """The target kernel's vermagic, as its own modules carry it.

    ``VERMAGIC_STRING`` (include/linux/vermagic.h) is not in Module.symvers or
    System.map, but every module built with the kernel copies it into
    ``.modinfo``: the most common value among the modules whose release is the
    tree's wins (any module if none matches).
    """
    values = [m.vermagic for m in tree.modules if m.error is None and m.vermagic]
    same = [v for v in values if v.split(" ", 1)[0] == tree.version]
    pool = same or values
    if not pool:
        return None
    return Counter(pool).most_common(1)[0][0]


def _kernel_arch(tree: Tree) -> tuple[int, int, str] | None:
    archs = [(m.machine, m.elf_class, m.byte_order) for m in tree.modules if m.error is None]
    return Counter(archs).most_common(1)[0][0] if archs else None


# --------------------------------------------------------------------------
# Problems (one per module and symbol), then findings (grouped)
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Problem:
    kind: str
    idx: int  # index in the module array analysed
    symbol: str | None
    blocking: bool  # the kernel refuses the module
    stage: int
    log: tuple[str, ...]
    errno: str | None = None
    cause: str | None = None  # the providing module (attribution of in-tree breakage)
    detail: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


def _kname(m: Module) -> str:
    """The name the kernel logs: ``struct module``'s, i.e. modinfo ``name=`` (module name otherwise)."""
    return kernel_name(m)


def kernel_modversions(magic: str | None, kernel: KernelSymbols | None) -> bool | None:
    """Whether the target kernel has CONFIG_MODVERSIONS: from its vermagic
    (include/linux/vermagic.h appends ``modversions``), else from its
    Module.symvers (all CRCs 0 without it); None when nothing says."""
    if magic is not None:
        return "modversions" in magic.split()
    if kernel is not None and kernel.kind == "symvers":
        return has_crcs(kernel)
    return None


def _symbol_problems(
    modules: Sequence[Module],
    res: Resolution,
    kernel: KernelSymbols | None,
    *,
    kernel_known: bool,
    crc_checked: bool,
    modversions: bool | None = None,
) -> list[_Problem]:
    """Unknown symbols, CRC disagreements, GPL-only misuse, namespaces (kernel 6.1's resolve_symbol).

    ``modversions`` False (the kernel has no CONFIG_MODVERSIONS): check_version
    is a stub that accepts everything, so no CRC is compared.
    """
    export_of: dict[tuple[int, str], Export] = {}
    pseudo: set[tuple[int, str]] = set()  # namespace names kmod reads as exports (Export.pseudo)
    for idx, m in enumerate(modules):
        for e in m.exports:
            if not e.pseudo:
                export_of[(idx, e.name)] = e
            else:
                pseudo.add((idx, e.name))
    unknown = set(res.unknown)
    mismatched = set(res.mismatched)
    out: list[_Problem] = []
    for idx, m in enumerate(modules):
        if m.error is not None:
            continue
        kn = _kname(m)
        gpl_ok = m.license in GPL_COMPATIBLE
        imported = set(m.imported_namespaces)
        intree = bool(m.info_first("intree"))
        # a module without any symbol version, on a kernel that checks them, is refused once
        # (_file_problems, check_modstruct_version); its symbols add nothing to that
        versionless = modversions is not False and all(i.crc is None for i in m.imports)
        for imp in m.imports:
            name = imp.name
            key = name[1:] if name.startswith(".") else name
            if (idx, name) in unknown:
                if not kernel_known:
                    continue
                if imp.versions_only:
                    # Only a __versions record: the kernel looks records up by the
                    # name of an undefined symbol (check_version), never on their own.
                    out.append(_Problem("unknown-symbol", idx, name, False, _SYMBOLS, (), None, None,
                                        {"versions_only": True}))
                else:
                    out.append(_Problem("unknown-symbol", idx, name, True, _SYMBOLS,
                                        (f"{kn}: Unknown symbol {name} (err -2)",), "ENOENT"))
                continue
            found = res.owners.get(key)
            if found is None:
                continue
            owner, table_crc = found
            exp = export_of.get((owner, key)) if owner != KERNEL else None
            ks = kernel.symbols.get(key) if (owner == KERNEL and kernel is not None) else None
            provider = "vmlinux" if owner == KERNEL else modules[owner].name
            cause = None if owner == KERNEL else provider
            if exp is None and (owner, key) in pseudo:
                # depmod binds it to a namespace name; the kernel finds no such symbol
                if (kernel_known and not imp.weak and not imp.versions_only
                        and not (kernel is not None and key in kernel.symbols)):
                    out.append(_Problem("unknown-symbol", idx, name, True, _SYMBOLS,
                                        (f"{kn}: Unknown symbol {name} (err -2)",), "ENOENT", cause,
                                        {"depmod_binds_to": provider, "pseudo": True}))
                continue
            provider_crc: int | None = None
            if modversions is False or versionless:
                bad_crc = False
            elif crc_checked:
                provider_crc = table_crc if owner == KERNEL else (exp.crc if exp else None)
                if imp.ext_crc:
                    # a CRC from the extended modversions tables (6.14+): kmod does
                    # not read them, the kernel does -- compare the real one
                    bad_crc = provider_crc is not None and imp.crc != provider_crc
                else:
                    bad_crc = (idx, name) in mismatched
            else:
                provider_crc = exp.crc if exp is not None else None
                bad_crc = (not imp.weak and provider_crc is not None and imp.crc is not None
                           and provider_crc != imp.crc)
            if bad_crc:
                detail = {"symbol": name, "module_crc": crc_text(imp.crc), "provider_crc": crc_text(provider_crc),
                          "provider": provider}
                both = provider_crc is not None and imp.crc is not None
                if imp.versions_only:
                    if key == "module_layout":
                        # kernel/module/version.c, check_modstruct_version: load_module
                        # stops with -ENOEXEC before anything else is checked.
                        out.append(_Problem("crc-mismatch", idx, name, True, _LAYOUT,
                                            (f"{kn}: disagrees about version of symbol {name}",), "ENOEXEC",
                                            cause, detail))
                    else:
                        out.append(_Problem("crc-mismatch", idx, name, False, _SYMBOLS, (), None, cause,
                                            {**detail, "versions_only": True}))
                elif both:
                    out.append(_Problem("crc-mismatch", idx, name, True, _SYMBOLS,
                                        (f"{kn}: disagrees about version of symbol {name}",
                                         f"{kn}: Unknown symbol {name} (err -22)"), "EINVAL", cause, detail))
                else:
                    # check_version: an exporter without CRC is accepted silently; a
                    # symbol without a __versions record warns once and is accepted.
                    log = () if provider_crc is None else (f"{kn}: no symbol version for {name}",)
                    out.append(_Problem("crc-mismatch", idx, name, False, _SYMBOLS, log, None, cause, detail))
            if imp.versions_only:
                continue
            gpl_only = exp.gpl_only if exp is not None else (ks.gpl_only if ks is not None else False)
            ns = exp.namespace if exp is not None else (ks.namespace if ks is not None else None)
            if gpl_only and not gpl_ok:
                out.append(_Problem("gpl-only-misuse", idx, name, True, _SYMBOLS,
                                    (f"{kn}: Unknown symbol {name} (err -2)",), "ENOENT", cause,
                                    {"symbol": name, "provider": provider, "license": m.license}))
            if ns and ns.startswith(MODULE_NS_PREFIX):
                # verify_namespace_is_imported (6.16+): only the modules it names
                if namespace_use_refused(ns, kn, intree):
                    out.append(_Problem("namespace-reserved", idx, name, True, _SYMBOLS,
                                        (f"{kn}: module uses symbol ({name}) from namespace {ns}, but does not "
                                         "import it.", f"{kn}: Unknown symbol {name} (err -22)"), "EINVAL", cause,
                                        {"symbol": name, "provider": provider, "namespace": ns}))
            elif ns and ns not in imported:
                out.append(_Problem("namespace-not-imported", idx, name, True, _SYMBOLS,
                                    (f"{kn}: module uses symbol ({name}) from namespace {ns}, but does not "
                                     "import it.", f"{kn}: Unknown symbol {name} (err -22)"), "EINVAL", cause,
                                    {"symbol": name, "provider": provider, "namespace": ns}))
    return out


def _cycle_problems(modules: Sequence[Module], res: Resolution, wanted: set[int] | None) -> list[_Problem]:
    """Every module on a dependency cycle (modprobe cannot order them; depmod writes nothing)."""
    out = []
    for comp in strongly_connected_cycles(res.deps):
        if wanted is not None and not wanted.intersection(comp):
            continue
        names = [modules[i].name for i in comp]
        for i in comp:
            out.append(_Problem("cycle", i, None, True, _DEPS, (), None, None, {"component": names}))
    return out


def vermagic_problem(m: Module, kernel_magic: str | None, release: str,
                     idx: int = 0, modversions: bool | None = None) -> _Problem | None:
    """The vermagic check of ``check_modinfo`` (kernel/module/main.c, 6.1).

    ``same_magic`` (kernel/module/version.c) compares the whole strings,
    except when the kernel has CONFIG_MODVERSIONS and the module has a
    ``__versions`` section (``has_crcs``): then both are compared from their
    first space on, i.e. *without the release*, because the symbol CRCs
    already say whether the module fits.  That is what lets a module built
    for 6.1.0-47 load on 6.1.0-50 (Debian's ABI bumps, RHEL's weak-updates).
    A release-only difference is therefore an ``info`` finding when the rest
    agrees and symbol versions are checked, an ``error`` otherwise.
    ``kernel_magic`` None (no module of the tree carries one): only the
    release can be compared, and a different one is accepted only if the
    module has symbol versions and the kernel is not known to lack
    CONFIG_MODVERSIONS (``modversions`` False, e.g. its Module.symvers has no
    CRCs): without it ``same_magic`` is a plain strcmp of the whole strings
    (kernel/module/internal.h, the !CONFIG_MODVERSIONS stubs).
    """
    kn = _kname(m)
    vm = m.vermagic
    name = m.name
    has_versions = any(i.crc is not None for i in m.imports)
    if not vm:
        # try_to_force_load(mod, "bad vermagic") fails without CONFIG_MODULE_FORCE_LOAD.
        return _Problem("vermagic-mismatch", idx, None, True, _MODINFO, (), "ENOEXEC", None,
                        {"vermagic": None, "expected": kernel_magic, "release_only": False,
                         "message": f"{name} has no vermagic: the kernel refuses it unless forced loading is "
                                    "allowed"})
    mod_release = vm.split(" ", 1)[0]
    if kernel_magic is None:
        if mod_release == release:
            return None
        if has_versions and modversions is not False:
            return _Problem("vermagic-mismatch", idx, None, False, _MODINFO, (), None, None,
                            {"vermagic": vm, "expected": None, "release_only": True,
                             "message": f"{name} was built for {mod_release}, not {release}: accepted, the "
                                        "kernel compares symbol versions instead of the release"})
        return _Problem("vermagic-mismatch", idx, None, True, _MODINFO, (), "ENOEXEC", None,
                        {"vermagic": vm, "expected": None, "release_only": False,
                         "message": f"{name} was built for kernel {mod_release}, not {release}, and "
                                    + ("the kernel has no symbol versions (CONFIG_MODVERSIONS off)" if has_versions
                                       else "has no symbol versions")
                                    + ": the kernel compares the whole vermagic"})
    modversions = "modversions" in kernel_magic.split()
    tail_only = modversions and has_versions
    k_release = kernel_magic.split(" ", 1)[0]
    mod_cmp = vm[len(mod_release):] if tail_only else vm
    k_cmp = kernel_magic[len(k_release):] if tail_only else kernel_magic
    if mod_cmp == k_cmp:
        if vm == kernel_magic:
            return None
        return _Problem("vermagic-mismatch", idx, None, False, _MODINFO, (), None, None,
                        {"vermagic": vm, "expected": kernel_magic, "release_only": True,
                         "message": f"{name} was built for {mod_release}, not {k_release}: accepted, the kernel "
                                    "compares symbol versions (CONFIG_MODVERSIONS) instead of the release"})
    return _Problem("vermagic-mismatch", idx, None, True, _MODINFO,
                    (f"{kn}: version magic '{vm}' should be '{kernel_magic}'",), "ENOEXEC", None,
                    {"vermagic": vm, "expected": kernel_magic, "release_only": False,
                     "compared": "after the release" if tail_only else "whole string",
                     "message": f"{name} has vermagic {vm.strip()!r}, the kernel {kernel_magic.strip()!r}"
                                + (" (compared after the release)" if tail_only else "")})


def _arch(machine: int, elf_class: int, byte_order: str) -> str:
    return f"{machine_name(machine)} ELF{elf_class} {byte_order}-endian"


def _file_problems(m: Module, idx: int, kernel_magic: str | None, arch: tuple[int, int, str] | None,
                   release: str, kernel: KernelSymbols | None, builtin: frozenset[str],
                   modversions: bool | None = None) -> list[_Problem]:
    """What only the files are checked for: readability, architecture, module_layout, vermagic, duplicates."""
    kn = _kname(m)
    out: list[_Problem] = []
    if m.name in builtin:
        # kmod's modprobe finds the name in modules.builtin(.bin) and reports
        # success ("Module X is builtin" with -v) without ever reading the file.
        out.append(_Problem("duplicate-module", idx, None, True, _MODPROBE, (), None, None,
                            {"builtin": True, "message": f"{m.name} is built into the kernel (modules.builtin): "
                                                         "modprobe never loads this file"}))
    if m.error is not None:
        return [*out, _Problem("broken-file", idx, None, True, _ELF, (), "ENOEXEC", None, {"reason": m.error})]
    if arch is not None and (m.machine, m.elf_class, m.byte_order) != arch:
        out.append(_Problem("vermagic-mismatch", idx, None, True, _ELF,
                            (f"Invalid architecture in ELF header: {m.machine}",), "ENOEXEC", None,
                            {"reason": "architecture", "module_arch": _arch(m.machine, m.elf_class, m.byte_order),
                             "kernel_arch": _arch(*arch),
                             "message": f"{m.name} is built for {_arch(m.machine, m.elf_class, m.byte_order)}, "
                                        f"the kernel's modules for {_arch(*arch)}"}))
    modversions = kernel_magic is not None and "modversions" in kernel_magic.split()
    if modversions and not any(i.crc is not None for i in m.imports):
        # check_modstruct_version -> check_version with no __versions section:
        # try_to_force_load() fails (no message) without CONFIG_MODULE_FORCE_LOAD.
        out.append(_Problem("vermagic-mismatch", idx, None, True, _LAYOUT, (), "ENOEXEC", None,
                            {"reason": "no symbol versions",
                             "message": f"{m.name} has no __versions section (built without CONFIG_MODVERSIONS) and "
                                        "the kernel checks symbol versions: refused unless forced loading is "
                                        "allowed"}))
    vp = vermagic_problem(m, kernel_magic, release, idx, modversions)
    if vp is not None:
        out.append(vp)
    for ns in dict.fromkeys(n for n in m.imported_namespaces if n.startswith(MODULE_NS_PREFIX)):
        # kernel/module/main.c, setup_modinfo (6.16+): module: namespaces are
        # implicit; importing one is refused before any symbol is resolved
        out.append(_Problem("namespace-reserved", idx, None, True, _SETUP,
                            (f"{kn}: module tries to import module namespace: {ns}",), "EPERM", None,
                            {"namespace": ns, "reason": "explicit import"}))
    if kernel is not None:
        for e in m.exports:
            if not e.pseudo and e.name in kernel.symbols:
                out.append(_Problem("duplicate-export", idx, e.name, True, _EXPORTS,
                                    (f"{kn}: exports duplicate symbol {e.name} (owned by kernel)",), "ENOEXEC",
                                    None, {"symbol": e.name, "provider": "vmlinux"}))
    return out


# --------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------


def _compose(target: Tree, files: Sequence[Module], shown: Sequence[str],
             subdir: str) -> tuple[list[Module], list[str], list[int], dict[str, str]]:
    """depmod's module array of the target with the files installed in ``subdir/``.

    Same-named tree modules leave the array (kmod keeps one file per name).
    The files are not in ``modules.order`` (no line names ``subdir/x.ko``),
    so, as in kmod's stable sort (tools/depmod.c, depmod_modules_sort), the
    listed tree modules keep their order and everything unlisted follows in
    kmod's hash-table order.  Returns (modules, shown paths, index of each
    file, replaced name -> tree path).
    """
    names = {m.name for m in files}
    replaced = {m.name: f.shown for m, f in zip(target.modules, target.files) if m.name in names}
    listed: list[tuple[Module, str]] = []
    rest: dict[bytes, tuple[Module, str]] = {}
    for m, f in zip(target.modules, target.files):
        if m.name in names:
            continue
        if target.order_applied and m.name in target.order_listed:
            listed.append((m, f.shown))
        else:
            rest[fsencode(m.name)] = (m, f.shown)
    for m, path in zip(files, shown):
        rest[fsencode(m.name)] = (m, f"{subdir}/{os.path.basename(path)}")
    array = listed + [rest[k] for k in hash_order(rest, 512)]
    pos = {m.name: i for i, (m, _s) in enumerate(array)}
    return [m for m, _s in array], [s for _m, s in array], [pos[m.name] for m in files], replaced


def _kernel_table(kernel: KernelSymbols | None) -> dict[str, int] | None:
    if kernel is None:
        return None
    # kmod's own reading of the file, so the pairs equal depmod -e -E/-F's
    raw, _msgs = kmod_kernel_table(read_text(kernel.source), kernel.source, kernel.kind)
    return {fsdecode(k): v for k, v in raw.items()}


def _failing(deps: Sequence[Sequence[int]], blocked: set[int]) -> dict[int, int | None]:
    """Modules that cannot be loaded: the blocked ones (-> None) and, through
    modprobe's dependencies-first loading, everything that needs one (-> the
    dependency that fails)."""
    users: list[list[int]] = [[] for _ in deps]
    for i, ds in enumerate(deps):
        for d in ds:
            users[d].append(i)
    out: dict[int, int | None] = dict.fromkeys(blocked)
    todo = sorted(blocked)
    while todo:
        x = todo.pop()
        for u in users[x]:
            if u not in out:
                out[u] = x
                todo.append(u)
    return out


def _reach(deps: Sequence[Sequence[int]], start: int) -> set[int]:
    seen: set[int] = set()
    todo = list(deps[start])
    while todo:
        x = todo.pop()
        if x not in seen:
            seen.add(x)
            todo.extend(deps[x])
    return seen


def compat_check(
    files: Sequence[str | Module],
    target: Tree,
    kernel: KernelSymbols | None,
    *,
    subdir: str = DEFAULT_SUBDIR,
    enforce_signatures: bool = False,
) -> CompatResult:
    """Check ``files`` (paths, or modules already read) against the ``target`` tree and its kernel's symbols.

    ``enforce_signatures`` models a kernel that refuses modules without a
    trusted signature although its config does not force it: booted with
    ``module.sig_enforce=1``, or locked down (Secure Boot).
    """
    mods: list[Module] = []
    shown: list[str] = []
    for f in files:
        m = f if isinstance(f, Module) else read_module_or_broken(f)
        mods.append(m)
        shown.append(m.path)
    seen: dict[str, str] = {}
    for m, given in zip(mods, shown):
        if m.name in seen:
            raise UsageError(f"{seen[m.name]} and {given} are the same module ({m.name}): give one of them")
        seen[m.name] = given

    table = _kernel_table(kernel)
    magic = kernel_vermagic(target)
    modversions = kernel_modversions(magic, kernel)
    crc_checked = kernel is not None and has_crcs(kernel) and modversions is not False
    opts = ResolveOptions(kernel_table=table, check_crcs=crc_checked)
    comp, comp_shown, file_idx, replaced = _compose(target, mods, shown, subdir)
    res = resolve(comp, comp_shown, opts)
    pristine = list(target.modules)
    pres = resolve(pristine, [f.shown for f in target.files], opts)
    file_set = set(file_idx)
    file_names = {m.name for m in mods}

    # --- problems with the files installed, and without them
    problems = _symbol_problems(comp, res, kernel, kernel_known=table is not None, crc_checked=crc_checked,
                                modversions=modversions)
    problems += _cycle_problems(comp, res, None)
    arch = _kernel_arch(target)
    builtin = frozenset(target.builtin)
    policy = tree_signing_policy(target)
    enforced = policy.checks and (policy.enforced or enforce_signatures)
    checked = tuple(c for c, done in zip(CHECKS, (True, kernel is not None, crc_checked, magic is not None,
                                                  policy.checks)) if done)
    unchecked: tuple[str, ...] = ()
    if kernel is None:
        unchecked = ("kernel symbols",)
    elif not crc_checked and modversions is not False:
        unchecked = ("kernel CRCs",)
    sig_verdicts: dict[int, SignatureVerdict] = {}
    for i in file_idx:
        problems += _file_problems(comp[i], i, magic, arch, target.version, kernel, builtin, modversions)
        if comp[i].error is None:
            sv, sp = _signature_problem(comp[i], i, policy, enforced, enforce_signatures)
            sig_verdicts[i] = sv
            problems += sp
    before = _symbol_problems(pristine, pres, kernel, kernel_known=table is not None, crc_checked=crc_checked,
                              modversions=modversions)
    before += _cycle_problems(pristine, pres, None)
    before_keys = {(p.kind, pristine[p.idx].name, p.symbol) for p in before}

    # in-tree problems that exist without the files are not the files' doing
    own = [p for p in problems if p.idx in file_set]
    new_in_tree = [p for p in problems
                   if p.idx not in file_set and (p.kind, comp[p.idx].name, p.symbol) not in before_keys]
    preexisting = sum(1 for p in problems if p.idx not in file_set) - len(new_in_tree)
    # unknown symbols the replaced module used to provide: attribute them to its replacement
    if replaced:
        owner_before = {k: pristine[v[0]].name for k, v in pres.owners.items() if v[0] != KERNEL}
        new_in_tree = [
            _Problem(p.kind, p.idx, p.symbol, p.blocking, p.stage, p.log, p.errno,
                     owner_before.get((p.symbol or "").lstrip(".")), p.detail)
            if p.kind == "unknown-symbol" and p.cause is None else p
            for p in new_in_tree
        ]

    # --- who loads (dependencies first, as modprobe does)
    fails = _failing(res.deps, {p.idx for p in problems if p.blocking})
    fails_before = _failing(pres.deps, {p.idx for p in before if p.blocking})
    failed_before_names = {pristine[i].name for i in fails_before}
    broken_idx = [i for i in fails if i not in file_set and comp[i].name not in failed_before_names
                  and comp[i].name not in file_names]

    reach_of_broken = {b: _reach(res.deps, b) for b in broken_idx}
    causes_of: dict[int, set[str]] = {}
    for p in new_in_tree:
        if p.cause is not None:
            causes_of.setdefault(p.idx, set()).add(p.cause)
    verdicts = []
    for m, path, i in zip(mods, shown, file_idx):
        mine = sorted((p for p in own if p.idx == i), key=lambda p: p.stage)
        blocking = [p for p in mine if p.blocking]
        reasons = list(dict.fromkeys(p.kind for p in blocking))
        needs = sorted({comp[d].name for d in _reach(res.deps, i) if d in fails and d != i})
        if i in fails and not blocking:
            reasons.append("dependency")
        log: list[str] = []
        errno: str | None = None
        if blocking:
            # the kernel stops at the first step that fails: log what it logs up to there
            first = blocking[0].stage
            if _SETUP <= first <= _EXPORTS:  # check_modinfo passed
                log += _taint_lines(m)
            for p in mine:
                if p.stage == first or (p.stage < first and not p.blocking):
                    log += p.log
            # simplify_symbols returns the error of the last symbol that failed
            errno = [p.errno for p in blocking if p.stage == first][-1]
        elif i not in fails:
            log += _taint_lines(m)
            for p in mine:
                log += p.log
        # in-tree modules that stop loading because of this file: they need it (and it fails), or
        # their new problems are with its exports -- and, as modprobe loads dependencies first, every
        # in-tree module that needs one of those (so that the rows add up to the headline's count)
        direct = {b for b in broken_idx if m.name in causes_of.get(b, ())}
        if i in fails:
            direct.add(i)
        breaks = sorted({comp[b].name for b in broken_idx if b in direct or not direct.isdisjoint(reach_of_broken[b])})
        verdicts.append(Verdict(
            file=path, module=m.name, kernel=target.version, loads=i not in fails,
            replaces=replaced.get(m.name), reasons=tuple(reasons), errno=errno,
            needs_failing=tuple(needs), breaks=tuple(breaks), kernel_log=tuple(log),
            signature=sig_verdicts.get(i), checked=checked, unchecked=unchecked,
        ))

    findings = _findings(own, comp, comp_shown, shown, file_idx, replaced, "file")
    findings += _findings(new_in_tree, comp, comp_shown, shown, file_idx, replaced, "in-tree")

    notes = []
    if modversions is False:
        notes.append("the kernel has no CONFIG_MODVERSIONS (no CRCs): symbol versions are not checked, and the whole "
                     "vermagic, release included, must be the kernel's")
    elif kernel is None:
        notes.append("no kernel symbol list (Module.symvers or System.map): symbols only the kernel provides were "
                     "not checked, CRCs only between modules")
    elif not crc_checked and kernel.kind == "symvers":
        notes.append(f"{kernel.source} has no CRCs: symbol versions against the kernel were not checked")
    elif not crc_checked:
        notes.append(f"{kernel.source} is a System.map: it has no CRCs, symbol versions against the kernel were "
                     "not checked")
    if magic is None:
        notes.append("no module of the tree carries a vermagic: only the release was compared")
    if not policy.checks:
        notes.append(f"the kernel does not check module signatures ({policy.basis}): signatures were not judged")
    elif enforce_signatures and not policy.enforced:
        notes.append("signatures enforced as with module.sig_enforce=1 or Secure Boot lockdown (--enforce-signatures)")
    if preexisting:
        notes.append(f"the tree already has {preexisting} problem(s) the files do not cause; they are not listed "
                     "here (see moddeps audit)")
    return CompatResult(
        tree=target.dirname, kernel=target.version, kernel_symbols=kernel.source if kernel else None,
        vermagic=magic, verdicts=tuple(verdicts), findings=tuple(findings),
        broken_in_tree=tuple(sorted(comp[i].name for i in broken_idx)), notes=tuple(notes),
        preexisting=preexisting, checked=checked,
    )


def compat_matrix(
    files: Sequence[str | Module],
    targets: Sequence[tuple[Tree, KernelSymbols | None]],
    *,
    subdir: str = DEFAULT_SUBDIR,
    enforce_signatures: bool = False,
) -> list[CompatResult]:
    """:func:`compat_check` of the same files against several kernels (read once)."""
    mods = [f if isinstance(f, Module) else read_module_or_broken(f) for f in files]
    return [compat_check(mods, tree, kernel, subdir=subdir, enforce_signatures=enforce_signatures)
            for tree, kernel in targets]


def _signature_problem(m: Module, idx: int, policy: SigningPolicy, enforced: bool,
                       forced_by_option: bool) -> tuple[SignatureVerdict, list[_Problem]]:
    """What module_sig_check makes of a file's signature on the target kernel (moddeps.signature's rules)."""
    sig = m.signature
    kn = _kname(m)
    trusted = policy.key
    base = {"trusted_signer": trusted[0] if trusted else None, "trusted_key_id": trusted[1] if trusted else None}
    own = ({"signer": sig.signer, "key_id": sig.key_id, "hash_algo": sig.hash_algo} if sig is not None else {})
    if not policy.checks:
        return SignatureVerdict("not-checked", False, False, **own, **base), []
    if sig is not None and policy.trusts(sig):
        return SignatureVerdict("trusted", False, enforced, **own, **base), []
    if sig is None:
        status, kind, reason = "unsigned", "unsigned-module", "unsigned module"
    elif sig.hash_algo == UNDECODABLE:
        status, kind, reason = "undecodable", "signer-mismatch", ""
    else:
        status, kind, reason = "other-key", "signer-mismatch", "module with unavailable key"
    why = ("CONFIG_MODULE_SIG_FORCE=y" if policy.enforced else
           "module.sig_enforce=1 or Secure Boot lockdown (--enforce-signatures)" if forced_by_option else "")
    log: tuple[str, ...]
    if status == "undecodable":
        # mod_verify_sig fails with -EBADMSG: fatal whatever is enforced
        refused, errno, log = True, "EBADMSG", ()
    elif enforced:
        # (module_sig_check runs before the module's name is known: the line names none)
        refused, errno, log = True, "EKEYREJECTED", (f"Loading of {reason} is rejected",)
    else:
        refused, errno = False, None
        log = (f"{kn}: module verification failed: signature and/or required key missing - tainting kernel",)
    verdict = SignatureVerdict(status, refused, enforced, **own, **base)
    detail: dict[str, Any] = {"status": status, "enforced": enforced, "enforced_by": why or None, **own, **base,
                              "basis": policy.basis}
    if forced_by_option and not policy.enforced and refused and status != "undecodable":
        # under lockdown (not sig_enforce) the refusal is security_locked_down's, -EPERM
        # (security/lockdown/lockdown.c, lockdown_reasons[LOCKDOWN_MODULE_SIGNATURE])
        detail["lockdown_log"] = ["Lockdown: modprobe: unsigned module loading is restricted; "
                                  "see man kernel_lockdown.7"]
        detail["lockdown_errno"] = "EPERM"
    return verdict, [_Problem(kind, idx, None, refused, _SIG, log, errno, None, detail)]


def _taint_lines(m: Module) -> list[str]:
    """What check_modinfo logs for a module that passes it (kernel/module/main.c, 6.1)."""
    kn = _kname(m)
    out = []
    if not m.info_first("intree"):
        out.append(f"{kn}: loading out-of-tree module taints kernel.")
    licence = m.license
    if licence not in GPL_COMPATIBLE:
        # set_license(): a missing licence is "unspecified"
        out.append(f"{kn}: module license '{licence or 'unspecified'}' taints kernel.")
    return out


# --------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------


def _signature_message(name: str, d: Mapping[str, Any], blocking: bool) -> str:
    trusted = (key_text(str(d["trusted_signer"]), str(d["trusted_key_id"])) if d.get("trusted_signer") is not None
               else None)
    if d["status"] == "unsigned":
        what = f"{name} is not signed"
    elif d["status"] == "undecodable":
        return f"{name} carries a signature that cannot be decoded: the kernel refuses it (EBADMSG) in any case"
    else:
        what = f"{name} is signed by {key_text(str(d['signer']), str(d['key_id']))}"
    if blocking:
        text = f"{what}: refused, the kernel enforces signatures ({d['enforced_by']})"
    else:
        text = (f"{what}: it loads but taints the kernel; refused with module.sig_enforce=1 or under Secure Boot "
                "lockdown")
    if trusted:
        text += f"; the kernel trusts {trusted} (the in-tree modules' key)"
        if d["status"] == "other-key":
            text += ", or its own key once enrolled (MOK or the secondary keyring)"
    return text


def _findings(problems: Sequence[_Problem], comp: Sequence[Module], comp_shown: Sequence[str],
              file_paths: Sequence[str], file_idx: Sequence[int], replaced: Mapping[str, str],
              scope: str) -> list[Finding]:
    """Audit-style findings: one per module, kind and severity (and namespace); one per cycle."""
    path_of = dict(zip(file_idx, file_paths))
    out: list[Finding] = []
    cycles: dict[tuple[str, ...], list[int]] = {}
    groups: dict[tuple[int, str, bool, str], list[_Problem]] = {}
    for p in problems:
        if p.kind == "cycle":
            cycles.setdefault(tuple(p.detail["component"]), []).append(p.idx)
            continue
        # one finding per namespace, and apart: a namespace imported, names depmod binds to namespace names
        if p.kind in ("namespace-not-imported", "namespace-reserved"):
            variant = str(p.detail.get("namespace") or "") + ("\0import" if p.symbol is None else "")
        else:
            variant = "\0pseudo" if p.detail.get("pseudo") else ""
        groups.setdefault((p.idx, p.kind, p.blocking, variant), []).append(p)
    where = "" if scope == "file" else " (in the tree)"
    for (idx, kind, blocking, variant), ps in groups.items():
        ns = variant.split("\0", 1)[0]
        m = comp[idx]
        name = m.name
        shown = path_of.get(idx, comp_shown[idx])
        syms = [p.symbol for p in ps if p.symbol is not None]
        providers = sorted({str(p.detail["provider"]) for p in ps
                            if p.detail.get("provider") not in (None, "vmlinux")})
        causes = sorted({p.cause for p in ps if p.cause})
        severity = COMPAT_KINDS[kind] if blocking else "warning"
        details: dict[str, Any] = {"scope": scope, "blocks_load": blocking,
                                   "kernel_log": [line for p in ps for line in p.log]}
        if scope == "in-tree" and causes:
            details["caused_by"] = causes
        # long lists (an ABI bump changes every CRC) are cut in the message; ``symbols`` has them all
        listed = ", ".join(syms[:10]) + (f" and {len(syms) - 10} more" if len(syms) > 10 else "")
        if kind == "unknown-symbol" and variant == "\0pseudo":
            msg = (f"{name}{where} needs {len(syms)} symbol(s) that no module exports: {listed}; depmod binds them "
                   f"to {', '.join(causes)}, which only has a symbol namespace of that name (kmod reads namespace "
                   "names as exports when modules carry no CRCs)")
            details["depmod_warns"] = False
            details["namespace_named"] = {str(p.symbol): p.detail["depmod_binds_to"] for p in ps}
        elif kind == "unknown-symbol":
            if scope == "in-tree" and causes:
                msg = (f"{name}{where} needs {len(syms)} symbol(s) that {', '.join(causes)} exported and its "
                       f"replacement does not: {listed}")
            else:
                msg = f"{name}{where} needs {len(syms)} symbol(s) that neither the kernel nor any module provides: " \
                      f"{listed}"
            if not blocking:
                msg += " (__versions records only: depmod warns, the kernel never looks them up)"
        elif kind == "crc-mismatch":
            against = f" than {', '.join(providers)} provides" if scope == "in-tree" and providers else ""
            msg = f"{name}{where} was built against other versions of {len(syms)} symbol(s){against}: {listed}"
            if not blocking:
                msg += " (one side has no CRC, or a __versions record alone: depmod warns, the kernel loads it)"
            details["symbols_detail"] = [dict(p.detail) for p in ps]
        elif kind == "gpl-only-misuse":
            licence = m.license
            msg = (f"{name}{where} (license {licence!r}, not GPL-compatible) uses GPL-only symbol(s) {listed}: "
                   "the kernel refuses to load it")
            details["license"] = licence
            details["providers"] = {str(p.symbol): p.detail.get("provider") for p in ps}
        elif kind == "namespace-not-imported":
            msg = (f"{name}{where} uses {listed} from namespace {ns} without importing it; "
                   f"add MODULE_IMPORT_NS({ns});")
            details["namespace"] = ns
            details["fix"] = f"MODULE_IMPORT_NS({ns});"
        elif kind == "namespace-reserved":
            details["namespace"] = ns
            details["reserved_for"] = reserved_for(ns)
            if not syms:
                details["reason"] = "explicit import"
                msg = (f"{name}{where} imports the module namespace {ns} (MODULE_IMPORT_NS): such namespaces cannot "
                       "be imported, the kernel refuses to load it")
            else:
                allowed = module_namespace_allows(ns, _kname(m))
                details["reason"] = "out-of-tree" if allowed else "not listed"
                msg = reserved_message(f"{name}{where}", _kname(m), ns, listed)
        elif kind == "vermagic-mismatch":
            d = {k: v for k, v in ps[0].detail.items() if k != "message"}
            details.update(d)
            msg = str(ps[0].detail["message"])
            if d.get("release_only"):
                severity = "info"
        elif kind == "duplicate-module":
            msg = str(ps[0].detail["message"])
            details["builtin"] = True
        elif kind == "duplicate-export":
            msg = f"{name} exports {listed}, which the kernel itself exports: the kernel refuses to load it"
        elif kind in ("unsigned-module", "signer-mismatch"):
            d = dict(ps[0].detail)
            details.update(d)
            msg = _signature_message(name, d, blocking)
            if not blocking:
                severity = "warning"
        else:  # broken-file
            msg = f"{shown}: {ps[0].detail.get('reason')}"
            details["reason"] = ps[0].detail.get("reason")
        mods = (name, *[p for p in dict.fromkeys([*providers, *causes]) if p != name])
        out.append(Finding(kind, severity, mods, tuple(syms), (shown,), msg, details))
    file_names = {comp[i].name for i in file_idx}
    for names, idxs in cycles.items():
        if scope == "in-tree" and file_names.intersection(names):
            continue  # reported with the file on it
        order = sorted(names, key=lambda n: (n not in file_names, n))
        files = tuple(path_of.get(i, comp_shown[i]) for i in sorted(idxs, key=lambda i: (i not in path_of, i)))
        out.append(Finding("cycle", "error", tuple(order), (), files,
                           f"dependency cycle between {', '.join(order)}: modprobe cannot load them (and depmod "
                           "writes no index)",
                           {"scope": scope, "blocks_load": True, "kernel_log": [], "component": order}))
    return out
