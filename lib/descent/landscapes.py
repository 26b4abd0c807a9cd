"""Test landscapes with exact value, gradient and Hessian (chapter 1; used in chapters 2–5).

A :class:`Landscape` is a function :math:`f:\\mathbb R^n \\to \\mathbb R` with its
gradient :math:`\\nabla f` and Hessian :math:`\\nabla^2 f` written out by hand, its known
minima, saddles and maxima, a plotting box, and the smoothness constant :math:`L` and
strong-convexity constant :math:`\\mu` where they exist.

Conventions that bite
---------------------
- Points have the coordinates on the **last** axis: ``value`` takes ``x`` of shape
  ``(..., n)`` and returns shape ``(...)``; ``grad`` returns ``(..., n)`` and ``hessian``
  ``(..., n, n)``. So a whole ``(H, W, 2)`` grid is one call (what contour plots use).
- ``value`` also accepts a float64 torch tensor (the tests differentiate it with autograd);
  ``grad`` and ``hessian`` are NumPy.
- :math:`L` is the global bound :math:`\\|\\nabla^2 f\\|_2 \\le L` and :math:`\\mu` the global
  bound :math:`\\nabla^2 f \\succeq \\mu I`; ``None`` where no such constant exists.

The runner :func:`trajectory` takes a pure rule from :mod:`descent.rules` and its
hyperparameters as arguments, never globals.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from descent._checks import check_int, check_positive, check_real

__all__ = [
    "Landscape", "quadratic_bowl", "rosenbrock", "beale", "himmelblau", "saddle",
    "rastrigin", "ravine", "nesterov_chain", "trajectory", "classify_critical_point",
]


def _cos(x):
    return torch.cos(x) if isinstance(x, torch.Tensor) else np.cos(x)


def _log_cosh(x):
    """log cosh x = |x| + log(1 + e^{-2|x|}) − log 2, without overflow."""
    if isinstance(x, torch.Tensor):
        a = torch.abs(x)
        return a + torch.log1p(torch.exp(-2 * a)) - math.log(2)
    a = np.abs(x)
    return a + np.log1p(np.exp(-2 * a)) - math.log(2)


def _xy(p) -> tuple[np.ndarray, np.ndarray]:
    """The two coordinates of a point (or of a grid of points) as float64 arrays."""
    p = np.asarray(p, dtype=np.float64)
    return p[..., 0], p[..., 1]


def _array_in(value: Callable) -> Callable:
    """Let ``value`` take lists too: anything but a torch tensor becomes a float64 array."""
    @functools.wraps(value)
    def wrapped(x):
        return value(x if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64))
    return wrapped


def _points(points, dim: int) -> np.ndarray:
    return np.asarray(points, dtype=np.float64).reshape(-1, dim)


def _mat(*rows) -> np.ndarray:
    """Stack entries (arrays of shape (...) or scalars) into a (..., n, n) Hessian."""
    entries = np.broadcast_arrays(*(np.asarray(e, dtype=np.float64) for row in rows for e in row))
    n = len(rows)
    return np.stack(entries, axis=-1).reshape(*entries[0].shape, n, n)


@dataclass(frozen=True)
class Landscape:
    """A test function with its exact derivatives and known critical points.

    ``minima``, ``saddles`` and ``maxima`` are ``(k, n)`` arrays (``k`` may be 0).
    ``bounds`` is ``((x_lo, x_hi), (y_lo, y_hi))`` for plots of 2-D landscapes.
    """

    name: str
    dim: int
    value: Callable[[np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray], np.ndarray]
    hessian: Callable[[np.ndarray], np.ndarray]
    minima: np.ndarray
    saddles: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    maxima: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    bounds: tuple[tuple[float, float], ...] = ((-2.0, 2.0), (-2.0, 2.0))
    L: float | None = None
    mu: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "value", _array_in(self.value))

    def __call__(self, x):
        return self.value(x)

    def __reduce__(self):
        # A landscape's functions are closures: it pickles as the factory call that built it
        # (so that the grader can hand it to a student's process, :mod:`descent.grading.door`).
        recipe = self.__dict__.get("_recipe")
        if recipe is None:
            raise TypeError(f"the landscape {self.name!r} was not built by a factory of "
                            "descent.landscapes, so it cannot be pickled")
        return _rebuild, recipe

    @property
    def kappa(self) -> float | None:
        """Condition number :math:`\\kappa = L/\\mu`, where both exist and μ > 0."""
        return self.L / self.mu if self.L is not None and self.mu else None

    def grid(self, resolution: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Y, Z)`` over ``bounds`` for a contour plot of a 2-D landscape."""
        if self.dim != 2:
            raise ValueError(f"grid needs a 2-D landscape, {self.name} has dim {self.dim}")
        check_int(resolution, "resolution", low=2)
        (x0, x1), (y0, y1) = self.bounds
        X, Y = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
        return X, Y, self.value(np.stack([X, Y], axis=-1))


