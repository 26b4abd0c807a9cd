r"""Checks for assignment 08-practice: the LR range test, accumulation, clipping, mixed
precision, and a training loop with planted bugs (chapter 8).

Every part is re-run under the grader's control: its own model, data and seeds; the student's
reported numbers are never read. The references are the library's and torch's:

- 8.1 :func:`descent.lr_finder.lr_range_test` on the same model and batches (float64: the
  two runs make the same training steps, so they agree to rounding, relative 1e-9);
- 8.2 autograd of the mean loss over the concatenated big batch (float64, 1e-9);
- 8.3 ``torch.nn.utils.clip_grad_norm_`` (float64; relative 1e-5, so writing ``‖g‖`` or
  torch's ``‖g‖ + 10⁻⁶`` in the clip coefficient both pass, on gradients of norm ≥ 1);
- 8.4 the same steps under ``torch.autocast`` written by the grader, in the device's own
  dtype (bf16 on the CPU, fp16 on CUDA) and in the other one, through a recording
  ``GradScaler`` that scales on every device (its calls are checked: scale, step, update),
  loss curves within 1e-4 (CPU) / 1e-3 (CUDA) per step, where float32 differs from bf16 by
  more than 1e-3 (measured);
- 8.5 the bug-free loop (:func:`reference_loop`) on the grader's data (with corrupted rows);
- 8.6 the warmup loop (:func:`reference_warmup_loop`) on the grader's TinyTransformer, same
  seed, data and device: losses and gradient norms within 1e-4 (CPU) / 1e-3 (CUDA) per step.

A difference that matches a known variant is named (the variants are the reference with one
switch flipped; with every switch off each equals its reference, which the tests check).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from descent.grading import sandbox
from descent.grading.compare import TOL64, Tolerance, allclose, first_difference
from descent.grading.explore import answered, being_graded  # noqa: F401 - explore cells
from descent.grading.feedback import PASS, Verdict, fail, passed
from descent.grading.training import TOLERANCE, best_device

PART_RANGE = ("8.1", "the LR range test: η_i = η_min(η_max/η_min)^{i/(N−1)}, EMA ℓ̂_i, stop")
PART_ACCUM = ("8.2", "accumulation: Σ_i (n_i/N) ∇L_i = ∇ of the big batch's mean loss")
PART_CLIP = ("8.3", "clipping by global norm, g ← g·min(1, c/‖g‖)")
PART_AMP = ("8.4", "a mixed-precision step (autocast, then the GradScaler's scale, step, "
                   "update)")
PART_DEBUG = ("8.5", "the fixed training loop against the bug-free reference")


def _name(fn) -> str:
    return getattr(fn, "__name__", "your function")


def _raise_if_failed(out: sandbox.Outcome, name: str, part, where: str = "") -> None:
    if out.delegated:
        fail(f"no points for this part: {name} calls {', '.join(out.delegated)}, the "
             "reference this part asks you to write yourself.", "delegation").raise_for(*part)
    if out.error:
        fail(f"{name} raised {out.error}{where}.", "exception").raise_for(*part)


_CLIP_KERNELS = tuple(("torch.nn.utils.clip_grad", f"{name}.__wrapped__")
                      for name in ("clip_grad_norm_", "_get_total_norm",
                                   "_clip_grads_with_norm_"))


def _library_forbidden():
    """The library's and torch's answers to this assignment are references too."""
    return sandbox.forbidding({"descent.lr_finder": None, "descent.train": ("train",)},
                              functions=_CLIP_KERNELS)


def _optimizers_allowed():
    """Within the block a student's loop may build torch.optim optimizers and schedulers."""
    return sandbox.forbidding(allow=("torch.optim", "torch.optim.lr_scheduler"))


def mlp(seed: int, dtype=torch.float64, features: int = 8, width: int = 16, out: int = 1):
    torch.manual_seed(seed + 1000)
    return torch.nn.Sequential(torch.nn.Linear(features, width, dtype=dtype), torch.nn.Tanh(),
                               torch.nn.Linear(width, out, dtype=dtype))


def regression(seed: int, n: int, dtype=torch.float64, features: int = 8):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=gen, dtype=dtype)
    w = torch.randn(features, 1, generator=gen, dtype=dtype)
    return x, torch.tanh(x @ w) + 0.1 * torch.randn(n, 1, generator=gen, dtype=dtype)


# -- 8.1 the LR range test -----------------------------------------------------------------

