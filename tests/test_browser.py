"""The built book in a real headless browser (Debian's chromium, driven by Playwright).

The site is served on localhost; every request to any other host is recorded and refused, so a
page that needs the internet fails here exactly as it would for a student offline. Screenshots
go to artifacts/screenshots/ (gitignored; CI keeps them as artifacts).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.book]

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags of the machine doc for a container without a GPU, a sandbox or a network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# TeX left in the visible text (outside code) means MathJax did not typeset the page.
RAW_TEX = re.compile(r"\\(?:nabla|theta|eta|beta|alpha|lambda|kappa|epsilon|frac|sqrt|sum|mathbb"
                     r"|hat|left|right|begin|mathrm)\b|\\\(|\\\[")
REFRESH = re.compile(r'http-equiv="refresh" content="\d+;\s*url=([^"]+)"', re.I)

# What a page reports once it has settled: MathJax finished, images decoded, text without code.
SETTLE = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await Promise.all([...document.images].map(img => img.decode().catch(() => null)));
  const body = document.body.cloneNode(true);
  body.querySelectorAll("pre, code, script, style, mjx-container, .highlight").forEach(
      e => e.remove());
  return {
    hasMath: document.querySelector(".math") !== null,
    mjx: document.querySelectorAll("mjx-container").length,
    text: body.textContent,
    brokenImages: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))
                                      .map(i => i.getAttribute("src")),
    navLinks: [...document.querySelectorAll(".bd-sidebar-primary a[href], .prev-next-area a[href]")]
                  .map(a => a.href),
  };
}"""


def _chromium_or_skip() -> str:
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    reason = ("chromium is not installed (apt-get install -y chromium); "
              "the browser test needs Debian's /usr/bin/chromium")
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; in CI it is required (.ci/run installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def site(built_book):
    """``(base_url, html_dir)``: the built book served by a quiet local HTTP server."""
    handler = functools.partial(_QuietHandler, directory=str(built_book.html))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", built_book.html
    server.shutdown()
    server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    executable = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Tab:
    """A browser page, and the requests it tried to send off localhost (refused)."""

    page: Any
    outside: list[str] = field(default_factory=list)


@pytest.fixture
def tab(browser) -> Tab:
    """A fresh page that refuses, and records, every request that leaves localhost."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = Tab(context.new_page())

    def route(r):
        if urlsplit(r.request.url).hostname in {"127.0.0.1", "localhost"}:
            r.continue_()
        else:
            tab.outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    yield tab
    context.close()


def _pages(html: Path) -> list[str]:
    return sorted(str(p.relative_to(html)) for p in html.rglob("*.html")
                  if not p.relative_to(html).parts[0].startswith("_"))


def test_every_page_renders_offline(tab, site):
    base, html = site
    page = tab.page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems, nav_links = [], set()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.on("response", lambda r: errors.append(f"HTTP {r.status} {r.url}")
            if r.status >= 400 else None)
    pages = _pages(html)
    for rel in pages:
        errors.clear()
        tab.outside.clear()
        page.goto(urljoin(base, rel), wait_until="load")
        redirect = REFRESH.search((html / rel).read_text())
        if redirect:  # index.html forwards to the root page; follow it, then check that page
            page.wait_for_url(urljoin(urljoin(base, rel), redirect.group(1)), timeout=10_000)
        state = page.evaluate(SETTLE)
        page.screenshot(path=str(SCREENSHOTS / (rel.replace("/", "__") + ".png")))
        nav_links.update(state["navLinks"])
        if state["hasMath"] and state["mjx"] == 0:
            problems.append(f"{rel}: has math but MathJax typeset nothing")
        raw = sorted(set(RAW_TEX.findall(state["text"])))
        if raw:
            problems.append(f"{rel}: raw TeX left in the text: {raw}")
        if state["brokenImages"]:
            problems.append(f"{rel}: images that did not load: {state['brokenImages']}")
        if errors:
            problems.append(f"{rel}: console errors: {errors[:5]}")
        if tab.outside:
            problems.append(f"{rel}: requests that left localhost: {tab.outside[:5]}")
    assert pages and "index.html" in pages
    assert not problems, "\n".join(problems)

    broken = []
    for link in sorted(nav_links):
        url = link.split("#")[0]
        if urlsplit(url).hostname not in {"127.0.0.1", "localhost"}:
            continue  # the repository and launch buttons point outside; they need not work here
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        if status != 200:
            broken.append(f"{url}: HTTP {status}")
    assert nav_links, "no sidebar navigation links found"
    assert not broken, f"navigation links that do not resolve: {broken}"


def test_search_finds_adam(tab, site):
    base, _ = site
    page = tab.page
    page.goto(urljoin(base, "search.html?q=Adam"), wait_until="load")
    results = page.locator("#search-results ul.search li")
    results.first.wait_for(timeout=15_000)
    assert results.count() > 0
    assert not tab.outside, f"search left localhost: {tab.outside}"
    page.screenshot(path=str(SCREENSHOTS / "search-Adam.png"))
