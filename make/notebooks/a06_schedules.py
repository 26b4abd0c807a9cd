"""Write solutions/06-schedules/06-schedules.ipynb,
the nbgrader source of assignment 06 (chapter 6).

Run from the repository root: ``.venv/bin/python make/notebooks/a06_schedules.py``, then
``make release ASSIGNMENT=06-schedules``. The checks the test cells call live in
``descent.grading.assignments.a06_schedules``.
"""

from __future__ import annotations

from pathlib import Path

from descent.grading.authoring import answer, code, markdown, notebook, tests, write, written

ROOT = Path(__file__).resolve().parents[2]

cells = [
markdown(r'''
# Assignment 06 — Learning-rate schedules

You will write four schedules of [chapter 6](../../book/06-schedules.ipynb)
(*Learning-rate schedules*) as pure functions of
the step — warmup + cosine, step decay, inverse square root and cosine with warm restarts
(SGDR) — and a training loop that follows a schedule.

**How this works.** Fill in every cell that says `YOUR CODE HERE` (or `YOUR ANSWER HERE`) and
run the test cell after it. The visible tests compare your schedules with the course's
reference over many steps, boundaries included; the grader runs the same checks with settings
you do not see, and re-runs your training loop itself (the numbers you print are never used).
Do not call the library's schedules (`descent.schedules`, `torch.optim.lr_scheduler`) in your
answers: such an answer earns no points.

**Convention.** A schedule is `lr = schedule(t, *, hyperparameters)` for the integer step
`t = 0, 1, 2, …`, and **step 0 is the first optimizer step**: `schedule(0)` is the learning
rate of the very first `optimizer.step()` (torch's `scheduler.last_epoch`). Off-by-one errors
live exactly here, so the tests check every boundary.
''', "intro"),
code(r'''
import math

import numpy as np
import torch

from descent.grading.assignments import a06_schedules as checks
''', "setup"),
markdown(r'''
## Part 6.1 — Linear warmup, then cosine (3 points)

Warm up linearly from 0 for $W$ steps, then follow half a cosine from $\eta$ at step $W$ down
to $\eta_{\min}$ at step $T$, and stay there:

$$
\eta_t = \begin{cases}
  \eta\, t / W & t < W,\\[2pt]
  \eta_{\min} + \tfrac12(\eta - \eta_{\min})\Bigl(1 + \cos\bigl(\pi\,\tfrac{t - W}{T - W}\bigr)\Bigr)
    & W \le t \le T,\\[2pt]
  \eta_{\min} & t > T.
\end{cases}
\tag{warmup + cosine}$$

So step 0 has learning rate 0, step $W$ has exactly $\eta$, and step $T$ exactly
$\eta_{\min}$: the cosine's argument reaches $\pi$ at $t = T$, not one step later.
''', "md-warmup-cosine"),
answer(r'''
def warmup_cosine(t, *, lr, warmup_steps, total_steps, eta_min=0.0):
    """η_t of eq. (warmup + cosine) for step t = 0, 1, …"""
    ### BEGIN SOLUTION
    if t < warmup_steps:
        return lr * t / warmup_steps                                  # linear warmup
    if t >= total_steps:
        return eta_min                                                # held after T
    progress = (t - warmup_steps) / (total_steps - warmup_steps)      # 0 at W, 1 at T
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * progress)) / 2
    ### END SOLUTION
''', "answer-warmup-cosine"),
tests(r'''
print([round(warmup_cosine(t, lr=1.0, warmup_steps=5, total_steps=20,
                          eta_min=0.1), 4)
       for t in (0, 4, 5, 6, 19, 20, 21)])
checks.check_warmup_cosine(warmup_cosine)
### BEGIN HIDDEN TESTS
checks.check_warmup_cosine(warmup_cosine, settings=[
    {"lr": 0.7, "warmup_steps": 1, "total_steps": 9, "eta_min": 0.07},
    {"lr": 2.0, "warmup_steps": 13, "total_steps": 50, "eta_min": 0.5},
    {"lr": 0.1, "warmup_steps": 0, "total_steps": 12, "eta_min": 0.0}])
### END HIDDEN TESTS
''', "test-warmup-cosine", 3),
markdown(r'''
## Part 6.2 — Step decay (1 point)

Multiply the learning rate by $\gamma$ every $s$ steps (torch's `StepLR`):

$$ \eta_t = \eta\, \gamma^{\lfloor t / s \rfloor}. \tag{step decay}$$

The first decay happens at step $t = s$ (steps $0 \dots s-1$ use $\eta$).
''', "md-step"),
answer(r'''
def step_decay(t, *, lr, step_size, gamma=0.1):
    """η_t of eq. (step decay)."""
    ### BEGIN SOLUTION
    return lr * gamma ** (t // step_size)                             # η γ^⌊t/s⌋
    ### END SOLUTION
''', "answer-step"),
tests(r'''
checks.check_step_decay(step_decay)
### BEGIN HIDDEN TESTS
checks.check_step_decay(step_decay, settings=[{"lr": 0.3, "step_size": 1, "gamma": 0.9},
                                              {"lr": 2.0, "step_size": 7, "gamma": 0.25}])
### END HIDDEN TESTS
''', "test-step", 1),
markdown(r'''
## Part 6.3 — Inverse square root, the Transformer's schedule (2 points)

Vaswani et al. (2017, eq. 3) warm up linearly for $W$ steps and then decay like $1/\sqrt{n}$.
The paper counts steps from 1, so with $n = t + 1$:

$$ \eta_t = \eta\, \min\!\Bigl(\frac{n}{W},\ \sqrt{\frac{W}{n}}\Bigr), \qquad n = t + 1.
\tag{inverse sqrt}$$

The peak $\eta$ is reached exactly at $n = W$, i.e. step $t = W - 1$, and step 0 already has
$\eta / W$.
''', "md-invsqrt"),
answer(r'''
def inverse_sqrt(t, *, lr, warmup_steps):
    """η_t of eq. (inverse sqrt), with the paper's 1-based step n = t +
    1."""
    ### BEGIN SOLUTION
    n = t + 1                                                         # the paper counts from 1
    return lr * min(n / warmup_steps, (warmup_steps / n) ** 0.5)
    ### END SOLUTION
''', "answer-invsqrt"),
tests(r'''
checks.check_inverse_sqrt(inverse_sqrt)
### BEGIN HIDDEN TESTS
checks.check_inverse_sqrt(inverse_sqrt, settings=[{"lr": 0.5, "warmup_steps": 1},
                                                  {"lr": 3.0, "warmup_steps": 25}])
### END HIDDEN TESTS
''', "test-invsqrt", 2),
markdown(r'''
## Part 6.4 — Cosine with warm restarts, SGDR (3 points)

Loshchilov & Hutter (2017) restart the cosine periodically. Cycle $i$ lasts
$T_i = T_0\, T_{\text{mult}}^{\,i}$ steps; with $T_{cur}$ the steps since the last restart,

$$ \eta_t = \eta_{\min} + \tfrac12(\eta - \eta_{\min})\bigl(1 + \cos(\pi\, T_{cur} / T_i)\bigr).
\tag{SGDR}$$

A cycle covers $T_{cur} = 0, 1, \dots, T_i - 1$: the cosine never quite reaches
$\eta_{\min}$, and at $T_{cur} = T_i$ the next cycle begins with $T_{cur} = 0$ and
$\eta_t = \eta$ (as torch's `CosineAnnealingWarmRestarts`). With $T_0 = 5$,
$T_{\text{mult}} = 2$ the restarts are at steps 5, 15, 35, …
''', "md-sgdr"),
answer(r'''
def sgdr(t, *, lr, T_0, T_mult=1, eta_min=0.0):
    """η_t of eq. (SGDR): cycles of T_0, T_0·T_mult, T_0·T_mult², …
    steps."""
    ### BEGIN SOLUTION
    t_cur, t_i = t, T_0
    while t_cur >= t_i:                                               # past this cycle: restart
        t_cur, t_i = t_cur - t_i, t_i * T_mult
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2
    ### END SOLUTION
''', "answer-sgdr"),
tests(r'''
checks.check_sgdr(sgdr)
### BEGIN HIDDEN TESTS
checks.check_sgdr(sgdr, settings=[{"lr": 0.2, "T_0": 1, "T_mult": 3, "eta_min": 0.0},
                                  {"lr": 1.5, "T_0": 7, "T_mult": 1, "eta_min": 0.3},
                                  {"lr": 1.0, "T_0": 4, "T_mult": 2, "eta_min": 0.0}])
### END HIDDEN TESTS
''', "test-sgdr", 3),
markdown(r'''
Your four schedules side by side (run the cell; nothing to write):
''', "md-plot"),
code(r'''
# (skipped while nbgrader runs the notebook: the plot is for you, not for
# the grade)
checks.answered("warmup_cosine", "step_decay", "inverse_sqrt", "sgdr")
if not checks.being_graded():
    from descent.plots import plot_schedules

    plot_schedules({
        "warmup + cosine": lambda t: warmup_cosine(
            t, lr=1.0, warmup_steps=10, total_steps=80),
        "step decay": lambda t: step_decay(
            t, lr=1.0, step_size=20, gamma=0.5),
        "inverse sqrt": lambda t: inverse_sqrt(t, lr=1.0, warmup_steps=10),
        "SGDR": lambda t: sgdr(t, lr=1.0, T_0=10, T_mult=2),
    }, steps=100)
''', "plot"),
markdown(r'''
## Part 6.5 — Training with a schedule (2 points)

Write the training loop `train(model, loss_fn, optimizer, schedule, steps)`: at each step
$t = 0, \dots, T-1$, set **every** parameter group's learning rate to `schedule(t)` *before*
`optimizer.step()`, clear the old gradients, compute `loss_fn(model)`, backpropagate, step.
Return the list of losses.

The grader calls your `train` on a fresh network and data set with its own SGD optimizer
(momentum 0.9, two param groups: the first layer and the rest) and your `warmup_cosine` with $\eta = 0.2$, $W = 10$, $T = 60$,
$\eta_{\min} = 0.01$. It records at each `optimizer.step()` the learning rate in use and the
loss, and compares them with the reference loop on the same device.
''', "md-train"),
answer(r'''
def train(model, loss_fn, optimizer, schedule, steps):
    """`steps` optimizer steps; step t uses lr = schedule(t). Returns the
    losses."""
    losses = []
    for t in range(steps):
        ### BEGIN SOLUTION
        for group in optimizer.param_groups:
            group["lr"] = schedule(t)                                 # η_t, before step t
        optimizer.zero_grad()
        loss = loss_fn(model)
        loss.backward()
        optimizer.step()
        ### END SOLUTION
        losses.append(loss.item())
    return losses
''', "answer-train"),
tests(r'''
checks.check_training(train, warmup_cosine)
### BEGIN HIDDEN TESTS
checks.check_training(train, warmup_cosine, seeds=[63])
### END HIDDEN TESTS
''', "test-train", 2),
markdown(r'''
The cell below trains the grader's network four times with your loop (full batch, 60 steps,
SGD with momentum 0.9): a constant learning rate and warmup + cosine, each at a modest peak
$\eta = 0.2$ and at a large one, $\eta = 0.7$.
''', "md-compare"),
code(r'''
from descent.grading import training

checks.answered("train", "warmup_cosine")

def final_losses(schedule, steps=60):
    run = training.RunSpec(seed=0, steps=steps, device="cpu")
    x, y, model = training._data_and_model(run)
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)

    def loss_fn(m):
        return torch.nn.functional.mse_loss(m(x), y)

    return train(model, loss_fn, opt, schedule, steps)

# (for you; skipped while nbgrader grades)
curves = {} if checks.being_graded() else {
    "constant η = 0.2": final_losses(lambda t: 0.2),
    "warmup + cosine, η = 0.2": final_losses(
        lambda t: warmup_cosine(t, lr=0.2, warmup_steps=10, total_steps=60,
                                eta_min=0.01)),
    "constant η = 0.7": final_losses(lambda t: 0.7),
    "warmup + cosine, η = 0.7": final_losses(
        lambda t: warmup_cosine(t, lr=0.7, warmup_steps=10, total_steps=60,
                                eta_min=0.01)),
}
for label, losses in curves.items():
    print(f"{label:28s} loss at steps 0, 5, 20, 59: "
          + ", ".join(f"{losses[t]:.4g}" for t in (0, 5, 20, 59)))
''', "compare"),
markdown(r'''
**Written answer (2 points).** Using these numbers: (a) what does the warmup buy at the large
peak rate? (b) At $\eta = 0.2$ the schedule ends slightly *above* the constant rate: why does
the cosine's decay not pay off on this full-batch problem, and when does it (think of the
noise of mini-batch gradients)? (c) Why would Adam need a warmup even more (think of
$\hat v_t$ in the first steps)?
''', "md-written"),
]
cells.append(written(r'''
(a) At η = 0.7 the constant rate diverges (the loss explodes by step 20, then NaN): the first
steps, where the gradients and the curvature of the freshly initialised network are largest,
are taken at a rate above the stability edge 2/L. The warmup keeps those steps small; by the
time the rate reaches 0.7 the network sits in a flatter region (smaller L, the edge of
stability moved up) and the same peak rate trains, ending near 0.01. So the warmup buys a
larger usable peak rate. (b) Here every gradient is exact (full batch), so a constant
0.2 converges steadily and there is no noise floor to settle below; the cosine just spends
the last steps at a smaller rate and moves less. With mini-batches, a constant rate leaves
the iterate bouncing in a band of width ∝ η·σ² around the minimum; decaying η at the end
shrinks that band (Robbins–Monro), which is when the decay pays off. (c) Adam's first steps
divide by √v̂_t estimated from one or a few gradients: the estimate is noisy and every
coordinate moves by about η whatever its curvature, so the early steps are both large and
unreliable; a warmup keeps them small until v̂ has averaged enough gradients
(~1/(1 − β₂)).
''', "written-schedules", 2))

