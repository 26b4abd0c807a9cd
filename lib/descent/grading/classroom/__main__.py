"""``python -m descent.grading.classroom grade|export|report``: see the package docstring.

``grade`` exits 1 when any submission is failed, timed out or ran out of memory (a person
must look at it), 0 otherwise; flagged submissions are listed but have a score.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path

from descent.grading.classroom import BLANK_STATUSES, Limits, NotConfined, grade_class, summary
from descent.grading.classroom.course import statuses_path
from descent.grading.report import write_report


def _limits(args) -> Limits:
    given = {"notebook_seconds": args.notebook_timeout, "cell_seconds": args.cell_timeout,
             "memory_mb": args.memory_mb, "processes": args.processes,
             "disk_mb": args.disk_mb}
    return Limits(**{k: v for k, v in given.items() if v is not None})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m descent.grading.classroom")
    commands = parser.add_subparsers(dest="command", required=True)
    grade = commands.add_parser("grade", help="grade every submission of one assignment")
    grade.add_argument("assignment")
    grade.add_argument("--course", default=".", help="course root (default: .)")
    grade.add_argument("--workers", type=int, default=None, help="local processes (default: "
                                                                "one per CPU, at most one per "
                                                                "submission)")
    grade.add_argument("--scheduler", default=None, help="Dask scheduler, tcp://host:8786")
    grade.add_argument("--students", default=None, help="comma-separated ids (default: all)")
    grade.add_argument("--notebook-timeout", type=float, default=None, metavar="S")
    grade.add_argument("--cell-timeout", type=float, default=None, metavar="S")
    grade.add_argument("--memory-mb", type=int, default=None, metavar="N",
                       help="memory of one submission's processes together (default 4096)")
    grade.add_argument("--processes", type=int, default=None, metavar="N",
                       help="processes and threads of one submission (default 64)")
    grade.add_argument("--disk-mb", type=int, default=None, metavar="N",
                       help="the submission's working folder, a tmpfs (default 256)")
    grade.add_argument("--unsafe", action="store_true",
                       help="grade even where this machine cannot confine student code "
                            "(namespaces not permitted): only for trusted work or inside a "
                            "throw-away container without network")
    grade.add_argument("--resources", default=None, metavar="NAME=N,...",
                       help="Dask resources each job needs, e.g. GPU=1 (workers started "
                            "with `dask worker ... --resources GPU=1`)")
    grade.add_argument("--no-progress", action="store_true")
    similar = commands.add_parser("similarity", help="near-copies among the answer cells of "
                                                     "one assignment (reports/ASSIGNMENT-"
                                                     "similarity.html)")
    similar.add_argument("assignment")
    similar.add_argument("--course", default=".")
    similar.add_argument("--threshold", type=float, default=0.8,
                         help="the overlap from which a pair is listed (default 0.8)")
    export = commands.add_parser("export", help="grades with statuses to a CSV")
    export.add_argument("--course", default=".")
    export.add_argument("--to", default="grades.csv")
    report = commands.add_parser("report", help="the summary of the last grading run and "
                                                "its HTML report (reports/ASSIGNMENT.html)")
    report.add_argument("assignment", nargs="*", help="default: every assignment graded")
    report.add_argument("--course", default=".")
    args = parser.parse_args(argv)
    course = Path(args.course)

    if args.command == "grade":
        try:
            limits = _limits(args)
        except ValueError as err:
            parser.error(str(err))
        students = [s.strip() for s in args.students.split(",") if s.strip()] \
            if args.students else None
        try:
            resources = _resources(args.resources)
        except ValueError as err:
            parser.error(str(err))
        try:
            results = grade_class(course, args.assignment, workers=args.workers,
                                  scheduler=args.scheduler, limits=limits, students=students,
                                  progress=not args.no_progress, resources=resources,
                                  unsafe=args.unsafe)
        except (NotConfined, ValueError) as err:
            print(f"cannot grade: {err}", file=sys.stderr)
            return 2
        print(f"report: {write_report(course, args.assignment)}")
        return int(any(r["status"] in BLANK_STATUSES for r in results.values()))
    if args.command == "similarity":
        from descent.grading.similarity import similarity_report

        if not 0 < args.threshold <= 1:
            parser.error(f"--threshold must be in (0, 1], got {args.threshold}")
        path = similarity_report(course, args.assignment, threshold=args.threshold)
        found = json.loads(path.with_suffix(".json").read_text())
        print(f"{len(found['matches'])} pairs at or above {args.threshold:.0%}, "
              f"{len(found['names_a_reference'])} answer cells naming a reference")
        print(f"report: {path}")
        return 0
    if args.command == "export":
        from descent.grading.export import export_csv

        print(f"wrote {export_csv(course, args.to)}")
        return 0
    names = args.assignment or sorted(p.stem for p in (course / "grades").glob("*.json"))
    if not names:
        print(f"no grading runs in {course / 'grades'}", file=sys.stderr)
        return 1
    for name in names:
        path = statuses_path(course, name)
        if not path.exists():
            print(f"{name}: not graded with descent.grading.classroom ({path} missing)",
                  file=sys.stderr)
            return 1
        data = json.loads(path.read_text())
        print(f"== {name} (graded {data['graded_at']}; {data['isolation']['note']})")
        print(summary(data["students"]))
        print(f"report: {write_report(course, name)}")
    return 0


def _resources(text: str | None) -> dict[str, float] | None:
    """``"GPU=1,MEM=4e9"`` → ``{"GPU": 1.0, "MEM": 4e9}``."""
    if not text:
        return None
    out = {}
    for item in text.split(","):
        name, _, amount = item.partition("=")
        try:
            out[name.strip()] = float(amount)
        except ValueError:
            raise ValueError(f"--resources takes NAME=NUMBER pairs, got {item!r}") from None
        if not name.strip() or out[name.strip()] <= 0:
            raise ValueError(f"--resources takes NAME=NUMBER pairs with NUMBER > 0, got {item!r}")
    return out


if __name__ == "__main__":
    code = main()
    # The exit's last garbage collection would look at every object torch and sympy made
    # (0.5 s); all that is left is to exit.
    gc.freeze()
    sys.exit(code)
