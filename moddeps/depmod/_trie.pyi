"""Types of the optional C extension ``moddeps.depmod._trie`` (source: _trie.c).

Each function is the twin of a pure-Python reference named in its docstring;
a TypeError means an input of a shape the C code does not take.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from moddeps.model import Export, Import

def build_index(
    entries: Iterable[tuple[bytes, bytes, int]], dropped: list[bytes] | None = None, preorder: bool = False, /
) -> bytes: ...
def build_index_columns(
    keys: list[bytes],
    values: list[bytes],
    priorities: list[int] | None,
    dropped: list[bytes] | None = None,
    preorder: bool = False,
    /,
) -> bytes: ...
def kmod_hash(key: bytes, /) -> int: ...
def hash_order(keys: Iterable[bytes], buckets: int, /) -> list[bytes]: ...
def alias_keys(aliases: list[str] | list[bytes], /) -> list[bytes | None]: ...
def format_rows(
    head: bytes, firsts: list[str] | list[bytes], mid: bytes, owners: list[int], seconds: list[bytes], tail: bytes, /
) -> bytes: ...
def dep_lines(deps: tuple[tuple[int, ...], ...], topo: tuple[int, ...], shown: list[bytes], /) -> list[bytes]: ...
def symbol_order(owners: dict[str, tuple[int, int]], buckets: int, /) -> list[tuple[bytes, int]]: ...
def starting_with(values: list[str], prefix: str, /) -> list[int]: ...
def line_breaks(values: list[str] | list[bytes], /) -> list[int]: ...
def select_modinfo(modules: Sequence[Any], keys: tuple[str, ...], /) -> list[tuple[list[str], list[int]]]: ...
def resolve_exports(
    modules: Sequence[Any], export_type: type[Export], prefix: str | None, owners: dict[str, tuple[int, int]], /
) -> dict[str, tuple[int, ...]]: ...
def resolve_imports(
    modules: Sequence[Any],
    import_type: type[Import],
    owners: dict[str, tuple[int, int]],
    prefix: str | None,
    check: bool,
    warn: bool,
    paths: Sequence[str],
    /,
) -> tuple[
    list[tuple[int, ...]], list[dict[int, tuple[str, ...]]], list[tuple[int, str]], list[tuple[int, str]], list[str]
]: ...
