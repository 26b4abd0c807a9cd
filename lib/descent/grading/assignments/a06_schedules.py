"""Checks for assignment 06-schedules: four schedules as functions of the step, and a run.

Chapter 6. Step 0 is the first optimizer step (torch's ``last_epoch``); the references are
the library's closed forms (:mod:`descent.schedules`, each tested against
``torch.optim.lr_scheduler`` or the paper):

.. math::

    \\eta_t &= \\begin{cases} \\eta\\, t/W & t < W \\\\
        \\eta_{min} + \\tfrac12(\\eta - \\eta_{min})\\bigl(1 + \\cos\\pi\\tfrac{t-W}{T-W}\\bigr)
        & W \\le t \\le T \\\\ \\eta_{min} & t > T \\end{cases}
        && \\text{(warmup + cosine, ``WarmupCosine``)}\\\\
    \\eta_t &= \\eta\\,\\gamma^{\\lfloor t/s \\rfloor}
        && \\text{(step decay, ``StepDecay``)}\\\\
    \\eta_t &= \\eta\\,\\min\\bigl(n/W, \\sqrt{W/n}\\bigr),\\ n = t + 1
        && \\text{(inverse square root, ``InverseSqrt``)}\\\\
    \\eta_t &= \\eta_{min} + \\tfrac12(\\eta - \\eta_{min})\\bigl(1 + \\cos(\\pi T_{cur}/T_i)\\bigr)
        && \\text{(SGDR, ``WarmRestarts``)}

:func:`descent.grading.check_schedule` names a curve shifted by one step and a cosine that
stops short of its minimum; this module adds the SGDR restart off by one (a cycle of
T_i + 1 steps, or the restart step still inside the old cycle), which is not a shift of the
whole curve.

The training run (part 6.5) grades the student's loop: the grader builds a fresh model, data
and ``torch.optim.SGD`` (μ = 0.9), calls the student's ``train`` with the student's
warmup-cosine schedule, and records every ``optimizer.step()`` itself: the learning rate the
step used and the loss at the parameters it started from (never the numbers ``train``
returns). The reference is the same loop run by the grader with the library's schedule.
When the student's schedule fails part 6.1, the run uses the reference schedule instead
(with a note), so a schedule mistake is charged once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from descent.grading import sandbox, training
from descent.grading.compare import TOL64, allclose, close
from descent.grading.explore import answered, being_graded  # noqa: F401 - explore cells
from descent.grading.feedback import PASS, Verdict, fail, passed
from descent.grading.schedules import judge_schedule, run_schedule

PART_WARMUP_COSINE = ("6.1", "eq. (warmup + cosine): η t/W for t < W, then a cosine from η at "
                      "step W to η_min at step T")
PART_STEP = ("6.2", "eq. (step decay), η_t = η γ^⌊t/s⌋")
PART_INVSQRT = ("6.3", "eq. (inverse sqrt), η_t = η min(n/W, √(W/n)) with n = t + 1")
PART_SGDR = ("6.4", "eq. (SGDR), η_t = η_min + ½(η − η_min)(1 + cos(π T_cur/T_i)), "
             "T_i = T_0 T_mult^i")
PART_TRAIN = ("6.5", "a training run: step t uses η_t, set before optimizer.step()")
PART_COMPARE = ("6.6", "constant, step decay and cosine over seeds: step t of every run uses "
                "η_t in every param group")


def _schedules():
    import descent.schedules as schedules
    return schedules


def reference(kind: str, **hyper) -> Callable[[int], float]:
    """The library's schedule for the assignment's keyword names."""
    s = _schedules()
    if kind == "warmup_cosine":
        return s.WarmupCosine(hyper["lr"], hyper["warmup_steps"], hyper["total_steps"],
                              hyper.get("eta_min", 0.0))
    if kind == "step_decay":
        return s.StepDecay(hyper["lr"], hyper["step_size"], hyper.get("gamma", 0.1))
    if kind == "inverse_sqrt":
        return s.InverseSqrt(hyper["lr"], hyper["warmup_steps"])
    if kind == "sgdr":
        return s.WarmRestarts(hyper["lr"], hyper["T_0"], hyper.get("T_mult", 1),
                              hyper.get("eta_min", 0.0))
    raise ValueError(f"kind must be one of warmup_cosine, step_decay, inverse_sqrt, sgdr; "
                     f"got {kind!r}")


# -- SGDR's own mistakes: the restart off by one ------------------------------------------------

def sgdr_variant(t: int, *, lr, T_0, T_mult=1, eta_min=0.0, mistake: str) -> float:
    """SGDR with a known restart mistake.

    ``"late"``: each cycle lasts T_i + 1 steps, T_cur = 0 … T_i (the cosine reaches η_min, the
    restart comes one step later); ``"strict"``: the restart test is ``T_cur > T_i`` instead
    of ``>=``, so the restart step still shows the end of the old cycle, η_min.
    """
    t_cur, t_i = t, T_0
    if mistake == "late":
        while t_cur > t_i:
            t_cur, t_i = t_cur - t_i - 1, t_i * T_mult
    else:
        while t_cur > t_i:
            t_cur, t_i = t_cur - t_i, t_i * T_mult
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


def _sgdr_mistakes(hyper: dict[str, Any]) -> list:
    """SGDR's restart off by one, both ways (variants for ``judge_schedule``)."""
    explain = ("the SGDR restart is off by one: a cycle of T_i steps covers T_cur = 0 … "
               "T_i − 1; at T_cur = T_i the next cycle starts, so restart when T_cur >= T_i "
               "(not > T_i), and do not let the cosine reach T_cur = T_i")
    return [("sgdr-restart-off-by-one", explain,
             functools.partial(sgdr_variant, **hyper, mistake=mistake))
            for mistake in ("late", "strict")]


