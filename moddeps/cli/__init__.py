"""The ``moddeps`` command line: :data:`app` (the typer application) and :func:`main` (the entry point).

:mod:`moddeps.cli.app` holds what the commands share (options, exit statuses,
output, which tree); each command is a module of its own (``scan``, ``info``,
``audit``, ``why``, ``order``, ``graph``, ``compat``, ``diff``, ``depmod``,
``plan``, ``index``, ``cache``) that registers itself on ``app`` when imported.
A new command is a new module here, imported below.

``moddeps.cli.app`` is therefore the typer object, not the module: import
helpers as ``from moddeps.cli.app import NAME``.
"""

# The command modules register their commands on ``app`` when imported, in the
# order ``moddeps --help`` lists them (so not sorted by name).
from . import scan, info, audit, why, order, graph, compat, diff, depmod, plan, index, cache  # noqa: F401, I001
from .app import app, main

__all__ = ["app", "main"]
