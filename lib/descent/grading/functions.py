"""Check a student's plain function (a loss, a gradient, a measurement) on grader-chosen inputs.

Untrusted: :func:`run_function` calls the student's function on each input (references
forbidden, inputs watched for in-place changes) and records the results as float64 arrays.
Trusted: :func:`judge_function` computes the reference on the same inputs, compares within a
tolerance and, when the answer is a known multiple of the reference (a missing factor 2, a
sum instead of a mean, a flipped sign), says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from descent.grading import sandbox
from descent.grading.compare import Tolerance, first_difference, scale_mistake
from descent.grading.feedback import PASS, Verdict, fail, passed

Inputs = Mapping[str, Any]     # keyword arguments of one call, chosen by the grader
Factors = Mapping[float, str] | Callable[..., Mapping[float, str]] | None


def run_function(fn: Callable, inputs: Sequence[Inputs]) -> list[sandbox.Outcome]:
    """Untrusted: the student's results on every input, as plain data."""
    outcomes = []
    for kwargs in inputs:
        watched = {k: v for k, v in kwargs.items() if isinstance(v, np.ndarray)}
        out = sandbox.call(fn, **kwargs, watch=watched)
        if out.error is None and not out.delegated:
            try:
                out.value = np.asarray(out.value, dtype=float)
            except (TypeError, ValueError):
                out.error = (f"the result must be a number or an array of numbers, got "
                             f"{type(out.value).__name__}")
        outcomes.append(out)
    return outcomes


def judge_function(reference: Callable, inputs: Sequence[Inputs],
                   outcomes: Sequence[sandbox.Outcome], *, fn_name: str,
                   factors: Factors = None, tol: Tolerance | None = None,
                   what: str = "result") -> Verdict:
    """Trusted: compare each outcome with ``reference(**inputs)``; name a known factor.

    ``factors`` maps c to what ``got = c·expected`` means (``{0.5: "the factor 2 is
    missing"}``); it may be a function of the inputs when c depends on them (``n``).
    """
    for kwargs, out in zip(inputs, outcomes, strict=True):
        shapes = ", ".join(f"{k}: {np.shape(v)}" for k, v in kwargs.items()
                           if isinstance(v, np.ndarray))
        where = f" (inputs {shapes})" if shapes else ""
        if out.delegated:
            return fail(f"no points for this part: {fn_name} calls {', '.join(out.delegated)}, "
                        "the reference this part asks you to write yourself.",
                        mistake="delegation")
        if out.error:
            return fail(f"{fn_name} raised {out.error}{where}.", mistake="exception")
        if out.mutated:
            return fail(f"{fn_name} changed its input {', '.join(out.mutated)} in place; "
                        f"work on a copy (e.g. `x = x.copy()`) and leave the caller's array as "
                        f"it was{where}.", mistake="mutates-input")
        expected = np.asarray(reference(**kwargs), dtype=float)
        tolerance = tol or Tolerance.for_dtype(next(
            (v.dtype for v in kwargs.values() if isinstance(v, np.ndarray)), np.float64))
        verdict = first_difference(out.value, expected, tolerance, what=f"{what} of {fn_name}")
        if verdict.ok:
            continue
        known = factors(**kwargs) if callable(factors) else factors
        meaning = scale_mistake(out.value, expected, tolerance, dict(known or {}))
        if meaning:
            return fail(f"{meaning}{where}.", mistake="scale")
        return fail(f"{verdict.message}{where}", mistake=verdict.mistake)
    return PASS


def check_function(fn: Callable, reference: Callable, inputs: Sequence[Inputs], *, part: str,
                   equation: str, factors: Factors = None,
                   tol: Tolerance | None = None, what: str = "result") -> None:
    """Run, judge and raise :class:`CheckFailed` on the first difference."""
    outcomes = run_function(fn, inputs)
    judge_function(reference, inputs, outcomes, fn_name=getattr(fn, "__name__", "your function"),
                   factors=factors, tol=tol, what=what).raise_for(part, equation)
    passed(part, len(inputs))


def check_number(got: sandbox.Outcome, expected: float, *, part: str, equation: str,
                 rtol: float, fn_name: str, what: str) -> None:
    """Judge one measured number (a threshold, a rate) against a prediction, within ``rtol``.

    ``rtol`` is the measurement's own accuracy, justified where it is called.
    """
    if got.delegated:
        fail(f"no points for this part: {fn_name} calls {', '.join(got.delegated)}.",
             "delegation").raise_for(part, equation)
    if got.error:
        fail(f"{fn_name} raised {got.error}.", "exception").raise_for(part, equation)
    try:
        value = float(got.value)
    except (TypeError, ValueError):
        fail(f"{fn_name} must return one number, got {type(got.value).__name__}.",
             "wrong-type").raise_for(part, equation)
    if not np.isfinite(value) or abs(value - expected) > rtol * abs(expected):
        fail(f"{what}: {fn_name} measured {value:.6g}, the prediction is {expected:.6g} "
             f"(allowed: ±{rtol:.2%}).", "measurement").raise_for(part, equation)


__all__ = ["run_function", "judge_function", "check_function", "check_number", "PASS"]
