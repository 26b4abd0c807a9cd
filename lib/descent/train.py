"""One training loop for the whole course (chapters 3–8).

:func:`train` takes any model, any ``torch.optim.Optimizer`` (torch's or descent's) and a
source of ``(x, y)`` mini-batches, and returns a :class:`History` of plain data. One
optimizer step :math:`t` does, in this order:

.. math::

    \\mathcal{L}_t &= \\sum_{i=1}^{k} \\frac{n_i}{N}\\,\\mathcal{L}(f_\\theta(x_i), y_i),
        \\qquad N = \\sum_i n_i           && \\text{(accumulation over k micro-batches)}\\\\
    g_t &= \\nabla_\\theta \\mathcal{L}_t, \\qquad \\lVert g_t\\rVert_2 \\text{ recorded}
        && \\text{(global norm, before clipping)}\\\\
    g_t &\\leftarrow g_t \\cdot \\min\\!\\big(1, c / \\lVert g_t\\rVert_2\\big)
        && \\text{(clipping by global norm)}\\\\
    \\theta_t &= \\text{optimizer.step}(\\theta_{t-1}, g_t), \\qquad
        \\lVert\\theta_t-\\theta_{t-1}\\rVert / \\lVert\\theta_{t-1}\\rVert \\text{ recorded}
        && \\text{(update ratio)}\\\\
    \\eta_{t+1} &= \\text{scheduler.step}()   && \\text{(once per optimizer step)}

Symbols ↔ arguments: :math:`k` ``accumulation_steps``, :math:`c` ``clip_grad_norm``,
:math:`\\mathcal{L}` ``loss_fn``, :math:`\\eta_t` the learning rate of ``param_groups[0]``.

Conventions that bite:

- **Accumulation weights.** :math:`n_i` is ``y.numel()`` of micro-batch :math:`i`, so with a
  ``loss_fn`` that averages over target elements (torch's default ``reduction="mean"``) the
  accumulated gradient *equals* the gradient of one batch made of all :math:`k` micro-batches,
  even when they have unequal sizes. (Dividing each loss by :math:`k` is only right for equal
  sizes.)
- **Steps are optimizer steps**, counted :math:`t = 1, 2, \\ldots`; one step reads :math:`k`
  micro-batches. ``history.lr[t-1]`` is the rate used *for* step :math:`t`.
- **Precision.** ``"fp32"``: no autocast. ``"bf16"``: ``torch.autocast`` in bfloat16 (CPU,
  CUDA). ``"fp16"``: autocast in float16 with a ``GradScaler`` (CUDA only); the norm is taken
  after unscaling, and a step the scaler skips (inf/NaN gradients) is recorded with update
  ratio 0. ``"auto"``: bf16 on a CUDA device that supports it, else fp16 on CUDA, else fp32.
- **Non-finite loss.** With ``on_nonfinite="raise"`` (the default) a NaN/inf loss, or a
  NaN/inf gradient norm outside fp16, raises :class:`NonFiniteLossError` naming the step,
  *before* the update: the parameters keep their last finite values and ``err.history``
  holds the steps so far. With ``on_nonfinite="stop"`` the bad step is recorded (update
  ratio 0, no update made), ``history.stopped`` says why, and the history is returned.
- **Resuming.** A checkpoint holds the model, optimizer, scheduler, scaler, every RNG state
  (python, numpy, torch, cuda), the history and the step. On resume the data source is
  replayed from its start and the micro-batches already used are skipped, so it must give
  the same sequence each time it is iterated (a list, :class:`descent.data.Batches`, or a
  callable ``i -> (x, y)``). Then a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from descent._checks import check_int, check_positive

__all__ = ["History", "NonFiniteLossError", "best_device", "seed_everything", "train",
           "evaluate", "PRECISIONS"]

PRECISIONS = ("fp32", "bf16", "fp16", "auto")


# -- devices and seeds ----------------------------------------------------------------------
def best_device() -> torch.device:
    """``cuda`` if available, then Apple's ``mps``, then ``cpu``."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _device(device) -> torch.device:
    return best_device() if device is None else torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device)."""
    check_int(seed, "seed", low=0)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(),
            # NumPy's key array travels as a tensor so the checkpoint loads with weights_only
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- the record of a run --------------------------------------------------------------------
@dataclass
class History:
    """What :func:`train` records, one entry per optimizer step; plain, JSON-ready data.

    ``step[i]`` is the step number :math:`t` (from 1), ``loss`` the (accumulated) training
    loss, ``grad_norm`` the global gradient norm before clipping, ``update_ratio``
    :math:`\\lVert\\Delta\\theta\\rVert/\\lVert\\theta\\rVert` and ``lr`` the rate used.
    ``config`` holds the run's settings; ``stopped`` says why a run ended early (else None).
    Non-finite values are stored as float NaN/inf (``json.dumps`` writes them as NaN/Infinity).
    """

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    update_ratio: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    stopped: str | None = None

    def __len__(self) -> int:
        return len(self.step)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(**data)

    def _record(self, t: int, loss: float, grad_norm: float, ratio: float, lr: float) -> None:
        self.step.append(t)
        self.loss.append(loss)
        self.grad_norm.append(grad_norm)
        self.update_ratio.append(ratio)
        self.lr.append(lr)


class NonFiniteLossError(FloatingPointError):
    """The loss (or gradient norm) became NaN or inf; ``step`` and ``history`` say where."""

    def __init__(self, message: str, step: int, history: History):
        super().__init__(message)
        self.step, self.history = step, history


# -- helpers of the loop --------------------------------------------------------------------
def _micro_batches(data) -> Iterator[tuple[Any, Any]]:
    """Endless ``(x, y)`` micro-batches from a callable, an ``(x, y)`` pair or an iterable."""
    if isinstance(data, tuple) and len(data) == 2 and all(map(torch.is_tensor, data)):
        while True:                       # a full batch every step: gradient descent
            yield data
    if callable(data) and not hasattr(data, "__iter__"):
        i = 0
        while True:
            yield data(i)
            i += 1
    count = 0
    while True:
        for batch in data:
            count += 1
            yield batch
        if count == 0:
            raise ValueError("data yielded no batches")
        if iter(data) is data:            # a one-shot iterator cannot be replayed
            raise ValueError(f"data ran out after {count} micro-batches; pass a re-iterable "
                             f"source (a list, descent.data.Batches, a DataLoader) or more data")


def _to_device(batch, device: torch.device, t: int):
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise TypeError(f"step {t}: each batch must be an (x, y) pair, got "
                        f"{type(batch).__name__}")
    x, y = batch
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def _compute_loss(loss_fn, out: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
    """``loss_fn(out, y)``, with errors that name the step and both shapes."""
    shapes = f"model output {tuple(out.shape)} and targets {tuple(y.shape)}"
    if out.ndim == 0 or y.ndim == 0 or out.shape[0] != y.shape[0]:
        raise ValueError(f"step {t}: the batch sizes differ: {shapes}")
    if y.is_floating_point() and out.shape != y.shape:
        # e.g. (N, 1) against (N,): MSE would broadcast to (N, N) and give a wrong answer
        raise ValueError(f"step {t}: floating-point targets must have the output's shape, "
                         f"got {shapes} (reshape one, e.g. out.squeeze(-1))")
    try:
        loss = loss_fn(out, y)
    except (RuntimeError, ValueError, IndexError) as err:
        raise ValueError(f"step {t}: loss_fn failed on {shapes}: {err}") from err
    if not torch.is_tensor(loss) or loss.ndim != 0:
        shape = tuple(loss.shape) if torch.is_tensor(loss) else type(loss).__name__
        raise ValueError(f"step {t}: loss_fn must return a scalar tensor (a mean over the "
                         f"batch), got {shape}")
    return loss


class _NonFinite(Exception):
    """Raised inside a step, before any update, when the loss or gradient is not finite."""


def _check_finite(loss: float, grad_norm: float, check_grad: bool, t: int, lr: float) -> None:
    if math.isfinite(loss) and (math.isfinite(grad_norm) or not check_grad):
        return
    what = "loss" if not math.isfinite(loss) else "gradient norm"
    raise _NonFinite(f"non-finite {what} at step {t} (loss={loss}, grad_norm={grad_norm}, "
                     f"lr={lr:g}); no update was made")


def _precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision='fp16' (with GradScaler) needs a CUDA device, got "
                         f"device {device}; use precision='bf16' there")
    return precision


def _autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def _total_norm(tensors: list[torch.Tensor]) -> float:
    return float(torch.nn.utils.get_total_norm(tensors)) if tensors else 0.0


def _show_progress(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty() and "PYTEST_CURRENT_TEST" not in os.environ


# -- checkpoints ----------------------------------------------------------------------------
_RESUME_KEYS = ("seed", "accumulation_steps", "precision", "clip_grad_norm")


def _save_checkpoint(path: Path, t: int, model, optimizer, scheduler, scaler,
                     history: History) -> None:
    state = {"step": t, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict() if scheduler is not None else None,
             "scaler": scaler.state_dict() if scaler is not None else None,
             "rng": _rng_state(), "history": history.to_dict()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)                 # atomic: a crash never leaves half a checkpoint


def _load_checkpoint(path: Path, model, optimizer, scheduler, scaler, config) -> tuple:
    if not path.exists():
        raise FileNotFoundError(f"resume=True but there is no checkpoint at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = state["history"]["config"]
    for key in _RESUME_KEYS:
        if saved.get(key) != config[key]:
            raise ValueError(f"cannot resume: {key} was {saved.get(key)!r} in the checkpoint "
                             f"and is {config[key]!r} now; a resumed run would differ")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"])
    history = History.from_dict(state["history"])
    history.config = config
    return state["step"], history


# -- the loop -------------------------------------------------------------------------------
def train(model: nn.Module, optimizer: torch.optim.Optimizer, data, *, steps: int,
          loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
          scheduler=None, clip_grad_norm: float | None = None, accumulation_steps: int = 1,
          precision: str = "fp32", device=None, seed: int = 0, progress: bool | None = None,
          checkpoint_path: str | os.PathLike | None = None, checkpoint_every: int | None = None,
          resume: bool = False, on_nonfinite: str = "raise", closure: bool = False) -> History:
    """Train ``model`` for ``steps`` optimizer steps and return the :class:`History`.

    ``data`` is a re-iterable of ``(x, y)`` micro-batches (a list, a
    :class:`descent.data.Batches`, a ``DataLoader``), a callable ``i -> (x, y)``, or one
    ``(x, y)`` pair of tensors used at every step (full-batch gradient descent). It is cycled
    when it runs out. ``scheduler`` (any ``torch.optim.lr_scheduler``) is stepped once per
    optimizer step. ``device=None`` picks :func:`best_device`; the model and each batch are
    moved there. ``progress=None`` shows a tqdm bar only when stderr is a terminal.

    ``closure=True`` is for optimizers whose ``step`` needs a closure (``descent.optim.SAM``,
    ``torch.optim.LBFGS``): ``optimizer.step(closure)`` is called, and the closure redoes the
    accumulated forward/backward pass and the clipping each time the optimizer calls it. The
    history records the closure's first evaluation in the step (the loss and ‖g‖ at θ_{t-1}),
    which is also the one checked for NaN/inf before any update.

    Checkpoints: with ``checkpoint_path``, one is written every ``checkpoint_every`` steps
    (if given) and at the end; ``resume=True`` continues from it (it must exist, and
    ``seed``, ``accumulation_steps``, ``precision`` and ``clip_grad_norm`` must match). The
    file is read with ``torch.load(weights_only=True)``. See the module docstring for the
    math and the conventions.
    """
    check_int(steps, "steps", low=0)
    k = check_int(accumulation_steps, "accumulation_steps", low=1)
    if clip_grad_norm is not None:
        clip_grad_norm = check_positive(clip_grad_norm, "clip_grad_norm", "c")
    if checkpoint_every is not None:
        check_int(checkpoint_every, "checkpoint_every", low=1)
    if (checkpoint_every is not None or resume) and checkpoint_path is None:
        raise ValueError("checkpoint_every and resume need a checkpoint_path")
    if on_nonfinite not in ("raise", "stop"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'stop', got {on_nonfinite!r}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    device = _device(device)
    precision = _precision(precision, device)
    if closure and precision == "fp16":
        raise ValueError("closure=True cannot be combined with precision='fp16': "
                         "GradScaler.step does not support closures")
    config = {"seed": seed, "accumulation_steps": k, "precision": precision,
              "clip_grad_norm": clip_grad_norm, "device": str(device),
              "optimizer": type(optimizer).__name__}

    seed_everything(seed)
    model.to(device)
    model.train()
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    start, history = 0, History(config=config)
    if resume:
        start, history = _load_checkpoint(path, model, optimizer, scheduler, scaler, config)

    params = [p for group in optimizer.param_groups for p in group["params"]]
    stream = islice(_micro_batches(data), start * k, None)   # skip what a resumed run used

    def gradient(micro, t: int, lr: float, first: list) -> torch.Tensor:
        """Zero the gradients, accumulate them over the micro-batches, clip them.

        The first call in a step records ``(loss, ‖g‖)`` in ``first`` and checks them."""
        sizes = [y.numel() for _, y in micro]
        total = sum(sizes)
        optimizer.zero_grad(set_to_none=True)
        loss_value = 0.0
        for (x, y), n in zip(micro, sizes):
            with _autocast(precision, device):
                loss = _compute_loss(loss_fn, model(x), y, t)
            weighted = loss * (n / total)                   # n_i / N · L_i
            loss_value += float(weighted.detach())
            (scaler.scale(weighted) if scaler else weighted).backward()
        if scaler is not None:
            scaler.unscale_(optimizer)                      # true gradients before norm
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else torch.tensor(0.0)
        if not first:
            first.append((loss_value, float(norm)))         # ‖g_t‖ before clipping
            _check_finite(loss_value, float(norm), scaler is None, t, lr)
        if clip_grad_norm is not None:
            # g ← g·min(1, c/(‖g‖ + 1e-6)), torch's clip_grad_norm_ formula
            torch.nn.utils.clip_grads_with_norm_(params, clip_grad_norm, norm)
        return torch.tensor(loss_value)

    bar = None
    if _show_progress(progress):
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, initial=start, desc="train", unit="step")

    try:
        for t in range(start + 1, steps + 1):
            micro = [_to_device(batch, device, t) for batch in islice(stream, k)]
            lr = float(optimizer.param_groups[0]["lr"])
            first: list[tuple[float, float]] = []   # (loss, ‖g‖) of the step's first evaluation
            evaluate = partial(gradient, micro, t, lr, first)
            before = [p.detach().clone() for p in params]
            try:
                if closure:
                    optimizer.step(evaluate)                        # may call it again
                else:
                    evaluate()
                    if scaler is not None:
                        scaler.step(optimizer)                      # skipped on inf/NaN grads
                        scaler.update()
                    else:
                        optimizer.step()
            except _NonFinite as bad:
                if on_nonfinite == "raise":
                    raise NonFiniteLossError(f"{bad}; pass on_nonfinite='stop' to record it "
                                             "and return", t, history) from None
                history._record(t, *first[0], 0.0, lr)
                history.stopped = str(bad)
                break
            delta = _total_norm([p.detach() - b for p, b in zip(params, before)])
            size = _total_norm(before)
            ratio = delta / size if size > 0 else (0.0 if delta == 0 else math.inf)
            if scheduler is not None:
                scheduler.step()                                    # η_{t+1}
            loss_value, grad_norm = first[0]
            history._record(t, loss_value, grad_norm, ratio, lr)

            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4g}", refresh=False)
            if path is not None and checkpoint_every and t % checkpoint_every == 0:
                _save_checkpoint(path, t, model, optimizer, scheduler, scaler, history)
    finally:
        if bar is not None:
            bar.close()
    if path is not None and history.stopped is None:
        _save_checkpoint(path, len(history), model, optimizer, scheduler, scaler, history)
    return history


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
             loss_fn=F.cross_entropy, batch_size: int = 1024, device=None) -> dict[str, float]:
    """Mean loss over ``(x, y)`` and, for integer class targets, the accuracy.

    The model is put in eval mode and back in its previous mode afterwards.
    """
    device = _device(device)
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    try:
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
            out = model(xb)
            total_loss += float(_compute_loss(loss_fn, out, yb, 0)) * yb.numel()
            if not yb.is_floating_point():
                correct += int((out.argmax(dim=-1) == yb).sum())
    finally:
        model.train(was_training)
    result = {"loss": total_loss / y.numel()}
    if not y.is_floating_point():
        result["accuracy"] = correct / y.numel()
    return result
