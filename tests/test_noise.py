"""descent.noise: per-example gradients against autograd, mini-batch sampling, and the
variance formulas against exact enumeration of every mini-batch."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from descent.noise import (
    gradient_spread,
    loglog_slope,
    measured_variance,
    per_example_grads,
    predicted_variance,
    sample_minibatch_grads,
)


def test_per_example_grads_match_autograd():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    x, y = torch.randn(12, 5), torch.randint(3, (12,))
    G = per_example_grads(model, F.cross_entropy, x, y)
    assert G.shape == (12, sum(p.numel() for p in model.parameters()))

    def autograd(idx):
        model.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        return torch.cat([p.grad.reshape(-1) for p in model.parameters()])

    torch.testing.assert_close(G[4], autograd([4]))
    torch.testing.assert_close(G.mean(dim=0), autograd(slice(None)))   # batch = mean of rows


@pytest.mark.parametrize("replace", [True, False])
def test_sampled_batches_are_batches(replace):
    n, b = 9, 4
    weights = sample_minibatch_grads(torch.eye(n, dtype=torch.float64), b, 200,
                                     replace=replace)   # row k = the batch's weight vector
    counts = weights * b
    torch.testing.assert_close(counts, counts.round())
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(200, dtype=torch.float64))
    if not replace:
        assert ((counts == 0) | (counts == 1)).all() and (counts.sum(dim=1) == b).all()
    else:
        assert (counts > 1).any()                       # some index drawn twice


def _exact_variance(G, b, replace):
    """E‖ĝ_B - ḡ‖² by enumerating every batch (ordered tuples, or subsets)."""
    n = len(G)
    batches = (itertools.product(range(n), repeat=b) if replace
               else itertools.combinations(range(n), b))
    g_bar = G.mean(axis=0)
    return np.mean([np.sum((G[list(idx)].mean(axis=0) - g_bar) ** 2) for idx in batches])


@pytest.mark.parametrize("replace", [True, False])
@pytest.mark.parametrize("b", [1, 2, 3, 5])
def test_predicted_variance_equals_enumeration(replace, b):
    G = np.random.default_rng(b).normal(size=(5, 3))
    sigma2 = gradient_spread(torch.tensor(G))
    assert predicted_variance(sigma2, 5, b, replace=replace) == pytest.approx(
        _exact_variance(G, b, replace), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("replace", [True, False])
def test_measured_variance_agrees_with_prediction(replace):
    G = torch.tensor(np.random.default_rng(0).normal(size=(40, 5)))
    sigma2 = gradient_spread(G)
    for b in (1, 5, 30):
        measured = measured_variance(G, b, 20000, replace=replace, seed=b)
        assert measured == pytest.approx(predicted_variance(sigma2, 40, b, replace=replace),
                                         rel=0.05)


def test_full_batch_without_replacement_is_exact():
    G = torch.randn(10, 3, dtype=torch.float64)
    g_hat = sample_minibatch_grads(G, 10, 3, replace=False)
    torch.testing.assert_close(g_hat, G.mean(dim=0).expand(3, 3))


def test_loglog_slope_and_errors():
    b = np.array([1, 2, 4, 8, 16])
    assert loglog_slope(b, 3.0 / b) == pytest.approx(-1.0, rel=1e-12)
    with pytest.raises(ValueError, match=r"batch_size \(B\) must be <= N = 5"):
        sample_minibatch_grads(torch.zeros(5, 2), 6, 1, replace=False)
    with pytest.raises(ValueError, match="draws must be an integer >= 1, got 0"):
        sample_minibatch_grads(torch.zeros(5, 2), 2, 0, replace=True)
