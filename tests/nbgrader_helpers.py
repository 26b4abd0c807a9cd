"""Run the nbgrader pipeline on a temporary copy of the course, for the grading tests.

``Course`` is the one nbgrader course the round trip (``test_nbgrader_roundtrip.py``) grades
all assignments in; the in-process runners (``run_in_process``, ``run_from``) and
``check_mistake`` serve the per-assignment corpus tests (``test_grading.py``,
``test_exercise_NN.py``). ``check_mistake`` also grades each submission as the class grader
does (``grade_in_process``: the student's side behind a door, the checks on the trusted side);
both verdicts must agree.

A course directory is ``nbgrader_config.py`` plus ``solutions/`` copied into a temporary
folder; every nbgrader command runs there, with the project's virtual environment first on
PATH (nbgrader calls ``alembic`` and ``jupyter`` by name) and ``OMP_NUM_THREADS=1`` as the
instructor commands set it.

The mistake corpus lives in ``tests/submissions/<assignment>/<mistake>.cell``: a header of
``# key: value`` lines, then the code that replaces one answer cell::

    # mistake: steps along +g
    # cell: answer-step          (the answer cell whose source is replaced)
    # loses: test-step           (the grade cells that must fail; comma-separated)
    # feedback: against* the gradient   (text the feedback must show)
    # named: as if                (optional: text only the class grader's verdict shows, the
    #                              diagnosis search's name, descent.grading.search)
    def gd_step(theta, grad, lr):
        return theta + lr * grad
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from descent.grading import trusted
from descent.grading.door import LocalDoor
from descent.grading.gpu_check import read_cell_file  # noqa: F401 - the corpus format's reader

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SUBMISSIONS = Path(__file__).parent / "submissions"
ALL_ASSIGNMENTS = ("01-problem", "02-gradient-descent", "03-sgd", "04-momentum", "05-adaptive",
                   "06-schedules", "07-implementation", "08-practice")


def env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def make_course(tmp: Path, assignments=ALL_ASSIGNMENTS) -> Path:
    """A fresh course directory under ``tmp`` with the given source assignments."""
    course = tmp / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    for name in assignments:
        shutil.copytree(ROOT / "solutions" / name, course / "solutions" / name)
    return course


def nbgrader(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "nbgrader"), *args], cwd=course, env=env(),
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"nbgrader {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def notebook_path(base: Path, assignment: str) -> Path:
    return base / assignment / f"{assignment}.ipynb"


def source(assignment: str):
    """The source (solution) notebook of an assignment, as committed."""
    return nbformat.read(str(notebook_path(ROOT / "solutions", assignment)), 4)


def submit(course: Path, student: str, assignment: str, nb) -> Path:
    """Put notebook ``nb`` where nbgrader looks for a student's submission."""
    path = notebook_path(course / "submitted" / student, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def cell_scores(course: Path, assignment: str) -> dict[str, dict[str, float]]:
    """{student: {grade_id: autograded score}} read from the gradebook."""
    from nbgrader.api import Gradebook

    out: dict[str, dict[str, float]] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(assignment):
            scores = out.setdefault(sub.student_id, {})
            for nb in sub.notebooks:
                for grade in nb.grades:
                    if grade.auto_score is not None:
                        scores[grade.name] = grade.auto_score
    return out


def max_scores(source_nb) -> dict[str, float]:
    """{grade_id: points} of the autograded (code) grade cells of a source notebook."""
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
            for c in source_nb.cells
            if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"}


SOLUTION_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)


def solution_answers(assignment: str) -> tuple[dict[str, str], list[str]]:
    """{grade_id: source} of every solution cell of the source notebook, markers removed
    (what a correct student writes), and the grade_ids of those that are code (the others
    are written answers)."""
    cells = [c for c in source(assignment).cells
             if c.metadata.get("nbgrader", {}).get("solution")]
    answers = {c.metadata["nbgrader"]["grade_id"]: SOLUTION_MARKER.sub("", c.source)
               for c in cells}
    return answers, [c.metadata["nbgrader"]["grade_id"] for c in cells if c.cell_type == "code"]


