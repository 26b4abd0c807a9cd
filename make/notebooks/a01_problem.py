"""Write solutions/01-problem/01-problem.ipynb, the nbgrader source of assignment 01 (chapter 1).

Run from the repository root: ``.venv/bin/python make/notebooks/a01_problem.py``, then
``make release ASSIGNMENT=01-problem``. The checks the test cells call live in
``descent.grading.assignments.a01_problem``.
"""

from __future__ import annotations

from pathlib import Path

from descent.grading.authoring import answer, code, markdown, notebook, tests, write, written

ROOT = Path(__file__).resolve().parents[2]

cells = [
markdown(r"""
# Assignment 01 — The problem: loss, gradient, gradient checks, critical points

You will write the loss and the gradient of a linear model, check the gradient with finite
differences, and classify critical points by the eigenvalues of the Hessian
([chapter 1](../../book/01-problem.ipynb)).

**How this works.** Fill in every cell that says `YOUR CODE HERE` (or `YOUR ANSWER HERE`).
Each answer is followed by a test cell: run it to check your work. The tests you see compare
your code with the course's reference on a few inputs; the grader runs the same checks on
new inputs (other seeds, shapes and dtypes) that you do not see. A failed check tells you the
part, the equation, and what differs. Do not call the library's reference implementation of
the thing you are asked to write: such an answer earns no points.
""", "intro"),
code("""
import numpy as np

from descent import grading
from descent.grading.assignments import a01_problem as checks
""", "setup"),
markdown(r"""
## Part 1.1 — The loss of a linear model (1 point)

A linear model predicts $\hat y_i = x_i^\top w$. On a data set $X \in \mathbb{R}^{n\times d}$
(one example per row) and targets $y \in \mathbb{R}^n$, the mean squared error is

$$ L(w) = \frac{1}{n}\,\lVert Xw - y\rVert^2 = \frac1n \sum_{i=1}^n (x_i^\top w - y_i)^2. \tag{1.1}$$

Write `mse_loss(w, X, y)` returning $L(w)$ as a number. Use NumPy; no loops are needed.
""", "md-loss"),
answer("""
def mse_loss(w, X, y):
    \"\"\"L(w) = (1/n)‖Xw − y‖² (eq. 1.1); w: (d,), X: (n, d), y: (n,).\"\"\"
    ### BEGIN SOLUTION
    r = X @ w - y
    return float(r @ r) / len(y)
    ### END SOLUTION
""", "answer-loss"),
tests("""
checks.check_loss(mse_loss)
### BEGIN HIDDEN TESTS
checks.check_loss(mse_loss, seeds=[11, 12], shapes=[(50, 7), (13, 1), (5, 9)])
### END HIDDEN TESTS
""", "test-loss", 1),
markdown(r"""
## Part 1.2 — Its gradient (2 points)

Differentiate (1.1): with the residual $r = Xw - y$,

$$ \nabla L(w) = \frac{2}{n}\,X^\top (Xw - y). \tag{1.2}$$

Write `mse_grad(w, X, y)` returning $\nabla L(w)$, an array of shape `(d,)`.
""", "md-grad"),
answer("""
def mse_grad(w, X, y):
    \"\"\"∇L(w) = (2/n)Xᵀ(Xw − y) (eq. 1.2), shape (d,).\"\"\"
    ### BEGIN SOLUTION
    return 2.0 / len(y) * (X.T @ (X @ w - y))
    ### END SOLUTION
""", "answer-grad"),
tests("""
checks.check_grad(mse_grad)
### BEGIN HIDDEN TESTS
checks.check_grad(mse_grad, seeds=[21, 22], shapes=[(40, 6), (7, 1), (3, 8)])
### END HIDDEN TESTS
""", "test-grad", 2),
markdown(r"""
## Part 1.3 — Relative error (1 point)

To compare two arrays $a$ and $b$ at any scale, use the relative error

$$ \operatorname{rel}(a, b) = \frac{\lVert a - b\rVert}{\max(\lVert a\rVert, \lVert b\rVert)},
   \qquad \operatorname{rel}(0, 0) = 0. \tag{1.3}$$

Write `relative_error(a, b)` (Euclidean norms over all elements).
""", "md-relerr"),
answer("""
def relative_error(a, b):
    \"\"\"‖a − b‖ / max(‖a‖, ‖b‖) (eq. 1.3), and 0 when both are zero.\"\"\"
    ### BEGIN SOLUTION
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)
    ### END SOLUTION
""", "answer-relerr"),
tests("""
checks.check_relative_error(relative_error)
### BEGIN HIDDEN TESTS
checks.check_relative_error(relative_error, seeds=[31, 32], shapes=[(7,), (3, 4)])
### END HIDDEN TESTS
""", "test-relerr", 1),
markdown(r"""
## Part 1.4 — A finite-difference gradient checker (2 points)

The central difference approximates each partial derivative to $O(h^2)$:

$$ \frac{\partial f}{\partial x_i}(x) \approx \frac{f(x + h e_i) - f(x - h e_i)}{2h}. \tag{1.4}$$

Write `numerical_gradient(f, x, h=1e-5)` for a scalar function `f` of a 1-D array `x`.
Do not change the caller's `x`: perturb a copy.
""", "md-numgrad"),
answer("""
def numerical_gradient(f, x, h=1e-5):
    \"\"\"Central differences (eq. 1.4), one coordinate at a time; x is not
    modified.\"\"\"
    grad = np.zeros(x.shape)
    for i in range(x.size):
        e = np.zeros(x.shape)
        e[i] = h
        ### BEGIN SOLUTION
        grad[i] = (f(x + e) - f(x - e)) / (2 * h)
        ### END SOLUTION
    return grad
""", "answer-numgrad"),
tests("""
checks.check_numerical_gradient(numerical_gradient)
### BEGIN HIDDEN TESTS
checks.check_numerical_gradient(numerical_gradient, seeds=[41, 42], dims=[1, 6])
### END HIDDEN TESTS
""", "test-numgrad", 2),
markdown(r"""
Now use your checker on your own gradient. The relative error between `mse_grad` and the
central differences should be tiny (below about $10^{-7}$); a wrong gradient gives an error
of order 1.
""", "md-use-checker"),
code("""
rng = np.random.default_rng(0)
X, y = rng.standard_normal((30, 4)), rng.standard_normal(30)
w = rng.standard_normal(4)
try:
    approx = numerical_gradient(lambda v: mse_loss(v, X, y), w)
    print("relative error:", relative_error(mse_grad(w, X, y), approx))
except NotImplementedError:
    print("finish parts 1.1 to 1.4 first")
""", "use-checker"),
markdown(r"""
## Part 1.5 — Classify a critical point (2 points)

At a critical point ($\nabla f = 0$) the eigenvalues $\lambda_i$ of the symmetric Hessian $H$
decide: all $\lambda_i > 0$ a **minimum**, all $\lambda_i < 0$ a **maximum**, both signs a
**saddle**; otherwise (some $|\lambda_i| \le$ `tol`, no opposite signs) the second-order test is
**degenerate**. Write `classify_critical_point(H, tol=1e-8)` returning one of the strings
`"minimum"`, `"maximum"`, `"saddle"`, `"degenerate"`. Use `np.linalg.eigvalsh`.
""", "md-classify"),
answer("""
def classify_critical_point(H, tol=1e-8):
    \"\"\"'minimum', 'maximum', 'saddle' or 'degenerate' from the
    eigenvalues of H.\"\"\"
    ### BEGIN SOLUTION
    lam = np.linalg.eigvalsh(H)
    if np.all(lam > tol):
        return "minimum"
    if np.all(lam < -tol):
        return "maximum"
    if np.any(lam > tol) and np.any(lam < -tol):
        return "saddle"
    return "degenerate"
    ### END SOLUTION
""", "answer-classify"),
tests("""
checks.check_classify(classify_critical_point)
### BEGIN HIDDEN TESTS
checks.check_classify(classify_critical_point, seeds=[51, 52], dims=[1, 3, 4])
### END HIDDEN TESTS
""", "test-classify", 2),
markdown(r"""
## Part 1.6 — Written answer (2 points, graded by hand)

$f(x, y) = x^2 + y^4$ and $g(x, y) = x^2 - y^4$ both have a critical point at the origin with
the same Hessian. What does your `classify_critical_point` say there, and what are the two
points really? Why can the Hessian not tell them apart, and why do saddle points, not local
minima, dominate the critical points of high-dimensional losses?
""", "md-written"),
written("""
Both Hessians are diag(2, 0): the test says "degenerate". The origin is a minimum of f
(x² + y⁴ ≥ 0) but a saddle of g (g < 0 along the y axis). The Hessian sees only the
quadratic part; the y-direction is decided by the fourth-order term, which it cannot see.
In d dimensions a critical point is a minimum only if all d curvatures are positive; when the
signs are not strongly correlated, having at least one negative among many is far more
likely, so most critical points of a large network's loss are saddles (Dauphin et al., 2014).
""", "written-critical", 2),
]


def build():
    return notebook(cells)


if __name__ == "__main__":
    write(build(), ROOT / "solutions" / "01-problem" / "01-problem.ipynb")