# -- the landscapes --------------------------------------------------------------------------

_FACTORIES: dict[str, Callable[..., Landscape]] = {}


def _rebuildable(factory: Callable[..., Landscape]) -> Callable[..., Landscape]:
    """Record on each landscape the factory call that built it (see ``Landscape.__reduce__``)."""
    _FACTORIES[factory.__name__] = factory

    @functools.wraps(factory)
    def build(*args, **kwargs) -> Landscape:
        landscape = factory(*args, **kwargs)
        object.__setattr__(landscape, "_recipe", (factory.__name__, args, kwargs))
        return landscape

    return build


def _rebuild(name: str, args: tuple, kwargs: dict) -> Landscape:
    """The landscape ``name(*args, **kwargs)``, for unpickling (factories only)."""
    if name not in _FACTORIES:
        raise ValueError(f"{name!r} is not a landscape factory of descent.landscapes")
    return globals()[name](*args, **kwargs)


@_rebuildable
def quadratic_bowl(kappa: float = 10.0, angle: float = 0.0, *, dim: int = 2,
                   L: float = 1.0) -> Landscape:
    """:math:`f(x) = \\tfrac12 x^\\top A x`, :math:`A = R\\,\\mathrm{diag}(\\lambda)\\,R^\\top`.

    The eigenvalues :math:`\\lambda` run geometrically from :math:`\\mu = L/\\kappa` to
    :math:`L`, so :math:`\\kappa(A) = \\kappa`; :math:`R` rotates the first two axes by
    ``angle`` θ (radians), so in 2-D the flat direction (curvature μ) is
    :math:`(\\cos\\theta, \\sin\\theta)` and the steep one (curvature L) is perpendicular.
    Minimum at 0, gradient :math:`Ax`, Hessian :math:`A`.
    Symbols ↔ arguments: :math:`\\kappa` ``kappa``, :math:`L` ``L``, θ ``angle``.
    """
    kappa = check_real(kappa, "kappa", "κ")
    if kappa < 1:
        raise ValueError(f"kappa (κ) must be in [1, ∞), got {kappa!r}")
    L = check_positive(L, "L")
    angle = check_real(angle, "angle", "θ")
    check_int(dim, "dim", low=1)
    if dim == 1 and kappa != 1:
        raise ValueError(f"kappa (κ) must be 1 for a 1-D bowl (dim=1), got {kappa!r}")
    eigenvalues = np.geomspace(L / kappa, L, dim)
    eigenvalues[0], eigenvalues[-1] = L / kappa, L          # exact ends, not geomspace's rounding
    R = np.eye(dim)
    if dim >= 2:
        c, s = math.cos(angle), math.sin(angle)
        R[:2, :2] = [[c, -s], [s, c]]
    A = R @ np.diag(eigenvalues) @ R.T
    A = (A + A.T) / 2
    A_t = torch.from_numpy(A)

    def value(x):
        Ax = x @ (A_t if isinstance(x, torch.Tensor) else A)
        return 0.5 * (x * Ax).sum(-1)                                 # ½ xᵀAx

    def grad(x):
        return np.asarray(x, dtype=np.float64) @ A                    # Ax

    def hessian(x):
        x = np.asarray(x, dtype=np.float64)
        return np.broadcast_to(A, (*x.shape[:-1], dim, dim)).copy()

    return Landscape(f"quadratic bowl (κ={kappa:g})", dim, value, grad, hessian,
                     minima=np.zeros((1, dim)), saddles=np.zeros((0, dim)),
                     maxima=np.zeros((0, dim)),
                     bounds=((-2.0, 2.0), (-2.0, 2.0)), L=L, mu=L / kappa)


