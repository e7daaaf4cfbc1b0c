"""Regenerate the hand-made part of the fuzz corpus: ``python -m tests.fuzz.corpus.make_corpus``.

The files are committed; this script documents how each was made (inputs
found by fuzzing were minimised and written the same way).  Names start with
the expected outcome (see README.md).
"""

from __future__ import annotations

import struct
from pathlib import Path

from tests import kobuild
from tests.kobuild import Export, Sym, build_ko

HERE = Path(__file__).resolve().parent


def _fill(data: bytes, section: str, byte: int) -> bytes:
    g, i = kobuild._find_section(data, section)
    hdr = kobuild._shdr(data, g, i)
    out = bytearray(data)
    out[hdr["sh_offset"] : hdr["sh_offset"] + hdr["sh_size"]] = bytes([byte]) * hdr["sh_size"]
    return bytes(out)


def _zstd_rle_bomb(total: int, block: int = 128 * 1024) -> bytes:
    """A zstd frame of ``total`` bytes of 'A' made of RLE blocks: 4 bytes per 128 KiB."""
    # frame header descriptor 0: no content size, no checksum, window descriptor follows
    out = bytearray(b"\x28\xb5\x2f\xfd" + b"\x00" + bytes([(17 - 10) << 3]))  # window 128 KiB
    left = total
    while left:
        n = min(block, left)
        left -= n
        last = 1 if left == 0 else 0
        header = last | (1 << 1) | (n << 3)  # block type 1 = RLE
        out += header.to_bytes(3, "little") + b"A"
    return bytes(out)


