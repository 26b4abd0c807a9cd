r"""Schedule-Free SGD and AdamW (chapter 5, eq. Schedule-Free; Defazio et al. 2024, Alg. 1).

Schedule-Free learning replaces both the momentum buffer and the decay of the learning rate
by an average. It keeps three sequences: :math:`z`, the base optimizer's own iterate, taking
plain steps at a constant rate; :math:`x`, a weighted average of the :math:`z`'s, where the
model is evaluated; and :math:`y`, between the two, where the gradient is taken. With
:math:`z_1 = x_1 = y_1 = \theta_0` and :math:`g_t = \nabla f(y_t)`, step :math:`t = 1, 2,
\dots` is

.. math::

    \eta_t &= \eta\,\min(1, t/W)\;\bigl[\times\sqrt{1-\beta_2^t}\,\bigr]
        && \text{(warmup [and Adam's bias correction, AdamW])}\\
    v_t &= \beta_2 v_{t-1} + (1-\beta_2)\,g_t^2               && \text{(second moment, AdamW)}\\
    z_{t+1} &= z_t - \eta_t\,d_t - \eta_t\lambda\,y_t,\quad
        d_t = g_t \ \text{(SGD)}\ \text{or}\ \frac{g_t}{\sqrt{v_t}+\epsilon}\ \text{(AdamW)}
        && \text{(base step, decay at } y)\\
    w_t &= t^{\,r}\,\bigl(\max_{i\le t}\eta_i\bigr)^{p},\qquad
        c_{t+1} = w_t \Big/ \sum_{i=1}^{t} w_i                    && \text{(averaging weight)}\\
    x_{t+1} &= (1-c_{t+1})\,x_t + c_{t+1}\,z_{t+1}                && \text{(weighted average)}\\
    y_{t+1} &= (1-\beta)\,z_{t+1} + \beta\,x_{t+1}               && \text{(interpolation)}

The paper's Algorithm 1 (AdamW) is this with :math:`r = 0`, :math:`p = 2`:
:math:`c_{t+1} = \eta_t^2/\sum_{i\le t}\eta_i^2`, because :math:`\eta_t` never decreases
(warmup, then a constant times a growing bias correction), so the running max is
:math:`\eta_t` itself. The max, the power :math:`p` and the polynomial weight :math:`t^r`
are the authors' implementation's generalisation; they matter only if you lower
:math:`\eta` during a run (the average then keeps weighting new iterates as much as the
largest rate did). With :math:`r = 0` and no warmup, :math:`c_{t+1} = 1/t`: :math:`x` is the
plain mean of :math:`z_2, \dots, z_{t+1}`.

Two special cases show what :math:`\beta` does: :math:`\beta = 0` takes the gradient at
:math:`z` (plain SGD, with a Polyak–Ruppert average :math:`x` on the side); :math:`\beta = 1`
takes it at the average (primal averaging). The default 0.9 sits between.

**Split of the work.** The per-step numbers :math:`\eta_t` and :math:`c_{t+1}` are the same
for every tensor, and depend on the history of the learning rate (the running max and the
sum of the weights): :func:`schedule_free_weights` computes them from a small
:class:`ScheduleFreeWeights` state (one per param group), and the tensor rules
:func:`schedule_free_sgd_update` and :func:`schedule_free_adamw_update` take them as
``lr`` (= :math:`\eta_t`) and ``c`` (= :math:`c_{t+1}`). In the optimizer classes the
weights live in the param group, like a learning rate, and the tensor rules run on
``descent.optim``'s traced, in-place path.

Conventions that bite:

- **The parameters hold y while training and x for evaluation**, as in the authors' code:
  call ``optimizer.train()`` where you call ``model.train()`` and ``optimizer.eval()`` where
  you call ``model.eval()`` (and before saving a checkpoint or reading the weights). A new
  optimizer starts in eval mode, and ``step()`` in eval mode raises. Unlike the authors'
  memory-saving classes, which keep only :math:`z` and recover :math:`x` as
  :math:`(y - (1-\beta)z)/\beta`, descent stores :math:`x` (one more buffer, as their
  reference classes do): switching modes is then exact, and :math:`\beta = 0` allowed.
- **Weight decay is taken at y** (:math:`\lambda y_t` in the :math:`z` step, multiplied by
  :math:`\eta_t`), as the paper's Algorithm 1 does: neither L2 on the gradient nor AdamW's
  decay of the current point.
- **Warmup is inside the optimizer**, linear over :math:`W` steps from :math:`\eta/W` (no
  scheduler is needed; one may still drive ``lr``).
- **AdamW's bias correction is in** :math:`\eta_t` (:math:`\sqrt{1-\beta_2^t}`, with
  :math:`\epsilon` added to the *uncorrected* :math:`\sqrt{v_t}`), as in Algorithm 1 and the
  authors' ``AdamWScheduleFreePaper``. Their ``AdamWScheduleFree`` since v1.3 instead divides
  :math:`v_t` by :math:`1-\beta_2^t` and leaves it out of :math:`\eta_t` (so also out of the
  weights and the decay): different numbers in the first few hundred steps. There is no
  first moment: :math:`\beta_1` is the interpolation :math:`\beta`.
- :math:`t` is incremented before use: the first step has :math:`t = 1` and
  :math:`c_2 = 1`, so :math:`x_2 = z_2`.

Symbols ↔ arguments: :math:`\eta` ``lr``, :math:`\beta` ``momentum`` (SGD) or
``betas[0]`` (AdamW), :math:`\beta_2` ``betas[1]``, :math:`\epsilon` ``eps``, :math:`\lambda`
``weight_decay``, :math:`W` ``warmup_steps``, :math:`r` ``r``, :math:`p`
``weight_lr_power``; state ``z``, ``x`` and :math:`v` ``exp_avg_sq``; in the param group,
:math:`t` ``step``, :math:`\max_i \eta_i` ``lr_max``, :math:`\sum_i w_i` ``weight_sum``, and
the last step's :math:`\eta_t` and :math:`c_{t+1}` as ``scheduled_lr`` and ``c``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from descent import _arrays as xp
from descent._checks import check_int, check_nonnegative, check_range, check_same_shape
from descent.optim._base import RuleOptimizer


# -- the per-step numbers: η_t and c_{t+1} ----------------------------------------------------
class ScheduleFreeWeights(NamedTuple):
    step: int = 0            # t: steps taken
    lr_max: float = 0.0      # max_{i≤t} η_i
    weight_sum: float = 0.0  # Σ_{i≤t} w_i


def schedule_free_weights(state: ScheduleFreeWeights, *, lr: float, warmup_steps: int = 0,
                          r: float = 0.0, weight_lr_power: float = 2.0,
                          beta2: float | None = None):
    """η_t and c_{t+1} of the next step (eq. Schedule-Free, lines η_t and c_{t+1}).

    Returns ``(lr_t, c, new_state)``. ``beta2`` (AdamW) puts Adam's bias correction
    √(1 - β₂ᵗ) into η_t. A step whose weights sum to zero (η = 0) gets c = 0.
    """
    t = state.step + 1                                          # t incremented before use
    warm = t / warmup_steps if t <= warmup_steps else 1.0       # min(1, t/W)
    lr_t = lr * warm
    if beta2 is not None:
        lr_t = lr_t * math.sqrt(1 - beta2 ** t)                 # AdamW: η√(1 - β₂ᵗ)
    lr_max = max(lr_t, state.lr_max)                            # max_{i≤t} η_i
    weight = (t ** r) * (lr_max ** weight_lr_power)             # w_t = t^r (max η)^p
    weight_sum = state.weight_sum + weight
    c = weight / weight_sum if weight_sum != 0 else 0.0         # c_{t+1} = w_t / Σ w_i
    return lr_t, c, ScheduleFreeWeights(t, lr_max, weight_sum)


def schedule_free_interpolate(z, x, *, momentum: float):
    """y = (1 - β) z + β x (eq. Schedule-Free, interpolation): where the gradient is taken."""
    return (1 - momentum) * z + momentum * x


# -- the tensor rules -------------------------------------------------------------------------
class ScheduleFreeSGDState(NamedTuple):
    z: Any  # z_t, the SGD sequence
    x: Any  # x_t, the weighted average: the evaluation point


def schedule_free_sgd_init(param) -> ScheduleFreeSGDState:
    """The state before the first step: z₁ = x₁ = θ₀ (= y₁, the parameter)."""
    return ScheduleFreeSGDState(xp.copy(param), xp.copy(param))


def schedule_free_sgd_update(param, grad, state: ScheduleFreeSGDState, *, lr: float, c: float,
                             momentum: float = 0.9, weight_decay: float = 0.0):
    """One Schedule-Free SGD step for one tensor (chapter 5); ``param`` holds y_t.

    ``lr`` is η_t and ``c`` is c_{t+1}, from :func:`schedule_free_weights`. Returns
    ``(y_{t+1}, new_state)``; inputs are not mutated.
    """
    check_same_shape(param, grad)
    z = state.z - lr * grad                                     # z_{t+1} = z_t - η_t g_t
    if weight_decay != 0:
        z = z - (lr * weight_decay) * param                     #   - η_t λ y_t (decay at y)
    x = (1 - c) * state.x + c * z                               # x_{t+1}: weighted average
    y = schedule_free_interpolate(z, x, momentum=momentum)      # y_{t+1}: interpolation
    return y, ScheduleFreeSGDState(z, x)


class ScheduleFreeAdamWState(NamedTuple):
    z: Any  # z_t, the AdamW sequence
    x: Any  # x_t, the weighted average: the evaluation point
    v: Any  # v_t, second moment (exp_avg_sq)


def schedule_free_adamw_init(param) -> ScheduleFreeAdamWState:
    """The state before the first step: z₁ = x₁ = θ₀, v₀ = 0."""
    return ScheduleFreeAdamWState(xp.copy(param), xp.copy(param), xp.zeros_like(param))


def schedule_free_adamw_update(param, grad, state: ScheduleFreeAdamWState, *, lr: float,
                               c: float, beta1: float = 0.9, beta2: float = 0.999,
                               eps: float = 1e-8, weight_decay: float = 0.0):
    """One Schedule-Free AdamW step for one tensor (chapter 5; Algorithm 1, lines 5-11).

    ``param`` holds y_t; ``lr`` is η_t (with √(1 - β₂ᵗ) and the warmup in it) and ``c`` is
    c_{t+1}, from :func:`schedule_free_weights` with ``beta2``. Returns
    ``(y_{t+1}, new_state)``; inputs are not mutated.
    """
    check_same_shape(param, grad)
    v = beta2 * state.v + (1 - beta2) * grad * grad             # v_t (line 7)
    z = state.z - lr * grad / (xp.sqrt(v) + eps)                # z_{t+1} (line 9): ε outside
    if weight_decay != 0:
        z = z - (lr * weight_decay) * param                     #   - η_t λ y_t (decay at y)
    x = (1 - c) * state.x + c * z                               # x_{t+1} (line 11)
    y = schedule_free_interpolate(z, x, momentum=beta1)         # y_{t+1} (line 5, next step)
    return y, ScheduleFreeAdamWState(z, x, v)


# -- the optimizers -----------------------------------------------------------------------------
class _ScheduleFree(RuleOptimizer):
    """What both classes share: the weights in the group, and train/eval modes."""

    torch_keys = {"v": "exp_avg_sq"}

    @staticmethod
    def _momentum(group: dict[str, Any]) -> float:
        """β, the interpolation weight of x in y."""
        raise NotImplementedError

    @staticmethod
    def _beta2(group: dict[str, Any]) -> float | None:
        """β₂ for Adam's bias correction in η_t (AdamW), or None (SGD)."""
        return None

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        """One step of every group: y_t → y_{t+1}. Raises in eval mode."""
        if not all(group["train_mode"] for group in self.param_groups):
            raise RuntimeError(f"{type(self).__name__}.step() in eval mode: the parameters "
                               "hold x, not y. Call optimizer.train() before training (and "
                               "optimizer.eval() before evaluating)")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:                # η_t and c_{t+1}, once per group
            lr_t, c, weights = schedule_free_weights(
                ScheduleFreeWeights(group["step"], group["lr_max"], group["weight_sum"]),
                lr=float(group["lr"]), warmup_steps=group["warmup_steps"], r=group["r"],
                weight_lr_power=group["weight_lr_power"], beta2=self._beta2(group))
            group.update(step=weights.step, lr_max=weights.lr_max,
                         weight_sum=weights.weight_sum, scheduled_lr=lr_t, c=c)
        super().step()
        return loss

    @torch.no_grad()
    def eval(self) -> None:
        """Put x_t into the parameters (the point to evaluate, save or read)."""
        for group in self.param_groups:
            if group["train_mode"]:
                for p in group["params"]:
                    x = self.state[p].get("x")
                    if x is not None:
                        p.copy_(x)
                group["train_mode"] = False

    @torch.no_grad()
    def train(self) -> None:
        """Put y_t = (1 - β) z_t + β x_t back into the parameters (bit for bit)."""
        for group in self.param_groups:
            if not group["train_mode"]:
                for p in group["params"]:
                    state = self.state[p]
                    if "z" in state:
                        p.copy_(schedule_free_interpolate(state["z"], state["x"],
                                                          momentum=self._momentum(group)))
                group["train_mode"] = True


