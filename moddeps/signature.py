"""The signature appended to a kernel module, as the kernel writes it and kmod reads it.

``scripts/sign-file`` (and every distribution's signing tool after it)
appends to the module's ELF bytes, uncompressed, before any compression::

    [ module ELF                 ]
    [ signer's name              ]  signer_len bytes (0 for PKCS#7)
    [ key identifier             ]  key_id_len bytes (0 for PKCS#7)
    [ signature data             ]  sig_len bytes: for PKCS#7 a DER SignedData
    [ struct module_signature    ]  12 bytes, see _STRUCT
    [ "~Module signature appended~\\n" ]

(kernel include/linux/module_signature.h; the same layout is restated in
kmod libkmod/libkmod-signature.c.)  ``struct module_signature`` is
``u8 algo, u8 hash, u8 id_type, u8 signer_len, u8 key_id_len, u8 pad[3],
be32 sig_len``.  Since Linux 4.3 the kernel accepts only ``id_type`` 2
(PKCS#7, kernel commit 3f1e1bea34740 "MODSIGN: Use PKCS#7 messages as the
signature"): the signer, key and hash are then inside the DER message and the
other header fields are zero.

What ``modinfo`` prints from it (kmod libkmod/libkmod-signature.c,
kmod_module_signature_info and fill_pkcs7, v30 and v34.2):

* ``sig_id``: the name of ``id_type`` ("PGP", "X509", "PKCS#7");
* ``signer``: the *issuer* name of the first SignerInfo, reduced to its first
  commonName value -- or, when the name has no commonName, to the value of its
  *last* entry (the loop in x509_name_to_str leaves its cursor there) -- as
  the raw string bytes up to the first NUL;
* ``sig_key``: the issuer-and-serial's serial number as unsigned big-endian
  bytes (OpenSSL BN_bn2bin: no leading zero byte, nothing for 0);
* ``sig_hashalgo``: the SignerInfo's digest algorithm; kmod >= 32 prints
  OpenSSL's long name of the OID (OBJ_obj2txt, commit 510c8b7f7455), kmod 30
  and 31 map a fixed list of digests to kmod's own names;
* ``signature``: the SignerInfo's encryptedDigest octets.

The header is rejected (no signature at all, as kmod) when ``algo``, ``hash``
or ``id_type`` is out of kmod's tables, ``sig_len`` is 0, or the lengths do
not fit in the file.  A PKCS#7 message that OpenSSL's ``d2i_PKCS7`` would not
decode as signedData with an issuer-and-serial SignerInfo shows nothing in
modinfo either; :func:`read_signature` still reports it (``kmod_readable``
False), since the kernel would judge such a module by its signature too.

The DER is parsed with asn1crypto, the one module of moddeps that imports it,
everywhere but on the scan's hot path: :func:`scan_facts` reads the few facts
a scan records (signer, key id, digest) with :func:`walk_pkcs7`, a small DER
walker that accepts only the strict DER shape ``sign-file`` writes and
declines (returns None) anything else, which then goes to asn1crypto.  The
C reader (moddeps/_elfscan.c, ``sig_facts``) walks the same shape and declines
the same way.  asn1crypto costs 0.2-0.25 ms a signature plus 14-23 ms to
import; the walker ~10 us in Python, ~1 us in C.
"""

from __future__ import annotations

import os
import struct
from collections import Counter

from .model import Module, SignatureFacts, fsdecode
from .records import dataclass

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Sequence

SIG_MAGIC = b"~Module signature appended~\n"
_STRUCT = struct.Struct(">BBBBB3xI")  # struct module_signature, sig_len big-endian

#: kmod's tables (libkmod-signature.c), indexed by the header's bytes
PKEY_ALGO = ("DSA", "RSA")
PKEY_HASH_ALGO = ("md4", "md5", "sha1", "rmd160", "sha256", "sha384", "sha512", "sha224", "sm3")
PKEY_ID_TYPE = ("PGP", "X509", "PKCS#7")
PKEY_ID_PKCS7 = 2

