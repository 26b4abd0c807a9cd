"""Write solutions/05-adaptive/05-adaptive.ipynb, the nbgrader source of assignment 05 (chapter 5).

Run from the repository root: ``.venv/bin/python make/notebooks/a05_adaptive.py``, then
``make release ASSIGNMENT=05-adaptive``. The checks the test cells call live in
``descent.grading.assignments.a05_adaptive``.
"""

from __future__ import annotations

from pathlib import Path

from descent.grading.authoring import (
    answer,
    code,
    markdown,
    notebook,
    tests,
    write,
    written,  # noqa: E402
)

ROOT = Path(__file__).resolve().parents[2]

cells = [
markdown(r'''
# Assignment 05 — Adaptive methods: AdaGrad, RMSprop, Adam, AdamW

You will write the four adaptive rules of [chapter 5](../../book/05-adaptive.ipynb)
(*Adaptive methods*) as **pure update
rules**, work through the AdamW step of the chapter with your own rule, switch Adam's
ingredients off one at a time and explain what each one does, train a small network with
an optimizer built on your AdamW, and compare optimizers fairly: a tuned rate for each,
separate seeds, error bands.

**How this works.** Fill in every cell that says `YOUR CODE HERE` (or `YOUR ANSWER HERE`) and
run the test cell after it. The visible tests compare your code with the course's reference on
a few inputs; the grader runs the same checks on new inputs you do not see, and re-runs your
optimizer itself for the training run (the numbers you print are never used). Do not call the
library's optimizers (`descent.rules`, `descent.optim`, `torch.optim`) in your answers: such an
answer earns no points.

**A pure rule** is `new_param, new_state = update(param, grad, state, *, hyperparameters)`. It
returns new arrays and never changes `param`, `grad` or `state` (no `param -= …`, no
`state.m[:] = …`). It must work on NumPy arrays *and* torch tensors: write $\sqrt{x}$ as
`x ** 0.5`, and use only `+ - * /` and `**` on arrays. Each state is a `NamedTuple` defined
below; `t` counts the updates made so far, so it is 0 before the first step and the first
update has $t = 1$ (increment *before* use).
''', "intro"),
code(r'''
from typing import Any, NamedTuple

import numpy as np
import torch

from descent.grading.assignments import a05_adaptive as checks


class AdagradState(NamedTuple):
    t: int  # updates made so far (0 before the first)
    s: Any  # s_t, the running sum of squared gradients


class RMSpropState(NamedTuple):
    t: int
    v: Any  # v_t, the moving average of squared gradients


class AdamState(NamedTuple):
    t: int
    m: Any  # m_t, the first moment (moving average of gradients)
    v: Any  # v_t, the second moment (moving average of squared gradients)


# The states before the first step. `0 * param` is an array of zeros of
# param's shape, dtype and kind (NumPy or torch).
def adagrad_init(param):
    return AdagradState(0, 0 * param)


def rmsprop_init(param):
    return RMSpropState(0, 0 * param)


def adam_init(param):
    return AdamState(0, 0 * param, 0 * param)
''', "setup"),
markdown(r'''
## Part 5.1 — AdaGrad (2 points)

AdaGrad divides each coordinate's step by the root of the sum of all its past squared
gradients:

$$ s_t = s_{t-1} + g_t^2, \qquad
   \theta_t = \theta_{t-1} - \eta\,\frac{g_t}{\sqrt{s_t} + \epsilon}. \tag{AdaGrad}$$

Products and roots are elementwise; $\epsilon$ is added *outside* the root (as in PyTorch).
Write `adagrad_update`: compute `s` ($s_t$) and `new_param` ($\theta_t$); the last line,
given, returns them with the step count.
''', "md-adagrad"),
answer(r'''
def adagrad_update(param, grad, state, *, lr, eps=1e-10):
    """One AdaGrad step (eq. AdaGrad); returns (new_param, AdagradState).
    Inputs untouched."""
    ### BEGIN SOLUTION
    s = state.s + grad * grad                             # s_t = s_{t-1} + g_t²
    new_param = param - lr * grad / (s ** 0.5 + eps)      # θ_t = θ_{t-1} − η g_t/(√s_t + ε)
    ### END SOLUTION
    return new_param, AdagradState(state.t + 1, s)
''', "answer-adagrad"),
tests(r'''
checks.check_adagrad(adagrad_update, adagrad_init)
### BEGIN HIDDEN TESTS
checks.check_adagrad(adagrad_update, adagrad_init, seeds=[51], shapes=[(6,), (2, 3)], steps=20,
                     arrays=["numpy"])
### END HIDDEN TESTS
''', "test-adagrad", 2),
markdown(r'''
## Part 5.2 — RMSprop (2 points)

RMSprop replaces AdaGrad's sum by an exponential moving average, so old gradients are
forgotten at rate $\alpha$:

$$ v_t = \alpha\, v_{t-1} + (1-\alpha)\, g_t^2, \qquad
   \theta_t = \theta_{t-1} - \eta\,\frac{g_t}{\sqrt{v_t} + \epsilon}. \tag{RMSprop}$$

There is no bias correction ($v_0 = 0$). PyTorch's `weight_decay` $\lambda$ adds an L2 term to
the gradient first, $g_t \leftarrow g_t + \lambda\theta_{t-1}$; that line is written for you.
Compute `v` ($v_t$) and `new_param` ($\theta_t$).
''', "md-rmsprop"),
answer(r'''
def rmsprop_update(param, grad, state, *, lr, alpha=0.99, eps=1e-8,
                   weight_decay=0.0):
    """One RMSprop step (eq. RMSprop); returns (new_param, RMSpropState).
    Inputs untouched."""
    if weight_decay:
        grad = grad + weight_decay * param                # L2 term
    ### BEGIN SOLUTION
    v = alpha * state.v + (1 - alpha) * grad * grad       # v_t = α v_{t-1} + (1 − α) g_t²
    new_param = param - lr * grad / (v ** 0.5 + eps)      # θ_t = θ_{t-1} − η g_t/(√v_t + ε)
    ### END SOLUTION
    return new_param, RMSpropState(state.t + 1, v)
''', "answer-rmsprop"),
tests(r'''
checks.check_rmsprop(rmsprop_update, rmsprop_init)
### BEGIN HIDDEN TESTS
checks.check_rmsprop(rmsprop_update, rmsprop_init, seeds=[53], shapes=[(5,), (3, 4)], steps=20,
                     arrays=["numpy"])
### END HIDDEN TESTS
''', "test-rmsprop", 2),
markdown(r'''
## Part 5.3 — Adam (3 points)

Adam keeps moving averages of the gradient and of its square, and corrects both for their
start at zero:

$$
\begin{aligned}
t &\leftarrow t + 1, \\
m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t, &
v_t &= \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2, \\
\hat m_t &= \frac{m_t}{1-\beta_1^t}, &
\hat v_t &= \frac{v_t}{1-\beta_2^t}, \\
\theta_t &= \theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}.
\end{aligned}
\tag{Adam}$$

Three conventions bite (all as in the paper and PyTorch): $t$ is incremented **before** it is
used, so the first update has $t = 1$; $\epsilon$ is **outside** the root; the state stores
$m_t$ and $v_t$, not the corrected $\hat m_t, \hat v_t$. Adam's `weight_decay` is an L2 term
on the gradient (written for you). Compute `t`, `m`, `v` (the new state) and `new_param`.
*Hint:* on the first step, with bias correction,
$\hat m_1 = g_1$ and $\hat v_1 = g_1^2$, so every coordinate moves by about $\eta$.
''', "md-adam"),
answer(r'''
def adam_update(param, grad, state, *, lr, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.0):
    """One Adam step (eq. Adam); returns (new_param, AdamState). Inputs
    untouched."""
    if weight_decay:
        grad = grad + weight_decay * param   # L2 term (Adam's weight_decay)
    ### BEGIN SOLUTION
    t = state.t + 1                                       # t incremented before use
    m = beta1 * state.m + (1 - beta1) * grad              # first moment m_t
    v = beta2 * state.v + (1 - beta2) * grad * grad       # second moment v_t
    m_hat = m / (1 - beta1 ** t)                          # bias corrections
    v_hat = v / (1 - beta2 ** t)
    new_param = param - lr * m_hat / (v_hat ** 0.5 + eps)  # θ_t = θ_{t-1} − η m̂/(√v̂ + ε)
    ### END SOLUTION
    return new_param, AdamState(t, m, v)
''', "answer-adam"),
tests(r'''
checks.check_adam(adam_update, adam_init)
### BEGIN HIDDEN TESTS
checks.check_adam(adam_update, adam_init, seeds=[55], shapes=[(7,), (2, 5)], steps=20,
                  arrays=["numpy"])
### END HIDDEN TESTS
''', "test-adam", 3),
markdown(r'''
## Part 5.4 — AdamW and the worked step (2 points)

AdamW *decouples* weight decay from the adaptive step (Loshchilov & Hutter, 2019): it shrinks
the parameters first, by the learning rate times $\lambda$, and then takes a plain Adam step
with the unchanged gradient:

$$ \theta_{t-1} \leftarrow (1 - \eta\lambda)\,\theta_{t-1}, \quad\text{then eq. (Adam) with }
   g_t. \tag{AdamW}$$

Adding $\lambda\theta$ to the gradient instead (Adam + L2) is *not* the same: the decay would
then be divided by $\sqrt{\hat v_t} + \epsilon$ like the rest of the gradient. Write the decay
line (a new `param`; the caller's array must not change); the Adam step is your
`adam_update` with no weight decay (the grader checks this part
with a correct `adam_update` in place of yours, so a mistake in 5.3 is not charged twice).

The test then works the chapter's example with your rule: $L(\theta) = (\theta - 1)^2$ from
$\theta_0 = 2.0$ with $\eta = 0.1$, $\lambda = 0.01$. By hand: $g_1 = 2$, the decay gives
$1.998$, the bias-corrected step is $\eta\, g_1/|g_1| \approx 0.1$, so $\theta_1 \approx 1.898$.
''', "md-adamw"),
answer(r'''
def adamw_update(param, grad, state, *, lr, beta1=0.9, beta2=0.999,
                 eps=1e-8, weight_decay=1e-2):
    """One AdamW step (eq. AdamW); returns (new_param, AdamState). Inputs
    untouched."""
    ### BEGIN SOLUTION
    param = param * (1 - lr * weight_decay)               # decoupled decay θ ← (1 − ηλ)θ
    ### END SOLUTION
    return adam_update(param, grad, state, lr=lr, beta1=beta1, beta2=beta2,
                       eps=eps)
''', "answer-adamw"),
tests(r'''
checks.check_adamw(adamw_update, adam_init)
### BEGIN HIDDEN TESTS
checks.check_adamw(adamw_update, adam_init, seeds=[57], shapes=[(4,), (3, 3)], steps=20,
                   arrays=["numpy"],
                   worked=[(2.0, 0.1, 0.01), (-3.0, 0.05, 0.2), (1.5, 0.3, 0.5)])
### END HIDDEN TESTS
''', "test-adamw", 2),
markdown(r'''
## Part 5.5 — An ablation of Adam (2 points, and 3 points graded by hand)

Which of Adam's three ingredients does the work? Write `adam_ablation_update`, Adam with
switches: `bias_correction=False` uses $m_t, v_t$ in place of $\hat m_t, \hat v_t$;
`adaptive=False` steps along $\hat m_t$ without dividing by $\sqrt{\hat v_t} + \epsilon$
(momentum SGD with an averaged buffer). "No momentum" needs no switch: it is $\beta_1 = 0$.
With both switches on, the rule is eq. (Adam) (no weight decay here). The moments are computed
for you; compute the step's `direction` ($\hat m_t/(\sqrt{\hat v_t}+\epsilon)$ with both on).
''', "md-ablation"),
answer(r'''
def adam_ablation_update(param, grad, state, *, lr, beta1=0.9,
                         beta2=0.999, eps=1e-8,
                         bias_correction=True, adaptive=True):
    """Eq. (Adam) with bias correction and/or adaptivity switched off;
    (new_param, AdamState)."""
    t = state.t + 1
    m = beta1 * state.m + (1 - beta1) * grad
    v = beta2 * state.v + (1 - beta2) * grad * grad
    ### BEGIN SOLUTION
    if bias_correction:
        m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
    else:
        m_hat, v_hat = m, v
    direction = m_hat / (v_hat ** 0.5 + eps) if adaptive else m_hat
    ### END SOLUTION
    return param - lr * direction, AdamState(t, m, v)
''', "answer-ablation"),
tests(r'''
checks.check_ablation(adam_ablation_update, adam_init)
### BEGIN HIDDEN TESTS
checks.check_ablation(adam_ablation_update, adam_init, seeds=[59], shapes=[(2, 3)], steps=15)
### END HIDDEN TESTS
''', "test-ablation", 2),
markdown(r'''
The cell below runs your rule on a badly scaled, noisy quadratic in 20 dimensions: the
curvatures $d_i$ range from $0.01$ to $100$, and each gradient carries noise. Every variant
uses $\eta = 0.05$ and 300 steps from $\theta_0 = 0$. Run it and look at the first steps, the
middle of the run and the final noise floor.
''', "md-ablation-run"),
code(r'''
# (skipped while nbgrader runs the notebook: this experiment is for you,
# not for the grade)
checks.answered("adam_ablation_update")
if not checks.being_graded():
    from descent.plots import plot_loss_curves

    runs = checks.ablation_runs(adam_ablation_update, adam_init)
    steps = (1, 3, 10, 30, 100)
    print(f"{'variant':24s}" + "".join(f"{f'L(θ_{t})':>11s}" for t in steps)
          + f"{'final (median)':>16s}")
    for label, losses in runs.items():
        print(f"{label:24s}" + "".join(f"{losses[t]:11.3g}" for t in steps)
              + f"{np.median(losses[-50:]):16.3g}")
    plot_loss_curves(runs, band=None)
''', "ablation-run"),
markdown(r'''
**Written answer (3 points).** Using the table and the plot, explain for each ablation what
changes and *why*, in terms of the equations: (a) without bias correction, how large is the
first step compared with Adam's (compute it for $\beta_1 = 0.9$, $\beta_2 = 0.999$), and what
does that do early in the run? (b) without adaptivity, why does the run blow up at first and
end higher, on curvatures from $0.01$ to $100$? (c) without momentum, what changes in the
noisy phase at the end, and why is the difference small here?
''', "md-written"),
]


