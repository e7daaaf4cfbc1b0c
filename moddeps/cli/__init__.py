"""The ``moddeps`` command line: :func:`main` (the entry point) and :data:`app` (the typer application).

:mod:`moddeps.cli.base` holds what the commands share without typer (diagnostics,
exit statuses, the process), :mod:`moddeps.cli.shared` the typer application and
what the commands share through it (options, output, which tree); each command
is a module of its own (``scan``, ``info``, ``audit``, ``why``, ``order``,
``graph``, ``compat``, ``diff``, ``depmod``, ``plan``, ``index``, ``cache``)
that registers itself on the application when imported.  A new command is a
new module here, added to :data:`COMMANDS`.

:func:`main` runs a ``moddeps depmod`` with kmod's usual arguments without
importing typer at all (:mod:`moddeps.cli.depmod_argv`); everything else goes
through the typer application, imported on first use of :data:`app`.
"""

from __future__ import annotations

import sys

# Written as a constant rather than imported from typing, which a depmod answered
# by its stamp would otherwise load (~3 ms); mypy reads it as typing's.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import typer

    app: typer.Typer

__all__ = ["app", "main"]

#: The command modules, in the order ``moddeps --help`` lists them (so not sorted by name).
COMMANDS = ("scan", "info", "audit", "why", "order", "graph", "compat", "diff", "depmod", "plan", "index", "cache")


def main() -> None:
    """The ``moddeps`` program: exits with the command's status."""
    args = sys.argv[1:]
    if args[:1] == ["depmod"]:
        from .depmod_argv import depmod_main

        depmod_main(args[1:])  # exits, unless typer has to parse these arguments
    _typer_app()
    from .shared import main as typer_main

    typer_main()


def _typer_app() -> typer.Typer:
    """The typer application, every command registered on it."""
    import importlib

    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}")
    from .shared import app as typer_app

    globals()["app"] = typer_app  # from now on an attribute: __getattr__ is not asked again
    return typer_app


def __getattr__(name: str) -> Any:
    if name == "app":
        return _typer_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
