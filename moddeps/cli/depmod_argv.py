"""``moddeps depmod`` without typer: kmod's usual arguments, and the run both parsers share.

A package's postinst, dracut and mkinitcpio call ``depmod`` with a few plain
options (``depmod -a -b ROOT VERSION``), often many times in one upgrade.
Importing typer and click to parse those costs ~40 ms, more than a whole
``depmod`` answered from the cache, so :func:`fast_options` parses them here
and :mod:`moddeps.cli` runs :func:`run_depmod` directly.  It accepts only a
subset whose meaning is beyond doubt -- each option spelled exactly as
``moddeps depmod --help`` lists it, at most once, with its value in the next
word or after ``=`` -- and returns None for anything else (help, ``-V``,
kmod 30's deprecated options, bundled flags like ``-an``, a value that looks
like an option, a bad ``-j``...), which the typer command
(:mod:`moddeps.cli.depmod`) then parses, with its help and error messages.
tests/test_cli_depmod_argv.py checks that both parsers give the same
options, and that this table names the typer command's options.
"""

from __future__ import annotations

import sys

from ..process import kept, quicker_heap
from .base import cache_path, err, exit_on_error

TYPE_CHECKING = False  # (typing itself is not imported: see moddeps.cli)
if TYPE_CHECKING:
    from typing import Any

    from ..depmod.run import DepmodOptions
    from ..depmod.stamp import Known

#: The flags: spelling -> field of :class:`moddeps.depmod.run.DepmodOptions` (or ``no_cache``).
FLAGS = {
    "-a": "all", "--all": "all",
    "-A": "quick", "--quick": "quick",
    "-e": "errsyms", "--errsyms": "errsyms",
    "-n": "dry_run", "--show": "dry_run", "--dry-run": "dry_run",
    "-v": "verbose", "--verbose": "verbose",
    "-w": "warn_dups", "--warn": "warn_dups",
    "--no-cache": "no_cache",
}

#: The options taking a value: spelling -> field (``config`` may be given again and again).
VALUED = {
    "-b": "basedir", "--basedir": "basedir",
    "-o": "outdir", "--outdir": "outdir",
    "-C": "config", "--config": "config",
    "-E": "symvers", "--symvers": "symvers",
    "-F": "system_map", "--filesyms": "system_map",
    "-P": "prefix", "--symbol-prefix": "prefix",
    "-m": "moduledir", "--moduledir": "moduledir",
    "-j": "jobs", "--jobs": "jobs",
    "--cache": "cache",
    "--kmod-version": "kmod_version",
}


def fast_fields(args: list[str]) -> dict[str, Any] | None:
    """The fields of :class:`~moddeps.depmod.run.DepmodOptions` for ``moddeps depmod ARGS``
    (all of them, defaults included), or None when typer has to parse ARGS."""
    flags: set[str] = set()
    values: dict[str, str] = {}
    config: list[str] = []
    positional: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word == "--":
            positional += args[i:]
            break
        if not word.startswith("-"):
            positional.append(word)
            continue
        if word in FLAGS:
            if FLAGS[word] in flags:
                return None
            flags.add(FLAGS[word])
            continue
        name, eq, value = word.partition("=")
        if eq and not name.startswith("--"):
            return None  # -b=X: click reads the value "=X"; let it
        field = VALUED.get(name)
        if field is None:
            return None  # unknown, "-", bundled flags, an attached short value
        if not eq:
            if i == len(args) or args[i].startswith("-"):
                return None  # missing, or a value that looks like an option: click's reading
            value = args[i]
            i += 1
        if field == "config":
            config.append(value)
            continue
        if field in values:
            return None
        values[field] = value
    jobs = values.get("jobs")
    if jobs is not None and not (jobs.isascii() and jobs.isdigit() and int(jobs) >= 1):
        return None
    get = values.get
    return {
        "version": positional[0] if positional else None, "files": tuple(positional[1:]),
        "all": "all" in flags, "quick": "quick" in flags, "basedir": get("basedir", ""), "outdir": get("outdir"),
        "moduledir": get("moduledir", "lib/modules"), "config": tuple(config), "errsyms": "errsyms" in flags,
        "symvers": get("symvers"), "system_map": get("system_map"), "dry_run": "dry_run" in flags,
        "prefix": get("prefix"), "verbose": "verbose" in flags, "warn_dups": "warn_dups" in flags,
        "jobs": None if jobs is None else int(jobs), "cache": cache_path(get("cache"), "no_cache" in flags),
        "kmod_version": get("kmod_version"), "deprecated": (),
    }


