"""The built book in a real headless browser (Debian's chromium, driven by Playwright).

The site is served on localhost; every request to any other host is recorded and refused, so a
page that needs the internet fails here exactly as it would for a student offline.

Every page is opened at 1280 px (a laptop), then narrowed to 400 px (a phone), and a full-page
screenshot at each width goes to artifacts/screenshots/ (JPEG; gitignored; CI keeps them as
artifacts). At 1280 px the test reads the page the way a reader would and fails on anything a
reader would trip over:

- math: a MathJax error, math that was never typeset, raw TeX or a stray ``$`` in the text,
  or prose typeset as math (``$$`` that MyST did not parse, so that words run together);
- width: a code cell, an output, a display equation, a table or a figure wider than the
  article (content cut off or hidden behind a scroll bar);
- outputs: a bare object repr (``Text(0.5, 1.0, '…')``, ``np.float64(…)``, ``<matplotlib…>``),
  a warning or a traceback;
- figures: too small to read as shown. An SVG figure's smallest font, scaled to the size at
  which the page shows it, must be at least 9 px; a raster figure must have at least two
  image pixels per CSS pixel (it cannot be measured further, so the house style uses SVG);
- and, as before, console errors, broken images, requests that leave localhost and dead
  navigation links.

At 400 px the page itself must not scroll sideways (wide code and tables scroll inside their
own boxes). Legends covering data are checked on the figure objects, where the data are known:
``descent.plots.check_figure`` (tests/test_plots_style.py and the book's own figures at build
time).
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
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--font-render-hinting=none"]
WIDE, NARROW = 1280, 400            # a laptop and a phone, in CSS pixels
MIN_FONT_PX = 9.0                   # the smallest legible figure text, as displayed
MIN_DENSITY = 2.0                   # image pixels per CSS pixel for a raster figure
# TeX left in the visible text (outside code) means MathJax did not typeset the page.
RAW_TEX = re.compile(r"\\(?:nabla|theta|eta|beta|alpha|lambda|kappa|epsilon|frac|sqrt|sum|mathbb"
                     r"|mathcal|hat|left|right|begin|end|mathrm|lVert|rVert|tag|text)\b"
                     r"|\\\(|\\\)|\\\[|\\\]")
# Reprs that a cell prints when its last line returns an object nobody meant to show.
BARE_REPR = re.compile(
    r"\b(?:Text|Line2D|Legend|Annotation|AxesImage|PathCollection|PolyCollection"
    r"|LineCollection|QuadMesh|BarContainer|Rectangle|ContourSet|QuadContourSet)\("
    r"|<(?:matplotlib|Figure|Axes|Figure size)[^>]*>"
    r"|<[A-Za-z_][\w.]* object at 0x[0-9a-f]+>"
    r"|\bnp\.(?:float|int|uint|bool|complex|str_)\w*\("
    r"|\bnumpy\.(?:float|int)\w*\(")
REFRESH = re.compile(r'http-equiv="refresh" content="\d+;\s*url=([^"]+)"', re.I)

# What a page reports once it has settled: MathJax finished, images decoded. Everything the
# checks need is measured here, in the page, at the current viewport width.
READ_PAGE = r"""async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await Promise.all([...document.images].map(img => img.decode().catch(() => null)));
  const visible = el => el.getClientRects().length > 0
                        && getComputedStyle(el).visibility !== "hidden";
  const describe = el => {
    const text = (el.textContent || el.getAttribute("src") || "").trim().replace(/\s+/g, " ");
    return text.slice(0, 70);
  };

  // --- text outside code and typeset math
  const body = document.body.cloneNode(true);
  body.querySelectorAll("pre, code, script, style, mjx-container, .highlight, "
                        + "mjx-assistive-mml, .headerlink").forEach(e => e.remove());
  const text = body.textContent;

  // --- math: errors, and the TeX source of every typeset formula
  const mathErrors = [...document.querySelectorAll("mjx-merror")].map(
      e => e.getAttribute("data-mjx-error") || e.textContent);
  const tex = [];
  if (window.MathJax && MathJax.startup && MathJax.startup.document) {
    for (const item of MathJax.startup.document.math) tex.push(String(item.math));
  }

  // --- width: every block a reader reads, against the article's content box
  const article = document.querySelector("article.bd-article") || document.querySelector("main");
  const style = getComputedStyle(article);
  const box = article.getBoundingClientRect();
  const right = box.right - parseFloat(style.paddingRight);
  const kind = el => {
    if (el.closest(".cell_output, .output")) return el.tagName === "IMG" ? "figure" : "output";
    if (el.matches("div.math, mjx-container[display='true']")) return "display equation";
    if (el.closest("table")) return "table";
    if (el.tagName === "IMG") return "image";
    if (el.closest(".cell_input, div.highlight, pre")) return "code";
    return el.tagName.toLowerCase();
  };
  const wide = [], flagged = new Set();
  const blocks = article.querySelectorAll(
      "pre, div.math, table, img, .cell_output > *, p, li, "
      + "dl, blockquote, .admonition, .pst-scrollable-table-container");
  for (const el of blocks) {
    if (!visible(el)) continue;
    const r = el.getBoundingClientRect();
    const scrolls = getComputedStyle(el).overflowX;
    const cut = el.scrollWidth > el.clientWidth + 1 && scrolls !== "visible" && el.clientWidth > 0;
    const out = r.right > right + 1;
    if (cut || out) {
      flagged.add(el);
      wide.push({kind: kind(el), by: Math.round(Math.max(el.scrollWidth - el.clientWidth,
                                                         r.right - right)),
                 what: describe(el)});
    }
  }
  // Display math: MathJax's box inside the container must fit the container.
  for (const c of article.querySelectorAll("mjx-container[display='true']")) {
    const inner = c.querySelector("mjx-math");
    if (!inner || !visible(c) || flagged.has(c.closest("div.math"))) continue;
    const over = inner.getBoundingClientRect().width - c.getBoundingClientRect().width;
    if (over > 1) wide.push({kind: "display equation", by: Math.round(over), what: describe(c)});
  }

  // --- outputs: their text, class by class
  const outputs = [...article.querySelectorAll(".cell_output .output")].map(o => ({
      cls: o.className, text: o.textContent}));

  // --- figures: natural against displayed size, and SVG text sizes as displayed
  const figures = [];
  for (const img of article.querySelectorAll("img")) {
    if (!visible(img)) continue;
    const shown = img.getBoundingClientRect().width;
    const src = img.getAttribute("src") || "";
    const fig = {src, shown, natural: img.naturalWidth, svg: /\.svg(\?|$)/i.test(src)};
    if (fig.svg) {
      const svg = new DOMParser().parseFromString(await (await fetch(img.src)).text(),
                                                  "image/svg+xml").documentElement;
      const viewBox = (svg.getAttribute("viewBox") || "").split(/[\s,]+/).map(Number);
      fig.userWidth = viewBox.length === 4 ? viewBox[2] : parseFloat(svg.getAttribute("width"));
      // Matplotlib writes text as glyph paths in a group scaled by fontsize/100, or (with
      // svg.fonttype "none") as <text> with a font size; both are in user units.
      const sizes = [];
      for (const g of svg.querySelectorAll("[transform]")) {
        const m = /scale\(\s*([\d.eE+-]+)[\s,]+-([\d.eE+-]+)\s*\)/.exec(
            g.getAttribute("transform"));
        if (m && g.querySelector("use")) sizes.push(100 * parseFloat(m[1]));
      }
      for (const t of svg.querySelectorAll("text")) {
        const css = (t.getAttribute("style") || "") + ";font-size:" +
                    (t.getAttribute("font-size") || "");
        const m = /font(?:-size)?:\s*(?:[a-z]+\s+)*([\d.]+)px/.exec(css)
                  || /font-size:\s*([\d.]+)/.exec(css);
        if (m) sizes.push(parseFloat(m[1]));
      }
      fig.minFont = sizes.length ? Math.min(...sizes) : null;
    }
    figures.push(fig);
  }

  return {
    hasMath: document.querySelector(".math") !== null,
    mjx: document.querySelectorAll("mjx-container").length,
    text, tex, mathErrors, wide, outputs, figures,
    pageWidth: document.documentElement.scrollWidth,
    viewport: window.innerWidth,
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


def _open_tab(browser, width: int) -> tuple[Any, Tab]:
    context = browser.new_context(viewport={"width": width, "height": 900})
    tab = Tab(context.new_page())

    def route(r):
        if urlsplit(r.request.url).hostname in {"127.0.0.1", "localhost"}:
            r.continue_()
        else:
            tab.outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    return context, tab


@pytest.fixture
def tab(browser) -> Tab:
    """A fresh 1280-px page that refuses, and records, every request that leaves localhost."""
    context, tab = _open_tab(browser, WIDE)
    yield tab
    context.close()


def _pages(html: Path) -> list[str]:
    return sorted(str(p.relative_to(html)) for p in html.rglob("*.html")
                  if not p.relative_to(html).parts[0].startswith("_"))


def _visit(tab: Tab, base: str, html: Path, rel: str) -> tuple[dict, int, int]:
    """Open ``rel`` (following index.html's redirect) at 1280 px and read it; then narrow the
    window to 400 px. Returns the reading at 1280 px and the page's width against the
    window's at 400 px. A full-page screenshot is kept at each width."""
    page = tab.page
    page.set_viewport_size({"width": WIDE, "height": 900})
    page.goto(urljoin(base, rel), wait_until="load")
    redirect = REFRESH.search((html / rel).read_text())
    if redirect:  # index.html forwards to the root page; follow it, then check that page
        page.wait_for_url(urljoin(urljoin(base, rel), redirect.group(1)), timeout=10_000)
    state = page.evaluate(READ_PAGE)
    name = rel.replace("/", "__").removesuffix(".html")
    page.screenshot(path=str(SCREENSHOTS / f"{name}@{WIDE}.jpg"), full_page=True,
                    type="jpeg", quality=75)
    page.set_viewport_size({"width": NARROW, "height": 900})    # the same page, reflowed
    page_width, window = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]")
    page.screenshot(path=str(SCREENSHOTS / f"{name}@{NARROW}.jpg"), full_page=True,
                    type="jpeg", quality=75)
    return state, page_width, window


