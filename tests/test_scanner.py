"""Tree walking, duplicate resolution, modules.order and depmod.d parsing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from moddeps import config
from moddeps.kmodhash import hash_order, kmod_hash
from moddeps.read.order import module_array
from moddeps.read.scan import scan_tree
from moddeps.read.walk import ModuleFile, is_module_filename

from .kobuild import Export, build_ko

SAMPLE_TREE = Path(__file__).resolve().parent.parent / "sample_modules" / "lib" / "modules" / "6.1.0-50-cloud-amd64"


def put(root: Path, rel: str, data: bytes | None = None) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(build_ko() if data is None else data)
    return p


@pytest.mark.parametrize(
    ("key", "value"),
    [(b"", 0), (b"a", 0x115EA782), (b"ab", 0x516B8B44), (b"abc", 0xD2BE198A), (b"abcd", 0xDAD8B8DB),
     (b"ext4", 0xE679AB16), (b"jbd2_journal_start", 0xF1BADE19), (b"a\xe9", 0x83322156), (b"x\xff\x80", 0xFDBE2AEC)],
)
def test_kmod_hash_vectors(key: bytes, value: int) -> None:
    assert kmod_hash(key) == value


def test_hash_order_is_bucket_then_bytes() -> None:
    keys = [b"ext4", b"a", b"abc", b"zz", b"jbd2"]
    ordered = hash_order(keys, 512)
    assert sorted(ordered) == sorted(keys)
    assert [kmod_hash(k) & 511 for k in ordered] == sorted(kmod_hash(k) & 511 for k in keys)
    assert hash_order(list(reversed(keys)), 512) == ordered  # insertion order does not matter


@pytest.mark.parametrize(
    ("name", "ok"),
    [("a.ko", True), ("a.ko.xz", True), ("a.ko.zst", True), ("a.ko.gz", True), (".ko", False),
     ("a.o", False), ("a.ko.bz2", False), ("ko", False)],
)
def test_module_file_names(name: str, ok: bool) -> None:
    assert is_module_filename(name) is ok


def test_uncrelpath_quirk() -> None:
    assert ModuleFile("foo_bar", "/x", "kernel/fs/foo-bar.ko.xz").uncrelpath == "kernel/fs/foo-bar.ko"
    assert ModuleFile("foo", "/x", "kernel/foo.bar.ko").uncrelpath == "kernel/foo.ba"
    assert ModuleFile("foo", "/ext/foo.ko", None).uncrelpath is None


def test_walk_skips_build_source_and_follows_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "lib/modules/1.0"
    put(root, "kernel/a.ko")
    put(root, "build/b.ko")
    put(root, "kernel/source/c.ko")
    put(tmp_path, "elsewhere/d.ko")
    os.symlink(tmp_path / "elsewhere/d.ko", root / "kernel/d.ko")
    os.symlink(root / "kernel", root / "kernel/loop")  # a loop kmod would follow forever
    os.symlink(tmp_path / "nowhere.ko", root / "kernel/dangling.ko")
    (root / "kernel/fifo.ko").parent.mkdir(exist_ok=True)
    os.mkfifo(root / "kernel/fifo.ko")
    tree = scan_tree(str(root), jobs=1)
    assert sorted(m.name for m in tree.modules) == ["a", "d"]
    reasons = {p.path: p.reason for p in tree.problems}
    assert "symlink loop" in reasons["kernel/loop"]
    assert "dangling" in reasons["kernel/dangling.ko"]
    assert "unsupported" in reasons["kernel/fifo.ko"]


def test_default_priority_updates_wins(tmp_path: Path) -> None:
    root = tmp_path / "lib/modules/1.0"
    put(root, "kernel/x.ko")
    put(root, "updates/x.ko")
    tree = scan_tree(str(root), jobs=1)
    assert [f.shown for f in tree.files] == ["updates/x.ko"]
    assert tree.duplicates[0].winner == "updates/x.ko"
    assert tree.duplicates[0].losers == ("kernel/x.ko",)


def test_search_override_exclude(tmp_path: Path) -> None:
    root = tmp_path / "lib/modules/1.0"
    put(root, "kernel/a.ko")
    put(root, "extra/a.ko")
    put(root, "updates/a.ko")
    put(root, "kernel/foo-bar.ko")
    put(root, "zz/foo-bar.ko")
    put(root, "kernel/skipme/s.ko")
    cfg_text = "search extra updates built-in\noverride foo-bar * zz\nexclude skipme\n"
    cfg, errors = config.parse_text(cfg_text, "t.conf", "1.0")
    assert errors == []
    tree = scan_tree(str(root), config=cfg, jobs=1)
    shown = {m.name: f.shown for m, f in zip(tree.modules, tree.files)}
    assert shown == {"a": "extra/a.ko", "foo_bar": "zz/foo-bar.ko"}
    # an override names the file's own spelling: foo_bar does not match foo-bar.ko
    cfg2, _ = config.parse_text("override foo_bar * zz\n", "t.conf", "1.0")
    tree2 = scan_tree(str(root), config=cfg2, jobs=1)
    foo = next(d for d in tree2.duplicates if d.name == "foo_bar")
    assert not any("override" in r for r in foo.reasons)
    assert any("override foo-bar zz" in r for d in tree.duplicates for r in d.reasons)


def test_config_line_syntax_and_errors() -> None:
    text = "# comment\nsearch a \\\n b\n  # indented is a command\nbogus x\noverride m\nexternal 1.* /opt/ext\n" \
           "external 2.* /opt/no\ninclude x\nexclude e1 e2\nsearch c\\.d\n"
    cfg, errors = config.parse_text(text, "f.conf", "1.5")
    assert cfg.search == ("a", "b", "c.d")
    assert cfg.externals == ("/opt/ext",)
    assert cfg.excludes == ("e1", "e2")
    assert errors == [
        "f.conf:4: ignoring bad line starting with '#'",
        "f.conf:5: ignoring bad line starting with 'bogus'",
        "f.conf:6: ignoring bad line starting with 'override'",
    ]


def test_config_files_sorted_by_basename_first_wins(tmp_path: Path) -> None:
    etc = tmp_path / "etc/depmod.d"
    lib = tmp_path / "lib/depmod.d"
    etc.mkdir(parents=True)
    lib.mkdir(parents=True)
    (etc / "b.conf").write_text("search from_etc_b\n")
    (lib / "b.conf").write_text("search from_lib_b\n")
    (lib / "a.conf").write_text("search from_lib_a\n")
    (lib / "ignored.txt").write_text("search nope\n")
    (lib / "sub.conf").mkdir()
    cfg = config.load(None, "1.0", str(tmp_path))
    assert cfg.search == ("from_lib_a", "from_etc_b")
    assert any("Directories inside directories" in m for m in cfg.messages)


def test_modules_order_sorting_and_quirks(tmp_path: Path) -> None:
    files = [ModuleFile(n, f"/r/{p}", p) for n, p in
             [("a", "kernel/a.ko"), ("b", "kernel/b.ko"), ("c", "kernel/c.ko"), ("d", "kernel/d.ko")]]
    order = b"kernel/c.ko\nkernel/a.ko\nkernel/zz.ko\nkernel/c.ko\n"
    array, listed, applied, msgs = module_array(files, "/r", order, first_wins=False)
    # the last occurrence of c wins (kmod 30), unlisted follow in hash order
    assert applied and listed == {"a", "c"} and msgs == []
    assert [m.name for m in array[:2]] == ["a", "c"]
    rest = [m.name for m in array[2:]]
    assert rest == [k.decode() for k in hash_order([b"b", b"d"], 512)]
    # the first occurrence wins (kmod 34)
    array34, listed34, _applied, _msgs = module_array(files, "/r", order, first_wins=True)
    assert listed34 == listed
    assert [m.name for m in array34] == ["c", "a", *rest]
    _array, _listed, applied2, msgs2 = module_array(files, "/r", b"kernel/c.ko\nkernel/a.ko")
    assert not applied2 and msgs2 == ["ERROR: /r/modules.order:2 corrupted line misses '\\n'"]
    _array, _listed, applied3, msgs3 = module_array(files, "/r", None)
    assert not applied3 and "could not open modules.order" in msgs3[0]


def test_sample_tree_scan() -> None:
    tree = scan_tree(str(SAMPLE_TREE), jobs=2)
    names = {m.name for m in tree.modules}
    assert {"mdx_exporter", "mdx_consumer", "mdx_cycle_a", "mdx_noexit"} <= names
    assert not tree.broken
    assert tree.order_applied and "mdx_noexit" not in tree.order_listed
    assert [d.name for d in tree.duplicates] == ["mdx_consumer"]
    exporter = tree.by_name()["mdx_exporter"]
    assert {(e.name, e.gpl_only, e.namespace) for e in exporter.exports} == {
        ("mdx_plain_add", False, None), ("mdx_gpl_mul", True, None), ("mdx_ns_version", True, "MDX_CORE")}
    assert len(tree.builtin) > 100


def test_parallel_and_serial_scans_agree() -> None:
    assert scan_tree(str(SAMPLE_TREE), jobs=1).modules == scan_tree(str(SAMPLE_TREE), jobs=2).modules


def test_broken_module_still_listed(tmp_path: Path) -> None:
    root = tmp_path / "lib/modules/1.0"
    put(root, "kernel/ok.ko", build_ko(exports=[Export(name="f", crc=1)]))
    put(root, "kernel/bad.ko", b"\x7fELF" + b"\0" * 10)
    tree = scan_tree(str(root), jobs=1)
    bad = tree.by_name()["bad"]
    assert bad.error and bad.exports == ()
    assert tree.by_name()["ok"].exports[0].name == "f"


@pytest.mark.parametrize("how", ["serial", "threads", "processes"])
@pytest.mark.parametrize("pure", [False, True])
def test_every_read_strategy_gives_the_same_records_with_shared_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, pure: bool
) -> None:
    """Serial, threaded and forked reads (C or pure-Python parser) give equal records in the
    same order, and equal imports of different modules are one object (the scan's memo)."""
    import moddeps.read.elfreader as er
    import moddeps.read.pool as pool

    mods = {}
    for i in range(80):
        mods[f"kernel/m{i % 5}/mod_{i}.ko"] = build_ko(
            modinfo=["license=GPL", f"alias=pci:v{i:08X}d*"], exports=[Export(name=f"sym_{i}", crc=i)],
            undefined=["printk", "kfree", f"sym_{(i + 1) % 80}"],
            versions=[("printk", 7), ("kfree", 9), (f"sym_{(i + 1) % 80}", (i + 1) % 80)])
    root = tmp_path / "lib/modules/6.1.0-1-test"
    for rel, data in mods.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "modules.order").write_text("".join(f"{rel}\n" for rel in mods))
    reference = scan_tree(str(root), jobs=1).modules
    if pure:
        monkeypatch.setattr(er, "_elfscan", None)
    monkeypatch.setattr(pool, "_strategy", lambda items: how)
    got = scan_tree(str(root), jobs=2).modules
    assert got == reference
    printk = {id(i) for m in got for i in m.imports if i.name == "printk"}
    assert len(printk) == 1


