"""The contents of every file depmod writes, as bytes, byte for byte as the kmod release imitated.

:data:`TABLE` lists the files in kmod's write order, in the spirit of
kmod's own table of outputs (``depfiles[]`` in kmod
tools/depmod.c:depmod_output@v34.2): each file's name, the group it is
rendered with, its writer, whether it is an index, and the kmod releases
that write it.  The writers read a :class:`WriterInput` (the module array
and its :class:`~moddeps.resolve.Resolution`) and return the file's bytes;
nothing here touches the disk (see :mod:`moddeps.depmod.writer`).  Formats
and orders: docs/depmod-outputs.md and docs/index-format.md.
"""

from __future__ import annotations

import bisect

from ..index.builtin import builtin_alias_entries, builtin_entries
from ..index.keys import alias_normalize
from ..index.write import build_index, build_index_columns, start_index, start_index_columns
from ..inputfiles import read_optional
from ..kmodhash import hash_order
from ..kmodversion import SUPPORTED, KmodTarget
from ..model import Module, fsdecode, fsencode, printable
from ..native import load, twin
from ..records import dataclass, field
from ..resolve import KERNEL, Resolution
from .reads import MODINFO_KEYS
from .safety import devname_unsafe

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    from ..index.write import Started

    #: A row's bytes, or its index still being built (``RenderJob.threaded``)
    Index = bytes | Started

# Where the C twins in moddeps.depmod._trie are used (through native.twin), the
# Python code next to each call is the reference: it runs when they decline.


@dataclass(frozen=True, slots=True)
class WriterInput:
    """What the writers need beyond the resolution."""

    modules: Sequence[Module]
    shown: Sequence[str]  # the path written for each module (relpath or absolute)
    resolution: Resolution
    # What several writers derive from the same modules, computed once; the
    # modules must not change after the first writer ran.  The writers read
    # the modules only through it (names, and the values of MODINFO_KEYS).
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of_columns(cls, names: list[bytes], shown: Sequence[str], resolution: Resolution,
                   columns: dict[str, tuple[list[str], list[int]]]) -> WriterInput:
        """A writer input without Module records: each module's name, and for each of
        MODINFO_KEYS every value and its module's index (what :func:`_select` gives)."""
        return cls((), shown, resolution, {"names": names, "select": columns})

    def columns(self) -> dict[str, tuple[list[str], list[int]]]:
        """The values of MODINFO_KEYS, as :meth:`of_columns` takes them."""
        _select(self, MODINFO_KEYS[0])
        got: dict[str, tuple[list[str], list[int]]] = self.memo["select"]
        return got

    def shown_bytes(self) -> list[bytes]:
        """Each module's shown path as bytes."""
        got: list[bytes] | None = self.memo.get("shown")
        if got is None:
            got = self.memo["shown"] = encode_all(self.shown)
        return got

    def names(self) -> list[bytes]:
        """Each module's name as bytes."""
        got: list[bytes] | None = self.memo.get("names")
        if got is None:
            got = self.memo["names"] = encode_all([m.name for m in self.modules])
        return got


def encode_all(texts: Sequence[str]) -> list[bytes]:
    """:func:`~moddeps.model.fsencode` of each text: one encoding of them all
    joined by NUL, split again (a module's name or path holds no NUL; texts
    that do are encoded one by one)."""
    got = fsencode("\0".join(texts)).split(b"\0") if texts else []
    return got if len(got) == len(texts) else [fsencode(t) for t in texts]


#: The modinfo keys the writers read.
_SELECTED = MODINFO_KEYS


def _select(wi: WriterInput, key: str) -> tuple[list[str], list[int]]:
    """The modinfo values for ``key`` (one of _SELECTED) of every module, in
    array order then modinfo order, and the index of each one's module."""
    got: dict[str, tuple[list[str], list[int]]] | None = wi.memo.get("select")
    if got is None:
        modules = wi.modules
        columns = twin(load("depmod._trie"), lambda trie: trie.select_modinfo(modules, _SELECTED),
                       lambda: _select_py(modules))
        got = wi.memo["select"] = dict(zip(_SELECTED, columns))
    return got[key]


