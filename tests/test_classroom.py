"""descent.grading.classroom: a class graded in parallel, each submission confined, with statuses.

``class4`` (solution, blank release, one known mistake, malformed JSON) is graded once per
module; parallel, Dask, regrades, the CLI, feedback and hand grading are checked on it. The
hostile corpus is ``test_grading_class.py``; the confinement's pieces are ``test_door.py``.
:func:`grade_notebooks` is the helper: a temp course, the given students' notebooks, graded.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import nbgrader_helpers as nbh  # noqa: E402

from descent.grading import confine  # noqa: E402
from descent.grading.classroom import Limits, NotConfined, grade_class  # noqa: E402
from descent.grading.export import export_csv  # noqa: E402

ASSIGNMENT = "01-problem"
LIMITS = Limits(notebook_seconds=180, cell_seconds=60)
MAX_SCORE = sum(nbh.max_scores(nbh.source(ASSIGNMENT)).values())


def with_answer(cell_id: str, code: str, keep: bool = True):
    """The solution notebook whose answer cell ``cell_id`` runs ``code`` first (then its own
    solution when ``keep``)."""
    nb = nbh.source(ASSIGNMENT)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == cell_id]
    cell.source = code + ("\n" + cell.source if keep else "")
    return nb


def grade_notebooks(tmp: Path, notebooks: dict, assignment: str = ASSIGNMENT, **kwargs):
    """Grade a class in a fresh temp course: {student: notebook node, raw text written as the
    .ipynb, or {file name: text} for a submission folder}. Returns (course, results)."""
    tmp.mkdir(parents=True, exist_ok=True)
    course = nbh.make_course(tmp, [assignment])
    for student, submission in notebooks.items():
        put(course, student, submission, assignment)
    kwargs = {"workers": 1, "limits": LIMITS, "progress": False, "report": False, **kwargs}
    return course, grade_class(course, assignment, **kwargs)


def put(course: Path, student: str, submission, assignment: str = ASSIGNMENT) -> None:
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(submission, nbformat.NotebookNode):
        nbh.submit(course, student, assignment, submission)
    elif isinstance(submission, dict):
        for name, text in submission.items():
            (folder / name).write_text(text)
    elif isinstance(submission, str):
        (folder / f"{assignment}.ipynb").write_text(submission)
    else:
        raise TypeError(f"a submission is a notebook, its raw text or {{name: text}}, "
                        f"got {type(submission).__name__}")


def without_timings(results: dict) -> dict:
    return {s: {k: v for k, v in r.items() if k != "timings"} for s, r in results.items()}


def released():
    return nbformat.read(str(nbh.notebook_path(nbh.ROOT / "exercises", ASSIGNMENT)), 4)


# -- a class of four: statuses, scores, parallel ≡ serial ≡ Dask ------------------------------

MISTAKE = next(m for m in nbh.corpus(ASSIGNMENT) if m.name == "loss-sum")
CLASS4 = ("blank", "malformed", "mistake", "solution")


@pytest.fixture(scope="module")
def class4(tmp_path_factory):
    course, results = grade_notebooks(tmp_path_factory.mktemp("class4"), {
        "solution": nbh.source(ASSIGNMENT), "blank": released(),
        "mistake": MISTAKE.notebook(), "malformed": '{"cells": [ not json',
    })
    return course, results


def test_class_statuses_and_trusted_scores(class4):
    course, results = class4
    assert sorted(results) == list(CLASS4)
    assert results["solution"]["status"] == "graded"
    assert results["solution"]["score"] == results["solution"]["max_score"] == MAX_SCORE
    assert results["blank"]["status"] == "graded" and results["blank"]["score"] == 0
    lost = sum(results["mistake"]["parts"][p]["points"] for p in MISTAKE.loses)
    assert results["mistake"]["status"] == "graded"
    assert results["mistake"]["score"] == MAX_SCORE - lost
    for part in MISTAKE.loses:
        assert MISTAKE.feedback in results["mistake"]["parts"][part]["message"]
    assert results["malformed"]["status"] == "failed"
    assert results["malformed"]["score"] is None
    assert results["malformed"]["reason"].startswith(f"{ASSIGNMENT}.ipynb is not a valid")
    # The gradebook holds the trusted scores; the statuses file every student.
    scores = nbh.cell_scores(course, ASSIGNMENT)
    assert sum(scores["mistake"].values()) == MAX_SCORE - lost
    assert "malformed" not in scores
    statuses = json.loads((course / "grades" / f"{ASSIGNMENT}.json").read_text())
    assert {s: r["status"] for s, r in statuses["students"].items()} == \
        {s: r["status"] for s, r in results.items()}


def test_feedback_notebook_shows_trusted_verdicts_only(class4):
    course, results = class4
    nb = nbformat.reads(results["mistake"]["notebook"], 4)
    hidden = nbh.hidden_lines(ASSIGNMENT)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type != "code":
            continue
        text = json.dumps(cell.outputs)
        assert not any(line in text for line in hidden), grade_id
        if grade_id in MISTAKE.loses:
            assert [o.output_type for o in cell.outputs] == ["error"]
            assert MISTAKE.feedback in cell.outputs[0].evalue
    copied = course / "autograded" / "mistake" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert copied.read_text() == results["mistake"]["notebook"]
    nbh.nbgrader(course, "generate_feedback", ASSIGNMENT, "--force")
    html = (course / "feedback" / "mistake" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert MISTAKE.feedback in html.replace("&#39;", "'")


def test_two_workers_equal_one(class4):
    course, serial = class4
    parallel = grade_class(course, ASSIGNMENT, workers=2, limits=LIMITS, students=list(CLASS4),
                           progress=False, report=False)
    assert without_timings(parallel) == without_timings(serial)


def test_no_more_worker_processes_than_submissions(tmp_path, monkeypatch):
    """A class of one is graded in this process, whatever the number of workers asked for
    (worker processes would each pay a start and the imports, for nothing)."""
    import descent.grading.classroom as classroom

    def no_pool(workers):
        raise AssertionError(f"a pool of {workers} workers was started for one submission")

    monkeypatch.setattr(classroom, "local_pool", no_pool)
    _, results = grade_notebooks(tmp_path, {"solution": nbh.source(ASSIGNMENT)}, workers=4)
    assert results["solution"]["status"] == "graded"
    assert results["solution"]["score"] == MAX_SCORE


def test_the_first_job_here_takes_the_student_side_started_while_the_template_is_built(
        tmp_path, monkeypatch):
    """One student's side per job graded here, no more: the first started during the
    template's nbgrader run (its imports overlap it), and graded as a new one would be."""
    import descent.grading.classroom as classroom

    started, template_built = [], []
    real_init, real_build = confine.ConfinedDoor.__init__, classroom.build_template

    def counted(door, *args, **kwargs):
        started.append(time.monotonic())
        real_init(door, *args, **kwargs)

    def build_template(*args, **kwargs):
        out = real_build(*args, **kwargs)
        template_built.append(time.monotonic())
        return out

    confine.probe()                       # as in a run after the first: the probe is cached
    monkeypatch.setattr(confine.ConfinedDoor, "__init__", counted)
    monkeypatch.setattr(classroom, "build_template", build_template)
    _, results = grade_notebooks(tmp_path, {"a": nbh.source(ASSIGNMENT),
                                            "b": MISTAKE.notebook()})
    assert len(started) == 2 and started[0] < template_built[0] < started[1]
    assert results["a"]["score"] == MAX_SCORE
    assert results["b"]["score"] == MAX_SCORE - sum(results["b"]["parts"][p]["points"]
                                                    for p in MISTAKE.loses)