def warmup_cosine_variant(t: int, *, lr, warmup_steps, total_steps, eta_min=0.0,
                          hold: bool) -> float:
    """The cosine divided by T − W + 1 (it never reaches π): ``hold=False`` clips t at T (the
    schedule stays above η_min for ever), ``hold=True`` returns η_min from step T on."""
    if t < warmup_steps:
        return lr * t / warmup_steps
    if hold and t >= total_steps:
        return eta_min
    progress = min(t - warmup_steps, total_steps - warmup_steps) / (
        total_steps - warmup_steps + 1)
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * progress)) / 2


def _warmup_cosine_mistakes(hyper: dict[str, Any]) -> list:
    total = hyper["total_steps"]
    fix = ("The cosine's argument must reach π exactly at step T: π·(t − W)/(T − W), not "
           "π·(t − W)/(T − W + 1)")
    return [("cosine-short", f"the cosine does not reach its minimum: at step T = {total} "
             f"your schedule is still above η_min = {hyper.get('eta_min', 0.0)} and never goes "
             f"that low. {fix}", functools.partial(warmup_cosine_variant, **hyper, hold=False)),
            ("cosine-short", "the cosine's argument falls short of π: at step T − 1 your "
             "schedule is higher than the reference's, then jumps to η_min at T. " + fix,
             functools.partial(warmup_cosine_variant, **hyper, hold=True))]


# -- one check per schedule ---------------------------------------------------------------------

BOUNDARY = {"warmup_cosine": "a warmup boundary off by one",
            "step_decay": "a decay boundary off by one (t // s, the decay happens at t = s)",
            "inverse_sqrt": "the paper's 1-based step n = t + 1 mixed up with t",
            "sgdr": "a restart off by one"}
MISTAKES = {"sgdr": _sgdr_mistakes, "warmup_cosine": _warmup_cosine_mistakes}


def judge(kind: str, hyper: dict[str, Any], got: sandbox.Outcome, steps: int,
          fn_name: str) -> Verdict:
    """Trusted: the student's values against the library's (float32 rounding accepted first),
    then the named mistakes, each only when it reproduces the values."""
    ref = reference(kind, **hyper)
    mistakes = MISTAKES[kind](hyper) if kind in MISTAKES else ()
    verdict = judge_schedule(ref, steps, got, fn_name=fn_name, mistakes=mistakes)
    if verdict.ok:
        return PASS
    message = verdict.message.replace("a warmup boundary off by one", BOUNDARY[kind])
    settings = ", ".join(f"{k}={v}" for k, v in hyper.items())
    return fail(f"{message} (with {settings})", verdict.mistake)


