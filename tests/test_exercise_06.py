"""Assignment 06-schedules: its references, the SGDR diagnosis, the grading of the loop.

The references are ``descent.schedules`` (each tested against ``torch.optim.lr_scheduler`` in
``test_schedules.py``); here they are checked once more against torch at the boundaries the
assignment grades, and the grader's training loop against a loop driven by torch's own
scheduler. The notebook and its mistake corpus run in process in ``test_grading.py``, the
nbgrader round trip in ``test_nbgrader_roundtrip.py`` (both for every assignment).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from nbgrader_helpers import corpus, run_from

from descent import grading
from descent.grading import training
from descent.grading.assignments import a06_schedules as a06

ASSIGNMENT = "06-schedules"
MISTAKES = corpus(ASSIGNMENT)


def _torch_lrs(make_scheduler, steps: int, lr: float) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = make_scheduler(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return out


@pytest.mark.parametrize("hyper", a06.SGDR)
def test_sgdr_reference_is_torchs_warm_restarts(hyper):
    steps = a06._length("sgdr", hyper)
    lrs = _torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        o, T_0=hyper["T_0"], T_mult=hyper["T_mult"], eta_min=hyper["eta_min"]), steps,
        hyper["lr"])
    ref = a06.reference("sgdr", **hyper)
    assert [ref(t) for t in range(steps)] == pytest.approx(lrs, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("hyper", a06.STEP_DECAY)
def test_step_decay_reference_is_torchs_step_lr(hyper):
    steps = a06._length("step_decay", hyper)
    lrs = _torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(
        o, step_size=hyper["step_size"], gamma=hyper["gamma"]), steps, hyper["lr"])
    ref = a06.reference("step_decay", **hyper)
    assert [ref(t) for t in range(steps)] == pytest.approx(lrs, rel=1e-12)


def test_inverse_sqrt_reference_is_the_papers_eq_3():
    d_model, warmup = 512, 40
    ref = a06.reference("inverse_sqrt", lr=1 / math.sqrt(d_model * warmup), warmup_steps=warmup)
    for t in range(200):
        n = t + 1
        paper = d_model ** -0.5 * min(n ** -0.5, n * warmup ** -1.5)      # Vaswani et al., eq. 3
        assert ref(t) == pytest.approx(paper, rel=1e-12)


@pytest.mark.parametrize("mistake", ["late", "strict"])
@pytest.mark.parametrize("hyper", a06.SGDR)
def test_each_sgdr_restart_mistake_is_named(mistake, hyper):
    with pytest.raises(grading.CheckFailed) as err:
        a06.check_sgdr(lambda t, **h: a06.sgdr_variant(t, **h, mistake=mistake),
                       settings=[hyper])
    assert err.value.mistake == "sgdr-restart-off-by-one"


def test_reference_loop_equals_a_loop_driven_by_torchs_scheduler():
    """The grader's loop (lr set before step t) is torch's: optimizer.step(); scheduler.step()."""
    hyper = a06.TRAIN_SCHEDULE
    schedule = a06.reference("warmup_cosine", **hyper)
    run = training.RunSpec(seed=3, steps=hyper["total_steps"], device="cpu")
    model, loss_fn, opt = a06._setup(run)
    a06.reference_train(model, loss_fn, opt, schedule, run.steps)
    x, y, torch_model = training._data_and_model(run)
    torch_opt = torch.optim.SGD(torch_model.parameters(), lr=hyper["lr"], momentum=a06.MOMENTUM)
    scheduler = torch.optim.lr_scheduler.LambdaLR(torch_opt, lambda t: schedule(t) / hyper["lr"])
    losses = []
    for _ in range(run.steps):
        torch_opt.zero_grad()
        loss = torch.nn.functional.mse_loss(torch_model(x), y)
        loss.backward()
        torch_opt.step()
        scheduler.step()
        losses.append(loss.item())
    assert opt.losses == pytest.approx(losses, rel=1e-6)
    assert losses[-1] < 0.5 * losses[0]


def test_training_check_with_a_wrong_schedule_grades_the_loop_alone():
    bad = next(m for m in MISTAKES if m.name == "cosine-short")
    results = run_from(bad.notebook(), bad.cell)
    assert results["test-train"] is None and results["test-warmup-cosine"]





def _float32_warmup_cosine(t, *, lr, warmup_steps, total_steps, eta_min=0.0):
    """A correct schedule computed in float32 (π rounded to float32, so the value at T is
    η_min + ~1e-8·η, not η_min exactly)."""
    f = np.float32
    if t < warmup_steps:
        return f(lr) * f(t) / f(warmup_steps)
    progress = min(f(t - warmup_steps) / f(total_steps - warmup_steps), f(1))
    return f(eta_min) + f(0.5) * (f(lr) - f(eta_min)) * (f(1) + np.cos(f(np.pi) * progress))


@pytest.mark.parametrize("hyper", [*a06.WARMUP_COSINE,
                                   {"lr": 0.1, "warmup_steps": 0, "total_steps": 12,
                                    "eta_min": 0.0},
                                   {"lr": 2.0, "warmup_steps": 13, "total_steps": 50,
                                    "eta_min": 0.5}])
def test_a_float32_schedule_passes_before_any_mistake_is_looked_for(hyper):
    """Tolerance first (issue 10): float32 values never earn "the cosine does not reach its
    minimum", which is named only when the short cosine reproduces the values."""
    steps = a06._length("warmup_cosine", hyper)
    got = grading.Outcome(np.array([float(_float32_warmup_cosine(t, **hyper))
                                    for t in range(steps)]))
    assert a06.judge("warmup_cosine", hyper, got, steps, "warmup_cosine").ok
    short = grading.Outcome(np.array([a06.warmup_cosine_variant(t, **hyper, hold=False)
                                      for t in range(steps)]))
    verdict = a06.judge("warmup_cosine", hyper, short, steps, "warmup_cosine")
    assert verdict.mistake == "cosine-short", verdict.message


