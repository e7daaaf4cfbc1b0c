"""``moddeps order``: a whole-tree load order, or a check of modules.order."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .base import err, exit_on_error
from .shared import BasedirOpt, JsonOpt, KernelOpt, app, load_resolved, output_format, write_lines


@app.command()
def order(
    tree: Annotated[str | None, typer.Argument(help="Module tree (default: /lib/modules/$(uname -r)).")] = None,
    basedir: BasedirOpt = None,
    version: KernelOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Check the tree's modules.order instead.")] = False,
    json_out: JsonOpt = False,
    fmt: Annotated[str | None, typer.Option(
        "--format", metavar="text|table|json", help="json: as --json; text and table: the lines.")] = None,
) -> None:
    """A load order for the whole tree (dependencies first), in modules.order format.

    Among modules whose dependencies are all placed, the one earliest in the
    module array (modules.order, then kmod's order) comes first.  With
    --check, list the modules that modules.order loads before what they need
    (exit 1 if any).
    """
    from ..analysis import check_order, load_order

    with exit_on_error():
        json_out = output_format(fmt, json_out) == "json"
        from ..report import deps as out

        t, res = load_resolved(tree, basedir, version, show_progress=False)
        if check:
            from ..errors import InputError
            from ..inputfiles import read_optional

            text = read_optional(f"{t.dirname}/modules.order")
            if text is None:
                raise InputError(f"{t.dirname}/modules.order: no such file")
            bad = check_order(t, res, text)
            if json_out:
                from ..report.jsonout import dumps

                sys.stdout.write(dumps(out.order_check_document(t.dirname, bad)) + "\n")
            else:
                write_lines([out.order_check_line(v) for v in bad])
            raise typer.Exit(1 if bad else 0)
        lo = load_order(t, res)
        if json_out:
            from ..report.jsonout import dumps

            sys.stdout.write(dumps(out.order_document(t.dirname, lo.lines, lo.unplaced)) + "\n")
        else:
            write_lines(list(lo.lines))
        if lo.unplaced:
            err(f"error: {len(lo.unplaced)} modules are in or behind dependency cycles and cannot be ordered: "
                + " ".join(lo.unplaced))
            raise typer.Exit(1)
