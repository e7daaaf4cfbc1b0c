"""The scan cache's binary record of one :class:`~moddeps.model.Module`.

:func:`pack` and :func:`unpack` / :func:`unpack_many` use the C codec of
``moddeps._elfscan`` when it is built (and ``MODDEPS_PURE`` is not set), else
the pure-Python twin here (:func:`py_pack`, :func:`py_unpack`,
:func:`py_unpack_many`).  Both write the very same bytes and read any blob
alike -- a database written by one is read by the other -- and both treat a
blob as hostile: a malformed, truncated or overlong one raises ValueError
(the format has no checksum: a corrupted blob that is still well-formed
gives some other Module, as a corrupted marshal record did).

Format 1 (all integers unsigned, little-endian)::

    offset  size
      0     1   FORMAT (1), or FORMAT_SIGNED (2) for a module with a
                signature; anything else is refused
      1     1   flags: 0x01 has_init, 0x02 has_exit, 0x04 compression is a
                string, 0x08 error is a string, 0x10 kmod_error is a string,
                0x20 CRCs are 8 bytes (else 4), bits 6-7 the width of a string
                length (0: 1 byte, 1: 2 bytes, 2: 4 bytes; 3 is refused)
      2     1   elf_class
      3     2   machine
      5     4   E, the number of exports
      9     4   I, the number of imports
     13     4   P, the number of modinfo pairs
     17     E   per export: 0x01 gpl_only, 0x02 pseudo, 0x04 namespace is a
                string, 0x08 crc is a number (other bits must be 0)
            I   per import: 0x01 weak, 0x02 versions_only, 0x04 crc is a
                number, 0x08 ext_crc (other bits must be 0; 0x08 came
                with READER_SCHEMA 2, and older records simply lack it)
            S*w the byte length of each string (S strings, each w bytes)
            C*c the CRCs: the exports' that are numbers, then the imports'
            ...  the strings, back to back, up to the very end of the blob:
                name, path, byte_order, [compression], [error], [kmod_error],
                each export's name [and namespace], each import's name, each
                modinfo key and value, [the signature's id_type, signer,
                key_id and hash_algo] (FORMAT_SIGNED only)

A module without a signature is written as before READER_SCHEMA 3 (format
1); one with a signature (``Module.signature``) has FORMAT_SIGNED and four
strings more.

A string is its UTF-8 bytes with the ``surrogatepass`` handler, so every
Python str (the ``surrogateescape`` strings of module files included) comes
back exactly.  The writer is canonical: the narrowest length width, 8-byte
CRCs only when one needs them.  Values the format cannot hold (a CRC outside
0..2**64-1, machine outside 0..65535, elf_class outside 0..255) raise
ValueError; a field of the wrong type raises TypeError.

Compared with ``marshal.dumps(module.to_wire())`` on the Debian amd64 tree
(4,022 modules): 7.3 instead of 9.2 MB; in C, 10 instead of 65 ms to write
them all and 16-25 instead of 80-100 ms to read them back, Module objects
included (:func:`unpack_many` makes equal imports one object, and equal
modinfo keys, namespaces, byte orders and compressions).  The pure-Python twin is about 2x slower
than marshal both ways.
"""

from __future__ import annotations

import struct
import sys
from array import array
from itertools import repeat

from ..model import Export, Import, Module, SignatureFacts
from ..native import load as _load_native
from ..native import twin

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType
    from typing import Any

FORMAT = 1
FORMAT_SIGNED = 2

_HEADER = struct.Struct("<BBBHIII")
HEADER_SIZE = _HEADER.size  # 17

F_INIT, F_EXIT, F_COMPRESSION, F_ERROR, F_KMOD_ERROR, F_CRC64 = 1, 2, 4, 8, 16, 32
E_GPL, E_PSEUDO, E_NS, E_CRC = 1, 2, 4, 8
I_WEAK, I_VERSIONS_ONLY, I_CRC, I_EXT_CRC = 1, 2, 4, 8

_WIDTHS = (1, 2, 4)
#: Module's fields, in the order of its constructor
_FIELDS = (
    "name", "path", "exports", "imports", "modinfo", "has_init", "has_exit", "machine", "elf_class",
    "byte_order", "compression", "error", "kmod_error", "signature",
)
_U64 = (1 << 64) - 1
_BIG_HOST = sys.byteorder == "big"


