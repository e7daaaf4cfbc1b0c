"""Changes to real module files, as a rebuild or a package update makes them:
the benchmark (benchmarks/bench_depmod.py) and the conformance tests change
the same modules the same ways.  Every change keeps the file's size and
replaces the file the way a package manager does (a new file renamed over
the old one), so hard-linked copies of a pristine tree stay pristine.
"""

from __future__ import annotations

from pathlib import Path

from moddeps.read.scan import scan_tree


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` (plain module bytes) to ``path`` as a package manager installs a file: a new
    file renamed over the old one; an ``.xz`` module is compressed as Kbuild does."""
    if path.name.endswith(".xz"):
        import lzma

        data = lzma.compress(data, check=lzma.CHECK_CRC32,
                             filters=[{"id": lzma.FILTER_LZMA2, "preset": 6, "dict_size": 1 << 20}])
    tmp = path.with_name(path.name + ".moddeps-mutate")
    tmp.write_bytes(data)
    tmp.rename(path)


def module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        import lzma

        data = lzma.decompress(data)
    return data


def variants(data: bytes) -> tuple[bytes, bytes]:
    """The module rebuilt (another srcversion) and changed (its first alias differs), same sizes."""
    at = data.index(b"srcversion=") + len(b"srcversion=")
    rebuilt = data[:at] + bytes(ord("0") if c != ord("0") else ord("1") for c in data[at : at + 8]) + data[at + 8 :]
    at = data.index(b"alias=") + len(b"alias=")
    end = data.index(b"\0", at) - 1
    changed = data[:end] + (b"Y" if data[end : end + 1] == b"Z" else b"Z") + data[end + 1 :]
    return rebuilt, changed


def pick_library(mdir: Path) -> tuple[Path, bytes, bytes]:
    """A library module, one symbol it exports, and that symbol renamed (same
    length): the first module in path order exporting a symbol that 2 to 20
    other modules import and that is, for one of them, the only symbol it
    takes from that library (renaming it removes a dependency).  Its longest such symbol."""
    from moddeps.resolve import resolve

    tree = scan_tree(str(mdir))
    res = resolve(tree.modules, [f.path for f in tree.files])
    users: dict[str, int] = {}
    for m in tree.modules:
        for imp in m.imports:
            users[imp.name] = users.get(imp.name, 0) + 1
    sole: dict[int, set[str]] = {}  # library -> symbols that are some user's only one from it
    for edges in res.edge_symbols:
        for lib, symbols in edges.items():
            if len(symbols) == 1:
                sole.setdefault(lib, set()).add(symbols[0])
    for idx in sorted(range(len(tree.files)), key=lambda i: tree.files[i].path):
        used = [s for s in sole.get(idx, ()) if 2 <= users.get(s, 0) <= 20 and s.isascii()]
        if used:
            name = max(sorted(used), key=len).encode()
            return Path(tree.files[idx].path), name, name[:-1] + (b"Y" if name[-1:] == b"Z" else b"Z")
    raise LookupError(f"{mdir}: no module exports a symbol as wanted")


def rename_export(data: bytes, name: bytes, renamed: bytes) -> bytes:
    """The module with its export ``name`` called ``renamed``: every string ending in the
    name (the symbol, ``__ksymtab_``, ``__kstrtab_``, ``__crc_`` and ``__ksymtab_strings``)."""
    return data.replace(name + b"\0", renamed + b"\0")


def pick_victim(mdir: Path) -> Path:
    """The first module (path order) with a srcversion and an alias."""
    for path in sorted(mdir.rglob("*.ko*")):
        data = module_bytes(path)
        if b"srcversion=" in data and b"alias=" in data:
            return path
    raise LookupError(f"{mdir}: no module with a srcversion and an alias")