def check(kind: str, part: tuple[str, str], schedule: Callable,
          settings: Sequence[dict[str, Any]], steps: int | None = None) -> None:
    """``schedule(t, **hyper)`` for t = 0 … steps − 1, for each setting; raise on the first
    difference. ``steps`` defaults to well past the schedule's own length."""
    name = getattr(schedule, "__name__", "your schedule")
    for hyper in settings:
        n = steps or _length(kind, hyper)
        got = run_schedule(functools.partial(schedule, **hyper), n)
        judge(kind, hyper, got, n, name).raise_for(*part)
    passed(part[0], len(settings))


def _length(kind: str, hyper: dict[str, Any]) -> int:
    if kind == "warmup_cosine":
        return hyper["total_steps"] + 5                     # past T: the value is held
    if kind == "step_decay":
        return 4 * hyper["step_size"] + 1
    if kind == "inverse_sqrt":
        return 4 * hyper["warmup_steps"]
    t_i, end = hyper["T_0"], 0
    for _ in range(3):                                       # three cycles and a restart
        end, t_i = end + t_i, t_i * hyper.get("T_mult", 1)
    return end + 2


WARMUP_COSINE = ({"lr": 1.0, "warmup_steps": 5, "total_steps": 20, "eta_min": 0.1},
                 {"lr": 0.3, "warmup_steps": 10, "total_steps": 40, "eta_min": 0.0})
STEP_DECAY = ({"lr": 0.1, "step_size": 5, "gamma": 0.5}, {"lr": 1.0, "step_size": 3, "gamma": 0.1})
INVERSE_SQRT = ({"lr": 1.0, "warmup_steps": 4}, {"lr": 0.01, "warmup_steps": 10})
SGDR = ({"lr": 1.0, "T_0": 5, "T_mult": 1, "eta_min": 0.0},
        {"lr": 0.5, "T_0": 3, "T_mult": 2, "eta_min": 0.05})


def check_warmup_cosine(warmup_cosine: Callable, *, settings=WARMUP_COSINE, steps=None) -> None:
    check("warmup_cosine", PART_WARMUP_COSINE, warmup_cosine, settings, steps)


def check_step_decay(step_decay: Callable, *, settings=STEP_DECAY, steps=None) -> None:
    check("step_decay", PART_STEP, step_decay, settings, steps)


def check_inverse_sqrt(inverse_sqrt: Callable, *, settings=INVERSE_SQRT, steps=None) -> None:
    check("inverse_sqrt", PART_INVSQRT, inverse_sqrt, settings, steps)


def check_sgdr(sgdr: Callable, *, settings=SGDR, steps=None) -> None:
    check("sgdr", PART_SGDR, sgdr, settings, steps)


# -- the training run ---------------------------------------------------------------------------

TRAIN_SCHEDULE = {"lr": 0.2, "warmup_steps": 10, "total_steps": 60, "eta_min": 0.01}
MOMENTUM = 0.9


