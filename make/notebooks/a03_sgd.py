"""Write solutions/03-sgd/03-sgd.ipynb, the nbgrader source of assignment 03 (chapter 3).

Run from the repository root: ``.venv/bin/python make/notebooks/a03_sgd.py``, then
``make release ASSIGNMENT=03-sgd``. The checks the test cells call live in
``descent.grading.assignments.a03_sgd``.
"""

from __future__ import annotations

from pathlib import Path

from descent.grading.authoring import answer, code, markdown, notebook, tests, write, written

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = "../../book/03-sgd.ipynb"

CELLS = [
    markdown(f"""
    # Assignment 03 — SGD: epochs, the 1/B law, Robbins–Monro, a training run

    You will write the mini-batch sampler every training loop relies on, measure how the noise
    of a mini-batch gradient falls with the batch size, write a step-size schedule that
    satisfies the Robbins–Monro conditions, and train softmax (multinomial logistic)
    regression on the handwritten digits with your own SGD step
    ([chapter 3]({CHAPTER})).

    **How this works.** Fill in every cell that says `YOUR CODE HERE` (or `YOUR ANSWER HERE`)
    and run the test cell after it. The visible tests compare your code with the course's
    reference on a few inputs; the grader runs the same checks on new inputs you do not see,
    and re-runs your training step itself (its own data, seeds and device; the numbers you
    print are never used). Do not call the library's answers (`descent.data.batches`,
    `descent.noise`, `descent.rules`, `descent.optim`, `torch.optim`) in your answers: such an
    answer earns no points.
    """, "intro"),
    code("""
    import numpy as np
    import torch

    from descent.grading.assignments import a03_sgd as checks

    # N × P per-example gradients g_i of softmax regression on N = 300
    # digits, at a random point.
    grads = checks.example_gradients(seed=0)
    """, "setup"),

    markdown(f"""
    ## Part 3.1 — A shuffled epoch (3 points)

    An **epoch** visits every training example exactly once, in a new random order each time
    ([chapter 3, "Mini-batches are unbiased"]({CHAPTER}#Mini-batches-are-unbiased)). Write
    `epoch_batches(n, batch_size, *, epochs, seed, drop_last=False)` returning a list of
    `epochs` epochs, each a list of 1-D integer arrays of indices into `0 … n-1`:

    * in each epoch, every index appears exactly once (sampling *without* replacement);
    * the order is reshuffled at the start of every epoch: create **one** generator,
      `np.random.default_rng(seed)`, and draw a new permutation from it per epoch;
    * every batch has `batch_size` indices except the last one of an epoch, which holds the
      `n % batch_size` left over; with `drop_last=True` that partial batch is dropped;
    * the same `seed` gives the same batches.
    """, "md-sampler"),
    answer("""
    def epoch_batches(n, batch_size, *, epochs, seed, drop_last=False):
        \"\"\"The indices 0 … n-1 in mini-batches: a list of epochs, each a list
        of arrays.\"\"\"
        ### BEGIN SOLUTION
        rng = np.random.default_rng(seed)
        stop = n - n % batch_size if drop_last else n
        out = []
        for _ in range(epochs):
            order = rng.permutation(n)
            out.append([order[i:i + batch_size] for i in range(0, stop, batch_size)])
        return out
        ### END SOLUTION
    """, "answer-sampler"),
    tests("""
    checks.check_sampler(epoch_batches)
    for epoch in epoch_batches(10, 4, epochs=2, seed=0):
        print([list(map(int, batch)) for batch in epoch])
    ### BEGIN HIDDEN TESTS
    checks.check_sampler(epoch_batches, seeds=[5, 6],
                         cases=[(23, 5, 4, False), (23, 5, 4, True), (9, 20, 2, False),
                                (16, 4, 3, True), (11, 1, 2, False)])
    ### END HIDDEN TESTS
    """, "test-sampler", 3),

    markdown(f"""
    ## Part 3.2 — The variance of a mini-batch gradient (3 points)

    A mini-batch of $B$ distinct examples gives
    $\\hat g_B = \\frac1B\\sum_{{i\\in\\mathcal B}} g_i$, an unbiased
    estimate of $\\bar g = \\frac1N\\sum_i g_i$ whose variance is
    ([chapter 3, "The variance of a mini-batch gradient"]({CHAPTER}))

    $$ \\mathbb E\\,\\lVert \\hat g_B - \\bar g\\rVert^2
       = \\frac{{\\sigma^2}}{{B}}\\,\\frac{{N-B}}{{N-1}}, \\qquad
       \\sigma^2 = \\frac1N\\sum_i \\lVert g_i - \\bar g\\rVert^2 . $$

    Measure it: write `minibatch_variance(grads, batch_size, *, draws, seed)` that draws
    `draws` mini-batches of `batch_size` distinct rows of `grads` (an $N\\times P$ array,
    one row $g_i$ per example) with `np.random.default_rng(seed)`, and returns the mean of
    $\\lVert \\hat g_B - \\bar g\\rVert^2$ over the draws. Do not modify `grads`. Draw only from
    that generator: the grader checks that the same seed gives the same number, the next seed
    another, and that NumPy's global generator (`np.random.rand`, `np.random.seed`) is left
    alone.

    *Hint:* `rng.choice(N, size=B, replace=False)` draws B distinct indices.
    """, "md-variance"),
    answer("""
    def minibatch_variance(grads, batch_size, *, draws, seed):
        \"\"\"The mean of ‖ĝ_B − ḡ‖² over `draws` mini-batches drawn without
        replacement.\"\"\"
        rng = np.random.default_rng(seed)
        g_bar = grads.mean(axis=0)
        total = 0.0
        for _ in range(draws):
            ### BEGIN SOLUTION
            idx = rng.choice(len(grads), size=batch_size, replace=False)
            g_hat = grads[idx].mean(axis=0)
            total += np.sum((g_hat - g_bar) ** 2)
            ### END SOLUTION
        return total / draws
    """, "answer-variance"),
    tests("""
    checks.check_variance(minibatch_variance)
    for B in (8, 100):
        measured = minibatch_variance(grads, B, draws=200, seed=1)
        print(f"B = {B:3d}: measured {measured:.4f}, "
              f"predicted {checks.predicted_variance(grads, B):.4f}")
    ### BEGIN HIDDEN TESTS
    checks.check_variance(minibatch_variance, seeds=[3], batch_sizes=[3, 150], draws=400)
    ### END HIDDEN TESTS
    """, "test-variance", 3),

    markdown("""
    ## Part 3.3 — The slope on a log-log plot (1 point)

    If the variance were exactly $\\sigma^2/B$, $\\log(\\text{variance})$ against $\\log B$ would be
    a line of slope $-1$. Write `variance_slope(grads, batch_sizes, *, draws, seed)` that
    measures the variance for each batch size with your `minibatch_variance` and returns the
    least-squares slope of $\\log(\\text{variance})$ against $\\log B$ (`np.polyfit` fits a line).
    """, "md-slope"),
    answer("""
    def variance_slope(grads, batch_sizes, *, draws, seed):
        \"\"\"The least-squares slope of log(variance) against log(B).\"\"\"
        variances = [minibatch_variance(grads, B, draws=draws, seed=seed)
                     for B in batch_sizes]
        ### BEGIN SOLUTION
        return float(np.polyfit(np.log(batch_sizes), np.log(variances), 1)[0])
        ### END SOLUTION
    """, "answer-slope"),
    tests("""
    checks.check_slope(variance_slope)
    ### BEGIN HIDDEN TESTS
    checks.check_slope(variance_slope, seeds=[4], batch_sizes=[1, 3, 9, 27, 81])
    ### END HIDDEN TESTS
    """, "test-slope", 1),
    code("""
    # Explore (not graded; skipped while nbgrader grades): the slope when B goes
    # up to 256 of N = 300 (see Part 3.6).
    import os

    checks.answered("minibatch_variance", "variance_slope")
    if not os.environ.get("NBGRADER_EXECUTION"):
        sizes = [2, 4, 8, 16, 32, 64, 128, 256]
        slope = variance_slope(grads, sizes, draws=200, seed=0)
        print(f"measured slope {slope:.3f}")
    """, "explore-slope"),

    markdown(f"""
    ## Part 3.4 — A Robbins–Monro schedule (1 point)

    With a constant step, SGD stalls at a noise floor proportional to $\\eta$. Robbins and
    Monro's conditions, $\\sum_t \\eta_t = \\infty$ and $\\sum_t \\eta_t^2 < \\infty$, let it reach
    the minimiser itself ([chapter 3, "Noise floors and the Robbins–Monro
    conditions"]({CHAPTER})). Write `robbins_monro(t, *, lr0, tau)`
    returning

    $$ \\eta_t = \\frac{{\\eta_0}}{{1 + t/\\tau}}, $$

    where $t = 0$ is the first step (so $\\eta_0$ is the first step size).
    """, "md-schedule"),
    answer("""
    def robbins_monro(t, *, lr0, tau):
        \"\"\"η_t = η₀/(1 + t/τ); t = 0 is the first step.\"\"\"
        ### BEGIN SOLUTION
        return lr0 / (1 + t / tau)
        ### END SOLUTION
    """, "answer-schedule"),
    tests("""
    checks.check_schedule(robbins_monro)
    print([round(robbins_monro(t, lr0=1.0, tau=10.0), 4)
           for t in (0, 10, 30, 90)])
    ### BEGIN HIDDEN TESTS
    checks.check_schedule(robbins_monro, settings=[(2.0, 1.0), (0.03, 250.0)], steps=80)
    ### END HIDDEN TESTS
    """, "test-schedule", 1),

    markdown(f"""
    ## Part 3.5 — Softmax regression on the digits with your SGD step (3 points)

    Softmax regression on the $8\\times8$ digits has parameters $W$ ($64\\times10$) and $b$
    (10); for a batch $x$ ($B\\times 64$) with labels $y$ its loss is the mean cross-entropy
    $\\ell = \\frac1B\\sum_i -\\log \\operatorname{{softmax}}(x_iW + b)_{{y_i}}$, with gradient

    $$ \\nabla_W \\ell = \\tfrac1B\\, x^\\top (P - Y), \\qquad
       \\nabla_b \\ell = \\tfrac1B \\textstyle\\sum_i (P - Y)_i ,$$

    where $P = \\operatorname{{softmax}}(xW + b)$ row by row and $Y$ holds the one-hot labels.
    Write `logreg_sgd_step(W, b, x, y, lr)` returning the new pair `(W, b)` after one step
    of ([chapter 3, eq. (SGD)]({CHAPTER}#Mini-batches-are-unbiased))

    $$ \\theta_t = \\theta_{{t-1}} - \\eta_t\\, \\hat g_{{B,t}} . $$

    The arguments are torch tensors (on the grader's device); do not modify them in place.
    You may compute the gradient by hand or with `torch.autograd`. The grader trains the
    model itself with your step, the Robbins–Monro schedule and shuffled epochs, and compares
    its loss, step by step, with the same run made with the reference step. That run uses the
    grader's own sampler and the reference schedule, not your `epoch_batches` and
    `robbins_monro`: only your step is graded here, so a mistake in Part 3.1 or 3.4 costs
    those parts only, never this one as well.
    """, "md-train"),
    answer("""
    def logreg_sgd_step(W, b, x, y, lr):
        \"\"\"One SGD step on the mean cross-entropy of softmax regression;
        returns (W, b).\"\"\"
        ### BEGIN SOLUTION
        p = torch.softmax(x @ W + b, dim=1)
        p[torch.arange(len(y), device=y.device), y] -= 1   # ∂ℓ/∂logits = P − Y (times B)
        grad_W, grad_b = x.T @ p / len(y), p.mean(dim=0)
        return W - lr * grad_W, b - lr * grad_b
        ### END SOLUTION
    """, "answer-train"),
    tests("""
    checks.check_logreg(logreg_sgd_step)
    ### BEGIN HIDDEN TESTS
    checks.check_logreg(logreg_sgd_step, seeds=[7, 8], batch_sizes=[1, 13],
                        runs=[checks.LogRegRun(seed=3, batch_size=50, lr0=2.5, tau=30.0)])
    ### END HIDDEN TESTS
    """, "test-train", 3),

    markdown("""
    ## Part 3.6 — Written answer (2 points, graded by hand)

    1. Your measured slope in Part 3.3 is not exactly $-1$. Why, and would it be with
       sampling *with* replacement?
    2. Show that $\\eta_t = \\eta_0/(1 + t/\\tau)$ satisfies both Robbins–Monro conditions,
       and say which condition $\\eta_0/(1+t/\\tau)^2$ and $\\eta_0/\\sqrt{1 + t/\\tau}$ each
       break, and what goes wrong in a run because of it.
    """, "md-written"),
]


