"""The nbgrader round trip of every assignment, on one temporary course: release, validate,
autograde, feedback.

One course directory for the session (building it is the expensive part), holding all
assignments; each is released with ``generate_assignment --force`` and graded by one
``autograde`` and one ``generate_feedback`` call, the first time a test needs it. These
students submit: ``solution`` (the source notebook), ``blank`` (the released notebook, as
downloaded), ``deleted`` (01 and 02: the solution with a grade cell deleted) and a few
entries of the mistake corpus (``tests/submissions``; the whole corpus runs in-process in
``test_grading.py``, a kernel per submission costs ~3-10 s here). 07 and 08 are marked
``slow`` (their kernels are); a run that deselects them never grades them.
The last test walks the instructor commands of ``make/instructor.mk`` over the sample class.
"""

from __future__ import annotations

import json

import nbformat
import pytest
from nbgrader_helpers import (
    ALL_ASSIGNMENTS,
    ROOT,
    Course,
    comparable,
    corpus,
    hidden_lines,
    max_scores,
    nbgrader,
    notebook_path,
    source,
)

# Through real kernels: 01 and 02 one diagnosis, one in-place/aliasing and one correct rewrite
# each; the later assignments one diagnosis each (the feedback must show it).
ROUNDTRIP = {"01-problem": ("grad-no-factor-2", "numgrad-mutates-x", "correct-rewritten"),
             "02-gradient-descent": ("step-delegates-torch", "run-aliasing",
                                     "correct-step-copy", "correct-edge-warns"),
             "03-sgd": ("train-in-place",),
             "04-momentum": ("nag-old-buffer",),
             "05-adaptive": ("adam-no-bias-correction",),
             "06-schedules": ("sgdr-restart-strict",),
             "07-implementation": ("decay-coupled",),
             "08-practice": ("accum-no-zero-grad",)}
DELETED = {"01-problem": "test-grad", "02-gradient-descent": "test-run"}
# Hidden-test text that must show neither in the released notebook nor in any feedback.
HIDDEN_MARKERS = {"07-implementation": ("seeds=[3, 4]",), "08-practice": ("seeds=[6, 7]",)}
SLOW = ("07-implementation", "08-practice")      # their kernels are the slowest


def _param(assignment, value=None):
    marks = (pytest.mark.slow,) if assignment in SLOW else ()
    return pytest.param(assignment if value is None else value, marks=marks,
                        id=assignment if value is None else f"{assignment}/{value.name}")


ASSIGNMENT_PARAMS = [_param(a) for a in ALL_ASSIGNMENTS]
MISTAKES = [m for a in ALL_ASSIGNMENTS for m in corpus(a) if m.name in ROUNDTRIP[a]]
MISTAKE_PARAMS = [_param(m.assignment, m) for m in MISTAKES]


def students(assignment: str) -> dict:
    """The submissions (besides the blank) of an assignment: name → notebook."""
    out = {"solution": source(assignment)}
    out.update((m.name, m.notebook()) for m in MISTAKES if m.assignment == assignment)
    if assignment in DELETED:
        nb = source(assignment)
        nb.cells = [c for c in nb.cells
                    if c.metadata.get("nbgrader", {}).get("grade_id") != DELETED[assignment]]
        out["deleted"] = nb
    return out


@pytest.fixture(scope="session")
def course(tmp_path_factory) -> Course:
    return Course(tmp_path_factory.mktemp("nbgrader"))


def scores(course: Course, assignment: str) -> dict[str, dict[str, float]]:
    return course.grade(assignment, lambda: students(assignment))


def points(assignment: str) -> dict[str, float]:
    return max_scores(source(assignment))        # the autograded (code) grade cells


@pytest.mark.parametrize("assignment", ASSIGNMENT_PARAMS)
def test_committed_exercises_equal_regenerated(course, assignment):
    scores(course, assignment)                   # released (and graded) on first use
    committed = notebook_path(ROOT / "exercises", assignment)
    regenerated = notebook_path(course.path / "exercises", assignment)
    assert comparable(nbformat.read(str(committed), 4)) == comparable(
        nbformat.read(str(regenerated), 4)), (
        f"exercises/{assignment} drifted from solutions/: run `make release "
        f"ASSIGNMENT={assignment}`")
    committed_files = sorted(p.name for p in committed.parent.iterdir())
    assert committed_files == sorted(p.name for p in regenerated.parent.iterdir())


@pytest.mark.parametrize("assignment", ALL_ASSIGNMENTS)
def test_exercises_leak_nothing(assignment):
    text = notebook_path(ROOT / "exercises", assignment).read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
                   *HIDDEN_MARKERS.get(assignment, ())):
        assert marker not in text
    for line in hidden_lines(assignment):
        assert json.dumps(line)[1:-1] not in text, f"hidden test leaked: {line}"
    for cell in source(assignment).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "markdown":
            assert cell.source.splitlines()[0] not in text, "a written answer leaked"


