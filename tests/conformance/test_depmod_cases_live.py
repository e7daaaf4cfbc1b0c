"""moddeps depmod against the real kmod 30 depmod, live, on the synthetic cases.

The same cases as ``tests/test_depmod_cases.py`` (``tests/depmod_cases.py``),
plus the ``live_only`` ones whose result depends on readdir order: each case
is materialised once, the real ``depmod`` runs its steps, the tree is put back
as it was (module directory entries untouched, so the readdir order is the
same) and ``moddeps depmod`` runs the same steps.  Everything the offline
test compares is compared here, so the committed expectations cannot drift
from kmod unnoticed: a further test checks that kmod still produces exactly
the committed expectations.

Cases on which kmod 30 hangs (10 s timeout) are checked against moddeps alone.
Skipped when ``depmod`` is not installed, unless ``CI`` is set (then it fails).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.depmod_cases import CASES, committed_cases, compare, kmod_depmod, load, observe, observe_both, run_kmod

pytestmark = pytest.mark.conformance

ALL = list(CASES.values())
COMMITTED = committed_cases()


@pytest.fixture(scope="module", autouse=True)
def _real_depmod() -> None:
    exe = kmod_depmod()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("the real depmod (kmod) is not installed")
        pytest.skip("the real depmod (kmod) is not installed")
    first = subprocess.run([exe, "-V"], capture_output=True, text=True).stdout.splitlines()[:1]
    if first != ["kmod version 30"]:
        pytest.fail(f"these cases describe kmod 30; found {first}")


@pytest.mark.parametrize("case", ALL, ids=[c.name for c in ALL])
def test_moddeps_matches_live_kmod(case) -> None:  # type: ignore[no-untyped-def]
    kmod_obs, moddeps_obs = observe_both(case)
    problems = compare(case, kmod_obs, moddeps_obs)
    assert not problems, f"{case.name}: {case.doc}\n" + "\n".join(problems)


@pytest.mark.parametrize("case", COMMITTED, ids=[c.name for c in COMMITTED])
def test_committed_expectation_is_current(case) -> None:  # type: ignore[no-untyped-def]
    """kmod, run now, still gives the recorded result (else: regen)."""
    recorded = load(case.name)
    live = observe(case, run_kmod, kmod=True)
    assert live.timed_out == recorded.timed_out
    if live.timed_out:
        return
    assert live.steps == recorded.steps, "run: python tests/regen_depmod_cases.py " + case.name
    assert live.stdouts == recorded.stdouts
    assert live.files == recorded.files
    assert live.outputs == recorded.outputs
