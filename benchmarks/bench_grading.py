"""Time `nbgrader autograde` per assignment, and record it in benchmarks/RESULTS.md.

A temporary course gets every assignment of ``solutions/``; for each, the solution notebook
is submitted as one student and the released blank as another, and ``nbgrader autograde
NN-slug --force`` is timed for the pair (median of ``--repeats`` runs). Grading the solution
alone and then both gives what one more submission costs, and by difference the fixed cost
of one nbgrader call. Run from the repository root:

    .venv/bin/python benchmarks/bench_grading.py
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from descent.bench import write_section

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Grading time per assignment"
BIN = Path(sys.executable).parent


def nbgrader(course: Path, *args: str) -> float:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run([str(BIN / "nbgrader"), *args], cwd=course, env=env, check=True,
                   capture_output=True, timeout=900)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    assignments = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        shutil.copy(ROOT / "nbgrader_config.py", course)
        shutil.copytree(ROOT / "solutions", course / "solutions")
        for name in assignments:
            nbgrader(course, "generate_assignment", name, "--force")
        for name in assignments:
            times = []
            for student, source in (("solution", course / "solutions"),
                                    ("blank", course / "exercises")):
                target = course / "submitted" / student / name
                target.mkdir(parents=True)
                shutil.copy(source / name / f"{name}.ipynb", target)
                times.append(statistics.median(nbgrader(course, "autograde", name, "--force")
                                               for _ in range(args.repeats)))
            one, pair = times
            rows.append((name, one, pair, pair - one, 2 * one - pair))
            print(f"{name}: one submission {one:.1f} s, two {pair:.1f} s", flush=True)
    load = os.getloadavg()
    lines = [SECTION, "",
             "`nbgrader autograde NN-slug --force` on a temporary course, `OMP_NUM_THREADS=1` as",
             "`make autograde` sets it; median of "
             f"{args.repeats} run(s). *one submission* grades the solution notebook; *two*",
             "adds the released blank; *per submission* is what the second adds (mostly a kernel",
             "start and",
             "`import torch`); *fixed* is the rest of one nbgrader call (start-up, database).",
             "Produced by `.venv/bin/python benchmarks/bench_grading.py`.", "",
             "| assignment | one submission (s) | two submissions (s) | per submission (s) "
             "| fixed (s) |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {n} | {o:.1f} | {p:.1f} | {s:.1f} | {f:.1f} |" for n, o, p, s, f in rows]
    lines += ["", f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
              f"load average after the run {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}.", ""]
    write_section(RESULTS, "\n".join(lines))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
