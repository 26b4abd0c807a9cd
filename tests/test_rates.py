"""descent.rates: the momentum iteration matrix against sgd_update and torch.optim.SGD, the
closed-form tunings against a brute-force search, and the phase-diagram plot."""

import itertools

import matplotlib
import numpy as np
import pytest
import torch

from descent.plots.rates import plot_rate_phase_diagram
from descent.rates import (
    empirical_rate,
    gd_rate,
    momentum_matrix,
    momentum_rate,
    nesterov_tuning,
    optimal_gd,
    optimal_heavy_ball,
)
from descent.rules import sgd_init, sgd_update

matplotlib.use("Agg")


@pytest.mark.parametrize("nesterov", [False, True])
def test_matrix_reproduces_sgd_update(nesterov):
    lam, lr, beta = 3.0, 0.1, 0.7
    theta, state = np.array([1.5]), sgd_init(np.array([1.5]))
    z = np.array([1.5, 0.0])                      # (θ₀, b₀ = 0): the first step b₁ = g₁
    M = momentum_matrix(lr, beta, lam, nesterov=nesterov)
    for _ in range(7):
        theta, state = sgd_update(theta, lam * theta, state, lr=lr, momentum=beta,
                                  nesterov=nesterov)
        z = M @ z
        np.testing.assert_allclose([theta[0], state.b[0]], z, rtol=1e-13)


def test_heavy_ball_matrix_is_similar_to_polyaks():
    rng = np.random.default_rng(0)
    for lr, beta, lam in rng.uniform(0.05, 0.95, size=(5, 3)):
        polyak = np.array([[1 + beta - lr * lam, -beta], [1.0, 0.0]])
        np.testing.assert_allclose(np.sort_complex(np.linalg.eigvals(polyak)),
                                   np.sort_complex(np.linalg.eigvals(
                                       momentum_matrix(lr, beta, lam))), atol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_rate_matches_torch_sgd_run(nesterov):
    curvatures = np.array([0.5, 2.0, 10.0])
    rng = np.random.default_rng(1)
    for lr, beta in [(0.05, 0.5), (0.15, 0.3), (0.02, 0.9)]:
        theta = torch.tensor(rng.normal(size=3), requires_grad=True)
        opt = torch.optim.SGD([theta], lr=lr, momentum=beta, nesterov=nesterov)
        errors = []
        for _ in range(400):
            errors.append(theta.detach().norm().item())
            opt.zero_grad()
            (0.5 * (torch.tensor(curvatures) * theta**2).sum()).backward()
            opt.step()
        rho = momentum_rate(lr, beta, curvatures, nesterov=nesterov)
        assert rho < 1
        assert empirical_rate(errors) == pytest.approx(rho, rel=1e-2)


def test_gd_rate_is_max_abs_one_minus_lr_lambda():
    lam = np.array([1.0, 4.0, 9.0])
    for lr in (0.01, 0.1, 0.2, 0.3):
        assert gd_rate(lr, lam) == pytest.approx(np.abs(1 - lr * lam).max(), rel=1e-12)


@pytest.mark.parametrize("L, mu", [(10.0, 1.0), (100.0, 1.0), (50.0, 0.2)])
def test_closed_form_tunings(L, mu):
    lam = np.array([mu, L])
    gd, hb, nag = optimal_gd(L, mu), optimal_heavy_ball(L, mu), nesterov_tuning(L, mu)
    assert gd_rate(gd.lr, lam) == pytest.approx(gd.rate, rel=1e-12)
    # the optimum has a double eigenvalue: eigvals is accurate to about √(machine ε)
    assert momentum_rate(hb.lr, hb.momentum, lam) == pytest.approx(hb.rate, rel=1e-6)
    assert momentum_rate(nag.lr, nag.momentum, lam, nesterov=True) == pytest.approx(
        nag.rate, rel=1e-6)
    kappa = L / mu
    assert hb.rate == pytest.approx((np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1))
    # Polyak's tuning is the best (η, β) on a fine grid; GD's step is the best η
    lrs = np.linspace(0.2, 2.0, 181) * hb.lr
    betas = np.linspace(0.0, 0.99, 199)
    grid = momentum_rate(lrs[None, :], betas[:, None], lam)
    assert grid.min() >= hb.rate - 1e-6
    assert gd_rate(np.linspace(0.01, 2, 400) / L, lam).min() >= gd.rate - 1e-12
    assert hb.rate < nag.rate < gd.rate


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"mu \(μ\) must be in \(0, ∞.*got -1.0"):
        optimal_heavy_ball(10.0, -1.0)
    with pytest.raises(ValueError, match=r"L \(L\) must be in \[2, ∞.*got 1.0"):
        optimal_gd(1.0, 2.0)
    with pytest.raises(ValueError, match="curvatures"):
        momentum_rate(0.1, 0.5, np.ones((2, 2)))
    with pytest.raises(ValueError, match="at least 2 values"):
        empirical_rate([1.0, 0.0, 0.0])


def test_empirical_rate_of_a_geometric_sequence():
    errors = 3.0 * 0.7 ** np.arange(3000)               # underflows to 0 near the end
    assert empirical_rate(errors) == pytest.approx(0.7, rel=1e-10)


def test_phase_diagram_plot():
    lrs, betas = np.linspace(0.01, 1.0, 30), np.linspace(0.0, 0.95, 20)
    rates = momentum_rate(lrs[None, :], betas[:, None], [0.5, 3.0])
    ax = plot_rate_phase_diagram(lrs, betas, rates, marks={"a": (0.2, 0.5), "b": (0.4, 0.1)})
    assert len(ax.collections) >= 2                     # the colour mesh and the ρ = 1 edge
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    ax.figure.clf()


def test_grid_broadcasting():
    lrs, betas = np.linspace(0.01, 0.5, 4), np.linspace(0.0, 0.9, 3)
    grid = momentum_rate(lrs[None, :], betas[:, None], [1.0, 2.0])
    assert grid.shape == (3, 4)
    for (i, beta), (j, lr) in itertools.product(enumerate(betas), enumerate(lrs)):
        assert grid[i, j] == momentum_rate(lr, beta, [1.0, 2.0])
