"""Untrusted code computes, trusted code compares: the record of a grading kernel and its replay.

nbgrader runs the student's answers and the test cells in one kernel, so an answer can patch
whatever the test cells use (``numpy.allclose``, :mod:`descent.grading`, IPython's error
display) and pass every test. The verdict therefore comes from elsewhere:

1. **Record** (the student's kernel, untrusted). When ``DESCENT_GRADING_TAPE`` names a file,
   importing :mod:`descent.grading` starts a :class:`Recorder`. Every
   :func:`descent.grading.sandbox.call` — the one door through which the checks call student
   code — appends its :class:`~descent.grading.sandbox.Outcome` to that file as plain JSON
   (numbers, arrays as bytes, strings; never pickles), tagged with a digest of the cell that ran
   it and the line of the check that asked. After each cell the recorder also compares the
   functions the checks rely on with what they were at import and notes any replacement.
2. **Replay** (:func:`trusted_parts`, a clean process that never ran student code). It executes
   the *source* notebook's setup and grade cells with the hidden tests, every name an answer
   cell defines standing for a :class:`StudentName` placeholder. Each ``sandbox.call`` returns
   the recorded outcome instead of calling anything, and the checks judge it with the reference,
   exactly as they would in the kernel. A grade cell that raises scores 0, one that does not
   scores its points: the trusted verdict of every autograded part.

What this defeats: patched comparisons, checks or error display, and answers whose values lie
about themselves (``__eq__`` always True, float subclasses): the replay sees only the numbers.
What it cannot defeat: a kernel that forges the record itself by computing the reference's
numbers — that is delegation, caught where :func:`~descent.grading.sandbox.forbid_references`
sees it and otherwise a matter of academic honesty, as copying is.
"""

from __future__ import annotations

import ast
import base64
import builtins
import collections
import contextlib
import hashlib
import json
import os
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

ENV_VAR = "DESCENT_GRADING_TAPE"
LIMIT_VAR = "DESCENT_GRADING_TAPE_LIMIT"
DEFAULT_LIMIT = 64 * 2**20            # bytes of record per notebook; far above any assignment's
_MAX_DEPTH = 12
_MAX_ITEMS = 100_000


class ReplayError(BaseException):
    """The record cannot answer the check: missing, out of order, or corrupted.

    A BaseException, so that no ``except Exception`` in a check can turn a missing record
    into a pass."""


# -- plain-data encoding (runs on untrusted values: must never raise, never call their code) ---

def _array(kind: str, arr: np.ndarray, **extra) -> dict:
    arr = arr.copy(order="C")                  # (ascontiguousarray would make 0-d arrays 1-d)
    return {kind: {"dtype": arr.dtype.str, "shape": list(arr.shape),
                   "data": base64.b64encode(arr.tobytes()).decode("ascii"), **extra}}


