"""Figures for the analysis in chapters 1–2: error curves, learning-rate sweeps, rates, points.

Every function draws on ``ax`` (a new figure when ``ax`` is None) and returns the Axes; none
calls ``plt.show()``. Data is computed by the caller (the chapter), so each figure shows
exactly the numbers the chapter prints and asserts.

- :func:`plot_series` — curves against the step (or any ``x``), on linear or log axes, with
  dashed reference curves (a bound, a model of the error, a predicted rate).
- :func:`plot_lr_sweep` — loss curves of one method run at several learning rates, coloured
  by which side of a stability threshold (such as 2/L) each rate lies.
- :func:`plot_rate_vs_lr` — the predicted contraction factor as a function of η, the
  measured factors on top, and named learning rates marked.
- :func:`mark_points` — labelled markers (minima, saddles, maxima, …) on an existing plot.
- :func:`plot_sweep` — a metric over a grid of two hyperparameters (a learning rate and a
  weight decay, say), each cell coloured and labelled with its value, the best one boxed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.patches import Rectangle

from descent.plots.style import new_axes, place_legend

# One marker style per kind of point; other labels cycle through the spare styles.
_POINT_STYLES = {
    "minimum": dict(marker="o", color="tab:green"),
    "global minimum": dict(marker="*", color="tab:green", s=160),
    "local minimum": dict(marker="o", color="tab:olive"),
    "saddle": dict(marker="X", color="tab:orange"),
    "maximum": dict(marker="^", color="tab:red"),
    "degenerate": dict(marker="s", color="tab:gray"),
}
# Spare styles take colours the default line cycle uses last, so that markers put on top of
# curves (the trials of a search on a loss curve, say) do not share the curves' colours.
_SPARE_STYLES = [dict(marker=m, color=c) for m, c in zip(
    ("D", "v", "P", "h", "<", ">"),
    ("tab:purple", "tab:brown", "tab:pink", "tab:cyan", "tab:olive", "tab:gray"))]


def _xy(values, x=None) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` from a pair or from ``y`` alone (then x is 0, 1, … or the given ``x``)."""
    if isinstance(values, tuple) and len(values) == 2:
        xs, ys = values
    else:
        ys = values
        xs = np.arange(len(np.asarray(ys))) if x is None else x
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def _masked(y: np.ndarray, ymax: float | None, logy: bool) -> np.ndarray:
    """Hide what a figure cannot show: non-finite values, values above ``ymax``, and values
    that are not positive on a log axis (an exact zero, reached by an exact method)."""
    y = np.where(np.isfinite(y), y, np.nan)
    if ymax is not None:
        y = np.where(y <= ymax, y, np.nan)
    if logy:
        y = np.where(y > 0, y, np.nan)
    return y


def plot_series(series: Mapping[str, object], *, references: Mapping[str, object] | None = None,
                x: Sequence[float] | None = None, logx: bool = False, logy: bool = True,
                xlabel: str = "step $t$", ylabel: str = "", title: str | None = None,
                ymax: float | None = None, markers: bool = False,
                ax: Axes | None = None) -> Axes:
    """Curves ``{label: y}`` or ``{label: (x, y)}``, plus dashed ``references`` in black/grey.

    ``y`` values that are not finite, exceed ``ymax`` or are not positive on a log axis are
    left out of the line (a diverging run stops at the top of the plot instead of stretching
    the axis to 1e300).
    """
    ax = new_axes(ax)
    for label, values in series.items():
        xs, ys = _xy(values, x)
        ax.plot(xs, _masked(ys, ymax, logy), label=label, marker="o" if markers else None,
                markersize=3)
    grays = ("black", "dimgray", "darkgray")
    for i, (label, values) in enumerate((references or {}).items()):
        xs, ys = _xy(values, x)
        ax.plot(xs, _masked(ys, ymax, logy), "--", color=grays[i % len(grays)], label=label,
                linewidth=1.2)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    place_legend(ax)
    return ax


def plot_lr_sweep(losses: Mapping[float, Sequence[float]], *, threshold: float,
                  threshold_label: str = "2/L", ymax: float | None = 1e6,
                  ylabel: str = r"$f(\theta_t) - f^\star$",
                  ax: Axes | None = None) -> Axes:
    """Loss curves ``{lr: losses}`` on a log axis; blues below ``threshold``, reds above.

    Each curve is labelled with its learning rate as a multiple of the threshold, e.g.
    ``η = 0.95 × 2/L``, so the figure reads the same for any problem.
    """
    ax = new_axes(ax)
    below = sorted(lr for lr in losses if lr < threshold)
    above = sorted(lr for lr in losses if lr >= threshold)
    blues = plt.get_cmap("Blues")(np.linspace(0.45, 0.95, max(len(below), 1)))
    reds = plt.get_cmap("Reds")(np.linspace(0.45, 0.95, max(len(above), 1)))
    for lrs, colors in ((below, blues), (above, reds)):
        for lr, color in zip(lrs, colors):
            ys = _masked(np.asarray(losses[lr], dtype=float), ymax, logy=True)
            ax.plot(np.arange(len(ys)), ys, color=color,
                    label=rf"$\eta = {lr / threshold:.3g} \times {threshold_label}$")
    ax.set_yscale("log")
    ax.set_xlabel("step $t$")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    place_legend(ax, ncols=2)
    return ax