#: OpenSSL's long names (what OBJ_obj2txt prints) of the digest OIDs a module may name
_OPENSSL_DIGEST_NAMES = {
    "1.2.840.113549.2.2": "md2",
    "1.2.840.113549.2.4": "md4",
    "1.2.840.113549.2.5": "md5",
    "2.5.8.3.101": "mdc2",
    "1.3.14.3.2.26": "sha1",
    "1.3.36.3.2.1": "ripemd160",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.5": "sha512-224",
    "2.16.840.1.101.3.4.2.6": "sha512-256",
    "2.16.840.1.101.3.4.2.7": "sha3-224",
    "2.16.840.1.101.3.4.2.8": "sha3-256",
    "2.16.840.1.101.3.4.2.9": "sha3-384",
    "2.16.840.1.101.3.4.2.10": "sha3-512",
    "2.16.840.1.101.3.4.2.11": "shake128",
    "2.16.840.1.101.3.4.2.12": "shake256",
    "1.2.156.10197.1.401": "sm3",
}
#: kmod 30/31's obj_to_hash_algo: the digests it knows, by OID, with kmod's names
_KMOD30_DIGEST_NAMES = {
    "1.2.840.113549.2.4": "md4",
    "1.2.840.113549.2.5": "md5",
    "1.3.14.3.2.26": "sha1",
    "1.3.36.3.2.1": "rmd160",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "1.2.156.10197.1.401": "sm3",
}
#: digests too weak to sign with (collisions are practical, or the digest is that old)
WEAK_HASHES = frozenset({"md2", "md4", "md5", "mdc2", "sha1", "rmd160", "ripemd160"})
_COMMON_NAME = "2.5.4.3"


@dataclass(frozen=True, slots=True)
class Trailer:
    """``struct module_signature`` and where the signature parts lie in the file."""

    algo: int
    hash: int
    id_type: int
    signer_len: int
    key_id_len: int
    sig_len: int
    sig_offset: int  # the signature data: data[sig_offset : sig_offset + sig_len]
    module_size: int  # bytes before the signer's name: the signed module

    @property
    def id_type_name(self) -> str:
        return PKEY_ID_TYPE[self.id_type]


@dataclass(frozen=True, slots=True)
class ModuleSignature:
    """A module's appended signature, decoded as far as kmod decodes it.

    ``signer``, ``key_id`` and ``signature`` are bytes as modinfo prints them
    (``signer`` already cut at its first NUL).  ``hash_algo`` is kmod 34's
    spelling (OpenSSL's long name, or the dotted OID for a digest OpenSSL
    does not know); :meth:`kmod_hash_algo` gives kmod 30's.
    """

    id_type: str  # "PKCS#7", or a pre-4.3 "X509" / "PGP"
    signer: bytes
    key_id: bytes
    hash_algo: str
    signature: bytes
    hash_oid: str | None = None  # PKCS#7: the digest algorithm OID
    #: PKCS#7: "issuer-serial" (what kmod and Linux's sign-file use by default),
    #: "key-identifier" (sign-file -k; kmod's OpenSSL decoder rejects it)
    signer_id: str = "issuer-serial"
    #: would kmod's modinfo show this signature at all
    kmod_readable: bool = True
    #: PKCS#7 with a subjectKeyIdentifier: that identifier
    subject_key_id: bytes | None = None
    #: the pre-4.3 header's own public-key algorithm ("RSA"), None for PKCS#7
    algo: str | None = None

    @property
    def weak_hash(self) -> bool:
        return self.hash_algo in WEAK_HASHES

    def kmod_hash_algo(self, kmod_version: int) -> str:
        """``sig_hashalgo`` as this kmod release prints it.

        kmod 30 and 31 index their own table with the digest's OpenSSL NID and
        have no entry for other digests (an out-of-bounds read in C; moddeps
        prints "unknown" there).
        """
        if kmod_version >= 32 or self.hash_oid is None:
            return self.hash_algo
        return _KMOD30_DIGEST_NAMES.get(self.hash_oid, "unknown")