@_rebuildable
def rosenbrock(a: float = 1.0, b: float = 100.0) -> Landscape:
    """:math:`f(x, y) = (a - x)^2 + b\\,(y - x^2)^2`; the one minimum is :math:`(a, a^2)`.

    A curved, flat-bottomed valley: the classic test for momentum and adaptive methods.
    """
    a = check_real(a, "a")
    b = check_positive(b, "b")

    def value(p):
        x, y = p[..., 0], p[..., 1]
        return (a - x) ** 2 + b * (y - x ** 2) ** 2

    def grad(p):
        x, y = _xy(p)
        return np.stack([-2 * (a - x) - 4 * b * x * (y - x ** 2), 2 * b * (y - x ** 2)], -1)

    def hessian(p):
        x, y = _xy(p)
        return _mat([2 - 4 * b * y + 12 * b * x ** 2, -4 * b * x], [-4 * b * x, 2 * b])

    return Landscape("Rosenbrock", 2, value, grad, hessian, minima=_points([a, a * a], 2),
                     bounds=((-2.0, 2.0), (-1.0, 3.0)))


@_rebuildable
def beale() -> Landscape:
    """Beale's function; the one minimum is :math:`(3, \\tfrac12)` with :math:`f = 0`.

    .. math:: f(x, y) = \\sum_{i=1}^{3} (c_i - x + x y^i)^2,\\quad c = (1.5,\\ 2.25,\\ 2.625)

    On the line :math:`x = 0` it is constant, so no saddles are listed (they are degenerate).
    """
    c = (1.5, 2.25, 2.625)

    def value(p):
        x, y = p[..., 0], p[..., 1]
        return sum((c[i] - x + x * y ** (i + 1)) ** 2 for i in range(3))

    def _terms(p):
        x, y = _xy(p)
        r = [c[i] - x + x * y ** (i + 1) for i in range(3)]           # residuals r_i
        rx = [y ** (i + 1) - 1 for i in range(3)]                     # ∂r_i/∂x
        ry = [(i + 1) * x * y ** i for i in range(3)]                 # ∂r_i/∂y
        return x, y, r, rx, ry

    def grad(p):
        _, _, r, rx, ry = _terms(p)
        return np.stack([sum(2 * r[i] * rx[i] for i in range(3)),
                         sum(2 * r[i] * ry[i] for i in range(3))], -1)

    def hessian(p):
        x, y, r, rx, ry = _terms(p)
        rxy = [(i + 1) * y ** i for i in range(3)]                    # ∂²r_i/∂x∂y
        ryy = [(i + 1) * i * x * y ** (i - 1) for i in range(3)]            # ∂²r_i/∂y²
        hxx = sum(2 * rx[i] ** 2 for i in range(3))                   # ∂²r_i/∂x² = 0
        hxy = sum(2 * (rx[i] * ry[i] + r[i] * rxy[i]) for i in range(3))
        hyy = sum(2 * (ry[i] ** 2 + r[i] * ryy[i]) for i in range(3))
        return _mat([hxx, hxy], [hxy, hyy])

    return Landscape("Beale", 2, value, grad, hessian, minima=_points([3.0, 0.5], 2),
                     bounds=((-4.5, 4.5), (-4.5, 4.5)))


def _newton_refine(grad, hessian, points) -> np.ndarray:
    """Polish approximate critical points to machine precision (Newton on ∇f = 0)."""
    out = []
    for p in np.asarray(points, dtype=np.float64):
        for _ in range(20):
            p = p - np.linalg.solve(hessian(p), grad(p))
        out.append(p)
    return np.array(out)