class _FakePool:
    """A pool of threads standing for worker processes: it grades with ``grade`` and says so;
    ``broken_after``: submissions accepted before it raises as a pool whose process died."""

    def __init__(self, grade, broken_after=None):
        import concurrent.futures

        self.grade, self.left = grade, broken_after
        self.threads = concurrent.futures.ThreadPoolExecutor(1)

    def submit(self, fn, job):
        from concurrent.futures.process import BrokenProcessPool

        if self.left is not None:
            if self.left == 0:
                raise BrokenProcessPool("a worker died")
            self.left -= 1
        return self.threads.submit(self.grade, job, "pool")


def _scheduled(monkeypatch, make_pool, n=12, seconds=0.02):
    """{student: where graded} of n fake jobs run by two workers: this process and the pool
    that ``make_pool(grade)`` returns."""
    import descent.grading.classroom as classroom

    here_began = threading.Event()

    def grade(job, where="here"):
        if where == "here":
            here_began.set()
        else:         # the pool waits for this process's first job: a thread alone could
            here_began.wait(timeout=10)   # otherwise take every job before it began one
        time.sleep(seconds)
        return {"status": "graded", "where": where}

    monkeypatch.setattr(classroom, "grade_submission", grade)
    pool = make_pool(grade)
    jobs = [classroom.Job(ASSIGNMENT, f"s{i:02}", b"", b"") for i in range(n)]
    done = []                     # run in a thread: a job gone missing shows as a hang
    run = threading.Thread(target=lambda: done.extend(classroom.run_jobs(jobs, 2, pool=pool)),
                           daemon=True)
    run.start()
    run.join(timeout=60)
    assert not run.is_alive(), "the run never ended: a job went missing"
    assert sorted(student for student, _ in done) == [job.student for job in jobs]
    return {student: result.get("where", result["status"]) for student, result in done}