def read_trailer(data: bytes) -> Trailer | None:
    """The header of an appended signature, checked as kmod checks it; None if unsigned."""
    size = len(data)
    magic_len = len(SIG_MAGIC)
    if size < magic_len or not data.endswith(SIG_MAGIC):
        return None
    size -= magic_len
    if size < _STRUCT.size:
        return None
    size -= _STRUCT.size
    algo, hash_, id_type, signer_len, key_id_len, sig_len = _STRUCT.unpack_from(data, size)
    if algo >= len(PKEY_ALGO) or hash_ >= len(PKEY_HASH_ALGO) or id_type >= len(PKEY_ID_TYPE):
        return None
    if sig_len == 0 or size < sig_len + signer_len + key_id_len:
        return None
    sig_offset = size - sig_len
    return Trailer(algo, hash_, id_type, signer_len, key_id_len, sig_len, sig_offset,
                   sig_offset - key_id_len - signer_len)


def read_signature(data: bytes) -> ModuleSignature | None:
    """The signature appended to a module's (decompressed) bytes, None if it has none.

    A PKCS#7 message that cannot be decoded at all gives None, as in kmod.
    """
    t = read_trailer(data)
    if t is None:
        return None
    sig = data[t.sig_offset : t.sig_offset + t.sig_len]
    if t.id_type == PKEY_ID_PKCS7:
        return parse_pkcs7(sig)
    # kmod fill_default: the parts laid out before the signature data
    key_id = data[t.sig_offset - t.key_id_len : t.sig_offset]
    signer = data[t.module_size : t.module_size + t.signer_len]
    return ModuleSignature(
        id_type=t.id_type_name, signer=signer.split(b"\0", 1)[0], key_id=key_id,
        hash_algo=PKEY_HASH_ALGO[t.hash], signature=sig, algo=PKEY_ALGO[t.algo],
    )


def digest_name(oid: str) -> str:
    """OpenSSL's long name of a digest OID, else the dotted OID (OBJ_obj2txt with names)."""
    return _OPENSSL_DIGEST_NAMES.get(oid, oid)


def parse_pkcs7(der: bytes) -> ModuleSignature | None:
    """The signer, serial, digest and signature of the first SignerInfo of a
    DER PKCS#7 / CMS SignedData; None when it is not one."""
    from asn1crypto import cms  # type: ignore[import-untyped]

    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            return None
        signer_infos = info["content"]["signer_infos"]
        if len(signer_infos) == 0:
            return None
        si = signer_infos[0]
        sid = si["sid"]
        oid = si["digest_algorithm"]["algorithm"].dotted
        signature = bytes(si["signature"].native)
        if sid.name == "issuer_and_serial_number":
            issuer = sid.chosen["issuer"]
            serial = int(sid.chosen["serial_number"].native)
            signer = _kmod_signer(issuer)
            key_id = abs(serial).to_bytes((abs(serial).bit_length() + 7) // 8, "big")
            return ModuleSignature("PKCS#7", signer, key_id, digest_name(oid), signature, oid)
        ski = bytes(sid.chosen.native)
        return ModuleSignature("PKCS#7", b"", b"", digest_name(oid), signature, oid,
                               signer_id="key-identifier", kmod_readable=False, subject_key_id=ski)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError):
        return None


def _kmod_signer(name: object) -> bytes:
    """kmod x509_name_to_str: the first commonName's value, else the last entry's,
    as the string's raw bytes up to a NUL; empty for an empty name."""
    from asn1crypto import core

    entries = [atv for rdn in name.chosen for atv in rdn]  # type: ignore[attr-defined]
    if not entries:
        return b""
    chosen = next((e for e in entries if e["type"].dotted == _COMMON_NAME), entries[-1])
    value = chosen["value"]
    raw = core.load(value.dump()).contents or b""
    return bytes(raw).split(b"\0", 1)[0]


