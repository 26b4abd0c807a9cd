r"""Adadelta (chapter 5, eq. Adadelta; Zeiler 2012).

With gradient :math:`g_t`, decay :math:`\rho`, learning rate :math:`\eta`, weight decay
:math:`\lambda` and :math:`\epsilon`:

.. math::

    g_t &\leftarrow g_t + \lambda\,\theta_{t-1}                 && \text{(L2 term)}\\
    v_t &= \rho\, v_{t-1} + (1-\rho)\, g_t^2                    && \text{(mean square of } g)\\
    \Delta_t &= \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t
        && \text{(unit-corrected step)}\\
    u_t &= \rho\, u_{t-1} + (1-\rho)\, \Delta_t^2               && \text{(mean square of } \Delta)\\
    \theta_t &= \theta_{t-1} - \eta\, \Delta_t                  && \text{(step)}

Conventions that bite: ε is *inside* both square roots (unlike Adam and RMSprop); the step
uses the *previous* :math:`u_{t-1}`; η defaults to 1 (Zeiler's Adadelta has no η); ``t``
is counted (incremented before use) but enters no formula.

Symbols ↔ arguments: η ``lr``, ρ ``rho``, ε ``eps``, λ ``weight_decay``;
``AdadeltaState(step, v, u)`` ↔ torch.optim's ``step``, ``square_avg``, ``acc_delta``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from descent import _arrays as xp
from descent._checks import check_nonnegative, check_range, check_same_shape
from descent.optim._base import RuleOptimizer


class AdadeltaState(NamedTuple):
    step: int  # t: updates made so far
    v: Any     # mean square of gradients, square_avg
    u: Any     # mean square of updates, acc_delta


def adadelta_init(param) -> AdadeltaState:
    """The state before the first step: t = 0 and zero averages."""
    return AdadeltaState(0, xp.zeros_like(param), xp.zeros_like(param))


def adadelta_update(param, grad, state: AdadeltaState, *, lr: float = 1.0, rho: float = 0.9,
                    eps: float = 1e-6, weight_decay: float = 0.0):
    """One Adadelta step (chapter 5). Returns ``(new_param, new_state)``; inputs not mutated."""
    check_same_shape(param, grad)
    t = state.step + 1                                       # t incremented before use
    if weight_decay != 0:
        grad = grad + weight_decay * param                   # L2 term
    v = rho * state.v + (1 - rho) * grad * grad              # mean square of g
    delta = xp.sqrt(state.u + eps) / xp.sqrt(v + eps) * grad   # unit-corrected step
    u = rho * state.u + (1 - rho) * delta * delta            # mean square of Δ
    return param - lr * delta, AdadeltaState(t, v, u)        # θ_t = θ_{t-1} - η Δ_t


class Adadelta(RuleOptimizer):
    """``torch.optim.Adadelta`` built on :func:`adadelta_update`; same keywords and defaults."""

    rule = staticmethod(adadelta_update)
    State = AdadeltaState
    torch_keys = {"v": "square_avg", "u": "acc_delta"}
    hyperparameters = ("lr", "rho", "eps", "weight_decay")

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, foreach: bool | None = None, *,
                 capturable: bool = False, maximize: bool = False, differentiable: bool = False):
        check_nonnegative(lr, "lr", "η")
        check_range(rho, "rho", "ρ", low=0.0, high=1.0)
        check_nonnegative(eps, "eps", "ε")
        check_nonnegative(weight_decay, "weight_decay", "λ")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, foreach=foreach,
                        capturable=capturable, maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults)

    def init_state(self, param, group: dict[str, Any]) -> AdadeltaState:
        return adadelta_init(param)
