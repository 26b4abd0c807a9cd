"""Curvature of a network's loss without its Hessian: Hessian-vector products and the top
eigenvalue by power iteration (chapter 2, the edge of stability).

A network with :math:`d` weights has a :math:`d \\times d` Hessian :math:`H = \\nabla^2
\\mathcal L(\\theta)`, too large to form. Its product with a vector is cheap: it is the
directional derivative of the gradient,

.. math::

    H v = \\nabla_\\theta\\bigl(\\nabla_\\theta \\mathcal L(\\theta)^\\top v\\bigr),

one more backward pass through the graph of the gradient (Pearlmutter 1994). **Power
iteration** repeats :math:`v \\leftarrow Hv / \\lVert Hv\\rVert` and reads the eigenvalue off the
Rayleigh quotient :math:`\\lambda = v^\\top H v`; it converges to the eigenvalue of largest
*magnitude*, at a speed set by the ratio of the two largest magnitudes. The
**sharpness** :math:`\\lambda_{\\max}(H)` is the largest *algebraic* eigenvalue: when power
iteration lands on a negative one, :func:`top_hessian_eigenvalue` runs it again on
:math:`H - \\lambda I`, whose largest-magnitude eigenvalue is then :math:`\\lambda_{\\max} -
\\lambda`.

Symbols ↔ arguments: :math:`\\mathcal L` ``loss_fn()`` (a closure that computes the loss from
``params``), :math:`\\theta` ``params`` (tensors with ``requires_grad``), :math:`v` ``vector``
(a list of tensors shaped like ``params``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from descent._checks import check_int, check_positive

__all__ = ["hessian_vector_product", "top_hessian_eigenvalue", "Sharpness"]


class Sharpness(NamedTuple):
    """What :func:`top_hessian_eigenvalue` found."""

    value: float                 # λ_max(H), the largest eigenvalue
    vector: list[torch.Tensor]   # its unit eigenvector, shaped like params
    iterations: int              # Hessian-vector products used
    converged: bool              # |λ_k − λ_{k−1}| ≤ tol·|λ_k| was reached


def _params(params) -> list[torch.Tensor]:
    params = list(params)
    if not params or not all(isinstance(p, torch.Tensor) and p.requires_grad for p in params):
        raise ValueError("params must be a non-empty list of tensors with requires_grad=True")
    return params


def _gradient(loss_fn: Callable[[], torch.Tensor], params) -> list[torch.Tensor]:
    loss = loss_fn()
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError("loss_fn() must return a scalar tensor")
    return list(torch.autograd.grad(loss, params, create_graph=True))   # the graph of ∇𝓛


def _hvp(grads, params, vector) -> list[torch.Tensor]:
    dot = sum((g * v).sum() for g, v in zip(grads, vector))             # ∇𝓛ᵀv
    return list(torch.autograd.grad(dot, params, retain_graph=True))    # Hv = ∇(∇𝓛ᵀv)


def hessian_vector_product(loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor],
                           vector: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """:math:`Hv = \\nabla(\\nabla\\mathcal L^\\top v)`, one tensor per parameter.

    ``loss_fn()`` computes the loss from ``params``; ``vector`` has one tensor per parameter,
    of the same shape. Costs about two backward passes; nothing of size :math:`d^2` is formed.
    """
    params = _params(params)
    vector = list(vector)
    if len(vector) != len(params) or any(v.shape != p.shape for v, p in zip(vector, params)):
        raise ValueError("vector must have one tensor per parameter, of the same shape")
    return [h.detach() for h in _hvp(_gradient(loss_fn, params), params, vector)]


def _dot(a, b) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def _power(grads, params, v, shift: float, iters: int, tol: float):
    """Power iteration on H − shift·I from the unit vector v: (λ of H − shift·I, v, k, ok)."""
    value, previous = float("nan"), None
    for k in range(1, iters + 1):
        hv = _hvp(grads, params, v)
        hv = [h.detach() - shift * x for h, x in zip(hv, v)]       # (H − shift·I) v
        value = float(_dot(v, hv))                                  # Rayleigh quotient vᵀ(H−sI)v
        norm = float(torch.sqrt(_dot(hv, hv)))
        if norm == 0.0:
            return 0.0, v, k, True                                  # v is in the null space
        v = [h / norm for h in hv]                                  # v ← (H − sI)v / ‖·‖
        if previous is not None and abs(value - previous) <= tol * abs(value):
            return value, v, k, True
        previous = value
    return value, v, iters, False


def top_hessian_eigenvalue(loss_fn: Callable[[], torch.Tensor],
                           params: Sequence[torch.Tensor], *, iters: int = 100,
                           tol: float = 1e-4, vector: Sequence[torch.Tensor] | None = None,
                           seed: int = 0) -> Sharpness:
    """The sharpness :math:`\\lambda_{\\max}(\\nabla^2\\mathcal L)` by power iteration.

    Starts from ``vector`` (e.g. the previous call's eigenvector, which makes tracking the
    sharpness along a run cheap) or from a random vector drawn from ``seed``; stops when the
    Rayleigh quotient changes by at most ``tol`` (relative) between two iterations, or after
    ``iters`` Hessian-vector products. If the eigenvalue of largest magnitude is negative,
    a second run on :math:`H - \\lambda I` finds the largest algebraic one.
    """
    check_int(iters, "iters", low=2)
    check_positive(tol, "tol")
    params = _params(params)
    if vector is None:
        generator = torch.Generator().manual_seed(seed)
        v = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
             for p in params]
    else:
        v = [x.detach().clone() for x in vector]
    norm = float(torch.sqrt(_dot(v, v)))
    v = [x / norm for x in v]
    grads = _gradient(loss_fn, params)
    start = v
    value, v, used, ok = _power(grads, params, start, 0.0, iters, tol)
    if value < 0:                            # the most negative one: shift past it, restart
        shifted, v, more, ok = _power(grads, params, start, value, iters, tol)
        value, used = shifted + value, used + more
    return Sharpness(value, [x.detach() for x in v], used, ok)
