"""The hostile and broken submissions, graded as one class: each gets its status and score.

Each ``tests/submissions/bad/<case>.cell`` is one student of ``05-adaptive`` (15 autograded
points: AdaGrad 2, RMSprop 2, Adam 3, AdamW 2, ablation 2, training run 2, fair comparison
2): the solution, with one answer cell replaced by the code below the header and/or the
notebook damaged::

    # case: what the student did
    # attack: the class of attack it stands for (issue 9), if it is one
    # cell: answer-adam                the answer cell whose source is the code below
    # notebook: delete test-adam       malformed-json | missing | delete/edit/markdown <cell>
    #                                  | attach <MB>
    # status: graded                   the expected status
    # score: 12                        the expected score, or none (blank)
    # control: 15                      the score the same code gets run in this process
    # reason: allclose                 text the status's reason must contain
    # part: test-adam                  a part whose message must contain …
    # message: bias correction         … this text

An attack is written to *score* when it succeeds: it answers right only if it could read the
solutions, see a hidden test, reach a socket, start 200 processes…, so its expected score
says that it failed. ``control`` says it succeeds where nothing confines it (this process,
as a plain kernel would run it): the attack is real, and the confinement is what stops it.

``{course}``, ``{repo}``, ``{socket}``, ``{abstract}``, ``{port}`` and ``{marker}`` in a case's
code are this run's paths, listeners and marker. Two correct students grade beside them.
Seven students are graded again (a regrade changes nothing), the good students get every point,
no listener is reached, no process or file of a student outlives the run, and nothing of
the grader's environment appears in any result.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest
from nbgrader_helpers import ROOT, SUBMISSIONS, read_cell_file, run_from, source, student_notebook

from descent.grading.classroom import Limits, grade_class
from descent.grading.confine import probe

ASSIGNMENT = "05-adaptive"
AUTOGRADED = 15
GOOD = ("good-1", "good-2")
# Small limits keep the looping and memory-hungry cases short.
LIMITS = Limits(notebook_seconds=120, cell_seconds=15, memory_mb=1024)
SECRET = f"descent-secret-{uuid.uuid4().hex}"          # in the grader's environment only
# Regraded to show a regrade changes nothing: a spread of statuses, not the whole class.
REGRADED = ["good-1", "always-equal", "deleted-test-cell", "missing-notebook", "os-exit",
            "patched-checks", "sockets"]


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
CONFINED = probe().namespaces


@dataclass
class Listeners:
    """What an attack may try to reach on the grader's machine; each must stay silent."""

    folder: Path
    marker: str = ""

    def __post_init__(self):
        self.marker = f"descent-attack-{uuid.uuid4().hex[:12]}"
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(str(self.folder / "grader.sock"))
        self.abstract = socket.socket(socket.AF_UNIX)
        self.abstract.bind(f"\0{self.marker}")
        self.tcp = socket.create_server(("127.0.0.1", 0))
        for s in (self.unix, self.abstract, self.tcp):
            s.listen(8)
            s.setblocking(False)

    def substitutions(self, course: Path) -> dict[str, str]:
        return {"{course}": str(course), "{repo}": str(ROOT),
                "{socket}": str(self.folder / "grader.sock"), "{abstract}": self.marker,
                "{port}": str(self.tcp.getsockname()[1]), "{marker}": self.marker}

    def reached(self) -> list[str]:
        got = []
        for s in (self.unix, self.abstract, self.tcp):
            try:
                s.accept()
                got.append(str(s.getsockname()))
            except BlockingIOError:
                pass
        return got

    def close(self):
        for s in (self.unix, self.abstract, self.tcp):
            s.close()


def _code(case: Case, substitutions: dict[str, str]) -> str:
    code = case.code
    for key, value in substitutions.items():
        code = code.replace(key, value)
    return code


def _notebook(case: Case | None, substitutions: dict[str, str]):
    header = case.header if case else {}
    answers = {header["cell"]: _code(case, substitutions)} if "cell" in header else {}
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
    if action == "attach":
        written = next(c for c in nb.cells if c.cell_type == "markdown"
                       and c.metadata.get("nbgrader", {}).get("solution"))
        written["attachments"] = {"big.png": {"image/png": "A" * (int(target) * 2**20)}}
        written.source += "\n\n![a big picture](attachment:big.png)"
    return nb, action


