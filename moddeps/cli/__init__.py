"""The ``moddeps`` command line: ``app`` (typer) and ``main`` (the entry point).

:mod:`moddeps.cli.app` holds what every command shares; each command is a
module of its own that registers itself on ``app`` when imported.
"""

# Each command module registers its command on ``app`` when imported, in the
# order ``moddeps --help`` lists them.
from . import scan, info, audit, why, order, graph, compat, diff, depmod, plan, index, cache  # noqa: F401, I001
from .app import app, main

__all__ = ["app", "main"]