def _check_common(lr, weight_decay, warmup_steps, r, weight_lr_power) -> None:
    check_nonnegative(lr, "lr", "η")
    check_nonnegative(weight_decay, "weight_decay", "λ")
    check_int(warmup_steps, "warmup_steps (W)", low=0)
    check_nonnegative(r, "r", "r")
    check_nonnegative(weight_lr_power, "weight_lr_power", "p")


def _clock() -> dict[str, Any]:
    """The group keys of the weights, before the first step (and the mode: eval)."""
    return dict(train_mode=False, step=0, lr_max=0.0, weight_sum=0.0, scheduled_lr=0.0, c=0.0)


class SGDScheduleFree(_ScheduleFree):
    """Schedule-Free SGD (Defazio et al. 2024) on :func:`schedule_free_sgd_update`.

    Keywords and defaults as the authors' ``schedulefree.SGDScheduleFree``: ``lr=1.0``
    (schedule-free SGD takes rates 10-50× larger than SGD with a schedule),
    ``momentum=0.9`` (β, here in [0, 1]), ``weight_decay=0``, ``warmup_steps=0``, ``r=0``,
    ``weight_lr_power=2``. Call :meth:`train` before training and :meth:`eval` before
    evaluating.
    """

    rule = staticmethod(schedule_free_sgd_update)
    State = ScheduleFreeSGDState

    def __init__(self, params, lr: float = 1.0, momentum: float = 0.9,
                 weight_decay: float = 0.0, warmup_steps: int = 0, r: float = 0.0,
                 weight_lr_power: float = 2.0, *, maximize: bool = False,
                 foreach: bool | None = None):
        _check_common(lr, weight_decay, warmup_steps, r, weight_lr_power)
        check_range(momentum, "momentum", "β", low=0.0, high=1.0)
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power,
                        maximize=maximize, foreach=foreach, **_clock())
        super().__init__(params, defaults)

    @staticmethod
    def _momentum(group: dict[str, Any]) -> float:
        return group["momentum"]

    def init_state(self, param, group: dict[str, Any]) -> ScheduleFreeSGDState:
        return schedule_free_sgd_init(param)

    def rule_kwargs(self, group: dict[str, Any]) -> dict[str, Any]:
        """The keywords of the group's last (or current) step: η_t, c_{t+1}, β, λ."""
        return dict(lr=group["scheduled_lr"], c=group["c"], momentum=group["momentum"],
                    weight_decay=group["weight_decay"])


