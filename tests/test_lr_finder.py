"""descent.lr_finder: the ramp, the smoothing, the suggestions, and a test that leaves no trace."""

import copy
import math

import matplotlib
import numpy as np
import pytest
import torch

from descent import data, models
from descent.lr_finder import (
    lr_ramp,
    lr_range_test,
    suggest_minimum,
    suggest_steepest,
    suggest_valley,
)

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def digits():
    split = data.digits()
    return data.batches(split.x_train, split.y_train, 64, seed=0)


def test_ramps_hit_both_ends():
    exp = lr_ramp(1e-5, 1.0, 11)
    assert exp[0] == pytest.approx(1e-5) and exp[-1] == pytest.approx(1.0)
    assert np.allclose(np.diff(np.log10(exp)), 0.5)                 # constant ratio
    lin = lr_ramp(0.1, 1.1, 11, mode="linear")
    assert np.allclose(np.diff(lin), 0.1) and lin[-1] == pytest.approx(1.1)
    with pytest.raises(ValueError, match=r"max_lr \(η_max\) must be in \(0.1"):
        lr_ramp(0.1, 0.01, 10)
    with pytest.raises(ValueError, match="mode"):
        lr_ramp(0.1, 1, 10, mode="cosine")


def test_suggestions_on_known_curves():
    lrs = np.logspace(-5, 1, 61)
    # a sigmoid in log η: steepest exactly where log η = -2, lowest loss at the right end
    losses = 1 - np.tanh(np.log10(lrs) + 2)
    assert suggest_steepest(lrs, losses) == pytest.approx(1e-2, rel=0.2)
    bowl = (np.log10(lrs) + 1) ** 2                                  # minimum at η = 0.1
    assert suggest_minimum(lrs, bowl) == pytest.approx(1e-2)
    assert suggest_minimum(lrs, bowl, floor=0.05) == 0.05
    # fastai's valley: the longest decreasing run is points 0..40 (end = 40, start = -1),
    # so with L = 41 it picks index start + ⌊L/3⌋ + ⌊L/6⌋ = -1 + 13 + 6 = 18
    assert suggest_valley(lrs, bowl) == pytest.approx(lrs[18])


def test_range_test_restores_model_optimizer_and_rng(digits):
    model = models.mlp(64, [32], 10, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.8, 0.95))
    split = data.digits()
    for _ in range(3):                                              # give Adam some state
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(split.x_train[:32]), split.y_train[:32]).backward()
        opt.step()
    model.eval()
    params = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(opt.state_dict())
    torch.manual_seed(42)
    expected_draw = torch.rand(3)
    torch.manual_seed(42)

    result = lr_range_test(model, opt, digits, min_lr=1e-5, max_lr=10.0, steps=60,
                           device="cpu")

    assert torch.equal(torch.rand(3), expected_draw)                # global RNG untouched
    assert not model.training                                       # mode restored
    for key, value in params.items():
        assert torch.equal(model.state_dict()[key], value)
    after = opt.state_dict()
    assert after["param_groups"] == opt_state["param_groups"]       # lr and betas back
    for key, state in opt_state["state"].items():
        for name, value in state.items():
            assert torch.equal(after["state"][key][name], value)
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) <= 60


def test_result_smoothing_suggestions_and_divergence(digits):
    model = models.mlp(64, [32], 10, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    r = lr_range_test(model, opt, digits, min_lr=1e-4, max_lr=1e3, steps=80, beta=0.9,
                      diverge=2.0, device="cpu")
    assert r.diverged and len(r.lrs) < 80                           # stopped early
    assert r.lrs == pytest.approx(lr_ramp(1e-4, 1e3, 80)[:len(r.lrs)])
    avg = 0.0
    for i, (loss, smooth) in enumerate(zip(r.losses, r.smoothed)):
        avg = 0.9 * avg + 0.1 * loss
        if math.isfinite(smooth):
            assert smooth == pytest.approx(avg / (1 - 0.9 ** (i + 1)), rel=1e-12)
    assert set(r.suggestions) == {"steepest", "minimum", "valley"}
    for lr in r.suggestions.values():
        assert 1e-4 <= lr <= 1e3
    assert r.suggestions["steepest"] in r.lrs and r.suggestions["valley"] in r.lrs
    assert r.smoothed[-1] > 2.0 * min(r.smoothed[:-1]) or not math.isfinite(r.smoothed[-1])


def test_plot_lr_finder_marks_the_suggestions(digits):
    from descent.plots.curves import plot_lr_finder

    model = models.mlp(64, [32], 10, seed=0)
    r = lr_range_test(model, torch.optim.SGD(model.parameters()), digits, min_lr=1e-4,
                      max_lr=10.0, steps=40, device="cpu")
    ax = plot_lr_finder(r.to_dict())
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sum(label.startswith(("steepest", "minimum", "valley")) for label in labels) == 3
    matplotlib.pyplot.close("all")
