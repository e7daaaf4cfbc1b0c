"""Man pages for ``moddeps`` and each of its commands, made from the CLI's own help.

``python -m moddeps.manpages [DIR]`` writes ``moddeps.1`` and ``moddeps-COMMAND.1``
(``moddeps-index-dump.1``, ``moddeps-cache-prune.1`` for the commands of a group)
into ``DIR/man1`` (default: the package's ``man/``, committed and shipped in
the wheel; tests/test_manpages.py fails when they differ from what this writes).
Everything comes from the click command tree that typer builds from
:mod:`moddeps.cli`: the usage line, the command's help, each option's and
argument's help, so a page cannot say something the ``--help`` does not.
The output is the same bytes for the same CLI (no date; the version is moddeps').
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from typing import Any

from . import __version__

# click's objects are used by their interface only: typer 0.28 carries its own copy of click
# (typer._click), earlier releases use click itself.
Command = Any
Context = Any

SECTION = "1"
MANUAL = "moddeps manual"

#: The README's exit statuses, in short: on every page.
EXIT_STATUS = (
    ("0", "success"),
    ("1", "the check failed (cycles, findings at --fail-on, a file that does not load, an incompatible change, "
          "no path, a target not found, an incomplete closure; modinfo: a module not found)"),
    ("3", "some module files could not be read; everything else was processed"),
    ("64", "usage error (unknown option, bad option value, missing argument)"),
    ("66", "missing or unreadable input (no such tree, file or symbol list)"),
    ("70", "internal error (a bug: please report it with --debug)"),
    ("73", "an output file could not be written"),
    ("143", "ended by SIGTERM"),
)


def _roff(text: str) -> str:
    """Text as roff: backslashes and hyphens escaped, no line starting with a control character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line[:1] in (".", "'") else line for line in text.split("\n"))


def _paragraphs(help_text: str) -> list[str]:
    """click's help text as paragraphs (blank-line separated; lines of one paragraph joined;
    click's ``\\b`` no-rewrap marker dropped)."""
    out = []
    for block in re.split(r"\n\s*\n", help_text.strip()):
        lines = [line.strip() for line in block.splitlines() if line.strip() != "\b"]
        if lines:
            out.append(" ".join(lines))
    return out


def _is_group(cmd: Command) -> bool:
    return hasattr(cmd, "list_commands")


def _is_argument(param: Any) -> bool:
    return bool(param.param_type_name == "argument")


def _context(cmd: Command, name: str, parent: Context | None) -> Context:
    return cmd.context_class(cmd, info_name=name, parent=parent)


def _commands(group: Command, ctx: Context, prefix: tuple[str, ...] = ()
              ) -> Iterator[tuple[tuple[str, ...], Command, Context]]:
    for name in sorted(group.list_commands(ctx)):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = _context(cmd, name, ctx)
        yield (*prefix, name), cmd, sub
        if _is_group(cmd):
            yield from _commands(cmd, sub, (*prefix, name))


def _page(title: str, summary: str, cmd: Command, ctx: Context, see_also: list[str]) -> str:
    out = [f'.TH "{title.upper()}" "{SECTION}" "" "moddeps {__version__}" "{MANUAL}"', ".SH NAME",
           f"{_roff(title)} \\- {_roff(summary)}", ".SH SYNOPSIS", f".B {_roff(ctx.command_path)}"]
    pieces = " ".join(cmd.collect_usage_pieces(ctx))
    if pieces:
        out.append(_roff(pieces))
    paragraphs = _paragraphs(cmd.help or "")
    if paragraphs:
        out.append(".SH DESCRIPTION")
        for i, para in enumerate(paragraphs):
            if i:
                out.append(".PP")
            out.append(_roff(para))
    args = [p for p in cmd.params if _is_argument(p)]
    opts = [p for p in cmd.params if not _is_argument(p) and not getattr(p, "hidden", False)]
    for heading, params in (("ARGUMENTS", args), ("OPTIONS", opts)):
        records = [r for p in params if (r := _help_record(p, ctx)) is not None]
        if heading == "OPTIONS":
            records.append(("-h, --help", "Show the help and exit."))
        if not records:
            continue
        out.append(f".SH {heading}")
        for name, text in records:
            out += [".TP", f".B {_roff(name)}", _roff(" ".join(text.split())) if text else ""]
    if _is_group(cmd):
        out.append(".SH COMMANDS")
        for name in sorted(cmd.list_commands(ctx)):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            out += [".TP", f".B {_roff(name)}", _roff(sub.get_short_help_str(limit=300))]
    out.append(".SH EXIT STATUS")
    for status, meaning in EXIT_STATUS:
        out += [".TP", f".B {status}", _roff(meaning)]
    out += [".SH SEE ALSO", ",\n".join(f".BR {_roff(name)} (1)" for name in see_also)]
    return "\n".join(line for line in out if line != "") + "\n"


def _help_record(param: Any, ctx: Context) -> tuple[str, str] | None:
    if _is_argument(param):
        text = getattr(param, "help", None) or ""
        return (param.make_metavar(ctx) if _takes_ctx(param) else param.make_metavar()), text
    record = param.get_help_record(ctx)
    return None if record is None else (record[0], record[1])


def _takes_ctx(param: Any) -> bool:
    import inspect

    return "ctx" in inspect.signature(param.make_metavar).parameters


def pages() -> dict[str, str]:
    """File name -> roff text, for moddeps and every command (sorted by name)."""
    import typer.main

    from .cli import app

    root = typer.main.get_command(app)
    ctx = _context(root, "moddeps", None)
    entries = list(_commands(root, ctx)) if _is_group(root) else []
    names = ["moddeps-" + "-".join(path) for path, _cmd, _ctx in entries]
    out = {"moddeps.1": _page("moddeps", (root.help or "").strip().splitlines()[0], root, ctx, names)}
    for (_path, cmd, sub), name in zip(entries, names):
        summary = cmd.get_short_help_str(limit=120)
        out[f"{name}.1"] = _page(name, summary, cmd, sub, ["moddeps"])
    return dict(sorted(out.items()))


def default_dir() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "man")


def write(directory: str | None = None) -> list[str]:
    """Write every page into ``directory/man1`` (and remove pages of commands that are gone)."""
    target = os.path.join(directory or default_dir(), f"man{SECTION}")
    os.makedirs(target, exist_ok=True)
    made = pages()
    for stale in sorted(set(os.listdir(target)) - set(made)):
        if stale.endswith(f".{SECTION}"):
            os.remove(os.path.join(target, stale))
    for name, text in made.items():
        with open(os.path.join(target, name), "w", encoding="utf-8") as f:
            f.write(text)
    return sorted(made)


if __name__ == "__main__":  # pragma: no cover
    for page in write(sys.argv[1] if len(sys.argv) > 1 else None):
        print(page)