cells += [
markdown(r'''
## Part 6.6 — Constant, step decay or cosine? (2 points)

Which schedule is best depends on the budget, and one run per schedule cannot tell a real
difference from luck. Write `compare_schedules(setup, schedules, seeds, steps)`, which
trains, for **every** schedule and **every** seed, a fresh run `setup(seed)` for `steps`
steps:

- `setup(seed)` returns `(model, loss_fn, optimizer)`: the grader's network and data
  built from `seed`, and an SGD optimizer (momentum 0.9) with two param groups;
- `schedules` maps a name to a schedule `schedule(t)` (the grader passes the library's
  `descent.schedules`, not your functions of 6.1–6.4);
- each step $t$ sets every group's lr to `schedule(t)`, records the lrs **as the
  optimizer holds them**, `[group["lr"] for group in optimizer.param_groups]`, then
  clears the gradients, computes `loss_fn(model)`, backpropagates and steps, recording
  the loss (before the step, as in 6.5).

Return `{name: {seed: {"lrs": lrs, "losses": losses}}}`, with `lrs` a list of one list
per step (one lr per param group) and `losses` a list of floats. The grader checks every
lr of every group, and runs the same seeds itself to compare every loss.
''', "md-compare-schedules"),
answer(r'''
def compare_schedules(setup, schedules, seeds, steps):
    """{name: {seed: {"lrs": [[lr per group], …], "losses": […]}}}."""
    results = {name: {} for name in schedules}
    ### BEGIN SOLUTION
    for name, schedule in schedules.items():
        for seed in seeds:
            model, loss_fn, optimizer = setup(seed)                   # a fresh run
            lrs, losses = [], []
            for t in range(steps):
                for group in optimizer.param_groups:
                    group["lr"] = schedule(t)                         # η_t, every group
                lrs.append([group["lr"] for group in optimizer.param_groups])
                optimizer.zero_grad()
                loss = loss_fn(model)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            results[name][seed] = {"lrs": lrs, "losses": losses}
    ### END SOLUTION
    return results
''', "answer-compare-schedules"),
tests(r'''
checks.check_compare(compare_schedules)
### BEGIN HIDDEN TESTS
checks.check_compare(compare_schedules, table=checks.COMPARE_HIDDEN,
                     seeds=[3, 11], steps=25)
### END HIDDEN TESTS
''', "test-compare-schedules", 2),
markdown(r'''
The three schedules at peak $\eta = 0.4$ over five seeds, for a budget of 40 steps
and for one of 160 (the step decay divides $\eta$ by about 3 at each third of the
budget; the cosine reaches 0 at the end). A line is the mean over the seeds, the
band runs from the lowest to the highest seed. Run the cell; nothing to write.
''', "md-plot-compare"),
code(r'''
# (skipped while nbgrader grades: the picture is for you, not the grade)
import functools

from descent import schedules as lib
from descent.plots import plot_bands, share_legend, subplots

checks.answered("compare_schedules")

if not checks.being_graded():
    fig, axes = subplots(1, 2)
    for ax, budget in zip(axes, (40, 160)):
        runs = compare_schedules(
            functools.partial(checks.compare_setup, steps=budget),
            {"constant": lib.Constant(0.4),
             "step decay": lib.StepDecay(0.4, budget // 3, 0.3),
             "cosine": lib.Cosine(0.4, budget)},
            seeds=range(5), steps=budget)
        plot_bands({name: (range(budget),
                           [run["losses"] for run in by_seed.values()])
                    for name, by_seed in runs.items()},
                   xlabel="step", ylabel="loss", ax=ax)
        ax.set_title(f"{budget} steps")
        for name, by_seed in runs.items():
            final = [run["losses"][-1] for run in by_seed.values()]
            print(f"{budget:3d} steps, {name:10s}: final loss "
                  f"{min(final):.4f} … {max(final):.4f}, "
                  f"mean {sum(final) / len(final):.4f}")
    share_legend(fig)
''', "plot-compare"),
markdown(r'''
## Part 6.7 — Written answer (2 points, graded by hand)

Using the printed numbers and the bands: (a) which schedule ends lowest at the budget
of 40 steps, and is its lead larger than the spread between seeds? (b) What changes at
160 steps, and why (think of what the decay is for, and of this full-batch problem)?
(c) How many seeds would you want before claiming that one schedule beats another?
''', "md-written-compare"),
]
cells.append(written(r'''
(a) At 40 steps the cosine and the step decay end lowest and close together (mean final loss
≈ 0.012), and both are tight across seeds (≈ 0.009-0.014). The constant η = 0.4 has a mean
of ≈ 0.06, but that mean is one bad seed: seed 1 ends at ≈ 0.26 (0.4 is near the edge of
stability for that initialisation and the run keeps bouncing), while the other seeds end at
≈ 0.010-0.017, inside the decayed schedules' band. So the decays win on the mean and above
all on the worst seed (robustness to a too-large peak rate); against a typical seed the
difference is within the seed spread. (b) At 160 steps every run has converged near the
same floor; the constant rate now ends slightly lowest (≈ 0.008 vs ≈ 0.009), but the band of
each schedule (≈ 0.006-0.011) is far wider than that difference: no schedule wins. The
decay pays off when gradients are noisy (it shrinks the noise band ∝ η·σ², Robbins–Monro);
here the gradients are full-batch, exact, so after a long budget there is no noise floor to
get under and a decayed rate only moves less at the end. With a short budget the decay
helps by taming the too-large early steps. (c) Enough that the difference between means is
larger than the seed-to-seed spread: at least 3-5 seeds, more when the difference is small;
with one seed each, seed 1 alone would have "shown" that the constant rate is 20× worse.
''', "written-compare", 2))

def build():
    return notebook(cells)


if __name__ == "__main__":
    write(build(), ROOT / "solutions" / "06-schedules" / "06-schedules.ipynb")
