"""Learning-rate schedules drawn against the step (chapter 6).

Matplotlib only; draws on the ``ax`` it is given, or on a new one, and returns it; never
calls ``plt.show()``. Step 0 is the first optimizer step, as in :mod:`descent.schedules`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from matplotlib.axes import Axes

from descent._checks import check_int
from descent.plots.style import new_axes, place_legend

__all__ = ["plot_schedules"]


def plot_schedules(schedules: Mapping[str, Callable[[int], float]], steps: int, *,
                   ax: Axes | None = None, log: bool = False, legend: bool = True) -> Axes:
    """One line per ``{label: schedule}``: :math:`\\eta_t` for :math:`t = 0, …, \\text{steps}-1`.

    A schedule is any callable ``step -> lr`` (a :class:`descent.schedules.Schedule` or a
    plain function). ``log`` puts the learning rate on a log axis. Returns the Axes.
    """
    check_int(steps, "steps", low=1)
    ax = new_axes(ax, height=3.3)
    t = np.arange(steps)
    for label, schedule in schedules.items():
        if not callable(schedule):
            raise TypeError(f"schedule {label!r} must be callable step -> lr, "
                            f"got {type(schedule).__name__}")
        ax.plot(t, [schedule(int(k)) for k in t], label=str(label))
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step $t$")
    ax.set_ylabel(r"learning rate $\eta_t$")
    if legend and schedules:
        place_legend(ax)
    return ax
