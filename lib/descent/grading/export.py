"""Grades with their status: an nbgrader export plugin, and the same CSV from Python.

``nbgrader export --exporter descent.grading.export.StatusCsvExporter --to grades.csv`` (what
``make export`` runs) writes one row per (assignment, student): the gradebook's score and
maximum, and the status and reason :mod:`descent.grading.classroom` kept in
``grades/<assignment>.json``. A submission that is failed, timed out or ran out of memory has
a blank score, never 0; a student with no submission is ``missing``, also blank. Assignments
graded with plain ``nbgrader autograde`` (no status file) are ``graded`` where the gradebook
has a submission.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin

# nbgrader's own CSV columns, then ours.
COLUMNS = ("assignment", "duedate", "timestamp", "student_id", "last_name", "first_name",
           "email", "raw_score", "late_submission_penalty", "score", "max_score", "status",
           "reason")
BLANK = ("failed", "timeout", "memory")


def rows(gradebook: Gradebook, course: Path, assignments=(), students=()) -> list[dict]:
    """One row per (assignment, student) known to the gradebook, in that order."""
    out = []
    for assignment in gradebook.assignments:
        if assignments and assignment.name not in assignments:
            continue
        status_file = course / "grades" / f"{assignment.name}.json"
        statuses = (json.loads(status_file.read_text()).get("students", {})
                    if status_file.exists() else {})
        for student in gradebook.students:
            if students and student.id not in students:
                continue
            kept = statuses.get(student.id, {})
            try:
                submission = gradebook.find_submission(assignment.name, student.id)
            except MissingEntry:
                submission = None
            status = kept.get("status") or ("graded" if submission else "missing")
            blank = submission is None or status in BLANK
            out.append({
                "assignment": assignment.name,
                "duedate": assignment.duedate.isoformat() if assignment.duedate else "",
                "timestamp": submission.timestamp.isoformat()
                if submission is not None and submission.timestamp else "",
                "student_id": student.id, "last_name": student.last_name or "",
                "first_name": student.first_name or "", "email": student.email or "",
                "raw_score": "" if blank else submission.score,
                "late_submission_penalty": "" if blank else submission.late_submission_penalty,
                "score": "" if blank else max(0.0, submission.score
                                                - submission.late_submission_penalty),
                "max_score": assignment.max_score,
                "status": status,
                "reason": kept.get("reason", "") or ("no submission" if status == "missing"
                                                     else ""),
            })
    return out


def export_csv(course, dest, assignments=(), students=()) -> Path:
    """Write the CSV for the course at ``course`` (its ``gradebook.db``) to ``dest``."""
    course = Path(course)
    dest = Path(dest)
    with Gradebook(f"sqlite:///{course.resolve() / 'gradebook.db'}") as gb:
        table = rows(gb, course, assignments, students)
    with open(dest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(table)
    return dest


class StatusCsvExporter(ExportPlugin):
    """nbgrader's CSV export with a status and a reason per submission."""

    def export(self, gradebook: Gradebook) -> None:
        coursedir = getattr(self.parent, "coursedir", None)
        course = Path(coursedir.root if coursedir is not None else ".")
        dest = self.to or "grades.csv"
        table = rows(gradebook, course, [str(a) for a in self.assignment],
                     [str(s) for s in self.student])
        self.log.info("Exporting %d rows with statuses to %s", len(table), dest)
        with open(dest, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(table)
