"""``modinfo``, exactly as kmod prints it: lookups, fields, parameters, signatures.

What kmod's ``modinfo ARG...`` does (kmod tools/modinfo.c and
libkmod/libkmod-module.c, kmod_module_get_info; the same in v30 and v34.2
except where noted), and :func:`run` repeats step by step:

1. **Context.**  ``-b ROOT``/``-k VER`` give ``ROOT + /lib/modules/ + VER``
   (``uname -r`` when only ``-b`` is given); without either, the running
   kernel's directory.  modinfo passes an *empty* configuration list to
   ``kmod_new``, so no modprobe.d file is read, and never loads the indexes
   into memory (no ``kmod_load_resources``): every lookup opens its ``.bin``
   file anew, whose reader orders equal-priority values newest first.
2. **Each argument**, one after the other, each with fresh module objects:
   with ``-m``, a module name (step 3b); a path that ends in a module suffix
   and names a regular file, that file; anything else an alias (step 3).
3. **Lookup.**  a. ``alias_normalize`` (``-`` -> ``_`` outside brackets; an
   unmatched bracket fails: "Module alias X not found."), then the first
   index that yields anything: ``modules.dep.bin`` exactly (not for a name
   with ``:``), ``modules.symbols.bin`` for ``symbol:``, ``modules.alias.bin``
   (fnmatch patterns, every match, duplicates kept), ``modules.builtin.bin``
   exactly, ``modules.builtin.alias.bin``.  Nothing: "Module X not found.".
   b. ``-m``: ``modname_normalize`` (up to the first ``.``), then
   ``modules.dep.bin``, ``modules.builtin.bin``, ``modules.builtin.alias.bin``;
   nothing: "Module name X not found.".
4. **A module** (modinfo_do).  Its path is its ``modules.dep`` entry under the
   directory (a file argument: the argument with the working directory in
   front, nothing normalised).  Without a path it is shown as a built-in:
   ``name:`` first, then ``filename: (builtin)``, and its fields come from
   ``modules.builtin.modinfo`` (the run of ``NAME.key=value`` records; none,
   or no such file, is not an error).  A file's fields are its ``.modinfo``
   strings in file order (split on runs of NULs, the value empty without
   ``=``), then, when it carries a readable signature, ``sig_id``, ``signer``,
   ``sig_key``, ``sig_hashalgo`` and ``signature`` (see
   :mod:`moddeps.signature`; keys and signatures as ``AB:CD:...``, 20 bytes
   a line, continuation lines starting with two tabs).
5. **Printing.**  ``KEY:`` padded with spaces to 16 columns, then the value;
   with ``-0`` ``KEY=VALUE`` and a NUL instead of the newline, except for
   ``name:``, ``filename:`` and ``parm:``, which keep the padded form.  A key of
   16 or more characters: kmod 34 adds no space (commit 7b416d59e450), kmod
   30 to 33 add ``len - 15`` spaces (printf's negative field width).
   ``parm`` and ``parmtype`` are merged per parameter name and printed last,
   ``parm:`` + ``NAME:DESCRIPTION (TYPE)``, in reverse order of first
   appearance (kmod prepends to a list); a value without ``:`` is skipped with
   "Found invalid ...".  ``-F FIELD`` prints only the values of that key (no
   key, no padding; ``parmtype`` raw), ``-F parm`` the merged parameters
   (``NAME: (TYPE)`` for one without description), ``-F filename`` the
   path, ``-F name`` a built-in's name; ``-a -d -l -p -n`` are ``-F author``,
   ``description``, ``license``, ``parm``, ``filename``.
6. **Status** 1 when any argument failed, else 0.

Deliberate differences from Debian's kmod builds: ``.ko.gz`` files are read
(Debian builds kmod without zlib, which then says "not found"); ``-b ROOT``
finds a merged-/usr root's ``usr/lib/modules`` when ``ROOT/lib/modules`` does
not exist (kmod needs ``ROOT/lib -> usr/lib``, see :mod:`moddeps.kmodnames`);
a tree without ``modules.dep.bin`` (depmod never ran) is indexed from a scan,
with a note on stderr, where kmod finds nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .errors import IndexFormatError
from .index.keys import alias_normalize
from .index.read import Index
from .kmodnames import MODULE_SUFFIXES, modname_normalize, path_to_modname
from .model import Module, fsdecode, fsencode
from .records import dataclass, field
from .signature import ModuleSignature

#: the fields the shortcut options select
SHORTCUTS = {"-a": "author", "-d": "description", "-l": "license", "-p": "parm", "-n": "filename"}
SIGNATURE_KEYS = ("sig_id", "signer", "sig_key", "sig_hashalgo", "signature")
_HEX_PER_LINE = 20


_fs = fsencode
_str = fsdecode






def hex_field(data: bytes) -> str:
    """kmod kmod_module_hex_to_str: ``AB:CD:...``, a newline and two tabs after every 20 bytes."""
    parts = []
    last = len(data) - 1
    for i, b in enumerate(data):
        parts.append(f"{b:02X}")
        if i < last:
            parts.append(":")
            if (i + 1) % _HEX_PER_LINE == 0:
                parts.append("\n\t\t")
    return "".join(parts)


def signature_fields(sig: ModuleSignature, kmod_version: int) -> list[tuple[str, str]]:
    """The five fields kmod appends for a signed module (none if kmod cannot read it)."""
    if not sig.kmod_readable:
        return []
    return [
        ("sig_id", sig.id_type),
        ("signer", _str(sig.signer)),
        ("sig_key", hex_field(sig.key_id)),
        ("sig_hashalgo", sig.kmod_hash_algo(kmod_version)),
        ("signature", hex_field(sig.signature)),
    ]


# --------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModuleInfo:
    """One module as modinfo shows it, with what moddeps read besides."""

    name: str
    path: str | None  # the file; None for a module shown as built-in
    fields: tuple[tuple[str, str], ...]  # kmod's list, in its order (signature fields last)
    module: Module | None = None  # the whole record (exports, needs, ELF), for files
    signature: ModuleSignature | None = None
    error: str | None = None  # "could not get modinfo from ..." (fields then empty)
    messages: tuple[str, ...] = ()  # kmod's diagnostics while reading (stderr)

    @property
    def builtin(self) -> bool:
        return self.path is None

    @property
    def filename(self) -> str:
        return self.path if self.path is not None else "(builtin)"


@dataclass(frozen=True, slots=True)
class Query:
    """One command-line argument and what it found."""

    arg: str
    infos: tuple[ModuleInfo, ...]
    error: str | None = None  # "Module X not found." and the like


@dataclass(frozen=True, slots=True)
class InfoOptions:
    field: str | None = None
    null: bool = False
    modname: bool = False  # -m
    kmod_version: int = 34


@dataclass(slots=True)
class _Target:
    name: str
    path: str | None
    builtin: bool | None = None  # None: ask modules.builtin.bin
    path_known: bool = False


# --------------------------------------------------------------------------
# The tree's indexes
# --------------------------------------------------------------------------


@dataclass
class Tree:
    """A module directory as modinfo sees it: its index files, opened on demand."""

    dirname: str
    indexes: Mapping[str, bytes | None] | None = None  # index name -> contents, instead of the files
    note: str | None = None  # said on stderr (e.g. the tree was scanned)
    _open: dict[str, Index | None] = field(default_factory=dict)

    def index(self, name: str) -> Index | None:
        if name not in self._open:
            idx: Index | None = None
            if self.indexes is not None:
                data = self.indexes.get(name)
                if data is not None:
                    try:
                        idx = Index.from_bytes(data, name=name)
                    except IndexFormatError:
                        idx = None
            else:
                try:
                    idx = Index.open(f"{self.dirname}/{name}.bin")
                except (OSError, IndexFormatError):
                    idx = None  # libkmod: the file cannot be opened, the chain goes on
            self._open[name] = idx
        return self._open[name]

    def exact(self, name: str, key: str) -> str | None:
        idx = self.index(name)
        if idx is None:
            return None
        v = idx.lookup_exact(_fs(key), reader="stdio")
        return None if v is None else _str(v)

    def wildcard(self, name: str, key: str) -> list[str]:
        idx = self.index(name)
        if idx is None:
            return []
        return [_str(v) for _p, v in idx.lookup_wildcard(_fs(key), reader="stdio")]

    def dep_path(self, name: str) -> str | None:
        """The file of ``name`` by ``modules.dep.bin`` (kmod_module_parse_depline)."""
        line = self.exact("modules.dep", name)
        if line is None:
            return None
        colon = line.find(":")
        if colon < 0:
            return None
        rel = line[:colon]
        return rel if rel.startswith("/") else f"{self.dirname}/{rel}"


def open_tree(dirname: str) -> Tree:
    """The tree's own indexes; for a tree depmod never indexed, those moddeps' depmod computes."""
    if os.path.exists(f"{dirname}/modules.dep.bin") or not os.path.isdir(dirname):
        return Tree(dirname)
    from .depmod.render import render_files
    from .read.scan import scan_tree
    from .resolve import resolve

    tree = scan_tree(dirname)
    full = [f"{dirname}/{f.relpath}" if f.relpath else f.path for f in tree.files]
    res = resolve(tree.modules, full)
    if res.topo is None:
        return Tree(dirname, {}, f"{dirname} has no modules.dep.bin and dependency cycles: nothing can be looked up")
    files, _messages = render_files(tree, res)
    contents = {name.removesuffix(".bin"): data for name, data in files if name.endswith(".bin")}
    return Tree(dirname, contents, f"{dirname} has no modules.dep.bin: looking modules up in the indexes "
                "moddeps' depmod computes from its modules")


# --------------------------------------------------------------------------
# Lookups (libkmod kmod_module_new_from_lookup / _name_lookup / _from_path)
# --------------------------------------------------------------------------


def is_module_filename(arg: str) -> bool:
    """kmod tools/modinfo.c is_module_filename: a module suffix, and a regular file (after symlinks)."""
    import stat

    if not arg.endswith(MODULE_SUFFIXES):  # what a file argument must end with
        return False
    try:
        return stat.S_ISREG(os.stat(arg).st_mode)
    except (OSError, ValueError):
        return False


def lookup_alias(tree: Tree, given: str) -> tuple[list[_Target], str | None]:
    raw = alias_normalize(_fs(given))
    if raw is None:
        return [], f"Module alias {given} not found."
    alias = _str(raw)
    if ":" not in alias:
        path = tree.dep_path(alias)
        if path is not None:
            return [_Target(alias, path, False, True)], None
    if alias.startswith("symbol:"):
        names = tree.wildcard("modules.symbols", alias)
        if names:
            return [_Target(n, None) for n in names], None
    names = tree.wildcard("modules.alias", alias)
    if names:
        return [_Target(n, None) for n in names], None
    if tree.exact("modules.builtin", alias) is not None:
        return [_Target(alias, None, True)], None
    names = tree.wildcard("modules.builtin.alias", alias)
    if names:
        return [_Target(n, None, True) for n in names], None
    return [], f"Module {given} not found."


def lookup_name(tree: Tree, given: str) -> tuple[list[_Target], str | None]:
    name = modname_normalize(given)
    path = tree.dep_path(name)
    if path is not None:
        return [_Target(name, path, False, True)], None
    if tree.exact("modules.builtin", name) is not None:
        return [_Target(name, None, True)], None
    names = tree.wildcard("modules.builtin.alias", name)
    if names:
        return [_Target(names[0], None, True)], None
    return [], f"Module name {given} not found."


# --------------------------------------------------------------------------
# What a module says
# --------------------------------------------------------------------------


def builtin_modinfo(dirname: str, name: str) -> tuple[list[tuple[str, str]] | None, str | None]:
    """kmod_builtin_get_modinfo: (fields, None); (None, None) without the file; (None, error)."""
    try:
        with open(f"{dirname}/modules.builtin.modinfo", "rb") as f:
            data = f.read()
    except OSError:
        return None, None
    prefix = _fs(name) + b"."
    out: list[tuple[str, str]] = []
    pos = 0
    n = len(data)
    while pos < n:
        end = data.find(b"\0", pos)
        rec = data[pos:] if end < 0 else data[pos:end]
        pos = n if end < 0 else end + 1
        if b"." not in rec:
            return None, "get_strings: unexpected string without modname prefix"
        if not rec.startswith(prefix):
            if out:
                break
            continue
        key, _, value = _str(rec[len(prefix):]).partition("=")
        out.append((key, value))
    return out, None


def _errno_text(exc: BaseException) -> str:
    text = getattr(exc, "kmod_reason", None)
    return str(text) if text else "Invalid argument"


def read_file_info(name: str, path: str, kmod_version: int) -> ModuleInfo:
    """A module file's fields (kmod_module_get_info) and the rest moddeps reads."""
    from .errors import ModuleReadError
    from .read.elfreader import load_bytes, parse_module
    from .signature import read_signature

    try:
        data, kind = load_bytes(path)
        mod = parse_module(data, path, compression=kind, display_path=path)
    except ModuleReadError as exc:
        return ModuleInfo(name, path, (), error=f"could not get modinfo from '{name}': {_errno_text(exc)}")
    fields: list[tuple[str, str]] = list(mod.modinfo)
    sig = read_signature(data)
    if sig is not None:
        fields.extend(signature_fields(sig, kmod_version))
    return ModuleInfo(name, path, tuple(fields), mod, sig)


