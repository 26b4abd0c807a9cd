"""Checks for assignment 01-problem: the linear model's loss and gradient, gradient checking,
critical points.

The linear model's mean squared error and its gradient (chapter 1):

.. math::

    L(w) = \\frac1n \\lVert Xw - y \\rVert^2,  \\qquad  \\nabla L(w) = \\frac2n X^\\top (Xw - y)

The references are torch autograd (loss and gradient), the grader's own central differences,
and ``numpy.linalg.eigvalsh`` for the Hessian's eigenvalues.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from descent.grading import sandbox
from descent.grading.compare import Tolerance, allclose, first_difference
from descent.grading.feedback import fail, passed
from descent.grading.functions import check_function

PART_LOSS = ("1.1", "eq. (1.1), L(w) = (1/n)‖Xw − y‖²")
PART_GRAD = ("1.2", "eq. (1.2), ∇L(w) = (2/n)Xᵀ(Xw − y)")
PART_RELERR = ("1.3", "eq. (1.3), relative error ‖a − b‖ / max(‖a‖, ‖b‖)")
PART_NUMGRAD = ("1.4", "eq. (1.4), central difference (f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h")
PART_CLASSIFY = ("1.5", "the Hessian's eigenvalues classify a critical point")


def linear_data(seed: int, shape: tuple[int, int], dtype: str = "float64"):
    """The grader's regression problem: X (n, d), y (n,), and a point w (d,)."""
    rng = np.random.default_rng(seed)
    n, d = shape
    X = rng.standard_normal((n, d)).astype(dtype)
    y = (X @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n)).astype(dtype)
    w = rng.standard_normal(d).astype(dtype)
    return {"w": w, "X": X, "y": y}


def _inputs(seeds, shapes, dtypes=("float64", "float32")):
    return [linear_data(s, tuple(shape), dt) for s in seeds for shape in shapes for dt in dtypes]


def _torch_loss(w, X, y):
    w = torch.tensor(np.asarray(w, float), requires_grad=True)
    loss = ((torch.tensor(np.asarray(X, float)) @ w - torch.tensor(np.asarray(y, float))) ** 2
            ).mean()
    loss.backward()
    return loss.item(), w.grad.numpy()


def reference_loss(w, X, y) -> float:
    return _torch_loss(w, X, y)[0]


def reference_grad(w, X, y) -> np.ndarray:
    return _torch_loss(w, X, y)[1]


def check_loss(mse_loss: Callable, *, seeds: Sequence[int] = (0,),
               shapes: Sequence[tuple[int, int]] = ((20, 3),)) -> None:
    factors = lambda w, X, y: {
        0.5: "your loss is half the reference: this part's MSE is (1/n)‖Xw − y‖², without ½",
        len(y): "your loss is n times the reference: it sums the squared residuals; the MSE "
                "averages them, (1/n)‖Xw − y‖²"}
    return check_function(mse_loss, reference_loss, _inputs(seeds, shapes), part=PART_LOSS[0],
                          equation=PART_LOSS[1], factors=factors, what="loss")


def check_grad(mse_grad: Callable, *, seeds: Sequence[int] = (0,),
               shapes: Sequence[tuple[int, int]] = ((20, 3),)) -> None:
    factors = lambda w, X, y: {
        0.5: "your gradient is half the reference: the factor 2 from differentiating the "
             "square is missing, ∇L = (2/n)Xᵀ(Xw − y)",
        -1.0: "your gradient has the wrong sign: the residual is r = Xw − y (not y − Xw), and "
              "∇L = (2/n)Xᵀr",
        float(len(y)): "your gradient is n times the reference: divide by n, the loss is a mean",
        len(y) / 2: "your gradient is n/2 times the reference: it is the gradient of the sum "
                    "½‖Xw − y‖², not of the mean (1/n)‖Xw − y‖²"}
    return check_function(mse_grad, reference_grad, _inputs(seeds, shapes), part=PART_GRAD[0],
                          equation=PART_GRAD[1], factors=factors, what="gradient")


