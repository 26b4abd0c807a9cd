"""The book: its table of contents, its notebooks in git, and its strict offline build.

The build itself runs once per session (``built_book`` in conftest.py) with the flags of
``make book``: every notebook executed, warnings are errors, nitpicky.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.book

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
STAGES = ("01-problem", "02-gradient-descent", "03-sgd", "04-momentum", "05-adaptive",
          "06-schedules", "07-implementation", "08-practice")
SOLUTION_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
CDN = re.compile(r"cdn\.jsdelivr\.net|unpkg\.com|cdnjs\.cloudflare\.com|cdn\.mathjax\.org"
                 r"|polyfill\.io|requirejs\.org|cdn\.plot\.ly|code\.jquery\.com")


def toc_files() -> list[str]:
    """Every ``file:`` of _toc.yml, root first, without extension (e.g. ``book/01-problem``)."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def book_sources() -> list[Path]:
    """The pages and notebooks in book/ (not the local Sphinx extension, not checkpoints)."""
    return sorted(p for p in BOOK.rglob("*") if p.suffix in {".md", ".ipynb"}
                  and "_ext" not in p.parts and ".ipynb_checkpoints" not in p.parts)


def html_pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html")
                  if not p.relative_to(html).parts[0].startswith("_"))


# ---------------------------------------------------------------- sources (no build needed)

def test_every_book_page_is_in_the_toc():
    listed = set(toc_files())
    missing = [str(p.relative_to(REPO).with_suffix("")) for p in book_sources()
               if str(p.relative_to(REPO).with_suffix("")) not in listed]
    assert not missing, f"pages in book/ missing from _toc.yml (they would not be built): {missing}"


def test_every_toc_entry_exists_and_chapters_follow_the_stage_order():
    files = toc_files()
    absent = [f for f in files if not any((REPO / f).with_suffix(s).is_file()
                                          for s in (".md", ".ipynb"))]
    assert not absent, f"_toc.yml lists files that do not exist: {absent}"
    chapters = [f.removeprefix("book/") for f in files if f.removeprefix("book/") in STAGES]
    assert chapters == sorted(chapters), f"chapters out of stage order in _toc.yml: {chapters}"
    strays = [f for f in files if re.fullmatch(r"book/\d\d-.*", f)
              and f.removeprefix("book/") not in STAGES]
    assert not strays, f"chapter slugs not among the eight stages {STAGES}: {strays}"


def test_notebooks_in_git_store_no_outputs():
    dirty = []
    for path in BOOK.rglob("*.ipynb"):
        if ".ipynb_checkpoints" in path.parts:
            continue
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code" and (cell.get("outputs")
                                                or cell.get("execution_count") is not None):
                dirty.append(f"{path.name} cell {i}")
    assert not dirty, ("notebooks in book/ must be stored without outputs or execution counts "
                       f"(clear them before committing): {dirty}")


# ---------------------------------------------------------------- lint: what the page will show

CODE_COLUMNS = 76          # a code cell shows about 77 monospace characters at 1280 px
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")


def _cells(path: Path) -> list[tuple[str, str]]:
    """``(cell_type, source)`` of a notebook, or one markdown "cell" for a .md page."""
    if path.suffix == ".md":
        return [("markdown", path.read_text())]
    return [(c["cell_type"], "".join(c["source"]))
            for c in json.loads(path.read_text())["cells"]]


def _fenced_code(markdown: str) -> list[str]:
    """The lines of fenced code blocks in Markdown (directives such as ```{math} excluded)."""
    lines, fence, code = [], None, False
    for line in markdown.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence, code = match.group(2), not match.group(3).strip().startswith("{")
            continue
        if fence is not None and match and match.group(2).startswith(fence[0] * len(fence)) \
                and not match.group(3).strip():
            fence = None
            continue
        if fence is not None and code:
            lines.append(line)
    return lines


def test_code_fits_a_code_cell():
    """Code cells and fenced code in the book are at most 76 columns: wider is cut off."""
    wide = []
    for path in book_sources():
        for i, (kind, source) in enumerate(_cells(path)):
            lines = source.splitlines() if kind == "code" else _fenced_code(source)
            wide += [f"{path.name} cell {i}: {len(line)} columns: {line.strip()[:50]}"
                     for line in lines if len(line) > CODE_COLUMNS]
    assert not wide, (f"{len(wide)} code lines wider than {CODE_COLUMNS} columns (a code "
                      "cell shows about 77 at 1280 px; wrap them):\n" + "\n".join(wide[:30]))


def _display_math(markdown: str) -> list[tuple[int, str]]:
    """``(line number, body)`` of each ``$$ … $$`` block."""
    blocks, start, body = [], None, []
    for n, line in enumerate(markdown.splitlines(), 1):
        if line.strip() == "$$":
            if start is None:
                start, body = n, []
            else:
                blocks.append((start, "\n".join(body)))
                start = None
        elif start is not None:
            body.append(line)
    return blocks


