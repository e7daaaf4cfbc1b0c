"""Types of the optional C extension ``moddeps.depmod._trie`` (_trie.c, _trie_resolve.c).

Each function is the twin of a pure-Python reference named in its docstring.
It returns DECLINED for data of a shape it does not take (the caller then runs
the reference) and raises TypeError for a call that does not match these
types; see moddeps/native.py.  The data arguments are typed here as the
callers pass them; anything else is declined rather than refused.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from moddeps.model import Export, Import
from moddeps.native import Declined

#: moddeps.native.DECLINED: the module keeps native.py's contract
DECLINED: Declined

def build_index(
    entries: Iterable[tuple[bytes, bytes, int]], dropped: list[bytes] | None = None, preorder: bool = False, /
) -> bytes | Declined: ...
def build_index_columns(
    keys: list[bytes],
    values: list[bytes],
    priorities: list[int] | None,
    dropped: list[bytes] | None = None,
    preorder: bool = False,
    /,
) -> bytes | Declined: ...

class PendingIndex:
    def result(self) -> bytes: ...

def start_index(
    entries: Iterable[tuple[bytes, bytes, int]], dropped: list[bytes] | None = None, preorder: bool = False, /
) -> PendingIndex | bytes | Declined: ...
def start_index_columns(
    keys: list[bytes],
    values: list[bytes],
    priorities: list[int] | None,
    dropped: list[bytes] | None = None,
    preorder: bool = False,
    /,
) -> PendingIndex | bytes | Declined: ...
def kmod_hash(key: bytes, /) -> int | Declined: ...
def hash_order(keys: Iterable[bytes], buckets: int, /) -> list[bytes] | Declined: ...
def alias_keys(aliases: list[str] | list[bytes], /) -> list[bytes | None] | Declined: ...
def format_rows(
    head: bytes, firsts: list[str] | list[bytes], mid: bytes, owners: list[int], seconds: list[bytes], tail: bytes, /
) -> bytes | Declined: ...
def dep_lines(
    deps: tuple[tuple[int, ...], ...], topo: tuple[int, ...] | None, shown: list[bytes], /
) -> list[bytes] | Declined: ...
def symbol_order(
    owners: dict[str, tuple[int, int]], buckets: int, prefix: bytes, /
) -> tuple[list[bytes], list[int]] | Declined: ...
def starting_with(values: list[str], prefix: str, /) -> list[int] | Declined: ...
def line_breaks(values: list[str] | list[bytes], /) -> list[int] | Declined: ...
def first_non_ascii(values: list[bytes], /) -> int | Declined: ...
def number(deps: Sequence[tuple[int, ...]], /) -> tuple[int, ...] | Declined | None: ...
def select_modinfo(
    modules: Iterable[Any], keys: tuple[str, ...], /
) -> list[tuple[list[str], list[int]]] | Declined: ...
def resolve_exports(
    modules: Iterable[Any], export_type: type[Export], prefix: str | None, owners: dict[str, tuple[int, int]], /
) -> dict[str, tuple[int, ...]] | Declined: ...
def resolve_imports(
    modules: Sequence[Any],
    import_type: type[Import],
    owners: dict[str, tuple[int, int]],
    prefix: str | None,
    check: bool,
    warn: bool,
    paths: Sequence[str],
    /,
) -> (
    tuple[
        list[tuple[int, ...]], list[dict[int, tuple[str, ...]]], list[tuple[str, ...]], list[tuple[int, str]], list[str]
    ]
    | Declined
): ...
