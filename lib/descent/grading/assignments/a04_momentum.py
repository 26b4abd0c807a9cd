"""Checks for assignment 04-momentum: heavy ball and Nesterov as pure rules, the optimal tuning
on a quadratic, and a training run with the student's rules inside an optimizer.

Chapter 4 ({ref}`ch04-heavy-ball`, {ref}`ch04-nesterov`), in PyTorch's convention (β is
PyTorch's ``momentum``, η its ``lr``; μ is the strong-convexity constant):

.. math::

    b_t = \\beta\\, b_{t-1} + g_t \\ (b_1 = g_1), \\qquad
    \\theta_t = \\theta_{t-1} - \\eta\\, b_t \\ \\text{(HB)}, \\qquad
    \\theta_t = \\theta_{t-1} - \\eta\\,(g_t + \\beta\\, b_t) \\ \\text{(NAG)},

and on a quadratic with curvatures in [μ, L] the heavy ball is fastest at Polyak's tuning

.. math::

    \\alpha = \\eta = \\frac{4}{(\\sqrt L + \\sqrt\\mu)^2}, \\qquad
    \\beta = \\Bigl(\\frac{\\sqrt\\kappa - 1}{\\sqrt\\kappa + 1}\\Bigr)^2, \\qquad
    \\rho = \\frac{\\sqrt\\kappa - 1}{\\sqrt\\kappa + 1}, \\qquad \\kappa = L/\\mu .

The references: ``descent.rules.sgd_update`` for the rules (with the catalogue's mistakes,
:mod:`descent.grading.catalogue`, and one of this assignment's), ``descent.rates`` for the
tuning and the grader's own run for the measured rate, ``torch.optim.SGD`` for the training
run (:mod:`descent.grading.training`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from descent.grading import sandbox
from descent.grading.catalogue import SGD_MISTAKES
from descent.grading.explore import answered, being_graded  # noqa: F401 - explore cells
from descent.grading.feedback import PASS, Verdict, fail, passed
from descent.grading.rules import Mistake, RuleSpec, check_rule
from descent.grading.training import RunSpec, grouped, judge_training, losses, run_training

PART_HB = ("4.1", "eq. (HB), PyTorch's form: b_t = β b_{t−1} + g_t, θ_t = θ_{t−1} − η b_t")
PART_NAG = ("4.2", "eq. (NAG), PyTorch's form: b_t = β b_{t−1} + g_t, "
                   "θ_t = θ_{t−1} − η (g_t + β b_t)")
PART_TUNING = ("4.3", "Polyak's tuning: α = 4/(√L + √μ)², β = ((√κ − 1)/(√κ + 1))²")
PART_TRAIN = ("4.4", "your rules in a torch.optim.Optimizer, against torch.optim.SGD")


class _Buffer(NamedTuple):
    b: Any = None


# -- 4.1 and 4.2 the rules -------------------------------------------------------------------

def _old_buffer(param, grad, state, *, lr, momentum, **_):
    """A known mistake: the heavy ball steps along b_{t−1}, the buffer before this step's
    update (for Nesterov the same slip, g_t + β b_{t−1} = b_t, is the catalogue's
    "nesterov-heavy-ball")."""
    b_old = state.b
    b = grad if b_old is None else momentum * b_old + grad       # b_t = β b_{t−1} + g_t
    return param - lr * (grad if b_old is None else b_old), _Buffer(b)


HB_MISTAKES = (
    SGD_MISTAKES[0],                                             # EMA momentum
    Mistake("hb-old-buffer", "you step along the old buffer b_{t−1} and update it afterwards: "
            "update first, b_t = β b_{t−1} + g_t, then step θ_t = θ_{t−1} − η b_t",
            _old_buffer),
)


def _nesterov(mistake: Mistake) -> Mistake:
    """A catalogue variant with ``nesterov=True`` bound (the student's rule has no flag)."""
    update = mistake.update
    return Mistake(mistake.name, mistake.explain,
                   lambda param, grad, state, **hyper: update(param, grad, state, **hyper,
                                                              nesterov=True), mistake.init)


# EMA; no look-ahead (d = b_t = g_t + β b_{t−1}: also the look-ahead with the old buffer);
# swapped (b_t + β g_t).
NAG_MISTAKES = tuple(map(_nesterov, SGD_MISTAKES))
HYPERS = ({"lr": 0.1, "momentum": 0.9}, {"lr": 0.05, "momentum": 0.5})


def momentum_spec(*, nesterov: bool) -> RuleSpec:
    """The student's ``(param, grad, state, *, lr, momentum)`` against ``sgd_update``."""
    from descent.rules import sgd_init, sgd_update

    def reference(param, grad, state, *, lr, momentum):
        return sgd_update(param, grad, state, lr=lr, momentum=momentum, nesterov=nesterov)

    return RuleSpec("Nesterov momentum" if nesterov else "heavy-ball momentum", reference,
                    sgd_init, HYPERS, NAG_MISTAKES if nesterov else HB_MISTAKES)


def check_heavy_ball(heavy_ball_update: Callable, momentum_init: Callable, *,
                     seeds: Sequence[int] = (0,), shapes: Sequence[tuple[int, ...]] = ((3,),),
                     steps: int = 12, arrays: Sequence[str] = ("numpy",)) -> None:
    check_rule(heavy_ball_update, momentum_init, spec=momentum_spec(nesterov=False),
               part=PART_HB[0], equation=PART_HB[1], seeds=seeds, shapes=shapes, steps=steps,
               arrays=arrays)


def check_nesterov(nesterov_update: Callable, momentum_init: Callable, *,
                   seeds: Sequence[int] = (0,), shapes: Sequence[tuple[int, ...]] = ((3,),),
                   steps: int = 12, arrays: Sequence[str] = ("numpy",)) -> None:
    check_rule(nesterov_update, momentum_init, spec=momentum_spec(nesterov=True),
               part=PART_NAG[0], equation=PART_NAG[1], seeds=seeds, shapes=shapes, steps=steps,
               arrays=arrays)


# The grader's own rules, substituted for the student's while 4.3 and 4.4 run (they must not
# call descent.rules, which is forbidden while student code runs).

def trusted_momentum_init(param) -> _Buffer:
    return _Buffer(None)


def trusted_heavy_ball(param, grad, state, *, lr, momentum):
    """Like the notebook's rule, the first buffer is the gradient tensor itself (4.4's hint)."""
    b = grad if state.b is None else momentum * state.b + grad          # b_t = β b_{t−1} + g_t
    return param - lr * b, _Buffer(b)                                   # θ_t = θ_{t−1} − η b_t


def trusted_nesterov(param, grad, state, *, lr, momentum):
    b = grad if state.b is None else momentum * state.b + grad          # b_t = β b_{t−1} + g_t
    return param - lr * (grad + momentum * b), _Buffer(b)               # θ_t = θ_{t−1} − η d_t


TRUSTED = {"heavy_ball_update": trusted_heavy_ball, "nesterov_update": trusted_nesterov,
           "momentum_init": trusted_momentum_init}


# -- 4.3 the optimal heavy ball on a quadratic ------------------------------------------------

def quadratic(L: float, mu: float, dim: int = 6, seed: int = 0):
    """Curvatures µ, L and dim − 2 more in between (a diagonal Hessian), and θ₀."""
    rng = np.random.default_rng(seed)
    lam = np.concatenate([[mu, L], rng.uniform(mu, L, max(dim - 2, 0))])
    return lam, rng.standard_normal(len(lam))


def measured_rate(lr: float, momentum: float, L: float, mu: float, *, seed: int = 0,
                  steps: int | None = None) -> float:
    """The grader's measurement: heavy ball on ½Σλᵢθᵢ², ρ̂ from the tail of ‖θ_t‖.

    Run until the predicted error ρᵗ reaches 1e-150 (float64 still resolves it), then
    ``descent.rates.empirical_rate`` over the second half. At Polyak's tuning the extreme
    curvatures give a double eigenvalue, so the error decays like t·ρᵗ: the tail's slope is
    ρ·(1 + O(1/t)), about 1 % above ρ.
    """
    from descent.rates import empirical_rate

    lam, theta = quadratic(L, mu, seed=seed)
    rho = (math.sqrt(L / mu) - 1) / (math.sqrt(L / mu) + 1)
    steps = steps or int(math.ceil(math.log(1e-150) / math.log(rho)))
    state, errors = trusted_momentum_init(theta), [np.linalg.norm(theta)]
    with np.errstate(all="ignore"):
        for _ in range(steps):
            theta, state = trusted_heavy_ball(theta, lam * theta, state, lr=lr,
                                              momentum=momentum)
            errors.append(np.linalg.norm(theta))
    errors = np.asarray(errors)
    if not np.isfinite(errors).all() or errors[-1] > errors[0]:
        return math.inf
    return empirical_rate(errors)


def _diagnose_tuning(lr: float, momentum: float, L: float, mu: float) -> str | None:
    from descent.rates import nesterov_tuning, optimal_gd, optimal_heavy_ball

    best = optimal_heavy_ball(L, mu)
    q = best.rate
    close = lambda a, b: math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
    if close(lr, best.momentum) and close(momentum, best.lr):
        return "you return (β, α): the function returns the pair (lr, momentum) = (α, β)"
    if close(lr, best.lr) and close(momentum, q):
        return ("β is (√κ − 1)/(√κ + 1), which is the *rate*; Polyak's momentum is its square, "
                "β = ((√κ − 1)/(√κ + 1))²")
    if close(lr, best.lr / (1 - best.momentum)) and close(momentum, best.momentum):
        return ("your α is the learning rate of the EMA form v = βv + (1 − β)g, i.e. α/(1 − β); "
                "PyTorch's buffer form b = βb + g, asked here, uses α itself")
    if close(lr, optimal_gd(L, mu).lr) or close(lr, 1 / L):
        return ("your α is a gradient-descent step (2/(L + μ) or 1/L); with momentum the "
                "optimal step is larger, α = 4/(√L + √μ)²")
    nag = nesterov_tuning(L, mu)
    if close(lr, nag.lr) and close(momentum, nag.momentum):
        return ("this is Nesterov's tuning (η = 1/L, β = (√κ − 1)/(√κ + 1)); the heavy ball's "
                "optimum is α = 4/(√L + √μ)², β = ((√κ − 1)/(√κ + 1))²")
    return None


def check_tuning(best_heavy_ball: Callable, *, problems: Sequence[tuple[float, float]] = (
        (10.0, 1.0), (1.0, 0.01)), seed: int = 0) -> None:
    """(α, β) against Polyak's formula, and by the rate the grader measures with them.

    Formula: relative 1e-9 (a closed form; float64 rounding only). Rate: the measured ρ̂ within
    3 % of (√κ − 1)/(√κ + 1); the t·ρᵗ decay at the optimum puts ρ̂ about 1 % above ρ
    (see :func:`measured_rate`), and a wrong tuning is slower by far more (β not squared: the
    rate is √β-ish; a GD step: ρ ≥ (κ − 1)/(κ + 1)).
    """
    from descent.rates import optimal_heavy_ball

    part, name = PART_TUNING, getattr(best_heavy_ball, "__name__", "your function")
    for L, mu in problems:
        where = f" (L = {L:g}, μ = {mu:g}, κ = {L / mu:g})"
        with sandbox.forbidding({"descent.rates": None}):
            out = sandbox.call(best_heavy_ball, L, mu)
        if out.delegated:
            fail(f"no points for this part: {name} calls {', '.join(out.delegated)}, the "
                 "reference this part asks you to derive.", "delegation").raise_for(*part)
        if out.error:
            fail(f"{name} raised {out.error}{where}.", "exception").raise_for(*part)
        try:
            lr, momentum = (float(v) for v in out.value)
        except (TypeError, ValueError):
            fail(f"{name} must return the pair (lr, momentum), got {out.value!r}{where}.",
                 "wrong-type").raise_for(*part)
        best = optimal_heavy_ball(L, mu)
        rate = measured_rate(lr, momentum, L, mu, seed=seed)
        ok_formula = math.isclose(lr, best.lr, rel_tol=1e-9) and \
            math.isclose(momentum, best.momentum, rel_tol=1e-9)
        ok_rate = rate <= best.rate * 1.03
        if ok_formula and ok_rate:
            continue
        measured = (f"with your (α, β) = ({lr:.6g}, {momentum:.6g}) the grader's heavy ball "
                    + ("diverges" if math.isinf(rate) else f"converges at ρ̂ = {rate:.4f} per step")
                    + f"; the optimum is ρ = (√κ − 1)/(√κ + 1) = {best.rate:.4f}, reached at "
                    f"(α, β) = ({best.lr:.6g}, {best.momentum:.6g}).")
        hint = _diagnose_tuning(lr, momentum, L, mu)
        fail(f"{hint + ': ' if hint else ''}{measured}{where}",
             "tuning-known" if hint else "tuning").raise_for(*part)
    passed(part[0], 2 * len(problems))


# -- 4.4 the optimizer and its training run ---------------------------------------------------

SETTINGS = ((0.05, 0.9, False), (0.05, 0.9, True))
# The second param group of the grouped run: another lr, momentum and nesterov than the first.
SECOND_GROUP = {"lr": 0.02, "momentum": 0.6, "nesterov": False}


def _wrong_design(got: sandbox.Outcome, run: RunSpec, lr: float, beta: float,
                  nesterov: bool) -> str | None:
    """Which usual wrong optimizer the student's loss curve matches, in words (or None)."""
    designs = (
        (dict(momentum=0.0, nesterov=False), "the run equals SGD *without* momentum: the "
         "buffer is not kept between steps (store the rule's new state in self.state[p] and "
         "read it back on the next step)"),
        (dict(momentum=beta, nesterov=not nesterov), f"the run equals torch.optim.SGD with "
         f"nesterov={not nesterov}: call nesterov_update when the group's nesterov is True, "
         "heavy_ball_update otherwise"),
    )
    for keywords, meaning in designs:
        curve = losses(functools.partial(torch.optim.SGD, lr=lr, **keywords), run,
                       untrusted=False).value
        if np.allclose(got.value, curve, rtol=1e-5, atol=0):
            return meaning
    return None


def check_optimizer(MomentumSGD: type, *, runs: Sequence[RunSpec] = (RunSpec(),),
                    settings: Sequence[tuple[float, float, bool]] = SETTINGS) -> None:
    """The grader trains its MLP with ``MomentumSGD`` and with ``torch.optim.SGD``.

    The student's rules are replaced by the grader's while the run goes (a mistake in 4.1 or
    4.2 costs that part only); the class itself (state per parameter, the call of the rule,
    the write-back) is what this part checks. When the curve differs, the grader also runs
    the usual wrong designs and names the one it matches.

    The runs zero the gradients in place (``zero_grad(set_to_none=False)``, which torch
    allows), and the grader's rules, like the notebook's, return the gradient tensor itself as
    the first buffer: a class that stores that buffer without a copy sees it zeroed. A last
    run has two param groups with their own lr, momentum and nesterov (the first setting for
    the first layer, :data:`SECOND_GROUP` for the rest).
    """
    part, name = PART_TRAIN, getattr(MomentumSGD, "__name__", "your optimizer")
    for run in runs:
        run = dataclasses.replace(run, zero_grad_to_none=False)
        for lr, beta, nesterov in settings:
            make = functools.partial(MomentumSGD, lr=lr, momentum=beta, nesterov=nesterov)
            reference = functools.partial(torch.optim.SGD, lr=lr, momentum=beta,
                                          nesterov=nesterov)
            with sandbox.trusting(TRUSTED):
                got = run_training(make, run)
            verdict = judge_training(reference, got, run)
            where = (f" ({name}(lr={lr}, momentum={beta}, nesterov={nesterov}); the grader's "
                     f"run with seed {run.seed})")
            if verdict.ok:
                continue
            meaning = _wrong_design(got, run, lr, beta, nesterov) \
                if verdict.mistake == "curve" else None
            if meaning:
                fail(f"{meaning}{where}.", "optimizer").raise_for(*part)
            fail(f"{verdict.message}{where}", verdict.mistake).raise_for(*part)
        lr, beta, nesterov = settings[0]
        first = {"lr": lr, "momentum": beta, "nesterov": nesterov}
        with sandbox.trusting(TRUSTED):
            got = run_training(functools.partial(grouped, MomentumSGD, SECOND_GROUP, **first),
                               run)
        verdict = judge_training(functools.partial(grouped, torch.optim.SGD, SECOND_GROUP,
                                                   **first), got, run)
        if not verdict.ok:
            hint = ("with two param groups (first layer: "
                    f"{first}; the rest: {SECOND_GROUP}) your optimizer does not train as "
                    "torch.optim.SGD does: in step(), read lr, momentum and nesterov from each "
                    "`group` dict, for every group" if verdict.mistake == "curve" else
                    "with two param groups")
            fail(f"{hint}: {verdict.message} (the grader's run with seed {run.seed})",
                 verdict.mistake).raise_for(*part)
    passed(part[0], len(runs) * (len(settings) + 1))


# -- 4.6 paths on a landscape -----------------------------------------------------------------

PART_PATHS = ("4.6", "the iterates x_0 … x_T of each optimizer from the same start, "
                     "x_t = rule(x_{t−1}, ∇f(x_{t−1})), on a 2-D landscape")


@dataclasses.dataclass(frozen=True)
class PathCase:
    """One input of 4.6: a landscape (a factory call of :mod:`descent.landscapes`, so it
    crosses to the student's side), the start, the runs ``{label: (update, init, hyper)}``
    and the number of steps. The rules are the library's (``sgd_update``, ``sgd_init``), not
    the student's answers to 4.1 and 4.2: a mistake there costs those parts only."""

    landscape: str
    kwargs: dict
    x0: tuple[float, float]
    hypers: dict
    steps: int

    def build(self):
        import descent.landscapes as landscapes
        return getattr(landscapes, self.landscape)(**self.kwargs)

    def runs(self) -> dict:
        from descent.rules import sgd_init, sgd_update
        return {label: (sgd_update, sgd_init, dict(hyper)) for label, hyper in self.hypers.items()}

    def describe(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.kwargs.items())
        return f"{self.landscape}({args}), x0 = {list(self.x0)}, {self.steps} steps"


def _trio(lr_gd: float, lr: float, beta: float, **extra) -> dict:
    return {"GD": {"lr": lr_gd}, "heavy ball": {"lr": lr, "momentum": beta, **extra},
            "Nesterov": {"lr": lr, "momentum": beta, "nesterov": True}}


PATHS = (PathCase("quadratic_bowl", {"kappa": 50.0, "angle": 0.5}, (-1.6, 1.2),
                  _trio(1.9, 0.5, 0.8), 40),
         PathCase("rosenbrock", {}, (-1.2, 1.5), _trio(1.5e-3, 1.5e-3, 0.9), 60))
PATHS_HIDDEN = (PathCase("ravine", {"steepness": 20.0, "slope": 0.2}, (-8.0, 1.0),
                         _trio(0.09, 0.03, 0.7, dampening=0.3), 50),
                PathCase("quadratic_bowl", {"kappa": 100.0, "angle": -0.4}, (1.5, 1.0),
                         _trio(1.0, 0.7, 0.6, weight_decay=0.05), 30))


def _variant_paths(case: PathCase, *, carry_state: bool = False, frozen_grad: bool = False,
                   drop: str | None = None) -> dict[str, np.ndarray]:
    """Trusted: the paths of a known mistake (the state carried from one run to the next, the
    gradient taken at x₀ for every step, one hyperparameter not passed to the rule)."""
    from descent.landscapes import trajectory

    landscape, out, state = case.build(), {}, None
    for label, (update, init, hyper) in case.runs().items():
        hyper = {k: v for k, v in hyper.items() if k != drop}
        if not carry_state and not frozen_grad:
            out[label] = trajectory(landscape, case.x0, update, init, case.steps, **hyper)
            continue
        x = np.array(case.x0, dtype=float)
        state = state if carry_state and state is not None else init(x)
        g0, rows = landscape.grad(x), [x]
        for _ in range(case.steps):
            x, state = update(x, g0 if frozen_grad else landscape.grad(x), state, **hyper)
            rows.append(x)
        out[label] = np.stack(rows)
    return out


def _named_paths(case: PathCase, mine: dict, tol) -> str | None:
    """What known mistake reproduces every path the student returned, in words (or None)."""
    from descent.grading.compare import allclose

    reference = _variant_paths(case)
    keys = sorted({k for hyper in case.hypers.values() for k in hyper if k != "lr"})
    variants = [(_variant_paths(case, carry_state=True),
                 "the state of one run is carried into the next: each optimizer starts "
                 "from its own fresh state, init(x0), like its own start x0"),
                (_variant_paths(case, frozen_grad=True),
                 "every step uses the gradient at the start x0: evaluate ∇f at the current "
                 "iterate, landscape.grad(x_{t−1}), at every step")]
    variants += [(_variant_paths(case, drop=key),
                  f"the rule never receives `{key}`: pass every hyperparameter of the run "
                  "to it, update(x, grad, state, **hyper)") for key in keys]
    for paths, meaning in variants:
        differs = any(not allclose(paths[k], reference[k], tol) for k in reference)
        if differs and all(allclose(mine[k], paths[k], tol) for k in reference):
            return meaning
    return None


def judge_paths(case: PathCase, got: sandbox.Outcome, name: str) -> Verdict:
    """Trusted: the student's ``{label: path}`` against ``descent.landscapes.trajectory``."""
    from descent.grading.compare import TOL32, allclose, first_difference
    from descent.landscapes import trajectory

    where = f" (case: {case.describe()})"
    if got.delegated:
        return fail(f"no points for this part: {name} calls {', '.join(got.delegated)}, the "
                    "runner this part asks you to write.", "delegation")
    if got.error:
        return fail(f"{name} raised {got.error}{where}.", "exception")
    if got.mutated:
        return fail(f"{name} changed the caller's x0 in place: the start is shared by every "
                    "run, so copy it (x = np.array(x0, dtype=float)) before you step"
                    f"{where}.", "mutates-input")
    landscape, runs = case.build(), case.runs()
    value = got.value
    if not isinstance(value, dict) or set(value) != set(runs):
        keys = sorted(map(str, value)) if isinstance(value, dict) else type(value).__name__
        return fail(f"{name} must return a dict with one path per run, keyed by the runs' "
                    f"labels {sorted(runs)}; got {keys}{where}.", "wrong-structure")
    # float32 rounding is accepted first (1e-4 relative: every known mistake differs by
    # far more); a path computed in float64 passes well inside it.
    tol, mine = TOL32, {}
    for label, (update, init, hyper) in runs.items():
        expected = trajectory(landscape, case.x0, update, init, case.steps, **hyper)
        try:
            path = np.asarray(value[label], dtype=float)
        except (TypeError, ValueError):
            return fail(f"the path of {label!r} is not an array of numbers{where}.",
                        "wrong-type")
        if path.shape != expected.shape:
            if path.shape == (case.steps, 2) and allclose(path, expected[1:], tol):
                return fail(f"the path of {label!r} has {case.steps} rows, x_1 … x_T: the "
                            "start is missing. Row 0 is x0 itself, so a path of T steps has "
                            f"T + 1 rows, shape ({case.steps + 1}, 2){where}.", "no-start")
            return fail(f"the path of {label!r} has shape {path.shape}, expected "
                        f"{expected.shape}: one row per iterate, x_0 = x0 to x_T{where}.",
                        "wrong-shape")
        mine[label] = path
    for label, (update, init, hyper) in runs.items():
        expected = trajectory(landscape, case.x0, update, init, case.steps, **hyper)
        if allclose(mine[label], expected, tol):
            continue
        if not allclose(mine[label][0], expected[0], tol):
            return fail(f"the path of {label!r} starts at {mine[label][0].tolist()}, not at "
                        f"x0 = {list(case.x0)}: row 0 is the start, before any step{where}.",
                        "start-row")
        meaning = _named_paths(case, mine, tol)
        if meaning:
            return fail(f"{meaning}{where}.", "paths-known")
        verdict = first_difference(mine[label], expected, tol,
                                   what=f"path of {label!r} ({hyper})", rows="step")
        return fail(f"{verdict.message} Row t is x_t; each step is x_t, state = "
                    f"update(x_{{t−1}}, landscape.grad(x_{{t−1}}), state, **hyper){where}",
                    verdict.mistake)
    return PASS


def check_paths(trajectories: Callable, *, cases: Sequence[PathCase] = PATHS) -> None:
    """The student's ``trajectories(landscape, x0, runs, steps)`` on each case, against
    ``descent.landscapes.trajectory`` (the same rules, the same start); then the first case
    once more: the paths must be the same (no randomness), and x0 must be left as it was."""
    part, name = PART_PATHS, getattr(trajectories, "__name__", "your function")
    # The library's rules are the inputs here (the student's are 4.1's and 4.2's business):
    # the call may use them. The runner itself, descent.landscapes.trajectory, stays forbidden.
    with sandbox.forbidding(allow=("descent.rules", "descent.optim")):
        first = None
        for case in cases:
            x0 = np.array(case.x0, dtype=float)
            got = sandbox.call(trajectories, case.build(), x0, case.runs(), case.steps,
                               watch={"x0": x0})
            judge_paths(case, got, name).raise_for(*part)
            first = first or (case, got.value)
        case, value = first
        again = sandbox.call(trajectories, case.build(), np.array(case.x0, dtype=float),
                             case.runs(), case.steps)
        if not again.ok or not isinstance(again.value, dict) or any(
                not np.array_equal(np.asarray(again.value.get(k)), np.asarray(v))
                for k, v in value.items()):
            fail(f"called twice on the same landscape, start and runs, {name} returned "
                 "other paths the second time: a path depends only on its inputs (no random "
                 f"numbers, nothing kept between calls) (case: {case.describe()}).",
                 "nondeterministic").raise_for(*part)
    passed(part[0], len(cases) + 1)