def plot_rate_vs_lr(lrs: Sequence[float], predicted: Sequence[float], *,
                    measured: tuple[Sequence[float], Sequence[float]] | None = None,
                    marks: Mapping[str, float] | None = None, ax: Axes | None = None) -> Axes:
    """The predicted contraction factor ρ(η) as a line, ``measured = (lrs, rates)`` as dots,
    a dotted line at ρ = 1 (the edge of divergence) and a vertical line per named η."""
    ax = new_axes(ax)
    ax.plot(lrs, predicted, color="tab:blue", label=r"predicted $\max_i |1 - \eta\lambda_i|$")
    if measured is not None:
        ax.plot(*measured, "o", color="tab:orange", markersize=4, label="measured")
    ax.axhline(1.0, color="tab:red", linestyle=":", linewidth=1, label=r"$\rho = 1$")
    for (label, lr), color in zip((marks or {}).items(), ("black", "dimgray", "darkgray",
                                                           "silver")):
        ax.axvline(lr, color=color, linestyle="--", linewidth=1, label=label)
    ax.set_xlabel(r"learning rate $\eta$")
    ax.set_ylabel(r"contraction factor $\rho$")
    ax.grid(True, alpha=0.3)
    place_legend(ax)
    return ax


def mark_points(points: Mapping[str, object], *, ax: Axes | None = None,
                size: float = 70, count: bool = True) -> Axes:
    """Scatter ``{label: array of shape (k, 2)}`` (x, y pairs) with one style per label.

    Labels ``"minimum"``, ``"global minimum"``, ``"local minimum"``, ``"saddle"``,
    ``"maximum"`` and ``"degenerate"`` have fixed styles; others take spare markers. Labels
    with no points are skipped. With ``count`` each legend entry ends with its number of
    points, e.g. ``saddle (4)``.
    """
    ax = new_axes(ax)
    spare = iter(_SPARE_STYLES * 4)
    for label, pts in points.items():
        pts = np.asarray(pts, dtype=float).reshape(-1, 2)
        if len(pts) == 0:
            continue
        style = dict(s=size, edgecolors="black", linewidths=0.8, zorder=5)
        style.update(_POINT_STYLES.get(label) or next(spare))
        ax.scatter(pts[:, 0], pts[:, 1], label=f"{label} ({len(pts)})" if count else label,
                   **style)
    place_legend(ax)
    return ax


def plot_sweep(values, xs: Sequence[float], ys: Sequence[float], *, xlabel: str, ylabel: str,
               title: str | None = None, vmin: float | None = None,
               vmax: float | None = None, fmt: str = "{:.2f}", best: str = "min",
               colorbar: str | None = None, ax: Axes | None = None) -> Axes:
    """A grid sweep: ``values[i, j]`` measured at ``ys[i]`` (rows) and ``xs[j]`` (columns).

    Each cell is coloured on a log scale from ``vmin`` to ``vmax`` (defaults: the data's
    range) and labelled with its value; the best cell (``best="min"`` or ``"max"``) is boxed.
    The axes are labelled with the grid values themselves, so the cells are evenly spaced
    whatever the spacing of the grid. Returns the Axes.
    """
    if best not in ("min", "max"):
        raise ValueError(f"best must be 'min' or 'max', got {best!r}")
    values = np.asarray(values, dtype=float)
    if values.shape != (len(ys), len(xs)):
        raise ValueError(f"values must have shape (len(ys), len(xs)) = "
                         f"{(len(ys), len(xs))}, got {values.shape}")
    ax = new_axes(ax)
    finite = values[np.isfinite(values)]
    norm = LogNorm(vmin=vmin if vmin is not None else finite.min(),
                   vmax=vmax if vmax is not None else finite.max(), clip=True)
    mesh = ax.imshow(values, norm=norm, cmap="viridis_r" if best == "min" else "viridis",
                     origin="lower", aspect="auto")
    for i in range(len(ys)):
        for j in range(len(xs)):
            shade = norm(values[i, j]) if np.isfinite(values[i, j]) else 0.5
            light = shade > 0.5 if best == "min" else shade < 0.5
            ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=9,
                    color="white" if light else "black")
    pick = np.nanargmin(values) if best == "min" else np.nanargmax(values)
    i, j = np.unravel_index(pick, values.shape)
    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="tab:red",
                           linewidth=2.5, label="best"))
    ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
    ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label=colorbar)
    return ax
