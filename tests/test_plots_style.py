"""The house style of descent.plots: page-wide figures, legible text, legends off the data.

Each plotting function is drawn with data shaped like the book's, and its figure must pass
``check_figure``; the checks themselves must catch a legend put over data, a figure wider than
the page and text too small to read.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from descent import landscapes as LS  # noqa: E402
from descent import plots  # noqa: E402
from descent import schedules as S  # noqa: E402
from descent.plots import style  # noqa: E402
from descent.rules import adam_init, adam_update, sgd_init, sgd_update  # noqa: E402


@pytest.fixture(autouse=True)
def _house_style():
    with matplotlib.rc_context(style.RC):
        yield
    plt.close("all")


def _ok(ax_or_fig):
    fig = ax_or_fig if isinstance(ax_or_fig, matplotlib.figure.Figure) else ax_or_fig.figure
    problems = plots.check_figure(fig)
    assert not problems, problems
    return fig


# ------------------------------------------------------------------- the checks can fail

def test_a_legend_over_a_line_is_caught():
    fig, ax = plots.subplots()
    t = np.linspace(0, 1, 50)
    ax.plot(t, t, label="diagonal")
    ax.legend(loc="center")                              # right on the line
    found = plots.legend_overlaps(fig)
    assert found and "diagonal" in found[0]


def test_a_legend_over_a_band_and_over_a_colour_map_is_caught():
    fig, (left, right) = plots.subplots(1, 2)
    t = np.linspace(0, 1, 20)
    left.fill_between(t, 0, 1, alpha=0.2, label="band")
    left.plot([0.9], [0.9], "o", label="dot")
    left.legend(loc="upper left")
    right.pcolormesh(np.random.default_rng(0).random((5, 5)))
    right.plot([], [], label="empty")
    right.legend(loc="lower left")
    found = plots.legend_overlaps(fig)
    assert len(found) == 2


def test_too_wide_and_too_small_are_caught():
    fig, ax = plt.subplots(figsize=(12, 4))
    ax.plot([0, 1], [0, 1])
    ax.set_title("tiny", fontsize=5)
    problems = plots.check_figure(fig)
    assert any("wide" in p for p in problems)
    assert any("smaller than" in p and "tiny" in p for p in problems)


def test_text_cut_off_by_the_edge_is_caught():
    fig, axes = plots.subplots(1, 3)
    for ax in axes:
        ax.plot([0, 1], [0, 1])
    axes[-1].set_title("a title far too long for a third of the page width")
    problems = plots.check_figure(fig)
    assert any("cut off" in p and "a title far" in p for p in problems)


# ------------------------------------------------------------------- placement

def test_place_legend_avoids_the_data_inside_the_axes():
    fig, ax = plots.subplots()
    t = np.arange(1, 100)
    for k in (1, 2, 3):
        ax.plot(t, 1 / t ** (0.3 * k), label=f"curve {k}")   # fills the lower left
    ax.set_yscale("log")
    legend = plots.place_legend(ax)
    assert legend is not None and legend is ax.get_legend()
    assert not plots.legend_overlaps(fig)
    fig.draw_without_rendering()
    box = legend.get_window_extent(fig.canvas.get_renderer())
    assert ax.bbox.contains(box.x0 + 1, box.y0 + 1)           # it found room inside


def test_place_legend_goes_below_when_the_data_fill_the_axes():
    fig, ax = plots.subplots()
    x = np.linspace(0, 1, 200)
    for k in range(6):                                       # lines everywhere
        ax.plot(x, np.sin(8 * x + k), label=f"phase {k}")
    legend = plots.place_legend(ax)
    assert ax.get_legend() is legend
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    assert box.y1 <= ax.bbox.y0                                  # below the axes
    assert box.x0 >= 0 and box.x1 <= fig.bbox.x1 + 1                            # fits
    _ok(fig)


def test_place_legend_outside_right_in_one_column():
    fig, axes = plots.subplots(3, 1, height=6.0)
    for ax in axes:
        for k in range(5):
            ax.plot([0, 1], [k, k + 1], label=f"schedule number {k}")
        legend = plots.place_legend(ax, candidates=(), outside="right")
        assert ax.get_legend() is legend
        fig.draw_without_rendering()
        box = legend.get_window_extent(fig.canvas.get_renderer())
        assert box.x0 >= ax.bbox.x1 and legend._ncols == 1
    _ok(fig)
    with pytest.raises(ValueError, match="outside"):
        plots.place_legend(axes[0], outside="left")


def test_share_legend_puts_one_legend_below_all_panels():
    fig, axes = plots.subplots(1, 3)
    for ax in axes:
        ax.plot([0, 1], [0, 1], label="a")
        ax.plot([0, 1], [1, 0], label="b")
        ax.legend()
    legend = plots.share_legend(fig)
    assert all(ax.get_legend() is None for ax in axes)
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b"]
    _ok(fig)


def test_book_style_sizes_figures_to_the_page():
    with matplotlib.rc_context():
        plots.book_style()                                    # no IPython here: rcParams only
        fig = plt.figure()
        assert fig.get_size_inches()[0] == pytest.approx(style.CONTENT_WIDTH_IN)
        assert matplotlib.rcParams["svg.fonttype"] == "path"
    fig, axes = plots.subplots(2, 2)
    assert fig.get_size_inches()[0] == pytest.approx(style.CONTENT_WIDTH_PX / 96)


# ------------------------------------------------------------------- every plotting function

def test_every_plotting_function_meets_the_house_style():
    t = np.arange(1, 301)
    _ok(plots.plot_series({"quadratic": (t, 1 / t), "logistic": (t, np.exp(-t / 40))},
                          references={"bound": (t, 2 / t)}, logx=True))
    _ok(plots.plot_lr_sweep({lr: (1 - lr) ** np.arange(100) + 1e-9 for lr in
                             (0.1, 0.5, 0.9, 1.9, 2.05)}, threshold=2.0))
    lrs = np.linspace(0.05, 2.1, 30)
    _ok(plots.plot_rate_vs_lr(lrs, np.abs(1 - lrs), measured=(lrs, np.abs(1 - lrs)),
                              marks={"1/L": 1.0, "2/L": 2.0}))
    ax = plots.plot_series({"f": (np.linspace(-3, 5, 50), np.sin(np.linspace(-3, 5, 50)))},
                           logy=False)
    _ok(plots.mark_points({"minimum": [[-1.6, -1.0]], "maximum": [[1.6, 1.0]]}, ax=ax))
    bowl, rosen = LS.quadratic_bowl(kappa=100.0, angle=0.5), LS.rosenbrock()
    start = np.array([-1.5, 1.0])
    _ok(plots.plot_trajectories(bowl, {
        "GD": LS.trajectory(bowl, start, sgd_update, sgd_init, 60, lr=1.0),
        "heavy ball": LS.trajectory(bowl, start, sgd_update, sgd_init, 60, lr=1.0,
                                    momentum=0.9)}))
    _ok(plots.plot_trajectories(rosen, {
        "Adam": LS.trajectory(rosen, start, adam_update, adam_init, 100, lr=0.05)}))
    lr_grid, beta_grid = np.linspace(0.01, 4, 40), np.linspace(0, 0.99, 30)
    rates = np.abs(1 - lr_grid[None, :] / 2) * 0.5 + beta_grid[:, None] * 0.6
    _ok(plots.plot_rate_phase_diagram(lr_grid, beta_grid, rates, marks={"optimum": (1, 0.5)}))
    _ok(plots.plot_schedules({"cosine": S.Cosine(0.1, T_max=300),
                              "warmup": S.WarmupCosine(0.1, warmup_steps=30, total_steps=300),
                              "constant": S.Constant(0.1)}, 300))
    rng = np.random.default_rng(0)
    runs = {name: [list(np.exp(-np.arange(100) / (20 + 5 * k)) + 0.05 * rng.random(100))
                   for _ in range(3)] for k, name in enumerate(("Adam", "no momentum", "SGD"))}
    _ok(plots.plot_loss_curves(runs, smooth=10))
    history = {"step": list(range(1, 51)), "loss": list(np.exp(-np.arange(50) / 10)),
               "grad_norm": list(1 + rng.random(50)),
               "update_ratio": list(1e-3 * (1 + rng.random(50))),
               "lr": list(np.linspace(0.1, 0, 50))}
    _ok(plots.plot_history(history, title="a run"))
    lrs = np.geomspace(1e-4, 10, 80)
    finder = {"lrs": lrs, "losses": 2 - np.tanh(np.log10(lrs) + 2) + (lrs > 3) * lrs,
              "smoothed": 2 - np.tanh(np.log10(lrs) + 2) + (lrs > 3) * lrs,
              "suggestions": {"steepest": 0.01, "minimum": 0.3}}
    _ok(plots.plot_lr_finder(finder))
    fig, axes = plots.subplots(1, 2)
    grid = np.array([[0.27, 0.26, 0.37, 1.46], [0.25, 0.23, 0.33, 1.45]])
    for ax in axes:
        plots.plot_sweep(grid, [1e-4, 1e-3, 1e-2, 1e-1], [3e-3, 1e-2], xlabel="λ",
                         ylabel="η", title="test loss", vmax=1.0, ax=ax)
    _ok(fig)
    _ok(plots.plot_step_times({"Adam, 1 tensor": {"loop": 2.0, "foreach": 2.5, "fused": 0.9},
                               "Adam, 200 tensors": {"loop": 2.4, "foreach": 3.2, "fused": 0.9}},
                              floors={"Adam, 1 tensor": 0.6, "Adam, 200 tensors": 0.6}))


def test_plot_sweep_boxes_the_best_cell_and_labels_every_cell():
    grid = np.array([[0.3, 0.2], [0.5, 0.4], [0.25, 0.9]])
    ax = plots.plot_sweep(grid, [0.1, 1.0], [1, 2, 3], xlabel="x", ylabel="y")
    (box,) = ax.patches
    assert box.get_xy() == (0.5, -0.5)                       # column 1, row 0: the 0.2
    assert sorted(t.get_text() for t in ax.texts) == sorted(
        f"{v:.2f}" for v in grid.ravel())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "1"]
    ax = plots.plot_sweep(grid, [0.1, 1.0], [1, 2, 3], xlabel="x", ylabel="y", best="max")
    assert ax.patches[0].get_xy() == (0.5, 1.5)              # the 0.9
    with pytest.raises(ValueError, match="shape"):
        plots.plot_sweep(grid.T, [0.1, 1.0], [1, 2, 3], xlabel="x", ylabel="y")
