"""The bytes of a module file, decompressed by magic (not by suffix), with a size limit."""

from __future__ import annotations

import lzma
import zlib

#: A module bigger than this once decompressed is refused (a "bomb").
DEFAULT_MAX_SIZE = 1 << 30

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
XZ_MAGIC = b"\xfd7zXZ\x00"
GZIP_MAGIC = b"\x1f\x8b"


class DecompressionError(ValueError):
    """The file looks compressed but cannot be decompressed within the limit."""


def detect(head: bytes) -> str | None:
    """Compression of a file from its first bytes: "zstd", "xz", "gzip" or None.

    kmod libkmod/libkmod-file.c: the magic decides, the suffix only decides
    whether a file is considered at all.
    """
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    return None


def decompress(data: bytes, kind: str, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
    """Decompress ``data`` (a whole file) of the given kind, refusing more than ``max_size`` bytes."""
    try:
        if kind == "xz":
            return _finish(lzma.LZMADecompressor(), data, max_size, "xz")
        if kind == "gzip":
            return _finish(zlib.decompressobj(16 + zlib.MAX_WBITS), data, max_size, "gzip")
        if kind == "zstd":
            return _zstd(data, max_size)
    except DecompressionError:
        raise
    except (lzma.LZMAError, zlib.error, EOFError, MemoryError) as exc:
        raise DecompressionError(f"broken {kind} data ({exc})") from None
    raise DecompressionError(f"unknown compression {kind!r}")


def _finish(dec: lzma.LZMADecompressor | zlib._Decompress, data: bytes, max_size: int, kind: str) -> bytes:
    if isinstance(dec, lzma.LZMADecompressor):
        out = dec.decompress(data, max_length=max_size + 1)
        if len(out) > max_size:
            raise DecompressionError(f"decompresses to more than {max_size} bytes")
        if not dec.eof:
            raise DecompressionError(f"truncated {kind} data")
        return out
    out = dec.decompress(data, max_size + 1)
    if len(out) > max_size:
        raise DecompressionError(f"decompresses to more than {max_size} bytes")
    if not dec.eof:
        raise DecompressionError(f"truncated {kind} data")
    return out


def _zstd(data: bytes, max_size: int) -> bytes:
    try:
        import zstandard
    except ImportError:  # pragma: no cover - zstandard is a declared dependency
        raise DecompressionError("zstd module, but the zstandard package is not installed") from None
    try:
        chunks: list[bytes] = []
        total = 0
        # stream_reader.read(n) never returns more than n bytes, so a bomb
        # cannot allocate past the limit.
        with zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True) as reader:
            while True:
                chunk = reader.read(min(1 << 22, max_size + 1 - total))
                if not chunk:
                    break
                total += len(chunk)
                if total > max_size:
                    raise DecompressionError(f"decompresses to more than {max_size} bytes")
                chunks.append(chunk)
        if not chunks and data:
            raise DecompressionError("empty or truncated zstd data")
        return b"".join(chunks)
    except zstandard.ZstdError as exc:
        raise DecompressionError(f"broken zstd data ({exc})") from None
