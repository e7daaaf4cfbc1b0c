"""The seam between moddeps and its optional C accelerators.

Three extensions speed up the hot paths:

* ``moddeps._elfscan`` (``_elfscan.c``, ``_elfscan_codec.c``): the module
  reader's common case, the signature walker, the scan cache's record codec;
* ``moddeps.depmod._trie`` (``depmod/_trie.c``, ``depmod/_trie_resolve.c``):
  the ``.bin`` index writer, kmod's hash, helpers of the depmod writers, and
  symbol resolution;
* ``moddeps.read._xz`` (``read/_xz.c``, linked with liblzma, built only where
  ``lzma.h`` is): the usual ``.ko.xz`` decoded with a stream kept per thread
  (``read/compression.py``'s Python path is its twin).

Every accelerated function has a pure-Python twin that gives the same result
(tests/test_native_*.py compare them); ``MODDEPS_PURE=1`` in the environment,
or an extension that is not built, leaves moddeps on the twins alone.

The contract every C function keeps:

* It returns :data:`DECLINED` when the *data* it works on (the sequences,
  records and values it processes) has a shape it does not handle -- a
  container, item or field of another type than it reads, an index out of
  range, a size past one of its limits, a module that is not plain and well
  formed.  Declining is not an error and changes nothing: the Python twin
  then decides, giving the result or the precise error.
* Anything else raises, and the exception reaches the caller: a call that
  does not fit the function (the argument count; an option of another type
  than its ``.pyi`` stub gives -- a flag, a bucket count, a record type, a
  prefix: a bug in the caller), the ValueErrors it shares with its twin (same
  messages), MemoryError, and whatever Python code it runs raises (an
  attribute, ``__eq__``, a codec).  No C function turns an exception into
  DECLINED, so no exception becomes the slow path unseen.

Callers go through :func:`twin`, the one place that chooses between the two::

    return twin(load("depmod._trie"), lambda trie: trie.hash_order(keys, buckets),
                lambda: py_hash_order(keys, buckets))

or with functions and their arguments (no closures to make)::

    return twin(accelerator, _fast, _slow, a, b)   # _fast(accelerator, a, b), else _slow(a, b)

The two functions called once a module on a scan's hot path,
``read.elfreader.parse_module`` and ``signature_facts``, write the same test
out instead (``if w is not DECLINED``), which spares twin's call (about 0.4 us
a module, a tenth of parse_module's time on the C path).

A fast side that makes several C calls returns DECLINED as soon as one of
them does (see resolve.resolve); annotating each C result as ``T | Declined``
lets mypy follow the ``is DECLINED`` tests.

The constants both languages write (limits, flags, magic numbers, message
texts) are annotated in the C sources with the Python name they mirror, and
tests/test_native_constants.py fails when the two drift apart.
"""

from __future__ import annotations

import importlib
import os

from .typeshim import cast

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any, Final, TypeVar, TypeVarTuple

    _R = TypeVar("_R")
    _Args = TypeVarTuple("_Args")

    import enum

__all__ = ["DECLINED", "Declined", "crc32", "load", "twin"]


def _no_truth(_self: object) -> bool:
    # a result tested for truth before it was told from DECLINED is a bug
    raise TypeError("DECLINED has no truth value: test it with `is DECLINED`")


if TYPE_CHECKING:
    class Declined(enum.Enum):
        """The type of :data:`DECLINED` (annotate a result as ``T | Declined``): an enum of one
        member for mypy, which narrows ``T | Declined`` on ``is DECLINED`` tests."""

        DECLINED = "DECLINED"
else:
    class Declined:
        """The type of :data:`DECLINED` (annotate a result as ``T | Declined``).  At run time a class
        of one instance, not an enum: :mod:`enum` costs ~17 M instructions of start-up."""

        __slots__ = ()
        __bool__ = _no_truth

        def __repr__(self):
            return "DECLINED"

        def __reduce__(self):
            return "DECLINED"  # the module's DECLINED: one instance, pickled or not

    Declined.DECLINED = Declined()

#: What a C function returns for data it does not handle (the Python twin decides).
DECLINED: Final = Declined.DECLINED

#: The imported accelerators by name (None: not built, or built from other sources).
_loaded: dict[str, ModuleType | None] = {}


def load(name: str) -> ModuleType | None:
    """``moddeps.<name>`` if it is built and not switched off, else None.

    A build that does not keep the contract above (one made from older
    sources, without its ``DECLINED``) counts as not built.
    """
    if os.environ.get("MODDEPS_PURE", "") not in ("", "0"):
        return None
    try:
        return _loaded[name]
    except KeyError:
        pass
    try:
        module: ModuleType | None = importlib.import_module(f"moddeps.{name}")
    except ImportError:
        module = None
    if module is not None and getattr(module, "DECLINED", None) is not DECLINED:
        module = None  # pragma: no cover - a stale build
    _loaded[name] = module
    return module


def twin(accelerator: ModuleType | None, fast: Callable[[Any, *_Args], object], slow: Callable[[*_Args], _R],
         *args: *_Args) -> _R:
    """``fast(accelerator, *args)``, the C path, unless the accelerator is
    None or the result is :data:`DECLINED`; then ``slow(*args)``, the Python
    twin.

    ``fast`` gives what ``slow`` gives (the tests hold the twins to that), so
    its result is returned as ``slow``'s type.  Exceptions from either
    propagate.
    """
    if accelerator is not None:
        got = fast(accelerator, *args)
        if got is not DECLINED:
            return cast("_R", got)
    return slow(*args)


def crc32(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """``zlib.crc32(data, value)``: ``_elfscan.crc32`` when it is built (moddeps/_crc32.c, which
    folds with carry-less multiplication on x86-64: 5.3 MB in 0.5 ms here, zlib 1.2.13 1.9 ms),
    else zlib's.  For the CRCs of whole files (the state, a stamp, the output files read back)."""
    ext = load("_elfscan")
    if ext is None:
        import zlib

        return zlib.crc32(data, value)
    return int(ext.crc32(data, value))