cells.append(written(r'''
(a) Without bias correction m₁ = (1 − β₁)g₁ and v₁ = (1 − β₂)g₁², so the first step is
η(1 − β₁)/√(1 − β₂) ≈ η·0.1/0.0316 ≈ 3.16η per coordinate instead of η: the early steps are
about three times too large (the loss falls faster at first, then overshoots, and the run ends
on a higher, noisier floor because v_t stays underestimated for ~1/(1 − β₂) = 1000 steps while
m_t has long since warmed up). (b) Without adaptivity the step is η·m̂ ≈ η·g, so each
coordinate moves by η·d_i: for d = 100, ηd = 5 > 2 and the stiff coordinates overshoot (the
loss jumps by an order of magnitude in the first step), while for d = 0.01 the step is 10⁴
times smaller and the flat coordinates barely move, so the run ends higher. Dividing by √v̂
makes every coordinate's step about η whatever its scale. (c) Without momentum (β₁ = 0) the
step follows each noisy gradient instead of their average over ~1/(1 − β₁) = 10 steps, so the
noise floor is higher; here the difference is small because the normalisation by √v̂ already
caps every step at about η and the problem is separable (no ravine for momentum to cross).
''', "written-ablation", 3))

cells += [
markdown(r'''
## Part 5.6 — A training run with your AdamW (2 points)

A pure rule becomes a PyTorch optimizer with a few lines: for each parameter tensor `p` with a
gradient, read its state from `self.state[p]` (create it with `adam_init(p)` the first time),
call your rule with the group's hyperparameters, store the new state back, and write the new
values into the tensor **in place**, `p.copy_(new_p)` (`p = new_p` would only rebind a name).
`self.state[p]` is a dict, empty until you store something in it: keep the rule's state in it
under the key `"rule_state"`, as `self.state[p]["rule_state"]` (an `AdamState`; the grader
only reads the losses, so another key works as well, but not a dict or list of your own
outside `self.state`).

The grader builds a fresh network and data set and trains it on the best device it has with
two param groups and every hyperparameter away from its default: the first layer with
`lr=0.02, betas=(0.85, 0.99), eps=1e-3, weight_decay=0.1`, the rest with `lr=0.01,
betas=(0.7, 0.95), eps=1e-4, weight_decay=0.02`. It compares the loss curve step by step with
`torch.optim.AdamW` given the same groups on the same device (chapter 7 writes a full
optimizer; this one is the minimum). Read every hyperparameter from the `group`.
''', "md-train"),
answer(r'''
class AdamWOptimizer(torch.optim.Optimizer):
    """torch.optim.AdamW built on your adamw_update (same keywords and
    defaults)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=1e-2):
        defaults = dict(lr=lr, betas=betas, eps=eps,
                        weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                ### BEGIN SOLUTION
                state = self.state[p].get("rule_state") or adam_init(p)
                new_p, self.state[p]["rule_state"] = adamw_update(
                    p, p.grad, state, lr=group["lr"], beta1=beta1, beta2=beta2,
                    eps=group["eps"], weight_decay=group["weight_decay"])
                p.copy_(new_p)
                ### END SOLUTION
''', "answer-train"),
tests(r'''
checks.check_training(AdamWOptimizer)
### BEGIN HIDDEN TESTS
checks.check_training(AdamWOptimizer, seeds=[61])
### END HIDDEN TESTS
''', "test-train", 2),
]


