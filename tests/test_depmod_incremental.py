"""A depmod rerun after a few modules changed (moddeps.depmod.incremental and
rerun._update_previous) gives exactly what a run without any cache gives:
files, messages, and the files on disk, over many random changes."""

from __future__ import annotations

import copy
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from moddeps.depmod import incremental
from moddeps.depmod.run import DepmodOptions, run
from moddeps.errors import CycleError
from tests.kobuild import Export, build_ko

VERSION = "6.1.0-1-test"
N = 8


@dataclass
class Spec:
    """One module of the test tree, as kobuild builds it."""

    exports: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    softdeps: list[str] = field(default_factory=list)
    weakdeps: list[str] = field(default_factory=list)
    description: str = "first"

    def build(self) -> bytes:
        info = ["license=GPL", f"description={self.description}"]
        info += [f"alias={a}" for a in self.aliases]
        info += [f"softdep={s}" for s in self.softdeps]
        info += [f"weakdep={w}" for w in self.weakdeps]
        return build_ko(modinfo=info, exports=[Export(name=e, crc=len(e)) for e in self.exports],
                        undefined=self.needs)


ALIASES = ["pci:v00001234d*sv*", "usb:v1D6Bp0002d*", "platform:thing", "devname:thing{i}", "char-major-10-{i}",
           "block-major-8-{i}", "of:N*T*Cvendor,dev{i}", "acpi*:ABC{i}:*", "fs-thing{i}", "devname:dir/node{i}"]
KERNEL = ["printk", "kmalloc", "__this_module"]


def _symbol(i: int, k: int) -> str:
    return f"m{i}_sym{k}"


def _random_spec(rng: random.Random, i: int) -> Spec:
    spec = Spec(exports=[_symbol(i, k) for k in range(rng.randint(0, 3))])
    # at first, a module needs only modules after it: no cycle to begin with
    for j in range(i + 1, N):
        if rng.random() < 0.3:
            spec.needs.append(_symbol(j, rng.randint(0, 2)))
    spec.needs += rng.sample(KERNEL, rng.randint(0, 2))
    spec.aliases = [a.format(i=i) for a in rng.sample(ALIASES, rng.randint(0, 3))]
    if rng.random() < 0.3:
        spec.softdeps = [f"pre: m{rng.randrange(N)}"]
    return spec


def _change(rng: random.Random, specs: list[Spec], i: int) -> str:
    """Change module ``i`` in one random way; returns what was done."""
    spec = specs[i]
    kind = rng.choice(["alias", "alias", "devname", "softdep", "weakdep", "need", "need", "unneed", "kernel",
                       "export", "description", "order"])
    if kind == "alias":
        spec.aliases = [a.format(i=i) for a in rng.sample(ALIASES, rng.randint(0, 4))]
    elif kind == "devname":
        spec.aliases = [f"devname:x{rng.randrange(9)}", f"char-major-{rng.randrange(300)}-{i}", *spec.aliases]
    elif kind == "softdep":
        spec.softdeps = [] if spec.softdeps else [f"pre: m{rng.randrange(N)} post: m{rng.randrange(N)}"]
    elif kind == "weakdep":
        spec.weakdeps = [] if spec.weakdeps else [f"m{rng.randrange(N)}"]
    elif kind == "need":  # mostly a module after it; now and then any module, which may make a cycle
        j = rng.randrange(N) if rng.random() < 0.2 else rng.randrange(i, N)
        if specs[j].exports:
            spec.needs.append(rng.choice(specs[j].exports))
    elif kind == "unneed" and spec.needs:
        spec.needs.pop(rng.randrange(len(spec.needs)))
    elif kind == "kernel":
        spec.needs.append(rng.choice(KERNEL))
    elif kind == "export":
        spec.exports = spec.exports[:-1] if spec.exports and rng.random() < 0.5 else [
            *spec.exports, _symbol(i, len(spec.exports) + 3)]
    elif kind == "order":  # the same imports in another order: the first reference moves
        rng.shuffle(spec.needs)
    spec.description = f"build {rng.random()}"  # always other bytes
    return kind


