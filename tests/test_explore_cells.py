"""The "Explore" cells of an unanswered notebook fail with one line, not a raw traceback.

An exploration cell (a plot, an experiment) runs the student's functions; in the released
notebook those are stubs that raise ``NotImplementedError``. Each such cell starts with
``checks.answered(...)`` (:mod:`descent.grading.explore`), which fails first with one line.
The in-process test runs every released notebook that has such cells; the kernel test checks
on one notebook that Jupyter shows that single line and no traceback.
"""

from __future__ import annotations

import os

import nbformat
import pytest
from nbgrader_helpers import ROOT, notebook_path

from descent.grading import explore

WITH_EXPLORE = ("03-sgd", "04-momentum", "05-adaptive", "06-schedules", "08-practice")


def _explore_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and "checks.answered(" in c.source]


def _released(assignment: str):
    return nbformat.read(str(notebook_path(ROOT / "exercises", assignment)), 4)


@pytest.mark.parametrize("assignment", WITH_EXPLORE)
def test_explore_cells_of_a_blank_notebook_raise_one_line(assignment, monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    nb = _released(assignment)
    assert _explore_cells(nb), "the notebook has no explore cell guarded by checks.answered"
    namespace: dict = {"__name__": "__main__"}
    seen = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("grade"):
            continue                                  # the test cells fail on stubs anyway
        if "checks.answered(" not in cell.source:
            exec(compile(cell.source, "<cell>", "exec"), namespace)  # noqa: S102
            continue
        with pytest.raises(explore.NotAnswered) as err:
            exec(compile(cell.source, "<cell>", "exec"), namespace)  # noqa: S102
        lines = err.value._render_traceback_()
        assert len(lines) == 1 and "not written yet" in lines[0], lines
        seen += 1
    assert seen == len(_explore_cells(nb))


def test_answered_passes_on_answers_and_names_what_is_missing(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)

    def written(x):
        return 2 * x

    def stub(x):
        raise NotImplementedError()

    names = {"written": written, "stub": stub}
    explore.answered("written", namespace=names)
    with pytest.raises(explore.NotAnswered, match="stub is not written yet"):
        explore.answered("written", "stub", namespace=names)
    with pytest.raises(explore.NotAnswered, match="nowhere is not defined"):
        explore.answered("nowhere", namespace=names)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    explore.answered("stub", "nowhere", namespace=names)   # skipped while nbgrader grades


def test_jupyter_shows_the_one_line_and_no_traceback(tmp_path):
    """Through a real kernel: the explore cell's error output is that one line."""
    from nbclient import NotebookClient

    nb = _released("06-schedules")
    client = NotebookClient(nb, timeout=120, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_EXECUTION"}
    client.km = client.create_kernel_manager()
    client.start_new_kernel(env=env)
    client.start_new_kernel_client()
    try:
        client.execute(cleanup_kc=False)
    finally:
        client._cleanup_kernel()
    for cell in _explore_cells(nb):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert len(errors) == 1, cell.outputs
        assert errors[0].ename == "NotAnswered"
        assert len(errors[0].traceback) == 1 and "not written yet" in errors[0].traceback[0]
