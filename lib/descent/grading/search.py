"""Diagnosis by search: name a mistake by the mutant of the reference that reproduces it.

When a grade cell fails with only numbers to show ("differs at step 3 …") or with the
student's exception ("adam_step raised NameError …"), the trusted grader looks for the
mistake among the mutants of the reference solution (:mod:`descent.grading.
mutants`, the generator that mutation testing uses). It replays, on each mutant, every call
that the grade cell made of the student's code, with the very same inputs, and compares the
mutant's answers with the student's. A mutant that reproduces **all** of them is named, in the
student's terms: "your code behaves as if (1 − β₂) were β₂ in the second moment v_t". No
name is given unless the numbers are reproduced; a hand-written message of the catalogue
keeps precedence (the search runs only when the check's message has no name in it).

How it works, on the trusted side only (the mutants are our code, never the student's):

- :func:`recording` taps the door while a grade cell runs: each request (the pickled call)
  and the student's answer (plain data) are kept;
- :func:`name_mistake` takes the grade cell's answer cells in the source notebook, builds the
  notebook's namespace once (setup cells and reference answers, run here), and for each
  mutant a copy with the mutated cell; a :class:`_Replay` side answers the recorded requests
  from that namespace, through the same pickles and plain data as a student's side;
- a mutant is dropped at the first answer that differs (tolerance: relative 1e-5, so that
  float32 rounding and another order of operations still match). Calls that run many steps
  (a trajectory, a training run, a schedule's values) are first tried on their first
  :data:`SHORT` steps (:func:`_prefix_rules`), so most mutants cost a few steps each, and
  each replayed call has a CPU deadline of 20 times the reference's own time on it
  (:func:`_limits`), so a mutant caught in a loop costs little;
- the search stops after :data:`BUDGET` CPU seconds per grade cell and
  :data:`NOTEBOOK_BUDGET` per notebook (CPU time, so that a busy machine does not change the
  feedback): no name rather than a slow grade.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import pickle
import re
import signal
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from descent.grading import mutants as generator
from descent.grading import plain

BUDGET = 3.0            # CPU seconds of search per grade cell
NOTEBOOK_BUDGET = 5.0   # CPU seconds of search per notebook (every grade cell together)
CALL_LIMIT = 0.5        # CPU seconds for one replayed call of a mutant (a mutant may loop):
SHORT_LIMIT = 0.1       # the slowest correct call takes ~0.05 s, its first steps ~0.005 s
RTOL = 1e-5             # relative tolerance of "reproduces"
MOST = 3                # mutants named at most

# The mistakes whose messages only locate a difference (or a wrong length): the search may
# name them.
LOCATED = {None, "curve", "measurement", "final-loss", "worked-step", "resume", "slope",
           "tuning", "lr", "non-finite", "step-count", "classification", "loss",
           "wrong-shape", "shape"}
# The messages that say what the student's code did but not which mistake made it do so: an
# exception (reproduced only by a mutant raising the same type and message in the same
# function), an answer of the wrong type or structure, a sampler that misses examples. The
# search may name them too, the check's message kept as the details. A named mistake of the
# catalogue, an input changed in place, a missing validation or a delegation keep their own.
DESCRIBED = {"exception", "wrong-type", "wrong-structure", "coverage"}
SEARCHED = LOCATED | DESCRIBED


@dataclass
class Log:
    """What one grade cell asked of the student's code, and what came back; ``spent``: the
    notebook's search time so far (shared by the logs of one door)."""

    calls: list[tuple[bytes, dict]] = field(default_factory=list)
    spent: list[float] = field(default_factory=lambda: [0.0])


_SPENT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def recording(door) -> Iterator[Log]:
    """While the block runs, every call that crosses ``door`` is kept in the yielded log."""
    log = Log(spent=_SPENT.setdefault(door, [0.0]))
    send = door._send

    def tapped(request):
        answer = send(request)
        if request[0] == "call":
            log.calls.append((request[1], answer))
        return answer

    own = door.__dict__.get("_send")          # an instance attribute of the door's own, if any
    door._send = tapped
    try:
        yield log
    finally:
        if own is None:
            del door._send
        else:
            door._send = own


# -- the reference's namespace and its mutants ---------------------------------------------------

def _code_cells(source_nb, gid: str) -> list[tuple[str | None, str, bool]]:
    """(grade_id, source, is_answer) of the code cells a kernel runs before grade cell
    ``gid``: the setup, the reference answers; grade cells are left out."""
    out = []
    for cell in source_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") == gid:
            break
        if cell.cell_type != "code" or (meta.get("grade") and not meta.get("solution")):
            continue
        out.append((meta.get("grade_id"), cell.source, bool(meta.get("solution"))))
    return out


