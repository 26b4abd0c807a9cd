"""descent.schedules against torch.optim.lr_scheduler, step for step, boundaries included.

Tolerance: |η_descent − η_torch| ≤ 1e-12 · η (the base lr). Torch's chainable form multiplies
``group["lr"]`` by a ratio at each step, so it drifts from the closed form by a few ulps per
step; relative to η_t itself the gap is unbounded where η_t → 0 (a cosine at η_min = 0), which
is why the bound is relative to the base lr.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as tls

from descent import schedules as S

REL = 1e-12


def _optimizer(lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr, momentum=0.9)


def torch_lrs(make, lr: float, steps: int) -> list[float]:
    """η_0 … η_{steps-1} as torch computes them: the lr each optimizer.step() sees."""
    opt = _optimizer(lr)
    sched = make(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def assert_same(schedule, expected: list[float], base_lr: float) -> None:
    for t, want in enumerate(expected):
        got = schedule(t)
        assert abs(got - want) <= REL * base_lr, f"step {t}: descent {got!r}, torch {want!r}"


LR = 0.3


@pytest.mark.parametrize("step_size,gamma", [(1, 0.5), (7, 0.1), (10, 0.9)])
def test_step_decay_equals_steplr(step_size, gamma):
    steps = 4 * step_size + 1                                     # 4 full periods + boundary
    want = torch_lrs(lambda o: tls.StepLR(o, step_size, gamma), LR, steps)
    assert_same(S.StepDecay(LR, step_size, gamma), want, LR)


@pytest.mark.parametrize("milestones", [[3, 10, 11, 30], [5, 5, 20], [0, 1]])
def test_multistep_equals_multisteplr(milestones):
    want = torch_lrs(lambda o: tls.MultiStepLR(o, milestones, 0.5), LR, 40)
    assert_same(S.MultiStep(LR, tuple(milestones), 0.5), want, LR)


@pytest.mark.parametrize("gamma", [0.95, 0.5, 1.0])
def test_exponential_equals_exponentiallr(gamma):
    want = torch_lrs(lambda o: tls.ExponentialLR(o, gamma), LR, 200)
    assert_same(S.Exponential(LR, gamma), want, LR)


@pytest.mark.parametrize("total_iters,power", [(5, 1.0), (17, 2.0), (30, 0.5)])
def test_polynomial_equals_polynomiallr(total_iters, power):
    want = torch_lrs(lambda o: tls.PolynomialLR(o, total_iters, power), LR, 3 * total_iters)
    assert_same(S.Polynomial(LR, total_iters, power), want, LR)


@pytest.mark.parametrize("T_max,eta_min", [(10, 0.0), (7, 0.01), (1, 0.0), (25, 0.1)])
def test_cosine_equals_cosineannealinglr_over_three_periods(T_max, eta_min):
    # One period of torch's cosine is 2·T_max; run 3 of them and land on the boundary.
    steps = 6 * T_max + 1
    want = torch_lrs(lambda o: tls.CosineAnnealingLR(o, T_max, eta_min), LR, steps)
    assert_same(S.Cosine(LR, T_max, eta_min), want, LR)


def test_cosine_closed_form_equals_torch_closed_form():
    opt = _optimizer(LR)
    sched = tls.CosineAnnealingLR(opt, 9, 0.02)
    ours = S.Cosine(LR, 9, 0.02)
    for t in range(60):
        sched.last_epoch = t
        assert sched._get_closed_form_lr()[0] == pytest.approx(ours(t), rel=0, abs=REL * LR)


@pytest.mark.parametrize("T_0,T_mult,eta_min", [(5, 1, 0.0), (3, 2, 0.01), (2, 3, 0.0)])
def test_warm_restarts_equals_torch(T_0, T_mult, eta_min):
    cycles = [T_0 * T_mult ** i for i in range(4)]
    steps = sum(cycles) + 1                                        # 4 cycles and the restart
    want = torch_lrs(lambda o: tls.CosineAnnealingWarmRestarts(o, T_0, T_mult, eta_min),
                     LR, steps)
    ours = S.WarmRestarts(LR, T_0, T_mult, eta_min)
    assert_same(ours, want, LR)
    restart = 0
    for length in cycles:
        assert ours(restart) == LR                                 # restarts are exact
        restart += length


@pytest.mark.parametrize("start_factor,W", [(0.1, 10), (1 / 3, 5), (0.5, 1)])
def test_linear_warmup_equals_linearlr(start_factor, W):
    want = torch_lrs(lambda o: tls.LinearLR(o, start_factor, 1.0, W), LR, 3 * W + 2)
    assert_same(S.LinearWarmup(LR, W, start_factor), want, LR)


@pytest.mark.parametrize("W", [1, 4, 30])
def test_linear_warmup_starts_above_zero_in_equal_steps_by_default(W):
    sched = S.LinearWarmup(LR, W)
    assert sched.start_factor == 1 / (W + 1) and sched(0) > 0      # the first step moves
    np.testing.assert_allclose([sched(t) for t in range(W + 1)],
                               [LR * (t + 1) / (W + 1) for t in range(W + 1)], rtol=1e-15)
    want = torch_lrs(lambda o: tls.LinearLR(o, 1 / (W + 1), 1.0, W), LR, 3 * W + 2)
    assert_same(sched, want, LR)                                   # still torch's LinearLR


@pytest.mark.parametrize("W,T,eta_min,s", [(5, 30, 0.0, 0.2), (10, 11, 0.01, 0.5),
                                           (3, 50, 0.05, 1 / 3)])
def test_warmup_cosine_equals_sequentiallr(W, T, eta_min, s):
    def make(o):
        warm = tls.LinearLR(o, s, 1.0, W)
        cos = tls.CosineAnnealingLR(o, T - W, eta_min)
        return tls.SequentialLR(o, [warm, cos], milestones=[W])

    want = torch_lrs(make, LR, T + 1)                              # through the end, t = T
    ours = S.WarmupCosine(LR, W, T, eta_min, s)
    assert_same(ours, want, LR)
    assert ours(W) == LR and ours(T) == eta_min and ours(T + 5) == eta_min


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("total,pct", [(100, 0.3), (37, 0.25), (10, 0.45)])
def test_one_cycle_equals_onecyclelr(three_phase, strategy, total, pct):
    def make(o):
        return tls.OneCycleLR(o, max_lr=LR, total_steps=total, pct_start=pct,
                              anneal_strategy=strategy, div_factor=10.0,
                              final_div_factor=100.0, three_phase=three_phase)

    want = torch_lrs(make, LR, total)                              # the whole cycle, 0 … T-1
    ours = S.OneCycle(LR, total, pct, strategy, 10.0, 100.0, three_phase)
    assert_same(ours, want, LR)
    assert ours(0) == pytest.approx(LR / 10, rel=1e-15)           # torch's formula, 1 ulp off
    assert ours(total - 1) == LR / 10 / 100 == ours(total + 3)    # ends exactly, then holds


def test_wsd_linear_equals_sequentiallr():
    W, stable, D, eta_min = 4, 10, 8, 0.03

    def make(o):
        warm = tls.LinearLR(o, 0.25, 1.0, W)
        hold = tls.ConstantLR(o, factor=1.0, total_iters=1)
        decay = tls.LinearLR(o, 1.0, eta_min / LR, D)
        return tls.SequentialLR(o, [warm, hold, decay], milestones=[W, W + stable])

    want = torch_lrs(make, LR, W + stable + D + 1)
    assert_same(S.WSD(LR, W, stable, D, eta_min, "linear", 0.25), want, LR)


def test_inverse_sqrt_is_the_papers_formula():
    d_model, warmup = 512, 4000
    ours = S.InverseSqrt.noam(d_model, warmup)
    for t in [0, 1, 100, 3998, 3999, 4000, 10_000]:
        n = t + 1                                                  # Vaswani et al., eq. 3
        paper = d_model ** -0.5 * min(n ** -0.5, n * warmup ** -1.5)
        assert ours(t) == pytest.approx(paper, rel=1e-14)


# -- adapters drive a real optimizer --------------------------------------------------------

SCHEDULES = [
    S.StepDecay(LR, 4, 0.5), S.Cosine(LR, 10, 0.01), S.WarmRestarts(LR, 3, 2),
    S.WarmupCosine(LR, 5, 20), S.InverseSqrt(LR, 6), S.OneCycle(LR, 30),
    S.WSD(LR, 3, 5, 6, decay="sqrt"), S.Constant(LR), S.MultiStep(LR, (2, 9)),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("adapter", [S.ScheduleLR, S.as_lambda_lr])
def test_adapter_drives_a_real_optimizer(schedule, adapter):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
    opt = torch.optim.SGD([w], lr=schedule.base_lr)
    sched = adapter(opt, schedule)
    for t in range(35):
        before = w.detach().clone()
        w.grad = torch.ones_like(w)
        opt.step()
        # The step the optimizer took is the schedule's lr at t (gradient 1).
        step = torch.full((3,), schedule(t), dtype=torch.float64)
        assert (before - w.detach()) == pytest.approx(step, rel=1e-12, abs=1e-15)
        assert sched.get_last_lr()[0] == pytest.approx(schedule(t), rel=1e-12, abs=1e-18)
        sched.step()


def test_schedule_lr_scales_each_group():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    schedule = S.Cosine(0.2, 10)
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.02}], lr=0.2)
    sched = S.ScheduleLR(opt, schedule)
    for t in range(12):
        assert opt.param_groups[0]["lr"] == schedule(t)            # exact for the base group
        assert opt.param_groups[1]["lr"] == pytest.approx(schedule(t) / 10, rel=1e-14)
        opt.step()
        sched.step()


def test_schedule_lr_state_dict_resumes():
    schedule = S.WarmRestarts(0.1, 4, 2)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = S.ScheduleLR(opt, schedule)
    for _ in range(9):
        opt.step()
        sched.step()
    state = sched.state_dict()
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched2 = S.ScheduleLR(opt2, schedule)
    sched2.load_state_dict(state)
    opt2.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == schedule(10)


def test_schedule_lr_state_dict_loads_with_weights_only(tmp_path):
    # descent.train checkpoints load with weights_only=True: the state must be plain data.
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = S.ScheduleLR(opt, S.Cosine(0.1, 10))
    for _ in range(3):
        opt.step()
        sched.step()
    torch.save(sched.state_dict(), tmp_path / "sched.pt")
    state = torch.load(tmp_path / "sched.pt", weights_only=True)
    assert "schedule" not in state and state["last_epoch"] == 3


# -- bad arguments -----------------------------------------------------------------------------

@pytest.mark.parametrize("make,error,words", [
    (lambda: S.Cosine(-0.1, 10), ValueError, "lr (η) must be in (0, ∞), got -0.1"),
    (lambda: S.OneCycle(math.inf, 10), ValueError,
     "max_lr (η_max) must be a finite number, got inf"),
    (lambda: S.Cosine(0.1, 0), ValueError, "T_max must be an integer >= 1, got 0"),
    (lambda: S.Cosine(0.1, 10, eta_min=0.2), ValueError, "eta_min (η_min) must be in [0, 0.1]"),
    (lambda: S.StepDecay(0.1, 2.5), TypeError, "step_size must be an integer, got float"),
    (lambda: S.StepDecay(0.1, 2, gamma=float("nan")), ValueError,
     "gamma (γ) must be a finite number"),
    (lambda: S.MultiStep(0.1, (3, -1)), ValueError, "milestones[i] must be an integer >= 0"),
    (lambda: S.LinearWarmup(0.1, 5, start_factor=1.5), ValueError, "start_factor (s) must be"),
    (lambda: S.LinearWarmup(0.1, 5, start_factor=0.0), ValueError,
     "start_factor (s) must be in (0, 1], got 0.0"),
    (lambda: S.WarmupCosine(0.1, 10, 10), ValueError, "total_steps must be an integer >= 11"),
    (lambda: S.WSD(0.1, 1, 1, 1, decay="exp"), ValueError, "decay must be 'linear'"),
    (lambda: S.OneCycle(0.1, 10, pct_start=0.05), ValueError, "phase of no length"),
    (lambda: S.OneCycle(0.1, 10, anneal_strategy="cosine"), ValueError, "anneal_strategy"),
    (lambda: S.WarmRestarts(0.1, 5, T_mult=0), ValueError, "T_mult must be an integer >= 1"),
    (lambda: S.Cosine("0.1", 10), TypeError, "lr (η) must be a real number, got str"),
])
def test_bad_arguments_are_named(make, error, words):
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)


def test_hyperparameters_are_stored_as_floats():
    s = S.WarmupCosine(torch.tensor(0.5, dtype=torch.float64), 2, 10, eta_min=0)
    assert type(s.lr) is float and type(s.eta_min) is float and type(s(5)) is float
    assert s(np.int64(5)) == s(5)                                  # NumPy steps are fine


def test_bad_step_and_bad_schedule():
    with pytest.raises(ValueError, match="step must be an integer >= 0, got -1"):
        S.Cosine(0.1, 10)(-1)
    with pytest.raises(TypeError, match="step must be an integer, got float"):
        S.Cosine(0.1, 10)(1.0)
    opt = _optimizer(0.1)
    with pytest.raises(TypeError, match="schedule must be a descent.schedules.Schedule"):
        S.ScheduleLR(opt, lambda t: 0.1)


# -- properties --------------------------------------------------------------------------------

lrs = st.floats(1e-6, 10.0)
fast = settings(max_examples=60, deadline=None)


@fast
@given(lr=lrs, T_max=st.integers(1, 500), frac=st.floats(0.0, 0.99))
def test_cosine_reaches_eta_min_at_T_max(lr, T_max, frac):
    eta_min = frac * lr
    s = S.Cosine(lr, T_max, eta_min)
    assert s(T_max) == eta_min                                     # cos π = −1 exactly
    assert s(0) == pytest.approx(lr, rel=1e-15)
    values = [s(t) for t in range(T_max + 1)]
    assert all(a >= b for a, b in zip(values, values[1:]))        # monotone on [0, T_max]
    assert S.Cosine(lr, T_max, eta_min, periodic=False)(T_max + 7) == eta_min


@fast
@given(lr=lrs, W=st.integers(1, 300), s=st.floats(1e-6, 1.0))
def test_warmup_is_monotone_and_exact_at_the_boundary(lr, W, s):
    sched = S.LinearWarmup(lr, W, s)
    values = [sched(t) for t in range(W + 3)]
    assert all(a <= b for a, b in zip(values, values[1:]))
    assert values[W] == lr and max(values) == lr
    assert values[0] == pytest.approx(s * lr)
    noam = S.InverseSqrt(lr, W)
    assert noam(W - 1) == lr                                       # the peak, exactly
    assert all(noam(t) <= lr for t in range(2 * W))


@fast
@given(lr=lrs, W=st.integers(0, 50), stable=st.integers(0, 50), D=st.integers(1, 50),
       decay=st.sampled_from(["linear", "cosine", "sqrt"]))
def test_wsd_plateau(lr, W, stable, D, decay):
    s = S.WSD(lr, W, stable, D, eta_min=lr / 100, decay=decay)
    assert all(s(t) == lr for t in range(W, W + stable + 1))      # plateau, and the decay's start
    decay_values = [s(t) for t in range(W + stable, W + stable + D + 1)]
    assert all(a >= b for a, b in zip(decay_values, decay_values[1:]))
    assert s(W + stable + D) == lr / 100 == s(W + stable + D + 10)


@fast
@given(T_0=st.integers(1, 20), T_mult=st.integers(1, 4), t=st.integers(0, 5000))
def test_warm_restarts_cycle_is_consistent(T_0, T_mult, t):
    t_cur, t_i = S.WarmRestarts(1.0, T_0, T_mult).cycle(t)
    assert 0 <= t_cur < t_i
    # t − T_cur is the sum of the completed cycles T_0 + T_0·m + … (a geometric series).
    k = round(math.log(t_i / T_0, T_mult)) if T_mult > 1 else (t - t_cur) // T_0
    done = T_0 * k if T_mult == 1 else T_0 * (T_mult ** k - 1) // (T_mult - 1)
    assert t - t_cur == done
