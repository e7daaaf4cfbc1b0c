"""moddeps/native.py: the one helper that chooses between a C accelerator and its Python twin.

These tests use stand-in accelerators, so they run whether or not the C
extensions are built; tests/test_native_trie.py and test_native_elfscan.py
check the same contract on the real ones.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import pytest

from moddeps import native
from moddeps.native import DECLINED, load, twin


def _accelerator(**functions: Any) -> ModuleType:
    mod = ModuleType("moddeps._standin")
    for name, fn in functions.items():
        setattr(mod, name, fn)
    mod.DECLINED = DECLINED  # type: ignore[attr-defined]
    return mod


def test_the_c_result_is_used_when_there_is_one() -> None:
    slow: list[int] = []
    acc = _accelerator(double=lambda x: 2 * x)
    assert twin(acc, lambda c: c.double(21), lambda: slow.append(1) or -1) == 42
    assert slow == []


def test_no_accelerator_or_a_declined_call_runs_the_twin() -> None:
    acc = _accelerator(double=lambda x: DECLINED)
    assert twin(None, lambda c: c.double(21), lambda: 42) == 42
    assert twin(acc, lambda c: c.double(21), lambda: 42) == 42


def test_arguments_go_to_both_sides() -> None:
    """twin(acc, fast, slow, *args): fast(acc, *args), else slow(*args) (no closures on hot paths)."""
    acc = _accelerator(add=lambda a, b: a + b if isinstance(a, int) else DECLINED)

    def fast(c: Any, a: Any, b: Any) -> Any:
        return c.add(a, b)

    def slow(a: Any, b: Any) -> Any:
        return ("twin", a, b)

    assert twin(acc, fast, slow, 1, 2) == 3
    assert twin(acc, fast, slow, "1", 2) == ("twin", "1", 2)
    assert twin(None, fast, slow, 1, 2) == ("twin", 1, 2)


def test_errors_of_either_side_propagate() -> None:
    def broken(x: int) -> int:
        raise TypeError("a bug in C")

    slow: list[int] = []
    with pytest.raises(TypeError, match="a bug in C"):
        twin(_accelerator(double=broken), lambda c: c.double(21), lambda: slow.append(1) or 0)
    assert slow == []  # the error is not taken for a declined call
    with pytest.raises(ValueError, match="python"):
        twin(None, lambda c: 0, lambda: int("python"))


def test_falsy_results_are_results() -> None:
    for value in (None, False, 0, b"", [], ()):
        assert twin(_accelerator(), lambda c, v=value: v, lambda: "twin") == value  # type: ignore[misc]


def test_declined_is_not_a_truth_value() -> None:
    """A C result tested for truth before it was told from DECLINED fails loudly."""
    assert repr(DECLINED) == "DECLINED"
    with pytest.raises(TypeError, match="is DECLINED"):
        bool(DECLINED)
    assert DECLINED is native.Declined.DECLINED


def test_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """load honours MODDEPS_PURE, and takes a build without DECLINED (older sources) for none."""
    monkeypatch.setattr(native, "_loaded", {})
    good = _accelerator()
    stale = ModuleType("moddeps._stale")
    monkeypatch.setitem(sys.modules, "moddeps._standin", good)
    monkeypatch.setitem(sys.modules, "moddeps._stale", stale)
    monkeypatch.delenv("MODDEPS_PURE", raising=False)
    assert load("_standin") is good
    assert load("_stale") is None
    assert load("_not_built") is None
    for value in ("1", "yes"):
        monkeypatch.setenv("MODDEPS_PURE", value)
        assert load("_standin") is None
    monkeypatch.setenv("MODDEPS_PURE", "0")
    assert load("_standin") is good
