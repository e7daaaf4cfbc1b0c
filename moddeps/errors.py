"""Domain errors.  Each carries a stable ``code`` and a one-line message.

The library raises these; only the CLI turns them into exit statuses and
prints them (one line, ``--debug`` for a traceback).
"""

from __future__ import annotations


class ModdepsError(Exception):
    """Base class.  ``str(err)`` is a complete one-line message."""

    code = "error"
    exit_status = 2


class UsageError(ModdepsError):
    """Bad command-line usage or an impossible combination of options."""

    code = "usage"
    exit_status = 64  # EX_USAGE


class InputError(ModdepsError):
    """An input (tree, config, symbol list) is missing or unreadable."""

    code = "input"
    exit_status = 66  # EX_NOINPUT


class ModuleReadError(ModdepsError):
    """A module file cannot be read as a kernel module.

    ``reason`` is the human explanation, ``kmod_reason`` the ``strerror`` text
    kmod 30 prints for the same file ("Exec format error" for a bad ELF magic,
    "Invalid argument" for the other ELF checks).
    """

    code = "broken-module"
    exit_status = 3

    def __init__(self, path: str, reason: str, kmod_reason: str = "Invalid argument") -> None:
        from .model import printable

        super().__init__(f"{printable(path)}: {reason}")
        self.path = path
        self.reason = reason
        self.kmod_reason = kmod_reason


class DecompressionError(ModuleReadError):
    """A compressed module file that cannot be decompressed within the bounds.

    kmod's reason is always "Invalid argument"; ``detail`` is the line
    libkmod 34 logs for it (without "depmod: ERROR: "), or None where it logs
    none; ``compression`` is "xz", "zstd" or "gzip".
    """

    def __init__(self, path: str, reason: str, detail: str | None, compression: str) -> None:
        super().__init__(path, reason, "Invalid argument")
        self.detail = detail
        self.compression = compression


class IndexFormatError(ModdepsError):
    """A ``.bin`` file that is not a well-formed kmod index.

    ``str(err)`` is one line: the file name, then the reason.
    """

    code = "bad-index"
    exit_status = 66  # EX_NOINPUT, as for an unreadable input (``moddeps index dump`` says so)

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason

    def __reduce__(self) -> tuple[type[IndexFormatError], tuple[str, str]]:
        return (type(self), (self.name, self.reason))


class OutputError(ModdepsError):
    """An output file or directory cannot be written."""

    code = "output"
    exit_status = 73  # EX_CANTCREAT


class DepmodFatal(ModdepsError):
    """depmod stops without writing anything (kmod exits 1 with FATAL messages)."""

    code = "fatal"
    exit_status = 1

    def __init__(self, message: str, messages: list[str] | None = None, notes: list[str] | None = None) -> None:
        super().__init__(message)
        self.messages = messages or []  # kmod's texts, in kmod's order
        self.notes = notes or []  # moddeps' additions


class CycleError(DepmodFatal):
    """The dependency graph has cycles, so depmod writes nothing."""

    code = "cycle"
