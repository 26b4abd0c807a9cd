"""Build what students receive: the book, the exercises and the ``descent`` package, in one folder.

``make student-release`` runs this after making sure the built book is fresh. The folder
(``dist/student/`` by default) is at once

- the static site to publish (any static host: its root is the book's ``index.html``), with the
  released notebooks in ``exercises/`` and each chapter as a notebook in ``book/`` (the build
  puts them there, see ``book/_ext/descent_home.py``), and
- the hand-out: ``descent-<version>-py3-none-any.whl`` (the library with the checks the visible
  tests call), ``README.md`` for students, zipped next to the folder as
  ``descent-student-<version>.zip``.

It holds nothing of the instructor's side: no ``solutions/``, no generator (``make/``), no test
or mistake corpus (``tests/``), no gradebook or submission. The wheel is built from a copy of
``lib/`` alone. Before it returns, the script checks the folder for solution and hidden-test
markers and for those folders; ``tests/test_student_release.py`` checks more (every hidden-test
line, every solution, the wheel installed in a fresh environment passing the visible tests).

Usage: ``python make/student_release.py --check-book _build/html`` (exit 1 when the book is
older than its sources or lacks the exercises), or
``python make/student_release.py --book _build/html --out dist/student``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What the book is built from: a change to any of these makes a built book stale.
BOOK_INPUTS = ("_config.yml", "_toc.yml", "book", "exercises", "lib/descent")
NEVER = {"solutions", "make", "tests", "submissions", "submitted", "autograded", "feedback",
         "gradebook.db", "benchmarks", ".venv", ".git"}
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")

STUDENT_README = """\
# Descent: optimization for deep learning (student release {version})

This folder is the course: the book, the assignments, and the `descent` package their tests
use. You do not need anything else from the course's repository.

- **The book**: open `index.html` in a browser (it works offline), or read it where your
  instructor published it. Each chapter ends with a link to its assignment.
- **The assignments**: `exercises/NN-slug/NN-slug.ipynb`, one per chapter. The chapter itself
  is also a notebook, `book/NN-slug.ipynb`, if you want to run its code.

## Set up once (Python 3.11 or newer)

```bash
python3 -m venv .venv
.venv/bin/pip install descent-{version}-py3-none-any.whl jupyterlab
```

(On Windows: `.venv\\Scripts\\pip install ...`.) This installs `descent` with the exact
PyTorch version the grader uses, NumPy and Matplotlib.

## Work on an assignment

```bash
.venv/bin/jupyter lab
```

Open `exercises/NN-slug/NN-slug.ipynb`, fill in every cell that says `YOUR CODE HERE` (or
`YOUR ANSWER HERE`) and run the test cell under each answer: it checks your code against the
course's reference on a few inputs and, when it finds a mistake, says which. The grader runs
the same checks on inputs you do not see. Hand in the notebook file as your instructor says,
under its own name.
"""


def version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _files(path: Path):
    if path.is_file():
        yield path
    elif path.is_dir():
        yield from (p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                    and ".ipynb_checkpoints" not in p.parts)


def book_problems(html: Path) -> list[str]:
    """Why the built book in ``html`` cannot be released as it is ([] when it can)."""
    index = html / "index.html"
    if not index.is_file():
        return [f"no built book in {html}"]
    built = min(index.stat().st_mtime, (html / "searchindex.js").stat().st_mtime
                if (html / "searchindex.js").exists() else index.stat().st_mtime)
    newer = sorted(str(p.relative_to(ROOT)) for name in BOOK_INPUTS for p in _files(ROOT / name)
                   if p.stat().st_mtime > built)
    problems = [f"{html} is older than {', '.join(newer[:5])}"
                f"{' …' if len(newer) > 5 else ''}"] if newer else []
    for notebook in _files(ROOT / "exercises"):
        rel = notebook.relative_to(ROOT)
        copy = html / rel
        if not copy.is_file() or copy.read_bytes() != notebook.read_bytes():
            problems.append(f"{html} does not publish {rel} as it is now")
    return problems


def build_wheel(dest: Path, readme: str) -> Path:
    """The wheel of ``descent`` from a copy of lib/ and pyproject.toml, nothing else."""
    with tempfile.TemporaryDirectory(prefix="descent-wheel-") as tmp:
        stage = Path(tmp) / "descent"
        shutil.copytree(ROOT / "lib", stage / "lib",
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
        shutil.copy(ROOT / "pyproject.toml", stage)
        (stage / "README.md").write_text(readme)
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                               "--no-build-isolation", "--no-cache-dir", "--wheel-dir",
                               str(Path(tmp) / "wheel"), str(stage)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"building the wheel failed:\n{proc.stdout}\n{proc.stderr}")
        (wheel,) = (Path(tmp) / "wheel").glob("descent-*.whl")
        return Path(shutil.copy(wheel, dest))


def leaks(folder: Path) -> list[str]:
    """Instructor material in ``folder``: forbidden names, or markers in a notebook or page."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if NEVER & set(rel.parts) or path.suffix == ".cell":
            found.append(f"{rel}: instructor material")
        elif path.is_file() and path.suffix in {".ipynb", ".html", ".md", ".txt", ".js"}:
            text = path.read_text(errors="replace")
            found += [f"{rel}: {m}" for m in MARKERS if m in text]
    return found


def release(html: Path, out: Path) -> Path:
    problems = book_problems(html)
    if problems:
        raise SystemExit("the built book is stale: run `make book` first\n  "
                         + "\n  ".join(problems))
    v = version()
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(html, out, ignore=shutil.ignore_patterns(".buildinfo", ".doctrees"))
    shutil.rmtree(out / "exercises", ignore_errors=True)
    shutil.copytree(ROOT / "exercises", out / "exercises",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    readme = STUDENT_README.format(version=v)
    (out / "README.md").write_text(readme)
    (out / ".nojekyll").write_text("")      # GitHub Pages: serve _static/ and _images/ too
    build_wheel(out, readme)
    found = leaks(out)
    if found:
        raise SystemExit("the student release would leak instructor material:\n  "
                         + "\n  ".join(found))
    archive = out.parent / f"descent-student-{v}.zip"
    top = f"descent-student-{v}"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(out.rglob("*")):
            if path.is_file():
                zf.write(path, f"{top}/{path.relative_to(out)}")
    return archive


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check-book", metavar="HTML", type=Path,
                        help="only check that the built book in HTML is fresh")
    parser.add_argument("--book", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "student")
    args = parser.parse_args(argv)
    if args.check_book:
        problems = book_problems(args.check_book.resolve())
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    out = args.out.resolve()
    archive = release(args.book.resolve(), out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"student release: {os.path.relpath(out)}/ ({size / 1e6:.1f} MB), "
          f"{os.path.relpath(archive)} ({archive.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
