"""What every ``moddeps`` command shares that needs no typer: diagnostics, exit statuses, the process.

Exit statuses (all commands):
  0   success
  1   the requested check failed (dependency cycles for ``depmod``; findings at
      or above ``--fail-on`` for ``audit``)
  3   some module files could not be read (``scan``, ``info``; the rest was processed)
  64  usage error (bad option, bad VERSION)
  66  missing or unreadable input (no such tree, file or symbol list)
  70  an internal error (a bug: one line, the traceback with ``--debug``)
  73  an output file could not be written
  130 interrupted; 141 stdout closed early (``moddeps ... | head``)
Data goes to stdout; diagnostics and progress to stderr.

This module is kept free of typer (and of everything but the standard
library's basics) because ``moddeps depmod`` with kmod's usual arguments runs
without typer (:mod:`moddeps.cli.depmod_argv`): importing typer and click
costs more than a whole ``depmod`` answered from the cache.
"""

from __future__ import annotations

import contextlib
import os
import sys
from contextlib import contextmanager

from .. import process

TYPE_CHECKING = False  # (typing itself is not imported: see moddeps.cli)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


class _State:
    """Process-wide settings of the command line (``moddeps --debug``)."""

    debug = False


state = _State()


def err(message: str) -> None:
    """One diagnostic on stderr; bytes read from files (surrogate escapes) are written back as they were."""
    text = f"moddeps: {message}\n"
    buffer = getattr(sys.stderr, "buffer", None)
    if buffer is None:
        sys.stderr.write(text)
        return
    sys.stderr.flush()
    buffer.write(text.encode("utf-8", "surrogateescape"))
    buffer.flush()


@contextmanager
def exit_on_error() -> Iterator[None]:
    """Map domain errors to one stderr line and their exit status (``SystemExit``,
    which typer lets through as it is and :func:`run_process` turns into the status)."""
    from ..errors import ModdepsError

    try:
        yield
    except ModdepsError as exc:
        if state.debug:
            _traceback()
        err(f"error: {exc}")
        raise SystemExit(exc.exit_status) from None
    except KeyboardInterrupt:
        err("interrupted")
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except BrokenPipeError:  # e.g. "moddeps ... | head": stop quietly, as Unix tools do
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        raise SystemExit(141) from None
    except Exception as exc:  # a bug: one line, the traceback with --debug
        if _is_click_exit(exc):  # typer.Exit / typer.Abort raised inside a command: theirs to handle
            raise
        if state.debug:
            _traceback()
        err(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        raise SystemExit(70) from None


def _is_click_exit(exc: Exception) -> bool:
    """typer.Exit or typer.Abort (click's Exit and Abort), told apart without importing typer."""
    module = type(exc).__module__ or ""
    return module.startswith(("click", "typer")) and type(exc).__name__ in ("Exit", "Abort")


def _traceback() -> None:
    """--debug: the traceback of the exception being handled, on stderr (the exit status does not change)."""
    import traceback

    sys.stderr.flush()
    traceback.print_exc(file=sys.stderr)
    sys.stderr.flush()


def cache_path(cache: str | None, no_cache: bool) -> str | None:
    """The scan cache a command uses: ``--cache``, else the default; None with ``--no-cache``."""
    if no_cache:
        return None
    from ..read.cachepath import default_path

    return cache or default_path()


def run_process(body: Callable[[], None]) -> None:
    """Run a command's ``body`` as the whole process: exit with its status, never return.

    A command builds hundreds of thousands of small acyclic records and then
    exits: the cyclic garbage collector would only rescan them (measured: 25%
    of a scan), so it is off; reference counting still frees what goes.
    SIGTERM (systemd, timeout(1), a package manager giving up) ends the run
    like an exception: depmod's lock is released and its temporaries removed
    on the way out (a signal during the renames is held by the writer).
    """
    import gc

    if TYPE_CHECKING:
        import signal
    else:  # signal.py's C module (see moddeps.read.pool)
        import _signal as signal

    gc.disable()
    process.claim()  # (process-wide settings are ours to make; we leave by os._exit)

    def _terminated(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminated)
    try:
        body()
        status = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            status = exc.code or 0
        else:
            sys.stderr.write(f"{exc.code}\n")
            status = 1
    # Everything is written and closed: leave without tearing down the
    # interpreter, which frees every record one by one (~20 ms for amd64).
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):
            stream.flush()
    os._exit(status)
