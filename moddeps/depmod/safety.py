"""What must not reach the line-based ``modules.*`` files (applied by
:func:`moddeps.depmod.run.render_files`, so every writer of them is covered).

kmod 30 copies module paths, aliases, softdeps and symbol names into its text
files verbatim: a newline in an alias adds a line of the module's choosing to
``modules.alias``, a blank in a symbol name adds a field.  moddeps keeps
kmod's bytes for everything that is safe and leaves the rest out, with one
warning line naming the module (module paths are handled by the scanner):

* aliases, exported symbols and ``softdep``/``weakdep`` values containing a
  newline (or carriage return): each would add a line of its own;
* ``devname:`` names containing a blank, or leaving ``/dev`` (a leading
  ``/`` or a ``..`` component): kmod-static-nodes splits the line at blanks
  and creates ``/dev/DEVNAME`` at boot.

Blanks inside aliases and symbol names stay, as in kmod: they add no line,
real trees have them (``char-major- 4-+5`` is a kmod test case), and the
``.bin`` indexes hold them as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..model import Module, fsdecode, printable
from ..native import load
from .reads import MODINFO_KEYS

_BLANKS = {"\n": "a newline", " ": "a blank", "\t": "a tab", "\r": "a carriage return"}


def _blank(value: str, chars: str = "\n \t\r") -> str | None:
    for ch in chars:
        if ch in value:
            return _BLANKS[ch]
    return None


_LINE_KEYS = MODINFO_KEYS  # every modinfo value depmod writes


def sanitize(modules: Sequence[Module]) -> tuple[list[Module], list[str]]:
    """The modules with unsafe values removed, and the warnings (kmod-style, without program name).

    With the C helpers, only the modules that hold a line break in one of
    those values go through the check below (amd64: 9.7 -> 1.4 ms).
    """
    trie = load("depmod._trie")
    if trie is not None:
        try:
            suspects = sorted({owners[i] for values, owners in trie.select_modinfo(modules, _LINE_KEYS)
                               for i in trie.line_breaks(values)})
        except TypeError:  # a shape the C helpers do not take: the check below decides
            pass
        else:
            out = list(modules)
            messages: list[str] = []
            for idx in suspects:
                fixed, msgs = _sanitize([modules[idx]])
                out[idx] = fixed[0]
                messages += msgs
            return out, messages
    return _sanitize(modules)


def _sanitize(modules: Sequence[Module]) -> tuple[list[Module], list[str]]:
    out: list[Module] = []
    messages: list[str] = []
    for m in modules:
        changed = False
        modinfo: list[tuple[str, str]] = []
        for k, v in m.modinfo:
            bad = None
            if k in _LINE_KEYS:
                bad = _blank(v, "\n\r")
            if bad is not None:
                messages.append(f"WARNING: module {m.name}: {k} {printable(repr(v))} contains {bad}; left out")
                changed = True
                continue
            modinfo.append((k, v))
        out.append(replace(m, modinfo=tuple(modinfo)) if changed else m)
    return out, messages


def safe_symbols(symbols: list[tuple[bytes, int]], names: Sequence[bytes],
                 messages: list[str]) -> list[tuple[bytes, int]]:
    """modules.symbols entries (name, owner) without the names that hold a line break."""
    trie = load("depmod._trie")
    if trie is not None:
        try:
            if not trie.line_breaks([name for name, _ in symbols]):
                return list(symbols)
        except TypeError:
            pass
    kept = []
    for name, owner in symbols:
        if b"\n" in name or b"\r" in name:
            shown = printable(repr(name.decode("utf-8", "surrogateescape")))
            messages.append(f"WARNING: module {fsdecode(names[owner])}: exported symbol {shown} contains a line "
                            "break; left out of modules.symbols")
            continue
        kept.append((name, owner))
    return kept


def devname_unsafe(devname: bytes) -> str | None:
    """Why a devname must not go into modules.devname, or None."""
    for ch in (b" ", b"\t", b"\n", b"\r"):
        if ch in devname:
            return "contains a blank or line break"
    if devname.startswith(b"/") or b".." in devname.split(b"/"):
        return "names a path outside /dev"
    return None
