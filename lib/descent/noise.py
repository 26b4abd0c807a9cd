"""Mini-batch gradients as noisy, unbiased estimates of the full gradient (chapter 3).

For a loss that is an average over N examples, :math:`f(\\theta) = \\frac1N\\sum_i
f_i(\\theta)`, the full gradient is :math:`\\bar g = \\frac1N \\sum_i g_i` and a mini-batch
:math:`\\mathcal B` of size B gives :math:`\\hat g_B = \\frac1B \\sum_{i\\in\\mathcal B} g_i`.
With the per-example spread :math:`\\sigma^2 = \\frac1N \\sum_i \\lVert g_i - \\bar g
\\rVert^2`:

.. math::

    \\mathbb E\\,\\hat g_B = \\bar g, \\qquad
    \\mathbb E \\lVert \\hat g_B - \\bar g \\rVert^2 = \\frac{\\sigma^2}{B}
    \\times \\begin{cases} 1 & \\text{with replacement} \\\\
    \\dfrac{N-B}{N-1} & \\text{without replacement (finite-population correction)}
    \\end{cases}

Symbols ↔ arguments: :math:`g_i` the rows of ``grads`` (an N × P matrix of per-example
gradients), B ``batch_size``, K ``draws`` (how many mini-batches are sampled).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from descent._checks import check_int


def per_example_grads(model: torch.nn.Module, loss_fn, x: torch.Tensor,
                      y: torch.Tensor) -> torch.Tensor:
    """The N × P matrix whose row i is ∇θ f_i, the gradient of example i's loss.

    ``loss_fn(output, target)`` must be a mean-reduced loss such as
    ``torch.nn.functional.cross_entropy``; rows follow ``model.parameters()`` order, flattened.
    Computed with ``torch.func.vmap`` (no Python loop over examples).
    """
    params = {name: p.detach() for name, p in model.named_parameters()}

    def example_loss(params, xi, yi):
        out = functional_call(model, params, (xi.unsqueeze(0),))
        return loss_fn(out, yi.unsqueeze(0))

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))(params, x, y)
    return torch.cat([per_example[name].reshape(len(x), -1) for name in params], dim=1)


def sample_minibatch_grads(grads, batch_size: int, draws: int, *, replace: bool,
                           seed: int = 0) -> torch.Tensor:
    """K mini-batch gradients ĝ_B = (1/B) Σ_{i∈B} g_i, as a K × P tensor.

    Each batch holds ``batch_size`` indices drawn uniformly from the N rows of ``grads``, with
    or without replacement. Batches are encoded as a K × N weight matrix (count/B), so a
    batch costs one matrix product, not a gather of B × P values. Indices are drawn on the
    CPU from ``seed``, so the batches are the same on every device.
    """
    grads = torch.as_tensor(grads)
    n = grads.shape[0]
    check_int(batch_size, "batch_size", low=1)
    check_int(draws, "draws", low=1)
    if not replace and batch_size > n:
        raise ValueError(f"batch_size (B) must be <= N = {n} without replacement, "
                         f"got {batch_size}")
    gen = torch.Generator().manual_seed(seed)
    if replace:
        idx = torch.randint(n, (draws, batch_size), generator=gen)
    else:
        idx = torch.rand(draws, n, generator=gen).argsort(dim=1)[:, :batch_size]
    weights = torch.zeros(draws, n, dtype=grads.dtype)
    weights.scatter_add_(1, idx, torch.full(idx.shape, 1 / batch_size, dtype=grads.dtype))
    return weights.to(grads.device) @ grads                         # ĝ_B for each draw


def gradient_spread(grads) -> float:
    """σ² = (1/N) Σᵢ ‖gᵢ - ḡ‖², the per-example variance (trace of the covariance)."""
    grads = torch.as_tensor(grads)
    return float(((grads - grads.mean(dim=0)) ** 2).sum(dim=1).mean())


def predicted_variance(sigma2: float, n: int, batch_size, *, replace: bool):
    """E‖ĝ_B - ḡ‖² = σ²/B, times (N-B)/(N-1) without replacement."""
    b = np.asarray(batch_size, dtype=float)
    correction = 1.0 if replace else (n - b) / (n - 1)              # finite population
    return sigma2 / b * correction


def measured_variance(grads, batch_size: int, draws: int, *, replace: bool,
                      seed: int = 0) -> float:
    """The sample mean of ‖ĝ_B - ḡ‖² over ``draws`` random mini-batches."""
    grads = torch.as_tensor(grads)
    g_bar = grads.mean(dim=0)
    g_hat = sample_minibatch_grads(grads, batch_size, draws, replace=replace, seed=seed)
    return float(((g_hat - g_bar) ** 2).sum(dim=1).mean())


def loglog_slope(x, y) -> float:
    """The least-squares slope of log y against log x (−1 for a 1/B law)."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])
