"""Grade a whole class in parallel, each submission confined, each with a status.

nbgrader stays the gradebook, the release, the feedback and the formgrader; this grades::

    python -m descent.grading.classroom grade 02-gradient-descent --workers 8
    python -m descent.grading.classroom export --to grades.csv

1. A *template* is built once (:func:`~.course.build_template`): the assignment's source and
   a private gradebook made by ``generate_assignment``.
2. Each student is one :class:`~.job.Job` (plain data, no shared disk) graded by
   :func:`~.job.grade_submission` in this process and a pool of others (``--workers`` in
   all), or on Dask workers: the test cells, hidden tests included, run in the worker
   (:mod:`descent.grading.trusted`); the student's code runs in a confined process
   (:mod:`descent.grading.confine`) that never sees a test and sends back plain data only.
3. The parent merges each result into the course's ``gradebook.db`` (serially), writes the
   graded notebook (verdicts only) for ``nbgrader generate_feedback``, and keeps the statuses
   in ``grades/<assignment>.json``.

Statuses, most severe first: ``failed`` (missing, oversized or malformed notebook, a process
that died, a broken protocol, a grader error), ``timeout`` (the runner's clock), ``memory``
(the job's memory cgroup killed it), ``flagged`` (graded, but something a person should look
at), ``graded``. The score is blank for the first three: never a silent 0.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import gc
import multiprocessing
import os
import queue
import sys
import threading
import time
from pathlib import Path

from descent.grading.classroom.course import (
    build_template,
    ensure_assignment,
    merge,
    pack_submission,
    source_directory,
    write_statuses,
)
from descent.grading.classroom.job import (
    BLANK_STATUSES,
    STATUSES,
    Job,
    grade_submission,
    result,
    warm_up,
)
from descent.grading.confine import Confinement, Limits, close_ahead, probe

DEFAULT_LIMITS = Limits()

__all__ = ["BLANK_STATUSES", "DEFAULT_LIMITS", "STATUSES", "Confinement", "Job", "Limits",
           "NotConfined", "grade_class", "grade_submission", "prepare", "summary"]


class NotConfined(RuntimeError):
    """This machine cannot confine student code, and ``unsafe`` was not given."""


def submissions(course: Path, assignment: str, students=None) -> dict[str, Path | None]:
    """{student: submission folder, or None when a named student has none}."""
    submitted = course / "submitted"
    if students is None:
        students = sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir())
    return {s: (submitted / s / assignment if (submitted / s / assignment).is_dir() else None)
            for s in students}


def prepare(course: Path, assignment: str, limits: Limits = DEFAULT_LIMITS,
            students=None, unsafe: bool = False, meanwhile=None
            ) -> tuple[list[Job], dict[str, dict], Confinement]:
    """The jobs of a grading run, the results known without one (no submission, or none
    that can be read), and the confinement this machine allows (refused unless ``unsafe``
    where it allows none). Makes sure the main gradebook knows the assignment.
    ``meanwhile``: called while nbgrader builds the template (see :func:`build_template`);
    given, this process grades too, and the student's side of its first job starts now."""
    course = Path(course).resolve()
    source = source_directory(course)
    if not (course / source / assignment).is_dir():
        found = sorted(p.name for p in (course / source).iterdir() if p.is_dir())
        raise ValueError(f"assignment {assignment!r} is not in {course / source} "
                         f"(found: {', '.join(found) or 'nothing'})")
    # The probe and the template's nbgrader run are separate processes: started together,
    # they take the time of the longer. The main gradebook learns a new assignment from the
    # template's.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        probing = pool.submit(probe, unsafe, limits if meanwhile else None)
        try:
            template = build_template(course, assignment, meanwhile)
            ensure_assignment(course, assignment, template)
        except BaseException:
            concurrent.futures.wait([probing])
            close_ahead()            # no job will take the student's side started ahead
            raise
        confinement = probing.result()
    if not (confinement.namespaces or confinement.unsafe):
        raise NotConfined(f"{confinement.note}. Grade in a machine or container that permits "
                          "Linux namespaces, or pass --unsafe to run student code as a plain "
                          "process (only for work you trust, or in a throw-away container "
                          "without network).")
    folders = submissions(course, assignment, students)
    jobs, results = [], {}
    for student, folder in folders.items():
        packed = (f"no submission folder submitted/{student}/{assignment}" if folder is None
                  else pack_submission(folder, assignment, limits))
        if isinstance(packed, str):
            results[student] = result("failed", packed)
        else:
            jobs.append(Job(assignment, student, template, packed, limits, unsafe, source,
                            confinement))
    return jobs, results, confinement


