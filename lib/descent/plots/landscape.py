"""Contours of a 2-D landscape, with optimizer trajectories on top (chapters 1–5).

Matplotlib only. Each function draws on the ``ax`` it is given, or on a new one, and returns
it; none calls ``plt.show()``.

- :func:`plot_contour` — filled-free contour lines of :math:`f` over ``landscape.bounds``,
  with the known minima (★), saddles (×) and maxima (▲) marked;
- :func:`plot_trajectories` — the contour plus one line per ``{label: path}`` (a path is the
  ``(T+1, 2)`` array of :func:`descent.landscapes.trajectory`), a circle at each start and a
  square at each end.

Conventions: each trajectory is exactly one ``Line2D`` in ``ax.lines`` (labelled, so it is in
the legend); the markers for critical points and for starts and ends are scatter collections,
left out of the legend. Contour levels default to quantiles of :math:`f` on the grid, which
spreads them well over landscapes as steep as Rosenbrock's without a log scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes

from descent._checks import check_int
from descent.landscapes import Landscape
from descent.plots.style import new_axes, place_legend

__all__ = ["plot_contour", "plot_trajectories"]

_CRITICAL = {"minima": ("*", 160, "minimum"), "saddles": ("X", 90, "saddle"),
             "maxima": ("^", 90, "maximum")}


def _check_2d(landscape) -> Landscape:
    if not isinstance(landscape, Landscape):
        raise TypeError(f"landscape must be a Landscape, got {type(landscape).__name__}")
    if landscape.dim != 2:
        raise ValueError(f"only 2-D landscapes can be drawn, {landscape.name} has dim "
                         f"{landscape.dim}")
    return landscape


def _levels(Z: np.ndarray, levels: int | Sequence[float]) -> np.ndarray:
    if not isinstance(levels, int | np.integer):
        return np.asarray(levels, dtype=float)
    check_int(int(levels), "levels", low=2)
    finite = Z[np.isfinite(Z)]
    # Quantiles, squared towards the bottom so the basins get more lines than the walls.
    q = np.linspace(0.0, 1.0, int(levels) + 1)[:-1] ** 2
    return np.unique(np.quantile(finite, q))


def plot_contour(landscape: Landscape, *, ax: Axes | None = None,
                 levels: int | Sequence[float] = 30, resolution: int = 200,
                 critical_points: bool = True, cmap: str = "viridis") -> Axes:
    """Contour lines of a 2-D landscape over its ``bounds``; returns the Axes.

    ``levels`` is a number of levels (placed at quantiles of :math:`f` on the grid) or the
    level values themselves. With ``critical_points`` the known minima, saddles and maxima
    are marked.
    """
    _check_2d(landscape)
    ax = new_axes(ax, height=4.2)
    X, Y, Z = landscape.grid(resolution)
    ax.contour(X, Y, Z, levels=_levels(Z, levels), cmap=cmap, linewidths=0.8)
    if critical_points:
        for attribute, (marker, size, kind) in _CRITICAL.items():
            points = getattr(landscape, attribute)
            if len(points):
                ax.scatter(points[:, 0], points[:, 1], marker=marker, s=size, c="black",
                           zorder=4, label=f"_{kind}")
    (x0, x1), (y0, y1) = landscape.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("$x$")
    ax.set_ylabel("$y$")
    ax.set_title(landscape.name)
    return ax


def plot_trajectories(landscape: Landscape, trajectories: Mapping[str, np.ndarray], *,
                      ax: Axes | None = None, levels: int | Sequence[float] = 30,
                      resolution: int = 200, legend: bool = True) -> Axes:
    """The contour of ``landscape`` with each ``{label: path}`` drawn on it; returns the Axes.

    A path is an array of shape ``(T+1, 2)``. Points outside ``bounds`` (a diverging run) are
    drawn but clipped by the axes; the view does not grow to follow them.
    """
    _check_2d(landscape)
    ax = plot_contour(landscape, ax=ax, levels=levels, resolution=resolution)
    for label, path in trajectories.items():
        path = np.asarray(path, dtype=float)
        if path.ndim != 2 or path.shape[1] != 2 or len(path) == 0:
            raise ValueError(f"trajectory {label!r} must have shape (T+1, 2), "
                             f"got {path.shape}")
        (line,) = ax.plot(path[:, 0], path[:, 1], "-", marker=".", markersize=3,
                          linewidth=1.2, label=str(label), zorder=3)
        color = line.get_color()
        ax.scatter(*path[0], marker="o", s=40, facecolors="white", edgecolors=color,
                   zorder=5, label="_start")
        ax.scatter(*path[-1], marker="s", s=40, color=color, zorder=5, label="_end")
    if legend and trajectories:
        place_legend(ax)
    return ax