def _select_py(modules: Sequence[Module]) -> list[tuple[list[str], list[int]]]:
    """The reference for the C select_modinfo: per key of _SELECTED, its values and their modules' indexes."""
    got: dict[str, tuple[list[str], list[int]]] = {k: ([], []) for k in _SELECTED}
    for idx, m in enumerate(modules):
        for k, v in m.modinfo:
            if k in got:
                values, owners = got[k]
                values.append(v)
                owners.append(idx)
    return list(got.values())


def _aliases(wi: WriterInput) -> tuple[list[str], list[int]]:
    """Every alias of every module in array order, and the index of its module."""
    return _select(wi, "alias")


def _format_rows(head: bytes, firsts: Sequence[str | bytes], mid: bytes, owners: list[int],
                 seconds: list[bytes], tail: bytes) -> bytes:
    """``head + first + mid + seconds[owner] + tail`` for each (first, owner), joined;
    a str ``first`` is written as :func:`~moddeps.model.fsencode` gives it."""
    return twin(load("depmod._trie"), lambda trie: trie.format_rows(head, firsts, mid, owners, seconds, tail),
                lambda: b"".join([head + (f if isinstance(f, bytes) else fsencode(f)) + mid + seconds[o] + tail
                                  for f, o in zip(firsts, owners)]))


def dependency_lists(wi: WriterInput) -> list[list[int]]:
    """Per module, its transitive dependencies sorted by kmod's topological number.

    kmod tools/depmod.c (output_deps): the closure of the direct
    dependencies, each module once, sorted by the LIFO numbering, so users
    come before the libraries they need.
    """
    res = wi.resolution
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


def dep_lines(wi: WriterInput) -> list[bytes]:
    shown = wi.shown_bytes()
    res = wi.resolution
    return twin(load("depmod._trie"), lambda trie: trie.dep_lines(res.deps, res.topo, shown),
                lambda: _dep_lines_py(wi, shown))


def _dep_lines_py(wi: WriterInput, shown: list[bytes]) -> list[bytes]:
    """The reference for the C dep_lines (ValueError without a numbering)."""
    out = []
    for idx, deps in enumerate(dependency_lists(wi)):
        if deps:
            out.append(shown[idx] + b": " + b" ".join(shown[d] for d in deps))
        else:
            out.append(shown[idx] + b":")
    return out


def _warn_dropped(keys: Iterable[bytes], values: Iterable[bytes], dropped: list[bytes], file: str,
                  messages: list[str]) -> None:
    owners: dict[bytes, list[bytes]] = {}
    for k, v in zip(keys, values):
        owners.setdefault(k, []).append(v)
    for k in dropped:
        who = ", ".join(sorted({v.decode("utf-8", "surrogateescape") for v in owners.get(k, ())} - {""}))
        messages.append(
            f"WARNING: {file}: key {printable(repr(k.decode('utf-8', 'surrogateescape')))}"
            f"{' of module ' + who if who else ''} left out: kmod 30 cannot index a non-ASCII byte where "
            "keys branch"
        )