def _range_setup(seed: int, batches: int = 8, size: int = 32):
    model = mlp(seed)
    x, y = regression(seed, batches * size)
    data = [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    return model, optimizer, data


class GraderTrainStep:
    """``train_step(lr) -> loss``: one SGD step of the grader's model on its next batch (a
    class, so that it crosses to the student's side by name and data)."""

    def __init__(self, seed: int):
        self.model, self.optimizer, self.data = _range_setup(seed)
        self.calls = 0

    def __call__(self, lr: float) -> float:
        x, y = self.data[self.calls % len(self.data)]
        self.calls += 1
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.mse_loss(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def grader_train_step(seed: int) -> Callable[[float], float]:
    """``train_step(lr) -> loss``: one SGD step of the grader's model on its next batch."""
    return GraderTrainStep(seed)


def reference_range_test(seed: int, **kw) -> tuple[list, list, list]:
    """:func:`descent.lr_finder.lr_range_test` on the grader's model: (lrs, losses, smoothed)."""
    from descent.lr_finder import lr_range_test
    model, optimizer, data = _range_setup(seed)
    result = lr_range_test(model, optimizer, data, loss_fn=F.mse_loss, device="cpu", **kw)
    return result.lrs, result.losses, result.smoothed


def range_test_variant(train_step, *, min_lr, max_lr, steps, beta=0.98, diverge=4.0,
                       linear=False, endpoint=True, bias_correction=True, stop=True,
                       record_last=True):
    """The range test (all switches default: the reference) or a known mistake."""
    lrs, losses, smoothed = [], [], []
    avg, best = 0.0, math.inf
    for i in range(steps):
        frac = i / (steps - 1) if endpoint else i / steps
        lr = (min_lr + (max_lr - min_lr) * frac if linear
              else min_lr * (max_lr / min_lr) ** frac)                 # η_i
        loss = train_step(lr)
        avg = beta * avg + (1 - beta) * loss                           # a_i
        smooth = avg / (1 - beta ** (i + 1)) if bias_correction else avg   # ℓ̂_i
        bad = not math.isfinite(smooth) or smooth > diverge * best
        if stop and bad and not record_last:
            break
        lrs.append(lr)
        losses.append(loss)
        smoothed.append(smooth)
        if stop and bad:
            break
        best = min(best, smooth)
    return lrs, losses, smoothed


RANGE_MISTAKES = (
    ("linear-ramp", "your learning rates grow linearly; the range test sweeps them "
     "exponentially, η_i = η_min·(η_max/η_min)^{i/(N−1)}, so each decade gets as many steps",
     {"linear": True}),
    ("ramp-misses-max", "your ramp never reaches η_max: the exponent is i/N; with "
     "i/(N−1) the last of the N steps uses η_max itself", {"endpoint": False}),
    ("ema-no-bias-correction", "the smoothed loss is not bias-corrected: with a_{−1} = 0 the "
     "average starts near 0 (ℓ̂_0 = (1−β)ℓ_0). Divide by 1 − β^{i+1}: ℓ̂_i = a_i/(1 − β^{i+1})",
     {"bias_correction": False}),
    ("no-divergence-stop", "the test does not stop when the loss diverges: stop after the "
     "first step whose smoothed loss is above k·min_{j<i} ℓ̂_j (or not finite)", {"stop": False}),
    ("diverging-step-dropped", "the step that diverged is not recorded: append η_i, ℓ_i and "
     "ℓ̂_i first, then stop", {"record_last": False}),
)


def _as_lists(value) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
    try:
        lrs, losses, smoothed = value
        return tuple(np.asarray(v, dtype=float).ravel() for v in (lrs, losses, smoothed))
    except (TypeError, ValueError):
        return f"it must return three lists (lrs, losses, smoothed), got {type(value).__name__}"


def _same_run(got, expected, tol) -> bool:
    return all(allclose(g, np.asarray(e, float), tol) for g, e in zip(got, expected,
                                                                      strict=True))


def check_range_test(lr_range_test: Callable, *, seeds: Sequence[int] = (0,),
                     settings: Sequence[dict] = (
                         {"min_lr": 1e-4, "max_lr": 10.0, "steps": 60},
                         {"min_lr": 1e-5, "max_lr": 30.0, "steps": 80, "beta": 0.9,
                          "diverge": 1.5})) -> None:
    """The rates, losses and smoothed losses against :func:`reference_range_test`. The second
    setting moves ``beta`` and ``diverge`` off their defaults (with k = 1.5 the grader's run
    stops two steps before it would with k = 4)."""
    part, name = PART_RANGE, _name(lr_range_test)
    checks = 0
    for seed in seeds:
        for kw in settings:
            where = f" (grader's MLP, seed {seed}, {kw})"
            with _library_forbidden():
                out = sandbox.call(lr_range_test, grader_train_step(seed), **kw)
            _raise_if_failed(out, name, part, where)
            got = _as_lists(out.value)
            if isinstance(got, str):
                fail(f"{name}: {got}.", "wrong-type").raise_for(*part)
            expected = reference_range_test(seed, **kw)
            if _same_run(got, expected, TOL64):
                checks += 1
                continue
            for mistake, explain, flags in RANGE_MISTAKES:
                variant = range_test_variant(grader_train_step(seed), **kw, **flags)
                if _same_run(got, variant, TOL64):
                    fail(f"{explain}{where}.", mistake).raise_for(*part)
            for label, g, e in zip(("rates", "losses", "smoothed losses"), got, expected,
                                   strict=True):
                verdict = first_difference(g, e, TOL64, what=f"list of {label}", rows="step")
                if not verdict.ok:
                    fail(f"{verdict.message}{where}", verdict.mistake).raise_for(*part)
    passed(part[0], checks)


# -- 8.2 gradient accumulation -------------------------------------------------------------

def _accum_setup(seed: int, sizes: Sequence[int]):
    model = mlp(seed)
    x, y = regression(seed, sum(sizes))
    bounds = np.cumsum([0, *sizes])
    micro = [(x[a:b], y[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    stale_x, stale_y = regression(seed + 500, 16)
    F.mse_loss(model(stale_x), stale_y).backward()     # last step's gradients, still there
    return model, micro, (x, y)


def _grads(model) -> np.ndarray:
    return torch.cat([p.grad.detach().reshape(-1) for p in model.parameters()]).numpy()


def _grads_left(params) -> list:
    """What a student's function left in each ``p.grad`` (None where it has none)."""
    return [None if p.grad is None else p.grad.detach().clone() for p in params]


def reference_accumulated(seed: int, sizes: Sequence[int]) -> tuple[np.ndarray, float, np.ndarray]:
    """(∇ of the big batch's mean loss, that loss, the stale gradients left before)."""
    model, _, (x, y) = _accum_setup(seed, sizes)
    stale = _grads(model).copy()
    model.zero_grad(set_to_none=True)
    loss = F.mse_loss(model(x), y)
    loss.backward()
    return _grads(model), float(loss.detach()), stale


def _model_grads_left(model, _value=None) -> list:
    return _grads_left(model.parameters())


def check_accumulation(accumulate_gradients: Callable, *, seeds: Sequence[int] = (0,),
                       sizes: Sequence[Sequence[int]] = ((16, 16, 16),)) -> None:
    part, name = PART_ACCUM, _name(accumulate_gradients)
    checks = 0
    for seed in seeds:
        for split in sizes:
            where = f" (micro-batches of sizes {list(split)}, seed {seed})"
            model, micro, _ = _accum_setup(seed, split)
            with _library_forbidden():
                out = sandbox.call(accumulate_gradients, model, F.mse_loss, micro,
                                   observe=functools.partial(_model_grads_left, model))
            _raise_if_failed(out, name, part, where)
            grads = out.observed or [None]
            if any(g is None for g in grads):
                fail(f"after {name} some parameters have no gradient{where}: accumulate "
                     "with backward() into p.grad.", "no-grad").raise_for(*part)
            got = np.concatenate([np.asarray(g, dtype=float).reshape(-1) for g in grads])
            expected, loss, stale = reference_accumulated(seed, split)
            k = len(split)
            known = {"no-zero-grad": (expected + stale, "the gradients of the previous step are "
                     "still in p.grad: call optimizer.zero_grad() (or model.zero_grad()) before "
                     "the first backward, since backward() adds to p.grad"),
                     "no-rescale": (k * expected, f"your gradient is {k} times the big batch's: "
                     "each backward() adds a full mean-loss gradient; scale each micro-batch's "
                     "loss by n_i/N before backward()"),
                     "no-rescale-no-zero-grad": (k * expected + stale, "the loss is not rescaled "
                     "(the gradient is k times too large) and the old gradients were not zeroed "
                     "first (call zero_grad() before accumulating)")}
            if len(set(split)) > 1:
                model2, micro2, _ = _accum_setup(seed, split)
                model2.zero_grad(set_to_none=True)
                for x, y in micro2:
                    (F.mse_loss(model2(x), y) / k).backward()
                known["divide-by-k"] = (_grads(model2), "dividing each micro-batch's loss by "
                                        "k is right only when all micro-batches have the same "
                                        "size; weight each by n_i/N (its share of the examples)")
            if allclose(got, expected, TOL64):
                try:
                    value = float(out.value)
                except (TypeError, ValueError):
                    fail(f"{name} returned {type(out.value).__name__}; it must return the big "
                         f"batch's mean loss, {loss:.10g} = Σ_i (n_i/N)·L_i, as a number{where}.",
                         "loss").raise_for(*part)
                if not math.isclose(value, loss, rel_tol=1e-9):
                    fail(f"{name} returned the loss {value:.10g}; the big batch's mean "
                         f"loss is {loss:.10g}: return Σ_i (n_i/N)·L_i{where}.", "loss"
                         ).raise_for(*part)
                checks += 1
                continue
            for mistake, (variant, explain) in known.items():
                if allclose(got, variant, TOL64):
                    fail(f"{explain}{where}.", mistake).raise_for(*part)
            verdict = first_difference(got, expected, TOL64, what="accumulated gradient")
            fail(f"{verdict.message}{where}", verdict.mistake).raise_for(*part)
    passed(part[0], checks)


# -- 8.3 clipping by global norm -----------------------------------------------------------

def _clip_setup(seed: int, scale: float):
    model = mlp(seed)
    x, y = regression(seed, 32)
    F.mse_loss(model(x), y).backward()
    params = list(model.parameters())
    for p in params:
        p.grad.mul_(scale)
    frozen = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))   # a parameter, no grad
    return [*params, frozen]


def _params_and_grads(params, _value=None) -> dict:
    """What clipping left: the parameters and their gradients (read after the call)."""
    return {"params": [p.detach().clone() for p in params], "grads": _grads_left(params)}


def check_clipping(clip_grad_norm: Callable, *, seeds: Sequence[int] = (0,),
                   cases: Sequence[tuple[float, float]] = ((5.0, 1.0), (0.1, 1.0))) -> None:
    """``cases``: (gradient scale, max_norm) pairs, some above and some below the threshold."""
    part, name = PART_CLIP, _name(clip_grad_norm)
    tol = Tolerance(rtol=1e-5, atol=1e-12)
    checks = 0
    for seed in seeds:
        for scale, max_norm in cases:
            params = _clip_setup(seed, scale)
            ref = _clip_setup(seed, scale)
            before = [p.detach().clone() for p in params]
            norm = float(torch.nn.utils.clip_grad_norm_(ref, max_norm))
            where = f" (gradient norm {norm:.4g}, max_norm {max_norm}, seed {seed})"
            with _library_forbidden():
                out = sandbox.call(clip_grad_norm, params, max_norm,
                                   observe=functools.partial(_params_and_grads, params))
            _raise_if_failed(out, name, part, where)
            seen = out.observed or {"params": [], "grads": []}
            if len(seen["params"]) != len(before) or any(
                    not torch.equal(b, p) for b, p in zip(before, seen["params"], strict=True)):
                fail(f"{name} changed the parameters themselves; clip only p.grad{where}.",
                     "mutates-params").raise_for(*part)
            grads = seen["grads"]
            if grads[-1] is not None:
                fail(f"{name} gave a gradient to a parameter that had none{where}: skip "
                     "parameters whose .grad is None.", "grad-none").raise_for(*part)
            if any(g is None for g in grads[:-1]):
                fail(f"{name} removed the gradient of a parameter that had one{where}.",
                     "grad-none").raise_for(*part)
            got = np.concatenate([g.reshape(-1).numpy() for g in grads[:-1]])
            expected = np.concatenate([p.grad.reshape(-1).numpy() for p in ref[:-1]])
            raw = np.concatenate([g.reshape(-1).numpy() for g in
                                  (p.grad for p in _clip_setup(seed, scale)[:-1])])
            if not allclose(got, expected, tol):
                per_tensor = np.concatenate([
                    (p.grad * min(1.0, max_norm / float(p.grad.norm()))).reshape(-1).numpy()
                    for p in _clip_setup(seed, scale)[:-1]])
                if allclose(got, per_tensor, tol):
                    fail("you clip each tensor by its own norm; clipping by *global* norm "
                         "scales every gradient by the same factor min(1, c/‖g‖), with ‖g‖ the "
                         f"norm of all gradients concatenated{where}.", "per-tensor"
                         ).raise_for(*part)
                if allclose(got, raw * max_norm / np.linalg.norm(raw), tol):
                    fail("you rescale the gradient to norm c even when it is smaller: the "
                         f"factor is min(1, c/‖g‖), so small gradients are left alone{where}.",
                         "scales-up").raise_for(*part)
                verdict = first_difference(got, expected, tol, what="clipped gradient")
                fail(f"{verdict.message}{where}", verdict.mistake).raise_for(*part)
            try:
                returned = float(out.value)
            except (TypeError, ValueError):
                returned = math.nan
            if not math.isclose(returned, norm, rel_tol=1e-6):
                hint = (" (that is the norm after clipping)" if math.isclose(
                    returned, min(norm, max_norm), rel_tol=1e-4) else "")
                fail(f"{name} returned {out.value!r}{hint}; return the global norm ‖g‖ "
                     f"*before* clipping, {norm:.6g}, as clip_grad_norm_ does{where}.",
                     "returned-norm").raise_for(*part)
            checks += 1
    passed(part[0], checks)


# -- 8.4 a mixed-precision step ------------------------------------------------------------

class RecordingScaler(torch.amp.GradScaler):
    """The grader's GradScaler: it scales for real, on every device (2¹⁰ on the CPU, where
    torch would leave it off for bf16), and records the calls made of it, so that a step that
    bypasses the scaler is seen even where scaling changes no number.

    A power of two scales and unscales float32 gradients exactly, so the reference's losses
    equal those of an unscaled run: the scaler is visible to the check, not to the numbers.
    """

    def __init__(self, device_type: str = "cpu", init_scale: float = 2.0 ** 10):
        super().__init__(device_type, init_scale=init_scale)
        self.calls: list[str] = []
        self._depth = 0

    def _record(self, name: str, method, *args, **kwargs):
        if not self._depth:
            self.calls.append(name)
        self._depth += 1
        try:
            return method(*args, **kwargs)
        finally:
            self._depth -= 1

    def scale(self, outputs):
        return self._record("scale", super().scale, outputs)

    def unscale_(self, optimizer):
        return self._record("unscale_", super().unscale_, optimizer)

    def step(self, optimizer, *args, **kwargs):
        return self._record("step", super().step, optimizer, *args, **kwargs)

    def update(self, new_scale=None):
        return self._record("update", super().update, new_scale)


def amp_dtypes(device: torch.device) -> tuple[torch.dtype, torch.dtype]:
    """The device's own autocast dtype first (fp16 on CUDA, bf16 on the CPU), then the other
    one: a step that ignores the ``dtype`` it is given runs the device's default."""
    if device.type == "cuda":
        return torch.float16, torch.bfloat16
    return torch.bfloat16, torch.float16


def amp_setting(device: torch.device, dtype: torch.dtype | None = None):
    """(autocast dtype, a fresh recording GradScaler), active on every device (on CUDA with
    torch's default scale 2¹⁶)."""
    dtype = dtype or amp_dtypes(device)[0]
    scale = 2.0 ** 16 if device.type == "cuda" else 2.0 ** 10
    return dtype, RecordingScaler(device.type, init_scale=scale)


def reference_amp_step(model, optimizer, scaler, x, y, *, dtype) -> float:
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=x.device.type, dtype=dtype,
                        enabled=dtype != torch.float32):      # float32: the run without AMP
        loss = F.mse_loss(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def _amp_setup(seed: int, device, *, autocast: bool = True, dtype=None):
    """The grader's float32 MLP, data, SGD and scaler; ``autocast=False``: the fp32 run."""
    torch.backends.cuda.matmul.allow_tf32 = False
    model = mlp(seed, torch.float32, width=64).to(device)
    x, y = (t.float().to(device) for t in regression(seed, 256))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    dtype, scaler = amp_setting(device, dtype)
    if not autocast:
        dtype = torch.float32
    return model, optimizer, scaler, x, y, dtype


def _amp_run(step: Callable, setup, steps: int) -> list[float]:
    model, optimizer, scaler, x, y, dtype = setup
    return [float(step(model, optimizer, scaler, x, y, dtype=dtype)) for _ in range(steps)]


def scaler_calls(setup, _value=None) -> list[str]:
    """What the grader's scaler recorded during the student's steps (read after the call)."""
    return list(setup[2].calls)


def amp_losses(step: Callable, seed: int, steps: int, *, device=None,
               autocast: bool = True, dtype=None) -> list[float]:
    """Trusted: the loss curve of ``step`` on the grader's run (for the reference)."""
    device = torch.device(device) if device else best_device()
    return _amp_run(step, _amp_setup(seed, device, autocast=autocast, dtype=dtype), steps)


def _judge_scaler_calls(calls: list[str], steps: int) -> str | None:
    """What is wrong with the scaler's calls, per step: scale, [unscale_], step, update."""
    expected = ["scale", "step", "update"]
    seen = [c for c in calls if c != "unscale_"]
    if seen == expected * steps:
        return None
    for name, meaning in (("scale", "the loss is not scaled: call `scaler.scale(loss)."
                                    "backward()`, not `loss.backward()`"),
                          ("step", "the optimizer is not stepped through the scaler: call "
                                   "`scaler.step(optimizer)`, which unscales the gradients "
                                   "and skips a step whose gradients overflowed"),
                          ("update", "the scale is never updated: call `scaler.update()` "
                                     "after `scaler.step(optimizer)`")):
        if seen.count(name) != steps:
            return (f"{meaning} (the grader's GradScaler saw {seen.count(name)} call(s) of "
                    f"{name}() in {steps} steps)")
    return (f"the scaler's calls are out of order: each step calls scale(loss), then "
            f"step(optimizer), then update(); the grader's scaler saw {seen[:6]} …")


def check_amp(amp_step: Callable, *, seeds: Sequence[int] = (0,), steps: int = 30) -> None:
    """The losses of the grader's run with ``amp_step`` against the reference step, on the
    same device, in both autocast dtypes (the device's own first), and the calls made of the
    grader's recording GradScaler."""
    part, name = PART_AMP, _name(amp_step)
    device = best_device()
    tol = TOLERANCE[device.type]
    checks = 0
    for seed in seeds:
        for dtype in amp_dtypes(device):
            where = f" (seed {seed}, {device.type}, {dtype})"
            setup = _amp_setup(seed, device, dtype=dtype)
            with _library_forbidden():
                out = sandbox.call(_amp_run, amp_step, setup, steps,
                                   observe=functools.partial(scaler_calls, setup))
            _raise_if_failed(out, name, part, where)
            got = np.asarray(out.value, float)
            expected = np.asarray(amp_losses(reference_amp_step, seed, steps, device=device,
                                             dtype=dtype))
            rel = np.abs(got - expected) / np.abs(expected)
            if not (rel <= tol).all():
                fp32 = np.asarray(amp_losses(reference_amp_step, seed, steps, device=device,
                                             autocast=False))
                if np.allclose(got, fp32, rtol=tol, atol=0):
                    fail("your losses are the float32 run's: the forward pass and the loss must "
                         "run under `torch.autocast(device_type=x.device.type, dtype=dtype)`"
                         + where + ".", "no-autocast").raise_for(*part)
                other = [d for d in amp_dtypes(device) if d != dtype][0]
                if np.allclose(got, amp_losses(reference_amp_step, seed, steps, device=device,
                                               dtype=other), rtol=tol, atol=0):
                    fail(f"asked for {dtype}, your step runs in {other}: pass the dtype it is "
                         "given to `torch.autocast(device_type=x.device.type, dtype=dtype)`"
                         + where + ".", "autocast-dtype").raise_for(*part)
                t = int(np.argmax(rel > tol))
                fail(f"the loss at step {t} is {got[t]:.6g}, the reference's {expected[t]:.6g} "
                     f"(relative {rel[t]:.1e} > {tol:g}): zero the gradients, run the forward "
                     "pass and the loss under autocast, then scaler.scale(loss).backward(), "
                     f"scaler.step(optimizer), scaler.update(){where}.", "curve"
                     ).raise_for(*part)
            calls = out.observed if isinstance(out.observed, list) else []
            problem = _judge_scaler_calls(calls, steps)
            if problem:
                fail(f"{problem}{where}.", "scaler").raise_for(*part)
            checks += steps
    passed(part[0], checks)


# -- 8.5 the training loop with planted bugs -------------------------------------------------

BUGS = {
    "lr": "the learning rate is 5.0 instead of 0.05: the loss explodes within a few steps",
    "zero_grad": "optimizer.zero_grad() is missing: each step adds the new gradient to all "
                 "the old ones",
    "scheduler": "the scheduler is stepped once per epoch instead of once per optimizer step: "
                 "the cosine decays over epochs × batches steps and must be stepped after "
                 "every optimizer.step()",
    "nan": "the corrupted examples (non-finite features) are not removed: one NaN in a batch "
           "makes the loss and every parameter NaN",
}


def debug_data(seed: int, n: int = 200, bad: int = 3):
    """The grader's data: a regression set with ``bad`` rows whose features are NaN or inf."""
    x, y = regression(seed, n, torch.float64)
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7))[:bad]
    x[rows[0], 1] = float("nan")
    for r in rows[1:]:
        x[r, 0] = float("inf")
    return x, y


def reference_loop(model, x, y, *, epochs=4, batch_size=32, planted=frozenset()):
    """The loop as its docstring specifies (``planted``: the bugs left in, by name)."""
    if "nan" not in planted:
        keep = torch.isfinite(x).all(dim=1)
        x, y = x[keep], y[keep]
    batches = math.ceil(len(x) / batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=5.0 if "lr" in planted else 0.05,
                                momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * batches)
    losses = []
    for _ in range(epochs):
        for i in range(0, len(x), batch_size):
            if "zero_grad" not in planted:
                optimizer.zero_grad()
            loss = F.mse_loss(model(x[i:i + batch_size]), y[i:i + batch_size])
            loss.backward()
            optimizer.step()
            if "scheduler" not in planted:
                scheduler.step()
            losses.append(loss.item())
        if "scheduler" in planted:
            scheduler.step()
    return losses


def _loop_run(loop: Callable, seed: int, device, **kw) -> list[float]:
    model = mlp(seed).to(device)
    x, y = (t.to(device) for t in debug_data(seed))
    return [float(v) for v in loop(model, x, y, **kw)]


def judge_loop(got: sandbox.Outcome, seed: int, device, kw: dict) -> Verdict:
    tol = TOLERANCE[device.type]
    expected = np.asarray(_loop_run(reference_loop, seed, device, **kw))
    mine = np.asarray(got.value, float)
    if mine.shape == expected.shape and np.all(
            np.abs(mine - expected) <= tol * np.abs(expected)):
        return PASS
    left = []
    for bug in BUGS:
        variant = np.asarray(_loop_run(reference_loop, seed, device, **kw, planted={bug}))
        if variant.shape == mine.shape and np.allclose(mine, variant, rtol=tol, atol=0,
                                                       equal_nan=True):
            left.append(bug)
    if not left:
        for bug in BUGS:      # two bugs left: which single fix brings the run closer?
            rest = set(BUGS) - {bug}
            for other in rest:
                variant = np.asarray(_loop_run(reference_loop, seed, device, **kw,
                                               planted={bug, other}))
                if variant.shape == mine.shape and np.allclose(mine, variant, rtol=tol, atol=0,
                                                               equal_nan=True):
                    left = [bug, other]
                    break
            if left:
                break
    if left:
        return fail("a planted bug is still there: " + "; ".join(BUGS[b] for b in left) + ".",
                    "bug-" + "-".join(left))
    if mine.shape != expected.shape:
        return fail(f"your loop recorded {mine.size} losses, the reference {expected.size}: "
                    "one loss per optimizer step, every epoch.", "shape")
    t = int(np.argmax(~(np.abs(mine - expected) <= tol * np.abs(expected))))
    return fail(f"the loss at step {t} is {mine[t]:.6g}, the fixed loop's is {expected[t]:.6g} "
                f"(relative tolerance {tol:g} on {device.type}).", "curve")


def check_loop(train_loop: Callable, *, seeds: Sequence[int] = (0,),
               settings: Sequence[dict] = ({"epochs": 4, "batch_size": 32},
                                           {"epochs": 2, "batch_size": 49},
                                           {"epochs": 2, "batch_size": 197})) -> None:
    """The fixed loop against :func:`reference_loop` on the grader's data (197 finite rows of
    200): batch sizes that leave a last batch of 1 (49) and none (197) catch a loop over the
    batches that is off by one."""
    part, name = PART_DEBUG, _name(train_loop)
    device = best_device()
    for seed in seeds:
        for kw in settings:
            with _library_forbidden(), _optimizers_allowed():
                out = sandbox.call(_loop_run, train_loop, seed, device, **kw)
            _raise_if_failed(out, name, part, f" (seed {seed}, {kw})")
            judge_loop(out, seed, device, kw).raise_for(*part)
    passed(part[0], len(seeds) * len(settings))


# -- 8.6 a tiny transformer with and without warmup, gradient norms logged --------------------

PART_WARMUP = ("8.6", "a training loop with linear warmup, η_t = η_peak·min(1, (t+1)/W) on "
               "every param group, and the global gradient norm ‖g_t‖₂ before each step")

# The graded size: small enough that a run of 30 steps takes ~0.1 s on one CPU thread (the
# whole assignment stays under its 8 s), a real transformer all the same (attention,
# LayerNorm, GELU, embeddings; about 5,400 parameters on a 57-character vocabulary).
WARMUP_MODEL = {"block_size": 16, "d_model": 16, "n_heads": 2, "n_layers": 1}
WARMUP_BATCH = 8
WARMUP_CHARS = 4000


def warmup_setup(seed: int, device, peak_lr: float, *, model: dict | None = None,
                 chars: int = WARMUP_CHARS):
    """(model, optimizer, batches) of the grader's run: a :class:`~descent.models.
    TinyTransformer` built from ``seed`` on ``device``, AdamW with two param groups (the
    matrices with weight decay 0.1, the rest without) at ``lr=peak_lr``, and seeded
    character windows of :class:`~descent.data.CharCorpus` (on the CPU)."""
    from descent.data import CharCorpus
    from descent.models import TinyTransformer

    torch.backends.cuda.matmul.allow_tf32 = False
    corpus = CharCorpus(max_chars=chars)
    size = {**WARMUP_MODEL, **(model or {})}
    net = TinyTransformer(corpus.vocab_size, seed=seed, **size).to(device)
    matrices = [p for p in net.parameters() if p.ndim >= 2]
    others = [p for p in net.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": matrices, "weight_decay": 0.1},
                                   {"params": others, "weight_decay": 0.0}],
                                  lr=peak_lr, betas=(0.9, 0.98))
    return net, optimizer, corpus.batches(WARMUP_BATCH, size["block_size"], seed=seed)


