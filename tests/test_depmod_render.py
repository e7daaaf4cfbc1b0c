"""depmod's outputs rendered with each index built by a thread of its own (moddeps.depmod.render).

From THREADED_MIN modules on, the binary rows of the table are written first: each starts
its index (the C code sorts and lays it out without the GIL), and the text rows are rendered
meanwhile; the indexes are waited for at the end.  What comes out must be what the rows give built one after another:
the same bytes, the messages in the table's order, and of two rows that fail, the one first
in order raises.  tests/test_depmod_cases.py runs every synthetic case this way against
kmod's recorded results; here the ordering rules, with rows of our own.
"""

from __future__ import annotations

from collections.abc import Callable
from unittest import mock

import pytest

from moddeps.depmod import render
from moddeps.depmod.outputs import OutputFile, RenderJob, WriterInput
from moddeps.kmodversion import KmodTarget
from moddeps.resolve import ResolveOptions, resolve


class _Later:
    """A pending index of our own: its bytes, or its failure, when its result is asked for."""

    def __init__(self, name: str, data: bytes | Exception, log: list[str]) -> None:
        self.name, self.data, self.log = name, data, log

    def result(self) -> bytes:
        self.log.append(f"waited {self.name}")
        if isinstance(self.data, Exception):
            raise self.data
        return self.data


def _job() -> RenderJob:
    wi = WriterInput([], [], resolve([], [], ResolveOptions()))
    return RenderJob(wi, "/nonexistent", KmodTarget(34, "test"), threaded=True)


def _row(name: str, write: Callable[[RenderJob, list[str]], object]) -> OutputFile:
    return OutputFile(name, "g", write, binary=name.startswith("b"))  # type: ignore[arg-type]


def _text(name: str, log: list[str], fail: bool = False) -> OutputFile:
    def write(job: RenderJob, messages: list[str]) -> bytes:
        log.append(f"wrote {name}")
        messages.append(name)
        if fail:
            raise ValueError(f"text {name}")
        return name.encode()
    return _row(name, write)


def _index(name: str, log: list[str], fail: bool = False, refused: bool = False) -> OutputFile:
    """A binary row: its index fails when waited for (``fail``), or is refused as it starts
    (``refused``: what the 7-bit check or a NUL byte does)."""
    def write(job: RenderJob, messages: list[str]) -> _Later | bytes:
        log.append(f"started {name}")
        messages.append(name)
        if refused:
            raise ValueError(f"refused {name}")
        later = _Later(name, ValueError(f"index {name}") if fail else name.encode(), log)
        return later if job.threaded else later.result()  # (unthreaded: built at once, as the real rows)
    return _row(name, write)


def test_rows_come_out_in_order_with_their_indexes_waited_for() -> None:
    log: list[str] = []
    rows = [_text("t1", log), _index("b1", log), _text("t2", log), _index("b2", log)]
    assert render.write_rows(_job(), rows) == [(b"t1", ["t1"]), (b"b1", ["b1"]), (b"t2", ["t2"]), (b"b2", ["b2"])]
    # the indexes are started first, the text rows written while they are built, then the indexes waited for
    assert log == ["started b1", "started b2", "wrote t1", "wrote t2", "waited b1", "waited b2"]
    # and without threads: in order, each index built as its row is written
    log.clear()
    job = _job()
    unthreaded = RenderJob(job.wi, job.dirname, job.kmod)
    assert render.write_rows(unthreaded, rows) == render.write_rows(job, rows)


@pytest.mark.parametrize(("failing", "raised", "waited"), [
    ({"b1", "t2"}, "index b1", ["waited b1"]),  # an index before a text row: the index's failure
    ({"t1", "b2"}, "text t1", []),  # a text row first, though b2 was started before it was written
    ({"b1", "b2"}, "index b1", ["waited b1"]),  # two indexes: the first
    ({"t2"}, "text t2", ["waited b1"]),  # the index before it is waited for (it is fine), then the text row's
    ({"t1", "b1!"}, "text t1", []),  # b1 refused as it started, before t1 was written: t1 comes first
    ({"b1!", "t2"}, "refused b1", []),
])
def test_the_first_failure_in_order_is_raised(failing: set[str], raised: str, waited: list[str]) -> None:
    log: list[str] = []
    rows = [_text("t1", log, "t1" in failing), _index("b1", log, "b1" in failing, "b1!" in failing),
            _text("t2", log, "t2" in failing), _index("b2", log, "b2" in failing)]
    with pytest.raises(ValueError) as got:
        render.write_rows(_job(), rows)
    assert str(got.value) == raised
    assert [x for x in log if x.startswith("waited")] == waited
    log.clear()
    job = _job()
    with pytest.raises(ValueError) as unthreaded:  # the same as the rows written in order
        render.write_rows(RenderJob(job.wi, job.dirname, job.kmod), rows)
    assert str(unthreaded.value) == raised


@pytest.mark.parametrize("modules", [10, 300])
def test_threaded_from_threaded_min_modules(modules: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tree of THREADED_MIN modules or more starts its indexes in threads; a smaller one builds
    them at once.  Counted by module, also for the columns an update renders from (no Module
    records: WriterInput.of_columns).  The files are the same either way."""
    from moddeps.depmod import outputs

    names = [b"mod_%d" % i for i in range(modules)]
    shown = [f"kernel/mod_{i}.ko" for i in range(modules)]
    columns = {"alias": ([f"pci:v{i:08X}d*" for i in range(modules)], list(range(modules)))}
    wi = outputs.WriterInput.of_columns(names, shown, resolve([], [], ResolveOptions()), columns)
    start = mock.Mock(wraps=outputs.start_index_columns)
    monkeypatch.setattr(outputs, "start_index_columns", start)
    monkeypatch.setattr(render, "THREADED_MIN", 256)
    groups = render.render_groups(wi, "/nonexistent", ["alias"], KmodTarget(34, "test"))
    assert start.call_count == (1 if modules >= 256 else 0)  # modules.alias.bin's
    monkeypatch.setattr(render, "THREADED_MIN", 10**9)
    assert render.render_groups(wi, "/nonexistent", ["alias"], KmodTarget(34, "test")) == groups
    assert [name for name, _data in groups["alias"].files] == ["modules.alias", "modules.alias.bin"]
