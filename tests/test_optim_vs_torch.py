"""Every ``descent.optim`` class against its ``torch.optim`` twin.

The reference is torch.optim itself, run side by side on the same problem: random
multi-tensor losses that are still descending at the end (see ``optim_problems``), random
hyperparameters over every keyword, two param groups with different hyperparameters.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optim_problems import SPECS, build, max_rel_diff, run, sample_setup

STEPS = 150
IDS = [spec.name for spec in SPECS]


pytestmark = pytest.mark.usefixtures("one_thread")


def _twin_runs(spec, seed, dtype, steps=STEPS):
    """The same run with descent and with torch.optim; also the expected loss of torch's
    parameters 20 steps before the end and at the end."""
    problem, kwargs, group2, maximize = sample_setup(spec, seed)
    ours, theirs = problem.init_params(dtype), problem.init_params(dtype)
    our_opt = build(spec.ours, ours, kwargs, group2)
    their_opt = build(spec.theirs, theirs, kwargs, group2)
    our_losses, their_losses, expected = [], [], []
    for start, length in ((0, steps - 20), (steps - 20, 20)):
        our_losses += run(problem, our_opt, ours, length, maximize=maximize, start=start)
        their_losses += run(problem, their_opt, theirs, length, maximize=maximize, start=start)
        expected.append(problem.expected_loss(theirs).item())
    return ours, theirs, our_losses, their_losses, expected


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_float64_equals_torch(spec, seed):
    ours, theirs, our_losses, their_losses, expected = _twin_runs(spec, seed, torch.float64)
    # The premise of a 1e-9 comparison: the problem is still descending at the end.
    assert expected[1] < expected[0]
    assert max_rel_diff(ours, theirs) <= 1e-9
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-9)


# float32: both sides round every operation to 2⁻²⁴ ≈ 6e-8, but not in the same order
# (torch fuses multiply-adds, lerp and addcdiv into single kernels), so each step differs by a
# few ulps, and the differences add up over 150 steps: measured worst 1.4e-6 (RMSprop; the
# others ≤ 2.4e-7) over 10 seeds × 8 optimizers. 1e-5 leaves 7× margin over that and is
# still far below what a one-term mistake gives (dropping Adam's bias correction alone
# changes the first step by 1/(1-β₁) ≥ 2×). Muon is bit-identical: its bfloat16 iteration
# sees the same bits as torch's.
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_float32_close_to_torch(spec):
    ours, theirs, *_ = _twin_runs(spec, 0, torch.float32)
    assert all(p.dtype == torch.float32 for p in ours)
    assert max_rel_diff(ours, theirs) <= 1e-5


def test_muon_is_bit_identical_to_torch():
    spec = next(s for s in SPECS if s.name == "Muon")
    for dtype in (torch.float64, torch.float32):
        ours, theirs, *_ = _twin_runs(spec, 1, dtype, steps=60)
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=st.sampled_from(SPECS), seed=st.integers(100, 10_000))
def test_random_hyperparameters_equal_torch(spec, seed):
    """Property: for any sampled hyperparameters, 30 steps equal torch.optim's in float64."""
    ours, theirs, *_ = _twin_runs(spec, seed, torch.float64, steps=30)
    assert max_rel_diff(ours, theirs) <= 1e-9


# -- closures ------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_closure_returns_the_loss_like_torch(spec):
    problem, kwargs, group2, maximize = sample_setup(spec, 3)
    results = []
    for cls in (spec.ours, spec.theirs):
        params = problem.init_params()
        opt = build(cls, params, kwargs, group2)

        def closure(params=params, opt=opt, step=0):
            opt.zero_grad()
            loss = problem.loss(params, step)
            (-loss if maximize else loss).backward()
            return loss

        losses = [opt.step(lambda s=s, c=closure: c(step=s)).item() for s in range(20)]
        results.append((losses, params))
    (our_losses, ours), (their_losses, theirs) = results
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-12)
    assert max_rel_diff(ours, theirs) <= 1e-12


# -- state dicts ---------------------------------------------------------------------------------
def _halves(spec, seed, first_cls, second_cls, steps=100):
    """``steps/2`` with ``first_cls``, its state dict loaded into ``second_cls``, the rest."""
    problem, kwargs, group2, maximize = sample_setup(spec, seed)
    params = problem.init_params()
    first = build(first_cls, params, kwargs, group2)
    run(problem, first, params, steps // 2, maximize=maximize)
    saved = copy.deepcopy(first.state_dict())
    resumed = [p.detach().clone().requires_grad_() for p in params]
    second = build(second_cls, resumed, {}, {})  # hyperparameters come from the state dict
    second.load_state_dict(saved)
    run(problem, second, resumed, steps - steps // 2, maximize=maximize, start=steps // 2)
    return resumed, second


def _uninterrupted(spec, seed, cls, steps=100):
    problem, kwargs, group2, maximize = sample_setup(spec, seed)
    params = problem.init_params()
    opt = build(cls, params, kwargs, group2)
    run(problem, opt, params, steps, maximize=maximize)
    return params, opt


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_state_dict_resume_equals_uninterrupted(spec):
    resumed, second = _halves(spec, 4, spec.ours, spec.ours)
    straight, opt = _uninterrupted(spec, 4, spec.ours)
    assert max_rel_diff(resumed, straight) <= 1e-12
    for key, value in opt.state_dict()["param_groups"][1].items():
        assert second.state_dict()["param_groups"][1][key] == value


@pytest.mark.parametrize("direction", ["torch->descent", "descent->torch"])
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_state_dict_loads_across_libraries(spec, direction):
    """Half a run in one library, the other half in the other == a whole run in the first."""
    a, b = (spec.theirs, spec.ours) if direction == "torch->descent" else (spec.ours, spec.theirs)
    resumed, _ = _halves(spec, 5, a, b)
    straight, _ = _uninterrupted(spec, 5, a)
    assert max_rel_diff(resumed, straight) <= 1e-9


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_state_keys_are_torchs(spec):
    problem, kwargs, group2, maximize = sample_setup(spec, 6)
    dicts = []
    for cls in (spec.ours, spec.theirs):
        params = problem.init_params()
        opt = build(cls, params, kwargs, group2)
        run(problem, opt, params, 3, maximize=maximize)
        dicts.append(opt.state_dict()["state"])
    ours, theirs = dicts
    assert ours.keys() == theirs.keys()
    for index in theirs:
        assert ours[index].keys() == theirs[index].keys()
        for key, value in theirs[index].items():
            assert ours[index][key].dtype == value.dtype, key
            torch.testing.assert_close(ours[index][key], value, rtol=1e-12, atol=0)
