"""moddeps depmod against the real kmod 30 and kmod 34.2 depmod, live, on the synthetic cases.

The same cases as ``tests/test_depmod_cases.py`` (``tests/depmod_cases.py``),
plus the ``live_only`` ones whose result depends on readdir order: each case
is materialised once, the real ``depmod`` runs its steps, the tree is put back
as it was (module directory entries untouched, so the readdir order is the
same) and ``moddeps depmod --kmod-version N`` runs the same steps.  Everything
the offline test compares is compared here, so the committed expectations
cannot drift from kmod unnoticed: a further test checks that kmod still
produces exactly the committed expectations of its release.

kmod 30 is the installed one (``apt-get install kmod`` on Debian 12); kmod
34.2 is Debian 13's, extracted by ``debian.kmod34`` and handed to the cases'
harness through ``$MODDEPS_KMOD34_ROOT``.  Cases on which kmod hangs (10 s
timeout) are checked against moddeps alone.  A missing kmod skips, unless
``CI`` is set (then it fails).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.conformance import debian
from tests.depmod_cases import (
    CASES,
    KMOD34_ENV,
    RELEASES,
    committed_cases,
    compare,
    data_dir,
    kmod_depmod,
    load,
    observe,
    observe_both,
    run_kmod,
)

pytestmark = pytest.mark.conformance

ALL = list(CASES.values())
COMMITTED = committed_cases()


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module", params=RELEASES, ids=[f"kmod{r}" for r in RELEASES])
def release(request: pytest.FixtureRequest) -> Iterator[int]:
    """The kmod release the cases run against, found and checked."""
    if request.param == 30:
        exe = kmod_depmod()
        if exe is None:
            _missing("the real depmod (kmod 30) is not installed")
        first = subprocess.run([exe or "depmod", "-V"], capture_output=True, text=True).stdout.splitlines()[:1]
        if first != ["kmod version 30"]:
            pytest.fail(f"these cases describe kmod 30; found {first}")
        yield 30
        return
    try:
        k = debian.kmod34()
    except debian.Unavailable as exc:
        _missing(f"kmod 34.2: {exc}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(KMOD34_ENV, k.home)
        yield request.param


@pytest.mark.parametrize("case", ALL, ids=[c.name for c in ALL])
def test_moddeps_matches_live_kmod(case, release: int) -> None:  # type: ignore[no-untyped-def]
    kmod_obs, moddeps_obs = observe_both(case, release)
    problems = compare(case, kmod_obs, moddeps_obs, release)
    assert not problems, f"{case.name} (kmod {release}): {case.doc}\n" + "\n".join(problems)


@pytest.mark.parametrize("case", COMMITTED, ids=[c.name for c in COMMITTED])
def test_committed_expectation_is_current(case, release: int) -> None:  # type: ignore[no-untyped-def]
    """kmod, run now, still gives the recorded result (else: regen)."""
    recorded = load(case.name, data_dir(release))
    live = observe(case, run_kmod, kmod=True, release=release)
    regen = f"run: python tests/regen_depmod_cases.py --kmod {release} {case.name}"
    assert live.timed_out == recorded.timed_out, regen
    if live.timed_out:
        return
    assert live.steps == recorded.steps, regen
    assert live.stdouts == recorded.stdouts, regen
    assert live.files == recorded.files, regen
    assert live.outputs == recorded.outputs, regen