def reader() -> dict[str, bytes]:
    base = build_ko(modinfo=["license=GPL", "alias=pci:v*d*"], exports=[Export(name="e_fn", crc=5)],
                    undefined=["printk"], versions=[("printk", 1)])
    files: dict[str, bytes] = {}
    # -- limits: one file must not cost gigabytes (found by fuzzing, minimised)
    # 1000 undefined symbols that all name the same 20 kB string: the reader
    # copies the string once per symbol (20 MB for a 45 kB file).
    files["any-long-shared-symbol-name.ko"] = build_ko(undefined=["A" * 20000] * 1000, init=False, exit=False)
    # a string table without a single NUL: every name runs to the end of the table
    files["any-strtab-without-nul.ko"] = _fill(
        build_ko(undefined=[f"sym_{i:05d}_padding" for i in range(4000)], init=False, exit=False), ".strtab", 0x41)
    # -- damaged headers and tables: kmod 30 refuses these (EINVAL/ENOEXEC)
    files["err-empty.ko"] = b""
    files["err-five-bytes.ko"] = b"\x7fELF\x02"
    files["err-not-elf.ko"] = b"#!/bin/sh\n" * 8
    files["err-class-3.ko"] = kobuild.corrupt_header(base, "EI_CLASS", 3)
    files["err-data-0.ko"] = kobuild.corrupt_header(base, "EI_DATA", 0)
    files["err-header-only.ko"] = base[:64]
    files["err-shentsize-0.ko"] = kobuild.corrupt_header(base, "e_shentsize", 0)
    files["err-section-table-past-end.ko"] = kobuild.corrupt_header(base, "e_shoff", len(base) - 10)
    files["err-extended-numbering.ko"] = kobuild.corrupt_header(base, "e_shnum", 0)
    files["err-shstrndx-out-of-range.ko"] = kobuild.corrupt_header(base, "e_shstrndx", 0xFFFF)
    files["err-shstrtab-without-nul.ko"] = _fill(base, ".shstrtab", 0x41)
    files["err-shstrtab-offset-wraps.ko"] = kobuild.corrupt_section(base, ".shstrtab", offset=(1 << 64) - 1)
    files["err-truncated-mid-section-table.ko"] = base[: len(base) - 100]
    files["err-xz-truncated.ko.xz"] = kobuild.compress(base, "xz")[:80]
    files["err-zstd-garbage.ko.zst"] = kobuild.compress(base, "zst")[:40] + b"\xff" * 40
    files["err-gzip-truncated.ko.gz"] = kobuild.compress(base, "gz")[:100]
    files["err-zstd-64MiB-of-A.ko.zst"] = _zstd_rle_bomb(64 << 20)  # decompresses (64 MiB), not ELF
    # -- damaged tables kmod tolerates: the module is read, with less in it
    files["ok-strtab-zeroed.ko"] = kobuild.zero_section(base, ".strtab")
    files["ok-symtab-size-not-multiple.ko"] = kobuild.corrupt_section(base, ".symtab", size=25)
    files["ok-symtab-past-end.ko"] = kobuild.corrupt_section(base, ".symtab", offset=(1 << 40))
    files["ok-symtab-offset-wraps.ko"] = kobuild.corrupt_section(base, ".symtab", offset=(1 << 64) - 8, size=16)
    files["ok-modinfo-past-end.ko"] = kobuild.corrupt_section(base, ".modinfo", size=1 << 30)
    files["ok-modinfo-without-nul.ko"] = _fill(base, ".modinfo", 0x0A)
    files["ok-strtab-size-2.ko"] = kobuild.corrupt_section(base, ".strtab", size=2)
    files["ok-versions-bad-size.ko"] = kobuild.corrupt_section(base, "__versions", size=63)
    files["ok-kcrctab-2-bytes.ko"] = kobuild.corrupt_section(base, "__kcrctab", size=2)
    files["ok-crc-in-section-0.ko"] = build_ko(extra_symbols=[Sym(name="__crc_x", section=0, value=3)])
    files["ok-crc-section-out-of-range.ko"] = build_ko(extra_symbols=[Sym(name="__crc_x", section=0x7777)])
    files["ok-kstrtabns-past-section.ko"] = build_ko(
        exports=[Export(name="f", namespace="N")],
        extra_symbols=[Sym(name="__kstrtabns_g", section="__ksymtab_strings", value=1 << 40)])
    files["ok-all-sections-named-symtab.ko"] = _all_names(base, ".symtab")
    files["ok-sparc-register.ko"] = build_ko(machine=43, undefined=["a"],
                                             extra_symbols=[Sym(name="%g7", type="notype")])
    files["ok-elf32-big-endian.ko"] = build_ko(bits=32, endian="big", machine=8, exports=[Export(name="x", crc=1)],
                                               undefined=["y"], versions=[("y", 2)])
    # -- output safety: read fine, but depmod must not copy them verbatim
    files["ok-alias-with-blank.ko"] = build_ko(modinfo=["alias=foo other", "alias=kept"])
    files["ok-alias-with-newline.ko"] = build_ko(modinfo=["alias=foo\nalias evil other", "alias=kept"])
    files["ok-softdep-with-newline.ko"] = build_ko(modinfo=["softdep=pre: a\nsoftdep evil pre: b"])
    files["ok-devname-dotdot.ko"] = build_ko(modinfo=["alias=devname:../../etc/evil", "alias=char-major-10-99"])
    files["ok-devname-newline.ko"] = build_ko(modinfo=["alias=devname:x\nevil y c1:1", "alias=char-major-10-99"])
    files["ok-export-with-newline.ko"] = build_ko(exports=[Export(name="f\nalias symbol:evil x", crc=1)])
    files["ok-export-with-blank.ko"] = build_ko(exports=[Export(name="f g", crc=1)])
    files["ok-alias-non-ascii-branch.ko"] = build_ko(modinfo=[b"alias=caf\xc3\xa9", b"alias=cafe", b"alias=\x80"])
    files["ok-export-non-ascii-branch.ko"] = build_ko(exports=[Export(name="caf\u00e9", crc=1),
                                                               Export(name="cafe", crc=2)])
    return files


def _all_names(data: bytes, name: str) -> bytes:
    """Every section header's name offset pointed at ``name``."""
    g, target = kobuild._find_section(data, name)
    name_off = kobuild._shdr(data, g, target)["sh_name"]
    out = bytearray(data)
    for i in range(1, g.shnum):
        struct.pack_into(g.e + "I", out, g.shoff + i * g.shentsize, name_off)
    return bytes(out)


def _w(*ws: int) -> bytes:
    return b"".join(struct.pack(">I", w) for w in ws)


