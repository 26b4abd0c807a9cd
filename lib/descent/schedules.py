"""Learning-rate schedules as pure functions of the step (chapter 6).

A schedule is a small frozen dataclass: ``schedule(t)`` is the learning rate :math:`\\eta_t`
for step ``t``, computed in closed form from the step and the hyperparameters alone (no state,
no optimizer). :func:`as_lambda_lr` and :class:`ScheduleLR` let any schedule drive any
``torch.optim`` optimizer.

=================  ======================================================================
schedule           torch counterpart (equal step for step, tested)
=================  ======================================================================
``Constant``       —
``StepDecay``      ``StepLR``
``MultiStep``      ``MultiStepLR``
``Exponential``    ``ExponentialLR``
``Polynomial``     ``PolynomialLR``
``Cosine``         ``CosineAnnealingLR``
``WarmRestarts``   ``CosineAnnealingWarmRestarts`` (SGDR)
``LinearWarmup``   ``LinearLR(start_factor, 1.0, warmup_steps)``; by default s = 1/(W + 1)
``WarmupCosine``   ``SequentialLR([LinearLR, CosineAnnealingLR])``, up to ``total_steps``
``InverseSqrt``    — (Vaswani et al. 2017, eq. 3; tested against the paper's formula)
``OneCycle``       ``OneCycleLR`` (lr only; both anneal strategies, ``three_phase``)
``WSD``            — (``SequentialLR([LinearLR, ConstantLR, LinearLR])`` for linear decay)
=================  ======================================================================

Conventions that bite
---------------------
- **Step 0 is the first step.** ``schedule(0)`` is the learning rate of the first
  ``optimizer.step()``. This is torch's ``scheduler.last_epoch``: right after a scheduler is
  built, ``last_epoch == 0`` and the optimizer holds :math:`\\eta_0`; after ``k`` calls of
  ``scheduler.step()``, ``last_epoch == k`` and the next ``optimizer.step()`` uses
  :math:`\\eta_k`. The loop is ``optimizer.step(); scheduler.step()``, in that order.
- **Closed form, not chained.** Most torch schedulers update ``group["lr"]`` by a ratio at
  each step (the "chainable form"); they equal these closed forms up to rounding (about
  ``t`` ulps after ``t`` steps), which the tests measure.
- ``Cosine`` follows torch's ``CosineAnnealingLR``: past :math:`T_{max}` the cosine goes on
  and climbs back to :math:`\\eta` at :math:`2T_{max}` (``periodic=True``). Pass
  ``periodic=False`` to stay at :math:`\\eta_{min}`. ``WarmupCosine``, ``OneCycle`` and
  ``WSD`` always stay at their final value after the end.
- ``OneCycle`` ends at step ``total_steps - 1`` with :math:`\\eta_{min}` exactly; torch's
  ``OneCycleLR`` extrapolates one step further (at ``last_epoch == total_steps``) and raises
  after that. Here the final value is held.

Symbols ↔ arguments: :math:`\\eta` ``lr`` (the base or peak learning rate),
:math:`\\eta_{min}` ``eta_min``, :math:`t` the step, :math:`\\gamma` ``gamma``,
:math:`T_{max}` ``T_max``, :math:`W` ``warmup_steps``, :math:`T` ``total_steps``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from numbers import Integral
from typing import Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from descent._checks import (
    check_int,
    check_nonnegative,
    check_positive,
    check_range,
)

__all__ = [
    "Schedule", "Constant", "StepDecay", "MultiStep", "Exponential", "Polynomial",
    "Cosine", "WarmRestarts", "LinearWarmup", "WarmupCosine", "InverseSqrt", "OneCycle",
    "WSD", "as_lambda_lr", "ScheduleLR",
]


def _checked(schedule, check, name: str, symbol: str | None = None, **bounds) -> None:
    """Check a field of a frozen schedule and store it back as a plain float."""
    object.__setattr__(schedule, name, check(getattr(schedule, name), name, symbol, **bounds))


def _check_step(step) -> int:
    if isinstance(step, Integral) and not isinstance(step, bool):
        step = int(step)                                             # NumPy integers too
    return check_int(step, "step", low=0)


def _cosine(start: float, end: float, fraction: float) -> float:
    """Half a cosine from ``start`` (fraction 0) to ``end`` (fraction 1)."""
    return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2


def _linear_warmup(lr: float, start_factor: float, warmup_steps: int, t: int) -> float:
    """η·(s + (1 − s)·t/W) for t < W, and η from t = W on (exactly, not up to rounding)."""
    if t >= warmup_steps:
        return lr
    return lr * (start_factor + (1 - start_factor) * t / warmup_steps)


class Schedule:
    """Base class: ``schedule(t)`` is :math:`\\eta_t`; ``base_lr`` is the lr it scales.

    A new schedule is a frozen dataclass deriving from this one, with a field ``lr`` (or a
    ``base_lr`` property), its checks in ``__post_init__`` and the formula in ``__call__``.
    """

    lr: float

    @property
    def base_lr(self) -> float:
        """The learning rate the adapters treat as factor 1 (the base or peak lr)."""
        return self.lr

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def factor(self, step: int) -> float:
        """:math:`\\eta_t / \\eta` — what ``LambdaLR`` multiplies the optimizer's lr by."""
        return self(step) / self.base_lr


