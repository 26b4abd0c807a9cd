"""One student's grading job: a pure function of plain data, runnable in any worker process.

:func:`grade_submission` unpacks the template course and the submission into a fresh temp
folder, checks the notebook, restores its test and locked cells from the gradebook as
``nbgrader autograde`` does (nbgrader's own preprocessors, in this process), then grades it
with :func:`descent.grading.trusted.grade_notebook`: the student's cells run in a confined
process (:class:`~descent.grading.confine.ConfinedDoor`), the test cells, hidden tests
included, here. It returns a JSON-able dict. Nothing the student's side sends is trusted but
as its own results.
"""

from __future__ import annotations

import io
import shutil
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# jsonschema, under nbformat, imports rfc3987_syntax where it is installed (jupyter-events
# requires it), and that module builds some 35 Earley parsers as it is imported: 0.9 s of
# every grading process, worker and template run of nbgrader (jsonschema#1428). It serves
# only the "iri" formats, which no notebook schema uses (tests/test_classroom.py checks), so
# the grader's processes do without it: its import fails, and jsonschema leaves those two
# formats unchecked. Set before nbformat is first imported (this module is the first to).
NOT_IMPORTED = "rfc3987_syntax"
sys.modules.setdefault(NOT_IMPORTED, None)

import nbformat  # noqa: E402

from descent.grading.confine import Confinement, Limits  # noqa: E402
from descent.grading.plain import bounded  # noqa: E402

STATUSES = ("failed", "timeout", "memory", "flagged", "graded")   # most severe first
BLANK_STATUSES = ("failed", "timeout", "memory")                   # no score: a person decides
REASON_CHARS = 600


@dataclass(frozen=True)
class Job:
    """Everything one student's grading needs, as plain data (picklable, no shared disk).

    ``template``: tar of the template course (``course/`` with the source of the assignment,
    ``private/gradebook.db`` made by ``generate_assignment``); ``submission``: tar of the
    student's submission folder; ``unsafe``: grade even where this worker cannot confine the
    student's code (a plain process; the summary says so); ``source_directory``: the source
    folder's name; ``confinement``: what the grading process found this machine allows, for
    its own worker processes (None: the worker probes, as a Dask worker on another machine
    must).
    """

    assignment: str
    student: str
    template: bytes
    submission: bytes
    limits: Limits = field(default_factory=Limits)
    unsafe: bool = False
    source_directory: str = "source"
    confinement: Confinement | None = None


