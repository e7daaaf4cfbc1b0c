"""Plain, frozen records passed between the stages of moddeps.  No I/O here.

Strings that come from module files (symbol names, modinfo values, paths)
are decoded with ``surrogateescape`` so that any byte survives the round trip:
``s.encode("utf-8", "surrogateescape")`` gives back the exact bytes.  The
depmod writers rely on that to stay byte-identical with kmod.
"""

from __future__ import annotations

from .records import dataclass, field
from .typeshim import NamedTuple

#: Bump whenever the reader starts extracting something different: the scan
#: cache never trusts entries written under another version.  2: GPL-only
#: flags from Linux 7.1+ ``__kflagstab``, import CRCs from 6.14+ extended
#: modversions (``Import.ext_crc``).  3: the appended signature
#: (``Module.signature``).  4: compressed modules accepted and refused as
#: libkmod 34.2 does (xz streams and padding, one sized zstd frame).
READER_SCHEMA = 4


def fsdecode(b: bytes) -> str:
    """Decode bytes from a module or a tree, losslessly."""
    return b.decode("utf-8", "surrogateescape")


def fsencode(s: str) -> bytes:
    """The exact bytes behind a string made by :func:`fsdecode`."""
    return s.encode("utf-8", "surrogateescape")


def printable(s: str) -> str:
    """``s`` with control characters escaped, so that a message stays on one line."""
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in s)


def crc_text(crc: int | None) -> str | None:
    """A CRC as JSON and reports show it (``0x%08x``), None when there is none."""
    return None if crc is None else f"0x{crc:08x}"


def modname_from_path(path: str) -> str:
    """kmod's module name for a file: the basename up to the first ``.``, ``-`` → ``_``.

    kmod libkmod/libkmod-util.c (path_to_modname): the ``name=`` modinfo field
    is not consulted.  ``Foo-Bar.ko.xz`` → ``Foo_Bar``, ``foo.bar.ko`` → ``foo``.
    """
    base = path.rsplit("/", 1)[-1]
    return base.split(".", 1)[0].replace("-", "_")


class Export(NamedTuple):
    """A symbol a module provides, as kmod's depmod sees it (in kmod's order).

    ``crc`` is None when the module carries no CRC for it.  ``gpl_only`` and
    ``namespace`` come from the ``__ksymtab_*`` / ``__kstrtabns_*`` symbols.
    ``pseudo`` marks a namespace *name* that kmod 30 counts as an export
    because it read ``__ksymtab_strings`` (modules built without
    CONFIG_MODVERSIONS); it is not a real symbol.
    """

    name: str
    crc: int | None
    gpl_only: bool = False
    namespace: str | None = None
    pseudo: bool = False


class Import(NamedTuple):
    """A symbol a module needs, in kmod's order (symtab order, then the
    ``__versions`` records that matched no undefined symbol, then the
    extended-modversions records that matched neither).

    ``crc`` comes from ``__versions`` (None: no record), or, for a name that
    has no ``__versions`` record, from the extended tables of Linux 6.14+
    (``__version_ext_names`` / ``__version_ext_crcs``): then ``ext_crc`` is
    set.  kmod 34 reads only ``__versions``, so for kmod such an import has
    no CRC, and a record that is only in the extended tables does not exist.
    ``weak`` is an ``STB_WEAK`` undefined symbol.  ``versions_only`` marks a
    record without an undefined symbol (typically ``module_layout``).
    """

    name: str
    crc: int | None
    weak: bool = False
    versions_only: bool = False
    ext_crc: bool = False


class SignatureFacts(NamedTuple):
    """What a scan records of a module's appended signature (see moddeps.signature).

    ``id_type`` is modinfo's ``sig_id`` ("PKCS#7"; "X509" or "PGP" before
    Linux 4.3); ``signer`` its ``signer`` (the issuer's commonName, as kmod
    reduces it); ``key_id`` its ``sig_key`` on one line (``"1F:40:02"``: the
    certificate serial for PKCS#7); ``hash_algo`` its ``sig_hashalgo`` as kmod
    34 prints it (OpenSSL's long name, e.g. "sha256").  A signature that
    cannot be decoded has empty ``signer`` and ``key_id`` and ``hash_algo``
    "undecodable"; a PKCS#7 signer identified by subjectKeyIdentifier (kmod
    shows no signer) has empty ``signer`` and ``key_id``.
    """

    id_type: str
    signer: str
    key_id: str
    hash_algo: str


