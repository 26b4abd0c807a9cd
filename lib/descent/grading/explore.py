"""The "Explore" cells of an assignment: a one-line message when the answers are not there yet.

An exploration cell (a plot, an experiment) runs the student's functions. In a notebook whose
answers are still the released stubs, it would fail with a long traceback ending in
``NotImplementedError``. Its first line, ``checks.answered("variance_slope", …)``, checks the
names first and fails with one line instead::

    NotAnswered: variance_slope is not written yet: fill in its YOUR CODE HERE cell above and
    run it, then run this cell again.

IPython shows an exception through its ``_render_traceback_`` when it has one, so the cell
fails (Run All stops there, as it should) with that line and no traceback. While nbgrader
grades, the exploration cells are skipped and this does nothing.
"""

from __future__ import annotations

import os
import sys


class NotAnswered(Exception):
    """An exploration cell run before the answers it uses (one line, no traceback)."""

    def _render_traceback_(self) -> list[str]:
        return [f"NotAnswered: {self}"]


def _is_stub(obj) -> bool:
    """Is ``obj`` a released stub (its code raises NotImplementedError)?"""
    codes = []
    if isinstance(obj, type):
        codes = [getattr(v, "__code__", None) for v in vars(obj).values()]
        codes += [getattr(getattr(v, "__wrapped__", None), "__code__", None)
                  for v in vars(obj).values()]
    else:
        codes = [getattr(obj, "__code__", None)]
    return any(code is not None and "NotImplementedError" in code.co_names for code in codes)


def being_graded() -> bool:
    """True while nbgrader runs the notebook (autograde or validate, which set
    ``NBGRADER_EXECUTION``): the exploration cells (plots, experiments) are skipped, since
    no grade depends on them."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def answered(*names: str, namespace: dict | None = None) -> None:
    """Raise :class:`NotAnswered` when one of the notebook's ``names`` (looked up in the
    caller's globals, or ``namespace``) is missing or still the released stub; nothing while
    nbgrader grades (the exploration is skipped then)."""
    if being_graded():
        return
    if namespace is None:
        namespace = sys._getframe(1).f_globals
    missing = [n for n in names if n not in namespace]
    stubs = [n for n in names if n in namespace and _is_stub(namespace[n])]
    if missing:
        raise NotAnswered(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
                          "defined: run the answer cell(s) above first, then this cell.")
    if stubs:
        raise NotAnswered(f"{', '.join(stubs)} {'is' if len(stubs) == 1 else 'are'} not "
                          "written yet: fill in the YOUR CODE HERE cell(s) above and run "
                          "them, then run this cell again.")
