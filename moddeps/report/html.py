"""One self-contained HTML file for an audit, an ABI diff or a compat run (``--html FILE``).

Two steps, as for every other rendering:

1. ``audit_data`` / ``diff_data`` / ``compat_data`` build a plain data
   document (dicts, lists, strings, numbers) from the analysis results.  The
   ``--json`` documents of :mod:`moddeps.report.audit` and
   :mod:`moddeps.report.compat` are reused for the summaries and findings;
   what only the page needs (the module table, the dependency edges with their
   symbols, cycles, the folder overview's layout) is added here.
2. :func:`render` puts that document into ``templates/report.html`` (the
   standard library's :class:`string.Template`).  The page's script draws
   everything from the document with ``textContent`` and DOM calls, never
   ``innerHTML``: module names and modinfo strings are untrusted input.

Escaping.  The document goes into the page as JSON inside
``<script type="application/json">``; ``<``, ``>`` and ``&`` are written as
``\\u003c``-style escapes, so no value can close that element or open another,
and non-ASCII (including the surrogate escapes of undecodable bytes) as
``\\uXXXX``.  The only other values in the markup (the title) go through
:func:`html.escape`.

Self-contained.  The style and the script are inlined, and a
Content-Security-Policy in the page allows exactly those two (by their
SHA-256) and nothing else: no fetch, no image, font, frame or form target
beyond ``data:`` images.  A browser opening the file from ``file://`` or an
artifact store therefore makes no request, and one that tried would log a CSP
violation (the browser test checks both).

Drawing.  No browser library is vendored: the neighbourhood of a module is a
small layered graph (dependencies on one side, dependents on the other, one
column per level) that the page lays out itself in a few dozen lines; the
whole tree's overview (subsystem folders and the edges between them) is laid
out here, in Python, on a circle ordered by folder name, so the page only
draws it.  See the README's ``--html`` section for why.

Determinism: the same inputs give the same bytes; the only time in the page
is the one ``--timestamp`` passes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from importlib import resources
from string import Template
from typing import Any

from ..audit import AuditResult
from ..read.scan import Tree
from ..resolve import Resolution, resolve, strongly_connected_cycles

#: folders of the overview: at most this many, the rest merged into "other"
OVERVIEW_FOLDERS = 48
#: a signer, description or other modinfo string is cut to this many characters
MAX_TEXT = 300

_TEMPLATES = "templates"


# --------------------------------------------------------------------------
# data documents
# --------------------------------------------------------------------------


def _cut(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def _file_size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def folder_of(path: str, levels: int = 2) -> str:
    """The subsystem folder a module counts in for the overview: the first
    ``levels`` folders under ``kernel/`` (``kernel/drivers/net/...`` ->
    ``drivers/net``), else the first folder of its path (``updates``, ``extra``)."""
    parts = path.split("/")[:-1]
    if parts and parts[0] == "kernel":
        parts = parts[1:]
    if not parts:
        return "(top)"
    return "/".join(parts[:levels])


def load_depths(deps: Sequence[Sequence[int]]) -> list[int | None]:
    """The load-plan depth of each module: 0 without dependencies, else one more
    than its deepest dependency (the number of modules loaded before it on the
    longest chain).  None for the members of a dependency cycle and for every
    module that needs one: modprobe has no order for them."""
    n = len(deps)
    cyclic = [False] * n
    for comp in strongly_connected_cycles(deps):
        for i in comp:
            cyclic[i] = True
    depth: list[int | None] = [None] * n
    state = [0] * n  # 0 unseen, 1 on the stack, 2 done
    for s in range(n):
        if state[s]:
            continue
        stack = [(s, 0)]
        state[s] = 1
        while stack:
            v, i = stack[-1]
            ds = deps[v]
            if i < len(ds):
                stack[-1] = (v, i + 1)
                w = ds[i]
                if state[w] == 0:
                    state[w] = 1
                    stack.append((w, 0))
                continue
            stack.pop()
            state[v] = 2
            if cyclic[v] or any(state[w] != 2 or depth[w] is None for w in ds):
                depth[v] = None
            else:
                depth[v] = 1 + max((depth[w] or 0 for w in ds), default=-1)
    return depth


def _overview(paths: Sequence[str], deps: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Subsystem folders on a circle (ordered by name, the biggest
    :data:`OVERVIEW_FOLDERS` kept, the rest merged into ``other``) and the
    number of dependency edges between each pair of folders."""
    folders = [folder_of(p) for p in paths]
    count: dict[str, int] = {}
    for f in folders:
        count[f] = count.get(f, 0) + 1
    kept = sorted(count, key=lambda f: (-count[f], f))[:OVERVIEW_FOLDERS]
    if len(count) > OVERVIEW_FOLDERS:
        kept = kept[:OVERVIEW_FOLDERS - 1]
    keep = set(kept)
    name_of = [f if f in keep else "other" for f in folders]
    names = sorted(set(name_of))
    index = {f: i for i, f in enumerate(names)}
    size = [0] * len(names)
    for f in name_of:
        size[index[f]] += 1
    edges: dict[tuple[int, int], int] = {}
    for i, ds in enumerate(deps):
        a = index[name_of[i]]
        for d in ds:
            key = (a, index[name_of[d]])
            edges[key] = edges.get(key, 0) + 1
    r = 300.0
    nodes = []
    for i, f in enumerate(names):
        angle = 2 * math.pi * i / max(1, len(names)) - math.pi / 2
        nodes.append({"name": f, "modules": size[i],
                      "x": round(r * math.cos(angle), 1), "y": round(r * math.sin(angle), 1)})
    return {"radius": r, "nodes": nodes, "edges": [[a, b, n] for (a, b), n in sorted(edges.items())]}