cells += [
markdown(r'''
## Part 5.7 — A fair comparison (2 points, and 3 points graded by hand)

"Adam beats SGD" means little if SGD ran at Adam's learning rate, or if
Adam's rate was picked on the very runs that are then shown. A fair
comparison gives every method the same tuning budget, and reports runs
that the tuning never saw:

1. **Tune** each method on its own. Run `train(method, lr, seed)` for every
   rate in `rates` and every seed in `tune_seeds`, and score each rate by
   its **mean final loss**: the mean, over the tuning seeds, of the last
   value of each curve. Choose the rate with the lowest score. On a tie,
   keep the first of the tied rates in the order of `rates`. A rate whose
   score is not finite (a run diverged to NaN or inf) is never chosen,
   unless every rate diverged: then keep the first rate.
2. **Evaluate** the chosen rate on the separate `eval_seeds`: run it once
   per evaluation seed and stack the curves into an array of shape
   `(len(eval_seeds), steps)`, one row per seed, in their order.

Write `fair_comparison(train, methods, rates, tune_seeds, eval_seeds)`,
returning `{method: (best_lr, curves)}`. `train` is given: it returns the
loss curve of one run (a NumPy array; the same inputs always give the same
curve). The grader passes its own `train`, which records every call: the
evaluation seeds may be run with the chosen rate only, after the choice.
*Hint:* `nan < x` is `False` for every `x`, so a strict `<` never picks a
NaN score.
''', "md-fair"),
answer(r'''
def fair_comparison(train, methods, rates, tune_seeds, eval_seeds):
    """Tune each method's rate on tune_seeds, evaluate it on eval_seeds.

    Returns {method: (best_lr, curves)}, curves of shape
    (len(eval_seeds), steps).
    """
    result = {}
    for method in methods:
        ### BEGIN SOLUTION
        best_lr, best_score = rates[0], np.inf
        for lr in rates:
            finals = [train(method, lr, seed)[-1] for seed in tune_seeds]
            score = np.mean(finals)                 # mean final loss
            if score < best_score:                  # strict: first on a tie
                best_lr, best_score = lr, score
        curves = np.array([train(method, best_lr, seed)
                           for seed in eval_seeds])      # seeds × steps
        ### END SOLUTION
        result[method] = (best_lr, curves)
    return result
''', "answer-fair"),
tests(r'''
checks.check_fair_comparison(fair_comparison)
### BEGIN HIDDEN TESTS
checks.check_fair_comparison(fair_comparison, crafted=False, settings=[
    {"methods": ["adam", "sgd"], "rates": [0.3, 0.1, 0.03, 0.01],
     "tune_seeds": [7, 3], "eval_seeds": [4, 0, 9, 1], "steps": 30}])
### END HIDDEN TESTS
''', "test-fair", 2),
markdown(r'''
The cell below runs your protocol on the grader's noisy quadratic (curvatures
from $10^{-2.5}$ to $10$, 50 steps), tuning on 5 seeds and evaluating on 5
others, and then once more with one shared rate, $\eta = 0.01$, for every
method. The plot shows the tuned runs: the mean over the evaluation seeds,
and a band from the lowest to the highest seed.
''', "md-fair-run"),
code(r'''
# (skipped while nbgrader runs the notebook: this experiment is for you,
# not for the grade)
checks.answered("fair_comparison")
if not checks.being_graded():
    from descent.plots import plot_bands

    fair, unfair = checks.fair_runs(fair_comparison, shared_lr=0.01)
    for title, result in (("tuned per method", fair),
                          ("one shared rate", unfair)):
        print(title)
        for method, (lr, curves) in result.items():
            final = curves[:, -1]
            print(f"  {method:9s} η = {lr:<6g} final loss "
                  f"{final.mean():.3g} (seeds: {final.min():.3g} to "
                  f"{final.max():.3g})")
    steps = np.arange(1, fair["sgd"][1].shape[1] + 1)
    plot_bands({f"{m}, η = {lr:g}": (steps, curves)
                for m, (lr, curves) in fair.items()},
               xlabel="step", ylabel="loss", band="minmax")
''', "fair-run"),
markdown(r'''
**Written answer (3 points).** Using the printout and the plot: (a) which
method wins the fair comparison, and by how much? (b) Is that gap larger
than the spread over the evaluation seeds, and what does that say about the
verdict? (c) With one shared rate $\eta = 0.01$ for every method, what
would you have concluded, and why is that comparison unfair?
''', "md-written-fair"),
]

