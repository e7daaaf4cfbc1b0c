"""Opening and reading input files: regular files only, never blocking, with a size bound.

Every file moddeps reads as input (``modules.order``, ``modules.builtin``
and ``modules.builtin.modinfo``, depmod.d and modprobe.d files,
``Module.symvers`` and ``System.map`` given with ``-E``/``-F``/``--symvers``
/``--system-map``, the inputs of ``diff``, the ``.bin`` indexes, module files)
goes through :func:`open_regular`:

* the file is opened with ``O_NONBLOCK``, so a FIFO in its place does not
  wait for a writer (``open(2)`` of a FIFO for reading blocks until one
  comes), and ``O_NOCTTY``, so a terminal does not become ours;
* ``fstat`` on the opened descriptor (not on the name, which could be
  swapped in between) must say "regular file": a FIFO, a socket or a device
  such as ``/dev/zero`` (an endless source) gives one line naming the file
  and what it is;
* :func:`read_bounded` then reads until end of file, but never more than a
  bound: ``st_size`` is not trusted (files in ``/proc`` say 0, a file may
  grow while it is read).

kmod itself opens these files with a plain ``open``/``fopen`` and would wait
for ever on a FIFO; depmod's own walk already skips module files that are not
regular ("unsupported file type").
"""

from __future__ import annotations

import errno
import os
import stat

from .errors import InputError
from .model import printable

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Callable

#: No text input (Module.symvers ~2 MB, System.map ~10 MB, modules.builtin.modinfo
#: ~1 MB, an index ~5 MB on the largest distribution kernels) comes near this.
MAX_INPUT_SIZE = 1 << 28

#: Reads are done in pieces of this size (a bound is checked between them).
CHUNK = 1 << 23

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


class NotRegularFile(OSError):
    """The path names something other than a regular file (``strerror`` says what)."""


class TooLarge(OSError):
    """The file holds more than the bound allows."""


def file_kind(mode: int) -> str:
    """What a ``st_mode`` describes, for a message: "a FIFO", "a character device", ..."""
    for test, what in _KINDS:
        if test(mode):
            return what
    return f"an unsupported file type ({stat.S_IFMT(mode):o})"


def open_regular(path: str) -> tuple[int, os.stat_result]:
    """Open ``path`` for reading without blocking; the descriptor and its ``fstat``.

    Raises :class:`NotRegularFile` (an ``OSError`` with errno ``EINVAL``) when
    it is not a regular file, and the ``OSError`` of ``open`` otherwise.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, f"not a regular file ({file_kind(st.st_mode)})")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_bounded(fd: int, size_hint: int, limit: int, check: Callable[[], None] | None = None) -> bytes:
    """Read ``fd`` to its end; more than ``limit`` bytes raises :class:`TooLarge`.

    ``check``, when given, is called between pieces, so that a caller can
    stop a long read (a deadline).  A file as long as its ``st_size`` takes
    one ``read`` and one more to see the end; a longer one is gathered in a
    ``BytesIO``, whose value is handed out without a copy.
    """
    import io

    first = os.read(fd, max(min(size_hint, limit, CHUNK) + 1, 1 << 16))
    if len(first) > limit:
        raise TooLarge(errno.EFBIG, f"larger than the {limit}-byte limit")
    if not first:
        return first
    piece = os.read(fd, 1 << 16)
    if not piece:
        return first
    buf = io.BytesIO()
    buf.write(first)
    del first
    total = buf.tell()
    while piece:
        buf.write(piece)
        total += len(piece)
        if total > limit:
            raise TooLarge(errno.EFBIG, f"larger than the {limit}-byte limit")
        if check is not None:
            check()
        piece = os.read(fd, min(CHUNK, limit + 1 - total))
    return buf.getvalue()


def read_input(path: str, *, limit: int = MAX_INPUT_SIZE) -> bytes:
    """The bytes of the input file ``path``; :class:`~moddeps.errors.InputError`
    (one line naming the file and the reason) when it cannot be read."""
    data = read_input_or_none(path, limit=limit, missing_ok=False)
    assert data is not None
    return data


def read_input_or_none(path: str, *, limit: int = MAX_INPUT_SIZE, missing_ok: bool = True) -> bytes | None:
    """Like :func:`read_input`, but None when the file does not exist (``missing_ok``)."""
    try:
        fd, st = open_regular(path)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise InputError(f"{printable(path)}: cannot read: No such file or directory") from None
    except OSError as exc:
        raise InputError(f"{printable(path)}: cannot read: {exc.strerror or exc}") from None
    try:
        return read_bounded(fd, st.st_size, limit)
    except OSError as exc:
        raise InputError(f"{printable(path)}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_optional(path: str) -> bytes | None:
    """An optional input file of the tree (``modules.order``, ``modules.builtin``...):
    None when it does not exist or cannot be opened (kmod then carries on
    without it); InputError, one line naming the file, when it is not a
    regular file or is too big -- never a wait on a FIFO or an endless device."""
    try:
        fd, st = open_regular(path)
    except (NotRegularFile, TooLarge) as exc:
        raise InputError(f"{printable(path)}: cannot read: {exc.strerror}") from None
    except OSError:
        return None
    try:
        return read_bounded(fd, st.st_size, MAX_INPUT_SIZE)
    except (NotRegularFile, TooLarge) as exc:
        raise InputError(f"{printable(path)}: cannot read: {exc.strerror}") from None
    except OSError:
        return None
    finally:
        os.close(fd)


def try_read(path: str, *, limit: int = MAX_INPUT_SIZE) -> tuple[bytes | None, str | None]:
    """(bytes, None), or (None, why) for a file read from a configuration directory.

    kmod skips a depmod.d or modprobe.d file that it cannot open without a
    word: ``why`` is then None.  It is the reason (one phrase) when the file
    is not a regular file (kmod would wait on a FIFO for ever) or is too big
    or fails while being read.
    """
    try:
        fd, st = open_regular(path)
    except NotRegularFile as exc:
        return None, exc.strerror
    except OSError:
        return None, None
    try:
        return read_bounded(fd, st.st_size, limit), None
    except OSError as exc:
        return None, exc.strerror or str(exc)
    finally:
        os.close(fd)
