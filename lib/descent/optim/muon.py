r"""Muon: momentum, orthogonalised by Newton–Schulz (chapter 5, modern variants; Jordan 2024).

For a 2-D parameter :math:`\theta \in \mathbb{R}^{A\times B}` with gradient :math:`g_t`,
momentum :math:`\mu`, learning rate :math:`\eta`, weight decay :math:`\lambda`:

.. math::

    b_t &= \mu\, b_{t-1} + (1-\mu)\, g_t                              && \text{(momentum, an EMA)}\\
    u_t &= (1-\mu)\, g_t + \mu\, b_t \text{ (Nesterov) or } b_t       && \text{(direction)}\\
    X_0 &= u_t / \max(\lVert u_t\rVert_F, \epsilon),\quad
    X_{k+1} = a X_k + (b\, X_kX_k^\top + c\, (X_kX_k^\top)^2)\, X_k   && \text{(Newton–Schulz)}\\
    \theta_t &= (1-\eta\lambda)\,\theta_{t-1} - \eta\, r(A, B)\, X_K  && \text{(step)}

with :math:`r = \sqrt{\max(1, A/B)}` (``adjust_lr_fn=None`` or ``"original"``) or
:math:`r = 0.2\sqrt{\max(A, B)}` (``"match_rms_adamw"``).

Conventions that bite (all as ``torch.optim.Muon`` computes them, which is what its own
docstring's :math:`B_t = \mu B_{t-1} + g_t` does *not* say): the buffer is an EMA with
weight 1-μ, starting from zero; Newton–Schulz runs in **bfloat16** on the wide orientation
(a tall matrix is transposed first and back after); the decay uses the un-adjusted η. The
moving averages are computed with ``torch.lerp`` and the iteration with the same casts and
``addmm`` calls as torch, so the bfloat16 input has the same bits and descent equals torch.
The rule is torch-only: NumPy has no bfloat16 (a NumPy input raises TypeError).

Symbols ↔ arguments: η ``lr``, λ ``weight_decay``, μ ``momentum``, (a, b, c)
``ns_coefficients``, K ``ns_steps``, ε ``eps``; ``MuonState(b)`` ↔ torch.optim's
``momentum_buffer``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch

from descent import _arrays as xp
from descent._checks import check_int, check_nonnegative, check_real, check_same_shape
from descent.optim._base import RuleOptimizer

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # Keller Jordan's quintic (a, b, c)
ADJUST_LR_FNS = (None, "original", "match_rms_adamw")


class MuonState(NamedTuple):
    b: Any = None  # momentum buffer; None (zero) before the first step


def muon_init(param) -> MuonState:
    """The state before the first step: no buffer yet (it starts at zero)."""
    return MuonState(None)


def newton_schulz(u: torch.Tensor, *, ns_coefficients=NS_COEFFICIENTS, ns_steps: int = 5,
                  eps: float = 1e-7) -> torch.Tensor:
    """K quintic Newton–Schulz iterations towards :math:`UV^\\top` of ``u``, in bfloat16."""
    a, b, c = ns_coefficients
    x = u.bfloat16()
    tall = u.size(0) > u.size(1)
    if tall:
        x = x.T                                              # iterate on the wide orientation
    x = x / x.norm().clamp(min=eps)                          # X_0 = u / max(‖u‖_F, ε)
    for _ in range(ns_steps):
        gram = x @ x.T                                       # X Xᵀ
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)   # b XXᵀ + c (XXᵀ)²
        x = torch.addmm(x, poly, x, beta=a)                  # X_{k+1} = a X + poly X
    return x.T if tall else x


def adjusted_lr(lr: float, adjust_lr_fn: str | None, shape) -> float:
    """η·r(A, B), the learning rate that gives every matrix shape a comparable update RMS."""
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return lr * math.sqrt(max(1, rows / cols))           # Jordan: sqrt(max(1, A/B))
    return lr * 0.2 * math.sqrt(max(rows, cols))             # Moonshot: 0.2 sqrt(max(A, B))


def muon_update(param, grad, state: MuonState, *, lr: float = 1e-3, weight_decay: float = 0.1,
                momentum: float = 0.95, nesterov: bool = True,
                ns_coefficients=NS_COEFFICIENTS, eps: float = 1e-7, ns_steps: int = 5,
                adjust_lr_fn: str | None = None):
    """One Muon step (chapter 5) on a 2-D torch tensor. Returns ``(new_param, new_state)``."""
    if not (xp.is_torch(param) and xp.is_torch(grad)):
        raise TypeError("muon_update needs torch tensors: its Newton–Schulz iteration runs "
                        f"in bfloat16, which NumPy lacks; got {type(param).__name__}")
    check_same_shape(param, grad)
    if param.ndim != 2:
        raise ValueError(f"Muon updates 2-D parameters only, got shape {tuple(param.shape)}")
    b = torch.zeros_like(grad) if state.b is None else state.b
    b = torch.lerp(b, grad, 1 - momentum)                    # b_t = μ b + (1-μ) g
    u = torch.lerp(grad, b, momentum) if nesterov else b     # u_t = (1-μ) g + μ b_t
    x = newton_schulz(u, ns_coefficients=ns_coefficients, ns_steps=ns_steps, eps=eps)
    param = param * (1 - lr * weight_decay)                  # decoupled decay, un-adjusted η
    # θ - η r X with X cast up exactly, in one kernel as torch's add_ (no bfloat16 product)
    param = torch.add(param, x, alpha=-adjusted_lr(lr, adjust_lr_fn, param.shape))   # step
    return param, MuonState(b)


class Muon(RuleOptimizer):
    """``torch.optim.Muon`` built on :func:`muon_update`; same keywords and defaults."""

    rule = staticmethod(muon_update)
    State = MuonState
    traced = False    # Newton–Schulz: matrix products
    torch_keys = {"b": "momentum_buffer"}
    hyperparameters = ("lr", "weight_decay", "momentum", "nesterov", "ns_coefficients", "eps",
                       "ns_steps", "adjust_lr_fn")

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.1,
                 momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                 eps: float = 1e-7, ns_steps: int = 5, adjust_lr_fn: str | None = None):
        check_nonnegative(lr, "lr", "η")
        check_nonnegative(weight_decay, "weight_decay", "λ")
        check_nonnegative(momentum, "momentum", "μ")
        check_nonnegative(eps, "eps", "ε")
        check_int(ns_steps, "ns_steps", low=0)
        if not isinstance(ns_coefficients, (tuple, list)) or len(ns_coefficients) != 3:
            raise ValueError("ns_coefficients (a, b, c) must be three numbers, "
                             f"got {ns_coefficients!r}")
        for name, value in zip(("ns_coefficients[0]", "ns_coefficients[1]",
                                "ns_coefficients[2]"), ns_coefficients):
            check_real(value, name)
        if adjust_lr_fn not in ADJUST_LR_FNS:
            raise ValueError(f"adjust_lr_fn must be one of {ADJUST_LR_FNS}, got {adjust_lr_fn!r}")
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps,
                        adjust_lr_fn=adjust_lr_fn)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError("Muon updates 2-D parameters only, got a parameter of "
                                     f"shape {tuple(p.shape)}; use AdamW for the others")

    def init_state(self, param, group: dict[str, Any]) -> MuonState:
        return muon_init(param)
