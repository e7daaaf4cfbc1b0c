"""Which rendering a command prints, the plain-text record format, and the JSON envelope.

Two renderings, one rule (:func:`choose`):

* ``table``: rich tables and trees, for a person at a terminal.  Long lists
  are cut (each cut says how many rows are left out and how to see them).
* ``text``: for pipes, files and CI logs.  Every line is one record, written
  whole whatever the terminal's width, never cut, without colour or box
  characters.  A record's fields are separated by one TAB and its first
  field names the kind of record (``finding``, ``change``, ``module``, ...),
  so ``awk -F'\\t' '$1 == "finding"'`` and ``cut -f`` work.  Field values
  never hold a TAB, a newline or a carriage return (each is written as a
  space).  The first line of a report (``moddeps audit of ...``) and its
  ``note:`` lines have no TAB: they are sentences for people.
* ``json``: one versioned document (:func:`envelope`).

``--format`` chooses; without it ``--json`` means ``json``, and otherwise it
is ``table`` only when stdout is a terminal and neither ``CI=true``,
``NO_COLOR`` (any non-empty value, https://no-color.org) nor ``TERM=dumb``
is set.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

FORMATS = ("text", "table", "json")

#: the ``schema`` number of every JSON document moddeps writes
SCHEMA = 1
TOOL = "moddeps"


def envelope() -> dict[str, Any]:
    """The head of every ``--json`` document: ``{"schema": 1, "tool": "moddeps", "version": ...}``.

    The document's own keys follow (a dict keeps insertion order, so the
    envelope is always first)."""
    from .. import __version__

    return {"schema": SCHEMA, "tool": TOOL, "version": __version__}


def document(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` behind the envelope (a ``schema`` key in ``body`` is dropped: the envelope says it)."""
    doc = envelope()
    doc.update((k, v) for k, v in body.items() if k not in doc)
    return doc


def plain_environment(env: Mapping[str, str] | None = None) -> str | None:
    """Why the environment asks for plain text even on a terminal (None: it does not)."""
    env = os.environ if env is None else env
    if env.get("CI", "").lower() in ("true", "1", "yes"):
        return "CI"
    if env.get("NO_COLOR", ""):
        return "NO_COLOR"
    if env.get("TERM", "") == "dumb":
        return "TERM=dumb"
    return None


def choose(fmt: str | None, json_flag: bool = False, stream: TextIO | None = None,
           env: Mapping[str, str] | None = None) -> str:
    """The rendering: ``fmt`` if given (``text``, ``table``, ``json``; validated by the caller),
    else ``json`` with ``--json``, else ``table`` on a terminal, else ``text``."""
    if fmt is not None:
        return fmt
    if json_flag:
        return "json"
    stream = sys.stdout if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return "table" if tty and plain_environment(env) is None else "text"


def field(value: object) -> str:
    """One field of a plain-text record: ``None`` is ``-``; TAB, CR and LF become spaces."""
    if value is None:
        return "-"
    text = str(value)
    if "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\t", " ").replace("\r", " ").replace("\n", " ")
    return text if text else "-"


def record(kind: str, *fields: object) -> str:
    """One line of the plain format: the record's kind, then its fields, TAB-separated."""
    return "\t".join([kind, *(field(f) for f in fields)])


def sentence(text: str) -> str:
    """A line for people (a report's first line, a note): TABs and line breaks become spaces."""
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def write_lines(lines: Iterable[str], stream: TextIO | None = None) -> None:
    """Write plain-text lines as they are (bytes read from module files, kept as
    surrogate escapes, go back out as the same bytes)."""
    stream = sys.stdout if stream is None else stream
    text = "".join(line + "\n" for line in lines)
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        stream.write(text)
        return
    stream.flush()
    buffer.write(text.encode("utf-8", "surrogateescape"))
    buffer.flush()


def more_hint(left_out: int) -> str:
    """What a table that was cut says in place of the rows it left out."""
    return f"and {left_out} more: --format text or --json lists them all"
