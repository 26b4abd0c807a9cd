"""Timings of one optimizer step against the memory-bandwidth floor (chapter 7).

Matplotlib only; draws on the ``ax`` it is given, or on a new one, and returns it; never
calls ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from descent.plots.style import CONTENT_WIDTH_IN, place_legend

__all__ = ["plot_step_times"]


def plot_step_times(times: Mapping[str, Mapping[str, float]], *,
                    floors: Mapping[str, float] | None = None, ax: Axes | None = None,
                    xlabel: str = "ns per parameter", log: bool = False,
                    title: str | None = None) -> Axes:
    """Grouped horizontal bars: ``{group: {path: time}}``, one colour per path.

    ``floors`` gives, per group, the least time the step can take (bytes moved over the
    memory bandwidth); it is drawn as a black vertical segment across the group's bars.
    Bars read top to bottom in the order given. Returns the Axes.
    """
    if ax is None:
        height = 1.0 + 0.15 * sum(len(v) + 1 for v in times.values())
        _, ax = plt.subplots(figsize=(CONTENT_WIDTH_IN, height), layout="constrained")
    paths = list(dict.fromkeys(path for row in times.values() for path in row))
    colors = {path: plt.get_cmap("tab10")(i % 10) for i, path in enumerate(paths)}
    y, ticks, labels, seen = 0.0, [], [], set()
    for group, row in times.items():
        top = y
        for path, value in row.items():
            ax.barh(y, value, height=0.8, color=colors[path],
                    label=None if path in seen else path)
            seen.add(path)
            y -= 1
        ticks.append((top + y + 1) / 2)
        labels.append(group)
        if floors is not None and group in floors:
            ax.plot([floors[group]] * 2, [top + 0.5, y + 0.5], color="black", linewidth=2,
                    label=None if "floor" in seen else "bandwidth floor")
            seen.add("floor")
        y -= 0.8                                         # a gap between groups
    ax.set_yticks(np.asarray(ticks), labels)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)
    place_legend(ax)
    return ax