def encode(x: Any, depth: int = 0) -> Any:
    """A JSON-able form of ``x`` that :func:`decode` turns back into the same plain data.

    Exact types only: a subclass of float or ndarray is read through the base type, so a value
    that overrides ``__eq__`` or ``__float__`` is recorded as the number it holds. Anything else
    becomes ``{"$opaque": type name}``.
    """
    if depth > _MAX_DEPTH:
        return {"$opaque": "nested too deeply"}
    if x is None or x is True or x is False:
        return x
    if isinstance(x, bool):                     # numpy bool_ is not a bool
        return bool.__bool__(x)
    if isinstance(x, int):
        value = int.__index__(x)
        return value if abs(value) < 2**53 else {"$int": str(value)}
    if isinstance(x, float):
        value = float.__float__(x)
        return value if np.isfinite(value) else {"$float": repr(value)}
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, torch.Tensor):
        try:
            t = torch.Tensor.detach(x).as_subclass(torch.Tensor).cpu()
            dtype = str(t.dtype).removeprefix("torch.")
            if t.dtype == torch.bfloat16:
                t = t.float()
            return _array("$tensor", t.numpy(), torch_dtype=dtype)
        except Exception as err:                 # noqa: BLE001 - e.g. a sparse or meta tensor
            return {"$opaque": f"tensor ({type(err).__name__})"}
    if isinstance(x, np.ndarray):
        arr = x.view(np.ndarray)
        if arr.dtype.kind not in "biufc":
            return {"$opaque": f"ndarray of {arr.dtype}"}
        return _array("$ndarray", arr)
    if isinstance(x, np.generic) and np.dtype(type(x)).kind in "biufc":
        return _array("$npscalar", np.asarray(x))
    if isinstance(x, tuple):
        items = [encode(v, depth + 1) for v in tuple.__iter__(x)][:_MAX_ITEMS]
        fields = getattr(type(x), "_fields", None)
        if isinstance(fields, tuple) and all(type(f) is str for f in fields) \
                and len(fields) == len(items):
            return {"$namedtuple": {"name": str(type(x).__name__), "fields": list(fields),
                                    "values": items}}
        return {"$tuple": items}
    if isinstance(x, list):
        return [encode(v, depth + 1) for v in list.__iter__(x)][:_MAX_ITEMS]
    if isinstance(x, dict):
        return {"$dict": [[encode(k, depth + 1), encode(v, depth + 1)]
                          for k, v in list(dict.items(x))[:_MAX_ITEMS]]}
    return {"$opaque": _type_name(x)}


def _type_name(x) -> str:
    try:
        cls = type(x)
        return f"{cls.__module__}.{cls.__qualname__}"
    except Exception:                            # noqa: BLE001 - a hostile metaclass
        return "an object"


