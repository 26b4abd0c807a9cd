"""Loss curves, training histories and the LR-finder curve (chapters 3–8).

Matplotlib only. Each function draws on the ``ax`` (or ``fig``) it is given, or on a new
one, and returns it; none calls ``plt.show()``.

- :func:`plot_loss_curves` — one line per label, the mean over seeds, with a min–max or
  ±1 std band;
- :func:`plot_history` — four panels of a :class:`descent.train.History`: loss, gradient
  norm, update ratio :math:`\\lVert\\Delta\\theta\\rVert/\\lVert\\theta\\rVert` and learning rate;
- :func:`plot_lr_finder` — the range test's raw and smoothed loss against :math:`\\eta` on a
  log axis, with the suggestions marked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from descent.plots.style import CONTENT_WIDTH_IN, new_axes, place_legend

__all__ = ["plot_loss_curves", "plot_history", "plot_lr_finder"]


def _series(run: Any, key: str) -> np.ndarray:
    """One run as a float array: a History, its dict, or a plain sequence of numbers."""
    if hasattr(run, key):
        run = getattr(run, key)
    elif isinstance(run, Mapping):
        run = run[key]
    return np.asarray(run, dtype=float)


def _runs(value: Any, key: str) -> list[np.ndarray]:
    """A label's value: one run, or a list of runs (seeds)."""
    if hasattr(value, key) or isinstance(value, Mapping):
        return [_series(value, key)]
    if isinstance(value, Sequence | np.ndarray) and len(value) and not np.isscalar(value[0]):
        return [_series(run, key) for run in value]
    return [_series(value, key)]


def plot_loss_curves(curves: Mapping[str, Any], *, ax=None, key: str = "loss",
                     band: str | None = "minmax", log: bool = True, smooth: int = 1,
                     xlabel: str = "step", ylabel: str | None = None, legend: bool = True):
    """Plot ``{label: run or [runs over seeds]}`` as mean lines with a band across seeds.

    A run is a :class:`~descent.train.History`, its ``to_dict()``, or a list of numbers;
    ``key`` picks the series (``"loss"``, ``"grad_norm"``, …). Runs of different lengths
    (e.g. one stopped at a NaN) are cut to the shortest. ``band`` is ``"minmax"``, ``"std"``
    (mean ± 1 std) or None; ``smooth > 1`` applies a trailing moving average of that width
    to each run before averaging; ``log`` puts the y axis on a log scale; ``legend=False``
    leaves the legend out (for panels that share one, :func:`descent.plots.share_legend`).
    Returns the Axes.
    """
    if band not in ("minmax", "std", None):
        raise ValueError(f"band must be 'minmax', 'std' or None, got {band!r}")
    ax = new_axes(ax)
    for label, value in curves.items():
        runs = _runs(value, key)
        n = min(len(r) for r in runs)
        stack = np.stack([r[:n] for r in runs])
        if smooth > 1:
            kernel = np.ones(smooth)
            stack = np.stack([np.convolve(r, kernel)[:n] / np.minimum(np.arange(1, n + 1),
                                                                      smooth) for r in stack])
        steps = np.arange(1, n + 1)
        mean = stack.mean(axis=0)
        (line,) = ax.plot(steps, mean, label=f"{label} (n={len(runs)})" if len(runs) > 1
                          else label)
        if band is not None and len(runs) > 1:
            if band == "minmax":
                low, high = stack.min(axis=0), stack.max(axis=0)
            else:
                low, high = mean - stack.std(axis=0), mean + stack.std(axis=0)
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel or key.replace("_", " "))
    if legend:
        place_legend(ax)
    return ax


def plot_history(history, *, fig=None, title: str | None = None):
    """Four panels of one run: loss, gradient norm, update ratio and learning rate.

    ``history`` is a :class:`~descent.train.History` or its ``to_dict()``. Returns the
    Figure; its Axes are ``fig.axes`` in that order.
    """
    if fig is None:
        fig = plt.figure(figsize=(CONTENT_WIDTH_IN, 5.0), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    steps = _series(history, "step")
    panels = [("loss", "loss", True), ("grad_norm", "gradient norm ‖g‖ (before clipping)", True),
              ("update_ratio", "update ratio ‖Δθ‖/‖θ‖", True), ("lr", "learning rate η", False)]
    for ax, (key, label, log) in zip(axes, panels):
        values = _series(history, key)
        ax.plot(steps, values)
        if log and np.all(values[np.isfinite(values)] > 0) and np.isfinite(values).any():
            ax.set_yscale("log")
        ax.set_title(label)
    for ax in axes[2:]:
        ax.set_xlabel("step")
    if title:
        fig.suptitle(title)
    return fig


_MARKERS = {"steepest": ("o", "steepest"), "minimum": ("v", "minimum / 10"),
            "valley": ("s", "valley")}


def plot_lr_finder(result, *, ax=None, raw: bool = True):
    """The LR range test: loss against learning rate (log axis), suggestions marked.

    ``result`` is a :class:`~descent.lr_finder.LRFinderResult` or its ``to_dict()``. The
    smoothed curve is drawn solid, the raw losses faint (``raw=False`` hides them); each
    suggestion gets a marker on the smoothed curve and a dotted vertical line. Returns the
    Axes.
    """
    ax = new_axes(ax)
    lrs, smoothed = _series(result, "lrs"), _series(result, "smoothed")
    if raw:
        ax.plot(lrs, _series(result, "losses"), color="0.7", linewidth=0.8, label="loss")
    (line,) = ax.plot(lrs, smoothed, label="smoothed loss")
    suggestions = (result.suggestions if hasattr(result, "suggestions")
                   else result["suggestions"])
    for name, lr in suggestions.items():
        marker, label = _MARKERS.get(name, ("x", name))
        y = np.interp(np.log(lr), np.log(lrs), smoothed)
        ax.axvline(lr, color="0.5", linestyle=":", linewidth=0.8)
        ax.plot([lr], [y], marker=marker, linestyle="none", markersize=8,
                label=f"{label}: {lr:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("loss")
    shown = np.concatenate([smoothed, _series(result, "losses")]) if raw else smoothed
    finite, start = shown[np.isfinite(shown)], smoothed[np.isfinite(smoothed)]
    if finite.size and start.size:   # keep the diverging tail from flattening the rest
        low, high = finite.min(), min(finite.max(), start[0] * 1.5)
        if high > low:
            pad = 0.05 * (high - low)
            ax.set_ylim(low - pad, high + pad)
    place_legend(ax)
    return ax
