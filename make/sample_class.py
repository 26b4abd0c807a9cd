"""Write tests/submissions/sample, the sample class of the README's walkthrough.

Two students hand in assignment 01 as a student would: the released notebook
(``exercises/01-problem``, nbgrader's checksums and all) with the answer cells filled in.

- ``alice``: the source notebook's answers (solution markers removed) and its written answer;
  every autograded part passes.
- ``bob``: the same, except two parts: his loss sums instead of averaging (``test-loss``,
  1 point) and he classifies by determinant and trace (``test-classify``, 2 points).

Only answer cells change, so ``nbgrader autograde`` finds every locked and grade cell as it
released them and prints no "checksum ... has changed!" warning. After changing assignment 01,
run ``make release ASSIGNMENT=01-problem`` and then ``.venv/bin/python make/sample_class.py``;
``tests/test_readme.py`` fails while the committed sample differs from what this writes.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "01-problem"
SAMPLE = ROOT / "tests" / "submissions" / "sample"
SOLUTION_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)

BOB = {
    "answer-loss": '''\
def mse_loss(w, X, y):
    return float(np.sum((X @ w - y) ** 2))''',
    "answer-classify": '''\
def classify_critical_point(H, tol=1e-8):
    det, trace = np.linalg.det(H), np.trace(H)
    if abs(det) <= tol:
        return "degenerate"
    if det < 0:
        return "saddle"
    return "minimum" if trace > 0 else "maximum"''',
    "written-critical": "Both are degenerate: the Hessian is the same, so the test cannot tell.",
}


def _notebook(base: Path):
    return nbformat.read(str(base / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), 4)


def solution_answers() -> dict[str, str]:
    """{grade_id: source} of every answer cell of the source notebook, markers removed."""
    return {c.metadata["nbgrader"]["grade_id"]: SOLUTION_MARKER.sub("", c.source)
            for c in _notebook(ROOT / "solutions").cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def submission(answers: dict[str, str]):
    """The released notebook with ``answers`` (grade_id -> source) in its answer cells."""
    nb = _notebook(ROOT / "exercises")
    ids = set()
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = answers[meta["grade_id"]]
            ids.add(meta["grade_id"])
    unknown = set(answers) - ids
    if unknown:
        raise SystemExit(f"no answer cell {sorted(unknown)} in exercises/{ASSIGNMENT}")
    return nb


def students() -> dict[str, nbformat.NotebookNode]:
    solution = solution_answers()
    return {"alice": submission(solution), "bob": submission({**solution, **BOB})}


def main() -> int:
    for name, nb in students().items():
        path = SAMPLE / name / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.validate(nb)
        nbformat.write(nb, str(path))
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
