"""The ``moddeps`` command line: each command calls the library, renders, and exits.

Exit statuses (all commands):
  0   success
  1   the requested check failed (dependency cycles for ``depmod``; findings at
      or above ``--fail-on`` for ``audit``)
  3   some module files could not be read (``scan``, ``info``; the rest was processed)
  64  usage error (bad option, bad VERSION)
  66  missing or unreadable input (no such tree, file or symbol list)
  73  an output file could not be written
Data goes to stdout; diagnostics and progress to stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer


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
index_app = typer.Typer(help="Inspect kmod's binary indexes (*.bin).", no_args_is_help=True)
app.add_typer(index_app, name="index")
cache_app = typer.Typer(help="See and prune the scan cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

_state = {"debug": False}

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


def _deprecated_flag(ctx: typer.Context, param: Any, value: bool) -> bool:
    """Record kmod 30's ignored depmod options in the order given (click calls
    the callbacks of given options in command-line order)."""
    if value:
        ctx.meta.setdefault("moddeps.deprecated", []).append(param.opts[0])
    return value


def _deprecated_opt(name: str) -> Any:
    """One spelling per option: kmod's warning names the spelling given."""
    return typer.Option(name, hidden=True, callback=_deprecated_flag)


def _cache_path(cache: str | None, no_cache: bool) -> str | None:
    if no_cache:
        return None
    from .read.cache import default_path

    return cache or default_path()


@contextmanager
def _scan_cache(cache: str | None, no_cache: bool) -> Iterator[Any]:
    """The scan cache for one command (None with --no-cache), closed at the end,
    where its problem, if any, is said once."""
    path = _cache_path(cache, no_cache)
    if path is None:
        yield None
        return
    from .read.cache import ScanCache

    bound = _cache_bound()
    c = ScanCache(path)
    try:
        yield c
    finally:
        if c.problem:
            _err(f"note: {c.problem}")
        c.close()
        _maintain_cache(path, bound)


def _cache_bound() -> int | None:
    """The automatic bound of the cache's size ($MODDEPS_CACHE_MAX_SIZE; a bad value is a usage error)."""
    from .errors import UsageError
    from .read.cache import env_max_size

    try:
        return env_max_size()
    except ValueError as exc:
        raise UsageError(f"MODDEPS_CACHE_MAX_SIZE: {exc}") from None


def _maintain_cache(path: str, bound: int | None) -> None:
    """Date what this run wrote to the cache and keep it under its bound (a problem: a note, never a failure)."""
    import sqlite3

    from .read.cache import maintain

    try:
        pruned = maintain(path, max_size=bound)
    except (sqlite3.Error, OSError) as exc:
        _err(f"note: scan cache {path} not maintained ({exc})")
        return
    if pruned is not None:
        _err(f"note: scan cache {path} was over its bound ({_bytes(bound or 0)}, $MODDEPS_CACHE_MAX_SIZE): pruned,"
             f" oldest first, from {_bytes(pruned.size_before)} to {_bytes(pruned.size_after)}")


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _err(message: str) -> None:
    """One diagnostic on stderr; bytes read from files (surrogate escapes) are written back as they were."""
    text = f"moddeps: {message}\n"
    buffer = getattr(sys.stderr, "buffer", None)
    if buffer is None:
        sys.stderr.write(text)
        return
    sys.stderr.flush()
    buffer.write(text.encode("utf-8", "surrogateescape"))
    buffer.flush()


def printable(s: str) -> str:
    from .model import printable as _printable

    return _printable(s)


def version_text() -> str:
    """What ``--version`` prints: moddeps' version, then the kmod releases whose output it matches."""
    from . import __version__
    from .kmodversion import SUPPORTED

    return f"moddeps {__version__}\nmatches kmod {', '.join(str(v) for v in SUPPORTED)}\n"


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(version_text())
        raise typer.Exit(0)


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show tracebacks of errors (for bug reports); exit statuses stay the same.")] = False,
    _version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_show_version,
        help="Print moddeps' version and the kmod releases it matches, and exit.")] = False,
) -> None:
    _state["debug"] = debug


@contextmanager
def _errors() -> Iterator[None]:
    """Map domain errors to one stderr line and their exit status."""
    from .errors import ModdepsError

    try:
        yield
    except ModdepsError as exc:
        if _state["debug"]:
            _traceback()
        _err(f"error: {exc}")
        raise typer.Exit(exc.exit_status) from None
    except KeyboardInterrupt:
        _err("interrupted")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except BrokenPipeError:  # e.g. "moddeps ... | head": stop quietly, as Unix tools do
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        raise typer.Exit(141) from None
    except Exception as exc:  # a bug: one line, the traceback with --debug
        if _state["debug"]:
            _traceback()
        _err(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        raise typer.Exit(70) from None


def _traceback() -> None:
    """--debug: the traceback of the exception being handled, on stderr (the exit status does not change)."""
    import traceback

    sys.stderr.flush()
    traceback.print_exc(file=sys.stderr)
    sys.stderr.flush()


@contextmanager
def _progress(enabled: bool, what: str) -> Iterator[Callable[[int, int], None] | None]:
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


def _stdout() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False)