def test_this_process_grades_alongside_the_pool_and_every_job_once(monkeypatch):
    where = _scheduled(monkeypatch, _FakePool)
    assert set(where.values()) == {"here", "pool"}


def test_a_pool_that_breaks_leaves_its_jobs_to_this_process(monkeypatch):
    where = _scheduled(monkeypatch, lambda grade: _FakePool(grade, broken_after=2))
    assert list(where.values()).count("pool") <= 2
    assert set(where.values()) <= {"here", "pool"}


def test_a_job_whose_worker_dies_is_failed_and_the_others_graded(monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    died = []

    def dies_once(grade):
        def grade_or_die(job, where):
            if not died:
                died.append(job.student)
                raise BrokenProcessPool("a worker died")
            return grade(job, where)
        return _FakePool(grade_or_die)

    where = _scheduled(monkeypatch, dies_once, seconds=0.05)
    assert [s for s, w in where.items() if w == "failed"] == died
    assert set(where.values()) == {"here", "pool", "failed"}


def test_dask_cluster_equals_local(class4):
    distributed = pytest.importorskip("distributed")
    course, serial = class4
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = grade_class(course, ASSIGNMENT, scheduler=client, limits=LIMITS,
                             students=list(CLASS4), progress=False, report=False)
    assert without_timings(remote) == without_timings(serial)


def test_failed_regrade_leaves_no_old_score(class4, tmp_path):
    course, results = class4
    put(course, "retry", nbh.source(ASSIGNMENT))
    grade_class(course, ASSIGNMENT, workers=1, limits=LIMITS, students=["retry"],
                progress=False, report=False)
    put(course, "retry", "not a notebook")
    again = grade_class(course, ASSIGNMENT, workers=1, limits=LIMITS, students=["retry"],
                        progress=False, report=False)
    assert again["retry"]["status"] == "failed"
    rows = {r["student_id"]: r for r in csv.DictReader(open(export_csv(course,
                                                                       tmp_path / "g.csv")))}
    assert rows["retry"]["score"] == "" and rows["retry"]["status"] == "failed"
    assert rows["retry"]["reason"].startswith(f"{ASSIGNMENT}.ipynb is not a valid notebook")
    assert not (course / "autograded" / "retry" / ASSIGNMENT).exists()
    # The rest of the class is untouched by the regrade of one student.
    assert float(rows["solution"]["score"]) == results["solution"]["score"]
    assert rows["malformed"]["score"] == "" and rows["malformed"]["status"] == "failed"
    # nbgrader's own export entry point gives the same rows.
    nbh.nbgrader(course, "export", "--exporter",
                 "descent.grading.export.StatusCsvExporter", "--to", str(tmp_path / "n.csv"))
    assert (tmp_path / "n.csv").read_text() == (tmp_path / "g.csv").read_text()


def test_cli_report_and_export(class4, tmp_path):
    course, _ = class4
    cli = [sys.executable, "-m", "descent.grading.classroom"]
    report = subprocess.run([*cli, "report", ASSIGNMENT, "--course", str(course)],
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert "malformed" in report.stdout and "not a valid notebook" in report.stdout
    export = subprocess.run([*cli, "export", "--course", str(course), "--to",
                             str(tmp_path / "grades.csv")], capture_output=True, text=True,
                            timeout=120)
    assert export.returncode == 0, export.stderr
    rows = {r["student_id"]: r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert rows["malformed"]["status"] == "failed" and rows["malformed"]["score"] == ""
    assert float(rows["solution"]["raw_score"]) == MAX_SCORE


# -- where student code cannot be confined; runs side by side; nothing left behind ------------

def test_a_machine_that_cannot_confine_refuses_unless_told_unsafe(tmp_path, monkeypatch):
    refused = confine.Confinement(False, False, None, note="cannot confine: unshare: "
                                                          "Operation not permitted")
    unsafe = confine.Confinement(False, False, None, True, note="UNSAFE: no confinement")

    def probe(unsafe_=False, ahead=None):
        return unsafe if unsafe_ else refused

    monkeypatch.setattr(confine, "probe", probe)
    monkeypatch.setattr("descent.grading.classroom.probe", probe)
    with pytest.raises(NotConfined, match="--unsafe"):
        grade_notebooks(tmp_path / "a", {"solution": nbh.source(ASSIGNMENT)})
    out = tmp_path / "summary.txt"
    with open(out, "w") as report:
        _, results = grade_notebooks(tmp_path / "b", {"solution": nbh.source(ASSIGNMENT)},
                                     unsafe=True, report=report)
    assert results["solution"]["score"] == MAX_SCORE          # a plain process still grades
    assert "UNSAFE" in out.read_text()


def test_two_grading_runs_side_by_side_share_nothing(tmp_path):
    """Two `make grade` runs at once on one machine: each its own jobs and folders."""
    courses = {}
    for name, notebook in (("right", nbh.source(ASSIGNMENT)), ("wrong", MISTAKE.notebook())):
        (tmp_path / name).mkdir()
        courses[name] = nbh.make_course(tmp_path / name, [ASSIGNMENT])
        put(courses[name], "s", notebook)
    runs = {name: subprocess.Popen([sys.executable, "-m", "descent.grading.classroom", "grade",
                                    ASSIGNMENT, "--course", str(course), "--workers", "1",
                                    "--no-progress"], stdout=subprocess.PIPE, text=True)
            for name, course in courses.items()}
    for run in runs.values():
        run.communicate(timeout=600)
    outcomes = {name: json.loads((course / "grades" / f"{ASSIGNMENT}.json").read_text())
                ["students"]["s"] for name, course in courses.items()}
    assert outcomes["right"]["score"] == MAX_SCORE
    lost = sum(outcomes["wrong"]["parts"][p]["points"] for p in MISTAKE.loses)
    assert outcomes["wrong"]["score"] == MAX_SCORE - lost


def test_an_endless_loop_times_out_and_leaves_no_process(tmp_path):
    loop = "while True:\n    pass"
    _, results = grade_notebooks(tmp_path, {"looper": with_answer("answer-loss", loop)},
                                 limits=Limits(notebook_seconds=20, cell_seconds=60))
    assert results["looper"]["status"] == "timeout", results["looper"]
    assert results["looper"]["score"] is None
    assert "20 s" in results["looper"]["reason"]
    assert _confined_processes() == []


def test_a_run_that_grades_nothing_here_leaves_no_process(tmp_path, monkeypatch):
    """The student's side started ahead for this process's first job ends with the run when
    no job took it (here: the only student named has no submission), its folders with it."""
    import tempfile

    started, folders = [], []           # its work folder, its cgroup's folders
    real_init = confine.ConfinedDoor.__init__

    def counted(door, *args, **kwargs):
        real_init(door, *args, **kwargs)
        started.append(door)
        folders.extend([door._work, *(door.cgroup.dirs if door.cgroup else ())])

    confine.probe()
    monkeypatch.setattr(confine.ConfinedDoor, "__init__", counted)
    course = nbh.make_course(tmp_path, [ASSIGNMENT])
    results = grade_class(course, ASSIGNMENT, limits=LIMITS, students=["ghost"],
                          progress=False, report=False)
    assert results["ghost"]["status"] == "failed"
    assert len(started) == 1 and started[0].process.poll() is not None
    assert started[0]._work.startswith(tempfile.gettempdir())
    assert folders and [f for f in folders if os.path.exists(f)] == []
    assert _confined_processes() == []


def _confined_processes() -> list:
    return [p for p in psutil.Process().children(recursive=True)
            if any(word in " ".join(p.cmdline()) for word in ("unshare", "jail.py",
                                                              "descent.grading.student"))]


def test_a_regrade_keeps_the_hand_grading_of_an_unchanged_written_answer(class4):
    from nbgrader.api import Gradebook

    course, _ = class4
    nb = nbh.source(ASSIGNMENT)
    (written,) = [c for c in nb.cells if c.cell_type == "markdown"
                  and c.metadata.get("nbgrader", {}).get("grade")]
    name = written.metadata["nbgrader"]["grade_id"]

    def regrade(notebook):
        put(course, "handgraded", notebook)
        grade_class(course, ASSIGNMENT, workers=1, limits=LIMITS, students=["handgraded"],
                    progress=False, report=False)
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            grade = gb.find_grade(name, ASSIGNMENT, ASSIGNMENT, "handgraded")
            comment = gb.find_comment(name, ASSIGNMENT, ASSIGNMENT, "handgraded")
            return grade.manual_score, grade.needs_manual_grade, comment.manual_comment

    assert regrade(nb) == (None, True, None)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:     # the instructor grades
        gb.find_grade(name, ASSIGNMENT, ASSIGNMENT, "handgraded").manual_score = 1.5
        gb.find_comment(name, ASSIGNMENT, ASSIGNMENT, "handgraded").manual_comment = "clear"
        gb.db.commit()
    assert regrade(nb) == (1.5, False, "clear")                       # same answer: kept
    written.source += "\n\nEdited after the deadline."
    assert regrade(nb) == (None, True, None)                          # new answer: regrade it


def _gradebook_rows(course: Path, assignment: str) -> list[str]:
    """The assignment's rows in a course's gradebook: itself, its notebooks and every cell."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        found = gb.find_assignment(assignment)
        rows = [repr((found.name, found.duedate, found.course_id))]
        for notebook in found.notebooks:
            for kind in ("grade_cells", "task_cells", "solution_cells", "source_cells"):
                for cell in getattr(notebook, kind):
                    rows.append(repr((notebook.name, kind, *(
                        getattr(cell, key, None) for key in ("name", "max_score", "cell_type",
                                                             "locked", "source", "checksum")))))
    return sorted(rows)


def test_the_template_gradebook_has_the_revision_alembic_gives(tmp_path, monkeypatch):
    """The template's `generate_assignment` reads the schema revision of its new gradebook
    from nbgrader's migration scripts, not from the `alembic` command: the same revision as
    the command's, and the same tables as nbgrader's own new gradebook."""
    import sqlite3

    import nbgrader.api

    from descent.grading.classroom.course import build_template
    from descent.grading.classroom.job import unpack

    def schema(path: Path) -> list:
        with sqlite3.connect(path) as db:
            return [db.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE "
                               "'sqlite_%' ORDER BY type, name").fetchall(),
                    db.execute("SELECT * FROM alembic_version").fetchall()]

    course = nbh.make_course(tmp_path, [ASSIGNMENT])
    unpack(build_template(course, ASSIGNMENT), tmp_path / "template")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    nbgrader.api.Gradebook(f"sqlite:///{tmp_path / 'theirs.db'}").close()
    ours = schema(tmp_path / "template" / "private" / "gradebook.db")
    theirs = schema(tmp_path / "theirs.db")
    assert len(ours[0]) > 10 and ours[1] == [(nbgrader.api.get_alembic_version(),)]
    assert ours == theirs


def test_the_grader_does_without_the_iri_parsers_and_no_notebook_schema_needs_them():
    """The grading process and its nbgrader runs skip rfc3987_syntax (0.9 s of parser
    building at import), which jsonschema uses for the "iri" formats only: no schema of
    nbformat names a format of that kind, and neither process imports it (while both import
    nbformat, so jsonschema was reached)."""
    import importlib.util

    from descent.grading.classroom.course import NBGRADER_COMMAND

    schemas = Path(importlib.util.find_spec("nbformat").origin).parent.rglob("*.json")
    formats = set()

    def collect(node):
        if isinstance(node, dict):
            if isinstance(node.get("format"), str):
                formats.add(node["format"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    for path in schemas:
        collect(json.loads(path.read_text()))
    assert not {f for f in formats if f.startswith("iri")}

    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    for argv in ([sys.executable, "-c", "import descent.grading.classroom.__main__"],
                 [sys.executable, "-P", "-c", NBGRADER_COMMAND, "--version"]):
        run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines()
                    if line.startswith("import time:")}
        assert {"nbformat", "jsonschema._format"} <= imported, argv
        # (a blocked import is listed too, by its own name: the parsers are built here)
        assert "rfc3987_syntax.syntax_helpers" not in imported, argv


def test_a_gradebook_learns_a_new_assignment_as_generate_assignment_writes_it(tmp_path):
    """The class grader copies a new assignment's rows from its template's gradebook (one
    nbgrader run instead of two): the same rows as `nbgrader generate_assignment` writes, in
    a gradebook that already knows another assignment."""
    from descent.grading.classroom.course import build_template, ensure_assignment

    other, courses = "02-gradient-descent", {}
    for way in ("copied", "generated"):
        (tmp_path / way).mkdir()
        courses[way] = nbh.make_course(tmp_path / way, [ASSIGNMENT, other])
        nbh.nbgrader(courses[way], "generate_assignment", other, "--force")
    ensure_assignment(courses["copied"], ASSIGNMENT, build_template(courses["copied"],
                                                                    ASSIGNMENT))
    nbh.nbgrader(courses["generated"], "generate_assignment", ASSIGNMENT, "--force")
    copied = _gradebook_rows(courses["copied"], ASSIGNMENT)
    assert len(copied) > 20 and copied == _gradebook_rows(courses["generated"], ASSIGNMENT)
