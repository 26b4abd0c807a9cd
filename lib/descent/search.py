"""Hyperparameter search: grids and random search on a log scale (chapter 8).

A learning rate or a weight decay is searched on a **log scale**: the difference between
:math:`10^{-4}` and :math:`10^{-3}` matters as much as that between :math:`10^{-2}` and
:math:`10^{-1}`. Random search draws each hyperparameter **log-uniformly**,

.. math::

    \\log h \\sim \\mathcal U(\\log a, \\log b), \\qquad h = a\\,(b/a)^{u},\\quad
    u \\sim \\mathcal U(0, 1),

independently. A grid takes :math:`m` values per hyperparameter, so a budget of :math:`m^k`
trials in :math:`k` hyperparameters tries only :math:`m` distinct values of each; random
search with the same budget tries :math:`m^k` distinct values of every one of them
(Bergstra & Bengio 2012). When only one hyperparameter matters, that is the difference
between :math:`m` and :math:`m^k` tries of it.

- :func:`log_uniform` — the draws;
- :func:`log_grid` — :math:`m` log-spaced values, at the ends of the range or shifted
  inside it (``offset``), so that a grid can be placed at random too;
- :func:`grid_search` and :func:`random_search` — evaluate an objective at the trials and
  return them, best first.

Symbols ↔ arguments: :math:`a, b` ``low``, ``high``; :math:`m` ``num``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from descent._checks import check_int, check_positive, check_range

__all__ = ["log_uniform", "log_grid", "Trial", "grid_search", "random_search"]


class Trial(NamedTuple):
    """One evaluated setting: ``params`` (name → value) and the objective's ``value``."""

    params: dict[str, float]
    value: float


def _check_range(low, high) -> tuple[float, float]:
    low = check_positive(low, "low", "a")
    high = check_positive(high, "high", "b")
    if high < low:
        raise ValueError(f"high (b) must be >= low (a), got low={low!r}, high={high!r}")
    return low, high


def log_uniform(low: float, high: float, size=None, *,
                rng: np.random.Generator | int | None = None) -> np.ndarray | float:
    """Draws with :math:`\\log h` uniform on :math:`[\\log a, \\log b]` (``low``, ``high``).

    ``rng`` is a NumPy ``Generator`` or a seed; ``size`` as in NumPy (None: one float).
    """
    low, high = _check_range(low, high)
    rng = np.random.default_rng(rng)
    u = rng.uniform(0.0, 1.0, size)
    draws = low * (high / low) ** u                          # h = a (b/a)^u
    return float(draws) if size is None else draws


def log_grid(low: float, high: float, num: int, *, offset: float | None = None) -> np.ndarray:
    """``num`` values evenly spaced in :math:`\\log h` over :math:`[a, b]`.

    With ``offset=None`` the grid includes both ends (``np.geomspace``). With an ``offset``
    :math:`o \\in [0, 1)` the range is cut into ``num`` cells of equal log-width and the grid
    takes the point at fraction :math:`o` of each, :math:`a\\,(b/a)^{(k + o)/m}`:
    :math:`o = 1/2` gives the cells' centres, a random :math:`o` a randomly placed grid.
    """
    low, high = _check_range(low, high)
    check_int(num, "num", low=1)
    if offset is None:
        return np.geomspace(low, high, num)
    offset = check_range(offset, "offset", "o", low=0.0, high=1.0, high_open=True)
    return low * (high / low) ** ((np.arange(num) + offset) / num)


def _evaluate(objective: Callable[..., float], settings) -> list[Trial]:
    trials = [Trial(dict(s), float(objective(**s))) for s in settings]
    # best first; NaN (a diverged run) counts as the worst
    return sorted(trials, key=lambda t: (math.isnan(t.value), t.value))


def grid_search(objective: Callable[..., float],
                grid: Mapping[str, Sequence[float]]) -> list[Trial]:
    """``objective(**params)`` at every combination of the ``grid``'s values, best first.

    The budget is the product of the grid's sizes.
    """
    if not grid:
        raise ValueError("grid must name at least one hyperparameter")
    names = list(grid)
    settings = [dict(zip(names, values))
                for values in itertools.product(*(list(grid[n]) for n in names))]
    return _evaluate(objective, settings)


def random_search(objective: Callable[..., float],
                  space: Mapping[str, tuple[float, float]], trials: int, *,
                  rng: np.random.Generator | int | None = None) -> list[Trial]:
    """``objective(**params)`` at ``trials`` log-uniform draws from ``space``, best first.

    ``space`` maps each name to its range ``(low, high)``; every name is drawn
    independently, in the order given, from one ``rng`` (a Generator or a seed).
    """
    if not space:
        raise ValueError("space must name at least one hyperparameter")
    check_int(trials, "trials", low=1)
    rng = np.random.default_rng(rng)
    draws = {name: log_uniform(*space[name], size=trials, rng=rng) for name in space}
    settings = [{name: float(draws[name][i]) for name in space} for i in range(trials)]
    return _evaluate(objective, settings)