@functools.lru_cache(maxsize=16)
def _base(cells: tuple[tuple[str | None, str, bool], ...]) -> dict:
    """The namespace of the source notebook's cells (solution markers removed), run here."""
    from descent.grading.trusted import grading_environment

    namespace: dict = {"__name__": "__main__"}
    with grading_environment(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()), np.errstate(all="ignore"):
        for gid, source, is_answer in cells:
            text = generator.student_source(source)[0] if is_answer else source
            try:
                exec(compile(text, f"<reference {gid}>", "exec"), namespace)  # noqa: S102
            except Exception:      # noqa: BLE001 - an exploration cell; the answers matter
                continue
    return namespace


def base_namespace(source_nb, gid: str) -> dict:
    return _base(tuple(_code_cells(source_nb, gid)))


def _mutant_namespace(base: dict, mutant: generator.Mutant) -> dict | None:
    namespace = dict(base)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            exec(compile(mutant.source, f"<mutant {mutant.ident}>", "exec"),  # noqa: S102
                 namespace)
        except Exception:       # noqa: BLE001 - a mutant that does not even define its names
            return None
    return namespace


# -- replaying a grade cell's calls on a mutant ---------------------------------------------------

def _with_steps(run, steps: int):
    return type(run)(**{**run.__dict__, "steps": steps})


def _prefix_rules() -> dict[Callable, Callable]:
    """Run-halves whose answer for fewer steps is a prefix of the full answer: {function:
    shorten(args, kwargs, steps) -> (args, kwargs) or None}. A mutant is first replayed on
    :data:`SHORT` steps and compared with the student's first rows."""
    from descent.grading import schedules, training
    from descent.grading.assignments import a07_implementation, a08_practice

    def positional(index: int, name: str):
        def shorten(args, kwargs, steps):
            args = list(args)
            if name in kwargs:
                if kwargs[name] <= steps:
                    return None
                kwargs = {**kwargs, name: steps}
            elif len(args) > index:
                if args[index] <= steps:
                    return None
                args[index] = steps
            else:
                return None
            return tuple(args), kwargs
        return shorten

    def run_spec(args, kwargs, steps):
        run = args[1]
        if not hasattr(run, "steps") or run.steps <= steps:
            return None
        return (args[0], _with_steps(run, steps), *args[2:]), kwargs

    return {a07_implementation.trajectory: positional(3, "steps"),
            training.train_losses: run_spec,
            schedules.values: positional(1, "steps"),
            a08_practice._amp_run: positional(2, "steps")}


SHORT = 3


class _Replay:
    """A student's side answering recorded calls from a mutant's namespace."""

    def __init__(self, namespace: dict, handles: list[int | None]):
        from descent.grading.door import StudentSide

        outer = self

        class Side(StudentSide):
            def _keep(self, value):
                handle = outer.handles[outer.index] if outer.index < len(outer.handles) \
                    else None
                handle = handle if handle is not None else -1 - outer.index
                self.values[handle] = value
                return handle

        self.side = Side(namespace)
        self.handles = handles
        self.index = 0

    def answer(self, payload: bytes, limit: float = CALL_LIMIT) -> dict:
        from descent.grading import sandbox

        with sandbox.here(), np.errstate(all="ignore"), _deadline(limit):
            answer = self.side.answer(("call", payload))
        self.index += 1
        return json.loads(json.dumps(answer, allow_nan=False))

    def short_answer(self, payload: bytes, shorten: Callable, limit: float = SHORT_LIMIT) -> Any:
        """The answer of the call made on :data:`SHORT` steps (``None`` if not applicable):
        the decoded value only, nothing kept."""
        from descent.grading import sandbox
        from descent.grading.door import _Arguments

        fn, args, kwargs, watch, rules, observe = _Arguments(self.side, payload).load()
        shorter = shorten(args, kwargs, SHORT)
        if shorter is None:
            return None
        args, kwargs = shorter
        with sandbox.here(), np.errstate(all="ignore"), _deadline(limit):
            out = sandbox.call_here(fn, *args, rules=rules, namespace=self.side.namespace,
                                    **kwargs)
        if out.error or out.delegated:
            return ("error", (out.error or "").split(":")[0])
        return plain.decode(json.loads(json.dumps(plain.encode(out.value), allow_nan=False)))


class _Timeout(BaseException):
    pass


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Interrupt a mutant whose call uses more than ``seconds`` of CPU time (a mutated loop
    may never end). Main thread only: elsewhere :func:`_risky` mutants are not replayed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise _Timeout

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