def _submit(course: Path, student: str, case: Case | None, substitutions: dict) -> None:
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    nb, action = _notebook(case, substitutions)
    if action == "missing":
        return
    text = nbformat.writes(nb)
    path = folder / f"{ASSIGNMENT}.ipynb"
    path.write_text(text[: len(text) // 2] if action == "malformed-json" else text)


def _fingerprint(course: Path) -> dict[str, str]:
    """sha256 of every submitted file: no student may change another's."""
    return {str(p.relative_to(course)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((course / "submitted").rglob("*")) if p.is_file()}


def _comparable(results: dict[str, dict]) -> dict[str, dict]:
    """Results without what legitimately varies between runs (timings, the marker)."""
    return {student: {k: v for k, v in r.items() if k not in ("timings", "notebook")}
            for student, r in results.items()}


def _alive_with(marker: str) -> list[int]:
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if any(marker in str(arg) for arg in (process.info["cmdline"] or [])):
            found.append(process.info["pid"])
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if not CONFINED:
        pytest.skip(f"this machine cannot confine student code: {probe().note}")
    tmp = tmp_path_factory.mktemp("class")
    course = tmp / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    listeners = Listeners(tmp)
    subs = listeners.substitutions(course)
    for case in CASES:
        _submit(course, case.name, case, subs)
    for student in GOOD:
        _submit(course, student, None, subs)
    before = _fingerprint(course)
    os.environ["DESCENT_TEST_SECRET"] = SECRET           # the workers inherit it; students must not
    try:
        first = grade_class(course, ASSIGNMENT, workers=2, limits=LIMITS, progress=False,
                            report=False)
        after_first = _fingerprint(course)
        again = grade_class(course, ASSIGNMENT, workers=2, limits=LIMITS, progress=False,
                            report=False, students=REGRADED)
    finally:
        os.environ.pop("DESCENT_TEST_SECRET", None)
    host = {"reached": listeners.reached(), "alive": _alive_with(listeners.marker),
            "left": [p for p in (Path("/dev/shm") / listeners.marker,
                                 Path("/tmp") / listeners.marker) if p.exists()]}
    listeners.close()
    yield course, first, again, before, after_first, host


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_bad_submission_gets_its_status_and_score(graded, case):
    _, results, _, _, _, _ = graded
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


CONTROLS = [c for c in CASES if "control" in c.header]


@pytest.mark.parametrize("case", CONTROLS, ids=lambda c: c.name)
def test_each_attack_succeeds_where_nothing_confines_it(case, tmp_path):
    """The same code, run in this process as a plain kernel would run the notebook (hidden
    tests in it), gets the control score: the attack works, the confinement stops it."""
    listeners = Listeners(tmp_path)
    os.environ["DESCENT_TEST_SECRET"] = SECRET
    try:
        nb, _ = _notebook(case, listeners.substitutions(ROOT))
        for cell in nb.cells:                         # the source's test cells, hidden tests in
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code":
                cell.source = next(c.source for c in source(ASSIGNMENT).cells
                                   if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
        results = run_from(nb)
    finally:
        os.environ.pop("DESCENT_TEST_SECRET", None)
        listeners.close()
    points = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
              for c in source(ASSIGNMENT).cells if c.metadata.get("nbgrader", {}).get("grade")
              and c.cell_type == "code"}
    score = sum(points[gid] for gid, error in results.items() if error is None)
    assert score == float(case.header["control"]), results


def test_no_attack_reached_or_outlived_anything_on_the_grader_s_machine(graded):
    _, results, _, _, _, host = graded
    assert host["reached"] == [], "a student reached a socket of the grader's machine"
    assert host["alive"] == [], "a student's process outlived its job"
    assert host["left"] == [], "a student's file outlived its job"
    assert SECRET not in json.dumps(results), "the grader's environment reached a result"


def test_the_good_students_get_every_point_beside_the_bad_ones(graded):
    _, results, _, _, _, _ = graded
    for student in GOOD:
        assert results[student]["status"] == "graded", results[student]["reason"]
        assert results[student]["score"] == AUTOGRADED


def test_grading_again_gives_identical_results(graded):
    _, first, again, _, _, _ = graded
    assert set(again) == set(REGRADED)
    assert _comparable({s: first[s] for s in REGRADED}) == _comparable(again)


def test_results_and_stored_notebooks_are_bounded(graded):
    course, results, _, _, _, _ = graded
    for student, result in results.items():
        assert len(result["reason"]) <= 700, student
        for part in result["parts"].values():
            assert len(part["message"]) <= 2100, student
    for path in (course / "autograded").rglob("*.ipynb"):
        assert path.stat().st_size < 2**20, path
    assert not (course / "autograded" / "big-attachment").exists()


def test_no_submission_and_no_gradebook_was_touched_by_a_student(graded):
    course, results, _, before, after, _ = graded
    assert before == after
    with sqlite3.connect(course / "gradebook.db") as db:      # a valid database, every student
        students = {row[0] for row in db.execute("select id from student")}
    assert set(results) <= students


def test_the_statuses_are_in_the_export_beside_the_scores(graded):
    course, results, _, _, _, _ = graded
    statuses = json.loads((course / "grades" / f"{ASSIGNMENT}.json").read_text())["students"]
    for student, result in results.items():
        assert statuses[student]["status"] == result["status"]
        assert statuses[student]["score"] == result["score"]
