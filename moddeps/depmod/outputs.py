"""The contents of every file depmod writes, as bytes, byte for byte as kmod 30.

Each function takes the module array and its :class:`~moddeps.resolve.Resolution`
and returns the file's bytes; nothing here touches the disk (see
:mod:`moddeps.depmod.writer`).  Formats and orders: shared/specs/depmod-text.md
§9 and shared/specs/index-bin.md §9.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..kmodhash import hash_order
from ..model import Module, fsencode, printable
from ..resolve import KERNEL, Resolution
from .index import alias_normalize, build_index, builtin_alias_entries, builtin_entries
from .safety import devname_unsafe


@dataclass(frozen=True, slots=True)
class Layout:
    """What the writers need beyond the resolution."""

    modules: Sequence[Module]
    shown: Sequence[str]  # the path written for each module (relpath or absolute)
    resolution: Resolution


def dependency_lists(layout: Layout) -> list[list[int]]:
    """Per module, its transitive dependencies sorted by kmod's topological number.

    kmod tools/depmod.c (output_deps): the closure of the direct
    dependencies, each module once, sorted by the LIFO numbering, so users
    come before the libraries they need.
    """
    res = layout.resolution
    topo = res.topo
    if topo is None:
        raise ValueError("dependency cycles: no modules.dep can be written")
    deps = res.deps
    closure: list[frozenset[int] | None] = [None] * len(deps)
    # A dependency always has a larger number than its user: fill from the end.
    for m in sorted(range(len(deps)), key=topo.__getitem__, reverse=True):
        acc: set[int] = set()
        for d in deps[m]:
            acc.add(d)
            sub = closure[d]
            if sub:
                acc.update(sub)
        closure[m] = frozenset(acc)
    return [sorted(c or (), key=topo.__getitem__) for c in closure]


def dep_lines(layout: Layout) -> list[bytes]:
    shown = [fsencode(s) for s in layout.shown]
    out = []
    for idx, deps in enumerate(dependency_lists(layout)):
        if deps:
            out.append(shown[idx] + b": " + b" ".join(shown[d] for d in deps))
        else:
            out.append(shown[idx] + b":")
    return out


def _index(entries: Iterable[tuple[bytes, bytes, int]], file: str, messages: list[str] | None) -> bytes:
    """build_index, leaving out (with a warning naming the module) the keys kmod 30
    cannot index: those that branch on a non-ASCII byte."""
    entries = list(entries)
    dropped: list[bytes] = []
    data = build_index(entries, dropped)
    if dropped and messages is not None:
        owners: dict[bytes, list[bytes]] = {}
        for k, v, _p in entries:
            owners.setdefault(k, []).append(v)
        for k in dropped:
            who = ", ".join(sorted({v.decode("utf-8", "surrogateescape") for v in owners.get(k, ())} - {""}))
            messages.append(
                f"WARNING: {file}: key {printable(repr(k.decode('utf-8', 'surrogateescape')))}"
                f"{' of module ' + who if who else ''} left out: kmod 30 cannot index a non-ASCII byte where "
                "keys branch"
            )
    return data


def modules_dep(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def modules_dep_bin(layout: Layout, lines: list[bytes], messages: list[str] | None = None) -> bytes:
    return _index(((fsencode(m.name), line, idx) for idx, (m, line) in enumerate(zip(layout.modules, lines))),
                  "modules.dep.bin", messages)


def modules_alias(layout: Layout) -> bytes:
    out = [b"# Aliases extracted from modules themselves.\n"]
    for m in layout.modules:
        name = fsencode(m.name)
        for k, v in m.modinfo:
            if k == "alias":
                out.append(b"alias " + fsencode(v) + b" " + name + b"\n")
    return b"".join(out)


def modules_alias_bin(layout: Layout, messages: list[str] | None = None, warn_dups: bool = False) -> bytes:
    """kmod tools/depmod.c (output_aliases_bin): normalised aliases; an unmatched
    bracket is warned about and skipped; with ``-w`` a module listing the same
    normalised alias twice gets "duplicate module alias" (index_insert found
    the value already stored under that key)."""
    acc = []
    for idx, m in enumerate(layout.modules):
        name = fsencode(m.name)
        seen: set[bytes] = set()
        for k, v in m.modinfo:
            if k != "alias":
                continue
            raw = fsencode(v)
            key = alias_normalize(raw)
            if key is None:
                if messages is not None:
                    messages.append(f"WARNING: Unmatched bracket in {v}")
                continue
            if key in seen:
                if warn_dups and messages is not None:
                    shown = key.decode("utf-8", "surrogateescape")
                    messages.append(f"WARNING: duplicate module alias:\n{shown} {m.name}")
            else:
                seen.add(key)
            acc.append((key, name, idx))
    return _index(acc, "modules.alias.bin", messages)


def _keyed(layout: Layout, key: str, header: bytes) -> bytes:
    out = [header]
    for m in layout.modules:
        name = fsencode(m.name)
        for k, v in m.modinfo:
            if k == key:
                out.append(key.encode() + b" " + name + b" " + fsencode(v) + b"\n")
    return b"".join(out)


def modules_softdep(layout: Layout) -> bytes:
    return _keyed(layout, "softdep", b"# Soft dependencies extracted from modules themselves.\n")


def modules_weakdep(layout: Layout) -> bytes:
    """kmod 33's modules.weakdep (kmod 30 does not write it)."""
    return _keyed(layout, "weakdep", b"# Weak dependencies extracted from modules themselves.\n")