@_rebuildable
def himmelblau() -> Landscape:
    """Himmelblau's function: four minima (all with :math:`f = 0`), four saddles, one maximum.

    .. math:: f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2

    Only :math:`(3, 2)` has a closed form; the others are roots of a cubic and are polished
    to machine precision by Newton's method when the landscape is built.
    """

    def value(p):
        x, y = p[..., 0], p[..., 1]
        return (x ** 2 + y - 11) ** 2 + (x + y ** 2 - 7) ** 2

    def grad(p):
        x, y = _xy(p)
        u, v = x ** 2 + y - 11, x + y ** 2 - 7
        return np.stack([4 * x * u + 2 * v, 2 * u + 4 * y * v], -1)

    def hessian(p):
        x, y = _xy(p)
        return _mat([12 * x ** 2 + 4 * y - 42, 4 * x + 4 * y],
                    [4 * x + 4 * y, 4 * x + 12 * y ** 2 - 26])

    minima = _newton_refine(grad, hessian, [[3.0, 2.0], [-2.805118, 3.131312],
                                            [-3.779310, -3.283186], [3.584428, -1.848126]])
    minima[0] = [3.0, 2.0]
    saddles = _newton_refine(grad, hessian, [[0.086678, 2.884255], [-3.073026, -0.081353],
                                             [3.385154, 0.073852], [-0.127961, -1.953715]])
    maxima = _newton_refine(grad, hessian, [[-0.270845, -0.923039]])
    return Landscape("Himmelblau", 2, value, grad, hessian, minima=minima, saddles=saddles,
                     maxima=maxima, bounds=((-5.0, 5.0), (-5.0, 5.0)))


@_rebuildable
def saddle() -> Landscape:
    """The saddle :math:`f(x, y) = x^2 - y^2`: a critical point at 0 that is no minimum.

    Hessian :math:`\\mathrm{diag}(2, -2)`, so :math:`L = 2`; not bounded below, no μ.
    """

    def value(p):
        return p[..., 0] ** 2 - p[..., 1] ** 2

    def grad(p):
        x, y = _xy(p)
        return np.stack([2 * x, -2 * y], -1)

    def hessian(p):
        p = np.asarray(p, dtype=np.float64)
        return np.broadcast_to(np.diag([2.0, -2.0]), (*p.shape[:-1], 2, 2)).copy()

    return Landscape("saddle", 2, value, grad, hessian, minima=np.zeros((0, 2)),
                     saddles=np.zeros((1, 2)), bounds=((-2.0, 2.0), (-2.0, 2.0)), L=2.0)


@_rebuildable
def rastrigin(dim: int = 2, A: float = 10.0) -> Landscape:
    """Rastrigin's function, a bowl covered in local minima.

    .. math:: f(x) = A n + \\sum_{i=1}^n \\bigl(x_i^2 - A\\cos(2\\pi x_i)\\bigr)

    Gradient :math:`2x_i + 2\\pi A\\sin(2\\pi x_i)`, Hessian
    :math:`\\mathrm{diag}(2 + 4\\pi^2 A\\cos(2\\pi x_i))`, so :math:`L = 2 + 4\\pi^2 A`.
    Only the global minimum 0 is listed.
    """
    check_int(dim, "dim", low=1)
    A = check_positive(A, "A")

    def value(x):
        return A * dim + (x ** 2 - A * _cos(2 * math.pi * x)).sum(-1)

    def grad(x):
        x = np.asarray(x, dtype=np.float64)
        return 2 * x + 2 * math.pi * A * np.sin(2 * math.pi * x)

    def hessian(x):
        x = np.asarray(x, dtype=np.float64)
        d = 2 + 4 * math.pi ** 2 * A * np.cos(2 * math.pi * x)
        return d[..., :, None] * np.eye(dim)

    return Landscape(f"Rastrigin ({dim}-D)", dim, value, grad, hessian,
                     minima=np.zeros((1, dim)), saddles=np.zeros((0, dim)),
                     maxima=np.zeros((0, dim)), bounds=((-5.12, 5.12), (-5.12, 5.12)),
                     L=2 + 4 * math.pi ** 2 * A)


