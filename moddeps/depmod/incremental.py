"""A depmod result brought up to date after a few modules changed, without
reading the other modules again.

After a full computation, :func:`capture` keeps what the writers need
beyond the module records, as plain data (~1 MB for 4,000 modules):

* the owner of each symbol a module exports (the resolution's winner),
* each module's direct dependencies, in first-reference order,
* the values of the modinfo keys depmod writes (:data:`.reads.MODINFO_KEYS`),
  as the writers' columns,
* the messages of each output group (:data:`.run.GROUPS`) and those made
  before the writers ran.

:func:`update` takes that state and the changed modules (the record the
state was computed from and the new one) and renders only the groups the
change touches: a module's new imports move its own dependencies (the
``dep`` group), its new aliases or soft dependencies the ``alias``,
``devname`` and ``softdep`` groups.  The other groups stay as they were.

It declines (None: compute everything) when the change can reach beyond
the changed module or beyond what the state holds:

* a changed module exports another set of symbols (other modules'
  dependencies and ``modules.symbols`` may move);
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
import marshal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..model import Module
from ..resolve import KERNEL, Resolution, lookup_name, numbering
from .reads import MODINFO_KEYS

#: Bump when the state's layout changes: a state of another format is not used.
FORMAT = 1

#: group -> (its files in write order, its messages), as moddeps.depmod.run renders them
Rendered = dict[str, tuple[list[tuple[str, bytes]], list[str]]]


@dataclass(frozen=True, slots=True)
class State:
    owners: dict[str, int]  # module-exported symbol (lookup name) -> index of the module that owns it
    deps: list[tuple[int, ...]]  # per module, its direct dependencies in first-reference order
    columns: dict[str, tuple[list[str], list[int]]]  # MODINFO_KEYS -> (values, module index), array order
    groups: dict[str, tuple[list[str], list[str]]]  # output group -> (its file names, its messages)
    before: list[str]  # the messages made before the writers ran


def capture(res: Resolution, columns: dict[str, Any], groups: Rendered, before: Sequence[str]) -> bytes:
    """The state of a full computation, serialized."""
    owners = {name: owner for name, (owner, _crc) in res.owners.items() if owner != KERNEL}
    return marshal.dumps((FORMAT, owners, list(res.deps), {k: (list(v), list(o)) for k, (v, o) in columns.items()},
                          _names_and_messages(groups), list(before)))


def _names_and_messages(groups: Rendered) -> dict[str, tuple[list[str], list[str]]]:
    return {group: ([name for name, _data in files], list(msgs)) for group, (files, msgs) in groups.items()}


def load(blob: bytes | None) -> State | None:
    if not blob:
        return None
    try:
        got = marshal.loads(blob)
        if not isinstance(got, tuple) or len(got) != 6 or got[0] != FORMAT:
            return None
        return State(*got[1:])
    except (ValueError, EOFError, TypeError):
        return None


def _export_keys(m: Module, prefix: str | None) -> set[str]:
    # as resolve: kmod strips one -P prefix character from an exported name
    return {e.name[1:] if prefix and e.name.startswith(prefix) else e.name for e in m.exports}


def _bind(m: Module, owners: dict[str, int], prefix: str | None) -> tuple[int, ...]:
    """The modules ``m``'s imports bind to, in first-reference order (resolve's rule)."""
    found: dict[int, None] = {}
    get = owners.get
    for imp in m.imports:
        name = imp.name
        owner = get(lookup_name(name, prefix) if (name[:1] == "." or prefix) else name)
        if owner is not None:
            found[owner] = None
    return tuple(found)


def _selected(m: Module, key: str) -> list[str]:
    return [v for k, v in m.modinfo if k == key]


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
    changes: Sequence[tuple[int, Module, Module]],
    *,
    dirname: str,
    prefix: str | None,
    warn_dups: bool,
) -> Update | None:
    """The groups to render again after ``changes`` (index, the record
    ``state`` knows, the new record), or None: compute everything."""
    from .outputs import Layout
    from .run import GROUPS, render_groups
    from .safety import sanitize

    if state.groups.get("sanitize", ([], []))[1] or len(state.deps) != len(names):
        return None
    fresh, complaints = sanitize([new for _i, _old, new in changes])
    if complaints:
        return None
    deps = list(state.deps)
    columns = {key: (list(values), list(owners)) for key, (values, owners) in state.columns.items()}
    again: set[str] = set()
    for (idx, old, _new), new in zip(changes, fresh):
        if old.error is not None or new.error is not None or old.name != new.name:
            return None
        if _export_keys(old, prefix) != _export_keys(new, prefix):
            return None
        bound = _bind(new, state.owners, prefix)
        if bound != deps[idx]:
            deps[idx] = bound
            again.add("dep")
        for key in MODINFO_KEYS:
            values = _selected(new, key)
            if values == _selected(old, key):
                continue
            column, owners = columns[key]
            lo, hi = bisect.bisect_left(owners, idx), bisect.bisect_right(owners, idx)
            column[lo:hi] = values
            owners[lo:hi] = [idx] * len(values)
            again.update(("alias", "devname") if key == "alias" else ("softdep",))
    topo: tuple[int, ...] | None = None
    if "dep" in again:
        topo = numbering(deps)
        if topo is None:
            return None
    res = Resolution(owners={}, exporters={}, deps=tuple(deps), edge_symbols=(), unknown=(), mismatched=(),
                     topo=topo, messages=())
    layout = Layout.of_columns(names, shown, res, columns)
    try:
        groups = render_groups(layout, dirname, [g for g in GROUPS if g in again], warn_dups=warn_dups)
    except ValueError:  # an index kmod could not write: the full computation says so
        return None
    kept = {g: got for g, got in state.groups.items() if g not in groups}
    now = {**kept, **_names_and_messages(groups)}
    flat = list(state.before)
    for g in GROUPS:
        flat += now.get(g, ([], []))[1]
    blob = marshal.dumps((FORMAT, state.owners, deps, columns, now, state.before))
    return Update(groups, {g: now[g][0] for g in GROUPS if g in now}, flat, blob)
