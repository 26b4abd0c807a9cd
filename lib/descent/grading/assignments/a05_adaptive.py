"""Checks for assignment 05-adaptive: AdaGrad, RMSprop, Adam, AdamW, an ablation, a run.

Chapter 5, with gradient :math:`g_t`, learning rate η and t incremented *before* use:

.. math::

    s_t &= s_{t-1} + g_t^2, &
    \\theta_t &= \\theta_{t-1} - \\eta\\, g_t / (\\sqrt{s_t} + \\epsilon)
        && \\text{(AdaGrad)}\\\\
    v_t &= \\alpha v_{t-1} + (1-\\alpha) g_t^2, &
    \\theta_t &= \\theta_{t-1} - \\eta\\, g_t / (\\sqrt{v_t} + \\epsilon)
        && \\text{(RMSprop)}\\\\
    \\hat m_t &= m_t / (1-\\beta_1^t),\\ \\hat v_t = v_t / (1-\\beta_2^t), &
    \\theta_t &= \\theta_{t-1} - \\eta\\, \\hat m_t / (\\sqrt{\\hat v_t} + \\epsilon)
        && \\text{(Adam)}\\\\
    \\theta_{t-1} &\\leftarrow (1 - \\eta\\lambda)\\,\\theta_{t-1}, &
    &\\text{then the Adam step} && \\text{(AdamW)}

The references are the library's rules (``descent.rules``); the catalogue
(:mod:`descent.grading.catalogue`) names the Adam, AdamW and RMSprop mistakes, this module adds
AdaGrad's and the ablation's. The notebook's locked cells define the states
``AdagradState(t, s)``, ``RMSpropState(t, v)``, ``AdamState(t, m, v)`` and their inits, so
a student writes only the update.

Each mistake costs one part: the training run (part 5.6) grades the student's optimizer
class; it runs the student's own ``adamw_update`` when that rule passes part 5.4, and the
grader's copy otherwise (with a note), so a wrong rule is not charged twice.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import numpy as np
import torch

from descent import _arrays as xp
from descent.grading import sandbox, training
from descent.grading.catalogue import adam_init_variant, adam_spec, adam_variant, library_rule
from descent.grading.catalogue import rmsprop_spec as _rmsprop_spec
from descent.grading.explore import answered, being_graded  # noqa: F401 - explore cells
from descent.grading.feedback import Verdict, fail, passed
from descent.grading.rules import Mistake, RuleCase, RuleSpec, check_rule, judge_rule, run_rule

PART_ADAGRAD = ("5.1", "eq. (AdaGrad), s_t = s_{t-1} + g_t², θ_t = θ_{t-1} − η g_t/(√s_t + ε)")
PART_RMSPROP = ("5.2", "eq. (RMSprop), v_t = α v_{t-1} + (1−α) g_t², "
                "θ_t = θ_{t-1} − η g_t/(√v_t + ε)")
PART_ADAM = ("5.3", "eq. (Adam), m̂_t = m_t/(1−β₁ᵗ), v̂_t = v_t/(1−β₂ᵗ), "
             "θ_t = θ_{t-1} − η m̂_t/(√v̂_t + ε)")
PART_ADAMW = ("5.4", "eq. (AdamW), θ ← (1 − ηλ)θ, then the Adam step")
PART_ABLATION = ("5.5", "eq. (Adam) with momentum, bias correction or adaptivity switched off")
PART_TRAIN = ("5.6", "a training run with your AdamW, against torch.optim.AdamW")

# The visible tests run NumPy and torch arrays: the rule also drives the optimizer of 5.6.
ARRAYS = ("numpy", "torch")


# -- AdaGrad ------------------------------------------------------------------------------------

class _Sum(NamedTuple):
    t: int
    s: Any


def adagrad_init_variant(param) -> _Sum:
    return _Sum(0, xp.zeros_like(param))


def adagrad_variant(param, grad, state, *, lr, eps=1e-10, eps_inside=False, root=True):
    """AdaGrad (flags off) or a known mistake: ε inside the root, or no root at all."""
    s = state.s + grad * grad                                    # s_t = s_{t-1} + g_t²
    if not root:
        denom = s + eps
    else:
        denom = xp.sqrt(s + eps) if eps_inside else xp.sqrt(s) + eps
    return param - lr * grad / denom, _Sum(state.t + 1, s)


ADAGRAD_MISTAKES = (
    Mistake("eps-inside-sqrt", "ε is inside the square root: you divide by √(s + ε); AdaGrad "
            "divides by √s_t + ε (ε outside the root, as in PyTorch)",
            partial(adagrad_variant, eps_inside=True), adagrad_init_variant),
    Mistake("adagrad-no-root", "the square root is missing: you divide by s_t + ε, the sum of "
            "squares itself; AdaGrad divides by its root, √s_t + ε, so that the step has the "
            "units of θ", partial(adagrad_variant, root=False), adagrad_init_variant),
)


def adagrad_spec() -> RuleSpec:
    """AdaGrad without lr decay or weight decay; reference ``descent.rules.adagrad_update``."""
    update, init = library_rule("adagrad")
    hypers = ({"lr": 0.1, "eps": 1e-10}, {"lr": 0.5, "eps": 0.1})
    return RuleSpec("AdaGrad", update, init, hypers, ADAGRAD_MISTAKES)


def rmsprop_spec() -> RuleSpec:
    """RMSprop without momentum (the catalogue's spec: lr, alpha, eps, weight_decay)."""
    return _rmsprop_spec()


# -- the ablation: Adam with an ingredient switched off ----------------------------------------

def ablation_reference(param, grad, state, *, lr, beta1=0.9, beta2=0.999, eps=1e-8,
                       bias_correction=True, adaptive=True):
    """The grader's Adam with switches (β₁ = 0 is "no momentum"); all on = ``adam_update``."""
    t = state.t + 1                                              # t incremented before use
    m = beta1 * state.m + (1 - beta1) * grad                     # first moment
    v = beta2 * state.v + (1 - beta2) * grad * grad              # second moment
    if bias_correction:
        m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)   # bias correction
    else:
        m_hat, v_hat = m, v
    direction = m_hat / (xp.sqrt(v_hat) + eps) if adaptive else m_hat   # adaptivity
    return param - lr * direction, type(state)(t, m, v)


