"""Assignment 04-momentum: the mistake corpus and the nbgrader round trip (see
exercise_helpers), and the references its checks use, against the library and torch.optim."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from exercise_helpers import (
    build_course,
    check_mistake,
    check_release,
    check_scores,
    check_validate,
    run_from,
    source,
)
from feedback_html import check_feedback_html
from nbgrader_helpers import corpus

import descent.rules as rules
from descent import grading
from descent.grading.assignments import a04_momentum as a04
from descent.grading.rules import RuleCase, iterates
from descent.rates import optimal_heavy_ball

ASSIGNMENT = "04-momentum"
MISTAKES = corpus(ASSIGNMENT)
# Through a real kernel as well (~5-10 s each on this busy machine): the old-buffer Nesterov,
# whose diagnosis the feedback must show. The whole corpus runs in process below.
ROUNDTRIP = ("nag-old-buffer",)


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


# -- the notebook: in process, then through nbgrader ------------------------------------------

def test_solution_passes_every_grade_cell():
    results = run_from(source(ASSIGNMENT))
    assert results == {k: None for k in results}


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.name)
def test_mistake_breaks_exactly_its_part_and_is_named(mistake):
    check_mistake(mistake)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    mistakes = [m for m in MISTAKES if m.name in ROUNDTRIP]
    return build_course(tmp_path_factory.mktemp("nbgrader"), ASSIGNMENT, mistakes), mistakes


def test_released_notebook_is_regenerated_and_leaks_nothing(course):
    check_release(course[0], ASSIGNMENT)


def test_validate_passes_solutions_and_fails_every_test_of_the_blank(course):
    check_validate(course[0], ASSIGNMENT)


def test_autograde_gives_full_zero_and_exact_points_with_named_feedback(course):
    check_scores(course[0], ASSIGNMENT, course[1])
    check_feedback_html(course[0], ASSIGNMENT, course[1])
