"""Which kmod release moddeps imitates, and what differs between them.

moddeps writes what one kmod release writes.  Releases 30 to 34 differ in a
few observable ways (each checked against the real binaries of Debian 12's
kmod 30 and Debian 13's kmod 34.2):

* kmod 34 writes the ``.bin`` trie nodes in pre-order, root first (kmod
  tools/depmod.c: index_write, commit dada048cbf57 "depmod: Write index in
  pre-order", first in v34); kmod 30 to 33 write them in post-order.
* kmod 34 places a module listed twice in ``modules.order`` at its first
  line; earlier releases at its last (tools/depmod.c: depmod_modules_sort,
  commit a1186faeac14, v34).
* kmod 33 and 34 always write ``modules.weakdep`` (commit 05828b4a6e93,
  v33), a header alone when no module declares a weak dependency.
* kmod 32 and later read ``/usr/lib/depmod.d`` too, between
  ``/usr/local/lib/depmod.d`` and ``/lib/depmod.d`` (commit 8463809f8a29, v32).
* kmod 32 and later read ``/usr/lib/modprobe.d`` too, before
  ``/lib/modprobe.d`` (the same commit 8463809f8a29, v32); kmod 30 and 31 do not.
* kmod 33 and later read only ``*.conf`` files from a modprobe.d directory
  (libkmod/libkmod-config.c: conf_files_filter_out, commit 29cc8c2e700d, v33);
  kmod 30 to 32 read ``*.alias`` files too.
* kmod 34 rejects ``-u``, ``-q``, ``-r`` and ``--map`` (commit af54b73a80e8,
  v34); kmod 30 to 33 accept them with "Ignored deprecated option".
* ``modinfo`` pads long field names differently before and after kmod 34.

The release is chosen, first match wins: an explicit value (the
``--kmod-version`` option), ``$MODDEPS_KMOD_VERSION``, the kmod package that
the target root has installed according to its package database (dpkg's
``var/lib/dpkg/status``, pacman's ``var/lib/pacman/local/kmod-*/desc``), else
:data:`DEFAULT`.  :func:`select` returns the choice with the reason, for
``-v``.
"""

from __future__ import annotations

import os

from .errors import UsageError
from .records import dataclass

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Mapping

#: the kmod releases whose output moddeps reproduces
SUPPORTED = (30, 31, 32, 33, 34)
#: the release imitated when nothing says otherwise: Debian 13, Fedora and Arch ship 34
DEFAULT = 34
ENV = "MODDEPS_KMOD_VERSION"

#: (patterns for :mod:`re`, imported only when one is needed: start-up)
_VALUE_RE = r"^\s*(?:kmod\s*)?(\d+)(?:\.\d+)*\s*$"
# Debian "30+20221128-1", "34.2-2+b2", with an optional epoch; pacman "34.2-1"
_PACKAGE_VERSION_RE = r"^(?:\d+:)?(\d+)"


@dataclass(frozen=True, slots=True)
class KmodTarget:
    """The kmod release to imitate, and why it was chosen."""

    version: int  # one of SUPPORTED
    reason: str  # e.g. "--kmod-version 30", "/var/lib/dpkg/status: kmod 34.2-2 installed"

    @property
    def preorder_index(self) -> bool:
        """``.bin`` nodes in pre-order (kmod >= 34)."""
        return self.version >= 34

    @property
    def order_first_wins(self) -> bool:
        """A module listed twice in modules.order takes its first position (kmod >= 34)."""
        return self.version >= 34

    @property
    def usr_lib_depmod_d(self) -> bool:
        """``/usr/lib/depmod.d`` is one of the default depmod.d directories (kmod >= 32)."""
        return self.version >= 32

    @property
    def usr_lib_modprobe_d(self) -> bool:
        """``/usr/lib/modprobe.d`` is a default modprobe.d directory, before ``/lib/modprobe.d`` (kmod >= 32)."""
        return self.version >= 32

    @property
    def modprobe_d_alias_files(self) -> bool:
        """A modprobe.d directory's ``*.alias`` files are read, not only ``*.conf`` (kmod <= 32)."""
        return self.version <= 32

    @property
    def always_weakdep(self) -> bool:
        """``modules.weakdep`` is written even when empty (kmod >= 33)."""
        return self.version >= 33

    @property
    def modprobe_weakdep(self) -> bool:
        """modprobe.d's ``weakdep`` lines and the module directory's ``modules.weakdep`` are read
        (kmod >= 33: libkmod/libkmod-config.c, kmod_config_parse and conf_files_list @v34.2);
        kmod 30-32 call a ``weakdep`` line bad and never open ``modules.weakdep``."""
        return self.version >= 33

    @property
    def rejects_deprecated_options(self) -> bool:
        """``-u -q -r --map`` are invalid options (kmod >= 34)."""
        return self.version >= 34

    def describe(self) -> str:
        return f"matching kmod {self.version} ({self.reason})"