# ----------------------------------------------------------------------- what a reader meets

def prose_as_math(tex: str) -> str | None:
    """Four or more words in a row inside math: prose that MathJax typeset as symbols.

    ``\\text{…}``-like groups and command names are removed first, so ``\\text{for all } x``
    and ``\\operatorname{sign}`` are fine; "so the right-hand side of step 2 equals" is not.
    """
    bare = re.sub(r"\\(?:text\w*|math(?:rm|it|bf|sf|tt)|mbox|operatorname\*?|label|tag)"
                  r"\s*\{[^{}]*\}", " ", tex)
    bare = re.sub(r"\\[A-Za-z]+", " ", bare)
    found = re.search(r"(?<![A-Za-z])[A-Za-z]{2,}(?:[ \t\n,;:'-]+[A-Za-z]{2,}){3,}", bare)
    return found.group(0) if found else None


def figure_problems(fig: dict) -> list[str]:
    """Why a figure is not legible as shown, if it is not (see the module docstring)."""
    name = fig["src"].rsplit("/", 1)[-1][:24]
    if fig["svg"]:
        if not fig.get("userWidth") or fig.get("minFont") is None:
            return []                                     # an SVG without text: nothing to read
        smallest = fig["minFont"] * fig["shown"] / fig["userWidth"]
        if smallest < MIN_FONT_PX:
            return [f"figure {name}: smallest text {smallest:.1f} px as shown "
                    f"(drawn at {fig['minFont']:.1f} units, {fig['userWidth']:.0f} units wide, "
                    f"shown {fig['shown']:.0f} px wide; needs ≥ {MIN_FONT_PX:g} px)"]
        return []
    density = fig["natural"] / fig["shown"] if fig["shown"] else 0
    if density < MIN_DENSITY:
        return [f"figure {name}: raster at {density:.2f} image px per CSS px "
                f"({fig['natural']} px shown at {fig['shown']:.0f}; needs ≥ {MIN_DENSITY:g}×, "
                "or SVG)"]
    return []