def _root(tmp_path: Path) -> Path:
    """An empty module directory, with the builtin lists (a dry run leaves out their messages)."""
    root = tmp_path / "lib/modules" / VERSION
    (root / "kernel").mkdir(parents=True)
    (root / "modules.builtin").write_bytes(b"kernel/builtin_thing.ko\n")
    (root / "modules.builtin.modinfo").write_bytes(b"builtin_thing.alias=builtin-alias\0")
    return root


def _write(root: Path, i: int, spec: Spec) -> None:
    path = root / f"kernel/m{i}.ko"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(spec.build())
    tmp.rename(path)


def _outcome(opts: DepmodOptions) -> tuple[object, ...]:
    try:
        result = run(opts)
    except CycleError as exc:
        return ("cycle", str(exc), tuple(exc.messages))
    return ("ok", dict(result.files), result.messages, result.tree is None)


class _Harness:
    """A tree's depmod run with the cache and without, compared after each change."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, added_or_removed: bool = False) -> None:
        common = {"version": VERSION, "basedir": str(tmp_path), "config": (str(tmp_path / "none"),)}
        self.root = tmp_path / "lib/modules" / VERSION
        self.cached = DepmodOptions(**common, cache=str(tmp_path / "c.db"), fsync=False)  # type: ignore[arg-type]
        self.fresh = DepmodOptions(**common, dry_run=True)  # type: ignore[arg-type]
        self.updates: list[bool] = []  # per rerun that tried: brought up to date (of the kind wanted)
        real_update = incremental.update

        def counting(*a: object, **k: object) -> object:
            got = real_update(*a, **k)  # type: ignore[arg-type]
            self.updates.append(got is not None and (not added_or_removed or k.get("remap") is not None))
            return got

        monkeypatch.setattr(incremental, "update", counting)

    def check(self, done: list[str]) -> bool:
        """Rerun with the cache; the same as a run without it, files on disk included.  False: a cycle."""
        got, want = _outcome(self.cached), _outcome(self.fresh)
        assert got[:3] == want[:3], done
        if got[0] != "ok":
            return False
        on_disk = {name: (self.root / name).read_bytes() for name in got[1]}  # type: ignore[attr-defined]
        assert on_disk == got[1], done
        return True


def _random_tree(tmp_path: Path, rng: random.Random) -> tuple[Path, list[Spec]]:
    """A tree of N random modules, in modules.order's order, and their specs."""
    root = _root(tmp_path)
    specs = [_random_spec(rng, i) for i in range(N)]
    for i, spec in enumerate(specs):
        _write(root, i, spec)
    (root / "modules.order").write_text("".join(f"kernel/m{i}.ko\n" for i in range(N)))
    return root, specs


