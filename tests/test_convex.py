"""descent.convex: each projection is the nearest point of its set (against brute force and
the KKT / obtuse-angle condition), Jensen's gap, and projected gradient descent."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from descent import convex as C
from descent import landscapes as LS
from descent.rules import sgd_init, sgd_update


def _feasible_samples(kind: str, dim: int, n: int, rng) -> np.ndarray:
    """Many points of the set (a dense sample, its boundary included)."""
    if kind == "ball":
        d = rng.standard_normal((n, dim))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        r = 1.5 * rng.uniform(0, 1, (n, 1)) ** (1 / dim)
        r[: n // 2] = 1.5                                      # half on the sphere
        return np.array([0.5, -0.3, 0.2, 0.0][:dim]) + r * d
    if kind == "box":
        low, high = np.array([-1.0, 0.0, -2, 0.5][:dim]), np.array([1.0, 0.5, 2, 3][:dim])
        pts = rng.uniform(low, high, (n, dim))
        face = rng.integers(0, dim, n)
        side = rng.integers(0, 2, n)
        pts[np.arange(n), face] = np.where(side, high[face], low[face])   # on the faces
        return pts
    pts = rng.dirichlet(np.full(dim, 0.3), n) * 2.0             # simplex of total 2
    return pts


SETS = {"ball": C.Ball(center=[0.5, -0.3, 0.2, 0.0][:3], radius=1.5),
        "box": C.Box(low=[-1.0, 0.0, -2.0], high=[1.0, 0.5, 2.0]),
        "simplex": C.Simplex(total=2.0)}


@pytest.mark.parametrize("kind", list(SETS))
def test_projection_is_the_nearest_point_by_brute_force(kind):
    """No sampled point of the set is closer to x than P(x), and P(x) is in the set."""
    rng = np.random.default_rng(0)
    region = SETS[kind]
    samples = _feasible_samples(kind, 3, 200_000, rng)
    assert region.contains(samples, tol=1e-9).all()
    for x in rng.normal(0, 2.5, (25, 3)):
        p = region.project(x)
        assert region.contains(p, tol=1e-12)
        best = np.linalg.norm(samples - x, axis=1).min()
        assert np.linalg.norm(p - x) <= best + 1e-12
        # and the sample is dense enough for that to mean something (spacing ≈ 0.1)
        assert best - np.linalg.norm(p - x) < 0.25


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(list(SETS)), seed=st.integers(0, 2**32 - 1),
       scale=st.floats(0.01, 20.0))
def test_projection_satisfies_the_obtuse_angle_condition(kind, seed, scale):
    """(x − P(x))ᵀ(y − P(x)) ≤ 0 for every y in C: the variational characterisation."""
    rng = np.random.default_rng(seed)
    region = SETS[kind]
    x = rng.normal(0, scale, 3)
    p = region.project(x)
    ys = _feasible_samples(kind, 3, 2000, rng)
    inner = (ys - p) @ (x - p)
    assert inner.max() <= 1e-9 * max(1.0, scale) ** 2
    np.testing.assert_allclose(region.project(p), p, atol=1e-12)     # idempotent


def test_simplex_projection_kkt_in_many_dimensions():
    """y = max(x − τ, 0) with one τ: y_i = x_i − τ where y_i > 0, x_i ≤ τ where y_i = 0."""
    rng = np.random.default_rng(1)
    for dim in (1, 2, 5, 50, 1000):
        for total in (0.3, 1.0, 7.0):
            x = rng.normal(0, 2, (8, dim))
            y = C.project_simplex(x, total)
            np.testing.assert_allclose(y.sum(-1), total, rtol=1e-12)
            assert (y >= 0).all()
            for xi, yi in zip(x, y):
                active = yi > 0
                tau = (xi - yi)[active]
                np.testing.assert_allclose(tau, tau[0], atol=1e-12)   # one shift
                assert (xi[~active] <= tau[0] + 1e-12).all()


def test_simplex_projection_against_a_qp_by_bisection():
    """τ found independently by bisection on Σ max(x − τ, 0) = s."""
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, 40)
    lo, hi = x.min() - 1, x.max()
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.maximum(x - mid, 0).sum() > 1 else (lo, mid)
    np.testing.assert_allclose(C.project_simplex(x), np.maximum(x - lo, 0), atol=1e-12)


def test_projections_are_nonexpansive_and_batched():
    rng = np.random.default_rng(3)
    x, z = rng.normal(0, 3, (500, 3)), rng.normal(0, 3, (500, 3))
    for region in SETS.values():
        px, pz = region.project(x), region.project(z)
        assert (np.linalg.norm(px - pz, axis=1)
                <= np.linalg.norm(x - z, axis=1) + 1e-12).all()
        np.testing.assert_array_equal(px[7], region.project(x[7]))


def test_ball_and_box_formulas():
    np.testing.assert_allclose(C.project_ball([3.0, 4.0]), [0.6, 0.8])
    np.testing.assert_allclose(C.project_ball([0.1, 0.2]), [0.1, 0.2])      # inside
    np.testing.assert_allclose(C.project_ball([2.0, 1.0], 1.0, [1.0, 1.0]), [2.0, 1.0])
    np.testing.assert_allclose(C.project_box([-3.0, 0.5, 9.0], 0, 1), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(C.project_simplex([0.2, 0.3, 0.5]), [0.2, 0.3, 0.5])
    np.testing.assert_allclose(C.project_simplex([5.0, 0.0]), [1.0, 0.0])


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="radius"):
        C.project_ball([1.0, 2.0], radius=0.0)
    with pytest.raises(ValueError, match="low must be <= high"):
        C.project_box([1.0], 2.0, 1.0)
    with pytest.raises(ValueError, match="total"):
        C.project_simplex([1.0], total=-1.0)
    with pytest.raises(ValueError, match="scalar"):
        C.project_simplex(3.0)
    with pytest.raises(ValueError, match=r"t must be in \[0, 1\]"):
        C.jensen_gap(np.sum, [1.0], [2.0], 1.5)
    with pytest.raises(ValueError, match="2-D"):
        C.Ball(center=[0, 0, 0]).outline()


def test_jensen_gap_sign_tells_convex_from_not():
    rng = np.random.default_rng(4)
    x, y = rng.uniform(-2, 2, (2, 5000, 2))
    t = rng.uniform(0, 1, 5000)
    bowl, rosen = LS.quadratic_bowl(10.0, 0.4), LS.rosenbrock()
    assert C.jensen_gap(bowl, x, y, t).min() >= -1e-12
    assert C.jensen_gap(rosen, x, y, t).min() < -1.0            # not convex
    # on a quadratic the gap is exactly t(1−t)/2 (x−y)ᵀA(x−y)
    A = bowl.hessian(np.zeros(2))
    d = x - y
    np.testing.assert_allclose(C.jensen_gap(bowl, x, y, t),
                               t * (1 - t) / 2 * np.einsum("ij,jk,ik->i", d, A, d),
                               rtol=1e-9, atol=1e-12)


def test_projected_gradient_descent_reaches_the_constrained_minimum():
    """On a bowl whose minimum (0) lies outside the box, PGD converges to the box's point
    where −∇f is in the normal cone, and every iterate is feasible."""
    bowl = LS.quadratic_bowl(10.0, 0.5)
    box = C.Box(low=[0.5, -1.0], high=[1.5, 1.0])
    path = C.projected_trajectory(bowl, [1.4, 0.9], box.project, sgd_update, sgd_init, 500,
                                  lr=1 / bowl.L)
    assert box.contains(path).all()
    x = path[-1]
    g = bowl.grad(x)
    corners = box.outline()[:4]
    ys = np.vstack([corners, np.random.default_rng(6).uniform(box.low, box.high, (2000, 2))])
    assert ((ys - x) @ g).min() >= -1e-9                      # ∇f(x*)ᵀ(y − x*) ≥ 0
    assert x[0] == pytest.approx(0.5)                         # on the face x = 0.5
    # the same answer as minimising f along that face by hand: ∂f/∂y = 0 at x = 0.5
    A = bowl.hessian(np.zeros(2))
    assert x[1] == pytest.approx(-A[0, 1] * 0.5 / A[1, 1], abs=1e-9)


def test_projected_trajectory_checks_its_input_and_projects_x0():
    bowl = LS.quadratic_bowl(4.0)
    ball = C.Ball(center=[0.0, 0.0], radius=0.5)
    path = C.projected_trajectory(bowl, [3.0, 4.0], ball.project, sgd_update, sgd_init, 0,
                                  lr=0.1)
    np.testing.assert_allclose(path, [[0.3, 0.4]])
    with pytest.raises(ValueError, match="x0 must have shape"):
        C.projected_trajectory(bowl, [1.0, 2.0, 3.0], lambda x: x, sgd_update, sgd_init, 1,
                               lr=0.1)
    with pytest.raises(TypeError, match="Landscape"):
        C.projected_trajectory(np.sum, [1.0], lambda x: x, sgd_update, sgd_init, 1, lr=0.1)
