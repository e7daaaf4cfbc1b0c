"""What must not reach the line-based ``modules.*`` files (applied by
:func:`moddeps.depmod.render.render_files`, so every writer of them is covered).

kmod copies module paths, aliases, softdeps and symbol names into its text
files verbatim.  moddeps keeps kmod's bytes for everything that reads back
as written and leaves the rest out, with one warning line naming the module
(module paths are checked by the scanner).  What the readers of these files
split on, from kmod's sources (v34.2; the same in v30):

* ``modules.softdep`` and ``modules.weakdep`` are read as modprobe.d files
  (libkmod/libkmod-config.c, kmod_config_new and kmod_config_parse): lines
  come from shared/util.c freadline_wrapped, where a backslash before the
  newline joins the next line onto this one; the command and module name
  are cut with ``strtok_r(" \\t")`` and the list after them at C
  ``isspace`` (kmod_config_add_softdep / add_weakdep).  A value ending in a
  backslash therefore swallows the next module's line; blanks and tabs are
  the list's own separators.
* ``modules.devname`` is read by tools/static-nodes.c with ``fgets`` and
  ``sscanf("%s %s %c%u:%u")``: every C ``isspace`` byte (blank, ``\\t``,
  ``\\n``, ``\\v``, ``\\f``, ``\\r``) ends the device name, and the bytes
  after it become the node type and numbers (``x\\vb1:1`` makes block node
  1:1).  kmod-static-nodes creates ``/dev/DEVNAME`` at boot, so a leading
  ``/`` or a ``..`` component is refused too.
* ``modules.alias`` and ``modules.symbols`` are not parsed by kmod (libkmod
  reads their ``.bin`` twins, whose keys it matches whole), nor is
  ``modules.dep`` (libkmod-module.c kmod_module_parse_depline reads the
  ``.bin`` value, a path, ``:``, then paths cut at ``" \\t"``).  What can
  hurt there is a line break for any line reader: ``\\n``, and ``\\r``,
  ``\\v``, ``\\f`` (line ends for Python's ``splitlines`` and for tools that
  split at vertical white space; no real alias or symbol holds one).

So: an alias, exported symbol, softdep or weakdep value holding ``\\n``,
``\\r``, ``\\v`` or ``\\f`` is left out; a softdep or weakdep value ending in a
backslash is left out; a devname holding any C white space, or leaving
``/dev``, is left out of ``modules.devname``.  Blanks and tabs inside aliases
and symbol names stay, as in kmod: they add no line, no kmod reader splits
those fields (``char-major- 4-+5`` is a kmod test case), and the ``.bin``
indexes hold them as they are.
"""

from __future__ import annotations

from ..model import Module, fsdecode, printable
from ..native import DECLINED, Declined, load, twin
from ..records import replace
from .reads import MODINFO_KEYS

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

#: The line breaks of a line reader: C isspace minus the blank and the tab.
LINE_BREAKS = "\n\r\v\f"
#: C isspace() in the C locale.
C_SPACE = " \t\n\v\f\r"
_NAMES = {"\n": "a newline", " ": "a blank", "\t": "a tab", "\r": "a carriage return", "\v": "a vertical tab",
          "\f": "a form feed"}
#: Values read by libkmod's config parser, where a trailing backslash continues the line.
_CONTINUED_KEYS = frozenset({"softdep", "weakdep"})


def _blank(value: str, chars: str = LINE_BREAKS) -> str | None:
    for ch in chars:
        if ch in value:
            return _NAMES[ch]
    return None


_LINE_KEYS = MODINFO_KEYS  # every modinfo value depmod writes


def unsafe_value(key: str, value: str) -> str | None:
    """Why the modinfo ``key=value`` must not go into a text file, or None."""
    bad = _blank(value)
    if bad is not None:
        return f"contains {bad}"
    if key in _CONTINUED_KEYS and value.endswith("\\"):
        return "ends with a backslash, which joins the next line onto it"
    return None