def _info(tree: Tree, t: _Target, kmod_version: int) -> ModuleInfo:
    path = t.path if t.path_known else tree.dep_path(t.name)
    builtin = t.builtin
    if path is None:
        if builtin is None:
            builtin = tree.exact("modules.builtin", t.name) is not None
        if not builtin:
            return ModuleInfo(t.name, None, ())  # kmod: no file, so nothing beyond the name
        got, err = builtin_modinfo(tree.dirname, t.name)
        if err is not None:
            return ModuleInfo(t.name, None, (), error=f"could not get modinfo from '{t.name}': Invalid argument",
                              messages=(f"libkmod: ERROR: get_strings: {err}",))
        return ModuleInfo(t.name, None, tuple(got or ()))
    return read_file_info(t.name, path, kmod_version)


def query(tree: Tree, arg: str, opts: InfoOptions) -> Query:
    """One argument, as modinfo_path_do / modinfo_name_do / modinfo_alias_do handle it."""
    if opts.modname:
        targets, err = lookup_name(tree, arg)
    elif is_module_filename(arg):
        abspath = arg if arg.startswith("/") else f"{os.getcwd()}/{arg}"
        name = path_to_modname(arg)
        if name is None:
            return Query(arg, (), f"Module file {arg} not found.")
        targets, err = [_Target(name, abspath, False, True)], None
    else:
        targets, err = lookup_alias(tree, arg)
    if err is not None:
        return Query(arg, (), err)
    return Query(arg, tuple(_info(tree, t, opts.kmod_version) for t in targets))