def reference_relative_error(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def check_relative_error(relative_error: Callable, *, seeds: Sequence[int] = (0,),
                         shapes: Sequence[tuple[int, ...]] = ((4,),)) -> None:
    inputs = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for shape in shapes:
            a = rng.standard_normal(shape)
            inputs += [{"a": a, "b": a + 1e-3 * rng.standard_normal(shape)},
                       {"a": a, "b": 3.0 * a}, {"a": 1e-8 * a, "b": -1e-8 * a},
                       {"a": np.zeros(shape), "b": np.zeros(shape)}]
    return check_function(relative_error, reference_relative_error, inputs, part=PART_RELERR[0],
                          equation=PART_RELERR[1], what="relative error")


# -- finite differences: the grader's test functions with known gradients -------------------

class Smooth:
    """f(x) = Σ sin(xᵢ) + ½ xᵀAx + (a·x)³ / 3: a test function given to the student's code (a
    module-level class, so that it can cross to the student's process by name and data)."""

    def __init__(self, A: np.ndarray, a: np.ndarray):
        self.A, self.a = A, a

    def __call__(self, x) -> float:
        return float(np.sum(np.sin(x)) + 0.5 * x @ self.A @ x + (self.a @ x) ** 3 / 3)

    def grad(self, x) -> np.ndarray:
        return np.cos(x) + self.A @ x + (self.a @ x) ** 2 * self.a


def _test_function(seed: int, dim: int):
    """f, its exact gradient, and a point x."""
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((dim, dim))
    f = Smooth(B @ B.T / dim, rng.standard_normal(dim) / np.sqrt(dim))
    return f, f.grad, rng.standard_normal(dim)


def _differences(f, x, h, *, central=True):
    x = np.array(x, dtype=float)
    out = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h
        out.flat[i] = (f(x + e) - f(x - e)) / (2 * h) if central else (f(x + e) - f(x)) / h
    return out


def check_numerical_gradient(numerical_gradient: Callable, *, seeds: Sequence[int] = (0,),
                             dims: Sequence[int] = (3,), h: float = 1e-5,
                             coarse_h: float = 0.05) -> None:
    """Central differences within 1e-7·scale of the grader's own, and of the exact gradient.

    Tolerance: with h = 1e-5 the truncation error is h²·|f'''|/6 ≈ 1e-10 and the rounding
    error ε·|f|/h ≈ 1e-10; another order of operations differs by that much. A forward
    difference is off by h·|f''|/2 ≈ 5e-6 and is named.

    A second call passes a coarse ``h`` (0.05, not the default): there the truncation error is
    ~4e-4, so a function that ignores the ``h`` it is given (and uses 1e-5) is seen, while
    the rounding of a correct one (≈ 1e-14) stays far inside relative 1e-8.
    """
    part, equation = PART_NUMGRAD
    tol = Tolerance(rtol=1e-6, atol=1e-7)
    name = getattr(numerical_gradient, "__name__", "your function")
    checked = 0
    for seed in seeds:
        for dim in dims:
            f, exact, x = _test_function(seed, dim)
            for step, exact_too in ((h, True), (coarse_h, False)):
                where = f" (test function with seed {seed}, dimension {dim}, h = {step:g})"
                out = sandbox.call(numerical_gradient, f, x, h=step, watch={"x": x})
                if out.delegated or out.error or out.mutated:
                    verdict = fail(f"{name} raised {out.error}{where}." if out.error else
                                   f"{name} changed the caller's x in place (x[i] += h): "
                                   f"perturb a copy, e.g. `xp = x.copy(); xp[i] += h`{where}."
                                   if out.mutated else
                                   f"no points for this part: {name} calls "
                                   f"{', '.join(out.delegated)}.")
                    verdict.raise_for(part, equation)
                got = np.asarray(out.value, dtype=float)
                central = _differences(f, x, step)
                forward = _differences(f, x, step, central=False)
                step_tol = tol if exact_too else Tolerance(rtol=1e-8, atol=1e-10)
                if allclose(got, central, step_tol) and (
                        not exact_too or allclose(got, exact(x), Tolerance(1e-5, 1e-6))):
                    checked += 1
                    continue
                if allclose(got, forward, step_tol):
                    fail("this is a forward difference (f(x + h·eᵢ) − f(x)) / h, accurate only "
                         "to O(h); use the central difference (f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h, "
                         f"accurate to O(h²){where}.", "forward-difference"
                         ).raise_for(part, equation)
                if not exact_too and allclose(got, _differences(f, x, h), step_tol):
                    fail(f"with h = {step:g} your result equals the central difference with "
                         f"h = {h:g}: use the h your function is given{where}.", "h-ignored"
                         ).raise_for(part, equation)
                verdict = first_difference(got, central, step_tol,
                                           what=f"numerical gradient of {name}")
                fail(f"{verdict.message}{where}", verdict.mistake).raise_for(part, equation)
    passed(part, checked)


# -- critical points ----------------------------------------------------------------------

KINDS = ("minimum", "maximum", "saddle", "degenerate")


def reference_classify(H, tol: float = 1e-8) -> str:
    lam = np.linalg.eigvalsh((np.asarray(H, float) + np.asarray(H, float).T) / 2)
    if (lam > tol).all():
        return "minimum"
    if (lam < -tol).all():
        return "maximum"
    if (lam > tol).any() and (lam < -tol).any():
        return "saddle"
    return "degenerate"


def hessians(seed: int, dim: int):
    """One symmetric matrix of each kind, Q diag(λ) Qᵀ with a random rotation Q."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    mags = rng.uniform(0.5, 3.0, dim)
    signs = {"minimum": np.ones(dim), "maximum": -np.ones(dim),
             "saddle": np.where(np.arange(dim) % 2 == 0, 1.0, -1.0),
             "degenerate": np.where(np.arange(dim) == 0, 0.0, 1.0)}
    return [(kind, Q @ np.diag(s * mags) @ Q.T) for kind, s in signs.items()]


def boundary_hessians(tol: float) -> list[tuple[str, np.ndarray]]:
    """Diagonal Hessians whose eigenvalues sit on the tolerance (|λ| = tol counts as zero:
    degenerate) or near it, for a ``tol`` that is not the default. ``eigvalsh`` of a
    diagonal matrix returns its diagonal exactly."""
    return [("degenerate", np.diag([tol, 1.0, 2.0])), ("degenerate", np.diag([-tol, -1.5])),
            ("degenerate", np.diag([tol, -1.0])), ("degenerate", np.diag([-tol, 2.0])),
            ("degenerate", np.diag([0.5 * tol, 3.0])), ("saddle", np.diag([-2.0 * tol, 1.0]))]


def check_classify(classify: Callable, *, seeds: Sequence[int] = (0,),
                   dims: Sequence[int] = (2,), tols: Sequence[float] = (0.25,)) -> None:
    """Every kind on rotated Hessians (default ``tol``), then Hessians on the boundary of a
    non-default ``tol``: |λ| ≤ tol counts as zero, so λ = tol is degenerate."""
    part, equation = PART_CLASSIFY
    name = getattr(classify, "__name__", "your function")
    cases = [(H, {}) for seed in seeds for dim in dims for _, H in hessians(seed, dim)]
    cases += [(H, {"tol": tol}) for tol in tols for _, H in boundary_hessians(tol)]
    checked = 0
    for H, kw in cases:
        out = sandbox.call(classify, H, **kw, watch={"H": H})
        expected = reference_classify(H, **kw)
        lam = np.linalg.eigvalsh(H)
        dim = len(H)
        if out.delegated:
            fail(f"no points for this part: {name} calls {', '.join(out.delegated)}, "
                 "the reference this part asks you to write.", "delegation"
                 ).raise_for(part, equation)
        if out.error:
            fail(f"{name} raised {out.error} on a {dim}×{dim} Hessian.",
                 "exception").raise_for(part, equation)
        if out.value != expected:
            hint = ""
            if expected == "maximum" and out.value == "minimum":
                hint = (" det(H) > 0 does not mean a minimum: a maximum in even "
                        "dimension has a positive determinant too.")
            if expected == "degenerate":
                hint = (" A zero eigenvalue (|λ| ≤ tol) with no eigenvalue of the "
                        "opposite sign leaves the second-order test inconclusive.")
            given = f" and tol={kw['tol']}" if kw else ""
            if kw and np.any(np.abs(lam) == kw["tol"]):
                hint += (" Here an eigenvalue equals tol: |λ| ≤ tol counts as zero, so compare "
                         "λ > tol and λ < −tol (strictly).")
            elif kw:
                hint += f" Use the tol you are given ({kw['tol']}), not the default."
            fail(f"{name} says {out.value!r} for a Hessian with eigenvalues "
                 f"{np.round(lam, 4).tolist()}{given}; the answer is {expected!r}: all λ > tol "
                 "minimum, all λ < −tol maximum, both signs saddle, otherwise degenerate."
                 f"{hint}", "classification").raise_for(part, equation)
        checked += 1
    passed(part, checked)
