"""``moddeps info``: kmod's modinfo output on committed fixtures (the expected bytes were
printed by kmod 30's and kmod 34.2's modinfo, see tests/data/signed/README.md), lookups
through a tree's indexes, built-ins, the options, and the JSON document."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest

from moddeps import modinfo as mi

DATA = Path(__file__).parent / "data" / "signed"
RECORDED_DIR = "/work/main/tests/data/signed/"  # where the expected outputs were recorded
SAMPLE = Path(__file__).parent.parent / "sample_modules/lib/modules/6.1.0-50-cloud-amd64"
SCHEMA = json.loads(files("moddeps").joinpath("schemas/info.schema.json").read_text())


def info(*args: str, cwd: Path | str | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "moddeps", "info", *args], capture_output=True, cwd=cwd,
                          env=dict(os.environ, MODDEPS_KMOD_VERSION=os.environ.get("MODDEPS_KMOD_VERSION", "34")))


def expected(name: str, suffix: str = ".modinfo") -> bytes:
    return (DATA / (name + suffix)).read_bytes().replace(RECORDED_DIR.encode(), f"{DATA}/".encode())


@pytest.mark.parametrize("name", ["mdx_signed.ko", "mdx_signed.ko.xz", "mdx_signed_sha1.ko"])
@pytest.mark.parametrize("release", ["30", "34"])
def test_signed_file_as_kmod_prints_it(name: str, release: str) -> None:
    r = info("--kmod-version", release, name, cwd=DATA)
    assert r.stderr == b""
    assert r.returncode == 0
    assert r.stdout == expected(name)


@pytest.mark.parametrize("name", ["mdx_signed.ko", "mdx_signed_sha1.ko"])
def test_null_separator(name: str) -> None:
    r = info("-0", str(DATA / name))
    assert (r.stdout, r.returncode) == (expected(name, ".modinfo-0"), 0)


def test_file_argument_path_is_cwd_plus_argument() -> None:
    r = info("-n", "./mdx_signed.ko", cwd=DATA)
    assert r.stdout == f"{DATA}/./mdx_signed.ko\n".encode()


def test_signature_fields_alone() -> None:
    r = info("-F", "sig_key", "-F", "signer", str(DATA / "mdx_signed.ko"))  # the last -F wins
    assert r.stdout == b"moddeps throwaway test key\n"
    r = info("-F", "sig_key", str(DATA / "mdx_signed_sha1.ko"))
    assert r.stdout == b"07\n"
    r = info("-F", "signature", str(DATA / "mdx_signed.ko"))
    lines = r.stdout.decode().split("\n")
    assert len(lines) == 13 + 1 and lines[1].startswith("\t\t") and lines[0].count(":") == 20


def test_parameters_merged_and_shortcuts() -> None:
    f = str(DATA / "mdx_signed.ko")
    assert info("-p", f).stdout == b"verbose:Log level of the sample (0 = silent, default 1) (int)\n"
    assert info("-F", "parmtype", f).stdout == b"verbose:int\n"
    assert info("-d", f).stdout == b"Soft/weak dependencies, aliases, devname, firmware, parameter\n"
    assert info("-l", "-a", f).stdout == b"moddeps sample modules\n"  # the last shortcut wins
    assert info("-a", "-l", f).stdout == b"GPL\n"


def test_missing_argument_and_module() -> None:
    r = info()
    assert (r.stdout, r.stderr, r.returncode) == (b"", b"moddeps: ERROR: missing module or filename.\n", 1)
    r = info("-b", str(SAMPLE.parent.parent.parent), "-k", SAMPLE.name, "no_such_module", str(DATA / "mdx_signed.ko"),
             "-F", "name")
    note, error = r.stderr.decode().splitlines()
    # the sample tree was never indexed: moddeps looks names up in indexes computed from a scan
    assert note.startswith("moddeps: note: ") and "has no modules.dep.bin" in note
    assert error == "moddeps: ERROR: Module no_such_module not found."
    assert (r.stdout, r.returncode) == (b"mdx_softdep\n", 1)  # the file's own name= field


# --------------------------------------------------------------------------
# a tree: lookups through its indexes, built-ins, kmod 30/34 padding
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with the signed module and two built-ins, indexed by moddeps' depmod."""
    root = tmp_path_factory.mktemp("root")
    d = root / "lib/modules/9.9.9"
    (d / "kernel/drivers").mkdir(parents=True)
    (d / "kernel/drivers/mdx_signed.ko").write_bytes((DATA / "mdx_signed.ko").read_bytes())
    (d / "modules.order").write_text("kernel/drivers/mdx_signed.ko\n")
    (d / "modules.builtin").write_text("kernel/drivers/demo.ko\nkernel/drivers/bare.ko\n")
    (d / "modules.builtin.modinfo").write_bytes(
        b"demo.file=drivers/demo\0demo.averyveryverylongkey=long value\0demo.license=GPL\0"
        b"demo.parm=level:Verbosity\0demo.parmtype=level:int\0demo.parmtype=quiet:bool\0demo.alias=demo-alias\0"
        b"other.license=GPL\0")
    r = subprocess.run([sys.executable, "-m", "moddeps", "depmod", "-b", str(root), "9.9.9"], capture_output=True)
    assert r.returncode == 0, r.stderr
    return root