def _ignoring(flag: str):
    def variant(param, grad, state, **hyper):
        return ablation_reference(param, grad, state, **{**hyper, flag: True})
    return variant


ABLATION_MISTAKES = (
    Mistake("bias-correction-flag-ignored", "with bias_correction=False your rule still "
            "divides by (1 − β₁ᵗ) and (1 − β₂ᵗ); switched off, the step uses m_t and v_t "
            "themselves", _ignoring("bias_correction"), adam_init_variant),
    Mistake("adaptive-flag-ignored", "with adaptive=False your rule still divides by √v̂ + ε; "
            "switched off, the step is η m̂_t (momentum SGD with an EMA buffer)",
            _ignoring("adaptive"), adam_init_variant),
)


def ablation_spec() -> RuleSpec:
    """Every combination of the two switches, with and without momentum (β₁ = 0)."""
    hypers = tuple({"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps,
                    "bias_correction": bc, "adaptive": ad}
                   for bc in (True, False) for ad in (True, False)
                   for lr, beta1, beta2, eps in ((0.1, 0.9, 0.999, 1e-8), (0.05, 0.0, 0.9, 0.1)))
    return RuleSpec("Adam ablation", ablation_reference, adam_init_variant, hypers,
                    ABLATION_MISTAKES)


# -- the four rule checks (one call per grade cell) ---------------------------------------------

def _check(spec: RuleSpec, part, update, init, seeds, shapes, steps, arrays) -> None:
    check_rule(update, init, spec=spec, part=part[0], equation=part[1], seeds=seeds,
               shapes=shapes, steps=steps, arrays=arrays)


def check_adagrad(update: Callable, init: Callable, *, seeds: Sequence[int] = (0,),
                  shapes: Sequence[tuple[int, ...]] = ((3,),), steps: int = 12,
                  arrays: Sequence[str] = ARRAYS) -> None:
    _check(adagrad_spec(), PART_ADAGRAD, update, init, seeds, shapes, steps, arrays)


def check_rmsprop(update: Callable, init: Callable, *, seeds: Sequence[int] = (0,),
                  shapes: Sequence[tuple[int, ...]] = ((3,),), steps: int = 12,
                  arrays: Sequence[str] = ARRAYS) -> None:
    _check(rmsprop_spec(), PART_RMSPROP, update, init, seeds, shapes, steps, arrays)


def check_adam(update: Callable, init: Callable, *, seeds: Sequence[int] = (0,),
               shapes: Sequence[tuple[int, ...]] = ((3,),), steps: int = 12,
               arrays: Sequence[str] = ARRAYS) -> None:
    _check(adam_spec(), PART_ADAM, update, init, seeds, shapes, steps, arrays)


def check_ablation(update: Callable, init: Callable, *, seeds: Sequence[int] = (0,),
                   shapes: Sequence[tuple[int, ...]] = ((3,),), steps: int = 12,
                   arrays: Sequence[str] = ("numpy",)) -> None:
    _check(ablation_spec(), PART_ABLATION, update, init, seeds, shapes, steps, arrays)


# -- AdamW, and the worked step of chapter 5 ----------------------------------------------------

def worked_problem(theta0: float = 2.0, lr: float = 0.1, weight_decay: float = 0.01):
    """L(θ) = (θ − 1)², one AdamW step from θ₀: the inputs and the hand computation.

    From θ₀ = 2: g₁ = 2(θ₀ − 1) = 2; decay θ ← (1 − ηλ)θ₀ = 1.998; m̂₁ = g₁, v̂₁ = g₁²
    (bias correction undoes the (1 − β) factors), so the Adam step is η·g₁/(|g₁| + ε) ≈ η
    and θ₁ = 1.998 − 0.1 = 1.898.
    """
    theta = np.array([theta0])
    return theta, 2 * (theta - 1), {"lr": lr, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                                    "weight_decay": weight_decay}


