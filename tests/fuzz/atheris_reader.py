"""Coverage-guided fuzzing of the module reader with atheris (libFuzzer).  Not a pytest file.

    pip install atheris
    python tests/fuzz/atheris_reader.py -max_total_time=3600 -timeout=5 -rss_limit_mb=1024 \\
        -artifact_prefix=/tmp/moddeps-crash- tests/fuzz/corpus/reader

A crash, a hang (``-timeout``, seconds per input) or a memory blow-up
(``-rss_limit_mb``) leaves the input in ``/tmp/moddeps-crash-*``: minimise it
(``-minimize_crash=1 -runs=10000 FILE``), then add it to ``corpus/reader/``
with a replay expectation (see ``corpus/README.md``).

Checked on every input: :func:`moddeps.read.elfreader.parse_module` returns a
Module or raises ModuleReadError with a one-line message naming the file;
the Module survives the scan cache's encoding.  With
``MODDEPS_ATHERIS_OUTPUTS=1`` depmod's files are rendered for it too and
checked for injected lines (``tests.fuzz.check_outputs``).
"""

from __future__ import annotations

import marshal
import os
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import atheris

with atheris.instrument_imports():
    from moddeps.errors import ModuleReadError
    from moddeps.model import Module
    from moddeps.read.elfreader import parse_module

OUTPUTS = os.environ.get("MODDEPS_ATHERIS_OUTPUTS") == "1"
NAME = "kernel/fuzz/fuzz.ko"


def test_one_input(data: bytes) -> None:
    try:
        m = parse_module(data, NAME)
    except ModuleReadError as exc:
        msg = str(exc)
        if "\n" in msg or not msg.startswith(NAME + ": "):
            raise AssertionError(f"error message is not one line naming the file: {msg!r}") from None
        return
    wire = m.to_wire()
    if Module.from_wire(marshal.loads(zlib.decompress(zlib.compress(marshal.dumps(wire))))) != m:
        raise AssertionError("the module does not survive the scan cache's encoding")
    if OUTPUTS:
        from tests.fuzz import check_outputs, render

        rendered = render([m], [NAME])
        if rendered is not None:
            files, _messages, res = rendered
            check_outputs([m], [NAME], files, res)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
