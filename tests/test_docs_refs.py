"""The docs name code that exists: every ``moddeps/...`` path and ``moddeps.x.y`` name in
README.md, CONTRIBUTING.md and docs/*.md resolves, so a move of code that forgets its docs fails here."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]

PATH = re.compile(r"(?<![\w/.])((?:moddeps|tests|benchmarks)/[\w./*-]*[\w*])")
NAME = re.compile(r"(?<![\w/.])(moddeps(?:\.\w+)+)")


def _refs(kind: re.Pattern[str]) -> list[tuple[str, str]]:
    return sorted({(doc.name, m.group(1)) for doc in DOCS for m in kind.finditer(doc.read_text())})


@pytest.mark.parametrize(("doc", "path"), _refs(PATH))
def test_named_path_exists(doc: str, path: str) -> None:
    if "*" in path or re.search(r"\b[A-Z]{3,}\b", path):  # a pattern (test_native_*.py, cli/NAME.py)
        path = str(next(iter(sorted(ROOT.glob(re.sub(r"\b[A-Z]{3,}\b", "*", path)))), path))
    assert (ROOT / path).exists() or (ROOT / path.rstrip("/")).exists(), f"{doc} names {path}, which does not exist"


def _resolve(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize(("doc", "name"), _refs(NAME))
def test_named_code_exists(doc: str, name: str) -> None:
    assert _resolve(name), f"{doc} names {name}, which does not exist"


def _short_names() -> dict[str, str]:
    """``run`` -> ``moddeps.depmod.run``: modules and packages by their last name, where it is unique."""
    seen: dict[str, list[str]] = {}
    for path in (ROOT / "moddeps").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__" or "sample_tree" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        seen.setdefault(parts[-1], []).append(".".join(parts))
    return {short: full[0] for short, full in seen.items() if len(full) == 1}


SHORT = _short_names()
PACKAGES = {p.name for p in (ROOT / "moddeps").iterdir() if (p / "__init__.py").exists()}
# `run.check_version`, `read.order.module_array`: code named from its module's last name or its package
SHORT_REF = re.compile(r"`(\w+)\.(\w+(?:\.\w+)*)`")
FILE_SUFFIXES = {"py", "c", "h", "json", "md", "bin", "ko", "txt", "html", "js", "css"}
# api.md writes code that uses variables named like modules (`closure.notes`): only the pages
# describing the implementation name code by a short name
SHORT_DOCS = [d for d in DOCS if d.parent.name == "docs" and d.name != "api.md"]


def _short_refs() -> list[tuple[str, str, str]]:
    out = set()
    for doc in SHORT_DOCS:
        for m in SHORT_REF.finditer(doc.read_text()):
            head, rest = m.groups()
            if rest.rsplit(".", 1)[-1] in FILE_SUFFIXES or (head not in SHORT and head not in PACKAGES):
                continue
            out.add((doc.name, f"{head}.{rest}", rest))
    return sorted(out)


@pytest.mark.parametrize(("doc", "ref", "rest"), _short_refs())
def test_short_named_code_exists(doc: str, ref: str, rest: str) -> None:
    head = ref.split(".", 1)[0]
    candidates = [f"moddeps.{ref}"] + ([f"{SHORT[head]}.{rest}"] if head in SHORT else [])
    assert any(_resolve(c) for c in candidates), f"{doc} names `{ref}`, which is none of {candidates}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but ``-`` and ``_`` dropped, spaces to ``-``."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", doc.read_text(), re.M)}


CITED = re.compile(r"docs/([\w-]+\.md)#([\w-]+)")


def _citations() -> list[tuple[str, str, str]]:
    code = ROOT / "moddeps"
    sources = [*DOCS, *code.rglob("*.py"), *code.rglob("*.c"), *(ROOT / "tests").glob("*.py")]
    return sorted({(str(src.relative_to(ROOT)), m.group(1), m.group(2))
                   for src in sources for m in CITED.finditer(src.read_text(errors="replace"))})


@pytest.mark.parametrize(("source", "page", "anchor"), _citations())
def test_cited_section_exists(source: str, page: str, anchor: str) -> None:
    doc = ROOT / "docs" / page
    assert doc.exists(), f"{source} cites docs/{page}, which does not exist"
    assert anchor in _anchors(doc), f"{source} cites docs/{page}#{anchor}: no such section"
