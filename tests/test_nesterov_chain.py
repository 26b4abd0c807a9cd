"""descent.landscapes.nesterov_chain: Nesterov's worst case for first-order methods
(chapter 4). Its derivatives, its minimizer, its spectrum, and the property the lower bound
rests on: a method that starts at 0 has touched at most t coordinates after t steps, so its
error is at least the norm of the minimizer's untouched tail."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from descent import landscapes as LS
from descent import rates
from descent.rules import adam_init, adam_update, sgd_init, sgd_update


@pytest.mark.parametrize("dim,kappa,L", [(1, 4.0, 1.0), (2, 10.0, 1.0), (7, 50.0, 3.0),
                                         (40, 1000.0, 0.5)])
def test_derivatives_minimizer_and_spectrum(dim, kappa, L):
    f = LS.nesterov_chain(dim, kappa, L=L)
    rng = np.random.default_rng(dim)
    x = rng.normal(size=dim)
    xt = torch.tensor(x, requires_grad=True)
    f.value(xt).backward()
    np.testing.assert_allclose(f.grad(x), xt.grad.numpy(), rtol=1e-12, atol=1e-14)
    H = torch.autograd.functional.hessian(f.value, torch.tensor(x)).numpy()
    np.testing.assert_allclose(f.hessian(x), H, atol=1e-14)
    np.testing.assert_allclose(f.value(x), f.value(xt.detach()).item(), rtol=1e-14)
    # the closed-form minimizer solves ∇f = 0
    star = f.minima[0]
    np.testing.assert_allclose(np.linalg.solve(H, H @ x - f.grad(x)), star, atol=1e-13)
    assert np.linalg.norm(f.grad(star)) < 1e-13
    eig = np.linalg.eigvalsh(H)
    assert f.mu < eig[0] and eig[-1] < f.L
    np.testing.assert_allclose(f.L / f.mu, kappa)


def test_minimizer_is_geometric_far_from_the_end():
    kappa = 100.0
    q = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    star = LS.nesterov_chain(400, kappa).minima[0]
    np.testing.assert_allclose(star[:100], q ** np.arange(1, 101), rtol=1e-12)


def test_batched_points_and_errors():
    f = LS.nesterov_chain(5, 10.0)
    X = np.random.default_rng(0).normal(size=(3, 4, 5))
    np.testing.assert_allclose(f.grad(X)[1, 2], f.grad(X[1, 2]))
    np.testing.assert_allclose(f.value(X)[2, 3], f.value(X[2, 3]))
    assert f.hessian(X).shape == (3, 4, 5, 5)
    with pytest.raises(ValueError, match="kappa"):
        LS.nesterov_chain(5, 1.0)
    with pytest.raises(ValueError, match="dim"):
        LS.nesterov_chain(0, 10.0)


METHODS = {
    "gradient descent": (sgd_update, sgd_init, lambda t: dict(lr=t[0].lr)),
    "heavy ball": (sgd_update, sgd_init, lambda t: dict(lr=t[1].lr, momentum=t[1].momentum)),
    "Nesterov": (sgd_update, sgd_init,
                 lambda t: dict(lr=t[2].lr, momentum=t[2].momentum, nesterov=True)),
    "Adam": (adam_update, adam_init, lambda t: dict(lr=0.05)),
}


@pytest.mark.parametrize("name", list(METHODS))
def test_no_method_beats_the_tail_of_the_minimizer(name):
    """x_t has no coordinate after the t-th, so ‖x_t − x*‖ ≥ ‖(x*_{t+1}, …, x*_n)‖."""
    kappa, n, steps = 100.0, 120, 100
    f = LS.nesterov_chain(n, kappa)
    tunings = (rates.optimal_gd(f.L, f.mu), rates.optimal_heavy_ball(f.L, f.mu),
               rates.nesterov_tuning(f.L, f.mu))
    update, init, hyper = METHODS[name]
    path = LS.trajectory(f, np.zeros(n), update, init, steps, **hyper(tunings))
    star = f.minima[0]
    for t, x in enumerate(path):
        assert not np.any(x[t:]), f"{name}: coordinate beyond {t} touched at step {t}"
    tail = np.sqrt(np.cumsum(star[::-1] ** 2)[::-1])            # tail[t] = ‖x*_{t+1:}‖
    errors = np.linalg.norm(path - star, axis=1)
    assert np.all(errors >= tail[: steps + 1] * (1 - 1e-12))
    q = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    np.testing.assert_allclose(tail[:60], q ** np.arange(60) * np.linalg.norm(star),
                               rtol=1e-9)                        # ≈ qᵗ‖x₀ − x*‖
