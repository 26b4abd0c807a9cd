"""A constrained problem: the contour of a landscape, the feasible set, and projected paths
(chapter 2).

:func:`plot_constrained` draws :func:`~descent.plots.plot_trajectories` with the feasible
set :math:`C` shaded on top of the contour lines, so that a reader sees where the
unconstrained minimum lies (★) and where projected gradient descent stops instead.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes

from descent.landscapes import Landscape
from descent.plots.landscape import plot_trajectories
from descent.plots.style import place_legend

__all__ = ["plot_constrained"]


def plot_constrained(landscape: Landscape, region, trajectories: Mapping[str, np.ndarray], *,
                     ax: Axes | None = None, label: str = "feasible set $C$",
                     view=None, legend: bool = True) -> Axes:
    """The contour of ``landscape``, the set ``region`` shaded, and ``trajectories`` on top.

    ``region`` is any set of :mod:`descent.convex` (it has ``outline()``, the boundary of a
    2-D set as a polygon, or a segment for the simplex). ``view`` ((x0, x1), (y0, y1)) zooms
    in on part of ``landscape.bounds`` (the contour levels stay those of the whole box).
    Returns the Axes.
    """
    ax = plot_trajectories(landscape, trajectories, ax=ax, legend=False)
    if view is not None:
        (x0, x1), (y0, y1) = view
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
    outline = np.asarray(region.outline(), dtype=float)
    if len(outline) > 2:
        ax.fill(outline[:, 0], outline[:, 1], color="tab:gray", alpha=0.18, zorder=2,
                label=label)
        ax.plot(outline[:, 0], outline[:, 1], color="dimgray", linewidth=1.2, zorder=2,
                label="_boundary")
    else:
        ax.plot(outline[:, 0], outline[:, 1], color="dimgray", linewidth=4, alpha=0.5,
                zorder=2, label=label)
    if legend:
        place_legend(ax)
    return ax