def parse(value: str, origin: str = "--kmod-version", reason: str | None = None) -> KmodTarget:
    """``"34"``, ``"34.2"``, ``"kmod 33"`` -> a target; :class:`UsageError`
    (naming ``origin``) otherwise.  ``reason``: what ``-v`` says (default: ``origin value``)."""
    digits = value.strip()
    if digits.isascii() and digits.isdigit():  # the usual "34", as the pattern reads it
        major: int | None = int(digits)
    else:
        import re

        m = re.match(_VALUE_RE, value, re.IGNORECASE)
        major = int(m.group(1)) if m else None
    if major not in SUPPORTED:
        supported = ", ".join(map(str, SUPPORTED))
        raise UsageError(f"{origin}: unsupported kmod version {value!r} (supported: {supported})")
    return KmodTarget(major, reason or f"{origin} {value.strip()}")




def _dpkg_kmod(status_path: str) -> str | None:
    """The Version of an installed ``kmod`` package in a dpkg status file.

    Only kmod's own stanza is parsed: the file holds every package of the
    system (~0.7 MB, 3 ms to parse whole), and this runs on every depmod."""
    from .inputfiles import try_read

    data, _why = try_read(status_path)  # not there, not a regular file: no answer from dpkg
    if data is None:
        return None
    for opens, closes in _kmod_package_lines(data):
        start = data.rfind(b"\n\n", 0, opens) + 1  # the stanza's blank line before it, or the file's start
        end = data.find(b"\n\n", closes)
        stanza = data[start : end if end >= 0 else len(data)].decode("utf-8", "replace")
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            key, _, val = line.partition(":")
            fields[key.strip().lower()] = val.strip()
        # "install ok installed"; a removed package keeps "deinstall ok config-files"
        if fields.get("status", "").split()[-1:] != ["installed"]:
            continue
        version = fields.get("version")
        if version:
            return version
    return None


def _kmod_package_lines(data: bytes) -> list[tuple[int, int]]:
    """Where each line ``Package: kmod`` of a dpkg status file starts and ends: the field that
    opens kmod's stanza (field names in any case; blanks and tabs around the value)."""
    low = data.lower()  # ASCII only, as field names are
    found = []
    at = low.find(b"package:")
    while at >= 0:
        end = low.find(b"\n", at)
        end = len(low) if end < 0 else end
        if (at == 0 or low[at - 1] == 0x0A) and low[at + 8 : end].strip(b" \t") == b"kmod":
            found.append((at, end))
        at = low.find(b"package:", end)
    return found


def _pacman_kmod(local_dir: str) -> str | None:
    """The %VERSION% of pacman's local ``kmod`` package entry."""
    from .inputfiles import try_read

    try:
        names = os.listdir(local_dir)
    except OSError:
        return None
    for name in sorted(names):
        if not name.startswith("kmod-"):
            continue
        data, _why = try_read(os.path.join(local_dir, name, "desc"))
        if data is None:
            continue
        lines = data.decode("utf-8", "replace").splitlines()
        fields: dict[str, str] = {}
        for i, line in enumerate(lines[:-1]):
            if line.startswith("%") and line.endswith("%"):
                fields[line.strip("%")] = lines[i + 1].strip()
        if fields.get("NAME") == "kmod" and fields.get("VERSION"):
            return fields["VERSION"]
    return None


def installed(root: str) -> KmodTarget | None:
    """The kmod release that ``root``'s package database says is installed.

    A release outside :data:`SUPPORTED` is mapped to the nearest one (an older
    kmod to 30, a newer one to 34) and the reason says so.
    """
    base = root.rstrip("/") if root else ""
    found: list[tuple[str, str | None]] = [
        (f"{base}/var/lib/dpkg/status", _dpkg_kmod(f"{base}/var/lib/dpkg/status")),
        (f"{base}/var/lib/pacman/local", _pacman_kmod(f"{base}/var/lib/pacman/local")),
    ]
    for where, version in found:
        if version is None:
            continue
        import re

        m = re.match(_PACKAGE_VERSION_RE, version)
        if m is None:
            continue
        major = int(m.group(1))
        reason = f"{where}: kmod {version} installed"
        if major < SUPPORTED[0]:
            return KmodTarget(SUPPORTED[0], f"{reason}; the oldest kmod moddeps matches is {SUPPORTED[0]}")
        if major > SUPPORTED[-1]:
            return KmodTarget(SUPPORTED[-1], f"{reason}; the newest kmod moddeps matches is {SUPPORTED[-1]}")
        return KmodTarget(major, reason)
    return None


def select(explicit: str | int | None, root: str | None, environ: Mapping[str, str] | None = None) -> KmodTarget:
    """The kmod release to imitate: ``explicit``, ``$MODDEPS_KMOD_VERSION``,
    the one installed under ``root`` (``""`` or None: ``/``), else :data:`DEFAULT`."""
    if explicit is not None and str(explicit).strip():
        return parse(str(explicit), "--kmod-version")
    env = os.environ if environ is None else environ
    value = env.get(ENV, "")
    if value.strip():
        return parse(value, f"${ENV}", f"${ENV}={value.strip()}")
    got = installed(root or "/")
    if got is not None:
        return got
    where = (root or "/").rstrip("/") or "/"
    return KmodTarget(DEFAULT, f"no kmod package found in {where}'s dpkg or pacman database; the default")
