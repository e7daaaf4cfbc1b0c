"""What every ``moddeps`` command shares through typer: the app, its options, output and trees.

Each command is a module of this package (``moddeps.cli.scan``, ...) that
registers itself on :data:`app`, parses, calls the library, renders, and exits.
The exit statuses, diagnostics and the process itself are :mod:`moddeps.cli.base`'s.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .base import cache_path, err, run_process, state

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from rich.console import Console
    from typer.models import CommandInfo

    from ..config import DepmodConfig
    from ..read.cache import ScanCache
    from ..read.scan import Tree
    from ..resolve import Resolution


# --------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------


def _plain_help() -> bool:
    """Help and usage errors as plain text (click's) unless stdout and stderr are a colour terminal."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") or "NO_COLOR" in os.environ:
        return True
    if os.environ.get("TERM") == "dumb":
        return True
    return not (sys.stdout.isatty() and sys.stderr.isatty())


# Usage errors (unknown option, bad value, missing argument) exit 64 (EX_USAGE,
# sysexits.h) as the README's table says, not click's 2.  The class is reached
# through typer's public BadParameter: typer >= 0.28 vendors click as typer._click.
for _cls in typer.BadParameter.__mro__:
    if _cls.__name__ == "UsageError":
        _cls.exit_code = 64  # type: ignore[attr-defined]

app = typer.Typer(
    name="moddeps",
    help="Linux kernel module trees, understood from the binaries alone.",
    no_args_is_help=True,
    # --install-completion / --show-completion [bash|zsh|fish]
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None if _plain_help() else "rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

# --------------------------------------------------------------------------
# Options several commands take
# --------------------------------------------------------------------------

JobsOpt = Annotated[
    int | None, typer.Option("--jobs", "-j", min=1, help="Processes reading modules (default: all cores; 1: serial).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="One versioned JSON document on stdout (--format json).")]
HtmlOpt = Annotated[str | None, typer.Option(
    "--html", metavar="FILE", help="Also write a self-contained HTML report to FILE (stdout unchanged).")]
TimestampOpt = Annotated[bool, typer.Option(
    "--timestamp",
    help="Put the time of the run in the --html report (without it the same input gives the same bytes).")]
FormatOpt = Annotated[str | None, typer.Option(
    "--format", metavar="text|table|json",
    help="text: one TAB-separated record per line, never wrapped (default when stdout is not a terminal, "
    "or with CI=true, NO_COLOR, TERM=dumb); table: rich tables (default on a terminal); json: as --json.")]
CacheOpt = Annotated[
    str | None,
    typer.Option("--cache", help="Scan cache database (default $MODDEPS_CACHE or ~/.cache/moddeps/scan.sqlite3)."),
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Read every module; do not use the scan cache.")]
KmodVersionOpt = Annotated[str | None, typer.Option(
    "--kmod-version", metavar="30..34",
    help="The kmod release to match (default: $MODDEPS_KMOD_VERSION, else the kmod the root's package "
    "database says is installed, else 34).")]
TreeArg = Annotated[str | None, typer.Option("--tree", "-t", help="Module tree (default: /lib/modules/$(uname -r)).")]
BasedirOpt = Annotated[str | None, typer.Option("--basedir", "-b")]
KernelOpt = Annotated[str | None, typer.Option("--kernel", "-k", help="Kernel version (with -b).")]


# --------------------------------------------------------------------------
# Diagnostics, errors and exit statuses
# --------------------------------------------------------------------------


def printable(s: str) -> str:
    from ..model import printable as _printable

    return _printable(s)


def version_text() -> str:
    """What ``--version`` prints: moddeps' version, then the kmod releases whose output it matches."""
    from .. import __version__
    from ..kmodversion import SUPPORTED

    return f"moddeps {__version__}\nmatches kmod {', '.join(str(v) for v in SUPPORTED)}\n"


def show_version(value: bool) -> None:
    if value:
        sys.stdout.write(version_text())
        raise typer.Exit(0)


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show tracebacks of errors (for bug reports); exit statuses stay the same.")] = False,
    _version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=show_version,
        help="Print moddeps' version and the kmod releases it matches, and exit.")] = False,
) -> None:
    state.debug = debug


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


@contextmanager
def progress(enabled: bool, what: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr, only when stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        f"[progress.description]{what}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def stdout_console() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False)


def output_format(fmt: str | None, json_out: bool) -> str:
    """The rendering asked for: ``text``, ``table`` or ``json`` (:func:`moddeps.report.render.choose`)."""
    from ..errors import UsageError
    from ..report.render import FORMATS, choose

    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"--format must be text, table or json, not {fmt!r}")
    if json_out and fmt not in (None, "json"):
        raise UsageError(f"--json is --format json: give one of --json, --format {fmt}")
    return choose(fmt, json_out)


def emit(mode: str, *, document: Callable[[], dict[str, Any]], lines: Callable[[], list[str]],
         table: Callable[[Console], None]) -> None:
    """Write a result in the rendering :func:`output_format` chose: the JSON document, plain
    records (one a line) or rich tables; only the chosen renderer runs."""
    if mode == "json":
        from ..report.jsonout import dumps

        sys.stdout.write(dumps(document()) + "\n")
    elif mode == "text":
        write_lines(lines())
    else:
        table(stdout_console())


def write_lines(lines: list[str]) -> None:
    """Plain-text lines on stdout, bytes read from files written back as they were."""
    from ..report.render import write_lines as write

    write(lines)


def html_timestamp(wanted: bool) -> str | None:
    """The time an --html report shows with --timestamp (UTC, to the second); None without it."""
    if not wanted:
        return None
    import datetime

    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --------------------------------------------------------------------------
# Which tree
# --------------------------------------------------------------------------


def default_tree() -> tuple[str, bool]:
    """``/lib/modules/$(uname -r)``, or the sample tree shipped with the package."""
    release = os.uname().release
    path = f"/lib/modules/{release}"
    if os.path.isdir(path):
        return path, False
    return sample_tree(), True


def sample_tree() -> str:
    from importlib.resources import files
    from pathlib import Path

    try:
        root: Traversable | Path = files("moddeps.sample_tree") / "modules"
    except ModuleNotFoundError:  # an editable install or a source checkout
        root = Path(__file__).resolve().parent.parent.parent / "sample_modules" / "lib" / "modules"
    versions = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not versions:
        from ..errors import InputError

        raise InputError(f"{root}: the sample tree is missing from this installation")
    return str(root / versions[0])


def resolve_tree(tree: str | None, basedir: str | None, version: str | None,
                 allow_sample: bool = False) -> tuple[str, str | None]:
    """A module directory from TREE or -b/-k; returns (dirname, note for stderr).

    Without TREE, -b and -k: ``/lib/modules/$(uname -r)``.  Only a bare
    ``moddeps audit`` (``allow_sample``) falls back to the sample tree when
    that does not exist; every other command says "no such module directory"."""
    if tree:
        return tree.rstrip("/") or "/", None
    if basedir or version:
        from ..kmodnames import find_module_dir

        return find_module_dir(basedir or "", version or os.uname().release), None
    if not allow_sample:
        from ..errors import InputError

        running = f"/lib/modules/{os.uname().release}"
        if not os.path.isdir(running):
            raise InputError(f"{running}: no such module directory (give the tree)")
        return running, None
    path, is_sample = default_tree()
    note = (
        f"/lib/modules/{os.uname().release} does not exist; using the sample tree shipped with moddeps: {path}"
        if is_sample
        else None
    )
    return path, note


# --------------------------------------------------------------------------
# Reading trees: the scan cache, depmod.d, the scan
# --------------------------------------------------------------------------


@contextmanager
def scan_cache(cache: str | None, no_cache: bool) -> Iterator[ScanCache | None]:
    """The scan cache for one command (None with --no-cache), closed at the end and kept under
    its bound (:func:`moddeps.read.cache.session`); its problems are said as notes."""
    from ..read.cache import session

    with session(cache_path(cache, no_cache), note=lambda text: err(f"note: {text}")) as c:
        yield c


def scan_dir(dirname: str, jobs: int | None, show_progress: bool, cache: str | None = None,
             no_cache: bool = False, config: DepmodConfig | None = None) -> Tree:
    from ..read.scan import scan_tree

    with scan_cache(cache, no_cache) as c, progress(show_progress, "reading modules") as cb:
        return scan_tree(dirname, jobs=jobs, progress=cb, cache=c, config=config)




def load_resolved(tree: str | None, basedir: str | None, version: str | None, jobs: int | None = None,
                  show_progress: bool = True) -> tuple[Tree, Resolution]:
    """Scan a tree and resolve its symbols: (tree, resolution)."""
    from ..resolve import resolve

    dirname, note = resolve_tree(tree, basedir, version)
    if note:
        err(note)
    from ..config import for_tree

    t = scan_dir(dirname, jobs, show_progress, config=for_tree(dirname, basedir=basedir))
    paths = [f"{t.dirname}/{f.relpath}" if f.relpath is not None else f.path for f in t.files]
    return t, resolve(t.modules, paths)


# --------------------------------------------------------------------------
# The entry point of the typer application
# --------------------------------------------------------------------------


def main() -> None:
    """Every command through typer (``moddeps.cli.main`` takes a shorter way for a plain ``depmod``)."""

    def invoke() -> None:
        _register_only(sys.argv[1:])
        app()

    run_process(invoke)


def _register_only(args: list[str]) -> None:
    """Keep only the command being invoked, when the arguments name one.

    typer builds a click command, with signature inspection, for every
    registered command on every run: 25 ms of a 150 ms warm ``depmod``.
    Help and errors for the invoked command are unchanged; without a command
    name (``moddeps --help``, a typo) everything stays registered.
    """
    first = next((a for a in args if not a.startswith("-")), None)
    if first is None:
        return

    def name(info: CommandInfo) -> str:
        # typer's rule: the name given, else the function's, lower case, "_" as "-"
        if info.name:
            return info.name
        return info.callback.__name__.lower().replace("_", "-") if info.callback else ""

    chosen = [c for c in app.registered_commands if name(c) == first]
    if chosen:
        app.registered_commands = chosen
        app.registered_groups = []
    elif any(g.name == first for g in app.registered_groups):
        app.registered_commands = []
