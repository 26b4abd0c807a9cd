"""Write solutions/02-gradient-descent/02-gradient-descent.ipynb,
the nbgrader source of assignment 02 (chapter 2).

Run from the repository root: ``.venv/bin/python make/notebooks/a02_gradient_descent.py``, then
``make release ASSIGNMENT=02-gradient-descent``. The checks the test cells call live in
``descent.grading.assignments.a02_gradient_descent``.
"""

from __future__ import annotations

from pathlib import Path

from descent.grading.authoring import answer, code, markdown, notebook, tests, write, written

ROOT = Path(__file__).resolve().parents[2]

cells = [
markdown(r"""
# Assignment 02 — Gradient descent: the step, the 2/L edge, the rate

You will implement gradient descent, find empirically the step size at which it diverges on a
quadratic and compare it with $2/L$, and measure its convergence rate against the prediction
([chapter 2](../../book/02-gradient-descent.ipynb)).

**How this works.** Fill in every cell that says `YOUR CODE HERE` (or `YOUR ANSWER HERE`) and
run the test cell after it. The visible tests compare your code with the course's reference on
a few inputs; the grader runs the same checks on new inputs you do not see. Do not call the
library's optimizers (`descent.rules`, `descent.optim`, `torch.optim`) in your answers: such an
answer earns no points.
""", "intro"),
code("""
import numpy as np

from descent import grading
from descent.grading.assignments import a02_gradient_descent as checks

# f(θ) = ½ θᵀAθ with chosen eigenvalues (curvatures); its gradient is Aθ.
A = checks.quadratic([0.5, 2.0, 4.0], seed=0)
theta0 = np.array([1.0, -1.0, 0.5])
""", "setup"),
markdown(r"""
## Part 2.1 — One step of gradient descent (2 points)

$$ \theta_t = \theta_{t-1} - \eta\, \nabla f(\theta_{t-1}). \tag{2.1}$$

Write `gd_step(theta, grad, lr)` returning the new parameters. It must work on arrays of any
shape and dtype, and it must not modify `theta` or `grad` (return a new array).
""", "md-step"),
answer("""
def gd_step(theta, grad, lr):
    \"\"\"θ_t = θ_{t-1} − η g (eq. 2.1); returns a new array, inputs
    untouched.\"\"\"
    ### BEGIN SOLUTION
    return theta - lr * grad
    ### END SOLUTION
""", "answer-step"),
tests("""
checks.check_step(gd_step)
### BEGIN HIDDEN TESTS
checks.check_step(gd_step, seeds=[11, 12], shapes=[(7,), (4, 5), (1,)], steps=30)
### END HIDDEN TESTS
""", "test-step", 2),
markdown(r"""
## Part 2.2 — A run (2 points)

Write `run_gd(grad_fn, theta0, lr, steps)` returning all iterates
$\theta_0, \theta_1, \dots, \theta_T$ as one array of shape `(steps + 1, d)`, using your `gd_step`.
`grad_fn(theta)` returns $\nabla f(\theta)$.
""", "md-run"),
answer("""
def run_gd(grad_fn, theta0, lr, steps):
    \"\"\"The iterates θ₀ … θ_T of eq. (2.1), shape (steps + 1, d).\"\"\"
    ### BEGIN SOLUTION
    thetas = [theta0]
    for _ in range(steps):
        thetas.append(gd_step(thetas[-1], grad_fn(thetas[-1]), lr))
    return np.stack(thetas)
    ### END SOLUTION
""", "answer-run"),
tests("""
checks.check_run(run_gd)
### BEGIN HIDDEN TESTS
checks.check_run(run_gd, seeds=[21, 22], dims=[1, 5], steps=35, lr=0.45)
### END HIDDEN TESTS
""", "test-run", 2),
markdown(r"""
## Part 2.3 — The divergence threshold (2 points)

On $f(\theta) = \tfrac12\theta^\top A\theta$, GD multiplies the component of $\theta$ along the
eigenvector of $\lambda_i$ by $1 - \eta\lambda_i$ at every step, so it diverges as soon as
$\eta > 2/L$ with $L = \lambda_{\max}(A)$. Find that edge **empirically**: write
`divergence_threshold(A, theta0, steps=200)` that calls `run_gd` and bisects on $\eta$ between
0 and a step that surely diverges, calling a run divergent when $\lVert\theta_T\rVert >
\lVert\theta_0\rVert$. Return the estimated threshold (use about 40 bisection steps). Do not
compute eigenvalues here: the test compares your measurement with $2/L$.
""", "md-edge"),
answer("""
def divergence_threshold(A, theta0, steps=200):
    \"\"\"The smallest divergent step size of GD on ½θᵀAθ, found by
    bisection.\"\"\"
    grad_fn = lambda theta: A @ theta
    lo, hi = 0.0, 1.0
    start = np.linalg.norm(theta0)
    while np.linalg.norm(run_gd(grad_fn, theta0, hi, steps)[-1]) <= start:
        hi *= 2                       # grow until it surely diverges
    for _ in range(40):
        mid = (lo + hi) / 2
        ### BEGIN SOLUTION
        diverged = np.linalg.norm(run_gd(grad_fn, theta0, mid, steps)[-1]) > np.linalg.norm(theta0)
        lo, hi = (lo, mid) if diverged else (mid, hi)
        ### END SOLUTION
    return (lo + hi) / 2
""", "answer-edge"),
tests("""
edge = divergence_threshold(A, theta0)
print(f"measured {edge:.4f}, 2/L = {2 / np.linalg.eigvalsh(A).max():.4f}")
checks.check_divergence_threshold(divergence_threshold)
### BEGIN HIDDEN TESTS
checks.check_divergence_threshold(divergence_threshold, seeds=[31, 32], dims=[2, 6])
### END HIDDEN TESTS
""", "test-edge", 2),
markdown(r"""
## Part 2.4 — The convergence rate (2 points)

For $\eta < 2/L$ the error shrinks by the factor

$$ \rho(\eta) = \max_i\, \lvert 1 - \eta\lambda_i\rvert \tag{2.5}$$

per step, asymptotically. Measure it: write `convergence_rate(A, theta0, lr, steps=100)` that
runs GD (the minimiser is $\theta^\star = 0$) and returns the last step's ratio
$\lVert\theta_T\rVert / \lVert\theta_{T-1}\rVert$.
""", "md-rate"),
answer("""
def convergence_rate(A, theta0, lr, steps=100):
    \"\"\"Measured ‖θ_T‖ / ‖θ_{T−1}‖ of GD on ½θᵀAθ (θ* = 0).\"\"\"
    thetas = run_gd(lambda theta: A @ theta, theta0, lr, steps)
    ### BEGIN SOLUTION
    return float(np.linalg.norm(thetas[-1]) / np.linalg.norm(thetas[-2]))
    ### END SOLUTION
""", "answer-rate"),
tests("""
lam = np.linalg.eigvalsh(A)
for lr in (0.1, 2 / (lam.max() + lam.min()), 0.45):
    predicted = np.max(np.abs(1 - lr * lam))
    measured = convergence_rate(A, theta0, lr)
    print(f"η = {lr:.3f}: measured {measured:.5f}, "
          f"predicted {predicted:.5f}")
checks.check_convergence_rate(convergence_rate)
### BEGIN HIDDEN TESTS
checks.check_convergence_rate(convergence_rate, seeds=[41, 42], dims=[2, 5], lrs=[0.05, 0.35])
### END HIDDEN TESTS
""", "test-rate", 2),
markdown(r"""
## Part 2.5 — Written answer (2 points, graded by hand)

Using your measurements: which step size gives the fastest rate on this quadratic, and what is
that rate in terms of the condition number $\kappa = L/\mu$? Why is the "safe" step $1/L$ not
the fastest, and what happens to the number of steps GD needs as $\kappa$ grows?
""", "md-written"),
written("""
ρ(η) = max(|1 − ηµ|, |1 − ηL|) is smallest where the two are equal: η* = 2/(L + µ), with
ρ* = (L − µ)/(L + µ) = (κ − 1)/(κ + 1). With η = 1/L, ρ = 1 − 1/κ, slower because the flat
direction (µ) moves too little while the steep one is over-damped. To reduce the error by ε
GD needs about (κ/2)·log(1/ε) steps at η*, so the step count grows linearly with κ: the
condition number, not the dimension, sets the cost.
""", "written-rate", 2),
]


def build():
    return notebook(cells)


if __name__ == "__main__":
    write(build(), ROOT / "solutions" / "02-gradient-descent" / "02-gradient-descent.ipynb")