@dataclass(frozen=True, slots=True)
class Module:
    """Everything moddeps knows about one module file.

    A file that could not be read still gets a record (kmod lists it in
    ``modules.dep`` with no dependencies): ``error`` says why, and the
    symbol and modinfo fields are empty.
    """

    name: str
    path: str
    exports: tuple[Export, ...] = ()
    imports: tuple[Import, ...] = ()
    modinfo: tuple[tuple[str, str], ...] = ()
    has_init: bool = False
    has_exit: bool = False
    machine: int = 0
    elf_class: int = 0  # 32 or 64
    byte_order: str = ""  # "little" or "big"
    compression: str | None = None  # None, "xz", "zstd", "gzip"
    error: str | None = None
    kmod_error: str | None = None  # the strerror kmod prints for this file
    signature: SignatureFacts | None = None  # None: no signature appended

    def info(self, key: str) -> tuple[str, ...]:
        """All ``.modinfo`` values for ``key``, in file order."""
        return tuple(v for k, v in self.modinfo if k == key)

    def info_first(self, key: str) -> str | None:
        for k, v in self.modinfo:
            if k == key:
                return v
        return None

    @property
    def license(self) -> str | None:
        return self.info_first("license")

    @property
    def vermagic(self) -> str | None:
        return self.info_first("vermagic")

    @property
    def aliases(self) -> tuple[str, ...]:
        return self.info("alias")

    @property
    def softdeps(self) -> tuple[str, ...]:
        return self.info("softdep")

    @property
    def weakdeps(self) -> tuple[str, ...]:
        return self.info("weakdep")

    @property
    def imported_namespaces(self) -> tuple[str, ...]:
        return self.info("import_ns")

    @property
    def firmware(self) -> tuple[str, ...]:
        return self.info("firmware")

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_wire(self) -> tuple[object, ...]:
        """Plain nested tuples (fast to pickle or marshal; see :meth:`from_wire`).

        Unpickling 188,000 NamedTuple instances costs ~7x more than the same
        data as plain tuples, which made the parent of the process pool the
        bottleneck of a scan; the scan cache stores this form too.
        """
        return (
            self.name, self.path, tuple(map(tuple, self.exports)), tuple(map(tuple, self.imports)), self.modinfo,
            self.has_init, self.has_exit, self.machine, self.elf_class, self.byte_order, self.compression,
            self.error, self.kmod_error, None if self.signature is None else tuple(self.signature),
        )

    @classmethod
    def from_wire(cls, w: tuple[object, ...], memo: dict[tuple[object, ...], Import] | None = None) -> Module:
        """The Module of :meth:`to_wire`'s tuple.

        ``memo``, shared by the modules of one scan, makes equal imports one
        object: a tree holds ~10x fewer distinct imports than imports (amd64:
        18,074 of 188,599), which saves most of a scan's memory and costs no time.
        """
        new = tuple.__new__
        exports: tuple[tuple[object, ...], ...] = w[2]  # type: ignore[assignment]
        imports: tuple[tuple[object, ...], ...] = w[3]  # type: ignore[assignment]
        if memo is None:
            made = tuple([new(Import, i) for i in imports])
        else:
            get, put = memo.get, memo.setdefault
            made = tuple([get(i) or put(i, new(Import, i)) for i in imports])
        sig: tuple[object, ...] | None = w[13] if len(w) > 13 else None  # type: ignore[assignment]
        return cls(
            w[0], w[1],  # type: ignore[arg-type]
            tuple([new(Export, e) for e in exports]),
            made,
            *w[4:13],  # type: ignore[arg-type]
            None if sig is None else new(SignatureFacts, sig),  # type: ignore[call-arg]
        )

    @property
    def permanent(self) -> bool:
        """Loaded for good: an init function but no exit function.

        The kernel (kernel/module/main.c, delete_module) refuses to unload a
        module whose ``init`` is set and ``exit`` is not, unless forced.
        """
        return self.has_init and not self.has_exit


@dataclass(frozen=True, slots=True)
class KernelSymbol:
    """A symbol the kernel image itself provides (Module.symvers / System.map)."""

    name: str
    crc: int | None
    gpl_only: bool = False
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class KernelSymbols:
    """The kernel's own exports, from ``Module.symvers`` or ``System.map``."""

    source: str  # path of the file read
    kind: str  # "symvers" or "system.map"
    symbols: dict[str, KernelSymbol] = field(default_factory=dict, hash=False)
    messages: tuple[str, ...] = ()  # kmod-style diagnostics produced while reading


@dataclass(frozen=True, slots=True)
class FileProblem:
    """A file met during a scan that could not be used, and why."""

    path: str
    reason: str
    kmod_message: str | None = None  # what kmod's depmod prints for it, if anything
