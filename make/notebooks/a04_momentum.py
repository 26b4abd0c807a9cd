"""Write solutions/04-momentum/04-momentum.ipynb, the nbgrader source of assignment 04 (chapter 4).

Run from the repository root: ``.venv/bin/python make/notebooks/a04_momentum.py``, then
``make release ASSIGNMENT=04-momentum``. The checks the test cells call live in
``descent.grading.assignments.a04_momentum``.
"""

from __future__ import annotations

from pathlib import Path

from descent.grading.authoring import answer, code, markdown, notebook, tests, write, written

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = "../../book/04-momentum.ipynb"

CELLS = [
    markdown(f"""
    # Assignment 04 — Momentum: heavy ball, Nesterov, the optimal tuning, a training run

    You will write Polyak's heavy ball and Nesterov's accelerated gradient as pure update
    rules in PyTorch's convention, derive the fastest heavy ball for a quadratic of condition
    number $\\kappa$ and watch it beat gradient descent by a factor $\\sqrt\\kappa$, and put
    your rules inside a `torch.optim.Optimizer` that trains a network exactly like
    `torch.optim.SGD` ([chapter 4]({CHAPTER})).

    **How this works.** Fill in every cell that says `YOUR CODE HERE` (or `YOUR ANSWER HERE`)
    and run the test cell after it. The visible tests compare your code with the course's
    reference on a few inputs; the grader runs the same checks on new inputs you do not see,
    and re-runs your optimizer itself (its own model, data, seeds and device). Do not call the
    library's answers (`descent.rules`, `descent.optim`, `descent.rates`, `torch.optim.SGD`)
    in your answers: such an answer earns no points.

    **Symbols.** As in the chapter, $\\beta$ is the momentum coefficient (PyTorch's
    `momentum`), $\\eta$ the learning rate (`lr`, Polyak's $\\alpha$) and $\\mu$ the smallest
    curvature.
    """, "intro"),
    code("""
    from typing import Any, NamedTuple

    import numpy as np
    import torch

    from descent.grading.assignments import a04_momentum as checks


    class MomentumState(NamedTuple):
        b: Any = None  # the momentum buffer b_{t-1}; None before the first step


    def momentum_init(param):
        \"\"\"The state before the first step: no buffer yet.\"\"\"
        return MomentumState(None)
    """, "setup"),

    markdown(f"""
    ## Part 4.1 — The heavy ball, PyTorch's form (2 points)

    PyTorch writes Polyak's heavy ball with a buffer $b$ that *sums* past gradients (it is not
    an average), starting from the first gradient itself
    ([chapter 4, "Polyak's heavy ball"]({CHAPTER}#Polyak's-heavy-ball)):

    $$ b_t = \\beta\\, b_{{t-1}} + g_t \\quad (b_1 = g_1), \\qquad
       \\theta_t = \\theta_{{t-1}} - \\eta\\, b_t . \\tag{{HB}}$$

    Write the pure rule `heavy_ball_update(param, grad, state, *, lr, momentum)` returning
    `(new_param, MomentumState(b))`. It must work on NumPy arrays and torch tensors of any
    shape, and must not modify `param`, `grad` or the arrays in `state` (no `-=`, `*=` on
    them): return new arrays.
    """, "md-hb"),
    answer("""
    def heavy_ball_update(param, grad, state, *, lr, momentum):
        \"\"\"One step of (HB) in PyTorch's form; returns (new_param,
        new_state).\"\"\"
        ### BEGIN SOLUTION
        b = grad if state.b is None else momentum * state.b + grad   # b_t = β b_{t-1} + g_t
        return param - lr * b, MomentumState(b)                      # θ_t = θ_{t-1} − η b_t
        ### END SOLUTION
    """, "answer-hb"),
    tests("""
    checks.check_heavy_ball(heavy_ball_update, momentum_init)
    ### BEGIN HIDDEN TESTS
    checks.check_heavy_ball(heavy_ball_update, momentum_init, seeds=[17, 18],
                            shapes=[(5,), (2, 3)], steps=25, arrays=["numpy", "torch"])
    ### END HIDDEN TESTS
    """, "test-hb", 2),

    markdown(f"""
    ## Part 4.2 — Nesterov, PyTorch's form (2 points)

    Nesterov's method evaluates the gradient at a look-ahead point. PyTorch's
    `nesterov=True` keeps the same buffer and steps along $g_t + \\beta b_t$, with the buffer
    *after* this step's update
    ([chapter 4, "Nesterov's accelerated gradient"]({CHAPTER}#Nesterov's-accelerated-gradient)):

    $$ b_t = \\beta\\, b_{{t-1}} + g_t \\quad (b_1 = g_1), \\qquad
       \\theta_t = \\theta_{{t-1}} - \\eta\\,(g_t + \\beta\\, b_t) . \\tag{{NAG}}$$

    Write `nesterov_update(param, grad, state, *, lr, momentum)`, with the same rules as
    Part 4.1.
    """, "md-nag"),
    answer("""
    def nesterov_update(param, grad, state, *, lr, momentum):
        \"\"\"One step of (NAG) in PyTorch's form; returns (new_param,
        new_state).\"\"\"
        ### BEGIN SOLUTION
        b = grad if state.b is None else momentum * state.b + grad   # b_t = β b_{t-1} + g_t
        return param - lr * (grad + momentum * b), MomentumState(b)  # θ_t = θ_{t-1} − η d_t
        ### END SOLUTION
    """, "answer-nag"),
    tests("""
    checks.check_nesterov(nesterov_update, momentum_init)
    ### BEGIN HIDDEN TESTS
    checks.check_nesterov(nesterov_update, momentum_init, seeds=[27, 28],
                          shapes=[(4,), (3, 2)], steps=25, arrays=["numpy", "torch"])
    ### END HIDDEN TESTS
    """, "test-nag", 2),

    markdown(f"""
    ## Part 4.3 — The fastest heavy ball on a quadratic (2 points)

    On a quadratic whose curvatures lie in $[\\mu, L]$, the heavy ball contracts each
    eigendirection by the spectral radius of a $2\\times2$ matrix, and the worst direction is
    best when both extreme curvatures have the same (double) root
    ([chapter 4, "The iteration matrix and the optimal tuning"]({CHAPTER}#The-iteration-matrix-and-the-optimal-tuning)).
    Write `best_heavy_ball(L, mu)` returning the pair `(lr, momentum)` of that optimum, in
    closed form. The grader also runs the heavy ball with your pair and measures its rate,
    which must be $(\\sqrt\\kappa - 1)/(\\sqrt\\kappa + 1)$ with $\\kappa = L/\\mu$.
    """, "md-tuning"),
    answer("""
    def best_heavy_ball(L, mu):
        \"\"\"Polyak's optimal (lr, momentum) for curvatures in [mu, L].\"\"\"
        ### BEGIN SOLUTION
        root = np.sqrt(L / mu)
        return 4 / (np.sqrt(L) + np.sqrt(mu)) ** 2, ((root - 1) / (root + 1)) ** 2
        ### END SOLUTION
    """, "answer-tuning"),
    tests("""
    checks.check_tuning(best_heavy_ball)
    ### BEGIN HIDDEN TESTS
    checks.check_tuning(best_heavy_ball, problems=[(4.0, 2.0), (50.0, 0.05)], seed=3)
    ### END HIDDEN TESTS
    """, "test-tuning", 2),
    code("""
    # Explore (not graded; skipped while nbgrader grades): steps to shrink the
    # error 10⁶-fold on a quadratic of condition κ, with your rules at their
    # tunings (GD: η = 2/(L + μ), β = 0).
    import os

    checks.answered("heavy_ball_update", "nesterov_update", "best_heavy_ball")


    def steps_to(rule, lr, beta, kappa, tol=1e-6):
        lam = np.linspace(1.0, kappa, 20)  # curvatures in [μ, L] = [1, κ]
        theta = np.ones_like(lam)
        state = momentum_init(theta)
        for t in range(1, 100_000):
            theta, state = rule(theta, lam * theta, state, lr=lr,
                                momentum=beta)
            error = np.linalg.norm(theta) / np.sqrt(len(lam))
            if error < tol:
                return t
            if not error < 1e6:
                return "diverges"
        return "too many"

    graded = os.environ.get("NBGRADER_EXECUTION")
    for kappa in (10, 100, 1000) if not graded else ():
        lr, beta = best_heavy_ball(kappa, 1.0)
        root = np.sqrt(kappa)
        gd = steps_to(heavy_ball_update, 2 / (kappa + 1), 0.0, kappa)
        hb = steps_to(heavy_ball_update, lr, beta, kappa)
        nag = steps_to(nesterov_update, 1 / kappa, (root - 1) / (root + 1),
                       kappa)
        print(f"κ = {kappa:4d}: GD {gd}, heavy ball {hb}, Nesterov {nag}")
    """, "explore-rates"),

    markdown("""
    ## Part 4.4 — Your rules as a `torch.optim.Optimizer` (3 points)

    Complete `MomentumSGD`, an optimizer with the keywords and the math of
    `torch.optim.SGD(params, lr, momentum, nesterov=...)`. Its `step` calls your
    `heavy_ball_update` (or `nesterov_update` when the group's `nesterov` is true) on each
    parameter that has a gradient, writes the new value into the parameter (`p.copy_(...)`),
    and keeps each parameter's `MomentumState` in `self.state[p]` between steps (create it
    with `momentum_init` on the first step). The grader trains a small network with your
    optimizer and with `torch.optim.SGD` on the same device and compares the loss curves step
    by step. Its loop clears the gradients in place (`zero_grad(set_to_none=False)`), and its
    last run gives the optimizer two param groups with their own `lr`, `momentum` and
    `nesterov`: read them from each `group`.

    *Hint:* on the first step your rule returns the gradient tensor itself as the buffer,
    and the training loop's `zero_grad()` may later reset that tensor; keep a copy (`.clone()`)
    in the state.
    """, "md-train"),
    answer("""
    class MomentumSGD(torch.optim.Optimizer):
        \"\"\"torch.optim.SGD(lr, momentum, nesterov) on top of your rules.\"\"\"

        def __init__(self, params, lr, momentum, nesterov=False):
            defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov)
            super().__init__(params, defaults)

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                nesterov = group["nesterov"]
                rule = nesterov_update if nesterov else heavy_ball_update
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    ### BEGIN SOLUTION
                    state = self.state[p].get("momentum", momentum_init(p))
                    new_p, new_state = rule(p, p.grad, state, lr=group["lr"],
                                            momentum=group["momentum"])
                    p.copy_(new_p)
                    self.state[p]["momentum"] = MomentumState(new_state.b.clone())
                    ### END SOLUTION
    """, "answer-train"),
    tests("""
    checks.check_optimizer(MomentumSGD)
    ### BEGIN HIDDEN TESTS
    checks.check_optimizer(MomentumSGD, runs=[checks.RunSpec(seed=9, steps=40, width=24)],
                           settings=[(0.02, 0.95, False), (0.03, 0.8, True)])
    ### END HIDDEN TESTS
    """, "test-train", 3),

    markdown("""
    ## Part 4.5 — Written answer (2 points, graded by hand)

    1. Using the numbers printed under Part 4.3: how does the number of steps grow with
       $\\kappa$ for gradient descent and for the two momentum methods, and why (name the
       rates)?
    2. Many papers write momentum as an average, $v_t = \\beta v_{t-1} + (1-\\beta) g_t$,
       $\\theta_t = \\theta_{t-1} - \\eta' v_t$. Which $\\eta'$ reproduces PyTorch's iterates with
       learning rate $\\eta$ (say for which steps), and why does `dampening=β` in
       `torch.optim.SGD` not give the EMA form exactly?
    """, "md-written"),
]