def check_adamw(update: Callable, init: Callable, *, seeds: Sequence[int] = (0,),
                shapes: Sequence[tuple[int, ...]] = ((3,),), steps: int = 12,
                arrays: Sequence[str] = ARRAYS,
                worked: Sequence[tuple[float, float, float]] = ((2.0, 0.1, 0.01),)) -> None:
    """The rule on the grader's cases, then the worked step(s) L = (θ − 1)² of chapter 5."""
    part, equation = PART_ADAMW
    with sandbox.trusting({"adam_update": trusted_adam_update}):
        _check(adam_spec(decoupled=True), PART_ADAMW, update, init, seeds, shapes, steps,
               arrays)
    ref_update, ref_init = library_rule("adamw")
    name = getattr(update, "__name__", "your rule")
    for theta0, lr, wd in worked:
        theta, grad, hyper = worked_problem(theta0, lr, wd)
        state = sandbox.call(init, theta)
        out = sandbox.call(update, theta, grad, state.value, **hyper,
                           trusted={"adam_update": trusted_adam_update}) if state.ok else state
        expected = float(ref_update(theta, grad, ref_init(theta), **hyper)[0][0])
        where = (f"L(θ) = (θ − 1)², θ₀ = {theta0}, η = {lr}, λ = {wd}: the reference gives "
                 f"θ₁ = {expected:.6g}")
        if not out.ok:
            fail(f"{name} failed on the worked step ({where}): "
                 f"{out.error or out.delegated or out.mutated}.", "exception"
                 ).raise_for(part, equation)
        try:
            got = float(np.asarray(sandbox.snapshot(out.value[0]), dtype=float).ravel()[0])
        except (TypeError, ValueError, IndexError, KeyError):
            fail(f"{name} must return the pair (new_param, new_state); on the worked step it "
                 f"returned {type(out.value).__name__}.", "wrong-shape").raise_for(part,
                                                                                 equation)
        if not np.isclose(got, expected, rtol=1e-9, atol=1e-12):
            fail(f"the worked step gives θ₁ = {got:.6g} ({where}: decay (1 − ηλ)θ₀, then "
                 "a bias-corrected first step of size about η).", "worked-step"
                 ).raise_for(part, equation)
        print(f"Part {part}, worked step: θ₀ = {theta0} → θ₁ = {got:.6g}, as the reference.")


# -- the training run ---------------------------------------------------------------------------

def trusted_adam_update(param, grad, state, *, lr, beta1=0.9, beta2=0.999, eps=1e-8,
                        weight_decay=0.0):
    """The grader's Adam on the notebook's ``AdamState(t, m, v)``: it replaces the student's
    ``adam_update`` while their AdamW (which may call it) is checked, so an Adam mistake
    costs part 5.3 only."""
    return adam_variant(param, grad, state, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                        weight_decay=weight_decay)


def trusted_adamw_update(param, grad, state, *, lr, beta1=0.9, beta2=0.999, eps=1e-8,
                         weight_decay=1e-2):
    """The grader's AdamW on the notebook's ``AdamState(t, m, v)``, used in part 5.6 when the
    student's own rule fails part 5.4 (references are forbidden while student code runs)."""
    return adam_variant(param, grad, state, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                        weight_decay=weight_decay, decoupled=True)


class _FreshStateAdamW(torch.optim.Optimizer):
    """A known mistake of part 5.6: the rule's state is created anew at every step."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                new, _ = trusted_adamw_update(p, p.grad, adam_init_variant(p), lr=group["lr"],
                                              beta1=beta1, beta2=beta2, eps=group["eps"],
                                              weight_decay=group["weight_decay"])
                p.copy_(new)


# The grader's run: two param groups (the first layer, the rest), every hyperparameter away
# from its default (an optimizer that ignores a group's betas or eps, or reads the defaults,
# trains differently; ε = 1e-3 and 1e-4 are large enough to move the curve).
TRAIN_HYPER = {"lr": 2e-2, "betas": (0.85, 0.99), "eps": 1e-3, "weight_decay": 0.1}
SECOND_GROUP = {"lr": 1e-2, "betas": (0.7, 0.95), "eps": 1e-4, "weight_decay": 0.02}


def _rule_passes(update: Callable, init: Callable) -> bool:
    """Does the notebook's AdamW rule pass (True when the notebook has none to lend)?"""
    case = RuleCase("noise", 0, (3,), "float32", dict(adam_spec(decoupled=True).hypers[-1]),
                    8, "torch")
    try:
        return judge_rule(adam_spec(decoupled=True), case, run_rule(update, init, case)).ok
    except NameError:                     # not defined in the student's notebook
        return True