class NonAsciiIndexString(ValueError):
    """kmod >= 34 stops at an index key or value holding a byte >= 0x80.

    kmod tools/depmod.c index__checkstring (fixed to read bytes as unsigned by
    commits 9cbb979 and f5589e7, v34) checks the key, then the value, of every
    insertion and ends the run with a CRIT message; kmod 30 read the byte as
    signed and let it through.  ``message`` is kmod's text.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _first_non_ascii(values: list[bytes]) -> int:
    """The index of the first value with a byte >= 0x80, or -1."""
    return twin(load("depmod._trie"), lambda trie: trie.first_non_ascii(values), lambda: _first_non_ascii_py(values))


def _first_non_ascii_py(values: list[bytes]) -> int:
    """The reference for the C first_non_ascii."""
    if b"".join(values).isascii():
        return -1
    return next(i for i, v in enumerate(values) if not v.isascii())


def _check_7bit(keys: Iterable[bytes], values: Iterable[bytes], pool: list[bytes] | None = None) -> None:
    """:class:`NonAsciiIndexString` for the first key or value, in insertion order, with a byte >= 0x80.
    ``pool``: every value is one of these (the module names): they are looked at instead."""
    keys = keys if isinstance(keys, list) else list(keys)
    values = values if isinstance(values, list) else list(values)
    if _first_non_ascii(keys) < 0 and _first_non_ascii(values if pool is None else pool) < 0:
        return
    # (a name of the pool no value holds: nothing below raises)
    for k, v in zip(keys, values):
        for text in (k, v):
            if not text.isascii():
                ch = next(b for b in text if b >= 0x80)
                shown = fsdecode(text)
                raise NonAsciiIndexString(
                    f"FATAL: Module index: bad character '{fsdecode(bytes([ch]))}'=0x{ch:x} - "
                    f"only 7-bit ASCII is supported:\n{shown}")


def _index(entries: Iterable[tuple[bytes, bytes, int]], file: str, messages: list[str] | None,
           preorder: bool, threaded: bool = False) -> Index:
    """build_index (nodes in pre-order for kmod >= 34), leaving out (with a
    warning naming the module) the keys kmod 30 cannot index: those that
    branch on a non-ASCII byte.  For kmod >= 34 (``preorder``) any non-ASCII
    byte is :class:`NonAsciiIndexString`, as kmod 34 stops there.  ``threaded``:
    the index, sorted and laid out by a thread of its own (``start_index``: see
    :attr:`RenderJob.threaded`); the warnings are given here all the same."""
    entries = list(entries)
    if preorder:
        _check_7bit((e[0] for e in entries), (e[1] for e in entries))
    dropped: list[bytes] = []
    # (checked: kmod 34's keys are ASCII, nothing to drop)
    data: Index
    if threaded:
        data = start_index(entries, None if preorder else dropped, preorder=preorder)
    else:
        data = build_index(entries, None if preorder else dropped, preorder=preorder)
    if dropped and messages is not None:
        _warn_dropped((e[0] for e in entries), (e[1] for e in entries), dropped, file, messages)
    return data


def _index_columns(keys: list[bytes], values: list[bytes], priorities: list[int] | None, file: str,
                   messages: list[str] | None, preorder: bool, pool: list[bytes] | None = None,
                   threaded: bool = False) -> Index:
    """:func:`_index` of ``zip(keys, values, priorities)`` (priorities None: 0, 1, 2, ...);
    ``pool``: every value is one of these (see :func:`_check_7bit`)."""
    if preorder:
        _check_7bit(keys, values, pool)
    dropped: list[bytes] = []
    # (checked: kmod 34's keys are ASCII, nothing to drop)
    data: Index
    if threaded:
        data = start_index_columns(keys, values, priorities, None if preorder else dropped, preorder=preorder)
    else:
        data = build_index_columns(keys, values, priorities, None if preorder else dropped, preorder=preorder)
    if dropped and messages is not None:
        _warn_dropped(keys, values, dropped, file, messages)
    return data


def modules_dep(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n" if lines else b""


def modules_dep_bin(wi: WriterInput, lines: list[bytes], messages: list[str] | None = None, *,
                    preorder: bool = False, threaded: bool = False) -> Index:
    names = wi.names()
    if len(lines) != len(names):  # zip's truncation, as it always was
        n = min(len(lines), len(names))
        return _index_columns(names[:n], lines[:n], None, "modules.dep.bin", messages, preorder, threaded=threaded)
    # dep_lines' lines are made of the shown paths and ASCII (": ", " "): their 7-bit check looks at the paths
    pool = wi.shown_bytes() if wi.memo.get("dep_lines") is lines else None
    return _index_columns(names, list(lines), None, "modules.dep.bin", messages, preorder, pool, threaded)


def modules_alias(wi: WriterInput) -> bytes:
    flat, owner = _aliases(wi)
    return b"# Aliases extracted from modules themselves.\n" + _format_rows(
        b"alias ", flat, b" ", owner, wi.names(), b"\n")


def _alias_keys(flat: list[str]) -> list[bytes | None]:
    """:func:`alias_normalize` of each alias's bytes."""
    return twin(load("depmod._trie"), lambda trie: trie.alias_keys(flat),
                lambda: [alias_normalize(fsencode(v)) for v in flat])


