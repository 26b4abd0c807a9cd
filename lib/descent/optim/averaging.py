r"""Weight averaging: SWA (Polyak–Ruppert) and EMA (chapter 6, eqs. SWA, EMA and SWALR).

An optimizer's iterates :math:`\theta_1, \theta_2, \dots` bounce around a minimum at a
distance set by the learning rate and the gradient noise. Their *average*
:math:`\bar\theta_n` lies closer to the centre of the bounce. With :math:`n` the number of
iterates averaged so far (:math:`\bar\theta_1 = \theta_1` in both rules):

.. math::

    \bar\theta_n &= \bar\theta_{n-1} + \frac{\theta_n - \bar\theta_{n-1}}{n}
        = \frac1n \sum_{k=1}^{n} \theta_k                       && \text{(SWA: the running mean)}\\
    \bar\theta_n &= \beta\,\bar\theta_{n-1} + (1-\beta)\,\theta_n  && \text{(EMA)}

The running mean is **Polyak–Ruppert averaging** when it takes every iterate from the start
(Polyak & Juditsky 1992), and **stochastic weight averaging** (SWA, Izmailov et al. 2018)
when it takes an iterate every epoch (or every few steps) from a late point of the run, at a
constant or cyclic rate. The EMA forgets: its weights :math:`(1-\beta)\beta^{n-k}` fall off
over about :math:`1/(1-\beta)` updates (deep-learning code also calls it "Polyak
averaging"). :func:`swalr_lr` is the rate that SWA runs at: from the rate
:math:`\eta_{\text{start}}` the group holds when the anneal starts to :math:`\eta_{\text{swa}}`
over :math:`S` scheduler steps,

.. math::

    \eta_s = \alpha_s\,\eta_{\text{swa}} + (1-\alpha_s)\,\eta_{\text{start}}, \qquad
    \alpha_s = \phi\bigl(\min(1, s/S)\bigr),\quad
    \phi(u) = \tfrac12(1-\cos\pi u) \text{ or } u                   && \text{(SWALR)}

and the rate stays at :math:`\eta_{\text{swa}}` after step :math:`S`.

What here equals ``torch.optim.swa_utils`` (float64, tested):

- :class:`AveragedModel` with no averaging function is torch's default SWA average, bit for
  bit on the CPU (torch computes ``a + (θ - a)/(n + 1)`` there, as :func:`swa_update`; on
  CUDA it uses ``lerp``, equal to rounding); with :func:`get_ema_avg_fn` it is torch's
  ``get_ema_avg_fn`` bit for bit, and torch's ``get_ema_multi_avg_fn`` (a ``lerp``) to
  rounding. ``use_buffers=True`` averages the buffers too (BatchNorm's running statistics;
  an integer buffer is averaged in floating point and cast back, as torch does), and
  ``use_buffers=False`` copies them from the model. Its ``state_dict`` is torch's.
- :class:`SWALR` gives torch's ``SWALR`` rates bit for bit, for both anneal strategies,
  including when another scheduler moved the rate before the anneal starts.
- :func:`update_bn` *is* torch's: it recomputes BatchNorm's running statistics for the
  averaged weights with BatchNorm's own kernels (``momentum=None``, a cumulative average,
  which is the running mean above applied to each batch's statistics; tested). There is no
  update rule of descent's inside it to wrap, so it is re-exported, not rewritten.

Conventions that bite: the first update copies :math:`\theta_1` (no zero start, so no bias
correction is needed); :math:`n` counts iterates averaged, torch's buffer ``n_averaged``;
:math:`\beta` is the *decay* (``decay=0.999`` keeps 99.9% of the average), the EMA weight of
the new iterate is :math:`1-\beta`; ``SWALR`` counts its own ``step()`` calls, not epochs of
the run, and anneals from whatever rate the group holds when it takes over.

Symbols ↔ arguments: :math:`\bar\theta_n` ``AverageState.theta_bar`` (the averaged model's
parameters), :math:`n` ``AverageState.n`` (``n_averaged``), :math:`\beta` ``decay``,
:math:`\eta_{\text{swa}}` ``swa_lr``, :math:`S` ``anneal_epochs``, :math:`\phi`
``anneal_strategy`` (``"cos"`` or ``"linear"``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch.optim import swa_utils
from torch.optim.optimizer import Optimizer
from torch.optim.swa_utils import update_bn

from descent import _arrays as xp
from descent._checks import check_int, check_nonnegative, check_range, check_same_shape

__all__ = ["AverageState", "average_init", "swa_update", "ema_update", "swa_anneal_alpha",
           "swalr_lr", "AveragedModel", "SWALR", "get_swa_avg_fn", "get_swa_multi_avg_fn",
           "get_ema_avg_fn", "get_ema_multi_avg_fn", "update_bn"]


class AverageState(NamedTuple):
    n: int                 # iterates averaged so far (torch's n_averaged)
    theta_bar: Any = None  # θ̄_n, the average; None before the first iterate


def average_init(param=None) -> AverageState:
    """The state before the first iterate: n = 0 and no average yet."""
    return AverageState(0, None)


def _first(param) -> AverageState:
    """θ̄_1 = θ_1: a copy, so that the average never aliases the iterate."""
    return AverageState(1, xp.copy(param))


def swa_update(param, state: AverageState) -> AverageState:
    """Add the iterate θ_n to the running mean (chapter 6, eq. SWA); returns the new state.

    ``θ̄_n = θ̄_{n-1} + (θ_n - θ̄_{n-1})/n``: the mean of every iterate given so far, each
    with weight 1/n. Pure: ``param`` and ``state`` are not changed.
    """
    if state.theta_bar is None:
        return _first(param)
    check_same_shape(state.theta_bar, param, "theta_bar", "param")
    n = state.n + 1
    return AverageState(n, state.theta_bar + (param - state.theta_bar) / n)   # running mean


def ema_update(param, state: AverageState, *, decay: float = 0.999) -> AverageState:
    """Add the iterate θ_n to the exponential moving average (chapter 6, eq. EMA).

    ``θ̄_n = β θ̄_{n-1} + (1 - β) θ_n`` with β = ``decay``; θ̄_1 = θ_1. Pure.
    """
    if state.theta_bar is None:
        return _first(param)
    check_same_shape(state.theta_bar, param, "theta_bar", "param")
    return AverageState(state.n + 1,
                        decay * state.theta_bar + (1 - decay) * param)   # β θ̄ + (1-β) θ


def _check_decay(decay) -> float:
    return check_range(decay, "decay", "β", low=0.0, high=1.0)


# -- the averaging functions of torch.optim.swa_utils, built on the two rules ----------------
def get_swa_avg_fn() -> Callable:
    """``avg_fn(theta_bar, param, n_averaged) -> new theta_bar`` for :class:`AveragedModel`:
    :func:`swa_update` with torch's signature (``n_averaged`` iterates averaged before)."""

    @torch.no_grad()
    def swa_avg(theta_bar, param, n_averaged):
        return swa_update(param, AverageState(int(n_averaged), theta_bar)).theta_bar

    return swa_avg


