"""The bad-submission corpus, graded as a class: every case gets its expected status and score.

Each ``tests/submissions/bad/<case>.cell`` is one student of ``05-adaptive`` (13 autograded
points: AdaGrad 2, RMSprop 2, Adam 3, AdamW 2, ablation 2, training run 2): the solution,
with one answer cell replaced by the code below the header and/or the notebook damaged::

    # case: what the student did
    # cell: answer-adam                the answer cell whose source is the code below
    # notebook: delete test-adam       malformed-json | missing | delete/edit/markdown <cell>
    # status: flagged                  the expected status
    # score: 10                        the expected (trusted) score, or none (blank)
    # reason: allclose                 text the status's reason must contain
    # part: test-adam                  a part whose trusted message must contain …
    # message: bias correction         … this text
    # needs: isolation                 graded only where kernels run in namespaces

Two correct students grade beside them. The class is graded twice: the results must be
identical (a regrade changes nothing; that parallel equals serial and Dask is checked on a
smaller class in ``test_classroom.py``), the good students must get every point, and nothing
outside a student's own sandbox may change.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbgrader_helpers import ROOT, SUBMISSIONS, read_cell_file, student_notebook

from descent.grading.classroom import Limits, grade_class
from descent.grading.classroom.course import probe_isolation

ASSIGNMENT = "05-adaptive"
AUTOGRADED = 13
GOOD = ("good-1", "good-2")
# Small limits keep the looping and memory-hungry cases short; a correct 05 runs in ~10 s.
LIMITS = Limits(notebook_seconds=120, cell_seconds=15, memory_mb=3072)


@dataclass(frozen=True)
class Case:
    name: str
    header: dict[str, str]
    code: str

    @property
    def score(self) -> float | None:
        return None if self.header["score"] == "none" else float(self.header["score"])


def bad_corpus() -> list[Case]:
    return [Case(path.stem, *read_cell_file(path))
            for path in sorted((SUBMISSIONS / "bad").glob("*.cell"))]


CASES = bad_corpus()
ISOLATED = probe_isolation().namespaces


def _submit(course: Path, student: str, case: Case | None) -> None:
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    header = case.header if case else {}
    answers = {header["cell"]: case.code.replace("{course}", str(course))} \
        if "cell" in header else {}
    action, _, target = header.get("notebook", "").partition(" ")
    nb = student_notebook(ASSIGNMENT, answers, deleted=target if action == "delete" else None)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") != target:
            continue
        if action == "edit":
            cell.source = "pass  # the test is fine, trust me"
        elif action == "markdown":
            cell.cell_type = "markdown"
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    path = folder / f"{ASSIGNMENT}.ipynb"
    if action == "missing":
        return
    text = nbformat.writes(nb)
    path.write_text(text[: len(text) // 2] if action == "malformed-json" else text)


def _fingerprint(course: Path) -> dict[str, str]:
    """sha256 of every submitted file: no student may change another's."""
    return {str(p.relative_to(course)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((course / "submitted").rglob("*")) if p.is_file()}


def _comparable(results: dict[str, dict]) -> dict[str, dict]:
    """Results without what legitimately varies between runs (timings)."""
    return {student: {k: v for k, v in r.items() if k not in ("timings", "notebook")}
            for student, r in results.items()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = tmp_path_factory.mktemp("class") / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    for case in CASES:
        if case.header.get("needs") != "isolation" or ISOLATED:
            _submit(course, case.name, case)
    for student in GOOD:
        _submit(course, student, None)
    before = _fingerprint(course)
    parallel = grade_class(course, ASSIGNMENT, workers=2, limits=LIMITS, progress=False,
                           report=False)
    after_parallel = _fingerprint(course)
    again = grade_class(course, ASSIGNMENT, workers=2, limits=LIMITS, progress=False,
                        report=False)
    return course, parallel, again, before, after_parallel


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_bad_submission_gets_its_status_and_score(graded, case):
    _, results, _, _, _ = graded
    if case.header.get("needs") == "isolation" and not ISOLATED:
        pytest.skip("user namespaces are not permitted here: a kernel can reach the course "
                    "(the README's fallback: grade in a container)")
    got = results[case.name]
    assert got["status"] == case.header["status"], (case.header["case"], got["status"],
                                                     got["reason"], got.get("parts"))
    assert got["score"] == case.score, (got["score"], got["reason"], got.get("parts"))
    if "reason" in case.header:
        assert case.header["reason"].lower() in got["reason"].lower(), got["reason"]
    if "part" in case.header:
        part = got["parts"][case.header["part"]]
        assert part["score"] == 0, part
        assert case.header.get("message", "").lower() in part["message"].lower(), part
    if got["status"] in ("failed", "timeout", "memory"):
        assert got["reason"], "a blank score always comes with a reason"


def test_the_good_students_get_every_point_beside_the_bad_ones(graded):
    _, results, _, _, _ = graded
    for student in GOOD:
        assert results[student]["status"] == "graded", results[student]["reason"]
        assert results[student]["score"] == AUTOGRADED


def test_grading_again_gives_identical_results(graded):
    _, first, again, _, _ = graded
    assert _comparable(first) == _comparable(again)


def test_no_submission_and_no_gradebook_was_touched_by_a_student(graded):
    course, results, _, before, after = graded
    assert before == after
    with sqlite3.connect(course / "gradebook.db") as db:      # a valid database, every student
        students = {row[0] for row in db.execute("select id from student")}
    assert set(results) <= students


def test_the_statuses_are_in_the_export_beside_the_scores(graded):
    course, results, _, _, _ = graded
    statuses = json.loads((course / "grades" / f"{ASSIGNMENT}.json").read_text())["students"]
    for student, result in results.items():
        assert statuses[student]["status"] == result["status"]
        assert statuses[student]["score"] == result["score"]