WRITTEN = written("""
1. Gradient descent needs about 10×, 100× … more steps as κ grows 10×: its best rate is
(κ − 1)/(κ + 1) ≈ 1 − 2/κ, so reducing the error by a factor ε takes about (κ/2)·log(1/ε)
steps. The heavy ball at Polyak's tuning contracts by (√κ − 1)/(√κ + 1) ≈ 1 − 2/√κ and
Nesterov (η = 1/L, β = (√κ − 1)/(√κ + 1)) by 1 − 1/√κ, so their step counts grow like √κ:
about 3× more per 10× in κ. The heavy ball is about twice as fast as Nesterov on a
quadratic; Nesterov keeps its rate on every smooth strongly convex function.

2. Unrolling, PyTorch's buffer is b_t = Σ β^{t−s} g_s and the EMA is
v_t = (1 − β) Σ β^{t−s} g_s (from v₀ = 0), so v_t = (1 − β) b_t for every t and
η' = η/(1 − β) reproduces PyTorch's iterates at every step, the first included. With
dampening = β PyTorch computes b_t = β b_{t−1} + (1 − β) g_t but starts from b₁ = g₁
(not (1 − β) g₁): the first buffer is 1/(1 − β) times too large, and that extra
β·g₁ term decays only like β^t, so the iterates differ from the EMA form (for a constant
η) from the first step on.
""", "written-momentum", 2)


