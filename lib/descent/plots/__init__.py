"""descent.plots: every figure of the book, drawn with matplotlib (chapters 1–8).

Each function draws on the ``ax`` it is given (or a new one) and returns it; none calls
``plt.show()``. The book draws only through these, in the house style of
:mod:`descent.plots.style`: figures as wide as the page, text legible as shown, legends
where they cover no data. A chapter calls :func:`book_style` once, in its first cell.
"""

from descent.plots.analysis import (
    mark_points,
    plot_lr_sweep,
    plot_rate_vs_lr,
    plot_series,
    plot_sweep,
)
from descent.plots.bands import plot_bands
from descent.plots.bench import plot_step_times
from descent.plots.convex import plot_constrained
from descent.plots.curves import plot_history, plot_loss_curves, plot_lr_finder
from descent.plots.interactive import momentum_player, race_player
from descent.plots.landscape import plot_contour, plot_trajectories
from descent.plots.rates import plot_rate_phase_diagram
from descent.plots.schedule import plot_schedules
from descent.plots.style import (
    book_style,
    check_figure,
    legend_overlaps,
    place_legend,
    share_legend,
    subplots,
)

__all__ = ["plot_series", "plot_lr_sweep", "plot_rate_vs_lr", "mark_points", "plot_sweep",
           "plot_contour", "plot_trajectories", "plot_rate_phase_diagram", "plot_schedules",
           "plot_loss_curves", "plot_history", "plot_lr_finder", "plot_step_times", "plot_bands",
           "book_style", "subplots", "place_legend", "share_legend", "legend_overlaps",
           "check_figure", "plot_constrained", "momentum_player", "race_player"]