def test_lookup_by_name_alias_and_dashes(tree: Path) -> None:
    b = ["-b", str(tree), "-k", "9.9.9", "-n"]
    path = f"{tree}/lib/modules/9.9.9/kernel/drivers/mdx_signed.ko\n".encode()
    assert info(*b, "mdx_signed").stdout == path
    assert info(*b, "mdx-signed").stdout == path
    assert info(*b, "pci:v00001234d0000D0D0sv00000001sd00000002bc03sc00i00").stdout == path
    assert info(*b, "devname:mdx0").stdout == path
    r = info(*b, "-m", "pci:v00001234d0000D0D0sv*")
    assert (r.stderr, r.returncode) == (b"moddeps: ERROR: Module name pci:v00001234d0000D0D0sv* not found.\n", 1)
    r = info(*b, "bad[alias")
    assert r.stderr == b"moddeps: ERROR: Module alias bad[alias not found.\n"


def test_builtin_as_kmod_prints_it(tree: Path) -> None:
    b = ["-b", str(tree), "-k", "9.9.9"]
    # recorded from kmod 30 (5 spaces after the 20-character key) and kmod 34.2 (none)
    body = ("name:           demo\nfilename:       (builtin)\nfile:           drivers/demo\n"
            "averyveryverylongkey:{pad}long value\nlicense:        GPL\nalias:          demo-alias\n"
            "parm:           quiet:bool\nparm:           level:Verbosity (int)\n")
    assert info("--kmod-version", "30", *b, "demo").stdout == body.format(pad="     ").encode()
    assert info("--kmod-version", "34", *b, "demo").stdout == body.format(pad="").encode()
    assert info(*b, "demo-alias", "-F", "parm").stdout == b"quiet: (bool)\nlevel:Verbosity (int)\n"
    assert info(*b, "-F", "name", "demo").stdout == b"demo\n"
    assert info(*b, "-0", "-F", "license", "demo").stdout == b"GPL\0"
    # a built-in without modinfo records: its name and filename only, status 0
    r = info(*b, "bare")
    assert (r.stdout, r.returncode) == (b"name:           bare\nfilename:       (builtin)\n", 0)


def test_library_and_renderer_agree_with_the_command(tree: Path) -> None:
    t = mi.Tree(f"{tree}/lib/modules/9.9.9")
    opts = mi.InfoOptions(field=None, kmod_version=34)
    (q,) = mi.run(t, ["mdx_signed"], opts)
    assert [i.name for i in q.infos] == ["mdx_signed"]
    messages: list[str] = []
    text = mi.render(q.infos[0], opts, messages)
    assert messages == []
    r = info("-b", str(tree), "-k", "9.9.9", "mdx_signed")
    assert r.stdout == text.encode()
    keys = [k for k, _v in q.infos[0].fields]
    assert keys[-5:] == list(mi.SIGNATURE_KEYS)


def test_invalid_parm_is_reported_and_skipped() -> None:
    one = mi.ModuleInfo("x", "/x.ko", (("parm", "nocolon"), ("parmtype", "a:int"), ("license", "GPL")))
    messages: list[str] = []
    out = mi.render(one, mi.InfoOptions(), messages)
    assert out == "filename:       /x.ko\nlicense:        GPL\nparm:           a:int\n"
    assert messages == ['Found invalid "parm=nocolon": missing \':\'']


def test_hex_wrapping() -> None:
    assert mi.hex_field(b"") == ""
    assert mi.hex_field(bytes(range(20))) == ":".join(f"{i:02X}" for i in range(20))
    assert mi.hex_field(bytes(range(21))).endswith("13:\n\t\t14")


def test_symbols_and_json(tree: Path) -> None:
    r = info("-b", str(tree), "-k", "9.9.9", "--symbols", "mdx_signed")
    text = r.stdout.decode()
    modinfo_part, _, extra = text.partition("\n\nexports (")
    assert modinfo_part + "\n" == info("-b", str(tree), "-k", "9.9.9", "mdx_signed").stdout.decode()
    assert "needs (" in extra
    r = info("-b", str(tree), "-k", "9.9.9", "--json", "mdx_signed", "demo", "nope")
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert r.returncode == 1
    first, builtin, missing = doc["queries"]
    sig = first["modules"][0]["signature"]
    assert sig["signer"] == "moddeps throwaway test key" and sig["key_id"] == "01d2c3b4a5968778695a4b3c2d1e0f"
    assert builtin["modules"][0]["builtin"] is True and builtin["modules"][0]["signature"] is None
    assert missing == {"arg": "nope", "error": "Module nope not found.", "modules": []}
