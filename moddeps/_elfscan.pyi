"""Types of the C module reader (moddeps/_elfscan.c)."""

from typing import TypeAlias, TypeVar, overload

from _typeshed import ReadableBuffer

#: (name, crc, gpl_only, namespace, pseudo): Export in Module.to_wire() form
WireExport: TypeAlias = tuple[str, int | None, bool, str | None, bool]
#: (name, crc, weak, versions_only): Import in Module.to_wire() form
WireImport: TypeAlias = tuple[str, int | None, bool, bool]

_E = TypeVar("_E", bound=WireExport)
_I = TypeVar("_I", bound=WireImport)

@overload
def parse(
    data: ReadableBuffer, export_type: None = None, import_type: None = None, memo: None = None
) -> (
    tuple[
        tuple[WireExport, ...], tuple[WireImport, ...], tuple[tuple[str, str], ...], bool, bool, int, int, str
    ]
    | None
): ...
@overload
def parse(
    data: ReadableBuffer, export_type: type[_E], import_type: type[_I], memo: dict[_I, _I] | None = None
) -> tuple[tuple[_E, ...], tuple[_I, ...], tuple[tuple[str, str], ...], bool, bool, int, int, str] | None: ...