@_rebuildable
def ravine(steepness: float = 20.0, slope: float = 0.2) -> Landscape:
    """A narrow ravine with a gently sloping floor.

    .. math:: f(x, y) = \\varepsilon \\log\\cosh x + \\tfrac{s}{2} y^2

    The walls have curvature :math:`s`; along the floor the slope tends to :math:`\\varepsilon`
    (:math:`\\log\\cosh x \\approx |x| - \\log 2`), so gradient descent with a step near
    :math:`2/s` zigzags across the ravine while creeping along it, the picture that motivates
    momentum. Gradient :math:`(\\varepsilon\\tanh x,\\ s y)`, Hessian
    :math:`\\mathrm{diag}(\\varepsilon\\,\\mathrm{sech}^2 x,\\ s)`;
    :math:`L = \\max(s, \\varepsilon)`, :math:`\\mu = 0` (convex, not strongly).
    Symbols ↔ arguments: :math:`s` ``steepness``, :math:`\\varepsilon` ``slope``.
    """
    s = check_positive(steepness, "steepness", "s")
    eps = check_positive(slope, "slope", "ε")

    def value(p):
        return eps * _log_cosh(p[..., 0]) + 0.5 * s * p[..., 1] ** 2

    def grad(p):
        x, y = _xy(p)
        return np.stack([eps * np.tanh(x), s * y], -1)

    def hessian(p):
        x, _ = _xy(p)
        sech2 = 1 / np.cosh(np.clip(x, -350, 350)) ** 2         # sech² x, 0 beyond |x| = 350
        return _mat([eps * sech2, 0.0], [0.0, s])

    return Landscape("ravine", 2, value, grad, hessian, minima=np.zeros((1, 2)),
                     bounds=((-10.0, 10.0), (-1.5, 1.5)), L=max(s, eps), mu=0.0)


# -- the worst case for first-order methods ---------------------------------------------------

@_rebuildable
def nesterov_chain(dim: int, kappa: float = 100.0, *, L: float = 1.0) -> Landscape:
    """Nesterov's worst-case quadratic: no first-order method beats rate (√κ−1)/(√κ+1) on it.

    .. math::

        f(x) = \\frac{L-\\mu}{8}\\Bigl(x_1^2 + \\sum_{i=1}^{n-1}(x_i - x_{i+1})^2 + x_n^2
               - 2x_1\\Bigr) + \\frac{\\mu}{2}\\lVert x\\rVert^2

    (Nesterov 2004, section 2.1.4, cut to :math:`n` coordinates). Its Hessian
    :math:`\\tfrac{L-\\mu}{4}A + \\mu I`, with :math:`A` tridiagonal (2 on the diagonal, −1
    beside it), has eigenvalues strictly between :math:`\\mu = L/\\kappa` and :math:`L`, so
    ``L`` and ``mu`` are valid bounds. The gradient at a point whose coordinates after the
    :math:`k`-th are zero has its coordinates after the :math:`(k+1)`-th zero: a method that
    starts at 0 and moves along (coordinate-wise functions of) the gradients it has seen has
    touched at most :math:`t` coordinates after :math:`t` steps. The minimizer solves the
    recurrence :math:`x_{i+1} - 2\\tfrac{\\kappa+1}{\\kappa-1}x_i + x_{i-1} = 0` with
    :math:`x_0 = 1`, :math:`x_{n+1} = 0`:

    .. math::

        x^\\star_i = \\frac{q^i - q^{2(n+1)-i}}{1 - q^{2(n+1)}}, \\qquad
        q = \\frac{\\sqrt\\kappa - 1}{\\sqrt\\kappa + 1},

    about :math:`q^i` when :math:`n` is large: the untouched coordinates carry a share
    :math:`q^{t}` of the initial error (chapter 4). The gradient and value cost :math:`O(n)`;
    the Hessian is built densely only when asked. Symbols ↔ arguments: :math:`n` ``dim``,
    :math:`\\kappa` ``kappa``, :math:`L` ``L``.
    """
    check_int(dim, "dim", low=1)
    kappa = check_real(kappa, "kappa", "κ")
    if kappa <= 1:
        raise ValueError(f"kappa (κ) must be in (1, ∞), got {kappa!r}")
    L = check_positive(L, "L")
    mu = L / kappa
    c = (L - mu) / 4                                             # the chain's spring constant
    q = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    i = np.arange(1, dim + 1)
    with np.errstate(under="ignore"):
        minimum = (q ** i - q ** (2 * (dim + 1) - i)) / (1 - q ** (2 * (dim + 1)))

    def chain(x):
        """Ax for the tridiagonal A (2 on the diagonal, −1 beside it), on the last axis."""
        ax = 2 * x
        ax[..., 1:] -= x[..., :-1]
        ax[..., :-1] -= x[..., 1:]
        return ax

    def value(x):
        if isinstance(x, torch.Tensor):
            diffs = (x[..., 1:] - x[..., :-1]).pow(2).sum(-1)
            squares = x.pow(2).sum(-1)
        else:
            diffs = ((x[..., 1:] - x[..., :-1]) ** 2).sum(-1)
            squares = (x ** 2).sum(-1)
        quad = x[..., 0] ** 2 + diffs + x[..., -1] ** 2          # xᵀAx
        return c / 2 * (quad - 2 * x[..., 0]) + mu / 2 * squares

    def grad(x):
        x = np.asarray(x, dtype=np.float64)
        g = c * chain(x) + mu * x                                # (cA + μI)x − c e₁
        g[..., 0] -= c
        return g

    def hessian(x):
        x = np.asarray(x, dtype=np.float64)
        H = np.diag(np.full(dim, 2 * c + mu))
        H += np.diag(np.full(dim - 1, -c), 1) + np.diag(np.full(dim - 1, -c), -1)
        return np.broadcast_to(H, (*x.shape[:-1], dim, dim)).copy()

    return Landscape(f"Nesterov's chain (n={dim}, κ={kappa:g})", dim, value, grad, hessian,
                     minima=minimum[None, :], saddles=np.zeros((0, dim)),
                     maxima=np.zeros((0, dim)), L=L, mu=mu)


