"""Frozen records: ``@dataclass(frozen=True, slots=True)``, made at a fraction of dataclasses' cost.

Every record moddeps passes between stages is a frozen, slotted dataclass.
Making one with :mod:`dataclasses` costs ~1 ms of start-up (its fields are
introspected, eight methods compiled one by one, the class built twice), and
importing :mod:`dataclasses` pulls in :mod:`inspect` and :mod:`ast`: for the
~40 records a ``depmod`` imports that was ~170 M instructions, more than
everything else it imports together (callgrind).  :func:`dataclass` here
makes the same classes -- the same ``__init__`` (compiled in one go, on first use),
``__eq__``, ``__hash__``, ``__repr__``, ``__match_args__``, frozen
``__setattr__``/``__delattr__`` raising :class:`dataclasses.FrozenInstanceError`,
pickling -- and gives them a ``__dataclass_fields__`` made on first use, so
``dataclasses.fields``, ``asdict``, ``replace`` and ``is_dataclass`` work on them
as on any dataclass (the public API's records are documented as dataclasses).

Only what moddeps uses is done here: ``frozen=True, slots=True``, fields with a
``default`` or ``default_factory``, ``compare``, ``hash`` and ``repr``; anything
else (mutable records, ``kw_only``, ``init=False``, inheritance) is handed to
:mod:`dataclasses` itself.  mypy sees :mod:`dataclasses`' own functions.
tests/test_records.py compares the two on every behaviour above.
"""

from __future__ import annotations

TYPE_CHECKING = False  # (typing itself is not imported: start-up)
if TYPE_CHECKING:
    from dataclasses import dataclass as dataclass
    from dataclasses import field as field
    from dataclasses import replace as replace