class Opaque:
    """A value the record could not hold as plain data (a student's own object)."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


_NAMEDTUPLES: dict[tuple, type] = {}


def _namedtuple(name: str, fields: list[str]) -> type:
    key = (name, tuple(fields))
    if key not in _NAMEDTUPLES:
        _NAMEDTUPLES[key] = collections.namedtuple(name, fields)
    return _NAMEDTUPLES[key]


def _decode_array(spec: dict) -> np.ndarray:
    dtype = np.dtype(spec["dtype"])
    if dtype.kind not in "biufc":
        raise ReplayError(f"the record holds an array of dtype {dtype}")
    shape = tuple(int(n) for n in spec["shape"])
    data = base64.b64decode(spec["data"])
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def decode(x: Any) -> Any:
    """The inverse of :func:`encode`; validates as it goes (the record is untrusted input)."""
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, list):
        return [decode(v) for v in x]
    if not isinstance(x, dict) or len(x) != 1:
        raise ReplayError(f"the record holds a malformed value: {str(x)[:80]}")
    (tag, body), = x.items()
    if tag == "$int":
        return int(body)
    if tag == "$float":
        return float(body)
    if tag == "$ndarray":
        return _decode_array(body)
    if tag == "$npscalar":
        return _decode_array(body)[()]
    if tag == "$tensor":
        arr = _decode_array(body)
        dtype = getattr(torch, str(body.get("torch_dtype", "")), None)
        if not isinstance(dtype, torch.dtype):
            raise ReplayError(f"the record holds a tensor of dtype {body.get('torch_dtype')!r}")
        return torch.from_numpy(arr).to(dtype)
    if tag == "$tuple":
        return tuple(decode(v) for v in body)
    if tag == "$namedtuple":
        cls = _namedtuple(str(body["name"]), [str(f) for f in body["fields"]])
        return cls(*(decode(v) for v in body["values"]))
    if tag == "$dict":
        return {_hashable(decode(k)): decode(v) for k, v in body}
    if tag == "$opaque":
        return Opaque(str(body))
    raise ReplayError(f"the record holds an unknown tag {tag!r}")


def _hashable(key):
    return key if isinstance(key, (str, int, float, bool, type(None), tuple)) else repr(key)


def digest(source: str) -> str:
    """Which cell ran: the cell's code as nbgrader executes it. Comment-only and blank lines
    and trailing spaces are left out: nbgrader prefixes a test cell it restores with a
    comment, and the hidden-test markers are comments."""
    text = "\n".join(line.rstrip() for line in source.splitlines()
                     if line.strip() and not line.lstrip().startswith("#"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def site(depth: int = 2) -> str:
    """The check that asks for an outcome: its module, function and line."""
    frame = sys._getframe(depth)
    code = frame.f_code
    return f"{frame.f_globals.get('__name__', '?')}:{code.co_qualname}:{frame.f_lineno}"


# -- the record (the student's kernel) -------------------------------------------------------

# Modules whose functions the checks (or nbgrader's error reporting) rely on; with every
# loaded ``descent`` module they are the functions a tampering answer would replace.
WATCHED_MODULES = ("numpy", "numpy.testing", "numpy.linalg", "torch", "torch.testing",
                   "torch.nn.functional", "math", "copy", "inspect", "json")
WATCHED_BUILTINS = ("isinstance", "issubclass", "float", "int", "bool", "abs", "len", "getattr",
                    "hasattr", "type", "all", "any", "min", "max", "sum", "repr", "str",
                    "round", "range", "zip", "map", "sorted", "iter", "next", "id", "vars",
                    "callable", "print", "Exception", "AssertionError", "BaseException")
SHELL_METHODS = ("showtraceback", "_showtraceback", "showsyntaxerror", "run_cell",
                 "run_cell_async", "run_code", "run_ast_nodes", "get_exception_only")


def _watched() -> dict[str, Any]:
    """name → object for every function and class the verdict of a grade cell depends on."""
    seen: dict[str, Any] = {f"builtins.{n}": getattr(builtins, n) for n in WATCHED_BUILTINS}
    for name, module in list(sys.modules.items()):
        if not (name in WATCHED_MODULES or name == "descent" or name.startswith("descent.")):
            continue
        for attr, value in list(vars(module).items()):
            if not callable(value) or attr.startswith("__"):
                continue
            seen[f"{name}.{attr}"] = value
            code = getattr(value, "__code__", None) if isinstance(value, types.FunctionType) \
                else None
            if code is not None:
                seen[f"{name}.{attr}.__code__"] = code
            if isinstance(value, type) and str(getattr(value, "__module__", "")).startswith(
                    "descent"):
                for key, member in list(vars(value).items()):
                    if isinstance(member, (types.FunctionType, classmethod, staticmethod,
                                           property)):
                        seen[f"{name}.{attr}.{key}"] = member
    for key, member in list(vars(torch.Tensor).items()):
        if callable(member) and not key.startswith("__"):
            seen[f"torch.Tensor.{key}"] = member
    shell = _shell()
    if shell is not None:
        for method in SHELL_METHODS:
            seen[f"IPython.InteractiveShell.{method}"] = getattr(type(shell), method, None)
            seen[f"get_ipython().{method} (on the instance)"] = vars(shell).get(method)
        seen["get_ipython().custom_exceptions"] = tuple(shell.custom_exceptions)
        seen["sys.excepthook"] = sys.excepthook
    return seen


def _shell():
    module = sys.modules.get("IPython")
    if module is None:
        return None
    try:
        return module.get_ipython()
    except Exception:                            # noqa: BLE001
        return None


_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep


def _same_or_benign(name: str, original, now: dict, baseline: dict) -> bool:
    """Unchanged, or changed by torch itself: torch wraps ``torch.manual_seed`` when dynamo
    loads and each optimizer class's ``step`` on first use, with ``functools.wraps``."""
    new = now[name]
    if new is original or (type(new) is tuple and new == original):
        return True
    if name.endswith(".__code__"):
        owner = name.removesuffix(".__code__")   # a replaced function is reported by itself
        return now.get(owner) is not baseline.get(owner)
    code = getattr(new, "__code__", None)            # (wraps copies __module__: ask the code)
    if not str(getattr(code, "co_filename", "")).startswith(_TORCH_DIR):
        return False
    for _ in range(10):                          # functools.wraps chains
        new = getattr(new, "__wrapped__", None)
        if new is None:
            return False
        if new is original:
            return True
    return False


