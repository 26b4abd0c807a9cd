"""descent.grading.classroom: a class graded in parallel, each submission sandboxed, with statuses.

Two classes are graded once per module (the kernels dominate the time): ``class4`` (solution,
blank release, one known mistake, malformed JSON) and ``bad_class`` (memory hog, ``os._exit``,
a network probe, a missing notebook, and a correct student). :func:`grade_notebooks` is the
helper for more corpora: a temp course, the given students' notebooks, graded, results back.
"""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import psutil
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import nbgrader_helpers as nbh  # noqa: E402

from descent.grading.classroom import Limits, grade_class, grade_submission, prepare  # noqa: E402
from descent.grading.classroom.course import probe_isolation  # noqa: E402
from descent.grading.classroom.job import CappedExecute  # noqa: E402
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


# -- bad submissions: memory, a dead kernel, no network, hidden paths ----------------------

@pytest.fixture(scope="module")
def bad_class(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    network = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=5).close()\n"
        "    result = 'connected to the grader'\n"
        "except OSError as err:\n"
        "    result = f'failed: {err}'\n"
        "try:\n"
        "    socket.create_connection(('example.org', 80), timeout=5).close()\n"
        "    result += '; connected to example.org'\n"
        "except OSError as err:\n"
        "    result += f'; failed: {err}'\n"
        "if 'connected' in result:   # the kernel has no file to report to: lose the part\n"
        "    mse_loss = None\n")
    outside = [str(tmp / "outside.txt"), "~/descent-grading-was-here.txt", "/tmp/descent-w.txt"]
    writer = (
        "import os\n"
        f"for path in {outside!r}:\n"
        "    try:\n"
        "        open(os.path.expanduser(path), 'w').write('written by a student')\n"
        "    except OSError:\n"
        "        pass\n"
        "open('mine.txt', 'w').write('the job folder stays writable')\n")
    course, results = grade_notebooks(tmp, {
        "hog": with_answer("answer-loss", "hog = bytearray(64 * 2**30)"),
        "exits": with_answer("answer-loss", "import os\nos._exit(1)"),
        "network": with_answer("answer-loss", network),
        "writer": with_answer("answer-loss", writer),
        "nofile": {"notes.txt": "I could not finish"},
        "loud": with_answer("answer-loss", "print('x' * 100_000_000)"),
        "sleeper": with_answer("answer-loss", "import time\ntime.sleep(120)"),
        "correct": nbh.source(ASSIGNMENT),
    }, workers=2, limits=Limits(notebook_seconds=180, cell_seconds=15))
    try:
        listener.accept()
        accepted = True
    except BlockingIOError:
        accepted = False
    listener.close()
    return course, results, {"accepted": accepted, "outside": outside}


def test_memory_hog_is_memory_with_blank_score(bad_class):
    _, results, _ = bad_class
    assert results["hog"]["status"] == "memory", results["hog"]
    assert results["hog"]["score"] is None
    assert "answer-loss" in results["hog"]["reason"]


def test_dead_kernel_is_failed(bad_class):
    _, results, _ = bad_class
    assert results["exits"]["status"] == "failed", results["exits"]
    assert results["exits"]["score"] is None
    assert "kernel died" in results["exits"]["reason"]


def test_cell_timeout_is_timeout(bad_class):
    _, results, _ = bad_class
    assert results["sleeper"]["status"] == "timeout", results["sleeper"]
    assert results["sleeper"]["score"] is None
    assert results["sleeper"]["reason"] == ("answer-loss ran longer than 15 s (cell limit); "
                                            "interrupted")


def test_missing_notebook_names_what_was_found(bad_class):
    _, results, _ = bad_class
    assert results["nofile"] == {**results["nofile"], "status": "failed", "score": None,
                                 "reason": f"no {ASSIGNMENT}.ipynb in the submission "
                                           f"(found: notes.txt)"}


def test_one_bad_student_does_not_affect_another(bad_class):
    course, results, _ = bad_class
    assert results["correct"]["status"] == "graded"
    assert results["correct"]["score"] == MAX_SCORE
    assert sum(nbh.cell_scores(course, ASSIGNMENT)["correct"].values()) == MAX_SCORE


def test_huge_output_is_capped(bad_class):
    _, results, _ = bad_class
    assert results["loud"]["status"] == "graded" and results["loud"]["score"] == MAX_SCORE
    assert len(results["loud"]["notebook"]) < 100_000