class MSELoss:
    """``loss_fn(model)``: the mean squared error of ``model`` on the grader's data."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __call__(self, model) -> torch.Tensor:
        return torch.nn.functional.mse_loss(model(self.x), self.y)


class RecordingSGD(torch.optim.SGD):
    """The grader's SGD: each ``step()`` records the lr of every param group and the loss at
    the parameters it starts from (computed by the grader, in ``no_grad``), then steps. The
    grader gives it two groups (the first layer, the rest), so a loop that sets the lr of the
    first group only is seen."""

    def __init__(self, params, loss_fn: MSELoss, model: torch.nn.Module):
        super().__init__(params, lr=0.0, momentum=MOMENTUM)
        self.loss_fn, self.model, self.lrs, self.losses = loss_fn, model, [], []

    def __getstate__(self):          # it crosses to the student's side with what it records
        return {**super().__getstate__(), "loss_fn": self.loss_fn, "model": self.model,
                "lrs": self.lrs, "losses": self.losses}

    def step(self, closure=None):
        with torch.no_grad():
            self.losses.append(float(self.loss_fn(self.model)))
        self.lrs.append([group["lr"] for group in self.param_groups])
        return super().step(closure)


def recorded(optimizer: RecordingSGD, _value=None) -> dict[str, list]:
    """What the grader's optimizer recorded during the student's loop (plain data): the lr of
    each group at each step, and the losses."""
    return {"lrs": [[float(v) for v in step] for step in optimizer.lrs],
            "losses": [float(v) for v in optimizer.losses]}


def lookup(values: list[float], t: int) -> float:
    return values[t]


def _setup(run: training.RunSpec):
    x, y, model = training._data_and_model(run)
    loss_fn = MSELoss(x, y)
    params = list(model.parameters())
    groups = [{"params": params[:2]}, {"params": params[2:]}]
    return model, loss_fn, RecordingSGD(groups, loss_fn, model)


def reference_train(model, loss_fn, optimizer, schedule, steps, *, zero_grad=True):
    """The grader's loop (and, with ``zero_grad=False``, its known mistake)."""
    for t in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = schedule(t)                            # η_t, before step t
        if zero_grad:
            optimizer.zero_grad()
        loss_fn(model).backward()
        optimizer.step()


def check_training(train: Callable, warmup_cosine: Callable, *, seeds: Sequence[int] = (0,),
                   steps: int | None = None) -> None:
    """Re-run the student's ``train(model, loss_fn, optimizer, schedule, steps)`` under the
    grader's control and compare the recorded curve with the reference loop's."""
    part, equation = PART_TRAIN
    hyper = dict(TRAIN_SCHEDULE)
    ref_schedule = reference("warmup_cosine", **hyper)
    steps = steps or hyper["total_steps"]
    own = run_schedule(functools.partial(warmup_cosine, **hyper), steps + 1)
    if judge("warmup_cosine", hyper, own, steps + 1, "warmup_cosine").ok:
        lrs = [float(v) for v in own.value]                      # the student's own values
    else:
        lrs = [ref_schedule(t) for t in range(steps + 1)]
        print("Your warmup_cosine does not pass Part 6.1, so this run uses the reference "
              "schedule to grade your loop (the schedule's points are lost once, in 6.1).")
    # The loop gets a plain lookup of values computed above: it runs with the references
    # forbidden (descent.schedules among them), and the schedule's code has already been run.
    schedule = functools.partial(lookup, lrs)
    name = getattr(train, "__name__", "your function")
    for seed in seeds:
        run = training.RunSpec(seed=seed, steps=steps).resolved()
        model, loss_fn, optimizer = _setup(run)
        out = sandbox.call(train, model, loss_fn, optimizer, schedule, steps,
                           observe=functools.partial(recorded, optimizer))
        _judge_run(out, run, lrs, ref_schedule, steps, name).raise_for(part, equation)
    passed(part, len(seeds))


