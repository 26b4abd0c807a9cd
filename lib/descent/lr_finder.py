"""The learning-rate range test (chapter 8; Smith 2017, "Cyclical Learning Rates", §3.3).

Train for :math:`N` steps while the learning rate grows from :math:`\\eta_{\\min}` to
:math:`\\eta_{\\max}`, record the loss, and read a good rate off the curve. Step
:math:`i = 0, \\ldots, N-1` uses

.. math::

    \\eta_i &= \\eta_{\\min}\\,(\\eta_{\\max}/\\eta_{\\min})^{i/(N-1)}
        \\quad\\text{(exponential)} \\qquad
    \\eta_i = \\eta_{\\min} + (\\eta_{\\max}-\\eta_{\\min})\\,\\tfrac{i}{N-1}
        \\quad\\text{(linear)}\\\\
    a_i &= \\beta\\,a_{i-1} + (1-\\beta)\\,\\ell_i, \\quad a_{-1} = 0, \\qquad
    \\hat\\ell_i = a_i / (1-\\beta^{\\,i+1})       && \\text{(EMA with bias correction)}\\\\
    &\\text{stop when } \\hat\\ell_i > k\\cdot\\min_{j\\le i}\\hat\\ell_j
        \\text{ or } \\ell_i \\text{ is not finite}   && \\text{(divergence)}

Suggestions, computed on the smoothed curve with the first :math:`\\lfloor N/10\\rfloor` and
the last 5 points dropped (as fastai does; all points when fewer than 3 would remain):

- ``steepest``: the rate where :math:`d\\hat\\ell/d\\log\\eta` is most negative;
- ``minimum``: :math:`\\arg\\min\\hat\\ell` divided by 10 (clamped to :math:`\\eta_{\\min}`:
  the only suggestion that could otherwise leave the tested range);
- ``valley``: fastai's heuristic: the longest decreasing run of the curve (longest
  decreasing subsequence), and the point about half-way along it.

Symbols ↔ arguments: :math:`\\eta_{\\min}` ``min_lr``, :math:`\\eta_{\\max}` ``max_lr``,
:math:`N` ``steps``, :math:`\\beta` ``beta``, :math:`k` ``diverge``.

The model's parameters and buffers, the optimizer's state and hyperparameters, the model's
train/eval mode and the global RNG states are all restored afterwards, even on error: the
test leaves no trace, so the real run can start from the same weights.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from descent._checks import check_int, check_positive, check_range, check_unit_interval
from descent.train import (
    _compute_loss,
    _device,
    _micro_batches,
    _rng_state,
    _set_rng_state,
    _to_device,
    seed_everything,
)

__all__ = ["LRFinderResult", "lr_range_test", "lr_ramp", "suggest_steepest",
           "suggest_minimum", "suggest_valley"]


@dataclass
class LRFinderResult:
    """Plain data: the rates tried, raw and smoothed losses, and the suggested rates."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    suggestions: dict[str, float] = field(default_factory=dict)
    diverged: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lr_ramp(min_lr: float, max_lr: float, steps: int, mode: str = "exp") -> list[float]:
    """The rates :math:`\\eta_0, \\ldots, \\eta_{N-1}`, from ``min_lr`` to ``max_lr`` inclusive."""
    check_positive(min_lr, "min_lr", "η_min")
    check_range(max_lr, "max_lr", "η_max", low=min_lr, low_open=True)
    check_int(steps, "steps", low=2)
    i = np.arange(steps) / (steps - 1)
    if mode == "exp":
        lrs = min_lr * (max_lr / min_lr) ** i                     # exponential ramp
    elif mode == "linear":
        lrs = min_lr + (max_lr - min_lr) * i                      # linear ramp
    else:
        raise ValueError(f"mode must be 'exp' or 'linear', got {mode!r}")
    return [float(v) for v in lrs]