def pack(folder: Path) -> bytes:
    """A folder as tar bytes, paths relative to it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname=".")
    return buffer.getvalue()


def unpack(data: bytes, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")   # no absolute paths, no links leaving dest


def result(status: str, reason: str, **extra) -> dict:
    return {"status": status, "reason": bounded(reason, REASON_CHARS), "score": None,
            "max_score": None, "parts": {}, "timestamp": None, "timings": {},
            "notebook": None, **extra}


def warm_up() -> None:
    """Import what a job uses, so that a process pays for it while the template is built, not
    in its first job (a worker started early; the grading process itself, which grades too,
    while nbgrader runs)."""
    import nbgrader.preprocessors  # noqa: F401
    import torch

    import descent.grading.nbgrader  # noqa: F401
    from descent.grading import confine, trusted  # noqa: F401

    # The first optimizer made imports torch's compiler (about 1.5 s); the reference runs
    # make optimizers.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def grade_submission(job: Job) -> dict:
    """Grade one submission; never raises (a grader error is a ``failed`` result)."""
    start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="descent-grade-"))
    try:
        out = _grade_in(work, job)
    except Exception as err:  # noqa: BLE001 - one student's job must not abort the class
        out = result("failed", f"grader error: {type(err).__name__}: {err}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["timings"] = {**out["timings"], "total_seconds": round(time.monotonic() - start, 3)}
    return out


def _grade_in(work: Path, job: Job) -> dict:
    from descent.grading import confine, trusted

    unpack(job.template, work)
    folder = work / "submitted"
    unpack(job.submission, folder)
    notebook_name = f"{job.assignment}.ipynb"
    source_nb = nbformat.read(str(work / "course" / job.source_directory / job.assignment
                                  / notebook_name), as_version=4)
    points = {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"])
              for c in trusted.autograded_cells(source_nb)}
    problem = validate_submission(folder, notebook_name, job.limits)
    if problem:
        return result("failed", problem, max_score=sum(points.values()))
    confinement = job.confinement or confine.probe(job.unsafe, ahead=job.limits)
    if not (confinement.namespaces or confinement.unsafe):
        return result("failed", f"this worker cannot confine student code "
                                f"({confinement.note}); grade with --unsafe only in a "
                                "throw-away container", max_score=sum(points.values()))
    clock = time.monotonic()
    door = confine.open_door(job.limits, confinement)   # (else it starts while we sanitize)
    try:
        nb = sanitized(folder / notebook_name, work / "private" / "gradebook.db", job)
        timestamp = submission_timestamp(folder)
        verdict = trusted.grade_notebook(nb, source_nb, door)
    finally:
        door.close()
    timings = {"notebook_seconds": round(time.monotonic() - clock, 3),
               "peak_memory_mb": getattr(door, "peak_mb", None)}
    if verdict.closed is not None:
        return result(verdict.closed.status, verdict.closed.reason,
                      max_score=sum(points.values()), timestamp=timestamp, timings=timings)
    parts = {}
    for grade_id, max_points in points.items():
        part = verdict.parts[grade_id]
        parts[grade_id] = {"points": max_points, "score": float(part.score),
                           "message": bounded(part.message, 2000), "mistake": part.mistake}
    concerns = [*verdict.concerns, *door.notes]
    status, reason = ("flagged" if verdict.concerns else "graded"), "; ".join(concerns)
    return result(status, reason, score=sum(p["score"] for p in parts.values()),
                  max_score=sum(points.values()), parts=parts, timestamp=timestamp,
                  timings=timings, notebook=nbformat.writes(trusted_notebook(nb, parts)),
                  cell_errors={k: bounded(v, 300) for k, v in
                               list(verdict.cell_errors.items())[:20]})


def validate_submission(folder: Path, notebook_name: str, limits: Limits) -> str | None:
    """Why the submission cannot be graded, or None."""
    path = folder / notebook_name
    if not path.is_file() or path.is_symlink():
        found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        shown = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10
                                         else "")
        return f"no {notebook_name} in the submission (found: {shown or 'nothing'})"
    size = path.stat().st_size
    if size > limits.submission_mb * 2**20:
        return (f"{notebook_name} is {size / 2**20:.1f} MiB, more than the limit of "
                f"{limits.submission_mb} MiB (clear the outputs and attachments)")
    try:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # noqa: BLE001 - any parse or schema error is the student's
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return f"{notebook_name} is not a valid notebook: {first}"
    return None


def sanitized(path: Path, gradebook: Path, job: Job):
    """The notebook as ``nbgrader autograde`` would run it: outputs cleared, ids made unique,
    test and locked cells restored from the gradebook (deleted ones added back)."""
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        OverwriteKernelspec,
    )

    from descent.grading.nbgrader import OverwriteReleasedCells

    nb = nbformat.read(str(path), as_version=4)
    resources = {"nbgrader": {"notebook": job.assignment, "assignment": job.assignment,
                              "student": job.student, "db_url": f"sqlite:///{gradebook}"}}
    for step in (ClearOutput(), DeduplicateIds(), OverwriteKernelspec(),
                 OverwriteReleasedCells(add_missing_cells=True), CheckCellMetadata()):
        nb, resources = step.preprocess(nb, resources)
    return nb


def submission_timestamp(folder: Path) -> str | None:
    """The submission's time as nbgrader reads it (``timestamp.txt``), in ISO format."""
    path = folder / "timestamp.txt"
    if not path.is_file() or path.stat().st_size > 200:
        return None
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(path.read_text().strip()).isoformat()
    except (ValueError, TypeError, OverflowError):
        return None


def trusted_notebook(nb, parts: dict[str, dict]):
    """The graded notebook as feedback shows it: each test cell's outputs are its verdict,
    every other code cell has none, no execution timestamps."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)   # timestamps: a regrade gives the same notebook
        if cell.cell_type != "code":
            continue
        part = parts.get(cell.metadata.get("nbgrader", {}).get("grade_id"))
        if part is None:
            cell.outputs = []
        elif part["score"] >= part["points"]:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                   text=part["message"].rstrip() + "\n")]
        else:
            cell.outputs = [nbformat.v4.new_output(
                "error", ename="CheckFailed", evalue=part["message"],
                traceback=[f"CheckFailed: {part['message']}"])]
        cell.execution_count = None
    return nb