# -- comparing answers ----------------------------------------------------------------------

def _close(a: Any, b: Any, depth: int = 0) -> bool:
    """Plain data ``a`` ≈ ``b``: numbers within :data:`RTOL` (scaled by the array's largest
    entry), everything else equal."""
    if depth > 20:
        return False
    if isinstance(a, torch.Tensor):
        a = a.detach().double().numpy()
    if isinstance(b, torch.Tensor):
        b = b.detach().double().numpy()
    numeric = (int, float, np.ndarray, np.generic)
    if isinstance(a, numeric) and isinstance(b, numeric) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if a.shape != b.shape:
            return False
        finite = np.isfinite(b)
        scale = float(np.max(np.abs(b[finite]))) if finite.any() else 1.0
        with np.errstate(invalid="ignore"):
            ok = (np.abs(a - b) <= RTOL * np.abs(b) + 1e-7 * max(scale, 1e-300)) & \
                np.isfinite(a) & np.isfinite(b)
        ok |= (np.isnan(a) & np.isnan(b)) | ((a == b) & np.isinf(a))
        return bool(ok.all())
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y, depth + 1) for x, y in zip(a, b,
                                                                               strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], depth + 1) for k in a)
    if isinstance(a, plain.Opaque) and isinstance(b, plain.Opaque):
        return a.type_name == b.type_name
    return type(a) is type(b) and a == b


def _same_answer(mine: dict, theirs: dict) -> bool:
    """Does the mutant's answer (plain JSON) reproduce the student's?"""
    if "missing" in mine or "missing" in theirs:
        return mine.get("missing") == theirs.get("missing")
    a, b = mine.get("outcome") or {}, theirs.get("outcome") or {}
    error_a, error_b = a.get("error"), b.get("error")
    if (error_a is None) != (error_b is None):
        return False
    if error_a is not None:
        return _error_signature(error_a) == _error_signature(error_b)
    if (a.get("delegated") or []) != (b.get("delegated") or []) or \
            sorted(a.get("mutated") or []) != sorted(b.get("mutated") or []):
        return False
    try:
        return _close(plain.decode(a.get("value")), plain.decode(b.get("value"))) and \
            _close(plain.decode(a.get("observed")), plain.decode(b.get("observed")))
    except plain.ProtocolError:
        return False


_LINE = re.compile(r" \(in ([^,()]+), line \d+\)$")


def _error_signature(error: str) -> str:
    """An exception as :func:`~descent.grading.feedback.brief_exception` wrote it, less the
    line number ("NameError: name 'v' is not defined (in adam_step)"): the student's cell and
    the mutated reference number their lines differently, but a reproduced mistake raises the
    same exception, with the same message, in the same function."""
    return _LINE.sub(r" (in \1)", error.strip())


def _prefix_of(full: Any, short: Any) -> bool:
    """Is ``short`` (an answer on a few steps) the beginning of ``full``?"""
    if isinstance(short, tuple) and short and short[0] == "error":
        return False
    try:
        full_arr, short_arr = np.asarray(full, dtype=float), np.asarray(short, dtype=float)
    except (TypeError, ValueError):
        return True                                # not comparable: let the full call decide
    if full_arr.ndim == 0 or short_arr.ndim == 0 or short_arr.shape[1:] != full_arr.shape[1:] \
            or len(short_arr) > len(full_arr):
        return True
    return _close(short_arr, full_arr[:len(short_arr)])


# -- the search -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Found:
    """The mutants that reproduce every answer (in the generator's order), how many mutants
    were replayed, and the CPU seconds it took."""

    mutants: tuple[generator.Mutant, ...]
    tried: int
    seconds: float

    @property
    def mutant(self) -> generator.Mutant:
        return self.mutants[0]


def _risky(mutant: generator.Mutant) -> bool:
    """A mutant of a cell with a ``while`` loop may never end; off the main thread no deadline
    can stop it, so it is not replayed there."""
    return "while " in mutant.source and \
        threading.current_thread() is not threading.main_thread()


