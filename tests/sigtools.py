"""Test helpers: give a module another appended signature, or none.

A signature is moved as bytes: everything a donor file carries after its ELF
image (signer, key id, PKCS#7 message, ``struct module_signature``, the
marker) is appended to another module's ELF image.  The result carries the
donor's signer, key and digest exactly as ``sign-file`` wrote them; the
signature does not verify over the new bytes, which nothing here checks (the
kernel would refuse such a module with EKEYREJECTED whatever it enforces --
the facts read, signer and key, are those of a module re-signed with that key).
"""

from __future__ import annotations

import lzma
import os
from pathlib import Path

from moddeps.read.elfreader import load_bytes
from moddeps.signature import read_trailer

SIGNED = Path(__file__).parent / "data" / "signed"
#: the throwaway keys of tests/data/signed (README there): RSA "moddeps throwaway test key", sha256
RSA_DONOR = SIGNED / "mdx_signed.ko"
#: the key without a common name, sha1
SHA1_DONOR = SIGNED / "mdx_signed_sha1.ko"


def elf_image(data: bytes) -> bytes:
    """A module's bytes without their appended signature (all of them when unsigned)."""
    t = read_trailer(data)
    return data if t is None else data[: t.module_size]


def signature_blob(donor: bytes) -> bytes:
    t = read_trailer(donor)
    assert t is not None, "the donor is not signed"
    return donor[t.module_size :]


def resigned(data: bytes, donor: Path) -> bytes:
    """``data`` with its own signature replaced by the donor file's."""
    return elf_image(data) + signature_blob(load_bytes(donor)[0])


def rewrite_module(path: Path, change: str, donor: Path = RSA_DONOR) -> None:
    """Replace the module file at ``path`` (never written in place: it may be a hard link
    to a pristine tree) by one stripped of its signature (``change="strip"``) or re-signed
    with the donor's (``"resign"``), compressed as it was (xz with CRC32 as Kbuild does)."""
    data, kind = load_bytes(path)
    new = elf_image(data) if change == "strip" else resigned(data, donor)
    if kind == "xz":
        out = lzma.compress(new, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    elif kind is None:
        out = new
    else:
        raise ValueError(f"{path}: {kind} not handled here")
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(out)
    os.replace(tmp, path)
