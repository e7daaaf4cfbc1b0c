"""``moddeps info``: modinfo, byte for byte."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from .base import err, exit_on_error
from .shared import JsonOpt, KmodVersionOpt, app, output_format, printable


def _info_field(ctx: typer.Context, param: Any, value: Any) -> Any:
    """modinfo's -a -d -l -p -n -F: the last one given wins (click runs the
    callbacks of given options in command-line order)."""
    if value:
        from ..modinfo import SHORTCUTS

        chosen = value if isinstance(value, str) else SHORTCUTS[param.opts[0]]
        ctx.meta["moddeps.info.field"] = chosen
    return value


def _info_flag(short: str, long: str, what: str) -> Any:
    return typer.Option(short, long, help=f"Print only '{what}'.", callback=_info_field)


@app.command(context_settings={"help_option_names": ["-h", "--help"]})
def info(
    ctx: typer.Context,
    modules: Annotated[list[str] | None, typer.Argument(
        help="Module names, aliases (modalias strings, symbol:NAME) or module files.", show_default=False)] = None,
    field: Annotated[str | None, typer.Option(
        "-F", "--field", help="Print only this field's values.", callback=_info_field)] = None,
    null: Annotated[bool, typer.Option("-0", "--null", help="Use \\0 instead of \\n.")] = False,
    _author: Annotated[bool, _info_flag("-a", "--author", "author")] = False,
    _description: Annotated[bool, _info_flag("-d", "--description", "description")] = False,
    _license: Annotated[bool, _info_flag("-l", "--license", "license")] = False,
    _parameters: Annotated[bool, _info_flag("-p", "--parameters", "parm")] = False,
    _filename: Annotated[bool, _info_flag("-n", "--filename", "filename")] = False,
    modname: Annotated[bool, typer.Option(
        "-m", "--modname", help="Take each argument as a module name, not an alias or file.")] = False,
    basedir: Annotated[str | None, typer.Option(
        "-b", "--basedir", help="Root of the tree: ROOT/lib/modules/VERSION.")] = None,
    version: Annotated[str | None, typer.Option(
        "-k", "--set-version", "--kernel", help="Kernel version (default: uname -r).")] = None,
    tree: Annotated[str | None, typer.Option("--tree", "-t", help="The module directory itself.")] = None,
    symbols: Annotated[bool, typer.Option(
        "--symbols", help="After each module's lines: its exports (CRC, GPL-only, namespace) and needs.")] = False,
    json_out: JsonOpt = False,
    fmt: Annotated[str | None, typer.Option(
        "--format", metavar="text|table|json", help="json: as --json; text and table: modinfo's lines.")] = None,
    kmod_version: KmodVersionOpt = None,
) -> None:
    """Show modules exactly as kmod's modinfo does (same options, output and exit status).

    Each argument is a module file, or a name or alias looked up in the tree's
    indexes as modinfo does.  --symbols and --json are moddeps' additions.
    Exit status: 0, or 1 when an argument is not found or cannot be read (with
    --json: 3 when a module file cannot be read, 1 when an argument is not found).
    """
    from .. import kmodversion
    from .. import modinfo as mi

    with exit_on_error():
        json_out = output_format(fmt, json_out) == "json"
        chosen = ctx.meta.get("moddeps.info.field")
        kmod = kmodversion.select(kmod_version, basedir)
        opts = mi.InfoOptions(field=chosen, null=null, modname=modname, kmod_version=kmod.version)
        if not modules:
            err("ERROR: missing module or filename.")
            raise typer.Exit(1)
        t = mi.open_tree(_info_dirname(tree, basedir, version))
        if t.note:
            err(f"note: {t.note}")
        queries = []
        out = sys.stdout.buffer
        for arg in modules:
            q = mi.query(t, arg, opts)
            queries.append(q)
            if json_out:
                # the document has the errors; stderr names each file too (one line each)
                if q.error is not None:
                    err(f"error: {printable(q.arg)}: {printable(q.error)}")
                for one in q.infos:
                    if one.error is not None:
                        err(f"error: {printable(one.filename)}: {printable(one.error)}")
                continue
            if q.error is not None:
                out.flush()
                err(f"ERROR: {q.error}")
                continue
            for one in q.infos:
                messages: list[str] = []
                text = mi.render(one, opts, messages)
                if symbols and one.module is not None:
                    from ..report.info import symbols_text

                    text += symbols_text(one.module)
                out.write(text.encode("utf-8", "surrogateescape"))
                out.flush()
                for msg in messages:
                    _info_err(msg)
        if json_out:
            from ..report.info import info_document
            from ..report.jsonout import dumps

            doc = info_document(t.dirname, kmod.version, kmod.reason, queries)
            sys.stdout.write(dumps(doc) + "\n")
            # moddeps' own mode keeps moddeps' statuses: 3 when a module could not be read
            unreadable = any(one.error is not None for q in queries for one in q.infos)
            raise typer.Exit(3 if unreadable else mi.status(queries))
        raise typer.Exit(mi.status(queries))


def _info_err(message: str) -> None:
    """A modinfo diagnostic: libkmod's own lines as they are, the tool's as ``moddeps: ERROR: ...``."""
    if message.startswith("libkmod: "):
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    else:
        err(f"ERROR: {message}")


def _info_dirname(tree: str | None, basedir: str | None, version: str | None) -> str:
    """modinfo's directory: ROOT + /lib/modules/ + VERSION made absolute, nothing normalised
    (a merged-/usr root without lib/modules: its usr/lib/modules)."""
    if tree:
        d = tree.rstrip("/") or "/"
        return d if d.startswith("/") else f"{os.getcwd()}/{d}"
    release = version or os.uname().release
    root = basedir or ""
    d = f"{root}/lib/modules/{release}"
    if not os.path.isdir(d) and os.path.isdir(f"{root}/usr/lib/modules/{release}"):
        d = f"{root}/usr/lib/modules/{release}"
    return d if d.startswith("/") else f"{os.getcwd()}/{d}"
