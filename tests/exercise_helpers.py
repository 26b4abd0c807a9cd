"""The tests every exercise file (``test_exercise_NN.py``) runs on its own assignment.

The same checks as ``test_grading.py`` and ``test_nbgrader_roundtrip.py`` do for 01 and 02,
for one assignment at a time, so that each file stays within its time budget:

- in this process: the solution passes every grade cell, and each submission of the mistake
  corpus (``tests/submissions/NN-slug/*.cell``) fails exactly the grade cells its header lists,
  with the header's feedback text in each message (a correct rewrite lists none);
- through nbgrader, on a temporary course: ``generate_assignment`` reproduces the committed
  ``exercises/``, which leaks no solution, hidden test or written answer; ``validate`` passes on
  the solution and ``validate --invert`` fails every test of the blank; autograding gives the
  solution full marks, the blank zero, and a few corpus entries exactly their points; the
  feedback names the mistake and never shows hidden-test source.

The in-process runner sets ``NBGRADER_EXECUTION`` as nbgrader does, so the notebooks skip
their exploration cells, and skips the grade cells *before* the replaced answer cell (code
runs top to bottom, so their result cannot change): it is the corpus that dominates the time.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
from nbgrader_helpers import (
    ROOT,
    Mistake,
    cell_scores,
    make_course,
    max_scores,
    nbgrader,
    notebook_path,
    submit,
)


def source(assignment: str):
    return nbformat.read(str(notebook_path(ROOT / "solutions", assignment)), 4)


def run_from(nb, first_answer: str | None = None) -> dict[str, str | None]:
    """Like ``nbgrader_helpers.run_in_process``; grade cells above ``first_answer`` are
    skipped (reported as passing, which the solution run checks)."""
    namespace: dict = {"__name__": "__main__"}
    results: dict[str, str | None] = {}
    reached = first_answer is None
    saved = os.environ.get("NBGRADER_EXECUTION")
    os.environ["NBGRADER_EXECUTION"] = "autograde"
    try:
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            meta = cell.metadata.get("nbgrader", {})
            reached = reached or meta.get("grade_id") == first_answer
            if meta.get("grade") and not reached:
                results[meta["grade_id"]] = None
                continue
            try:
                exec(compile(cell.source, f"<cell {meta.get('grade_id')}>", "exec"), namespace)
                error = None
            except Exception as err:  # noqa: BLE001 - a failing cell is a result here
                error = f"{type(err).__name__}: {err}"
            if meta.get("grade"):
                results[meta["grade_id"]] = error
    finally:
        if saved is None:
            os.environ.pop("NBGRADER_EXECUTION", None)
        else:
            os.environ["NBGRADER_EXECUTION"] = saved
    return results


def check_mistake(mistake: Mistake) -> None:
    results = run_from(mistake.notebook(), mistake.cell)
    failed = {k for k, err in results.items() if err}
    assert failed == set(mistake.loses), results
    for part in mistake.loses:
        assert mistake.feedback in results[part], results[part]
        assert results[part].startswith("CheckFailed: [Part "), results[part]


def hidden_lines(assignment: str) -> list[str]:
    lines = []
    for cell in source(assignment).cells:
        for region in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS",
                                 cell.source, re.S):
            lines += [line.strip() for line in region.splitlines() if line.strip()]
    return lines


def build_course(tmp: Path, assignment: str, mistakes: list[Mistake]) -> Path:
    """Release, submit (solution, blank, the mistakes), autograde, feedback."""
    course = make_course(tmp, (assignment,))
    nbgrader(course, "generate_assignment", assignment, "--force")
    released = nbformat.read(str(notebook_path(course / "exercises", assignment)), 4)
    submit(course, "solution", assignment, source(assignment))
    submit(course, "blank", assignment, released)
    for mistake in mistakes:
        submit(course, mistake.name, assignment, mistake.notebook())
    nbgrader(course, "autograde", assignment, "--force")
    nbgrader(course, "generate_feedback", assignment, "--force")
    return course


def comparable(nb) -> list:
    return [(c.cell_type, c.source, json.dumps(c.metadata.get("nbgrader", {}), sort_keys=True))
            for c in nb.cells]


def check_release(course: Path, assignment: str) -> None:
    committed = nbformat.read(str(notebook_path(ROOT / "exercises", assignment)), 4)
    regenerated = nbformat.read(str(notebook_path(course / "exercises", assignment)), 4)
    assert comparable(committed) == comparable(regenerated), (
        f"exercises/{assignment} drifted from solutions/: run `make release "
        f"ASSIGNMENT={assignment}`")
    assert sorted(p.name for p in (ROOT / "exercises" / assignment).iterdir()) == \
        sorted(p.name for p in (course / "exercises" / assignment).iterdir())
    text = notebook_path(ROOT / "exercises", assignment).read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    for line in hidden_lines(assignment):
        assert json.dumps(line)[1:-1] not in text, f"hidden test leaked: {line}"
    for cell in source(assignment).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "markdown":
            assert cell.source.splitlines()[0] not in text, "a written answer leaked"


def check_validate(course: Path, assignment: str) -> None:
    ok = nbgrader(course, "validate", str(notebook_path(course / "solutions", assignment)))
    assert "Success! Your notebook passes all the tests." in ok.stdout, ok.stdout
    inverted = nbgrader(course, "validate", "--invert",
                        str(notebook_path(course / "exercises", assignment)))
    assert "Success! The notebook does not pass any tests." in inverted.stdout, inverted.stdout


def check_scores(course: Path, assignment: str, mistakes: list[Mistake]) -> None:
    full = max_scores(source(assignment))
    scores = cell_scores(course, assignment)
    assert scores["solution"] == full
    assert {k: v for k, v in scores["blank"].items() if k in full} == {k: 0 for k in full}
    for mistake in mistakes:
        expected = {k: (0 if k in mistake.loses else v) for k, v in full.items()}
        assert {k: v for k, v in scores[mistake.name].items() if k in full} == expected, \
            mistake.name


def check_feedback(course: Path, assignment: str, mistakes: list[Mistake]) -> None:
    hidden = hidden_lines(assignment)
    for mistake in mistakes:
        path = course / "feedback" / mistake.name / assignment / f"{assignment}.html"
        html = path.read_text()
        if mistake.loses:
            assert mistake.feedback in html.replace("&#39;", "'").replace("&quot;", '"'), \
                f"feedback of {mistake.name} lacks {mistake.feedback!r}"
        for line in hidden:
            assert line not in html, f"feedback shows hidden test source: {line}"
        assert "BEGIN HIDDEN TESTS" not in html
        assert "Traceback (most recent call last)" not in html    # (pygments CSS names "Traceback")
