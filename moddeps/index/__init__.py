"""kmod's binary index files (``modules.*.bin``).

* :mod:`~moddeps.index.format`: the disk format (constants, structs, the
  entry and reader types); docs/index-format.md describes it at length;
* :mod:`~moddeps.index.keys`: ``alias_normalize``, the key of an alias, for
  writers and lookups alike;
* :mod:`~moddeps.index.write`: the writers (kmod 30's post-order and kmod 34's
  pre-order layout, C twin and Python reference);
* :mod:`~moddeps.index.read`: :class:`~moddeps.index.read.Index`, its exact and
  wildcard lookups, and the dump of ``moddeps index dump``;
* :mod:`~moddeps.index.builtin`: the entries of the builtin indexes, from
  ``modules.builtin`` and ``modules.builtin.modinfo``.

Imports run one way: format and keys import nothing of the package, write
and read import format, builtin imports format and keys.
"""
