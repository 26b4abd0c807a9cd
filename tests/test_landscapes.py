"""descent.landscapes: derivatives against torch autograd and finite differences, critical
points against the second-order test, and the trajectory runner against a hand-written loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from descent import landscapes as LS
from descent.rules import sgd_init, sgd_update

LANDSCAPES = {
    "bowl": LS.quadratic_bowl(25.0, math.pi / 5),
    "bowl-4d": LS.quadratic_bowl(100.0, 0.3, dim=4, L=3.0),
    "rosenbrock": LS.rosenbrock(),
    "rosenbrock-a2": LS.rosenbrock(a=2.0, b=10.0),
    "beale": LS.beale(),
    "himmelblau": LS.himmelblau(),
    "saddle": LS.saddle(),
    "rastrigin": LS.rastrigin(),
    "rastrigin-3d": LS.rastrigin(dim=3, A=5.0),
    "ravine": LS.ravine(),
}
ids = list(LANDSCAPES)
cases = list(LANDSCAPES.values())


def autograd(landscape, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """∇f and ∇²f of ``landscape.value`` at one point, by torch autograd in float64."""
    xt = torch.tensor(x, dtype=torch.float64)
    g = torch.autograd.functional.jacobian(landscape.value, xt)
    H = torch.autograd.functional.hessian(landscape.value, xt)
    return g.numpy(), H.numpy()


def random_points(landscape, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo = np.array([b[0] for b in landscape.bounds] + [-2.0] * (landscape.dim - 2))
    hi = np.array([b[1] for b in landscape.bounds] + [2.0] * (landscape.dim - 2))
    return rng.uniform(lo[: landscape.dim], hi[: landscape.dim], size=(n, landscape.dim))


@pytest.mark.parametrize("landscape", cases, ids=ids)
def test_grad_and_hessian_equal_autograd(landscape):
    for x in random_points(landscape, 8, seed=1):
        g, H = autograd(landscape, x)
        scale_g = 1 + np.abs(g).max()
        scale_H = 1 + np.abs(H).max()
        np.testing.assert_allclose(landscape.grad(x), g, rtol=1e-12, atol=1e-12 * scale_g)
        np.testing.assert_allclose(landscape.hessian(x), H, rtol=1e-12, atol=1e-12 * scale_H)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(ids), seed=st.integers(0, 2**32 - 1))
def test_grad_and_hessian_equal_central_differences(name, seed):
    landscape = LANDSCAPES[name]
    x = random_points(landscape, 1, seed)[0]
    h = 1e-5
    eye = np.eye(landscape.dim)
    # Central differences: error O(h²·f''') plus rounding O(ε·f/h).
    fd_g = np.array([(landscape.value(x + h * e) - landscape.value(x - h * e)) / (2 * h)
                     for e in eye])
    fd_H = np.array([(landscape.grad(x + h * e) - landscape.grad(x - h * e)) / (2 * h)
                     for e in eye])
    scale = 1 + abs(landscape.value(x)) + np.abs(landscape.hessian(x)).max()
    np.testing.assert_allclose(landscape.grad(x), fd_g, rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_allclose(landscape.hessian(x), fd_H, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("landscape", cases, ids=ids)
def test_vectorised_over_a_grid_equals_pointwise(landscape):
    pts = random_points(landscape, 12, seed=2).reshape(3, 4, landscape.dim)
    values, grads, hessians = landscape.value(pts), landscape.grad(pts), landscape.hessian(pts)
    assert values.shape == (3, 4)
    assert grads.shape == (3, 4, landscape.dim)
    assert hessians.shape == (3, 4, landscape.dim, landscape.dim)
    for i in range(3):
        for j in range(4):
            # Equal up to the summation order of a batched matmul.
            assert values[i, j] == pytest.approx(landscape.value(pts[i, j]), rel=1e-15)
            np.testing.assert_allclose(grads[i, j], landscape.grad(pts[i, j]),
                                       rtol=1e-15, atol=1e-15)
            np.testing.assert_allclose(hessians[i, j], landscape.hessian(pts[i, j]),
                                       rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("landscape", cases, ids=ids)
def test_known_critical_points(landscape):
    kinds = [("minimum", landscape.minima), ("saddle", landscape.saddles),
             ("maximum", landscape.maxima)]
    for kind, points in kinds:
        for p in points:
            assert np.abs(landscape.grad(p)).max() < 1e-10, (kind, p)
            assert LS.classify_critical_point(landscape.hessian(p)) == kind, (kind, p)
            if kind == "minimum":
                assert np.all(np.linalg.eigvalsh(landscape.hessian(p)) > 0)


def test_himmelblau_has_four_global_minima():
    h = LS.himmelblau()
    assert len(h.minima) == 4 and len(h.saddles) == 4 and len(h.maxima) == 1
    assert np.all(np.abs(h.value(h.minima)) < 1e-20)
    assert len({tuple(np.round(m, 6)) for m in h.minima}) == 4
    np.testing.assert_allclose(h.minima, [[3.0, 2.0], [-2.805118, 3.131312],
                                          [-3.779310, -3.283186], [3.584428, -1.848126]],
                               atol=1e-6)


def test_rosenbrock_and_beale_minima_are_zero():
    assert LS.rosenbrock(2.0, 5.0).value(np.array([2.0, 4.0])) == 0.0
    assert LS.beale().value(np.array([3.0, 0.5])) == 0.0


@settings(max_examples=30, deadline=None)
@given(kappa=st.floats(1.0, 1e4), angle=st.floats(-4.0, 4.0), dim=st.integers(2, 6),
       L=st.floats(0.1, 10.0))
def test_bowl_condition_number_is_kappa(kappa, angle, dim, L):
    bowl = LS.quadratic_bowl(kappa, angle, dim=dim, L=L)
    lam = np.linalg.eigvalsh(bowl.hessian(np.zeros(dim)))
    assert lam.max() / lam.min() == pytest.approx(kappa, rel=1e-9)
    assert lam.max() == pytest.approx(bowl.L, rel=1e-12)
    assert lam.min() == pytest.approx(bowl.mu, rel=1e-9)
    assert bowl.kappa == pytest.approx(kappa, rel=1e-12)


def test_bowl_rotation_turns_the_eigenvectors():
    bowl = LS.quadratic_bowl(10.0, math.pi / 6)
    _, vectors = np.linalg.eigh(bowl.hessian(np.zeros(2)))
    flat, steep = vectors[:, 0], vectors[:, 1]              # eigenvectors of μ and L
    assert abs(flat @ [math.cos(math.pi / 6), math.sin(math.pi / 6)]) == pytest.approx(1.0)
    assert abs(steep @ [-math.sin(math.pi / 6), math.cos(math.pi / 6)]) == pytest.approx(1.0)


@pytest.mark.parametrize("landscape", cases, ids=ids)
def test_L_and_mu_bound_the_hessian(landscape):
    pts = random_points(landscape, 50, seed=3)
    lam = np.linalg.eigvalsh(landscape.hessian(pts))
    if landscape.L is not None:
        assert np.abs(lam).max() <= landscape.L * (1 + 1e-12)
    if landscape.mu is not None:
        assert lam.min() >= landscape.mu * (1 - 1e-12) - 1e-15


@pytest.mark.parametrize("H,kind", [
    (np.diag([1.0, 2.0]), "minimum"), (np.diag([-1.0, -3.0]), "maximum"),
    (np.diag([2.0, -2.0]), "saddle"), (np.diag([1.0, 0.0]), "degenerate"),
    (np.diag([1.0, 0.0, -1.0]), "saddle"), (np.zeros((2, 2)), "degenerate"),
    (np.array([[0.0, 1.0], [1.0, 0.0]]), "saddle"),
])
def test_classify_critical_point(H, kind):
    assert LS.classify_critical_point(H) == kind


def test_classify_rejects_bad_matrices():
    with pytest.raises(ValueError, match="square"):
        LS.classify_critical_point(np.ones((2, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        LS.classify_critical_point(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="finite"):
        LS.classify_critical_point(np.array([[np.nan, 0.0], [0.0, 1.0]]))


def test_trajectory_equals_a_hand_written_loop():
    bowl = LS.quadratic_bowl(10.0, 0.4)
    path = LS.trajectory(bowl, [1.5, -1.0], sgd_update, sgd_init, 30, lr=0.5, momentum=0.8)
    assert path.shape == (31, 2)
    x, b = np.array([1.5, -1.0]), None
    np.testing.assert_array_equal(path[0], x)
    for t in range(1, 31):
        g = bowl.hessian(x) @ x                             # ∇f = Ax
        b = g if b is None else 0.8 * b + g                 # heavy ball, torch's convention
        x = x - 0.5 * b
        np.testing.assert_allclose(path[t], x, rtol=1e-13, atol=1e-15)


def test_trajectory_passes_init_the_keywords_it_names():
    seen = {}

    def init(x, *, flavour="plain"):
        seen["init"] = flavour
        return 0

    def update(x, g, state, *, lr, flavour="plain"):
        seen["update"] = flavour
        return x - lr * g, state + 1

    LS.trajectory(LS.saddle(), [0.1, 0.1], update, init, 2, lr=0.1, flavour="spicy")
    assert seen == {"init": "spicy", "update": "spicy"}


def test_trajectory_converges_and_diverges_where_theory_says():
    bowl = LS.quadratic_bowl(10.0, 0.3, L=2.0)
    start = [1.0, 1.0]
    calm = LS.trajectory(bowl, start, sgd_update, sgd_init, 300, lr=1 / bowl.L)
    wild = LS.trajectory(bowl, start, sgd_update, sgd_init, 50, lr=2.1 / bowl.L)
    assert np.linalg.norm(calm[-1]) < 1e-6                  # step 1/L converges
    assert np.linalg.norm(wild[-1]) > 10                    # beyond 2/L it diverges


def test_trajectory_bad_input():
    bowl = LS.quadratic_bowl()
    with pytest.raises(ValueError, match=r"x0 must have shape \(2,\)"):
        LS.trajectory(bowl, [1.0, 2.0, 3.0], sgd_update, sgd_init, 5, lr=0.1)
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        LS.trajectory(bowl, [1.0, 2.0], sgd_update, sgd_init, -1, lr=0.1)
    with pytest.raises(TypeError, match="landscape must be a Landscape"):
        LS.trajectory(lambda x: x, [1.0, 2.0], sgd_update, sgd_init, 5, lr=0.1)


@pytest.mark.parametrize("make,error,words", [
    (lambda: LS.quadratic_bowl(0.5), ValueError, "kappa (κ) must be in [1, ∞), got 0.5"),
    (lambda: LS.quadratic_bowl(10.0, dim=0), ValueError, "dim must be an integer >= 1"),
    (lambda: LS.quadratic_bowl(10.0, dim=1), ValueError, "kappa (κ) must be 1 for a 1-D bowl"),
    (lambda: LS.quadratic_bowl(10.0, L=-1.0), ValueError, "L must be in (0, ∞"),
    (lambda: LS.rastrigin(dim=2.0), TypeError, "dim must be an integer"),
    (lambda: LS.ravine(steepness=0.0), ValueError, "steepness (s) must be in (0, ∞"),
    (lambda: LS.rosenbrock(b=float("nan")), ValueError, "b must be a finite number, got nan"),
])
def test_bad_landscape_arguments(make, error, words):
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)


def test_grid_is_for_2d_only():
    X, Y, Z = LS.rosenbrock().grid(50)
    assert X.shape == Y.shape == Z.shape == (50, 50)
    with pytest.raises(ValueError, match="dim 3"):
        LS.rastrigin(dim=3).grid()