def _judge_run(out, run: training.RunSpec, given: list[float],
               schedule: Callable[[int], float], steps: int, name: str) -> Verdict:
    """Trusted: each step's lr (``out.observed``: what the grader's optimizer recorded)
    against the values the loop was ``given``, then the recorded loss curve against the
    reference loop driven by the reference ``schedule``."""
    where = f" (grader's run: seed {run.seed}, {steps} steps on {run.device})"
    if out.delegated:
        return fail(f"no points for this part: {name} calls {', '.join(out.delegated)}, the "
                    "reference this part asks you to write.", "delegation")
    if out.error:
        return fail(f"{name} raised {out.error}{where}.", "exception")
    seen = out.observed if isinstance(out.observed, dict) else {}
    try:
        table = np.asarray(seen.get("lrs", []), dtype=float).reshape(-1, 2)
    except ValueError:
        table = np.zeros((0, 2))
    mine = np.asarray(seen.get("losses", []), dtype=float)
    if len(table) != steps:
        return fail(f"{name} called optimizer.step() {len(table)} times; the run has {steps} "
                    f"steps, one optimizer.step() each{where}.", "step-count")
    expected_lrs = np.asarray(given, dtype=float)
    for group in range(table.shape[1]):
        lrs = table[:, group]
        if allclose(lrs, expected_lrs[:steps], TOL64):
            continue
        t = int(np.argmax(~close(lrs, expected_lrs[:steps], TOL64)))
        if group > 0 and allclose(table[:, 0], expected_lrs[:steps], TOL64):
            return fail(f"at optimizer.step() number {t} param group {group} has lr "
                        f"{lrs[t]:.6g}, the schedule gives η_{t} = {expected_lrs[t]:.6g}: the "
                        "grader's optimizer has two param groups and your loop sets the lr of "
                        "the first only. Set group['lr'] = schedule(t) for every group in "
                        f"optimizer.param_groups{where}.", "lr-first-group")
        if allclose(lrs, expected_lrs[1:], TOL64) or allclose(
                lrs[1:], expected_lrs[:steps - 1], TOL64):
            return fail(f"optimizer.step() number {t} used lr {lrs[t]:.6g}, but step {t} must "
                        f"use η_{t} = {expected_lrs[t]:.6g}: your lr is one step off. Set "
                        "every group's lr to schedule(t) *before* optimizer.step() of step t "
                        f"(step 0 uses schedule(0)){where}.", "lr-off-by-one")
        return fail(f"optimizer.step() number {t} used lr {lrs[t]:.6g}, the schedule gives "
                    f"η_{t} = {expected_lrs[t]:.6g}: set group['lr'] = schedule(t) for every "
                    f"param group before the step{where}.", "lr")
    model, loss_fn, ref_opt = _setup(run)
    reference_train(model, loss_fn, ref_opt, schedule, steps)
    expected = np.asarray(ref_opt.losses)
    tol = training.TOLERANCE[run.device]
    rel = np.abs(mine - expected) / np.maximum(np.abs(expected), 1e-12)
    if (rel > tol).any():
        t = int(np.argmax(rel > tol))
        model, loss_fn, acc_opt = _setup(run)
        reference_train(model, loss_fn, acc_opt, schedule, steps, zero_grad=False)
        acc = np.asarray(acc_opt.losses)
        if np.all(np.abs(mine - acc) <= tol * np.maximum(np.abs(acc), 1e-12)):
            return fail("gradients accumulate across steps: call optimizer.zero_grad() before "
                        "each backward(), or every step adds the new gradient to all the old "
                        f"ones (the loss leaves the reference run at step {t}){where}.",
                        "no-zero-grad")
        return fail(f"the loss leaves the reference run at step {t}: expected "
                    f"{expected[t]:.6g}, got {mine[t]:.6g} (relative {rel[t]:.1e} > {tol:g}, "
                    "the tolerance for this device). Each step is: set the lr, zero_grad, "
                    f"loss_fn(model).backward(), optimizer.step(){where}.", "curve")
    if not mine[-1] <= 0.5 * mine[0]:
        return fail(f"the final loss {mine[-1]:.4g} is not below half the initial loss "
                    f"{mine[0]:.4g}{where}.", "final-loss")
    return PASS


# -- 6.6 three schedules over seeds -------------------------------------------------------------

COMPARE_STEPS = 30
COMPARE_SEEDS = (0, 1, 2)
COMPARE = {"constant": ("Constant", {"lr": 0.4}),
           "step decay": ("StepDecay", {"lr": 0.4, "step_size": 10, "gamma": 0.3}),
           "cosine": ("Cosine", {"lr": 0.4, "T_max": 30})}
COMPARE_HIDDEN = {"constant": ("Constant", {"lr": 0.3}),
                  "step decay": ("StepDecay", {"lr": 0.3, "step_size": 7, "gamma": 0.5}),
                  "cosine": ("Cosine", {"lr": 0.3, "T_max": 25, "eta_min": 0.01})}


