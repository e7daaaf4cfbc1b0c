"""moddeps depmod against kmod 30's recorded results on synthetic trees.

The cases are in ``tests/depmod_cases.py``; the expectations in
``tests/data/depmod_cases/`` come from the real kmod 30 ``depmod``
(``python tests/regen_depmod_cases.py``).  Each case is materialised in a
fresh ``/tmp/mdcase-XXXXXXXX`` and ``moddeps depmod`` runs in-process with
the same arguments; every output file (byte for byte), stderr (line by line,
``moddeps: `` and ``depmod: `` prefixes removed, root replaced by ``@ROOT@``),
stdout, exit status, the files written by each step and the final file list
must match.  Known deliberate differences are handled by the cases themselves
(see the docstring of ``tests/depmod_cases.py``).  No kmod needed.
"""

from __future__ import annotations

import pytest

from tests.depmod_cases import DATA_DIR, committed_cases, compare, load, observe, run_moddeps

CASES = committed_cases()


def test_every_case_is_recorded() -> None:
    recorded = {d.name for d in DATA_DIR.iterdir() if d.is_dir()}
    names = {c.name for c in CASES}
    assert names - recorded == set(), "run: python tests/regen_depmod_cases.py"
    assert recorded - names == set(), "stale expectation directories; run the regen script"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_depmod_case(case) -> None:  # type: ignore[no-untyped-def]
    expected = load(case.name)
    got = observe(case, run_moddeps, kmod=False)
    problems = compare(case, expected, got)
    assert not problems, f"{case.name}: {case.doc}\n" + "\n".join(problems)
