r"""NAdam: Adam with Nesterov momentum (chapter 5, eq. NAdam; Dozat 2016).

With gradient :math:`g_t`, decay rates :math:`\beta_1, \beta_2`, momentum decay
:math:`\psi`, learning rate :math:`\eta`, weight decay :math:`\lambda` and :math:`\epsilon`:

.. math::

    t &\leftarrow t + 1                                      && \text{(step)}\\
    g_t &\leftarrow g_t + \lambda\,\theta_{t-1}
        \quad\text{or}\quad \theta_{t-1} \leftarrow (1-\eta\lambda)\,\theta_{t-1}
        && \text{(L2 term / decoupled decay)}\\
    \mu_t &= \beta_1\big(1 - \tfrac12\, 0.96^{\,t\psi}\big)  && \text{(momentum schedule)}\\
    \Pi_t &= \Pi_{t-1}\,\mu_t                                && \text{(μ product)}\\
    m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t               && \text{(first moment)}\\
    v_t &= \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2             && \text{(second moment)}\\
    \theta_t &= \theta_{t-1}
        - \eta\,\frac{1-\mu_t}{1-\Pi_t}\,\frac{g_t}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}
        - \eta\,\frac{\mu_{t+1}}{1-\Pi_t\mu_{t+1}}\,\frac{m_t}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}
        && \text{(Nesterov step)}

Conventions that bite: ``t`` is incremented *before* use (first update has t = 1); ε is
added *outside* the square root, after the bias correction; :math:`\Pi_0 = 1`, and
:math:`\Pi` is a float32 scalar, multiplied in float32, exactly as ``torch.optim.NAdam``
keeps its ``mu_product`` (a float64 one when torch's default dtype is float64). Keeping that
rounding is what makes descent equal torch to 1e-9 in float64; an exact Π drifts 1e-7 away.

Symbols ↔ arguments: η ``lr``, β₁ β₂ ``betas``, ε ``eps``, λ ``weight_decay``, ψ
``momentum_decay``; ``NAdamState(step, mu_product, m, v)`` ↔ torch.optim's ``step``,
``mu_product``, ``exp_avg``, ``exp_avg_sq``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from descent import _arrays as xp
from descent._checks import check_nonnegative, check_same_shape
from descent.optim._base import RuleOptimizer
from descent.optim.adam import check_betas


class NAdamState(NamedTuple):
    step: int        # t: updates made so far
    mu_product: Any  # Π_t = μ_1 ⋯ μ_t, a 0-d float32 array or tensor
    m: Any           # first moment, exp_avg
    v: Any           # second moment, exp_avg_sq


def _scalar_one(param):
    """Π₀ = 1 in the dtype torch.optim keeps it: float32 (float64 if that is the default)."""
    if xp.is_torch(param):
        dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        return torch.tensor(1.0, dtype=dtype)
    return np.float32(1.0)


def nadam_init(param) -> NAdamState:
    """The state before the first step: t = 0, Π₀ = 1 and zero moments."""
    return NAdamState(0, _scalar_one(param), xp.zeros_like(param), xp.zeros_like(param))


def nadam_update(param, grad, state: NAdamState, *, lr: float = 2e-3, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False):
    """One NAdam step (chapter 5). Returns ``(new_param, new_state)``; inputs not mutated."""
    check_same_shape(param, grad)
    t = state.step + 1                                       # t incremented before use
    if weight_decay != 0:
        if decoupled_weight_decay:
            param = param * (1 - lr * weight_decay)          # decoupled decay
        else:
            grad = grad + weight_decay * param               # L2 term
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))             # μ_t
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))  # μ_{t+1}
    mu_product = state.mu_product * mu                       # Π_t = Π_{t-1} μ_t (in Π's dtype)
    pi = float(mu_product)
    m = beta1 * state.m + (1 - beta1) * grad                 # first moment
    v = beta2 * state.v + (1 - beta2) * grad * grad          # second moment
    denom = xp.sqrt(v / (1 - beta2 ** t)) + eps              # ε outside the sqrt
    param = param - (lr * (1 - mu) / (1 - pi)) * grad / denom            # gradient part
    param = param - (lr * mu_next / (1 - pi * mu_next)) * m / denom      # momentum part
    return param, NAdamState(t, mu_product, m, v)


class NAdam(RuleOptimizer):
    """``torch.optim.NAdam`` built on :func:`nadam_update`; same keywords and defaults."""

    rule = staticmethod(nadam_update)
    State = NAdamState
    traced = False    # Π_t: a 0-d tensor state, read as a float
    torch_keys = {"m": "exp_avg", "v": "exp_avg_sq"}

    def __init__(self, params, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False):
        check_nonnegative(lr, "lr", "η")
        check_nonnegative(eps, "eps", "ε")
        check_betas(betas)
        check_nonnegative(weight_decay, "weight_decay", "λ")
        check_nonnegative(momentum_decay, "momentum_decay", "ψ")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)

    def init_state(self, param, group: dict[str, Any]) -> NAdamState:
        return nadam_init(param)

    def rule_kwargs(self, group: dict[str, Any]) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"], momentum_decay=group["momentum_decay"],
                    decoupled_weight_decay=group["decoupled_weight_decay"])
