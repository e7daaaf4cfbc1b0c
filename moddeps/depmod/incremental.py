"""A depmod result brought up to date after a few modules changed, without
reading the other modules again.

After a full computation, :func:`capture` keeps what the writers need
beyond the module records, as plain data (~1.5 MB for 4,000 modules):

* the modules that export each symbol, in array order (the last one owns it),
* each module's direct dependencies, in first-reference order,
* the values of the modinfo keys depmod writes (:data:`.reads.MODINFO_KEYS`),
  as the writers' columns,
* the messages of each output group (:data:`.render.GROUPS`) and those made
  before the writers ran,
* the module array (names and shown paths),
* the symbols some module imports that no module exports (unknown, weak or
  the kernel's): a symbol that starts being exported and is not among them
  binds no module anew.

:func:`update` takes that state and the changed modules (the record the
state was computed from and the new one) and renders only the groups the
change touches: a module's new imports move its own dependencies (the
``dep`` group); its new exports move the owner of those symbols
(``symbols``) and the dependencies of the modules that import them, which
the caller finds among the cached records (only those that depended on the
symbol's previous owner; all of them for a symbol that had no owner and
that some module imports); its new aliases or soft
dependencies touch the ``alias``, ``devname`` and ``softdep`` groups.  The
other groups stay as they were.  Modules added or removed first reshape the
state into the new array's indexes (:func:`_reshape`): an added module is a
change from an empty one, a removed one takes its exports with it, and the
indexes the ``.bin`` files hold as priorities are written again where they moved.

It declines (None: compute everything) when the change can reach beyond
what the state holds:

* the modules importing a symbol whose owner moved cannot all be found;
* the old or the new record is an unreadable module (its message);
* a changed module's values need the sanitizer, or the previous result had
  sanitizer messages (their order among the modules is not kept);
* the new dependencies make a cycle (the full path reports it);
* a writer refuses its input (the full path reports it).

Dependencies only: verbose runs (``-v``: the symbols of each edge) and
``-e`` warnings (per module and symbol) are not kept, and the caller does
not come here for them.  tests/test_depmod_incremental.py compares the
result with a full computation over many kinds of change.
"""

from __future__ import annotations

import bisect
import itertools
import marshal
from array import array

from .. import native
from ..kmodversion import KmodTarget
from ..model import Module, fsdecode
from ..records import dataclass
from ..resolve import Resolution, export_name, lookup_name, numbering
from ..typeshim import NamedTuple
from .outputs import WriterInput
from .reads import MODINFO_KEYS
from .render import GROUPS, Rendered, render_groups
from .safety import sanitize

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from typing import Any

#: Bump when the state's layout changes: a state of another format is not used.
FORMAT = 6  # 2: exporters, not owners; 3: parts decoded apart; 4: layout; 5: unreadable modules; 6: unbound

#: The parts of a state, each serialized on its own (marshal) and decoded only when used.
PARTS = ("meta", "exporters", "deps", "columns", "layout", "unbound")