def _format(fmt: str | None, json_out: bool) -> str:
    """The rendering asked for: ``text``, ``table`` or ``json`` (:func:`moddeps.report.render.choose`)."""
    from .errors import UsageError
    from .report.render import FORMATS, choose

    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"--format must be text, table or json, not {fmt!r}")
    if json_out and fmt not in (None, "json"):
        raise UsageError(f"--json is --format json: give one of --json, --format {fmt}")
    return choose(fmt, json_out)


def _plain(lines: list[str]) -> None:
    from .report.render import write_lines

    write_lines(lines)


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
        root: Any = files("moddeps.sample_tree") / "modules"
    except ModuleNotFoundError:  # an editable install or a source checkout
        root = Path(__file__).resolve().parent.parent / "sample_modules" / "lib" / "modules"
    versions = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not versions:
        from .errors import InputError

        raise InputError(f"{root}: the sample tree is missing from this installation")
    return str(root / versions[0])


def _resolve_tree(tree: str | None, basedir: str | None, version: str | None,
                  allow_sample: bool = False) -> tuple[str, str | None]:
    """A module directory from TREE or -b/-k; returns (dirname, note for stderr).

    Without TREE, -b and -k: ``/lib/modules/$(uname -r)``.  Only a bare
    ``moddeps audit`` (``allow_sample``) falls back to the sample tree when
    that does not exist; every other command says "no such module directory"."""
    if tree:
        return tree.rstrip("/") or "/", None
    if basedir or version:
        from .kmodnames import find_module_dir

        return find_module_dir(basedir or "", version or os.uname().release), None
    if not allow_sample:
        from .errors import InputError

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
# scan / info
# --------------------------------------------------------------------------