else:
    from operator import attrgetter

    class _Missing:
        __slots__ = ()

        def __repr__(self) -> str:
            return "MISSING"

    _MISSING = _Missing()

    class _Field:
        """What :func:`field` says of one field, until the class is made."""

        __slots__ = ("default", "default_factory", "init", "repr", "hash", "compare", "kw_only", "metadata")

        def __init__(self, default, default_factory, init, repr, hash, compare, kw_only, metadata):
            self.default, self.default_factory, self.init, self.repr = default, default_factory, init, repr
            self.hash, self.compare, self.kw_only, self.metadata = hash, compare, kw_only, metadata

    def field(*, default=_MISSING, default_factory=_MISSING, init=True, repr=True, hash=None, compare=True,
              metadata=None, kw_only=_MISSING):
        if default is not _MISSING and default_factory is not _MISSING:
            raise ValueError("cannot specify both default and default_factory")
        return _Field(default, default_factory, init, repr, hash, compare, kw_only, metadata)

    def dataclass(cls=None, /, *, init=True, repr=True, eq=True, order=False, unsafe_hash=False, frozen=False,
                  match_args=True, kw_only=False, slots=False, weakref_slot=False):
        options = dict(init=init, repr=repr, eq=eq, order=order, unsafe_hash=unsafe_hash, frozen=frozen,
                       match_args=match_args, kw_only=kw_only, slots=slots, weakref_slot=weakref_slot)
        simple = (frozen and slots and init and repr and eq and match_args
                  and not (order or unsafe_hash or kw_only or weakref_slot))

        def wrap(cls):
            made = _make(cls) if simple else None
            if made is None:
                import dataclasses

                for name, value in list(vars(cls).items()):  # field() said here becomes dataclasses' own
                    if isinstance(value, _Field):
                        setattr(cls, name, _real_field(value))
                return dataclasses.dataclass(cls, **options)
            return made

        return wrap if cls is None else wrap(cls)

    def _real_field(spec):
        import dataclasses

        def given(value):
            return dataclasses.MISSING if value is _MISSING else value

        return dataclasses.field(
            default=given(spec.default), default_factory=given(spec.default_factory), init=spec.init,
            repr=spec.repr, hash=spec.hash, compare=spec.compare, metadata=spec.metadata, kw_only=given(spec.kw_only))

    def replace(obj, /, **changes):
        if not hasattr(type(obj), "__record_fields__"):
            import dataclasses

            return dataclasses.replace(obj, **changes)
        for name in type(obj).__record_fields__:
            if name not in changes:
                changes[name] = getattr(obj, name)
        return type(obj)(**changes)

    def _make(cls):
        """The record class for ``cls``, or None when :mod:`dataclasses` has to make it."""
        if any("__dataclass_fields__" in vars(base) or "__record_fields__" in vars(base)
               for base in cls.__mro__[1:]):
            return None
        own = vars(cls)
        names = list(own.get("__annotations__", {}))
        if any(n in ("self", "_set", "_F") or n.startswith(("_d_", "_f_")) for n in names):
            return None  # a name the generated __init__ uses itself
        specs = {}
        for name in names:
            value = own.get(name, _MISSING)
            spec = value if isinstance(value, _Field) else _Field(value, _MISSING, True, True, None, True,
                                                                   _MISSING, None)
            if not spec.init or spec.kw_only is not _MISSING or spec.metadata is not None:
                return None
            if isinstance(spec.default, (list, dict, set)):
                raise ValueError(f"mutable default {type(spec.default)} for field {name} is not allowed: "
                                 "use default_factory")
            specs[name] = spec
        params, lines, env = [], [], {"_set": object.__setattr__, "_F": _MISSING}
        seen_default = False
        for name, spec in specs.items():
            if spec.default is not _MISSING:
                env[f"_d_{name}"] = spec.default
                params.append(f"{name}=_d_{name}")
                seen_default = True
            elif spec.default_factory is not _MISSING:
                env[f"_f_{name}"] = spec.default_factory
                params.append(f"{name}=_F")
                seen_default = True
            else:
                if seen_default:
                    raise TypeError(f"non-default argument {name!r} follows default argument")
                params.append(name)
            if spec.default_factory is not _MISSING:
                lines.append(f"  _set(self, {name!r}, _f_{name}() if {name} is _F else {name})")
            else:
                lines.append(f"  _set(self, {name!r}, {name})")
        source = f"def __init__(self{''.join(', ' + p for p in params)}):\n" + ("\n".join(lines) or "  pass") + "\n"
        qualname = f"{cls.__qualname__}.__init__"

        def build():
            exec(source, env)
            init = env["__init__"]
            init.__qualname__ = qualname
            return init

        body = {k: v for k, v in own.items() if k not in specs and k not in ("__dict__", "__weakref__")}
        compared = tuple(n for n, s in specs.items() if s.compare)
        hashed = tuple(n for n, s in specs.items() if (s.compare if s.hash is None else s.hash))
        body.update(
            __slots__=tuple(names), __init__=_LazyInit(build), __repr__=_repr, __eq__=_eq, __hash__=_hash,
            __setattr__=_setattr, __delattr__=_delattr, __getstate__=_getstate, __setstate__=_setstate,
            __match_args__=tuple(names), __record_fields__=tuple(names),
            __record_repr__=tuple(n for n, s in specs.items() if s.repr),
            __record_compare__=attrgetter(*compared) if compared else _nothing,
            __record_hash__=attrgetter(*hashed) if hashed else _nothing,
            __record_specs__=specs, __dataclass_fields__=_LazyFields(), __dataclass_params__=_LazyParams(),
        )
        made = type(cls)(cls.__name__, cls.__bases__, body)
        made.__qualname__ = cls.__qualname__
        return made

    def _nothing(_obj):
        return ()

    def _repr(self):
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in type(self).__record_repr__)
        return f"{type(self).__qualname__}({shown})"

    def _eq(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        get = type(self).__record_compare__
        return (get(self),) == (get(other),)

    def _hash(self):
        return hash((type(self).__record_hash__(self),))

    def _frozen(name):
        from dataclasses import FrozenInstanceError

        return FrozenInstanceError(f"cannot assign to field {name!r}")

    def _setattr(self, name, value):
        raise _frozen(name)

    def _delattr(self, name):
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _getstate(self):
        return [getattr(self, n) for n in type(self).__record_fields__]

    def _setstate(self, state):
        for name, value in zip(type(self).__record_fields__, state):
            object.__setattr__(self, name, value)

    class _LazyInit:
        """``__init__`` until first used: compiled then (the exec of its source is most of what making a
        record costs, ~0.1 ms; a run uses a few of the records it imports) and put in its own place.
        An instance made by the C codec (``tp_alloc``, no ``__init__``) does not compile it."""

        __slots__ = ("_build", "_owner")

        def __init__(self, build):
            self._build = build
            self._owner = None

        def __set_name__(self, owner, name):
            self._owner = owner

        def __get__(self, obj, cls=None):
            init = self._build()
            type.__setattr__(self._owner, "__init__", init)  # (the class's own slot from now on)
            return init if obj is None else init.__get__(obj, cls)

    class _LazyFields:
        """``__dataclass_fields__``: dataclasses' Field objects, made (with dataclasses imported) on first use."""

        def __get__(self, obj, cls):
            made = cls.__dict__.get("__record_dataclass_fields__")
            if made is None:
                import dataclasses

                made = {}
                for name, spec in cls.__record_specs__.items():
                    f = _real_field(spec)
                    f.name, f.type, f.kw_only = name, cls.__annotations__[name], False
                    f._field_type = dataclasses._FIELD
                    made[name] = f
                type.__setattr__(cls, "__record_dataclass_fields__", made)
            return made

    class _LazyParams:
        """``__dataclass_params__``, made on first use: dataclasses reads it from the bases of a
        dataclass that subclasses a record (a frozen one may only subclass a frozen one)."""

        def __get__(self, obj, cls):
            import dataclasses

            try:  # Python >= 3.12
                return dataclasses._DataclassParams(True, True, True, False, False, True, True, False, True, False)
            except TypeError:  # Python 3.11
                return dataclasses._DataclassParams(True, True, True, False, False, True)