class State:
    """The state of a result.  Parts:

    * ``meta``: (number of modules, {output group: (its file names, its
      messages)}, the messages made before the writers ran, the indexes of
      the unreadable modules: each has a message among those);
    * ``exporters``: {symbol (lookup name): the modules exporting it, array order};
    * ``deps``: per module, its direct dependencies in first-reference order;
    * ``columns``: {key of MODINFO_KEYS: (values, module index of each), array
      order}, stored as the values joined by NUL (a modinfo value has none)
      and the indexes as 32-bit integers: decoding 40,000 aliases costs one
      split instead of 40,000 objects read one by one;
    * ``layout``: (each module's name, each module's shown path), array order:
      what a rerun maps the module array it finds onto, when modules were
      added or removed;
    * ``unbound``: the lookup names that some module imports and no module
      exports (:attr:`moddeps.resolve.Resolution.unbound`; after updates, a
      superset), each between NULs (``"\\0a\\0b\\0"``, ``""`` for none: a
      symbol name holds no NUL), one string to look a symbol up in (6,812
      names, 132 KB, for Debian 12 amd64 without a kernel symbol table; 150,000 pairs of
      a module and a name would double the state); None: not known.

    A part that does not decode raises ValueError.
    """

    __slots__ = ("_raw", "_got")

    def __init__(self, raw: dict[str, bytes]) -> None:
        self._raw = raw
        self._got: dict[str, Any] = {}

    def _part(self, name: str) -> Any:
        if name not in self._got:
            try:
                value = marshal.loads(self._raw[name])
            except (KeyError, EOFError, TypeError) as exc:
                raise ValueError(f"state part {name}: {exc}") from None
            if name == "columns":
                value = _decode_columns(value)
            elif name == "meta" and not _meta_shaped(value):
                raise ValueError("state part meta: not (count, groups, messages, indexes)")
            self._got[name] = value
        return self._got[name]

    @property
    def modules(self) -> int:
        return int(self._part("meta")[0])

    @property
    def groups(self) -> dict[str, tuple[list[str], list[str]]]:
        return self._part("meta")[1]  # type: ignore[no-any-return]

    @property
    def before(self) -> list[str]:
        return self._part("meta")[2]  # type: ignore[no-any-return]

    @property
    def unreadable(self) -> list[int]:
        return self._part("meta")[3]  # type: ignore[no-any-return]

    @property
    def exporters(self) -> dict[str, tuple[int, ...]]:
        return self._part("exporters")  # type: ignore[no-any-return]

    @property
    def deps(self) -> list[tuple[int, ...]]:
        return self._part("deps")  # type: ignore[no-any-return]

    @property
    def columns(self) -> dict[str, tuple[list[str], list[int]]]:
        return self._part("columns")  # type: ignore[no-any-return]

    @property
    def unbound(self) -> str | None:
        joined = self._part("unbound")
        if joined is not None and not (isinstance(joined, str) and joined[:1] == joined[-1:] in ("", "\0")):
            raise ValueError("state part unbound: not names between NULs")
        return joined

    @property
    def layout(self) -> tuple[list[str], list[str]]:
        names, shown = self._part("layout")
        if len(names) != self.modules or len(shown) != self.modules:
            raise ValueError("state part layout: not one entry a module")
        return names, shown

    def encode(self, **parts: Any) -> bytes:
        """This state with ``parts`` replaced, serialized (the others as they were read)."""
        raw = dict(self._raw)
        for name, value in parts.items():
            raw[name] = _encode_part(name, value)
        return marshal.dumps((FORMAT, *(raw[name] for name in PARTS)))


def _meta_shaped(value: Any) -> bool:
    """Whether ``value`` has the shape of the meta part (what the caller uses outside :func:`update`)."""
    def strings(x: Any) -> bool:
        return isinstance(x, list) and all(isinstance(v, str) for v in x)

    return (isinstance(value, tuple) and len(value) == 4 and isinstance(value[0], int)
            and isinstance(value[1], dict)
            and all(isinstance(g, str) and isinstance(fm, tuple) and len(fm) == 2 and strings(fm[0])
                    and strings(fm[1]) for g, fm in value[1].items())
            and strings(value[2]) and isinstance(value[3], list) and all(isinstance(i, int) for i in value[3]))


def _encode_part(name: str, value: Any) -> bytes:
    if name == "columns":
        value = {key: (len(values), "\0".join(values), array("I", owners).tobytes())
                 for key, (values, owners) in value.items()}
    return marshal.dumps(value)


def _decode_columns(value: Any) -> dict[str, tuple[list[str], list[int]]]:
    out = {}
    for key, (count, joined, owners_bytes) in value.items():
        values = joined.split("\0") if count else []
        owners = array("I")
        owners.frombytes(owners_bytes)
        if len(values) != count or len(owners) != count:
            raise ValueError(f"state part columns: {key} does not hold {count} values")
        out[key] = (values, owners.tolist())
    return out


def _name_list(names: Iterable[str]) -> str:
    """The unbound part holding ``names`` (each once, in the order first given)."""
    keys = dict.fromkeys(names)
    got = "\0".join(keys)
    return f"\0{got}\0" if keys else ""