def test_an_ignored_t_mult_is_not_called_a_short_cosine():
    hyper = a06.SGDR[1]                                   # T_mult = 2
    steps = a06._length("sgdr", hyper)
    ignored = {**hyper, "T_mult": 1}
    got = grading.Outcome(np.array([a06.reference("sgdr", **ignored)(t) for t in range(steps)]))
    verdict = a06.judge("sgdr", hyper, got, steps, "sgdr")
    assert not verdict.ok and verdict.mistake is None and "cosine" not in verdict.message


# -- 6.6 three schedules over seeds ---------------------------------------------------------------

def _compare(setup, schedules, seeds, steps, *, groups=None, shift=0, fresh=True):
    """A student's ``compare_schedules``, right or wrong in one way (module level)."""
    results = {name: {} for name in schedules}
    for name, schedule in schedules.items():
        run = None
        for seed in seeds:
            run = setup(seed) if fresh or run is None else run
            model, loss_fn, optimizer = run
            lrs, losses = [], []
            for t in range(steps):
                for group in optimizer.param_groups[:groups]:
                    group["lr"] = schedule(max(t - shift, 0))
                lrs.append([group["lr"] for group in optimizer.param_groups])
                optimizer.zero_grad()
                loss = loss_fn(model)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            results[name][seed] = {"lrs": lrs, "losses": losses}
    return results


def _first_group(setup, schedules, seeds, steps):
    return _compare(setup, schedules, seeds, steps, groups=1)


def _late(setup, schedules, seeds, steps):
    return _compare(setup, schedules, seeds, steps, shift=1)


def _not_fresh(setup, schedules, seeds, steps):
    return _compare(setup, schedules, seeds, steps, fresh=False)


def test_compare_reference_passes_visible_and_hidden_settings():
    a06.check_compare(_compare)
    a06.check_compare(_compare, table=a06.COMPARE_HIDDEN, seeds=[3, 11], steps=25)


@pytest.mark.parametrize("student, message", [
    (_first_group, "you set the first only"),
    (_late, "one step off"),
    (_not_fresh, "starts from its own fresh model"),
])
def test_compare_wrong_in_one_way_fails_with_its_message(student, message):
    with pytest.raises(grading.CheckFailed, match="Part 6.6") as err:
        a06.check_compare(student)
    assert message in str(err.value), str(err.value)


def test_compare_reference_loop_matches_torchs_scheduler_in_every_group():
    schedule = a06.compare_schedules_of(a06.COMPARE)["step decay"]
    lrs, losses = a06.reference_compare_run(schedule, 0, a06.COMPARE_STEPS)
    model, loss_fn, optimizer = a06.compare_setup(0)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = 0.4
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.3)
    mine = []
    for _ in range(a06.COMPARE_STEPS):
        assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(lrs[len(mine)])
        optimizer.zero_grad()
        loss = loss_fn(model)
        loss.backward()
        optimizer.step()
        scheduler.step()
        mine.append(loss.item())
    np.testing.assert_allclose(mine, losses, rtol=1e-6)
