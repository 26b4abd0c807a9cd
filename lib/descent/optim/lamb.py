r"""LAMB: Adam with a layer-wise trust ratio (chapter 5; You et al. 2020, Algorithm 2).

For one parameter tensor (one "layer") with gradient :math:`g_t`, step :math:`t`, learning
rate :math:`\eta`, weight decay :math:`\lambda`:

.. math::

    m_t &= \beta_1\,m_{t-1} + (1-\beta_1)\,g_t                       && \text{(first moment)}\\
    v_t &= \beta_2\,v_{t-1} + (1-\beta_2)\,g_t^2                     && \text{(second moment)}\\
    \hat m_t &= m_t/(1-\beta_1^t), \quad \hat v_t = v_t/(1-\beta_2^t)  && \text{(bias correction)}\\
    r_t &= \frac{\hat m_t}{\sqrt{\hat v_t}+\epsilon} + \lambda\,\theta_{t-1}
        && \text{(Adam direction + decay)}\\
    \theta_t &= \theta_{t-1} - \eta\,
        \frac{\phi(\lVert\theta_{t-1}\rVert)}{\lVert r_t\rVert}\,r_t   && \text{(trust ratio)}

Conventions that bite: ``t`` is incremented *before* use (the first step has t = 1); ε is
outside the square root; the norms are Euclidean norms of the *whole tensor* (the paper's
layer = one parameter tensor here, biases included); φ is the identity — no clamping of
‖θ‖ or of the ratio (the paper allows φ(z) = min(max(z, γ_l), γ_u); some codes clip the ratio
at 10, we do not); the ratio is 1 when ‖θ‖ = 0 or ‖r‖ = 0, so zero-initialised tensors
(biases) still move, by an Adam step. The weight decay is inside the direction, so it is
scaled by the trust ratio too.

Symbols ↔ arguments: η ``lr``, β₁ β₂ ``betas``, ε ``eps``, λ ``weight_decay``, :math:`t`
``LAMBState.step``, :math:`m` :math:`v` ``LAMBState.m``/``v`` (``exp_avg``/``exp_avg_sq``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from descent import _arrays as xp
from descent._checks import (
    check_nonnegative,
    check_positive,
    check_same_shape,
    check_unit_interval,
)
from descent.optim._base import RuleOptimizer


class LAMBState(NamedTuple):
    step: int  # t, the number of steps taken so far
    m: Any     # first moment (torch key exp_avg)
    v: Any     # second moment (torch key exp_avg_sq)


def lamb_init(param) -> LAMBState:
    """The state before the first step: t = 0 and zero moments."""
    return LAMBState(0, xp.zeros_like(param), xp.zeros_like(param))


def lamb_update(param, grad, state: LAMBState, *, lr: float, beta1: float = 0.9,
                beta2: float = 0.999, eps: float = 1e-6, weight_decay: float = 0.0):
    """One LAMB step for one tensor (You et al. 2020, Alg. 2); returns ``(new_param, new_state)``.

    The norms are over the whole of ``param``: call it once per layer (parameter tensor).
    """
    check_same_shape(param, grad)
    t = state.step + 1                                           # t incremented before use
    m = beta1 * state.m + (1 - beta1) * grad                     # first moment
    v = beta2 * state.v + (1 - beta2) * grad * grad              # second moment
    m_hat = m / (1 - beta1 ** t)                                 # bias correction
    v_hat = v / (1 - beta2 ** t)
    r = m_hat / (xp.sqrt(v_hat) + eps) + weight_decay * param    # r_t = m̂/(√v̂+ε) + λθ
    theta_norm, r_norm = xp.norm(param), xp.norm(r)              # φ(‖θ‖) = ‖θ‖, ‖r_t‖
    both_positive = (theta_norm > 0) & (r_norm > 0)
    trust = xp.where(both_positive, theta_norm / xp.where(both_positive, r_norm, 1.0), 1.0)
    return param - lr * trust * r, LAMBState(t, m, v)            # θ_t = θ - η φ(‖θ‖)/‖r‖ r


class LAMB(RuleOptimizer):
    """LAMB (You et al. 2020) built on :func:`lamb_update`; one trust ratio per tensor.

    Defaults: ``lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0`` (ε = 1e-6 as in
    the paper's experiments).
    """

    rule = staticmethod(lamb_update)
    State = LAMBState
    traced = False    # trust ratio: norms of whole tensors (reductions)
    torch_keys = {"m": "exp_avg", "v": "exp_avg_sq"}

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0, *, maximize: bool = False,
                 foreach: bool | None = None, fused: bool | None = None):
        check_nonnegative(lr, "lr", "η")
        check_unit_interval(betas[0], "betas[0]", "β₁")
        check_unit_interval(betas[1], "betas[1]", "β₂")
        check_positive(eps, "eps", "ε")
        check_nonnegative(weight_decay, "weight_decay", "λ")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach, fused=fused)
        super().__init__(params, defaults)

    def rule_kwargs(self, group: dict[str, Any]) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"])

    def init_state(self, param, group: dict[str, Any]) -> LAMBState:
        return lamb_init(param)