PATHS = [
    markdown(f"""
    ## Part 4.6 — Paths on a landscape (3 points)

    Pictures first: run several optimizers from the same start on a 2-D landscape of
    `descent.landscapes` and keep every iterate
    ([chapter 4]({CHAPTER}); the landscapes are those of
    [chapter 1](../../book/01-problem.ipynb)). Write
    `trajectories(landscape, x0, runs, steps)`:

    - `landscape` has the gradient `landscape.grad(x)` (an array of shape `(2,)`);
    - `runs` maps a label to a triple `(update, init, hyper)`: a pure rule with the
      signature of your Part 4.1 rule, its `init(x)`, and a dict of its keywords;
    - for each label, start at `x0` with the state `init(x0)` and take `steps` steps,
      each `x, state = update(x, landscape.grad(x), state, **hyper)`.

    Return `{{label: path}}`, each path a float array of shape `(steps + 1, 2)` whose
    row $t$ is $x_t$: row 0 is the start itself. Do not change `x0` (every run starts
    from it). The grader passes the library's rules (`descent.rules.sgd_update` with
    `momentum`, `nesterov`, …), not yours: a mistake in 4.1 or 4.2 costs those parts
    only. Do not call `descent.landscapes.trajectory`, the reference.
    """, "md-paths"),
    answer("""
    def trajectories(landscape, x0, runs, steps):
        \"\"\"{label: the iterates x_0 … x_T, shape (steps + 1, 2)}.\"\"\"
        paths = {}
        for label, (update, init, hyper) in runs.items():
            ### BEGIN SOLUTION
            x = np.array(x0, dtype=float)                # a copy: x0 is shared
            state = init(x)
            rows = [x]
            for _ in range(steps):
                x, state = update(x, landscape.grad(x), state, **hyper)  # x_t
                rows.append(x)
            paths[label] = np.stack(rows)                # row 0 is x_0
            ### END SOLUTION
        return paths
    """, "answer-paths"),
    tests("""
    checks.check_paths(trajectories)
    ### BEGIN HIDDEN TESTS
    checks.check_paths(trajectories, cases=checks.PATHS_HIDDEN)
    ### END HIDDEN TESTS
    """, "test-paths", 3),
    markdown("""
    The three methods on an ill-conditioned bowl ($\\kappa = 50$, tilted) and on
    Rosenbrock's valley, with your `trajectories` and your own rules (gradient descent
    is your heavy ball with $\\beta = 0$). Run the cell; nothing to write.
    """, "md-plot-paths"),
    code("""
    # (skipped while nbgrader grades: the picture is for you, not the grade)
    from descent import landscapes
    from descent.plots import plot_trajectories, share_legend, subplots

    checks.answered("trajectories", "heavy_ball_update", "nesterov_update")


    def trio(lr_gd, lr, beta):
        return {
            "GD": (heavy_ball_update, momentum_init,
                   {"lr": lr_gd, "momentum": 0.0}),
            "heavy ball": (heavy_ball_update, momentum_init,
                           {"lr": lr, "momentum": beta}),
            "Nesterov": (nesterov_update, momentum_init,
                         {"lr": lr, "momentum": beta}),
        }


    if not checks.being_graded():
        fig, axes = subplots(1, 2)
        bowl = landscapes.quadratic_bowl(kappa=50.0, angle=0.5)
        plot_trajectories(bowl, trajectories(bowl, np.array([-1.6, 1.2]),
                                             trio(1.9, 0.2, 0.8), 40),
                          ax=axes[0])
        axes[0].set_title("κ = 50: η_GD = 1.9; η = 0.2, β = 0.8")
        valley = landscapes.rosenbrock()
        plot_trajectories(valley, trajectories(valley, np.array([-1.2, 1.5]),
                                               trio(1.5e-3, 1.5e-3, 0.9), 60),
                          ax=axes[1])
        axes[1].set_title("Rosenbrock: η = 0.0015, β = 0.9")
        share_legend(fig)
    """, "plot-paths"),
    markdown("""
    ## Part 4.7 — Written answer (2 points, graded by hand)

    Using the two pictures:

    1. Which path zig-zags across the bowl's narrow direction, and why? Answer with
       the step size against the steep curvature $L$, the condition number
       $\\kappa = L/\\mu$ and the momentum $\\beta$ (what does the buffer do to a
       gradient component whose sign flips every step, and to one that keeps its
       sign?).
    2. What does Nesterov's look-ahead change, on the bowl and in Rosenbrock's valley,
       compared with the heavy ball at the same $\\eta$ and $\\beta$?
    """, "md-written-paths"),
]

