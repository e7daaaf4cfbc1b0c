"""``moddeps graph``: the dependency graph as DOT, GraphML, Mermaid or JSON."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .base import exit_on_error
from .shared import BasedirOpt, KernelOpt, app, load_resolved


@app.command()
def graph(
    tree: Annotated[str | None, typer.Argument(help="Module tree (default: /lib/modules/$(uname -r)).")] = None,
    basedir: BasedirOpt = None,
    version: KernelOpt = None,
    focus: Annotated[str | None, typer.Option("--focus", help="Only this module's neighbourhood.")] = None,
    depth: Annotated[int, typer.Option("--depth", min=0, help="Edges to follow from --focus, both ways.")] = 1,
    fmt: Annotated[str, typer.Option("--format", help="dot, graphml, mermaid or json.")] = "dot",
) -> None:
    """The dependency graph (a -> b: a needs b, labelled with the symbols), sorted and deterministic."""
    from ..errors import UsageError
    from ..report import graphfmt

    with exit_on_error():
        if fmt not in graphfmt.FORMATS:
            raise UsageError(f"--format must be dot, graphml, mermaid or json, not {fmt!r}")
        t, res = load_resolved(tree, basedir, version, show_progress=False)
        from ..graph import graph_view

        sys.stdout.write(graphfmt.render(graph_view(t, res, focus or None, depth), fmt))