def fast_options(args: list[str]) -> DepmodOptions | None:
    """:func:`fast_fields` as the options record (None: typer has to parse ARGS)."""
    fields = fast_fields(args)
    if fields is None:
        return None
    from ..depmod.run import DepmodOptions

    return DepmodOptions(**fields)


def run_depmod(opts: DepmodOptions, known: Known | None = None) -> None:
    """Run depmod, write its diagnostics to stderr and (-n, -v) its files and lines to stdout.
    ``known``: see :func:`moddeps.depmod.run.run`.

    The result is kept (:data:`moddeps.process.kept`) for the process's
    ``os._exit``: freeing the tree and its resolution is all that is left."""
    from ..depmod.run import TEXT_FILES, run
    from ..errors import DepmodFatal

    if opts.cache:  # (the scan cache's module imports sqlite3: only when there is a cache)
        from ..read.cache import bound_from_env, upkeep

        bound = bound_from_env()
    try:
        result = run(opts, waiting=err, known=known)
    except DepmodFatal as exc:
        for line in [*exc.messages, *exc.notes]:
            err(line)
        raise SystemExit(exc.exit_status) from None
    finally:
        if opts.cache:  # date what the run wrote to the cache, keep it under its bound
            upkeep(opts.cache, bound, note=lambda text: err(f"note: {text}"))
    kept.append(result)
    if opts.verbose and result.kmod is not None:
        err(f"NOTE: {result.kmod.describe()}")
    for line in [*result.messages, *result.extra]:
        err(line)
    out = sys.stdout.buffer
    for line in result.verbose_lines:
        out.write(line.encode("utf-8", "surrogateescape") + b"\n")
    if opts.dry_run:
        # kmod's -n order: dep, alias, softdep, symbols, devname (weakdep after softdep)
        contents = dict(result.files)
        for name in (*TEXT_FILES[:3], "modules.weakdep", *TEXT_FILES[3:]):
            if name in contents:
                out.write(contents[name])
    out.flush()


def depmod_main(args: list[str]) -> bool:
    """Run ``moddeps depmod ARGS`` without typer if :func:`fast_fields` can parse ARGS
    (then the process exits); False: it cannot.  A rerun on unchanged inputs is answered
    by its stamp (:mod:`moddeps.depmod.stamp`) before anything else is imported."""
    fields = fast_fields(args)
    if fields is None:
        return False
    import gc

    gc.disable()  # (as run_process does, before the stamp's thousands of tuples are loaded)
    from ..depmod import stamp
    from .base import run_process

    got: list[str] | stamp.Known | None = None
    if stamp.wanted(fields):
        try:
            got = stamp.replay(fields["cache"], stamp.key(fields), known=True, sized=quicker_heap)
        except Exception:  # (no working directory...): only a shortcut, the run goes the usual way
            got = None
        if isinstance(got, list):
            lines = got

            def said() -> None:
                for line in lines:
                    err(line)

            run_process(said)
    from ..depmod.run import DepmodOptions

    opts = DepmodOptions(**fields)
    known = got if isinstance(got, stamp.Known) else None

    def body() -> None:
        with exit_on_error():
            run_depmod(opts, known)

    run_process(body)
    return True  # (not reached: run_process exits)