def tree_resolution(tree: Tree) -> Resolution:
    """The tree's symbol resolution, as ``moddeps graph`` and ``why`` compute it."""
    full = [f"{tree.dirname}/{f.relpath}" if f.relpath is not None else f.path for f in tree.files]
    return resolve(tree.modules, full)


def audit_data(tree: Tree, result: AuditResult, *, res: Resolution | None = None, kmod: str | None = None,
               inputs: Mapping[str, str | None] | None = None, timestamp: str | None = None) -> dict[str, Any]:
    """The document an audit page is drawn from.

    ``kmod``: the kmod release matched (:meth:`moddeps.kmodversion.KmodTarget.describe`);
    ``inputs``: what the audit read besides the tree (name -> path or None)."""
    from .audit import audit_document

    res = tree_resolution(tree) if res is None else res
    doc = audit_document(result)
    n = len(tree.modules)
    users = [0] * n
    for ds in res.deps:
        for d in ds:
            users[d] += 1
    depth = load_depths(res.deps)
    paths = [f.shown for f in tree.files]
    modules = []
    for i, (m, f) in enumerate(zip(tree.modules, tree.files)):
        sig = m.signature
        modules.append([
            m.name, paths[i], _file_size(f.path), m.compression or "",
            (_cut(sig.signer) or "(signed)") if sig is not None else None,
            sum(1 for e in m.exports if not e.pseudo), len(res.deps[i]), users[i], depth[i],
            _cut(m.info_first("description")), _cut(m.license), m.error,
        ])
    kernel_symbols = result.kernel_symbols
    all_inputs: dict[str, str | None] = {"tree": tree.dirname, "kernel symbols": kernel_symbols}
    all_inputs.update(inputs or {})
    return {
        "kind": "audit",
        "title": f"moddeps audit of {tree.dirname}",
        "tool": doc["tool"], "version": doc["version"], "timestamp": timestamp,
        "kernel": result.kernel,
        "kmod": kmod,
        "inputs": [[k, v] for k, v in all_inputs.items()],
        "summary": doc["summary"],
        "findings": doc["findings"],
        "columns": ["name", "path", "size", "compression", "signer", "exports", "needs", "dependents", "depth",
                    "description", "license", "error"],
        "modules": modules,
        # per module: its dependencies (indexes) and, beside each, the symbols bound to it
        "deps": [list(ds) for ds in res.deps],
        "symbols": [[" ".join(res.edge_symbols[i].get(d, ())) for d in ds] for i, ds in enumerate(res.deps)],
        "cycles": strongly_connected_cycles(res.deps),
        "overview": _overview(paths, res.deps),
    }