# -- critical points and trajectories ----------------------------------------------------------

def classify_critical_point(hessian, tol: float = 1e-8) -> Literal[
        "minimum", "maximum", "saddle", "degenerate"]:
    """The second-order test from the Hessian's eigenvalues :math:`\\lambda_i` (chapter 1).

    ``"saddle"`` if some :math:`\\lambda_i > 0` and some :math:`\\lambda_j < 0` (whatever the
    rest); ``"minimum"``/``"maximum"`` if all are positive/negative; otherwise
    ``"degenerate"`` (a zero eigenvalue and no sign change: the test cannot decide).
    "Zero" means :math:`|\\lambda| \\le \\text{tol}\\cdot\\max(1, \\max_i|\\lambda_i|)`.
    """
    H = np.asarray(hessian, dtype=np.float64)
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"hessian must be a square matrix, got shape {H.shape}")
    if not np.all(np.isfinite(H)):
        raise ValueError("hessian must be finite, got nan or inf entries")
    if not np.allclose(H, H.T, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(H).max())):
        raise ValueError("hessian must be symmetric")
    lam = np.linalg.eigvalsh((H + H.T) / 2)
    zero = tol * max(1.0, float(np.abs(lam).max()))
    positive, negative = lam > zero, lam < -zero
    if positive.any() and negative.any():
        return "saddle"
    if positive.all():
        return "minimum"
    if negative.all():
        return "maximum"
    return "degenerate"


def trajectory(landscape: Landscape, x0, update: Callable, init: Callable, steps: int,
               **hyper) -> np.ndarray:
    """Run a pure rule on a landscape: the iterates :math:`x_0, x_1, \\dots, x_T`.

    ``update(x, grad, state, **hyper) -> (x, state)`` and ``init(x) -> state`` are a rule from
    :mod:`descent.rules` (e.g. ``sgd_update``, ``sgd_init``); ``hyper`` are its keywords
    (``lr=0.1, momentum=0.9``). Those of ``hyper`` that ``init`` also names (``amsgrad`` for
    ``adam_init``) are passed to it too, so the state matches the rule. Returns a float64
    array of shape ``(steps + 1, dim)``, row 0 being ``x0``. An iterate that overflows is
    kept (inf/nan): divergence is data, not an error.

    >>> from descent.rules import sgd_init, sgd_update
    >>> trajectory(quadratic_bowl(4.0), [1.0, 1.0], sgd_update, sgd_init, 3, lr=0.5).shape
    (4, 2)
    """
    if not isinstance(landscape, Landscape):
        raise TypeError(f"landscape must be a Landscape, got {type(landscape).__name__}")
    check_int(steps, "steps", low=0)
    x = np.array(x0, dtype=np.float64)
    if x.shape != (landscape.dim,):
        raise ValueError(f"x0 must have shape ({landscape.dim},) for {landscape.name}, "
                         f"got {x.shape}")
    path = np.empty((steps + 1, landscape.dim))
    path[0] = x
    accepted = inspect.signature(init).parameters
    state = init(x, **{k: v for k, v in hyper.items() if k in accepted})
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, steps + 1):
            x, state = update(x, landscape.grad(x), state, **hyper)   # x_t = rule(x_{t-1}, ∇f)
            path[t] = x
    return path
