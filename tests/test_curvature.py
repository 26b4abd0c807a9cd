"""descent.curvature: Hessian-vector products and the top eigenvalue by power iteration,
against the exact Hessian of small problems."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call, hessian

from descent import models
from descent.curvature import hessian_vector_product, top_hessian_eigenvalue

# torch.func.hessian, which gives the exact Hessian here, warns about torch internals
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def _mlp_problem(seed=0):
    torch.manual_seed(seed)
    model = models.mlp(4, (6,), 3, activation="tanh", seed=seed, dtype=torch.float64)
    x = torch.randn(20, 4, dtype=torch.float64)
    y = torch.randn(20, 3, dtype=torch.float64)
    params = list(model.parameters())
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]

    def loss_fn():
        return ((model(x) - y) ** 2).mean()

    def flat_loss(flat):
        parts = torch.split(flat, sizes)
        state = {n: part.reshape(s) for n, part, s in zip(names, parts, shapes)}
        return ((functional_call(model, state, (x,)) - y) ** 2).mean()

    flat = torch.cat([p.detach().reshape(-1) for p in params])
    H = hessian(flat_loss)(flat)
    return loss_fn, params, H, sizes, shapes


def test_hvp_equals_the_exact_hessian_times_v():
    loss_fn, params, H, sizes, shapes = _mlp_problem()
    gen = torch.Generator().manual_seed(1)
    v = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    hv = hessian_vector_product(loss_fn, params, v)
    flat_v = torch.cat([t.reshape(-1) for t in v])
    torch.testing.assert_close(torch.cat([t.reshape(-1) for t in hv]), H @ flat_v,
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_eigenvalue_equals_the_exact_one(seed):
    loss_fn, params, H, _, _ = _mlp_problem(seed)
    eig, vecs = torch.linalg.eigh(H)
    found = top_hessian_eigenvalue(loss_fn, params, iters=2000, tol=1e-12)
    assert found.converged
    assert found.value == pytest.approx(eig[-1].item(), rel=1e-6)
    v = torch.cat([t.reshape(-1) for t in found.vector])
    assert abs(float(v @ vecs[:, -1])) == pytest.approx(1.0, abs=1e-4)   # the eigenvector


def test_negative_dominant_eigenvalue_is_shifted_away():
    """A Hessian diag(−5, 1, 2): power iteration alone finds −5; the sharpness is 2."""
    A = torch.diag(torch.tensor([-5.0, 1.0, 2.0], dtype=torch.float64))
    theta = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64, requires_grad=True)
    found = top_hessian_eigenvalue(lambda: 0.5 * theta @ A @ theta, [theta], iters=500,
                                   tol=1e-12)
    assert found.value == pytest.approx(2.0, rel=1e-8)
    assert abs(found.vector[0][2].item()) == pytest.approx(1.0, abs=1e-6)


def test_warm_start_needs_fewer_products():
    loss_fn, params, _, _, _ = _mlp_problem()
    cold = top_hessian_eigenvalue(loss_fn, params, iters=2000, tol=1e-8)
    warm = top_hessian_eigenvalue(loss_fn, params, iters=2000, tol=1e-8, vector=cold.vector)
    assert warm.iterations < cold.iterations / 3
    assert warm.value == pytest.approx(cold.value, rel=1e-6)


def test_bad_arguments():
    theta = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="requires_grad"):
        top_hessian_eigenvalue(lambda: theta.sum(), [torch.zeros(3)])
    with pytest.raises(ValueError, match="scalar"):
        top_hessian_eigenvalue(lambda: theta * 2, [theta])
    with pytest.raises(ValueError, match="same shape"):
        hessian_vector_product(lambda: (theta ** 2).sum(), [theta], [torch.zeros(2)])
    np.testing.assert_allclose(
        hessian_vector_product(lambda: (theta ** 2).sum(), [theta], [torch.ones(3)])[0],
        2 * np.ones(3))
