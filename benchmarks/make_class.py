"""A generated class of submissions, for benchmarking the classroom grader.

``make_class(assignment, dest, n, seed)`` writes ``dest/<student>/<assignment>/<assignment>.ipynb``
for students ``s001`` … and returns ``{student: kind}``. Every notebook starts from the
released notebook (``exercises/``, nbgrader metadata and checksums kept, as a student
downloads it); its answer cells are then filled in from

- the source notebook (``solutions/``): the solution with the ``### BEGIN/END SOLUTION`` lines
  removed, which is what a correct student writes;
- the mistake corpus ``tests/submissions/<assignment>/*.cell`` (format: the docstring of
  ``tests/nbgrader_helpers.py``): a file whose ``loses`` header is empty is a correct
  alternative, any other one a known mistake.

The kinds (each appears at least once, the four broken ones exactly once; the others share
the remaining students 4 : 3 : 2 : 1; ``seed`` picks who gets which kind, which mistakes and
which cells):

=====================  =============================================================
``correct``            the solution, sometimes with correct alternatives from the corpus
``one-mistake``        the solution with one corpus mistake
``several-mistakes``   two or three corpus mistakes, in different answer cells
``blank``              the released notebook untouched (every answer raises
                       NotImplementedError)
``malformed-json``     a correct notebook cut in half: the file is not valid JSON
``missing-notebook``   the assignment folder exists and is empty
``deleted-test-cell``  a correct notebook with one grade (test) cell deleted
``answer-raises``      a correct notebook whose answer cell raises when it runs
=====================  =============================================================

From the repository root::

    .venv/bin/python benchmarks/make_class.py 05-adaptive /tmp/class/submitted --n 40 --seed 0
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
# One reader of the corpus format: the tests' own (tests/ is not a package).
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))
from nbgrader_helpers import Mistake, corpus, fill, solution_answers  # noqa: E402

DEFAULT_ASSIGNMENT = "05-adaptive"
KINDS = ("correct", "one-mistake", "several-mistakes", "blank", "malformed-json",
         "missing-notebook", "deleted-test-cell", "answer-raises")
# Students beyond one of each kind are shared in these proportions (largest remainder first);
# the broken kinds stay at one each.
EXTRA_WEIGHTS = {"correct": 4, "one-mistake": 3, "several-mistakes": 2, "blank": 1}
CORRECT_ALTERNATIVE_CHANCE = 0.3
MAX_STUDENTS = 999                                   # ids have three digits: s001 … s999
# A debugging line left at the top of an answer cell: the cell stops before defining anything.
RAISING_LINE = "print(my_debug_norm)  # checking the gradient's size\n"


@dataclass(frozen=True)
class Plan:
    """What one student's submission is made of."""

    student: str
    kind: str
    answers: dict[str, str]      # grade_id → source; answer cells not listed keep the release
    mistakes: tuple[str, ...]    # corpus mistake names used (empty for correct ones)
    deleted_cell: str | None = None


