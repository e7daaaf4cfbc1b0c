"""``moddeps audit``: a tree's findings."""

from __future__ import annotations

from typing import Annotated

import typer

from ..kmodnames import config_basedir
from .base import err, exit_on_error
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
    resolve_tree,
    scan_dir,
)


@app.command()
def audit(
    tree: Annotated[str | None, typer.Argument(help="Module tree (default: /lib/modules/$(uname -r)).")] = None,
    basedir: Annotated[str | None, typer.Option("--basedir", "-b")] = None,
    version: Annotated[str | None, typer.Option("--kernel", "-k", help="Kernel version (with -b).")] = None,
    symvers: Annotated[str | None, typer.Option("--symvers", help="The kernel's Module.symvers.")] = None,
    system_map: Annotated[str | None, typer.Option("--system-map", help="The kernel's System.map.")] = None,
    json_out: JsonOpt = False,
    fmt: FormatOpt = None,
    fail_on: Annotated[
        str | None,
        typer.Option("--fail-on", help="Exit 1 on findings at or above: error (default), warning, never."),
    ] = None,
    jobs: JobsOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    html_file: HtmlOpt = None,
    timestamp: TimestampOpt = False,
) -> None:
    """Audit a module tree: cycles, duplicate exports, licence and namespace problems, stale indexes, ..."""
    from ..errors import UsageError

    with exit_on_error():
        mode = output_format(fmt, json_out)
        json_out = mode == "json"
        if fail_on not in (None, "error", "warning", "never"):
            raise UsageError(f"--fail-on must be error, warning or never, not {fail_on!r}")
        if symvers and system_map:
            raise UsageError("give --symvers or --system-map, not both")
        from ..audit import audit_tree

        dirname, note = resolve_tree(tree, basedir, version, allow_sample=True)
        if note:
            # The sample tree is a demonstration, broken on purpose: its
            # findings do not fail the command unless --fail-on says so.
            err(note + " (exit status 0 unless --fail-on is given)")
            fail_on = fail_on or "never"
        kernel = None
        if symvers or system_map:
            from ..kernelsyms import load_kernel_symbols

            kernel = load_kernel_symbols(symvers, "symvers") if symvers else load_kernel_symbols(
                system_map or "", "system.map")
        base = config_basedir(dirname, basedir)
        from ..config import for_tree

        t = scan_dir(dirname, jobs, not json_out, cache, no_cache, for_tree(dirname, basedir=basedir))
        result = audit_tree(t, kernel)
        if html_file:
            from .. import kmodversion
            from ..report import html

            kmod = kmodversion.select(None, base).describe()
            html.write(html_file, html.render(html.audit_data(
                t, result, kmod=kmod, inputs={"basedir (depmod.d)": base},
                timestamp=html_timestamp(timestamp))))
        from ..report.audit import audit_document, audit_lines, render_audit

        emit(mode, document=lambda: audit_document(result), lines=lambda: audit_lines(result),
             table=lambda console: render_audit(console, result))
        raise typer.Exit(result.exit_status(fail_on or "error"))
