"""Load/unload plans and closures on small synthetic trees (moddeps.modprobe).

The trees are built with tests/kobuild.py and indexed with moddeps' own
depmod.  Expected lines were checked against kmod 30's modprobe; when that
binary is installed, ``test_matches_real_modprobe`` checks them again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from rich.console import Console

from moddeps import kmodversion
from moddeps.depmod.run import DepmodOptions, run
from moddeps.modprobe import config as mc
from moddeps.modprobe.closure import closure
from moddeps.modprobe.indexes import index_state
from moddeps.modprobe.plan import (
    PlanContext,
    cmdline_options,
    modprobe_dirname,
    open_context,
    plan_load,
    plan_remove,
    plan_targets,
)
from moddeps.report.plan import (
    closure_document,
    closure_lines,
    kmod_stderr_lines,
    plan_document,
    render_closure,
    render_plans,
    show_depends_text,
    source_note,
)

from .kobuild import Export, build_ko

VER = "6.1.0-test"

#: relpath -> build_ko arguments
MODULES: dict[str, dict[str, object]] = {
    "kernel/lib/libc1.ko": {"exports": [Export(name="c1_fn")], "modinfo": ["license=GPL"]},
    "kernel/lib/libb.ko": {"exports": [Export(name="b_fn")], "undefined": ["c1_fn"], "modinfo": ["license=GPL"]},
    "kernel/drivers/net/foo-drv.ko": {
        "undefined": ["b_fn", "c1_fn"],
        "modinfo": ["license=GPL", "alias=pci:v00001234d0000ABCDsv*sd*bc*sc*i*", "alias=foo-alias-*",
                    "softdep=pre: pre_mod post: post-mod", "firmware=foo/fw.bin", "firmware=foo/missing.bin",
                    "weakdep=weak_mod"],
    },
    "kernel/drivers/misc/pre_mod.ko": {"modinfo": ["license=GPL"]},
    "kernel/drivers/misc/post-mod.ko": {"undefined": ["c1_fn"], "modinfo": ["license=GPL"]},
    "kernel/drivers/misc/weak_mod.ko": {"undefined": ["b_fn"], "modinfo": ["license=GPL"]},
    "kernel/drivers/misc/other.ko": {"modinfo": ["license=GPL", "alias=pci:v00001234d*sv*sd*bc*sc*i*"]},
    "kernel/drivers/misc/noexit.ko": {"modinfo": ["license=GPL"], "exit": False},
    "kernel/drivers/misc/blk.ko": {"modinfo": ["license=GPL", "alias=blkalias"]},
}
ORDER = ["kernel/lib/libc1.ko", "kernel/lib/libb.ko", "kernel/drivers/net/foo-drv.ko",
         "kernel/drivers/misc/pre_mod.ko", "kernel/drivers/misc/post-mod.ko", "kernel/drivers/misc/weak_mod.ko",
         "kernel/drivers/misc/other.ko", "kernel/drivers/misc/noexit.ko", "kernel/drivers/misc/blk.ko"]
BUILTIN = "kernel/fs/ext4.ko\nkernel/crypto/md5.ko\n"
BUILTIN_MODINFO = b"md5.alias=crypto-md5\0md5.alias=md5\0ext4.alias=fs-ext4\0"


def make_tree(root: Path, *, index: bool = True, modules: dict[str, dict[str, object]] | None = None) -> str:
    """A tree under ``root``; returns the module directory as modprobe names it."""
    moddir = root / "lib" / "modules" / VER
    for rel, kw in (modules or MODULES).items():
        p = moddir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(build_ko(**kw))  # type: ignore[arg-type]
    (moddir / "modules.order").write_text("".join(r + "\n" for r in ORDER if (moddir / r).exists()))
    (moddir / "modules.builtin").write_text(BUILTIN)
    (moddir / "modules.builtin.modinfo").write_bytes(BUILTIN_MODINFO)
    fw = root / "lib" / "firmware" / "foo"
    fw.mkdir(parents=True, exist_ok=True)
    (fw / "fw.bin").write_bytes(b"firmware")
    if index:
        reindex(root)
    return modprobe_dirname(str(root), VER)


def reindex(root: Path) -> None:
    run(DepmodOptions(version=VER, basedir=str(root), fsync=False, jobs=1))
    # make sure every module file is older than the fresh indexes
    moddir = root / "lib" / "modules" / VER
    old = time.time() - 3600
    for dirpath, _dirs, files in os.walk(moddir):
        for f in files:
            if ".ko" in f:
                os.utime(os.path.join(dirpath, f), (old, old))


def conf(tmp_path: Path, files: dict[str, str]) -> str:
    d = tmp_path / "modprobe.d"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return str(d)


def ctx_for(tmp_path: Path, config: dict[str, str] | None = None, **kw: object) -> PlanContext:
    dirname = make_tree(tmp_path / "root")
    return open_context(dirname, config_paths=[conf(tmp_path, config or {})], **kw)  # type: ignore[arg-type]


def lines(ctx: PlanContext, *targets: str, options: Sequence[str] = ()) -> list[str]:
    return show_depends_text(plan_load(ctx, targets, options=options)).splitlines()


def rm_lines(ctx: PlanContext, *targets: str) -> list[str]:
    return show_depends_text(plan_remove(ctx, targets)).splitlines()


@pytest.fixture
def ctx(tmp_path: Path) -> PlanContext:
    return ctx_for(tmp_path)


def p(ctx: PlanContext, rel: str, opts: str = "") -> str:
    return f"insmod {ctx.dirname}/{rel} {opts}"


# --------------------------------------------------------------------------
# load plans
# --------------------------------------------------------------------------


def test_dependencies_softdeps_and_the_repeated_dependency(ctx: PlanContext) -> None:
    assert ctx.source.kind == "index" and ctx.source.reader == "mmap"
    # modules.dep order reversed (libraries first), pre softdep, the module,
    # then the post softdep -- whose dependency libc1 is listed again, as kmod does.
    assert lines(ctx, "foo_drv") == [
        p(ctx, "kernel/lib/libc1.ko"),
        p(ctx, "kernel/lib/libb.ko"),
        p(ctx, "kernel/drivers/misc/pre_mod.ko"),
        p(ctx, "kernel/drivers/net/foo-drv.ko"),
        p(ctx, "kernel/lib/libc1.ko"),
        p(ctx, "kernel/drivers/misc/post-mod.ko"),
    ]
    (plan,) = plan_load(ctx, ["foo_drv"])
    reasons = [(s.module, s.reason, s.via) for s in plan.steps]
    assert reasons == [("libc1", "dependency", "foo_drv"), ("libb", "dependency", "foo_drv"),
                       ("pre_mod", "softdep-pre", "foo_drv"), ("foo_drv", "target", None),
                       ("libc1", "dependency", "post_mod"), ("post_mod", "softdep-post", "foo_drv")]
    libc1 = plan.steps[0]
    assert libc1.because == ("c1_fn",)
    assert dict(libc1.needed_by) == {"foo_drv": ("c1_fn",), "libb": ("c1_fn",)}
    assert plan.steps[1].because == ("b_fn",)
    assert "softdep=pre: pre_mod post: post-mod" not in plan.steps[2].because[0]
    assert plan.steps[2].because[0].startswith("softdep foo_drv pre: pre_mod post: post-mod (")
    assert plan.found_by == "module" and plan.resolved == ("foo_drv",)


def test_dash_and_underscore_are_the_same(ctx: PlanContext) -> None:
    assert lines(ctx, "foo-drv") == lines(ctx, "foo_drv")
    assert lines(ctx, "post_mod") == lines(ctx, "post-mod") == [p(ctx, "kernel/lib/libc1.ko"),
                                                              p(ctx, "kernel/drivers/misc/post-mod.ko")]


def test_aliases_with_wildcards_in_priority_order(ctx: PlanContext) -> None:
    modalias = "pci:v00001234d0000ABCDsv00001AF4sd00001100bc02sc00i00"
    (plan,) = plan_load(ctx, [modalias])
    # both patterns match; modules.dep order (the index priority) decides
    assert plan.resolved == ("foo_drv", "other") and plan.found_by == "alias"
    assert plan.lines[-1] == p(ctx, "kernel/drivers/misc/other.ko")
    target = next(s for s in plan.steps if s.reason == "target" and s.module == "foo_drv")
    assert target.alias == modalias
    assert target.because == ("alias pci:v00001234d0000ABCDsv*sd*bc*sc*i* foo_drv (modules.alias)",)
    # "-" in the query becomes "_", as in the stored (normalised) pattern
    assert plan_load(ctx, ["foo-alias-x"])[0].resolved == ("foo_drv",)
    assert plan_load(ctx, ["pci:v00001234d00000001sv0sd0bc0sc0i0"])[0].resolved == ("other",)


def test_symbol_targets(ctx: PlanContext) -> None:
    (plan,) = plan_load(ctx, ["symbol:b_fn"])
    assert plan.resolved == ("libb",) and plan.found_by == "symbol"
    assert plan.lines == (p(ctx, "kernel/lib/libc1.ko"), p(ctx, "kernel/lib/libb.ko"))
    assert not plan_load(ctx, ["symbol:nope"])[0].ok


def test_builtin_modules_and_builtin_aliases(ctx: PlanContext) -> None:
    assert lines(ctx, "ext4") == ["builtin ext4"]
    assert lines(ctx, "fs-ext4") == ["builtin ext4"]
    (plan,) = plan_load(ctx, ["crypto-md5"])
    assert plan.found_by == "builtin alias" and plan.lines == ("builtin md5",)
    assert plan.steps[0].builtin


def test_unknown_targets_fail_like_modprobe(ctx: PlanContext) -> None:
    plans = plan_load(ctx, ["nope", "ext4", "bad[bracket"])
    assert [pl.ok for pl in plans] == [False, True, False]
    assert plans[0].kmod_message == f"Module nope not found in directory {ctx.dirname}"
    assert kmod_stderr_lines(plans[:1], all_mode=False) == [
        f"modprobe: FATAL: Module nope not found in directory {ctx.dirname}"]
    assert kmod_stderr_lines(plans, all_mode=True)[1].startswith("modprobe: WARNING: Module bad[bracket not found")
    (rm,) = plan_remove(ctx, ["nope"])
    assert rm.kmod_message == "Module nope not found." and not rm.ok


def test_options_from_config_alias_and_command_line(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, {"o.conf": "options libb  b=1\toptions libc1 c=2\noptions foo_alias_* fa=1\n"
                                       "options  pre_mod   spaced=1\n"})
    out = lines(ctx, "libb")
    # config options: a space after them even without command-line options
    # (a tab does not end a line: "options libc1 c=2" belongs to libb's options)
    assert out == [p(ctx, "kernel/lib/libc1.ko"), p(ctx, "kernel/lib/libb.ko", " b=1 options libc1 c=2 ")]
    # command-line options go to the target only, quoted like modprobe does
    assert lines(ctx, "libb", options=["x=1", "y=a b"])[-1] == p(ctx, "kernel/lib/libb.ko",
                                                                  ' b=1 options libc1 c=2 x=1 y="a b"')
    assert lines(ctx, "pre_mod", options=["z=1"]) == [p(ctx, "kernel/drivers/misc/pre_mod.ko", "  spaced=1 z=1")]
    assert lines(ctx, "other", options=["z=1"]) == [p(ctx, "kernel/drivers/misc/other.ko", "z=1")]
    with pytest.raises(Exception, match="exactly one target"):
        plan_load(ctx, ["a", "b"], options=["x=1"])


def test_options_for_an_alias_pattern(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, {"a.conf": "alias my-net foo-drv\noptions my_net via_alias=1\n"})
    (plan,) = plan_load(ctx, ["my-net"])
    assert plan.found_by == "config alias"
    assert plan.steps[3].line == p(ctx, "kernel/drivers/net/foo-drv.ko", "via_alias=1 ")
    # by name the alias' options do not apply
    assert lines(ctx, "foo_drv")[3] == p(ctx, "kernel/drivers/net/foo-drv.ko")


def test_blacklist_applies_to_aliases_only(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, {"b.conf": "blacklist blk\nblacklist libc1\n"})
    (by_alias,) = plan_load(ctx, ["blkalias"])
    assert by_alias.ok and by_alias.lines == () and "blacklisted" in by_alias.notes[0]
    assert lines(ctx, "blk") == [p(ctx, "kernel/drivers/misc/blk.ko")]
    # a blacklisted dependency is still loaded
    assert lines(ctx, "libb")[0] == p(ctx, "kernel/lib/libc1.ko")


def test_config_softdep_against_modules_softdep_by_file_name(tmp_path: Path) -> None:
    early = ctx_for(tmp_path / "a", {"a.conf": "softdep foo_drv post: blk\n"})
    assert lines(early, "foo_drv")[-1] == p(early, "kernel/drivers/misc/blk.ko")
    assert p(early, "kernel/drivers/misc/pre_mod.ko") not in lines(early, "foo_drv")
    late = ctx_for(tmp_path / "z", {"z.conf": "softdep foo_drv post: blk\n"})
    assert p(late, "kernel/drivers/misc/blk.ko") not in lines(late, "foo_drv")


def test_softdep_syntax_quirks(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, {"a.conf": "softdep blk  pre: libc1\nsoftdep other pre:  pre_mod post:blk libb\n"
                                       "softdep noexit\tpre: libc1\n"})
    # one blank too many before "pre:" glues it to the keyword: no softdep at all
    assert lines(ctx, "blk") == [p(ctx, "kernel/drivers/misc/blk.ko")]
    # "post:blk" is not a keyword: it is looked up (and not found) as a pre softdep
    assert lines(ctx, "other") == [p(ctx, "kernel/drivers/misc/pre_mod.ko"), p(ctx, "kernel/lib/libc1.ko"),
                                   p(ctx, "kernel/lib/libb.ko"), p(ctx, "kernel/drivers/misc/other.ko")]
    assert lines(ctx, "noexit")[0] == p(ctx, "kernel/lib/libc1.ko")


def test_install_and_remove_commands(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, {"i.conf": "install libb /sbin/do-it $CMDLINE_OPTS\ninstall foo_drv /bin/false\n"
                                       "install ghost*  /bin/echo ghost\nremove libb /bin/echo bye $CMDLINE_OPTS\n"
                                       "remove phantom /bin/true\noptions libb k=v\n"})
    # the install command is printed raw, options after it
    assert lines(ctx, "libb") == [p(ctx, "kernel/lib/libc1.ko"), "install /sbin/do-it $CMDLINE_OPTS k=v "]
    # a module with softdeps ignores its install command
    (plan,) = plan_load(ctx, ["foo_drv"])
    target = next(s for s in plan.steps if s.reason == "target")
    assert target.action == "insmod" and target.note and "softdeps" in target.note
    # a command for a module that does not exist: found by the command lookup
    (ghost,) = plan_load(ctx, ["ghost"])
    assert ghost.found_by is None and not ghost.ok  # "ghost*" is not exactly "ghost"
    ctx2 = ctx_for(tmp_path / "2", {"i.conf": "install ghost  /bin/echo ghost\nremove phantom /bin/true\n"})
    assert lines(ctx2, "ghost") == ["install  /bin/echo ghost "]
    (phantom,) = plan_load(ctx2, ["phantom"])
    assert phantom.ok and phantom.lines == () and phantom.steps[0].action == "skip"
    # remove: $CMDLINE_OPTS is replaced by nothing
    assert rm_lines(ctx, "libb") == ["remove /bin/echo bye "]
    assert rm_lines(ctx2, "phantom") == ["remove /bin/true"]


def test_several_targets_like_modprobe_a(ctx: PlanContext) -> None:
    plans = plan_load(ctx, ["libb", "nope", "crypto-md5"])
    assert [pl.target for pl in plans] == ["libb", "nope", "crypto-md5"]
    assert show_depends_text(plans).splitlines() == [p(ctx, "kernel/lib/libc1.ko"), p(ctx, "kernel/lib/libb.ko"),
                                                     "builtin md5"]


def test_loaded_modules_are_skipped_outside_show_depends(ctx: PlanContext) -> None:
    (plan,) = plan_load(ctx, ["libb"], loaded=["libc1"])
    assert plan.lines == (p(ctx, "kernel/lib/libb.ko"),)
    assert plan.steps[0].action == "skip"
    (plan,) = plan_load(ctx, ["ext4"], loaded=[])
    assert plan.lines == () and "built in" in plan.notes[0]


def test_module_file_target(ctx: PlanContext) -> None:
    path = f"{ctx.dirname}/kernel/lib/libb.ko"
    (plan,) = plan_load(ctx, [path])
    assert plan.lines == (p(ctx, "kernel/lib/libc1.ko"), f"insmod {path} ")
    assert any("kmod 31" in n for n in plan.notes)
    assert not plan_load(ctx, ["/no/such/file.ko"])[0].ok


# --------------------------------------------------------------------------
# unload plans
# --------------------------------------------------------------------------


def test_remove_order_and_flags(ctx: PlanContext) -> None:
    # post softdeps first (reversed), the module, pre softdeps (reversed)
    assert rm_lines(ctx, "foo_drv") == ["rmmod post_mod", "rmmod foo_drv", "rmmod pre_mod"]
    (plan,) = plan_remove(ctx, ["noexit"])
    assert plan.steps[0].permanent is True and "exit" in (plan.steps[0].note or "")
    (plan,) = plan_remove(ctx, ["ext4"])
    assert plan.lines == ("rmmod ext4",) and plan.steps[0].builtin


def test_remove_against_loaded_modules_with_holders(ctx: PlanContext) -> None:
    loaded = ["libc1", "libb", "foo_drv", "weak_mod", "post_mod", "pre_mod"]
    (plan,) = plan_remove(ctx, ["libb"], loaded=loaded)
    assert not plan.ok and plan.kmod_message == "Module libb is in use."
    # a holder's own holders are not removed (kmod passes no REMOVE_HOLDERS down): weak_mod keeps libb
    (plan,) = plan_remove(ctx, ["libc1"], loaded=["libc1", "libb", "weak_mod"], remove_holders=True)
    assert plan.error == "Module libb is in use." and plan.steps == ()
    (plan,) = plan_remove(ctx, ["pre_mod"], loaded=["pre_mod", "libc1"], remove_holders=True)
    assert plan.ok and [(s.module, s.reason) for s in plan.steps] == [("pre_mod", "target")]
    (plan,) = plan_remove(ctx, ["libb"], loaded=loaded, remove_holders=True)
    # kmod 30's quirk: removing holder foo_drv also removes libb, now unused; then
    # libb itself cannot be removed any more ("No such file or directory")
    assert [(s.module, s.reason) for s in plan.steps] == [
        ("weak_mod", "holder"), ("post_mod", "softdep-post"), ("foo_drv", "holder"), ("libb", "unused-dependency"),
        ("pre_mod", "softdep-pre"), ("libb", "target")]
    assert plan.error == "could not remove 'libb': No such file or directory"
    (plan,) = plan_remove(ctx, ["foo_drv"], loaded=["libc1", "libb", "foo_drv"])
    # unused dependencies follow, in kmod's order (libraries first: libc1 is still held by libb then)
    assert [(s.module, s.reason) for s in plan.steps] == [("foo_drv", "target"), ("libb", "unused-dependency")]
    (plan,) = plan_remove(ctx, ["noexit"], loaded=["noexit"])
    assert not plan.ok and "busy" in (plan.error or "")


# --------------------------------------------------------------------------
# closure
# --------------------------------------------------------------------------


def test_closure_follows_softdeps_weakdeps_and_firmware(ctx: PlanContext, tmp_path: Path) -> None:
    # a firmware file missing makes the closure incomplete (exit 1) unless allowed
    strict = closure(ctx, ["foo-drv", "crypto-md5"])
    assert strict.exit_status == 1
    assert [name for name, _ in strict.problems] == ["foo/missing.bin"]
    assert "--allow-missing-firmware" in strict.problems[0][1]
    c = closure(ctx, ["foo-drv", "crypto-md5"], allow_missing_firmware=True)
    assert c.exit_status == 0 and c.problems == ()
    assert any("foo/missing.bin" in n and "--allow-missing-firmware" in n for n in c.notes)
    assert any(n.startswith("md5: built into the kernel") for n in c.notes)
    got = [(i.kind, i.name, i.reason) for i in c.items]
    assert got == [
        ("module", "libc1", "dependency"), ("module", "libb", "dependency"), ("module", "pre_mod", "softdep-pre"),
        ("module", "foo_drv", "target"), ("module", "post_mod", "softdep-post"), ("builtin", "md5", "target"),
        ("module", "weak_mod", "weakdep"), ("firmware", "foo/fw.bin", "firmware"),
        ("firmware", "foo/missing.bin", "firmware")]
    weak = next(i for i in c.items if i.name == "weak_mod")
    # moddeps' depmod writes modules.weakdep (kmod 33's file), read like config
    assert weak.via == "foo_drv" and weak.because[0].startswith("weakdep foo_drv weak_mod (")
    fw = {i.name: i for i in c.items if i.kind == "firmware"}
    assert fw["foo/fw.bin"].exists and fw["foo/fw.bin"].path == str(tmp_path / "root/lib/firmware/foo/fw.bin")
    assert not fw["foo/missing.bin"].exists
    paths = closure_lines(c)
    # 6 modules, 1 built-in (builtin md5), 1 firmware found
    assert paths[0] == f"{ctx.dirname}/kernel/lib/libc1.ko" and len(paths) == 8
    assert all("\t" in line for line in closure_lines(c, reasons=True))
    doc = closure_document(c)
    assert json.loads(json.dumps(doc))["items"][0]["reason"] == "dependency"


def test_closure_config_weakdep_and_missing_target(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, {"w.conf": "weakdep pre_mod blk\nblacklist other\n"}, kmod=kmodversion.KmodTarget(34, "t"))
    assert ctx.config.messages == ()
    c = closure(ctx, ["pre_mod", "nope"])
    assert [(i.name, i.reason) for i in c.items] == [("pre_mod", "target"), ("blk", "weakdep")]
    assert c.errors == (("nope", f"Module nope not found in directory {ctx.dirname}"),)
    assert c.exit_status == 1
    # blacklisted alias targets are reported, never silently empty
    c2 = closure(ctx, ["pci:v00001234d00000001sv0sd0bc0sc0i0"])
    assert c2.exit_status == 1 and "blacklisted" in c2.errors[0][1]


# --------------------------------------------------------------------------
# indexes: current, stale, absent
# --------------------------------------------------------------------------


def test_absent_indexes_are_computed_from_a_scan(tmp_path: Path) -> None:
    dirname = make_tree(tmp_path / "root", index=False)
    ctx = open_context(dirname, config_paths=[conf(tmp_path, {})])
    assert ctx.source.kind == "scan" and "missing" in ctx.source.reason
    assert "scan" in source_note(ctx.source, dirname)
    indexed = ctx_for(tmp_path / "other")
    for t in ("foo_drv", "pci:v00001234d0000ABCDsv0sd0bc0sc0i0", "symbol:c1_fn", "crypto-md5", "ext4"):
        assert [x.replace(indexed.dirname, "D") for x in lines(indexed, t)] == [
            x.replace(dirname, "D") for x in lines(ctx, t)]


def test_stale_indexes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    dirname = make_tree(root)
    assert index_state(dirname) == (True, "modules.dep.bin and the other indexes are current")
    moddir = root / "lib" / "modules" / VER
    # a module file newer than the index
    os.utime(moddir / "kernel/lib/libb.ko")
    current, why = index_state(dirname)
    assert not current and "newer than modules.dep.bin" in why
    reindex(root)
    # a module added with an old time stamp
    shutil.copy(moddir / "kernel/drivers/misc/blk.ko", moddir / "kernel/drivers/misc/added.ko")
    os.utime(moddir / "kernel/drivers/misc/added.ko", (1, 1))
    current, why = index_state(dirname)
    assert not current and "not in modules.dep.bin: added" in why
    ctx = open_context(dirname, config_paths=[conf(tmp_path, {})])
    assert ctx.source.kind == "scan"
    assert lines(ctx, "added") == [p(ctx, "kernel/drivers/misc/added.ko")]
    # ... but the index can still be asked for, as modprobe would use it
    ctx_idx = open_context(dirname, config_paths=[conf(tmp_path, {})], source="index")
    assert not plan_load(ctx_idx, ["added"])[0].ok
    # a module removed
    reindex(root)
    (moddir / "kernel/drivers/misc/added.ko").unlink()
    current, why = index_state(dirname)
    assert not current and "no longer exist: added" in why


def test_broken_builtin_index_falls_back_to_the_stdio_reader(tmp_path: Path) -> None:
    root = tmp_path / "root"
    dirname = make_tree(root)
    (root / "lib/modules" / VER / "modules.builtin.bin").write_bytes(b"")
    ctx = open_context(dirname, config_paths=[conf(tmp_path, {})], source="index")
    assert ctx.source.reader == "stdio"
    assert lines(ctx, "ext4") == []  # kmod finds nothing either
    assert lines(ctx, "fs-ext4") == ["builtin ext4"]


# --------------------------------------------------------------------------
# documents and renderings
# --------------------------------------------------------------------------


def test_json_document(tmp_path: Path) -> None:
    dirname = make_tree(tmp_path / "root")
    ps = plan_targets(dirname, ["foo_drv", "nope"], config_paths=[conf(tmp_path, {})])
    doc = json.loads(json.dumps(plan_document(ps)))
    assert doc["schema"] == 1 and [pl["target"] for pl in doc["plans"]] == ["foo_drv", "nope"]
    first = doc["plans"][0]
    assert first["error"] is None and first["resolved"] == ["foo_drv"]
    step = first["steps"][0]
    assert {"action", "module", "path", "reason", "because", "line"} <= set(step)
    assert step["line"] == f"insmod {dirname}/kernel/lib/libc1.ko "
    assert doc["plans"][1]["error"].startswith("Module nope not found")
    assert ps.exit_status == 1
    rm = plan_targets(dirname, ["foo_drv"], config_paths=[conf(tmp_path, {})], remove=True)
    assert plan_document(rm)["mode"] == "remove"


def test_rich_renderings_do_not_fail(ctx: PlanContext) -> None:
    con = Console(record=True, width=200)
    ps = plan_targets(ctx.dirname, ["foo_drv", "blkalias", "nope"], config_paths=[])
    render_plans(con, ps)
    render_closure(con, closure(ctx, ["foo_drv"]))
    text = con.export_text()
    assert "softdep-pre" in text or "pre-softdep" in text
    assert "c1_fn" in text


# --------------------------------------------------------------------------
# modprobe.d parser
# --------------------------------------------------------------------------


def test_config_parser_lines_and_errors() -> None:
    data = (b"# comment\n\nalias  foo-bar[0-9]-x  my-mod extra\noptions m a=1\tb=2\n"
            b"install m /bin/a \\\n  /bin/b\nremove m\nblacklist x-y\nsoftdep m pre: a b post: c\n"
            b"include foo\nfrob x\nalias bad]x y\noptions\n  # indented\n")
    cfg = mc.parse_text(data, "f.conf")
    assert cfg.aliases[0].pattern == "foo_bar[0-9]_x" and cfg.aliases[0].modname == "my_mod"
    assert cfg.options[0].options == "a=1 b=2"
    assert cfg.install[0].command == "/bin/a   /bin/b" and cfg.install[0].rule.line == 6
    assert cfg.blacklist[0].modname == "x_y"
    assert (cfg.softdeps[0].pre, cfg.softdeps[0].post) == (("a", "b"), ("c",))
    assert cfg.messages == (
        "ERROR: f.conf line 7: ignoring bad line starting with 'remove'",
        "ERROR: f.conf: command include is deprecated and not parsed anymore",
        "ERROR: f.conf line 11: ignoring bad line starting with 'frob'",
        "ERROR: f.conf line 12: ignoring bad line starting with 'alias'",
        "ERROR: f.conf line 13: ignoring bad line starting with 'options'",
        "ERROR: f.conf line 14: ignoring bad line starting with '#'",
    )
    assert mc.underscores("a-[b-c]-d") == "a_[b-c]_d" and mc.underscores("a[b") is None
    assert mc.logical_lines(b"a\\") == [(1, b"a\xff")]
    assert mc.logical_lines(b"a\\xb\nc") == [(1, b"axb"), (2, b"c")]


def test_config_file_order(tmp_path: Path) -> None:
    d1 = tmp_path / "etc"
    d2 = tmp_path / "lib"
    d1.mkdir()
    d2.mkdir()
    (d1 / "b.conf").write_text("options m from_etc=1\n")
    (d2 / "b.conf").write_text("options m from_lib=1\n")
    (d2 / "a.alias").write_text("options m a=1\n")
    (d2 / "x.txt").write_text("options m ignored=1\n")
    (d2 / ".hidden.conf").write_text("options m ignored=1\n")
    single = tmp_path / "single.cfg"
    single.write_text("options m single=1\n")
    cfg = mc.load([str(d1), str(d2), str(single)], dirname=None)
    assert [o.options for o in cfg.options] == ["a=1", "from_etc=1", "single=1"]
    assert cfg.options_for("m", None)[0] == "a=1 from_etc=1 single=1"
    root = tmp_path / "root"
    (root / "etc/modprobe.d").mkdir(parents=True)
    (root / "etc/modprobe.d/x.conf").write_text("blacklist z\n")
    assert mc.load(None, dirname=None, basedir=str(root)).blacklisted("z") is not None


def test_kernel_command_line() -> None:
    cfg = mc.parse_kernel_cmdline(
        'quiet foo-bar.opt=1 modprobe.blacklist=a,b-c mod.flag "parport.dyndbg=file x.c +p" '
        'q.v="a b" bad.x.y=1 =x nomod.=2 a.b=c\n')
    assert [(o.modname, o.options) for o in cfg.options] == [
        ("foo_bar", "opt=1"), ("mod", "flag"), ("parport", 'dyndbg="file x.c +p"'), ("q", 'v="a b"'),
        ("nomod", "=2"), ("a", "b=c")]
    assert [b.modname for b in cfg.blacklist] == ["a", "b-c"]


def test_cmdline_options_quoting() -> None:
    assert cmdline_options([]) is None
    assert cmdline_options(["a=1", "b=x y", "c='q r'", "flag"]) == "a=1 b=\"x y\" c='q r' flag"
    assert modprobe_dirname("/x/", "1.2") == "/x//lib/modules/1.2"


# --------------------------------------------------------------------------
# the real modprobe, when installed
# --------------------------------------------------------------------------


def _kmod30() -> str | None:
    exe = shutil.which("modprobe", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    return exe if out.startswith("kmod version 30") else None


REAL_CONFIG = {
    "a.conf": "options libb  b=1\toptions libc1 c=2\noptions foo_alias_* fa=1\nalias my-net foo-drv\n"
              "options my_net via_alias=1\nblacklist blk\nsoftdep other pre:  pre_mod post:blk libb\n"
              "softdep blk  pre: libc1\ninstall libb /sbin/do-it $CMDLINE_OPTS\ninstall ghost  /bin/echo ghost\n"
              "remove libb /bin/echo bye $CMDLINE_OPTS\nremove phantom /bin/true\nweakdep pre_mod blk\n",
    "z.conf": "softdep foo_drv post: blk\n",
}
REAL_TARGETS = ["foo_drv", "foo-drv", "post-mod", "pci:v00001234d0000ABCDsv00001AF4sd00001100bc02sc00i00",
                "pci:v00001234d00000001sv0sd0bc0sc0i0", "foo-alias-x", "symbol:b_fn", "symbol:nope", "ext4",
                "fs-ext4", "crypto-md5", "nope", "bad[bracket", "libb", "my-net", "blkalias", "blk", "other",
                "ghost", "phantom", "noexit"]


@pytest.mark.parametrize("with_config", [False, True])
def test_matches_real_modprobe(tmp_path: Path, with_config: bool) -> None:
    exe = _kmod30()
    if exe is None:
        pytest.skip("kmod 30's modprobe is not installed")
    ctx = ctx_for(tmp_path, REAL_CONFIG if with_config else {})
    config = str(tmp_path / "modprobe.d")
    root = str(tmp_path / "root")
    for remove in (False, True):
        for t in REAL_TARGETS:
            argv = [exe, "-C", config, "-d", root, "-S", VER, "--show-depends", *(["-r"] if remove else []), t]
            r = subprocess.run(argv, capture_output=True, text=True)
            plans = plan_remove(ctx, [t]) if remove else plan_load(ctx, [t])
            assert show_depends_text(plans) == r.stdout, (remove, t)
            assert (0 if all(pl.ok for pl in plans) else 1) == r.returncode, (remove, t)
        r = subprocess.run([exe, "-C", config, "-d", root, "-S", VER, "--show-depends", "-a", *REAL_TARGETS],
                           capture_output=True, text=True)
        assert show_depends_text(plan_load(ctx, REAL_TARGETS)) == r.stdout


@pytest.mark.parametrize("release", [30, 31, 32, 33, 34])
def test_weakdep_is_kmod_33s(tmp_path: Path, release: int) -> None:
    """kmod 33 reads modprobe.d's ``weakdep`` lines and the module directory's ``modules.weakdep``
    (moddeps' depmod writes it); kmod 30-32 call the line bad (libkmod's ERROR, as kmod 30 prints it
    for a modprobe.d ``weakdep`` line) and never open the file, so no weakdep comes from config."""
    ctx = ctx_for(tmp_path, {"w.conf": "weakdep pre_mod blk\n"}, kmod=kmodversion.KmodTarget(release, "t"))
    conf_file = next(f for f in ctx.config.files if f.endswith("w.conf"))
    if release >= 33:
        assert ctx.config.messages == ()
        assert [w.pattern for w in ctx.config.weakdeps] == ["foo_drv", "pre_mod"]  # (file names sorted)
        assert any(f.endswith("/modules.weakdep") for f in ctx.config.files)
    else:
        assert ctx.config.messages == (f"ERROR: {conf_file} line 1: ignoring bad line starting with 'weakdep'",)
        assert ctx.config.weakdeps == ()
        assert not any(f.endswith("/modules.weakdep") for f in ctx.config.files)
    reasons = [(i.name, i.reason) for i in closure(ctx, ["pre_mod"]).items]
    assert (("blk", "weakdep") in reasons) == (release >= 33)
