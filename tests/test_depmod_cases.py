"""moddeps depmod against kmod 30's and kmod 34.2's recorded results on synthetic trees.

The cases are in ``tests/depmod_cases.py``; the expectations in
``tests/data/depmod_cases/`` come from the real kmod 30 ``depmod``
(``python tests/regen_depmod_cases.py``), those in
``tests/data/depmod_cases_kmod34/`` from the real kmod 34.2
(``python tests/regen_depmod_cases.py --kmod 34``); ``moddeps depmod
--kmod-version 30`` and ``--kmod-version 34`` are compared with them.  Each case is materialised in a
fresh ``/tmp/mdcase-XXXXXXXX`` and ``moddeps depmod`` runs in-process with
the same arguments; every output file (byte for byte), stderr (line by line,
``moddeps: `` and ``depmod: `` prefixes removed, root replaced by ``@ROOT@``),
stdout, exit status, the files written by each step and the final file list
must match.  Known deliberate differences are handled by the cases themselves
(see the docstring of ``tests/depmod_cases.py``).  No kmod needed.
"""

from __future__ import annotations

import pytest

from tests.depmod_cases import RELEASES, committed_cases, compare, data_dir, load, observe, run_moddeps

CASES = committed_cases()


@pytest.mark.parametrize("release", RELEASES)
def test_every_case_is_recorded(release: int) -> None:
    recorded = {d.name for d in data_dir(release).iterdir() if d.is_dir()}
    names = {c.name for c in CASES}
    assert names - recorded == set(), f"run: python tests/regen_depmod_cases.py --kmod {release}"
    assert recorded - names == set(), "stale expectation directories; run the regen script"


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_depmod_case(case, release: int) -> None:  # type: ignore[no-untyped-def]
    expected = load(case.name, data_dir(release))
    got = observe(case, run_moddeps, kmod=False, release=release)
    problems = compare(case, expected, got, release)
    assert not problems, f"kmod {release}, {case.name}: {case.doc}\n" + "\n".join(problems)


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_depmod_case_indexes_in_a_thread(case, release: int, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Every case again, each index built by a thread of its own while the next files are
    rendered (what a tree of THREADED_MIN modules or more gets; no case has that many): the
    same files, messages and exit status as kmod's."""
    from moddeps.depmod import render

    monkeypatch.setattr(render, "THREADED_MIN", 0)
    expected = load(case.name, data_dir(release))
    got = observe(case, run_moddeps, kmod=False, release=release)
    problems = compare(case, expected, got, release)
    assert not problems, f"kmod {release}, {case.name}: {case.doc}\n" + "\n".join(problems)