def make_class(assignment: str, dest: Path, n: int = 40, seed: int = 0) -> dict[str, str]:
    """Write n submissions of ``assignment`` under ``dest``; return ``{student: kind}``."""
    plans = plan_class(assignment, n, seed)
    released = _read(ROOT / "exercises" / assignment / f"{assignment}.ipynb")
    for plan in plans:
        folder = Path(dest) / plan.student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        if plan.kind == "missing-notebook":
            (folder / f"{assignment}.ipynb").unlink(missing_ok=True)   # left by an earlier run
            continue
        text = nbformat.writes(submission(released, plan))
        if plan.kind == "malformed-json":
            text = text[: len(text) // 2]            # as if the upload was cut off
        (folder / f"{assignment}.ipynb").write_text(text, encoding="utf-8")
    return {plan.student: plan.kind for plan in plans}


def plan_class(assignment: str, n: int, seed: int) -> list[Plan]:
    """The submissions of :func:`make_class`, without writing anything."""
    if not len(KINDS) <= n <= MAX_STUDENTS:
        raise ValueError(f"n (students) must be in [{len(KINDS)}, {MAX_STUDENTS}] so that "
                         f"every kind appears once and ids keep three digits, got {n}")
    solutions, code_answers = solution_answers(assignment)
    entries = corpus(assignment)
    mistakes = [m for m in entries if m.loses]
    alternatives = [m for m in entries if not m.loses]
    if not mistakes:
        raise ValueError(f"the corpus tests/submissions/{assignment}/ has no mistake "
                         "(a .cell file with a non-empty `loses` header)")
    for entry in entries:
        if entry.cell not in solutions:
            raise ValueError(f"{entry.name}.cell replaces cell {entry.cell!r}, which is not an "
                             f"answer cell of {assignment}: {', '.join(solutions)}")
    rng = random.Random(seed)
    kinds = [*KINDS, *_share(n - len(KINDS), EXTRA_WEIGHTS)]
    rng.shuffle(kinds)
    grade_cells = _grade_cells(assignment)
    plans = []
    for i, kind in enumerate(kinds, start=1):
        student = f"s{i:03d}"
        answers, used, deleted = dict(solutions), (), None
        if kind == "blank":
            answers = {}
        elif kind == "correct":
            for alt in alternatives:
                if rng.random() < CORRECT_ALTERNATIVE_CHANCE:
                    answers[alt.cell] = alt.code
        elif kind in ("one-mistake", "several-mistakes"):
            chosen = _pick_mistakes(rng, mistakes, 1 if kind == "one-mistake" else
                                    rng.choice((2, 3)))
            answers.update({m.cell: m.code for m in chosen})
            used = tuple(m.name for m in chosen)
        elif kind == "deleted-test-cell":
            deleted = rng.choice(grade_cells)
        elif kind == "answer-raises":
            cell = rng.choice(code_answers)
            answers[cell] = RAISING_LINE + answers[cell]
        plans.append(Plan(student, kind, answers, used, deleted))
    return plans


def _share(count: int, weights: dict[str, int]) -> list[str]:
    """``count`` kinds split in proportion to ``weights``: the same mix for every seed."""
    total = sum(weights.values())
    exact = {kind: count * w / total for kind, w in weights.items()}
    shares = {kind: int(x) for kind, x in exact.items()}
    by_remainder = sorted(weights, key=lambda kind: shares[kind] - exact[kind])
    for kind in by_remainder[: count - sum(shares.values())]:
        shares[kind] += 1
    return [kind for kind, k in shares.items() for _ in range(k)]


def _pick_mistakes(rng: random.Random, mistakes: list[Mistake], count: int) -> list[Mistake]:
    """``count`` mistakes in different answer cells (fewer if the corpus covers fewer)."""
    by_cell: dict[str, list[Mistake]] = {}
    for m in mistakes:
        by_cell.setdefault(m.cell, []).append(m)
    cells = rng.sample(sorted(by_cell), min(count, len(by_cell)))
    return [rng.choice(by_cell[cell]) for cell in cells]


def submission(released, plan: Plan):
    """The released notebook with the plan's answers in place (and a test cell deleted)."""
    return fill(released, plan.answers, plan.deleted_cell)


def _grade_cells(assignment: str) -> list[str]:
    """The autograded test cells (code grade cells) of the released notebook."""
    released = _read(ROOT / "exercises" / assignment / f"{assignment}.ipynb")
    return [c.metadata["nbgrader"]["grade_id"] for c in released.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]


def _read(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (is the assignment name right, and "
                                "was it released with `nbgrader generate_assignment`?)")
    return nbformat.read(str(path), as_version=4)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignment", nargs="?", default=DEFAULT_ASSIGNMENT,
                        help=f"default {DEFAULT_ASSIGNMENT}")
    parser.add_argument("dest", type=Path, help="the folder to fill, e.g. <course>/submitted")
    parser.add_argument("--n", type=int, default=40, help="students (default 40)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        kinds = make_class(args.assignment, args.dest, args.n, args.seed)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    tally = {kind: sum(k == kind for k in kinds.values()) for kind in KINDS}
    print(f"{len(kinds)} submissions of {args.assignment} in {args.dest}: "
          + ", ".join(f"{n} {kind}" for kind, n in tally.items()))


if __name__ == "__main__":
    main()
