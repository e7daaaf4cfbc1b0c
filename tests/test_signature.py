"""moddeps.signature: the appended module signature, on modules signed by the kernel's
sign-file (tests/data/signed/README.md) and on trailers built here byte by byte."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from moddeps.read.elfreader import load_bytes
from moddeps.signature import PKEY_HASH_ALGO, SIG_MAGIC, parse_pkcs7, read_signature, read_trailer

DATA = Path(__file__).parent / "data" / "signed"
RSA_SERIAL = bytes.fromhex("01d2c3b4a5968778695a4b3c2d1e0f")


def _data(name: str) -> bytes:
    return load_bytes(DATA / name)[0]


def _pkcs7(name: str) -> bytes:
    data = _data(name)
    t = read_trailer(data)
    assert t is not None
    return data[t.sig_offset : t.sig_offset + t.sig_len]


def test_sha256_rsa_module() -> None:
    sig = read_signature(_data("mdx_signed.ko"))
    assert sig is not None
    assert sig.id_type == "PKCS#7"
    assert sig.signer == b"moddeps throwaway test key"
    assert sig.key_id == RSA_SERIAL  # the serial, its leading zero nibble dropped as BN_bn2bin does
    assert sig.hash_algo == "sha256" and sig.hash_oid == "2.16.840.1.101.3.4.2.1"
    assert len(sig.signature) == 256 and not sig.weak_hash
    assert sig.kmod_readable and sig.signer_id == "issuer-serial"


def test_compressed_module_has_the_same_signature() -> None:
    assert read_signature(_data("mdx_signed.ko.xz")) == read_signature(_data("mdx_signed.ko"))


def test_issuer_without_common_name_gives_the_last_entry() -> None:
    sig = read_signature(_data("mdx_signed_sha1.ko"))
    assert sig is not None
    assert sig.signer == b"key without a common name"  # O=..., OU=...: kmod takes the last entry
    assert sig.key_id == b"\x07"
    assert sig.hash_algo == "sha1" and sig.weak_hash


def test_trailer_layout() -> None:
    data = _data("mdx_signed.ko")
    t = read_trailer(data)
    assert t is not None
    assert (t.algo, t.hash, t.id_type, t.signer_len, t.key_id_len) == (0, 0, 2, 0, 0)
    assert t.sig_offset + t.sig_len + 12 + len(SIG_MAGIC) == len(data)
    assert data[: t.module_size].startswith(b"\x7fELF")
    assert data[t.sig_offset] == 0x30  # a DER SEQUENCE


def test_unsigned_module() -> None:
    plain = Path(__file__).parent.parent / "sample_modules/lib/modules/6.1.0-50-cloud-amd64/kernel/samples/mdx"
    assert read_signature((plain / "mdx_softdep.ko").read_bytes()) is None


def _trailer(body: bytes, *, algo: int = 0, hash_: int = 0, id_type: int = 2, signer: bytes = b"",
             key_id: bytes = b"", sig_len: int | None = None) -> bytes:
    n = len(body) if sig_len is None else sig_len
    header = struct.pack(">BBBBB3xI", algo, hash_, id_type, len(signer), len(key_id), n)
    return signer + key_id + body + header + SIG_MAGIC


@pytest.mark.parametrize("mutate", [
    {"algo": 2}, {"hash_": 9}, {"id_type": 3}, {"sig_len": 0}, {"sig_len": 10_000},
])
def test_headers_kmod_rejects(mutate: dict[str, int]) -> None:
    data = b"\x7fELF" + b"\0" * 60 + _trailer(_pkcs7("mdx_signed.ko"), **mutate)
    assert read_signature(data) is None


def test_too_short_for_a_header() -> None:
    assert read_signature(SIG_MAGIC) is None
    assert read_signature(b"\0" * 5 + SIG_MAGIC) is None


def test_pre_pkcs7_header_uses_its_own_fields() -> None:
    data = b"ELF" + _trailer(b"\x01\x02\x03", algo=1, hash_=4, id_type=1, signer=b"Old signer\0junk",
                             key_id=b"\xab\xcd")
    sig = read_signature(data)
    assert sig is not None
    assert (sig.id_type, sig.algo, sig.hash_algo) == ("X509", "RSA", "sha256")
    assert sig.signer == b"Old signer"  # printed as a C string
    assert sig.key_id == b"\xab\xcd" and sig.signature == b"\x01\x02\x03"


@pytest.mark.parametrize("der", [b"", b"\x30\x00", b"\x04\x03abc", b"garbage that is not DER at all"])
def test_undecodable_pkcs7_is_no_signature(der: bytes) -> None:
    assert parse_pkcs7(der) is None
    assert read_signature(b"ELF" + _trailer(der or b"x")) is None


def test_truncated_pkcs7_is_no_signature() -> None:
    der = _pkcs7("mdx_signed.ko")
    for cut in (1, 10, 100, len(der) // 2, len(der) - 1):
        assert parse_pkcs7(der[:cut]) is None, cut


def test_kmod30_hash_names() -> None:
    sig = read_signature(_data("mdx_signed.ko"))
    assert sig is not None
    assert sig.kmod_hash_algo(30) == sig.kmod_hash_algo(34) == "sha256"
    ripemd = type(sig)("PKCS#7", b"", b"", "ripemd160", b"", "1.3.36.3.2.1")
    assert ripemd.kmod_hash_algo(30) == "rmd160" and ripemd.kmod_hash_algo(34) == "ripemd160"
    assert ripemd.weak_hash
    assert len(PKEY_HASH_ALGO) == 9  # kmod: hash index 9 and above rejects the header
