"""The instructor report (descent.grading.report) and the generated class of the grading
benchmark (benchmarks/make_class.py).

The report is built from a results JSON written here by hand: ten students, a known mix of
statuses and diagnosed mistakes, and untrusted text (``<script>``) in a student id, a message
and a reason. The numbers are checked on ``summary``; the page only for what it must show.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from descent.grading.report import (
    EXAMPLE_CHARS,
    grades_path,
    main,
    render,
    summary,
    write_report,
)

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "05-adaptive"
POINTS = {"test-adagrad": 2.0, "test-rmsprop": 2.0, "test-adam": 3.0, "test-adamw": 2.0,
          "test-ablation": 2.0, "test-train": 2.0, "test-fair": 2.0}
EVIL_ID = "<script>alert('id')</script>"
EVIL_MESSAGE = "ZeroDivisionError: <script>alert('msg')</script> (in rmsprop_update, line 3)"
LONG_MESSAGE = "[Part 5.3, eq. (Adam)] the bias correction is missing: " + "m̂_t ≠ m_t " * 80


def student(status="graded", failures=None, reason=""):
    """One student's record: every part passes except ``failures`` {grade_id: (mistake,
    message)}."""
    failures = failures or {}
    parts = {}
    if status in ("graded", "flagged"):
        for grade_id, points in POINTS.items():
            mistake, message = failures.get(grade_id, (None, f"{grade_id}: all checks match"))
            score = 0.0 if grade_id in failures else points
            parts[grade_id] = {"points": points, "score": score, "message": message,
                               "mistake": mistake}
    score = sum(p["score"] for p in parts.values()) if parts else None
    return {"status": status, "reason": reason, "score": score,
            "max_score": sum(POINTS.values()), "parts": parts, "seconds": 5.0,
            "notebook_seconds": 3.0}


def class_results() -> dict:
    no_bias = ("no-bias-correction", "[Part 5.3, eq. (Adam)] the bias correction is missing")
    return {
        "assignment": ASSIGNMENT, "graded_at": "2026-11-25T21:40:00Z",
        "limits": {"seconds": 120, "memory_mb": 2048},
        "isolation": "network and paths isolated (unshare)",
        "students": {
            "s01": student(),
            "s02": student(failures={"test-adam": no_bias}),
            "s03": student(failures={"test-adam": ("no-bias-correction", LONG_MESSAGE)}),
            "s04": student(failures={"test-adam": no_bias,
                                     "test-train": (None, "[Part 5.6] the loss diverged")}),
            "s05": student(failures={"test-adam": ("t-not-incremented", "t is not incremented")}),
            "s06": student(failures={"test-rmsprop": ("exception", EVIL_MESSAGE)}),
            "s07": student(failures={"test-adagrad": ("mutates-input", "changed grad in place")}),
            "s08": student("failed", reason="the notebook is not valid JSON: <truncated>"),
            "s09": student("timeout", reason="ran past the 120 s limit"),
            EVIL_ID: student("flagged", reason="grade cell test-train was deleted <b>bold</b>"),
        },
    }


@pytest.fixture
def course(tmp_path) -> Path:
    path = grades_path(tmp_path, ASSIGNMENT)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(class_results()))
    return tmp_path


def test_summary_counts_scores_and_ranks_mistakes():
    results = class_results()
    facts = summary(results)
    total = sum(POINTS.values())
    graded = [s["score"] for s in results["students"].values() if s["status"] == "graded"]

    assert facts["students"] == 10
    assert facts["counts"] == {"graded": 7, "flagged": 1, "failed": 1, "timeout": 1,
                               "memory": 0}
    assert facts["unscored"] == {"failed": 1, "timeout": 1, "memory": 0}
    assert facts["max_score"] == total
    assert facts["graded_scores"] == sorted(graded)
    assert facts["flagged_scores"] == [total]
    assert facts["mean"] == pytest.approx(statistics.fmean(graded))
    assert facts["median"] == statistics.median(graded)
    # Seven students lose exactly one or two parts: 3 points (Adam), 2 (AdaGrad, RMSprop) …
    assert sorted(graded) == [total - 5, total - 3, total - 3, total - 3, total - 2,
                              total - 2, total]

    adam = facts["parts"]["test-adam"]       # 8 scored students, 4 of them failed Adam
    assert (adam["submissions"], adam["passed"]) == (8, 4)
    assert adam["pass_rate"] == 0.5
    assert adam["mean_score"] == pytest.approx(4 * 3.0 / 8)

    ranked = [(m["part"], m["mistake"], m["count"]) for m in facts["mistakes"]]
    assert ranked == [("test-adam", "no-bias-correction", 3),
                      ("test-adagrad", "mutates-input", 1),
                      ("test-adam", "t-not-incremented", 1),
                      ("test-rmsprop", "exception", 1),
                      ("test-train", "other", 1)]
    assert all(len(m["example"]) <= EXAMPLE_CHARS for m in facts["mistakes"])

    assert [(p["student"], p["status"]) for p in facts["problems"]] == [
        ("s08", "failed"), ("s09", "timeout"), (EVIL_ID, "flagged")]


def test_report_shows_histogram_mistakes_and_problems_escaped(course):
    path = write_report(course, ASSIGNMENT)
    assert path == course / "reports" / f"{ASSIGNMENT}.html"
    page = path.read_text(encoding="utf-8")

    assert "<img alt='histogram of the scores' src='data:image/png;base64,iVBOR" in page
    assert "<script" not in page.lower()
    assert html.escape(EVIL_ID) in page and html.escape(EVIL_MESSAGE) in page
    for reason in ("the notebook is not valid JSON: <truncated>", "ran past the 120 s limit",
                   "grade cell test-train was deleted <b>bold</b>"):
        assert html.escape(reason) in page
    assert "<b>bold</b>" not in page
    mistakes = page[page.index("class='mistakes'"):]
    mistakes = mistakes[:mistakes.index("</table>")]
    order = [mistakes.index(name) for name in ("no-bias-correction", "mutates-input",
                                               "t-not-incremented", ">other<")]
    assert order == sorted(order)
    assert "network and paths isolated (unshare)" in page and "memory_mb: 2048" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page


def test_report_of_an_empty_class_says_so(tmp_path):
    results = {**class_results(), "students": {}}
    path = grades_path(tmp_path, ASSIGNMENT)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(results))
    facts = summary(results)
    assert facts["students"] == 0 and facts["mean"] is None and facts["mistakes"] == []

    page = write_report(tmp_path, ASSIGNMENT, tmp_path / "out.html").read_text()
    assert "No submissions: the grades file lists no students" in page
    assert "data:image/png" not in page


def test_missing_grades_name_the_file_and_the_command(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        write_report(tmp_path, ASSIGNMENT)
    assert str(grades_path(tmp_path, ASSIGNMENT)) in str(err.value)
    assert f"python -m descent.grading.classroom grade {ASSIGNMENT}" in str(err.value)


def test_classroom_forms_of_isolation_and_timings_are_read():
    """The classroom writes isolation as a mapping and the time under ``timings``."""
    results = class_results()
    results["isolation"] = {"namespaces": True, "note": "no network <unshare -rmn>"}
    for record in results["students"].values():
        record["timings"] = {"notebook_seconds": 2.0, "total_seconds": record.pop("seconds")}
    results["students"]["s09"]["timings"]["total_seconds"] = 130.0
    facts = summary(results)
    assert facts["seconds"] == {"median": 5.0, "max": 130.0, "slowest": "s09"}
    page = render(facts)
    assert "namespaces: true, note: no network &lt;unshare -rmn&gt;" in page


def test_unknown_status_is_refused():
    results = class_results()
    results["students"]["s01"]["status"] = "graded-ish"
    with pytest.raises(ValueError, match="'graded-ish'; expected one of graded, flagged"):
        summary(results)


def test_command_line_writes_the_report(course, capsys):
    out = course / "elsewhere" / "report.html"
    assert main([ASSIGNMENT, "--course", str(course), "--out", str(out)]) == out
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_python_dash_m_runs_the_module(course):
    proc = subprocess.run([sys.executable, "-m", "descent.grading.report", ASSIGNMENT,
                           "--course", str(course)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (course / "reports" / f"{ASSIGNMENT}.html").is_file()
    missing = subprocess.run([sys.executable, "-m", "descent.grading.report", "99-none",
                              "--course", str(course)], capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert missing.returncode == 2 and "classroom grade 99-none" in missing.stderr


# -- the benchmark's generated class -----------------------------------------------------------


def _make_class_module():
    if "make_class" not in sys.modules:       # benchmarks/ is not a package
        spec = importlib.util.spec_from_file_location("make_class", ROOT / "benchmarks" /
                                                      "make_class.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["make_class"] = module    # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["make_class"]


def test_generated_class_has_every_kind_and_the_documented_layout(tmp_path):
    make_class = _make_class_module()
    kinds = make_class.make_class(ASSIGNMENT, tmp_path, n=12, seed=3)

    assert list(kinds) == [f"s{i:03d}" for i in range(1, 13)]
    assert sorted(p.name for p in tmp_path.iterdir()) == list(kinds)
    assert set(kinds.values()) == set(make_class.KINDS)
    assert make_class.make_class(ASSIGNMENT, tmp_path / "again", n=12, seed=3) == kinds

    solutions, _ = make_class.solution_answers(ASSIGNMENT)
    alternatives: dict[str, list[str]] = {}
    for entry in make_class.corpus(ASSIGNMENT):
        if not entry.loses:
            alternatives.setdefault(entry.cell, []).append(entry.code)
    for student_id, kind in kinds.items():
        folder = tmp_path / student_id / ASSIGNMENT
        notebook = folder / f"{ASSIGNMENT}.ipynb"
        if kind == "missing-notebook":
            assert folder.is_dir() and not any(folder.iterdir())
            continue
        if kind == "malformed-json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(notebook.read_text())
            continue
        nb = nbformat.read(str(notebook), 4)
        answers = {c.metadata.nbgrader.grade_id: c.source for c in nb.cells
                   if c.metadata.get("nbgrader", {}).get("solution")}
        assert all("checksum" in c.metadata.nbgrader for c in nb.cells
                   if "nbgrader" in c.metadata), student_id
        assert not any("### BEGIN SOLUTION" in source for source in answers.values())
        if kind == "blank":
            assert "raise NotImplementedError()" in answers["answer-adam"]
        if kind == "correct":       # the solution, or a correct alternative from the corpus
            for grade_id, source in answers.items():
                assert source in (solutions[grade_id], *alternatives.get(grade_id, ())), grade_id
        if kind == "deleted-test-cell":
            assert answers == solutions
        if kind == "deleted-test-cell":
            tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
                     and c.cell_type == "code"]
            assert len(tests) == len(POINTS) - 1


def test_generated_class_needs_room_for_every_kind(tmp_path):
    make_class = _make_class_module()
    with pytest.raises(ValueError, match=r"n \(students\) must be in \[8, 999\].*got 3"):
        make_class.make_class(ASSIGNMENT, tmp_path, n=3)