def modules_alias_bin(wi: WriterInput, messages: list[str] | None = None, warn_dups: bool = False, *,
                      preorder: bool = False, threaded: bool = False) -> Index:
    """kmod tools/depmod.c (output_aliases_bin): normalised aliases; an unmatched
    bracket is warned about and skipped; with ``-w`` a module listing the same
    normalised alias twice gets "duplicate module alias" (index_insert found
    the value already stored under that key)."""
    flat, owner = _aliases(wi)
    names = wi.names()
    keys = _alias_keys(flat)
    if not (warn_dups and messages is not None) and None not in keys:
        return _index_columns(keys, list(map(names.__getitem__, owner)), owner,  # type: ignore[arg-type]
                              "modules.alias.bin", messages, preorder, names, threaded)
    acc = []
    seen: set[bytes] = set()
    last = -1
    for v, key, idx in zip(flat, keys, owner):
        if idx != last:
            seen = set()
            last = idx
        if key is None:
            if messages is not None:
                messages.append(f"WARNING: Unmatched bracket in {v}")
            continue
        if key in seen:
            if warn_dups and messages is not None:
                shown = key.decode("utf-8", "surrogateescape")
                messages.append(f"WARNING: duplicate module alias:\n{shown} {fsdecode(names[idx])}")
        else:
            seen.add(key)
        acc.append((key, names[idx], idx))
    return _index(acc, "modules.alias.bin", messages, preorder, threaded)


def _keyed(wi: WriterInput, key: str, header: bytes) -> bytes:
    values, owners = _select(wi, key)
    names = wi.names()
    head = key.encode() + b" "
    return header + b"".join([head + names[o] + b" " + fsencode(v) + b"\n" for v, o in zip(values, owners)])


def modules_softdep(wi: WriterInput) -> bytes:
    return _keyed(wi, "softdep", b"# Soft dependencies extracted from modules themselves.\n")


def modules_weakdep(wi: WriterInput) -> bytes:
    """modules.weakdep, which kmod >= 33 writes (kmod 30 to 32 do not)."""
    return _keyed(wi, "weakdep", b"# Weak dependencies extracted from modules themselves.\n")


def has_weakdeps(wi: WriterInput) -> bool:
    return bool(_select(wi, "weakdep")[0])


#: The module-owned symbols as modules.symbols lists them: each one's key, ``symbol:`` and
#: its name (:data:`SYMBOL_KEY`), and its owner's index, in kmod's hash order; two columns.
Symbols = tuple[list[bytes], list[int]]

#: What modules.symbols and modules.symbols.bin put before a symbol's name.
SYMBOL_KEY = b"symbol:"


def module_symbols(wi: WriterInput) -> Symbols:
    """The keys (``symbol:NAME``) and owner indexes of the module-owned symbols, in
    the order of kmod's 2048-bucket hash table of the names."""
    owners = wi.resolution.owners
    return twin(load("depmod._trie"), lambda trie: trie.symbol_order(owners, 2048, SYMBOL_KEY),
                lambda: _module_symbols_py(owners))


def _module_symbols_py(owners: dict[str, tuple[int, int]]) -> Symbols:
    """The reference for the C symbol_order (which skips the owner -1: KERNEL)."""
    owned = {fsencode(name): owner for name, (owner, _crc) in owners.items() if owner != KERNEL}
    ordered = hash_order(owned, 2048)
    return [SYMBOL_KEY + name for name in ordered], list(map(owned.__getitem__, ordered))