def reader_problems(rel: str, state: dict) -> dict[str, list[str]]:
    """Everything a reader would trip over on one page at 1280 px, by category."""
    found: dict[str, list[str]] = {}

    def add(category: str, message: str) -> None:
        found.setdefault(category, []).append(f"{rel}: {message}")

    if state["hasMath"] and state["mjx"] == 0:
        add("math", "has math but MathJax typeset nothing")
    for error in state["mathErrors"]:
        add("math", f"MathJax error: {error}")
    raw = sorted(set(RAW_TEX.findall(state["text"])))
    if raw:
        add("math", f"raw TeX left in the text: {raw}")
    dollars = [m.group(0).strip() for m in re.finditer(r".{0,30}\$.{0,30}", state["text"])]
    if dollars:
        add("math", f"stray $ in the text: {dollars[:3]}")
    for tex in state["tex"]:
        words = prose_as_math(tex)
        if words:
            add("math", f"prose typeset as math: {words!r}")
    for item in state["wide"]:
        add("width", f"{item['kind']} {item['by']} px wider than the article: "
                     f"{item['what']!r}")
    for output in state["outputs"]:
        for match in BARE_REPR.finditer(output["text"]):
            add("repr", f"bare object repr in an output: {match.group(0)!r}")
        if re.search(r"\b(?:stderr|traceback|error)\b", output["cls"]):
            add("stderr", f"a warning or error in an output: {output['text'][:120]!r}")
    for fig in state["figures"]:
        for problem in figure_problems(fig):
            add("figure", problem)
    if state["brokenImages"]:
        add("images", f"images that did not load: {state['brokenImages']}")
    return found


