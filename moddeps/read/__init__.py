"""Reading module trees: the bytes of module files become :class:`~moddeps.model.Module` records.

* :mod:`.compression` -- a module file's bytes, decompressed by magic, within bounds;
* :mod:`.elfreader` -- those bytes parsed into a ``Module`` (the C parser ``moddeps._elfscan``
  where it is built, a pure-Python twin otherwise);
* :mod:`.recordcodec` and :mod:`.cache` -- the scan cache, its records and its database.
"""
