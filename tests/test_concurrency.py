"""Output files of two runs never mixed (issue 15, items 5-7), end to end.

* A run killed between two renames leaves a journal; ``moddeps audit`` reports
  it and the next run (``-A`` too) completes the new set before anything else,
  or drops it when the files changed since (kmod's depmod ran).
* Runs on one directory are serialised by ``flock`` on ``.moddeps.lock``: a
  waiting run, whatever its PID namespace, never removes a live run's
  temporaries, and reads the tree as the previous run left it.
* Only moddeps' own temporaries are ever removed.
* The proof: rounds of overlapping ``moddeps depmod`` processes (with a shared
  scan cache) on a tree changed between their starts, some killed with
  SIGKILL at random points or right after a given rename: after each round the
  directory holds one state's complete output (once a journal is completed,
  as the next run does first), the newest one when the last run started was
  not killed, and a run with the cache then gives exactly the current output.
  Bounded by counts (rounds, runs), not by time.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moddeps.depmod.run import DepmodOptions, run
from moddeps.depmod.writer import JOURNAL_NAME, LOCK_NAME, TMP_MARK, locked

from .kobuild import Export, build_ko

V = "6.12.0-1-amd64"
REPO = Path(__file__).resolve().parent.parent
INPUTS = ("modules.order", "modules.builtin", "modules.builtin.modinfo")
COUNT = 40


def moddir(root: Path) -> Path:
    return root / "lib" / "modules" / V


def module(i: int, gen: int = 0) -> bytes:
    """mod_i: exports sym_i, imports a symbol of a lower module (which one depends on ``gen``); a later
    generation also has a softdep, another export and a devname (so it changes 8 of the 11 files)."""
    needs = [f"sym_{(i - 1 - gen) % i}"] if i else []
    info = ["license=GPL", f"alias=pci:v{i:08X}d{gen:08X}*"]
    exports = [Export(name=f"sym_{i}", crc=i)]
    if gen:
        info += [f"softdep=pre: mod_{gen % COUNT}", f"alias=devname:mdx{gen}", f"alias=char-major-10-{gen % 200}"]
        exports.append(Export(name=f"sym_{i}_g{gen}", crc=gen))
    return build_ko(modinfo=info, exports=exports, undefined=needs, versions=[(n, 0) for n in needs])


def make_tree(root: Path) -> Path:
    md = moddir(root)
    (md / "kernel").mkdir(parents=True)
    (root / "cfg").mkdir()
    for i in range(COUNT):
        (md / "kernel" / f"mod_{i}.ko").write_bytes(module(i))
    (md / "modules.order").write_bytes(b"".join(f"kernel/mod_{i}.ko\n".encode() for i in range(COUNT)))
    (md / "modules.builtin").write_bytes(b"")
    (md / "modules.builtin.modinfo").write_bytes(b"")
    return root


def replace_module(root: Path, i: int, gen: int) -> None:
    """One atomic change of the tree: mod_i replaced by a rename."""
    path = moddir(root) / "kernel" / f"mod_{i}.ko"
    tmp = path.with_name(f"new-{i}.part")  # not a module name: the scan never sees it
    tmp.write_bytes(module(i, gen))
    os.replace(tmp, path)


def argv(root: Path, *extra: str, cache: Path | None = None) -> list[str]:
    cached = ["--cache", str(cache)] if cache else ["--no-cache"]
    return [sys.executable, "-m", "moddeps", "depmod", "--kmod-version", "34", *cached, "-C", str(root / "cfg"),
            "-b", str(root), *extra, V]


def depmod(root: Path, *extra: str, cache: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv(root, *extra, cache=cache), capture_output=True, cwd=REPO, timeout=300,
                          stdin=subprocess.DEVNULL)


def ok(r: subprocess.CompletedProcess[bytes]) -> str:
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 0 and "Traceback" not in err, f"exit {r.returncode}:\n{err[-3000:]}"
    return err


def outputs(root: Path) -> dict[str, bytes]:
    md = moddir(root)
    return {p.name: p.read_bytes() for p in md.iterdir()
            if p.is_file() and p.name.startswith("modules.") and p.name not in INPUTS and TMP_MARK not in p.name}


def ours(root: Path) -> list[str]:
    """moddeps' files in the module directory: temporaries, the lock, the journal."""
    return sorted(n for n in os.listdir(moddir(root)) if TMP_MARK in n or n in (LOCK_NAME, JOURNAL_NAME))


