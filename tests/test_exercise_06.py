"""Assignment 06-schedules: its references, the SGDR diagnosis, the grading of the loop.

The references are ``descent.schedules`` (each tested against ``torch.optim.lr_scheduler`` in
``test_schedules.py``); here they are checked once more against torch at the boundaries the
assignment grades, and the grader's training loop against a loop driven by torch's own
scheduler. The notebook and its mistake corpus run in process in ``test_grading.py``, the
nbgrader round trip in ``test_nbgrader_roundtrip.py`` (both for every assignment).
"""

from __future__ import annotations

import math

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



