"""The released exercises read well in Jupyter: nothing cut off, every link resolves.

What a student opens is ``exercises/NN-slug/NN-slug.ipynb`` in JupyterLab, from a checkout or
from the student release (``make student-release``), where the chapters sit in ``book/`` as
notebooks beside their HTML pages, as in the repository. Measured in JupyterLab 4 at 1280 px
with the file browser open (its default layout), a markdown cell is 848 px wide and a code
cell shows about 108 monospace characters.

- **Code**: every line of a code cell, and of a code block in markdown, fits in 76 columns,
  the width the book's code cells show; a wider line scrolls sideways in a narrower window
  and is cut off in the book and on paper.
- **Markdown**: prose wraps; what cannot wrap must fit: no run of text without a space longer
  than 60 characters (link targets and math aside) and no table row longer than 100.
- **Display math** is typeset with MathJax 3 (the copy the book bundles) at Jupyter's 14 px
  text in a headless Chromium; each equation's natural width, tag included, must stay under
  760 px. JupyterLab typesets about 5 % wider (8.1's range test: 614 px here, 648 px there),
  so that is about 800 px of the 848 px cell. A sentinel equation checks the measure.
- **Links**: a relative link must name a file that exists from the exercise's folder, under
  ``book/`` (a chapter of the table of contents) or ``exercises/``, so it resolves both in a
  checkout and in the student release; a ``#fragment`` must be a heading id as Jupyter makes
  it (the heading's text, spaces turned into ``-``; MyST labels mean nothing to Jupyter); an
  absolute link must start with the course's home (``repository.url`` in ``_config.yml``),
  so with no home configured there is none. Every exercise links its own chapter.
"""

from __future__ import annotations

import ast
import functools
import re
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import distribution
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
import yaml
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = sorted(p for p in (ROOT / "exercises").glob("[0-9][0-9]-*") if p.is_dir())
COLUMNS = 76
UNBREAKABLE = 60
TABLE_ROW = 100
MATH_PX = 760
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MD = MarkdownIt("commonmark").enable("table")
DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.S)
INLINE_MATH = re.compile(r"(?<!\$)\$(?!\$)(.+?)(?<!\$)\$(?!\$)", re.S)


def notebook(exercise: Path):
    return nbformat.read(str(exercise / f"{exercise.name}.ipynb"), 4)


def cells(kinds: set[str]):
    """(exercise, cell id, kind, cell) for the exercises' cells of the given kinds: markdown,
    context (locked code), answer, grade."""
    for exercise in EXERCISES:
        for cell in notebook(exercise).cells:
            meta = cell.metadata.get("nbgrader", {})
            kind = ("markdown" if cell.cell_type == "markdown" else "grade" if meta.get("grade")
                    else "answer" if meta.get("solution") else "context")
            if kind in kinds:
                yield exercise.name, cell.get("id"), kind, cell


def wide_lines(source: str) -> list[str]:
    return [f"{len(line)} cols: {line.strip()[:50]}" for line in source.splitlines()
            if len(line) > COLUMNS]


def fenced_code(markdown: str) -> list[str]:
    return [t.content for t in MD.parse(markdown) if t.type in ("fence", "code_block")]


def test_code_fits_76_columns():
    wide = [f"{name} {cid}: {line}" for name, cid, _, cell in cells({"context"})
            for line in wide_lines(cell.source)]
    wide += [f"{name} {cid} (code block): {line}" for name, cid, _, cell in cells({"markdown"})
             for block in fenced_code(cell.source) for line in wide_lines(block)]
    assert not wide, "\n".join(wide)


def test_every_code_cell_is_python():
    """A reflowed cell still parses (a line that lost its indent would not)."""
    broken = []
    for name, cid, _, cell in cells({"context", "answer", "grade"}):
        try:
            ast.parse(cell.source)
        except SyntaxError as err:
            broken.append(f"{name} {cid}: {err}")
    assert not broken, "\n".join(broken)


def test_answer_and_grade_cells_fit_76_columns():
    wide = [f"{name} {cid}: {line}" for name, cid, _, cell in cells({"answer", "grade"})
            for line in wide_lines(cell.source)]
    assert not wide, "\n".join(wide)


def visible_text(markdown: str) -> str:
    """What a reader sees of the prose: no math, link text without its target."""
    text = DISPLAY_MATH.sub(" ", markdown)
    text = INLINE_MATH.sub(" ", text)
    return re.sub(r"\]\([^)\s]*\)", "]", text)


def test_markdown_has_nothing_that_cannot_wrap():
    problems = []
    for name, cid, _, cell in cells({"markdown"}):
        for token in visible_text(cell.source).split():
            if len(token) > UNBREAKABLE:
                problems.append(f"{name} {cid}: {len(token)} characters without a space: "
                                f"{token[:50]}")
        for line in cell.source.splitlines():
            if line.lstrip().startswith("|") and len(line) > TABLE_ROW:
                problems.append(f"{name} {cid}: a table row of {len(line)} characters")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------- links

def home() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return str((config.get("repository") or {}).get("url") or "").strip()


def chapters() -> set[str]:
    """The chapter notebooks of the table of contents, as repository paths."""
    toc = (ROOT / "_toc.yml").read_text()
    return {f"{f}.ipynb" for f in re.findall(r"file:\s*(\S+)", toc)
            if (ROOT / f"{f}.ipynb").is_file()}


