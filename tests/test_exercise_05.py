"""Assignment 05-adaptive: its checks' references, the mistake corpus, the nbgrader round trip.

The references the checks add to the catalogue (AdaGrad's variants, the ablation's Adam with
switches, the grader's Adam/AdamW on the notebook's state) are compared with
``descent.rules`` and ``torch.optim``; the worked AdamW step is recomputed with
``torch.optim.AdamW``. See ``exercise_helpers`` for what the corpus and round trip check.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from exercise_helpers import (
    build_course,
    check_feedback,
    check_mistake,
    check_release,
    check_scores,
    check_validate,
    run_from,
    source,
)
from nbgrader_helpers import corpus

import descent.rules as rules
from descent import grading
from descent.grading.assignments import a05_adaptive as a05
from descent.grading.catalogue import adam_init_variant

ASSIGNMENT = "05-adaptive"
MISTAKES = corpus(ASSIGNMENT)
# Through a real kernel (5-15 s each here, so one; the whole corpus runs in-process above).
ROUNDTRIP = ("adam-no-bias-correction",)


# -- the references of the checks -----------------------------------------------------------

def test_adagrad_variant_and_ablation_with_no_flag_are_the_library_rules():
    grading.check_rule(a05.adagrad_variant, a05.adagrad_init_variant, spec=a05.adagrad_spec(),
                       part="5.1", equation="", seeds=(0, 1), shapes=((4,), (2, 3)),
                       arrays=("numpy", "torch"))
    adam = lambda p, g, s, **h: rules.adam_update(p, g, s, **h)
    spec = grading.RuleSpec("Adam", adam, rules.adam_init,
                            tuple({k: v for k, v in h.items()
                                   if k not in ("bias_correction", "adaptive")}
                                  for h in a05.ablation_spec().hypers[::4]))
    grading.check_rule(a05.ablation_reference, adam_init_variant, spec=spec, part="5.5",
                       equation="", seeds=(0, 1), arrays=("numpy", "torch"))


def test_trusted_adam_and_adamw_equal_torch_optim():
    for trusted, cls in ((a05.trusted_adam_update, torch.optim.Adam),
                         (a05.trusted_adamw_update, torch.optim.AdamW)):
        p = torch.randn(6, dtype=torch.float64, requires_grad=True)
        q, state = p.detach().clone(), adam_init_variant(p.detach())
        opt = cls([p], lr=0.05, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.2, foreach=False)
        for _ in range(12):
            g = torch.randn(6, dtype=torch.float64)
            p.grad = g.clone()
            opt.step()
            q, state = trusted(q, g, state, lr=0.05, beta1=0.8, beta2=0.95, eps=1e-3,
                               weight_decay=0.2)
        torch.testing.assert_close(p.detach(), q, rtol=1e-12, atol=1e-14)


def test_worked_adamw_step_is_torchs_and_the_chapters():
    theta, grad, hyper = a05.worked_problem()
    p = torch.tensor(theta, requires_grad=True)
    p.grad = torch.tensor(grad)
    torch.optim.AdamW([p], lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]),
                      eps=hyper["eps"], weight_decay=hyper["weight_decay"]).step()
    assert float(p.detach()) == pytest.approx(1.898, abs=1e-9)   # the chapter's number
    new, _ = rules.adamw_update(theta, grad, rules.adamw_init(theta), **hyper)
    assert float(new[0]) == pytest.approx(float(p.detach()), rel=1e-12)


@pytest.mark.parametrize("mistake", [m.name for m in a05.ADAGRAD_MISTAKES + a05.ABLATION_MISTAKES])
def test_each_added_mistake_is_diagnosed_by_name(mistake):
    for spec in (a05.adagrad_spec(), a05.ablation_spec()):
        found = [m for m in spec.mistakes if m.name == mistake]
        if found:
            with pytest.raises(grading.CheckFailed) as err:
                grading.check_rule(found[0].update, found[0].init, spec=spec, part="5",
                                   equation="")
            assert err.value.mistake == mistake


def test_ablation_runs_show_what_the_written_answer_explains():
    runs = a05.ablation_runs(a05.ablation_reference, adam_init_variant)
    final = {k: float(np.median(v[-50:])) for k, v in runs.items()}
    assert runs["no adaptivity"][1] > 5 * runs["Adam"][0]            # the first step blows up
    assert runs["no bias correction"][1] < runs["Adam"][1]           # ~3× larger first step
    assert final["Adam"] < final["no bias correction"] < final["no adaptivity"]


def test_training_check_with_a_wrong_rule_grades_the_wrapper_alone():
    """A rule failing 5.4 is replaced by the grader's in 5.6: the mistake is charged once."""
    bad = next(m for m in MISTAKES if m.name == "adamw-decay-unscaled")
    results = run_from(bad.notebook(), bad.cell)
    assert results["test-train"] is None and results["test-adamw"]


def test_delegated_training_optimizer_earns_nothing():
    class Delegating(torch.optim.Optimizer):
        def __init__(self, params, **hyper):
            params = list(params)
            super().__init__(params, {})
            self.inner = torch.optim.AdamW(params, **hyper)

        def step(self):
            self.inner.step()

    with pytest.raises(grading.CheckFailed, match="no points"):
        a05.check_training(Delegating)


# -- the notebook and the mistake corpus (in this process) -----------------------------------

def test_solution_passes_every_grade_cell():
    results = run_from(source(ASSIGNMENT))
    assert results == {k: None for k in results} and len(results) == 6


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.name)
def test_mistake_breaks_exactly_its_part_and_is_named(mistake):
    check_mistake(mistake)


# -- nbgrader, through real kernels ----------------------------------------------------------

@pytest.fixture(scope="module")
def course(tmp_path_factory):
    chosen = [m for m in MISTAKES if m.name in ROUNDTRIP]
    return build_course(tmp_path_factory.mktemp("nbgrader05"), ASSIGNMENT, chosen), chosen


def test_release_is_committed_and_leaks_nothing(course):
    check_release(course[0], ASSIGNMENT)


def test_validate_passes_on_solution_and_fails_every_test_on_blank(course):
    check_validate(course[0], ASSIGNMENT)


def test_autograde_scores_and_feedback(course):
    check_scores(course[0], ASSIGNMENT, course[1])
    check_feedback(course[0], ASSIGNMENT, course[1])

