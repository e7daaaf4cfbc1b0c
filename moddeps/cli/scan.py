"""``moddeps scan``: what module trees and files export and need."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from .base import err, exit_on_error
from .shared import (
    CacheOpt,
    FormatOpt,
    JobsOpt,
    JsonOpt,
    NoCacheOpt,
    app,
    output_format,
    printable,
    scan_cache,
    scan_dir,
    stdout_console,
    write_lines,
)

if TYPE_CHECKING:
    from ..model import Module


@app.command()
def scan(
    paths: Annotated[list[str], typer.Argument(help="Module trees (.../lib/modules/VERSION) or module files.")],
    json_out: JsonOpt = False,
    fmt: FormatOpt = None,
    jobs: JobsOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Read module trees or files and list what each module exports and needs."""
    from ..read.scan import Tree

    with exit_on_error():
        mode = output_format(fmt, json_out)
        json_out = mode == "json"
        trees: list[Tree] = []
        files: list[str] = []
        for p in paths:
            if os.path.isdir(p):
                trees.append(scan_dir(p, jobs, not json_out, cache, no_cache))
            elif os.path.lexists(p):
                files.append(p)
            else:
                from ..errors import InputError

                raise InputError(f"{p}: no such file or directory")
        loose: list[Module] = _scan_files(files, jobs, cache, no_cache) if files else []
        for m in loose:
            if m.error:
                err(f"{printable(m.path)}: {m.error}")
        for t in trees:
            for m in t.broken:
                err(f"{printable(t.dirname)}/{printable(m.path)}: {m.error}")
            for prob in t.problems:
                err(f"{printable(t.dirname)}/{printable(prob.path)}: {prob.reason}")
        if json_out:
            from ..report.jsonout import dumps, scan_documents, scan_json_parts

            if len(trees) == 1 and not loose:
                for part in scan_json_parts(trees[0], trees[0].modules):
                    sys.stdout.write(part)
                sys.stdout.write("\n")
            else:
                sys.stdout.write(dumps(scan_documents(trees, loose)) + "\n")
        elif mode == "text":
            from ..report.text import scan_lines

            write_lines([line for t in trees for line in scan_lines(t, t.modules)]
                        + (scan_lines(None, loose) if loose else []))
        else:
            from ..report.text import render_scan

            con = stdout_console()
            for t in trees:
                render_scan(con, t, t.modules)
            if loose:
                render_scan(con, None, loose)
        if any(t.broken or t.problems for t in trees) or any(m.error for m in loose):
            raise typer.Exit(3)


def _scan_files(files: list[str], jobs: int | None, cache: str | None, no_cache: bool) -> list[Module]:
    from ..read.scan import scan_files

    with scan_cache(cache, no_cache) as c:
        return scan_files(files, jobs=jobs, cache=c)