def modules_symbols(wi: WriterInput, symbols: Symbols | None = None) -> bytes:
    keys, owners = module_symbols(wi) if symbols is None else symbols
    return b"# Aliases for symbols, used by symbol_request().\n" + _format_rows(
        b"alias ", keys, b" ", owners, wi.names(), b"\n")


def modules_symbols_bin(wi: WriterInput, symbols: Symbols | None = None, messages: list[str] | None = None, *,
                        preorder: bool = False, threaded: bool = False) -> Index:
    keys, owners = module_symbols(wi) if symbols is None else symbols
    modnames = wi.names()
    return _index_columns(keys, list(map(modnames.__getitem__, owners)), owners, "modules.symbols.bin", messages,
                          preorder, modnames, threaded)


def modules_builtin_bin(builtin: bytes | None, messages: list[str] | None = None, *, preorder: bool = False,
                        threaded: bool = False) -> Index:
    """0 bytes when modules.builtin is missing (kmod creates the file, writes nothing)."""
    if builtin is None:
        return b""
    return _index(builtin_entries(builtin, messages), "modules.builtin.bin", messages, preorder, threaded)


def modules_builtin_alias_bin(builtin_modinfo: bytes | None, messages: list[str] | None = None, *,
                              preorder: bool = False, threaded: bool = False) -> Index:
    if builtin_modinfo is None:
        return b""
    return _index(builtin_alias_entries(builtin_modinfo, messages), "modules.builtin.alias.bin", messages, preorder,
                  threaded)


# %u in sscanf: optional blanks, optional sign, digits; wraps modulo 2**32.
#: The aliases that give a device's major and minor: ``char-major-%u-%u``, ``block-major-%u-%u``.
_MAJORS = ((b"c", b"char-major-"), (b"b", b"block-major-"))


def _major_minor(raw: bytes, at: int) -> tuple[int, int] | None:
    """kmod tools/depmod.c (output_devname) reads ``%u-%u`` with sscanf at ``at``: each number
    after blanks, with a sign, as unsigned 32 bits; what follows the minor does not matter."""
    major = _scan_u32(raw, at)
    if major is None or raw[major[1] : major[1] + 1] != b"-":
        return None
    minor = _scan_u32(raw, major[1] + 1)
    return None if minor is None else (major[0], minor[0])


def _scan_u32(raw: bytes, at: int) -> tuple[int, int] | None:
    """A ``%u`` at ``at``: (its value, where it ends), or None."""
    n = len(raw)
    while at < n and raw[at] in b" \t\n\v\f\r":
        at += 1
    start = at
    if at < n and raw[at] in b"+-":
        at += 1
    digits = at
    while at < n and 0x30 <= raw[at] <= 0x39:
        at += 1
    if at == digits:
        return None
    return int(raw[start:at]) & 0xFFFFFFFF, at


def devname_entry(m: Module) -> tuple[bytes | None, bytes | None, str | None]:
    """:func:`devname_of` a module."""
    return devname_of(m.name, m.aliases)