def build():
    return notebook([*CELLS, written("""
    1. Without replacement the variance is (σ²/B)·(N − B)/(N − 1): the finite-population
    factor falls from 1 towards 0 as B approaches N (at B = N the batch is the whole data set
    and has no noise), so the log-variance bends down and the fitted slope is steeper than −1
    (about −1.3 for B up to 256 of N = 300). With replacement the variance is exactly σ²/B
    and the slope is −1 up to measurement noise.

    2. With s = 1 + t/τ, Σ_t η₀/(1 + t/τ) = η₀ Σ 1/s is a harmonic series, which diverges
    (∫ ds/s = log s → ∞): the steps can carry the iterate any distance. Σ_t η_t² = η₀² Σ 1/s²
    converges (∫ ds/s² < ∞): the injected noise, which enters as η_t²σ², has a finite total.
    The squared decay η₀/(1 + t/τ)² has Σ η_t < ∞: the total distance it can travel is
    bounded, so a run started far away freezes before it arrives. The root decay
    η₀/√(1 + t/τ) has Σ η_t² = Σ 1/s = ∞: noise keeps being injected, so the iterates keep
    jittering at a slowly shrinking noise floor instead of converging to the minimiser.
    """, "written-sgd", 2)])


if __name__ == "__main__":
    write(build(), ROOT / "solutions" / "03-sgd" / "03-sgd.ipynb")
