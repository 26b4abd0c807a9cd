"""The nbgrader round trip on a temporary course: release, validate, autograde, feedback.

One course directory per test module (building it is the expensive part): both assignments
are released with ``generate_assignment --force``; then, per assignment, these students
submit: ``solution`` (the source notebook), ``blank`` (the released notebook, as
downloaded), ``deleted`` (the solution with a grade cell deleted) and a few entries of the
mistake corpus (``tests/submissions``; the whole corpus runs in-process in
``test_grading.py``, a kernel per submission costs ~3 s here). One ``autograde`` and one
``generate_feedback`` call per assignment grade them all. The last test walks the
instructor commands of ``make/instructor.mk`` over the sample class.
"""

from __future__ import annotations

import json
import re

import nbformat
import pytest
from nbgrader_helpers import (
    ASSIGNMENTS,
    ROOT,
    cell_scores,
    corpus,
    make_course,
    max_scores,
    nbgrader,
    notebook_path,
    submit,
)

# Through real kernels: one diagnosis, one in-place/aliasing and one correct rewrite each.
ROUNDTRIP = {"01-problem": ("grad-no-factor-2", "numgrad-mutates-x", "correct-rewritten"),
             "02-gradient-descent": ("step-delegates-torch", "run-aliasing",
                                     "correct-step-copy")}
MISTAKES = [m for a in ASSIGNMENTS for m in corpus(a) if m.name in ROUNDTRIP[a]]
DELETED = {"01-problem": "test-grad", "02-gradient-descent": "test-run"}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("nbgrader"))
    for assignment in ASSIGNMENTS:
        nbgrader(course, "generate_assignment", assignment, "--force")
        source = nbformat.read(str(notebook_path(course / "solutions", assignment)), 4)
        released = nbformat.read(str(notebook_path(course / "exercises", assignment)), 4)
        submit(course, "solution", assignment, source)
        submit(course, "blank", assignment, released)
        for mistake in MISTAKES:
            if mistake.assignment == assignment:
                submit(course, mistake.name, assignment, mistake.notebook())
        source.cells = [c for c in source.cells
                        if c.metadata.get("nbgrader", {}).get("grade_id") != DELETED[assignment]]
        submit(course, "deleted", assignment, source)
        nbgrader(course, "autograde", assignment, "--force")
        nbgrader(course, "generate_feedback", assignment, "--force")
    return course


@pytest.fixture(scope="module")
def scores(course):
    return {a: cell_scores(course, a) for a in ASSIGNMENTS}


def points(assignment: str) -> dict[str, float]:
    return max_scores(nbformat.read(str(notebook_path(ROOT / "solutions", assignment)), 4))


def feedback(course, student: str, assignment: str) -> str:
    path = course / "feedback" / student / assignment / f"{assignment}.html"
    return path.read_text()


def hidden_lines(assignment: str) -> list[str]:
    """Every non-blank line inside a hidden-test region of the source notebook."""
    nb = nbformat.read(str(notebook_path(ROOT / "solutions", assignment)), 4)
    lines = []
    for cell in nb.cells:
        for region in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS",
                                 cell.source, re.S):
            lines += [line.strip() for line in region.splitlines() if line.strip()]
    return lines


def comparable(nb) -> list:
    """A notebook's cells without volatile fields (outputs are empty in both)."""
    return [(c.cell_type, c.source, json.dumps(c.metadata.get("nbgrader", {}), sort_keys=True))
            for c in nb.cells]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_committed_exercises_equal_regenerated(course, assignment):
    committed = nbformat.read(str(notebook_path(ROOT / "exercises", assignment)), 4)
    regenerated = nbformat.read(str(notebook_path(course / "exercises", assignment)), 4)
    assert comparable(committed) == comparable(regenerated), (
        f"exercises/{assignment} drifted from solutions/: run `make release "
        f"ASSIGNMENT={assignment}`")
    committed_files = sorted(p.name for p in (ROOT / "exercises" / assignment).iterdir())
    assert committed_files == sorted(p.name for p in (course / "exercises" / assignment).iterdir())


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_exercises_leak_nothing(assignment):
    text = notebook_path(ROOT / "exercises", assignment).read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    for line in hidden_lines(assignment):
        assert json.dumps(line)[1:-1] not in text, f"hidden test leaked: {line}"
    source = nbformat.read(str(notebook_path(ROOT / "solutions", assignment)), 4)
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "markdown":
            assert cell.source.splitlines()[0] not in text, "a written answer leaked"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_validate_passes_on_solutions_and_fails_every_test_on_blanks(course, assignment):
    ok = nbgrader(course, "validate", str(notebook_path(course / "solutions", assignment)))
    assert "Success! Your notebook passes all the tests." in ok.stdout, ok.stdout
    inverted = nbgrader(course, "validate", "--invert",
                        str(notebook_path(course / "exercises", assignment)))
    assert "Success! The notebook does not pass any tests." in inverted.stdout, inverted.stdout


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_scores_full_marks_and_blank_scores_zero(scores, assignment):
    full = points(assignment)                  # the autograded (code) grade cells
    autograded = {k: v for k, v in scores[assignment]["blank"].items() if k in full}
    assert scores[assignment]["solution"] == full
    assert autograded == {k: 0 for k in full}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_a_deleted_grade_cell_is_restored_and_graded(scores, assignment):
    full = points(assignment)
    assert {k: v for k, v in scores[assignment]["deleted"].items() if k in full} == full


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: f"{m.assignment}/{m.name}")
def test_mistake_loses_exactly_its_part(scores, mistake):
    full = points(mistake.assignment)
    expected = {k: (0 if k in mistake.loses else v) for k, v in full.items()}
    got = scores[mistake.assignment][mistake.name]
    assert {k: v for k, v in got.items() if k in full} == expected


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: f"{m.assignment}/{m.name}")
def test_feedback_names_the_mistake_and_hides_hidden_tests(course, mistake):
    html = feedback(course, mistake.name, mistake.assignment)
    if mistake.loses:
        assert mistake.feedback in html.replace("&#39;", "'").replace("&quot;", '"'), \
            f"feedback of {mistake.name} lacks {mistake.feedback!r}"
        assert "CheckFailed" in html
    for line in hidden_lines(mistake.assignment):
        assert line not in html, f"feedback shows hidden test source: {line}"
    assert "BEGIN HIDDEN TESTS" not in html and "Cell In[" not in html
    assert "most recent call last" not in html


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