def search(source_nb, gid: str, log: Log, *, budget: float = BUDGET,
           most: int = MOST) -> Found | None:
    """The mutants of grade cell ``gid``'s answer cells that reproduce every answer in
    ``log`` (up to ``most``, and as many as the budget allows after the first), or None.

    Several mutants may reproduce the same answers (a check stops at its first failing case,
    so few answers may be recorded); they are all named, so that the student reads each
    mistake that fits their numbers and the grader never picks one of them at random."""
    start = time.process_time()
    if not log.calls:
        return None
    cells = [c for c in generator.answer_cells(source_nb) if gid in c.parts]
    if not cells:
        return None
    base = base_namespace(source_nb, gid)
    student = [json.loads(json.dumps(answer, allow_nan=False)) for _, answer in log.calls]
    handles = [answer.get("handle") for _, answer in log.calls]
    decoded: dict[int, Any] = {}
    shorteners = _prefix_rules()
    fns = [_function_of(base, payload) for payload, _ in log.calls]
    limits = _limits(base, log, handles)
    tried, found = 0, []
    for cell in cells:
        for mutant in generator.cached(cell.grade_id, cell.source):
            if time.process_time() - start > budget or len(found) >= most:
                break
            if _risky(mutant):
                continue
            namespace = _mutant_namespace(base, mutant)
            if namespace is None:
                continue
            tried += 1
            replay = _Replay(namespace, handles)
            try:
                for i, ((payload, _), theirs) in enumerate(zip(log.calls, student,
                                                              strict=True)):
                    shorten = shorteners.get(fns[i])
                    if shorten is not None and theirs.get("outcome", {}).get("error") is None:
                        if i not in decoded:
                            decoded[i] = plain.decode(theirs["outcome"].get("value"))
                        short = replay.short_answer(payload, shorten,
                                                    min(SHORT_LIMIT, limits[i]))
                        if short is not None and not _prefix_of(decoded[i], short):
                            raise _Differs
                    if not _same_answer(replay.answer(payload, limits[i]), theirs):
                        raise _Differs
            except (_Differs, _Timeout):
                continue
            except Exception:                # noqa: BLE001 - a mutant that breaks the replay
                continue
            if all(m.description != mutant.description for m in found):
                found.append(mutant)
    return Found(tuple(found), tried, time.process_time() - start) if found else None


class _Differs(Exception):
    pass


def _limits(base: dict, log: Log, handles: list[int | None]) -> list[float]:
    """A CPU-time limit per recorded call: 20 times what the reference takes on it (at least
    0.02 s, at most :data:`CALL_LIMIT`), so that a mutant caught in a loop costs little."""
    replay = _Replay(dict(base), handles)
    limits = []
    for payload, _ in log.calls:
        start = time.process_time()
        try:
            replay.answer(payload, CALL_LIMIT)
            limits.append(min(CALL_LIMIT, max(0.02, 20 * (time.process_time() - start))))
        except BaseException:                # noqa: BLE001 - the reference is our code
            limits.append(CALL_LIMIT)
    return limits


def _function_of(namespace: dict, payload: bytes):
    """The function a recorded call runs (a library function, for :data:`PREFIX` look-ups)."""
    class Peek(pickle.Unpickler):
        def persistent_load(self, pid):
            return _placeholder              # a student's name or value: not needed here

    try:
        return Peek(io.BytesIO(payload)).load()[0]
    except Exception:                        # noqa: BLE001
        return None


def _placeholder(*args, **kwargs):
    return None


def describe(mutants: tuple[generator.Mutant, ...]) -> str:
    """The student's terms: "Your code behaves as if …", each reproducing mutant named."""
    first, *rest = [m.description.removeprefix("as if ") for m in mutants]
    if not rest:
        return (f"Your code behaves as if {first}. That one change to the reference "
                "reproduces every result of yours that this test looked at.")
    others = "; or as if ".join(rest)
    return (f"Your code behaves as if {first}; or as if {others}. Each of these changes to "
            "the reference reproduces every result of yours that this test looked at.")


def name_mistake(part, log: Log, source_nb, gid: str) -> None:
    """If ``part`` (a :class:`~descent.grading.trusted.PartResult`) failed with numbers only,
    search; when mutants reproduce the student's answers, put their names first in the
    message and ``mutant:<ident>|<ident>…`` in ``part.mistake``."""
    if part.score >= part.points or part.mistake not in SEARCHED or \
            "NotImplementedError" in part.message:
        return          # an unanswered cell's stub: no mutant of the reference raises it
    budget = min(BUDGET, NOTEBOOK_BUDGET - log.spent[0])
    if budget <= 0:
        return
    start = time.process_time()
    try:
        found = search(source_nb, gid, log, budget=budget)
    except Exception:                        # noqa: BLE001 - the search never costs a grade
        return
    finally:
        log.spent[0] += time.process_time() - start
    if found is None:
        return
    head, sep, rest = part.message.partition("] ")
    if not sep:
        head, rest = "", part.message
    prefix = f"{head}] " if sep else ""
    part.message = f"{prefix}{describe(found.mutants)} (Details: {rest})"
    part.mistake = "mutant:" + "|".join(m.ident for m in found.mutants)


__all__ = ["Log", "recording", "search", "name_mistake", "describe", "Found"]

