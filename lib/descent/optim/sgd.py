"""Stochastic gradient descent with momentum (chapter 4, eq. heavy-ball / Nesterov).

With gradient :math:`g_t`, weight decay :math:`\\lambda`, momentum :math:`\\mu`, dampening
:math:`\\tau` and learning rate :math:`\\eta` (PyTorch's convention, chapter 4):

.. math::

    g_t &\\leftarrow g_t + \\lambda\\,\\theta_{t-1}                       && \\text{(L2 term)}\\\\
    b_t &= \\begin{cases} g_t & t = 1\\\\ \\mu\\,b_{t-1} + (1-\\tau)\\,g_t & t > 1\\end{cases}
        && \\text{(momentum buffer)}\\\\
    d_t &= \\begin{cases} g_t + \\mu\\,b_t & \\text{Nesterov}\\\\ b_t & \\text{heavy ball}
        \\end{cases}\\\\
    \\theta_t &= \\theta_{t-1} - \\eta\\,d_t

Conventions that bite: the buffer is *not* an EMA (``b = μb + g``, so the effective step is
about η/(1-μ)); the first buffer is the raw gradient, undampened; with ``momentum=0`` no
buffer is kept.

Symbols ↔ arguments: η ``lr``, μ ``momentum``, τ ``dampening``, λ ``weight_decay``,
:math:`b` ``SGDState.b`` (torch.optim's ``momentum_buffer``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from descent._checks import check_nonnegative, check_same_shape
from descent.optim._base import RuleOptimizer


class SGDState(NamedTuple):
    b: Any = None  # momentum buffer; None until the first step (or always, if μ = 0)


def sgd_init(param) -> SGDState:
    """The state before the first step: no momentum buffer yet."""
    return SGDState(None)


def sgd_update(param, grad, state: SGDState, *, lr: float, momentum: float = 0.0,
               dampening: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
    """One SGD step (chapter 4). Returns ``(new_param, new_state)``; inputs are not mutated."""
    check_same_shape(param, grad)
    if weight_decay != 0:
        grad = grad + weight_decay * param                       # L2 term
    b = state.b
    if momentum != 0:
        b = grad if b is None else momentum * b + (1 - dampening) * grad   # momentum buffer
        direction = grad + momentum * b if nesterov else b       # Nesterov look-ahead / heavy ball
    else:
        direction = grad
    return param - lr * direction, SGDState(b)                   # θ_t = θ_{t-1} - η d_t


class SGD(RuleOptimizer):
    """``torch.optim.SGD`` built on :func:`sgd_update`; same keywords and defaults."""

    rule = staticmethod(sgd_update)
    State = SGDState
    torch_keys = {"b": "momentum_buffer"}
    hyperparameters = ("lr", "momentum", "dampening", "nesterov", "weight_decay")

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, differentiable: bool = False,
                 fused: bool | None = None):
        check_nonnegative(lr, "lr", "η")
        check_nonnegative(momentum, "momentum", "μ")
        check_nonnegative(weight_decay, "weight_decay", "λ")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov=True requires momentum (μ) > 0 and dampening (τ) = 0, "
                             f"got momentum={momentum}, dampening={dampening}")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def init_state(self, param, group: dict[str, Any]) -> SGDState:
        return sgd_init(param)
