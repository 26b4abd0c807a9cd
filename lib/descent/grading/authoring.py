"""Helpers to write an nbgrader source notebook with nbformat (``solutions/NN-slug/``).

A source notebook is built by a short script from these cells, so its nbgrader metadata is
always well formed:

- :func:`markdown` / :func:`code` — locked context cells (instructions, imports, data);
- :func:`answer` — an autograded solution cell: the student's function, with
  ``### BEGIN SOLUTION`` / ``### END SOLUTION`` around only the lines that implement the
  equation;
- :func:`tests` — a grade cell with points: visible checks a student runs, then
  ``### BEGIN HIDDEN TESTS`` … ``### END HIDDEN TESTS`` with new seeds and shapes;
- :func:`written` — a manually graded markdown answer with points.

``grade_id`` values must be unique in the notebook; nbgrader matches cells by them.
"""

from __future__ import annotations

from textwrap import dedent

import nbformat


def _meta(grade_id: str, *, grade: bool, solution: bool, locked: bool,
          points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def markdown(source: str, grade_id: str | None = None):
    cell = nbformat.v4.new_markdown_cell(dedent(source).strip())
    if grade_id:
        cell.metadata = _meta(grade_id, grade=False, solution=False, locked=True)
    return cell


def code(source: str, grade_id: str):
    return nbformat.v4.new_code_cell(dedent(source).strip(),
                                     metadata=_meta(grade_id, grade=False, solution=False,
                                                    locked=True))


def answer(source: str, grade_id: str):
    return nbformat.v4.new_code_cell(dedent(source).strip(),
                                     metadata=_meta(grade_id, grade=False, solution=True,
                                                    locked=False))


def tests(source: str, grade_id: str, points: float):
    return nbformat.v4.new_code_cell(dedent(source).strip(),
                                     metadata=_meta(grade_id, grade=True, solution=False,
                                                    locked=True, points=points))


def written(source: str, grade_id: str, points: float):
    return nbformat.v4.new_markdown_cell(dedent(source).strip(),
                                         metadata=_meta(grade_id, grade=True, solution=True,
                                                        locked=False, points=points))


def notebook(cells) -> nbformat.NotebookNode:
    cells = list(cells)
    for i, cell in enumerate(cells):                 # stable ids: regenerating changes nothing
        cell.id = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell-{i:02d}"
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python",
                                  "name": "python3"},
                   "language_info": {"name": "python"}}
    return nb


def write(nb, path) -> None:
    nbformat.validate(nb)
    nbformat.write(nb, str(path))