def index() -> dict[str, bytes]:
    from moddeps.index.write import build_index

    hdr = bytes.fromhex("b007f457 00020001")
    sample = build_index([(b"usb:v1d*", b"a", 1), (b"usb:v2", b"b", 2), (b"pci:*", b"c", 3), (b"", b"e", 4)])
    return {
        "err-empty.bin": b"",
        "err-header-only.bin": hdr,
        "err-bad-magic.bin": bytes.fromhex("b007fa57 00020001 0000000c"),
        "err-version-3.bin": bytes.fromhex("b007f457 00030001 0000000c"),
        "err-root-in-header.bin": hdr + _w(0x20000000 | 4),
        "err-root-past-end.bin": hdr + _w(0x80000000 | 0x0FFFFFFF),
        "err-self-loop.bin": hdr + _w(0x20000000 | 12) + b"aa" + _w(0x20000000 | 12),
        "err-shared-child.bin": hdr + _w(0x20000000 | 14) + b"x\0" + b"ab" + _w(0x80000000 | 12) * 2,
        "err-child-range-reversed.bin": hdr + _w(0x20000000 | 12) + b"ba" + _w(0),
        "err-child-range-over-127.bin": hdr + _w(0x20000000 | 12) + b"\x80\x80" + _w(0),
        "err-value-count-huge.bin": hdr + _w(0x40000000 | 12) + _w(0xFFFFFFFF),
        "err-value-unterminated.bin": hdr + _w(0x40000000 | 12) + _w(1, 0) + b"abc",
        "err-prefix-unterminated.bin": hdr + _w(0x80000000 | 12) + b"abc",
        "err-overlapping-nodes.bin": hdr + _w(0x20000000 | 12) + b"\x00\x03"
        + _w(*[0x80000000 | (30 + i) for i in range(4)]) + b"z" * 10 + b"\0",
        "err-truncated.bin": sample[:-3],
        "ok-sample.bin": sample,
        "ok-empty-index.bin": hdr + _w(12),
        "ok-flags-offset-0.bin": hdr + _w(0x40000000),
        "ok-minor-99.bin": sample[:6] + b"\x00\x63" + sample[8:],
        "ok-trailing-bytes.bin": sample + b"trailing",
        "ok-bit-28.bin": hdr + _w(0x10000000 | 0x40000000 | 12) + _w(1, 7) + b"v\0",
        "ok-full-child-table-of-zeros.bin": hdr + _w(0x20000000 | 12) + b"\x00\x7f" + _w(0) * 128,
        # a 3,000-node chain: "a", "aa", ... (quadratic dump output, linear parse)
        "ok-deep-chain.bin": build_index([(b"a" * i, b"v", 0) for i in range(1, 3000)]),
        # keys that are wildcards all the way down: every lookup visits every node
        "ok-wildcard-chain.bin": build_index([(b"*" + b"a" * i + b"*", b"v", 0) for i in range(1, 200)]),
        # a non-ASCII byte inside a prefix, as kmod 30 writes it
        "ok-non-ascii-prefix.bin": bytes.fromhex("b007f457000200012000001b6166c3a9000000000100000000"
                                                 "6d006363c000000c"),
    }


def config() -> dict[str, bytes]:
    return {
        # hangs moddeps (Python's backtracking re); glibc answers at once: no match
        "any-redos-override.conf": b"override foo (.*.*)*! extra\n",
        "any-redos-external.conf": b"external (.*.*.*)*= /nonexistent/ext\nsearch updates\n",
        # crash moddeps (RecursionError, OverflowError); glibc: invalid pattern, line ignored
        "any-nested-parentheses.conf": b"override foo " + b"(" * 5000 + b" extra\n",
        "any-huge-repetition.conf": b"override foo 6{99999999999999999999} extra\n",
        # POSIX ERE, not Python re: a bracket class applies, a Perl escape does not
        "any-posix-class.conf": b"override foo ^[[:digit:]]+\\. extra\n",
        "any-perl-escape.conf": b"override foo ^\\d extra\noverride bar (?i)CLOUD extra\n",
        "any-plain.conf": b"search updates built-in\noverride foo * extra\nexternal 6\\.1.* /x\nexclude build\n",
        "any-binary-garbage.conf": bytes(range(256)) * 4,
        "any-crlf.conf": b"search updates\r\noverride foo * extra\r\n",
        "any-continuation-at-eof.conf": b"search a \\",
        "any-nul-bytes.conf": b"search up\0dates\nexclude \0\n",
        "any-long-line.conf": b"search " + b"d " * 100000 + b"\n",
        "any-garbage.symvers": bytes(range(256)) * 8,
        "any-huge-crc.symvers": b"0x" + b"f" * 100000 + b"\tbig\tvmlinux\tEXPORT_SYMBOL\t\n",
        "any-negative-crc.symvers": b"-0x1\tneg\tvmlinux\tEXPORT_SYMBOL\t\n0x1_0\tus\tvmlinux\n",
        "any-no-spaces.map": b"ffffffff81000000Tstartup\n" + b"x" * 10000,
        "any-no-final-newline.order": b"kernel/a.ko\nkernel/b.ko",
        "any-long-lines.order": b"kernel/" + b"a" * 100000 + b".ko\n\n\n",
    }


def main() -> None:
    for kind, files in (("reader", reader()), ("index", index()), ("config", config())):
        d = HERE / kind
        d.mkdir(exist_ok=True)
        for name, data in files.items():
            (d / name).write_bytes(data)
        print(f"{kind}: {len(files)} files")


if __name__ == "__main__":
    main()
