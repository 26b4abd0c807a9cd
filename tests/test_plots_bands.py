"""plot_bands draws the mean over runs, the band between them and the best point, headless."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from descent.plots import book_style, check_figure, plot_bands


@pytest.fixture(autouse=True)
def _close_figures():
    book_style()
    yield
    plt.close("all")


def test_mean_band_and_best_point_of_a_sweep():
    lrs = [0.01, 0.1, 1.0]
    runs = [[0.5, 0.2, 0.9], [0.7, 0.1, 1.1]]
    ax = plot_bands({"SGD": (lrs, runs)}, xlabel="η", ylabel="loss", logx=True,
                    markers=True, best="min")
    mean, star = ax.get_lines()
    np.testing.assert_allclose(mean.get_ydata(), [0.6, 0.15, 1.0])
    assert mean.get_label() == "SGD (n=2), best at 0.1"
    assert list(star.get_xdata()) == [0.1] and star.get_marker() == "*"
    (band,) = ax.collections
    ys = band.get_paths()[0].vertices[:, 1]
    assert np.isclose(ys.min(), 0.1) and np.isclose(ys.max(), 1.1)   # min–max over runs
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert check_figure(ax.figure) == []


def test_curves_on_their_own_x_std_band_and_one_run():
    ax = plot_bands({"raw": (np.arange(10, 110, 10), np.ones((3, 10))),
                     "late": ([60, 80, 100], [[0.5, 0.4, 0.3]])},
                    xlabel="step", ylabel="loss", band="std", logy=False, best="max")
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["raw (n=3), best at 10", "late, best at 60"]
    assert len(ax.collections) == 1                     # no band for a single run
    np.testing.assert_allclose(ax.get_lines()[2].get_xdata(), [60, 80, 100])


@pytest.mark.parametrize("kwargs, message", [
    (dict(band="iqr"), "band must be 'minmax' or 'std'"),
    (dict(best="lowest"), "best must be None, 'min' or 'max'"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot_bands({"a": ([1, 2], [[1, 2]])}, xlabel="x", ylabel="y", **kwargs)


def test_runs_must_match_x():
    with pytest.raises(ValueError, match=r"'a': each run must have one value per x \(3\)"):
        plot_bands({"a": ([1, 2, 3], [[1, 2]])}, xlabel="x", ylabel="y")