def _array_code(size: int) -> str:
    for code in "BHILQ":
        if array(code).itemsize == size:
            return code
    raise ImportError(f"no array type of {size} bytes")  # pragma: no cover - every CPython has them


_CODE = {1: "B", 2: _array_code(2), 4: _array_code(4), 8: _array_code(8)}

#: export flags (0..15) -> (gpl_only, pseudo, has a namespace, has a CRC)
_EXPORT_FLAGS = tuple((bool(f & E_GPL), bool(f & E_PSEUDO), bool(f & E_NS), bool(f & E_CRC)) for f in range(16))
#: import flags (0..15) -> weak, versions_only, ext_crc
_WEAK = tuple(bool(f & I_WEAK) for f in range(16))
_VERSIONS_ONLY = tuple(bool(f & I_VERSIONS_ONLY) for f in range(16))
_EXT_CRC = tuple(bool(f & I_EXT_CRC) for f in range(16))
_EXPORT_FLAG_VALUES = bytes(range(16))
_IMPORT_FLAG_VALUES = bytes(range(16))
#: byte -> 1 where a bit is set, for bytes.translate(...).count(1)
_BIT2 = bytes(1 if b & 4 else 0 for b in range(256))
_BIT3 = bytes(1 if b & 8 else 0 for b in range(256))


def _to_le(values: list[int], size: int) -> bytes:
    a = array(_CODE[size], values)
    if _BIG_HOST and size > 1:  # pragma: no cover - big-endian hosts
        a.byteswap()
    return a.tobytes()


def _from_le(data: bytes | memoryview, size: int) -> list[int]:
    if size == 1:
        return list(data)
    a = array(_CODE[size])
    a.frombytes(data)
    if _BIG_HOST:  # pragma: no cover - big-endian hosts
        a.byteswap()
    return a.tolist()


# (str and int subclasses are read as their str and int values, as the C code does)


def _enc(s: object) -> bytes:
    if not isinstance(s, str):
        raise TypeError(f"expected str, not {type(s).__name__}")
    return str.encode(s, "utf-8", "surrogatepass")


def _crc(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"a CRC must be an int or None, not {type(value).__name__}")
    v = int.__int__(value)
    if not 0 <= v <= _U64:
        raise ValueError(f"CRC {v} does not fit in 64 bits")
    return v


def _small(value: object, limit: int, what: str) -> int:
    if not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    v = int.__int__(value)
    if not 0 <= v <= limit:
        raise ValueError(f"{what} {v} out of range 0..{limit}")
    return v


def _tuple(value: object, what: str) -> tuple[Any, ...]:
    if not isinstance(value, tuple):
        raise TypeError(f"{what} must be a tuple, not {type(value).__name__}")
    return value


def _record(r: object, size: int, what: str) -> tuple[Any, ...]:
    if not isinstance(r, tuple) or len(r) != size:
        raise TypeError(f"each of {what} must be a tuple of {size}")
    return r