def joined_names(groups: Sequence[tuple[str, ...]]) -> str:
    """The unbound part holding the names of ``groups`` (:func:`_name_list` of them all; C:
    ``_trie.joined_names``, which dedups the ~150,000 names of Debian 12 amd64's modules by
    their cached hashes: ~1 ms where a dict of them takes ~5, in the thread that captures a
    first run's state while the files are written)."""
    return native.twin(native.load("depmod._trie"), lambda c: c.joined_names(groups),
                       lambda: _name_list(itertools.chain.from_iterable(groups)))


def _with_names(joined: str, names: Iterable[str]) -> str | None:
    """The unbound part ``joined`` with ``names`` added; None when it holds them all already."""
    had = joined[1:-1].split("\0") if joined else []
    known = set(had)
    added = [name for name in dict.fromkeys(names) if name not in known]
    return _name_list(itertools.chain(had, added)) if added else None


def _import_keys(m: Module, prefix: str | None) -> Iterator[str]:
    """The lookup names of ``m``'s imports as kmod reads them (an import seen only in the
    versions table, with its CRC, is none to kmod: :func:`moddeps.resolve.kmod_view`)."""
    return (lookup_name(imp.name, prefix) for imp in m.imports if not (imp.versions_only and imp.ext_crc))


def _unbound_of(m: Module, exporters: dict[str, tuple[int, ...]], prefix: str | None) -> list[str]:
    """``m``'s imports (lookup names, as :func:`_bind` takes them) that no module exports."""
    return [key for key in _import_keys(m, prefix) if key not in exporters]


def capture(res: Resolution, columns: dict[str, tuple[list[str], list[int]]], groups: Rendered, before: Sequence[str],
            names: Sequence[str], shown: Sequence[str], unreadable: Sequence[int]) -> bytes:
    """The state of a full computation, serialized (``names``, ``shown``: the
    module array; ``unreadable``: the indexes of the modules that could not be read)."""
    unbound = joined_names(res.unbound) if len(res.unbound) == len(res.deps) else None
    return State({}).encode(
        meta=(len(res.deps), _names_and_messages(groups), list(before), list(unreadable)),
        exporters=dict(res.exporters),
        deps=list(res.deps),
        columns={key: (list(values), list(owners)) for key, (values, owners) in columns.items()},
        layout=(list(names), list(shown)),
        unbound=unbound,
    )


def _names_and_messages(groups: Rendered) -> dict[str, tuple[list[str], list[str]]]:
    """Each group's file names and messages, as the meta part holds them (plain tuples: marshal takes no other)."""
    return {group: ([name for name, _data in got.files], list(got.messages)) for group, got in groups.items()}


def load(blob: bytes | None) -> State | None:
    """The state in ``blob`` (parts not decoded yet), or None."""
    if not blob:
        return None
    try:
        got = marshal.loads(blob)
    except (ValueError, EOFError, TypeError):
        return None
    if (not isinstance(got, tuple) or len(got) != 1 + len(PARTS) or got[0] != FORMAT
            or not all(isinstance(part, bytes) for part in got[1:])):
        return None
    return State(dict(zip(PARTS, got[1:])))


def _export_keys(m: Module, prefix: str | None) -> set[str]:
    return {export_name(e.name, prefix) for e in m.exports}


def _bind(m: Module, exporters: dict[str, tuple[int, ...]], prefix: str | None) -> tuple[int, ...]:
    """The modules ``m``'s imports bind to, in first-reference order (resolve's
    rule: the last module exporting a symbol owns it; a symbol no module
    exports gives no dependency, whether the kernel has it or not)."""
    found: dict[int, None] = {}
    get = exporters.get
    for key in _import_keys(m, prefix):
        exps = get(key)
        if exps:
            found[exps[-1]] = None
    return tuple(found)


def importing(m: Module, symbols: set[str], prefix: str | None) -> bool:
    """Whether ``m`` imports one of ``symbols`` (lookup names)."""
    return any(key in symbols for key in _import_keys(m, prefix))