def links(markdown: str) -> list[str]:
    out = []
    for token in MD.parse(markdown):
        for child in token.children or []:
            if child.type == "link_open":
                out.append(child.attrs["href"])
    return out


@functools.cache
def jupyter_ids(path: Path) -> set[str]:
    """The ids JupyterLab gives the headings of a notebook (textContent, spaces -> "-"), for
    headings without math (whose text MathJax rewrites)."""
    ids = set()
    for cell in nbformat.read(str(path), 4).cells:
        if cell.cell_type != "markdown":
            continue
        tokens = MD.parse(cell.source)
        for i, token in enumerate(tokens):
            if token.type == "heading_open":
                inline = tokens[i + 1]
                if "$" in inline.content:
                    continue
                text = "".join(c.content for c in inline.children
                               if c.type in ("text", "code_inline"))
                ids.add(text.replace(" ", "-"))
    return ids


def link_problems(exercise: Path, target: str) -> list[str]:
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        base = home()
        if not base:
            return [f"absolute link {target} (no home is configured: use a relative link)"]
        return [] if target.startswith(base.rstrip("/") + "/") or target == base else \
            [f"absolute link {target} outside the course's home {base}"]
    path = (exercise / unquote(parts.path)).resolve()
    if not path.is_file():
        return [f"{target}: no such file"]
    rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    if not (rel in chapters() or rel.startswith("exercises/")):
        return [f"{target}: {rel} is neither a chapter nor an exercise (not published)"]
    if parts.fragment and path.suffix == ".ipynb" and \
            unquote(parts.fragment) not in jupyter_ids(path):
        return [f"{target}: no heading #{parts.fragment} in {rel} as Jupyter names headings "
                f"(e.g. {sorted(jupyter_ids(path))[:3]})"]
    return []


def test_every_link_resolves_in_jupyter():
    problems, linked = [], {}
    for exercise in EXERCISES:
        for cell in notebook(exercise).cells:
            if cell.cell_type != "markdown":
                continue
            for target in links(cell.source):
                problems += [f"{exercise.name} {cell.get('id')}: {p}"
                             for p in link_problems(exercise, target)]
                linked.setdefault(exercise.name, set()).add(urlsplit(target).path)
    assert not problems, "\n".join(problems)
    missing = [e.name for e in EXERCISES
               if f"../../book/{e.name}.ipynb" not in linked.get(e.name, set())]
    assert not missing, f"exercises that do not link their chapter: {missing}"


def test_link_checks_catch_what_they_should():
    """The checker itself: a missing file, a MyST label, an unpublished file, a foreign URL."""
    exercise = ROOT / "exercises" / "03-sgd"
    assert not link_problems(exercise, "../../book/03-sgd.ipynb#Mini-batches-are-unbiased")
    assert link_problems(exercise, "../../book/03-sgd.ipynb#ch03-unbiased")
    assert link_problems(exercise, "../../book/99-nothing.ipynb")
    assert link_problems(exercise, "../../README.md")
    assert link_problems(exercise, "https://example.org/somewhere")


# ------------------------------------------------------------------------------ display math

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<script>MathJax = {tex: {tags: "none"}, startup: {typeset: true}};</script>
<script src="mathjax/tex-chtml.js"></script>
<style>body { font: 14px -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial,
sans-serif; } .eq { display: inline-block; }</style></head><body>%s</body></html>"""


def display_equations() -> list[tuple[str, str]]:
    return [(f"{name} {cid}", eq.strip()) for name, cid, _, cell in cells({"markdown"})
            for eq in DISPLAY_MATH.findall(cell.source)]


@pytest.mark.browser
def test_display_math_fits_jupyter(tmp_path):
    if not Path(CHROMIUM).is_file():
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    mathjax = Path(distribution("sphinx-mathjax-offline").locate_file(
        "sphinx-mathjax-offline/static/mathjax"))
    (tmp_path / "mathjax").symlink_to(mathjax, target_is_directory=True)
    # The last one is a sentinel, too wide for any notebook: the measure must see it.
    equations = [*display_equations(), ("sentinel", " + ".join(f"x_{{{i}}}" for i in range(60)))]
    body = "".join(f'<div><div class="eq" id="eq{i}">$${eq}$$</div></div>'
                   for i, (_, eq) in enumerate(equations))
    (tmp_path / "index.html").write_text(PAGE % body)
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            page.wait_for_function("window.MathJax && MathJax.startup && "
                                   "MathJax.startup.promise", timeout=30_000)
            page.evaluate("MathJax.startup.promise")
            result = page.evaluate("""() => [...document.querySelectorAll('.eq')].map(e => ({
                width: e.getBoundingClientRect().width,
                error: e.querySelector('mjx-merror') ? e.textContent : null}))""")
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    assert len(result) == len(equations) > 0
    sentinel = result.pop()["width"]
    equations.pop()
    assert sentinel > MATH_PX, f"the sentinel measured {sentinel} px: the measure is broken"
    for r, (where, _) in zip(result, equations):
        print(f"{r['width']:6.0f} px  {where}")
    errors = [f"{where}: {r['error']}" for (where, _), r in zip(equations, result) if r["error"]]
    wide = [f"{where}: {r['width']:.0f} px: {eq[:60]}" for (where, eq), r in
            zip(equations, result) if r["width"] > MATH_PX]
    assert not errors, "\n".join(errors)
    assert not wide, "\n".join(wide)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