def expected(root: Path, where: Path) -> dict[str, bytes]:
    """The complete output for the tree as it is now (in-process, no cache, into another root)."""
    shutil.rmtree(where, ignore_errors=True)
    run(DepmodOptions(version=V, basedir=str(root), outdir=str(where), config=(str(root / "cfg"),), kmod_version=34,
                      fsync=False))
    return outputs(where)


def settle(root: Path) -> None:
    """What the next run does first (moddeps.depmod.writer.recover, under the lock)."""
    with locked(str(moddir(root))):
        pass


# A moddeps depmod that SIGKILLs itself right after its K-th rename of an output file into place.
_KILL_AFTER_RENAME = """
import os, signal, sys
count = [0]
real = os.replace
def replace(a, b, **kw):
    real(a, b, **kw)
    if os.path.basename(str(b)).startswith("modules."):
        count[0] += 1
        if count[0] == {k}:
            os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
sys.argv = {argv!r}
from moddeps.cli import main
main()
"""


def killed_after_rename(k: int, args: list[str]) -> list[str]:
    return [sys.executable, "-c", _KILL_AFTER_RENAME.format(k=k, argv=["moddeps", *args[3:]])]


# --------------------------------------------------------------------------
# item 5: a kill between the renames
# --------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 4, 10])
def test_kill_between_renames_is_completed_by_the_next_run(tmp_path: Path, k: int) -> None:
    root = make_tree(tmp_path / "t")
    ok(depmod(root))
    old = outputs(root)
    replace_module(root, 7, 3)
    new = expected(root, tmp_path / "new")
    assert len(new) == 11 and sum(old[n] != new[n] for n in new) >= 5
    r = subprocess.run(killed_after_rename(k, argv(root)), capture_output=True, cwd=REPO, timeout=300)
    assert r.returncode == -signal.SIGKILL
    got = outputs(root)
    renamed = [n for n in got if got[n] == new[n] != old[n]]
    left = [n for n in got if got[n] == old[n] != new[n]]
    assert renamed and left, "the kill did not fall between two renames of changed files"
    assert (moddir(root) / JOURNAL_NAME).exists()
    # moddeps audit says so
    a = subprocess.run([sys.executable, "-m", "moddeps", "audit", "--json", "--fail-on", "never", str(moddir(root))],
                       capture_output=True, cwd=REPO, timeout=300)
    assert a.returncode == 0, a.stderr.decode(errors="replace")
    stale = [f for f in json.loads(a.stdout)["findings"] if f["kind"] == "stale-index"]
    assert len(stale) == 1 and stale[0]["details"]["interrupted"] is True
    assert set(left) <= set(stale[0]["files"]) and "interrupted" in stale[0]["message"]
    # the next run, even -A (modules.dep may be the new one already): the complete new set
    err = ok(depmod(root, "-A"))
    assert "completed" in err
    assert outputs(root) == new and ours(root) == []
    a = subprocess.run([sys.executable, "-m", "moddeps", "audit", "--json", "--fail-on", "never", str(moddir(root))],
                       capture_output=True, cwd=REPO, timeout=300)
    assert not [f for f in json.loads(a.stdout)["findings"] if f["kind"] == "stale-index"]


