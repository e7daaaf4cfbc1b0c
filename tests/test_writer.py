"""moddeps.depmod.writer in-process: the lock, the journal, what is removed."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from moddeps.depmod import writer
from moddeps.errors import OutputError


def test_write_all_leaves_only_the_files(tmp_path: Path) -> None:
    writer.write_all(str(tmp_path), [("modules.dep", b"a\n"), ("modules.alias", b"b\n")], fsync=False)
    assert sorted(os.listdir(tmp_path)) == ["modules.alias", "modules.dep"]
    assert (tmp_path / "modules.dep").read_bytes() == b"a\n"


def test_write_all_refuses_other_names(tmp_path: Path) -> None:
    for name in ("../modules.dep", "vendor.ko", "modules.dep/x", ".modules.dep"):
        with pytest.raises(ValueError):
            writer.write_all(str(tmp_path), [(name, b"")], fsync=False)
    assert os.listdir(tmp_path) == []


def test_lock_is_reentrant_and_removed(tmp_path: Path) -> None:
    with writer.locked(str(tmp_path)):
        assert writer.holds_lock(str(tmp_path)) and (tmp_path / writer.LOCK_NAME).exists()
        writer.write_all(str(tmp_path), [("modules.dep", b"x")], fsync=False)  # does not wait for itself
    assert not writer.holds_lock(str(tmp_path)) and not (tmp_path / writer.LOCK_NAME).exists()


def test_a_planted_symlink_at_a_temporary_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / f".modules.dep{writer.TMP_MARK}{os.getpid()}")
    writer.write_all(str(out), [("modules.dep", b"new")], fsync=False)
    assert victim.read_bytes() == b"precious" and (out / "modules.dep").read_bytes() == b"new"
    assert sorted(os.listdir(out)) == ["modules.dep"]


def _half_renamed(d: Path) -> None:
    """The state a run killed after its first rename leaves."""
    (d / "modules.dep").write_bytes(b"old dep")
    (d / "modules.alias").write_bytes(b"old alias")
    tmp_dep, tmp_alias = d / ".modules.dep.moddeps-tmp.7", d / ".modules.alias.moddeps-tmp.7"
    tmp_dep.write_bytes(b"new dep")
    tmp_alias.write_bytes(b"new alias")
    entries = [writer._Entry(n, t.name, t.stat().st_ino, t.stat().st_size, writer._identity(str(d / n)))
               for n, t in (("modules.dep", tmp_dep), ("modules.alias", tmp_alias))]
    (d / writer.JOURNAL_NAME).write_bytes(writer._format_journal(entries))
    os.replace(tmp_dep, d / "modules.dep")


def test_journal_is_completed(tmp_path: Path) -> None:
    _half_renamed(tmp_path)
    assert writer.pending(str(tmp_path)) == ["modules.alias"]
    with writer.locked(str(tmp_path)) as notes:
        assert len(notes) == 1 and "completed" in notes[0]
    assert (tmp_path / "modules.alias").read_bytes() == b"new alias"
    assert sorted(os.listdir(tmp_path)) == ["modules.alias", "modules.dep"]


@pytest.mark.parametrize("change", ["rewritten", "removed", "garbage"])
def test_journal_that_no_longer_applies_is_dropped(tmp_path: Path, change: str) -> None:
    _half_renamed(tmp_path)
    if change == "rewritten":  # another tool wrote modules.alias since (a new inode)
        (tmp_path / "x").write_bytes(b"theirs")
        os.replace(tmp_path / "x", tmp_path / "modules.alias")
    elif change == "removed":
        os.unlink(tmp_path / ".modules.alias.moddeps-tmp.7")
    else:
        (tmp_path / writer.JOURNAL_NAME).write_bytes(b"not a journal\n")
    assert writer.pending(str(tmp_path)) is None
    before = (tmp_path / "modules.alias").read_bytes()
    with writer.locked(str(tmp_path)):
        pass
    assert (tmp_path / "modules.alias").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["modules.alias", "modules.dep"]


def test_unwritable_directory(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    tmp_path.chmod(0o500)
    try:
        with writer.locked(str(tmp_path), optional=True) as notes:
            assert notes == []
        with pytest.raises(OutputError):
            writer.write_all(str(tmp_path), [("modules.dep", b"")], fsync=False)
    finally:
        tmp_path.chmod(0o700)


def test_every_temporary_is_synced_before_the_journal_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fsyncs run at once (threads), but all of them end before the journal's rename, and the
    directory is synced after it and after the renames."""
    events: list[tuple[str, str]] = []
    guard = threading.Lock()
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        real_fsync(fd)
        path = os.readlink(f"/proc/self/fd/{fd}")
        with guard:
            events.append(("fsync", os.path.basename(path)))

    def replace(a: str, b: str) -> None:
        real_replace(a, b)
        with guard:
            events.append(("rename", os.path.basename(b)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    names = ["modules.dep", "modules.alias", "modules.symbols"]
    writer.write_all(str(tmp_path), [(n, n.encode()) for n in names])
    dirname = tmp_path.name
    synced = {p for kind, p in events[:4] if kind == "fsync"}
    assert synced == {f".{n}{writer.TMP_MARK}{os.getpid()}" for n in names} | {".moddeps.journal.moddeps-tmp"}
    assert events[4:] == [("rename", writer.JOURNAL_NAME), ("fsync", dirname),
                          *(("rename", n) for n in names), ("fsync", dirname)]
    assert sorted(os.listdir(tmp_path)) == sorted(names)


def test_a_failed_fsync_leaves_the_previous_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer.write_all(str(tmp_path), [("modules.dep", b"old"), ("modules.alias", b"old")], fsync=False)
    real_fsync = os.fsync
    calls = []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if ".modules.alias." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OutputError, match=r"\.modules\.alias\.moddeps-tmp\.\d+: cannot write: Input/output error"):
        writer.write_all(str(tmp_path), [("modules.dep", b"new"), ("modules.alias", b"new")])
    assert len(calls) == 3  # both temporaries and the journal's, at once
    assert sorted(os.listdir(tmp_path)) == ["modules.alias", "modules.dep"]
    assert (tmp_path / "modules.dep").read_bytes() == b"old"