def devname_of(name: str, aliases: Iterable[str]) -> tuple[bytes | None, bytes | None, str | None]:
    """(line, None, None) for a modules.devname line of the module ``name``, or
    (None, devname, error) when a devname has no major/minor, or (None, None, None).

    kmod tools/depmod.c (output_devname): walk the aliases keeping the last
    ``devname:`` and the last char/block major seen, and stop as soon as both
    are set.
    """
    devname: bytes | None = None
    kind: bytes | None = None
    major = minor = 0
    for v in aliases:
        raw = fsencode(v)
        if raw.startswith(b"devname:"):
            devname = raw[8:]
        else:
            for letter, prefix in _MAJORS:
                if raw.startswith(prefix):
                    got = _major_minor(raw, len(prefix))
                    if got is not None:
                        kind, (major, minor) = letter, got
                    break
        if devname is not None and kind is not None:
            break
    if devname is None:
        return None, None, None
    if kind is None:
        shown = devname.decode("utf-8", "surrogateescape")
        return None, devname, (
            f"ERROR: Module '{name}' has devname ({shown}) but lacks major and minor information. Ignoring."
        )
    why = devname_unsafe(devname)
    if why is not None:
        shown = printable(repr(devname.decode("utf-8", "surrogateescape")))
        return None, devname, f"WARNING: module {name}: devname {shown} {why}; left out of modules.devname"
    line = fsencode(name) + b" " + devname + b" " + kind + f"{major}:{minor}".encode() + b"\n"
    return line, None, None


def _devname_candidates(wi: WriterInput) -> list[int]:
    """The modules with an alias starting with ``devname:``, ascending."""
    flat, owner = _aliases(wi)
    hits = twin(load("depmod._trie"), lambda trie: trie.starting_with(flat, "devname:"),
                lambda: [i for i, v in enumerate(flat) if v.startswith("devname:")])
    return sorted({owner[i] for i in hits})


def modules_devname(wi: WriterInput) -> tuple[bytes, list[str]]:
    lines: list[bytes] = []
    errors: list[str] = []
    # Only a module with a "devname:" alias gets a line or an error.
    flat, owner = _aliases(wi)
    names = wi.names()
    for idx in _devname_candidates(wi):
        # the aliases of a module are one run of ``owner`` (array order)
        line, _dev, err = devname_of(fsdecode(names[idx]),
                                     flat[bisect.bisect_left(owner, idx) : bisect.bisect_right(owner, idx)])
        if line is not None:
            lines.append(line)
        elif err is not None:
            errors.append(err)
    if not lines:
        return b"", errors  # kmod writes the header only before a first line
    return b"# Device nodes to trigger on-demand module loading.\n" + b"".join(lines), errors


# --------------------------------------------------------------------------
# The table of output files
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RenderJob:
    """What the writers of :data:`TABLE` read, for one rendering."""

    wi: WriterInput  # the sanitized modules and their resolution
    dirname: str  # the module directory, where modules.builtin and modules.builtin.modinfo are read
    kmod: KmodTarget  # the release imitated
    warn_dups: bool = False  # -w
    dry_run: bool = False  # -n
    # the module-owned symbols modules.symbols may hold (moddeps.depmod.safety.safe_symbols
    # of module_symbols); None: the symbols group is not rendered
    symbols: Symbols | None = None
    # each binary row's index is sorted and laid out by a thread of its own while the next rows
    # are rendered (moddeps.index.write.start_index): the row gives it pending, and
    # moddeps.depmod.render waits for it
    threaded: bool = False


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One file depmod writes: a row of :data:`TABLE`."""

    name: str
    group: str  # the group it is rendered with (moddeps.depmod.render.GROUPS)
    write: Callable[[RenderJob, list[str]], Index]  # its bytes; its messages are appended to the list
    binary: bool  # an index (docs/index-format.md), else a text file
    since: int = SUPPORTED[0]  # the first kmod release that writes it in every run
    # for a release before ``since``: whether moddeps writes it anyway, given the modules (None: never)
    earlier: Callable[[WriterInput], bool] | None = None

    def written(self, job: RenderJob) -> bool:
        """Whether the release ``job.kmod`` writes this file for ``job``'s modules."""
        return job.kmod.version >= self.since or (self.earlier is not None and self.earlier(job.wi))


# The writers of the rows: each takes the job and the list its messages go to.


def _dep_lines(job: RenderJob) -> list[bytes]:
    """:func:`dep_lines`, once for modules.dep and modules.dep.bin."""
    got: list[bytes] | None = job.wi.memo.get("dep_lines")
    if got is None:
        got = job.wi.memo["dep_lines"] = dep_lines(job.wi)
    return got


