"""Write solutions/08-practice/08-practice.ipynb, the nbgrader source of assignment 08 (chapter 8).

Run from the repository root: ``.venv/bin/python make/notebooks/a08_practice.py``, then
``make release ASSIGNMENT=08-practice``. The checks the test cells call live in
``descent.grading.assignments.a08_practice``.
"""

from __future__ import annotations

from pathlib import Path

from descent.grading.authoring import answer, code, markdown, notebook, tests, write, written

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = "../../book/08-practice.ipynb"

CELLS = [
    markdown(f"""
    # Assignment 08 — Practice: range test, accumulation, clipping, mixed precision, debugging

    The tools of a real training run ([chapter 8]({CHAPTER})): you will write the learning-rate
    range test, gradient accumulation that equals the big batch, clipping by global norm and
    a mixed-precision step, find and fix the bugs planted in a training loop, and train a
    tiny transformer with and without warmup while logging its gradient norms.

    **How this works.** Fill in every cell that says `YOUR CODE HERE` (or `YOUR ANSWER HERE`)
    and run the test cell after it. The grader re-runs your code itself, on its own model,
    data and seeds, on the best device it has, and compares with the course's reference
    (`descent.lr_finder`, autograd, `torch.nn.utils.clip_grad_norm_`, its own loops). Do not
    call those references in your answers: such an answer earns no points.
    """, "intro"),
    code("""
    import math

    import torch
    import torch.nn.functional as F

    from descent.grading.assignments import a08_practice as checks
    from descent.models import sequence_cross_entropy
    """, "setup"),

    markdown(f"""
    ## Part 8.1 — The learning-rate range test (3 points)

    Train for $N$ steps while the rate grows exponentially from $\\eta_{{\\min}}$ to
    $\\eta_{{\\max}}$, smooth the loss, and stop when it diverges
    ([chapter 8, "The LR range test"]({CHAPTER}#The-learning-rate-range-test)). Step $i = 0, \\ldots, N-1$ uses

    $$ \\eta_i = \\eta_{{\\min}}\\,(\\eta_{{\\max}}/\\eta_{{\\min}})^{{i/(N-1)}}, \\qquad
       a_i = \\beta a_{{i-1}} + (1-\\beta)\\,\\ell_i,\\ a_{{-1}} = 0, \\qquad
       \\hat\\ell_i = \\frac{{a_i}}{{1-\\beta^{{i+1}}}} . $$

    Record $\\eta_i$, $\\ell_i$ and $\\hat\\ell_i$ for every step taken. **Stop** right after
    recording step $i$ if $\\hat\\ell_i$ is not finite or $\\hat\\ell_i > k\\cdot\\min_{{j<i}}
    \\hat\\ell_j$ (the minimum over the steps *before* $i$; no stop at $i = 0$).

    Write `lr_range_test(train_step, *, min_lr, max_lr, steps, beta=0.98, diverge=4.0)`
    returning the three lists `(lrs, losses, smoothed)`. `train_step(lr)` is given: it makes
    one training step at rate `lr` on the next batch and returns that step's loss (a float).
    Symbols ↔ arguments: $\\eta_{{\\min}}$ `min_lr`, $\\eta_{{\\max}}$ `max_lr`, $N$ `steps`,
    $\\beta$ `beta`, $k$ `diverge`.
    """, "md-range"),
    answer("""
    def lr_range_test(train_step, *, min_lr, max_lr, steps, beta=0.98,
                      diverge=4.0):
        \"\"\"The LR range test (chapter 8): returns (lrs, losses, smoothed).\"\"\"
        lrs, losses, smoothed = [], [], []
        ### BEGIN SOLUTION
        avg, best = 0.0, math.inf
        for i in range(steps):
            lr = min_lr * (max_lr / min_lr) ** (i / (steps - 1))    # η_i
            loss = train_step(lr)
            avg = beta * avg + (1 - beta) * loss                     # a_i
            smooth = avg / (1 - beta ** (i + 1))                     # ℓ̂_i
            lrs.append(lr)
            losses.append(loss)
            smoothed.append(smooth)
            if not math.isfinite(smooth) or smooth > diverge * best:  # divergence: stop
                break
            best = min(best, smooth)
        ### END SOLUTION
        return lrs, losses, smoothed
    """, "answer-range"),
    tests("""
    lrs, losses, smoothed = lr_range_test(
        checks.grader_train_step(seed=0), min_lr=1e-4,
                                          max_lr=10.0, steps=60)
    print(f"{len(lrs)} steps; the smoothed loss is lowest at lr = "
          f"{lrs[min(range(len(lrs)), key=smoothed.__getitem__)]:.3g}")
    checks.check_range_test(lr_range_test)
    ### BEGIN HIDDEN TESTS
    checks.check_range_test(lr_range_test, seeds=[4, 5],
                            settings=[{"min_lr": 1e-5, "max_lr": 30.0, "steps": 80, "beta": 0.9,
                                       "diverge": 3.0},
                                      {"min_lr": 1e-3, "max_lr": 0.1, "steps": 25}])
    ### END HIDDEN TESTS
    """, "test-range", 3),

    markdown(f"""
    ## Part 8.2 — Gradient accumulation that equals the big batch (2 points)

    When the big batch does not fit, split it into micro-batches $(x_i, y_i)$ of sizes
    $n_i$, $N = \\sum_i n_i$, and accumulate
    ([chapter 8, "Accumulation"]({CHAPTER}#Gradient-accumulation-equals-the-big-batch)):

    $$ \\nabla_\\theta\\, \\mathcal L_{{\\text{{big}}}} = \\sum_i \\frac{{n_i}}{{N}}\\,
       \\nabla_\\theta\\, \\mathcal L(f_\\theta(x_i), y_i) $$

    for a loss that is a mean over the batch. Write
    `accumulate_gradients(model, loss_fn, micro_batches)` that leaves this gradient in every
    `p.grad` and returns the big batch's loss $\\sum_i (n_i/N)\\,\\mathcal L_i$ as a float.
    Careful: `p.grad` may still hold the previous step's gradient when it is called, and
    `backward()` *adds* to `p.grad`. The micro-batches may have different sizes.
    """, "md-accum"),
    answer("""
    def accumulate_gradients(model, loss_fn, micro_batches):
        \"\"\"Leave ∇ of the big batch's mean loss in p.grad; return that loss.\"\"\"
        ### BEGIN SOLUTION
        model.zero_grad()
        total = sum(len(y) for _, y in micro_batches)
        value = 0.0
        for x, y in micro_batches:
            loss = loss_fn(model(x), y) * (len(y) / total)          # (n_i/N)·L_i
            loss.backward()                                          # adds to p.grad
            value += loss.item()
        return value
        ### END SOLUTION
    """, "answer-accum"),
    tests("""
    checks.check_accumulation(accumulate_gradients)
    ### BEGIN HIDDEN TESTS
    checks.check_accumulation(accumulate_gradients, seeds=[6, 7],
                              sizes=[(8, 8, 8, 8), (20, 5, 12), (33,)])
    ### END HIDDEN TESTS
    """, "test-accum", 2),

    markdown(f"""
    ## Part 8.3 — Clipping by global norm (2 points)

    With $g$ all the gradients concatenated into one vector and threshold $c$
    ([chapter 8, "Clipping"]({CHAPTER}#Gradient-clipping)):

    $$ g \\leftarrow g\\cdot\\min\\!\\Big(1, \\frac{{c}}{{\\lVert g\\rVert_2}}\\Big) $$

    Write `clip_grad_norm(parameters, max_norm)`: scale every `p.grad` in place by that one
    factor (skip parameters whose `.grad` is `None`) and return $\\lVert g\\rVert_2$ *before*
    clipping, as `torch.nn.utils.clip_grad_norm_` does (torch writes
    $c/(\\lVert g\\rVert + 10^{{-6}})$; either form passes).
    """, "md-clip"),
    answer("""
    def clip_grad_norm(parameters, max_norm):
        \"\"\"Clip the gradients by their global 2-norm, in place; return the
        norm before.\"\"\"
        ### BEGIN SOLUTION
        grads = [p.grad for p in parameters if p.grad is not None]
        norm = math.sqrt(sum(float((g * g).sum()) for g in grads))   # ‖g‖₂, all tensors
        factor = min(1.0, max_norm / (norm + 1e-6))                   # min(1, c/‖g‖)
        for g in grads:
            g.mul_(factor)
        return norm
        ### END SOLUTION
    """, "answer-clip"),
    tests("""
    checks.check_clipping(clip_grad_norm)
    ### BEGIN HIDDEN TESTS
    checks.check_clipping(clip_grad_norm, seeds=[8, 9],
                          cases=[(30.0, 2.5), (0.01, 0.5), (3.0, 0.1)])
    ### END HIDDEN TESTS
    """, "test-clip", 2),

    markdown(f"""
    ## Part 8.4 — A mixed-precision step (2 points)

    ([chapter 8, "Mixed precision"]({CHAPTER}#Mixed-precision)) Write
    `amp_step(model, optimizer, scaler, x, y, *, dtype)`: one training step on the mean
    squared error that

    1. zeroes the gradients;
    2. runs the forward pass **and** the loss under
       `torch.autocast(device_type=x.device.type, dtype=dtype)`;
    3. calls `scaler.scale(loss).backward()`, `scaler.step(optimizer)`, `scaler.update()`;
    4. returns the loss as a float.

    The grader passes an active `GradScaler` on every device, the CPU included (bf16 has
    float32's exponent range and would need no scaling, but the grader's scaler records its
    calls, so a step that bypasses it is seen), and runs your step with
    `dtype=torch.bfloat16` and with `dtype=torch.float16` (on CUDA, float16 first). It trains
    its own model with your step and with its reference step, on the same device, and
    compares the losses.
    """, "md-amp"),
    answer("""
    def amp_step(model, optimizer, scaler, x, y, *, dtype):
        \"\"\"One mixed-precision training step; returns the loss.\"\"\"
        ### BEGIN SOLUTION
        optimizer.zero_grad()
        with torch.autocast(device_type=x.device.type, dtype=dtype):
            loss = F.mse_loss(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.item()
        ### END SOLUTION
    """, "answer-amp"),
    tests("""
    checks.check_amp(amp_step)
    ### BEGIN HIDDEN TESTS
    checks.check_amp(amp_step, seeds=[10], steps=40)
    ### END HIDDEN TESTS
    """, "test-amp", 2),

    markdown(f"""
    ## Part 8.5 — Find and fix the planted bugs (3 points)

    The loop below does not do what its docstring says: it has **four** bugs. Run it, look at
    the losses, read the docstring again, and write the fixed loop as `train_loop` (same
    signature, same order of operations otherwise;
    [chapter 8, "Debugging a run"]({CHAPTER}#A-debugging-lab)).
    The grader runs your `train_loop` on a fresh model and its own corrupted data, and its
    losses must equal those of the bug-free loop.
    """, "md-debug"),
    code('''
    def buggy_train_loop(model, x, y, *, epochs=4, batch_size=32):
        """Train `model` on (x, y) with the mean squared error; return every
        step's loss.

        - Examples whose features are not all finite are removed first.
        - Batches of `batch_size` in order (no shuffling); the last one may be
          smaller.
        - SGD with lr 0.05 and momentum 0.9.
        - CosineAnnealingLR over the whole run, T_max = epochs × batches per
          epoch, stepped after every optimizer step.
        """
        batches = math.ceil(len(x) / batch_size)
        optimizer = torch.optim.SGD(model.parameters(), lr=5.0, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=epochs * batches)
        losses = []
        for _ in range(epochs):
            for i in range(0, len(x), batch_size):
                loss = F.mse_loss(model(x[i:i + batch_size]),
                                  y[i:i + batch_size])
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            scheduler.step()
        return losses


    x_demo, y_demo = checks.debug_data(seed=1)
    print(buggy_train_loop(checks.mlp(seed=1), x_demo, y_demo)[:6])
    ''', "buggy-loop"),
    answer("""
    def train_loop(model, x, y, *, epochs=4, batch_size=32):
        \"\"\"buggy_train_loop, fixed: it does what the docstring above says.\"\"\"
        ### BEGIN SOLUTION
        keep = torch.isfinite(x).all(dim=1)                # drop corrupted examples
        x, y = x[keep], y[keep]
        batches = math.ceil(len(x) / batch_size)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * batches)
        losses = []
        for _ in range(epochs):
            for i in range(0, len(x), batch_size):
                optimizer.zero_grad()
                loss = F.mse_loss(model(x[i:i + batch_size]), y[i:i + batch_size])
                loss.backward()
                optimizer.step()
                scheduler.step()                           # once per optimizer step
                losses.append(loss.item())
        return losses
        ### END SOLUTION
    """, "answer-debug"),
    tests("""
    print(train_loop(checks.mlp(seed=1), x_demo, y_demo)[:6])
    checks.check_loop(train_loop)
    ### BEGIN HIDDEN TESTS
    checks.check_loop(train_loop, seeds=[11], settings=[{"epochs": 3, "batch_size": 20}])
    ### END HIDDEN TESTS
    """, "test-debug", 3),

    markdown(f"""
    ## Part 8.6 — Warmup for a tiny transformer (2 points, and 2 graded by hand)

    Adam-type optimizers are often started with a **linear warmup**: the rate
    climbs from $\\eta_{{\\text{{peak}}}}/W$ to $\\eta_{{\\text{{peak}}}}$ over the first $W$ steps
    ([chapter 8]({CHAPTER}); the schedules of chapter 6). Step $t = 0, 1, \\ldots$ uses

    $$ \\eta_t = \\eta_{{\\text{{peak}}}}\\,\\min\\!\\Big(1, \\frac{{t+1}}{{W}}\\Big)
       \\quad (W = 0: \\eta_t = \\eta_{{\\text{{peak}}}}), \\qquad
       \\lVert g_t\\rVert_2 = \\Big(\\sum_{{p}} \\sum_i (\\partial_{{p_i}} \\ell_t)^2\\Big)^{{1/2}}. $$

    Write `train_with_warmup(model, batches, optimizer, steps, warmup_steps,
    peak_lr, device)`. For each of the `steps` steps: take the next `(x, y)`
    from `batches` and move both to `device` (the model is there already); set
    `group["lr"]` to $\\eta_t$ in **every** group of `optimizer.param_groups`;
    zero the gradients; compute the loss `sequence_cross_entropy(model(x), y)`
    and call `backward()`; measure the global gradient norm $\\lVert g_t\\rVert_2$ over
    every parameter that has a gradient (after `backward()`, before the step);
    then `optimizer.step()`. Return `{{"loss": [...], "grad_norm": [...]}}`,
    one float of each per step. Write the norm yourself (no
    `clip_grad_norm_`), and the warmup too (no scheduler).

    The grader builds its own `TinyTransformer` from a seed on the best device
    it has, with AdamW and two param groups, trains it with your loop, and
    compares your losses and norms step by step with its reference loop on the
    same model, data and device.
    """, "md-warmup"),
    answer("""
    def train_with_warmup(model, batches, optimizer, steps, warmup_steps,
                          peak_lr, device):
        \"\"\"Train with a linear warmup; log the loss and ‖g_t‖₂ of every step.\"\"\"
        history = {"loss": [], "grad_norm": []}
        data = iter(batches)
        for t in range(steps):
            x, y = next(data)
            x, y = x.to(device), y.to(device)
            ### BEGIN SOLUTION
            lr = peak_lr                                          # W = 0: no warmup
            if warmup_steps:
                lr = peak_lr * min(1.0, (t + 1) / warmup_steps)   # η_t
            for group in optimizer.param_groups:
                group["lr"] = lr                                  # every group
            optimizer.zero_grad()
            loss = sequence_cross_entropy(model(x), y)
            loss.backward()
            squares = sum(float((p.grad ** 2).sum()) for p in model.parameters()
                          if p.grad is not None)
            norm = math.sqrt(squares)                    # ‖g_t‖₂, before the step
            optimizer.step()
            ### END SOLUTION
            history["loss"].append(loss.item())
            history["grad_norm"].append(norm)
        return history
    """, "answer-warmup"),
    tests("""
    checks.check_warmup(train_with_warmup)
    ### BEGIN HIDDEN TESTS
    checks.check_warmup(train_with_warmup, seeds=[3],
                        settings=[{"steps": 24, "warmup_steps": 7, "peak_lr": 5e-3}])
    ### END HIDDEN TESTS
    """, "test-warmup", 2),
    markdown("""
    The cell below trains a larger `TinyTransformer` (2 layers, $d = 48$) for
    150 steps at $\\eta_{\\text{peak}} = 3\\cdot 10^{-2}$ with AdamW, once without warmup and
    once with $W = 30$, using your loop, and plots the loss and the gradient
    norm of every step (a minute or less on a CPU).
    """, "md-warmup-run"),
    code("""
    # (skipped while nbgrader runs the notebook: this experiment is for you,
    # not for the grade)
    checks.answered("train_with_warmup")
    if not checks.being_graded():
        import matplotlib.pyplot as plt

        runs = checks.warmup_runs(train_with_warmup)
        fig, (ax_loss, ax_norm) = plt.subplots(1, 2, figsize=(10, 3.5))
        for label, history in runs.items():
            ax_loss.plot(history["loss"], label=label)
            ax_norm.plot(history["grad_norm"], label=label)
            print(f"{label:16s} ‖g‖ over steps 0-9: "
                  + " ".join(f"{g:.2f}" for g in history["grad_norm"][:10]))
        ax_loss.set(xlabel="step", ylabel="loss")
        ax_norm.set(xlabel="step", ylabel="global gradient norm", yscale="log")
        ax_loss.legend()
        plt.show()
    """, "warmup-run"),
    markdown("""
    **Written answer (2 points).** Using the printout and the plot: what do
    the gradient norms do in the first steps without warmup, and with it? Why
    do Adam-type methods need a warmup, when plain SGD with a small rate
    would not?
    """, "md-written-warmup"),
    written("""
    Without warmup the gradient norm jumps within the first few steps: from about 0.9
    at step 0 to about 3.2 at step 3 (and 2.7 at step 5), and the loss stalls and
    jumps with it; with W = 30 the norm stays near 1 (at most about 1.4) while the
    loss falls smoothly, and the warmed-up run ends lower (about 2.25 against 2.33,
    mean of the last ten losses). Adam's step is η·m̂/(√v̂ + ε): on the first step,
    with bias correction, m̂₁/√v̂₁ = g₁/|g₁| = ±1, so every parameter moves by the full
    η whatever its gradient, however small or noisy, and during the first ~1/(1 − β₂)
    steps v̂ is an average of a few squared gradients, so the normalised steps stay
    large and erratic. At initialisation the transformer is in a sharp region (the
    attention logits, the LayerNorm gains and the output layer react strongly), so
    full-size steps in every coordinate at once overshoot: the gradients grow, as
    the spike shows. SGD's step is η·g, proportional to the gradient, so small or
    noisy gradients give small steps and a small rate is safe from the start; Adam
    has no such brake, and the warmup supplies one: tiny steps while v̂ becomes a
    reliable average and the model leaves the sharp start.
    """, "written-warmup", 2),
    markdown("""
    ## Part 8.7 — Written answer (2 points, graded by hand)

    1. Your range test in 8.1 stopped before $\\eta_{\\max}$. Which learning rate would you
       pick from its curve for the real run, and why not the rate where the smoothed loss is
       lowest?
    2. Why does fp16 training need a `GradScaler` and bf16 training not? What does the scaler
       do on a step whose gradients contain an inf?
    """, "md-written"),
]


def build():
    return notebook([*CELLS, written("""
    1. A rate about ten times below the minimum of the smoothed curve, or the one where the
    curve falls fastest (the steepest negative slope in log η). At the minimum the loss is
    already about to blow up: the smoothed curve lags the raw loss (the EMA averages over
    ~1/(1−β) steps), and the rate there is at the edge of stability for the *current*
    weights, so training for thousands of steps at it diverges or is noisy; a rate in the
    steep part still makes fast progress with a safety margin.

    2. fp16 has a 5-bit exponent: values below about 6e-8 underflow to 0, and many gradients
    of a deep network are that small. The scaler multiplies the loss by a large factor S
    before backward, so the gradients are S times larger and representable, then divides them
    by S before the step. bf16 has float32's 8-bit exponent (same range, fewer mantissa bits),
    so nothing underflows and no scaling is needed. On a step with an inf or NaN gradient the
    scaler skips optimizer.step() (the parameters are unchanged) and update() halves S; after
    a run of good steps it doubles S again.
    """, "written-practice", 2)])


if __name__ == "__main__":
    write(build(), ROOT / "solutions" / "08-practice" / "08-practice.ipynb")
