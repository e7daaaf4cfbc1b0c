"""kmod's module array: the registered module files in hash-table order,
then sorted stably by their line in ``modules.order``.

The module array is the line order of ``modules.dep`` and the tie-breaker of
every later step (of several exporters of a symbol, the last one wins); see
kmod tools/depmod.c:depmod_modules_sort@v34.2.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..kmodhash import hash_order
from ..model import fsencode
from .walk import ModuleFile


def module_array(
    files: Iterable[ModuleFile], dirname: str, order_text: bytes | None, *, first_wins: bool = True
) -> tuple[list[ModuleFile], frozenset[str], bool, list[str]]:
    """kmod's module array: hash order, then a stable sort by ``modules.order``.

    A module listed on several lines takes the position of its first line
    (``first_wins``: kmod 34, commit a1186faeac14, skips a module already
    numbered) or of its last (kmod 30-33: kmod tools/depmod.c:depmod_modules_sort@v30
    numbers every match, so the last number stays).

    Returns (array, names placed by modules.order, whether the order file was
    applied, kmod-style messages).
    """
    by_key = {fsencode(mf.name): mf for mf in files}
    array = [by_key[k] for k in hash_order(by_key, 512)]
    messages: list[str] = []
    if order_text is None:
        messages.append(f"WARNING: could not open modules.order at {dirname}: No such file or directory")
        return array, frozenset(), False, messages
    lines = order_text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
        complete = True
    else:
        complete = False
    if not complete:
        # kmod tools/depmod.c:depmod_modules_sort@v34.2: a line without "\n"
        # (only the last can be one) disables the reordering entirely.
        messages.append(f"ERROR: {dirname}/modules.order:{len(lines)} corrupted line misses '\\n'")
        return array, frozenset(), False, messages
    total = len(lines)
    by_unc: dict[bytes, ModuleFile] = {}
    for mf in array:
        unc = mf.uncrelpath
        if unc is not None:
            by_unc[fsencode(unc)] = mf
    sort_idx: dict[str, int] = {}
    for k, line in enumerate(lines, start=1):
        found = by_unc.get(line)
        if found is not None and not (first_wins and found.name in sort_idx):
            sort_idx[found.name] = k - (total + 1)
    array.sort(key=lambda mf: sort_idx.get(mf.name, 1))
    return array, frozenset(sort_idx), True, messages
