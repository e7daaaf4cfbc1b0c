"""``moddeps why``: the dependency paths from one module to another."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .app import (
    BasedirOpt,
    FormatOpt,
    JsonOpt,
    KernelOpt,
    TreeArg,
    app,
    exit_on_error,
    load_resolved,
    module_index,
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
        from ..graph import build_graph, dependency_paths
        from ..report import deps as out

        src = t.modules[module_index(t, module)].name
        g = build_graph(t.modules, [f.shown for f in t.files], res)
        # modprobe also loads softdeps and weakdeps, as the plan follows them: such an edge
        # carries its kind (softdep-pre, softdep-post, weakdep) and no symbols
        from ..analysis import soft_edges

        for (a, b), how in sorted(soft_edges(t.modules).items()):
            if not g.has_edge(a, b):
                g.add_edge(a, b, symbols=(), kind=how)

        def symbols(a: str, b: str) -> list[str]:
            return list(g.edges[a, b]["symbols"])

        def kind(a: str, b: str) -> str | None:
            how: str | None = g.edges[a, b].get("kind")
            return how

        if target is None:
            import networkx as nx

            reach = sorted(nx.descendants(g, src))
            edges = sorted(g.subgraph([src, *reach]).edges())
            if mode == "json":
                from ..report.jsonout import dumps

                sys.stdout.write(dumps(out.needs_document(src, reach, edges, symbols, kind)) + "\n")
            elif mode == "text":
                write_lines(out.needs_lines(src, reach, edges, symbols, kind))
            else:
                out.render_needs(stdout_console(), src, lambda name: sorted(g.successors(name)), symbols, kind)
            return
        dst = t.modules[module_index(t, target)].name
        paths = dependency_paths(g, src, dst)
        if mode == "json":
            from ..report.jsonout import dumps

            sys.stdout.write(dumps(out.paths_document(src, dst, paths, symbols, kind)) + "\n")
        elif mode == "text":
            write_lines(out.paths_lines(src, dst, paths, symbols, kind))
        else:
            out.render_paths(stdout_console(), src, dst, paths, symbols, kind)
        if not paths:
            raise typer.Exit(1)