def warmup_run(loop: Callable, seed: int, device, *, steps: int, warmup_steps: int,
               peak_lr: float, model: dict | None = None):
    """The grader's run of ``loop`` (the student's, on their side; or the reference)."""
    net, optimizer, batches = warmup_setup(seed, device, peak_lr, model=model)
    return loop(net, batches, optimizer, steps=steps, warmup_steps=warmup_steps,
                peak_lr=peak_lr, device=device)


def reference_warmup_loop(model, batches, optimizer, steps, warmup_steps, peak_lr, device, *,
                          planted=frozenset()):
    """The loop of part 8.6 (``planted``: known mistakes left in, by name)."""
    from descent.models import sequence_cross_entropy

    losses, norms, previous = [], [], 0.0
    data = iter(batches)
    for t in range(steps):
        x, y = next(data)
        x, y = x.to(device), y.to(device)
        if not warmup_steps:
            scale = 1.0
        elif "from-zero" in planted:
            scale = min(1.0, t / warmup_steps)
        elif "no-cap" in planted:
            scale = (t + 1) / warmup_steps
        else:
            scale = min(1.0, (t + 1) / warmup_steps)                  # linear warmup
        groups = optimizer.param_groups[:1] if "first-group" in planted \
            else optimizer.param_groups
        for group in groups:
            group["lr"] = peak_lr * scale                             # every param group
        if "no-zero-grad" not in planted:
            optimizer.zero_grad(set_to_none=True)
        loss = sequence_cross_entropy(model(x), y)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        squares = sum(float((g.double() ** 2).sum()) for g in grads)
        if "sum-of-norms" in planted:
            norm = sum(float(g.double().norm()) for g in grads)
        elif "squared" in planted:
            norm = squares
        elif "param-norm" in planted:
            norm = math.sqrt(sum(float((p.double() ** 2).sum()) for p in model.parameters()))
        else:
            norm = math.sqrt(squares)                                 # ‖g_t‖₂, all tensors
        optimizer.step()
        losses.append(float(loss.detach()))
        norms.append(previous if "lagged" in planted else norm)
        previous = norm
    return {"loss": losses, "grad_norm": norms}