def _imported(m: Module, symbols: set[str], prefix: str | None) -> list[str]:
    """Those of ``symbols`` (lookup names) that ``m`` imports."""
    return [key for key in _import_keys(m, prefix) if key in symbols]


def _move_exports(exporters: dict[str, tuple[int, ...]], idx: int, gone: set[str], added: set[str]) -> set[str]:
    """Module ``idx`` stops exporting ``gone`` and starts exporting ``added``;
    returns the symbols whose owner changed."""
    moved = set()
    for name in gone:
        exps = exporters.get(name, ())
        rest = tuple(i for i in exps if i != idx)
        if rest:
            exporters[name] = rest
        else:
            exporters.pop(name, None)
        if (rest[-1] if rest else None) != (exps[-1] if exps else None):
            moved.add(name)
    for name in added:
        exps = exporters.get(name, ())
        now = tuple(sorted((*exps, idx)))
        exporters[name] = now
        if now[-1] != (exps[-1] if exps else None):
            moved.add(name)
    return moved


def _selected(m: Module, key: str) -> list[str]:
    return [v for k, v in m.modinfo if k == key]


class Change(NamedTuple):
    """A module that changed."""

    idx: int  # its index in the new array
    old: Module  # the record the state was computed from (added: an empty module of its name)
    new: Module


if TYPE_CHECKING:
    #: ``importers(symbols, among)``: see :func:`update`
    Importers = Callable[[set[str], "set[int] | None"], "dict[int, Module] | None"]


@dataclass(frozen=True, slots=True)
class Update:
    groups: Rendered  # the groups rendered again
    files: dict[str, list[str]]  # every group of the result -> its file names, in write order
    messages: list[str]  # every message of the result
    state: bytes  # the state of the result


def update(
    state: State,
    names: list[bytes],
    shown: Sequence[str],
    changes: Sequence[Change],
    importers: Importers,
    *,
    remap: Sequence[int | None] | None = None,
    dirname: str,
    prefix: str | None,
    warn_dups: bool,
    kmod: KmodTarget,
) -> Update | None:
    """The groups to render again after ``changes``, or None: compute everything.

    ``remap``: when modules were added or removed, the new index of each
    module of the state's array (None: removed); an added module is a change
    whose old record is an empty module of its name.  Indexes in ``changes``,
    ``names`` and ``shown`` are the new array's.

    ``importers(symbols, among)``: every module but the changed ones that
    imports one of ``symbols`` (lookup names), by index, or None if that cannot
    be known; ``among``: only those of these indexes are asked for (None: all).
    """
    try:
        return _update(state, names, shown, changes, importers, remap, dirname, prefix, warn_dups, kmod)
    except ValueError:  # a state part that does not decode, or an index kmod could not write
        return None
    except (TypeError, KeyError, IndexError, AttributeError):  # a state of the wrong shape (the cache seals
        return None  # what it stores, so only a bug gets here): the full computation is never wrong


