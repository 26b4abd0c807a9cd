r"""Adam and AdamW (chapter 5, eqs. Adam, AMSGrad and AdamW).

With gradient :math:`g_t`, moments :math:`m, v`, decay rates :math:`\beta_1, \beta_2`,
learning rate :math:`\eta`, weight decay :math:`\lambda` and :math:`\epsilon`:

.. math::

    t &\leftarrow t + 1                                            && \text{(step)}\\
    g_t &\leftarrow g_t + \lambda\,\theta_{t-1}
        \quad\text{or}\quad \theta_{t-1} \leftarrow (1-\eta\lambda)\,\theta_{t-1}
        && \text{(L2 term, Adam / decoupled decay, AdamW)}\\
    m_t &= \beta_1 m_{t-1} + (1-\beta_1)\,g_t                      && \text{(first moment)}\\
    v_t &= \beta_2 v_{t-1} + (1-\beta_2)\,g_t^2                    && \text{(second moment)}\\
    \hat v_t &= \max(\hat v_{t-1}, v_t) \text{ (AMSGrad) or } v_t  && \text{(AMSGrad)}\\
    \theta_t &= \theta_{t-1} - \frac{\eta}{1-\beta_1^t}\,
        \frac{m_t}{\sqrt{\hat v_t}/\sqrt{1-\beta_2^t} + \epsilon}  && \text{(bias-corrected step)}

Conventions that bite (all as in ``torch.optim``): ``t`` is incremented *before* use, so the
first update has t = 1; ε is added *outside* the square root and *after* the bias
correction of :math:`v`; AMSGrad keeps the max of the raw :math:`v_t` and bias-corrects it
with the current t; AdamW decays with η·λ (not λ alone), using the un-adjusted η.

Symbols ↔ arguments: η ``lr``, β₁ β₂ ``betas``, ε ``eps``, λ ``weight_decay``;
``AdamState(step, m, v, v_max)`` ↔ torch.optim's ``step``, ``exp_avg``, ``exp_avg_sq``,
``max_exp_avg_sq``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from descent import _arrays as xp
from descent._checks import check_nonnegative, check_same_shape, check_unit_interval
from descent.optim._base import RuleOptimizer


class AdamState(NamedTuple):
    step: int    # t: updates made so far (0 before the first)
    m: Any       # first moment, exp_avg
    v: Any       # second moment, exp_avg_sq
    v_max: Any = None  # running max of v (AMSGrad only), max_exp_avg_sq


def adam_init(param, *, amsgrad: bool = False) -> AdamState:
    """The state before the first step: t = 0 and zero moments."""
    return AdamState(0, xp.zeros_like(param), xp.zeros_like(param),
                     xp.zeros_like(param) if amsgrad else None)


def adam_update(param, grad, state: AdamState, *, lr: float = 1e-3, beta1: float = 0.9,
                beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
                amsgrad: bool = False, decoupled_weight_decay: bool = False):
    """One Adam step (chapter 5). Returns ``(new_param, new_state)``; inputs are not mutated.

    ``decoupled_weight_decay=True`` is AdamW (:func:`adamw_update`).
    """
    check_same_shape(param, grad)
    t = state.step + 1                                       # t incremented before use
    if weight_decay != 0:
        if decoupled_weight_decay:
            param = param * (1 - lr * weight_decay)          # decoupled decay (AdamW)
        else:
            grad = grad + weight_decay * param               # L2 term (Adam)
    m = beta1 * state.m + (1 - beta1) * grad                 # first moment
    v = beta2 * state.v + (1 - beta2) * grad * grad          # second moment
    v_max = state.v_max
    if amsgrad:
        v_max = v if v_max is None else xp.maximum(v_max, v)  # AMSGrad: v̂_t = max(v̂_{t-1}, v_t)
    bias1, bias2 = 1 - beta1 ** t, 1 - beta2 ** t            # bias corrections
    denom = xp.sqrt(v_max if amsgrad else v) / bias2 ** 0.5 + eps   # ε outside the sqrt
    return param - (lr / bias1) * m / denom, AdamState(t, m, v, v_max)


def adamw_init(param, *, amsgrad: bool = False) -> AdamState:
    """The state before the first AdamW step (the same as Adam's)."""
    return adam_init(param, amsgrad=amsgrad)


def adamw_update(param, grad, state: AdamState, *, lr: float = 1e-3, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False):
    """One AdamW step (chapter 5): Adam with decoupled weight decay θ ← (1 - ηλ)θ."""
    return adam_update(param, grad, state, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                       weight_decay=weight_decay, amsgrad=amsgrad, decoupled_weight_decay=True)


def check_betas(betas) -> tuple[float, float]:
    """``betas`` must be a pair (β₁, β₂), each in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas (β₁, β₂) must be a pair of numbers, got {betas!r}")
    return (check_unit_interval(betas[0], "betas[0]", "β₁"),
            check_unit_interval(betas[1], "betas[1]", "β₂"))


class Adam(RuleOptimizer):
    """``torch.optim.Adam`` built on :func:`adam_update`; same keywords and defaults."""

    rule = staticmethod(adam_update)
    State = AdamState
    torch_keys = {"m": "exp_avg", "v": "exp_avg_sq", "v_max": "max_exp_avg_sq"}

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None,
                 decoupled_weight_decay: bool = False):
        check_nonnegative(lr, "lr", "η")
        check_nonnegative(eps, "eps", "ε")
        check_betas(betas)
        check_nonnegative(weight_decay, "weight_decay", "λ")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def init_state(self, param, group: dict[str, Any]) -> AdamState:
        return adam_init(param, amsgrad=group["amsgrad"])

    def rule_kwargs(self, group: dict[str, Any]) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"], amsgrad=group["amsgrad"],
                    decoupled_weight_decay=group.get("decoupled_weight_decay", False))


class AdamW(Adam):
    """``torch.optim.AdamW``: :class:`Adam` with decoupled weight decay (default λ = 1e-2)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:  # as torch.optim.AdamW: always decoupled
            group["decoupled_weight_decay"] = True