WARMUP_MISTAKES = {
    "first-group": "the warmup is set on the first param group only: the second group (the "
                   "biases, LayerNorm and the other 1-D parameters) keeps the peak rate "
                   "from the first step. Set group['lr'] in every group of "
                   "optimizer.param_groups",
    "from-zero": "your warmup starts at η = 0: the first step uses η_peak·t/W with t = 0, "
                 "a wasted step. The rate of step t (from 0) is η_peak·min(1, (t+1)/W), "
                 "so that the first step has η_peak/W and step W − 1 reaches η_peak",
    "no-cap": "your rate keeps growing after the warmup: η_peak·(t+1)/W exceeds η_peak "
              "from step W on. Cap it: η_peak·min(1, (t+1)/W)",
    "no-zero-grad": "the gradients are never zeroed: backward() adds to p.grad, so each step "
                    "(and each logged norm) holds the sum of all gradients so far. Call "
                    "optimizer.zero_grad() before backward()",
    "sum-of-norms": "your gradient norm is the sum of the per-tensor norms; the global norm is "
                    "the norm of all gradients concatenated, √(Σ_p ‖g_p‖²)",
    "squared": "your gradient norm is squared (Σ g², no square root); log √(Σ_p ‖g_p‖²)",
    "param-norm": "you log the norm of the parameters, not of their gradients (p.grad)",
    "lagged": "your gradient norms lag one step behind: each is measured before this step's "
              "backward(). Measure after backward() and before optimizer.step()",
}


