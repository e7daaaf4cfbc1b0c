"""Types of the C module reader (moddeps/_elfscan.c, _elfscan_codec.c).

``parse`` and ``sig_facts`` return DECLINED for input they leave to the
Python reader (see moddeps/native.py); pack / unpack / unpack_many never do.
"""

from collections.abc import Sequence
from typing import Any, TypeAlias, TypeVar, overload

from _typeshed import ReadableBuffer

from moddeps.native import Declined

#: moddeps.native.DECLINED: the module keeps native.py's contract
DECLINED: Declined

#: (name, crc, gpl_only, namespace, pseudo): Export in Module.to_wire() form
WireExport: TypeAlias = tuple[str, int | None, bool, str | None, bool]
#: (name, crc, weak, versions_only, ext_crc): Import in Module.to_wire() form
WireImport: TypeAlias = tuple[str, int | None, bool, bool, bool]

_E = TypeVar("_E", bound=WireExport)
_I = TypeVar("_I", bound=WireImport)

@overload
def parse(
    data: ReadableBuffer, export_type: None = None, import_type: None = None, memo: None = None
) -> (
    tuple[
        tuple[WireExport, ...], tuple[WireImport, ...], tuple[tuple[str, str], ...], bool, bool, int, int, str
    ]
    | Declined
): ...
@overload
def parse(
    data: ReadableBuffer, export_type: type[_E], import_type: type[_I], memo: dict[_I, _I] | None = None
) -> tuple[tuple[_E, ...], tuple[_I, ...], tuple[tuple[str, str], ...], bool, bool, int, int, str] | Declined: ...

#: parse()'s tuple and sig_facts()'s result, of a plain module file read in part
@overload
def parse_file(
    path: str | bytes, max_size: int, export_type: None = None, import_type: None = None, memo: None = None,
    *, fill: int = -1,
) -> (
    tuple[
        tuple[WireExport, ...], tuple[WireImport, ...], tuple[tuple[str, str], ...], bool, bool, int, int, str,
        tuple[str, str, str, str] | None,
    ]
    | Declined
): ...
@overload
def parse_file(
    path: str | bytes, max_size: int, export_type: type[_E], import_type: type[_I], memo: dict[_I, _I] | None = None,
    *, fill: int = -1,
) -> (
    tuple[
        tuple[_E, ...], tuple[_I, ...], tuple[tuple[str, str], ...], bool, bool, int, int, str,
        tuple[str, str, str, str] | None,
    ]
    | Declined
): ...

_M = TypeVar("_M")

#: the Modules (module_type) of a run of items[start:stop] read by parse_file, the next item's start
#: time and, when it ran out of time, the seconds it took (see moddeps.read.elfreader.read_plain_files)
def parse_files(
    items: Sequence[tuple[str, str]], start: int, stop: int, max_size: int, module_type: type[_M],
    export_type: type[WireExport] | None, import_type: type[WireImport] | None,
    signature_type: type[tuple[str, str, str, str]] | None, memo: dict[Any, Any] | None,
    timeout: float = 0.0, alarm: type[BaseException] | None = None, *, stall: int = -1, ahead: bool = False,
) -> tuple[list[_M], float | None, float | None]: ...

#: (id_type, signer, key_id, hash_algo): SignatureFacts' fields; None: no valid appended signature
def sig_facts(data: ReadableBuffer) -> tuple[str, str, str, str] | Declined | None: ...

#: give back parse_file's buffer and the table of the memo's imports
def release() -> None: ...

# The scan cache's record of a Module (format: moddeps/read/recordcodec.py)

def pack(module: object) -> bytes: ...
@overload
def unpack(
    blob: ReadableBuffer, module_type: type[_M], export_type: type[_E] | None = None,
    import_type: type[_I] | None = None, memo: dict[Any, Any] | None = None,
) -> _M: ...
@overload
def unpack(
    blob: ReadableBuffer, module_type: None = None, export_type: type[_E] | None = None,
    import_type: type[_I] | None = None, memo: dict[Any, Any] | None = None,
) -> tuple[Any, ...]: ...
@overload
def unpack_many(
    blobs: Sequence[ReadableBuffer], module_type: type[_M], export_type: type[_E] | None = None,
    import_type: type[_I] | None = None, memo: dict[Any, Any] | None = None,
) -> list[_M]: ...
@overload
def unpack_many(
    blobs: Sequence[ReadableBuffer], module_type: None = None, export_type: type[_E] | None = None,
    import_type: type[_I] | None = None, memo: dict[Any, Any] | None = None,
) -> list[tuple[Any, ...]]: ...

# The scan cache's keys and rows (twins: moddeps/read/cache.py's file_key loop and _rows)

_K = TypeVar("_K", bound=tuple[str, int, int, int, int, int])

def file_keys(paths: Sequence[str], key_type: type[_K]) -> list[_K | None] | Declined: ...
def pack_rows(entries: Sequence[tuple[Any, str, object]], schema: int) -> list[tuple[object, ...]] | Declined: ...

# zlib.crc32 (moddeps/_crc32.c; twin: zlib itself, moddeps.native.crc32)
def crc32(data: bytes | bytearray | memoryview, value: int = 0, tables: bool = False) -> int: ...
def crc32_folds() -> bool: ...

# The walk of a module tree (twin: moddeps/read/walk.py's _walk_exact)

def walk(
    top: str, rel: str | None, skip: tuple[bytes, ...], record: bool
) -> tuple[list[tuple[str, tuple[int, int, int, int, int]]] | None, list[tuple[str, str, str | None]]] | Declined: ...
def stat_many(paths: Sequence[str], follow: bool) -> list[tuple[int, int, int, int, int] | None] | Declined: ...

#: glibc's malloc_trim(0) (False elsewhere)
def trim_heap() -> bool: ...
def huge_heap(pad: int, threshold: int, objects: bool = False, /) -> bool: ...
