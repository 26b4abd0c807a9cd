"""The (η, β) phase diagram of momentum on a quadratic (chapter 4).

Error curves and rate-vs-η plots live in :mod:`descent.plots.analysis`."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from descent.plots.style import new_axes, place_legend


def plot_rate_phase_diagram(lrs, momenta, rates, *, marks: dict | None = None, ax=None,
                            xlabel: str = r"learning rate $\eta$ ($\alpha$)",
                            ylabel: str = r"momentum $\beta$", title: str | None = None,
                            levels=(0.9, 0.95, 0.99)):
    """Colour map of the rate ρ(η, β) over a grid, the ρ = 1 stability edge, and marked points.

    ``rates`` has shape ``(len(momenta), len(lrs))``; values ≥ 1 (divergence) are greyed out.
    ``marks`` maps a label to an ``(lr, momentum)`` point; ``levels`` are labelled iso-rate
    lines (white), drawn where the grid reaches them.
    """
    ax = new_axes(ax, height=4.0)
    lrs, momenta = np.asarray(lrs), np.asarray(momenta)
    rates = np.asarray(rates, dtype=float)
    shown = np.ma.masked_where(rates >= 1, rates)
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    mesh = ax.pcolormesh(lrs, momenta, shown, cmap=cmap, vmin=float(np.nanmin(rates)),
                         vmax=1.0, shading="auto", rasterized=True)
    ax.figure.colorbar(mesh, ax=ax, label=r"rate $\rho$ (grey: diverges)")
    ax.contour(lrs, momenta, rates, levels=[1.0], colors="k", linewidths=1)
    inside = [v for v in levels if np.nanmin(rates) < v < 1]
    if inside:
        iso = ax.contour(lrs, momenta, rates, levels=inside, colors="w", linewidths=0.7)
        ax.clabel(iso, fmt="%.2f", fontsize=8)
    for label, (lr, beta) in (marks or {}).items():
        ax.plot(lr, beta, "o", markeredgecolor="k", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    place_legend(ax)
    return ax
