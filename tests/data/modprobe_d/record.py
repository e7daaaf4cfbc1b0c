"""Record ``modprobe -c`` of the real kmod 30 and kmod 34.2 on the modprobe.d fixtures here.

Run as root from the repository (writes ``expected.json`` next to this file)::

    PYTHONPATH=$PWD MODDEPS_CONFORMANCE_CACHE=/var/tmp/moddeps-conformance \\
        /work/venv/bin/python tests/data/modprobe_d/record.py

kmod 30 is the host's ``/usr/sbin/modprobe`` (Debian 12); kmod 34.2 is Debian 13's,
extracted by :func:`tests.conformance.debian.kmod34` and run through its own
dynamic loader.  kmod's modprobe reads the *host's* default modprobe.d
directories (``-d`` does not move them), so each ``root``-like case runs kmod
chrooted, in a private mount namespace, in a skeleton root whose default
modprobe.d directories are links to the case's own
(:func:`tests.depmod_cases.host_config_argv`, given the modprobe.d directory
list instead of the depmod.d one).  The ``cdir`` case passes ``-C cdir``
and runs there too: the skeleton has no /proc, so kmod finds no kernel
command line to add (``options`` from the host's ``/proc/cmdline``).
Cases are copied under ``/tmp/mdcase-*`` first (the skeleton binds /tmp).
``-S 0.0.0-none``: no module directory, so ``-c`` dumps the configuration
files and empty indexes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests import depmod_cases
from tests.conformance.debian import kmod34

HERE = Path(__file__).resolve().parent
MODPROBE_D_DIRS = ("/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/usr/lib/modprobe.d",
                   "/lib/modprobe.d")
#: (case, uses the default directories); a default-directory case is a root, the other a -C directory
CASES = (("root", True), ("merged", True), ("cdir", False))
KVER = "0.0.0-none"


def main() -> int:
    k34 = kmod34()
    os.environ[depmod_cases.KMOD34_ENV] = k34.home  # host_config_argv binds it into the skeleton
    depmod_cases.HOST_CONFIG_DIRS = MODPROBE_D_DIRS  # read by host_config_argv when it is called
    releases = {"30": ("/usr/sbin/modprobe",), "34": k34.modprobe}
    out: dict[str, object] = {"kver": KVER, "cases": {}}
    cases: dict[str, object] = {}
    for name, default_dirs in CASES:
        tmp = tempfile.mkdtemp(prefix="mdcase-", dir="/tmp")
        try:
            case = os.path.join(tmp, name)
            shutil.copytree(HERE / name, case, symlinks=True)
            runs: dict[str, object] = {}
            for release, cmd in releases.items():
                args = ["-c", "-S", KVER] if default_dirs else ["-C", case, "-c", "-S", KVER]
                with depmod_cases.host_config_argv([*cmd, *args], "/", case) as argv:
                    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
                runs[release] = {"argv": ["modprobe", *(a.replace(case, "@CASE@") for a in args)],
                                 "status": r.returncode, "stdout": r.stdout,
                                 "stderr": r.stderr.replace(case, "@CASE@")}
            cases[name] = {"default_dirs": default_dirs, "runs": runs}
        finally:
            shutil.rmtree(tmp)
    out["cases"] = cases
    (HERE / "expected.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