def sanitize(modules: Sequence[Module], columns: dict[str, tuple[list[str], list[int]]] | None = None,
             ) -> tuple[list[Module], list[str]]:
    """The modules with unsafe values removed, and the warnings (kmod-style, without program name).

    With the C helpers, only the modules that hold a suspect value go through
    the check below (amd64: 9.7 -> 1.4 ms): the helpers find the line breaks;
    a softdep's or weakdep's trailing backslash is looked for here, in one
    pass over those values joined.

    ``columns``: when no module holds a suspect value (the modules returned
    are those given), this dict receives the values of each of MODINFO_KEYS
    that the check selected, with their modules' indexes (what
    :meth:`moddeps.depmod.outputs.WriterInput.columns` gives), so that the
    writers need not select them again.
    """
    selected: list[tuple[list[str], list[int]]] = []
    suspects: list[int] | None = twin(load("depmod._trie"), lambda trie: _suspects(trie, modules, selected),
                                      lambda: None)
    if suspects is None:  # every module is checked
        return _sanitize(modules)
    if not suspects and columns is not None:
        columns.update(zip(_LINE_KEYS, selected))
    out = list(modules)
    messages: list[str] = []
    for idx in suspects:
        fixed, msgs = _sanitize([modules[idx]])
        out[idx] = fixed[0]
        messages += msgs
    return out, messages


def _suspects(trie: Any, modules: Sequence[Module], out: list[tuple[list[str], list[int]]],
              ) -> list[int] | Declined:
    """The indexes of the modules that may hold an unsafe value, ascending (through the
    C helpers); ``out`` receives the values of each of _LINE_KEYS and their modules' indexes."""
    selected: list[tuple[list[str], list[int]]] | Declined = trie.select_modinfo(modules, _LINE_KEYS)
    if selected is DECLINED:
        return DECLINED
    out += selected
    found: set[int] = set()
    for key, (values, owners) in zip(_LINE_KEYS, selected):
        breaks: list[int] | Declined = trie.line_breaks(values)
        if breaks is DECLINED:
            return DECLINED
        found.update(owners[i] for i in breaks)
        found.update(owners[i] for i in _other_suspects(key, values))
    return sorted(found)


def _other_suspects(key: str, values: list[str]) -> list[int]:
    """The indexes of ``values`` that end with a backslash, for softdep and weakdep
    (the line breaks are the C line_breaks')."""
    if key not in _CONTINUED_KEYS or "\\\0" not in "\0".join(values) + "\0":
        return []
    return [i for i, v in enumerate(values) if v.endswith("\\")]


def _sanitize(modules: Sequence[Module]) -> tuple[list[Module], list[str]]:
    out: list[Module] = []
    messages: list[str] = []
    for m in modules:
        changed = False
        modinfo: list[tuple[str, str]] = []
        for k, v in m.modinfo:
            bad = unsafe_value(k, v) if k in _LINE_KEYS else None
            if bad is not None:
                messages.append(f"WARNING: module {m.name}: {k} {printable(repr(v))} {bad}; left out")
                changed = True
                continue
            modinfo.append((k, v))
        out.append(replace(m, modinfo=tuple(modinfo)) if changed else m)
    return out, messages


_BREAK_BYTES = tuple(ch.encode() for ch in LINE_BREAKS)


def safe_symbols(symbols: tuple[list[bytes], list[int]], names: Sequence[bytes],
                 messages: list[str]) -> tuple[list[bytes], list[int]]:
    """modules.symbols entries (keys ``symbol:NAME``, owners: two columns, as
    :func:`moddeps.depmod.outputs.module_symbols` gives them) without the
    names that hold a line break; ``symbols`` itself when none does."""
    keys, owners = symbols
    if twin(load("depmod._trie"), lambda trie: _all_clear(trie, keys), lambda: False):
        return symbols
    kept: tuple[list[bytes], list[int]] = ([], [])
    for key, owner in zip(keys, owners):
        if any(ch in key for ch in _BREAK_BYTES):
            name = key[key.index(b":") + 1 :]
            shown = printable(repr(name.decode("utf-8", "surrogateescape")))
            messages.append(f"WARNING: module {fsdecode(names[owner])}: exported symbol {shown} contains a line "
                            "break; left out of modules.symbols")
            continue
        kept[0].append(key)
        kept[1].append(owner)
    return kept


def _all_clear(trie: Any, keys: list[bytes]) -> bool | Declined:
    """Whether no symbol key holds a line break (through the C helpers)."""
    hits: list[int] | Declined = trie.line_breaks(keys)
    return DECLINED if hits is DECLINED else not hits


_SPACE_BYTES = tuple(ch.encode() for ch in C_SPACE)


def devname_unsafe(devname: bytes) -> str | None:
    """Why a devname must not go into modules.devname, or None."""
    for ch in _SPACE_BYTES:
        if ch in devname:
            return "contains white space, where kmod static-nodes would end the name"
    if devname.startswith(b"/") or b".." in devname.split(b"/"):
        return "names a path outside /dev"
    return None