def _write_dep(job: RenderJob, messages: list[str]) -> bytes:
    return modules_dep(_dep_lines(job))


def _write_dep_bin(job: RenderJob, messages: list[str]) -> Index:
    return modules_dep_bin(job.wi, _dep_lines(job), messages, preorder=job.kmod.preorder_index, threaded=job.threaded)



def _write_alias(job: RenderJob, messages: list[str]) -> bytes:
    return modules_alias(job.wi)


def _write_alias_bin(job: RenderJob, messages: list[str]) -> Index:
    return modules_alias_bin(job.wi, messages, job.warn_dups, preorder=job.kmod.preorder_index, threaded=job.threaded)



def _write_softdep(job: RenderJob, messages: list[str]) -> bytes:
    return modules_softdep(job.wi)


def _write_weakdep(job: RenderJob, messages: list[str]) -> bytes:
    return modules_weakdep(job.wi)


def _symbols(job: RenderJob) -> Symbols:
    assert job.symbols is not None, "modules.symbols rendered without its symbols"
    return job.symbols


def _write_symbols(job: RenderJob, messages: list[str]) -> bytes:
    return modules_symbols(job.wi, _symbols(job))


def _write_symbols_bin(job: RenderJob, messages: list[str]) -> Index:
    return modules_symbols_bin(job.wi, _symbols(job), messages, preorder=job.kmod.preorder_index,
                               threaded=job.threaded)


def _builtin_source(job: RenderJob, messages: list[str], name: str) -> tuple[bytes | None, list[str]]:
    """The file ``name`` of the module directory (None: missing, said with a
    warning), and the list the writer's messages go to: none with -n, where
    kmod's builtin writers return before they open their input."""
    said = [] if job.dry_run else messages
    data = read_optional(f"{job.dirname}/{name}")
    if data is None:
        said.append(f"WARNING: could not open {name} at {job.dirname}: No such file or directory")
    return data, said


def _write_builtin_bin(job: RenderJob, messages: list[str]) -> Index:
    data, said = _builtin_source(job, messages, "modules.builtin")
    return modules_builtin_bin(data, said, preorder=job.kmod.preorder_index, threaded=job.threaded)


def _write_builtin_alias_bin(job: RenderJob, messages: list[str]) -> Index:
    data, said = _builtin_source(job, messages, "modules.builtin.modinfo")
    return modules_builtin_alias_bin(data, said, preorder=job.kmod.preorder_index, threaded=job.threaded)


def _write_devname(job: RenderJob, messages: list[str]) -> bytes:
    data, errors = modules_devname(job.wi)
    messages += errors
    return data


#: Every file depmod writes, in kmod's write order (kmod tools/depmod.c:depmod_output@v34.2).
#: modules.weakdep is kmod 33's (commit 05828b4a6e93); for an older release moddeps writes
#: it only when a module declares a weak dependency.
TABLE: tuple[OutputFile, ...] = (
    OutputFile("modules.dep", "dep", _write_dep, binary=False),
    OutputFile("modules.dep.bin", "dep", _write_dep_bin, binary=True),
    OutputFile("modules.alias", "alias", _write_alias, binary=False),
    OutputFile("modules.alias.bin", "alias", _write_alias_bin, binary=True),
    OutputFile("modules.softdep", "softdep", _write_softdep, binary=False),
    OutputFile("modules.weakdep", "softdep", _write_weakdep, binary=False, since=33, earlier=has_weakdeps),
    OutputFile("modules.symbols", "symbols", _write_symbols, binary=False),
    OutputFile("modules.symbols.bin", "symbols", _write_symbols_bin, binary=True),
    OutputFile("modules.builtin.bin", "builtin", _write_builtin_bin, binary=True),
    OutputFile("modules.builtin.alias.bin", "builtin", _write_builtin_alias_bin, binary=True),
    OutputFile("modules.devname", "devname", _write_devname, binary=False),
)
