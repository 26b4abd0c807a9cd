"""The course's home is one setting (``repository.url`` in ``_config.yml``); every button and
link of the book is derived from it, and with none configured no page shows a dead one.

Two small books (the real ``_config.yml`` and extensions, one executed-off chapter and the
intro; about 5 s each) show both cases, configured and not; the real book, built once per
session (``built_book``), is checked for the unconfigured case and for links that resolve.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDERS = ("github.com/" + "descent-course/descent", "hub." + "descent-course.example")
HOME = "https://github.com/example-org/example-course"
BUTTONS = ("launch-buttons", "btn-source-repository-button", "btn-source-issues-button",
           "mybinder.org", "colab.research.google.com", "git-pull")


HUB = "https://hub.example.org"


def _config(url: str | None) -> dict:
    """The project's configuration with the home set to ``url``, and a JupyterHub: its button
    too must follow the home."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    if url is not None:
        config["repository"]["url"] = url
    config["launch_buttons"]["jupyterhub_url"] = HUB
    config["execute"]["execute_notebooks"] = "off"
    return config


def mini_book(tmp: Path, url: str | None) -> Path:
    """A book with the project's configuration and extensions, one notebook chapter linking
    its exercise, built strictly; returns the HTML folder."""
    book = tmp / "book-src"
    (book / "book").mkdir(parents=True)
    shutil.copytree(ROOT / "book" / "_ext", book / "book" / "_ext")
    shutil.copytree(ROOT / "book" / "_static", book / "book" / "_static")
    shutil.copy(ROOT / "book" / "references.bib", book / "book")
    shutil.copytree(ROOT / "exercises" / "01-problem", book / "exercises" / "01-problem")
    (book / "_config.yml").write_text(yaml.safe_dump(_config(url)))
    (book / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                   "  - file: book/01-problem\n")
    (book / "book" / "intro.md").write_text("# Intro\n\nA test book.\n")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Chapter\n\nThe exercise "
                                      "[`exercises/01-problem/01-problem.ipynb`]"
                                      "(../exercises/01-problem/01-problem.ipynb)."),
        nbformat.v4.new_code_cell("1 + 1")])
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                  "language": "python"}}
    nbformat.write(nb, str(book / "book" / "01-problem.ipynb"))
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jupyter_book), "build", "--all", "--warningiserror", "--nitpick",
                           "--keep-going", str(book)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return book / "_build" / "html"


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append(value)


def links(page: Path) -> list[str]:
    parser = Links()
    parser.feed(page.read_text())
    return parser.links


def pages(site: Path) -> list[Path]:
    """The site's pages (not the theme's templates under _static/)."""
    return [p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts]


def dead_local_links(site: Path) -> list[str]:
    """Relative href/src of every page that name no file of the site."""
    dead = []
    for page in pages(site):
        for link in links(page):
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or not parts.path:    # absolute, or an anchor
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                dead.append(f"{page.relative_to(site)}: {link}")
    return dead


def buttons_shown(page: Path) -> list[str]:
    text = page.read_text()
    return [b for b in BUTTONS if b in text]


def test_configured_home_derives_every_button(tmp_path):
    site = mini_book(tmp_path, HOME)
    page = site / "book" / "01-problem.html"
    hrefs = links(page)
    expected = {
        "repository": HOME,
        "issues": f"{HOME}/issues/new?title=",
        "binder": "https://mybinder.org/v2/gh/example-org/example-course/main"
                  "?urlpath=lab/tree/book/01-problem.ipynb",
        "colab": "https://colab.research.google.com/github/example-org/example-course/blob/"
                 "main/book/01-problem.ipynb",
        "jupyterhub": f"{HUB}/hub/user-redirect/git-pull?repo={HOME.replace('://', '%3A//')}",
    }
    for what, url in expected.items():
        assert any(h.replace("&amp;", "&").startswith(url) for h in hrefs), \
            f"no {what} button to {url}: {[h for h in hrefs if h.startswith('http')]}"
    absolute = {h for h in hrefs if h.startswith(("http://", "https://"))}
    foreign = {h for h in absolute
               if not h.startswith((HOME, "https://mybinder.org/v2/gh/example-org/",
                                    "https://colab.research.google.com/github/example-org/",
                                    f"{HUB}/hub/user-redirect/git-pull?repo=https%3A//github.com/"
                                    "example-org/example-course&"))}
    assert not foreign, f"buttons not derived from the home: {foreign}"
    assert not dead_local_links(site)


def test_no_home_no_buttons(tmp_path):
    site = mini_book(tmp_path, "")
    for page in pages(site):
        assert not buttons_shown(page), f"{page.name} shows {buttons_shown(page)} without a home"
    assert "btn-download-source-button" in (site / "book" / "01-problem.html").read_text()
    assert not dead_local_links(site)


def test_chapter_links_its_exercise_in_the_site(tmp_path):
    site = mini_book(tmp_path, "")
    assert "../exercises/01-problem/01-problem.ipynb" in links(site / "book" / "01-problem.html")
    assert (site / "exercises" / "01-problem" / "01-problem.ipynb").read_bytes() == \
        (ROOT / "exercises" / "01-problem" / "01-problem.ipynb").read_bytes()
    assert (site / "book" / "01-problem.ipynb").is_file()     # where exercises link


def test_the_repository_names_no_placeholder():
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode().split("\0")
    hits = [f"{rel}: {p}" for rel in filter(None, tracked) if (ROOT / rel).is_file()
            for p in PLACEHOLDERS
            if p in (ROOT / rel).read_text(errors="replace")]
    assert not hits, hits


@pytest.mark.book
def test_the_book_without_a_home(built_book):
    """The project's book (no home configured): no repository, issue or launch button, no
    placeholder, every relative link resolves, and each chapter links its exercise."""
    site = built_book.html
    shown = {p.name: buttons_shown(p) for p in pages(site) if buttons_shown(p)}
    assert not shown, shown
    placeholder = [str(p.relative_to(site)) for p in site.rglob("*")
                   if p.is_file() and p.suffix in {".html", ".ipynb", ".js", ".txt"}
                   and any(x in p.read_text(errors="replace") for x in PLACEHOLDERS)]
    assert not placeholder, placeholder
    assert not dead_local_links(site), dead_local_links(site)
    for exercise in sorted((ROOT / "exercises").glob("[0-9][0-9]-*")):
        slug = exercise.name
        page = site / "book" / f"{slug}.html"
        assert f"../exercises/{slug}/{slug}.ipynb" in links(page), f"{slug}: no exercise link"
        assert (site / "exercises" / slug / f"{slug}.ipynb").read_bytes() == \
            (exercise / f"{slug}.ipynb").read_bytes()
        chapter = nbformat.read(str(site / "book" / f"{slug}.ipynb"), 4)
        assert any(c.get("outputs") for c in chapter.cells if c.cell_type == "code"), \
            f"book/{slug}.ipynb in the site is not the executed chapter"


def test_every_chapter_links_its_exercise_relatively():
    for chapter in sorted((ROOT / "book").glob("[0-9][0-9]-*.ipynb")):
        slug = chapter.stem
        text = "\n".join(c.source for c in nbformat.read(str(chapter), 4).cells
                         if c.cell_type == "markdown")
        targets = re.findall(r"\]\(([^)\s]*exercises/[^)\s]*)\)", text)
        assert targets == [f"../exercises/{slug}/{slug}.ipynb"], (chapter.name, targets)
