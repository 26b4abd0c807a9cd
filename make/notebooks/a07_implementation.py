"""Write solutions/07-implementation/07-implementation.ipynb, the nbgrader source of assignment 07.

Run from the repository root: ``.venv/bin/python make/notebooks/a07_implementation.py``, then
``make release ASSIGNMENT=07-implementation``. The checks the test cells call live in
``descent.grading.assignments.a07_implementation``.
"""

from __future__ import annotations

from pathlib import Path

from descent.grading.authoring import answer, code, markdown, notebook, tests, write, written

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = "../../book/07-implementation.ipynb"
ADAPTIVE = "../../book/05-adaptive.ipynb"

CELLS = [
    markdown(f"""
    # Assignment 07 — Implementation: a real `torch.optim.Optimizer`

    You will write `AdamW` as a complete `torch.optim.Optimizer` subclass, one that can replace
    `torch.optim.AdamW` in any training script: the same keywords and defaults, param groups
    with their own hyperparameters, state created lazily, `state_dict()` /
    `load_state_dict()` that resume a run exactly, and `step(closure)`
    ([chapter 7, "What `torch.optim.Optimizer` gives you"]({CHAPTER}#What-torch.optim.Optimizer-gives-you)).
    The update itself is chapter 5's AdamW ([chapter 5, "AdamW"]({ADAPTIVE}#Weight-decay:-L2-or-decoupled)).

    **How this works.** Fill in the cell that says `YOUR CODE HERE` and run the test cells
    after it. The visible tests compare your class with `torch.optim.AdamW` on a small MLP;
    the grader runs the same checks on new seeds and hyperparameters you do not see, and
    trains a model with your class itself, on the best device it has. Do not use
    `torch.optim.AdamW`/`Adam`, their functional kernels, `descent.optim` or `descent.rules`
    inside your class: such an answer earns no points.
    """, "intro"),
    code("""
    import math

    import torch

    from descent.grading.assignments import a07_implementation as checks
    """, "setup"),

    markdown("""
    ## Part 7.1–7.4 — `AdamW`

    For each parameter $\\theta$ with gradient $g_t$, one step of AdamW is, with $t$
    incremented **before** use (the first update has $t = 1$):

    $$
    \\begin{aligned}
    \\theta &\\leftarrow \\theta\\,(1 - \\eta\\lambda) && \\text{(decoupled decay, first)}\\\\
    m_t &= \\beta_1 m_{t-1} + (1-\\beta_1)\\,g_t \\\\
    v_t &= \\beta_2 v_{t-1} + (1-\\beta_2)\\,g_t^2 \\\\
    \\theta_t &= \\theta - \\frac{\\eta}{1-\\beta_1^t}\\,
        \\frac{m_t}{\\sqrt{v_t}/\\sqrt{1-\\beta_2^t} + \\epsilon}
        && \\text{(ε outside the root)}
    \\end{aligned}
    $$

    with $m_0 = v_0 = 0$. Symbols ↔ arguments: $\\eta$ `lr`, $(\\beta_1, \\beta_2)$ `betas`,
    $\\epsilon$ `eps`, $\\lambda$ `weight_decay`.

    Write `class AdamW(torch.optim.Optimizer)` with

    * `__init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)`,
      torch's keywords and defaults. Raise `ValueError` (naming the argument, its symbol, the
      allowed range and the value) when $\\eta < 0$, $\\epsilon < 0$, $\\lambda < 0$ or a
      $\\beta$ is outside $[0, 1)$. Then hand the hyperparameters to the base class:
      `super().__init__(params, defaults)` builds `self.param_groups`, one dict per group,
      each with its own copy of every hyperparameter (**7.1**, 1 point);
    * `step(self, closure=None)`, decorated with `@torch.no_grad()`: if a closure is given,
      evaluate it under `torch.enable_grad()` first and return its loss; then, for each group
      and each parameter **with a gradient**, apply the update above with *that group's*
      hyperparameters (**7.2**, 4 points; **7.3**, 2 points);
    * the state of each parameter in `self.state[p]` (a dict, e.g. `step`, `exp_avg`,
      `exp_avg_sq` as torch names them), created lazily on its first step. Then the base
      class's `state_dict()` and `load_state_dict()` save and restore a run (**7.4**,
      2 points).

    Hints: `p.mul_(…)`, `m.lerp_(g, 1 - β₁)` or `m.mul_(β₁).add_(g, alpha=1 - β₁)`,
    `v.mul_(β₂).addcmul_(g, g, value=1 - β₂)`, `p.addcdiv_(m, denom, value=-step_size)`. In-place
    updates are fine here (and what torch does): the parameters *are* the optimizer's output.
    """, "md-adamw"),
    answer("""
    class AdamW(torch.optim.Optimizer):
        \"\"\"AdamW (chapter 5, eq. (AdamW)) as a torch.optim.Optimizer; torch's
        keywords.\"\"\"

        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                     weight_decay=1e-2):
            ### BEGIN SOLUTION
            if not lr >= 0:
                raise ValueError(f"lr (η) must be >= 0, got {lr}")
            if not eps >= 0:
                raise ValueError(f"eps (ε) must be >= 0, got {eps}")
            for i, beta in enumerate(betas):
                if not 0 <= beta < 1:
                    raise ValueError(f"betas[{i}] (β{i + 1}) must be in [0, 1), got {beta}")
            if not weight_decay >= 0:
                raise ValueError(f"weight_decay (λ) must be >= 0, got {weight_decay}")
            defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
            super().__init__(params, defaults)
            ### END SOLUTION

        @torch.no_grad()
        def step(self, closure=None):
            \"\"\"One AdamW update of every parameter that has a gradient;
            returns the loss.\"\"\"
            ### BEGIN SOLUTION
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            for group in self.param_groups:
                lr, (beta1, beta2) = group["lr"], group["betas"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    if not state:                                  # lazy: first step of p
                        state["step"] = 0
                        state["exp_avg"] = torch.zeros_like(p)
                        state["exp_avg_sq"] = torch.zeros_like(p)
                    state["step"] += 1                             # t incremented before use
                    t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                    p.mul_(1 - lr * group["weight_decay"])         # θ ← θ(1 − ηλ)
                    m.lerp_(p.grad, 1 - beta1)                     # m_t
                    v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)   # v_t
                    denom = v.sqrt() / math.sqrt(1 - beta2 ** t) + group["eps"]
                    p.addcdiv_(m, denom, value=-lr / (1 - beta1 ** t))        # θ_t
            return loss
            ### END SOLUTION
    """, "answer-adamw"),

    markdown("""
    ### 7.1 — The constructor (1 point)

    The test checks the keywords and defaults, `param_groups`, that the state is empty before
    the first step, and that invalid values raise `ValueError`.
    """, "md-init"),
    tests("""
    opt = AdamW([torch.nn.Parameter(torch.zeros(2))], lr=0.01)
    print({k: v for k, v in opt.param_groups[0].items() if k != "params"})
    checks.check_init(AdamW)
    ### BEGIN HIDDEN TESTS
    checks.check_init(AdamW)
    ### END HIDDEN TESTS
    """, "test-init", 1),

    markdown("""
    ### 7.2 — 100 steps against `torch.optim.AdamW` (4 points)

    The test trains the same MLP twice, with your class and with `torch.optim.AdamW`, and
    compares every parameter after each of 100 steps (float64: relative $10^{-9}$; float32:
    $10^{-4}$). When your parameters match a known mistake (bias correction missing, $t$
    off by one, ε inside the root, coupled or unscaled weight decay, …) the message names it.
    """, "md-steps"),
    tests("""
    checks.check_steps(AdamW)
    ### BEGIN HIDDEN TESTS
    checks.check_steps(AdamW, seeds=[3, 4], dtypes=[torch.float64, torch.float32],
                       hypers=[{"lr": 1e-2, "betas": (0.85, 0.99), "eps": 1e-6,
                                "weight_decay": 0.3},
                               {"lr": 4e-3, "betas": (0.8, 0.999), "eps": 1e-8,
                                "weight_decay": 0.0}], steps=100)
    ### END HIDDEN TESTS
    """, "test-steps", 4),

    markdown("""
    ### 7.3 — Param groups, parameters without gradients, the closure (2 points)

    Checked against your own class used another way, so a mistake in the update does not cost
    these points again: an optimizer with two groups must move each group exactly as an
    optimizer with that group's hyperparameters alone; a parameter whose `.grad` is `None`
    must be left as it is, with no state; `step(closure)` must return the closure's loss and
    move the parameters as `loss.backward(); step()` does.
    """, "md-groups"),
    tests("""
    checks.check_groups(AdamW)
    ### BEGIN HIDDEN TESTS
    checks.check_groups(AdamW, seeds=[5], steps=40)
    ### END HIDDEN TESTS
    """, "test-groups", 2),

    markdown("""
    ### 7.4 — `state_dict` and `load_state_dict` (2 points)

    The test stops a run after 50 steps, saves `optimizer.state_dict()`, builds a *fresh*
    optimizer, loads the state dict into it, and runs 50 more steps: the parameters must equal
    those of the uninterrupted run of your class.
    """, "md-state"),
    tests("""
    checks.check_state_dict(AdamW)
    ### BEGIN HIDDEN TESTS
    checks.check_state_dict(AdamW, seeds=[6], steps=60, resume_at=17)
    ### END HIDDEN TESTS
    """, "test-state", 2),

    markdown("""
    ## Part 7.5 — A training run on the best device (2 points)

    The grader builds a fresh MLP and data set from its own seeds, on the best device it has
    (CUDA when present, else the CPU), trains it with your `AdamW` and with
    `torch.optim.AdamW`, and compares the two loss curves step by step, within a tolerance
    justified for that device. The final loss must be below half the initial loss.
    """, "md-train"),
    tests("""
    from descent.grading import training
    run = training.run_training(lambda p: AdamW(p, lr=1e-2, weight_decay=0.05))
    if run.ok:
        first, last = run.value[0], run.value[-1]
        print(f"{training.best_device()}: loss {first:.4f} -> {last:.4f}")
    checks.check_training(AdamW)
    ### BEGIN HIDDEN TESTS
    checks.check_training(AdamW, run=training.RunSpec(seed=9), lr=2e-2, weight_decay=0.1)
    ### END HIDDEN TESTS
    """, "test-train", 2),

    markdown("""
    ## Part 7.6 — Written answer (2 points, graded by hand)

    1. `torch.optim` creates a parameter's state in `step()`, the first time the parameter has
       a gradient, not in `__init__`. Give two situations in which state created in
       `__init__` would be wrong or wasted.
    2. `state_dict()` does not store the parameter tensors, and `load_state_dict()` is called
       on a *new* optimizer whose parameters are other tensor objects. How does the loaded
       state find its parameter, and what must therefore be the same in the new optimizer?
    """, "md-written"),
]


def build():
    return notebook([*CELLS, written("""
    1. (a) The model is often moved after the optimizer is built (`model.to("cuda")` or
    `.half()` replaces or converts the tensors): state made in `__init__` would sit on the old
    device or dtype. (b) `load_state_dict` would overwrite it anyway, so the work is wasted.
    (c) Parameters that never receive a gradient (frozen layers, unused embedding rows,
    `add_param_group` later) would get moments they never use, doubling or tripling memory
    for nothing, and with decay they would be decayed although they never trained.

    2. `state_dict()` replaces every parameter by its index in the order of
    `param_groups` (group by group, parameter by parameter); `load_state_dict()` maps
    index i back to the i-th parameter of the new optimizer and casts the state to that
    parameter's device and dtype. So the new optimizer must be built with the same parameters
    in the same order, in groups of the same sizes; otherwise state is attached to the wrong
    tensors (or loading fails on a size mismatch).
    """, "written-implementation", 2)])


if __name__ == "__main__":
    write(build(), ROOT / "solutions" / "07-implementation" / "07-implementation.ipynb")
