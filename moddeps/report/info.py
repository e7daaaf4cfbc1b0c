"""``moddeps info``'s additions to modinfo: ``--symbols`` text and the ``--json`` document.

modinfo's own lines are :func:`moddeps.modinfo.render`'s; what is here comes
after them (``--symbols``) or instead of them (``--json``, schema
``moddeps/schemas/info.schema.json``).  Both are plain text, never wrapped,
so they read the same on a terminal and in a pipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..model import Module, crc_text
from ..modinfo import ModuleInfo, Query
from ..signature import ModuleSignature
from .render import document


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def symbols_text(m: Module) -> str:
    """The exports (CRC, GPL-only, namespace) and needs of a module, after its modinfo lines."""
    out = [""]
    exports = [e for e in m.exports if not e.pseudo]
    out.append(f"exports ({len(exports)}):")
    if exports:
        out += _table([("symbol", "crc", "license", "namespace")] + [
            (e.name, crc_text(e.crc) or "-", "GPL-only" if e.gpl_only else "any", e.namespace or "-")
            for e in exports])
    out.append(f"needs ({len(m.imports)}):")
    if m.imports:
        rows: list[tuple[str, ...]] = [("symbol", "crc", "flags")]
        for i in m.imports:
            flags = ",".join(f for f, on in (("weak", i.weak), ("versions-only", i.versions_only)) if on)
            rows.append((i.name, crc_text(i.crc) or "-", flags or "-"))
        out += _table(rows)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------


def signature_dict(sig: ModuleSignature | None, kmod_version: int) -> dict[str, Any] | None:
    if sig is None:
        return None
    return {
        "id_type": sig.id_type,
        "signer": sig.signer.decode("utf-8", "surrogateescape"),
        "key_id": sig.key_id.hex(),
        "hash_algo": sig.kmod_hash_algo(kmod_version),
        "hash_oid": sig.hash_oid,
        "weak_hash": sig.weak_hash,
        "signer_id": sig.signer_id,
        "subject_key_id": None if sig.subject_key_id is None else sig.subject_key_id.hex(),
        "kmod_readable": sig.kmod_readable,
        "signature": sig.signature.hex(),
    }


def _module_facts(m: Module) -> dict[str, Any]:
    return {
        "elf": {"machine": m.machine, "class": m.elf_class, "byte_order": m.byte_order,
                "compression": m.compression},
        "init": m.has_init,
        "exit": m.has_exit,
        "exports": [{"name": e.name, "crc": crc_text(e.crc), "gpl_only": e.gpl_only, "namespace": e.namespace}
                    for e in m.exports if not e.pseudo],
        "imports": [{"name": i.name, "crc": crc_text(i.crc), "weak": i.weak, "versions_only": i.versions_only}
                    for i in m.imports],
    }


def module_info_dict(info: ModuleInfo, kmod_version: int) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": info.name,
        "filename": info.filename,
        "builtin": info.builtin,
        "error": info.error,
        "fields": [[k, v] for k, v in info.fields],
        "signature": signature_dict(info.signature, kmod_version),
    }
    d.update(_module_facts(info.module) if info.module is not None else
             {"elf": None, "init": None, "exit": None, "exports": [], "imports": []})
    return d


def info_document(dirname: str, kmod_version: int, reason: str, queries: Sequence[Query]) -> dict[str, Any]:
    return document({
        "dirname": dirname,
        "kmod": {"version": kmod_version, "reason": reason},
        "queries": [{"arg": q.arg, "error": q.error,
                     "modules": [module_info_dict(i, kmod_version) for i in q.infos]} for q in queries],
    })
