"""Checks for assignment 02-gradient-descent: the GD step, a GD run, the 2/L edge, the rate.

On the quadratic f(θ) = ½ θᵀAθ with eigenvalues µ = λ_min ≤ … ≤ λ_max = L (chapter 2):

.. math::

    \\theta_t = \\theta_{t-1} - \\eta\\,\\nabla f(\\theta_{t-1}),\\qquad
    \\theta_t = (I - \\eta A)^t\\,\\theta_0,\\qquad
    \\rho(\\eta) = \\max_i |1 - \\eta\\lambda_i|,

so GD converges iff η < 2/L, and the error shrinks by ρ(η) per step. The references are
``descent.rules.sgd_update`` (μ = 0) for the step and ``numpy.linalg.eigvalsh`` for L and ρ.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from descent.grading import sandbox
from descent.grading.catalogue import gd_spec
from descent.grading.compare import TOL64, allclose, first_difference
from descent.grading.feedback import fail, passed
from descent.grading.functions import check_number
from descent.grading.rules import check_rule

PART_STEP = ("2.1", "eq. (2.1), θ_t = θ_{t-1} − η ∇f(θ_{t-1})")
PART_RUN = ("2.2", "eq. (2.1) iterated: θ₀, θ₁, …, θ_T")
PART_EDGE = ("2.3", "eq. (2.4), GD on a quadratic diverges for η > 2/L")
PART_RATE = ("2.4", "eq. (2.5), ‖θ_t‖ shrinks by ρ = max_i |1 − ηλ_i| per step")


def quadratic(eigenvalues: Sequence[float], seed: int = 0) -> np.ndarray:
    """A = Q diag(λ) Qᵀ with a random rotation Q: f(θ) = ½θᵀAθ has these curvatures."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    return Q @ np.diag(np.asarray(eigenvalues, float)) @ Q.T


def problem(seed: int, dim: int):
    """The grader's quadratic: µ = 0.5, L in [3.2, 3.6], the others in [1, 2.8], and θ₀.

    The gap around µ and L makes the extreme modes dominate quickly, so a measured rate
    settles within a few dozen steps. L varies with the seed and is never a power of two, so
    no simple bracket (η = 1/2, 1/4, …) happens to equal the edge 2/L.
    """
    rng = np.random.default_rng(seed)
    top = 3.2 + 0.4 * rng.uniform()
    lam = np.concatenate([[0.5], rng.uniform(1.0, 2.8, max(dim - 2, 0)), [top]])[:dim]
    return quadratic(lam, seed + 1), rng.standard_normal(dim)


def trusted_gd_step(theta, grad, lr):
    """The grader's own eq. (2.1), substituted for the student's while later parts run."""
    return theta - lr * grad


def trusted_run_gd(grad_fn, theta0, lr, steps):
    thetas = [np.asarray(theta0, dtype=float)]
    for _ in range(steps):
        thetas.append(trusted_gd_step(thetas[-1], grad_fn(thetas[-1]), lr))
    return np.stack(thetas)


TRUSTED = {"gd_step": trusted_gd_step, "run_gd": trusted_run_gd}