cells.append(written(r'''
(a) Adam, tuned to η = 0.3, ends lowest: a mean final loss of about 0.06, against
about 0.11 for SGD (η = 0.1) and 0.16 for momentum (η = 0.03), roughly half of
SGD's loss. (b) No: the seeds spread more than the methods differ. Adam's runs end
between about 0.03 and 0.11, SGD's between 0.06 and 0.13, momentum's between 0.05
and 0.46; the bands overlap, and one unlucky seed moves a mean by more than the
gap. With five seeds the honest verdict is "Adam is somewhat better on this
problem, within the noise", not a clear win; more seeds (or a paired test on the
per-seed differences) would be needed to claim more. (c) At η = 0.01 for all,
momentum looks best (about 0.22), SGD is seven times worse (about 1.6) and Adam is
the worst by far (about 17): one would conclude that Adam fails here. But 0.01
merely suits momentum (whose effective step is η/(1 − β) = 10η) and not the
others: Adam moves each coordinate by about η whatever its gradient, so at 0.01 it
crawls, and SGD runs ten times below its best rate. A shared rate compares the
rate, not the methods; each method must be tuned with the same budget.
''', "written-fair", 3))


def build():
    return notebook(cells)


if __name__ == "__main__":
    write(build(), ROOT / "solutions" / "05-adaptive" / "05-adaptive.ipynb")