def fill(released, answers: dict[str, str], deleted: str | None = None):
    """A copy of the released notebook with ``answers`` (grade_id → source) in place and the
    cell ``deleted`` removed: what a student hands in."""
    nb = nbformat.from_dict(released)                # a deep copy
    nb.cells = [c for c in nb.cells
                if deleted is None or c.metadata.get("nbgrader", {}).get("grade_id") != deleted]
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return nb


def student_notebook(assignment: str, answers: dict[str, str] | None = None, *,
                     deleted: str | None = None):
    """The released notebook with the solution's answers, then ``answers`` over them."""
    released = nbformat.read(str(notebook_path(ROOT / "exercises", assignment)), 4)
    return fill(released, {**solution_answers(assignment)[0], **(answers or {})}, deleted)


@dataclass(frozen=True)
class Mistake:
    assignment: str
    name: str
    cell: str
    loses: tuple[str, ...]
    feedback: str
    code: str
    named: str = ""

    def notebook(self):
        """The solution notebook with this mistake's answer cell."""
        nb = nbformat.read(str(notebook_path(ROOT / "solutions", self.assignment)), 4)
        cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == self.cell]
        assert len(cells) == 1, f"{self.name}: no answer cell {self.cell!r}"
        cells[0].source = self.code
        return nb


def corpus(assignment: str) -> list[Mistake]:
    out = []
    for path in sorted((SUBMISSIONS / assignment).glob("*.cell")):
        header, code = read_cell_file(path)
        out.append(Mistake(assignment, path.stem, header["cell"],
                           tuple(s.strip() for s in header["loses"].split(",") if s.strip()),
                           header["feedback"], code, header.get("named", "")))
    return out


def run_in_process(nb) -> dict[str, str | None]:
    """Execute a notebook's code cells in this process, as a kernel would, in one namespace:
    what a student's own Jupyter (and ``make autograde``) does, checks calling the student's
    code directly.

    Returns ``{grade_id: None if the grade cell passed, else "Error: message"}`` for every
    grade cell. nbgrader gives a code grade cell its points exactly when it raises nothing, so
    this predicts the autograded score without the cost of a kernel (~3 s each here); the
    nbgrader round trip checks that prediction on a few submissions.
    """
    return _execute(nb)


def run_from(nb, first_answer: str | None = None) -> dict[str, str | None]:
    """Like ``run_in_process``, with ``NBGRADER_EXECUTION`` set as nbgrader sets it (the
    notebooks skip their exploration cells); grade cells above ``first_answer`` are skipped
    (reported as passing, which the solution run checks): code runs top to bottom, so their
    result cannot change."""
    saved = os.environ.get("NBGRADER_EXECUTION")
    os.environ["NBGRADER_EXECUTION"] = "autograde"
    try:
        return _execute(nb, first_answer)
    finally:
        if saved is None:
            os.environ.pop("NBGRADER_EXECUTION", None)
        else:
            os.environ["NBGRADER_EXECUTION"] = saved


def _execute(nb, first_answer: str | None = None) -> dict[str, str | None]:
    namespace: dict = {"__name__": "__main__"}
    results: dict[str, str | None] = {}
    reached = first_answer is None
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
    return results


def grade_in_process(nb, assignment: str) -> trusted.TrustedResult:
    """The class grader's verdict on ``nb``: the grade cells of the source notebook run on the
    trusted side, the student's cells behind a door in this same process (``LocalDoor``:
    the same pickles and plain data as the confined process, without its isolation)."""
    with LocalDoor() as door:
        return trusted.grade_notebook(nb, source(assignment), door)


def run_and_grade(nb, assignment: str, first_answer: str | None = None, *,
                  as_graded: bool = True):
    """(the in-process run's results, as a student's Jupyter sees them; the class grader's
    verdict). Grade cells skipped before ``first_answer`` are left out of both."""
    results = run_from(nb, first_answer) if as_graded or first_answer else run_in_process(nb)
    verdict = grade_in_process(nb, assignment)
    ran = set(results) if not first_answer else _ran_from(nb, first_answer)
    verdict.parts = {gid: part for gid, part in verdict.parts.items() if gid in ran}
    return results, verdict


