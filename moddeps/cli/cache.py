"""``moddeps cache``: the scan cache's contents and pruning."""

from __future__ import annotations

from typing import Annotated

import typer

from ..depmod import stamp
from .base import exit_on_error
from .shared import CacheOpt, app, write_lines

cache_app = typer.Typer(help="See and prune the scan cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("info")
def cache_info(cache: CacheOpt = None) -> None:
    """What the scan cache holds: its size, each table's rows (current, or left by an earlier version), its ages.

    Plain records, TAB-separated: ``cache PATH BYTES SIZE``, ``bound BYTES SIZE``
    (the automatic bound, ``none`` for none), ``table NAME ROWS BYTES current|old``, ``written OLDEST NEWEST``
    (UTC, ``-`` when nothing is dated), ``stamps COUNT BYTES`` (depmod's stamps beside it, PATH.stamps/).
    """
    from datetime import UTC, datetime

    from ..read import cache as sc
    from ..report.render import record

    with exit_on_error():
        path = cache or sc.default_path()
        bound = sc.bound_from_env()
        got = sc.info(path)

        def when(t: float | None) -> str:
            return "-" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        lines = [record("cache", got.path, got.size, sc.format_size(got.size) if got.exists else "absent"),
                 record("bound", *((bound, sc.format_size(bound)) if bound else ("none", "-")))]
        lines += [record("table", t.name, t.rows, t.bytes, "current" if t.current else "old")
                  for t in got.tables]
        lines.append(record("written", when(got.oldest), when(got.newest)))
        count, size = stamp.held(path)
        lines.append(record("stamps", count, size))
        write_lines(lines)


@cache_app.command("prune")
def cache_prune(
    older_than: Annotated[str | None, typer.Option(
        "--older-than", metavar="D", help="Delete what was written more than D ago (30d, 12h, 90m, 2w; days).")] = None,
    max_size: Annotated[str | None, typer.Option(
        "--max-size", metavar="S", help="Delete the oldest rows until the cache fits in S (500M, 2G, 64k).")] = None,
    cache: CacheOpt = None,
) -> None:
    """Shrink the scan cache: drop the tables earlier versions left, then what --older-than and --max-size say.

    Deleted modules are simply read again by the next scan.  The space is given back to the filesystem.
    depmod's stamps beside the cache (PATH.stamps/) go too: those older than --older-than, all of them
    with --max-size; the next depmod run writes its stamp again.
    """
    from ..errors import UsageError
    from ..read import cache as sc
    from ..report.render import sentence

    with exit_on_error():
        try:
            age = None if older_than is None else sc.parse_age(older_than)
            size = None if max_size is None else sc.parse_size(max_size)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        path = cache or sc.default_path()
        r = sc.prune(path, older_than=age, max_size=size)
        # depmod's stamps: older than --older-than; all of them to fit --max-size (each is remade by the next run)
        stamps = stamp.prune(path, older_than=age) if age is not None or size is not None else 0
        dropped = f"{len(r.dropped_tables)} old table(s) dropped ({', '.join(r.dropped_tables)})" \
            if r.dropped_tables else "no old table"
        write_lines([sentence(f"moddeps cache prune: {path}: {sc.format_size(r.size_before)} -> "
                              f"{sc.format_size(r.size_after)}; {dropped}; {r.deleted_rows} row(s) deleted; "
                              f"{stamps} depmod stamp(s) deleted")])
