"""``moddeps graph``: the dependency graph as DOT, GraphML, Mermaid or JSON."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .app import BasedirOpt, KernelOpt, app, exit_on_error, load_resolved, module_index


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
        if fmt not in ("dot", "graphml", "mermaid", "json"):
            raise UsageError(f"--format must be dot, graphml, mermaid or json, not {fmt!r}")
        t, res = load_resolved(tree, basedir, version, show_progress=False)
        keep: set[int] = set(range(len(t.modules)))
        focus_name = None
        if focus:
            from ..analysis import neighbourhood

            fi = module_index(t, focus)
            focus_name = t.modules[fi].name
            keep = neighbourhood(res.deps, fi, depth)
        nodes = [t.modules[i].name for i in keep]
        edges = [(t.modules[i].name, t.modules[d].name, syms)
                 for i in keep for d, syms in res.edge_symbols[i].items() if d in keep]
        paths = {t.modules[i].name: t.files[i].shown for i in keep}
        if fmt == "dot":
            out = graphfmt.to_dot(nodes, edges, focus_name)
        elif fmt == "mermaid":
            out = graphfmt.to_mermaid(nodes, edges, focus_name)
        elif fmt == "graphml":
            out = graphfmt.to_graphml(nodes, edges, paths)
        else:
            out = graphfmt.to_json(nodes, edges, paths, t.dirname)
        sys.stdout.write(out)