# --------------------------------------------------------------------------
# The scan's facts, without asn1crypto on the common path
# --------------------------------------------------------------------------


def key_id_text(key_id: bytes) -> str:
    """A key id as modinfo's ``sig_key`` shows it, on one line: ``1F:40:02``."""
    return ":".join(f"{b:02X}" for b in key_id)


def facts_of(sig: ModuleSignature) -> SignatureFacts:
    """The facts a scan records of a decoded signature."""
    return SignatureFacts(sig.id_type, fsdecode(sig.signer), key_id_text(sig.key_id), sig.hash_algo)


#: what an appended trailer whose signature could not be decoded at all is recorded as
UNDECODABLE = "undecodable"


def scan_facts(data: bytes) -> SignatureFacts | None:
    """The signature facts of a module's (decompressed) bytes, None if it has no trailer.

    A trailer whose PKCS#7 message decodes neither with the walker nor with
    asn1crypto still makes the module *signed* for the kernel (which then
    rejects the signature, kernel/module/signing.c module_sig_check: -EBADMSG
    or -ENOKEY), so it is recorded with empty signer and key and the digest
    ``"undecodable"`` (kmod's modinfo shows no signature fields for it).
    """
    t = read_trailer(data)
    if t is None:
        return None
    if t.id_type == PKEY_ID_PKCS7:
        der = data[t.sig_offset : t.sig_offset + t.sig_len]
        walked = walk_pkcs7(der)
        if walked is not None:
            return walked
        sig = parse_pkcs7(der)
        if sig is None:
            return SignatureFacts("PKCS#7", "", "", UNDECODABLE)
        return facts_of(sig)
    sig = read_signature(data)
    assert sig is not None  # a valid trailer of another id type always decodes
    return facts_of(sig)


class _Decline(Exception):
    """The walker met something it does not model: asn1crypto decides."""


_SIGNED_DATA_OID = bytes.fromhex("2a864886f70d010702")  # 1.2.840.113549.1.7.2
#: attribute types whose values the walker reads (DirectoryString or IA5String), as DER OID bytes
_NAME_ATTRS = {
    bytes.fromhex("550403"): "cn", bytes.fromhex("55040a"): "dir", bytes.fromhex("55040b"): "dir",
    bytes.fromhex("550407"): "dir", bytes.fromhex("550408"): "dir",
    bytes.fromhex("2a864886f70d010901"): "ia5",  # emailAddress
}
#: DirectoryString's alternatives: TeletexString, PrintableString, UniversalString, UTF8String, BMPString
_DIRECTORY_TAGS = frozenset({0x14, 0x13, 0x1C, 0x0C, 0x1E})