def check_training(optimizer_class: type, *, seeds: Sequence[int] = (0,),
                   steps: int = 60) -> None:
    """Re-run ``optimizer_class`` in the grader's run, with two param groups (the first layer
    with :data:`TRAIN_HYPER`, the rest with :data:`SECOND_GROUP`); compare with
    ``torch.optim.AdamW`` built the same way, on the same device
    (:mod:`descent.grading.training`)."""
    part, equation = PART_TRAIN
    names = sandbox.notebook_names(optimizer_class, "adamw_update", "adam_init")
    trusted = None
    if len(names) == 2 and not _rule_passes(names["adamw_update"], names["adam_init"]):
        trusted = {"adamw_update": trusted_adamw_update}
        print("Your adamw_update does not pass Part 5.4, so this run uses the grader's "
              "AdamW rule inside your optimizer class (the rule's points are lost once, "
              "in Part 5.4).")
    reference = functools.partial(training.grouped, torch.optim.AdamW, SECOND_GROUP,
                                  **TRAIN_HYPER)
    for seed in seeds:
        run = training.RunSpec(seed=seed, steps=steps)
        with sandbox.trusting(trusted):
            got = training.run_training(functools.partial(training.grouped, optimizer_class,
                                                          SECOND_GROUP, **TRAIN_HYPER), run)
        verdict = training.judge_training(reference, got, run)
        if not verdict.ok and verdict.mistake in ("curve", "final-loss"):
            verdict = _diagnose_run(got, run, verdict)
        verdict.raise_for(part, equation)
    passed(part, len(seeds))


def _diagnose_run(got: sandbox.Outcome, run: training.RunSpec, verdict: Verdict) -> Verdict:
    """Name the two mistakes of the wrapper: parameters never written back, state not kept."""
    mine = np.asarray(got.value)
    if np.allclose(mine, mine[0], rtol=1e-7, atol=0):
        return fail("the loss never changes: your step computes new parameters but does not "
                    "write them back. `p = new_p` only rebinds the name; update the tensor "
                    "itself with `p.copy_(new_p)`. " + verdict.message, "params-not-written")
    fresh = training.losses(functools.partial(training.grouped, _FreshStateAdamW,
                                              SECOND_GROUP, **TRAIN_HYPER), run,
                            untrusted=False).value
    tol = training.TOLERANCE[run.resolved().device]
    if np.all(np.abs(mine - fresh) <= tol * np.maximum(np.abs(fresh), 1e-12)):
        return fail("your optimizer does not keep the state between steps: every step starts "
                    "from adam_init (t = 0, zero moments). Store the new state in "
                    "`self.state[p]` and read it back at the next step. " + verdict.message,
                    "state-not-kept")
    return verdict


__all__ = ["check_adagrad", "check_rmsprop", "check_adam", "check_adamw", "check_ablation",
           "check_training", "worked_problem", "adagrad_spec", "ablation_spec", "ablation_runs",
           "being_graded"]


# -- the ablation's experiment (a locked cell runs it with the student's rule) -----------------

ABLATIONS = {
    "Adam": {},
    "no momentum (β₁ = 0)": {"beta1": 0.0},
    "no bias correction": {"bias_correction": False},
    "no adaptivity": {"adaptive": False},
}


def ablation_problem(seed: int = 0, dim: int = 20, noise: float = 0.5):
    """A badly scaled noisy quadratic: curvatures d from 0.01 to 100, θ* = 1, g = d ⊙ (θ − θ*)
    + noise·√d ⊙ ξ. Returns ``(loss, grad)``; ``grad(t, θ)`` draws fixed noise per step."""
    rng = np.random.default_rng(seed)
    d = np.logspace(-2, 2, dim)
    xi = rng.standard_normal((10_000, dim))
    loss = lambda theta: float(0.5 * np.sum(d * (theta - 1) ** 2))
    grad = lambda t, theta: d * (theta - 1) + noise * np.sqrt(d) * xi[t]
    return loss, grad