def get_ema_avg_fn(decay: float = 0.999) -> Callable:
    """``avg_fn`` for :class:`AveragedModel`: :func:`ema_update` with decay β (in [0, 1])."""
    decay = _check_decay(decay)

    @torch.no_grad()
    def ema_avg(theta_bar, param, n_averaged):
        return ema_update(param, AverageState(int(n_averaged), theta_bar),
                          decay=decay).theta_bar

    return ema_avg


def _in_place(avg_fn: Callable) -> Callable:
    @torch.no_grad()
    def multi_avg(averaged: list, current: list, n_averaged) -> None:
        for theta_bar, param in zip(averaged, current, strict=True):
            theta_bar.copy_(avg_fn(theta_bar, param, n_averaged))

    return multi_avg


def get_swa_multi_avg_fn() -> Callable:
    """``multi_avg_fn(averaged, current, n_averaged)``, in place: :func:`swa_update` on each
    pair of tensors (the same numbers as :func:`get_swa_avg_fn`)."""
    return _in_place(get_swa_avg_fn())


def get_ema_multi_avg_fn(decay: float = 0.999) -> Callable:
    """``multi_avg_fn`` for :class:`AveragedModel`: :func:`ema_update` on each pair, in place.

    torch's ``get_ema_multi_avg_fn`` computes the same average with ``lerp``; the two differ
    by rounding only.
    """
    return _in_place(get_ema_avg_fn(decay))


class AveragedModel(swa_utils.AveragedModel):
    """``torch.optim.swa_utils.AveragedModel`` on :func:`swa_update` / :func:`ema_update`.

    ``AveragedModel(model, device=None, avg_fn=None, multi_avg_fn=None, use_buffers=False)``
    keeps a deep copy of ``model`` whose parameters are the average θ̄ of the ``model``'s
    parameters at each :meth:`update_parameters` call. With neither function given it is the
    SWA running mean (:func:`swa_update`); for an EMA pass
    ``multi_avg_fn=get_ema_multi_avg_fn(decay)`` (or ``avg_fn=get_ema_avg_fn(decay)``), as
    with torch. Any torch-style ``avg_fn`` or ``multi_avg_fn`` works too. It *is* a torch
    ``AveragedModel`` (``forward``, the ``n_averaged`` buffer, the ``state_dict``); only the
    update is descent's. Call it like the model: ``averaged(x)``.
    """

    @torch.no_grad()
    def update_parameters(self, model: torch.nn.Module) -> None:
        """Average ``model``'s current parameters (and buffers, if ``use_buffers``) in."""
        if self.use_buffers:
            averaged = itertools.chain(self.module.parameters(), self.module.buffers())
            current = itertools.chain(model.parameters(), model.buffers())
        else:
            averaged, current = self.parameters(), model.parameters()
        pairs = [(a.detach(), c.detach().to(a.device)) for a, c in zip(averaged, current)]
        n = int(self.n_averaged)
        if n == 0 or (self.avg_fn is None and self.multi_avg_fn is None):
            for theta_bar, param in pairs:                      # the rule itself: SWA
                state = swa_update(param, AverageState(n, None if n == 0 else theta_bar))
                theta_bar.copy_(state.theta_bar)
        elif self.multi_avg_fn is not None:                    # torch's contract: in place,
            groups: dict[tuple, tuple[list, list]] = {}        # by device and dtype
            for theta_bar, param in pairs:
                lists = groups.setdefault((theta_bar.device, theta_bar.dtype), ([], []))
                lists[0].append(theta_bar)
                lists[1].append(param)
            for (device, _), (bars, params) in groups.items():
                self.multi_avg_fn(bars, params, self.n_averaged.to(device))
        else:
            for theta_bar, param in pairs:
                theta_bar.copy_(self.avg_fn(theta_bar, param,
                                            self.n_averaged.to(theta_bar.device)))
        if not self.use_buffers:         # the buffers follow the model (BatchNorm statistics)
            for mine, theirs in zip(self.module.buffers(), model.buffers(), strict=True):
                mine.detach().copy_(theirs.detach().to(mine.device))
        self.n_averaged += 1


