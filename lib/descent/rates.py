"""Linear convergence rates of gradient descent and momentum on quadratics (chapters 2 and 4).

On a quadratic :math:`f(\\theta) = \\tfrac12 \\theta^\\top H \\theta` every method of
:func:`descent.rules.sgd_update` is linear, and it acts on each eigendirection of :math:`H`
(curvature :math:`\\lambda \\in [\\mu, L]`) separately. Per direction, the state
:math:`z_t = (\\theta_t, b_t)` of ``sgd_update`` evolves as :math:`z_t = M(\\lambda)\\, z_{t-1}`:

.. math::

    M_{\\text{heavy ball}} = \\begin{pmatrix} 1 - \\eta\\lambda & -\\eta\\beta \\\\
                                            \\lambda & \\beta \\end{pmatrix}, \\qquad
    M_{\\text{Nesterov}} = \\begin{pmatrix} 1 - \\eta\\lambda(1+\\beta) & -\\eta\\beta^2 \\\\
                                          \\lambda & \\beta \\end{pmatrix},

and the error shrinks asymptotically by the spectral radius
:math:`\\rho = \\max_\\lambda \\max |\\operatorname{eig} M(\\lambda)|` per step.
:math:`M_{\\text{heavy ball}}` is similar to Polyak's matrix
:math:`\\bigl(\\begin{smallmatrix} 1+\\beta-\\alpha\\lambda & -\\beta \\\\ 1 & 0
\\end{smallmatrix}\\bigr)` on :math:`(\\theta_t, \\theta_{t-1})` with :math:`\\alpha = \\eta`.

Symbols ↔ arguments: η ``lr`` (Polyak's α), β ``momentum`` (PyTorch's ``momentum``; the
SGD docstring's μ), λ ``curvatures`` (eigenvalues of the Hessian), L and μ the largest and
smallest curvature (``L``, ``mu``), κ = L/μ. In this module μ is always strong convexity.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from descent._checks import check_positive, check_range


class Tuning(NamedTuple):
    """Hyperparameters for a quadratic with curvatures in [μ, L] and the rate they promise."""

    lr: float        # η (Polyak's α)
    momentum: float  # β
    rate: float      # ρ: the error shrinks like ρᵗ


def _check_curvature_range(L, mu) -> tuple[float, float]:
    mu = check_positive(mu, "mu", "μ")
    L = check_range(L, "L", "L", low=mu)
    return L, mu


def momentum_matrix(lr, momentum, curvature, *, nesterov: bool = False) -> np.ndarray:
    """The matrix M(λ) with (θ_t, b_t) = M (θ_{t-1}, b_{t-1}) for ``sgd_update`` on ½λθ².

    ``lr``, ``momentum`` and ``curvature`` broadcast against each other; the result has
    shape ``broadcast_shape + (2, 2)``. The first step fits too: ``sgd_update`` starts the
    buffer at b₁ = g₁, which is M applied to (θ₀, b₀ = 0).
    """
    lr, beta, lam = np.broadcast_arrays(*(np.asarray(a, dtype=float)
                                          for a in (lr, momentum, curvature)))
    M = np.empty(lr.shape + (2, 2))
    if nesterov:
        M[..., 0, 0] = 1 - lr * lam * (1 + beta)          # θ_t = θ - η(g + β b_t)
        M[..., 0, 1] = -lr * beta**2
    else:
        M[..., 0, 0] = 1 - lr * lam                       # θ_t = θ - η b_t
        M[..., 0, 1] = -lr * beta
    M[..., 1, 0] = lam                                    # b_t = β b + g,  g = λθ
    M[..., 1, 1] = beta
    return M


def momentum_rate(lr, momentum, curvatures, *, nesterov: bool = False) -> np.ndarray:
    """ρ(η, β) = max over the curvatures of the spectral radius of M(λ) (chapter 4).

    ``lr`` and ``momentum`` broadcast against each other (e.g. a grid for a phase diagram);
    ``curvatures`` is a 1-D list of the Hessian's eigenvalues. ρ < 1 iff the method converges
    on every such quadratic. ``momentum=0`` gives gradient descent, ρ = max |1 - ηλ|.
    """
    lam = np.atleast_1d(np.asarray(curvatures, dtype=float))
    if lam.ndim != 1:
        raise ValueError(f"curvatures (λ) must be a 1-D list of eigenvalues, got shape "
                         f"{lam.shape}")
    lr, beta = np.broadcast_arrays(np.asarray(lr, dtype=float),
                                   np.asarray(momentum, dtype=float))
    M = momentum_matrix(lr[..., None], beta[..., None], lam, nesterov=nesterov)
    radius = np.abs(np.linalg.eigvals(M)).max(axis=-1)   # spectral radius of each M(λ)
    return radius.max(axis=-1)                            # worst eigendirection


def gd_rate(lr, curvatures) -> np.ndarray:
    """ρ = max_λ |1 - ηλ| for gradient descent (chapter 2)."""
    return momentum_rate(lr, 0.0, curvatures)


def optimal_gd(L: float, mu: float) -> Tuning:
    """η = 2/(L+μ), the best constant step: ρ = (κ-1)/(κ+1) (chapter 2)."""
    L, mu = _check_curvature_range(L, mu)
    kappa = L / mu
    return Tuning(2 / (L + mu), 0.0, (kappa - 1) / (kappa + 1))


def optimal_heavy_ball(L: float, mu: float) -> Tuning:
    """Polyak's tuning α = 4/(√L+√μ)², β = ((√κ-1)/(√κ+1))²: ρ = (√κ-1)/(√κ+1) (chapter 4)."""
    L, mu = _check_curvature_range(L, mu)
    q = (math.sqrt(L / mu) - 1) / (math.sqrt(L / mu) + 1)
    return Tuning(4 / (math.sqrt(L) + math.sqrt(mu)) ** 2, q**2, q)


def nesterov_tuning(L: float, mu: float) -> Tuning:
    """Nesterov's constant-momentum tuning η = 1/L, β = (√κ-1)/(√κ+1): ρ = 1 - 1/√κ.

    On the direction λ = μ the two eigenvalues of M coincide at 1 - 1/√κ; on λ = L, M is
    nilpotent; in between the radius is smaller (chapter 4).
    """
    L, mu = _check_curvature_range(L, mu)
    root = math.sqrt(L / mu)
    return Tuning(1 / L, (root - 1) / (root + 1), 1 - 1 / root)


def empirical_rate(errors, *, tail: float = 0.5, floor: float = 1e-200) -> float:
    """The measured rate ρ̂: exp of the slope of log(error) over the last ``tail`` of the run.

    Errors at or below ``floor`` (converged to rounding, or underflowed) are dropped first,
    so fast runs are measured on the part that still carries information.
    """
    tail = check_range(tail, "tail", low=0.0, high=1.0, low_open=True)
    errors = np.asarray(errors, dtype=float)
    keep = np.flatnonzero(~(errors > floor))
    usable = errors[: keep[0]] if keep.size else errors
    start = int(len(usable) * (1 - tail))
    if len(usable) - start < 2:
        raise ValueError(f"errors must have at least 2 values above floor={floor:g} in the "
                         f"tail, got {len(usable) - start}")
    t = np.arange(start, len(usable))
    slope = np.polyfit(t, np.log(usable[start:]), 1)[0]   # log e_t ≈ t log ρ + c
    return float(np.exp(slope))