def has_weakdeps(layout: Layout) -> bool:
    return any(k == "weakdep" for m in layout.modules for k, _ in m.modinfo)


def module_symbols(layout: Layout) -> list[tuple[bytes, int]]:
    """(symbol, owner index) for module-owned symbols, in kmod's 2048-bucket hash order."""
    owned = {fsencode(name): owner for name, (owner, _crc) in layout.resolution.owners.items() if owner != KERNEL}
    return [(k, owned[k]) for k in hash_order(owned, 2048)]


def modules_symbols(layout: Layout, symbols: list[tuple[bytes, int]] | None = None) -> bytes:
    syms = module_symbols(layout) if symbols is None else symbols
    names = [fsencode(m.name) for m in layout.modules]
    out = [b"# Aliases for symbols, used by symbol_request().\n"]
    out.extend(b"alias symbol:" + s + b" " + names[o] + b"\n" for s, o in syms)
    return b"".join(out)


def modules_symbols_bin(layout: Layout, symbols: list[tuple[bytes, int]] | None = None,
                        messages: list[str] | None = None) -> bytes:
    syms = module_symbols(layout) if symbols is None else symbols
    names = [fsencode(m.name) for m in layout.modules]
    return _index(((b"symbol:" + s, names[o], o) for s, o in syms), "modules.symbols.bin", messages)


def modules_builtin_bin(builtin: bytes | None, messages: list[str] | None = None) -> bytes:
    """0 bytes when modules.builtin is missing (kmod creates the file, writes nothing)."""
    if builtin is None:
        return b""
    return _index(builtin_entries(builtin, messages), "modules.builtin.bin", messages)


def modules_builtin_alias_bin(builtin_modinfo: bytes | None, messages: list[str] | None = None) -> bytes:
    if builtin_modinfo is None:
        return b""
    return _index(builtin_alias_entries(builtin_modinfo, messages), "modules.builtin.alias.bin", messages)


# %u in sscanf: optional blanks, optional sign, digits; wraps modulo 2**32.
_U = rb"[ \t\n\v\f\r]*([+-]?[0-9]+)"
_CHAR_MAJOR = re.compile(rb"char-major-" + _U + rb"-" + _U)
_BLOCK_MAJOR = re.compile(rb"block-major-" + _U + rb"-" + _U)


def _u32(text: bytes) -> int:
    return int(text) & 0xFFFFFFFF


def devname_entry(m: Module) -> tuple[bytes | None, bytes | None, str | None]:
    """(line, None, None) for a modules.devname line, or (None, devname, error) when
    a devname has no major/minor, or (None, None, None).

    kmod tools/depmod.c (output_devname): walk the aliases keeping the last
    ``devname:`` and the last char/block major seen, and stop as soon as both
    are set.
    """
    devname: bytes | None = None
    kind: bytes | None = None
    major = minor = 0
    for k, v in m.modinfo:
        if k != "alias":
            continue
        raw = fsencode(v)
        if raw.startswith(b"devname:"):
            devname = raw[8:]
        else:
            mt = _CHAR_MAJOR.match(raw)
            if mt:
                kind, major, minor = b"c", _u32(mt.group(1)), _u32(mt.group(2))
            else:
                mt = _BLOCK_MAJOR.match(raw)
                if mt:
                    kind, major, minor = b"b", _u32(mt.group(1)), _u32(mt.group(2))
        if devname is not None and kind is not None:
            break
    if devname is None:
        return None, None, None
    if kind is None:
        shown = devname.decode("utf-8", "surrogateescape")
        return None, devname, (
            f"ERROR: Module '{m.name}' has devname ({shown}) but lacks major and minor information. Ignoring."
        )
    why = devname_unsafe(devname)
    if why is not None:
        shown = printable(repr(devname.decode("utf-8", "surrogateescape")))
        return None, devname, f"WARNING: module {m.name}: devname {shown} {why}; left out of modules.devname"
    line = fsencode(m.name) + b" " + devname + b" " + kind + f"{major}:{minor}".encode() + b"\n"
    return line, None, None


def modules_devname(layout: Layout) -> tuple[bytes, list[str]]:
    lines: list[bytes] = []
    errors: list[str] = []
    for m in layout.modules:
        line, _dev, err = devname_entry(m)
        if line is not None:
            lines.append(line)
        elif err is not None:
            errors.append(err)
    if not lines:
        return b"", errors  # kmod writes the header only before a first line
    return b"# Device nodes to trigger on-demand module loading.\n" + b"".join(lines), errors
