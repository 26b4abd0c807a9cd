"""Shared pytest fixtures for the Descent test suite (keep this file small and general)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts"  # gitignored: screenshots, build logs, timings

# The README's `make book` flags: execute every notebook, warnings are errors, nitpicky.
BOOK_FLAGS = ("--all", "--warningiserror", "--nitpick", "--keep-going")


@dataclass(frozen=True)
class BuiltBook:
    html: Path        # the built site (index.html, book/*.html, _static/ …)
    seconds: float    # wall-clock time of the clean build (nan when reused)
    log: str          # the builder's output


@pytest.hookimpl(tryfirst=True)    # before pytest-xdist's hook, which reads the marks
def pytest_collection_modifyitems(config, items):
    """Groups for ``make test``'s two workers (pytest-xdist, ``--dist loadgroup``): a group
    runs whole on one worker, so a costly module or session fixture is built once. The book
    (``built_book``) is one group; nbgrader's round trip (``course``, graded lazily per
    assignment) one group per assignment; test_grading.py, whose fixture costs nothing, one
    per test; every other module one group."""
    for item in items:
        module = item.nodeid.split("::")[0]
        if "built_book" in item.fixturenames:
            group = "book"
        elif "course" in item.fixturenames:
            params = getattr(item, "callspec", None)
            params = params.params if params else {}
            assignment = params.get("assignment") or getattr(params.get("mistake"),
                                                             "assignment", "")
            group = f"{module}::{assignment}"
        elif module == "tests/test_grading.py":
            group = item.nodeid
        else:
            group = module
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root (also the book's root)."""
    return REPO


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> BuiltBook:
    """The book, built once per session from scratch and strictly, into a temporary folder.

    Set ``DESCENT_BOOK_HTML=<dir>`` to reuse an existing build (e.g. ``_build/html`` right
    after ``make book``) instead of building again.
    """
    reuse = os.environ.get("DESCENT_BOOK_HTML")
    if reuse:
        html = Path(reuse).resolve()
        if not (html / "index.html").is_file():
            pytest.fail(f"DESCENT_BOOK_HTML={reuse} holds no index.html")
        return BuiltBook(html, float("nan"), "")
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    command = [str(jupyter_book), "build", *BOOK_FLAGS, "--path-output", str(out), str(REPO)]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    log = result.stdout + result.stderr
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "book-build.log").write_text(f"$ {' '.join(command)}\n{log}")
    if result.returncode != 0:
        pytest.fail(f"the strict book build failed (exit {result.returncode}); "
                    f"last lines:\n{log[-4000:]}")
    return BuiltBook(out / "_build" / "html", seconds, log)


@pytest.fixture(scope="module")
def one_thread():
    """These tensors have a few dozen entries: threads only add overhead (and torch's first
    multi-threaded vector op in a process can differ, pytorch#188792). Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