class Recorder:
    """Appends each outcome (and each replaced function) to the record, one JSON line each."""

    def __init__(self, path: str | os.PathLike | None = None, limit: int = DEFAULT_LIMIT):
        self.path = None if path is None else Path(path)
        self.lines: list[str] = []
        self.limit, self.size, self.full = limit, 0, False
        self.cell = digest("")
        self.cells_run = 0
        self.baseline = _watched()
        self.reported: set[str] = set()
        self._file = None if self.path is None else open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._write({"kind": "start", "pid": os.getpid()})

    def _write(self, entry: dict) -> None:
        if self.full:
            return
        line = json.dumps(entry, allow_nan=False, separators=(",", ":"))
        if self.size + len(line) > self.limit:
            self.full = True
            line = json.dumps({"kind": "overflow", "limit": self.limit})
        self.size += len(line) + 1
        if self._file is None:
            self.lines.append(line)
        else:
            self._file.write(line + "\n")
            self._file.flush()

    def begin_cell(self, source: str) -> None:
        self.cell = digest(source)
        self.cells_run += 1

    def end_cell(self, label: str | None = None) -> None:
        """Note every watched function replaced since the start (once per name)."""
        now = _watched()
        for name, original in self.baseline.items():
            if name in self.reported or name not in now or _same_or_benign(name, original,
                                                                             now, self.baseline):
                continue
            self.reported.add(name)
            where = f" by the code run in {label}" if label else ""
            self._write({"kind": "tamper", "what": f"{name} was replaced{where}"})
        for name, value in now.items():          # modules imported later join the baseline
            self.baseline.setdefault(name, value)

    def record(self, where: str, outcome) -> None:
        try:
            entry = {"kind": "outcome", "cell": self.cell, "site": where,
                     "outcome": {"value": encode(outcome.value),
                                 "error": None if outcome.error is None else str(outcome.error),
                                 "delegated": [str(s) for s in outcome.delegated],
                                 "mutated": [str(s) for s in outcome.mutated],
                                 "observed": encode(outcome.observed)}}
            self._write(entry)
        except Exception as err:                 # noqa: BLE001 - never break the student's run
            self._write({"kind": "outcome", "cell": self.cell, "site": where,
                         "outcome": {"value": {"$opaque": f"unrecordable ({err!r:.80})"},
                                     "error": None, "delegated": [], "mutated": []}})

    # IPython event callbacks
    def _pre_run_cell(self, info) -> None:
        self.begin_cell(getattr(info, "raw_cell", "") or "")

    def _post_run_cell(self, result) -> None:
        count = getattr(result, "execution_count", None)
        self.end_cell(f"cell [{count}]" if count else None)


_ACTIVE: Recorder | Replayer | None = None


def activate_from_env() -> Recorder | None:
    """Start recording when the grading kernel was given a record file (idempotent)."""
    global _ACTIVE
    path = os.environ.get(ENV_VAR)
    if not path or isinstance(_ACTIVE, Recorder):
        return _ACTIVE if isinstance(_ACTIVE, Recorder) else None
    _ACTIVE = Recorder(path, int(os.environ.get(LIMIT_VAR, DEFAULT_LIMIT)))
    shell = _shell()
    if shell is not None:
        shell.events.register("pre_run_cell", _ACTIVE._pre_run_cell)
        shell.events.register("post_run_cell", _ACTIVE._post_run_cell)
        # Inside a cell IPython swaps in its own hook and restores this one afterwards.
        _ACTIVE.baseline["sys.excepthook"] = getattr(shell, "sys_excepthook", sys.excepthook)
    return _ACTIVE


@contextlib.contextmanager
def recording(recorder: Recorder | None = None) -> Iterator[Recorder]:
    """Record in this process (tests, and the in-process corpus) instead of from the env."""
    global _ACTIVE
    saved, _ACTIVE = _ACTIVE, recorder or Recorder()
    try:
        yield _ACTIVE
    finally:
        _ACTIVE = saved


def record(where: str, outcome) -> None:
    if isinstance(_ACTIVE, Recorder):
        _ACTIVE.record(where, outcome)


