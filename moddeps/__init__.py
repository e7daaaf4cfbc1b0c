"""moddeps: Linux kernel module trees, understood from the binaries alone.

The library's public surface is ``__all__``: the functions of
:mod:`moddeps.api`, the frozen records they return, and the errors they
raise (``docs/api.md``; its compatibility promise covers these names and the
fields of those records, nothing else)::

    import moddeps

    c = moddeps.closure("/lib/modules/6.12.117+deb13-amd64", ["ext4", "virtio_blk"])
    files = [item.path for item in c.items if item.kind != "builtin" and item.exists]

The names are loaded on first use (PEP 562): ``import moddeps``, which every
command-line start runs, imports nothing else.
"""

__version__ = "0.1.0"

# Written as a constant rather than imported from typing, which
# ``import moddeps`` would otherwise load; mypy reads it as typing's.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .abidiff import Change, DiffResult, ExportInfo, Side
    from .api import (
        DepmodOutputs,
        audit_tree,
        check_compat,
        closure,
        depmod_outputs,
        diff,
        info,
        plan_context,
        plan_load,
        plan_remove,
        read_module,
        read_tree,
        resolve_symbols,
    )
    from .audit import AuditResult
    from .compat import CompatResult, SignatureVerdict, Verdict
    from .errors import CycleError, DepmodFatal, InputError, ModdepsError, ModuleReadError, UsageError
    from .findings import Finding
    from .kmodversion import KmodTarget
    from .model import Export, FileProblem, Import, Module, SignatureFacts
    from .modinfo import ModuleInfo
    from .modprobe.closure import Closure, ClosureItem
    from .modprobe.indexes import Source
    from .modprobe.plan import Plan, PlanContext, PlanSet, Step
    from .read.scan import Duplicate, Tree
    from .read.walk import ModuleFile
    from .resolve import Resolution
    from .signature import ModuleSignature

#: module -> the public names it defines (imported when one of them is first used)
_WHERE = {
    "moddeps.api": ("DepmodOutputs", "audit_tree", "check_compat", "closure", "depmod_outputs", "diff", "info",
                    "plan_context", "plan_load", "plan_remove", "read_module", "read_tree", "resolve_symbols"),
    "moddeps.model": ("Export", "FileProblem", "Import", "Module", "SignatureFacts"),
    "moddeps.read.scan": ("Duplicate", "Tree"),
    "moddeps.read.walk": ("ModuleFile",),
    "moddeps.resolve": ("Resolution",),
    "moddeps.kmodversion": ("KmodTarget",),
    "moddeps.modprobe.plan": ("Plan", "PlanContext", "PlanSet", "Step"),
    "moddeps.modprobe.indexes": ("Source",),
    "moddeps.modprobe.closure": ("Closure", "ClosureItem"),
    "moddeps.audit": ("AuditResult",),
    "moddeps.findings": ("Finding",),
    "moddeps.compat": ("CompatResult", "SignatureVerdict", "Verdict"),
    "moddeps.abidiff": ("Change", "DiffResult", "ExportInfo", "Side"),
    "moddeps.modinfo": ("ModuleInfo",),
    "moddeps.signature": ("ModuleSignature",),
    "moddeps.errors": ("CycleError", "DepmodFatal", "InputError", "ModdepsError", "ModuleReadError", "UsageError"),
}

__all__ = [
    "AuditResult",
    "Change",
    "Closure",
    "ClosureItem",
    "CompatResult",
    "CycleError",
    "DepmodFatal",
    "DepmodOutputs",
    "DiffResult",
    "Duplicate",
    "Export",
    "ExportInfo",
    "FileProblem",
    "Finding",
    "Import",
    "InputError",
    "KmodTarget",
    "ModdepsError",
    "Module",
    "ModuleFile",
    "ModuleInfo",
    "ModuleReadError",
    "ModuleSignature",
    "Plan",
    "PlanContext",
    "PlanSet",
    "Resolution",
    "Side",
    "SignatureFacts",
    "SignatureVerdict",
    "Source",
    "Step",
    "Tree",
    "UsageError",
    "Verdict",
    "audit_tree",
    "check_compat",
    "closure",
    "depmod_outputs",
    "diff",
    "info",
    "plan_context",
    "plan_load",
    "plan_remove",
    "read_module",
    "read_tree",
    "resolve_symbols",
]


def __getattr__(name: str) -> object:
    """A public name, imported from its module on first use (PEP 562) and kept here after."""
    for where, names in _WHERE.items():
        if name in names:
            from importlib import import_module

            value: object = getattr(import_module(where), name)
            globals()[name] = value
            return value
    raise AttributeError(f"module 'moddeps' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