def _reshape(state: State, remap: Sequence[int | None], size: int) -> tuple[dict[str, Any], set[str], set[str]]:
    """The state's parts in the new array's indexes: (parts, symbols whose
    owner was removed, groups to render again).  The modules before the first
    one added or removed keep their indexes (modules of a new name usually go
    at the end of the array: kmod's order puts the modules modules.order does
    not list last): what only they hold is kept as it is, not copied index by index."""
    if len(remap) != state.modules:
        raise ValueError("remap: not one entry a module")
    first = next((i for i, j in enumerate(remap) if i != j), len(remap))  # the first index that moved
    if first == len(remap):  # modules added after all the others (DKMS's extra/): no index moved, and
        # the exporters and the columns stay as they are (copied by _update if the new modules change them)
        return {"deps": [*state.deps, *[()] * (size - len(remap))]}, set(), {"dep"}
    get = remap.__getitem__
    deps: list[tuple[int, ...]] = [()] * size
    for i, ds in enumerate(state.deps):
        j = remap[i]
        if j is not None:
            # a dependency removed: that module imports a symbol whose owner moved, and is bound again
            deps[j] = ds if not ds or max(ds) < first else tuple(d for d in map(get, ds) if d is not None)
    exporters: dict[str, tuple[int, ...]] = dict(state.exporters)
    moved: set[str] = set()
    again = {"dep"}  # the lines of modules.dep are the array's
    for name, exps in state.exporters.items():
        if exps[-1] < first:  # (exporters are in array order: the last is the largest index)
            continue
        kept = tuple(j for j in map(get, exps) if j is not None)
        if kept:
            exporters[name] = kept
        else:
            del exporters[name]
        owner = remap[exps[-1]]
        if owner is None:  # its owner is gone
            moved.add(name)
        elif owner != exps[-1]:  # its owner's index moved: modules.symbols.bin holds it as the priority
            again.update(("symsafe", "symbols"))
    columns: dict[str, tuple[list[str], list[int]]] = {}
    for key, (values, owners) in state.columns.items():
        at = bisect.bisect_left(owners, first)  # (owners are in array order)
        kept_values: list[str] = values[:at]
        kept_owners: list[int] = owners[:at]
        shifted = False
        for v, o in zip(values[at:], owners[at:]):
            j = remap[o]
            if j is not None:
                kept_values.append(v)
                kept_owners.append(j)
                shifted = shifted or j != o
        if len(kept_values) != len(values):
            again.update(("alias", "devname") if key == "alias" else ("softdep",))
        elif shifted and key == "alias":  # modules.alias.bin holds each owner's index as the priority
            again.add("alias")
        columns[key] = (kept_values, kept_owners)
    return {"deps": deps, "exporters": exporters, "columns": columns}, moved, again


def _importers_of(state: State, moved: set[str], remap: Sequence[int | None] | None, importers: Importers
                  ) -> dict[int, Module] | None:
    """The modules but the changed ones importing one of ``moved`` (symbols whose owner moved), new indexes.

    A module importing a symbol that had an owner depends on that owner (:func:`_bind`), so
    those importers are among the modules whose dependencies hold a previous owner, and the
    previous owners themselves (a module's dependencies leave itself out): only those few
    records are looked at.  A symbol that had no owner may be imported by any module: those
    are looked for among all the records, unless the state's unbound names say that no
    module imports it (an export renamed: its new name)."""
    old_exporters = state.exporters
    owners: set[int] = set()
    unowned: set[str] = set()
    for name in moved:
        exps = old_exporters.get(name)
        if exps:
            owners.add(exps[-1])
        else:
            unowned.add(name)
    found: dict[int, Module] = {}
    if owners:
        among = {i for i, ds in enumerate(state.deps) if not owners.isdisjoint(ds)} | owners
        if remap is not None:
            among = {j for j in (remap[i] for i in among) if j is not None}
        got = importers(moved - unowned, among)
        if got is None:
            return None
        found.update(got)
    joined = state.unbound if unowned else None
    if joined is not None:  # a symbol no module imports unbound binds none anew: no record to search
        unowned = {name for name in unowned if f"\0{name}\0" in joined}
    if unowned:
        got = importers(unowned, None)
        if got is None:
            return None
        found.update(got)
    return found