def test_math_that_myst_and_mathjax_render():
    """Two known ways to break a page that the build does not report (FACTS.md).

    - ``$$`` indented under a list item: MyST does not parse it, and the page shows stray
      ``$`` signs with the prose in between typeset as math;
    - ``\\tag`` in a ``$$`` block with line breaks: Sphinx wraps it in ``split``, where
      MathJax refuses ``\\tag``. Use ``\\begin{equation*} … \\tag{…} \\end{equation*}``.
    """
    broken = [f"{path.name} cell {i}, {problem}" for path in book_sources()
              for i, (kind, source) in enumerate(_cells(path)) if kind == "markdown"
              for problem in math_problems(source)]
    assert not broken, "\n".join(broken)


def math_problems(markdown: str) -> list[str]:
    """See :func:`test_math_that_myst_and_mathjax_render`."""
    return ([f"line {n}: display math indented in a list item"
             for n, line in enumerate(markdown.splitlines(), 1)
             if re.match(r"^\s+\$\$", line)]
            + [f"line {n}: \\tag in a $$ block with line breaks (not allowed in split)"
               for n, body in _display_math(markdown) if "\\tag" in body
               and "\\\\" in body])


@pytest.mark.parametrize("markdown,bad", [
    ("1. Insert it:\n   $$\n   a \\le b\n   $$\n2. Next.", True),     # the ch02 bug
    ("$$\n\\begin{aligned} a &= b\\\\ c &= d \\end{aligned} \\tag{Adam}\n$$", True),
    ("$$\na = b \\tag{SGD}\n$$", False),                               # one line: fine
    ("\\begin{equation*}\na = b\\\\\nc = d \\tag{Adam}\n\\end{equation*}", False),
    ("1. Insert it:\n\n$$\na \\le b\n$$", False),
])
def test_math_problems_are_recognised(markdown, bad):
    assert bool(math_problems(markdown)) == bad


def test_chapters_draw_through_descent_plots():
    """Each chapter applies the house style and draws with descent.plots, not matplotlib."""
    problems = []
    for path in sorted(BOOK.glob("*.ipynb")):
        code = "\n".join(src for kind, src in _cells(path) if kind == "code")
        if re.search(r"^\s*(import matplotlib|from matplotlib)", code, re.M):
            problems.append(f"{path.name} imports matplotlib itself")
        if "book_style()" not in code:
            problems.append(f"{path.name} does not call descent.plots.book_style()")
    assert not problems, problems


# ---------------------------------------------------------------- the strict build

def test_strict_build_succeeds_and_is_timed(built_book, record_property):
    record_property("book_build_seconds", built_book.seconds)
    print(f"\nclean strict book build: {built_book.seconds:.1f} s")  # shown with -s / -rA
    assert (built_book.html / "index.html").is_file()


def test_a_page_per_toc_entry(built_book):
    missing = [f for f in toc_files() if not (built_book.html / f"{f}.html").is_file()]
    assert not missing, f"toc entries without a built page: {missing}"


