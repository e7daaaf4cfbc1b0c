"""kmod's rules for module names and where a kernel's modules live.

kmod builds a module directory as ``ROOT + MODULE_DIRECTORY + "/" + VERSION``
(tools/depmod.c and tools/modprobe.c; MODULE_DIRECTORY is a build option since
kmod 32, commit 9d1fb317c8db, and ``depmod -m`` overrides it since kmod 34,
commit c36ddb62c8ee).  Debian's kmod uses ``/lib/modules``; a merged-/usr
root keeps its modules in ``usr/lib/modules`` and reaches them through
``lib -> usr/lib`` when it has that link.  moddeps accepts both: a root with
``usr/lib/modules/VERSION`` and no ``lib/modules/VERSION`` is read (and, for
depmod, written) there, as ``depmod -m /usr/lib/modules`` does.
"""

from __future__ import annotations

import os

#: module directories under a root, in the order they are tried
MODULE_DIRECTORIES = ("lib/modules", "usr/lib/modules")

#: what a module file's name ends with (kmod shared/util.c kmod_exts[] of a kmod
#: built with zlib; Debian's build, -ZLIB, does not list ".ko.gz")
MODULE_SUFFIXES = (".ko", ".ko.gz", ".ko.xz", ".ko.zst")

#: kmod's PATH_MAX buffers (shared/util.c)
PATH_MAX = 4096


def modname_normalize(name: str) -> str:
    """kmod shared/util.c (modname_normalize): up to the first ``.``, ``-`` -> ``_``
    (at most PATH_MAX - 1 characters, as kmod's buffer)."""
    out = []
    for c in name[: PATH_MAX - 1]:
        if c in (".", "\0"):
            break
        out.append("_" if c == "-" else c)
    return "".join(out)


def path_to_modname(path: str) -> str | None:
    """kmod shared/util.c (path_to_modname): GNU basename, then :func:`modname_normalize`."""
    base = path[path.rfind("/") + 1 :]
    if not base:
        return None
    return modname_normalize(base)


def module_dirname(basedir: str, moduledir: str, version: str) -> str:
    """kmod: BASEDIR made absolute (cwd prepended, nothing normalised) + /MODULEDIR/ + VERSION."""
    if basedir:
        base = basedir if basedir.startswith("/") else os.path.join(os.getcwd(), basedir)
        base = base.rstrip("/")
    else:
        base = ""
    md = "/" + moduledir.strip("/") if moduledir.strip("/") else ""
    return f"{base}{md}/{version}"


def find_moduledir(basedir: str, version: str) -> str:
    """The module directory (``lib/modules`` or ``usr/lib/modules``) that holds
    ``VERSION`` under ``basedir``; ``lib/modules`` when neither does."""
    for moduledir in MODULE_DIRECTORIES:
        if os.path.isdir(module_dirname(basedir, moduledir, version)):
            return moduledir
    return MODULE_DIRECTORIES[0]


def find_module_dir(basedir: str, version: str) -> str:
    """``BASEDIR/lib/modules/VERSION``, or ``BASEDIR/usr/lib/modules/VERSION``
    when only that exists (a merged-/usr root without ``lib``)."""
    return module_dirname(basedir, find_moduledir(basedir, version), version)


def basedir_of(dirname: str) -> str | None:
    """The root above ``.../lib/modules/VERSION`` or ``.../usr/lib/modules/VERSION``
    (``""`` for ``/lib/modules/VERSION``), None for a directory elsewhere."""
    parent = os.path.dirname(os.path.abspath(dirname.rstrip("/") or "/"))
    for moduledir in ("/usr/lib/modules", "/lib/modules"):
        if parent == moduledir:
            return ""
        if parent.endswith(moduledir):
            return parent[: -len(moduledir)]
    return None


#: The configuration root of a tree outside ``[usr/]lib/modules``: a root that holds no
#: depmod.d or modprobe.d, so the host's configuration never applies to an unrelated tree
#: (the ``--html`` report shows it as that tree's basedir).
UNRELATED_TREE_BASEDIR = "/nonexistent-basedir"


def config_basedir(dirname: str, basedir: str | None = None) -> str:
    """The root whose depmod.d and modprobe.d apply to the tree ``dirname``: ``basedir``
    (``-b``) when given, else :func:`basedir_of`, else :data:`UNRELATED_TREE_BASEDIR`."""
    if basedir is not None:
        return basedir
    base = basedir_of(dirname)
    return UNRELATED_TREE_BASEDIR if base is None else base