@app.command()
def scan(
    paths: Annotated[list[str], typer.Argument(help="Module trees (.../lib/modules/VERSION) or module files.")],
    json_out: JsonOpt = False,
    fmt: FormatOpt = None,
    jobs: JobsOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Read module trees or files and list what each module exports and needs."""
    from .model import Module
    from .read.scan import Tree

    with _errors():
        mode = _format(fmt, json_out)
        json_out = mode == "json"
        trees: list[Tree] = []
        files: list[str] = []
        for p in paths:
            if os.path.isdir(p):
                trees.append(_scan(p, jobs, not json_out, cache, no_cache))
            elif os.path.lexists(p):
                files.append(p)
            else:
                from .errors import InputError

                raise InputError(f"{p}: no such file or directory")
        loose: list[Module] = _scan_files(files, jobs, cache, no_cache) if files else []
        for m in loose:
            if m.error:
                _err(f"{printable(m.path)}: {m.error}")
        for t in trees:
            for m in t.broken:
                _err(f"{printable(t.dirname)}/{printable(m.path)}: {m.error}")
            for prob in t.problems:
                _err(f"{printable(t.dirname)}/{printable(prob.path)}: {prob.reason}")
        if json_out:
            from .report.jsonout import dumps, scan_documents, scan_json_parts

            if len(trees) == 1 and not loose:
                for part in scan_json_parts(trees[0], trees[0].modules):
                    sys.stdout.write(part)
                sys.stdout.write("\n")
            else:
                sys.stdout.write(dumps(scan_documents(trees, loose)) + "\n")
        elif mode == "text":
            from .report.text import scan_lines

            _plain([line for t in trees for line in scan_lines(t, t.modules)]
                   + (scan_lines(None, loose) if loose else []))
        else:
            from .report.text import render_scan

            con = _stdout()
            for t in trees:
                render_scan(con, t, t.modules)
            if loose:
                render_scan(con, None, loose)
        if any(t.broken or t.problems for t in trees) or any(m.error for m in loose):
            raise typer.Exit(3)


def _scan_files(files: list[str], jobs: int | None, cache: str | None, no_cache: bool) -> list[Any]:
    from .read.scan import scan_files

    with _scan_cache(cache, no_cache) as c:
        return scan_files(files, jobs=jobs, cache=c)


def _scan(dirname: str, jobs: int | None, show_progress: bool, cache: str | None = None,
          no_cache: bool = False, config: Any = None) -> Any:
    from .read.scan import scan_tree

    with _scan_cache(cache, no_cache) as c, _progress(show_progress, "reading modules") as cb:
        return scan_tree(dirname, jobs=jobs, progress=cb, cache=c, config=config)


def _info_field(ctx: typer.Context, param: Any, value: Any) -> Any:
    """modinfo's -a -d -l -p -n -F: the last one given wins (click runs the
    callbacks of given options in command-line order)."""
    if value:
        from .modinfo import SHORTCUTS

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
    from . import kmodversion
    from . import modinfo as mi

    with _errors():
        json_out = _format(fmt, json_out) == "json"
        chosen = ctx.meta.get("moddeps.info.field")
        kmod = kmodversion.select(kmod_version, basedir)
        opts = mi.Options(field=chosen, null=null, modname=modname, kmod_version=kmod.version)
        if not modules:
            _err("ERROR: missing module or filename.")
            raise typer.Exit(1)
        t = mi.open_tree(_info_dirname(tree, basedir, version))
        if t.note:
            _err(f"note: {t.note}")
        queries = []
        out = sys.stdout.buffer
        for arg in modules:
            q = mi.query(t, arg, opts)
            queries.append(q)
            if json_out:
                # the document has the errors; stderr names each file too (one line each)
                if q.error is not None:
                    _err(f"error: {printable(q.arg)}: {printable(q.error)}")
                for one in q.infos:
                    if one.error is not None:
                        _err(f"error: {printable(one.filename)}: {printable(one.error)}")
                continue
            if q.error is not None:
                out.flush()
                _err(f"ERROR: {q.error}")
                continue
            for one in q.infos:
                messages: list[str] = []
                text = mi.render(one, opts, messages)
                if symbols and one.module is not None:
                    from .report.info import symbols_text

                    text += symbols_text(one.module)
                out.write(text.encode("utf-8", "surrogateescape"))
                out.flush()
                for msg in messages:
                    _info_err(msg)
        if json_out:
            from .report.info import info_document
            from .report.jsonout import dumps

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
        _err(f"ERROR: {message}")


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


# --------------------------------------------------------------------------
# audit
# --------------------------------------------------------------------------


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
    from .errors import UsageError

    with _errors():
        mode = _format(fmt, json_out)
        json_out = mode == "json"
        if fail_on not in (None, "error", "warning", "never"):
            raise UsageError(f"--fail-on must be error, warning or never, not {fail_on!r}")
        if symvers and system_map:
            raise UsageError("give --symvers or --system-map, not both")
        from .audit import audit_tree
        from .config import load as load_config

        dirname, note = _resolve_tree(tree, basedir, version, allow_sample=True)
        if note:
            # The sample tree is a demonstration, broken on purpose: its
            # findings do not fail the command unless --fail-on says so.
            _err(note + " (exit status 0 unless --fail-on is given)")
            fail_on = fail_on or "never"
        kernel = None
        if symvers or system_map:
            from .kernelsyms import load_kernel_symbols

            kernel = load_kernel_symbols(symvers, "symvers") if symvers else load_kernel_symbols(
                system_map or "", "system.map")
        cfg = load_config(None, os.path.basename(dirname), _basedir_of(dirname, basedir))
        t = _scan(dirname, jobs, not json_out, cache, no_cache, cfg)
        result = audit_tree(t, kernel)
        if html_file:
            from . import kmodversion
            from .report import html

            kmod = kmodversion.select(None, _basedir_of(dirname, basedir)).describe()
            html.write(html_file, html.render(html.audit_data(
                t, result, kmod=kmod, inputs={"basedir (depmod.d)": _basedir_of(dirname, basedir)},
                timestamp=_html_timestamp(timestamp))))
        if json_out:
            from .report.audit import audit_document
            from .report.jsonout import dumps

            sys.stdout.write(dumps(audit_document(result)) + "\n")
        elif mode == "text":
            from .report.audit import audit_lines

            _plain(audit_lines(result))
        else:
            from .report.audit import render_audit

            render_audit(_stdout(), result)
        raise typer.Exit(result.exit_status(fail_on or "error"))


def _html_timestamp(wanted: bool) -> str | None:
    """The time an --html report shows with --timestamp (UTC, to the second); None without it."""
    if not wanted:
        return None
    import datetime

    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _basedir_of(dirname: str, basedir: str | None) -> str:
    """BASEDIR for depmod.d: given, or the part before [usr/]lib/modules/VERSION."""
    if basedir is not None:
        return basedir
    from .kmodnames import basedir_of

    base = basedir_of(dirname)
    return "/nonexistent-basedir" if base is None else base


TreeArg = Annotated[str | None, typer.Option("--tree", "-t", help="Module tree (default: /lib/modules/$(uname -r)).")]
BasedirOpt = Annotated[str | None, typer.Option("--basedir", "-b")]
KernelOpt = Annotated[str | None, typer.Option("--kernel", "-k", help="Kernel version (with -b).")]


def _load(tree: str | None, basedir: str | None, version: str | None, jobs: int | None = None,
          show_progress: bool = True) -> Any:
    """Scan a tree and resolve its symbols: (tree, resolution)."""
    from .config import load as load_config
    from .resolve import resolve

    dirname, note = _resolve_tree(tree, basedir, version)
    if note:
        _err(note)
    cfg = load_config(None, os.path.basename(os.path.abspath(dirname)), _basedir_of(dirname, basedir))
    t = _scan(dirname, jobs, show_progress, config=cfg)
    paths = [f"{t.dirname}/{f.relpath}" if f.relpath is not None else f.path for f in t.files]
    return t, resolve(t.modules, paths)


def _index_of(t: Any, name: str) -> int:
    from .errors import InputError

    wanted = name.replace("-", "_")
    for i, m in enumerate(t.modules):
        if m.name == wanted:
            return i
    raise InputError(f"{name}: no such module in {t.dirname}")


@app.command()
def why(
    module: Annotated[str, typer.Argument(help="The module that needs something.")],
    target: Annotated[str | None, typer.Argument(help="The module it (transitively) needs.")] = None,
    tree: TreeArg = None,
    basedir: BasedirOpt = None,
    version: KernelOpt = None,
    json_out: JsonOpt = False,
    fmt: FormatOpt = None,
) -> None:
    """Why MODULE needs TARGET: every dependency path, each edge with its symbols (or all its dependencies)."""
    with _errors():
        mode = _format(fmt, json_out)
        t, res = _load(tree, basedir, version, show_progress=mode != "json")
        from .graph import build_graph, dependency_paths
        from .report import deps as out

        src = t.modules[_index_of(t, module)].name
        g = build_graph(t.modules, [f.shown for f in t.files], res)
        # modprobe also loads softdeps and weakdeps, as the plan follows them: such an edge
        # carries its kind (softdep-pre, softdep-post, weakdep) and no symbols
        from .analysis import soft_edges

        for (a, b), how in sorted(soft_edges(t.modules).items()):
            if not g.has_edge(a, b):
                g.add_edge(a, b, symbols=(), kind=how)

        def symbols(a: str, b: str) -> list[str]:
            return list(g.edges[a, b]["symbols"])

        def kind(a: str, b: str) -> str | None:
            how: str | None = g.edges[a, b].get("kind")
            return how

        if target is None:
            import networkx as nx

            reach = sorted(nx.descendants(g, src))
            edges = sorted(g.subgraph([src, *reach]).edges())
            if mode == "json":
                from .report.jsonout import dumps

                sys.stdout.write(dumps(out.needs_document(src, reach, edges, symbols, kind)) + "\n")
            elif mode == "text":
                _plain(out.needs_lines(src, reach, edges, symbols, kind))
            else:
                out.render_needs(_stdout(), src, lambda name: sorted(g.successors(name)), symbols, kind)
            return
        dst = t.modules[_index_of(t, target)].name
        paths = dependency_paths(g, src, dst)
        if mode == "json":
            from .report.jsonout import dumps

            sys.stdout.write(dumps(out.paths_document(src, dst, paths, symbols, kind)) + "\n")
        elif mode == "text":
            _plain(out.paths_lines(src, dst, paths, symbols, kind))
        else:
            out.render_paths(_stdout(), src, dst, paths, symbols, kind)
        if not paths:
            raise typer.Exit(1)


@app.command()
def order(
    tree: Annotated[str | None, typer.Argument(help="Module tree (default: /lib/modules/$(uname -r)).")] = None,
    basedir: BasedirOpt = None,
    version: KernelOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Check the tree's modules.order instead.")] = False,
    json_out: JsonOpt = False,
    fmt: Annotated[str | None, typer.Option(
        "--format", metavar="text|table|json", help="json: as --json; text and table: the lines.")] = None,
) -> None:
    """A load order for the whole tree (dependencies first), in modules.order format.

    Among modules whose dependencies are all placed, the one earliest in the
    module array (modules.order, then kmod's order) comes first.  With
    --check, list the modules that modules.order loads before what they need
    (exit 1 if any).
    """
    from .analysis import check_order, load_order

    with _errors():
        json_out = _format(fmt, json_out) == "json"
        from .report import deps as out

        t, res = _load(tree, basedir, version, show_progress=False)
        if check:
            from .errors import InputError
            from .read.scan import read_optional

            text = read_optional(f"{t.dirname}/modules.order")
            if text is None:
                raise InputError(f"{t.dirname}/modules.order: no such file")
            bad = check_order(t, res, text)
            if json_out:
                from .report.jsonout import dumps

                sys.stdout.write(dumps(out.order_check_document(t.dirname, bad)) + "\n")
            else:
                _plain([out.order_check_line(v) for v in bad])
            raise typer.Exit(1 if bad else 0)
        lo = load_order(t, res)
        if json_out:
            from .report.jsonout import dumps

            sys.stdout.write(dumps(out.order_document(t.dirname, lo.lines, lo.unplaced)) + "\n")
        else:
            _plain(list(lo.lines))
        if lo.unplaced:
            _err(f"error: {len(lo.unplaced)} modules are in or behind dependency cycles and cannot be ordered: "
                 + " ".join(lo.unplaced))
            raise typer.Exit(1)


@app.command()
def graph(
    tree: Annotated[str | None, typer.Argument(help="Module tree (default: /lib/modules/$(uname -r)).")] = None,
    basedir: BasedirOpt = None,
    version: KernelOpt = None,
    focus: Annotated[str | None, typer.Option("--focus", help="Only this module's neighbourhood.")] = None,
    depth: Annotated[int, typer.Option("--depth", min=0, help="Edges to follow from --focus, both ways.")] = 1,
    fmt: Annotated[str, typer.Option("--format", help="dot, graphml, mermaid or json.")] = "dot",
) -> None:
    """The dependency graph (a -> b: a needs b, labelled with the symbols), sorted and deterministic."""
    from .errors import UsageError
    from .report import graphfmt

    with _errors():
        if fmt not in ("dot", "graphml", "mermaid", "json"):
            raise UsageError(f"--format must be dot, graphml, mermaid or json, not {fmt!r}")
        t, res = _load(tree, basedir, version, show_progress=False)
        keep: set[int] = set(range(len(t.modules)))
        focus_name = None
        if focus:
            from .analysis import neighbourhood

            fi = _index_of(t, focus)
            focus_name = t.modules[fi].name
            keep = neighbourhood(res.deps, fi, depth)
        nodes = [t.modules[i].name for i in keep]
        edges = [(t.modules[i].name, t.modules[d].name, syms)
                 for i in keep for d, syms in res.edge_symbols[i].items() if d in keep]
        paths = {t.modules[i].name: t.files[i].shown for i in keep}
        if fmt == "dot":
            out = graphfmt.to_dot(nodes, edges, focus_name)
        elif fmt == "mermaid":
            out = graphfmt.to_mermaid(nodes, edges, focus_name)
        elif fmt == "graphml":
            out = graphfmt.to_graphml(nodes, edges, paths)
        else:
            out = graphfmt.to_json(nodes, edges, paths, t.dirname)
        sys.stdout.write(out)


# --------------------------------------------------------------------------
# compat / diff
# --------------------------------------------------------------------------


def _split_against(spec: str) -> tuple[str, str | None]:
    """``--against TREE`` or ``--against TREE:SYMVERS``."""
    from .errors import InputError

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
    from .errors import InputError, UsageError

    with _errors():
        mode = _format(fmt, json_out)
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
            dirname, note = _resolve_tree(trees[0] if trees else None, basedir, version)
            if note:
                _err(note)
            targets.append((dirname, basedir, symvers or system_map, "system.map" if system_map else "symvers"))
        elif symvers or system_map:
            raise UsageError("--symvers/--system-map describe the target TREE: give it, or --against TREE:SYMVERS")
        for spec in against or ():
            d, s = _split_against(spec)
            targets.append((d, None, s, "symvers"))

        from .compat import compat_matrix, find_kernel_symbols, matrix_exit_status
        from .config import load as load_config
        from .kernelsyms import load_kernel_symbols
        from .read.scan import scan_files

        loaded = []
        for dirname, bdir, sym, kind in targets:
            if not os.path.isdir(dirname):
                raise InputError(f"{dirname}: no such module directory")
            kernel = load_kernel_symbols(sym, kind) if sym else None
            if not sym:
                kernel, found_notes = find_kernel_symbols(dirname, bdir)
                for line in found_notes:
                    _err(f"note: {line}")
                if kernel is None:
                    _err(f"note: no kernel symbol list for {dirname}: verdicts say 'kernel symbols unchecked' "
                         "(give --symvers or --system-map)")
            cfg = load_config(None, os.path.basename(os.path.abspath(dirname)), _basedir_of(dirname, bdir))
            loaded.append((_scan(dirname, jobs, not json_out, cache, no_cache, cfg), kernel))
        results = compat_matrix(scan_files(files, jobs=jobs), loaded, subdir=subdir,
                                enforce_signatures=enforce_signatures)
        if html_file:
            from .report import html

            html.write(html_file, html.render(html.compat_data(results, timestamp=_html_timestamp(timestamp))))
        if json_out:
            from .report.compat import compat_document
            from .report.jsonout import dumps

            sys.stdout.write(dumps(compat_document(results)) + "\n")
        elif mode == "text":
            from .report.compat import compat_lines

            _plain(compat_lines(results))
        else:
            from .report.compat import render_compat

            render_compat(_stdout(), results)
        raise typer.Exit(matrix_exit_status(results))


@app.command("diff")
def diff_cmd(
    old: Annotated[str, typer.Argument(help="Old side: a module tree (.../lib/modules/VERSION) or a Module.symvers.")],
    new: Annotated[str, typer.Argument(help="New side: a module tree or a Module.symvers.")],
    json_out: JsonOpt = False,
    fmt: FormatOpt = None,
    jobs: JobsOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    html_file: HtmlOpt = None,
    timestamp: TimestampOpt = False,
    check: Annotated[list[str] | None, typer.Option(
        "--check", metavar="FILE", help="An out-of-tree module file (repeatable): the --html report names the "
        "incompatible changes that break it.")] = None,
) -> None:
    """What changed between two module ABIs: modules, exports (CRC, GPL-only, namespace), dependencies.

    Exit 1 when the ABI changed incompatibly (an export removed, a CRC changed, an export made GPL-only or put
    in a namespace), for CI.
    """
    from .errors import InputError

    with _errors():
        mode = _format(fmt, json_out)
        json_out = mode == "json"
        from .abidiff import diff as abi_diff
        from .abidiff import side_from_symvers, side_from_tree
        from .config import load as load_config

        sides = []
        for p in (old, new):
            if os.path.isdir(p):
                dirname = p.rstrip("/") or "/"
                cfg = load_config(None, os.path.basename(os.path.abspath(dirname)), _basedir_of(dirname, None))
                sides.append(side_from_tree(_scan(dirname, jobs, not json_out, cache, no_cache, cfg)))
            elif os.path.exists(p):
                sides.append(side_from_symvers(p))
            else:
                raise InputError(f"{p}: no such file or directory")
        result = abi_diff(sides[0], sides[1])
        if html_file:
            from .read.scan import scan_files
            from .report import html

            for p in check or ():
                if not os.path.lexists(p):
                    raise InputError(f"{p}: no such file or directory")
            checked = [(m.name, [i.name for i in m.imports]) for m in scan_files(list(check or ()), jobs=jobs)]
            html.write(html_file, html.render(html.diff_data(result, out_of_tree=checked,
                                                             timestamp=_html_timestamp(timestamp))))
        if json_out:
            from .report.compat import diff_document
            from .report.jsonout import dumps

            sys.stdout.write(dumps(diff_document(result)) + "\n")
        elif mode == "text":
            from .report.compat import diff_lines

            _plain(diff_lines(result))
        else:
            from .report.compat import render_diff

            render_diff(_stdout(), result)
        raise typer.Exit(result.exit_status())


# --------------------------------------------------------------------------
# depmod
# --------------------------------------------------------------------------


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
        "-V", "--version", is_eager=True, callback=_show_version,
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
    with _errors():
        _depmod(
            version=version, files=tuple(argv[1:]), all=all_, quick=quick, basedir=basedir, outdir=outdir,
            moduledir=moduledir, config=tuple(config or ()), errsyms=errsyms, symvers=symvers,
            system_map=filesyms, dry_run=dry_run, prefix=prefix, verbose=verbose, warn_dups=warn, jobs=jobs,
            cache=_cache_path(cache, no_cache), kmod_version=kmod_version,
            deprecated=tuple(ctx.meta.get("moddeps.deprecated", ())),
        )


def _depmod(**kw: Any) -> None:
    from .depmod.run import TEXT_FILES, DepmodOptions, run
    from .errors import DepmodFatal

    opts = DepmodOptions(**kw)
    bound = _cache_bound() if opts.cache else None
    try:
        result = run(opts, waiting=_err)
    except DepmodFatal as exc:
        for line in [*exc.messages, *exc.notes]:
            _err(line)
        raise typer.Exit(exc.exit_status) from None
    finally:
        if opts.cache:  # date what the run wrote to the cache, keep it under its bound
            _maintain_cache(opts.cache, bound)
    if opts.verbose and result.kmod is not None:
        _err(f"NOTE: {result.kmod.describe()}")
    for line in [*result.messages, *result.extra]:
        _err(line)
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


# --------------------------------------------------------------------------
# plan
# --------------------------------------------------------------------------


@app.command()
def plan(
    targets: Annotated[list[str], typer.Argument(
        help="Module names, module files (/... or ./...), aliases, modalias strings, symbol:NAME.")],
    basedir: Annotated[str | None, typer.Option("--basedir", "-b", help="Root of the tree (modprobe -d).")] = None,
    version: Annotated[str | None, typer.Option("--kernel", "-k", help="Kernel version (modprobe -S).")] = None,
    config: Annotated[list[str] | None, typer.Option(
        "--config", "-C", help="modprobe.d file or directory (replaces the defaults under BASEDIR).")] = None,
    show_depends: Annotated[bool, typer.Option(
        "--show-depends", "-D", help="Print exactly what modprobe --show-depends prints.")] = False,
    json_out: JsonOpt = False,
    fmt: FormatOpt = None,
    remove: Annotated[bool, typer.Option("--remove", "-r", help="The unload plan (modprobe -r).")] = False,
    remove_holders: Annotated[bool, typer.Option("--remove-holders", help="With -r: holders first.")] = False,
    closure_: Annotated[bool, typer.Option(
        "--closure", help="Every file an initramfs needs: modules (softdeps, weakdeps) and firmware.")] = False,
    reasons: Annotated[bool, typer.Option("--reasons", help="With --closure: the reason after each path.")] = False,
    allow_missing_firmware: Annotated[bool, typer.Option(
        "--allow-missing-firmware", help="With --closure: a firmware file not found is a note, not a failure.")
    ] = False,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="KEY=VALUE module option for the (single) target, as after modprobe's module name.")
    ] = None,
    loaded: Annotated[str | None, typer.Option(
        "--loaded", help="A /proc/modules file: plan against these loaded modules (not --show-depends).")] = None,
    kernel_cmdline: Annotated[str | None, typer.Option(
        "--kernel-cmdline", help="A file with a kernel command line (like /proc/cmdline) whose "
        "MODULE.OPTION= and modprobe.blacklist= apply, as modprobe does.")] = None,
    source: Annotated[str, typer.Option("--source", help="Indexes: auto (default), index, scan.")] = "auto",
    jobs: JobsOpt = None,
) -> None:
    """Load (or unload) plans exactly as modprobe makes them, with the reason for every module.

    Exit status: 0, or 1 when a target cannot be found (modprobe's), or when
    --closure cannot include one.
    """
    from .errors import InputError, UsageError

    with _errors():
        from .modprobe.closure import closure
        from .modprobe.plan import (
            PlanSet,
            loaded_from_proc_modules,
            modprobe_dirname,
            open_context,
            plan_load,
            plan_remove,
        )
        from .report import plan as out

        mode = _format(fmt, json_out)
        json_out = mode == "json"
        if source not in ("auto", "index", "scan"):
            raise UsageError(f"--source must be auto, index or scan, not {source!r}")
        if closure_ and (remove or show_depends):
            raise UsageError("--closure cannot be combined with --remove or --show-depends")
        if allow_missing_firmware and not closure_:
            raise UsageError("--allow-missing-firmware needs --closure")
        if (reasons and not closure_):
            raise UsageError("--reasons needs --closure")
        if remove_holders and not remove:
            raise UsageError("--remove-holders needs --remove")
        if option and (remove or len(targets) != 1):
            raise UsageError("--option needs exactly one target to load (as in modprobe)")
        if show_depends and json_out:
            raise UsageError("give --show-depends or --json, not both")
        if loaded and show_depends:
            raise UsageError("--show-depends ignores loaded modules, as modprobe does; drop --loaded")
        # modprobe's directory, not normalised, so printed paths are modprobe's own
        dirname = modprobe_dirname(basedir, version)
        if not os.path.isdir(dirname):
            raise InputError(f"{dirname}: no such module directory")
        cmdline = None
        if kernel_cmdline is not None:
            from .inputfiles import read_input

            cmdline = read_input(kernel_cmdline)  # a FIFO or a device: one line naming it
        state = None
        if loaded is not None:
            from .inputfiles import read_input

            state = loaded_from_proc_modules(read_input(loaded).decode("utf-8", "surrogateescape"))
        with _progress(not json_out and not show_depends, "reading modules") as cb:
            ctx = open_context(dirname, config_paths=config or None, basedir=basedir, kernel_cmdline=cmdline,
                               source=source, jobs=jobs, progress=cb)  # type: ignore[arg-type]
        _err(out.source_note(ctx.source, dirname))
        for msg in ctx.config.messages:
            _err(msg)
        if closure_:
            c = closure(ctx, targets, allow_missing_firmware=allow_missing_firmware)
            if json_out:
                from .report.jsonout import dumps

                sys.stdout.write(dumps(out.closure_document(c)) + "\n")
            elif mode == "table" and not reasons:
                out.render_closure(_stdout(), c)
            else:
                _write_lines(out.closure_lines(c, reasons=reasons))
            for note in c.notes:
                _err(f"note: {printable(note)}")
            for target, error in c.errors:
                _err(f"error: {target}: {error}")
            for _name, problem in c.problems:
                _err(f"error: {printable(problem)}")
            if c.problems:
                _err(f"error: the closure is incomplete ({len(c.problems)} problem(s)): exit status 1")
            raise typer.Exit(c.exit_status)
        plans = (plan_remove(ctx, targets, remove_holders=remove_holders, loaded=state) if remove
                 else plan_load(ctx, targets, options=option or (), loaded=state))
        ps = PlanSet(ctx.dirname, ctx.data.version, ctx.source, ctx.config.files, plans, remove, ctx.config.messages)
        if show_depends:
            sys.stdout.buffer.write(out.show_depends_text(plans).encode("utf-8", "surrogateescape"))
            sys.stdout.flush()
        elif json_out:
            from .report.jsonout import dumps

            sys.stdout.write(dumps(out.plan_document(ps)) + "\n")
        elif mode == "text":
            _plain(out.plan_lines(ps))
        else:
            out.render_plans(_stdout(), ps)
        for line in out.kmod_stderr_lines(plans, all_mode=len(targets) > 1, program="moddeps"):
            sys.stderr.write(line + "\n")
        raise typer.Exit(ps.exit_status)


def _write_lines(lines: list[str]) -> None:
    sys.stdout.buffer.write("".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape"))
    sys.stdout.flush()


# --------------------------------------------------------------------------
# index
# --------------------------------------------------------------------------


@index_app.command("dump")
def index_dump(
    path: Annotated[str, typer.Argument(help="A kmod index file (modules.*.bin).")],
) -> None:
    """Print every key of an index with its priority and value, one per line (tab-separated)."""
    from .errors import IndexFormatError, InputError
    from .index.read import Index, dump_lines

    with _errors():
        try:
            idx = Index.open(path)
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror}") from None
        except IndexFormatError as exc:
            raise InputError(str(exc)) from None
        out = sys.stdout
        for line in dump_lines(idx):
            out.write(line + "\n")


# --------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------

CachePathOpt = Annotated[
    str | None,
    typer.Option("--cache", help="Scan cache database (default $MODDEPS_CACHE or ~/.cache/moddeps/scan.sqlite3)."),
]


@cache_app.command("info")
def cache_info(cache: CachePathOpt = None) -> None:
    """What the scan cache holds: its size, each table's rows (current, or left by an earlier version), its ages.

    Plain records, TAB-separated: ``cache PATH BYTES SIZE``, ``bound BYTES SIZE``
    (the automatic bound, ``none`` for none), ``table NAME ROWS BYTES current|old``, ``written OLDEST NEWEST``
    (UTC, ``-`` when nothing is dated).
    """
    import sqlite3
    from datetime import UTC, datetime

    from .errors import InputError
    from .read import cache as sc
    from .report.render import record

    with _errors():
        path = cache or sc.default_path()
        bound = _cache_bound()
        try:
            got = sc.info(path)
        except sqlite3.Error as exc:
            raise InputError(f"{path}: not a readable scan cache ({exc})") from None

        def when(t: float | None) -> str:
            return "-" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        lines = [record("cache", got.path, got.size, _bytes(got.size) if got.exists else "absent"),
                 record("bound", *((bound, _bytes(bound)) if bound else ("none", "-")))]
        lines += [record("table", t.name, t.rows, t.bytes, "current" if t.current else "old")
                  for t in got.tables]
        lines.append(record("written", when(got.oldest), when(got.newest)))
        _plain(lines)


@cache_app.command("prune")
def cache_prune(
    older_than: Annotated[str | None, typer.Option(
        "--older-than", metavar="D", help="Delete what was written more than D ago (30d, 12h, 90m, 2w; days).")] = None,
    max_size: Annotated[str | None, typer.Option(
        "--max-size", metavar="S", help="Delete the oldest rows until the cache fits in S (500M, 2G, 64k).")] = None,
    cache: CachePathOpt = None,
) -> None:
    """Shrink the scan cache: drop the tables earlier versions left, then what --older-than and --max-size say.

    Deleted modules are simply read again by the next scan.  The space is given back to the filesystem.
    """
    import sqlite3

    from .errors import OutputError, UsageError
    from .read import cache as sc
    from .report.render import sentence

    with _errors():
        try:
            age = None if older_than is None else sc.parse_age(older_than)
            size = None if max_size is None else sc.parse_size(max_size)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        path = cache or sc.default_path()
        try:
            r = sc.prune(path, older_than=age, max_size=size)
        except sqlite3.Error as exc:
            raise OutputError(f"{path}: cannot prune the scan cache ({exc})") from None
        dropped = f"{len(r.dropped_tables)} old table(s) dropped ({', '.join(r.dropped_tables)})" \
            if r.dropped_tables else "no old table"
        _plain([sentence(f"moddeps cache prune: {path}: {_bytes(r.size_before)} -> {_bytes(r.size_after)};"
                         f" {dropped}; {r.deleted_rows} row(s) deleted")])


def main() -> None:
    # A command builds hundreds of thousands of small acyclic records and then
    # exits: the cyclic garbage collector would only rescan them (measured:
    # 25% of a scan).  Reference counting still frees everything.
    import gc

    gc.disable()
    _register_only(sys.argv[1:])
    # SIGTERM (systemd, timeout(1), a package manager giving up) ends the run
    # like an exception: depmod's lock is released and its temporaries removed
    # on the way out (a signal during the renames is held by the writer).
    import signal

    def _terminated(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminated)
    try:
        app()
        status = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            status = exc.code or 0
        else:
            sys.stderr.write(f"{exc.code}\n")
            status = 1
    # Everything is written and closed: leave without tearing down the
    # interpreter, which frees every record one by one (~20 ms for amd64).
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):
            stream.flush()
    os._exit(status)


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

    def name(info: Any) -> str:
        return str(info.name or info.callback.__name__.lower().replace("_", "-"))

    chosen = [c for c in app.registered_commands if name(c) == first]
    if chosen:
        app.registered_commands = chosen
        app.registered_groups = []
    elif any(g.name == first for g in app.registered_groups):
        app.registered_commands = []


if __name__ == "__main__":  # pragma: no cover
    main()