def test_only_the_toc_is_published(built_book):
    published = {str(p.relative_to(built_book.html).with_suffix(""))
                 for p in html_pages(built_book.html)}
    extra = published - set(toc_files()) - {"index", "search", "genindex"}
    assert not extra, f"pages published that are not in _toc.yml: {sorted(extra)}"
    for forbidden in ("solutions", "lib", "tests", "benchmarks", "make"):
        assert not (built_book.html / forbidden).exists(), f"{forbidden}/ was published"
    # exercises/ is published as downloads (book/_ext/descent_home.py): the released notebooks
    # exactly, no page made from them.
    published = sorted(p.relative_to(built_book.html) for p in
                       (built_book.html / "exercises").rglob("*") if p.is_file())
    released = sorted(p.relative_to(REPO) for p in (REPO / "exercises").rglob("*")
                      if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    assert published == released
    assert all((built_book.html / p).read_bytes() == (REPO / p).read_bytes() for p in released)


def test_no_solution_code_in_the_site(built_book):
    leaks = []
    for path in built_book.html.rglob("*"):
        if path.is_file() and path.suffix in {".html", ".ipynb", ".md", ".txt", ".py", ".js"}:
            text = path.read_text(errors="replace")
            leaks += [f"{path.relative_to(built_book.html)}: {m}"
                      for m in SOLUTION_MARKERS if m in text]
    assert not leaks, f"solution or hidden-test code published: {leaks}"


def test_no_cdn_urls(built_book):
    hits = [f"{p.relative_to(built_book.html)}: {m.group(0)}"
            for p in html_pages(built_book.html)
            for m in CDN.finditer(p.read_text(errors="replace"))]
    assert not hits, f"pages reference a CDN (the book must work offline): {hits}"


def test_math_is_served_locally_and_scripts_are_not_repeated(built_book):
    assert (built_book.html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    for page in html_pages(built_book.html):
        text = page.read_text()
        if 'class="math' in text:  # Sphinx loads MathJax only on pages that have math
            assert "_static/mathjax/tex-chtml.js" in text, f"{page.name}: no local MathJax"
        inline = re.findall(r"<script>(.*?)</script>", text, flags=re.S)
        repeated = {s[:60] for s in inline if inline.count(s) > 1}
        assert not repeated, f"{page.name}: inline scripts written twice: {repeated}"
        assert "THEBE_JS_URL" not in text, f"{page.name}: thebe loader left in (thebe is off)"


def test_no_warning_or_error_in_any_output(built_book):
    """A chapter's outputs show no warning and no traceback: a reader should never see one,
    and it is also how the house-style check of each figure (descent.plots.book_style)
    reports a legend over data, text too small or a figure too wide, without a browser."""
    found = []
    for page in html_pages(built_book.html):
        text = page.read_text()
        for match in re.finditer(r'<div class="output (stderr|traceback|error)\b.*?</pre>',
                                 text, flags=re.S):
            snippet = re.sub(r"<[^>]+>", "", match.group(0))[:300]
            found.append(f"{page.name}: {match.group(1)}: {' '.join(snippet.split())}")
    assert not found, "\n".join(found)


def test_download_buttons(built_book):
    """Launch and repository buttons follow the course's home: tests/test_home.py."""
    for f in toc_files():
        text = (built_book.html / f"{f}.html").read_text()
        assert "btn-download-source-button" in text, f"{f}: no download button"


# ---------------------------------------------------------------- notation page ↔ descent

# Keyword → the descent.optim classes that must accept it, as book/notation.md promises. Classes
# not written yet are skipped, so the check grows with the library.
NOTATION_KEYWORDS = {
    "lr": ("SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "NAdam"),
    "weight_decay": ("SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "NAdam"),
    "momentum": ("SGD", "RMSprop"),
    "dampening": ("SGD",),
    "nesterov": ("SGD",),
    "betas": ("Adam", "AdamW", "NAdam"),
    "eps": ("Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "NAdam"),
    "alpha": ("RMSprop",),
    "rho": ("Adadelta",),
    "warmup_steps": ("SGDScheduleFree", "AdamWScheduleFree"),
    "weight_lr_power": ("SGDScheduleFree", "AdamWScheduleFree"),
    "swa_lr": ("SWALR",),
    "anneal_epochs": ("SWALR",),
}
# Rule → (its state class, the state fields the notation page names).
NOTATION_STATES = {"sgd": ("SGDState", ("b",)), "adam": ("AdamState", ("m", "v", "v_max")),
                   "adagrad": ("AdagradState", ("s",)), "rmsprop": ("RMSpropState", ("v",)),
                   "adadelta": ("AdadeltaState", ("v", "u")),
                   "schedule_free_sgd": ("ScheduleFreeSGDState", ("z", "x")),
                   "average": ("AverageState", ("n", "theta_bar"))}


def test_notation_page_matches_descent():
    import inspect

    import descent.optim
    import descent.rules

    page = (BOOK / "notation.md").read_text()
    checked = 0
    for keyword, classes in NOTATION_KEYWORDS.items():
        assert f"`{keyword}`" in page, f"notation.md does not name the keyword `{keyword}`"
        for name in classes:
            cls = getattr(descent.optim, name, None)
            if cls is None:
                continue
            assert keyword in inspect.signature(cls).parameters, (
                f"notation.md says descent.optim.{name} takes `{keyword}`; its signature "
                f"is {inspect.signature(cls)}")
            checked += 1
    for rule, (state_name, fields) in NOTATION_STATES.items():
        state = getattr(descent.rules, state_name, None)
        if state is None:
            continue
        for field in fields:
            assert re.search(rf"`(\w+\.)?{field}`", page), f"notation.md does not name `{field}`"
            assert field in state._fields, f"{state_name} has no field `{field}`: {state._fields}"
        if rule == "adam" and hasattr(descent.rules, "adam_update"):
            params = inspect.signature(descent.rules.adam_update).parameters
            assert {"beta1", "beta2", "eps", "lr"} <= set(params), (
                "notation.md names adam_update's keywords beta1, beta2, eps, lr; "
                f"it takes {list(params)}")
    assert checked, "no descent.optim class found to check the notation against"
    try:
        import descent.landscapes as landscapes
    except ImportError:
        return
    bowl = landscapes.quadratic_bowl(kappa=10.0)
    for attribute in ("L", "mu", "minima", "grad", "hessian"):
        assert f"`{attribute}`" in page or f"`{attribute}(" in page, attribute
        assert hasattr(bowl, attribute), f"notation.md names landscape.{attribute}; it has none"
    assert bowl.L / bowl.mu == pytest.approx(10.0), "κ = L/μ on the bowl, as notation.md says"
