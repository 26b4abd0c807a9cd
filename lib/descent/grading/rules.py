"""Check a student's pure update rule against the reference rule, and name the mistake.

The three steps of every check (see the package docstring):

1. :func:`rule_cases` — the grader chooses the inputs: problems (a diagonal quadratic, whose
   gradient depends on the iterate, and a fixed sequence of random gradients), seeds, shapes,
   dtypes and hyperparameter sets. Hidden tests pass seeds and shapes the student never saw.
2. :func:`run_rule` — untrusted: run the student's rule on one case and record the iterates
   θ₀ … θ_T as plain float64 arrays (or the error, the mutated input, the delegation).
3. :func:`judge_rule` — trusted: run the reference and every catalogued mistake on the same
   case, and return a verdict that names the mistake the student's iterates match, or the
   first step and element that differ.

:func:`check_rule` does the three and raises :class:`CheckFailed` on the first failing case.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from descent.grading import sandbox
from descent.grading.compare import Tolerance, allclose, first_difference
from descent.grading.feedback import PASS, CheckFailed, Verdict, fail, fmt, passed


@dataclass(frozen=True)
class Mistake:
    """A known mistake, written as a variant of the reference rule.

    ``update``/``init`` have the reference's signature; ``explain`` is what the student reads
    when their iterates match this variant's: what is wrong, and the equation that fixes it.
    """

    name: str
    explain: str
    update: Callable
    init: Callable | None = None


@dataclass(frozen=True)
class RuleSpec:
    """What a rule check compares against: the reference, its hyperparameters, the mistakes.

    ``update(param, grad, state, **hyper) -> (new_param, new_state)`` and ``init(param)``;
    with ``stateless=True`` the student's rule is ``update(param, grad, **hyper) -> new_param``
    (the reference keeps the stateful form).
    """

    name: str
    update: Callable
    init: Callable
    hypers: tuple[dict[str, Any], ...]
    mistakes: tuple[Mistake, ...] = ()
    stateless: bool = False


@dataclass(frozen=True)
class RuleCase:
    """One input the grader chose: a problem, a seed, a shape, a dtype and hyperparameters."""

    problem: str             # "quadratic" (g = d ⊙ (θ − θ*)) or "noise" (fixed random g_t)
    seed: int
    shape: tuple[int, ...]
    dtype: str               # "float32" or "float64"
    hyper: dict[str, Any] = field(default_factory=dict)
    steps: int = 12
    array: str = "numpy"     # "numpy" or "torch"

    def describe(self) -> str:
        hyper = ", ".join(f"{k}={v}" for k, v in self.hyper.items())
        return (f"{self.problem} problem, seed {self.seed}, shape {self.shape}, {self.dtype}"
                f"{', ' + self.array if self.array != 'numpy' else ''}; {hyper}")


def rule_cases(spec: RuleSpec, *, seeds: Iterable[int] = (0,),
               shapes: Sequence[tuple[int, ...]] = ((3,),),
               dtypes: Sequence[str] = ("float64", "float32"), steps: int = 12,
               arrays: Sequence[str] = ("numpy",)) -> list[RuleCase]:
    """Every hyperparameter set of ``spec`` on each seed, shape, dtype and array type.

    The two problems alternate, so both appear whenever there are two cases or more.
    """
    cases = []
    for seed in seeds:
        for shape in shapes:
            for dtype in dtypes:
                for array in arrays:
                    for hyper in spec.hypers:
                        problem = ("quadratic", "noise")[len(cases) % 2]
                        cases.append(RuleCase(problem, int(seed), tuple(shape), dtype,
                                              dict(hyper), steps, array))
    return cases


def _problem(case: RuleCase):
    """θ₀ and the gradient oracle g(t, θ) of a case, in the case's dtype (NumPy)."""
    rng = np.random.default_rng(case.seed)
    theta0 = rng.standard_normal(case.shape).astype(case.dtype)
    if case.problem == "quadratic":
        d = rng.uniform(0.5, 2.0, case.shape).astype(case.dtype)
        target = rng.standard_normal(case.shape).astype(case.dtype)
        return theta0, lambda t, theta: d * (theta - target)        # ∇ ½Σ dᵢ(θᵢ − θ*ᵢ)²
    grads = rng.standard_normal((case.steps, *case.shape)).astype(case.dtype)
    return theta0, lambda t, theta: grads[t].copy()


def _to_array(x, case: RuleCase):
    return torch.from_numpy(np.array(x, copy=True)) if case.array == "torch" else x


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


def stateless_update(update: Callable, param, grad, state, **hyper):
    """A stateless rule ``update(param, grad, **hyper)`` in the stateful form."""
    return update(param, grad, **hyper), None


def no_state(param) -> None:
    return None


def _stateful(update: Callable, init: Callable | None, stateless: bool):
    if not stateless:
        return update, init
    return functools.partial(stateless_update, update), no_state


