"""``make student-release``: what students receive, and nothing of the instructor's side.

The target runs once per session on the book the session built (``built_book``; set
``DESCENT_BOOK_HTML`` to reuse ``_build/html``) into a temporary folder. Then:

- the folder is the site (every page of the book), ``exercises/`` exactly as released, each
  chapter as a notebook, the wheel and a README; the zip holds the same files;
- no solution, hidden test or corpus: no instructor folder or ``.cell`` file, no solution or
  hidden-test marker in a notebook or page, no solution of any source notebook in a notebook,
  page or text file, and no hidden-test line anywhere, the wheel's modules included (those
  modules hold the reference implementations the checks compare with, as the book shows them:
  that is the library, not a solution notebook);
- the wheel, installed with ``--no-deps`` into a fresh virtual environment that borrows the
  project's site-packages for torch and the rest (a ``.pth`` line: the project's editable
  ``descent`` is not seen, as the test checks), runs every released exercise as a student
  does (exploration cells included): with the solution's answers every cell runs and every
  visible test passes; blank, every visible test fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest
from nbgrader_helpers import ALL_ASSIGNMENTS, hidden_lines, solution_answers, source

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)[ \t]*### END SOLUTION", re.S)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def release(built_book, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student") / "student"
    proc = subprocess.run(["make", "--no-print-directory", "student-release",
                           f"BOOK_HTML={built_book.html}", f"STUDENT_DIR={out}", f"VENV={VENV}",
                           "STAMP="], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def wheel_of(folder: Path) -> Path:
    (wheel,) = folder.glob("descent-*-py3-none-any.whl")
    return wheel


def texts(folder: Path):
    """(name, text) of every file of the release, and of every file inside the wheel."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as zf:
                for name in zf.namelist():
                    yield f"{path.name}/{name}", zf.read(name).decode(errors="replace")
        elif path.suffix not in {".png", ".svg", ".woff", ".woff2", ".ttf", ".ico", ".inv"}:
            yield str(path.relative_to(folder)), path.read_text(errors="replace")


def test_the_release_holds_the_book_the_exercises_and_the_wheel(release, built_book):
    pages = {p.relative_to(built_book.html) for p in built_book.html.rglob("*.html")}
    assert pages and pages <= {p.relative_to(release) for p in release.rglob("*.html")}
    for assignment in ALL_ASSIGNMENTS:
        rel = Path("exercises") / assignment / f"{assignment}.ipynb"
        assert (release / rel).read_bytes() == (ROOT / rel).read_bytes()
        assert (release / "book" / f"{assignment}.ipynb").is_file()
    with zipfile.ZipFile(wheel_of(release)) as zf:
        names = set(zf.namelist())
    modules = {f"descent/grading/assignments/a{a[:2]}_{a[3:].replace('-', '_')}.py"
               for a in ALL_ASSIGNMENTS}
    assert modules <= names, modules - names
    assert "descent/__init__.py" in names and not any(n.startswith(("tests/", "make/"))
                                                      for n in names)
    assert "descent-0" in (release / "README.md").read_text()
    (archive,) = release.parent.glob("descent-student-*.zip")
    with zipfile.ZipFile(archive) as zf:
        zipped = {n.split("/", 1)[1] for n in zf.namelist() if not n.endswith("/")}
    assert zipped == {str(p.relative_to(release)) for p in release.rglob("*") if p.is_file()}


def test_the_release_leaks_nothing(release):
    instructor = {"solutions", "make", "tests", "submissions", "submitted", "autograded",
                  "feedback", "gradebook.db", ".git", "benchmarks"}
    wrong = [str(p.relative_to(release)) for p in release.rglob("*")
             if instructor & set(p.relative_to(release).parts) or p.suffix == ".cell"]
    assert not wrong, wrong
    hidden = {line for a in ALL_ASSIGNMENTS for line in hidden_lines(a)}
    solutions = {textwrap.dedent(m).strip() for a in ALL_ASSIGNMENTS
                 for cell in source(a).cells for m in SOLUTION.findall(cell.source)}
    solutions = {s for s in solutions if "\n" in s}      # whole solutions, not one-liners
    problems = []
    for name, text in texts(release):
        escaped = text.replace("\\n", "\n").replace('\\"', '"')
        if not name.endswith(".py"):             # the library documents the markers' syntax
            problems += [f"{name}: {m}" for m in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS")
                         if m in text]
        problems += [f"{name}: hidden test {line!r}" for line in hidden
                     if line in text or line in escaped]
        if name.endswith(".py"):
            # The checks compare with the library's reference implementations (that is how a
            # visible test can explain a mistake), so a reference may equal a solution there.
            continue
        flat = re.sub(r"\s+", " ", escaped)
        problems += [f"{name}: solution {s[:60]!r}" for s in solutions
                     if re.sub(r"\s+", " ", s) in flat]
    assert solutions and hidden and not problems, problems


RUNNER = r'''
import json, os, sys, traceback
import descent
assert descent.__file__.startswith(sys.prefix), f"descent from {descent.__file__}"
nb = json.load(open(sys.argv[1]))
answers = json.loads(sys.argv[2])
namespace, results, others = {"__name__": "__main__"}, {}, {}
for cell in nb["cells"]:
    if cell["cell_type"] != "code":
        continue
    meta = cell["metadata"].get("nbgrader", {})
    code = answers.get(meta.get("grade_id"), "".join(cell["source"]))
    try:
        exec(compile(code, meta.get("grade_id", "cell"), "exec"), namespace)
        error = None
    except BaseException as err:
        error = f"{type(err).__name__}: {err}"
    if meta.get("grade"):
        results[meta["grade_id"]] = error
    elif error:
        others[meta.get("grade_id", "cell")] = error
print("RESULTS " + json.dumps({"tests": results, "others": others}))
'''


@pytest.fixture(scope="module")
def student_python(release, tmp_path_factory) -> Path:
    """A fresh venv with the release's wheel (no deps) and the project's site-packages."""
    env_dir = tmp_path_factory.mktemp("student-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"], capture_output=True,
                             text=True, check=True).stdout.strip()
    Path(purelib, "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--no-index", str(wheel_of(release))], check=True)
    return python


def run_exercise(python: Path, notebook: Path, answers: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_EXECUTION"}
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    proc = subprocess.run([str(python), "-c", RUNNER, str(notebook), json.dumps(answers)],
                          cwd=notebook.parent, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.rsplit("RESULTS ", 1)[1])


@pytest.mark.parametrize("assignment", ALL_ASSIGNMENTS)
def test_visible_tests_pass_on_solutions_and_fail_blank_from_the_wheel(student_python, release,
                                                                       assignment):
    notebook = release / "exercises" / assignment / f"{assignment}.ipynb"
    answers, code = solution_answers(assignment)
    solved = run_exercise(student_python, notebook, {k: answers[k] for k in code})
    assert solved["tests"] and all(e is None for e in solved["tests"].values()), solved
    assert not solved["others"], f"cells that fail for a student: {solved['others']}"
    blank = run_exercise(student_python, notebook, {})["tests"]
    assert set(blank) == set(solved["tests"]) and all(blank.values()), blank