def test_journal_is_dropped_when_kmod_rewrote_the_files(tmp_path: Path) -> None:
    """kmod's depmod ran after the interrupted run: its files are complete and stay; no temporary is
    renamed over them."""
    depmod_bin = shutil.which("depmod", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if depmod_bin is None:
        pytest.skip("kmod's depmod is not installed")
    root = make_tree(tmp_path / "t")
    ok(depmod(root))
    replace_module(root, 7, 3)
    r = subprocess.run(killed_after_rename(3, argv(root)), capture_output=True, cwd=REPO, timeout=300)
    assert r.returncode == -signal.SIGKILL and (moddir(root) / JOURNAL_NAME).exists()
    replace_module(root, 9, 5)
    k = subprocess.run([depmod_bin, "-C", str(root / "cfg"), "-b", str(root), V], capture_output=True, timeout=120)
    assert k.returncode == 0, k.stderr
    theirs = outputs(root)
    err = ok(depmod(root, "-A"))  # modules.dep is current: nothing to write
    assert "changed since" in err
    assert outputs(root) == theirs and ours(root) == []


# --------------------------------------------------------------------------
# item 6: a lock, not PID liveness
# --------------------------------------------------------------------------

_HOLDER = """
import os, sys
from moddeps.depmod.writer import locked
md = sys.argv[1]
with locked(md):
    tmp = os.path.join(md, ".modules.dep.moddeps-tmp." + (sys.argv[2] if len(sys.argv) > 2 else str(os.getpid())))
    with open(tmp, "wb") as f:
        f.write(b"a live run's temporary")
    print("holding", flush=True)
    sys.stdin.readline()
    print("intact" if os.path.exists(tmp) else "deleted", flush=True)
"""


def _dead_pid() -> int:
    """A PID that no process of this namespace has (what a live run in another namespace looks like)."""
    pid = int(Path("/proc/sys/kernel/pid_max").read_text()) - 1
    while pid > 300:
        if not Path(f"/proc/{pid}").exists():
            return pid
        pid -= 1
    pytest.skip("no free PID")


def _family(pid: int) -> set[str]:
    """``pid`` and its descendants."""
    out, todo = set(), [str(pid)]
    while todo:
        p = todo.pop()
        out.add(p)
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += children.read_text().split()
            except OSError:
                continue
    return out


def _waits_on_flock(pid: int) -> bool:
    """Whether ``pid`` or a descendant waits for a flock (a "->" line of /proc/locks)."""
    family = _family(pid)
    return any(ln.split()[1:2] == ["->"] and ln.split()[5:6] and ln.split()[5] in family
               for ln in Path("/proc/locks").read_text().splitlines())


def _live_run_and_a_second(root: Path, holder_argv: list[str], second_argv: list[str]) -> None:
    md = moddir(root)
    holder = subprocess.Popen(holder_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, text=True)
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "holding"
        second = subprocess.Popen(second_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
        for _ in range(6000):  # until it waits on the lock (or, wrongly, finishes); a count, not a deadline
            if _waits_on_flock(second.pid) or second.poll() is not None:
                break
            time.sleep(0.01)
        assert second.poll() is None, "the second run did not wait for the live one"
        assert outputs(root) == {}
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "intact", "the second run removed a live run's temporary"
        _out, err = second.communicate(timeout=300)
        assert second.returncode == 0, err.decode(errors="replace")
    finally:
        holder.kill()
        holder.wait()
    assert len(outputs(root)) == 11 and ours(root) == []
    assert md.exists()


def test_a_waiting_run_never_removes_a_live_runs_temporaries(tmp_path: Path) -> None:
    """issue 15, item 6: the live run's temporary carries a PID that is not alive here (as a run in
    another PID namespace looks); the second run waits for the lock instead of deleting it, then runs."""
    root = make_tree(tmp_path / "t")
    _live_run_and_a_second(root, [sys.executable, "-c", _HOLDER, str(moddir(root)), str(_dead_pid())], argv(root))


def test_a_run_in_another_pid_namespace_waits_too(tmp_path: Path) -> None:
    """The same with a real PID namespace: the second run (unshare --pid) cannot see the live run's PID,
    and waits on the lock, which is the kernel's, shared by every namespace."""
    probe = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a PID namespace here: {probe.stderr.decode(errors='replace').strip()}")
    root = make_tree(tmp_path / "t")
    _live_run_and_a_second(root, [sys.executable, "-c", _HOLDER, str(moddir(root))],
                           ["unshare", "--pid", "--fork", *argv(root)])


# --------------------------------------------------------------------------
# item 7: only our own temporaries
# --------------------------------------------------------------------------


def test_only_moddeps_temporaries_are_removed(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    md = moddir(root)
    dead = _dead_pid()
    mine = [f".modules.dep{TMP_MARK}{dead}", f".modules.alias.bin{TMP_MARK}1", ".moddeps.journal.moddeps-tmp"]
    theirs = [".vendor.moddeps-tmp.ko", f".modules.dep{TMP_MARK}old", f".modules.dep{TMP_MARK}12.bak",
              f".Modules.dep{TMP_MARK}1", f"modules.dep{TMP_MARK}1", f".modules.dep{TMP_MARK}", ".moddeps.lock.bak",
              f".vendor{TMP_MARK}{dead}", f".modules.dep-1{TMP_MARK}1"]
    for name in mine + theirs:
        (md / name).write_bytes(b"x")
    (md / f".modules.symbols{TMP_MARK}2").mkdir()  # a directory: never ours
    ok(depmod(root))
    left = set(os.listdir(md))
    assert not left & set(mine)
    assert set(theirs) <= left and f".modules.symbols{TMP_MARK}2" in left
    assert len(outputs(root)) == 11


# --------------------------------------------------------------------------
# the proof: overlapping runs, kills, a changing tree
# --------------------------------------------------------------------------

ROUNDS = 12

# A moddeps depmod that waits DELAY seconds before it writes (widening the window in which another run
# starts, reads a changed tree and writes), and SIGKILLs itself after its K-th rename (K > 0).
_SLOW_RUN = """
import os, signal, sys, time
delay, k = float(sys.argv[1]), int(sys.argv[2])
import moddeps.depmod.run as r
real_write = r.write_all
def write_all(*a, **kw):
    time.sleep(delay)
    return real_write(*a, **kw)
r.write_all = write_all
count = [0]
real_replace = os.replace
def replace(a, b, **kw):
    real_replace(a, b, **kw)
    if k and os.path.basename(str(b)).startswith("modules."):
        count[0] += 1
        if count[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
sys.argv = ["moddeps", *sys.argv[3:]]
from moddeps.cli import main
main()
"""


def test_overlapping_and_killed_runs_leave_one_runs_complete_output(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    md = moddir(root)
    cache = tmp_path / "cache" / "scan.sqlite3"
    t0 = time.monotonic()
    ok(depmod(root, cache=cache))
    full = time.monotonic() - t0  # only to spread the starts and kills over a run
    current = outputs(root)
    gen = 0
    tally = {"rounds": 0, "killed": 0, "killed after a rename": 0, "journals left": 0, "completed": 0, "newest": 0}
    for rnd_no in range(ROUNDS):
        rnd = random.Random(f"round {rnd_no}")
        target = rnd.randrange(1, COUNT)  # every change of a round replaces this one file
        states = [current, expected(root, tmp_path / "e0")]
        procs: list[subprocess.Popen[bytes]] = []
        nprocs = rnd.choice([2, 3])
        victim = rnd.randrange(-1, nprocs)  # -1: nobody is killed
        how = rnd.choice(["timer", "rename"])
        for p in range(nprocs):
            if p:
                time.sleep(rnd.uniform(1.0, 1.8) * full)  # mostly after the first run has read the tree
                gen += 1
                replace_module(root, target, gen)
                states.append(expected(root, tmp_path / f"e{p}"))
            k = rnd.randrange(1, 11) if p == victim and how == "rename" else 0
            # a run to be killed after a rename goes without the cache: it writes all 11 files, whatever the state
            args = argv(root, cache=None if k else cache)
            # the first run writes late: without a lock it would write its older result after the others
            delay = rnd.uniform(1, 3) * full if p == 0 else rnd.uniform(0, 1) * full
            slow = [sys.executable, "-c", _SLOW_RUN, f"{delay:.3f}", str(k), *args[3:]]
            procs.append(subprocess.Popen(slow, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO,
                                          start_new_session=True))
            if p == victim and how == "timer":
                time.sleep(rnd.uniform(0, 2) * full)
                if procs[-1].poll() is None:
                    os.killpg(procs[-1].pid, signal.SIGKILL)
        killed = []
        for p, proc in enumerate(procs):
            _out, err = proc.communicate(timeout=300)
            tally["completed"] += b"its set was completed" in err
            if proc.returncode == -signal.SIGKILL:
                killed.append(p)
                tally["killed after a rename"] += how == "rename"
            else:
                assert proc.returncode == 0, f"round {rnd_no} run {p}: {err.decode(errors='replace')[-2000:]}"
        tally["killed"] += len(killed)
        if (md / JOURNAL_NAME).exists():
            tally["journals left"] += 1
        settle(root)
        got = outputs(root)
        assert ours(root) == []
        matches = [i for i, s in enumerate(states) if s == got]
        assert matches, (f"round {rnd_no}: the files are no state's complete output "
                         f"(killed {killed}, {how}); differing from the newest: "
                         f"{sorted(n for n in got if got[n] != states[-1].get(n))}")
        if nprocs - 1 not in killed:  # the last run started read the newest tree, after every other run
            assert got == states[-1], f"round {rnd_no}: not the newest state's output (matches {matches})"
            tally["newest"] += 1
        # a third run with the cache does not take what it finds for current
        tally["completed"] += "its set was completed" in ok(depmod(root, cache=cache))
        assert outputs(root) == states[-1], f"round {rnd_no}: the cached rerun kept a stale or mixed set"
        current = states[-1]
        tally["rounds"] += 1
    print(tally)
    assert tally["rounds"] == ROUNDS and tally["killed"] >= 3 and tally["killed after a rename"] >= 2, tally
    assert tally["completed"] + tally["journals left"] >= 2, tally  # sets left half renamed were met
