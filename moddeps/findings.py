"""The findings audit and compat report: their kinds, severities and record.

A finding's ``kind`` is a stable name (the JSON and the text rendering carry it);
:data:`FINDING_KINDS` gives each kind's default severity, in report order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .records import dataclass, field

SEVERITIES = ("error", "warning", "info")

#: kind -> severity, in report order (worst first within a severity)
FINDING_KINDS: dict[str, str] = {
    "cycle": "error",
    "broken-file": "error",
    "unknown-symbol": "error",
    "crc-mismatch": "error",
    "gpl-only-misuse": "error",
    "namespace-not-imported": "error",
    "namespace-reserved": "error",
    "vermagic-mismatch": "error",
    "duplicate-export": "warning",
    "duplicate-module": "warning",
    "stale-index": "warning",
    # severity per finding (see _signatures): these are the defaults
    "unsigned-module": "warning",
    "signer-mismatch": "warning",
    "weak-signature-hash": "warning",
    "permanent-module": "info",
    "not-in-modules-order": "info",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check found: ``modules[0]`` is the module it is about; for symbol
    findings, the module that needs the symbols in ``symbols``."""

    kind: str
    severity: str
    modules: tuple[str, ...]
    symbols: tuple[str, ...]
    files: tuple[str, ...]
    message: str
    details: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