def ablation_runs(update: Callable, init: Callable, *, steps: int = 300, lr: float = 0.05,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """{ablation: losses L(θ₀) … L(θ_T)} of ``update`` from θ₀ = 0 on :func:`ablation_problem`."""
    loss, grad = ablation_problem(seed)
    out = {}
    for label, flags in ABLATIONS.items():
        theta = np.zeros(20)
        state = init(theta)
        curve = [loss(theta)]
        for t in range(steps):
            with np.errstate(all="ignore"):
                theta, state = update(theta, grad(t, theta), state, lr=lr, **flags)
            curve.append(loss(theta))
        out[label] = np.asarray(curve)
    return out


# -- part 5.7: a fair comparison (a tuned rate per method, separate seeds) ---------------------

PART_FAIR = ("5.7", "the fair protocol: per method, the rate with the lowest mean final loss "
             "on the tuning seeds, re-run on the evaluation seeds")

METHODS = ("sgd", "momentum", "adam")
RATES = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def quadratic_run(method: str, lr: float, seed: int, *, steps: int = 50,
                  dim: int = 10) -> np.ndarray:
    """The grader's ``train(method, lr, seed)``: the losses after each of ``steps`` steps of
    ``method`` ("sgd", "momentum" (heavy ball, β = 0.9) or "adam" (the book's defaults)) at
    rate ``lr`` on a noisy quadratic, curvatures d from 10^−2.5 to 10, θ₀ = 1 + ξ and gradient
    noise 0.2·√d·ξ_t drawn from ``seed``. Cheap (NumPy, ~1 ms) and deterministic: the same
    inputs give the same curve on every call. A diverging rate gives huge (or inf) losses."""
    rng = np.random.default_rng(seed)
    d = np.logspace(-2.5, 1, dim)
    theta = 1.0 + rng.standard_normal(dim)
    xi = rng.standard_normal((steps, dim))
    m, v = np.zeros(dim), np.zeros(dim)
    out = np.empty(steps)
    with np.errstate(all="ignore"):
        for t in range(1, steps + 1):
            g = d * theta + 0.2 * np.sqrt(d) * xi[t - 1]
            if method == "sgd":
                theta = theta - lr * g
            elif method == "momentum":
                m = 0.9 * m + g                                          # heavy ball
                theta = theta - lr * m
            elif method == "adam":
                m = 0.9 * m + 0.1 * g
                v = 0.999 * v + 0.001 * g * g
                theta = theta - lr * (m / (1 - 0.9 ** t)) / (
                    np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)                # eq. (Adam)
            else:
                raise ValueError(f"method must be 'sgd', 'momentum' or 'adam', got {method!r}")
            out[t - 1] = 0.5 * np.sum(d * theta ** 2)
    return out


def table_run(table: dict, method, lr, seed) -> np.ndarray:
    """``train(method, lr, seed)`` read from a table of crafted curves (``functools.partial(
    table_run, table)``); an input the table lacks is an error (the student asked for a run
    the protocol never needs)."""
    key = (method, float(lr), int(seed))
    if key not in table:
        raise KeyError(f"train has no run for method={method!r}, lr={lr!r}, seed={seed!r}: "
                       "call it only with the methods, rates and seeds you are given")
    return np.array(table[key], dtype=float)


class RecordingTrain:
    """The grader's ``train(method, lr, seed)``: it returns ``run(method, lr, seed)`` and keeps
    every call. A module-level class, so that it crosses to the student's side as data; what
    it recorded there comes back through :func:`recorded_calls` (``observe``)."""

    def __init__(self, run: Callable):
        self.run = run
        self.calls: list[tuple] = []

    def __call__(self, method, lr, seed):
        try:
            self.calls.append((str(method), float(lr), int(seed)))
        except (TypeError, ValueError):
            self.calls.append((repr(method), repr(lr), repr(seed)))
        return self.run(method, lr, seed)


def recorded_calls(train: RecordingTrain, _value=None) -> list:
    """What the grader's ``train`` recorded during the student's call (read after it)."""
    return [list(c) for c in train.calls]


def fair_variant(train: Callable, methods, rates, tune_seeds, eval_seeds, *,
                 select: str = "mean-final", tune_on: str = "tune", evaluate_on: str = "eval",
                 ties: str = "first", diverged: str = "worst", shared: bool = False) -> dict:
    """The protocol (defaults: the reference) or a known mistake.

    ``select``: how a rate's tuning runs are scored ("mean-final": the mean over the tuning
    seeds of the final loss; "curve-min", "curve-mean", "seed-min", "first-seed",
    "max"); ``tune_on``/``evaluate_on``: which seeds tune and evaluate ("tune", "eval",
    "both"); ``ties``: "first" (the earliest rate in ``rates``) or "last"; ``diverged``:
    "worst" (a non-finite score is never chosen unless every rate diverged) or "nan-first"
    (``np.argmin`` on the raw scores, which picks a NaN); ``shared``: one rate for every
    method (the lowest score averaged over the methods)."""
    seeds = {"tune": list(tune_seeds), "eval": list(eval_seeds),
             "both": [*tune_seeds, *eval_seeds]}
    scores = {}
    for method in methods:
        row = []
        for lr in rates:
            runs = np.array([np.asarray(train(method, lr, s), dtype=float)
                             for s in seeds[tune_on]])
            with np.errstate(all="ignore"):
                row.append({"mean-final": lambda r: np.mean(r[:, -1]),
                            "curve-min": lambda r: np.mean(np.min(r, axis=1)),
                            "curve-mean": lambda r: np.mean(r),
                            "seed-min": lambda r: np.min(r[:, -1]),
                            "first-seed": lambda r: r[0, -1],
                            "max": lambda r: -np.mean(r[:, -1])}[select](runs))
        scores[method] = np.array(row, dtype=float)
    if shared:
        with np.errstate(all="ignore"):
            common = np.mean([scores[m] for m in methods], axis=0)
        scores = {m: common for m in methods}
    out = {}
    for method in methods:
        row = scores[method]
        if diverged == "nan-first":
            i = int(np.argmin(row))                  # argmin returns the first NaN
        else:                                        # a NaN or inf score never wins
            i, best = 0, np.inf
            for j, score in enumerate(row):
                if score < best or (ties == "last" and score <= best):
                    i, best = j, score
        lr = rates[i]
        out[method] = (lr, np.array([np.asarray(train(method, lr, s), dtype=float)
                                     for s in seeds[evaluate_on]]))
    return out


FAIR_MISTAKES = (
    ("tuned-on-eval-seeds", "you tuned on the evaluation seeds: the rate you chose is the "
     "best on eval_seeds, so the evaluation measures the luck of the choice. Choose the rate "
     "from the runs on tune_seeds only, then re-run it on eval_seeds", {"tune_on": "eval"}),
    ("tuned-on-all-seeds", "you tuned on the tuning *and* the evaluation seeds: choose the "
     "rate from the runs on tune_seeds only, then re-run it on eval_seeds",
     {"tune_on": "both"}),
    ("evaluated-on-tuning-seeds", "your curves are the tuning runs: re-run the chosen rate on "
     "the separate eval_seeds (the tuning runs are biased in favour of the rate chosen on "
     "them)", {"evaluate_on": "tune"}),
    ("one-shared-rate", "you chose one rate for every method (the best on average): a fair "
     "comparison tunes the rate of each method on its own", {"shared": True}),
    ("criterion-curve-min", "you scored each rate by the lowest loss anywhere on its curves; "
     "the criterion is the mean over the tuning seeds of the *final* loss", {"select":
                                                                             "curve-min"}),
    ("criterion-curve-mean", "you scored each rate by its mean loss over the whole curve (the "
     "area under it); the criterion is the mean over the tuning seeds of the *final* loss",
     {"select": "curve-mean"}),
    ("criterion-best-seed", "you scored each rate by its best seed; the criterion is the "
     "*mean* over the tuning seeds of the final loss", {"select": "seed-min"}),
    ("criterion-first-seed", "you scored each rate on the first tuning seed only; the "
     "criterion is the mean over *all* tuning seeds of the final loss", {"select":
                                                                        "first-seed"}),
    ("criterion-max", "you chose the rate with the *highest* mean final loss; choose the "
     "lowest", {"select": "max"}),
    ("ties-last", "on a tie you kept the last of the tied rates; keep the first (in the order "
     "of `rates`): compare with a strict <", {"ties": "last"}),
    ("diverged-chosen", "you chose a rate whose runs diverged (its mean final loss is NaN): a "
     "non-finite score counts as worse than every finite one", {"diverged": "nan-first"}),
)


def _fair_result(value, methods, n_eval: int) -> dict | str:
    """{method: (lr, curves)} as plain numbers, or what is wrong with its structure."""
    if not isinstance(value, dict):
        return f"it must return a dict {{method: (lr, curves)}}, got {type(value).__name__}"
    if set(value) != set(methods):
        return (f"its keys must be the methods {list(methods)}, got "
                f"{[k if isinstance(k, str) else type(k).__name__ for k in value]}")
    out = {}
    for method in methods:
        try:
            lr, curves = value[method]
            lr = float(lr)
            curves = np.asarray(curves, dtype=float)
        except (TypeError, ValueError):
            return (f"value[{method!r}] must be the pair (lr, curves), curves an array of "
                    "shape (len(eval_seeds), steps)")
        if curves.ndim != 2 or curves.shape[0] != n_eval:
            return (f"value[{method!r}] has curves of shape {curves.shape}; expected "
                    f"(len(eval_seeds), steps) = ({n_eval}, steps), one row per "
                    "evaluation seed")
        out[method] = (lr, curves)
    return out


def _same_fair(got: dict, expected: dict) -> bool:
    return all(got[m][0] == float(e[0]) and got[m][1].shape == e[1].shape
               and np.allclose(got[m][1], e[1], rtol=1e-6, atol=0, equal_nan=True)
               for m, e in expected.items())


def _judge_calls(calls, methods, rates, tune_seeds, eval_seeds, chosen: dict) -> str | None:
    """What is wrong with the calls of ``train``: every rate on every tuning seed, the chosen
    rate only on the evaluation seeds, nothing else."""
    if not isinstance(calls, list):
        return "the grader could not read the calls of train"
    calls = [tuple(c) for c in calls if isinstance(c, list) and len(c) == 3]
    tune, evals = set(tune_seeds), set(eval_seeds)
    strange = [c for c in calls if c[0] not in methods or c[1] not in rates
               or c[2] not in tune | evals]
    if strange:
        return (f"train was called with inputs you were not given, e.g. (method, lr, seed) = "
                f"{strange[0]}")
    peeked = sorted({c for c in calls if c[2] in evals and c[1] != chosen[c[0]]})
    if peeked:
        return (f"you ran the evaluation seeds at a rate you did not choose, "
                f"(method, lr, seed) = {peeked[0]}: that is tuning on the evaluation seeds. "
                "Touch eval_seeds only after the choice, with the chosen rate")
    grid = {(m, float(r), int(s)) for m in methods for r in rates for s in tune_seeds}
    missing = sorted(grid - set(calls))
    if missing:
        return (f"not every rate was tried on every tuning seed: train({missing[0][0]!r}, "
                f"{missing[0][1]!r}, {missing[0][2]!r}) was never called")
    return None


def _crafted(finals: dict) -> tuple[dict, list, list]:
    """A table of crafted curves from ``{method: {lr: (tuning curves, eval finals)}}``: each
    evaluation curve is (1, 0.5 + seed/100, final)."""
    table, tune_seeds, eval_seeds = {}, [0, 1], [2, 3]
    for method, rows in finals.items():
        for lr, (tune_curves, eval_finals) in rows.items():
            for s, curve in zip(tune_seeds, tune_curves, strict=True):
                table[(method, lr, s)] = tuple(curve)
            for s, final in zip(eval_seeds, eval_finals, strict=True):
                table[(method, lr, s)] = (1.0, 0.5 + s / 100, final)
    return table, tune_seeds, eval_seeds


NAN = float("nan")
# Crafted curves (three rates, two tuning seeds 0 and 1, two evaluation seeds 2 and 3), each
# method built so that one wrong criterion picks another rate than the reference:
CRAFTED = {
    # a tie (0.1 and 0.3 both average 0.5): the first rate in `rates` is kept
    "tie": {0.1: (((1, 0.7, 0.5), (1, 0.7, 0.5)), (0.6, 0.6)),
            0.3: (((1, 0.8, 0.5), (1, 0.6, 0.5)), (0.4, 0.4)),
            1.0: (((1, 0.9, 0.9), (1, 0.9, 0.9)), (0.9, 0.9))},
    # the best seed (0.3's 0.2) is not the best mean
    "seeds": {0.1: (((1, 0.7, 0.5), (1, 0.7, 0.5)), (0.5, 0.5)),
              0.3: (((1, 0.7, 1.0), (1, 0.7, 0.2)), (0.5, 0.5)),
              1.0: (((1, 0.9, 0.9), (1, 0.9, 0.9)), (0.9, 0.9))},
    # the first seed alone (0.3's 0.3) is not the mean either
    "first": {0.1: (((1, 0.7, 0.5), (1, 0.7, 0.5)), (0.5, 0.5)),
              0.3: (((1, 0.7, 0.3), (1, 0.7, 0.9)), (0.5, 0.5)),
              1.0: (((1, 0.9, 0.9), (1, 0.9, 0.9)), (0.9, 0.9))},
    # the evaluation seeds favour 1.0, all seeds together 0.3; the tuning seeds pick 0.1
    "peek": {0.1: (((1, 0.7, 0.5), (1, 0.7, 0.5)), (0.9, 0.9)),
             0.3: (((1, 0.7, 0.6), (1, 0.7, 0.6)), (0.6, 0.6)),
             1.0: (((1, 0.9, 1.0), (1, 0.9, 1.0)), (0.3, 0.3))},
    # the lowest point of a curve (0.1's 0.05) and the curve's mean are not its final loss
    "curve": {0.1: (((1, 0.05, 0.6), (1, 0.05, 0.6)), (0.6, 0.6)),
              0.3: (((1, 0.5, 0.5), (1, 0.5, 0.5)), (0.5, 0.5)),
              1.0: (((3, 0.4, 0.45), (3, 0.4, 0.45)), (0.3, 0.3))},
    # 0.1 diverged on one seed (NaN): never chosen; on the evaluation seeds 1.0 looks best
    "diverged": {0.1: (((1, 0.2, NAN), (1, 0.2, 0.1)), (0.2, 0.2)),
                 0.3: (((1, 0.6, 0.5), (1, 0.6, 0.5)), (0.5, 0.5)),
                 1.0: (((1, 0.8, 0.8), (1, 0.8, 0.8)), (0.1, 0.1))},
    # every rate diverged: the first one is kept
    "all-diverged": {0.1: (((1, 2, NAN), (1, 2, NAN)), (NAN, NAN)),
                     0.3: (((1, 2, math.inf), (1, 2, NAN)), (NAN, NAN)),
                     1.0: (((1, 2, NAN), (1, 2, NAN)), (NAN, NAN))},
}


def _fair_call(fair_comparison: Callable, case: dict) -> tuple[dict, Any]:
    """Call the student's protocol on one case; (its result, the calls of train) or raise."""
    part, equation = PART_FAIR
    name, where = getattr(fair_comparison, "__name__", "your function"), case["where"]
    train = RecordingTrain(case["run"])
    inputs = {k: list(case[k]) for k in ("methods", "rates", "tune_seeds", "eval_seeds")}
    out = sandbox.call(fair_comparison, train, *inputs.values(), watch=inputs,
                       observe=functools.partial(recorded_calls, train))
    if out.delegated:
        fail(f"no points for this part: {name} calls {', '.join(out.delegated)}.",
             "delegation").raise_for(part, equation)
    if out.error:
        fail(f"{name} raised {out.error}{where}.", "exception").raise_for(part, equation)
    if out.mutated:
        fail(f"{name} changed its input(s) {', '.join(out.mutated)} in place{where}; "
             "leave the caller's lists as they are.", "mutates-input").raise_for(part, equation)
    got = _fair_result(out.value, inputs["methods"], len(inputs["eval_seeds"]))
    if isinstance(got, str):
        fail(f"{name}: {got}{where}.", "wrong-structure").raise_for(part, equation)
    return got, out.observed


def _reference(case: dict, **flags) -> dict:
    return fair_variant(case["run"], case["methods"], case["rates"], case["tune_seeds"],
                        case["eval_seeds"], **flags)


def _judge_fair(results: list[tuple[dict, dict, Any]]) -> None:
    """Each case against the reference protocol (tolerance first: float32 curves pass); a
    difference is named by the known mistake that reproduces *every* case, passing ones
    included, else located (and left to the diagnosis search)."""
    part, equation = PART_FAIR
    for case, got, calls in results:
        where = case["where"]
        expected = _reference(case)
        if _same_fair(got, expected):
            chosen = {m: float(e[0]) for m, e in expected.items()}
            problem = _judge_calls(calls, case["methods"], [float(r) for r in case["rates"]],
                                   case["tune_seeds"], case["eval_seeds"], chosen)
            if problem:
                fail(f"{problem}{where}.", "tuned-on-eval-seeds" if "evaluation seeds" in
                     problem else "protocol").raise_for(part, equation)
            continue
        for mistake, explain, flags in FAIR_MISTAKES:
            if all(_same_fair(g, _reference(c, **flags)) for c, g, _ in results):
                fail(f"{explain}{where}.", mistake).raise_for(part, equation)
        for method, (lr, curves) in expected.items():
            mine_lr, mine = got[method]
            if mine_lr != float(lr):
                fail(f"for {method!r} you chose η = {mine_lr:g}, the protocol chooses "
                     f"η = {lr:g} (the rate with the lowest mean final loss over the tuning "
                     f"seeds; the first on a tie, never a diverged one){where}.", "tuning"
                     ).raise_for(part, equation)
            if mine.shape != curves.shape or not np.allclose(mine, curves, rtol=1e-6, atol=0,
                                                             equal_nan=True):
                fail(f"for {method!r} (η = {lr:g}) your evaluation curves differ from the "
                     f"runs of the chosen rate on eval_seeds (shape {mine.shape}, expected "
                     f"{curves.shape}; one row per evaluation seed, in their order){where}.",
                     "curve").raise_for(part, equation)


def check_fair_comparison(fair_comparison: Callable, *,
                          settings: Sequence[dict] = ({"methods": METHODS, "rates": RATES,
                                                       "tune_seeds": (0, 1, 2),
                                                       "eval_seeds": (10, 11, 12),
                                                       "steps": 50},),
                          crafted: bool = True) -> None:
    """The protocol against :func:`fair_variant` on the :data:`CRAFTED` curves (ties, the
    criterion, diverged rates) and on the grader's quadratic (each ``settings`` entry:
    methods, rates, tuning and evaluation seeds, steps). A recording ``train`` checks the
    calls: every rate on every tuning seed, the evaluation seeds with the chosen rate only."""
    cases = []
    if crafted:                  # first: its curves tell the named mistakes apart
        table, tune_seeds, eval_seeds = _crafted(CRAFTED)
        cases.append({"run": functools.partial(table_run, table), "methods": list(CRAFTED),
                      "rates": [0.1, 0.3, 1.0], "tune_seeds": tune_seeds,
                      "eval_seeds": eval_seeds,
                      "where": " (crafted curves: a tie, diverged rates, seeds and curves "
                               "that differ before the end)"})
    for kw in settings:
        kw = {k: list(v) if isinstance(v, (tuple, list)) else v for k, v in kw.items()}
        run = functools.partial(quadratic_run, steps=kw.pop("steps", 50))
        cases.append({"run": run, **kw, "where": f" (the grader's noisy quadratic, {kw})"})
    results = [(case, *_fair_call(fair_comparison, case)) for case in cases]
    _judge_fair(results)
    passed(PART_FAIR[0], len(cases))


def fair_runs(fair_comparison: Callable, *, tune_seeds=range(5), eval_seeds=range(100, 105),
              shared_lr: float = 0.01) -> tuple[dict, dict]:
    """The experiment of part 5.7 (run in the student's notebook): the fair protocol on
    :func:`quadratic_run`, and the unfair one (every method at ``shared_lr``)."""
    fair = fair_comparison(quadratic_run, list(METHODS), list(RATES), list(tune_seeds),
                           list(eval_seeds))
    unfair = fair_comparison(quadratic_run, list(METHODS), [shared_lr], list(tune_seeds),
                             list(eval_seeds))
    return fair, unfair
