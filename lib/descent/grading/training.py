"""Training-run checks: the grader re-runs the student's optimizer itself.

A student's reported losses are never read. :func:`run_training` builds a fresh model and a
fixed data set from the grader's seeds, on the best available device, and trains it with the
optimizer the student's factory returns (references forbidden while the student's code runs:
construction, ``step`` and ``zero_grad``). :func:`judge_training` runs the reference optimizer
the same way on the same device and compares the two loss curves step by step, then applies a
final-loss threshold.

Size: on the CPU a run is a 2-layer MLP on 256 examples for 60 full-batch steps, about 0.05 s,
so a few runs per assignment stay far below the 8 s budget. With CUDA and
``NBGRADER_EXECUTION`` set (nbgrader is grading), runs are 8× wider and 4× longer.

Tolerance per device, on the relative difference of each step's loss:

- CPU, float32, one thread (see :mod:`descent.grading._determinism`): the student's run and the
  reference run execute the same forward/backward kernels on the same data; they differ only
  by the rounding of the update, ~1e-7 relative per step, grown over 60 steps of a contracting
  problem. Measured ≤ 1e-6 for correct rewrites; the tolerance is 1e-4.
- CUDA: matmuls and reductions may pick other kernels between runs (TF32 is switched off for
  the run); 1e-3.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from descent.grading import sandbox
from descent.grading.feedback import PASS, Verdict, fail, passed

TOLERANCE = {"cpu": 1e-4, "cuda": 1e-3, "mps": 1e-3}


def best_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def graded_on_cuda(device: str) -> bool:
    """True while nbgrader grades (``NBGRADER_EXECUTION``) on a CUDA device: runs grow there."""
    return device == "cuda" and bool(os.environ.get("NBGRADER_EXECUTION"))


@dataclass(frozen=True)
class RunSpec:
    """The grader's run: seeds, sizes, device. ``graded_scale`` applies on CUDA when grading."""

    seed: int = 0
    steps: int = 60
    width: int = 16
    examples: int = 256
    features: int = 8
    device: str | None = None
    zero_grad_to_none: bool = True    # False: gradients are zeroed in place, as torch allows

    def resolved(self) -> RunSpec:
        device = self.device or best_device().type
        if graded_on_cuda(device):
            return dataclasses.replace(self, steps=self.steps * 4, width=self.width * 8,
                                       examples=self.examples * 8, device=device)
        return dataclasses.replace(self, device=device)


def _data_and_model(run: RunSpec):
    gen = torch.Generator().manual_seed(run.seed)
    x = torch.randn(run.examples, run.features, generator=gen)
    w = torch.randn(run.features, 1, generator=gen)
    y = torch.tanh(x @ w) + 0.1 * torch.randn(run.examples, 1, generator=gen)
    torch.manual_seed(run.seed + 1)
    model = torch.nn.Sequential(torch.nn.Linear(run.features, run.width), torch.nn.Tanh(),
                                torch.nn.Linear(run.width, 1))
    return x.to(run.device), y.to(run.device), model.to(run.device)


def train_losses(make_optimizer: Callable, run: RunSpec) -> list[float]:
    """Train a fresh model of ``run`` with ``make_optimizer(model.parameters())``; the loss
    before each step. The student's optimizer runs here on the student's side: the data and
    the model are built there from the run's seeds."""
    torch.backends.cuda.matmul.allow_tf32 = False
    x, y, model = _data_and_model(run)
    optimizer = make_optimizer(model.parameters())
    out: list[float] = []
    for _ in range(run.steps):
        optimizer.zero_grad(set_to_none=run.zero_grad_to_none)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        out.append(float(loss.detach()))
    return out


def grouped(cls: Callable, second: dict, params, **first) -> torch.optim.Optimizer:
    """``cls`` with two param groups: the first layer with the keywords ``first``, the rest
    with ``second`` on top of them (a library function, so that it crosses to the student's
    side by name: ``functools.partial(grouped, MyOptimizer, {...}, lr=…)``)."""
    params = list(params)
    return cls([{"params": params[:2]}, {"params": params[2:], **second}], **first)


def losses(make_optimizer: Callable, run: RunSpec, *, untrusted: bool) -> sandbox.Outcome:
    """The loss curve of ``make_optimizer`` in the grader's run (resolved to its device)."""
    run = run.resolved()
    if untrusted:
        result = sandbox.call(train_losses, make_optimizer, run)
        if result.ok:
            result.value = np.asarray(result.value, dtype=float)
        return result
    return sandbox.Outcome(np.asarray(train_losses(make_optimizer, run)))


def run_training(make_optimizer: Callable, run: RunSpec = RunSpec()) -> sandbox.Outcome:
    """Untrusted: the loss curve of the student's optimizer in the grader's run."""
    return losses(make_optimizer, run, untrusted=True)


def judge_training(reference: Callable, got: sandbox.Outcome, run: RunSpec = RunSpec(), *,
                   final_loss_ratio: float = 0.5) -> Verdict:
    """Trusted: the reference optimizer's curve on the same device; step-wise tolerance, then
    the final loss must be below ``final_loss_ratio`` × the initial loss."""
    if got.delegated:
        return fail(f"no points for this part: your optimizer calls {', '.join(got.delegated)}, "
                    "the reference it should implement.", "delegation")
    if got.error:
        return fail(f"the training run with your optimizer raised {got.error}.", "exception")
    device = run.resolved().device
    expected = losses(reference, run, untrusted=False).value
    mine = got.value
    tol = TOLERANCE[device]
    if mine.shape != expected.shape:
        return fail(f"the run recorded {mine.size} losses, expected {expected.size}.", "shape")
    if not np.isfinite(mine).all():
        t = int(np.argmax(~np.isfinite(mine)))
        return fail(f"the loss became {mine[t]} at step {t} of the grader's run on {device}; "
                    f"the reference's loss there is {expected[t]:.6g}.", "non-finite")
    rel = np.abs(mine - expected) / np.maximum(np.abs(expected), 1e-12)
    if (rel > tol).any():
        t = int(np.argmax(rel > tol))
        return fail(f"the loss curve leaves the reference run at step {t} on {device}: expected "
                    f"{expected[t]:.6g}, got {mine[t]:.6g} (relative {rel[t]:.1e} > {tol:g}, "
                    "the tolerance for this device).", "curve")
    if not mine[-1] <= final_loss_ratio * mine[0]:
        return fail(f"the final loss {mine[-1]:.4g} is not below {final_loss_ratio:g} × the "
                    f"initial loss {mine[0]:.4g}.", "final-loss")
    return PASS


def check_training_run(make_optimizer: Callable, reference: Callable, *, part: str,
                       equation: str, run: RunSpec = RunSpec(),
                       final_loss_ratio: float = 0.5) -> None:
    """Re-run the student's optimizer and the reference; raise on a difference.

    ``make_optimizer(params)`` and ``reference(params)`` each return a fresh optimizer, e.g.
    ``functools.partial(MyAdam, lr=1e-2)`` and ``functools.partial(torch.optim.Adam,
    lr=1e-2)`` (the student's side gets ``make_optimizer`` by name, so no lambda). For the
    curve itself (a plot), call :func:`run_training`.
    """
    got = run_training(make_optimizer, run)
    judge_training(reference, got, run, final_loss_ratio=final_loss_ratio).raise_for(part,
                                                                                     equation)
    passed(part, len(got.value))