def grade_class(course, assignment: str, *, workers: int | None = None, scheduler=None,
                limits: Limits = DEFAULT_LIMITS, students=None, progress: bool = True,
                report=None, resources: dict[str, float] | None = None,
                unsafe: bool = False) -> dict[str, dict]:
    """Grade every submission of ``assignment`` in ``course``; {student: result}.

    ``workers``: local processes (default: one per CPU, at most one per submission; 1 grades
    in this process, serially).
    ``scheduler``: a Dask scheduler address or a ``distributed.Client``; the jobs then run on
    its workers, which need the same environment but no shared disk (each confines its jobs
    the same way, or fails them). ``students``: grade only these (a named student without a
    submission folder is ``failed``). ``report``: where the summary is printed (a file;
    default stdout; False: not printed). ``resources``: what each job needs of a Dask worker
    (``{"GPU": 1}``: one submission per GPU at a time). ``unsafe``: grade even where student
    code cannot be confined (see :class:`NotConfined`).
    """
    start = time.monotonic()
    course = Path(course).resolve()
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    # No more worker processes than submissions: each costs a start and its imports.
    folders = submissions(course, assignment, students).values()
    workers = max(1, min(workers, sum(folder is not None for folder in folders)))
    # Graded here, this process is one of the workers (see run_jobs). It imports what a job
    # uses while nbgrader builds the template, and the other workers, started first, too.
    local = scheduler is None
    pool = local_pool(workers - 1) if local and workers > 1 else None
    try:
        jobs, results, confinement = prepare(course, assignment, limits, students, unsafe,
                                             meanwhile=warm_up if local else None)

        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs) + len(results), unit="student", desc=assignment,
                   disable=not progress or not sys.stderr.isatty())
        bar.update(len(results))
        for student, outcome in results.items():
            merge(course, assignment, student, outcome)
        # Merged as each job returns: the gradebook has one writer, this process, and an
        # interrupted run keeps what it graded.
        for student, outcome in run_jobs(jobs, workers, scheduler, resources, pool):
            results[student] = outcome
            merge(course, assignment, student, outcome)
            write_statuses(course, assignment, {student: outcome}, limits, confinement)
            bar.update(1)
        bar.close()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        close_ahead()                # when no job of this process took it
    results = dict(sorted(results.items()))
    write_statuses(course, assignment, results, limits, confinement)
    if report is not False:
        print(summary(results, time.monotonic() - start, confinement), file=report or sys.stdout)
    return results


def local_pool(processes: int) -> concurrent.futures.ProcessPoolExecutor:
    """``processes`` fresh processes (spawned: nothing of this process's state is inherited),
    each already importing what a job uses (:func:`~.job.warm_up`)."""
    pool = concurrent.futures.ProcessPoolExecutor(
        processes, mp_context=multiprocessing.get_context("spawn"))
    for _ in range(processes):
        pool.submit(_warm_up_worker)
    return pool


def _warm_up_worker() -> None:
    warm_up()
    # What is imported lives as long as the worker: frozen, it is out of the garbage
    # collector's sight, which spares every later collection a look at torch's and sympy's
    # objects, and the worker's exit (which the end of a run waits for) a final one, 0.5 s.
    gc.freeze()


def run_jobs(jobs: list[Job], workers: int, scheduler=None, resources=None, pool=None):
    """Yield (student, result) as jobs finish; a job that raises becomes ``failed``.

    Locally, this process is one of the ``workers``: it grades the jobs that the other
    ``workers - 1`` processes (``pool``: started already, else here; spawned, nothing of this
    process's state inherited) have not taken. Its own first job starts as soon as the
    template is built, the others' once a new process has imported what a job uses."""
    if scheduler is not None:                # another machine: each worker probes its own
        jobs = [dataclasses.replace(job, confinement=None) for job in jobs]
        yield from _run_dask(jobs, scheduler, resources)
    elif workers == 1 or not jobs:
        for job in jobs:
            yield job.student, grade_submission(job)
    else:
        with contextlib.nullcontext(pool) if pool else local_pool(workers - 1) as running:
            yield from _run_here_and_in(running, workers - 1, jobs)


def _run_here_and_in(pool, processes: int, jobs: list[Job]):
    waiting = collections.deque(jobs)         # popleft is atomic: shared with the feeders
    finished: queue.SimpleQueue = queue.SimpleQueue()

    def feed() -> None:                       # keeps one pool process busy, a job at a time
        while True:
            try:
                job = waiting.popleft()
            except IndexError:
                return
            try:
                future = pool.submit(grade_submission, job)
            except concurrent.futures.BrokenExecutor:
                waiting.appendleft(job)       # a pool process died: this one grades the rest
                return
            try:
                done = _outcome(future.exception, future.result)
            except BaseException as err:      # noqa: BLE001 - cancelled: none may go missing
                done = _raised(err)
            finished.put((job.student, done))

    for _ in range(processes):
        threading.Thread(target=feed, daemon=True).start()
    left = len(jobs)
    while left:
        try:
            job = waiting.popleft()
        except IndexError:                    # the last ones are in the pool
            try:
                done = finished.get(timeout=1)
            except queue.Empty:               # (or handed back: looked for again)
                continue
        else:
            done = job.student, grade_submission(job)
        left -= 1
        yield done
        while not finished.empty():
            left -= 1
            yield finished.get()


def _run_dask(jobs: list[Job], scheduler, resources=None):
    from distributed import Client, as_completed

    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        futures = {client.submit(grade_submission, job, pure=False, resources=resources):
                   job.student for job in jobs}
        for future in as_completed(list(futures)):
            yield futures[future], _outcome(future.exception, future.result)
    finally:
        if client is not scheduler:
            client.close()


def _outcome(exception, value) -> dict:
    error = exception()
    return value() if error is None else _raised(error)


def _raised(error: BaseException) -> dict:
    return result("failed", f"the grading job raised {type(error).__name__}: {error}")


def summary(results: dict[str, dict], seconds: float | None = None,
            isolation: Confinement | None = None) -> str:
    """Counts per status, the students who need a person (with reasons), throughput."""
    counts = collections.Counter(r["status"] for r in results.values())
    lines = ["status     students", *(f"{s:<10} {counts[s]:>8}" for s in STATUSES)]
    attention = [(s, r) for s, r in results.items() if r["status"] != "graded"]
    if attention:
        lines += ["", "needs attention:"]
        lines += [f"  {s:<20} {r['status']:<8} {r['reason']}" for s, r in attention]
    if seconds:
        lines += ["", f"{len(results)} submissions in {seconds:.1f} s "
                      f"({60 * len(results) / seconds:.1f} per minute)"]
    if isolation is not None:
        lines.append(f"confinement: {isolation.note}")
    return "\n".join(lines)
