"""The trusted side: compare plain numbers with the reference, and say what differs.

These functions never call student code. They take the arrays an
:class:`~descent.grading.sandbox.Outcome` recorded and the reference's arrays, and return a
:class:`~descent.grading.feedback.Verdict`. Tolerances are relative with an absolute floor
scaled to the data, never bitwise: a correct answer written another way (another order of
operations, in place on a copy, float32) differs from the reference only by rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from descent.grading.feedback import PASS, Verdict, fail, fmt


@dataclass(frozen=True)
class Tolerance:
    """``|got − expected| ≤ atol·scale + rtol·|expected|``, with ``scale = max|expected|``.

    float64: rounding of a few ops per step is ~1e-16 relative, so 1e-9 leaves 10⁷ of margin
    and still separates every catalogued mistake (they differ at 1e-3 or more). float32:
    ε = 1.2e-7 per op, amplified over tens of steps and through a division by √v; 1e-4
    leaves a 100× margin on what was measured (≤ 1e-6) and is still far below any mistake.
    """

    rtol: float
    atol: float

    @staticmethod
    def for_dtype(dtype) -> Tolerance:
        return TOL32 if np.dtype(dtype).itemsize <= 4 else TOL64


TOL64 = Tolerance(rtol=1e-9, atol=1e-12)
TOL32 = Tolerance(rtol=1e-4, atol=1e-5)


def close(got, expected, tol: Tolerance) -> np.ndarray:
    """Elementwise closeness, NaN matching NaN (a variant may legitimately give NaN)."""
    got, expected = np.asarray(got, float), np.asarray(expected, float)
    finite = np.isfinite(expected)
    scale = float(np.max(np.abs(expected[finite]))) if finite.any() else 1.0
    with np.errstate(invalid="ignore"):
        ok = np.abs(got - expected) <= tol.atol * max(scale, 1.0) + tol.rtol * np.abs(expected)
    ok &= np.isfinite(got) & finite          # inf ≤ rtol·inf must not pass a finite value
    both_nan = np.isnan(got) & np.isnan(expected)
    same_inf = np.isinf(got) & np.isinf(expected) & (np.sign(got) == np.sign(expected))
    return ok | both_nan | same_inf


def allclose(got, expected, tol: Tolerance) -> bool:
    got, expected = np.asarray(got), np.asarray(expected)
    return got.shape == expected.shape and bool(close(got, expected, tol).all())


def first_difference(got, expected, tol: Tolerance, *, what: str = "value",
                     rows: str | None = None) -> Verdict:
    """PASS, or where ``got`` first differs: the row (step), the element, expected and got.

    ``rows`` names the leading axis (``"step"``) when it indexes time, so the message reads
    "at step 3, element (1,): expected …, got …".
    """
    got, expected = np.asarray(got, float), np.asarray(expected, float)
    if got.shape != expected.shape:
        return fail(f"the {what} has shape {got.shape}, expected {expected.shape}.",
                    mistake="wrong-shape")
    bad = ~close(got, expected, tol)
    if not bad.any():
        return PASS
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    if rows and got.ndim >= 1:
        where = f"at {rows} {index[0]}" + (f", element {index[1:]}" if got.ndim > 1 else "")
    else:
        where = f"at element {index}" if got.ndim else ""
    g, e = got[index], expected[index]
    if not np.isfinite(g) and np.isfinite(e):
        return fail(f"the {what} is {g} {where} where the reference is finite ({e:.6g}): "
                    "look for a division by zero, a square root of a negative number, or a "
                    "step size large enough to diverge.", mistake="non-finite")
    return fail(f"the {what} differs {where}: expected {e:.10g}, got {g:.10g} "
                f"(tolerance: relative {tol.rtol:g}).".replace("  ", " "))


def scale_mistake(got, expected, tol: Tolerance, factors: dict[float, str]) -> str | None:
    """If ``got ≈ c·expected`` for a catalogued factor c, return what that factor means."""
    got, expected = np.asarray(got, float), np.asarray(expected, float)
    if got.shape != expected.shape or not np.any(expected):
        return None
    loose = Tolerance(max(tol.rtol, 1e-6), tol.atol)
    for factor, meaning in factors.items():
        if allclose(got, factor * expected, loose):
            return meaning
    return None


def describe(value) -> str:
    return fmt(value)
