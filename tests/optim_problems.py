"""Shared test problems for ``descent.optim``: small random nonconvex losses, the optimizers
with their ``torch.optim`` twins, and random hyperparameters over every keyword.

Why these losses. Near a stationary point Adam-type rules divide a vanishing gradient by a
vanishing √v, which turns the map θ_{t-1} → θ_t chaotic: a rounding difference of 1e-16
grows by a factor of a few per step and is visible after 30. That happens already when a
*single coordinate's* gradient crosses zero (seen with a small tanh network: a weight whose
partial derivative changes sign drove RMSprop from 1e-14 to 1e-5 apart in 30 steps). So
each parameter is pulled towards a target 40-60 away by a weighted pseudo-Huber term
(slope ≈ 1 all the way there, never reached in the run), and a small nonconvex coupling
sin(W2 (W1 x + b1)) ties the tensors together; the mean gradient never changes sign.
The weights are redrawn in [0, 3] at every step, like a fresh mini-batch: centered RMSprop
divides by the gradient's standard deviation, and a gradient with little noise (weights in
[1, 2]) makes √(v - ḡ²) a cancellation that grew rounding by 1.26× per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

import descent.optim as dopt


@dataclass(frozen=True)
class Problem:
    """A seeded loss over several tensors W1 (h×d), b1 (h×1), W2 (o×h) and, unless the
    problem is for matrices only (Muon), a scale vector s (o,)."""

    seed: int
    x: torch.Tensor                   # (d, n) inputs of the coupling term
    targets: tuple[torch.Tensor, ...]  # one per parameter, 40-60 away from its start
    shapes: tuple[tuple[int, ...], ...]

    def init_params(self, dtype=torch.float64) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed + 1)
        return [(0.5 * torch.randn(shape, generator=g, dtype=torch.float64))
                .to(dtype).requires_grad_() for shape in self.shapes]

    def loss(self, params, step: int = 0) -> torch.Tensor:
        """The loss on the ``step``-th "mini-batch" (its per-coordinate weights in [0, 3])."""
        g = torch.Generator().manual_seed(self.seed * 100_003 + step)
        return self._loss(params, [3 * torch.rand(p.shape, generator=g, dtype=torch.float64)
                                   for p in params])

    def expected_loss(self, params) -> torch.Tensor:
        """The "full-batch" loss: every weight at its mean, 1.5."""
        return self._loss(params, [torch.full(p.shape, 1.5) for p in params])

    def _loss(self, params, weights) -> torch.Tensor:
        dtype = params[0].dtype
        weights = [a.to(dtype) for a in weights]
        pull = sum((a * (torch.sqrt(1 + (p - c.to(dtype)) ** 2) - 1)).sum()
                   for p, c, a in zip(params, self.targets, weights, strict=True))
        w1, b1, w2, *rest = params
        out = w2 @ (w1 @ self.x.to(dtype) + b1)              # (o, n)
        if rest:
            out = out * (1 + rest[0])[:, None]
        return pull + 0.02 * torch.sin(out).mean()           # pseudo-Huber pull + coupling


def make_problem(seed: int, *, matrices_only: bool = False) -> Problem:
    rng = np.random.default_rng(seed)
    d, h, o, n = (int(v) for v in rng.integers(2, 7, size=4))
    shapes = ((h, d), (h, 1), (o, h)) + (() if matrices_only else ((o,),))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(d, n, generator=g, dtype=torch.float64)
    targets = []
    for shape in shapes:
        sign = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0).double()
        targets.append(sign * (40 + 20 * torch.rand(shape, generator=g, dtype=torch.float64)))
    return Problem(seed, x, tuple(targets), shapes)


# -- random hyperparameters over every keyword -------------------------------------------------
def _log_uniform(rng, low, high) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _maybe(rng, value, p=0.7):
    return value if rng.random() < p else 0.0


def _betas(rng):
    return (float(rng.uniform(0.5, 0.95)), float(rng.uniform(0.9, 0.9999)))


def sgd_hyper(rng):
    momentum = _maybe(rng, float(rng.uniform(0.5, 0.95)))
    nesterov = bool(momentum > 0 and rng.random() < 0.5)
    return dict(lr=float(rng.uniform(5e-4, 5e-3)), momentum=momentum,
                dampening=0.0 if nesterov else float(rng.uniform(0, 0.5)), nesterov=nesterov,
                weight_decay=_maybe(rng, float(rng.uniform(0, 1e-2))))


def adagrad_hyper(rng):
    return dict(lr=float(rng.uniform(0.01, 0.1)), lr_decay=_maybe(rng, float(rng.uniform(0, 0.05))),
                weight_decay=_maybe(rng, float(rng.uniform(0, 1e-2))),
                eps=_log_uniform(rng, 1e-10, 1e-6))


def rmsprop_hyper(rng):
    return dict(lr=float(rng.uniform(2e-4, 2e-3)), alpha=float(rng.uniform(0.8, 0.999)),
                eps=_log_uniform(rng, 1e-8, 1e-5),
                weight_decay=_maybe(rng, float(rng.uniform(0, 1e-2))),
                momentum=_maybe(rng, float(rng.uniform(0.3, 0.9))),
                centered=bool(rng.random() < 0.5))


def adadelta_hyper(rng):
    return dict(lr=float(rng.uniform(0.1, 0.5)), rho=float(rng.uniform(0.8, 0.99)),
                eps=_log_uniform(rng, 1e-8, 1e-4),
                weight_decay=_maybe(rng, float(rng.uniform(0, 1e-2))))


def adam_hyper(rng, *, decoupled_key=True):
    h = dict(lr=float(rng.uniform(1e-3, 1e-2)), betas=_betas(rng),
             eps=_log_uniform(rng, 1e-8, 1e-5),
             weight_decay=_maybe(rng, float(rng.uniform(0, 5e-2))),
             amsgrad=bool(rng.random() < 0.5))
    if decoupled_key:
        h["decoupled_weight_decay"] = bool(rng.random() < 0.5)
    return h


def nadam_hyper(rng):
    return dict(lr=float(rng.uniform(1e-3, 1e-2)), betas=_betas(rng),
                eps=_log_uniform(rng, 1e-8, 1e-5),
                weight_decay=_maybe(rng, float(rng.uniform(0, 5e-2))),
                momentum_decay=float(rng.uniform(1e-3, 1e-2)),
                decoupled_weight_decay=bool(rng.random() < 0.5))


# Newton–Schulz polynomials that converge: Jordan's quintic, the classic cubic and quintic.
NS_COEFFICIENT_SETS = [dopt.muon.NS_COEFFICIENTS, (1.5, -0.5, 0.0), (1.875, -1.25, 0.375)]


def muon_hyper(rng):
    return dict(lr=float(rng.uniform(1e-3, 1e-2)), weight_decay=float(rng.uniform(0, 0.1)),
                momentum=float(rng.uniform(0.8, 0.99)), nesterov=bool(rng.random() < 0.5),
                ns_coefficients=NS_COEFFICIENT_SETS[int(rng.integers(3))],
                eps=_log_uniform(rng, 1e-9, 1e-6), ns_steps=int(rng.integers(1, 7)),
                adjust_lr_fn=[None, "original", "match_rms_adamw"][int(rng.integers(3))])


@dataclass(frozen=True)
class Spec:
    """An optimizer under test: descent's class, torch's twin and a hyperparameter sampler."""

    name: str
    ours: type
    theirs: type
    hyper: Callable[[np.random.Generator], dict]
    # keywords torch.optim reads from the constructor only (not per group)
    constructor_only: Callable[[np.random.Generator], dict] = lambda rng: {}
    has_maximize: bool = True
    matrices_only: bool = False


SPECS = [
    Spec("SGD", dopt.SGD, torch.optim.SGD, sgd_hyper),
    Spec("Adagrad", dopt.Adagrad, torch.optim.Adagrad, adagrad_hyper,
         constructor_only=lambda rng: dict(
             initial_accumulator_value=_maybe(rng, float(rng.uniform(0, 0.5))))),
    Spec("RMSprop", dopt.RMSprop, torch.optim.RMSprop, rmsprop_hyper),
    Spec("Adadelta", dopt.Adadelta, torch.optim.Adadelta, adadelta_hyper),
    Spec("Adam", dopt.Adam, torch.optim.Adam, adam_hyper),
    Spec("AdamW", dopt.AdamW, torch.optim.AdamW,
         lambda rng: adam_hyper(rng, decoupled_key=False)),
    Spec("NAdam", dopt.NAdam, torch.optim.NAdam, nadam_hyper),
    Spec("Muon", dopt.Muon, torch.optim.Muon, muon_hyper, has_maximize=False,
         matrices_only=True),
]
SPEC_BY_NAME = {spec.name: spec for spec in SPECS}


def sample_setup(spec: Spec, seed: int):
    """Random (problem, constructor kwargs, second group's overrides, maximize) for ``spec``."""
    rng = np.random.default_rng(1000 + seed)
    problem = make_problem(seed, matrices_only=spec.matrices_only)
    kwargs = {**spec.hyper(rng), **spec.constructor_only(rng)}
    group2 = spec.hyper(rng)
    maximize = spec.has_maximize and bool(rng.random() < 0.3)
    if maximize:
        kwargs["maximize"] = True
    return problem, kwargs, group2, maximize


def build(cls: type, params, kwargs: dict, group2: dict):
    """Two param groups: the first uses the constructor's values, the second overrides."""
    half = len(params) // 2
    return cls([{"params": params[:half]}, {"params": params[half:], **group2}], **kwargs)


def run(problem: Problem, opt, params, steps: int, *, maximize: bool = False,
        start: int = 0) -> list[float]:
    """Updates ``start … start+steps-1`` of ``opt`` on ``problem``; returns each loss.

    With ``maximize=True`` the optimizer climbs, so it is handed the *negated* loss and the
    problem still descends.
    """
    losses = []
    sign = -1.0 if maximize else 1.0
    for step in range(start, start + steps):
        opt.zero_grad()
        loss = problem.loss(params, step)
        (sign * loss).backward()
        opt.step()
        losses.append(loss.item())
    return losses


def max_rel_diff(a_params, b_params) -> float:
    """max over tensors of ‖a - b‖∞ / ‖b‖∞."""
    return max(float((a.detach() - b.detach()).abs().max() / b.detach().abs().max())
               for a, b in zip(a_params, b_params, strict=True))