WRITTEN_PATHS = written("""
1. Gradient descent zig-zags across the bowl: its step η = 1.9 is close to the stability
edge 2/L of the steep direction, so that component of x_t is multiplied by 1 − ηL = −0.9
every step (it flips sign and shrinks slowly), while along the flat direction (curvature
μ = L/κ) it moves by the factor 1 − ημ ≈ 0.96 per step: with κ = 50 the bowl is long and
narrow, and GD needs of the order of κ steps. The heavy ball (η = 0.2, β = 0.8) crosses the
ravine once, overshoots a little and then slides along the floor: its buffer
b_t = Σ β^{t−s} g_s adds up the components that keep their sign (the slope along the floor,
up to 1/(1 − β) = 5×) and cancels the components whose sign flips (across the ravine, about
1/(1 + β)). With β closer to 1 the steep direction's roots become complex with modulus √β,
and the path spirals instead.

2. Nesterov corrects with the gradient at the look-ahead (PyTorch's form steps along
g_t + β b_t): when the buffer carries the iterate past the floor, the correction already
points back, so on the bowl it overshoots less than the heavy ball. Its step along a steady
gradient is also larger, (1 + β)/(1 − β)·η·g against η·g/(1 − β): in Rosenbrock's valley,
at the same η and β, its first steps jump across the valley, and then it follows the curved
floor and reaches the minimum (1, 1) within 60 steps, while the heavy ball is still creeping
along the valley.
""", "written-paths", 2)


def build():
    return notebook([*CELLS, WRITTEN, *PATHS, WRITTEN_PATHS])


if __name__ == "__main__":
    write(build(), ROOT / "solutions" / "04-momentum" / "04-momentum.ipynb")
