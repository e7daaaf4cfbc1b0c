"""``moddeps why``: the dependency paths from one module to another."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .base import exit_on_error
from .shared import (
    BasedirOpt,
    FormatOpt,
    JsonOpt,
    KernelOpt,
    TreeArg,
    app,
    load_resolved,
    output_format,
    stdout_console,
    write_lines,
)


@app.command()
def why(
    module: Annotated[str, typer.Argument(help="The module that needs something.")],
    target: Annotated[str | None, typer.Argument(help="The module it (transitively) needs.")] = None,
    tree: TreeArg = None,
    basedir: BasedirOpt = None,
    version: KernelOpt = None,
    json_out: JsonOpt = False,
    fmt: FormatOpt = None,
) -> None:
    """Why MODULE needs TARGET: every dependency path, each edge with its symbols (or all its dependencies)."""
    with exit_on_error():
        mode = output_format(fmt, json_out)
        t, res = load_resolved(tree, basedir, version, show_progress=mode != "json")
        from ..graph import needs_of, paths_to
        from ..report import deps as out
        from ..report.jsonout import dumps

        if target is None:
            needs = needs_of(t, res, module)
            if mode == "json":
                sys.stdout.write(dumps(out.needs_document(needs)) + "\n")
            elif mode == "text":
                write_lines(out.needs_lines(needs))
            else:
                out.render_needs(stdout_console(), needs)
            return
        paths = paths_to(t, res, module, target)
        if mode == "json":
            sys.stdout.write(dumps(out.paths_document(paths)) + "\n")
        elif mode == "text":
            write_lines(out.paths_lines(paths))
        else:
            out.render_paths(stdout_console(), paths)
        if not paths.paths:
            raise typer.Exit(1)
