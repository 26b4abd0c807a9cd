"""The analysis figures of chapters 1–2 draw what they are given, headless."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from descent.plots.analysis import mark_points, plot_lr_sweep, plot_rate_vs_lr, plot_series


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_plot_series_draws_curves_and_references_on_log_axes():
    t = np.arange(10)
    ax = plot_series({"a": 0.5 ** t, "b": (t, 0.9 ** t)}, references={"bound": 1.0 / (t + 1)},
                     logx=False, logy=True, ylabel="gap")
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["a", "b", "bound"]
    assert lines[2].get_linestyle() == "--"
    assert ax.get_yscale() == "log" and ax.get_xscale() == "linear"
    assert ax.get_ylabel() == "gap"
    np.testing.assert_allclose(lines[1].get_ydata(), 0.9 ** t)


def test_plot_series_hides_divergence_and_nonpositive_values_on_log_axis():
    y = np.array([1.0, 10.0, 1e9, np.inf, np.nan, 0.0])
    ax = plot_series({"run": y}, ymax=1e6)
    shown = np.asarray(ax.get_lines()[0].get_ydata(), dtype=float)
    np.testing.assert_array_equal(np.isnan(shown), [False, False, True, True, True, True])
    assert np.nanmax(shown) == 10.0


def test_plot_series_linear_axes_keep_zero_and_negative_values():
    x = np.linspace(-1, 1, 5)
    ax = plot_series({"f": (x, x ** 3)}, logy=False)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), x ** 3)


def test_plot_lr_sweep_colours_by_side_of_threshold_and_labels_multiples():
    losses = {0.5: [1.0, 0.5, 0.25], 0.9: [1.0, 0.1, 0.01], 1.1: [1.0, 2.0, 4.0]}
    ax = plot_lr_sweep(losses, threshold=1.0)
    lines = ax.get_lines()
    assert len(lines) == 3
    labels = [line.get_label() for line in lines]
    assert labels[0] == r"$\eta = 0.5 \times 2/L$" and "1.1" in labels[2]
    red, green, blue = lines[2].get_color()[:3]
    assert red > blue  # above the threshold: a red
    red, green, blue = lines[0].get_color()[:3]
    assert blue > red  # below: a blue


def test_plot_rate_vs_lr_draws_prediction_measurement_edge_and_marks():
    lrs = np.linspace(0.01, 2.0, 20)
    rho = np.abs(1 - lrs)
    ax = plot_rate_vs_lr(lrs, rho, measured=(lrs[::5], rho[::5]), marks={"1/L": 1.0, "2/L": 2.0})
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[1:] == ["measured", r"$\rho = 1$", "1/L", "2/L"]


def test_mark_points_uses_one_style_per_kind_and_counts_points():
    ax = mark_points({"minimum": [[0, 0], [1, 1]], "saddle": np.array([[0.5, 0.5]]),
                      "maximum": np.empty((0, 2)), "other": [[2, 2]]})
    labels = [c.get_label() for c in ax.collections]
    assert labels == ["minimum (2)", "saddle (1)", "other (1)"]
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [[0, 0], [1, 1]])


def test_mark_points_without_counts_and_spare_colours_apart_from_lines():
    ax = plot_series({"a": [1.0, 2.0, 3.0], "b": [3.0, 2.0, 1.0]})
    mark_points({"trials": [[0, 1.5]], "more trials": [[1, 2.5]]}, ax=ax, count=False)
    labels = [c.get_label() for c in ax.collections]
    assert labels == ["trials", "more trials"]
    line_colours = {matplotlib.colors.to_hex(line.get_color()) for line in ax.get_lines()}
    marker_colours = {matplotlib.colors.to_hex(c.get_facecolor()[0]) for c in ax.collections}
    assert not line_colours & marker_colours
