"""Grading on a GPU: every solution and every training-run corpus entry, graded on CUDA.

``python -m descent.grading.gpu_check`` is the grading step of ``make gpu-check``
(``benchmarks/gpu_check.py``), for a bare CUDA machine: python3 with torch, numpy and
matplotlib, none of the project's pins, no nbgrader, no nbformat, no IPython. It grades each
notebook as the class grader does (:func:`descent.grading.trusted.grade_notebook`: the test
cells, hidden tests included, on the trusted side; the student's cells behind a door), with
the student's side in this process (:class:`~descent.grading.door.LocalDoor`: these are our
own solutions and corpus, not students' code) and ``NBGRADER_EXECUTION`` set, so the
training runs take their graded size on CUDA (:func:`descent.grading.training.graded_on_cuda`)
and are compared with the reference run on the same device.

- every assignment's solution must earn every point;
- every corpus entry of ``tests/submissions/NN-slug/`` whose answer cell or lost parts hold a
  training run (the test cell calls a training check) must lose exactly the parts it lists,
  with its feedback text;

Environment: ``DESCENT_GPU_CHECK_DEVICE`` (``cuda`` or ``cpu``) and ``DESCENT_GPU_CHECK_QUICK``
(``1``: the solutions only, for a dry run on a CPU). It prints a Markdown section for
RESULTS.md and exits non-zero when any notebook is graded otherwise than expected.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ASSIGNMENTS = ("03-sgd", "04-momentum", "05-adaptive", "06-schedules", "07-implementation",
               "08-practice")                 # the ones with training runs
TRAINING_CHECKS = re.compile(
    r"check_(training|logreg|optimizer|loop|amp|accumulation|warmup|compare)\b")


class Node(dict):
    """A notebook read as JSON, with attribute access (what nbformat's NotebookNode gives)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as err:
            raise AttributeError(name) from err

    def __setattr__(self, name, value):
        self[name] = value


def _node(value):
    if isinstance(value, dict):
        return Node({k: _node(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_node(v) for v in value]
    return value


def read_notebook(path: Path) -> Node:
    nb = _node(json.loads(path.read_text()))
    for cell in nb.cells:
        if isinstance(cell.source, list):
            cell.source = "".join(cell.source)
    return nb


def read_cell_file(path: Path) -> tuple[dict[str, str], str]:
    """A corpus entry (``tests/submissions/…/*.cell``): its ``# key: value`` header lines and
    the code after them. The one reader of the format (the tests use it too); here because
    this module must run with the standard library and ``PYTHONPATH=lib`` alone."""
    header, code = {}, []
    for line in path.read_text().splitlines():
        if not code and line.startswith("# ") and ":" in line:
            key, value = line[2:].split(":", 1)
            header[key.strip()] = value.strip()
        else:
            code.append(line)
    return header, "\n".join(code).strip()


def corpus(assignment: str) -> list[dict]:
    """The corpus entries of an assignment: header fields and code."""
    entries = []
    for path in sorted((ROOT / "tests" / "submissions" / assignment).glob("*.cell")):
        header, code = read_cell_file(path)
        entries.append({"name": path.stem, "code": code, **header})
    return entries


def _with_answer(source: Node, cell_id: str, code: str) -> Node:
    nb = _node(json.loads(json.dumps(source)))
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == cell_id]
    cell.source = code
    return nb


def _training_parts(source: Node) -> set[str]:
    return {c.metadata["nbgrader"]["grade_id"] for c in source.cells
            if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
            and TRAINING_CHECKS.search(c.source)}


def grade(nb: Node, source: Node) -> dict:
    from descent.grading import trusted
    from descent.grading.door import LocalDoor

    with LocalDoor() as door:
        verdict = trusted.grade_notebook(nb, source, door)
    return verdict.parts


def main() -> int:
    device = os.environ.get("DESCENT_GPU_CHECK_DEVICE", "cuda")
    quick = os.environ.get("DESCENT_GPU_CHECK_QUICK") == "1"
    os.environ["NBGRADER_EXECUTION"] = "autograde"
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""        # best_device() then picks the CPU
    import torch

    from descent.grading.training import best_device

    if device == "cuda" and not torch.cuda.is_available():
        print("## Grading on CUDA\n\nNo CUDA device: nothing graded.")
        return 1
    rows, wrong = [], []
    for assignment in ASSIGNMENTS:
        source = read_notebook(ROOT / "solutions" / assignment / f"{assignment}.ipynb")
        training = _training_parts(source)
        cases = [{"name": "solution", "nb": source, "loses": ""}]
        if not quick:
            cases += [{**e, "nb": _with_answer(source, e["cell"], e["code"])}
                      for e in corpus(assignment)
                      if {*e["loses"].replace(" ", "").split(","), e["cell"].replace(
                          "answer-", "test-")} & training]
        for case in cases:
            start = time.perf_counter()
            parts = grade(case["nb"], source)
            seconds = time.perf_counter() - start
            lost = {gid for gid, p in parts.items() if p.score < p.points}
            expected = {s.strip() for s in case["loses"].split(",") if s.strip()}
            named = all(case.get("feedback", "") in parts[gid].message for gid in expected)
            ok = lost == expected and named
            if not ok:
                wrong.append(f"{assignment}/{case['name']}: lost {sorted(lost)}, expected "
                             f"{sorted(expected)}" + ("" if named else ", feedback not named"))
            rows.append(f"| {assignment} | {case['name']} | {', '.join(sorted(lost)) or '—'} "
                        f"| {'yes' if ok else '**no**'} | {seconds:.1f} |")
    print(f"## Grading on {best_device().type.upper()}\n")
    print(f"Every solution and {'no' if quick else 'every training-run'} corpus entry of "
          f"{', '.join(ASSIGNMENTS)}, graded as the class grader does (test cells on the "
          "trusted side, `NBGRADER_EXECUTION` set: training runs at their graded size), "
          f"against the reference run on the same device. Produced by `python -m "
          f"descent.grading.gpu_check` (`make gpu-check`).\n")
    print("| assignment | submission | parts lost | as expected | seconds |")
    print("|---|---|---|---|---:|")
    print("\n".join(rows))
    print(f"\n{len(rows) - len(wrong)} of {len(rows)} graded as expected.")
    for line in wrong:
        print(f"- {line}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
