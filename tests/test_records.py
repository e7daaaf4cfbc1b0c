"""moddeps.records makes the same classes as dataclasses' ``@dataclass(frozen=True, slots=True)``.

Each behaviour is checked on a record class made both ways from the same body.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys

import pytest

from moddeps import records

SOURCE = '''
from __future__ import annotations

@dataclass(frozen=True, slots=True)
class Point:
    """A record."""

    name: str
    x: int
    tags: tuple[str, ...] = ()
    seen: list[int] = field(default_factory=list, hash=False)
    note: str | None = field(default=None, compare=False)
    cache: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    weight: float = field(default=1.0, hash=False)

    def twice(self) -> int:
        return 2 * self.x

    @property
    def label(self) -> str:
        return f"{self.name}:{self.x}"
'''


def make(dataclass: object, field: object, name: str) -> type:
    env: dict[str, object] = {"dataclass": dataclass, "field": field, "__name__": __name__}
    exec(SOURCE, env)
    cls = env["Point"]
    assert isinstance(cls, type)
    cls.__qualname__ = name  # (both pickled by this module's name)
    globals()[name] = cls
    return cls


REAL = make(dataclasses.dataclass, dataclasses.field, "RealPoint")
OURS = make(records.dataclass, records.field, "OurPoint")


def both(*args: object, **kwargs: object) -> tuple[object, object]:
    return REAL(*args, **kwargs), OURS(*args, **kwargs)


def test_ours_is_not_made_by_dataclasses_but_looks_like_one() -> None:
    assert "__record_fields__" in vars(OURS) and "__record_fields__" not in vars(REAL)
    assert dataclasses.is_dataclass(OURS) and dataclasses.is_dataclass(OURS("a", 1))

    def described(cls: type) -> list[tuple[object, ...]]:
        return [(f.name, f.type, f.default, f.default_factory, f.compare, f.hash, f.repr)
                for f in dataclasses.fields(cls)]

    assert described(OURS) == described(REAL)
    assert OURS.__slots__ == REAL.__slots__ and OURS.__match_args__ == REAL.__match_args__
    assert not hasattr(OURS("a", 1), "__dict__")
    assert OURS.__doc__ == "A record."


def test_init_defaults_factories_and_errors() -> None:
    r, o = both("a", 1)
    assert (o.name, o.x, o.tags, o.seen, o.note, o.cache, o.weight) == ("a", 1, (), [], None, {}, 1.0)
    assert o.seen is not OURS("b", 2).seen  # a fresh list each time
    r, o = both(name="a", x=2, tags=("t",), seen=[1], note="n", cache={"k": 1}, weight=2.5)
    assert dataclasses.astuple(o) == dataclasses.astuple(r)
    for cls in (REAL, OURS):
        with pytest.raises(TypeError):
            cls("a")
        with pytest.raises(TypeError):
            cls("a", 1, nope=3)
    assert o.twice() == 4 and o.label == "a:2"


def test_eq_hash_repr_as_dataclasses() -> None:
    r1, o1 = both("a", 1, note="x", weight=1.0)
    r2, o2 = both("a", 1, note="y", weight=2.0)  # note: not compared; weight: compared, not hashed
    assert (o1 == OURS("a", 1, note="y")) is (r1 == REAL("a", 1, note="y")) is True
    assert (o1 == o2) is (r1 == r2) is False
    assert (hash(o1) == hash(OURS("a", 1, weight=3.0))) and (hash(r1) == hash(REAL("a", 1, weight=3.0)))
    assert o1 != r1 and o1.__eq__(r1) is NotImplemented
    assert repr(o1).replace("OurPoint", "X") == repr(r1).replace("RealPoint", "X")
    assert "cache" not in repr(o1)


def test_frozen_replace_asdict_pickle_copy() -> None:
    r, o = both("a", 1, seen=[3])
    for obj in (r, o):
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.x = 2  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            del obj.x  # type: ignore[misc]
    assert records.replace(o, x=5) == OURS("a", 5, seen=[3]) == dataclasses.replace(o, x=5)
    assert records.replace(r, x=5) == dataclasses.replace(r, x=5)
    assert dataclasses.asdict(o) == dataclasses.asdict(r)
    for obj in (o, copy.copy(o), copy.deepcopy(o), pickle.loads(pickle.dumps(o))):
        assert obj == o and type(obj) is OURS
    match o:
        case OURS(name, x):
            assert (name, x) == ("a", 1)


def test_what_dataclasses_still_make() -> None:
    @records.dataclass(slots=True)
    class Mutable:
        a: int

    @records.dataclass(frozen=True, slots=True, kw_only=True)
    class Keywords:
        a: int

    m = Mutable(1)
    m.a = 2
    assert "__record_fields__" not in vars(Mutable) and "__record_fields__" not in vars(Keywords)
    assert Keywords(a=1).a == 1 and "__dataclass_fields__" in vars(Keywords)
    with pytest.raises(ValueError, match="mutable default"):

        @records.dataclass(frozen=True, slots=True)
        class Bad:
            a: list[int] = []  # noqa: RUF012


def test_records_do_not_import_dataclasses() -> None:
    code = ("import sys; import moddeps.depmod.run, moddeps.read.scan, moddeps.model; "
            "print('dataclasses' in sys.modules, 'inspect' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "False"]


def test_init_compiled_on_first_use_with_its_parameters() -> None:
    import inspect

    fresh = make(records.dataclass, records.field, "FreshPoint")
    assert type(vars(fresh)["__init__"]) is records._LazyInit  # made, not compiled yet
    # a record made without __init__ (as the C codec makes them) compiles nothing either
    bare = object.__new__(fresh)
    assert type(vars(fresh)["__init__"]) is records._LazyInit and not hasattr(bare, "x")
    ours, real = inspect.signature(fresh).parameters, inspect.signature(REAL).parameters
    assert list(ours) == list(real) and ours["tags"].default == real["tags"].default == ()
    assert inspect.isfunction(vars(fresh)["__init__"])  # compiled, in its place
    assert vars(fresh)["__init__"].__qualname__ == REAL.__init__.__qualname__ == "Point.__init__"

    later = make(records.dataclass, records.field, "LaterPoint")

    class Sub(later):  # type: ignore[valid-type,misc]
        __slots__ = ()

        def __init__(self, name: str) -> None:
            super().__init__(name, 7)

    assert Sub("s").x == 7 and inspect.isfunction(vars(later)["__init__"])
    assert "__init__" in vars(Sub) and Sub.__init__ is not later.__init__
    assert later("a", 1) == later("a", 1, seen=[])
