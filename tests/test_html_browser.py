"""The --html report in a real headless Chromium, driven over the DevTools protocol.

Chromium is started with ``--remote-debugging-pipe``: it reads protocol
messages (JSON, each ended by a NUL byte) on its fd 3 and writes replies and
events on fd 4, so no WebSocket library and no chromedriver are needed.

The page must load with no console error, no exception, no CSP violation and
no request beyond the file itself (Network.requestWillBeSent events are
recorded from before the navigation), the search box must filter the module
table, a click on a module must draw its neighbourhood with the nodes and
edges the resolution says, and a hostile modinfo string must show as text.

Without Chromium the tests skip, saying why; with CI=true they fail instead
(.ci/run installs Debian's ``chromium``).

Screenshots for the README (docs/*.png) come from the same client::

    moddeps audit sample_modules/lib/modules/6.1.0-50-cloud-amd64 --html /tmp/sample.html
    python -m tests.test_html_browser /tmp/sample.html docs/report-sample.png --module sample_core
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from moddeps.audit import audit_tree
from moddeps.read.scan import scan_tree
from moddeps.report import html

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-extensions",
         "--disable-default-apps", "--mute-audio", "--remote-debugging-pipe"]


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium and one page, over the DevTools pipe."""

    def __init__(self, binary: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="moddeps-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds() -> None:  # the child's fd 3 reads our commands, its fd 4 writes replies
            # through copies: a pipe end that already is fd 3 or 4 keeps its close-on-exec
            # flag under dup2 onto itself
            r, w = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=fds, close_fds=False)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable", session=True)

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buf:
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        out: dict[str, Any] = json.loads(msg)
        return out

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str) -> dict[str, Any]:
        for e in self.events:
            if e["method"] == method:
                return e
        while True:
            e = self._read()
            if "method" in e:
                self.events.append(e)
                if e["method"] == method:
                    return e

    def open(self, url: str, width: int = 1400, height: int = 1000) -> None:
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait_event("Page.loadEventFired")
        self.js("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    def js(self, expression: str) -> Any:
        r = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click at the middle of the element (scrolled into view)."""
        box = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                      " e.scrollIntoView({block: 'center'});"
                      " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", session=True, type=kind, x=box[0], y=box[1], button="left",
                      clickCount=1)

    def screenshot(self, path: str) -> None:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def problems(self, page_url: str) -> list[str]:
        """Console errors, exceptions, log errors (CSP violations among them) and requests
        for anything but the page itself or a data: URL, since the last :meth:`open`."""
        out = []
        for e in self.events:
            m, p = e["method"], e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                out.append(f"console {p['type']}: {p.get('args')}")
            elif m == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails']}")
            elif m == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                out.append(f"log {p['entry']['level']}: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif m == "Network.requestWillBeSent":
                url = p["request"]["url"]
                if url.split("#")[0] != page_url.split("#")[0] and not url.startswith("data:"):
                    out.append(f"request: {url}")
        return out

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    binary = find_browser()
    if binary is None:
        reason = "no Chromium on PATH (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    b = Browser(binary)
    yield b
    b.close()


def _report(tmp_path: Path) -> tuple[Path, Any, Any]:
    from .test_html_report import HOSTILE, hostile_tree

    tree = scan_tree(str(hostile_tree(tmp_path)), jobs=1)
    res = html.tree_resolution(tree)
    out = tmp_path / "report.html"
    html.write(str(out), html.render(html.audit_data(tree, audit_tree(tree), res=res, kmod="kmod 34")))
    return out, (tree, res), HOSTILE


def test_page_loads_without_errors_or_requests(browser: Browser, tmp_path: Path) -> None:
    out, _, _ = _report(tmp_path)
    url = out.as_uri()
    browser.open(url)
    assert browser.problems(url) == []
    # the page was drawn: the module table has a row per module
    assert browser.js("document.querySelectorAll('#module-table tbody tr').length") == 3
    # a request the page does not allow is refused and seen: the check above can fail
    browser.js("fetch('https://example.invalid/x').catch(() => 0)")
    browser.js("new Promise(r => setTimeout(r, 100))")
    assert any("example.invalid" in p or "Content Security Policy" in p for p in browser.problems(url))


def test_search_filters_the_module_table(browser: Browser, tmp_path: Path) -> None:
    out, _, _ = _report(tmp_path)
    browser.open(out.as_uri())
    rows = "Array.from(document.querySelectorAll('#module-table tbody tr')).map(r => r.dataset.name)"
    assert browser.js(rows) == ["evil", "lib", "user"]
    browser.js("(() => { const s = document.getElementById('module-search'); s.value = 'drivers/x';"
               " s.dispatchEvent(new Event('input')); })()")
    assert browser.js(rows) == ["evil", "user"]
    browser.js("(() => { const s = document.getElementById('module-search'); s.value = 'nothing-like-this';"
               " s.dispatchEvent(new Event('input')); })()")
    assert browser.js(rows) == []
    assert browser.js("document.getElementById('module-table-count').textContent") == "0 of 3 shown"


def test_click_draws_the_neighbourhood(browser: Browser, tmp_path: Path) -> None:
    out, (tree, res), _ = _report(tmp_path)
    browser.open(out.as_uri())
    browser.click("#module-table tr[data-name='lib']")
    nodes = "Array.from(document.querySelectorAll('#neighbourhood-svg g.node')).map(g => g.dataset.name).sort()"
    edges = ("Array.from(document.querySelectorAll('#neighbourhood-svg path.edge'))"
             ".map(p => [p.dataset.from, p.dataset.to, p.querySelector('title').textContent]).sort()")
    names = [m.name for m in tree.modules]
    lib = names.index("lib")
    # one level: lib and what needs it
    expected = sorted({"lib", *(names[i] for i, ds in enumerate(res.deps) if lib in ds)})
    assert browser.js(nodes) == expected == ["evil", "lib"]
    assert browser.js(edges) == [["evil", "lib", "evil needs lib: lib_fn"]]
    assert browser.js("document.querySelector('#neighbourhood-svg g.node.focus').dataset.name") == "lib"
    # two levels reach user through evil
    browser.js("(() => { const d = document.getElementById('depth'); d.value = '2';"
               " d.dispatchEvent(new Event('change')); })()")
    assert browser.js(nodes) == ["evil", "lib", "user"]
    assert [e[:2] for e in browser.js(edges)] == [["evil", "lib"], ["user", "evil"]]
    # clicking a node of the picture moves the focus there
    browser.click("#neighbourhood-svg g.node[data-name='user'] rect")
    assert browser.js("document.querySelector('#neighbourhood-svg g.node.focus').dataset.name") == "user"
    assert browser.problems(out.as_uri()) == []


def test_hostile_modinfo_shows_as_text(browser: Browser, tmp_path: Path) -> None:
    out, _, hostile = _report(tmp_path)
    url = out.as_uri() + "#module=evil"
    browser.open(url)
    assert browser.js("document.querySelector('#module-detail').textContent").count(hostile) == 1
    # nothing from the string became an element or ran
    assert browser.js("document.querySelectorAll('img').length") == 0
    assert browser.js("document.querySelectorAll('script').length") == 2
    assert browser.problems(url) == []


def test_sample_tree_report_has_a_cycle_drawn(browser: Browser, tmp_path: Path) -> None:
    from .test_html_report import SAMPLE

    tree = scan_tree(str(SAMPLE), jobs=1)
    data = html.audit_data(tree, audit_tree(tree))
    out = tmp_path / "sample.html"
    html.write(str(out), html.render(data))
    browser.open(out.as_uri())
    assert browser.problems(out.as_uri()) == []
    drawn = browser.js("Array.from(document.querySelectorAll('#cycles svg')).map(s =>"
                       " Array.from(s.querySelectorAll('g.node')).map(g => g.dataset.name).sort())")
    names = [m.name for m in tree.modules]
    assert drawn == [sorted(names[i] for i in c) for c in data["cycles"]]


def main(argv: list[str]) -> int:
    """``python -m tests.test_html_browser REPORT.html OUT.png [--module NAME] [--height PX]``."""
    import argparse

    ap = argparse.ArgumentParser(description="Screenshot a moddeps --html report in headless Chromium.")
    ap.add_argument("report")
    ap.add_argument("png")
    ap.add_argument("--module")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=1000)
    args = ap.parse_args(argv)
    binary = find_browser()
    if binary is None:
        print("no Chromium on PATH", file=sys.stderr)
        return 1
    b = Browser(binary)
    try:
        url = Path(args.report).resolve().as_uri() + (f"#module={args.module}" if args.module else "")
        b.open(url, args.width, args.height)
        b.js("window.scrollTo(0, 0)")
        time.sleep(0.2)
        b.screenshot(args.png)
        for p in b.problems(url):
            print(p, file=sys.stderr)
    finally:
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