def replaying() -> bool:
    return isinstance(_ACTIVE, Replayer)


def replay(where: str):
    assert isinstance(_ACTIVE, Replayer)
    return _ACTIVE.next(where)


# -- the replay (a clean process) -------------------------------------------------------------

def parse(lines) -> tuple[list[dict], list[str]]:
    """The entries of a record, and what was wrong with it (corrupt lines, overflow)."""
    entries, problems = [], []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            problems.append(f"line {number} of the grading record is not valid JSON "
                            "(the record was written to by something else than the grader)")
            continue
        if not isinstance(entry, dict) or entry.get("kind") not in (
                "start", "outcome", "tamper", "overflow"):
            problems.append(f"line {number} of the grading record is not a grader entry")
            continue
        if entry["kind"] == "overflow":
            problems.append(f"the grading record exceeded its limit of {entry.get('limit')} "
                            "bytes; later checks have no record")
        entries.append(entry)
    starts = sum(e["kind"] == "start" for e in entries)
    if starts > 1:
        problems.append(f"the grading record was started {starts} times (the notebook "
                        "reloaded descent.grading, or the record was tampered with)")
    return entries, problems


class Replayer:
    """Answers each ``sandbox.call`` of a grade cell with the outcome the kernel recorded."""

    def __init__(self, entries: list[dict]):
        self.by_cell: dict[str, dict[str, collections.deque]] = {}
        self.tampering: list[str] = []
        for entry in entries:
            if entry["kind"] == "outcome":
                cell = self.by_cell.setdefault(str(entry.get("cell")), {})
                cell.setdefault(str(entry.get("site")), collections.deque()).append(
                    entry.get("outcome"))
            elif entry["kind"] == "tamper":
                self.tampering.append(str(entry.get("what"))[:300])
        self.current: dict[str, collections.deque] = {}
        self.consumed = 0

    @contextlib.contextmanager
    def cell(self, source: str) -> Iterator[None]:
        self.current, self.consumed = self.by_cell.get(digest(source), {}), 0
        try:
            yield
        finally:
            self.current = {}

    def next(self, where: str):
        from descent.grading.sandbox import Outcome

        queue = self.current.get(where)
        if not queue:
            if self.consumed == 0:
                raise ReplayError("your notebook never ran this part's checks (the test cell "
                                  "stopped before them, or was changed)")
            raise ReplayError(f"the record of your notebook has no outcome for check {where}")
        self.consumed += 1
        raw = queue.popleft()
        if not isinstance(raw, dict):
            raise ReplayError("the record holds a malformed outcome")
        error, delegated, mutated = raw.get("error"), raw.get("delegated"), raw.get("mutated")
        if not (error is None or isinstance(error, str)) or not all(
                isinstance(v, list) and all(isinstance(s, str) for s in v)
                for v in (delegated, mutated)):
            raise ReplayError("the record holds a malformed outcome")
        return Outcome(value=decode(raw.get("value")), error=error, delegated=list(delegated),
                       mutated=list(mutated), observed=decode(raw.get("observed")))


class StudentName:
    """Stands for a name an answer cell defines; the replay never calls the student's code."""

    def __init__(self, name: str):
        self.__name__ = self.__qualname__ = name

    def __call__(self, *args, **kwargs):
        raise ReplayError(f"the check called {self.__name__} outside the recorded calls")

    def __repr__(self) -> str:
        return f"<your {self.__name__}>"


class _Namespace(dict):
    """A notebook namespace in which every undefined name is the student's (a placeholder)."""

    def __missing__(self, key: str):
        if hasattr(builtins, key):
            return getattr(builtins, key)
        value = self[key] = StudentName(key)
        return value


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
    tampering: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _replaying(replayer: Replayer) -> Iterator[None]:
    global _ACTIVE
    saved, _ACTIVE = _ACTIVE, replayer
    old_env = os.environ.get("NBGRADER_EXECUTION")
    os.environ["NBGRADER_EXECUTION"] = "autograde"        # the notebooks skip their explorations
    try:
        yield
    finally:
        _ACTIVE = saved
        if old_env is None:
            os.environ.pop("NBGRADER_EXECUTION", None)
        else:
            os.environ["NBGRADER_EXECUTION"] = old_env


