"""``moddeps index``: kmod's binary indexes."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .base import exit_on_error
from .shared import app

index_app = typer.Typer(help="Inspect kmod's binary indexes (*.bin).", no_args_is_help=True)
app.add_typer(index_app, name="index")


@index_app.command("dump")
def index_dump(
    path: Annotated[str, typer.Argument(help="A kmod index file (modules.*.bin).")],
) -> None:
    """Print every key of an index with its priority and value, one per line (tab-separated)."""
    from ..errors import IndexFormatError, InputError
    from ..index.read import Index, dump_lines

    with exit_on_error():
        try:
            idx = Index.open(path)
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror}") from None
        except IndexFormatError as exc:
            raise InputError(str(exc)) from None
        out = sys.stdout
        for line in dump_lines(idx):
            out.write(line + "\n")
