"""``moddeps compat``: would these module files load on that kernel."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from .base import err, exit_on_error
from .shared import (
    BasedirOpt,
    CacheOpt,
    FormatOpt,
    HtmlOpt,
    JobsOpt,
    JsonOpt,
    KernelOpt,
    NoCacheOpt,
    TimestampOpt,
    app,
    emit,
    html_timestamp,
    output_format,
    resolve_tree,
    scan_dir,
)


def _split_against(spec: str) -> tuple[str, str | None]:
    """``--against TREE`` or ``--against TREE:SYMVERS``."""
    from ..errors import InputError

    if os.path.isdir(spec):
        return spec.rstrip("/") or "/", None
    head, sep, tail = spec.rpartition(":")
    if sep and os.path.isdir(head) and tail:
        return head.rstrip("/") or "/", tail
    raise InputError(f"{spec}: not a module directory (--against TREE or TREE:SYMVERS)")


@app.command()
def compat(
    paths: Annotated[list[str], typer.Argument(
        help="Module files to check, and the target TREE (.../lib/modules/VERSION; default: the running kernel's).")],
    basedir: BasedirOpt = None,
    version: KernelOpt = None,
    symvers: Annotated[str | None, typer.Option(
        "--symvers", help="The target kernel's Module.symvers (default: TREE/build/Module.symvers if there).")] = None,
    system_map: Annotated[
        str | None, typer.Option("--system-map", help="The target kernel's System.map (no CRCs).")
    ] = None,
    against: Annotated[list[str] | None, typer.Option(
        "--against", help="Another kernel to check against: TREE or TREE:SYMVERS (repeatable: a matrix).")] = None,
    subdir: Annotated[str, typer.Option(
        "--install-dir", help="Where the files count as installed, searched first (shown in paths).")] = "updates",
    enforce_signatures: Annotated[bool, typer.Option(
        "--enforce-signatures", help="Refuse files without a trusted signature, as a kernel booted with "
        "module.sig_enforce=1 or locked down by Secure Boot does.")] = False,
    json_out: JsonOpt = False,
    fmt: FormatOpt = None,
    jobs: JobsOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    html_file: HtmlOpt = None,
    timestamp: TimestampOpt = False,
) -> None:
    """Would these module files load on that kernel, and which in-tree modules would they break?

    The files are treated as installed in a directory searched first (they replace in-tree modules of the same
    name) and checked as the kernel checks a module at load time: symbols provided, CRCs, GPL-only symbols,
    namespaces, vermagic.  Exit 1 when a file does not load or breaks an in-tree module.
    """
    from ..errors import InputError, UsageError

    with exit_on_error():
        mode = output_format(fmt, json_out)
        json_out = mode == "json"
        trees = [p for p in paths if os.path.isdir(p)]
        files = [p for p in paths if not os.path.isdir(p)]
        for p in files:
            if not os.path.lexists(p):
                raise InputError(f"{p}: no such file or directory")
        if not files:
            raise UsageError("give at least one module file to check")
        if len(trees) > 1:
            raise UsageError("give one target TREE; use --against TREE[:SYMVERS] for more kernels")
        if trees and (basedir or version):
            raise UsageError("give TREE or -b/-k, not both")
        if symvers and system_map:
            raise UsageError("give --symvers or --system-map, not both")
        # (module directory, BASEDIR, symbol list, its kind)
        targets: list[tuple[str, str | None, str | None, str]] = []
        if trees or basedir or version or not against:
            dirname, note = resolve_tree(trees[0] if trees else None, basedir, version)
            if note:
                err(note)
            targets.append((dirname, basedir, symvers or system_map, "system.map" if system_map else "symvers"))
        elif symvers or system_map:
            raise UsageError("--symvers/--system-map describe the target TREE: give it, or --against TREE:SYMVERS")
        for spec in against or ():
            d, s = _split_against(spec)
            targets.append((d, None, s, "symvers"))

        from ..compat import compat_matrix, find_kernel_symbols, matrix_exit_status
        from ..kernelsyms import load_kernel_symbols
        from ..read.scan import scan_files

        loaded = []
        for dirname, bdir, sym, kind in targets:
            if not os.path.isdir(dirname):
                raise InputError(f"{dirname}: no such module directory")
            kernel = load_kernel_symbols(sym, kind) if sym else None
            if not sym:
                kernel, found_notes = find_kernel_symbols(dirname, bdir)
                for line in found_notes:
                    err(f"note: {line}")
                if kernel is None:
                    err(f"note: no kernel symbol list for {dirname}: verdicts say 'kernel symbols unchecked' "
                        "(give --symvers or --system-map)")
            from ..config import for_tree

            cfg = for_tree(dirname, basedir=bdir)
            loaded.append((scan_dir(dirname, jobs, not json_out, cache, no_cache, cfg), kernel))
        results = compat_matrix(scan_files(files, jobs=jobs), loaded, subdir=subdir,
                                enforce_signatures=enforce_signatures)
        if html_file:
            from ..report import html

            html.write(html_file, html.render(html.compat_data(results, timestamp=html_timestamp(timestamp))))
        from ..report.compat import compat_document, compat_lines, render_compat

        emit(mode, document=lambda: compat_document(results), lines=lambda: compat_lines(results),
             table=lambda console: render_compat(console, results))
        raise typer.Exit(matrix_exit_status(results))