def autograded_cells(source_nb) -> list:
    """The code grade cells whose points the checks decide (not the written answers)."""
    return [c for c in source_nb.cells if c.cell_type == "code"
            and c.metadata.get("nbgrader", {}).get("grade")
            and not c.metadata.get("nbgrader", {}).get("solution")]


def _calls(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a statement that run now: a lambda's or a def's body runs later."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        yield child
        yield from _calls(child)


def _runs_student_code(stmt: ast.stmt, namespace: _Namespace, tainted: set[str]) -> bool:
    def student(name: str) -> bool:
        return name in tainted or isinstance(namespace.get(name), StudentName) or (
            not dict.__contains__(namespace, name) and not hasattr(builtins, name))

    for node in _calls(stmt):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and student(node.func.id):
            return True
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in tainted:
            return True
    return False


def _run_checks(source: str, namespace: _Namespace, filename: str) -> None:
    """Run a grade cell's statements except its demonstrations.

    A visible test may show the student's result first (``print(gd_step(...))``). Such a line
    calls the student's code directly, not through a check, so it has no record; it and the
    lines using its results are skipped. Had it raised in the kernel, the checks after it never
    ran there, and the replay finds no record for them: the part scores 0 in both.
    """
    tainted: set[str] = set()
    for stmt in ast.parse(source).body:
        if _runs_student_code(stmt, namespace, tainted):
            tainted |= {n.id for n in ast.walk(stmt)
                        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            continue
        exec(compile(ast.Module([stmt], type_ignores=[]), filename, "exec"),  # noqa: S102
             namespace)


def replay_notebook(source_nb, entries: list[dict]) -> TrustedResult:
    """Run the source notebook's setup and grade cells against recorded outcomes."""
    import io

    from descent.grading.feedback import CheckFailed, brief_exception

    replayer = Replayer(entries)
    namespace = _Namespace(__name__="__main__")
    result = TrustedResult(tampering=list(replayer.tampering))
    with _replaying(replayer):
        for cell in source_nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type != "code" or meta.get("solution"):
                continue                          # answers are the student's: placeholders
            printed = io.StringIO()
            if not meta.get("grade"):
                with contextlib.suppress(Exception, ReplayError), \
                        contextlib.redirect_stdout(printed):
                    exec(compile(cell.source, f"<cell {meta.get('grade_id', '')}>", "exec"),
                         namespace)              # noqa: S102 - the instructor's setup cell
                continue
            gid, points = meta["grade_id"], float(meta.get("points", 0))
            part = PartResult(gid, points, points, "")
            with replayer.cell(cell.source):
                try:
                    with contextlib.redirect_stdout(printed):
                        _run_checks(cell.source, namespace, f"<grade cell {gid}>")
                    lines = printed.getvalue().strip().splitlines()
                    part.message = lines[-1] if lines else "passed"
                except CheckFailed as err:
                    part.score, part.message, part.mistake = 0.0, str(err), err.mistake
                except ReplayError as err:
                    part.score, part.message, part.mistake = 0.0, str(err), "no-record"
                except Exception as err:          # noqa: BLE001 - the verdict is a failure
                    part.score, part.message = 0.0, brief_exception(err)
                    part.mistake = "exception"
            result.parts[gid] = part
    return result


def trusted_parts(source_nb, tape_path: str | os.PathLike) -> TrustedResult:
    """The trusted verdict of every autograded part, from the record a kernel left.

    A missing record gives every part 0 with the reason; corrupt lines and replaced functions
    are listed in ``tampering`` (the caller flags the submission).
    """
    path = Path(tape_path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    entries, problems = parse(text.splitlines())
    if not any(e["kind"] == "start" for e in entries):
        problems.append(f"the kernel left no grading record at {path} (descent.grading was "
                        "never imported, or the record was deleted)")
    result = replay_notebook(source_nb, entries)
    result.tampering = problems + result.tampering
    return result
