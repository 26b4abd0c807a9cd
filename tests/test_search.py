"""descent.search: log-uniform draws, log grids, grid and random search."""

from __future__ import annotations

import math

import numpy as np
import pytest

from descent import search


def test_log_uniform_is_uniform_in_the_log():
    draws = search.log_uniform(1e-5, 1e1, 200_000, rng=0)
    assert draws.min() >= 1e-5 and draws.max() <= 1e1
    logs = np.log10(draws)
    # each decade gets a sixth of the draws
    counts = np.histogram(logs, bins=6, range=(-5, 1))[0] / len(draws)
    np.testing.assert_allclose(counts, 1 / 6, atol=0.005)
    assert search.log_uniform(1e-3, 1.0, rng=3) == search.log_uniform(1e-3, 1.0, rng=3)
    assert isinstance(search.log_uniform(1e-3, 1.0, rng=3), float)


def test_log_grid_ends_and_offsets():
    np.testing.assert_allclose(search.log_grid(1e-4, 1.0, 5), [1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    np.testing.assert_allclose(search.log_grid(1e-3, 1.0, 3, offset=0.5),
                               [10 ** -2.5, 10 ** -1.5, 10 ** -0.5])
    np.testing.assert_allclose(search.log_grid(1e-3, 1.0, 3, offset=0.0), [1e-3, 1e-2, 1e-1])
    grid = search.log_grid(2.0, 50.0, 7, offset=0.3)
    np.testing.assert_allclose(np.diff(np.log(grid)), math.log(25) / 7)
    with pytest.raises(ValueError, match="offset"):
        search.log_grid(1e-3, 1.0, 3, offset=1.0)
    with pytest.raises(ValueError, match="high"):
        search.log_grid(1.0, 1e-3, 3)
    with pytest.raises(ValueError, match="low"):
        search.log_uniform(0.0, 1.0)


def test_grid_search_tries_every_combination_best_first():
    calls = []

    def objective(lr, weight_decay):
        calls.append((lr, weight_decay))
        return math.nan if lr > 0.5 else (math.log10(lr) + 2) ** 2 + weight_decay

    trials = search.grid_search(objective, {"lr": [1e-3, 1e-2, 1.0],
                                            "weight_decay": [0.0, 0.1]})
    assert len(trials) == len(calls) == 6
    assert trials[0].params == {"lr": 1e-2, "weight_decay": 0.0}
    assert all(math.isnan(t.value) for t in trials[-2:])            # NaN last
    values = [t.value for t in trials[:-2]]
    assert values == sorted(values)


def test_random_search_draws_every_name_log_uniformly_and_reproducibly():
    space = {"lr": (1e-4, 1e0), "weight_decay": (1e-6, 1e-2)}

    def objective(lr, weight_decay):
        return abs(math.log10(lr) + 2)

    a = search.random_search(objective, space, 9, rng=7)
    b = search.random_search(objective, space, 9, rng=7)
    assert a == b and len(a) == 9
    assert len({t.params["lr"] for t in a}) == 9                   # nine distinct values
    for t in a:
        assert 1e-4 <= t.params["lr"] <= 1.0 and 1e-6 <= t.params["weight_decay"] <= 1e-2
    # the same draws as log_uniform from one generator, name by name
    rng = np.random.default_rng(7)
    lrs = search.log_uniform(*space["lr"], size=9, rng=rng)
    assert sorted(t.params["lr"] for t in a) == sorted(lrs.tolist())
    with pytest.raises(ValueError, match="space"):
        search.random_search(objective, {}, 3)