def iterates(update: Callable, init: Callable, case: RuleCase, *, stateless: bool = False,
             watch: bool = False) -> sandbox.Outcome:
    """Run a rule for ``case.steps`` steps; ``value`` is the float64 array θ₀ … θ_T.

    With ``watch=True`` (student code) every call goes through :func:`sandbox.call`, which
    forbids the references and records inputs changed in place; the first problem stops
    the run and is reported with its step.
    """
    update, init = _stateful(update, init, stateless)
    theta0, gradient = _problem(case)
    theta = _to_array(theta0, case)
    rows = [_to_numpy(theta)]
    state = sandbox.call(init, theta) if watch else sandbox.Outcome(init(theta))
    if state.error or state.delegated:
        state.error = f"{state.error} (in the init function)"
        return state
    state = state.value
    for t in range(case.steps):
        grad = _to_array(gradient(t, np.asarray(_to_numpy(theta), dtype=case.dtype)), case)
        if watch:
            out = sandbox.call(update, theta, grad, state, **case.hyper,
                               watch={"param": theta, "grad": grad, "state": state})
        else:
            out = sandbox.Outcome(update(theta, grad, state, **case.hyper))
        if not out.ok:
            out.value = {"step": t + 1, "rows": rows}
            return out
        try:
            theta, state = out.value
        except (TypeError, ValueError):
            out.error = ("the rule must return the pair (new_param, new_state), got "
                         f"{type(out.value).__name__}")
            out.value = {"step": t + 1, "rows": rows}
            return out
        rows.append(_to_numpy(theta))
    shapes = {r.shape for r in rows}
    value = np.stack(rows) if len(shapes) == 1 else rows
    return sandbox.Outcome(value=value)


def student_iterates(update: Callable, init: Callable | None, case: RuleCase,
                     stateless: bool = False) -> dict:
    """:func:`iterates` with ``watch=True``, as plain data: run on the student's side, the
    whole trajectory crosses the door once."""
    return iterates(update, init, case, stateless=stateless, watch=True).plain()


def run_rule(update: Callable, init: Callable | None, case: RuleCase, *,
             stateless: bool = False) -> sandbox.Outcome:
    """Untrusted: the student's iterates on ``case`` (plain data, no verdict)."""
    out = sandbox.call(student_iterates, update, init, case, stateless)
    return sandbox.Outcome.from_plain(out.value) if out.ok else out


def judge_rule(spec: RuleSpec, case: RuleCase, got: sandbox.Outcome, *,
               fn_name: str = "your rule") -> Verdict:
    """Trusted: compare the student's outcome on ``case`` with the reference and the mistakes."""
    where = f" (case: {case.describe()})"
    if got.delegated:
        return fail(f"no points for this part: {fn_name} calls {', '.join(got.delegated)}, "
                    "the reference implementation this part asks you to write yourself.",
                    mistake="delegation")
    step = got.value["step"] if isinstance(got.value, dict) else None
    at = f" at step {step}" if step else ""
    if got.error:
        return fail(f"{fn_name} raised {got.error}{at}{where}.", mistake="exception")
    if got.mutated:
        names = " and ".join(f"`{n}`" for n in got.mutated)
        return fail(f"{fn_name} changed the caller's {names} in place{at} "
                    "(in-place aliasing, e.g. `param -= lr * grad`). A pure rule returns new "
                    "arrays: write `new_param = param - lr * grad` and leave its inputs "
                    f"untouched{where}.", mistake="mutates-input")
    tol = Tolerance.for_dtype(case.dtype)
    expected = iterates(spec.update, spec.init, case).value
    mine = got.value
    if not isinstance(mine, np.ndarray) or mine.shape != expected.shape:
        shapes = sorted({tuple(np.shape(r)) for r in mine}) if isinstance(mine, list) else \
            [np.shape(mine)]
        return fail(f"{fn_name} returned parameters of shape {shapes}, expected "
                    f"{expected.shape[1:]} (the shape of the param it was given){where}.",
                    mistake="wrong-shape")
    if allclose(mine, expected, tol):
        return PASS
    for mistake in spec.mistakes:
        update, init = mistake.update, mistake.init or spec.init
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")          # a variant may divide by zero
                variant = iterates(update, init, case).value
        except (ArithmeticError, ValueError):
            continue
        if isinstance(variant, np.ndarray) and allclose(mine, variant, tol) \
                and not allclose(variant, expected, tol):
            return fail(f"{mistake.explain}{where}.", mistake=mistake.name)
    verdict = first_difference(mine, expected, tol, what=f"iterate θ_t of {fn_name}",
                               rows="step")
    return fail(f"{verdict.message} Step 0 is θ₀, before any update; the first update "
                f"gives step 1.{where}", mistake=verdict.mistake)


def check_rule(update: Callable, init: Callable | None = None, *, spec: RuleSpec, part: str,
               equation: str, seeds: Iterable[int] = (0,),
               shapes: Sequence[tuple[int, ...]] = ((3,),),
               dtypes: Sequence[str] = ("float64", "float32"), steps: int = 12,
               arrays: Sequence[str] = ("numpy",)) -> None:
    """Compare a student's rule with ``spec`` on every case; raise on the first difference."""
    name = getattr(update, "__name__", "your rule")
    cases = rule_cases(spec, seeds=seeds, shapes=shapes, dtypes=dtypes, steps=steps,
                       arrays=arrays)
    for case in cases:
        outcome = run_rule(update, init, case, stateless=spec.stateless)
        judge_rule(spec, case, outcome, fn_name=name).raise_for(part, equation)
    passed(part, len(cases))


__all__ = ["Mistake", "RuleSpec", "RuleCase", "rule_cases", "run_rule", "judge_rule",
           "check_rule", "CheckFailed", "fmt"]
