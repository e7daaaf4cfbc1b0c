"""The run-time parts of :mod:`typing` that moddeps uses, without importing :mod:`typing`.

Importing :mod:`typing` costs ~40 M instructions (callgrind), about a quarter
of everything a ``depmod`` run imports, and moddeps needs almost none of it
at run time: annotations are strings (``from __future__ import annotations``)
and the names they use are imported under ``if TYPE_CHECKING:`` (a module's
own ``TYPE_CHECKING = False``, which mypy reads as true).  What is left is
here:

* :class:`NamedTuple`: ``typing.NamedTuple``'s class syntax -- fields from the
  annotations, defaults, methods, docstring -- made into a
  :func:`collections.namedtuple`, as :mod:`typing` itself does, with its checks
  (a field without a default after one with a default; the attributes a body
  may not set);
* :func:`cast` and :func:`overload`, which do nothing at run time.

mypy sees :mod:`typing`'s own.  tests/test_typeshim.py holds the stand-in to
``typing.NamedTuple`` and checks that a depmod run does not import :mod:`typing`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
    from typing import cast as cast
    from typing import overload as overload
else:
    #: What typing.NamedTuple forbids a class body to set, and what it takes from the body itself.
    _PROHIBITED = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults",
                             "_make", "_replace", "_asdict", "_source"})
    _SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})

    class _NamedTupleMeta(type):
        def __new__(mcls, name, bases, ns):
            if not bases:  # NamedTuple itself
                return super().__new__(mcls, name, bases, ns)
            from collections import namedtuple

            annotations = ns.get("__annotations__", {})
            fields = list(annotations)
            defaults = [ns[f] for f in fields if f in ns]
            if any(f not in ns for f in fields[len(fields) - len(defaults):]):
                raise TypeError(f"{name}: a field without a default follows one with a default")
            made = namedtuple(name, fields, defaults=defaults, module=ns.get("__module__"))
            made.__annotations__ = dict(annotations)
            for key, value in ns.items():
                if key in _PROHIBITED:
                    raise AttributeError(f"Cannot overwrite NamedTuple attribute {key}")
                if key not in _SPECIAL and key not in fields:
                    setattr(made, key, value)
            return made

    class NamedTuple(metaclass=_NamedTupleMeta):
        """``typing.NamedTuple``'s class syntax, without :mod:`typing`."""

    def cast(_type, value):
        return value

    def overload(func):
        return func  # the implementation, defined last, replaces it