def _warmup_history(value, steps: int) -> tuple[np.ndarray, np.ndarray] | str:
    if not isinstance(value, dict) or not {"loss", "grad_norm"} <= set(value):
        return ("it must return a dict {'loss': [...], 'grad_norm': [...]}, got "
                f"{type(value).__name__}" + (f" with keys {sorted(map(str, value))}"
                                              if isinstance(value, dict) else ""))
    try:
        loss = np.asarray(value["loss"], dtype=float).ravel()
        norm = np.asarray(value["grad_norm"], dtype=float).ravel()
    except (TypeError, ValueError):
        return "'loss' and 'grad_norm' must be lists of numbers, one per step"
    if loss.size != steps or norm.size != steps:
        return (f"it recorded {loss.size} losses and {norm.size} gradient norms in a run of "
                f"{steps} steps; record one of each per step")
    return loss, norm


def _close(mine: np.ndarray, ref: np.ndarray, tol: float) -> np.ndarray:
    return np.abs(mine - ref) <= tol * np.maximum(np.abs(ref), 1e-12)


def judge_warmup(got: tuple[np.ndarray, np.ndarray], seed: int, device, kw: dict) -> Verdict:
    """The student's losses and norms against the reference run on the same device (relative
    tolerance per step: float32 kernels agree to rounding), then the known mistakes."""
    tol = TOLERANCE[device.type]
    loss, norm = got
    ref = reference_warmup_run(seed, device, kw)
    ok_loss, ok_norm = _close(loss, ref["loss"], tol), _close(norm, ref["grad_norm"], tol)
    if ok_loss.all() and ok_norm.all():
        return PASS
    for mistake, explain in WARMUP_MISTAKES.items():
        variant = reference_warmup_run(seed, device, kw, planted={mistake})
        if _close(loss, variant["loss"], tol).all() and _close(norm, variant["grad_norm"],
                                                               tol).all():
            return fail(explain + ".", mistake)
    if not ok_loss.all():
        t = int(np.argmax(~ok_loss))
        return fail(f"the loss at step {t} is {loss[t]:.6g}, the reference run's "
                    f"{ref['loss'][t]:.6g} (relative tolerance {tol:g} on {device.type}): "
                    f"check the rate of each step, η_t = η_peak·min(1, (t+1)/W), set on "
                    "every param group before optimizer.step().", "curve")
    t = int(np.argmax(~ok_norm))
    return fail(f"the losses match, but the gradient norm at step {t} is {norm[t]:.6g}, the "
                f"reference's {ref['grad_norm'][t]:.6g}: ‖g_t‖₂ = √(Σ_p Σ p.grad²) over every "
                "parameter, after backward() and before optimizer.step().", "measurement")