def _update(state: State, names: list[bytes], shown: Sequence[str], changes: Sequence[Change],
            importers: Importers, remap: Sequence[int | None] | None,
            dirname: str, prefix: str | None, warn_dups: bool, kmod: KmodTarget) -> Update | None:
    if state.groups.get("sanitize", ([], []))[1] or (remap is None and state.modules != len(names)):
        return None
    fresh, complaints = sanitize([c.new for c in changes])
    if complaints:
        return None
    for _idx, old, new in changes:
        if old.error is not None or new.error is not None or old.name != new.name:
            return None
    changed: dict[str, Any] = {}  # the parts that change, new values
    again: set[str] = set()  # the groups to render again
    moved: set[str] = set()
    unreadable = state.unreadable
    if remap is not None:
        if any(remap[i] is None for i in unreadable):  # its message goes with it: not kept apart
            return None
        unreadable = [remap[i] for i in unreadable]  # type: ignore[misc]
        changed, moved, again = _reshape(state, remap, len(names))
        changed["layout"] = ([fsdecode(n) for n in names], list(shown))

    # symbols: who exports what, and whom each changed module binds to
    rebind: dict[int, Module] = {}
    for (idx, old, _new), new in zip(changes, fresh):
        was, now = _export_keys(old, prefix), _export_keys(new, prefix)
        if was != now:
            if "exporters" not in changed:
                changed["exporters"] = dict(state.exporters)
            moved |= _move_exports(changed["exporters"], idx, was - now, now - was)
        if was != now or old.imports != new.imports:
            rebind[idx] = new
    if moved:  # the modules importing a symbol whose owner moved, the changed ones among them
        found = _importers_of(state, moved, remap, importers)
        if found is None:
            return None
        found.update((idx, new) for (idx, _old, _new), new in zip(changes, fresh))
        for idx, m in found.items():
            rebind.setdefault(idx, m)
        again.update(("symsafe", "symbols"))
    exporters = changed.get("exporters", state.exporters) if rebind or moved or "symbols" in again else {}
    deps = changed.get("deps", state.deps)
    for idx, m in rebind.items():
        bound = _bind(m, exporters, prefix)
        if bound != deps[idx]:
            if "deps" not in changed:
                deps = changed["deps"] = list(deps)
            deps[idx] = bound
            again.add("dep")
    # the unbound names (a superset: none leaves): a name joins them when a changed module imports
    # it unbound, or when it lost its last exporter and a module imports it.  Every importer of
    # such a symbol is among the modules bound again (it depended on the symbol's owner:
    # _importers_of found it), so one that no module imports does not join (an export renamed,
    # then renamed back: the name it had meanwhile)
    joined = state.unbound if rebind else None
    if joined is not None:
        fresh_names = [name for idx, _old, _new in changes if idx in rebind
                       for name in _unbound_of(rebind[idx], exporters, prefix)]
        lost = {name for name in moved if name not in exporters}
        if lost:
            fresh_names += [name for m in rebind.values() for name in _imported(m, lost, prefix)]
        grown = _with_names(joined, fresh_names)
        if grown is not None:
            changed["unbound"] = grown

    # modinfo: the columns of the values depmod writes
    for (idx, old, _new), new in zip(changes, fresh):
        for key in MODINFO_KEYS:
            values = _selected(new, key)
            if values == _selected(old, key):
                continue
            if "columns" not in changed:
                changed["columns"] = {k: (list(v), list(o)) for k, (v, o) in state.columns.items()}
            changed["columns"].setdefault(key, ([], []))
            column, owners = changed["columns"][key]
            lo, hi = bisect.bisect_left(owners, idx), bisect.bisect_right(owners, idx)
            column[lo:hi] = values
            owners[lo:hi] = [idx] * len(values)
            again.update(("alias", "devname") if key == "alias" else ("softdep",))

    topo: tuple[int, ...] | None = None
    if "dep" in again:
        topo = numbering(deps)
        if topo is None:
            return None
    # what the writers of the groups rendered again read of a resolution
    owners_now = {name: (exps[-1], 0) for name, exps in exporters.items()} if "symbols" in again else {}
    res = Resolution(owners=owners_now, exporters=exporters, deps=tuple(deps), edge_symbols=(), unknown=(),
                     mismatched=(), topo=topo, messages=())
    columns = (changed.get("columns") or state.columns) if again & {"alias", "devname", "softdep"} else {}
    wi = WriterInput.of_columns(names, shown, res, columns)
    groups = render_groups(wi, dirname, [g for g in GROUPS if g in again], kmod, warn_dups=warn_dups)
    now_groups = {**{g: got for g, got in state.groups.items() if g not in groups}, **_names_and_messages(groups)}
    flat = list(state.before)
    for g in GROUPS:
        flat += now_groups.get(g, ([], []))[1]
    blob = state.encode(meta=(len(names), now_groups, state.before, unreadable), **changed)
    return Update(groups, {g: now_groups[g][0] for g in GROUPS if g in now_groups}, flat, blob)
