"""Synthetic module trees that exercise kmod 30 depmod's corner cases.

Each :class:`Case` materialises a small tree under a root directory (module
files, ``modules.order``, ``modules.builtin*``, depmod.d files in
``ROOT/config``, ``Module.symvers`` / ``System.map``) and lists the depmod
invocations to run on it (usually one; ``-A`` cases run several steps).

The expectations in ``tests/data/depmod_cases/<case>/`` are produced by the
REAL kmod 30 ``depmod`` (``python tests/regen_depmod_cases.py``) and checked
against ``moddeps depmod`` by ``tests/test_depmod_cases.py`` (offline) and
``tests/conformance/test_depmod_cases_live.py`` (live, both tools).

Conventions
-----------
* ``@ROOT@`` in arguments, config text and file contents stands for the root
  directory.  Roots are always ``/tmp/mdcase-XXXXXXXX`` (:func:`make_root`):
  their *length* is fixed, so the offsets inside ``.bin`` files that contain
  absolute paths (external modules) are the same in every run, and replacing
  the root by ``@ROOT@`` gives comparable bytes.
* Every case passes ``-C`` (``ROOT/config``, empty unless the case has
  depmod.d files): kmod reads the host's ``/etc/depmod.d`` even under
  ``-b`` while moddeps reads ``BASEDIR/etc/depmod.d`` (deliberate difference 3).
  The exception are the ``host_config`` cases, which test the default
  directories themselves: they pass no ``-C`` and keep their depmod.d files
  under ROOT (``ROOT/etc/depmod.d``, ``ROOT/usr/lib/depmod.d``...), where
  moddeps reads them; kmod runs chrooted in a skeleton root whose default
  directories are links to those (:func:`host_config_argv`: needs root, a
  private mount namespace through ``unshare``, and ``chroot``), so it reads
  the same files.  kmod names them without ROOT, so these cases hold no
  line kmod would report.
* No case contains ``.ko.gz``: Debian's kmod 30 is built without zlib and
  ignores those files, moddeps reads them (deliberate difference 1).
* ``weakdep=`` modinfo: moddeps also writes kmod 33's ``modules.weakdep``,
  kmod 30 does not (deliberate difference 2); such a case names the extra file
  and its expected bytes in :attr:`Case.moddeps_extra`.
* Cycle shapes on which kmod 30's report loops forever (see
  docs/depmod-outputs.md#cycles) are "moddeps-only": regen records the timeout, and the tests check
  that moddeps exits 1, writes nothing and names every cycle
  (:attr:`Case.cycles`) (deliberate difference 4).
* ``live_only`` cases depend on readdir order (same-priority duplicates);
  they are only run by the live conformance test, where both tools see the
  same directory.
* moddeps' ``-o OUTDIR`` is kmod 31's; kmod 30 has no ``-o``.  The ``-o`` case
  runs kmod without it and expects moddeps to write the very same files under
  OUTDIR and nothing in the module directory.
* moddeps' ``-m`` is kmod 34's ``--moduledir`` (kmod 30's ``-m`` is an ignored
  deprecated flag), so no case uses ``-m``.

The harness (materialise, run, snapshot, normalise, record, compare) is here
too, shared by the regen script and both tests.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.kobuild import Export, Sym, build_ko, compress, corrupt_header, corrupt_section, truncate

VERSION = "6.1.0-test"
ROOT = "@ROOT@"
DATA_DIR = Path(__file__).parent / "data" / "depmod_cases"
#: the kmod releases whose results are recorded: kmod 30 in DATA_DIR, others in DATA_DIR_<release>
RELEASES = (30, 34)
#: an extracted kmod 34.2 with its C library (dpkg -x of Debian 13's kmod, libkmod2, libc6,
#: liblzma5, libzstd1, libssl3t64), run through that libc's dynamic loader
KMOD34_ENV = "MODDEPS_KMOD34_ROOT"
KMOD_TIMEOUT = 10.0
ROOT_PREFIX = "mdcase-"
ROOT_PARENT = "/tmp"


# --------------------------------------------------------------------------
# Building trees
# --------------------------------------------------------------------------


def crc_of(name: str) -> int:
    return zlib.crc32(name.encode()) & 0xFFFFFFFF


def mod(
    *,
    exports: Sequence[str | Export] = (),
    needs: Sequence[str | tuple[str, bool]] = (),
    aliases: Sequence[str] = (),
    softdeps: Sequence[str] = (),
    modinfo: Sequence[tuple[str, str] | str | bytes] = (),
    crcs: bool = True,
    versions: Sequence[tuple[str, int]] | None = None,
    license: str | None = "GPL",
    **kw: object,
) -> bytes:
    """A module: ``exports`` (names get a CRC = crc32(name) unless ``crcs`` is
    false, which sends depmod to the ``__ksymtab_strings`` fallback),
    ``needs`` (undefined symbols; ``(name, True)`` is weak), ``aliases`` and
    ``softdeps`` modinfo entries, then raw ``modinfo`` items.  ``versions``
    defaults to one ``__versions`` record per needed symbol with
    CRC = crc32(name), as modpost writes them."""
    exps = [
        x if isinstance(x, Export) else Export(name=x, crc=crc_of(x) if crcs else None) for x in exports
    ]
    info: list[tuple[str, str] | str | bytes] = []
    if license is not None:
        info.append(("license", license))
    info += [("alias", a) for a in aliases]
    info += [("softdep", s) for s in softdeps]
    info += list(modinfo)
    if versions is None:
        versions = [((n if isinstance(n, str) else n[0]), crc_of(n if isinstance(n, str) else n[0])) for n in needs]
    return build_ko(exports=exps, undefined=list(needs), modinfo=info, versions=list(versions), **kw)  # type: ignore[arg-type]


class Tree:
    """A case's root directory: ``lib/modules/VERSION`` and ``config``."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.dirname = f"{root}/lib/modules/{VERSION}"
        self.config = f"{root}/config"
        os.makedirs(self.dirname, exist_ok=True)
        os.makedirs(self.config, exist_ok=True)

    def sub(self, text: str) -> str:
        return text.replace(ROOT, self.root)

    def put_abs(self, rel: str, data: bytes | str) -> str:
        """A file at ROOT/rel (``@ROOT@`` in str data is substituted)."""
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(self.sub(data).encode() if isinstance(data, str) else data)
        return path

    def put(self, rel: str, data: bytes | str) -> str:
        """A file under the module directory."""
        return self.put_abs(f"lib/modules/{VERSION}/{rel}", data)

    def ko(self, rel: str, data: bytes | None = None, *, raw: bool = False, **kw: object) -> str:
        """A module file under the module directory, compressed according to
        its extension (``.ko.xz``, ``.ko.zst``) unless ``raw``."""
        if data is None:
            data = mod(**kw)  # type: ignore[arg-type]
        if not raw:
            if rel.endswith(".xz"):
                data = compress(data, "xz")
            elif rel.endswith(".zst"):
                data = compress(data, "zst")
        return self.put(rel, data)

    def ko_abs(self, rel: str, data: bytes | None = None, **kw: object) -> str:
        """A module file at ROOT/rel (external directories)."""
        if data is None:
            data = mod(**kw)  # type: ignore[arg-type]
        return self.put_abs(rel, data)

    def order(self, text: str | bytes) -> None:
        self.put("modules.order", text)

    def conf(self, name: str, text: str) -> str:
        return self.put_abs(f"config/{name}", text)

    def default_conf(self, directory: str, name: str, text: str) -> str:
        """A depmod.d file in a default directory (``/usr/lib/depmod.d``) under ROOT
        (``host_config`` cases)."""
        assert directory in HOST_CONFIG_DIRS, directory
        return self.put_abs(f"{directory.lstrip('/')}/{name}", text)

    def symlink(self, target: str, rel: str) -> None:
        path = os.path.join(self.dirname, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(target, path)


def std(*opts: str, files: Sequence[str] = ()) -> tuple[str, ...]:
    """``-b ROOT -C ROOT/config OPTS VERSION FILES``."""
    return ("-b", ROOT, "-C", f"{ROOT}/config", *opts, VERSION, *files)


def default_config(*opts: str) -> tuple[str, ...]:
    """``-b ROOT OPTS VERSION``: the default depmod.d directories (``host_config`` cases)."""
    return ("-b", ROOT, *opts, VERSION)


@dataclass(frozen=True)
class Step:
    """One depmod invocation.  ``before`` runs first (on the tree as left by
    the previous step).  ``cwd`` is relative to the root."""

    args: tuple[str, ...]
    before: Callable[[Tree], None] | None = None
    cwd: str = ""


@dataclass(frozen=True)
class Case:
    name: str
    doc: str
    build: Callable[[Tree], None]
    steps: tuple[Step, ...]
    live_only: bool = False
    moddeps_extra: Mapping[str, bytes] = field(default_factory=dict)
    cycles: tuple[frozenset[str], ...] = ()
    host_config: bool = False  # kmod sees ROOT's default depmod.d directories as its own


CASES: dict[str, Case] = {}


def case(
    *args: str,
    steps: Sequence[Step] | None = None,
    live_only: bool = False,
    moddeps_extra: Mapping[str, bytes] | None = None,
    cycles: Sequence[Sequence[str]] = (),
    host_config: bool = False,
) -> Callable[[Callable[[Tree], None]], Callable[[Tree], None]]:
    """Register the decorated builder as a case named after it (minus ``c_``);
    ``args`` are extra depmod options (see :func:`std`, and :func:`default_config`
    for ``host_config`` cases)."""

    def deco(fn: Callable[[Tree], None]) -> Callable[[Tree], None]:
        name = fn.__name__.removeprefix("c_")
        assert name not in CASES, name
        default = default_config(*args) if host_config else std(*args)
        st = tuple(steps) if steps is not None else (Step(default),)
        CASES[name] = Case(
            name, (fn.__doc__ or "").strip(), fn, st, live_only, dict(moddeps_extra or {}),
            tuple(frozenset(c) for c in cycles), host_config,
        )
        return fn

    return deco


# --------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------

# A small stack used by several cases: base <- mid <- top, plus leaf (no deps).


def _stack(t: Tree, d: str = "kernel") -> None:
    t.ko(f"{d}/base.ko", exports=["base_fn", "base_data"], aliases=["base-alias"])
    t.ko(f"{d}/mid.ko", exports=["mid_fn"], needs=["base_fn", "printk"])
    t.ko(f"{d}/top.ko", needs=["mid_fn", "base_data"], aliases=["pci:v00001234d*"])
    t.ko(f"{d}/leaf.ko", needs=["printk"])


# ---- modules.order -------------------------------------------------------


@case()
def c_order_full(t: Tree) -> None:
    """Every module listed in modules.order."""
    _stack(t)
    t.order("kernel/top.ko\nkernel/leaf.ko\nkernel/base.ko\nkernel/mid.ko\n")


@case()
def c_order_partial(t: Tree) -> None:
    """Only some modules listed: the rest follow in 512-bucket hash order (docs/depmod-outputs.md#hash-order)."""
    _stack(t)
    for n in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"):
        t.ko(f"kernel/misc/{n}.ko", needs=["base_fn"])
    t.order("kernel/misc/echo.ko\nkernel/mid.ko\n")


@case()
def c_order_duplicate(t: Tree) -> None:
    """A module listed twice: kmod 30 uses its last occurrence (docs/depmod-outputs.md#modulesorder)."""
    _stack(t)
    t.order("kernel/base.ko\nkernel/mid.ko\nkernel/top.ko\nkernel/base.ko\nkernel/leaf.ko\n")


@case()
def c_order_nonexistent(t: Tree) -> None:
    """Lines naming no module (unknown, blank, CR, ./ prefix, full .xz name) are ignored."""
    _stack(t)
    t.ko("kernel/comp.ko.xz", needs=["mid_fn"])
    t.order(
        "kernel/nothere.ko\n\nkernel/leaf.ko\r\n./kernel/mid.ko\nkernel/comp.ko.xz\n"
        "kernel/top.ko\n/kernel/base.ko\nkernel/base.ko \nkernel/mid.ko\n"
    )


@case()
def c_order_compressed_match(t: Tree) -> None:
    """modules.order names the uncompressed path (kernel/x.ko) of .ko.xz / .ko.zst modules."""
    t.ko("kernel/zz.ko.xz", exports=["zz_fn"])
    t.ko("kernel/yy.ko.zst", needs=["zz_fn"])
    t.ko("kernel/xx.ko", needs=["zz_fn"])
    t.order("kernel/yy.ko\nkernel/zz.ko\nkernel/xx.ko\n")


@case()
def c_order_missing(t: Tree) -> None:
    """No modules.order: warning, hash order."""
    _stack(t)


@case()
def c_order_empty(t: Tree) -> None:
    """An empty modules.order: no reordering, no message."""
    _stack(t)
    t.order("")


@case()
def c_order_no_final_newline(t: Tree) -> None:
    """Last line without newline: 'corrupted line' error, no reordering at all."""
    _stack(t)
    t.order("kernel/top.ko\nkernel/leaf.ko\nkernel/base.ko\nkernel/mid.ko")


@case()
def c_order_dotted_name(t: Tree) -> None:
    """kernel/foo.bar.ko has uncrelpath kernel/foo.ba
    (docs/depmod-outputs.md#module-names); foo.ko.bar.ko likewise odd."""
    t.ko("kernel/foo.bar.ko", exports=["foo_fn"])
    t.ko("kernel/sub/baz.qux.ko", needs=["foo_fn"])
    t.ko("kernel/plain.ko", needs=["foo_fn"])
    t.ko("kernel/other.x.ko", needs=["foo_fn"])
    t.order("kernel/plain.ko\nkernel/sub/baz.qu\nkernel/foo.ba\nkernel/other.x.ko\n")


# kmod reads modules.order with fgets into a 4096-byte buffer: one call per line number, a
# piece not ending in its newline before its first NUL is a corrupted line.


@case()
def c_order_line_4094(t: Tree) -> None:
    """A line of 4094 bytes fits kmod's buffer with its newline: no error, the order applies."""
    _stack(t)
    t.order(b"kernel/top.ko\n" + b"x" * 4094 + b"\nkernel/leaf.ko\nkernel/base.ko\nkernel/mid.ko\n")


@case()
def c_order_line_4095(t: Tree) -> None:
    """A line of 4095 bytes fills kmod's buffer without its newline: 'corrupted line' at that
    line, no reordering at all."""
    _stack(t)
    t.order(b"kernel/top.ko\n" + b"x" * 4095 + b"\nkernel/leaf.ko\nkernel/base.ko\nkernel/mid.ko\n")


@case()
def c_order_line_long(t: Tree) -> None:
    """A line of 8996 bytes on line 3: 'corrupted line' at 3, no reordering."""
    _stack(t)
    t.order(b"kernel/leaf.ko\nkernel/mid.ko\n" + b"kernel/" * 1285 + b"x\nkernel/top.ko\n")


@case()
def c_order_nul_in_line(t: Tree) -> None:
    """A NUL after a line's first byte: 'corrupted line' at that line, no reordering."""
    _stack(t)
    t.order(b"kernel/top.ko\nkernel/leaf.ko\0x\nkernel/base.ko\nkernel/mid.ko\n")


@case()
def c_order_nul_first(t: Tree) -> None:
    """A line starting with NUL is skipped (it names nothing), and so is a last line holding
    only a NUL without newline: no error, the other lines order the array."""
    _stack(t)
    t.order(b"kernel/top.ko\n\0kernel/leaf.ko\nkernel/base.ko\nkernel/mid.ko\n\0")


@case()
def c_order_nul_first_long(t: Tree) -> None:
    """A line starting with NUL and longer than the buffer: its first 4095 bytes are skipped and
    the rest is read as a line of its own, which here names leaf."""
    _stack(t)
    t.order(b"kernel/mid.ko\n\0" + b"a" * 4094 + b"kernel/leaf.ko\nkernel/top.ko\n")


@case()
def c_order_corrupt_numbering(t: Tree) -> None:
    """Line numbers count kmod's reads: a long NUL-first line counts twice, so the NUL-holding
    line, the fifth of the file, is reported as line 6, and the lines after it are not read; a
    module listed twice before it changes nothing (kmod 34 numbers the lines before it, then
    sorts nothing)."""
    _stack(t)
    t.order(b"kernel/top.ko\n\0" + b"y" * 5000 + b"\nkernel/leaf.ko\nkernel/top.ko\nbad\0x\n"
            b"kernel/base.ko\0\n" + b"z" * 5000 + b"\n")


# ---- duplicate exporters ---------------------------------------------------


def _dup_exporters(t: Tree, order: str) -> None:
    t.ko("kernel/expa.ko", exports=["shared_sym", "only_a"])
    t.ko("kernel/expb.ko", exports=["shared_sym", "only_b"])
    t.ko("kernel/user.ko", needs=["shared_sym"])
    t.order(order)


@case()
def c_dup_exporters_ab(t: Tree) -> None:
    """Two exporters of one symbol: the later one in the array (expb) owns it (docs/depmod-outputs.md#symbol-table)."""
    _dup_exporters(t, "kernel/expa.ko\nkernel/expb.ko\nkernel/user.ko\n")


@case()
def c_dup_exporters_ba(t: Tree) -> None:
    """Same, the other order: expa owns it."""
    _dup_exporters(t, "kernel/expb.ko\nkernel/expa.ko\nkernel/user.ko\n")


@case()
def c_dup_exporters_unlisted(t: Tree) -> None:
    """Duplicate exporters not in modules.order: hash order decides."""
    _dup_exporters(t, "kernel/user.ko\n")


# ---- export discovery ---------------------------------------------------------


@case()
def c_ksymtab_strings_fallback(t: Tree) -> None:
    """No __crc_ symbols: exports come from __ksymtab_strings, namespace strings included
    (docs/depmod-outputs.md#what-depmod-reads-of-a-module)."""
    t.ko("kernel/nsexp.ko", exports=[Export(name="ns_fn", namespace="MY_NS"), Export(name="plain_fn")], crcs=False)
    # namespaced export with CRCs: the namespace is not an export on this path
    t.ko("kernel/nscrc.ko", exports=[Export(name="crc_ns_fn", namespace="OTHER_NS", crc=5)])
    t.ko("kernel/nsuser.ko", needs=["ns_fn", "MY_NS", "OTHER_NS", "crc_ns_fn"])
    t.ko("kernel/plainuser.ko", needs=["plain_fn"])
    t.order("kernel/nsexp.ko\nkernel/nscrc.ko\nkernel/nsuser.ko\nkernel/plainuser.ko\n")


@case()
def c_crc_abs_and_mixed(t: Tree) -> None:
    """Pre-5.19 ABS __crc_ symbols; a module where only some exports have a CRC
    (only those count: __crc_ wins over __ksymtab_strings)."""
    t.ko("kernel/absexp.ko", data=mod(exports=["abs_a", "abs_b"], crc_mode="abs"))
    t.ko("kernel/mixed.ko", exports=[Export(name="with_crc", crc=1), Export(name="without_crc")])
    t.ko("kernel/user.ko", needs=["abs_a", "abs_b", "with_crc", "without_crc"])
    t.order("kernel/absexp.ko\nkernel/mixed.ko\nkernel/user.ko\n")


@case()
def c_no_symtab(t: Tree) -> None:
    """A module without .symtab: exports from __ksymtab_strings, no requirements."""
    t.ko("kernel/nosym.ko", exports=["nosym_a", "nosym_b"], needs=["leaf_fn"], with_symtab=False)
    t.ko("kernel/leafx.ko", exports=["leaf_fn"])
    t.ko("kernel/user.ko", needs=["nosym_b"])
    t.order("kernel/nosym.ko\nkernel/leafx.ko\nkernel/user.ko\n")


@case()
def c_strtab_truncated(t: Tree) -> None:
    """.strtab cut short: names beyond it make kmod drop all requirements and
    fall back to __ksymtab_strings for exports (docs/depmod-outputs.md#what-depmod-reads-of-a-module)."""
    good = mod(exports=["cut_fn", "cut_other"], needs=["base_fn"])
    t.ko("kernel/cut.ko", data=corrupt_section(good, ".strtab", size=4))
    t.ko("kernel/base.ko", exports=["base_fn"])
    t.ko("kernel/user.ko", needs=["cut_other"])
    t.order("kernel/cut.ko\nkernel/base.ko\nkernel/user.ko\n")


@case()
def c_versions_only(t: Tree) -> None:
    """__versions entries without a matching undefined symbol still create
    dependencies; a __versions of the wrong size is ignored (docs/depmod-outputs.md#what-depmod-reads-of-a-module)."""
    t.ko("kernel/exp.ko", exports=["v_only", "u_sym"])
    t.ko("kernel/vuser.ko", data=mod(needs=["u_sym"], versions=[("module_layout", 1), ("v_only", crc_of("v_only"))]))
    bad = mod(needs=[], versions=[("v_only", 1)])
    bad = corrupt_section(bad, "__versions", size=60)
    t.ko("kernel/badver.ko", data=bad)
    t.order("kernel/exp.ko\nkernel/vuser.ko\nkernel/badver.ko\n")


# ---- weak symbols, -e ---------------------------------------------------------


def _weak(t: Tree) -> None:
    t.ko("kernel/provider.ko", exports=["strong_sym", "weak_sym"])
    t.ko("kernel/weakuser.ko", needs=[("weak_sym", True), ("weak_missing", True), "strong_sym", "missing_sym"])
    t.put_abs("System.map", "ffffffff81000000 T _text\nffffffff82000000 r __ksymtab_printk\n")
    t.order("kernel/provider.ko\nkernel/weakuser.ko\n")


@case()
def c_weak_plain(t: Tree) -> None:
    """Weak undefined symbols create edges when resolved; nothing printed."""
    _weak(t)


@case("-e", "-F", f"{ROOT}/System.map")
def c_weak_eF(t: Tree) -> None:
    """-e -F: unknown non-weak symbols warned about, weak ones not."""
    _weak(t)


@case("-e")
def c_e_without_EF(t: Tree) -> None:
    """-e alone: '-e needs -E or -F' and no unknown-symbol warnings."""
    _weak(t)


@case("-e", "-F", f"{ROOT}/System.map")
def c_system_map(t: Tree) -> None:
    """-e -F System.map: __ksymtab_ names are kernel symbols; a short line is an
    error that ends in a blank line; __this_module and _GLOBAL_OFFSET_TABLE_ are known."""
    t.put_abs(
        "System.map",
        "ffffffff81000000 T _text\n"
        "ffffffff82000000 r __ksymtab_printk\n"
        "ffffffff82000010 r __ksymtab_kmalloc\n"
        "badline\n"
        "ffffffff82000020 R __ksymtab_gpl_only\n"
        "ffffffff82000030 r __kstrtab_kfree\n"
        "only one\n"
        "ffffffff82000040 r __ksymtab_mod_dup\n",
    )
    t.ko("kernel/a.ko", exports=["mod_dup", "a_fn"],
         needs=["printk", "kmalloc", "kfree", "gpl_only", "__this_module", "_GLOBAL_OFFSET_TABLE_", "no_such"])
    t.ko("kernel/b.ko", needs=["mod_dup", "a_fn", "vfree", ".printk"])
    t.order("kernel/a.ko\nkernel/b.ko\n")


def _symvers(t: Tree, extra: str = "") -> None:
    t.put_abs(
        "Module.symvers",
        "0x11111111\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n"
        "0x22222222\tkmalloc\tvmlinux\tEXPORT_SYMBOL\t\n"
        "0x33333333\tweakk\tvmlinux\tEXPORT_SYMBOL\t\n"
        "0x44444444\tthreefields\tvmlinux\n"
        "0x55555555\tinmodule\tdrivers/foo\tEXPORT_SYMBOL\t\n"
        "12345678 nohex vmlinux EXPORT_SYMBOL\n"
        "-0x5\tnegative\tvmlinux\tEXPORT_SYMBOL\n"
        "short line\n"
        + extra +
        "0x66666666\tshared\tvmlinux\tEXPORT_SYMBOL_GPL\t\n",
    )
    t.ko("kernel/exp.ko", data=mod(exports=[Export(name="mexp", crc=0xAAAA), Export(name="shared", crc=0xBBBB)]))
    t.ko("kernel/user.ko", data=mod(
        needs=["printk", "kmalloc", ("weakk", True), "badcrc", "threefields", "inmodule", "nohex", "mexp", "shared",
               "unknown_one", "negative"],
        versions=[("printk", 0x11111111), ("kmalloc", 0x99), ("weakk", 0x1), ("mexp", 0xAAAB), ("shared", 0xBBBB),
                  ("nohex", 0x12345678), ("module_layout", 0x1234), ("negative", 0xFFFFFFFFFFFFFFFB)],
    ))
    t.order("kernel/exp.ko\nkernel/user.ko\n")


_BAD_SYMVERS = (
    "0xzz\tbadcrc\tvmlinux\tEXPORT_SYMBOL\t\n"
    "0x1ffffffffffffffffzz\toverflow\tvmlinux\tEXPORT_SYMBOL\n"
    "0xqq\tafter_overflow\tvmlinux\tEXPORT_SYMBOL\n"
    "0x\tbare_0x\tvmlinux\tEXPORT_SYMBOL\n"
)


@case("-e", "-E", f"{ROOT}/Module.symvers")
def c_symvers_crc(t: Tree) -> None:
    """-e -E Module.symvers: CRC mismatches against kernel and module exports
    (a module export replaces a kernel entry), weak mismatch silent, unknown
    symbols, 3-field lines ('vmlinux\\n'), non-vmlinux lines, a negative CRC."""
    _symvers(t)


@case("-E", f"{ROOT}/Module.symvers")
def c_symvers_no_e(t: Tree) -> None:
    """-E without -e: the CRC check runs silently."""
    _symvers(t)


@case("-e", "-E", f"{ROOT}/Module.symvers")
def c_symvers_errno_enoent(t: Tree) -> None:
    """'Invalid symbol version VER: %m' prints a stale errno (strtoull does not
    set it for junk): 'No such file or directory' left by libkmod's kmod_new
    failing to open DIRNAME/modules.softdep; after a hex overflow 'Numerical
    result out of range' sticks for the rest of the file."""
    _symvers(t, _BAD_SYMVERS)


@case("-e", "-E", f"{ROOT}/Module.symvers")
def c_symvers_errno_success(t: Tree) -> None:
    """The same with a modules.softdep already present: the stale errno is 0, 'Success'."""
    _symvers(t, _BAD_SYMVERS)
    t.put("modules.softdep", "# old\n")


@case("-P", "_", "-e", "-F", f"{ROOT}/System.map")
def c_prefix_P(t: Tree) -> None:
    """-P _: one leading '_' stripped from exports, lookups and System.map names."""
    t.put_abs("System.map", "0 r ___ksymtab_kfn\n0 r __ksymtab_plain\n")
    t.ko("kernel/pexp.ko", exports=["_pfn", "__dbl", "noprefix"])
    t.ko("kernel/puser.ko", needs=["_pfn", "pfn", "_dbl", "__dbl", "_noprefix", "kfn", "_kfn", "_plain", "plain"])
    t.order("kernel/pexp.ko\nkernel/puser.ko\n")


@case("-P", "_")
def c_prefix_P_only(t: Tree) -> None:
    """-P _ without a kernel symbol list."""
    t.ko("kernel/pexp.ko", exports=["_pfn", "__dbl", "noprefix"])
    t.ko("kernel/puser.ko", needs=["_pfn", "pfn", "_dbl", "_noprefix"])
    t.order("kernel/pexp.ko\nkernel/puser.ko\n")


# ---- priorities and depmod.d ------------------------------------------------


@case()
def c_prio_default_updates(t: Tree) -> None:
    """Default search list [updates]: updates/ beats kernel/ and extra/."""
    t.ko("kernel/drv/dup1.ko", exports=["dup1_k"])
    t.ko("updates/dup1.ko", exports=["dup1_u"])
    t.ko("extra/dup2.ko", exports=["dup2_e"])
    t.ko("updates/sub/dup2.ko", exports=["dup2_u"])
    t.ko("kernel/user.ko", needs=["dup1_k", "dup1_u", "dup2_e", "dup2_u"])
    t.order("kernel/drv/dup1.ko\nkernel/user.ko\nextra/dup2.ko\n")


@case()
def c_prio_search(t: Tree) -> None:
    """search extra updates built-in: extra > updates > everything else."""
    t.conf("search.conf", "search extra updates built-in\n")
    for d in ("kernel", "updates", "extra"):
        t.ko(f"{d}/three.ko", exports=[f"three_{d}"])
    t.ko("kernel/two.ko", exports=["two_kernel"])
    t.ko("updates/two.ko", exports=["two_updates"])
    t.ko("updates/ue.ko", exports=["ue_updates"])
    t.ko("extra/ue.ko", exports=["ue_extra"])
    t.order("kernel/three.ko\nkernel/two.ko\n")


@case()
def c_prio_search_no_builtin(t: Tree) -> None:
    """search list without built-in: unmatched dirs get -1 like the others; a
    trailing slash never matches; several search lines across two files."""
    t.conf("a.conf", "search updates/\nsearch vendor\n")
    t.conf("b.conf", "search updates\n")
    t.ko("vendor/x.ko", exports=["x_vendor"])
    t.ko("updates/x.ko", exports=["x_updates"])
    t.ko("kernel/y.ko", exports=["y_kernel"])
    t.ko("updates/y.ko", exports=["y_updates"])
    t.order("")


@case()
def c_override_underscore_dash(t: Tree) -> None:
    """override compares the file name's characters: 'foo_bar' misses foo-bar.ko,
    'baz-qux' hits baz-qux.ko; subdirectory overrides need the full reldir."""
    t.conf(
        "ov.conf",
        "override foo_bar * kernel\n"
        "override baz-qux * kernel\n"
        "override deep * kernel/drivers/net\n"
        "override notver 5.* kernel\n"
        "override yesver ^6\\.1 kernel\n",
    )
    for d in ("kernel", "updates"):
        t.ko(f"{d}/foo-bar.ko", exports=[f"foobar_{d}"])
        t.ko(f"{d}/baz-qux.ko", exports=[f"bazqux_{d}"])
        t.ko(f"{d}/notver.ko", exports=[f"notver_{d}"])
        t.ko(f"{d}/yesver.ko", exports=[f"yesver_{d}"])
    t.ko("kernel/drivers/net/deep.ko", exports=["deep_kernel"])
    t.ko("updates/deep.ko", exports=["deep_updates"])
    t.order("kernel/foo-bar.ko\n")


@case()
def c_override_competing(t: Tree) -> None:
    """Two overrides for one module: the last line wins (override foo * extra, then zz)."""
    t.conf("ov.conf", "override foo * extra\noverride foo * zz\noverride bar * extra\n")
    t.conf("ov2.conf", "override bar * kernel\n")
    for d in ("kernel", "extra", "zz", "updates"):
        t.ko(f"{d}/foo.ko", exports=[f"foo_{d}"])
    for d in ("kernel", "extra", "updates"):
        t.ko(f"{d}/bar.ko", exports=[f"bar_{d}"])
    t.order("")


@case()
def c_exclude(t: Tree) -> None:
    """exclude NAME skips entries of that exact name at every depth (dirs and files);
    a value with '/' never matches; build/ and source/ are always skipped."""
    t.conf("ex.conf", "exclude skipdir gone.ko\nexclude kernel/also.ko\n")
    t.ko("kernel/skipdir/a.ko", exports=["a_fn"])
    t.ko("kernel/deep/skipdir/b.ko", exports=["b_fn"])
    t.ko("kernel/gone.ko", exports=["gone_fn"])
    t.ko("kernel/sub/gone.ko", exports=["gone_sub"])
    t.ko("kernel/also.ko", exports=["also_fn"])
    t.ko("kernel/keep.ko", needs=["a_fn", "b_fn", "gone_fn", "also_fn", "bld_fn"])
    t.ko("build/bld.ko", exports=["bld_fn"])
    t.ko("kernel/source/src.ko", exports=["src_fn"])
    t.ko("kernel/build/bld2.ko", exports=["bld2_fn"])
    t.order("kernel/keep.ko\n")


@case(steps=[Step(("-b", ROOT, "-C", f"{ROOT}/config", "-C", f"{ROOT}/other", VERSION))])
def c_config_dir_multi(t: Tree) -> None:
    """A config directory with several files (sorted by name), ignored names,
    a sub-directory, bad lines, backslash escapes and continuations, include
    and make_map_files; plus a second -C path that is a single file."""
    t.conf("20-second.conf", "search extra\n  # indented hash is a command\nbogus line here\n")
    t.conf("10-first.conf",
           "# comment\n\n   \t\nsearch up\\\ndates\ninclude /nowhere\nmake_map_files\n"
           "override\noverride a\noverride a b\nexternal 6.1\nsearch x # not a comment\nexclude \\s\\kip.ko\n")
    t.conf("README", "garbage\n")
    t.conf(".hidden.conf", "garbage\n")
    t.conf("x.con", "garbage\n")
    t.conf(".conf", "garbage\n")
    os.makedirs(f"{t.config}/sub.conf", exist_ok=True)
    t.put_abs("config/sub.conf/inner.conf", "garbage\n")
    t.put_abs("other/30-third.conf", "bad3\nsearch kernel\n")
    t.put_abs("other/10-first.conf", "shadowed\n")
    for d in ("kernel", "extra", "updates"):
        t.ko(f"{d}/m.ko", exports=[f"m_{d}"])
    t.ko("kernel/skip.ko", exports=["skip_fn"])
    t.ko("extra/n.ko", exports=["n_extra"])
    t.ko("kernel/n.ko", exports=["n_kernel"])
    t.order("")


@case(steps=[Step(("-b", ROOT, "-C", f"{ROOT}/no/such/dir", "-C", f"{ROOT}/config", VERSION))])
def c_config_missing_path(t: Tree) -> None:
    """-C pointing to a missing path: silently ignored (default search list applies)."""
    _stack(t)
    t.ko("updates/base.ko", exports=["base_fn", "base_data"])
    t.order("kernel/base.ko\nkernel/mid.ko\n")


# The default depmod.d directories (no -C): kmod reads them on the host, so these cases run
# kmod chrooted where they lead to ROOT's (host_config, see the module docstring).


def _three_dups(t: Tree, name: str) -> None:
    for d in ("kernel", "updates", "extra"):
        t.ko(f"{d}/{name}.ko", exports=[f"{name}_{d}"])


@case(host_config=True)
def c_config_default_usr_lib(t: Tree) -> None:
    """A search line only in /usr/lib/depmod.d: kmod 32 and later read it (extra/dup.ko wins),
    kmod 30 does not (updates/dup.ko wins, the default search list)."""
    _three_dups(t, "dup")
    t.ko("kernel/user.ko", needs=["dup_kernel"])
    t.default_conf("/usr/lib/depmod.d", "search.conf", "search extra updates built-in\n")
    t.order("kernel/user.ko\n")


@case(host_config=True)
def c_config_default_precedence(t: Tree) -> None:
    """One base name in two default directories: the earlier directory's file is read, in the
    order /etc, /run, /usr/local/lib, /usr/lib (kmod 32 and later), /lib. Each pair's winner
    overrides its module to extra/, its loser to kernel/; mc: /usr/lib's file wins in kmod 34,
    /lib's in kmod 30; me: only /usr/lib has a file (kmod 34: extra/me.ko, kmod 30: updates/)."""
    pairs = {
        "a.conf": ("ma", "/etc/depmod.d", "/usr/lib/depmod.d"),
        "b.conf": ("mb", "/usr/local/lib/depmod.d", "/usr/lib/depmod.d"),
        "c.conf": ("mc", "/usr/lib/depmod.d", "/lib/depmod.d"),
        "d.conf": ("md", "/run/depmod.d", "/usr/lib/depmod.d"),
        "f.conf": ("mf", "/etc/depmod.d", "/lib/depmod.d"),
    }
    for conf, (mod_name, first, second) in pairs.items():
        t.ko(f"kernel/{mod_name}.ko")
        t.ko(f"extra/{mod_name}.ko")
        t.default_conf(first, conf, f"override {mod_name} * extra\n")
        t.default_conf(second, conf, f"override {mod_name} * kernel\n")
    t.ko("updates/me.ko")
    t.ko("extra/me.ko")
    t.default_conf("/usr/lib/depmod.d", "e.conf", "override me * extra\n")
    t.order("")


@case(host_config=True)
def c_config_default_merged_usr(t: Tree) -> None:
    """A merged-/usr root (lib -> usr/lib): /lib/depmod.d is /usr/lib/depmod.d, so kmod 30
    reads its files too, as /lib/depmod.d, and kmod 34 reads them once, as /usr/lib/depmod.d
    (the later directory's copy of each base name is skipped): extra/dup.ko wins in both."""
    os.makedirs(f"{t.root}/usr")
    os.rename(f"{t.root}/lib", f"{t.root}/usr/lib")
    os.symlink("usr/lib", f"{t.root}/lib")
    _three_dups(t, "dup")
    t.default_conf("/usr/lib/depmod.d", "search.conf", "search extra updates built-in\n")
    t.order("")


_EXT_CONF = (
    "external * @ROOT@/ext1\n"
    "external 6\\.1.* @ROOT@/ext2 @ROOT@/ignored\n"
    "external 5\\.10 @ROOT@/ext3\n"
    "external * @ROOT@/missing\n"
)


def _externals(t: Tree) -> None:
    t.ko("kernel/core.ko", exports=["core_fn"])
    t.ko("kernel/dupk.ko", exports=["dupk_kernel"])
    t.ko("updates/dupu.ko", exports=["dupu_updates"])
    t.ko_abs("ext1/e1.ko", exports=["e1_fn"], needs=["core_fn"])
    t.ko_abs("ext1/sub/dupk.ko", exports=["dupk_ext1"])
    t.ko_abs("ext2/e2.ko", needs=["e1_fn", "dupk_kernel", "dupk_ext1"], aliases=["e2-alias"])
    t.ko_abs("ext2/dupu.ko", exports=["dupu_ext2"])
    t.ko_abs("ext3/e3.ko", exports=["e3_fn"])
    t.ko_abs("ignored/ig.ko", exports=["ig_fn"])
    t.ko("kernel/user.ko", needs=["e1_fn", "dupu_updates", "dupu_ext2", "e3_fn"])
    # externals can never match modules.order lines
    t.order("kernel/user.ko\n" + t.sub("@ROOT@/ext2/e2.ko\n") + "ext1/e1.ko\n")


@case()
def c_external_default(t: Tree) -> None:
    """external dirs (absolute paths) with the default search list: they count
    as built-in priority, so kernel copies found first win; updates/ beats them."""
    t.conf("ext.conf", _EXT_CONF)
    _externals(t)


@case()
def c_external_searched(t: Tree) -> None:
    """search external updates built-in: external dirs rank above updates/ and kernel/."""
    t.conf("ext.conf", _EXT_CONF + "search external updates built-in\n")
    _externals(t)


# ---- cycles ---------------------------------------------------------------------


@case()
def c_cycle_two(t: Tree) -> None:
    """ca<->cb and cx->cy->cz->cx: two reports, 'Found 5 modules', exit 1, nothing
    written (a stale modules.dep stays as it was)."""
    t.ko("kernel/ca.ko", exports=["ca_fn"], needs=["cb_fn"])
    t.ko("kernel/cb.ko", exports=["cb_fn"], needs=["ca_fn"])
    t.ko("kernel/cx.ko", exports=["cx_fn"], needs=["cy_fn"])
    t.ko("kernel/cy.ko", exports=["cy_fn"], needs=["cz_fn"])
    t.ko("kernel/cz.ko", exports=["cz_fn"], needs=["cx_fn"])
    t.ko("kernel/ok.ko", exports=["ok_fn"])
    t.ko("kernel/users.ko", needs=["ca_fn", "ok_fn"])
    t.put("modules.dep", "stale contents\n")
    t.order("kernel/ca.ko\nkernel/cb.ko\nkernel/cx.ko\nkernel/cy.ko\nkernel/cz.ko\nkernel/ok.ko\nkernel/users.ko\n")


@case()
def c_cycle_self(t: Tree) -> None:
    """A module needing a symbol it exports: 'self -> self'."""
    t.ko("kernel/self.ko", exports=["self_fn"], needs=["self_fn"])
    t.ko("kernel/fine.ko", needs=["printk"])
    t.order("kernel/self.ko\nkernel/fine.ko\n")


@case()
def c_cycle_with_library(t: Tree) -> None:
    """A cycle whose members also need a library (downstream of the cycle)."""
    t.ko("kernel/lib.ko", exports=["lib_fn"])
    t.ko("kernel/pa.ko", exports=["pa_fn"], needs=["lib_fn", "pb_fn"])
    t.ko("kernel/pb.ko", exports=["pb_fn"], needs=["pa_fn"])
    t.order("kernel/lib.ko\nkernel/pa.ko\nkernel/pb.ko\n")


@case()
def c_cycle_behind(t: Tree) -> None:
    """ba<->bb, bb->bc->bd: kmod 30 also prints 'Cycle detected: bc' alone (bc
    is behind the cycle, reached from it before its own turn as a root) and
    counts 2 modules; moddeps prints the same and describes the one real cycle."""
    t.ko("kernel/ba.ko", exports=["ba_fn"], needs=["bb_fn"])
    t.ko("kernel/bb.ko", exports=["bb_fn"], needs=["bc_fn", "ba_fn"])
    t.ko("kernel/bc.ko", exports=["bc_fn"], needs=["bd_fn"])
    t.ko("kernel/bd.ko", exports=["bd_fn"])
    t.order("kernel/ba.ko\nkernel/bb.ko\nkernel/bc.ko\nkernel/bd.ko\n")


@case(cycles=[["hx", "hy"], ["hp", "hq"]])
def c_cycle_hang(t: Tree) -> None:
    """X<->Y, X->R, R->P<->Q: kmod 30's cycle report never ends (docs/depmod-outputs.md#cycles).
    moddeps-only: exit 1, nothing written, both cycles named."""
    t.ko("kernel/hx.ko", exports=["hx_fn"], needs=["hy_fn", "hr_fn"])
    t.ko("kernel/hy.ko", exports=["hy_fn"], needs=["hx_fn"])
    t.ko("kernel/hr.ko", exports=["hr_fn"], needs=["hp_fn"])
    t.ko("kernel/hp.ko", exports=["hp_fn"], needs=["hq_fn"])
    t.ko("kernel/hq.ko", exports=["hq_fn"], needs=["hp_fn"])
    t.order("kernel/hx.ko\nkernel/hy.ko\nkernel/hr.ko\nkernel/hp.ko\nkernel/hq.ko\n")


# ---- modules.devname, alias, softdep ---------------------------------------------


@case()
def c_devname_corners(t: Tree) -> None:
    """devname/char-major/block-major walks (docs/depmod-outputs.md#modulesdevname), including sscanf %u quirks."""
    t.ko("kernel/d1.ko", aliases=["char-major-10-1", "char-major-10-2", "devname:bar", "char-major-10-3"])
    t.ko("kernel/d2.ko", aliases=["devname:a", "devname:b", "char-major-4-5", "devname:c"])
    t.ko("kernel/d3.ko", aliases=["devname:lonely"])
    t.ko("kernel/d4.ko", aliases=["char-major- 4-+5", "devname:sp"])
    t.ko("kernel/d5.ko", aliases=["block-major-8-0xyz", "devname:blk"])
    t.ko("kernel/d6.ko", aliases=["block-major-7-*", "devname:star"])
    t.ko("kernel/d7.ko", aliases=["devname:", "char-major-1-2"])
    t.ko("kernel/d8.ko", aliases=["char-major-4294967297-1", "devname:wrap", "block-major--1-3"])
    t.ko("kernel/d9.ko", aliases=["char-major-1", "devname:half"])
    t.ko("kernel/d10.ko", aliases=["block-major-3-4", "char-major-5-6", "devname:both"])
    t.ko("kernel/d11.ko", aliases=["devname:x/y", "block-major-259-0"])
    t.order("".join(f"kernel/d{i}.ko\n" for i in range(1, 12)))


@case()
def c_devname_empty(t: Tree) -> None:
    """No devname module: modules.devname is 0 bytes; a devname without major is an error."""
    t.ko("kernel/nod.ko", aliases=["devname:nomajor", "usb:v*"])
    t.ko("kernel/other.ko", aliases=["char-major-1-1"])
    t.order("kernel/nod.ko\nkernel/other.ko\n")


@case()
def c_aliases_brackets(t: Tree) -> None:
    """Aliases printed raw in modules.alias, normalised ('-' to '_' outside
    brackets) in the .bin; unmatched brackets warned about and left out of the
    .bin; an empty alias; 'alias' without '=' (docs/depmod-outputs.md#modulesaliasbin)."""
    t.ko("kernel/al.ko", aliases=[
        "pci:v0000*d[0-9]*sv*", "foo-bar", "bad[bracket", "bad]close", "ok[a-b]-x[", "x[a-b]-y",
        "dmi*:svn*", "", "of:N*T*Ccompat-x",
    ])
    t.ko("kernel/al2.ko", aliases=["foo-bar", "pci:v0000*d[0-9]*sv*"])
    t.ko("kernel/noeq.ko", modinfo=["alias", "softdep", b"=value", b"key", ("alias", "=x")])
    t.order("kernel/al.ko\nkernel/al2.ko\nkernel/noeq.ko\n")


@case("-w")
def c_warn_dups_w(t: Tree) -> None:
    """-w: 'duplicate module alias' (two-line warning) when one module has the
    same normalised alias twice; the same alias in two modules is no duplicate."""
    t.ko("kernel/al.ko", aliases=["foo-bar", "foo_bar", "foo-bar", "other"])
    t.ko("kernel/al2.ko", aliases=["foo-bar", "other"])
    t.order("kernel/al.ko\nkernel/al2.ko\n")


@case()
def c_softdep(t: Tree) -> None:
    """softdep entries in order, including an empty value; depends= ignored."""
    t.ko("kernel/sd.ko", softdeps=["pre: crc32c", "", "post: foo bar"],
         modinfo=[("depends", "nothere"), ("softdep", "pre: a")])
    t.ko("kernel/sd2.ko", softdeps=["pre: sd"])
    t.order("kernel/sd.ko\nkernel/sd2.ko\n")


@case()
def c_modinfo_layout(t: Tree) -> None:
    """.modinfo with leading NULs, runs of NULs, keys without '=', '=value' entries."""
    raw = b"\0\0\0alias=lead\0\0\0\0alias=second\0keyonly\0=justvalue\0alias=a=b\0softdep=x=y\0\0"
    t.ko("kernel/lay.ko", data=build_ko(extra_sections=[(".modinfo", raw)]))
    t.ko("kernel/lay2.ko", data=build_ko(extra_sections=[(".modinfo", b"\0")]))
    t.ko("kernel/lay3.ko", data=build_ko(extra_sections=[(".modinfo", b"alias=noterm")]))
    t.order("kernel/lay.ko\nkernel/lay2.ko\nkernel/lay3.ko\n")


@case()
def c_non_ascii(t: Tree) -> None:
    """Non-ASCII symbol and alias names go through (signed-char hash tails in
    modules.symbols order; v30's 7-bit check of the index writer is dead code).
    No two index keys branch at a non-ASCII byte: there kmod 30 would index its
    child array with a negative number (undefined behaviour, mangled .bin)."""
    t.ko("kernel/na.ko", exports=["sym_\u00e9t\u00e9", "other_\u00ff\u00fe"], aliases=["na\u00efve", "caf\u00e9"])
    t.ko("kernel/nau.ko", needs=["sym_\u00e9t\u00e9", "other_\u00ff\u00fe"])
    t.order("kernel/na.ko\nkernel/nau.ko\n")


# ---- builtin files ----------------------------------------------------------------


@case()
def c_builtin_files(t: Tree) -> None:
    """modules.builtin (invalid lines: digit, slash, empty) and
    modules.builtin.modinfo (aliases normalised, brackets): only the .bin files change."""
    _stack(t)
    t.put("modules.builtin", "kernel/fs/ext4/ext4.ko\nkernel/drivers/foo-bar.ko\n9p.ko\n/abs/x.ko\n\n"
                             "kernel/base.ko\nnoext\n")
    t.put("modules.builtin.modinfo",
          b"ext4.alias=fs-ext4\0ext4.license=GPL\0foo_bar.alias=pci:v*d[0-9]-x\0foo_bar.alias=bad[\0"
          b"ext4.alias=fs-ext3\0noalias\0x.alias=\0")
    t.order("kernel/base.ko\n")


@case()
def c_builtin_modinfo_only(t: Tree) -> None:
    """Only modules.builtin.modinfo present: one warning, empty modules.builtin.bin."""
    _stack(t)
    t.put("modules.builtin.modinfo", b"loop.alias=block-major-7-*\0loop.alias=devname:loop-control\0")
    t.order("")


# ---- file kinds ---------------------------------------------------------------------


@case()
def c_misc_files(t: Tree) -> None:
    """build/source dirs, symlinked module and directory, short file, non-ELF file,
    '.ko', mixed case, a module at the top, a directory named like a module, other extensions."""
    _stack(t)
    t.ko("kernel/Mixed-Case.ko", exports=["MixedFn"], aliases=["Mixed-Alias"])
    t.ko("kernel/lower.ko", needs=["MixedFn"])
    t.put("kernel/short.ko", b"\x7fELF")
    t.put("kernel/empty.ko", b"")
    t.put("kernel/text.ko", b"this is not an ELF file at all\n")
    t.put("kernel/.ko", mod(exports=["dotko"]))
    t.put("kernel/.hidden.ko", mod(exports=["hidden_fn"]))
    t.put("kernel/upper.KO", mod(exports=["upper_fn"]))
    t.put("kernel/x.ko.bz2", mod(exports=["bz_fn"]))
    t.put("kernel/x.ko.orig", mod(exports=["orig_fn"]))
    t.ko("top.ko", exports=["top_fn"])
    t.ko("kernel/dir.ko/inner.ko", needs=["top_fn"])
    t.ko("build/b.ko", exports=["b_fn"])
    t.ko("kernel/source/s.ko", exports=["s_fn"])
    t.ko_abs("elsewhere/linked.ko", exports=["linked_fn"])
    t.symlink(f"{t.root}/elsewhere/linked.ko", "kernel/linked.ko")
    t.ko_abs("elsewhere/dir/indir.ko", needs=["linked_fn"])
    t.symlink("../../../../elsewhere/dir", "kernel/linkdir")
    t.order("kernel/linked.ko\nkernel/linkdir/indir.ko\nkernel/text.ko\ntop.ko\nkernel/dir.ko/inner.ko\n")


@case()
def c_fifo(t: Tree) -> None:
    """A FIFO named like a module: 'unsupported file type'."""
    _stack(t)
    os.mkfifo(f"{t.dirname}/kernel/pipe.ko")
    t.order("")


@case()
def c_broken_elf(t: Tree) -> None:
    """Broken modules stay in modules.dep with no deps, with one load error each
    (docs/depmod-outputs.md#what-depmod-reads-of-a-module)."""
    good = mod(exports=["gfn"], needs=["base_fn"], aliases=["broken-alias"])
    t.ko("kernel/base.ko", exports=["base_fn"])
    t.ko("kernel/trunc_sh.ko", data=truncate(good, len(good) - 10))
    t.ko("kernel/bad_class.ko", data=corrupt_header(good, "EI_CLASS", 3))
    t.ko("kernel/bad_data.ko", data=corrupt_header(good, "EI_DATA", 0))
    t.ko("kernel/bad_shentsize.ko", data=corrupt_header(good, "e_shentsize", 32))
    t.ko("kernel/bad_magic.ko", data=corrupt_header(good, "EI_MAG", b"\x7fELG"))
    # e_shstrndx past the section count makes kmod 30 abort (assertion in
    # elf_get_section_header), so only an in-range but wrong table is used here
    t.ko("kernel/bad_shstrndx.ko", data=corrupt_header(good, "e_shstrndx", 1))
    t.ko("kernel/tiny.ko", data=good[:16])
    t.ko("kernel/hdr_only.ko", data=good[:64])
    t.ko("kernel/bad_xz.ko.xz", data=b"\xfd7zXZ\x00" + b"garbage" * 10, raw=True)
    t.ko("kernel/bad_zst.ko.zst", data=b"\x28\xb5\x2f\xfd" + b"garbage" * 10, raw=True)
    t.ko("kernel/needs_broken.ko", needs=["gfn", "base_fn"])
    t.order("kernel/base.ko\nkernel/trunc_sh.ko\nkernel/bad_class.ko\nkernel/bad_magic.ko\nkernel/needs_broken.ko\n")


@case()
def c_compressed(t: Tree) -> None:
    """zstd and xz modules, and compression detected by magic, not by extension."""
    t.ko("kernel/zst.ko.zst", exports=["zst_fn"], aliases=["zst-alias"])
    t.ko("kernel/xz.ko.xz", exports=["xz_fn"], needs=["zst_fn"])
    t.ko("kernel/xzinko.ko", data=compress(mod(exports=["xzinko_fn"], needs=["xz_fn"]), "xz"))
    t.ko("kernel/rawinxz.ko.xz", data=mod(needs=["xzinko_fn"]), raw=True)
    t.ko("kernel/zstinxz.ko.xz", data=compress(mod(needs=["zst_fn"]), "zst"), raw=True)
    t.order("kernel/zst.ko\nkernel/xz.ko\nkernel/xzinko.ko\n")


@case()
def c_elf32_be(t: Tree) -> None:
    """ELF32 big-endian modules (machine 8, MIPS) with 4-byte __versions CRCs."""
    kw: dict[str, object] = {"bits": 32, "endian": "big", "machine": 8}
    t.ko("kernel/be_exp.ko", exports=["be_fn", "be_data"], aliases=["be-alias"], **kw)
    t.ko("kernel/be_user.ko", needs=["be_fn"], **kw)
    t.ko("kernel/be_fallback.ko", exports=["fb_fn"], crcs=False, needs=["be_data"], **kw)
    t.ko("kernel/le64.ko", needs=["fb_fn"])
    t.order("kernel/be_exp.ko\n")


@case("-E", f"{ROOT}/Module.symvers", "-e")
def c_elf32_be_crc(t: Tree) -> None:
    """ELF32 BE CRC checks against Module.symvers (4-byte __versions CRCs)."""
    kw: dict[str, object] = {"bits": 32, "endian": "big", "machine": 20}
    t.put_abs("Module.symvers", "0x00000010\tprintk\tvmlinux\tEXPORT_SYMBOL\n0x11\tkfree\tvmlinux\tEXPORT_SYMBOL\n")
    t.ko("kernel/be.ko", data=mod(needs=["printk", "kfree"], versions=[("printk", 0x10), ("kfree", 0x12)], **kw))
    t.order("kernel/be.ko\n")


def _ppc64(t: Tree) -> None:
    kw: dict[str, object] = {"bits": 64, "endian": "big", "machine": 21}
    t.ko("kernel/ppexp.ko", exports=["pp_fn", "TOC."], **kw)
    t.ko("kernel/ppuser.ko", needs=[".pp_fn", ".TOC.", "TOC.", ".printk", ".missing_fn", "..pp_fn"], **kw)
    t.ko("kernel/ppkern.ko", needs=[".TOC.", ".kfn"], **kw)
    t.put_abs("System.map", "c000000000000000 r __ksymtab_kfn\n")
    t.order("kernel/ppuser.ko\nkernel/ppkern.ko\n")


@case()
def c_ppc64_dotted(t: Tree) -> None:
    """ppc64 (machine 21, ELF64 BE): '.sym' resolves to 'sym'; '.TOC.' is a module export here."""
    _ppc64(t)


@case("-e", "-F", f"{ROOT}/System.map")
def c_ppc64_toc_eF(t: Tree) -> None:
    """ppc64 with -e -F: TOC. is only added as a fake kernel symbol when no module exports it."""
    kw: dict[str, object] = {"bits": 64, "endian": "big", "machine": 21}
    t.ko("kernel/ppuser.ko", needs=[".TOC.", ".printk", ".kfn", "TOC."], **kw)
    t.put_abs("System.map", "c000000000000000 r __ksymtab_kfn\n")
    t.order("kernel/ppuser.ko\n")


@case()
def c_sparc_register(t: Tree) -> None:
    """SPARC (machine 43): undefined STT_REGISTER (13) symbols are not requirements."""
    t.ko("kernel/spexp.ko", exports=["sp_fn", "reg_sym"], bits=64, endian="big", machine=43)
    data = mod(needs=["sp_fn"], bits=64, endian="big", machine=43,
               extra_symbols=[Sym(name="reg_sym", section=None, bind="global", type="notype")])
    t.ko("kernel/spuser.ko", data=_retype_symbol(data, "reg_sym", 13))
    # the same on x86: STT 13 is just an unknown type there, so it is a requirement
    t.ko("kernel/x86exp.ko", exports=["x86_reg"])
    x86 = mod(extra_symbols=[Sym(name="x86_reg", section=None, bind="global", type="notype")])
    t.ko("kernel/x86user.ko", data=_retype_symbol(x86, "x86_reg", 13))
    t.order("")


def _retype_symbol(data: bytes, name: str, st_type: int) -> bytes:
    """Set the st_type of the symbol ``name`` (ELF64 only)."""
    import struct

    e = ">" if data[5] == 2 else "<"
    shoff = struct.unpack_from(e + "Q", data, 0x28)[0]
    shnum = struct.unpack_from(e + "H", data, 0x3C)[0]
    shdrs = [struct.unpack_from(e + "IIQQQQIIQQ", data, shoff + 64 * i) for i in range(shnum)]
    symtab = next(h for h in shdrs if h[1] == 2)
    strtab = shdrs[symtab[6]]
    out = bytearray(data)
    for off in range(symtab[4], symtab[4] + symtab[5], 24):
        nm = struct.unpack_from(e + "I", data, off)[0]
        start = strtab[4] + nm
        if data[start:data.index(b"\0", start)] == name.encode():
            out[off + 4] = (data[off + 4] & 0xF0) | st_type
    return bytes(out)


# ---- ordering ------------------------------------------------------------------------

_DAG = {
    "app1": ["ui", "net", "crypto"],
    "app2": ["net", "storage"],
    "app3": ["ui", "storage", "log"],
    "ui": ["gfx", "input", "log"],
    "net": ["sock", "crypto", "log"],
    "storage": ["blk", "crypto"],
    "gfx": ["mem", "log"],
    "input": ["evt"],
    "sock": ["mem", "evt"],
    "crypto": ["mem", "hash"],
    "blk": ["mem", "evt"],
    "hash": ["mem"],
    "evt": ["mem", "log"],
    "log": ["mem"],
    "mem": [],
    "solo": [],
}


@case()
def c_dag_order(t: Tree) -> None:
    """16 modules in a layered DAG, partly in modules.order: the LIFO Kahn numbering
    decides the order of every modules.dep line
    (docs/depmod-outputs.md#topological-numbers, docs/depmod-outputs.md#modulesdep)."""
    for name, deps in _DAG.items():
        t.ko(f"kernel/dag/{name}.ko", exports=[f"{name}_fn"], needs=[f"{d}_fn" for d in deps])
    t.order("".join(f"kernel/dag/{n}.ko\n" for n in ("log", "app2", "crypto", "mem", "ui", "sock")))


@case()
def c_dag_order_unlisted(t: Tree) -> None:
    """The same DAG with no modules.order: hash order seeds the numbering."""
    for name, deps in _DAG.items():
        t.ko(f"kernel/dag/{name}.ko", exports=[f"{name}_fn"], needs=[f"{d}_fn" for d in reversed(deps)])


@case()
def c_dep_first_reference(t: Tree) -> None:
    """Direct deps are walked in first-reference order (symtab order, then leftover
    __versions), which feeds the LIFO numbering."""
    for n in ("l1", "l2", "l3", "l4"):
        t.ko(f"kernel/{n}.ko", exports=[f"{n}_a", f"{n}_b"])
    t.ko("kernel/u1.ko", data=mod(needs=["l3_a", "l1_a", "l3_b", "l2_a"],
                                  versions=[("l4_a", 1), ("l2_a", 2), ("l1_b", 3)]))
    t.ko("kernel/u2.ko", needs=["l2_b", "l4_b", "l1_b"])
    t.order("kernel/u1.ko\nkernel/u2.ko\nkernel/l1.ko\nkernel/l2.ko\nkernel/l3.ko\nkernel/l4.ko\n")


# ---- output modes -----------------------------------------------------------------------


@case("-n")
def c_dry_run(t: Tree) -> None:
    """-n: the text files on stdout (dep, alias, softdep, symbols, devname), nothing written."""
    _stack(t)
    t.ko("kernel/dev.ko", aliases=["char-major-10-200", "devname:net/tun"], softdeps=["pre: base"])
    t.order("kernel/top.ko\n")


@case("-v")
def c_verbose(t: Tree) -> None:
    """-v: one 'PATH needs "SYM": OWNER' line per new edge on stdout."""
    _stack(t)
    t.ko("kernel/multi.ko", needs=["mid_fn", "base_fn", "mid_fn", "base_data"])
    t.order("kernel/top.ko\nkernel/multi.ko\n")


@case(steps=[Step(std("-o", f"{ROOT}/out"))])
def c_outdir(t: Tree) -> None:
    """-o OUTDIR (kmod 31): kmod 30 is run without it; moddeps must write the
    same files under OUTDIR/lib/modules/VERSION and nothing in the module dir."""
    _stack(t)
    t.put("modules.builtin", "kernel/fs/ext4/ext4.ko\n")
    t.order("kernel/top.ko\n")


_T0 = 1_700_000_000


def _set_times(t: Tree, module_time_ns: int, dep_time_ns: int) -> None:
    for dirpath, _dirs, files in os.walk(t.dirname):
        for f in files:
            p = os.path.join(dirpath, f)
            ns = dep_time_ns if f.startswith("modules.") else module_time_ns
            os.utime(p, ns=(ns, ns))


def _age_all(t: Tree) -> None:
    """Modules at T0-100 s, outputs at T0."""
    _set_times(t, (_T0 - 100) * 10**9, _T0 * 10**9)


def _touch_subsecond(t: Tree) -> None:
    """A module newer than modules.dep by 0.5 s, in the same second."""
    _age_all(t)
    ns = _T0 * 10**9 + 500_000_000
    os.utime(f"{t.dirname}/kernel/mid.ko", ns=(ns, ns))


def _touch_newer(t: Tree) -> None:
    """A module two seconds newer than modules.dep."""
    _age_all(t)
    ns = (_T0 + 2) * 10**9
    os.utime(f"{t.dirname}/kernel/mid.ko", ns=(ns, ns))


def _age_again(t: Tree) -> None:
    _age_all(t)
    ns = (_T0 + 1) * 10**9
    os.utime(f"{t.dirname}/build/newer.ko", ns=(ns, ns))
    os.utime(f"{t.dirname}/kernel/notmod.txt", ns=(ns, ns))


@case(steps=[
    Step(std("-A")),
    Step(std("-A"), before=_age_all),
    Step(std("-A"), before=_touch_subsecond),
    Step(std("-A"), before=_touch_newer),
    Step(std("-A"), before=_age_again),
])
def c_quick_A(t: Tree) -> None:
    """-A: first run on a fresh tree (no modules.dep: an fstatat error, then a full
    run); up to date (nothing rewritten); a module newer by 0.5 s in the same
    second (kmod compares whole seconds: up to date); a module 2 s newer (rewrite);
    newer files under build/ and with other extensions don't count."""
    _stack(t)
    t.ko("build/newer.ko", exports=["x"])
    t.put("kernel/notmod.txt", "x")
    t.order("kernel/top.ko\n")


@case(steps=[Step(std("-A", "-n")), Step(std("-n", "-A"), before=_age_all), Step(std("-n"))])
def c_quick_A_dry_run(t: Tree) -> None:
    """-A with -n does nothing at all in kmod 30 (not even when out of date)."""
    _stack(t)
    t.order("")


@case(steps=[Step(std()), Step(std("-A", files=[f"{ROOT}/lib/modules/{VERSION}/kernel/top.ko"]),
                               before=_touch_newer)])
def c_quick_A_with_files(t: Tree) -> None:
    """-A with FILES when out of date: a full run (the FILES are ignored)."""
    _stack(t)
    t.order("kernel/top.ko\n")


_D = f"{ROOT}/lib/modules/{VERSION}"


@case(steps=[Step(std(files=[f"{_D}/kernel/top.ko", f"{_D}/kernel/mid.ko", f"{ROOT}/extmod/ext.ko",
                             f"{_D}/kernel/base.ko", f"{_D}/notes.txt"]))])
def c_files_cmdline(t: Tree) -> None:
    """depmod VERSION FILE...: only those files; no depmod.d parsing (config
    errors not printed, search/override ignored); files outside the module dir
    shown by absolute path; any name is taken as a module."""
    _stack(t)
    t.ko("updates/mid.ko", exports=["mid_fn"])
    t.ko_abs("extmod/ext.ko", needs=["mid_fn"])
    t.put("notes.txt", mod(exports=["notes_fn"]))
    t.conf("bad.conf", "nonsense line\noverride mid * updates\n")
    t.order("kernel/mid.ko\nkernel/top.ko\n")


@case(steps=[Step(std("-a", files=[f"{_D}/kernel/top.ko"]))])
def c_files_with_a(t: Tree) -> None:
    """-a with FILES: a full scan, the FILES are ignored."""
    _stack(t)
    t.order("")


@case(steps=[Step(std(files=[f"{_D}/kernel/top.ko", f"{_D}/updates/top.ko"]))])
def c_files_duplicate_name(t: Tree) -> None:
    """Two FILES with the same module name: kmod 30 fails (exit 1, nothing written)."""
    _stack(t)
    t.ko("updates/top.ko", needs=["mid_fn"])


@case(steps=[Step(std(files=[f"{_D}/kernel/top.ko", f"{_D}/kernel/missing.ko"]))])
def c_files_missing(t: Tree) -> None:
    """A FILE that does not exist: fatal 'could not create module', exit 1."""
    _stack(t)


@case(steps=[Step(std(files=["kernel/top.ko"]), cwd=f"lib/modules/{VERSION}")])
def c_files_relative(t: Tree) -> None:
    """A relative FILE: kmod 30 says 'not absolute path' and exits 1."""
    _stack(t)


@case(steps=[Step(std(files=[f"{_D}/kernel/top.ko", f"{_D}/kernel/top.ko"]))])
def c_files_same_twice(t: Tree) -> None:
    """The same FILE twice: kmod 30 fails on the duplicate name."""
    _stack(t)


# ---- kmod 33 weakdep (moddeps extra) ------------------------------------------------


@case(moddeps_extra={
    "modules.weakdep": b"# Weak dependencies extracted from modules themselves.\n"
                       b"weakdep wd1 base\nweakdep wd1 \nweakdep wd2 wd1 mid\n",
})
def c_weakdep(t: Tree) -> None:
    """weakdep= modinfo: kmod 30 ignores it, moddeps also writes modules.weakdep
    (docs/depmod-outputs.md#modulesweakdep)."""
    _stack(t)
    t.ko("kernel/wd1.ko", modinfo=[("weakdep", "base"), ("weakdep", ""), ("softdep", "pre: mid")])
    t.ko("kernel/wd2.ko", modinfo=[("weakdep", "wd1 mid")])
    t.order("kernel/wd1.ko\nkernel/wd2.ko\n")


# ---- live-only: readdir-order dependent -------------------------------------------------


@case(live_only=True)
def c_live_same_prio_dups(t: Tree) -> None:
    """Same-name modules of equal priority in unrelated dirs: the first in readdir order wins."""
    for d in ("kernel/a", "kernel/b", "kernel/c", "extra", "misc/deep/er"):
        t.ko(f"{d}/same.ko", exports=[f"same_{d.replace('/', '_')}"])
    t.ko("kernel/user.ko", needs=["same_kernel_a", "same_kernel_b", "same_extra"])
    t.order("kernel/b/same.ko\nkernel/user.ko\n")


@case(live_only=True)
def c_live_same_search_dir(t: Tree) -> None:
    """Same-name modules inside one search dir (updates/a, updates/b): the else-if
    quirk makes the LAST one in readdir order win (docs/depmod-outputs.md#duplicate-names)."""
    for d in ("updates/a", "updates/b", "updates/c/d"):
        t.ko(f"{d}/same.ko", exports=[f"same_{d.replace('/', '_')}"])
    t.ko("kernel/same.ko", exports=["same_kernel"])
    t.order("")


@case(live_only=True)
def c_live_config_subdirs(t: Tree) -> None:
    """Several sub-directories in a config dir: messages in readdir order."""
    for n in ("a.conf", "b.conf", "zz.conf", "m.conf"):
        os.makedirs(f"{t.config}/{n}", exist_ok=True)
    t.conf("x.conf", "search updates\n")
    _stack(t)


@case(live_only=True)
def c_live_fifos(t: Tree) -> None:
    """Several FIFOs: messages in readdir order."""
    _stack(t)
    for n in ("p1.ko", "p2.ko", "p3.ko"):
        os.mkfifo(f"{t.dirname}/kernel/{n}")


# --------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------


def make_root() -> str:
    """A fresh root of fixed length: /tmp/mdcase-XXXXXXXX."""
    root = tempfile.mkdtemp(prefix=ROOT_PREFIX, dir=ROOT_PARENT)
    assert len(root) == len(ROOT_PARENT) + 1 + len(ROOT_PREFIX) + 8, root
    return root


@contextlib.contextmanager
def materialised(c: Case) -> Iterator[Tree]:
    root = make_root()
    try:
        old = os.umask(0o022)
        try:
            tree = Tree(root)
            c.build(tree)
        finally:
            os.umask(old)
        yield tree
    finally:
        shutil.rmtree(root, ignore_errors=True)


Snapshot = dict[str, tuple[str, int, int, bytes]]  # relpath -> (kind, ino, mtime_ns, content/target)


def snapshot(root: str) -> Snapshot:
    """Every non-directory entry under root (symlinks not followed)."""
    out: Snapshot = {}
    for dirpath, dirs, files in os.walk(root):
        for name in [*files, *(d for d in dirs if os.path.islink(os.path.join(dirpath, d)))]:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ("link", st.st_ino, st.st_mtime_ns, os.readlink(p).encode())
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    out[rel] = ("file", st.st_ino, st.st_mtime_ns, f.read())
            else:
                out[rel] = ("other", st.st_ino, st.st_mtime_ns, b"")
    return out


def file_list(snap: Snapshot, root: str) -> list[str]:
    lines = []
    for rel, (kind, _ino, _mt, content) in snap.items():
        if kind == "link":
            lines.append(f"{rel} -> {norm_text(content.decode(errors='surrogateescape'), root)}")
        elif kind == "other":
            lines.append(f"{rel} (special)")
        else:
            lines.append(rel)
    return sorted(lines)


def changed(before: Snapshot, after: Snapshot) -> list[str]:
    """Files that are new or were rewritten (other inode or mtime)."""
    return sorted(
        rel for rel, (kind, ino, mt, _c) in after.items()
        if kind == "file" and (rel not in before or before[rel][1:3] != (ino, mt))
    )


def norm_bytes(data: bytes, root: str) -> bytes:
    return data.replace(root.encode(), ROOT.encode())


def norm_text(text: str, root: str) -> str:
    return text.replace(root, ROOT)


def norm_stderr(data: bytes, root: str, prefix: str) -> list[str]:
    """stderr lines with the root replaced and the program prefix removed.
    moddeps' own 'NOTE:' lines (extra explanations of cycles, see
    moddeps/depmod/run.py) have no kmod counterpart and are dropped."""
    text = norm_bytes(data, root).decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = []
    for line in lines:
        if line.startswith(prefix):
            line = line[len(prefix):]
            if line.startswith("NOTE: ") and prefix == "moddeps: ":
                continue
        out.append(line)
    return out


def data_dir(release: int) -> Path:
    """Where the results of kmod ``release`` are recorded."""
    return DATA_DIR if release == 30 else DATA_DIR.with_name(f"depmod_cases_kmod{release}")


def step_args(step: Step, root: str, *, kmod: bool, release: int = 30) -> list[str]:
    args = [a.replace(ROOT, root) for a in step.args]
    if kmod and release < 31 and "-o" in args:  # kmod 30 has no -o (see the module docstring)
        i = args.index("-o")
        del args[i:i + 2]
    return args


@dataclass
class RunResult:
    exit: int | None  # None: timed out
    stdout: bytes
    stderr: bytes


def kmod_depmod() -> str | None:
    """Path of the real depmod (also looked for in /usr/sbin and /sbin)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which("depmod", path=path)


def kmod34_depmod() -> list[str] | None:
    """argv prefix running kmod 34.2's depmod from ``$MODDEPS_KMOD34_ROOT``, or None."""
    root = os.environ.get(KMOD34_ENV)
    if not root:
        return None
    libdir = os.path.join(root, "usr/lib/x86_64-linux-gnu")
    loader = os.path.join(libdir, "ld-linux-x86-64.so.2")
    kmod = os.path.join(root, "usr/bin/kmod")
    if not (os.path.exists(loader) and os.path.exists(kmod)):
        return None
    return [loader, "--library-path", libdir, "--argv0", "depmod", kmod]


def run_kmod(args: Sequence[str], cwd: str, timeout: float = KMOD_TIMEOUT, release: int = 30,
             host_root: str | None = None) -> RunResult:
    """The real depmod of ``release`` on ``args``; with ``host_root``, chrooted so
    that its default depmod.d directories are those under ``host_root``."""
    if release == 30:
        exe = kmod_depmod()
        assert exe is not None, "the real depmod is not installed"
        argv = [exe]
    else:
        got = kmod34_depmod()
        assert got is not None, f"kmod {release} not found: set ${KMOD34_ENV}"
        argv = got
    with contextlib.ExitStack() as stack:
        command = [*argv, *args]
        if host_root is not None:
            command = stack.enter_context(host_config_argv(command, cwd, host_root))
        try:
            p = subprocess.run(command, cwd=cwd, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return RunResult(None, exc.stdout or b"", exc.stderr or b"")
    if host_root is not None and p.returncode in (_SANDBOX_FAILED, 126, 127):  # not kmod's: 0 or 1
        raise RuntimeError(f"could not run kmod with {host_root}'s depmod.d: "
                           f"{p.stderr.decode(errors='replace').strip()}")
    return RunResult(p.returncode, p.stdout, p.stderr)


#: kmod's default depmod.d directories (kmod 30 reads all but /usr/lib/depmod.d), read on the
#: host even under -b: a host_config case's kmod runs where they lead to ROOT's own
HOST_CONFIG_DIRS = ("/etc/depmod.d", "/run/depmod.d", "/usr/local/lib/depmod.d", "/usr/lib/depmod.d",
                    "/lib/depmod.d")
_SANDBOX_FAILED = 125


@contextlib.contextmanager
def host_config_argv(command: Sequence[str], cwd: str, root: str) -> Iterator[list[str]]:
    """``command`` run in a skeleton root where kmod's default depmod.d directories are
    links to those under ``root``, everything else it needs bound from the host.

    The skeleton (a fresh directory under /tmp) holds empty directories and links;
    ``unshare --mount`` binds the host's program and library directories, /tmp (the
    cases' roots) and the extracted kmod 34.2 onto it in a private mount namespace,
    which ends with the process, then ``chroot`` enters it.  A merged-/usr host's
    ``/bin``, ``/sbin``, ``/lib64`` links are copied; the skeleton's ``/lib`` is a
    directory (only its ``depmod.d`` matters), unless ``root/lib`` is itself a link
    (a merged-/usr case), then the same link.  Needs root; the skeleton is removed
    entry by entry afterwards (never recursively, so a mount left behind stops the
    removal instead of reaching into the host)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    tools: dict[str, str] = {}
    for tool in ("unshare", "chroot", "mount"):
        found = shutil.which(tool, path=search)
        if found is None:
            raise RuntimeError(f"host_config cases need {tool}")
        tools[tool] = found
    if os.geteuid() != 0:
        raise RuntimeError("host_config cases need root (a private mount namespace and chroot)")
    skel = tempfile.mkdtemp(prefix="mdcase-host-", dir=ROOT_PARENT)
    made: list[tuple[str, bool]] = []  # (path, is_link), in creation order

    def mkdir(rel: str) -> str:
        path = skel
        for part in rel.strip("/").split("/"):
            path = os.path.join(path, part)
            if not os.path.lexists(path):
                os.mkdir(path)
                made.append((path, False))
        return path

    def link(rel: str, target: str) -> None:
        path = os.path.join(mkdir(os.path.dirname(rel)) if os.path.dirname(rel.strip("/")) else skel,
                            os.path.basename(rel))
        os.symlink(target, path)
        made.append((path, True))

    binds: list[str] = []
    for top in ("/bin", "/sbin", "/lib64"):
        if os.path.islink(top):
            link(top, os.readlink(top))
        elif os.path.isdir(top):
            binds.append(top)
    if os.path.islink(os.path.join(root, "lib")):  # the case's own merged /usr
        link("/lib", os.readlink(os.path.join(root, "lib")))
    else:  # whatever the host has: kmod 30 must not find /usr/lib/depmod.d as /lib/depmod.d
        mkdir("/lib")
        for d in sorted(glob.glob("/lib/*-linux-gnu*")):
            if not os.path.isdir(d):
                continue
            if os.path.islink("/lib"):  # a merged host: its /lib/ARCH is /usr/lib/ARCH
                link(d, "/usr" + d)
            else:
                binds.append(d)
    binds += ["/usr/bin", "/usr/sbin"]
    binds += [d for d in ("/usr/lib64",) if os.path.isdir(d)]
    binds += [d for d in sorted(glob.glob("/usr/lib/*-linux-gnu*")) if os.path.isdir(d)]
    binds.append(ROOT_PARENT)
    kmod34 = os.environ.get(KMOD34_ENV)
    if kmod34 and not os.path.abspath(kmod34).startswith(ROOT_PARENT + "/"):
        binds.append(os.path.abspath(kmod34))
    for d in binds:
        mkdir(d)
    for d in HOST_CONFIG_DIRS:
        if d.startswith("/lib/") and os.path.islink(os.path.join(skel, "lib")):
            continue  # the skeleton's /lib is the case's link to usr/lib: its depmod.d is /usr/lib's
        link(d, os.path.join(root, d.lstrip("/")))
    mount, chroot = shlex.quote(tools["mount"]), shlex.quote(tools["chroot"])
    mounts = "".join(f"{mount} --bind {shlex.quote(d)} {shlex.quote(skel + d)} || fail; " for d in binds)
    script = (
        f"fail() {{ echo 'mdcase sandbox: mount failed' >&2; exit {_SANDBOX_FAILED}; }}; {mounts}"
        f"exec {chroot} {shlex.quote(skel)} /bin/sh -c 'cd \"$0\" && exec \"$@\"' {shlex.quote(cwd)} "
        + " ".join(shlex.quote(a) for a in command)
    )
    try:
        yield [tools["unshare"], "--mount", "--propagation", "private", "/bin/sh", "-c", script]
    finally:
        for path, is_link in reversed(made):
            if is_link:
                os.unlink(path)
            else:
                os.rmdir(path)
        os.rmdir(skel)


def kmod_available() -> bool:
    return kmod_depmod() is not None


def run_moddeps(args: Sequence[str], cwd: str, release: int = 30, host_root: str | None = None) -> RunResult:
    """``moddeps depmod --kmod-version RELEASE ARGS`` in-process through typer's CliRunner
    (``host_root``: nothing to do, moddeps reads the default depmod.d under ``-b`` anyway)."""
    from typer.testing import CliRunner

    import moddeps.cli.depmod as typer_command
    from moddeps.cli import app
    from moddeps.cli.depmod_argv import fast_options

    runner = CliRunner()
    old = os.getcwd()
    argv = ["--kmod-version", str(release), *args]
    parsed: list[object] = []
    real = typer_command.run_depmod

    def seen(opts: object) -> None:  # what typer parsed, then the run
        parsed.append(opts)
        real(opts)  # type: ignore[arg-type]

    os.chdir(cwd)
    typer_command.run_depmod = seen  # type: ignore[assignment]
    try:
        r = runner.invoke(app, ["depmod", *argv], catch_exceptions=True)
        # ``moddeps depmod`` parses kmod's usual arguments without typer: the same options
        fast = fast_options(argv)
    finally:
        typer_command.run_depmod = real
        os.chdir(old)
    if fast is not None:
        assert parsed == [fast], f"moddeps depmod {' '.join(argv)}: typer parsed {parsed}, the fast parser {fast}"
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        import traceback

        tb = "".join(traceback.format_exception(r.exception))
        raise AssertionError(f"moddeps depmod {' '.join(args)} raised:\n{tb}")
    return RunResult(r.exit_code, r.stdout_bytes, r.stderr_bytes)


@dataclass
class Observed:
    """What one tool did on one case: per step, then the final tree."""

    steps: list[dict[str, object]]
    stdouts: list[bytes]
    files: list[str]
    outputs: dict[str, bytes]  # output-dir-relative name -> bytes (root-normalised)
    timed_out: bool = False


def observe(
    c: Case, runner: Callable[..., RunResult], *, kmod: bool, tree: Tree | None = None, release: int = 30
) -> Observed:
    """Materialise ``c`` (or use ``tree``), run every step with ``runner``
    (``runner(args, cwd, release=release)``) and collect the results."""
    if tree is None:
        with materialised(c) as t:
            return observe(c, runner, kmod=kmod, tree=t, release=release)
    t = tree
    root = t.root
    initial = snapshot(root)
    prefix = "depmod: " if kmod else "moddeps: "
    steps: list[dict[str, object]] = []
    stdouts: list[bytes] = []
    timed_out = False
    for st in c.steps:
        if st.before is not None:
            st.before(t)
        before = snapshot(root)
        r = runner(step_args(st, root, kmod=kmod, release=release), os.path.join(root, st.cwd), release=release,
                   host_root=root if c.host_config else None)
        after = snapshot(root)
        if r.exit is None:
            timed_out = True
        written = [_map_outdir(p) for p in changed(before, after)]
        steps.append({
            "exit": r.exit,
            "stderr": norm_stderr(r.stderr, root, prefix),
            "written": sorted(written),
        })
        stdouts.append(norm_bytes(r.stdout, root))
        if timed_out:
            break
    final = snapshot(root)
    outputs: dict[str, bytes] = {}
    for rel, (kind, _ino, _mt, content) in final.items():
        if kind == "file" and (rel not in initial or initial[rel][3] != content):
            outputs[_map_outdir(rel)] = norm_bytes(content, root)
    files = sorted(_map_outdir(x) for x in file_list(final, root))
    return Observed(steps, stdouts, files, outputs, timed_out)


def _dirs(root: str) -> set[str]:
    return {os.path.relpath(d, root) for d, _s, _f in os.walk(root)}


def observe_both(c: Case, release: int = 30) -> tuple[Observed, Observed]:
    """Run kmod, then moddeps, on ONE materialised tree (restored to its
    initial state in between), so that both see the same readdir order."""
    with materialised(c) as t:
        initial = snapshot(t.root)
        initial_dirs = _dirs(t.root)
        kmod_obs = observe(c, run_kmod, kmod=True, tree=t, release=release)
        _restore(t.root, initial, initial_dirs)
        moddeps_obs = observe(c, run_moddeps, kmod=False, tree=t, release=release)
        return kmod_obs, moddeps_obs


def _restore(root: str, initial: Snapshot, initial_dirs: set[str]) -> None:
    """Put the tree back as it was: remove new files and directories, restore
    changed contents and every file's mtime (module directory entries stay)."""
    now = snapshot(root)
    for rel in now:
        if rel not in initial:
            os.unlink(os.path.join(root, rel))
    for d in sorted(_dirs(root) - initial_dirs, key=len, reverse=True):
        shutil.rmtree(os.path.join(root, d), ignore_errors=True)
    for rel, (kind, _ino, mt, content) in initial.items():
        p = os.path.join(root, rel)
        if kind != "file":
            continue
        if now.get(rel, (None, 0, 0, None))[3] != content:
            with open(p, "wb") as f:
                f.write(content)
        os.utime(p, ns=(mt, mt))


_MODDIR = f"lib/modules/{VERSION}/"
_OUTDIR = f"out/lib/modules/{VERSION}/"


_KMOD_TEMPORARY = re.compile(r"\.\d+\.\d+\.\d+$")


def _map_outdir(rel: str) -> str:
    """Files written under ``-o ROOT/out`` are compared as if in the module dir;
    the temporary file kmod 34 leaves when it stops (``modules.alias.bin.PID.USEC.RANDOM``)
    gets one name."""
    rel = _KMOD_TEMPORARY.sub(".@TMP@", rel)
    return _MODDIR + rel[len(_OUTDIR):] if rel.startswith(_OUTDIR) else rel


# ---- recorded expectations ----------------------------------------------------------------


def record(c: Case, obs: Observed, dest: Path = DATA_DIR) -> None:
    d = dest / c.name
    if d.exists():
        shutil.rmtree(d)
    (d / "out").mkdir(parents=True)
    meta = {
        "case": c.name,
        "doc": c.doc,
        "args": [list(s.args) for s in c.steps],
        "kmod_timed_out": obs.timed_out,
        "steps": obs.steps,
        "files": obs.files,
        "outputs": sorted(obs.outputs),
    }
    try:
        text = json.dumps(meta, indent=1, ensure_ascii=False)
        text.encode()
    except UnicodeEncodeError:  # bytes that are not UTF-8 (kmod 34 prints a raw non-ASCII byte): escape them
        text = json.dumps(meta, indent=1)
    (d / "result.json").write_text(text + "\n")
    for i, out in enumerate(obs.stdouts):
        (d / f"stdout.{i}").write_bytes(out)
    for rel, data in obs.outputs.items():
        p = d / "out" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def load(name: str, src: Path = DATA_DIR) -> Observed:
    d = src / name
    meta = json.loads((d / "result.json").read_text())
    stdouts = [(d / f"stdout.{i}").read_bytes() for i in range(len(meta["steps"]))]
    outputs = {rel: (d / "out" / rel).read_bytes() for rel in meta["outputs"]}
    return Observed(meta["steps"], stdouts, meta["files"], outputs, meta["kmod_timed_out"])


# ---- comparison ---------------------------------------------------------------------------


def compare(c: Case, expected: Observed, got: Observed, release: int = 30) -> list[str]:
    """Differences between kmod's (expected) and moddeps' (got) results, as
    readable lines; empty when they agree."""
    if expected.timed_out:
        return _check_moddeps_only(c, got)
    if release >= 34 and any(str(line).startswith("FATAL: Module index: bad character")
                             for st in expected.steps for line in st["stderr"]):  # type: ignore[attr-defined]
        return _check_index_fatal(expected, got)
    problems: list[str] = []
    # moddeps' extra files are what kmod 30 does not write (kmod >= 33 writes modules.weakdep)
    extra = {_MODDIR + n: data for n, data in c.moddeps_extra.items()} if release < 33 else {}
    got_files = [f for f in got.files if f not in extra]
    got_outputs = dict(got.outputs)
    for rel, data in extra.items():
        if rel not in got_outputs:
            problems.append(f"moddeps did not write {rel}")
        elif got_outputs.pop(rel) != data:
            problems.append(f"{rel}: expected {data!r}, got {got.outputs[rel]!r}")
    if len(expected.steps) != len(got.steps):
        problems.append(f"ran {len(got.steps)} steps, expected {len(expected.steps)}")
    for i, (es, gs) in enumerate(zip(expected.steps, got.steps)):
        tag = f"step {i}" if len(expected.steps) > 1 else "run"
        if es["exit"] != gs["exit"]:
            problems.append(f"{tag}: exit status {gs['exit']}, kmod {es['exit']}")
        kmod_stderr = [line for line in es["stderr"] if not _libkmod_decompress_detail(line, release)]  # type: ignore[attr-defined]
        if kmod_stderr != gs["stderr"]:
            problems.append(f"{tag}: stderr differs:\n" + _diff(kmod_stderr, gs["stderr"]))  # type: ignore[arg-type]
        gw = [w for w in gs["written"] if w not in extra]  # type: ignore[union-attr]
        if es["written"] != gw:
            problems.append(f"{tag}: files written {gw}, kmod {es['written']}")
        if expected.stdouts[i] != got.stdouts[i]:
            problems.append(f"{tag}: stdout differs:\n" + _diff(
                expected.stdouts[i].decode("utf-8", "replace").splitlines(),
                got.stdouts[i].decode("utf-8", "replace").splitlines()))
    if expected.files != got_files:
        problems.append("file set differs:\n" + _diff(expected.files, got_files))
    for rel in sorted(set(expected.outputs) | set(got_outputs)):
        e, g = expected.outputs.get(rel), got_outputs.get(rel)
        if e is None or g is None:
            continue  # already reported through the file set
        if e != g:
            problems.append(f"{rel} differs: {describe_bytes_diff(e, g)}")
    return problems


def _libkmod_decompress_detail(line: str, release: int) -> bool:
    """libkmod 34 also logs its decompressor's error ("ERROR: xz: File is
    corrupt", "ERROR: zstd: ...") once per attempt to read a damaged module (it
    reads it up to three times); moddeps prints only depmod's own line for the
    module (a known difference, in the README)."""
    return release >= 34 and line.startswith(("ERROR: xz: ", "ERROR: zstd: ", "ERROR: zlib: "))


def _check_index_fatal(expected: Observed, got: Observed) -> list[str]:
    """kmod 34 stopped at a non-ASCII index string after writing some files
    (and leaving a temporary one); moddeps must stop with the same status and
    messages, and write nothing at all (deliberate difference: all or nothing)."""
    problems: list[str] = []
    es, gs = expected.steps[-1], got.steps[-1]
    if es["exit"] != gs["exit"]:
        problems.append(f"exit status {gs['exit']}, kmod {es['exit']}")
    if es["stderr"] != gs["stderr"]:
        problems.append("stderr differs:\n" + _diff(es["stderr"], gs["stderr"]))  # type: ignore[arg-type]
    if got.outputs:
        problems.append(f"moddeps wrote {sorted(got.outputs)}; it must write nothing")
    return problems


def _check_moddeps_only(c: Case, got: Observed) -> list[str]:
    """kmod hangs on this case: moddeps must fail with status 1, write nothing,
    and name every expected cycle."""
    problems: list[str] = []
    st = got.steps[-1]
    if st["exit"] != 1:
        problems.append(f"exit status {st['exit']}, expected 1")
    if got.outputs:
        problems.append(f"wrote {sorted(got.outputs)}")
    reported = []
    for line in st["stderr"]:  # type: ignore[union-attr]
        if line.startswith("ERROR: Cycle detected: "):
            reported.append(frozenset(line.removeprefix("ERROR: Cycle detected: ").split(" -> ")))
    for cyc in c.cycles:
        if cyc not in reported:
            problems.append(f"cycle {sorted(cyc)} not reported; stderr: {st['stderr']}")
    if not any(str(line).startswith("ERROR: Found ") for line in st["stderr"]):  # type: ignore[union-attr]
        problems.append("no 'Found N modules in dependency cycles!' line")
    return problems


def _diff(a: Sequence[str], b: Sequence[str]) -> str:
    import difflib

    return "\n".join(difflib.unified_diff(list(a), list(b), "kmod", "moddeps", lineterm="", n=2))


def describe_bytes_diff(e: bytes, g: bytes) -> str:
    """First differing line (text files) or byte (binary files)."""
    if b"\0" not in e and b"\0" not in g:
        el, gl = e.split(b"\n"), g.split(b"\n")
        for i, (x, y) in enumerate(zip(el, gl)):
            if x != y:
                return f"line {i + 1}: kmod {x!r}, moddeps {y!r}"
        return f"kmod has {len(el)} lines, moddeps {len(gl)}"
    for i, (x, y) in enumerate(zip(e, g)):
        if x != y:
            return f"byte {i:#x}: kmod {e[i:i + 16].hex()}, moddeps {g[i:i + 16].hex()} (sizes {len(e)}/{len(g)})"
    return f"sizes differ: kmod {len(e)}, moddeps {len(g)}"


def committed_cases() -> list[Case]:
    return [c for c in CASES.values() if not c.live_only]


__all__ = [
    "CASES",
    "Case",
    "Observed",
    "Step",
    "Tree",
    "committed_cases",
    "compare",
    "kmod_available",
    "load",
    "observe",
    "record",
    "run_kmod",
    "run_moddeps",
]
