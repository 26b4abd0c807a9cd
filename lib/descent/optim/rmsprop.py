r"""RMSprop, plain, centered and with momentum (chapter 5, eq. RMSprop).

With gradient :math:`g_t`, smoothing :math:`\alpha`, learning rate :math:`\eta`, momentum
:math:`\mu`, weight decay :math:`\lambda` and :math:`\epsilon`:

.. math::

    g_t &\leftarrow g_t + \lambda\,\theta_{t-1}               && \text{(L2 term)}\\
    v_t &= \alpha\, v_{t-1} + (1-\alpha)\, g_t^2              && \text{(mean square)}\\
    \bar g_t &= \alpha\, \bar g_{t-1} + (1-\alpha)\, g_t      && \text{(mean, centered only)}\\
    d_t &= g_t / \big(\sqrt{v_t - \bar g_t^2} + \epsilon\big)
        \text{ (centered) or } g_t / (\sqrt{v_t} + \epsilon)  && \text{(scaled gradient)}\\
    b_t &= \mu\, b_{t-1} + d_t                                && \text{(momentum, if } \mu > 0)\\
    \theta_t &= \theta_{t-1} - \eta\, b_t \text{ (or } \eta\, d_t \text{ if } \mu = 0)
        && \text{(step)}

Conventions that bite: no bias correction (:math:`v_0 = 0`, so early steps are large); ε is
added *outside* the square root; the momentum buffer accumulates the *scaled* gradient and
is not an EMA; ``t`` is counted (incremented before use) but enters no formula.

Symbols ↔ arguments: η ``lr``, α ``alpha``, ε ``eps``, λ ``weight_decay``, μ ``momentum``;
``RMSpropState(step, v, g_bar, b)`` ↔ torch.optim's ``step``, ``square_avg``,
``grad_avg``, ``momentum_buffer``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from descent import _arrays as xp
from descent._checks import check_nonnegative, check_range, check_same_shape
from descent.optim._base import RuleOptimizer


class RMSpropState(NamedTuple):
    step: int         # t: updates made so far
    v: Any            # mean square of gradients, square_avg
    g_bar: Any = None  # mean gradient (centered only), grad_avg
    b: Any = None     # momentum buffer (μ > 0 only), momentum_buffer


def rmsprop_init(param, *, momentum: float = 0.0, centered: bool = False) -> RMSpropState:
    """The state before the first step: zeros, with the buffers this setting uses."""
    return RMSpropState(0, xp.zeros_like(param),
                        xp.zeros_like(param) if centered else None,
                        xp.zeros_like(param) if momentum > 0 else None)


def rmsprop_update(param, grad, state: RMSpropState, *, lr: float = 1e-2, alpha: float = 0.99,
                   eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                   centered: bool = False):
    """One RMSprop step (chapter 5). Returns ``(new_param, new_state)``; inputs not mutated."""
    check_same_shape(param, grad)
    t = state.step + 1                                       # t incremented before use
    if weight_decay != 0:
        grad = grad + weight_decay * param                   # L2 term
    v = alpha * state.v + (1 - alpha) * grad * grad          # mean square
    g_bar = state.g_bar
    if centered:
        g_bar = alpha * (xp.zeros_like(param) if g_bar is None else g_bar) \
            + (1 - alpha) * grad                             # mean gradient
        denom = xp.sqrt(v - g_bar * g_bar) + eps             # centered: sqrt of the variance
    else:
        denom = xp.sqrt(v) + eps                             # ε outside the sqrt
    b = state.b
    if momentum > 0:
        b = momentum * (xp.zeros_like(param) if b is None else b) + grad / denom   # momentum
        new_param = param - lr * b                           # θ_t = θ_{t-1} - η b_t
    else:
        new_param = param - lr * grad / denom                # θ_t = θ_{t-1} - η g_t/(√v_t + ε)
    return new_param, RMSpropState(t, v, g_bar, b)


class RMSprop(RuleOptimizer):
    """``torch.optim.RMSprop`` built on :func:`rmsprop_update`; same keywords and defaults."""

    rule = staticmethod(rmsprop_update)
    State = RMSpropState
    torch_keys = {"v": "square_avg", "g_bar": "grad_avg", "b": "momentum_buffer"}
    hyperparameters = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 capturable: bool = False, foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False):
        check_nonnegative(lr, "lr", "η")
        check_range(alpha, "alpha", "α", low=0.0, high=1.0)
        check_nonnegative(eps, "eps", "ε")
        check_nonnegative(weight_decay, "weight_decay", "λ")
        check_nonnegative(momentum, "momentum", "μ")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults)

    def init_state(self, param, group: dict[str, Any]) -> RMSpropState:
        return rmsprop_init(param, momentum=group["momentum"], centered=group["centered"])