def test_a_load_that_never_finishes_is_given_up_in_the_thread_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compressed trees load in threads: a load stuck for longer than MODDEPS_READ_TIMEOUT makes that
    module unreadable (named, with the reason), a fresh thread carries on, and every other module is read."""
    import threading

    import moddeps.read.pool as pool

    root = tmp_path / "lib/modules/6.1.0-1-test"
    names = [f"kernel/m{i}.ko" for i in range(70)]
    for rel in names:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(build_ko(modinfo=["license=GPL"], exports=[Export(name=f"s_{rel[9:-3]}", crc=1)]))
    (root / "modules.order").write_text("".join(f"{rel}\n" for rel in names))
    release = threading.Event()
    real = pool._load_or_error

    def load(path: str) -> object:
        if path.endswith("/m7.ko"):
            release.wait(60)
        return real(path)

    monkeypatch.setattr(pool, "_load_or_error", load)
    monkeypatch.setattr(pool, "_strategy", lambda items: "threads")
    monkeypatch.setenv("MODDEPS_READ_TIMEOUT", "1")
    try:
        mods = scan_tree(str(root), jobs=2).modules
    finally:
        release.set()
    broken = [m for m in mods if m.error]
    assert [m.name for m in broken] == ["m7"]
    assert "took longer than 1 s" in (broken[0].error or "")
    assert sorted(m.name for m in mods) == sorted(f"m{i}" for i in range(70))
