"""Signatures in the scan: the walker (Python and C) against asn1crypto, the record, the cache, scan --json.

The fixtures are the modules of tests/data/signed (signed by the kernel's
sign-file) and mutations of their PKCS#7 messages; the Debian trees of the
conformance suite are checked the same way in
tests/conformance/test_signatures_debian.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from moddeps import signature as S
from moddeps.model import SignatureFacts
from moddeps.native import DECLINED
from moddeps.read import recordcodec as rc
from moddeps.read.elfreader import _elfscan, load_bytes, parse_module, parse_module_pyelftools, read_module
from moddeps.read.scan import scan_tree
from moddeps.report.jsonout import dumps, scan_document, scan_json

from .sigtools import RSA_DONOR, SHA1_DONOR, elf_image, resigned

FIXTURES = [RSA_DONOR, SHA1_DONOR, RSA_DONOR.with_name("mdx_signed.ko.xz")]
RSA = SignatureFacts("PKCS#7", "moddeps throwaway test key", "01:D2:C3:B4:A5:96:87:78:69:5A:4B:3C:2D:1E:0F", "sha256")
NOCN = SignatureFacts("PKCS#7", "key without a common name", "07", "sha1")


def _der(data: bytes) -> bytes:
    t = S.read_trailer(data)
    assert t is not None
    return data[t.sig_offset : t.sig_offset + t.sig_len]


def _asn1(der: bytes) -> SignatureFacts | None:
    sig = S.parse_pkcs7(der)
    return None if sig is None else S.facts_of(sig)


def test_fixture_facts_as_modinfo_prints_them() -> None:
    """The expected values are those of kmod's modinfo (tests/data/signed/*.modinfo)."""
    assert read_module(RSA_DONOR).signature == RSA
    assert read_module(FIXTURES[2]).signature == RSA
    assert read_module(SHA1_DONOR).signature == NOCN
    for f in FIXTURES:
        text = Path(str(f) + ".modinfo").read_text()
        facts = read_module(f).signature
        assert facts is not None
        assert f"signer:         {facts.signer}\n" in text
        assert f"sig_key:        {facts.key_id}\n" in text
        assert f"sig_hashalgo:   {facts.hash_algo}\n" in text


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_walker_c_and_asn1crypto_agree(path: Path) -> None:
    data = load_bytes(path)[0]
    der = _der(data)
    assert S.walk_pkcs7(der) == _asn1(der) is not None
    if _elfscan is not None:
        assert tuple(_elfscan.sig_facts(data)) == S.walk_pkcs7(der)
    assert parse_module_pyelftools(data, path.name).signature == S.walk_pkcs7(der)


def test_unsigned_module_has_no_signature() -> None:
    data = elf_image(load_bytes(RSA_DONOR)[0])
    assert S.scan_facts(data) is None
    assert parse_module(data, "m.ko").signature is None
    if _elfscan is not None:
        assert _elfscan.sig_facts(data) is None