def _half_ordered_tree(tmp_path: Path, rng: random.Random) -> tuple[Path, dict[int, Spec]]:
    """A tree of N random modules, the first half of them in modules.order (the others in kmod's
    hash order: where an added module goes), and their specs by index."""
    root = _root(tmp_path)
    specs = {i: _random_spec(rng, i) for i in range(N)}
    for i, spec in specs.items():
        _write(root, i, spec)
    (root / "modules.order").write_text("".join(f"kernel/m{i}.ko\n" for i in range(N // 2)))
    return root, specs


@pytest.mark.parametrize("seed", range(int(os.environ.get("MODDEPS_TEST_SEEDS", "24"))))
def test_random_changes_give_what_a_run_without_cache_gives(tmp_path: Path, seed: int,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    root, specs = _random_tree(tmp_path, rng)
    harness = _Harness(tmp_path, monkeypatch)
    _outcome(harness.cached)
    kinds: list[str] = []
    for _step in range(30):
        before = copy.deepcopy(specs)
        changed = rng.sample(range(N), rng.choice([1, 1, 1, 2]))
        for i in changed:
            kinds.append(_change(rng, specs, i))
            _write(root, i, specs[i])
        if not harness.check(kinds):  # back to the tree before the cycle (the next run starts from an older result)
            specs = before
            for i in changed:
                _write(root, i, specs[i])
    assert sum(harness.updates) >= 5, harness.updates  # the incremental path was taken


def test_an_update_writes_only_the_files_that_change(tmp_path: Path) -> None:
    root = _root(tmp_path)
    specs = [Spec(exports=["a_sym"], aliases=["pci:v1d*"]), Spec(needs=["a_sym"], aliases=["usb:v1p2d*"])]
    for i, spec in enumerate(specs):
        _write(root, i, spec)
    opts = DepmodOptions(version=VERSION, basedir=str(tmp_path), config=(str(tmp_path / "none"),),
                         cache=str(tmp_path / "c.db"), fsync=False)
    first = run(opts)
    inode = {name: os.stat(root / name).st_ino for name, _ in first.files}
    specs[1].aliases = ["usb:v1p3d*"]
    _write(root, 1, specs[1])
    again = run(opts)
    assert again.tree is None  # brought up to date, not computed
    moved = {name for name, _ in again.files if os.stat(root / name).st_ino != inode[name]}
    assert moved == {"modules.alias", "modules.alias.bin"}
    assert b"usb:v1p3d*" in dict(again.files)["modules.alias"]


@pytest.mark.parametrize("flag", ["verbose", "errsyms"])
def test_verbose_and_symbol_warnings_are_computed_in_full(tmp_path: Path, flag: str) -> None:
    """-v needs each edge's symbols and -e each module's unknown symbols: not kept in the state."""
    root = _root(tmp_path)
    specs = [Spec(exports=["a_sym"]), Spec(needs=["a_sym", "nowhere"])]
    for i, spec in enumerate(specs):
        _write(root, i, spec)
    symvers = tmp_path / "Module.symvers"
    symvers.write_text("0x00000001\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n")
    kw: dict[str, object] = {"verbose": True} if flag == "verbose" else {"errsyms": True, "symvers": str(symvers)}
    opts = DepmodOptions(version=VERSION, basedir=str(tmp_path), config=(str(tmp_path / "none"),),
                         cache=str(tmp_path / "c.db"), fsync=False, **kw)  # type: ignore[arg-type]
    run(opts)
    specs[1].needs = ["nowhere_else", "a_sym"]
    _write(root, 1, specs[1])
    again = run(opts)
    assert again.tree is not None
    fresh = run(DepmodOptions(version=VERSION, basedir=str(tmp_path), config=(str(tmp_path / "none"),),
                              dry_run=True, **kw))  # type: ignore[arg-type]
    assert again.files == fresh.files and again.messages == fresh.messages
    assert again.verbose_lines == fresh.verbose_lines


@pytest.mark.parametrize("how", ["unknown", "weak", "kernel"])
def test_a_symbol_that_gets_its_first_module_exporter_binds_its_importers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """A module starts exporting a symbol that another module imported with no module exporting
    it -- unknown, weak, or the kernel's (-F) -- and that importer now depends on it, as a run
    without cache says; a symbol nobody imports (an export renamed) reads no record of another
    module than those that depended on the symbol's previous owner."""
    from moddeps.read.cache import ScanCache

    root = _root(tmp_path)
    weak = how == "weak"
    _write(root, 0, Spec(exports=["x_sym"]))
    (root / "kernel/m1.ko").write_bytes(build_ko(modinfo=["license=GPL"], undefined=[("new_sym", weak), "printk"]))
    _write(root, 2, Spec(needs=["x_sym"]))
    _write(root, 3, Spec(exports=["y_sym"]))
    system_map = tmp_path / "System.map"
    system_map.write_text("ffffffff81000000 r __ksymtab_printk\n"
                          + ("ffffffff81000010 r __ksymtab_new_sym\n" if how == "kernel" else ""))
    common = {"version": VERSION, "basedir": str(tmp_path), "config": (str(tmp_path / "none"),),
              "system_map": str(system_map) if how == "kernel" else None}
    opts = DepmodOptions(**common, cache=str(tmp_path / "c.db"), fsync=False)  # type: ignore[arg-type]
    run(opts)
    searched: list[int] = []
    real = ScanCache.get_holding

    def holding(self: ScanCache, items: list[object], needles: list[bytes]) -> object:
        searched.append(len(items))
        return real(self, items, needles)  # type: ignore[arg-type]

    monkeypatch.setattr(ScanCache, "get_holding", holding)
    _write(root, 0, Spec(exports=["x_sym", "new_sym"]))
    again = run(opts)
    assert again.tree is None  # brought up to date
    fresh = run(DepmodOptions(**common, dry_run=True))  # type: ignore[arg-type]
    assert again.files == fresh.files and again.messages == fresh.messages
    assert b"kernel/m1.ko: kernel/m0.ko" in dict(again.files)["modules.dep"]
    assert searched and max(searched) == 4  # all modules asked (the changed one: no key): new_sym was imported
    searched.clear()
    _write(root, 3, Spec(exports=["y_sym_renamed"]))  # nobody imports either name
    third = run(opts)
    assert third.tree is None
    assert dict(third.files) == dict(run(DepmodOptions(**common, dry_run=True)).files)  # type: ignore[arg-type]
    assert max(searched, default=0) == 0  # no record searched at all
    # renamed back, then again: the name it had meanwhile lost its exporter, and nobody imports it
    for exported in ("y_sym", "y_sym_renamed"):
        searched.clear()
        _write(root, 3, Spec(exports=[exported]))
        again = run(opts)
        assert again.tree is None
        assert dict(again.files) == dict(run(DepmodOptions(**common, dry_run=True)).files)  # type: ignore[arg-type]
    assert max(searched, default=0) == 0
    # an imported symbol that loses its last exporter, then gets it back: its importer binds again
    for exports in (["new_sym"], ["x_sym", "new_sym"]):
        _write(root, 0, Spec(exports=exports))
        again = run(opts)
        assert again.tree is None
        assert dict(again.files) == dict(run(DepmodOptions(**common, dry_run=True)).files)  # type: ignore[arg-type]
        assert (b"kernel/m2.ko: kernel/m0.ko" in dict(again.files)["modules.dep"]) is ("x_sym" in exports)


def test_a_symbol_a_changed_module_starts_importing_unbound_is_found_when_exported(tmp_path: Path) -> None:
    """Updates keep the state's unbound names: a module changed to import a symbol no module
    exports, then another changed to export it -- the first now depends on the second."""
    root = _root(tmp_path)
    for i, spec in enumerate([Spec(exports=["x_sym"]), Spec(needs=["printk"]), Spec(exports=["y_sym"])]):
        _write(root, i, spec)
    common = {"version": VERSION, "basedir": str(tmp_path), "config": (str(tmp_path / "none"),)}
    opts = DepmodOptions(**common, cache=str(tmp_path / "c.db"), fsync=False)  # type: ignore[arg-type]
    run(opts)
    _write(root, 1, Spec(needs=["printk", "late_sym"]))
    assert run(opts).tree is None
    _write(root, 2, Spec(exports=["y_sym", "late_sym"]))
    again = run(opts)
    assert again.tree is None
    assert b"kernel/m1.ko: kernel/m2.ko" in dict(again.files)["modules.dep"]
    assert dict(again.files) == dict(run(DepmodOptions(**common, dry_run=True)).files)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", [None, "_"])
def test_an_export_that_moves_rebinds_the_modules_importing_it(tmp_path: Path, prefix: str | None) -> None:
    """A library renames its export: the module importing the old name loses
    its dependency, found among the cached records (-P: names with the prefix)."""
    p = prefix or ""
    root = _root(tmp_path)
    specs = [Spec(exports=[f"{p}a_sym", f"{p}b_sym"]), Spec(needs=[f"{p}a_sym", "printk"]),
             Spec(needs=[f"{p}b_sym"]), Spec(exports=[f"{p}c_sym"])]
    for i, spec in enumerate(specs):
        _write(root, i, spec)
    common = {"version": VERSION, "basedir": str(tmp_path), "config": (str(tmp_path / "none"),), "prefix": prefix}
    opts = DepmodOptions(**common, cache=str(tmp_path / "c.db"), fsync=False)  # type: ignore[arg-type]
    first = run(opts)
    assert b"kernel/m1.ko: kernel/m0.ko" in dict(first.files)["modules.dep"]
    specs[0].exports = [f"{p}a_sym_renamed", f"{p}b_sym"]
    _write(root, 0, specs[0])
    again = run(opts)
    assert again.tree is None  # brought up to date
    fresh = run(DepmodOptions(**common, dry_run=True))  # type: ignore[arg-type]
    assert again.files == fresh.files and again.messages == fresh.messages
    assert b"kernel/m1.ko:\n" in dict(again.files)["modules.dep"]
    assert b"kernel/m2.ko: kernel/m0.ko" in dict(again.files)["modules.dep"]
    # and the symbol comes back from another module
    specs[3].exports = [f"{p}c_sym", f"{p}a_sym"]
    _write(root, 3, specs[3])
    third = run(opts)
    assert third.tree is None
    assert b"kernel/m1.ko: kernel/m3.ko" in dict(third.files)["modules.dep"]
    assert dict(third.files) == dict(run(DepmodOptions(**common, dry_run=True)).files)  # type: ignore[arg-type]


@pytest.mark.parametrize("damage", ["other result", "garbage", "bad part", "bad meta", "flipped byte", "gone"])
def test_a_state_that_does_not_belong_or_decode_is_not_used(tmp_path: Path, damage: str) -> None:
    """A state written for another result (a run stopped between the two
    writes), or one that does not decode: everything is computed, correctly."""
    import marshal
    import sqlite3

    from moddeps.read.cache import STATE_CHECK_SIZE, STATES_TABLE, _seal, state_seal

    root = _root(tmp_path)
    specs = [Spec(exports=["a_sym"], aliases=["pci:v1d*"]), Spec(needs=["a_sym"], aliases=["usb:v1p2d*"])]
    for i, spec in enumerate(specs):
        _write(root, i, spec)
    common = {"version": VERSION, "basedir": str(tmp_path), "config": (str(tmp_path / "none"),)}
    opts = DepmodOptions(**common, cache=str(tmp_path / "c.db"), fsync=False)  # type: ignore[arg-type]
    run(opts)
    with sqlite3.connect(tmp_path / "c.db") as db:
        if damage == "other result":
            db.execute(f"UPDATE {STATES_TABLE} SET digest = x'00'")
        elif damage == "garbage":
            db.execute(f"UPDATE {STATES_TABLE} SET state = x'00ff'")
        elif damage in ("bad part", "bad meta"):
            # sealed as written (the row's seal too, so the decoder itself is tested): the right
            # outer form, with a columns part that does not decode or a meta part of the wrong shape
            dirname, digest, state = db.execute(f"SELECT dirname, digest, state FROM {STATES_TABLE}").fetchone()
            parts = list(marshal.loads(state[STATE_CHECK_SIZE:]))
            if damage == "bad part":
                parts[incremental.PARTS.index("columns") + 1] = b"\xff"
            else:
                parts[incremental.PARTS.index("meta") + 1] = marshal.dumps((1, {"dep": 0}, [], []))
            new = _seal(marshal.dumps(tuple(parts)))
            db.execute(f"UPDATE {STATES_TABLE} SET state = ?, seal = ?",
                       (new, state_seal(dirname, digest, new[:STATE_CHECK_SIZE])))
        elif damage == "flipped byte":  # damaged on disk: the seal does not match
            (state,) = db.execute(f"SELECT state FROM {STATES_TABLE}").fetchone()
            flipped = bytearray(state)
            flipped[len(flipped) // 2] ^= 0x01
            db.execute(f"UPDATE {STATES_TABLE} SET state = ?", (bytes(flipped),))
        else:
            db.execute(f"DELETE FROM {STATES_TABLE}")
    db.close()
    specs[1].aliases = ["usb:v1p3d*"]
    _write(root, 1, specs[1])
    again = run(opts)
    assert again.tree is not None
    fresh = run(DepmodOptions(**common, dry_run=True))  # type: ignore[arg-type]
    assert again.files == fresh.files and again.messages == fresh.messages
    # and the state written by that full computation is used by the next rerun
    specs[1].aliases = ["usb:v1p4d*"]
    _write(root, 1, specs[1])
    third = run(opts)
    assert third.tree is None
    assert dict(third.files) == dict(run(DepmodOptions(**common, dry_run=True)).files)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(int(os.environ.get("MODDEPS_TEST_SEEDS", "24"))))
def test_modules_added_and_removed_give_what_a_run_without_cache_gives(tmp_path: Path, seed: int,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Modules added (a new name: kmod's hash order places it among the
    others) and removed, with changes between: the previous array is mapped
    onto the new one and brought up to date."""
    rng = random.Random(1000 + seed)
    root, specs = _half_ordered_tree(tmp_path, rng)
    harness = _Harness(tmp_path, monkeypatch, added_or_removed=True)
    _outcome(harness.cached)
    done: list[str] = []
    for _step in range(20):
        before = copy.deepcopy(specs)
        kind = rng.choice(["add", "add", "remove", "change"])
        if kind == "add" or len(specs) < 3:
            i = max(specs) + 1
            spec = _random_spec(rng, i)  # it needs no module yet (only later ones)...
            exporters = [j for j in specs if specs[j].exports]
            for j in rng.sample(exporters, min(2, len(exporters))):  # ...but now some of these
                spec.needs.append(rng.choice(specs[j].exports))
            specs[i] = spec
            _write(root, i, spec)
            done.append(f"added m{i}")
        elif kind == "remove":
            i = rng.choice(sorted(specs))
            del specs[i]
            (root / f"kernel/m{i}.ko").unlink()
            done.append(f"removed m{i}")
        else:
            i = rng.choice(sorted(specs))
            specs[i].aliases = [a.format(i=i) for a in rng.sample(ALIASES, rng.randint(0, 3))]
            others = [e for j in specs if j > i for e in specs[j].exports]
            if others:
                specs[i].needs.append(rng.choice(others))
            specs[i].description = f"build {rng.random()}"
            _write(root, i, specs[i])
            done.append(f"changed m{i}")
        if not harness.check(done):  # back to the tree before the cycle
            specs = _restore(root, specs, before)
    assert sum(harness.updates) >= 5, harness.updates  # modules added or removed, brought up to date


def test_a_damaged_stored_result_is_said_once_and_replaced(tmp_path: Path) -> None:
    """A result damaged on disk (its seal no longer matches): everything is
    computed, the cache says so once, and the result written replaces it."""
    import sqlite3

    from moddeps.read.cache import OUTPUTS_TABLE

    root = _root(tmp_path)
    specs = [Spec(exports=["a_sym"], aliases=["pci:v1d*"]), Spec(needs=["a_sym"])]
    for i, spec in enumerate(specs):
        _write(root, i, spec)
    common = {"version": VERSION, "basedir": str(tmp_path), "config": (str(tmp_path / "none"),)}
    opts = DepmodOptions(**common, cache=str(tmp_path / "c.db"), fsync=False)  # type: ignore[arg-type]
    first = run(opts)
    with sqlite3.connect(tmp_path / "c.db") as db:
        (record,) = db.execute(f"SELECT record FROM {OUTPUTS_TABLE}").fetchone()
        flipped = bytearray(record)
        flipped[-3] ^= 0x20  # a message's letter: still a record that decodes
        db.execute(f"UPDATE {OUTPUTS_TABLE} SET record = ?", (bytes(flipped),))
    db.close()
    again = run(opts)
    assert again.tree is not None and again.files == first.files and again.messages == first.messages
    assert [n for n in again.extra if "damaged" in n] == [again.extra[0]]
    third = run(opts)  # replaced: the warm rerun again, with nothing to say
    assert third.tree is None and third.extra == first.extra


def test_removing_an_unreadable_module_removes_its_message(tmp_path: Path) -> None:
    root = _root(tmp_path)
    for i, spec in enumerate([Spec(exports=["a_sym"]), Spec(needs=["a_sym"])]):
        _write(root, i, spec)
    (root / "kernel/bad.ko").write_bytes(b"\x7fELF not a module")
    common = {"version": VERSION, "basedir": str(tmp_path), "config": (str(tmp_path / "none"),)}
    opts = DepmodOptions(**common, cache=str(tmp_path / "c.db"), fsync=False)  # type: ignore[arg-type]
    first = run(opts)
    assert any("bad.ko" in m for m in first.messages)
    (root / "kernel/bad.ko").unlink()
    again = run(opts)
    fresh = run(DepmodOptions(**common, dry_run=True))  # type: ignore[arg-type]
    assert again.files == fresh.files and again.messages == fresh.messages
    assert not any("bad.ko" in m for m in again.messages)
    assert run(opts).messages == fresh.messages  # and what was stored says the same


def test_the_cache_problem_is_said_on_a_rerun_brought_up_to_date(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from moddeps.read.cache import ScanCache

    root = _root(tmp_path)
    for i, spec in enumerate([Spec(exports=["a_sym"]), Spec(needs=["a_sym"])]):
        _write(root, i, spec)
    opts = DepmodOptions(version=VERSION, basedir=str(tmp_path), config=(str(tmp_path / "none"),),
                         cache=str(tmp_path / "c.db"), fsync=False)
    run(opts)
    _write(root, 2, Spec(aliases=["new"]))  # added: the state is read before any write fails

    def full(self: ScanCache, rows: object) -> None:
        self._fail(f"scan cache {self.path} not updated (database or disk is full)")

    monkeypatch.setattr(ScanCache, "_write_rows", full)
    again = run(opts)
    assert again.tree is None
    assert [n for n in again.extra if "not updated" in n] == [again.extra[0]]


def _restore(root: Path, specs: dict[int, Spec], before: dict[int, Spec]) -> dict[int, Spec]:
    """The modules of ``before`` written back over those of ``specs`` (the others removed): ``before``."""
    for i in set(specs) | set(before):
        path = root / f"kernel/m{i}.ko"
        if i in before:
            _write(root, i, before[i])
        elif path.exists():
            path.unlink()
    return before


def _counting_walks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The stamp's racy window closed (RACY_NS 0) and every walk of the run counted: a "walk" a call."""
    from moddeps.depmod import stamp
    from moddeps.read import scan as scan_module  # (the walk, imported by a run that walks)

    monkeypatch.setattr(stamp, "RACY_NS", 0)
    walks: list[str] = []
    real_layout = scan_module.layout_tree

    def layout(*a: object, **k: object) -> object:
        walks.append("walk")
        return real_layout(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(scan_module, "layout_tree", layout)
    return walks


@pytest.mark.parametrize("seed", range(int(os.environ.get("MODDEPS_TEST_SEEDS", "24")) // 3))
def test_random_changes_answered_through_the_stamp_give_what_a_run_without_cache_gives(
        tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # as moddeps.cli.depmod_argv runs it: the stamp first, which answers (the same view),
    # hands the changed modules to the run (stamp.Known: no walk), or misses
    from moddeps.depmod import stamp

    walks = _counting_walks(monkeypatch)
    rng = random.Random(1000 + seed)
    root, specs = _random_tree(tmp_path, rng)
    harness = _Harness(tmp_path, monkeypatch)
    fields = {name: getattr(harness.cached, name) for name, _default in stamp.FIELDS} | {"cache": harness.cached.cache}
    assert harness.cached.cache is not None
    _outcome(harness.cached)
    answers: list[str] = []
    for _step in range(20):
        before = copy.deepcopy(specs)
        changed = rng.sample(range(N), rng.choice([1, 1, 2]))
        kinds = []
        for i in changed:
            if rng.random() < 0.2:  # rebuilt: other bytes, the same to depmod
                specs[i].description = f"rebuilt {rng.random()}"
                kinds.append("rebuilt")
            else:
                kinds.append(_change(rng, specs, i))
            _write(root, i, specs[i])
        got = stamp.replay(harness.cached.cache, stamp.key(fields), known=True)
        want = _outcome(harness.fresh)
        if isinstance(got, list):
            answers.append("said")
            assert want[0] == "ok" and got == [*want[2]], kinds  # type: ignore[misc]
            assert {name: (root / name).read_bytes() for name in want[1]} == want[1], kinds  # type: ignore[attr-defined]
            continue
        walks.clear()
        result = _outcome(harness.cached) if got is None else _known_outcome(harness.cached, got)
        answers.append("miss" if got is None else "walked" if walks else "known")
        assert result[:3] == want[:3], kinds
        if result[0] != "ok":  # a cycle: back to the tree before it
            specs = before
            for i in changed:
                _write(root, i, specs[i])
            _outcome(harness.cached)
            continue
        assert {name: (root / name).read_bytes() for name in result[1]} == result[1], kinds  # type: ignore[attr-defined]
    assert answers.count("known") >= 5 and "said" in answers, answers


def _known_outcome(opts: DepmodOptions, known: object) -> tuple[object, ...]:
    try:
        result = run(opts, known=known)  # type: ignore[arg-type]
    except CycleError as exc:
        return ("cycle", str(exc), tuple(exc.messages))
    return ("ok", dict(result.files), result.messages, result.tree is None)


@pytest.mark.parametrize("seed", range(int(os.environ.get("MODDEPS_TEST_SEEDS", "24")) // 3))
def test_modules_added_and_removed_through_the_stamp_give_what_a_run_without_cache_gives(
        tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the test above, with the stamp first (moddeps.cli.depmod_argv's way): module files added
    or removed are handed to the run (stamp.Known), which lays out the new array without a walk
    (kmod's hash order for the modules modules.order does not list) or goes the usual way."""
    from moddeps.depmod import stamp

    walks = _counting_walks(monkeypatch)
    rng = random.Random(2000 + seed)
    root, specs = _half_ordered_tree(tmp_path, rng)
    harness = _Harness(tmp_path, monkeypatch)
    fields = {name: getattr(harness.cached, name) for name, _default in stamp.FIELDS} | {"cache": harness.cached.cache}
    assert harness.cached.cache is not None
    _outcome(harness.cached)
    answers: list[str] = []
    done: list[str] = []
    for _step in range(20):
        before = copy.deepcopy(specs)
        kind = rng.choice(["add", "add", "remove", "add and change"])
        if kind.startswith("add") or len(specs) < 3:
            i = max(specs) + 1
            spec = _random_spec(rng, i)
            exporters = [j for j in specs if specs[j].exports]
            for j in rng.sample(exporters, min(2, len(exporters))):
                spec.needs.append(rng.choice(specs[j].exports))
            specs[i] = spec
            _write(root, i, spec)
            done.append(f"added m{i}")
            if kind == "add and change":
                j = rng.choice(sorted(specs))
                done.append(f"m{j}: {_change(rng, specs, j) if j < N else 'rebuilt'}")
                specs[j].description = f"rebuilt {rng.random()}"
                _write(root, j, specs[j])
        else:
            i = rng.choice(sorted(specs))
            del specs[i]
            (root / f"kernel/m{i}.ko").unlink()
            done.append(f"removed m{i}")
        got = stamp.replay(harness.cached.cache, stamp.key(fields), known=True)
        want = _outcome(harness.fresh)
        walks.clear()
        result = _outcome(harness.cached) if not isinstance(got, stamp.Known) else _known_outcome(harness.cached, got)
        answers.append("miss" if not isinstance(got, stamp.Known) else "walked" if walks else
                       "known" if got.added or got.removed else "other")
        assert result[:3] == want[:3], done
        if result[0] != "ok":  # a cycle: back to the tree before it
            specs = _restore(root, specs, before)
            _outcome(harness.cached)
            continue
        assert {name: (root / name).read_bytes() for name in result[1]} == result[1], done  # type: ignore[attr-defined]
    assert answers.count("known") >= 5, answers