def run(tree: Tree, args: Sequence[str], opts: InfoOptions) -> list[Query]:
    return [query(tree, a, opts) for a in args]


# --------------------------------------------------------------------------
# Printing (tools/modinfo.c modinfo_do, modinfo_params_do)
# --------------------------------------------------------------------------


def _params(fields: Sequence[tuple[str, str]], messages: list[str]) -> list[tuple[str, str | None, str | None]]:
    """parm/parmtype merged by name: (name, description, type), in kmod's (reversed) order."""
    order: list[str] = []
    found: dict[str, list[str | None]] = {}
    for key, value in fields:
        if key not in ("parm", "parmtype"):
            continue
        name, colon, rest = value.partition(":")
        if not colon:
            messages.append(f'Found invalid "{key}={value}": missing \':\'')
            continue
        slot = found.get(name)
        if slot is None:
            slot = found[name] = [None, None]
            order.append(name)
        slot[0 if key == "parm" else 1] = rest
    return [(n, found[n][0], found[n][1]) for n in reversed(order)]


def _pad(key: str, kmod_version: int) -> str:
    width = 15 - len(key)
    if width >= 0:
        return " " * width
    return "" if kmod_version >= 34 else " " * -width


def render(info: ModuleInfo, opts: InfoOptions, messages: list[str]) -> str:
    """What modinfo prints on stdout for one module; diagnostics go to ``messages``."""
    sep = "\0" if opts.null else "\n"
    fld = opts.field
    out: list[str] = []
    if info.builtin:
        if fld is None:
            out.append(f"{'name:':<16}{info.name}{sep}")
        elif fld == "name":
            out.append(f"{info.name}{sep}")
    if fld == "filename":
        out.append(f"{info.filename}{sep}")
        return "".join(out)
    if fld is None:
        out.append(f"{'filename:':<16}{info.filename}{sep}")
    messages.extend(info.messages)
    if info.error is not None:
        messages.append(info.error)
        return "".join(out)
    if fld == "parm":
        out += [f"{_parm_value(name, desc, typ, field=True)}{sep}"
                for name, desc, typ in _params(info.fields, messages)]
        return "".join(out)
    for key, value in info.fields:
        if fld is not None:
            if key == fld:
                out.append(f"{value}{sep}")
            continue
        if key in ("parm", "parmtype"):
            continue
        if opts.null:
            out.append(f"{key}={value}{sep}")
        else:
            out.append(f"{key}:{_pad(key, opts.kmod_version)}{value}{sep}")
    if fld is not None:
        return "".join(out)
    out += [f"{'parm:':<16}{_parm_value(name, desc, typ, field=False)}{sep}"
            for name, desc, typ in _params(info.fields, messages)]
    return "".join(out)


def _parm_value(name: str, desc: str | None, typ: str | None, *, field: bool) -> str:
    """One merged parameter as modinfo prints it: ``NAME:DESC (TYPE)``, ``NAME:DESC``; with a type
    alone ``-F parm`` prints ``NAME: (TYPE)`` and the full listing ``NAME:TYPE`` (kmod tools/modinfo.c)."""
    if desc is None:
        return f"{name}: ({typ})" if field else f"{name}:{typ}"
    return f"{name}:{desc} ({typ})" if typ is not None else f"{name}:{desc}"


def status(queries: Sequence[Query]) -> int:
    """modinfo's exit status: 1 when an argument was not found or a module could not be read."""
    failed = any(q.error is not None or any(i.error is not None for i in q.infos) for q in queries)
    return 1 if failed else 0
