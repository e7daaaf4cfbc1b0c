"""Record the REAL kmod depmod's results for the synthetic cases.

Usage (from the repository root, with kmod 30's ``depmod`` installed)::

    python tests/regen_depmod_cases.py            # every committed case
    python tests/regen_depmod_cases.py CASE...    # only these

and for kmod 34.2 (results in ``tests/data/depmod_cases_kmod34/``), with
Debian 13's ``kmod``, ``libkmod2``, ``libc6``, ``liblzma5``, ``libzstd1`` and
``libssl3t64`` packages extracted (``dpkg -x``) into one directory ``K``::

    MODDEPS_KMOD34_ROOT=K python tests/regen_depmod_cases.py --kmod 34 [CASE...]

For each case of ``tests/depmod_cases.py`` (except the ``live_only`` ones,
whose result depends on readdir order), the tree is materialised in a fresh
``/tmp/mdcase-XXXXXXXX``, the real ``depmod`` runs every step (10 s timeout:
a timeout marks the case as one where kmod 30 hangs, which the tests then
check against moddeps alone) and the results go to
``tests/data/depmod_cases/<case>/``:

* ``result.json``: arguments, per step the exit status, the stderr lines
  (prefix ``depmod: `` removed, root replaced by ``@ROOT@``) and the files
  (re)written; the final list of files under the root; the output names;
* ``stdout.<step>``: stdout bytes (root replaced);
* ``out/<path relative to the root>``: the bytes of every file the run
  created or rewrote (root replaced).

Directories of cases that no longer exist are removed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.depmod_cases import (
    CASES,
    committed_cases,
    data_dir,
    kmod34_depmod,
    kmod_available,
    observe,
    record,
    run_kmod,
)


def main(argv: list[str]) -> int:
    release = 30
    if argv[:1] == ["--kmod"]:
        release = int(argv[1])
        argv = argv[2:]
    if release == 30:
        if not kmod_available():
            print("regen: the real depmod is not installed", file=sys.stderr)
            return 1
        exe = ["depmod"]
    else:
        got = kmod34_depmod()
        if got is None:
            print("regen: set MODDEPS_KMOD34_ROOT to an extracted kmod 34.2", file=sys.stderr)
            return 1
        exe = got
    version = subprocess.run([*exe, "-V"], capture_output=True, text=True).stdout.splitlines()[0]
    if not (version == f"kmod version {release}" or version.startswith(f"kmod version {release}.")):
        print(f"regen: warning: expected kmod version {release}, found {version!r}", file=sys.stderr)
    DATA_DIR = data_dir(release)
    names = argv or [c.name for c in committed_cases()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"regen: unknown cases: {' '.join(unknown)}", file=sys.stderr)
        return 2
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for name in names:
        c = CASES[name]
        if c.live_only:
            print(f"{name}: live-only, skipped")
            continue
        obs = observe(c, run_kmod, kmod=True, release=release)
        record(c, obs, DATA_DIR)
        status = "TIMEOUT (moddeps-only)" if obs.timed_out else ",".join(str(s["exit"]) for s in obs.steps)
        print(f"{name}: exit {status}, {len(obs.outputs)} outputs, {sum(len(s['stderr']) for s in obs.steps)} "
              "stderr lines")
    if not argv:
        keep = {c.name for c in committed_cases()}
        for d in DATA_DIR.iterdir():
            if d.is_dir() and d.name not in keep:
                shutil.rmtree(d)
                print(f"{d.name}: removed (no such case)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
