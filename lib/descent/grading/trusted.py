"""Grade one notebook from the trusted side: the grade cells never leave this process.

:func:`grade_notebook` walks the submission's cells in order, as a kernel would run them:

- every cell that is not an autograded test (the locked setup, the student's answers, their
  own cells) runs on the **student's side**, through the :class:`~descent.grading.door.Door`;
- every test cell runs **here**, in the source notebook's version (hidden tests included),
  in a namespace where each function or class of the notebook is a
  :class:`~descent.grading.door.StudentName`. The checks call the student's code through
  :func:`descent.grading.sandbox.call`, which crosses the door with the inputs the check
  chose and brings back plain data; the references, the expected values and the verdict
  stay here.

A test cell passes (its points) when it raises nothing, as nbgrader scores it. A line of a
visible test that calls the student's code directly, to show the student a result
(``print(gd_step(...))``), is a demonstration: it has no check in it and is skipped here.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import os
import threading
import types
from collections.abc import Iterator
from dataclasses import dataclass, field

from descent.grading import plain, search
from descent.grading.door import DirectCall, Door, DoorClosed, StudentName, opened


@dataclass
class PartResult:
    """The trusted verdict of one autograded part."""

    grade_id: str
    points: float
    score: float
    message: str
    mistake: str | None = None


@dataclass
class TrustedResult:
    parts: dict[str, PartResult] = field(default_factory=dict)
    cell_errors: dict[str, str] = field(default_factory=dict)   # the student's cells that raised
    concerns: list[str] = field(default_factory=list)           # for a person to look at
    closed: DoorClosed | None = None                            # why grading stopped early


class GraderBug(Exception):
    """A test cell that cannot be graded from the trusted side (the instructor's to fix)."""


def autograded_cells(nb) -> list:
    """The code grade cells whose points the checks decide (not the written answers)."""
    return [c for c in nb.cells if c.cell_type == "code"
            and c.metadata.get("nbgrader", {}).get("grade")
            and not c.metadata.get("nbgrader", {}).get("solution")]


class _Namespace(dict):
    """The grade cells' namespace: a name nobody defined here is the student's."""

    def __missing__(self, key: str):
        if hasattr(builtins, key):
            return getattr(builtins, key)
        value = self[key] = StudentName(key)
        return value


def _student_names(namespace: _Namespace) -> None:
    """Functions and classes the notebook defines are the student's (they may redefine a
    setup cell's ``adam_init``): the grader refers to them by name only."""
    for key, value in list(namespace.items()):
        if isinstance(value, (type, types.FunctionType)) and \
                getattr(value, "__module__", None) == "__main__":
            namespace[key] = StudentName(key)


def _later(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a statement that run now: a lambda's or a def's body runs later."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        yield child
        yield from _later(child)


def _is_demonstration(stmt: ast.stmt, namespace: _Namespace, tainted: set[str]) -> bool:
    """Does this statement call the student's code itself (directly, or in a function it
    defines and passes on), rather than through a check?"""
    def student(name: str) -> bool:
        return name in tainted or isinstance(namespace.get(name), StudentName) or (
            not dict.__contains__(namespace, name) and not hasattr(builtins, name))

    for node in _later(stmt):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and student(node.func.id):
            return True
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in tainted:
            return True
    for node in ast.walk(stmt):                 # code that would have to travel by value
        if isinstance(node, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(isinstance(n, ast.Name) and student(n.id) for n in ast.walk(node)):
                return True
    return False


def _checks_in(stmt: ast.stmt) -> list[str]:
    return [node.func.attr for node in ast.walk(stmt) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and node.func.attr.startswith("check")]


def run_test_cell(source: str, namespace: _Namespace, filename: str) -> None:
    """Run a test cell's statements, demonstrations skipped (see the module doc)."""
    tainted: set[str] = set()
    for stmt in ast.parse(source).body:
        if _is_demonstration(stmt, namespace, tainted):
            if _checks_in(stmt):
                raise GraderBug(f"{filename}: a check ({', '.join(_checks_in(stmt))}) is given "
                                "a function the test cell defines; pass the student's names "
                                "and plain values, or write the function in descent.grading")
            tainted |= {n.id for n in ast.walk(stmt)
                        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            continue
        exec(compile(ast.Module([stmt], type_ignores=[]), filename, "exec"),  # noqa: S102
             namespace)


_GRADING = {"count": 0, "saved": None}
_GRADING_LOCK = threading.Lock()


@contextlib.contextmanager
def grading_environment() -> Iterator[None]:
    """``NBGRADER_EXECUTION`` as nbgrader sets it: the notebooks skip their explorations and
    the checks size training runs for the grader (restored when the last grading ends)."""
    with _GRADING_LOCK:
        if _GRADING["count"] == 0:
            _GRADING["saved"] = os.environ.get("NBGRADER_EXECUTION")
        _GRADING["count"] += 1
        os.environ["NBGRADER_EXECUTION"] = "autograde"
    try:
        yield
    finally:
        with _GRADING_LOCK:
            _GRADING["count"] -= 1
            if _GRADING["count"] == 0:
                if _GRADING["saved"] is None:
                    os.environ.pop("NBGRADER_EXECUTION", None)
                else:
                    os.environ["NBGRADER_EXECUTION"] = _GRADING["saved"]


def grade_notebook(nb, source_nb, door: Door) -> TrustedResult:
    """Every autograded part of ``nb`` (a submission, its locked cells restored), judged here
    with the checks of ``source_nb`` (hidden tests included); the student's cells run behind
    ``door``."""
    tests = {c.metadata["nbgrader"]["grade_id"]: c for c in autograded_cells(source_nb)}
    namespace = _Namespace(__name__="__main__")
    result = TrustedResult()
    with opened(door), grading_environment():
        for cell in source_nb.cells:            # the instructor's setup, whatever was handed in
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "code" and meta.get("locked") and not meta.get("grade") \
                    and not meta.get("solution"):
                with contextlib.suppress(Exception, DirectCall), \
                        contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(cell.source, f"<cell {meta.get('grade_id')}>", "exec"),  # noqa: S102
                         namespace)
        _student_names(namespace)
        for index, cell in enumerate(nb.cells):
            meta = cell.metadata.get("nbgrader", {})
            gid = meta.get("grade_id")
            if cell.cell_type != "code" or gid in result.parts:
                continue
            if gid in tests:
                door.begin(f"test cell {gid}")
                with search.recording(door) as log:        # diagnosis by search (issue 10)
                    result.parts[gid], result.closed = _grade(tests[gid], namespace)
                if result.closed is None:
                    search.name_mistake(result.parts[gid], log, source_nb, gid)
                if result.closed is not None:
                    break
                if result.parts[gid].mistake == "protocol":
                    result.concerns.append(f"{gid}: {result.parts[gid].message}")
                continue
            label = gid or f"cell {index + 1}"
            door.begin(f"cell {label}")
            try:
                error = door.run_cell(label, cell.source)
            except DoorClosed as closed:
                result.closed = closed
                break
            except plain.ProtocolError as err:
                result.concerns.append(f"{label}: the student's side answered out of protocol "
                                       f"({err})")
                continue
            if error:
                result.cell_errors[label] = error
    for gid, cell in tests.items():                  # never reached: no points
        if gid not in result.parts:
            reason = result.closed.reason if result.closed else "the test cell is missing"
            result.parts[gid] = PartResult(gid, float(cell.metadata["nbgrader"]["points"]),
                                           0.0, reason, "not-run")
    return result


def _grade(cell, namespace: _Namespace) -> tuple[PartResult, DoorClosed | None]:
    from descent.grading.feedback import CheckFailed, brief_exception, forget_warnings

    forget_warnings()
    meta = cell.metadata["nbgrader"]
    gid, points = meta["grade_id"], float(meta.get("points", 0))
    part = PartResult(gid, points, points, "")
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            run_test_cell(cell.source, namespace, f"<test cell {gid}>")
        lines = printed.getvalue().strip().splitlines()
        part.message = lines[-1] if lines else "passed"
    except CheckFailed as err:
        part.score, part.message, part.mistake = 0.0, str(err), err.mistake
    except DoorClosed as closed:
        part.score, part.message, part.mistake = 0.0, closed.reason, closed.status
        return part, closed
    except plain.ProtocolError as err:
        part.score, part.mistake = 0.0, "protocol"
        part.message = f"the grader could not read what your code returned ({err})"
    except GraderBug:
        raise
    except Exception as err:                  # noqa: BLE001 - the verdict is a failure
        part.score, part.message, part.mistake = 0.0, brief_exception(err), "exception"
    return part, None