def py_pack(m: Module) -> bytes:
    """The record of ``m`` (pure Python; the same bytes, and for a module the
    format cannot hold the same exception class, as the C ``pack``: both
    check the fields in the same order)."""
    fields = [getattr(m, f) for f in _FIELDS]
    exports = _tuple(fields[2], "exports")
    imports = _tuple(fields[3], "imports")
    modinfo = _tuple(fields[4], "modinfo")
    flags = (F_INIT if fields[5] else 0) | (F_EXIT if fields[6] else 0)
    elf_class = _small(fields[8], 0xFF, "elf_class")
    machine = _small(fields[7], 0xFFFF, "machine")
    strings = [_enc(fields[0]), _enc(fields[1]), _enc(fields[9])]
    for bit, opt in ((F_COMPRESSION, fields[10]), (F_ERROR, fields[11]), (F_KMOD_ERROR, fields[12])):
        if opt is not None:
            flags |= bit
            strings.append(_enc(opt))
    eflags = bytearray()
    crcs: list[int] = []
    for e in exports:
        name, crc, gpl_only, namespace, pseudo = _record(e, 5, "exports")
        f = E_GPL if gpl_only else 0
        f |= E_PSEUDO if pseudo else 0
        strings.append(_enc(name))
        if namespace is not None:
            f |= E_NS
            strings.append(_enc(namespace))
        if crc is not None:
            f |= E_CRC
            crcs.append(_crc(crc))
        eflags.append(f)
    iflags = bytearray()
    add_string, add_crc, add_flags = strings.append, crcs.append, iflags.append
    for i in imports:
        # (the common types inline; anything else through the checking helpers)
        name, crc, weak, versions_only, ext_crc = i if type(i) is Import else _record(i, 5, "imports")
        f = I_WEAK if weak else 0
        f |= I_VERSIONS_ONLY if versions_only else 0
        f |= I_EXT_CRC if ext_crc else 0
        add_string(name.encode("utf-8", "surrogatepass") if type(name) is str else _enc(name))
        if crc is not None:
            f |= I_CRC
            add_crc(crc if type(crc) is int and 0 <= crc <= _U64 else _crc(crc))
        add_flags(f)
    for pair in modinfo:
        key, value = _record(pair, 2, "modinfo")
        strings.append(_enc(key))
        strings.append(_enc(value))
    fmt = FORMAT
    if fields[13] is not None:
        sig = fields[13]
        if not isinstance(sig, tuple) or len(sig) != 4:
            raise TypeError("signature must be a tuple of 4 or None")
        strings.extend(map(_enc, sig))
        fmt = FORMAT_SIGNED
    lengths = [len(s) for s in strings]
    longest = max(lengths)
    if longest < 1 << 8:
        code = 0
    elif longest < 1 << 16:
        code = 1
    elif longest < 1 << 32:
        code = 2
    else:
        raise ValueError("a string of 4 GiB or more")
    crc_size = 4
    if crcs and max(crcs) > 0xFFFFFFFF:
        flags |= F_CRC64
        crc_size = 8
    flags |= code << 6
    header = _HEADER.pack(fmt, flags, elf_class, machine, len(exports), len(imports), len(modinfo))
    return b"".join((header, eflags, iflags, _to_le(lengths, _WIDTHS[code]), _to_le(crcs, crc_size), *strings))


def _bad(why: str) -> ValueError:
    return ValueError(f"damaged module record: {why}")


