"""Reading module trees: the bytes of module files become :class:`~moddeps.model.Module` records.

* :mod:`.compression` -- a module file's bytes, decompressed by magic, within bounds;
* :mod:`.elfreader` -- those bytes parsed into a ``Module`` (the C parser ``moddeps._elfscan``
  where it is built, a pure-Python twin otherwise);
* :mod:`.walk` -- a tree walked as depmod walks it, its module files registered by name;
* :mod:`.order` -- kmod's module array (hash order, then ``modules.order``);
* :mod:`.pool` -- many module files read serially, in threads or in processes, each under
  its deadline, together under one memory budget;
* :mod:`.scan` -- the whole scan (walk, order, read) and its records, :class:`~.scan.Tree` first;
* :mod:`.recordcodec` and :mod:`.cache` -- the scan cache: its records and its database.

Imports run one way: ``scan`` uses ``walk``, ``order`` and ``pool``; ``pool`` uses
``compression``, ``elfreader`` and ``cache``; none of them imports ``scan``.
"""
