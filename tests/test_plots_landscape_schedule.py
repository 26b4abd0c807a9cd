"""descent.plots.landscape and descent.plots.schedule run headless and draw what they say."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PathCollection

from descent import landscapes as LS
from descent import schedules as S
from descent.plots import plot_contour, plot_schedules, plot_trajectories
from descent.rules import sgd_init, sgd_update

plt.switch_backend("Agg")                                         # headless, whatever the display


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _markers(ax) -> list[PathCollection]:
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def test_contour_draws_levels_and_critical_points():
    h = LS.himmelblau()
    ax = plot_contour(h, levels=12, resolution=60)
    assert len(ax.lines) == 0                                      # no trajectories
    contour = [c for c in ax.collections if not isinstance(c, PathCollection)]
    assert len(contour) == 1 and 2 <= len(contour[0].levels) <= 12
    sizes = sorted(len(c.get_offsets()) for c in _markers(ax))
    assert sizes == [1, 4, 4]                                      # maximum, saddles, minima
    assert ax.get_xlim() == h.bounds[0] and ax.get_title() == "Himmelblau"


def test_contour_uses_given_axes_and_levels():
    fig, (left, right) = plt.subplots(1, 2)
    out = plot_contour(LS.saddle(), ax=right, levels=[-1.0, 0.0, 1.0], resolution=30)
    assert out is right and not left.collections
    contour = [c for c in right.collections if not isinstance(c, PathCollection)][0]
    np.testing.assert_array_equal(contour.levels, [-1.0, 0.0, 1.0])


def test_trajectories_one_line_each_with_start_and_end_markers():
    bowl = LS.quadratic_bowl(10.0, 0.5)
    paths = {
        "GD": LS.trajectory(bowl, [1.5, 1.0], sgd_update, sgd_init, 20, lr=1.0),
        "momentum": LS.trajectory(bowl, [1.5, 1.0], sgd_update, sgd_init, 20, lr=0.5,
                                  momentum=0.8),
        "diverging": LS.trajectory(bowl, [1.5, 1.0], sgd_update, sgd_init, 5, lr=2.5),
    }
    ax = plot_trajectories(bowl, paths, resolution=40)
    assert [line.get_label() for line in ax.lines] == list(paths)
    for line, path in zip(ax.lines, paths.values()):
        np.testing.assert_array_equal(line.get_xydata(), path)
    # one minimum, then a start and an end marker per path
    assert len(_markers(ax)) == 1 + 2 * len(paths)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(paths)


def test_trajectory_plot_rejects_bad_input():
    with pytest.raises(ValueError, match=r"must have shape \(T\+1, 2\)"):
        plot_trajectories(LS.rosenbrock(), {"bad": np.zeros((5, 3))}, resolution=20)
    with pytest.raises(ValueError, match="only 2-D landscapes"):
        plot_contour(LS.rastrigin(dim=3))
    with pytest.raises(TypeError, match="landscape must be a Landscape"):
        plot_contour("rosenbrock")


def test_schedules_one_line_per_schedule_with_the_schedule_values():
    schedules = {"cosine": S.Cosine(0.1, 50), "warmup+cosine": S.WarmupCosine(0.1, 10, 60),
                 "one-cycle": S.OneCycle(0.1, 60), "wsd": S.WSD(0.1, 5, 30, 20)}
    ax = plot_schedules(schedules, 60, log=True)
    assert [line.get_label() for line in ax.lines] == list(schedules)
    for line, schedule in zip(ax.lines, schedules.values()):
        x, y = line.get_data()
        np.testing.assert_array_equal(x, np.arange(60))
        np.testing.assert_array_equal(y, [schedule(t) for t in range(60)])
    assert ax.get_yscale() == "log"
    assert len(ax.get_legend().get_texts()) == 4


def test_schedules_accept_plain_functions_and_an_axes():
    _, ax = plt.subplots()
    out = plot_schedules({"1/sqrt": lambda t: (t + 1) ** -0.5}, 10, ax=ax, legend=False)
    assert out is ax and len(ax.lines) == 1 and ax.get_legend() is None
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        plot_schedules({"c": S.Constant(0.1)}, 0)
    with pytest.raises(TypeError, match="must be callable"):
        plot_schedules({"c": 0.1}, 5)
