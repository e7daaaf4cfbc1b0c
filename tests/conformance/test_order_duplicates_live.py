"""A ``modules.order`` that lists a module twice, against both real kmods.

kmod 30 gives every occurrence a sort index and so keeps the *last*; kmod 34
gives one only to a module's first match ("depmod: Support modules.order
with duplicate lines", kmod commit a1186faeac14, v34), so the *first* wins.
The tiny tree (built with tests/kobuild.py) makes the difference visible in
the order of modules.dep's lines (``user``, which needs both libraries, lists
them in the same order with either kmod).  ``moddeps depmod --kmod-version N`` must write
kmod N's files byte for byte, for N = 30 and 34.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.debian import KmodCmd
from tests.conformance.outputs import KMOD30_OUTPUTS, KMOD34_OUTPUTS, compare_outputs, run_depmod
from tests.depmod_cases import VERSION, Tree

pytestmark = pytest.mark.conformance

ORDER = "kernel/af_key.ko\nkernel/vsock.ko\nkernel/vsock_common.ko\nkernel/vsock_transport.ko\nkernel/af_key.ko\n" \
        "kernel/user.ko\n"


def build(root: Path) -> Path:
    t = Tree(str(root))
    t.ko("kernel/af_key.ko", exports=["af_key_fn"], aliases=["net-pf-15"])
    t.ko("kernel/vsock.ko", exports=["vsock_fn"])
    t.ko("kernel/vsock_common.ko", needs=["vsock_fn"])
    t.ko("kernel/vsock_transport.ko", needs=["vsock_fn"])
    t.ko("kernel/user.ko", needs=["vsock_fn", "af_key_fn"])
    t.order(ORDER)
    return root


@pytest.mark.parametrize("release", [30, 34])
def test_duplicate_order_line(release: int, request: pytest.FixtureRequest, moddeps_cmd: list[str],
                              workdir: Path) -> None:
    kmod: KmodCmd = request.getfixturevalue(f"kmod{release}")
    base = workdir / f"order-duplicate-{release}"
    theirs, ours = build(base / "kmod"), build(base / "moddeps")
    config = base / "empty.d"
    config.mkdir()
    k = run_depmod("kmod", list(kmod.depmod), theirs, VERSION, "-C", str(config))
    m = run_depmod("moddeps", [*moddeps_cmd, "depmod", "--no-cache", "--kmod-version", str(release)], ours,
                   VERSION, "-C", str(config))
    assert k.status == 0, k.describe()
    dep = (theirs / "lib/modules" / VERSION / "modules.dep").read_text().splitlines()
    first, last = ("kernel/af_key.ko:", "kernel/vsock_transport.ko: kernel/vsock.ko") if release >= 34 else \
        ("kernel/vsock.ko:", "kernel/af_key.ko:")
    # what kmod itself did: the case really tells the two releases apart
    assert dep[0] == first and dep[3] == last, f"kmod {kmod.version}: modules.dep {dep}"
    assert m.status == k.status, (k.describe(), m.describe())
    assert m.messages() == k.messages()
    expected = KMOD34_OUTPUTS if release >= 33 else KMOD30_OUTPUTS
    problems = compare_outputs(ours / "lib/modules" / VERSION, theirs / "lib/modules" / VERSION, moddeps_cmd,
                               expected)
    assert not problems, "\n".join(problems)