def reference_warmup_run(seed: int, device, kw: dict, *, planted=frozenset()) -> dict:
    """Trusted: the reference loop's losses and norms in the grader's run."""
    out = warmup_run(functools.partial(reference_warmup_loop, planted=frozenset(planted)),
                     seed, device, **kw)
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def check_warmup(train_with_warmup: Callable, *, seeds: Sequence[int] = (0,),
                 settings: Sequence[dict] = ({"steps": 30, "warmup_steps": 10,
                                              "peak_lr": 3e-3},
                                             {"steps": 20, "warmup_steps": 0,
                                              "peak_lr": 1e-3})) -> None:
    """The student's loop trains the grader's TinyTransformer (built here from ``seed``, on
    the best device, and sent with its AdamW and batches) on their side; the reference loop
    trains the same model here on the same device; losses and gradient norms are compared
    step by step."""
    part, name = PART_WARMUP, _name(train_with_warmup)
    device = best_device()
    checks = 0
    for seed in seeds:
        for kw in settings:
            where = f" (seed {seed}, {device.type}, {kw})"
            # Built here (the library's constructors and its batch sampler validate their
            # inputs with helpers forbidden while student code runs); they cross as data.
            model, optimizer, batches = warmup_setup(seed, device, kw["peak_lr"])
            batches = list(itertools.islice(batches, kw["steps"]))   # (x, y) on the CPU
            with _library_forbidden():
                out = sandbox.call(train_with_warmup, model, batches, optimizer, **kw,
                                   device=device)
            _raise_if_failed(out, name, part, where)
            got = _warmup_history(out.value, kw["steps"])
            if isinstance(got, str):
                fail(f"{name}: {got}{where}.", "wrong-structure").raise_for(*part)
            verdict = judge_warmup(got, seed, device, kw)
            if not verdict.ok:
                fail(verdict.message.rstrip(".") + where + ".", verdict.mistake
                     ).raise_for(*part)
            checks += kw["steps"]
    passed(part[0], checks)


def warmup_runs(train_with_warmup: Callable, *, steps: int = 150, warmup_steps: int = 30,
                peak_lr: float = 3e-2, seed: int = 0) -> dict[str, dict]:
    """The experiment of part 8.6 (in the student's notebook): a larger TinyTransformer (2
    layers, d_model 48) trained with and without warmup, on the best device."""
    device = best_device()
    size = {"d_model": 48, "n_heads": 4, "n_layers": 2, "block_size": 32}
    return {label: warmup_run(train_with_warmup, seed, device, steps=steps, warmup_steps=w,
                              peak_lr=peak_lr, model=size)
            for label, w in (("no warmup", 0), (f"warmup W = {warmup_steps}", warmup_steps))}


__all__ = ["check_range_test", "check_accumulation", "check_clipping", "check_amp",
           "check_loop", "reference_loop", "range_test_variant", "reference_range_test",
           "grader_train_step", "amp_losses", "reference_amp_step", "debug_data", "BUGS",
           "check_warmup", "reference_warmup_loop", "warmup_runs", "being_graded", "answered"]
