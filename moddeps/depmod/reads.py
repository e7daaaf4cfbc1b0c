"""What depmod reads of a module, and nothing else.

The resolver reads exports and imports, the writers and the safety filter
read the name, the path and three modinfo keys, and an unreadable module's
error makes a message.  :func:`depmod_view` is that part of a module: two
modules with equal views give the same outputs and messages in the same
place of the same tree, which lets a rerun keep its previous result when a
module was rebuilt or reinstalled without a change to any of it.  A writer
that starts reading another field must add it here (tests/test_depmod_reads.py
checks that every other field leaves the outputs alone).
"""

from __future__ import annotations

from ..model import Module

#: The modinfo keys whose values depmod writes (modules.alias, .softdep, .weakdep, .devname).
MODINFO_KEYS = ("alias", "softdep", "weakdep")


def depmod_view(m: Module) -> tuple[object, ...]:
    """The fields of ``m`` that depmod's result depends on."""
    return (m.name, m.path, m.exports, m.imports, tuple(kv for kv in m.modinfo if kv[0] in MODINFO_KEYS), m.error,
            m.kmod_error)