def compare_setup(seed: int, *, steps: int = COMPARE_STEPS) -> tuple:
    """``(model, loss_fn, optimizer)`` of the grader's run with ``seed``: a fresh network and
    data set (:mod:`descent.grading.training`), and ``torch.optim.SGD`` (μ = 0.9, lr 0 until
    the schedule sets it) with two param groups, the first layer and the rest. A library
    function, so that it crosses to the student's side by name."""
    run = training.RunSpec(seed=int(seed), steps=steps).resolved()
    x, y, model = training._data_and_model(run)
    params = list(model.parameters())
    optimizer = torch.optim.SGD([{"params": params[:2]}, {"params": params[2:]}], lr=0.0,
                                momentum=MOMENTUM)
    return model, MSELoss(x, y), optimizer


def compare_schedules_of(table: dict) -> dict:
    """``{name: schedule}`` of the library's schedules (``descent.schedules``) in ``table``."""
    s = _schedules()
    return {name: getattr(s, kind)(**hyper) for name, (kind, hyper) in table.items()}


def reference_compare_run(schedule: Callable, seed: int, steps: int, *,
                          zero_grad: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Trusted: the lr of each group at each step, and the loss before each step, of the
    reference loop on a fresh :func:`compare_setup` (``zero_grad=False``: a known mistake)."""
    model, loss_fn, optimizer = compare_setup(seed, steps=steps)
    lrs, losses = [], []
    for t in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = schedule(t)                            # η_t, before step t
        lrs.append([group["lr"] for group in optimizer.param_groups])
        if zero_grad:
            optimizer.zero_grad()
        loss = loss_fn(model)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return np.asarray(lrs, dtype=float), np.asarray(losses)


def _judge_lrs(lrs: np.ndarray, expected: np.ndarray, where: str) -> Verdict:
    """Each group's lr at each step against η_t (the first difference, named if known)."""
    for group in range(lrs.shape[1]):
        got = lrs[:, group]
        if allclose(got, expected, TOL64):
            continue
        t = int(np.argmax(~close(got, expected, TOL64)))
        if group > 0 and allclose(lrs[:, 0], expected, TOL64):
            return fail(f"at step {t} param group {group} has lr {got[t]:.6g}, the schedule "
                        f"gives η_{t} = {expected[t]:.6g}: the optimizer has two param groups "
                        "and you set the first only. Set group['lr'] = schedule(t) for every "
                        f"group in optimizer.param_groups{where}.", "lr-first-group")
        if allclose(got[1:], expected[:-1], TOL64) or allclose(got[:-1], expected[1:], TOL64):
            return fail(f"at step {t} the lr is {got[t]:.6g}, but step {t} uses η_{t} = "
                        f"{expected[t]:.6g}: your lrs are one step off. Set every group's lr "
                        f"to schedule(t) before optimizer.step() of step t, and record it "
                        f"then{where}.", "lr-off-by-one")
        return fail(f"at step {t} param group {group} has lr {got[t]:.6g}, the schedule gives "
                    f"η_{t} = {expected[t]:.6g}: record [group['lr'] for group in "
                    "optimizer.param_groups] right after setting them to schedule(t)"
                    f"{where}.", "lr")
    return PASS


def judge_compare(got: sandbox.Outcome, schedules: dict, seeds: Sequence[int], steps: int,
                  name: str) -> Verdict:
    """Trusted: the student's ``{schedule: {seed: {"lrs", "losses"}}}`` against the reference
    loop, run here on the same device with the same seeds."""
    device = training.RunSpec().resolved().device
    where = f" (grader's runs: {steps} steps on {device}, seeds {list(seeds)})"
    if got.delegated:
        return fail(f"no points for this part: {name} calls {', '.join(got.delegated)}, the "
                    "reference this part asks you to write.", "delegation")
    if got.error:
        return fail(f"{name} raised {got.error}{where}.", "exception")
    value = got.value
    if not isinstance(value, dict) or set(value) != set(schedules):
        keys = sorted(map(str, value)) if isinstance(value, dict) else type(value).__name__
        return fail(f"{name} must return a dict keyed by the schedules' names "
                    f"{sorted(schedules)}; got {keys}{where}.", "wrong-structure")
    tol = training.TOLERANCE[device]
    for label, schedule in schedules.items():
        runs = value[label]
        if not isinstance(runs, dict) or set(runs) != set(seeds):
            keys = sorted(runs, key=str) if isinstance(runs, dict) else type(runs).__name__
            return fail(f"the runs of {label!r} are keyed by {keys}, but the seeds are "
                        f"{sorted(seeds)}: train one run per seed in `seeds`, on setup(seed), "
                        f"and key it by the seed itself{where}.", "seeds")
        for seed in seeds:
            at = f" ({label!r}, seed {seed})"
            run = runs[seed]
            try:
                lrs = np.asarray(run["lrs"], dtype=float)
                losses = np.asarray(run["losses"], dtype=float)
            except (TypeError, KeyError, ValueError, IndexError):
                return fail(f"each run must be a dict {{'lrs': [[lr of each param group] per "
                            "step], 'losses': [loss per step]}}; the run of"
                            f"{at} is not{where}.", "wrong-structure")
            expected_lrs, expected = reference_compare_run(schedule, seed, steps)
            if lrs.shape != expected_lrs.shape or losses.shape != expected.shape:
                return fail(f"the run of{at} has lrs of shape {lrs.shape} and losses of shape "
                            f"{losses.shape}; expected {expected_lrs.shape} (one row per step, "
                            f"one lr per param group) and {expected.shape}{where}.", "shape")
            verdict = _judge_lrs(lrs, expected_lrs[:, 0], at + where)
            if not verdict.ok:
                return verdict
            rel = np.abs(losses - expected) / np.maximum(np.abs(expected), 1e-12)
            if not (rel > tol).any():
                continue
            t = int(np.argmax(rel > tol))
            if t == 0:
                return fail(f"the first loss of{at} is {losses[0]:.6g}, but a fresh "
                            f"setup({seed}) starts at {expected[0]:.6g}: each (schedule, seed) "
                            "run starts from its own fresh model and optimizer, "
                            f"setup(seed){where}.", "not-fresh")
            _, accumulated = reference_compare_run(schedule, seed, steps, zero_grad=False)
            if np.all(np.abs(losses - accumulated) <= tol * np.maximum(np.abs(accumulated),
                                                                       1e-12)):
                return fail("gradients accumulate across steps: call optimizer.zero_grad() "
                            "before each backward(), or every step adds the new gradient to "
                            f"all the old ones (the loss of{at} leaves the reference at step "
                            f"{t}){where}.", "no-zero-grad")
            return fail(f"the loss of{at} leaves the reference run at step {t}: expected "
                        f"{expected[t]:.6g}, got {losses[t]:.6g} (relative {rel[t]:.1e} > "
                        f"{tol:g}). Each step: set the lrs, record them, zero_grad, "
                        f"loss = loss_fn(model), backward, optimizer.step(); record the loss "
                        f"before the step{where}.", "curve")
    return PASS


def check_compare(compare_schedules: Callable, *, table: dict | None = None,
                  seeds: Sequence[int] = COMPARE_SEEDS, steps: int = COMPARE_STEPS) -> None:
    """Run the student's ``compare_schedules(setup, schedules, seeds, steps)`` with the
    grader's :func:`compare_setup` and the library's schedules (not the student's: a mistake
    in 6.1-6.4 costs those parts only), and compare every run with the reference loop."""
    part, equation = PART_COMPARE
    schedules = compare_schedules_of(table or COMPARE)
    setup = functools.partial(compare_setup, steps=steps)
    name = getattr(compare_schedules, "__name__", "your function")
    # The loop runs the grader's torch.optim.SGD (built by setup on the student's side) and
    # calls the library's schedules: both are inputs here, not answers.
    with sandbox.forbidding(allow=("torch.optim", "descent.schedules")):
        got = sandbox.call(compare_schedules, setup, schedules, list(seeds), steps)
    judge_compare(got, schedules, seeds, steps, name).raise_for(part, equation)
    passed(part, len(schedules) * len(seeds))


__all__ = ["check_warmup_cosine", "check_step_decay", "check_inverse_sqrt", "check_sgdr",
           "check_training", "reference", "sgdr_variant", "reference_train", "RecordingSGD",
           "being_graded", "check_compare", "compare_setup", "compare_schedules_of"]
