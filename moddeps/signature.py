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

The DER is parsed with asn1crypto, the one module of moddeps that imports it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

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