def py_unpack_fields(blob: bytes, memo: dict[Any, Import] | None = None) -> tuple[Any, ...]:
    """The 14 fields of the Module in ``blob``, exports and imports as Export
    and Import records (pure Python).  ValueError for any malformed blob,
    TypeError for an object that is not bytes-like."""
    if type(blob) is not bytes:
        blob = bytes(memoryview(blob))
    size = len(blob)
    if size < HEADER_SIZE:
        raise _bad("too short")
    fmt, flags, elf_class, machine, n_exp, n_imp, n_info = _HEADER.unpack_from(blob)
    if fmt != FORMAT and fmt != FORMAT_SIGNED:
        raise _bad(f"format {fmt}, expected {FORMAT} or {FORMAT_SIGNED}")
    code = flags >> 6
    if code == 3:
        raise _bad("bad length width")
    width = _WIDTHS[code]
    pos = HEADER_SIZE
    if n_exp + n_imp > size - pos:
        raise _bad("counts beyond the end")
    eflags = blob[pos:pos + n_exp]
    pos += n_exp
    iflags = blob[pos:pos + n_imp]
    pos += n_imp
    # every flag byte is checked before anything is sized from them
    if eflags.translate(None, _EXPORT_FLAG_VALUES) or iflags.translate(None, _IMPORT_FLAG_VALUES):
        raise _bad("unknown flag bits")
    n_ecrc = eflags.translate(_BIT3).count(1)
    n_icrc = iflags.translate(_BIT2).count(1)
    n_str = (3 + (flags >> 2 & 1) + (flags >> 3 & 1) + (flags >> 4 & 1) + n_exp + eflags.translate(_BIT2).count(1)
             + n_imp + 2 * n_info + (4 if fmt == FORMAT_SIGNED else 0))
    crc_size = 8 if flags & F_CRC64 else 4
    if n_str * width + (n_ecrc + n_icrc) * crc_size > size - pos:
        raise _bad("columns beyond the end")
    lengths = _from_le(blob[pos:pos + n_str * width], width)
    pos += n_str * width
    crcs = _from_le(blob[pos:pos + (n_ecrc + n_icrc) * crc_size], crc_size)
    pos += (n_ecrc + n_icrc) * crc_size
    if sum(lengths) != size - pos:
        raise _bad("string lengths do not add up to the record")
    data = blob[pos:]
    # the strings before the first non-ASCII byte are slices of one str
    cut = len(data) if data.isascii() else _first_non_ascii(data)
    text = data[:cut].decode("ascii")
    strings: list[str] = []
    append = strings.append
    at = 0
    for n in lengths:
        end = at + n
        append(text[at:end] if end <= cut else data[at:end].decode("utf-8", "surrogatepass"))
        at = end

    new = tuple.__new__
    name, path, byte_order = strings[0], strings[1], strings[2]
    k = 3
    compression = error = kmod_error = None
    if flags & F_COMPRESSION:
        compression = strings[k]
        k += 1
    if flags & F_ERROR:
        error = strings[k]
        k += 1
    if flags & F_KMOD_ERROR:
        kmod_error = strings[k]
        k += 1
    exports = []
    c = 0
    for f in eflags:
        gpl, pseudo, has_ns, has_crc = _EXPORT_FLAGS[f]
        ename = strings[k]
        k += 1
        namespace = None
        if has_ns:
            namespace = strings[k]
            k += 1
        crc = None
        if has_crc:
            crc = crcs[c]
            c += 1
        exports.append(new(Export, (ename, crc, gpl, namespace, pseudo)))
    names = strings[k:k + n_imp]
    k += n_imp
    icrcs: list[int | None]
    if n_icrc == n_imp:
        icrcs = crcs[c:]  # type: ignore[assignment]
    else:
        it = iter(crcs[c:])
        icrcs = [next(it) if f & I_CRC else None for f in iflags]
    records = map(new, repeat(Import), zip(names, icrcs, map(_WEAK.__getitem__, iflags),
                                             map(_VERSIONS_ONLY.__getitem__, iflags),
                                             map(_EXT_CRC.__getitem__, iflags)))
    if memo is not None:
        made = list(records)
        imports = tuple(map(memo.setdefault, made, made))
    else:
        imports = tuple(records)
    signature = None
    if fmt == FORMAT_SIGNED:
        signature = new(SignatureFacts, strings[-4:])
        del strings[-4:]
    pairs = iter(strings[k:])
    modinfo = tuple(zip(pairs, pairs))
    return (
        name, path, tuple(exports), imports, modinfo, bool(flags & F_INIT), bool(flags & F_EXIT),
        machine, elf_class, byte_order, compression, error, kmod_error, signature,
    )



def _first_non_ascii(data: bytes) -> int:
    """Where the first byte past 0x7f of ``data`` is (there is one)."""
    return next(i for i, byte in enumerate(data) if byte > 0x7F)

def py_unpack(blob: bytes, memo: dict[Any, Import] | None = None) -> Module:
    """The Module of :func:`py_pack`'s record (pure Python)."""
    return Module(*py_unpack_fields(blob, memo))


def py_unpack_many(blobs: Sequence[bytes], memo: dict[Any, Import] | None = None) -> list[Module]:
    return [Module(*py_unpack_fields(b, memo)) for b in blobs]


_native = _load_native("_elfscan")


def accelerator() -> ModuleType | None:
    """The C codec (``moddeps._elfscan``), None when it is not built or switched off: also what
    :mod:`moddeps.read.cache` makes its keys and rows with."""
    return _native


def pack(m: Module) -> bytes:
    """The record of ``m``: TypeError / ValueError if a field cannot be stored."""
    return twin(_native, lambda c: c.pack(m), lambda: py_pack(m))


def unpack(blob: bytes, memo: dict[Any, Import] | None = None) -> Module:
    """The Module of a record; ValueError if the blob is not a valid record.

    ``memo`` (see :meth:`Module.from_wire`) makes equal imports one object.
    """
    return twin(_native, lambda c: c.unpack(blob, Module, Export, Import, memo, SignatureFacts),
                lambda: py_unpack(blob, memo))


def unpack_many(blobs: Sequence[bytes], memo: dict[Any, Import] | None = None) -> list[Module]:
    """:func:`unpack` of each blob; ValueError if any is not a valid record."""
    return twin(_native, lambda c: c.unpack_many(blobs, Module, Export, Import, memo, SignatureFacts),
                lambda: py_unpack_many(blobs, memo))