def _ran_from(nb, first_answer: str) -> set[str]:
    ran, reached = set(), False
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        reached = reached or meta.get("grade_id") == first_answer
        if reached and meta.get("grade") and cell.cell_type == "code":
            ran.add(meta["grade_id"])
    return ran


def assert_trusted_agrees(results: dict[str, str | None], verdict) -> None:
    """The class grader's verdict of every part that ran equals the student's own run."""
    assert not verdict.concerns, verdict.concerns
    for gid, part in verdict.parts.items():
        assert (part.score == part.points) == (results[gid] is None), (gid, results[gid],
                                                                      part.message)


def check_mistake(mistake: Mistake, *, from_answer: bool = True) -> None:
    """The submission fails exactly the grade cells its header lists, each with the header's
    feedback text in a ``CheckFailed: [Part …`` message, in the student's own run and in the
    class grader's verdict alike. ``from_answer``: the in-process run starts at the replaced
    answer cell (``run_from``), else it runs every cell (``run_in_process``)."""
    nb = mistake.notebook()
    results, verdict = run_and_grade(nb, mistake.assignment,
                                     mistake.cell if from_answer else None)
    assert_trusted_agrees(results, verdict)
    failed = {k for k, err in results.items() if err}
    assert failed == set(mistake.loses), results
    for part in mistake.loses:
        assert mistake.feedback in results[part], results[part]
        assert results[part].startswith("CheckFailed: [Part "), results[part]
        assert mistake.feedback in verdict.parts[part].message, verdict.parts[part].message
    if mistake.named:
        assert any(mistake.named in verdict.parts[part].message for part in mistake.loses), \
            [verdict.parts[part].message for part in mistake.loses]


def hidden_lines(assignment: str) -> list[str]:
    """Every non-blank line inside a hidden-test region of the source notebook, except lines
    the released notebook shows anyway (07 repeats a visible check among its hidden ones)."""
    hidden = []
    for cell in source(assignment).cells:
        for region in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS",
                                 cell.source, re.S):
            hidden += [line.strip() for line in region.splitlines() if line.strip()]
    visible = {line.strip() for cell in source(assignment).cells
               if cell.metadata.get("nbgrader", {}).get("grade")     # the test cells
               for line in re.sub(r"### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS", "",
                                  cell.source, flags=re.S).splitlines()}
    return [line for line in hidden if line not in visible]


def comparable(nb) -> list:
    """A notebook's cells without volatile fields (outputs are empty in both)."""
    return [(c.cell_type, c.source, json.dumps(c.metadata.get("nbgrader", {}), sort_keys=True))
            for c in nb.cells]


class Course:
    """One temporary nbgrader course holding every assignment, graded lazily.

    ``solutions/`` of all assignments is copied once; the first ``grade(assignment, ...)``
    releases that assignment (``generate_assignment``), submits the students given (name →
    notebook; ``blank`` is added as the released notebook, as downloaded) and runs one
    ``autograde`` and one ``generate_feedback`` for all of them. Later calls return the
    cached ``{student: {grade_id: score}}``. Lazy, so a run that deselects an assignment
    (``-m "not slow"``, ``-k``) does not pay for its kernels.
    """

    def __init__(self, tmp: Path, assignments=ALL_ASSIGNMENTS):
        self.path = make_course(tmp, assignments)
        self._scores: dict[str, dict[str, dict[str, float]]] = {}

    def grade(self, assignment: str, students) -> dict[str, dict[str, float]]:
        if assignment not in self._scores:
            nbgrader(self.path, "generate_assignment", assignment, "--force")
            released = nbformat.read(str(notebook_path(self.path / "exercises", assignment)), 4)
            for student, nb in {**students(), "blank": released}.items():
                submit(self.path, student, assignment, nb)
            nbgrader(self.path, "autograde", assignment, "--force")
            nbgrader(self.path, "generate_feedback", assignment, "--force")
            self._scores[assignment] = cell_scores(self.path, assignment)
        return self._scores[assignment]

    def feedback(self, student: str, assignment: str) -> str:
        return (self.path / "feedback" / student / assignment / f"{assignment}.html").read_text()
