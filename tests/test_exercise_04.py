"""Assignment 04-momentum: the references its checks use, against the library and torch.optim.

The notebook and its mistake corpus run in process in ``test_grading.py``, the nbgrader round
trip in ``test_nbgrader_roundtrip.py`` (both for every assignment).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import descent.rules as rules
from descent import grading
from descent.grading.assignments import a04_momentum as a04
from descent.grading.rules import RuleCase, iterates
from descent.rates import optimal_heavy_ball

# -- the references of the checks -----------------------------------------------------------

@pytest.mark.parametrize("nesterov", [False, True])
def test_trusted_rules_equal_the_library_rule(nesterov):
    trusted = a04.trusted_nesterov if nesterov else a04.trusted_heavy_ball
    spec = a04.momentum_spec(nesterov=nesterov)
    for hyper in a04.HYPERS:
        case = RuleCase("quadratic", 3, (4,), "float64", hyper, steps=15)
        mine = iterates(trusted, a04.trusted_momentum_init, case).value
        assert np.allclose(mine, iterates(spec.update, spec.init, case).value, rtol=1e-13)


@pytest.mark.parametrize("nesterov", [False, True])
def test_reference_rule_equals_torch_sgd(nesterov):
    theta = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    p = theta.clone().requires_grad_()
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=nesterov)
    state = rules.sgd_init(theta)
    update = a04.momentum_spec(nesterov=nesterov).update
    for _ in range(20):
        p.grad = 2 * p.detach() + 1.0
        grad = 2 * theta + 1.0
        opt.step()
        theta, state = update(theta, grad, state, lr=0.1, momentum=0.9)
    assert torch.allclose(theta, p.detach(), rtol=1e-12)


def test_each_momentum_mistake_is_its_own_variant():
    """The catalogued variants differ from the reference and from each other."""
    for nesterov in (False, True):
        spec = a04.momentum_spec(nesterov=nesterov)
        case = RuleCase("noise", 0, (3,), "float64", a04.HYPERS[0], steps=12)
        runs = [iterates(spec.update, spec.init, case).value]
        for mistake in spec.mistakes:
            variant = iterates(mistake.update, spec.init, case).value
            assert not any(np.allclose(variant, other) for other in runs), mistake.name
            runs.append(variant)


def test_measured_rate_of_the_optimal_tuning_is_the_predicted_rate():
    for L, mu in ((10.0, 1.0), (1.0, 0.01), (50.0, 0.05)):
        best = optimal_heavy_ball(L, mu)
        rate = a04.measured_rate(best.lr, best.momentum, L, mu)
        assert best.rate <= rate <= 1.03 * best.rate
        root = math.sqrt(L / mu)
        assert a04.measured_rate(best.lr, (root - 1) / (root + 1), L, mu) > 1.03 * best.rate


def test_optimizer_run_diagnoses_a_lost_buffer():
    class Forgetful(torch.optim.Optimizer):
        def __init__(self, params, lr, momentum, nesterov=False):
            super().__init__(params, dict(lr=lr))

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    p.add_(p.grad, alpha=-group["lr"])

    with pytest.raises(grading.CheckFailed, match=r"SGD \*without\* momentum"):
        a04.check_optimizer(Forgetful)




# -- 4.6 paths on a landscape -------------------------------------------------------------------

def _paths(landscape, x0, runs, steps, *, dtype=float, skip_start=False, frozen=False):
    """A student's ``trajectories``, right or wrong in one way (module level: it is called
    through the sandbox, in this process)."""
    paths = {}
    for label, (update, init, hyper) in runs.items():
        x = np.array(x0, dtype=dtype)
        g0, state, rows = landscape.grad(x), init(x), [] if skip_start else [x]
        for _ in range(steps):
            grad = (g0 if frozen else landscape.grad(x)).astype(dtype)
            x, state = update(x, grad, state, **hyper)
            rows.append(x)
        paths[label] = np.stack(rows)
    return paths


def _float32_paths(landscape, x0, runs, steps):
    return _paths(landscape, x0, runs, steps, dtype=np.float32)


def _no_start(landscape, x0, runs, steps):
    return _paths(landscape, x0, runs, steps, skip_start=True)


def _frozen(landscape, x0, runs, steps):
    return _paths(landscape, x0, runs, steps, frozen=True)


def _random_start(landscape, x0, runs, steps):
    jitter = np.random.default_rng().normal(0, 1e-3, 2)
    return _paths(landscape, np.asarray(x0) + jitter, runs, steps)


@pytest.mark.parametrize("cases", [a04.PATHS, a04.PATHS_HIDDEN])
@pytest.mark.parametrize("student", [_paths, _float32_paths])
def test_paths_of_the_reference_and_of_float32_pass(cases, student):
    a04.check_paths(student, cases=cases)


@pytest.mark.parametrize("student, message", [
    (_no_start, "the start is missing"),
    (_frozen, "every step uses the gradient at the start x0"),
    (_random_start, "starts at"),
])
def test_paths_wrong_in_one_way_fail_with_their_message(student, message):
    with pytest.raises(grading.CheckFailed, match="Part 4.6") as err:
        a04.check_paths(student)
    assert message in str(err.value), str(err.value)


def test_paths_cases_are_not_at_default_hyperparameters_and_landscapes_cross_by_value():
    import pickle

    for case in (*a04.PATHS, *a04.PATHS_HIDDEN):
        assert any(set(h) - {"lr"} for h in case.hypers.values())
        landscape = pickle.loads(pickle.dumps(case.build()))
        x = np.array(case.x0)
        assert np.array_equal(landscape.grad(x), case.build().grad(x))
    assert len({c.landscape for c in (*a04.PATHS, *a04.PATHS_HIDDEN)}) >= 3