def diff_data(result: Any, *, out_of_tree: Sequence[tuple[str, Sequence[str]]] = (),
              timestamp: str | None = None) -> dict[str, Any]:
    """The document a diff page is drawn from: the ``diff --json`` document, each
    incompatible change with the in-tree modules of the old side that used the
    symbol (``breaks``) and the listed out-of-tree modules that import it.

    ``out_of_tree``: (module name, imported symbols) of the modules given with
    ``--check``."""
    from .compat import diff_document

    doc = diff_document(result)
    users: dict[tuple[str, str], list[str]] = {}
    for (a, b), syms in sorted((result.old.deps or {}).items()):
        for s in syms:
            users.setdefault((b, s), []).append(a)
    imports: dict[str, list[str]] = {}
    for name, syms in out_of_tree:
        for s in syms:
            imports.setdefault(s, []).append(name)
    for c in doc["changes"]:
        if c["incompatible"] and c["symbol"] is not None:
            c["breaks"] = sorted(set(users.get((c["module"], c["symbol"]), ())))
            c["breaks_out_of_tree"] = sorted(set(imports.get(c["symbol"], ())))
    rank = {k: i for i, k in enumerate(doc["summary"])}
    doc["changes"].sort(key=lambda c: (not c["incompatible"], rank.get(c["kind"], len(rank)), c["module"],
                                       c["symbol"] or ""))
    doc.update(kind="diff", title=f"moddeps diff {result.old.path} -> {result.new.path}", timestamp=timestamp,
               checked=sorted(name for name, _ in out_of_tree))
    return doc


def compat_data(results: Sequence[Any], *, timestamp: str | None = None) -> dict[str, Any]:
    """The document a compat page is drawn from: the ``compat --json`` document."""
    from .compat import compat_document

    doc = compat_document(results)
    kernels = ", ".join(r.kernel for r in results)
    doc.update(kind="compat", title=f"moddeps compat on {kernels}", timestamp=timestamp)
    return doc


# --------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------


def _read(name: str) -> str:
    return resources.files(__package__).joinpath(_TEMPLATES).joinpath(name).read_text(encoding="utf-8")


def embed_json(data: Any) -> str:
    """``data`` as JSON that can sit inside ``<script type="application/json">``:
    ASCII only, and ``<``, ``>``, ``&`` (which can only occur inside strings)
    escaped, so nothing in it ends the element."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def render(data: Mapping[str, Any]) -> str:
    """The page for a data document (from :func:`audit_data`, :func:`diff_data` or :func:`compat_data`)."""
    style = _read("report.css")
    script = _read("report.js")
    csp = ("default-src 'none'; "
           f"script-src {_sha256(script)}; style-src {_sha256(style)}; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    page = Template(_read("report.html")).substitute(
        title=html.escape(str(data.get("title", "moddeps")), quote=True),
        csp=html.escape(csp, quote=True),
        style=style,
        script=script,
        data=embed_json(data),
    )
    return page


def write(path: str, text: str) -> None:
    """Write the page atomically: a temporary file beside ``path``, then a rename."""
    target = os.path.abspath(path)
    directory = os.path.dirname(target) or "."
    fd, tmp = tempfile.mkstemp(prefix=".moddeps-", suffix=".html.tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
