"""Types of the xz happy path (moddeps/read/_xz.c).

``Decoder.decode`` returns DECLINED for every input it leaves to
moddeps/read/compression.py's Python path (see moddeps/native.py).
"""

from _typeshed import ReadableBuffer

from moddeps.native import Declined

#: moddeps.native.DECLINED: the module keeps native.py's contract
DECLINED: Declined

class Decoder:
    """An xz decoder kept from module to module (one per thread: a second thread's call raises)."""

    def __init__(self) -> None: ...
    def decode(self, data: ReadableBuffer, size: int, seconds: float, /) -> memoryview | Declined:
        """The module ``data`` (a whole ``.ko.xz`` file) holds, when it is one xz stream of exactly
        ``size`` bytes decoded within ``seconds`` (< 0: no bound); else DECLINED."""
    def load(self, path: str, max_size: int, room: int, seconds: float, /) -> tuple[memoryview, int] | bytes | Declined:
        """The file at ``path`` opened, read and closed in one call without the GIL, and decoded as
        :meth:`decode` does when it is one xz stream whose file and declared size fit in ``room``:
        (the module, the file's size); the file's bytes when it was read but not decoded; DECLINED
        when it was not read (not a regular file, an error, larger than ``max_size`` or ``room``, a
        size that changed while it was read)."""

#: unmap the output regions kept for reuse
def release() -> None: ...

#: (regions, bytes mapped, bytes that may be resident) kept for reuse
def pooled() -> tuple[int, int, int]: ...

#: lzma_version_string() of the liblzma linked
def liblzma_version() -> str: ...
