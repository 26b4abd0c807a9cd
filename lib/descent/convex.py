"""Convexity, projections onto convex sets, and projected gradient descent (chapters 1–2).

A set :math:`C` is **convex** when it holds every segment between two of its points; a
function :math:`f` is convex when it lies below its chords (Jensen's inequality),

.. math::

    f\\bigl(t x + (1-t) y\\bigr) \\le t f(x) + (1-t) f(y), \\qquad t \\in [0, 1].

:func:`jensen_gap` measures the chord minus the function (never negative for a convex
:math:`f`). The **projection** onto a closed convex set is its nearest point,

.. math::

    P_C(x) = \\arg\\min_{y \\in C} \\lVert y - x \\rVert_2 ,

unique, and characterised by the obtuse-angle condition
:math:`(x - P_C(x))^\\top (y - P_C(x)) \\le 0` for every :math:`y \\in C`. Three sets have
projections in closed form (or nearly):

- :class:`Ball` :math:`\\{y : \\lVert y - c\\rVert \\le r\\}`: pull :math:`x` back along the
  ray to the centre, :math:`c + r\\,(x - c)/\\max(r, \\lVert x - c\\rVert)`;
- :class:`Box` :math:`\\{y : l \\le y \\le u\\}`: clip each coordinate;
- :class:`Simplex` :math:`\\{y : y \\ge 0, \\sum_i y_i = s\\}`: shift and clip,
  :math:`\\max(x - \\tau, 0)` with the one :math:`\\tau` that makes the sum :math:`s`, found by
  sorting (Held, Wolfe & Crowder 1974; Duchi et al. 2008).

**Projected gradient descent** is a step of any rule followed by the projection,
:math:`\\theta_t = P_C\\bigl(\\theta_{t-1} - \\eta\\nabla f(\\theta_{t-1})\\bigr)`
(:func:`projected_trajectory`).

Conventions: points have their coordinates on the **last** axis, as in
:mod:`descent.landscapes`, so a batch of points ``(..., n)`` is projected in one call.
Projections take NumPy arrays (or anything ``np.asarray`` accepts) and return float64 arrays.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from descent._checks import check_int, check_positive
from descent.landscapes import Landscape

__all__ = ["jensen_gap", "Ball", "Box", "Simplex", "project_ball", "project_box",
           "project_simplex", "projected_trajectory"]


def jensen_gap(f: Callable, x, y, t) -> np.ndarray:
    """The chord minus the function: :math:`t f(x) + (1-t) f(y) - f(t x + (1-t) y)`.

    Non-negative for every ``x``, ``y`` and ``t ∈ [0, 1]`` exactly when ``f`` is convex
    (chapter 1). ``x`` and ``y`` are points ``(..., n)``; ``t`` broadcasts against their
    leading axes (a scalar, or one ``t`` per pair). ``f`` maps ``(..., n)`` to ``(...)``, as
    a :class:`~descent.landscapes.Landscape` does.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if np.any((t < 0) | (t > 1)):
        raise ValueError(f"t must be in [0, 1], got values from {t.min()} to {t.max()}")
    tt = t[..., None]
    middle = tt * x + (1 - tt) * y                            # a point of the segment
    return t * f(x) + (1 - t) * f(y) - f(middle)              # chord − function


def _points(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("x must be a point (an array with at least one axis), got a scalar")
    return x


# -- the projections --------------------------------------------------------------------------

def project_ball(x, radius: float = 1.0, center=0.0) -> np.ndarray:
    """:math:`P(x) = c + r\\,(x - c)/\\max(r, \\lVert x - c\\rVert)`: the nearest point of the
    ball of radius :math:`r` around :math:`c` (``radius``, ``center``)."""
    r = check_positive(radius, "radius", "r")
    x = _points(x)
    c = np.broadcast_to(np.asarray(center, dtype=np.float64), x.shape[-1:])
    d = x - c
    norm = np.linalg.norm(d, axis=-1, keepdims=True)
    return c + d * (r / np.maximum(norm, r))                  # inside: unchanged


def project_box(x, low, high) -> np.ndarray:
    """:math:`P(x)_i = \\min(\\max(x_i, l_i), u_i)`: the nearest point of the box
    :math:`l \\le y \\le u` (``low``, ``high``; scalars or one bound per coordinate)."""
    x = _points(x)
    low = np.broadcast_to(np.asarray(low, dtype=np.float64), x.shape[-1:])
    high = np.broadcast_to(np.asarray(high, dtype=np.float64), x.shape[-1:])
    if np.any(low > high):
        raise ValueError(f"low must be <= high in every coordinate, got low={low}, "
                         f"high={high}")
    return np.clip(x, low, high)


def project_simplex(x, total: float = 1.0) -> np.ndarray:
    """The nearest point of the simplex :math:`\\{y \\ge 0, \\sum_i y_i = s\\}` (``total`` s).

    :math:`P(x) = \\max(x - \\tau, 0)`, where :math:`\\tau` solves
    :math:`\\sum_i \\max(x_i - \\tau, 0) = s`. Sort :math:`x` in decreasing order,
    :math:`u_1 \\ge u_2 \\ge \\dots`; the number of coordinates left positive is the largest
    :math:`k` with :math:`u_k > (\\sum_{j \\le k} u_j - s)/k`, and then
    :math:`\\tau = (\\sum_{j \\le k} u_j - s)/k` (Duchi et al. 2008, figure 1). These are the
    KKT conditions of the projection: :math:`y_i = x_i - \\tau` where :math:`y_i > 0`, and
    :math:`x_i \\le \\tau` where :math:`y_i = 0`.
    """
    s = check_positive(total, "total", "s")
    x = _points(x)
    n = x.shape[-1]
    u = -np.sort(-x, axis=-1)                                 # decreasing
    cumulative = np.cumsum(u, axis=-1) - s
    k = np.arange(1, n + 1)
    positive = u > cumulative / k                             # u_k > (Σ_{j≤k} u_j − s)/k
    rho = n - np.argmax(positive[..., ::-1], axis=-1)         # the largest such k (≥ 1)
    tau = np.take_along_axis(cumulative, rho[..., None] - 1, axis=-1) / rho[..., None]
    return np.maximum(x - tau, 0.0)


# -- the sets ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ball:
    """The ball :math:`\\{y : \\lVert y - c\\rVert \\le r\\}` (``center`` c, ``radius`` r)."""

    center: tuple[float, ...]
    radius: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "center", tuple(float(v) for v in np.ravel(self.center)))
        object.__setattr__(self, "radius", check_positive(self.radius, "radius", "r"))

    def project(self, x) -> np.ndarray:
        return project_ball(x, self.radius, self.center)

    def contains(self, x, tol: float = 1e-12) -> np.ndarray:
        d = np.asarray(x, dtype=np.float64) - np.asarray(self.center)
        return np.linalg.norm(d, axis=-1) <= self.radius * (1 + tol)

    def outline(self, n: int = 200) -> np.ndarray:
        """``(n, 2)`` points around the boundary of a 2-D ball, for drawing."""
        _check_plane(self.center, "Ball")
        a = np.linspace(0, 2 * np.pi, n)
        return np.asarray(self.center) + self.radius * np.stack([np.cos(a), np.sin(a)], -1)


