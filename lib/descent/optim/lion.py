r"""Lion: evolved sign momentum (chapter 5, modern variants; Chen et al. 2023, Algorithm 2).

With gradient :math:`g_t`, momentum :math:`m`, learning rate :math:`\eta`, decoupled weight
decay :math:`\lambda` and two interpolation rates :math:`\beta_1, \beta_2`:

.. math::

    c_t &= \beta_1\,m_{t-1} + (1-\beta_1)\,g_t                    && \text{(interpolation)}\\
    \theta_t &= \theta_{t-1} - \eta\,\bigl(\operatorname{sign}(c_t)
        + \lambda\,\theta_{t-1}\bigr)                                 && \text{(sign update)}\\
    m_t &= \beta_2\,m_{t-1} + (1-\beta_2)\,g_t                        && \text{(momentum)}

Conventions that bite: the *update* uses β₁ but the *stored* momentum uses β₂ (β₂ > β₁, so
the memory is longer than the step looks); every coordinate moves by exactly ±η (or 0 where
:math:`c_t = 0`, since sign(0) = 0), so Lion wants an η about 3–10× smaller than AdamW and a
λ 3–10× larger for the same effective decay η·λ; the decay is decoupled and scaled by η, as in
AdamW. No bias correction and no step counter. A NaN gradient makes θ NaN (as in
``torch.optim``), in NumPy and torch alike.

Symbols ↔ arguments: η ``lr``, β₁ β₂ ``betas``, λ ``weight_decay``, :math:`m` ``LionState.m``
(stored under ``exp_avg``, the key of the reference implementation ``lion-pytorch``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from descent import _arrays as xp
from descent._checks import check_nonnegative, check_same_shape, check_unit_interval
from descent.optim._base import RuleOptimizer


class LionState(NamedTuple):
    m: Any  # momentum, an EMA of the gradients with rate β₂


def lion_init(param) -> LionState:
    """The state before the first step: zero momentum."""
    return LionState(xp.zeros_like(param))


def lion_update(param, grad, state: LionState, *, lr: float, beta1: float = 0.9,
                beta2: float = 0.99, weight_decay: float = 0.0):
    """One Lion step (Chen et al. 2023, Alg. 2). Returns ``(new_param, new_state)``."""
    check_same_shape(param, grad)
    c = beta1 * state.m + (1 - beta1) * grad                     # interpolation c_t
    # torch.sign(NaN) is 0 (NumPy's is NaN): adding 0·c keeps a NaN gradient visible in θ
    # instead of freezing that coordinate in silence.
    direction = xp.sign(c) + 0 * c
    new_param = param - lr * (direction + weight_decay * param)  # θ_t = θ - η(sign c + λθ)
    m = beta2 * state.m + (1 - beta2) * grad                     # momentum m_t
    return new_param, LionState(m)


class Lion(RuleOptimizer):
    """Lion (Chen et al. 2023) built on :func:`lion_update`.

    Keywords and defaults follow the paper's code: ``lr=1e-4, betas=(0.9, 0.99),
    weight_decay=0.0``.
    """

    rule = staticmethod(lion_update)
    State = LionState
    torch_keys = {"m": "exp_avg"}
    hyperparameters = ("lr", "beta1", "beta2", "weight_decay")

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0, *, maximize: bool = False,
                 foreach: bool | None = None, fused: bool | None = None):
        check_nonnegative(lr, "lr", "η")
        check_unit_interval(betas[0], "betas[0]", "β₁")
        check_unit_interval(betas[1], "betas[1]", "β₂")
        check_nonnegative(weight_decay, "weight_decay", "λ")
        defaults = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach, fused=fused)
        super().__init__(params, defaults)

    def rule_kwargs(self, group: dict[str, Any]) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2,
                    weight_decay=group["weight_decay"])

    def init_state(self, param, group: dict[str, Any]) -> LionState:
        return lion_init(param)
