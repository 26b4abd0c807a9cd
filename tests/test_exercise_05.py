"""Assignment 05-adaptive: its checks' references and diagnoses.

The references the checks add to the catalogue (AdaGrad's variants, the ablation's Adam with
switches, the grader's Adam/AdamW on the notebook's state) are compared with
``descent.rules`` and ``torch.optim``; the worked AdamW step is recomputed with
``torch.optim.AdamW``. The notebook and its mistake corpus run in process in
``test_grading.py``, the nbgrader round trip in ``test_nbgrader_roundtrip.py`` (both for
every assignment).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from nbgrader_helpers import corpus, run_from

import descent.rules as rules
from descent import grading
from descent.grading.assignments import a05_adaptive as a05
from descent.grading.catalogue import adam_init_variant

ASSIGNMENT = "05-adaptive"
MISTAKES = corpus(ASSIGNMENT)


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





# -- part 5.7: the fair comparison -------------------------------------------------------------

def _peeking(train, methods, rates, tune_seeds, eval_seeds):
    """Right numbers, wrong protocol: every rate also runs on the evaluation seeds."""
    for method in methods:
        for lr in rates:
            for seed in eval_seeds:
                train(method, lr, seed)
    return a05.fair_variant(train, methods, rates, tune_seeds, eval_seeds)


def test_fair_reference_passes_and_float32_curves_too():
    a05.check_fair_comparison(a05.fair_variant)
    a05.check_fair_comparison(functools.partial(_as_float32, a05.fair_variant))


def _as_float32(protocol, *args):
    return {m: (lr, np.asarray(c, dtype=np.float32)) for m, (lr, c) in protocol(*args).items()}


@pytest.mark.parametrize("mistake", [m[0] for m in a05.FAIR_MISTAKES])
def test_each_fair_mistake_is_named(mistake):
    flags = next(f for name, _, f in a05.FAIR_MISTAKES if name == mistake)
    with pytest.raises(grading.CheckFailed) as err:
        a05.check_fair_comparison(functools.partial(a05.fair_variant, **flags))
    assert err.value.mistake == mistake, str(err.value)
    assert str(err.value).startswith("[Part 5.7, the fair protocol")


def test_running_the_evaluation_seeds_at_other_rates_is_tuning_on_them():
    with pytest.raises(grading.CheckFailed, match="evaluation seeds at a rate you did not "
                       "choose") as err:
        a05.check_fair_comparison(_peeking)
    assert err.value.mistake == "tuned-on-eval-seeds"


def test_recording_train_crosses_the_door_and_its_calls_come_back():
    """The recording double is a module-level class: it travels to the student's side as
    data, and what it recorded there comes back through ``observe``."""
    from descent.grading import sandbox
    from descent.grading.door import LocalDoor, opened

    train = a05.RecordingTrain(functools.partial(a05.quadratic_run, steps=5))
    with LocalDoor() as door, opened(door):
        out = sandbox.call(a05.fair_variant, train, ["sgd"], [0.1, 0.3], [0], [1],
                           observe=functools.partial(a05.recorded_calls, train))
    assert out.ok and sorted(map(tuple, out.observed)) == [
        ("sgd", 0.1, 0), ("sgd", 0.1, 1), ("sgd", 0.3, 0)]
    assert train.calls == []             # the grader's copy saw nothing: the records came back


def test_fair_runs_show_what_the_written_answer_says():
    fair, unfair = a05.fair_runs(a05.fair_variant)
    final = {m: c[:, -1] for m, (_, c) in fair.items()}
    mean = {m: float(f.mean()) for m, f in final.items()}
    assert {m: lr for m, (lr, _) in fair.items()} == {"sgd": 0.1, "momentum": 0.03,
                                                        "adam": 0.3}
    assert min(mean, key=mean.get) == "adam" and 0.05 < mean["adam"] < 0.07
    assert final["adam"].max() > final["sgd"].min()          # the bands overlap
    assert mean["sgd"] - mean["adam"] < final["adam"].max() - final["adam"].min()
    shared = {m: float(c[:, -1].mean()) for m, (_, c) in unfair.items()}
    assert min(shared, key=shared.get) == "momentum"
    assert max(shared, key=shared.get) == "adam" and shared["adam"] > 50 * shared["momentum"]
