"""``moddeps diff``: what changed between two module ABIs."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from .base import exit_on_error
from .shared import (
    CacheOpt,
    FormatOpt,
    HtmlOpt,
    JobsOpt,
    JsonOpt,
    NoCacheOpt,
    TimestampOpt,
    app,
    emit,
    html_timestamp,
    output_format,
    scan_dir,
)


@app.command("diff")
def diff_cmd(
    old: Annotated[str, typer.Argument(help="Old side: a module tree (.../lib/modules/VERSION) or a Module.symvers.")],
    new: Annotated[str, typer.Argument(help="New side: a module tree or a Module.symvers.")],
    json_out: JsonOpt = False,
    fmt: FormatOpt = None,
    jobs: JobsOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    html_file: HtmlOpt = None,
    timestamp: TimestampOpt = False,
    check: Annotated[list[str] | None, typer.Option(
        "--check", metavar="FILE", help="An out-of-tree module file (repeatable): the --html report names the "
        "incompatible changes that break it.")] = None,
) -> None:
    """What changed between two module ABIs: modules, exports (CRC, GPL-only, namespace), dependencies.

    Exit 1 when the ABI changed incompatibly (an export removed, a CRC changed, an export made GPL-only or put
    in a namespace), for CI.
    """
    from ..errors import InputError

    with exit_on_error():
        mode = output_format(fmt, json_out)
        json_out = mode == "json"
        from ..abidiff import diff as abi_diff
        from ..abidiff import side_from_symvers, side_from_tree

        sides = []
        for p in (old, new):
            if os.path.isdir(p):
                dirname = p.rstrip("/") or "/"
                from ..config import for_tree

                cfg = for_tree(dirname)
                sides.append(side_from_tree(scan_dir(dirname, jobs, not json_out, cache, no_cache, cfg)))
            elif os.path.exists(p):
                sides.append(side_from_symvers(p))
            else:
                raise InputError(f"{p}: no such file or directory")
        result = abi_diff(sides[0], sides[1])
        if html_file:
            from ..read.scan import scan_files
            from ..report import html

            for p in check or ():
                if not os.path.lexists(p):
                    raise InputError(f"{p}: no such file or directory")
            checked = [(m.name, [i.name for i in m.imports]) for m in scan_files(list(check or ()), jobs=jobs)]
            html.write(html_file, html.render(html.diff_data(result, out_of_tree=checked,
                                                             timestamp=html_timestamp(timestamp))))
        from ..report.compat import diff_document, diff_lines, render_diff

        emit(mode, document=lambda: diff_document(result), lines=lambda: diff_lines(result),
             table=lambda console: render_diff(console, result))
        raise typer.Exit(result.exit_status())
