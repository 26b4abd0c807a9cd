"""Mean curves with seed-to-seed bands against any x (chapters 5-6): sweeps and evaluations.

:func:`descent.plots.plot_loss_curves` draws per-step histories against the step. Two
other figures need the same mean-and-band picture against other x values:

- a **learning-rate sweep**: the final loss of each method at each rate it was run at, mean
  over seeds with a min–max band, on a log axis of η, the best rate of each method starred;
- **evaluations every k steps** (the raw, EMA and SWA weights of one run, say), which start
  and stop at different steps.

:func:`plot_bands` draws both. Data is computed by the caller, so the figure shows exactly
the numbers the chapter prints and asserts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes

from descent.plots.style import new_axes, place_legend

__all__ = ["plot_bands"]


def plot_bands(curves: Mapping[str, tuple[Sequence[float], Sequence[Sequence[float]]]], *,
               xlabel: str, ylabel: str, logx: bool = False, logy: bool = True,
               markers: bool = False, best: str | None = None, band: str = "minmax",
               title: str | None = None, ax: Axes | None = None) -> Axes:
    """``{label: (x, runs)}``: one line per label, the mean over runs, with a band.

    ``runs`` is a sequence of runs (seeds), each a sequence of y values at the points ``x``.
    ``band`` is ``"minmax"`` (from the lowest to the highest run) or ``"std"`` (mean ± 1
    std); ``markers`` marks each x; ``best="min"`` (or ``"max"``) stars the point of each
    line with the lowest (highest) mean and says its x in the legend. Returns the Axes.
    """
    if band not in ("minmax", "std"):
        raise ValueError(f"band must be 'minmax' or 'std', got {band!r}")
    if best not in (None, "min", "max"):
        raise ValueError(f"best must be None, 'min' or 'max', got {best!r}")
    ax = new_axes(ax)
    for label, (x, runs) in curves.items():
        xs = np.asarray(x, dtype=float)
        stack = np.atleast_2d(np.asarray(runs, dtype=float))
        if stack.shape[1] != len(xs):
            raise ValueError(f"{label!r}: each run must have one value per x ({len(xs)}), "
                             f"got runs of shape {stack.shape}")
        mean = stack.mean(axis=0)
        name = f"{label} (n={len(stack)})" if len(stack) > 1 else label
        if best is not None:
            i = int(np.argmin(mean) if best == "min" else np.argmax(mean))
            name += f", best at {xs[i]:g}"
        (line,) = ax.plot(xs, mean, marker="o" if markers else None, markersize=4, label=name)
        if len(stack) > 1:
            if band == "minmax":
                low, high = stack.min(axis=0), stack.max(axis=0)
            else:
                low, high = mean - stack.std(axis=0), mean + stack.std(axis=0)
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        if best is not None:
            ax.plot([xs[i]], [mean[i]], marker="*", markersize=13, color=line.get_color(),
                    markeredgecolor="black", linestyle="none")
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