@dataclass(frozen=True)
class Box:
    """The box :math:`\\{y : l \\le y \\le u\\}` (``low`` l, ``high`` u, one per coordinate)."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self):
        low = tuple(float(v) for v in np.ravel(self.low))
        high = tuple(float(v) for v in np.ravel(self.high))
        if len(low) != len(high) or any(a > b for a, b in zip(low, high)):
            raise ValueError(f"low and high must have the same length and low <= high, "
                             f"got low={low}, high={high}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def project(self, x) -> np.ndarray:
        return project_box(x, self.low, self.high)

    def contains(self, x, tol: float = 1e-12) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.all((x >= np.asarray(self.low) - tol) & (x <= np.asarray(self.high) + tol),
                      axis=-1)

    def outline(self, n: int = 5) -> np.ndarray:
        """The 5 corners (closed) of a 2-D box, for drawing."""
        _check_plane(self.low, "Box")
        (x0, y0), (x1, y1) = self.low, self.high
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])


@dataclass(frozen=True)
class Simplex:
    """The simplex :math:`\\{y : y \\ge 0, \\sum_i y_i = s\\}` (``total`` s)."""

    total: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "total", check_positive(self.total, "total", "s"))

    def project(self, x) -> np.ndarray:
        return project_simplex(x, self.total)

    def contains(self, x, tol: float = 1e-12) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.all(x >= -tol, axis=-1) & (np.abs(x.sum(-1) - self.total)
                                            <= tol * max(1.0, self.total) * x.shape[-1])

    def outline(self, n: int = 2) -> np.ndarray:
        """The segment from :math:`(s, 0)` to :math:`(0, s)`: the simplex in the plane."""
        return np.array([[self.total, 0.0], [0.0, self.total]])


def _check_plane(point, name: str) -> None:
    if len(point) != 2:
        raise ValueError(f"only a 2-D {name} can be drawn, this one has dimension "
                         f"{len(point)}")


# -- projected gradient descent ---------------------------------------------------------------

def projected_trajectory(landscape: Landscape, x0, project: Callable, update: Callable,
                         init: Callable, steps: int, **hyper) -> np.ndarray:
    """Projected descent: a step of a pure rule, then the projection (chapter 2).

    .. math:: \\theta_t = P_C\\bigl(\\text{rule}(\\theta_{t-1}, \\nabla f(\\theta_{t-1}))\\bigr)

    With ``sgd_update`` and no momentum this is projected gradient descent,
    :math:`\\theta_t = P_C(\\theta_{t-1} - \\eta\\nabla f(\\theta_{t-1}))`. ``project`` maps a
    point to its projection (a ``Ball(...).project``, or ``lambda x: project_box(x, 0, 1)``);
    ``x0`` is projected first, so every iterate is feasible. The rule's state is kept as the
    rule left it (a momentum buffer is not projected). Returns ``(steps + 1, dim)``, as
    :func:`descent.landscapes.trajectory` does.
    """
    if not isinstance(landscape, Landscape):
        raise TypeError(f"landscape must be a Landscape, got {type(landscape).__name__}")
    check_int(steps, "steps", low=0)
    x = project(np.array(x0, dtype=np.float64))
    if x.shape != (landscape.dim,):
        raise ValueError(f"x0 must have shape ({landscape.dim},) for {landscape.name}, "
                         f"got {x.shape}")
    path = np.empty((steps + 1, landscape.dim))
    path[0] = x
    accepted = inspect.signature(init).parameters
    state = init(x, **{k: v for k, v in hyper.items() if k in accepted})
    for t in range(1, steps + 1):
        x, state = update(x, landscape.grad(x), state, **hyper)    # the unconstrained step
        x = project(x)                                             # θ_t = P_C(…)
        path[t] = x
    return path

