"""The public Python API (``docs/api.md``), used exactly as a caller would: ``import moddeps`` and the
names in ``moddeps.__all__``, nothing else of moddeps.  Each function is compared with the command
that computes the same thing (``python -m moddeps ...``) on the sample tree.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
import json
import os
import pickle
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import moddeps

REPO = Path(__file__).resolve().parent.parent
VER = "6.1.0-50-cloud-amd64"
SAMPLE = REPO / "sample_modules" / "lib" / "modules" / VER
SYMVERS = REPO / "sample_modules" / "symvers" / f"Module.symvers-{VER}"
DOC = (REPO / "docs" / "api.md").read_text()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "moddeps", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MODDEPS_CACHE": "/nonexistent/none", "MODDEPS_KMOD_VERSION": ""})


def copy_tree(root: Path) -> Path:
    """The sample tree under ``root/lib/modules/VER`` without its dependency cycle (depmod refuses cycles)."""
    tree = root / "lib" / "modules" / VER
    shutil.copytree(SAMPLE, tree)
    for cyc in tree.rglob("mdx_cycle_*.ko"):
        cyc.unlink()
    return tree


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only use of one copy (tests that write make their own)."""
    root = tmp_path_factory.mktemp("api") / "root"
    copy_tree(root)
    return root


def listing(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


# --------------------------------------------------------------------------
# The surface itself
# --------------------------------------------------------------------------


def test_this_file_uses_only_the_public_surface() -> None:
    tree = ast.parse(Path(__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            imported.add(node.module or "")
    assert {m for m in imported if m.split(".")[0] in ("moddeps", "tests")} == {"moddeps"}
    used = {n.attr for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "moddeps"}
    assert used - {"__all__", "__version__", "__path__"} <= set(moddeps.__all__), used - set(moddeps.__all__)


def test_import_moddeps_loads_nothing_else() -> None:
    """Every command-line start runs ``import moddeps``: the API's names must cost nothing there."""
    code = ("import sys\nbefore = set(sys.modules)\nimport moddeps\nprint(sorted(set(sys.modules) - before))\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in"
            " ('elftools', 'networkx', 'rich', 'typer', 'click', 'sqlite3')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.splitlines() == ["['moddeps']", "[]"], out.stdout


def test_every_public_name_is_there_and_none_is_a_submodule() -> None:
    assert len(moddeps.__all__) == len(set(moddeps.__all__))
    for name in moddeps.__all__:
        assert getattr(moddeps, name) is not None
    assert set(moddeps.__all__) <= set(dir(moddeps))
    # a submodule imported later would replace a function of the same name on the package
    submodules = {m.name for m in pkgutil.iter_modules(moddeps.__path__)}
    assert not submodules & set(moddeps.__all__)
    name = "no_such_name"
    with pytest.raises(AttributeError):
        getattr(moddeps, name)


def test_errors_share_one_root() -> None:
    for err in (moddeps.UsageError, moddeps.InputError, moddeps.ModuleReadError, moddeps.DepmodFatal,
                moddeps.CycleError):
        assert issubclass(err, moddeps.ModdepsError)
    assert issubclass(moddeps.CycleError, moddeps.DepmodFatal)


def test_docs_list_every_field_of_every_record() -> None:
    for name in moddeps.__all__:
        cls = getattr(moddeps, name)
        if not isinstance(cls, type):
            continue
        if dataclasses.is_dataclass(cls):
            fields = [f.name for f in dataclasses.fields(cls)]
        elif hasattr(cls, "_fields"):
            fields = list(cls._fields)
        else:
            continue
        section = re.search(rf"^### [^\n]*`{name}`[^\n]*\n(.*?)(?=^##)", DOC, re.S | re.M)
        assert section, f"docs/api.md has no section for {name}"
        text = section.group(1)
        # a section about several records: this one's part runs from "`Name`:" to the next record's
        starts = sorted(m.start() for other in moddeps.__all__ if other[0].isupper()
                        for m in re.finditer(rf"`{other}`:", text))
        if f"`{name}`:" in text:
            begin = text.index(f"`{name}`:")
            text = text[begin:next((s for s in starts if s > begin), len(text))]
        missing = [f for f in fields if f"`{f}`" not in text]
        assert not missing, (name, missing)


# --------------------------------------------------------------------------
# Reading and resolving
# --------------------------------------------------------------------------


def test_read_tree_and_read_module(root: Path) -> None:
    tree = moddeps.read_tree(root / "lib" / "modules" / VER, jobs=1)
    assert isinstance(tree, moddeps.Tree) and tree.version == VER
    names = [m.name for m in tree.modules]
    assert names[:2] == ["mdx_exporter", "mdx_softdep"]  # modules.order's order
    # the copy depmod keeps is updates/'s, which modules.order does not list: placed after the listed ones
    assert "mdx_consumer" not in tree.order_listed and names.index("mdx_consumer") >= len(tree.order_listed)
    assert [d.name for d in tree.duplicates] == ["mdx_consumer"]
    consumer = tree.by_name()["mdx_consumer"]
    assert tree.files[names.index("mdx_consumer")].relpath == "updates/mdx_consumer.ko"  # search: updates first
    one = moddeps.read_module(root / "lib" / "modules" / VER / "updates" / "mdx_consumer.ko")
    assert isinstance(one, moddeps.Module)
    assert (one.exports, one.imports, one.modinfo) == (consumer.exports, consumer.imports, consumer.modinfo)
    assert all(isinstance(i, moddeps.Import) for i in one.imports)


def test_read_module_raises_for_a_file_that_is_not_a_module(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ko"
    junk.write_bytes(b"not an ELF file at all")
    with pytest.raises(moddeps.ModuleReadError) as exc:
        moddeps.read_module(junk)
    assert exc.value.path == str(junk) and exc.value.kmod_reason == "Exec format error"


@pytest.mark.parametrize("call", ["read_tree", "plan_context", "closure", "depmod_outputs", "audit_tree"])
def test_an_empty_path_is_refused_not_read_as_the_root(call: str) -> None:
    """'' is no module directory: refused at once, never walked as '/' (it took an hour and 4 GB)."""
    fn = getattr(moddeps, call)
    with pytest.raises(moddeps.InputError, match="empty path"):
        fn("", ["ext4"]) if call == "closure" else fn("")


def test_resolve_symbols_gives_the_dependencies_depmod_writes(root: Path) -> None:
    dirname = root / "lib" / "modules" / VER
    tree = moddeps.read_tree(dirname, jobs=1)
    res = moddeps.resolve_symbols(tree)
    assert isinstance(res, moddeps.Resolution) and not res.has_cycles
    dep = moddeps.depmod_outputs(dirname, kmod_version=34).files["modules.dep"].decode()
    by_path = {f.shown: i for i, f in enumerate(tree.files)}

    def needs(i: int) -> set[int]:  # modules.dep lists every module needed, directly or not
        seen: set[int] = set()
        todo = list(res.deps[i])
        while todo:
            d = todo.pop()
            if d not in seen:
                seen.add(d)
                todo.extend(res.deps[d])
        return seen

    assert len(dep.splitlines()) == len(tree.modules)
    for line in dep.splitlines():
        path, _, deps = line.partition(":")
        assert {tree.files[d].shown for d in needs(by_path[path])} == set(deps.split()), path
    consumer = [m.name for m in tree.modules].index("mdx_dup_user")
    (winner,) = res.deps[consumer]
    assert tree.modules[winner].name == "mdx_dup_b" and res.edge_symbols[consumer][winner] == ("mdx_dup_hello",)


# --------------------------------------------------------------------------
# depmod
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kmod", [30, 34])
def test_depmod_outputs_are_the_bytes_depmod_writes(tmp_path: Path, kmod: int) -> None:
    tree = copy_tree(tmp_path / "root")
    before = listing(tree)
    got = moddeps.depmod_outputs(tree, kmod_version=kmod)
    assert listing(tree) == before  # nothing written
    assert got.kmod.version == kmod and got.dirname == str(tree)
    r = cli("depmod", "--kmod-version", str(kmod), "-b", str(tmp_path / "root"), VER)
    assert r.returncode == 0, r.stderr
    written = {p.name: p.read_bytes() for p in tree.iterdir() if p.name not in before}
    assert dict(got.files) == written
    assert list(got.files)[:2] == ["modules.dep", "modules.dep.bin"]


def test_depmod_outputs_unknown_symbols_as_depmod_e_says_them(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path / "root")
    got = moddeps.depmod_outputs(tree, kmod_version=34, symvers=SYMVERS, errsyms=True)
    r = cli("depmod", "-n", "--kmod-version", "34", "-e", "-E", str(SYMVERS), "-b", str(tmp_path / "root"), VER)
    assert r.returncode == 0
    shown = [line.removeprefix("moddeps: ") for line in r.stderr.splitlines()]
    assert list(got.messages) == shown and any("mdx_does_not_exist" in m for m in got.messages)


def test_depmod_outputs_refuses_cycles_and_writes_nothing(tmp_path: Path) -> None:
    tree = tmp_path / "root" / "lib" / "modules" / VER
    shutil.copytree(SAMPLE, tree)
    before = listing(tree)
    with pytest.raises(moddeps.CycleError) as exc:
        moddeps.depmod_outputs(tree)
    assert listing(tree) == before
    assert any("mdx_cycle_a needs mdx_cycle_b for mdx_cycle_b_value" in n for n in exc.value.notes)
    assert any(m.startswith("ERROR: Cycle detected") for m in exc.value.messages)


def test_depmod_outputs_bad_options(root: Path) -> None:
    with pytest.raises(moddeps.UsageError):
        moddeps.depmod_outputs(root / "lib" / "modules" / VER, kmod_version=29)
    with pytest.raises(moddeps.InputError):
        moddeps.depmod_outputs(root / "lib" / "modules" / "6.1.0-nope")


# --------------------------------------------------------------------------
# Plans and closures
# --------------------------------------------------------------------------


def test_plan_load_lines_are_modprobe_show_depends(root: Path) -> None:
    dirname = str(root / "lib" / "modules" / VER)
    ctx = moddeps.plan_context(dirname)
    assert isinstance(ctx, moddeps.PlanContext) and ctx.source.kind == "scan"
    ps = moddeps.plan_load(ctx, ["mdx_softdep", "mdx-consumer", "no_such_module"])
    r = cli("plan", "--show-depends", "-b", str(root), "-k", VER, "mdx_softdep", "mdx-consumer", "no_such_module")
    assert r.returncode == ps.exit_status == 1
    assert [line for p in ps.plans for line in p.lines] == r.stdout.splitlines()
    assert [p.ok for p in ps.plans] == [True, True, False]
    assert ps.plans[2].kmod_message == f"Module no_such_module not found in directory {dirname}"
    # softdep=pre: mdx_exporter post: mdx_consumer; the post softdep's own dependency is listed again
    assert [(s.module, s.reason, s.via) for s in ps.plans[0].steps] == [
        ("mdx_exporter", "softdep-pre", "mdx_softdep"), ("mdx_softdep", "target", None),
        ("mdx_exporter", "dependency", "mdx_consumer"), ("mdx_consumer", "softdep-post", "mdx_softdep")]
    rm = moddeps.plan_remove(ctx, ["mdx_consumer"])
    r = cli("plan", "--show-depends", "--remove", "-b", str(root), "-k", VER, "mdx_consumer")
    assert rm.remove and [line for p in rm.plans for line in p.lines] == r.stdout.splitlines()


def test_closure_is_plan_closure(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path / "root")
    targets = ["mdx_softdep", "binfmt_script"]
    c = moddeps.closure(tree, targets)
    assert isinstance(c, moddeps.Closure) and c.exit_status == 1  # mdx/firmware.bin is missing
    (fw,) = [i for i in c.items if i.kind == "firmware"]
    assert (fw.name, fw.exists, fw.via) == ("mdx/firmware.bin", False, "mdx_softdep")
    assert [name for name, _ in c.problems] == ["mdx/firmware.bin"]
    lenient = moddeps.closure(tree, targets, allow_missing_firmware=True)
    assert lenient.exit_status == 0 and any("mdx/firmware.bin" in n for n in lenient.notes)

    firmware = tmp_path / "root" / "lib" / "firmware" / "mdx" / "firmware.bin"
    firmware.parent.mkdir(parents=True)
    firmware.write_bytes(b"\0")
    c = moddeps.closure(tree, targets)
    assert c.exit_status == 0 and not c.errors and not c.problems
    r = cli("plan", "--closure", "-b", str(tmp_path / "root"), "-k", VER, *targets)
    assert r.returncode == 0, r.stderr
    assert [i.path if i.kind != "builtin" else f"builtin {i.name}" for i in c.items] == r.stdout.splitlines()
    assert [i.kind for i in c.items] == ["module", "module", "module", "builtin", "firmware"]

    missing = moddeps.closure(tree, ["no_such_module"])
    assert missing.exit_status == 1 and [t for t, _ in missing.errors] == ["no_such_module"]


def test_planning_a_tree_with_cycles_raises(tmp_path: Path) -> None:
    with pytest.raises(moddeps.CycleError):
        moddeps.closure(SAMPLE, ["mdx_consumer"])
    with pytest.raises(moddeps.InputError):
        moddeps.plan_load(tmp_path / "nothing", ["x"])


# --------------------------------------------------------------------------
# audit, compat, diff, info
# --------------------------------------------------------------------------


def readme_findings() -> list[tuple[str, ...]]:
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- readme-audit: begin -->\n```console\n(.*?)```", readme, re.S)
    assert block
    return [tuple(line.split("\t")[1:]) for line in block.group(1).splitlines() if line.startswith("finding\t")]


def test_audit_finds_the_readme_findings() -> None:
    result = moddeps.audit_tree(SAMPLE, symvers=SYMVERS, jobs=1)
    assert isinstance(result, moddeps.AuditResult)
    assert [(f.severity, f.kind, f.modules[0], f.message) for f in result.findings] == readme_findings()
    assert result.module_count == 13 and result.exit_status("error") == 1
    assert all(isinstance(f, moddeps.Finding) for f in result.findings)


def test_audit_options(tmp_path: Path) -> None:
    with pytest.raises(moddeps.UsageError):
        moddeps.audit_tree(SAMPLE, symvers=SYMVERS, system_map=SYMVERS)
    with pytest.raises(moddeps.InputError):
        moddeps.audit_tree(tmp_path / "nothing")
    with pytest.raises(moddeps.InputError):
        moddeps.audit_tree(SAMPLE, symvers=tmp_path / "no-symvers")
    tree = moddeps.read_tree(SAMPLE, jobs=1)
    without = moddeps.audit_tree(tree)  # a Tree already read; no symbol list: no unknown-symbol check
    assert "unknown-symbol" not in without.counts() and without.notes


def test_check_compat_is_the_compat_command(root: Path) -> None:
    dirname = root / "lib" / "modules" / VER
    file = SAMPLE / "kernel" / "samples" / "mdx" / "mdx_oldkernel.ko"
    result = moddeps.check_compat([file], dirname, symvers=SYMVERS)
    r = cli("compat", "--json", "--symvers", str(SYMVERS), str(file), str(dirname))
    doc = json.loads(r.stdout)
    assert r.returncode == result.exit_status() == 1
    assert [(v.module, v.loads, v.summary, list(v.kernel_log)) for v in result.verdicts] == [
        (v["module"], v["loads"], v["summary"], v["kernel_log"]) for v in doc["verdicts"]]
    assert [f.kind for f in result.findings] == [f["kind"] for f in doc["findings"]]
    # built for another kernel: the kernel stops at the first check, module_layout's CRC
    assert [f.kind for f in result.findings] == ["crc-mismatch", "vermagic-mismatch"]
    assert result.verdicts[0].reasons == ("crc-mismatch",) and result.verdicts[0].errno == "ENOEXEC"
    with pytest.raises(moddeps.UsageError):
        moddeps.check_compat([], dirname)


def test_diff_of_a_tree_and_itself_and_of_two_sides(root: Path, tmp_path: Path) -> None:
    tree = moddeps.read_tree(root / "lib" / "modules" / VER, jobs=1)
    same = moddeps.diff(tree, tree)
    assert same.changes == () and same.exit_status() == 0
    newer = copy_tree(tmp_path / "new")
    (newer / "kernel" / "samples" / "mdx" / "mdx_exporter.ko").unlink()
    result = moddeps.diff(tree, newer, jobs=1)
    r = cli("diff", "--json", str(root / "lib" / "modules" / VER), str(newer))
    doc = json.loads(r.stdout)
    assert r.returncode == result.exit_status() == 1
    assert [(c.kind, c.module, c.symbol, c.incompatible) for c in result.changes] == [
        (c["kind"], c["module"], c["symbol"], c["incompatible"]) for c in doc["changes"]]
    assert {c.kind for c in result.incompatible} == {"export-removed"}
    assert isinstance(result.old, moddeps.Side) and result.new.path == str(newer)
    with pytest.raises(moddeps.InputError):
        moddeps.diff(tree, tmp_path / "nothing")


def test_info_is_info_json(root: Path) -> None:
    dirname = root / "lib" / "modules" / VER
    (got,) = moddeps.info("mdx_softdep", tree=dirname, kmod_version=34)
    r = cli("info", "--json", "--kmod-version", "34", "-b", str(root), "-k", VER, "mdx_softdep")
    assert r.returncode == 0, r.stderr
    (want,) = json.loads(r.stdout)["queries"][0]["modules"]
    assert (got.name, got.filename, got.builtin, got.error) == (want["name"], want["filename"], False, None)
    assert [list(f) for f in got.fields] == want["fields"]
    assert got.module is not None
    assert [e.name for e in got.module.exports] == [e["name"] for e in want["exports"]]
    assert [i.name for i in got.module.imports] == [i["name"] for i in want["imports"]]
    by_file = moddeps.info(dirname / "kernel" / "samples" / "mdx" / "mdx_softdep.ko", kmod_version=34)
    assert by_file[0].fields == got.fields
    (builtin,) = moddeps.info("binfmt_script", tree=dirname)
    assert builtin.builtin and builtin.path is None
    with pytest.raises(moddeps.InputError, match=r"^Module no_such_module not found\.$"):
        moddeps.info("no_such_module", tree=dirname)
    with pytest.raises(moddeps.InputError):
        moddeps.info("mdx_softdep")  # a name needs a tree
    with pytest.raises(moddeps.UsageError):
        moddeps.info("mdx_softdep", tree=dirname, kmod_version="twelve")


# --------------------------------------------------------------------------
# Records and side effects
# --------------------------------------------------------------------------


def every_result(root: Path) -> list[object]:
    """What each function returns, and the records inside."""
    dirname = root / "lib" / "modules" / VER
    tree = moddeps.read_tree(dirname, jobs=1)
    ctx = moddeps.plan_context(dirname)
    plans = moddeps.plan_load(ctx, ["mdx_consumer"])
    outputs = moddeps.depmod_outputs(dirname)
    closure = moddeps.closure(ctx, ["mdx_consumer"])
    audit = moddeps.audit_tree(tree)
    (info,) = moddeps.info("mdx_consumer", tree=dirname)
    return [
        tree, tree.modules[0], tree.files[0], tree.duplicates[0], tree.modules[0].exports[0],
        tree.modules[0].imports[0], moddeps.resolve_symbols(tree), outputs, outputs.kmod, ctx, plans,
        plans.plans[0], plans.plans[0].steps[0], plans.source, moddeps.plan_remove(ctx, ["mdx_consumer"]), closure,
        closure.items[0], audit, audit.findings[0],
        moddeps.check_compat([dirname / "updates" / "mdx_consumer.ko"], tree), moddeps.diff(tree, SYMVERS), info,
    ]


def test_records_are_frozen_and_pickle(root: Path) -> None:
    for record in every_result(root):
        cls = type(record)
        assert cls.__name__ in moddeps.__all__, cls
        field = next(iter(dataclasses.fields(record))).name if dataclasses.is_dataclass(record) else cls._fields[0]
        with pytest.raises(AttributeError):
            setattr(record, field, None)
        if not isinstance(record, moddeps.PlanContext):  # a handle on open indexes
            assert pickle.loads(pickle.dumps(record)) == record


def test_nothing_is_printed(root: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        every_result(root)
        with contextlib.suppress(moddeps.CycleError):
            moddeps.depmod_outputs(SAMPLE)
    assert out.getvalue() == err.getvalue() == ""
    assert capfd.readouterr() == ("", "")


def test_the_scan_cache_is_used_only_when_given(root: Path, tmp_path: Path) -> None:
    dirname = root / "lib" / "modules" / VER
    db = tmp_path / "cache" / "scan.sqlite3"
    first = moddeps.read_tree(dirname, cache=db, jobs=1)
    assert db.is_file()
    assert moddeps.read_tree(dirname, cache=db, jobs=1) == first == moddeps.read_tree(dirname, jobs=1)
    assert moddeps.depmod_outputs(dirname, cache=db) == moddeps.depmod_outputs(dirname)


# --------------------------------------------------------------------------
# The worked example of docs/api.md
# --------------------------------------------------------------------------


def doc_block(name: str) -> str:
    m = re.search(rf"<!-- {name}: begin -->\n```python\n(.*?)```\n<!-- {name}: end -->", DOC, re.S)
    assert m, f"docs/api.md: block {name} missing"
    return m.group(1)


def test_docs_example_runs_on_the_sample_tree(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path / "root")
    example: dict[str, object] = {}
    exec(compile(doc_block("api-example"), "docs/api.md", "exec"), example)
    initramfs_closure = example["initramfs_closure"]
    assert callable(initramfs_closure)
    targets = ["mdx_softdep", "mdx_dup_user"]
    with pytest.raises(RuntimeError, match=r"firmware mdx/firmware\.bin"):
        initramfs_closure(str(tree), targets)  # the sample's firmware is not installed
    firmware = tmp_path / "root" / "lib" / "firmware" / "mdx" / "firmware.bin"
    firmware.parent.mkdir(parents=True)
    firmware.write_bytes(b"\0")

    # the usage block as shown, on the sample tree instead of Debian's
    usage = doc_block("api-usage")
    assert re.search(r'^tree = ".*"$', usage, re.M) and re.search(r"^targets = \[.*\]$", usage, re.M)
    usage = re.sub(r'^tree = ".*"$', f"tree = {str(tree)!r}", usage, flags=re.M)
    usage = re.sub(r"^targets = \[.*\]$", f"targets = {targets!r}", usage, flags=re.M)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(usage, "docs/api.md", "exec"), example)
    printed = out.getvalue().splitlines()

    r = cli("plan", "--closure", "--reasons", "-b", str(tmp_path / "root"), "-k", VER, *targets)
    assert r.returncode == 0, r.stderr
    want = []
    for line in r.stdout.splitlines():
        path, kind, reason, _because = line.split("\t")
        reason, _, via = reason.partition(" (via ")
        want.append([kind, reason, via.rstrip(")") or "-", path])
    assert [line.split() for line in printed] == want
    assert [w[1] for w in want] == ["softdep-pre", "target", "softdep-post", "dependency", "target", "firmware"]