# -- SWALR: the rate SWA runs at ---------------------------------------------------------------
_ANNEAL = {"cos": lambda u: (1 - math.cos(math.pi * u)) / 2, "linear": lambda u: u}


def _check_strategy(anneal_strategy: str) -> str:
    if anneal_strategy not in _ANNEAL:
        raise ValueError("anneal_strategy (φ) must be 'cos' or 'linear', "
                         f"got {anneal_strategy!r}")
    return anneal_strategy


def swa_anneal_alpha(step: int, *, anneal_epochs: int = 10,
                     anneal_strategy: str = "cos") -> float:
    """α_s = φ(min(1, s/S)) (chapter 6, eq. SWALR): 0 at s = 0, 1 from s = S on (always 1
    when S = 0: no anneal)."""
    u = 1 if anneal_epochs == 0 else max(0, min(1, step / anneal_epochs))
    return _ANNEAL[anneal_strategy](u)


def swalr_lr(step: int, lr: float, *, swa_lr: float, anneal_epochs: int = 10,
             anneal_strategy: str = "cos") -> float:
    """η_s, the rate of SWALR's step ``s``, from ``lr`` = η_{s-1}, the rate the group holds.

    The closed form is η_s = α_s η_swa + (1 - α_s) η_start (eq. SWALR). A scheduler sees only
    the group's current rate, so η_start is first recovered from it,
    η_start = (η_{s-1} - α_{s-1} η_swa)/(1 - α_{s-1}); torch's ``SWALR`` does the same, in
    the same operations, so the two agree bit for bit.
    """
    alpha_prev = swa_anneal_alpha(step - 1, anneal_epochs=anneal_epochs,
                                  anneal_strategy=anneal_strategy)
    if alpha_prev == 1:
        lr_start = swa_lr
    else:
        lr_start = (lr - alpha_prev * swa_lr) / (1 - alpha_prev)   # invert the closed form
    alpha = swa_anneal_alpha(step, anneal_epochs=anneal_epochs,
                             anneal_strategy=anneal_strategy)
    return swa_lr * alpha + lr_start * (1 - alpha)                 # η_s


class SWALR(swa_utils.SWALR):
    """``torch.optim.swa_utils.SWALR`` on :func:`swalr_lr`; same keywords and defaults.

    ``SWALR(optimizer, swa_lr, anneal_epochs=10, anneal_strategy="cos", last_epoch=-1)``:
    each ``step()`` moves every group's rate along eq. SWALR, from the rate it holds when the
    scheduler takes over to ``swa_lr`` (one number, or one per group), in ``anneal_epochs``
    steps. Step it once per SWA period (an epoch, in the paper), after ``optimizer.step()``.
    """

    def __init__(self, optimizer: Optimizer, swa_lr, anneal_epochs: int = 10,
                 anneal_strategy: str = "cos", last_epoch: int = -1):
        rates = swa_lr if isinstance(swa_lr, (list, tuple)) else [swa_lr]
        for i, rate in enumerate(rates):
            check_nonnegative(rate, "swa_lr" if len(rates) == 1 else f"swa_lr[{i}]", "η_swa")
        check_int(anneal_epochs, "anneal_epochs (S)", low=0)
        _check_strategy(anneal_strategy)
        super().__init__(optimizer, swa_lr, anneal_epochs, anneal_strategy, last_epoch)

    def get_lr(self) -> list[float]:
        step = self._step_count - 1
        return [swalr_lr(step, group["lr"], swa_lr=group["swa_lr"],
                         anneal_epochs=self.anneal_epochs,
                         anneal_strategy=self._anneal_strategy)
                for group in self.optimizer.param_groups]