@pytest.mark.parametrize("assignment", ASSIGNMENT_PARAMS)
def test_validate_passes_on_solutions_and_fails_every_test_on_blanks(course, assignment):
    scores(course, assignment)
    ok = nbgrader(course.path, "validate",
                  str(notebook_path(course.path / "solutions", assignment)))
    assert "Success! Your notebook passes all the tests." in ok.stdout, ok.stdout
    inverted = nbgrader(course.path, "validate", "--invert",
                        str(notebook_path(course.path / "exercises", assignment)))
    assert "Success! The notebook does not pass any tests." in inverted.stdout, inverted.stdout


@pytest.mark.parametrize("assignment", ASSIGNMENT_PARAMS)
def test_solution_scores_full_marks_and_blank_scores_zero(course, assignment):
    full, got = points(assignment), scores(course, assignment)
    assert got["solution"] == full
    assert {k: v for k, v in got["blank"].items() if k in full} == {k: 0 for k in full}


@pytest.mark.parametrize("assignment", DELETED)
def test_a_deleted_grade_cell_is_restored_and_graded(course, assignment):
    full = points(assignment)
    assert {k: v for k, v in scores(course, assignment)["deleted"].items() if k in full} == full


@pytest.mark.parametrize("mistake", MISTAKE_PARAMS)
def test_mistake_loses_exactly_its_part(course, mistake):
    full = points(mistake.assignment)
    expected = {k: (0 if k in mistake.loses else v) for k, v in full.items()}
    got = scores(course, mistake.assignment)[mistake.name]
    assert {k: v for k, v in got.items() if k in full} == expected


@pytest.mark.parametrize("mistake", MISTAKE_PARAMS)
def test_feedback_names_the_mistake_and_hides_hidden_tests(course, mistake):
    """The diagnosis is shown; hidden-test source and tracebacks are not. (The page's CSS
    names pygments' "Generic.Traceback" class, so the marker is Python's traceback header.)"""
    scores(course, mistake.assignment)
    raw = course.feedback(mistake.name, mistake.assignment)
    html = raw.replace("&#39;", "'").replace("&quot;", '"')
    if mistake.loses:
        assert mistake.feedback in html, f"feedback of {mistake.name} lacks {mistake.feedback!r}"
        assert "CheckFailed" in html
    for line in hidden_lines(mistake.assignment):
        assert line not in raw and line not in html, f"feedback shows hidden test source: {line}"
    for marker in ("BEGIN HIDDEN TESTS", "Cell In[", "----> ",
                   *HIDDEN_MARKERS.get(mistake.assignment, ())):
        assert marker not in html
    assert "Traceback (most recent call last)" not in html and "most recent call last" not in html


@pytest.mark.parametrize("assignment", ["02-gradient-descent"])
def test_a_correct_answer_that_warns_keeps_its_points_and_sees_the_warning(course, assignment):
    """nbgrader scores a grade cell that writes to stderr 0: the student's warnings are shown
    on stdout instead (by the check's verdict, and by the kernel for a direct call in a test
    cell), so a correct answer keeps its points and the student still reads the warning."""
    full = points(assignment)
    got = scores(course, assignment)["correct-edge-warns"]
    assert {k: v for k, v in got.items() if k in full} == full
    html = course.feedback("correct-edge-warns", assignment)
    assert "Your code warned" in html and "bisecting between 0 and" in html


def test_instructor_commands_grade_the_sample_class(tmp_path):
    """make release / sample / autograde / feedback / export, as the README walks through."""
    import csv
    import shutil
    import subprocess

    from nbgrader_helpers import BIN, env

    for name in ("Makefile", "nbgrader_config.py"):
        shutil.copy(ROOT / name, tmp_path)
    shutil.copytree(ROOT / "make", tmp_path / "make")
    shutil.copytree(ROOT / "solutions" / "01-problem", tmp_path / "solutions" / "01-problem")
    shutil.copytree(ROOT / "tests" / "submissions" / "sample",
                    tmp_path / "tests" / "submissions" / "sample")
    venv = BIN.parent
    for target in ("release", "sample", "autograde", "feedback", "export"):
        proc = subprocess.run(["make", target, "ASSIGNMENT=01-problem", f"VENV={venv}", "STAMP="],
                              cwd=tmp_path, env=env(), capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"make {target}:\n{proc.stdout}\n{proc.stderr}"
    rows = {r["student_id"]: r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    total = sum(points("01-problem").values())
    assert float(rows["alice"]["raw_score"]) == total
    assert float(rows["bob"]["raw_score"]) == total - 1 - 2      # loss (1) and classify (2)
    html = (tmp_path / "feedback" / "bob" / "01-problem" / "01-problem.html").read_text()
    assert "n times the reference" in html and "BEGIN HIDDEN TESTS" not in html