def test_every_page_reads_well(tab, site):
    """Every page at 1280 px (see the module docstring), and at 400 px no sideways scroll."""
    base, html = site
    page = tab.page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: dict[str, list[str]] = {}
    nav_links: set[str] = set()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.on("response", lambda r: errors.append(f"HTTP {r.status} {r.url}")
            if r.status >= 400 else None)
    pages = _pages(html)
    for rel in pages:
        errors.clear()
        tab.outside.clear()
        state, page_width, window = _visit(tab, base, html, rel)
        nav_links.update(state["navLinks"])
        for category, found in reader_problems(rel, state).items():
            problems.setdefault(category, []).extend(found)
        if page_width > window + 1:
            problems.setdefault("phone", []).append(
                f"{rel}: at {NARROW} px the page is {page_width} px wide (it scrolls sideways)")
        if errors:
            problems.setdefault("console", []).append(f"{rel}: console errors: {errors[:5]}")
        if tab.outside:
            problems.setdefault("offline", []).append(
                f"{rel}: requests that left localhost: {tab.outside[:5]}")
    assert pages and "index.html" in pages
    counts = ", ".join(f"{k}: {len(v)}" for k, v in sorted(problems.items()))
    assert not problems, (f"what a reader meets ({counts}):\n"
                          + "\n".join(p for found in problems.values() for p in found))

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
    page.screenshot(path=str(SCREENSHOTS / "search-Adam.jpg"), type="jpeg", quality=75)


# ------------------------------------------------------------- the checks catch what they must

@pytest.mark.parametrize("tex,bad", [
    (r"f(\theta_{t+1}) - f^\star \le g_t^\top(\theta_t - \theta^\star)", False),
    (r"\lVert\theta\rVert \quad\text{for all } x, y", False),
    (r"\operatorname{sign}(g) \approx 3.16\,\eta", False),
    (r"\eta_{min} + (\eta - \eta_{min})\,\phi_{\cos}(u)", False),
    ("\\theta^\\star\\rVert^2 ,\n\\)\\(\nso the right-hand side of step 2 equals", True),
])
def test_prose_as_math_is_recognised(tex, bad):
    assert (prose_as_math(tex) is not None) == bad


def test_reader_problems_catch_the_known_defects():
    """Each defect of issue 11, as the page reports it, is found; a clean page is not."""
    clean = {"hasMath": True, "mjx": 3, "text": "A page.", "tex": [r"\eta"], "mathErrors": [],
             "wide": [], "outputs": [{"cls": "output stream", "text": "loss 0.1\n"}],
             "figures": [{"src": "a.svg", "svg": True, "shown": 640, "natural": 640,
                          "userWidth": 480, "minFont": 8.0}],
             "brokenImages": []}
    assert reader_problems("clean.html", clean) == {}
    defects = {
        "math": {"mathErrors": ["\\tag not allowed in split environment"]},
        "raw": {"text": "see $O(1/k^2)$ in the title"},
        "prose": {"tex": ["\\)\\(\nso the right-hand side of step 2 equals"]},
        "width": {"wide": [{"kind": "code", "by": 31, "what": "x = 1"}]},
        "repr": {"outputs": [{"cls": "output text_plain", "text": "Text(0.5, 1.0, 'title')"}]},
        "np": {"outputs": [{"cls": "output stream", "text": "{'a': np.float64(0.1)}"}]},
        "stderr": {"outputs": [{"cls": "output stderr", "text": "UserWarning: x"}]},
        "small": {"figures": [{"src": "b.png", "svg": False, "shown": 688, "natural": 1111}]},
        "tiny": {"figures": [{"src": "c.svg", "svg": True, "shown": 688, "natural": 1500,
                              "userWidth": 1080, "minFont": 8.0}]},
    }
    for name, change in defects.items():
        assert reader_problems("bad.html", {**clean, **change}), name