def _mutations(der: bytes, n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        b = bytearray(der)
        for _ in range(rng.choice((1, 1, 2, 3))):
            op = rng.random()
            at = rng.randrange(len(b))
            if op < 0.6:
                b[at] = rng.randrange(256)
            elif op < 0.8:
                b[at] ^= 1 << rng.randrange(8)
            elif op < 0.9:
                del b[at : at + rng.randrange(1, 4)]
            else:
                b[at:at] = bytes([rng.randrange(256)])
        out.append(bytes(b))
    # the header bytes (tags and lengths of the first elements), where shapes differ
    for at in range(min(80, len(der))):
        for value in (0x00, 0x80, 0x81, 0xFF, der[at] ^ 0x20):
            out.append(der[:at] + bytes([value]) + der[at + 1 :])
    return out


@pytest.mark.parametrize("donor", [RSA_DONOR, SHA1_DONOR], ids=lambda p: p.name)
def test_walker_never_disagrees_with_asn1crypto_on_damaged_messages(donor: Path) -> None:
    """Where the walker gives facts they are asn1crypto's; where the C walker does, they are the
    Python walker's; scan_facts (walker, then asn1crypto) is asn1crypto's always."""
    data = load_bytes(donor)[0]
    t = S.read_trailer(data)
    assert t is not None
    der = _der(data)
    walked = declined = 0
    for bad in _mutations(der, 1500, len(der)):
        ref = _asn1(bad)
        got = S.walk_pkcs7(bad)
        if got is None:
            declined += 1
        else:
            walked += 1
            assert got == ref, bad.hex()
        module = data[: t.sig_offset] + bad + S._STRUCT.pack(0, 0, 2, 0, 0, len(bad)) + S.SIG_MAGIC
        facts = S.scan_facts(module)
        assert facts == (ref if ref is not None else SignatureFacts("PKCS#7", "", "", S.UNDECODABLE))
        if _elfscan is not None:
            c = _elfscan.sig_facts(module)
            assert c is DECLINED or tuple(c) == got, bad.hex()
    assert walked > 100 and declined > 100  # both paths were exercised


def test_trailer_edges_c_and_python() -> None:
    """Headers kmod rejects give no signature in either reader; pre-4.3 headers go to Python."""
    data = load_bytes(RSA_DONOR)[0]
    t = S.read_trailer(data)
    assert t is not None
    body = data[: t.sig_offset]
    der = _der(data)
    cases = {
        "sig_len 0": body + der + S._STRUCT.pack(0, 0, 2, 0, 0, 0) + S.SIG_MAGIC,
        "sig_len too long": body + der + S._STRUCT.pack(0, 0, 2, 0, 0, len(data)) + S.SIG_MAGIC,
        "algo 2": body + der + S._STRUCT.pack(2, 0, 2, 0, 0, len(der)) + S.SIG_MAGIC,
        "hash 9": body + der + S._STRUCT.pack(0, 9, 2, 0, 0, len(der)) + S.SIG_MAGIC,
        "id_type 3": body + der + S._STRUCT.pack(0, 0, 3, 0, 0, len(der)) + S.SIG_MAGIC,
        "marker only": S.SIG_MAGIC,
        "marker cut": data[:-1],
    }
    for name, blob in cases.items():
        assert S.scan_facts(blob) is None, name
        if _elfscan is not None:
            assert _elfscan.sig_facts(blob) is None, name
    x509 = body + b"signer" + b"\x01\x02" + b"SIG" + S._STRUCT.pack(1, 4, 1, 6, 2, 3) + S.SIG_MAGIC
    assert S.scan_facts(x509) == SignatureFacts("X509", "signer", "01:02", "sha256")
    if _elfscan is not None:
        assert _elfscan.sig_facts(x509) is DECLINED  # left to Python


def test_resigned_module_carries_the_donor_key() -> None:
    data = load_bytes(RSA_DONOR)[0]
    assert parse_module(resigned(data, SHA1_DONOR), "m.ko").signature == NOCN


def test_record_codec_keeps_the_signature_c_and_python() -> None:
    m = read_module(RSA_DONOR)
    blob = rc.py_pack(m)
    assert blob[0] == rc.FORMAT_SIGNED
    assert rc.py_unpack(blob) == m and rc.py_unpack(blob).signature == RSA
    assert type(rc.py_unpack(blob).signature) is SignatureFacts
    unsigned = parse_module(elf_image(load_bytes(RSA_DONOR)[0]), m.path)
    assert rc.py_pack(unsigned)[0] == rc.FORMAT
    if rc._native is not None:
        assert rc._native.pack(m) == blob
        got = rc.unpack(blob)
        assert got == m and type(got.signature) is SignatureFacts
        assert rc.unpack_many([blob, rc.py_pack(unsigned)]) == [m, unsigned]
        # the signature's four strings are counted: a signed record relabelled format 1 is refused
        with pytest.raises(ValueError):
            rc.unpack(bytes([rc.FORMAT]) + blob[1:])
    with pytest.raises(ValueError):
        rc.py_unpack(bytes([rc.FORMAT]) + blob[1:])
    with pytest.raises(ValueError):
        rc.py_unpack(bytes([rc.FORMAT_SIGNED]) + rc.py_pack(unsigned)[1:])


def test_wire_form_keeps_the_signature() -> None:
    from moddeps.model import Module

    m = read_module(SHA1_DONOR)
    back = Module.from_wire(m.to_wire())
    assert back == m and type(back.signature) is SignatureFacts


def _signed_tree(tmp_path: Path) -> Path:
    d = tmp_path / "lib" / "modules" / "6.1.0-50-cloud-amd64" / "kernel"
    d.mkdir(parents=True)
    (d / "a.ko").write_bytes(load_bytes(RSA_DONOR)[0])
    (d / "b.ko").write_bytes(load_bytes(SHA1_DONOR)[0])
    (d / "c.ko").write_bytes(elf_image(load_bytes(RSA_DONOR)[0]))
    return d.parent


def test_cache_keeps_the_signature(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import moddeps.read.pool as pool
    from moddeps.read.cache import ScanCache

    tree_dir = _signed_tree(tmp_path)
    cache = str(tmp_path / "cache.sqlite3")
    first = scan_tree(str(tree_dir), jobs=1, cache=ScanCache(cache))

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a module was read again")

    monkeypatch.setattr(pool, "parse_module", no_reading)  # the second scan is the cache's alone
    again = scan_tree(str(tree_dir), jobs=1, cache=ScanCache(cache))
    sigs = {m.name: m.signature for m in first.modules}
    assert sigs == {"a": RSA, "b": NOCN, "c": None}
    assert {m.name: m.signature for m in again.modules} == sigs
    assert all(type(m.signature) is SignatureFacts for m in again.modules if m.signature is not None)


def test_scan_json_carries_the_signature(tmp_path: Path) -> None:
    tree = scan_tree(str(_signed_tree(tmp_path)), jobs=1)
    text = scan_json(tree, tree.modules)
    assert text == dumps(scan_document(tree, tree.modules))
    got = {m["name"]: m["signature"] for m in json.loads(text)["modules"]}
    assert got == {
        "a": {"id_type": "PKCS#7", "signer": "moddeps throwaway test key",
              "key_id": "01d2c3b4a5968778695a4b3c2d1e0f", "hash_algo": "sha256"},
        "b": {"id_type": "PKCS#7", "signer": "key without a common name", "key_id": "07", "hash_algo": "sha1"},
        "c": None,
    }