@dataclass(frozen=True)
class Constant(Schedule):
    """:math:`\\eta_t = \\eta`."""

    lr: float

    def __post_init__(self):
        _checked(self, check_positive, "lr", "η")

    def __call__(self, step: int) -> float:
        _check_step(step)
        return self.lr


@dataclass(frozen=True)
class StepDecay(Schedule):
    """Step decay (torch ``StepLR``): :math:`\\eta_t = \\eta\\,\\gamma^{\\lfloor t/s \\rfloor}`.

    Symbols ↔ arguments: :math:`s` ``step_size``, :math:`\\gamma` ``gamma``.
    """

    lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        _checked(self, check_positive, "lr", "η")
        check_int(self.step_size, "step_size", low=1)
        _checked(self, check_nonnegative, "gamma", "γ")

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (_check_step(step) // self.step_size)


@dataclass(frozen=True)
class MultiStep(Schedule):
    """Decay at milestones (torch ``MultiStepLR``): :math:`\\eta_t = \\eta\\,\\gamma^{k(t)}`.

    :math:`k(t)` is the number of milestones :math:`\\le t` (a repeated milestone counts
    twice, as in torch). Milestones are stored sorted.
    """

    lr: float
    milestones: tuple[int, ...] = field(default=())
    gamma: float = 0.1

    def __post_init__(self):
        _checked(self, check_positive, "lr", "η")
        milestones = tuple(self.milestones)
        for m in milestones:
            check_int(m, "milestones[i]", low=0)
        object.__setattr__(self, "milestones", tuple(sorted(milestones)))
        _checked(self, check_nonnegative, "gamma", "γ")

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** bisect_right(self.milestones, _check_step(step))


@dataclass(frozen=True)
class Exponential(Schedule):
    """Exponential decay (torch ``ExponentialLR``): :math:`\\eta_t = \\eta\\,\\gamma^t`."""

    lr: float
    gamma: float

    def __post_init__(self):
        _checked(self, check_positive, "lr", "η")
        _checked(self, check_nonnegative, "gamma", "γ")

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** _check_step(step)


@dataclass(frozen=True)
class Polynomial(Schedule):
    """Polynomial decay to zero (torch ``PolynomialLR``).

    .. math:: \\eta_t = \\eta\\,\\bigl(1 - \\min(t, T)/T\\bigr)^p

    Symbols ↔ arguments: :math:`T` ``total_iters``, :math:`p` ``power``.
    """

    lr: float
    total_iters: int = 5
    power: float = 1.0

    def __post_init__(self):
        _checked(self, check_positive, "lr", "η")
        check_int(self.total_iters, "total_iters", low=1)
        _checked(self, check_positive, "power", "p")

    def __call__(self, step: int) -> float:
        t = min(_check_step(step), self.total_iters)
        return self.lr * (1.0 - t / self.total_iters) ** self.power


@dataclass(frozen=True)
class Cosine(Schedule):
    """Cosine annealing (torch ``CosineAnnealingLR``; Loshchilov & Hutter 2017, eq. 5).

    .. math::
        \\eta_t = \\eta_{min} + \\tfrac12(\\eta - \\eta_{min})
                  \\bigl(1 + \\cos(\\pi t / T_{max})\\bigr)

    With ``periodic=True`` (torch's behaviour) the formula holds for every ``t``, so past
    :math:`T_{max}` the lr rises again; with ``periodic=False`` it stays at :math:`\\eta_{min}`.
    """

    lr: float
    T_max: int
    eta_min: float = 0.0
    periodic: bool = True

    def __post_init__(self):
        _checked(self, check_positive, "lr", "η")
        check_int(self.T_max, "T_max", low=1)
        _checked(self, check_range, "eta_min", "η_min", low=0.0, high=self.lr)

    def __call__(self, step: int) -> float:
        t = _check_step(step)
        if not self.periodic and t >= self.T_max:
            return self.eta_min
        return _cosine(self.lr, self.eta_min, t / self.T_max)


@dataclass(frozen=True)
class WarmRestarts(Schedule):
    """Cosine with warm restarts, SGDR (torch ``CosineAnnealingWarmRestarts``).

    Cycle :math:`i` lasts :math:`T_i = T_0 T_{mult}^i` steps; with :math:`T_{cur}` the steps
    since the last restart,

    .. math::
        \\eta_t = \\eta_{min} + \\tfrac12(\\eta - \\eta_{min})
                  \\bigl(1 + \\cos(\\pi T_{cur} / T_i)\\bigr)

    so each restart (``T_cur = 0``) jumps back to :math:`\\eta`. The cycle is found with integer
    arithmetic, so restarts land on exact steps for any ``T_mult``.
    """

    lr: float
    T_0: int
    T_mult: int = 1
    eta_min: float = 0.0

    def __post_init__(self):
        _checked(self, check_positive, "lr", "η")
        check_int(self.T_0, "T_0", low=1)
        check_int(self.T_mult, "T_mult", low=1)
        _checked(self, check_range, "eta_min", "η_min", low=0.0, high=self.lr)

    def cycle(self, step: int) -> tuple[int, int]:
        """``(T_cur, T_i)``: steps since the last restart, and the length of this cycle."""
        t_cur, t_i = _check_step(step), self.T_0
        if self.T_mult == 1:
            return t_cur % t_i, t_i
        while t_cur >= t_i:
            t_cur, t_i = t_cur - t_i, t_i * self.T_mult
        return t_cur, t_i

    def __call__(self, step: int) -> float:
        t_cur, t_i = self.cycle(step)
        return _cosine(self.lr, self.eta_min, t_cur / t_i)


@dataclass(frozen=True)
class LinearWarmup(Schedule):
    """Linear warmup, then constant (torch ``LinearLR`` with ``end_factor=1``).

    .. math::
        \\eta_t = \\begin{cases} \\eta\\,\\bigl(s + (1-s)\\,t/W\\bigr) & t < W\\\\
                                 \\eta & t \\ge W \\end{cases}

    :math:`\\eta_W = \\eta` exactly. The start factor must be above 0, as torch's
    ``LinearLR`` requires: a first step at lr 0 would change nothing. By default
    :math:`s = 1/(W+1)`, so that the warmup climbs in equal steps,
    :math:`\\eta_t = \\eta\\,(t+1)/(W+1)` for :math:`t \\le W`: the first step already moves, and
    no rate is wasted. Symbols ↔ arguments: :math:`W` ``warmup_steps``, :math:`s`
    ``start_factor``.
    """

    lr: float
    warmup_steps: int
    start_factor: float | None = None        # None: 1/(W + 1)

    def __post_init__(self):
        _checked(self, check_positive, "lr", "η")
        check_int(self.warmup_steps, "warmup_steps", low=1)
        if self.start_factor is None:
            object.__setattr__(self, "start_factor", 1 / (self.warmup_steps + 1))
        _checked(self, check_range, "start_factor", "s", low=0.0, low_open=True, high=1.0)

    def __call__(self, step: int) -> float:
        return _linear_warmup(self.lr, self.start_factor, self.warmup_steps, _check_step(step))


@dataclass(frozen=True)
class WarmupCosine(Schedule):
    """Linear warmup for :math:`W` steps, then a cosine to :math:`\\eta_{min}` at step :math:`T`.

    .. math::
        \\eta_t = \\begin{cases}
          \\eta\\,\\bigl(s + (1-s)\\,t/W\\bigr) & t < W\\\\
          \\eta_{min} + \\tfrac12(\\eta-\\eta_{min})\\bigl(1+\\cos(\\pi\\,\\tfrac{t-W}{T-W})\\bigr)
              & W \\le t \\le T\\\\
          \\eta_{min} & t > T \\end{cases}

    torch: ``SequentialLR([LinearLR(s, 1, W), CosineAnnealingLR(T - W, η_min)], [W])`` up to
    step :math:`T` (after it, torch's cosine rises again; this one holds :math:`\\eta_{min}`).
    Symbols ↔ arguments: :math:`W` ``warmup_steps``, :math:`T` ``total_steps``.
    """

    lr: float
    warmup_steps: int
    total_steps: int
    eta_min: float = 0.0
    start_factor: float = 0.0

    def __post_init__(self):
        _checked(self, check_positive, "lr", "η")
        check_int(self.warmup_steps, "warmup_steps", low=0)
        check_int(self.total_steps, "total_steps", low=self.warmup_steps + 1)
        _checked(self, check_range, "eta_min", "η_min", low=0.0, high=self.lr)
        _checked(self, check_range, "start_factor", "s", low=0.0, high=1.0)

    def __call__(self, step: int) -> float:
        t, w, total = _check_step(step), self.warmup_steps, self.total_steps
        if t < w:
            return _linear_warmup(self.lr, self.start_factor, w, t)
        if t >= total:
            return self.eta_min
        return _cosine(self.lr, self.eta_min, (t - w) / (total - w))


@dataclass(frozen=True)
class InverseSqrt(Schedule):
    """Linear warmup then inverse-square-root decay (Vaswani et al. 2017, eq. 3, "Noam").

    With the paper's 1-based step :math:`n = t + 1`:

    .. math:: \\eta_t = \\eta\\,\\min\\bigl(n/W,\\ \\sqrt{W/n}\\bigr)

    so the peak :math:`\\eta` is reached exactly at :math:`n = W` (step ``t = W - 1``). The
    paper writes :math:`\\eta = d_{model}^{-1/2} W^{-1/2}`; :meth:`noam` builds it that way.
    Symbols ↔ arguments: :math:`W` ``warmup_steps``.
    """

    lr: float
    warmup_steps: int

    def __post_init__(self):
        _checked(self, check_positive, "lr", "η")
        check_int(self.warmup_steps, "warmup_steps", low=1)

    @classmethod
    def noam(cls, d_model: int, warmup_steps: int, factor: float = 1.0) -> InverseSqrt:
        """The paper's schedule: :math:`\\text{factor}\\cdot d^{-1/2}\\min(n^{-1/2}, nW^{-3/2})`."""
        check_int(d_model, "d_model", low=1)
        check_int(warmup_steps, "warmup_steps", low=1)
        check_positive(factor, "factor")
        return cls(factor / math.sqrt(d_model * warmup_steps), warmup_steps)

    def __call__(self, step: int) -> float:
        n, w = _check_step(step) + 1, self.warmup_steps              # the paper counts from 1
        return self.lr * min(n / w, math.sqrt(w / n))                # eq. 3


@dataclass(frozen=True)
class OneCycle(Schedule):
    """The 1cycle policy (Smith & Topin 2019), as torch's ``OneCycleLR`` computes it.

    It starts at :math:`\\eta_0 = \\eta_{max}/d`, rises to :math:`\\eta_{max}` at step
    :math:`pT - 1`, and anneals to :math:`\\eta_{min} = \\eta_0/d_f` at step :math:`T - 1`.
    With ``three_phase=True`` it falls back to :math:`\\eta_0` at step :math:`2pT - 2` and then
    to :math:`\\eta_{min}`. In each phase from :math:`(a, \\eta_a)` to :math:`(b, \\eta_b)`,
    with :math:`u = (t - a)/(b - a)`,

    .. math::
        \\eta_t = \\eta_b + \\tfrac12(\\eta_a - \\eta_b)(1 + \\cos\\pi u) \\ \\text{(cos)}
        \\quad\\text{or}\\quad \\eta_a + (\\eta_b - \\eta_a)\\,u \\ \\text{(linear)}

    After step :math:`T - 1` the lr stays at :math:`\\eta_{min}`. Momentum cycling is the
    optimizer's business, not this schedule's. Symbols ↔ arguments: :math:`\\eta_{max}`
    ``max_lr``, :math:`T` ``total_steps``, :math:`p` ``pct_start``, :math:`d` ``div_factor``,
    :math:`d_f` ``final_div_factor``.
    """

    max_lr: float
    total_steps: int
    pct_start: float = 0.3
    anneal_strategy: Literal["cos", "linear"] = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False

    def __post_init__(self):
        _checked(self, check_positive, "max_lr", "η_max")
        check_int(self.total_steps, "total_steps", low=2)
        _checked(self, check_range, "pct_start", "p", low=0.0, high=1.0)
        if self.anneal_strategy not in ("cos", "linear"):
            raise ValueError("anneal_strategy must be 'cos' or 'linear', "
                             f"got {self.anneal_strategy!r}")
        _checked(self, check_range, "div_factor", "d", low=1.0)
        _checked(self, check_range, "final_div_factor", "d_f", low=1.0)
        ends = [end for end, _ in self.phases()]
        if not all(a < b for a, b in zip([0.0, *ends], ends)):
            raise ValueError(
                f"pct_start (p) = {self.pct_start} with total_steps (T) = {self.total_steps} "
                f"gives a phase of no length (phase ends {ends}); each phase needs at least one "
                "step: pct_start * total_steps must exceed 1 and leave room for the decay")

    @property
    def base_lr(self) -> float:
        return self.max_lr

    @property
    def initial_lr(self) -> float:
        return self.max_lr / self.div_factor                         # η₀ = η_max / d

    @property
    def min_lr(self) -> float:
        return self.initial_lr / self.final_div_factor               # η_min = η₀ / d_f

    def phases(self) -> list[tuple[float, tuple[float, float]]]:
        """``[(end_step, (start_lr, end_lr)), ...]``, torch's phase boundaries."""
        T, p = self.total_steps, self.pct_start
        up = (float(p * T) - 1, (self.initial_lr, self.max_lr))
        if self.three_phase:
            return [up, (float(2 * p * T) - 2, (self.max_lr, self.initial_lr)),
                    (T - 1, (self.initial_lr, self.min_lr))]
        return [up, (T - 1, (self.max_lr, self.min_lr))]

    def __call__(self, step: int) -> float:
        t = _check_step(step)
        if t >= self.total_steps - 1:
            return self.min_lr
        start = 0.0
        for end, (lr_a, lr_b) in self.phases():
            if t <= end:
                u = (t - start) / (end - start)
                if self.anneal_strategy == "cos":
                    return _cosine(lr_a, lr_b, u)
                return (lr_b - lr_a) * u + lr_a
            start = end
        raise AssertionError("unreachable: the last phase ends at total_steps - 1")


@dataclass(frozen=True)
class WSD(Schedule):
    """Warmup-stable-decay (the "trapezoid"; Hägele et al. 2024).

    Warm up linearly for :math:`W` steps, hold :math:`\\eta` for :math:`S` steps, then decay to
    :math:`\\eta_{min}` over :math:`D` steps; with :math:`u = (t - W - S)/D`:

    .. math::
        \\eta_t = \\begin{cases}
          \\eta\\,\\bigl(s + (1-s)\\,t/W\\bigr) & t < W\\\\
          \\eta & W \\le t < W + S\\\\
          \\eta_{min} + (\\eta - \\eta_{min})\\,\\phi(u) & W + S \\le t < W + S + D\\\\
          \\eta_{min} & t \\ge W + S + D \\end{cases}

    with :math:`\\phi(u) = 1 - u` (``"linear"``), :math:`\\tfrac12(1+\\cos\\pi u)`
    (``"cosine"``) or :math:`1 - \\sqrt u` (``"sqrt"``, the paper's 1-sqrt cooldown).
    Symbols ↔ arguments: :math:`W` ``warmup_steps``, :math:`S` ``stable_steps``, :math:`D`
    ``decay_steps``, :math:`s` ``start_factor``.
    """

    lr: float
    warmup_steps: int
    stable_steps: int
    decay_steps: int
    eta_min: float = 0.0
    decay: Literal["linear", "cosine", "sqrt"] = "linear"
    start_factor: float = 0.0

    def __post_init__(self):
        _checked(self, check_positive, "lr", "η")
        check_int(self.warmup_steps, "warmup_steps", low=0)
        check_int(self.stable_steps, "stable_steps", low=0)
        check_int(self.decay_steps, "decay_steps", low=1)
        _checked(self, check_range, "eta_min", "η_min", low=0.0, high=self.lr)
        _checked(self, check_range, "start_factor", "s", low=0.0, high=1.0)
        if self.decay not in ("linear", "cosine", "sqrt"):
            raise ValueError(f"decay must be 'linear', 'cosine' or 'sqrt', got {self.decay!r}")

    def __call__(self, step: int) -> float:
        t, w = _check_step(step), self.warmup_steps
        if t < w:
            return _linear_warmup(self.lr, self.start_factor, w, t)
        u = (t - w - self.stable_steps) / self.decay_steps
        if u < 0:
            return self.lr                                           # stable plateau
        if u >= 1:
            return self.eta_min
        shape = {"linear": 1 - u, "cosine": (1 + math.cos(math.pi * u)) / 2,
                 "sqrt": 1 - math.sqrt(u)}[self.decay]
        return self.eta_min + (self.lr - self.eta_min) * shape


# -- adapters to torch.optim.lr_scheduler ------------------------------------------------------

def _check_schedule(schedule) -> Schedule:
    if not isinstance(schedule, Schedule):
        raise TypeError("schedule must be a descent.schedules.Schedule, "
                        f"got {type(schedule).__name__}")
    return schedule


def as_lambda_lr(optimizer: Optimizer, schedule: Schedule) -> LambdaLR:
    """A ``LambdaLR`` with factor :math:`\\eta_t/\\eta`: each group's lr is its own base lr
    times the schedule's shape, so a group whose lr equals ``schedule.base_lr`` follows the
    schedule (up to one rounding of the division)."""
    _check_schedule(schedule)
    return LambdaLR(optimizer, lr_lambda=schedule.factor)


class ScheduleLR(LRScheduler):
    """Drive any ``torch.optim`` optimizer with a :class:`Schedule`.

    After ``k`` calls of ``step()`` (``last_epoch == k``) each group's lr is
    ``schedule(k)`` exactly when the group's base lr equals ``schedule.base_lr``, and
    ``base · schedule(k) / schedule.base_lr`` otherwise (the schedule's shape, scaled per
    group, as ``LambdaLR`` would). Computed in closed form, so it never drifts.
    """

    def __init__(self, optimizer: Optimizer, schedule: Schedule, last_epoch: int = -1):
        self.schedule = _check_schedule(schedule)
        super().__init__(optimizer, last_epoch)

    def _lr(self, base_lr: float) -> float:
        value = self.schedule(self.last_epoch)
        if base_lr == self.schedule.base_lr:
            return value
        return base_lr * value / self.schedule.base_lr

    def get_lr(self) -> list[float]:
        return [self._lr(base_lr) for base_lr in self.base_lrs]

    _get_closed_form_lr = get_lr

    def state_dict(self) -> dict:
        """The scheduler's counters, without the schedule itself.

        The schedule is configuration, not state (it is passed to ``__init__`` again), and
        leaving it out keeps checkpoints loadable with ``torch.load(weights_only=True)``.
        """
        return {key: value for key, value in super().state_dict().items() if key != "schedule"}

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = {key: value for key, value in state_dict.items() if key != "schedule"}
        super().load_state_dict(state_dict)
