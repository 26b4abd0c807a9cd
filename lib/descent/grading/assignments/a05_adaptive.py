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
import os
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import numpy as np
import torch

from descent import _arrays as xp
from descent.grading import sandbox, training
from descent.grading.catalogue import adam_init_variant, adam_spec, adam_variant, library_rule
from descent.grading.catalogue import rmsprop_spec as _rmsprop_spec
from descent.grading.explore import answered  # noqa: F401 - explore cells: checks.answered
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


def being_graded() -> bool:
    """True while nbgrader runs the notebook (autograde or validate): the notebook skips its
    exploration cells (plots, experiments), which no grade depends on."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


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