# -- suggestions ----------------------------------------------------------------------------
def suggest_steepest(lrs, losses) -> float:
    """The rate where the loss falls fastest per unit of :math:`\\log\\eta`."""
    lrs, losses = np.asarray(lrs, float), np.asarray(losses, float)
    slope = np.diff(losses) / np.diff(np.log(lrs))               # dℓ/d log η
    return float(lrs[int(np.argmin(slope))])


def suggest_minimum(lrs, losses, *, floor: float = 0.0) -> float:
    """The rate of the lowest loss, divided by 10 (never below ``floor``)."""
    return max(float(lrs[int(np.argmin(losses))]) / 10, floor)


def suggest_valley(lrs, losses) -> float:
    """fastai's valley: half-way along the longest decreasing subsequence of the curve."""
    n = len(losses)
    run = [1] * n                 # run[i]: longest decreasing subsequence ending at i
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
            if run[end] < run[i]:
                end, start = i, i - run[i]
    # As in fastai, start = end - run[end] is one before the run's first point.
    third = (end - start) / 3
    return float(lrs[max(start + int(third) + int(third / 2), 0)])


def _suggestions(lrs: list[float], smoothed: list[float], planned: int,
                 min_lr: float) -> dict[str, float]:
    lo, hi = planned // 10, len(lrs) - 5
    if hi - lo < 3:
        lo, hi = 0, len(lrs)
    ok = [i for i in range(lo, hi) if math.isfinite(smoothed[i])]
    if len(ok) < 2:
        return {}
    x, y = [lrs[i] for i in ok], [smoothed[i] for i in ok]
    return {"steepest": suggest_steepest(x, y), "minimum": suggest_minimum(x, y, floor=min_lr),
            "valley": suggest_valley(x, y)}


# -- the test -------------------------------------------------------------------------------
def lr_range_test(model: nn.Module, optimizer: torch.optim.Optimizer, data, *,
                  loss_fn: Callable = F.cross_entropy, min_lr: float = 1e-7,
                  max_lr: float = 10.0, steps: int = 100, mode: str = "exp",
                  beta: float = 0.98, diverge: float = 4.0, device=None,
                  seed: int = 0) -> LRFinderResult:
    """Run the LR range test and restore everything afterwards; see the module docstring.

    ``data`` is anything :func:`descent.train.train` accepts. Every param group gets the same
    rate :math:`\\eta_i` at step :math:`i`; the optimizer's other hyperparameters are used as
    they are. The model is moved to ``device`` (default :func:`descent.train.best_device`).
    """
    lrs_planned = lr_ramp(min_lr, max_lr, steps, mode)
    check_unit_interval(beta, "beta", "β")
    check_range(diverge, "diverge", "k", low=1.0, low_open=True)
    device = _device(device)
    model.to(device)
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_rng, was_training = _rng_state(), model.training
    result = LRFinderResult(config={"min_lr": min_lr, "max_lr": max_lr, "steps": steps,
                                    "mode": mode, "beta": beta, "diverge": diverge,
                                    "seed": seed, "optimizer": type(optimizer).__name__})
    try:
        seed_everything(seed)
        model.train()
        stream = _micro_batches(data)
        avg, best = 0.0, math.inf
        for i, (lr, batch) in enumerate(zip(lrs_planned, islice(stream, steps))):
            for group in optimizer.param_groups:
                group["lr"] = lr                                  # η_i
            x, y = _to_device(batch, device, i + 1)
            optimizer.zero_grad(set_to_none=True)
            loss = _compute_loss(loss_fn, model(x), y, i + 1)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            avg = beta * avg + (1 - beta) * value                 # a_i (EMA)
            smooth = avg / (1 - beta ** (i + 1))                  # ℓ̂_i (bias-corrected)
            result.lrs.append(lr)
            result.losses.append(value)
            result.smoothed.append(smooth)
            if not math.isfinite(smooth) or smooth > diverge * best:   # divergence
                result.diverged = True
                break
            best = min(best, smooth)
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        optimizer.zero_grad(set_to_none=True)
        model.train(was_training)
        _set_rng_state(saved_rng)
    result.suggestions = _suggestions(result.lrs, result.smoothed, steps, min_lr)
    return result