def quadratic_gradient(A: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """∇ ½θᵀAθ = Aθ (given to the student's run_gd as ``partial(quadratic_gradient, A)``)."""
    return A @ theta


def check_step(gd_step: Callable, *, seeds: Sequence[int] = (0,),
               shapes: Sequence[tuple[int, ...]] = ((3,),), steps: int = 12) -> None:
    return check_rule(gd_step, spec=gd_spec(), part=PART_STEP[0], equation=PART_STEP[1],
                      seeds=seeds, shapes=shapes, steps=steps)


def check_run(run_gd: Callable, *, seeds: Sequence[int] = (0,), dims: Sequence[int] = (3,),
              steps: int = 20, lr: float = 0.2) -> None:
    """The whole array of iterates, (T + 1, d), against the reference rule iterated."""
    from descent.rules import sgd_init, sgd_update

    part, equation = PART_RUN
    name = getattr(run_gd, "__name__", "your function")
    for seed in seeds:
        for dim in dims:
            A, theta0 = problem(seed, dim)
            grad_fn = functools.partial(quadratic_gradient, A)    # ∇ ½θᵀAθ
            out = sandbox.call(run_gd, grad_fn, theta0, lr=lr, steps=steps,
                               watch={"theta0": theta0}, trusted={"gd_step": trusted_gd_step})
            where = f" (quadratic with seed {seed}, dimension {dim}, η = {lr}, T = {steps})"
            if out.delegated:
                fail(f"no points for this part: {name} calls {', '.join(out.delegated)}, the "
                     "reference this part asks you to write.", "delegation"
                     ).raise_for(part, equation)
            if out.error:
                fail(f"{name} raised {out.error}{where}.", "exception").raise_for(part, equation)
            if out.mutated:
                fail(f"{name} changed the caller's theta0 in place; start from a copy, "
                     f"`theta = theta0.copy()`{where}.", "mutates-input").raise_for(part,
                                                                                    equation)
            rows = [theta0]
            for _ in range(steps):
                rows.append(sgd_update(rows[-1], A @ rows[-1], sgd_init(theta0), lr=lr)[0])
            expected = np.stack(rows)
            got = np.asarray(out.value, dtype=float)
            if allclose(got, expected, TOL64):
                continue
            if got.shape == (steps, dim) and allclose(got, expected[1:], TOL64):
                fail(f"the first row must be θ₀: return T + 1 rows θ₀ … θ_T{where}.",
                     "missing-theta0").raise_for(part, equation)
            if got.ndim == 2 and len(got) > 1 and (got == got[-1]).all():
                fail("every row of your result is the same array: you updated θ in place and "
                     "stored the same object T + 1 times. Store a copy per step, or write "
                     f"`theta = theta - lr * grad` (a new array){where}.", "aliasing"
                     ).raise_for(part, equation)
            verdict = first_difference(got, expected, TOL64, what=f"iterates of {name}",
                                       rows="step")
            fail(f"{verdict.message}{where}", verdict.mistake).raise_for(part, equation)
    passed(part, len(seeds) * len(dims))


def edge_for(A: np.ndarray, theta0: np.ndarray, steps: int) -> float:
    """The grader's own edge for a given number of steps: the smallest η with
    ‖θ_T‖ > ‖θ₀‖ after T = ``steps`` steps. ‖θ_T(η)‖² = Σᵢ (1 − ηλᵢ)^{2T} cᵢ² is convex in η
    and starts at ‖θ₀‖², so there is one crossing; 200 bisections find it to rounding."""
    lam, vecs = np.linalg.eigh(A)
    c2 = (vecs.T @ theta0) ** 2
    norm0 = float(np.sum(c2))
    grows = lambda lr: float(np.sum((1 - lr * lam) ** (2 * steps) * c2)) > norm0
    lo, hi = 0.0, 2.0 / float(lam.max())
    while not grows(hi):
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if grows(mid) else (mid, hi)
    return (lo + hi) / 2


def check_divergence_threshold(divergence_threshold: Callable, *, seeds: Sequence[int] = (0,),
                               dims: Sequence[int] = (3,), rtol: float = 0.02,
                               short: int = 4) -> None:
    """The measured edge within 2 % of 2/L, then, with ``steps=short`` (not the default), within
    0.1 % of the grader's own edge for that many steps.

    Why 2 %: just above the edge, η = (2/L)(1 + δ), the top mode grows by |1 − ηL| = 1 + 2δ per
    step, so 200 steps show growth once δ ≳ 1/400 = 0.25 %; bisection adds less than that.
    Why the short run: after 4 steps the other modes have not died out, so the edge lies well
    above 2/L; every correct bisection finds the one crossing of ‖θ₄(η)‖ = ‖θ₀‖ (see
    :func:`edge_for`), to far better than 0.1 % with the 40 bisection steps asked for, and a
    function that ignores the ``steps`` it is given (or compares another iterate) does not.
    """
    name = getattr(divergence_threshold, "__name__", "your function")
    for seed in seeds:
        for dim in dims:
            A, theta0 = problem(seed, dim)
            L = float(np.linalg.eigvalsh(A).max())
            out = sandbox.call(divergence_threshold, A, theta0, trusted=TRUSTED,
                               watch={"A": A, "theta0": theta0})
            check_number(out, 2 / L, part=PART_EDGE[0], equation=PART_EDGE[1], rtol=rtol,
                         fn_name=name,
                         what=f"the divergence threshold (quadratic with seed {seed}, dimension "
                              f"{dim}, L = {L:.4g})")
            out = sandbox.call(divergence_threshold, A, theta0, steps=short, trusted=TRUSTED,
                               watch={"A": A, "theta0": theta0})
            check_number(out, edge_for(A, theta0, short), part=PART_EDGE[0],
                         equation=PART_EDGE[1], rtol=1e-3, fn_name=name,
                         what=f"with steps={short} the edge is where ‖θ_{short}‖ first exceeds "
                              f"‖θ₀‖, above 2/L = {2 / L:.4g} (quadratic with seed {seed}, "
                              f"dimension {dim}; use the steps you are given)")
    passed(PART_EDGE[0], 2 * len(seeds) * len(dims))


def check_convergence_rate(convergence_rate: Callable, *, seeds: Sequence[int] = (0,),
                           dims: Sequence[int] = (3,), lrs: Sequence[float] = (0.1, 0.3, 0.4),
                           rtol: float = 1e-3, short: int = 7) -> None:
    """The measured rate ‖θ_T‖/‖θ_{T−1}‖ within 0.1 % of max_i |1 − ηλ_i|.

    Why 0.1 %: the ratio approaches ρ like (ρ₂/ρ)^T, ρ₂ the second largest |1 − ηλᵢ|; with the
    grader's spectra and T = 100 that is below 1e-4.
    """
    for seed in seeds:
        for dim in dims:
            A, theta0 = problem(seed, dim)
            lam = np.linalg.eigvalsh(A)
            for lr in lrs:
                out = sandbox.call(convergence_rate, A, theta0, lr=lr, steps=100,
                                   trusted=TRUSTED, watch={"A": A, "theta0": theta0})
                rho = float(np.max(np.abs(1 - lr * lam)))
                check_number(out, rho, part=PART_RATE[0], equation=PART_RATE[1], rtol=rtol,
                             fn_name=getattr(convergence_rate, "__name__", "your function"),
                             what=f"the convergence rate (seed {seed}, dimension {dim}, "
                                  f"η = {lr}, eigenvalues {np.round(lam, 3).tolist()})")
            # A short run (not the default steps): the ratio has not settled on ρ yet, so it
            # is compared with the grader's own ‖θ_T‖/‖θ_{T−1}‖ for the same T, to rounding.
            lr = lrs[0]
            out = sandbox.call(convergence_rate, A, theta0, lr=lr, steps=short,
                               trusted=TRUSTED, watch={"A": A, "theta0": theta0})
            thetas = trusted_run_gd(functools.partial(quadratic_gradient, A), theta0, lr, short)
            ratio = float(np.linalg.norm(thetas[-1]) / np.linalg.norm(thetas[-2]))
            check_number(out, ratio, part=PART_RATE[0], equation=PART_RATE[1], rtol=1e-9,
                         fn_name=getattr(convergence_rate, "__name__", "your function"),
                         what=f"with steps={short} the measured ratio is ‖θ_{short}‖/"
                              f"‖θ_{short - 1}‖ of that run (seed {seed}, dimension {dim}, "
                              f"η = {lr}; use the steps you are given)")
    passed(PART_RATE[0], len(seeds) * len(dims) * (len(lrs) + 1))
