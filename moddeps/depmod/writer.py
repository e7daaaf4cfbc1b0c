"""Writing a set of output files so that readers never see two runs' files mixed.

kmod's depmod writes each file to a temporary and renames it into place one
after the other, without a lock: two runs at once, or one killed between two
renames, leave some files of one set and some of another.  moddeps writes a
set in four steps, one writer per directory at a time:

1. **Lock.**  ``flock(LOCK_EX)`` on ``DIR/.moddeps.lock`` (:func:`locked`),
   for the whole run, so a second run waits and then reads the tree as the
   first left it.  The kernel drops the lock when its holder dies, whatever
   its PID namespace, so holding it proves that no other moddeps writes into
   the directory: the temporaries found then are stale.  The holder removes
   the file before it lets go; a waiter that wakes up holding a lock on a file
   no longer at that path (``fstat`` and ``stat`` differ) opens it again.
   Neither kmod's depmod nor modprobe opens the file (depmod lists only
   ``*.ko*`` files, modprobe opens the indexes by name), and after a run it
   is gone, so the directory holds kmod's files only.
2. **Temporaries.**  Each file is written in full to ``.NAME.moddeps-tmp.PID``
   in the same directory (``O_EXCL | O_NOFOLLOW``: never through a planted
   symlink).  A failure here removes them; the previous files are untouched.
3. **Journal.**  ``.moddeps.journal`` names each rename to come, with the
   inode and size of the temporary and the identity of the file it replaces
   (written to a temporary).  Then the temporaries and the journal's are
   fsync'd, all at once (:func:`_sync_all`: the file system writes them out
   together, and ext4 commits one transaction for them all instead of one a
   file), and only when every one is on disk is the journal renamed into
   place and the directory fsync'd.  A set of one file needs no journal: one
   rename is atomic.
4. **Renames**, with SIGINT/SIGTERM/SIGHUP held back, then the directory
   fsync'd and the journal removed.

A run killed with SIGKILL (or a machine that stops) between two renames
leaves the journal.  The next holder of the lock (any ``moddeps depmod`` on
the directory, ``-n`` excepted: it writes nothing) first completes the
renames when every file is as the journal says (each still to be renamed:
its temporary whole, its target the very file recorded; each renamed: the
target is the temporary's inode), so the directory holds the complete new
set; if anything else changed a file since (kmod's depmod ran), the journal
and the temporaries are dropped and the files stay as they are.  ``moddeps
audit`` reports a journal that would be completed (:func:`pending`).

The only files ever deleted are the journal and names of exactly the form
``.modules.NAME.moddeps-tmp.DIGITS`` (NAME lower-case letters and dots),
which no one but moddeps creates, and only while holding the lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import threading

from ..errors import OutputError
from ..records import dataclass

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    import signal
else:  # signal.py's C module (signal.py's enum wrappers cost ~20 M instructions of start-up)
    import _signal as signal
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

TMP_MARK = ".moddeps-tmp."
LOCK_NAME = ".moddeps.lock"
JOURNAL_NAME = ".moddeps.journal"
_JOURNAL_TMP = JOURNAL_NAME + TMP_MARK.rstrip(".")  # ".moddeps.journal.moddeps-tmp"
_JOURNAL_HEAD = "moddeps journal 1"


def is_output_name(name: str) -> bool:
    """Whether ``name`` is of the form this module writes, ``modules(.[a-z]+)+`` (kmod's outputs all are)."""
    head, dot, rest = name.partition(".")
    return head == "modules" and bool(dot) and all(p.isascii() and p.isalpha() and p.islower() for p in rest.split("."))


def _is_tmp_name(entry: str) -> bool:
    """Whether ``entry`` is ``.<output name>.moddeps-tmp.<digits>``: the temporaries, and nothing else,
    are ever removed."""
    head, mark, pid = entry.rpartition(TMP_MARK)
    return (bool(mark) and head[:1] == "." and is_output_name(head[1:]) and pid.isascii() and pid.isdigit())


def _tmp_name(directory: str, name: str) -> str:
    return os.path.join(directory, f".{name}{TMP_MARK}{os.getpid()}")


def is_temporary(entry: str) -> bool:
    """Whether a directory entry is one of moddeps' temporary files."""
    return _is_tmp_name(entry) or entry == _JOURNAL_TMP


# --------------------------------------------------------------------------
# the lock
# --------------------------------------------------------------------------

_held: dict[tuple[int, int], tuple[int, int]] = {}  # directory (dev, ino) -> (lock fd, depth)
_held_guard = threading.Lock()


class _Unwritable(OutputError):
    """The directory does not let this process create the lock file."""


@contextlib.contextmanager
def locked(directory: str, waiting: Callable[[str], None] | None = None, *,
           optional: bool = False) -> Iterator[list[str]]:
    """Hold the writers' lock of ``directory`` (re-entrant within a process).

    Yields the notes of the recovery done on taking it (an interrupted set
    completed or dropped, stale temporaries removed).  ``waiting`` is told
    once, before this blocks because another process holds the lock.
    OutputError when the lock file cannot be created; with ``optional``, a
    directory this process may not write into is entered without the lock
    (:func:`write_all` then fails, after the run said what it had to say).
    """
    try:
        st = os.stat(directory)
    except OSError as exc:
        raise OutputError(f"{directory}: cannot open output directory: {exc.strerror}") from None
    key = (st.st_dev, st.st_ino)
    with _held_guard:
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
            outer = False
        else:
            outer = True
    if not outer:
        try:
            yield []
        finally:
            with _held_guard:
                fd, depth = _held[key]
                _held[key] = (fd, depth - 1)
        return
    try:
        fd = _acquire(directory, waiting)
    except _Unwritable:
        if not optional:
            raise
        yield []
        return
    with _held_guard:
        _held[key] = (fd, 1)
    try:
        yield recover(directory)
    finally:
        with _held_guard:
            del _held[key]
        # removed while held: a waiter that then gets the old inode retries (see _acquire)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, LOCK_NAME))
        os.close(fd)


def _acquire(directory: str, waiting: Callable[[str], None] | None) -> int:
    path = os.path.join(directory, LOCK_NAME)
    told = False
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            cls = _Unwritable if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else OutputError
            raise cls(f"{path}: cannot create the lock file: {exc.strerror}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting is not None and not told:
                    waiting(f"NOTE: waiting for another moddeps depmod writing into {directory}")
                    told = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            mine = os.fstat(fd)
            try:
                there = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                there = None
        except OSError as exc:
            os.close(fd)
            raise OutputError(f"{path}: cannot lock: {exc.strerror}") from None
        except BaseException:
            os.close(fd)
            raise
        if there is not None and (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        os.close(fd)  # the holder removed it as we waited: lock the file now there


def holds_lock(directory: str) -> bool:
    """Whether this process holds the writers' lock of ``directory``."""
    try:
        st = os.stat(directory)
    except OSError:
        return False
    with _held_guard:
        return (st.st_dev, st.st_ino) in _held


# --------------------------------------------------------------------------
# the journal
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str  # the output file
    tmp: str  # its temporary (a name in the same directory)
    tmp_ino: int
    tmp_size: int
    old: tuple[int, int, int] | None  # inode, size, mtime_ns of the file it replaces (None: there was none)


def _identity(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _format_journal(entries: Sequence[_Entry]) -> bytes:
    rows = [_JOURNAL_HEAD]
    for e in entries:
        old = "-" if e.old is None else " ".join(map(str, e.old))
        rows.append(f"{e.name}\t{e.tmp}\t{e.tmp_ino}\t{e.tmp_size}\t{old}")
    return ("\n".join(rows) + "\n").encode("ascii")


def _parse_journal(data: bytes) -> list[_Entry] | None:
    try:
        rows = data.decode("ascii").split("\n")
    except UnicodeDecodeError:
        return None
    if rows[0] != _JOURNAL_HEAD or rows[-1] != "":
        return None
    entries = []
    for row in rows[1:-1]:
        fields = row.split("\t")
        if len(fields) != 5 or not is_output_name(fields[0]) or not _is_tmp_name(fields[1]):
            return None
        try:
            old = None if fields[4] == "-" else tuple(int(x) for x in fields[4].split(" "))
            entry = _Entry(fields[0], fields[1], int(fields[2]), int(fields[3]), old)  # type: ignore[arg-type]
        except ValueError:
            return None
        if old is not None and len(old) != 3:
            return None
        entries.append(entry)
    return entries or None


def _read_journal(directory: str) -> bytes | None:
    try:
        fd = os.open(os.path.join(directory, JOURNAL_NAME), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 1 << 20:
            return b""  # not a journal of ours
        return os.read(fd, st.st_size + 1)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _check(directory: str, entries: Sequence[_Entry]) -> tuple[list[_Entry], str | None]:
    """(entries still to rename, None) when the directory is as the journal
    says, else ([], the name of a file that changed since)."""
    todo = []
    for e in entries:
        tmp = _identity(os.path.join(directory, e.tmp))
        final = _identity(os.path.join(directory, e.name))
        if tmp is not None and tmp[:2] == (e.tmp_ino, e.tmp_size) and final == e.old:
            todo.append(e)
        elif tmp is None and final is not None and final[:2] == (e.tmp_ino, e.tmp_size):
            continue  # renamed before the run stopped
        else:
            return [], e.name
    return todo, None


def pending(directory: str) -> list[str] | None:
    """The files an interrupted run left to rename in ``directory`` (the next
    run completes them), or None when there is no such journal (or one that
    no longer applies: the files changed since).  Reads only."""
    data = _read_journal(directory)
    if data is None:
        return None
    entries = _parse_journal(data)
    if entries is None:
        return None
    todo, changed = _check(directory, entries)
    return None if changed is not None else [e.name for e in todo]


def recover(directory: str) -> list[str]:
    """Complete or drop an interrupted set, and remove stale temporaries.

    Only while holding the lock (:func:`locked` calls it): then no other
    moddeps is writing here, and every temporary of ours is stale.
    """
    notes: list[str] = []
    data = _read_journal(directory)
    if data is not None:
        entries = _parse_journal(data)
        todo, changed = _check(directory, entries) if entries is not None else ([], "the journal")
        if changed is None:
            for e in todo:
                try:
                    os.replace(os.path.join(directory, e.tmp), os.path.join(directory, e.name))
                except OSError as exc:
                    raise OutputError(f"{directory}/{e.name}: cannot complete the interrupted write of an earlier "
                                      f"run: {exc.strerror}") from None
            _fsync_dir(directory)
            notes.append(f"NOTE: {directory}: an earlier run was stopped while renaming its files into place; "
                         f"its set was completed ({len(todo)} of {len(entries or ())} files renamed now)")
        else:
            notes.append(f"NOTE: {directory}: an earlier run was stopped while renaming its files into place, and "
                         f"{changed} changed since; its remaining temporaries were removed")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, JOURNAL_NAME))
    removed = remove_stale_temporaries(directory)
    if removed and data is None:
        notes.append(f"NOTE: {directory}: removed {len(removed)} temporary file(s) of a run that was stopped")
    return notes


def remove_stale_temporaries(directory: str) -> list[str]:
    """Remove moddeps' temporaries from ``directory``; only under the lock."""
    removed: list[str] = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    for entry in entries:
        if not is_temporary(entry):
            continue
        path = os.path.join(directory, entry)
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):  # we never make directories
                continue
            os.unlink(path)
        except OSError:  # gone already, or not ours to remove: the write uses other names
            continue
        removed.append(entry)
    return removed


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------


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


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _create(path: str, content: bytes, mode: int, opened: list[tuple[str, int]]) -> os.stat_result:
    """Write ``content`` to the new file ``path``, left open (not synced) in ``opened``; its stat."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create: {exc.strerror}") from None
    opened.append((path, fd))
    try:
        view = memoryview(content)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        return os.fstat(fd)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror}") from None


def _sync_all(opened: Sequence[tuple[str, int]]) -> None:
    """fsync every (path, fd) of ``opened``, each in a thread of its own (the
    last in this one), and wait for all; OutputError for the first, in
    ``opened``'s order, that failed.

    One after the other, each fsync waits for its own journal commit (13 for
    a set of 12 files on ext4); issued together, they share one or two.
    """
    failed: list[OSError | None] = [None] * len(opened)

    def sync(i: int) -> None:
        try:
            os.fsync(opened[i][1])
        except OSError as exc:
            failed[i] = exc

    threads = [threading.Thread(target=sync, args=(i,), name="moddeps-fsync") for i in range(len(opened) - 1)]
    started: list[threading.Thread] = []
    stopped: BaseException | None = None
    try:
        for t in threads:
            t.start()
            started.append(t)
    finally:  # (a thread that cannot start: the rest are synced here)
        for i in range(len(started), len(opened)):
            sync(i)
        # the threads use the descriptors, which the caller closes: they end first, even
        # when SIGTERM's SystemExit or a KeyboardInterrupt arrives meanwhile
        for t in started:
            while t.is_alive():
                try:
                    t.join()
                except BaseException as interrupted:
                    stopped = stopped or interrupted
    if stopped is not None:
        raise stopped
    for (path, _fd), error in zip(opened, failed):
        if error is not None:
            raise OutputError(f"{path}: cannot write: {error.strerror}")


def write_all(directory: str, files: Sequence[tuple[str, bytes]], *, fsync: bool = True) -> None:
    """Write ``files`` (name, content) into ``directory`` all-or-nothing (see the module's docstring).

    Takes the directory's lock unless this process holds it already.
    """
    for name, _content in files:
        if not is_output_name(name):
            raise ValueError(f"{name!r}: not a depmod output name")
    if not os.path.isdir(directory):
        raise OutputError(f"{directory}: output directory does not exist")
    with locked(directory):
        _write_locked(directory, files, fsync)


def _write_locked(directory: str, files: Sequence[tuple[str, bytes]], fsync: bool) -> None:
    umask = os.umask(0)
    os.umask(umask)
    mode = 0o644 & ~umask
    entries: list[_Entry] = []
    journal = os.path.join(directory, JOURNAL_NAME)
    journaled = False
    opened: list[tuple[str, int]] = []  # the temporaries written, still open
    try:
        for name, content in files:
            tmp = _tmp_name(directory, name)
            st = _create(tmp, content, mode, opened)
            entries.append(_Entry(name, os.path.basename(tmp), st.st_ino, st.st_size,
                                  _identity(os.path.join(directory, name))))
        jtmp = os.path.join(directory, _JOURNAL_TMP)
        if len(entries) > 1:
            _create(jtmp, _format_journal(entries), 0o600, opened)
        # every temporary, the journal's included, on disk before the journal names them
        if fsync:
            _sync_all(opened)
        while opened:
            os.close(opened.pop()[1])
        if len(entries) > 1:
            try:
                os.replace(jtmp, journal)
            except OSError as exc:
                raise OutputError(f"{journal}: cannot rename into place: {exc.strerror}") from None
            journaled = True
            if fsync:
                _fsync_dir(directory)
        # The renames are the commit: SIGINT/SIGTERM/SIGHUP wait until all of
        # them are done; after SIGKILL the journal lets the next run finish them.
        with _signals_held():
            for done, e in enumerate(entries):
                final = os.path.join(directory, e.name)
                try:
                    os.replace(os.path.join(directory, e.tmp), final)
                except OSError as exc:
                    new = ", ".join(x.name for x in entries[:done]) or "none"
                    raise OutputError(f"{final}: cannot rename into place: {exc.strerror} (already new: {new}; "
                                      "the others are the previous files)") from None
            entries = []
            if fsync:
                _fsync_dir(directory)
            if journaled:
                os.unlink(journal)
                journaled = False
    finally:
        for path, fd in opened:  # a failure before all were closed: these are temporaries
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
        # a failure before the commit: the previous files stay, no temporary is left
        for e in entries:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, e.tmp))
        if journaled:
            with contextlib.suppress(OSError):
                os.unlink(journal)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, _JOURNAL_TMP))
