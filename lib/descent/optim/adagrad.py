r"""AdaGrad (chapter 5, eq. AdaGrad).

With gradient :math:`g_t`, accumulated squares :math:`s`, learning rate :math:`\eta`,
learning-rate decay :math:`\kappa`, weight decay :math:`\lambda` and :math:`\epsilon`:

.. math::

    t &\leftarrow t + 1                                                && \text{(step)}\\
    g_t &\leftarrow g_t + \lambda\,\theta_{t-1}                        && \text{(L2 term)}\\
    \eta_t &= \eta \,/\, (1 + (t-1)\,\kappa)                           && \text{(decayed lr)}\\
    s_t &= s_{t-1} + g_t^2                                             && \text{(sum of squares)}\\
    \theta_t &= \theta_{t-1} - \eta_t\, g_t / (\sqrt{s_t} + \epsilon)  && \text{(AdaGrad step)}

Conventions that bite: ``t`` is incremented *before* use (first update has t = 1, so the
first step uses the undecayed η); ε is added *outside* the square root; :math:`s_0` is
``initial_accumulator_value`` in every entry.

Symbols ↔ arguments: η ``lr``, κ ``lr_decay``, λ ``weight_decay``, ε ``eps``,
:math:`s_0` ``initial_accumulator_value``; ``AdagradState(step, s)`` ↔ torch.optim's
``step``, ``sum``.

Unlike ``torch.optim.Adagrad``, which fills every state when it is constructed and always
uses the constructor's ``initial_accumulator_value``, descent creates a state at a
parameter's first update and takes :math:`s_0` from that parameter's group. The two agree
whenever no group overrides ``initial_accumulator_value``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from descent import _arrays as xp
from descent._checks import check_nonnegative, check_same_shape
from descent.optim._base import RuleOptimizer


class AdagradState(NamedTuple):
    step: int  # t: updates made so far
    s: Any     # sum of squared gradients, torch.optim's "sum"


def adagrad_init(param, *, initial_accumulator_value: float = 0.0) -> AdagradState:
    """The state before the first step: t = 0, :math:`s_0` = initial_accumulator_value."""
    return AdagradState(0, xp.full_like(param, initial_accumulator_value))


def adagrad_update(param, grad, state: AdagradState, *, lr: float = 1e-2, lr_decay: float = 0.0,
                   weight_decay: float = 0.0, eps: float = 1e-10):
    """One AdaGrad step (chapter 5). Returns ``(new_param, new_state)``; inputs not mutated."""
    check_same_shape(param, grad)
    t = state.step + 1                                       # t incremented before use
    if weight_decay != 0:
        grad = grad + weight_decay * param                   # L2 term
    lr_t = lr / (1 + (t - 1) * lr_decay)                     # decayed lr
    s = state.s + grad * grad                                # sum of squares
    return param - lr_t * grad / (xp.sqrt(s) + eps), AdagradState(t, s)   # AdaGrad step


class Adagrad(RuleOptimizer):
    """``torch.optim.Adagrad`` built on :func:`adagrad_update`; same keywords and defaults."""

    rule = staticmethod(adagrad_update)
    State = AdagradState
    torch_keys = {"s": "sum"}
    hyperparameters = ("lr", "lr_decay", "weight_decay", "eps")

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, foreach: bool | None = None, *, maximize: bool = False,
                 differentiable: bool = False, fused: bool | None = None):
        check_nonnegative(lr, "lr", "η")
        check_nonnegative(lr_decay, "lr_decay", "κ")
        check_nonnegative(weight_decay, "weight_decay", "λ")
        check_nonnegative(initial_accumulator_value, "initial_accumulator_value", "s₀")
        check_nonnegative(eps, "eps", "ε")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def init_state(self, param, group: dict[str, Any]) -> AdagradState:
        return adagrad_init(param, initial_accumulator_value=group["initial_accumulator_value"])
