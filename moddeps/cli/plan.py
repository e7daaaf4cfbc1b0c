"""``moddeps plan``: modprobe's load and unload plans, and initramfs closures."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated, Literal

import typer

from .base import err, exit_on_error
from .shared import (
    FormatOpt,
    JobsOpt,
    JsonOpt,
    KmodVersionOpt,
    app,
    output_format,
    printable,
    progress,
    stdout_console,
    write_lines,
)


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
    kmod_version: KmodVersionOpt = None,
    jobs: JobsOpt = None,
) -> None:
    """Load (or unload) plans exactly as modprobe makes them, with the reason for every module.

    Exit status: 0, or 1 when a target cannot be found (modprobe's), or when
    --closure cannot include one.
    """
    from .. import kmodversion
    from ..errors import InputError, UsageError

    with exit_on_error():
        from ..modprobe.closure import closure
        from ..modprobe.plan import loaded_from_proc_modules, modprobe_dirname, open_context, plan_targets
        from ..report import plan as out

        mode = output_format(fmt, json_out)
        json_out = mode == "json"
        chosen = _SOURCES.get(source)
        if chosen is None:
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
        kmod = kmodversion.select(kmod_version, basedir)  # modprobe.d's directories and files differ by release
        cmdline = None
        if kernel_cmdline is not None:
            from ..inputfiles import read_input

            cmdline = read_input(kernel_cmdline)  # a FIFO or a device: one line naming it
        state = None
        if loaded is not None:
            from ..inputfiles import read_input

            state = loaded_from_proc_modules(read_input(loaded).decode("utf-8", "surrogateescape"))
        if closure_:
            with progress(not json_out, "reading modules") as cb:
                ctx = open_context(dirname, config_paths=config or None, basedir=basedir, kernel_cmdline=cmdline,
                                   source=chosen, jobs=jobs, progress=cb, kmod=kmod)
            _notes(out.source_note(ctx.source, dirname), ctx.config.messages)
            c = closure(ctx, targets, allow_missing_firmware=allow_missing_firmware)
            if json_out:
                from ..report.jsonout import dumps

                sys.stdout.write(dumps(out.closure_document(c)) + "\n")
            elif mode == "table" and not reasons:
                out.render_closure(stdout_console(), c)
            else:
                write_lines(out.closure_lines(c, reasons=reasons))
            for note in c.notes:
                err(f"note: {printable(note)}")
            for target, error in c.errors:
                err(f"error: {target}: {error}")
            for _name, problem in c.problems:
                err(f"error: {printable(problem)}")
            if c.problems:
                err(f"error: the closure is incomplete ({len(c.problems)} problem(s)): exit status 1")
            raise typer.Exit(c.exit_status)
        # without --loaded the kernel's state is ignored, as by modprobe --show-depends
        with progress(not json_out and not show_depends, "reading modules") as cb:
            ps = plan_targets(dirname, targets, config_paths=config or None, basedir=basedir, remove=remove,
                              remove_holders=remove_holders, show_depends_mode=state is None, loaded=state,
                              options=option or (), kernel_cmdline=cmdline, source=chosen, jobs=jobs, progress=cb,
                              kmod=kmod)
        _notes(out.source_note(ps.source, dirname), ps.messages)
        if show_depends:
            sys.stdout.buffer.write(out.show_depends_text(ps.plans).encode("utf-8", "surrogateescape"))
            sys.stdout.flush()
        elif json_out:
            from ..report.jsonout import dumps

            sys.stdout.write(dumps(out.plan_document(ps)) + "\n")
        elif mode == "text":
            write_lines(out.plan_lines(ps))
        else:
            out.render_plans(stdout_console(), ps)
        for line in out.kmod_stderr_lines(ps.plans, all_mode=len(targets) > 1, program="moddeps"):
            sys.stderr.write(line + "\n")
        raise typer.Exit(ps.exit_status)


#: --source: where the indexes come from
_SOURCES: dict[str, Literal["auto", "index", "scan"]] = {"auto": "auto", "index": "index", "scan": "scan"}


def _notes(source_note: str, config_messages: Sequence[str]) -> None:
    """Before the plan: where the indexes came from, then what modprobe.d said."""
    err(source_note)
    for msg in config_messages:
        err(msg)
