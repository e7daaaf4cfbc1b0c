"""The package's shape, checked: imports run one way, and each outside library has one owner.

The import graph is read from the sources (``ast``), function-level imports included: a
cycle hidden behind a lazy import is still a cycle for a reader of the code.  Imports
under ``if TYPE_CHECKING:`` are left out (they never run).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "moddeps"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if "sample_tree" in parts or parts[-1] == "__main__":
            continue
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path) -> set[str]:
    """The moddeps modules ``name`` imports, at any depth except TYPE_CHECKING blocks."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out: set[str] = set()

    def target(base: str, what: str | None) -> str:
        if what:
            sub = f"{base}.{what}" if base else what
            if sub in MODULES:
                return sub
        return base

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "moddeps":
                        out.add(alias.name)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base_parts = package.split(".")
                    base_parts = base_parts[: len(base_parts) - (child.level - 1)]
                    base = ".".join(base_parts)
                    if child.module:
                        base = f"{base}.{child.module}"
                else:
                    base = child.module or ""
                if base.split(".")[0] != "moddeps":
                    continue
                for alias in child.names:
                    out.add(target(base, alias.name))
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    out.discard(name)
    return {m for m in out if m in MODULES}


def import_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    for name, path in MODULES.items():
        g.add_node(name)
        for dep in _imports(name, path):
            # a package's __init__ is imported before any of its modules: that edge is implied
            if name.startswith(dep + "."):
                continue
            g.add_edge(name, dep)
    return g


def test_import_graph_has_no_cycle() -> None:
    cycles = list(nx.simple_cycles(import_graph()))
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles[:10])


def test_every_module_imports_alone() -> None:
    """Each module imports in a fresh interpreter first (an import-time cycle fails here)."""
    code = ("import importlib, sys\n"
            "for name in sys.argv[1:]:\n"
            "    for m in [k for k in sys.modules if k == 'moddeps' or k.startswith('moddeps.')]:\n"
            "        del sys.modules[m]\n"
            "    importlib.import_module(name)\n")
    r = subprocess.run([sys.executable, "-c", code, *MODULES], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def _third_party(path: Path) -> set[str]:
    """Top-level names of the outside packages ``path`` imports (anywhere in the file)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


# Each outside library has its owners: the one place that knows it (STYLE: one boundary per library).
OWNERS = {
    "elftools": ("moddeps.read.elfreader",),
    "asn1crypto": ("moddeps.signature",),
    "zstandard": ("moddeps.read.compression",),
    "sqlite3": ("moddeps.read.cache",),
    "typer": ("moddeps.cli", "moddeps.manpages"),
    "rich": ("moddeps.cli", "moddeps.report"),
    "networkx": ("moddeps.graph",),
}


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_outside_library_has_one_owner(library: str) -> None:
    users = sorted(name for name, path in MODULES.items() if library in _third_party(path))
    strays = [u for u in users if not any(u == o or u.startswith(o + ".") for o in OWNERS[library])]
    assert strays == [], f"{library} imported outside {OWNERS[library]}: {strays}"
    assert users, f"nothing imports {library}: the table is stale"


# The layers, lowest first: a module may import its own layer and the ones below, never above.
LAYERS = [
    ("records", "typeshim", "model", "errors", "kmodnames", "native", "globmatch", "inputfiles", "process"),
    ("read", "index", "config", "kernelsyms", "kmodversion", "kmodhash", "signature"),
    ("resolve", "graph", "analysis", "depmod", "modprobe", "findings"),
    ("audit", "compat", "abidiff", "modinfo"),
    ("api", "report"),
    ("cli", "manpages"),
]


def _layer(name: str) -> int | None:
    head = name.split(".")[1] if name.count(".") else ""
    for i, layer in enumerate(LAYERS):
        if head in layer:
            return i
    return None


def test_imports_point_down_the_layers() -> None:
    unplaced = sorted(n for n in MODULES if n != "moddeps" and _layer(n) is None)
    assert unplaced == [], f"modules in no layer (add them to LAYERS): {unplaced}"
    upward = sorted(f"{a} -> {b}" for a, b in import_graph().edges
                    if b != "moddeps" and (_layer(a) or 0) < (_layer(b) or 0))
    assert upward == [], "imports that point up the layers: " + "; ".join(upward)
