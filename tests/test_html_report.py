"""The --html report without a browser: escaping, determinism, size, no external URL, the data it carries."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moddeps.audit import audit_tree
from moddeps.cli import app
from moddeps.read.scan import scan_tree
from moddeps.report import html

from .kobuild import Export, build_ko

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_modules/lib/modules/6.1.0-50-cloud-amd64"
SYMVERS = ROOT / "sample_modules/symvers/Module.symvers-6.1.0-50-cloud-amd64"

HOSTILE = '</script><script>alert("x")</script><img src=x onerror=alert(1)> & \u2028 "quoted"'


def hostile_tree(root: Path) -> Path:
    """Three modules: ``evil`` (hostile modinfo strings) needs ``lib``, ``user`` needs ``evil``."""
    tree = root / "lib/modules/1.0.0"
    (tree / "kernel/drivers/x").mkdir(parents=True)
    (tree / "kernel/lib").mkdir(parents=True)
    (tree / "kernel/lib/lib.ko").write_bytes(build_ko(
        modinfo=["license=GPL", "vermagic=1.0.0 SMP mod_unload "], exports=[Export(name="lib_fn", crc=None)]))
    (tree / "kernel/drivers/x/evil.ko").write_bytes(build_ko(
        modinfo=["license=GPL", f"description={HOSTILE}", f"author={HOSTILE}", "vermagic=1.0.0 SMP mod_unload "],
        exports=[Export(name="evil_fn", crc=None)], undefined=["lib_fn"]))
    (tree / "kernel/drivers/x/user.ko").write_bytes(build_ko(
        modinfo=["license=GPL", "vermagic=1.0.0 SMP mod_unload "], undefined=["evil_fn"]))
    (tree / "modules.order").write_text("kernel/lib/lib.ko\nkernel/drivers/x/evil.ko\nkernel/drivers/x/user.ko\n")
    return tree


def page_data(page: str) -> dict[str, object]:
    m = re.search(r'<script type="application/json" id="moddeps-data">(.*?)</script>', page, re.S)
    assert m is not None
    data: dict[str, object] = json.loads(m.group(1))
    return data


def test_hostile_modinfo_cannot_leave_the_data_element(tmp_path: Path) -> None:
    tree = scan_tree(str(hostile_tree(tmp_path)), jobs=1)
    page = html.render(html.audit_data(tree, audit_tree(tree)))
    # exactly two script elements: the data and the page's own script; no <img> from the data
    assert page.count("<script") == 2
    assert page.count("</script>") == 2
    assert "<img" not in page
    assert "\u2028" not in page
    # the string comes back whole from the JSON
    data = page_data(page)
    modules = {row[0]: row for row in data["modules"]}  # type: ignore[attr-defined]
    cols = data["columns"]
    assert modules["evil"][cols.index("description")] == HOSTILE  # type: ignore[attr-defined]


def test_title_is_escaped(tmp_path: Path) -> None:
    page = html.render({"kind": "audit", "title": "<b>&'\"", "x": 1})
    assert "<title>&lt;b&gt;&amp;&#x27;&quot;</title>" in page


def test_the_page_is_self_contained() -> None:
    tree = scan_tree(str(SAMPLE), jobs=1)
    page = html.render(html.audit_data(tree, audit_tree(tree)))
    # no URL to anywhere: no scheme but data: and the SVG namespace name, no src= or href= but data: or #fragments
    urls = set(re.findall(r"[a-z][a-z0-9+.-]*://[^\s\"'<>)]*", page))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    for attr in re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page):
        assert attr.startswith(("data:", "#")), attr
    assert "@import" not in page and "url(" not in page.replace("url(#arrow", "").replace("url(#carrow", "")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert csp is not None
    policy = csp.group(1).replace("&#x27;", "'")
    assert policy.startswith("default-src 'none';")
    # the hashes in the policy are those of the inlined script and style
    script = re.findall(r"<script>(.*?)</script>", page, re.S)
    style = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert len(script) == 1 and len(style) == 1
    assert f"script-src {html._sha256(script[0])};" in policy
    assert f"style-src {html._sha256(style[0])};" in policy


def test_same_tree_same_bytes_and_timestamp_only_when_asked(tmp_path: Path) -> None:
    runner = CliRunner()
    a, b, c = tmp_path / "a.html", tmp_path / "b.html", tmp_path / "c.html"
    for out in (a, b):
        res = runner.invoke(app, ["audit", str(SAMPLE), "--symvers", str(SYMVERS), "--html", str(out)])
        assert res.exit_code == 1, res.output
    assert a.read_bytes() == b.read_bytes()
    assert page_data(a.read_text())["timestamp"] is None
    res = runner.invoke(app, ["audit", str(SAMPLE), "--html", str(c), "--timestamp"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", str(page_data(c.read_text())["timestamp"]))


def test_stdout_is_the_same_with_html(tmp_path: Path) -> None:
    runner = CliRunner()
    plain = runner.invoke(app, ["audit", str(SAMPLE), "--format", "text"])
    with_html = runner.invoke(app, ["audit", str(SAMPLE), "--format", "text", "--html", str(tmp_path / "r.html")])
    assert plain.stdout == with_html.stdout
    assert plain.exit_code == with_html.exit_code
    assert (tmp_path / "r.html").stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary file left behind


def test_shuffled_input_gives_the_same_document() -> None:
    """The data does not depend on dict or set order: a tree whose modules come in another order
    gives the same overview and the same edges (by name)."""
    tree = scan_tree(str(SAMPLE), jobs=1)
    data = html.audit_data(tree, audit_tree(tree))
    names = [row[0] for row in data["modules"]]
    edges = {(names[i], names[d], s) for i, ds in enumerate(data["deps"]) for d, s in zip(ds, data["symbols"][i])}
    order = list(range(len(names)))
    random.Random(7).shuffle(order)
    shuffled = [[order.index(d) for d in data["deps"][order[k]]] for k in range(len(order))]
    again = html._overview([data["modules"][order[k]][1] for k in range(len(order))], shuffled)
    assert again == data["overview"]
    assert edges and all(s for _a, _b, s in edges)


def test_audit_data_matches_the_resolution() -> None:
    tree = scan_tree(str(SAMPLE), jobs=1)
    res = html.tree_resolution(tree)
    data = html.audit_data(tree, audit_tree(tree), res=res, kmod="kmod 34")
    cols = data["columns"]
    by = {row[0]: dict(zip(cols, row)) for row in data["modules"]}
    for i, m in enumerate(tree.modules):
        assert by[m.name]["needs"] == len(res.deps[i])
        assert data["deps"][i] == list(res.deps[i])
    users = {m.name: 0 for m in tree.modules}
    for ds in res.deps:
        for d in ds:
            users[tree.modules[d].name] += 1
    assert {n: r["dependents"] for n, r in by.items()} == users
    # the sample tree has a cycle: its members have no load depth
    assert data["cycles"]
    for c in data["cycles"]:
        for i in c:
            assert by[tree.modules[i].name]["depth"] is None
    assert data["kmod"] == "kmod 34"


def test_load_depths() -> None:
    # 0 <- 1 <- 2, 3 alone, 4 <-> 5 a cycle, 6 needs the cycle
    deps = [[], [0], [1], [], [5], [4], [4]]
    assert html.load_depths(deps) == [0, 1, 2, 0, None, None, None]


def test_folder_of() -> None:
    assert html.folder_of("kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko.xz") == "drivers/net"
    assert html.folder_of("kernel/fs/ext4/ext4.ko") == "fs/ext4"
    assert html.folder_of("updates/dkms/foo.ko") == "updates/dkms"
    assert html.folder_of("foo.ko") == "(top)"


def test_size_bound_on_a_big_synthetic_tree() -> None:
    """4,000 modules with 4 dependencies of 6 symbols each stay well under 5 MB."""
    n = 4000
    rng = random.Random(1)
    paths = [f"kernel/drivers/sub{i % 60}/mod{i}.ko.xz" for i in range(n)]
    deps = [sorted(rng.sample(range(i), min(i, 4))) for i in range(n)]
    data = {
        "kind": "audit", "title": "t", "tool": "moddeps", "version": "0", "timestamp": None, "kernel": "k",
        "kmod": "kmod 34", "inputs": [], "summary": {"modules": n, "findings": 0, "by_severity": {}, "by_kind": {},
                                                     "kernel_symbols": None, "notes": []},
        "findings": [], "columns": ["name", "path", "size", "compression", "signer", "exports", "needs", "dependents",
                                    "depth", "description", "license", "error"],
        "modules": [[f"mod{i}", paths[i], 123456, "xz", "Debian Secure Boot CA", 10, 4, 4, 3,
                     "A driver for a device with a long description", "GPL", None] for i in range(n)],
        "deps": deps,
        "symbols": [[" ".join(f"mod{d}_symbol_{k}" for k in range(6)) for d in ds] for ds in deps],
        "cycles": [], "overview": html._overview(paths, deps),
    }
    size = len(html.render(data).encode())
    assert size < 5_000_000, size


def test_diff_report_names_what_breaks(tmp_path: Path) -> None:
    old = hostile_tree(tmp_path / "old")
    new = tmp_path / "new/lib/modules/1.0.1"
    (new / "kernel/lib").mkdir(parents=True)
    (new / "kernel/lib/lib.ko").write_bytes(build_ko(modinfo=["license=GPL"], exports=[]))  # lib_fn removed
    oot = tmp_path / "oot.ko"
    oot.write_bytes(build_ko(modinfo=["license=GPL"], undefined=["lib_fn", "printk"]))
    out = tmp_path / "d.html"
    res = CliRunner().invoke(app, ["diff", str(old), str(new), "--html", str(out), "--check", str(oot)])
    assert res.exit_code == 1, res.output
    data = page_data(out.read_text())
    assert data["kind"] == "diff"
    removed = [c for c in data["changes"] if c["kind"] == "export-removed" and c["symbol"] == "lib_fn"]  # type: ignore[index,union-attr]
    assert removed and removed[0]["breaks"] == ["evil"] and removed[0]["breaks_out_of_tree"] == ["oot"]
    # incompatible changes come first
    flags = [c["incompatible"] for c in data["changes"]]  # type: ignore[index,union-attr]
    assert flags == sorted(flags, reverse=True)


def test_compat_report(tmp_path: Path) -> None:
    tree = hostile_tree(tmp_path)
    oot = tmp_path / "oot.ko"
    oot.write_bytes(build_ko(modinfo=["license=GPL", "vermagic=1.0.0 SMP mod_unload "], undefined=["lib_fn"]))
    out = tmp_path / "c.html"
    res = CliRunner().invoke(app, ["compat", str(oot), str(tree), "--html", str(out)])
    assert res.exit_code in (0, 1), res.output
    data = page_data(out.read_text())
    assert data["kind"] == "compat"
    assert [v["module"] for v in data["verdicts"]] == ["oot"]  # type: ignore[attr-defined,index]


@pytest.mark.parametrize("cmd", ["audit", "diff", "compat"])
def test_html_option_documented(cmd: str) -> None:
    res = CliRunner().invoke(app, [cmd, "--help"], env={"COLUMNS": "200"})
    assert "--html" in res.output