class AdamWScheduleFree(_ScheduleFree):
    """Schedule-Free AdamW (Defazio et al. 2024, Algorithm 1) on
    :func:`schedule_free_adamw_update`.

    Keywords and defaults as the authors' ``schedulefree.AdamWScheduleFree``: ``lr=0.0025``,
    ``betas=(0.9, 0.999)`` (β₁ the interpolation β, in [0, 1]; β₂ in [0, 1)), ``eps=1e-8``,
    ``weight_decay=0``, ``warmup_steps=0``, ``r=0``, ``weight_lr_power=2``; the numbers are
    Algorithm 1's (the authors' ``AdamWScheduleFreePaper``; see the module docstring for how
    their v1.3 class differs). Call :meth:`train` before training and :meth:`eval` before
    evaluating.
    """

    rule = staticmethod(schedule_free_adamw_update)
    State = ScheduleFreeAdamWState

    def __init__(self, params, lr: float = 0.0025, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, warmup_steps: int = 0,
                 r: float = 0.0, weight_lr_power: float = 2.0, *, maximize: bool = False,
                 foreach: bool | None = None):
        _check_common(lr, weight_decay, warmup_steps, r, weight_lr_power)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas (β, β₂) must be a pair of numbers, got {betas!r}")
        check_range(betas[0], "betas[0]", "β", low=0.0, high=1.0)
        check_range(betas[1], "betas[1]", "β₂", low=0.0, high=1.0, high_open=True)
        check_nonnegative(eps, "eps", "ε")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power,
                        maximize=maximize, foreach=foreach, **_clock())
        super().__init__(params, defaults)

    @staticmethod
    def _momentum(group: dict[str, Any]) -> float:
        return group["betas"][0]

    @staticmethod
    def _beta2(group: dict[str, Any]) -> float | None:
        return group["betas"][1]

    def init_state(self, param, group: dict[str, Any]) -> ScheduleFreeAdamWState:
        return schedule_free_adamw_init(param)

    def rule_kwargs(self, group: dict[str, Any]) -> dict[str, Any]:
        """The keywords of the group's last (or current) step: η_t, c_{t+1}, β, β₂, ε, λ."""
        beta1, beta2 = group["betas"]
        return dict(lr=group["scheduled_lr"], c=group["c"], beta1=beta1, beta2=beta2,
                    eps=group["eps"], weight_decay=group["weight_decay"])
