"""Atomic writing of a set of output files.

Every file is first written in full to a temporary file in its final
directory, flushed and fsync'd; only when all of them exist are they renamed
into place (rename is atomic within a directory).  A failure before the
renames leaves the previous files untouched and removes the temporaries; a
process killed at any point leaves at worst a temporary file, which the next
run removes (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator, Sequence

from ..errors import OutputError

TMP_MARK = ".moddeps-tmp."


def _tmp_name(directory: str, name: str) -> str:
    return os.path.join(directory, f".{name}{TMP_MARK}{os.getpid()}")


def remove_stale_temporaries(directory: str) -> list[str]:
    """Remove temporaries left by a killed run whose process is gone."""
    removed: list[str] = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    for entry in entries:
        if not entry.startswith(".") or TMP_MARK not in entry:
            continue
        pid_text = entry.rsplit(TMP_MARK, 1)[1]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and _alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, entry))
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, OSError, ValueError):  # pragma: no cover - no signal masks here
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def write_all(directory: str, files: Sequence[tuple[str, bytes]], *, fsync: bool = True) -> None:
    """Write ``files`` (name, content) into ``directory`` all-or-nothing."""
    if not os.path.isdir(directory):
        raise OutputError(f"{directory}: output directory does not exist")
    remove_stale_temporaries(directory)
    umask = os.umask(0)
    os.umask(umask)
    mode = 0o644 & ~umask
    written: list[tuple[str, str]] = []
    try:
        for name, content in files:
            tmp = _tmp_name(directory, name)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
            except OSError as exc:
                raise OutputError(f"{tmp}: cannot create: {exc.strerror}") from None
            written.append((tmp, os.path.join(directory, name)))
            try:
                view = memoryview(content)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                if fsync:
                    os.fsync(fd)
            except OSError as exc:
                raise OutputError(f"{tmp}: cannot write: {exc.strerror}") from None
            finally:
                os.close(fd)
        # The renames are the commit: SIGINT/SIGTERM/SIGHUP wait until all of
        # them are done, so an interrupted run never leaves a mix of old and
        # new files (SIGKILL cannot be held back; each file is still whole).
        with _signals_held():
            for tmp, final in written:
                try:
                    os.replace(tmp, final)
                except OSError as exc:
                    raise OutputError(f"{final}: cannot rename into place: {exc.strerror}") from None
            written = []
        if fsync:
            with contextlib.suppress(OSError):
                dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
    finally:
        for tmp, _final in written:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
