"""``moddeps depmod``: kmod's depmod, byte for byte."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .base import cache_path, exit_on_error
from .depmod_argv import run_depmod
from .shared import CacheOpt, JobsOpt, KmodVersionOpt, NoCacheOpt, app, show_version


# ``param`` is click's Parameter: typer >= 0.28 carries its own copy of click (typer._click), so
# the class is used by its interface only, as in moddeps.manpages.
def _deprecated_flag(ctx: typer.Context, param: Any, value: bool) -> bool:
    """Record kmod 30's ignored depmod options in the order given (click calls
    the callbacks of given options in command-line order)."""
    if value:
        ctx.meta.setdefault("moddeps.deprecated", []).append(param.opts[0])
    return value


def _deprecated_opt(name: str) -> Any:
    """One spelling per option: kmod's warning names the spelling given."""
    return typer.Option(name, hidden=True, callback=_deprecated_flag)


@app.command(context_settings={"allow_interspersed_args": True})
def depmod(
    ctx: typer.Context,
    args: Annotated[list[str] | None, typer.Argument(help="[VERSION [FILES...]]", show_default=False)] = None,
    all_: Annotated[bool, typer.Option("-a", "--all", help="Probe all modules (default without FILES).")] = False,
    quick: Annotated[
        bool, typer.Option("-A", "--quick", help="Do nothing if no module is newer than modules.dep.")
    ] = False,
    basedir: Annotated[str, typer.Option("-b", "--basedir", help="Root of the module tree.")] = "",
    outdir: Annotated[str | None, typer.Option("-o", "--outdir", help="Write outputs under this root instead.")] = None,
    config: Annotated[list[str] | None, typer.Option("-C", "--config", help="depmod.d file or directory.")] = None,
    errsyms: Annotated[bool, typer.Option("-e", "--errsyms", help="Report unknown symbols (needs -E or -F).")] = False,
    symvers: Annotated[str | None, typer.Option("-E", "--symvers", help="Kernel Module.symvers.")] = None,
    filesyms: Annotated[str | None, typer.Option("-F", "--filesyms", help="Kernel System.map.")] = None,
    dry_run: Annotated[bool, typer.Option("-n", "--show", "--dry-run", help="Write the text files to stdout.")] = False,
    prefix: Annotated[str | None, typer.Option("-P", "--symbol-prefix", help="Architecture symbol prefix.")] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
    warn: Annotated[bool, typer.Option("-w", "--warn", help="Warn on duplicate aliases of one module.")] = False,
    moduledir: Annotated[
        str, typer.Option("-m", "--moduledir", help="Module directory under BASEDIR.")
    ] = "lib/modules",
    jobs: JobsOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    kmod_version: KmodVersionOpt = None,
    _show: Annotated[bool, typer.Option(
        "-V", "--version", is_eager=True, callback=show_version,
        help="Print moddeps' version and the kmod releases it matches, and exit (kmod's depmod -V).")] = False,
    # kmod 30-33 accept these and warn "Ignored deprecated option"; kmod 34 rejects them
    _u: Annotated[bool, _deprecated_opt("-u")] = False,
    _unresolved: Annotated[bool, _deprecated_opt("--unresolved-error")] = False,
    _q: Annotated[bool, _deprecated_opt("-q")] = False,
    _quiet: Annotated[bool, _deprecated_opt("--quiet")] = False,
    _r: Annotated[bool, _deprecated_opt("-r")] = False,
    _root: Annotated[bool, _deprecated_opt("--root")] = False,
    _map: Annotated[bool, _deprecated_opt("--map")] = False,
) -> None:
    """Generate modules.dep and the other index files, byte for byte as kmod's depmod.

    Which kmod release is matched (30 to 34) is chosen by --kmod-version,
    $MODDEPS_KMOD_VERSION, the kmod installed under BASEDIR (its dpkg or pacman
    database), else 34; -v says which.  Unlike kmod, the default depmod.d
    directories are read under BASEDIR.
    """
    argv = list(args or [])
    version = argv[0] if argv else None
    with exit_on_error():
        from ..depmod.run import DepmodOptions

        run_depmod(DepmodOptions(
            version=version, files=tuple(argv[1:]), all=all_, quick=quick, basedir=basedir, outdir=outdir,
            moduledir=moduledir, config=tuple(config or ()), errsyms=errsyms, symvers=symvers,
            system_map=filesyms, dry_run=dry_run, prefix=prefix, verbose=verbose, warn_dups=warn, jobs=jobs,
            cache=cache_path(cache, no_cache), kmod_version=kmod_version,
            deprecated=tuple(ctx.meta.get("moddeps.deprecated", ())),
        ))
