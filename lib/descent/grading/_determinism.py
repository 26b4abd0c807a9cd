"""Make every grading run give the same numbers in every fresh kernel.

In a fresh process the first multi-threaded vector-math op in torch can be wrong
(pytorch#188792, oneMKL kernel dispatch; FACTS.md saw it in about 5 % of processes, 0.02 drift
after 100 training steps). Two of the three measured cures are applied when
:mod:`descent.grading` is imported: torch runs on one thread, and each op the checks use is
warmed up once on a tiny tensor. The third cure, ``OMP_NUM_THREADS=1``, is set by the instructor
commands (``make/instructor.mk``) for the whole autograding kernel.
"""

from __future__ import annotations

import sys
import warnings

import torch

_PINNED = False


def pin_threads() -> None:
    """One torch thread, and every vector-math op the grader uses run once. Idempotent."""
    global _PINNED
    if _PINNED:
        return
    torch.set_num_threads(1)
    for dtype in (torch.float32, torch.float64):
        x = torch.linspace(0.5, 1.5, 64, dtype=dtype)
        w = torch.ones(8, 8, dtype=dtype)
        y = x * x + x / 3 - x
        y = torch.sqrt(y.abs()) + torch.exp(-x) + torch.tanh(x) + torch.sign(x) + x.clamp(min=1)
        y = torch.addcmul(y, x, x, value=0.5).addcdiv(x, x + 1, value=-0.1).lerp(x, 0.1)
        y = (y.reshape(8, 8) @ w).sum() + torch.linalg.vector_norm(x) + (x - 1).square().mean()
        torch.nn.functional.mse_loss(x, y.expand_as(x))
        torch.nn.functional.cross_entropy(w, torch.zeros(8, dtype=torch.long))
        layer = torch.nn.Linear(8, 8, dtype=dtype)                      # one backward pass too
        torch.nn.functional.mse_loss(torch.tanh(layer(w)), w).backward()
    _PINNED = True


def _show_on_stdout(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"Warning ({category.__name__}, {filename}:{lineno}): {message}", file=sys.stdout)


def warnings_to_stdout() -> None:
    """In an IPython kernel, print warnings on stdout instead of stderr (see the package doc).
    Elsewhere (the grader, the tests) warnings are left as they are."""
    shell = sys.modules.get("IPython")
    try:
        active = shell is not None and shell.get_ipython() is not None
    except Exception:                    # noqa: BLE001 - an unusual IPython: leave it
        active = False
    if active:
        warnings.showwarning = _show_on_stdout