def _tlv(der: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``; declines
    on BER forms (indefinite or non-minimal lengths), multi-byte tags, overruns."""
    if pos + 2 > end:
        raise _Decline
    tag = der[pos]
    if tag & 0x1F == 0x1F:
        raise _Decline
    n = der[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > end or der[pos] == 0:
            raise _Decline
        n = int.from_bytes(der[pos : pos + k], "big")
        if n < 0x80 or n < 1 << (8 * (k - 1)):
            raise _Decline
        pos += k
    if pos + n > end:
        raise _Decline
    return tag, pos, pos + n


def _expect(der: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    t, start, stop = _tlv(der, pos, end)
    if t != tag:
        raise _Decline
    return start, stop


def _oid_text(raw: bytes) -> str:
    if not raw or raw[-1] & 0x80 or raw[0] == 0x80:
        raise _Decline
    arcs: list[int] = []
    value = 0
    for b in raw:
        if value == 0 and b == 0x80:
            raise _Decline  # a non-minimal arc
        value = value << 7 | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(map(str, head + arcs[1:]))


def _walk_name(der: bytes, start: int, end: int) -> bytes:
    """kmod's signer of an issuer Name (see :func:`_kmod_signer`)."""
    chosen: bytes | None = None
    last: bytes | None = None
    pos = start
    while pos < end:
        rs, re_ = _expect(der, pos, end, 0x31)  # RelativeDistinguishedName
        if rs == re_:
            raise _Decline
        p = rs
        while p < re_:
            a_start, a_end = _expect(der, p, re_, 0x30)  # AttributeTypeAndValue
            o_start, o_end = _expect(der, a_start, a_end, 0x06)
            kind = _NAME_ATTRS.get(der[o_start:o_end])
            vtag, v_start, v_end = _tlv(der, o_end, a_end)
            if kind is None or v_end != a_end:
                raise _Decline
            if (vtag != 0x16) if kind == "ia5" else (vtag not in _DIRECTORY_TAGS):
                raise _Decline
            last = der[v_start:v_end]
            if kind == "cn" and chosen is None:
                chosen = last
            p = a_end
        pos = re_
    raw = chosen if chosen is not None else last
    return b"" if raw is None else raw.split(b"\0", 1)[0]


def walk_pkcs7(der: bytes) -> SignatureFacts | None:
    """The scan's facts of a DER PKCS#7 SignedData as ``sign-file`` writes it,
    or None when the message has any other shape (asn1crypto then decides).

    Walked: ContentInfo { signedData OID, [0] { SignedData { version,
    digestAlgorithms SET, encapContentInfo, [0] certificates?, [1] crls?,
    signerInfos SET { SignerInfo { version, sid, digestAlgorithm, [0]
    signedAttrs?, signatureAlgorithm, signature OCTET STRING, [1]
    unsignedAttrs? } ... } } } } (RFC 5652 section 5), every element in strict
    DER, nothing after the ContentInfo.  Only the first SignerInfo is read,
    as kmod and :func:`parse_pkcs7` read it.
    """
    try:
        end = len(der)
        cs, ce = _expect(der, 0, end, 0x30)
        if ce != end:
            raise _Decline
        os_, oe = _expect(der, cs, ce, 0x06)
        if der[os_:oe] != _SIGNED_DATA_OID:
            raise _Decline
        xs, xe = _expect(der, oe, ce, 0xA0)
        if xe != ce:
            raise _Decline
        ss, se = _expect(der, xs, xe, 0x30)
        if se != xe:
            raise _Decline
        _, p = _expect(der, ss, se, 0x02)  # version
        _, p = _expect(der, p, se, 0x31)  # digestAlgorithms
        _, p = _expect(der, p, se, 0x30)  # encapContentInfo
        tag, _, stop = _tlv(der, p, se)
        if tag == 0xA0:  # certificates
            p = stop
            tag, _, stop = _tlv(der, p, se)
        if tag == 0xA1:  # crls
            p = stop
        sis, sie = _expect(der, p, se, 0x31)
        if sie != se:
            raise _Decline
        # every SignerInfo must be a SEQUENCE; only the first is read
        first = _expect(der, sis, sie, 0x30)
        q = first[1]
        while q < sie:
            q = _expect(der, q, sie, 0x30)[1]
        i_start, i_end = first
        _, p = _expect(der, i_start, i_end, 0x02)  # version
        tag, sid_s, sid_e = _tlv(der, p, i_end)
        if tag == 0x30:
            n_s, n_e = _expect(der, sid_s, sid_e, 0x30)
            signer = _walk_name(der, n_s, n_e)
            sn_s, sn_e = _expect(der, n_e, sid_e, 0x02)
            if sn_e != sid_e or sn_s == sn_e:
                raise _Decline
            raw = der[sn_s:sn_e]
            if len(raw) > 1 and ((raw[0] == 0 and raw[1] < 0x80) or (raw[0] == 0xFF and raw[1] >= 0x80)):
                raise _Decline  # a non-minimal INTEGER
            serial = abs(int.from_bytes(raw, "big", signed=True))
            key_id = serial.to_bytes((serial.bit_length() + 7) // 8, "big")
        elif tag == 0x80:  # [0] subjectKeyIdentifier: kmod shows neither signer nor key
            signer, key_id = b"", b""
        else:
            raise _Decline
        da_s, da_e = _expect(der, sid_e, i_end, 0x30)
        o_s, o_e = _expect(der, da_s, da_e, 0x06)
        if o_e != da_e:
            tag, _, stop = _tlv(der, o_e, da_e)
            if tag != 0x05 or stop != da_e or stop - o_e != 2:  # NULL parameters
                raise _Decline
        oid = _oid_text(der[o_s:o_e])
        tag, _, p = _tlv(der, da_e, i_end)
        if tag == 0xA0:  # signedAttrs
            tag, _, p = _tlv(der, p, i_end)
        if tag != 0x30:  # signatureAlgorithm
            raise _Decline
        tag, _, p = _tlv(der, p, i_end)
        if tag != 0x04:  # signature
            raise _Decline
        if p != i_end:
            tag, _, p = _tlv(der, p, i_end)
            if tag != 0xA1 or p != i_end:
                raise _Decline
        return SignatureFacts("PKCS#7", fsdecode(signer), key_id_text(key_id), digest_name(oid))
    except _Decline:
        return None


# --------------------------------------------------------------------------
# A tree's signing policy: what the audit and compat judge signatures by
# --------------------------------------------------------------------------
#
# The kernel's rules (kernel/module/signing.c, module_sig_check, Linux 5.4 to
# 7.x; the lockdown hook since 5.4, commit 49fcf732bdae "lockdown: Enforce
# module signatures if the kernel is locked down"):
#
# * no "~Module signature appended~" marker: -ENODATA, "unsigned module";
# * a marker, but a signature made by a key none of the kernel's keyrings
#   holds (builtin, secondary, platform/MOK): -ENOKEY, "module with
#   unavailable key"; an id type other than PKCS#7: -ENOPKG;
# * for these three, is_module_sig_enforced() (CONFIG_MODULE_SIG_FORCE=y, or
#   module.sig_enforce=1 on the command line) refuses the module with
#   -EKEYREJECTED ("Loading of unsigned module is rejected"); otherwise
#   security_locked_down(LOCKDOWN_MODULE_SIGNATURE) refuses it with -EPERM
#   when the kernel is locked down (Secure Boot with
#   CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT, or lockdown=), and else the module
#   loads and taints the kernel (TAINT_UNSIGNED_MODULE, "module verification
#   failed: signature and/or required key missing - tainting kernel");
# * any other failure (a signature that does not parse, -EBADMSG; one that
#   does not match the module, -EKEYREJECTED) refuses the module even when
#   nothing is enforced.
#
# A kernel without CONFIG_MODULE_SIG checks nothing.  SHA-1 signatures are
# still verified (commit 16ab7cb5825f removed SHA-1 from PKCS#7 and was
# reverted before Linux 6.9 by 203a6763ab69): a weak digest is reported, it
# is not a refusal.

#: Directories of a module tree holding modules not built with the kernel
#: (kmod's default search order, depmod.d(5); DKMS installs under updates/dkms)
OUT_OF_TREE_DIRS = ("updates", "extra", "weak-updates")


def out_of_tree_path(relpath: str | None) -> bool:
    """Whether a module's place in the tree says it was not built with the kernel:
    under ``updates/``, ``extra/`` or ``weak-updates/``, a ``dkms`` directory, or outside the tree."""
    if relpath is None:
        return True
    parts = relpath.split("/")
    return parts[0] in OUT_OF_TREE_DIRS or any("dkms" in p.lower() for p in parts[:-1])


def read_kernel_config(dirname: str, version: str) -> tuple[str, dict[str, str]] | None:
    """The kernel's configuration, where a module tree keeps it: ``DIR/config``
    (Debian 14's linux-modules), ``ROOT/boot/config-VERSION`` (for
    ``ROOT/lib/modules/VERSION`` or ``ROOT/usr/lib/modules/VERSION``), then
    ``DIR/build/.config``.  Returns (path, {"CONFIG_X": value}), "n" for
    ``# CONFIG_X is not set``; None when there is none."""
    from .inputfiles import read_input_or_none

    d = dirname.rstrip("/") or "/"
    candidates = [f"{d}/config"]
    head, tail = os.path.split(d)
    for suffix in ("/usr/lib/modules", "/lib/modules"):
        if head.endswith(suffix):
            root = head[: -len(suffix)]
            candidates.append(f"{root}/boot/config-{version or tail}")
            break
    candidates.append(f"{d}/build/.config")
    for path in candidates:
        try:
            data = read_input_or_none(path)
        except OSError:
            continue
        if data is None:
            continue
        values: dict[str, str] = {}
        for raw in data.decode("utf-8", "replace").splitlines():
            line = raw.strip()
            if line.startswith("CONFIG_") and "=" in line:
                key, _, value = line.partition("=")
                values[key] = value.strip('"')
            elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
                values[line[2:-len(" is not set")]] = "n"
        return path, values
    return None


@dataclass(frozen=True, slots=True)
class SigningPolicy:
    """How a tree's kernel treats module signatures, as far as its files tell."""

    #: the kernel checks signatures: CONFIG_MODULE_SIG=y in its config, or (no
    #: config) more than half of the in-tree modules are signed
    checks: bool
    #: CONFIG_MODULE_SIG_FORCE=y: an unsigned module, or one signed by an unknown key, is refused
    enforced: bool
    #: how ``checks`` was decided, for messages
    basis: str
    config: str | None
    #: the (signer, key id) most in-tree modules are signed with: the key the kernel trusts
    key: tuple[str, str] | None
    intree_modules: int
    intree_signed: int
    #: CONFIG_MODULE_SIG_HASH, when the config names it
    hash_algo: str | None = None

    def trusts(self, sig: SignatureFacts) -> bool:
        """Whether ``sig`` is by the in-tree modules' key (False when there is none)."""
        return self.key is not None and (sig.signer, sig.key_id) == self.key


def signing_policy(dirname: str, version: str, modules: Sequence[tuple[str | None, Module]]) -> SigningPolicy:
    """The :class:`SigningPolicy` of a tree from its config and its (relpath, module) pairs."""
    intree = [m for rel, m in modules if m.error is None and not out_of_tree_path(rel)]
    signed = [m.signature for m in intree if m.signature is not None]
    keys = Counter((s.signer, s.key_id) for s in signed if s.hash_algo != UNDECODABLE)
    key = min(keys, key=lambda k: (-keys[k], k)) if keys else None
    cfg = read_kernel_config(dirname, version)
    if cfg is not None:
        path, values = cfg
        checks = values.get("CONFIG_MODULE_SIG") == "y"
        basis = f"{path} has CONFIG_MODULE_SIG={values.get('CONFIG_MODULE_SIG', 'n')}"
        return SigningPolicy(checks, checks and values.get("CONFIG_MODULE_SIG_FORCE") == "y", basis, path, key,
                             len(intree), len(signed), values.get("CONFIG_MODULE_SIG_HASH"))
    checks = bool(intree) and 2 * len(signed) > len(intree)
    basis = f"{len(signed)} of the {len(intree)} in-tree modules are signed (no kernel config found)"
    return SigningPolicy(checks, False, basis, None, key, len(intree), len(signed))


def key_text(signer: str, key_id: str) -> str:
    """A key as messages name it: ``'Build time autogenerated kernel key' (key id 1F:40:...)``."""
    return f"'{signer}' (key id {key_id or 'none'})"
