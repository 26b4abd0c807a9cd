"""descent.plots.plot_constrained: the contour, the feasible set and the paths, in the house
style (no legend over data, text legible, page-wide)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from descent import convex, plots  # noqa: E402
from descent import landscapes as LS  # noqa: E402
from descent.plots import style  # noqa: E402
from descent.rules import sgd_init, sgd_update  # noqa: E402


@pytest.fixture(autouse=True)
def _house_style():
    with matplotlib.rc_context(style.RC):
        yield
    plt.close("all")


@pytest.mark.parametrize("region", [convex.Ball(center=[1.2, 0.9], radius=0.7),
                                    convex.Box(low=[0.5, -1.0], high=[1.5, 0.4]),
                                    convex.Simplex(total=1.0)],
                         ids=["ball", "box", "simplex"])
def test_plot_constrained_draws_the_set_and_meets_the_house_style(region):
    bowl = LS.quadratic_bowl(kappa=10, angle=0.5)
    path = convex.projected_trajectory(bowl, [-1.5, 1.5], region.project, sgd_update,
                                       sgd_init, 50, lr=1 / bowl.L)
    ax = plots.plot_constrained(bowl, region, {"projected GD": path})
    labels = [h.get_label() for h in ax.get_legend_handles_labels()[0]]
    assert "projected GD" in labels and "feasible set $C$" in labels
    drawn = [line for line in ax.get_lines() if line.get_label() == "projected GD"][0]
    np.testing.assert_allclose(drawn.get_xydata(), path)
    assert plots.check_figure(ax.figure) == []


def test_plot_constrained_in_panels_with_a_shared_legend():
    bowl = LS.quadratic_bowl(kappa=10, angle=0.5)
    fig, axes = plots.subplots(1, 3)
    for ax, region in zip(axes, (convex.Ball([1.2, 0.9], 0.7), convex.Box([0.5, -1], [1.5, 0.4]),
                                 convex.Simplex())):
        path = convex.projected_trajectory(bowl, [-1.5, 1.5], region.project, sgd_update,
                                           sgd_init, 30, lr=1 / bowl.L)
        plots.plot_constrained(bowl, region, {"projected GD": path}, ax=ax, legend=False)
        assert ax.get_legend() is None
    assert plots.share_legend(fig) is not None
    assert plots.check_figure(fig) == []


def test_plot_constrained_zooms_in():
    bowl = LS.quadratic_bowl(kappa=10, angle=0.5)
    ball = convex.Ball([1.2, 0.9], 0.7)
    path = convex.projected_trajectory(bowl, [1.7, 1.3], ball.project, sgd_update, sgd_init,
                                       30, lr=1 / bowl.L)
    ax = plots.plot_constrained(bowl, ball, {"projected GD": path}, view=((-0.5, 2), (-0.5, 2)))
    assert ax.get_xlim() == (-0.5, 2) and ax.get_ylim() == (-0.5, 2)
    assert plots.check_figure(ax.figure) == []