def test_capped_execute_drops_output_beyond_the_caps():
    execute = CappedExecute(cell_output_bytes=10, notebook_output_bytes=14)
    execute.clear_before_next_output = False          # nbclient sets it per cell

    def stream(text):
        return {"msg_type": "stream", "header": {"msg_type": "stream"},
                "parent_header": {"msg_id": "m"}, "content": {"name": "stdout", "text": text}}

    first, second = [], []
    for _ in range(3):
        execute.output(first, stream("abcd"), None, 0)      # the third: 12 bytes > 10 per cell
    for _ in range(3):
        execute.output(second, stream("efgh"), None, 1)     # the second: 16 kept > 14 in all
    assert [o.text for o in first[:2]] == ["abcd", "abcd"] and len(first) == 3
    assert "output truncated" in first[2].text
    assert second[0].text == "efgh" and len(second) == 2
    assert "output truncated" in second[1].text
    error = {"msg_type": "error", "header": {"msg_type": "error"}, "parent_header":
             {"msg_id": "m"}, "content": {"ename": "ValueError", "evalue": "v" * 5000,
                                          "traceback": ["t" * 5000] * 50}}
    execute.output(second, error, None, 1)               # kept, shortened: it decides the score
    assert second[2].output_type == "error" and len(second[2].evalue) == 1000
    assert len(second[2].traceback) == 5


def test_kernel_has_no_network(bad_class):
    if not probe_isolation().namespaces:
        pytest.skip("unshare -rmn is not permitted here: kernels keep the network")
    _, results, probe = bad_class
    assert results["network"]["status"] == "graded"    # the probe itself is harmless
    assert results["network"]["score"] == MAX_SCORE, "a connection succeeded"
    assert not probe["accepted"]


def test_kernel_writes_only_in_its_own_job_folder(bad_class):
    import os

    if not probe_isolation().namespaces:
        pytest.skip("unshare -rmn is not permitted here: the file system stays writable")
    _, results, probe = bad_class
    assert results["writer"]["status"] == "graded", results["writer"]
    assert results["writer"]["score"] == MAX_SCORE        # its own folder was writable
    for path in probe["outside"]:
        assert not os.path.exists(os.path.expanduser(path)), path


def test_hidden_paths_protect_gradebooks(bad_class, tmp_path):
    if not probe_isolation().namespaces:
        pytest.skip("unshare -rmn is not permitted here: paths cannot be hidden")
    course, results, _ = bad_class
    attempts = tmp_path / "attempts.json"
    main_db = course / "gradebook.db"
    evil = (
        "import glob, json, os\n"
        "seen = {}\n"
        f"for path in [{str(course / 'solutions' / ASSIGNMENT / (ASSIGNMENT + '.ipynb'))!r},\n"
        f"             {str(main_db)!r}, '../../gradebook.db',\n"
        "             '../../../../private/gradebook.db']:\n"
        "    try:\n"
        "        seen['read ' + path] = len(open(path, 'rb').read())\n"
        "    except OSError as err:\n"
        "        seen['read ' + path] = type(err).__name__\n"
        "    try:\n"
        "        open(path, 'wb').write(b'overwritten')\n"
        "        seen['write ' + path] = 'written'\n"
        "    except OSError as err:\n"
        "        seen['write ' + path] = type(err).__name__\n"
        "jobs_root = os.getcwd()\n"
        "for _ in range(5):   # <jobs root>/<job>/course/autograded/<student>/<assignment>\n"
        "    jobs_root = os.path.dirname(jobs_root)\n"
        "seen['jobs'] = sorted(glob.glob(jobs_root + '/*'))\n"
        f"open({str(attempts)!r}, 'w').write(json.dumps(seen))\n")
    put(course, "mallory", with_answer("answer-loss", evil))
    before = main_db.read_bytes()
    jobs, _, _ = prepare(course, ASSIGNMENT, LIMITS, ["mallory"], writable=(str(tmp_path),))
    outcome = grade_submission(jobs[0])
    seen = json.loads(attempts.read_text())
    assert main_db.read_bytes() == before
    assert seen[f"read {course / 'solutions' / ASSIGNMENT / (ASSIGNMENT + '.ipynb')}"] == \
        "FileNotFoundError"
    assert seen[f"read {main_db}"] == 0                    # /dev/null over it
    assert seen["read ../../../../private/gradebook.db"] == "FileNotFoundError"
    assert len(seen["jobs"]) == 1                            # no other job's folder
    # The job's own gradebook was out of reach too: the trusted scores stand.
    assert outcome["status"] == "graded" and outcome["score"] == MAX_SCORE, outcome
    assert sum(nbh.cell_scores(course, ASSIGNMENT)["correct"].values()) == MAX_SCORE


# -- the notebook wall clock -------------------------------------------------------------

def test_endless_loop_times_out_and_leaves_no_kernel(tmp_path):
    pid_file = tmp_path / "kernel.pid"
    loop = f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\nwhile True: pass"
    _, results = grade_notebooks(tmp_path, {"looper": with_answer("answer-loss", loop)},
                                 limits=Limits(notebook_seconds=20, cell_seconds=60),
                                 writable=(str(tmp_path),))
    assert results["looper"]["status"] == "timeout", results["looper"]
    assert results["looper"]["score"] is None
    assert "20 s" in results["looper"]["reason"]
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


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
