"""Schedule-Free SGD and AdamW (descent.optim.schedule_free) against the paper.

The reference is Defazio et al. 2024 ("The Road Less Scheduled"), Algorithm 1, written out
below literally and independently of ``descent``: three sequences kept explicitly, y formed
at the top of each step from z and x, the gradient taken at y, γ_t with its warmup and
bias correction, the weight c_{t+1} = γ_t²/Σγ_i² summed from the list of every γ so far.
The optimizers must follow it over 300 steps in float64 on a multi-tensor stochastic problem
that is still descending (relative 1e-12; measured ≤ 4.1e-16), in both train (y) and eval
(x) modes. Also: the authors' memory-saving form (only y and z kept), the special cases
β = 0 and β = 1, the general weighting (r, p, a learning rate lowered mid-run), rule ≡
wrapper bit for bit on every path of the traced program, exact train/eval switches,
checkpoints, and bad input.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from optim_problems import make_problem, max_rel_diff
from test_optim_program import CountAllocations

import descent.optim as dopt
from descent.rules import (
    ScheduleFreeWeights,
    schedule_free_adamw_init,
    schedule_free_adamw_update,
    schedule_free_sgd_init,
    schedule_free_sgd_update,
    schedule_free_weights,
)

pytestmark = pytest.mark.usefixtures("one_thread")
STEPS = 300
SGD_HYPER = dict(lr=0.02, momentum=0.9, weight_decay=0.01, warmup_steps=25)
ADAMW_HYPER = dict(lr=0.02, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05, warmup_steps=25)


def gradient(problem, point: list[torch.Tensor], step: int) -> list[torch.Tensor]:
    leaves = [p.detach().clone().requires_grad_() for p in point]
    return list(torch.autograd.grad(problem.loss(leaves, step), leaves))


# -- the paper, literally -------------------------------------------------------------------------
def algorithm_1(problem, x1, steps, *, adam, lr, beta1, beta2=None, eps=None,
                weight_decay=0.0, warmup_steps=0):
    """Algorithm 1 of Defazio et al. (2024) (AdamW), and its SGD form (eqs. 5-7 with the
    same warmup, weighting and decay at y). Returns every y_t, and x and z at the end."""
    x = [p.clone() for p in x1]                                   # x_1
    z = [p.clone() for p in x1]                                   # z_1 = x_1
    v = [torch.zeros_like(p) for p in x1]                         # v_0 = 0
    gammas, ys = [], []
    for t in range(1, steps + 1):
        y = [(1 - beta1) * zi + beta1 * xi for zi, xi in zip(z, x)]     # 5: interpolation
        ys.append(y)
        g = gradient(problem, y, t - 1)                                  # 6: gradient at y
        warm = min(1.0, t / warmup_steps) if warmup_steps else 1.0
        if adam:
            v = [beta2 * vi + (1 - beta2) * gi ** 2 for vi, gi in zip(v, g)]   # 7
            gamma = lr * math.sqrt(1 - beta2 ** t) * warm                      # 8
            z = [zi - gamma * gi / (vi.sqrt() + eps) - gamma * weight_decay * yi  # 9
                 for zi, gi, vi, yi in zip(z, g, v, y)]
        else:
            gamma = lr * warm
            z = [zi - gamma * gi - gamma * weight_decay * yi for zi, gi, yi in zip(z, g, y)]
        gammas.append(gamma)
        c = gamma ** 2 / sum(gi ** 2 for gi in gammas)                   # 10
        x = [(1 - c) * xi + c * zi for xi, zi in zip(x, z)]              # 11: average
    return ys, x, z


def run_descent(cls, hyper, problem, steps, groups=None):
    """descent's optimizer on the same problem: y before every step, then x (eval mode)."""
    params = problem.init_params()
    opt = cls(params if groups is None else groups(params), **hyper)
    opt.train()
    ys = []
    for step in range(steps):
        ys.append([p.detach().clone() for p in params])
        opt.zero_grad()
        problem.loss(params, step).backward()
        opt.step()
    opt.eval()
    return ys, [p.detach().clone() for p in params], opt


def assert_follows(ours_ys, ours_x, paper_ys, paper_x, rtol=1e-12):
    for t, (a, b) in enumerate(zip(ours_ys, paper_ys, strict=True)):
        assert max_rel_diff(a, b) < rtol, f"y differs at step {t + 1}"
    assert max_rel_diff(ours_x, paper_x) < rtol


@pytest.mark.parametrize("seed", [0, 1])
def test_adamw_follows_algorithm_1(seed):
    problem = make_problem(seed)
    ys, x, opt = run_descent(dopt.AdamWScheduleFree, ADAMW_HYPER, problem, STEPS)
    paper_ys, paper_x, paper_z = algorithm_1(
        problem, problem.init_params(), STEPS, adam=True, lr=0.02, beta1=0.9, beta2=0.99,
        eps=1e-8, weight_decay=0.05, warmup_steps=25)
    assert_follows(ys, x, paper_ys, paper_x)
    z = [opt.state[p]["z"] for g in opt.param_groups for p in g["params"]]
    assert max_rel_diff(z, paper_z) < 1e-12
    # still descending at the end, and far from the start: a real test, not a fixed point
    assert problem.expected_loss(x) < 0.95 * problem.expected_loss(problem.init_params())
    assert max_rel_diff(x, problem.init_params()) > 0.5


@pytest.mark.parametrize("seed", [0, 1])
def test_sgd_follows_the_papers_sgd_form(seed):
    problem = make_problem(seed)
    ys, x, _ = run_descent(dopt.SGDScheduleFree, SGD_HYPER, problem, STEPS)
    paper_ys, paper_x, _ = algorithm_1(problem, problem.init_params(), STEPS, adam=False,
                                       lr=0.02, beta1=0.9, weight_decay=0.01,
                                       warmup_steps=25)
    assert_follows(ys, x, paper_ys, paper_x)
    assert problem.expected_loss(x) < 0.95 * problem.expected_loss(problem.init_params())


def test_without_warmup_or_decay_too():
    problem = make_problem(2)
    hyper = dict(lr=0.01, betas=(0.95, 0.999))
    ys, x, _ = run_descent(dopt.AdamWScheduleFree, hyper, problem, 150)
    paper = algorithm_1(problem, problem.init_params(), 150, adam=True, lr=0.01, beta1=0.95,
                        beta2=0.999, eps=1e-8)
    assert_follows(ys, x, paper[0], paper[1])


def general_weighting(problem, x1, lrs, *, beta, r, p):
    """The SGD form with the implementation's general weight: w_t = t^r (max_{i≤t} γ_i)^p,
    c_{t+1} = w_t / Σ_{i≤t} w_i, for any sequence of rates γ_1, γ_2, …"""
    x, z = [q.clone() for q in x1], [q.clone() for q in x1]
    weights = []
    for t, gamma in enumerate(lrs, start=1):
        y = [(1 - beta) * zi + beta * xi for zi, xi in zip(z, x)]
        g = gradient(problem, y, t - 1)
        z = [zi - gamma * gi for zi, gi in zip(z, g)]
        weights.append(t ** r * max(lrs[:t]) ** p)
        c = weights[-1] / sum(weights)
        x = [(1 - c) * xi + c * zi for xi, zi in zip(x, z)]
    return x


@pytest.mark.parametrize("r, p", [(0.0, 2.0), (1.0, 2.0), (0.5, 0.0), (2.0, 1.0)])
def test_general_weighting_with_a_rate_lowered_mid_run(r, p):
    """After lowering η the average keeps weighting new iterates by the largest η so far."""
    problem = make_problem(3)
    lrs = [0.02] * 60 + [0.005] * 60
    params = problem.init_params()
    opt = dopt.SGDScheduleFree(params, lr=0.02, momentum=0.8, r=r, weight_lr_power=p)
    opt.train()
    for step, lr in enumerate(lrs):
        opt.param_groups[0]["lr"] = lr
        opt.zero_grad()
        problem.loss(params, step).backward()
        opt.step()
    opt.eval()
    expected = general_weighting(problem, problem.init_params(), lrs, beta=0.8, r=r, p=p)
    assert max_rel_diff(params, expected) < 1e-10
    assert opt.param_groups[0]["lr_max"] == 0.02


def test_the_authors_memory_saving_form_keeps_only_y_and_z():
    """Their production classes update y in place without x:
    y_{t+1} = (1-c) y_t + c z_t + η_t(β(1-c) - 1) d_t,  z_{t+1} = z_t - η_t d_t,
    with d_t = g_t + λ y_t, and recover x = (y - (1-β) z)/β for evaluation."""
    problem, beta, lam = make_problem(4), 0.9, 0.01
    ys, x, opt = run_descent(dopt.SGDScheduleFree, SGD_HYPER, problem, 200)
    y = problem.init_params()
    y = [q.detach() for q in y]
    z = [q.clone() for q in y]
    weights = ScheduleFreeWeights()
    for step in range(200):
        assert max_rel_diff(ys[step], y) < 1e-10
        lr, c, weights = schedule_free_weights(weights, lr=0.02, warmup_steps=25)
        d = [gi + lam * yi for gi, yi in zip(gradient(problem, y, step), y)]
        y = [(1 - c) * yi + c * zi + lr * (beta * (1 - c) - 1) * di
             for yi, zi, di in zip(y, z, d)]
        z = [zi - lr * di for zi, di in zip(z, d)]
    assert max_rel_diff(x, [(yi - (1 - beta) * zi) / beta for yi, zi in zip(y, z)]) < 1e-10


# -- special cases the docstring claims ----------------------------------------------------------
def test_beta_0_is_sgd_with_a_polyak_ruppert_average():
    """β = 0: the gradient is taken at z, so y is plain SGD's iterate (bit for bit), and with
    no warmup c_{t+1} = 1/t: x is the mean of z_2 … z_{t+1}."""
    problem = make_problem(5)
    ours, plain = problem.init_params(), problem.init_params()
    sf = dopt.SGDScheduleFree(ours, lr=0.01, momentum=0.0)
    sgd = dopt.SGD(plain, lr=0.01)
    sf.train()
    zs = []
    for step in range(80):
        for params, opt in ((ours, sf), (plain, sgd)):
            opt.zero_grad()
            problem.loss(params, step).backward()
            opt.step()
        assert all(torch.equal(a, b) for a, b in zip(ours, plain))
        zs.append([p.detach().clone() for p in plain])
        assert sf.param_groups[0]["c"] == pytest.approx(1 / (step + 1), rel=1e-14)
    sf.eval()
    mean = [torch.stack([z[i] for z in zs]).mean(dim=0) for i in range(len(ours))]
    assert max_rel_diff(ours, mean) < 1e-12


def test_beta_1_takes_the_gradient_at_the_average():
    params = make_problem(6).init_params()
    opt = dopt.AdamWScheduleFree(params, betas=(1.0, 0.999))
    opt.train()
    problem = make_problem(6)
    for step in range(20):
        opt.zero_grad()
        problem.loss(params, step).backward()
        opt.step()
        assert all(torch.equal(p, opt.state[p]["x"]) for p in params)   # y = x


def test_the_weights_warm_up_and_average():
    state, lrs, cs = ScheduleFreeWeights(), [], []
    for _ in range(8):
        lr, c, state = schedule_free_weights(state, lr=0.5, warmup_steps=4)
        lrs.append(lr)
        cs.append(c)
    assert lrs == [0.125, 0.25, 0.375, 0.5, 0.5, 0.5, 0.5, 0.5]        # η min(1, t/W)
    assert cs[0] == 1.0                                               # x_2 = z_2
    squares = np.cumsum(np.square(lrs))
    np.testing.assert_allclose(cs, np.square(lrs) / squares, rtol=1e-15)
    lr, c, _ = schedule_free_weights(ScheduleFreeWeights(), lr=0.5, beta2=0.99)
    assert lr == 0.5 * math.sqrt(1 - 0.99)                            # AdamW: η √(1 - β₂)
    assert schedule_free_weights(ScheduleFreeWeights(), lr=0.0)[1] == 0.0   # η = 0: c = 0


# -- rule ≡ wrapper, on every path -----------------------------------------------------------------
CASES = [(dopt.SGDScheduleFree, SGD_HYPER), (dopt.AdamWScheduleFree, ADAMW_HYPER)]
CASE_IDS = ["SGD", "AdamW"]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("foreach", [False, True, None], ids=["one-by-one", "foreach", "auto"])
@pytest.mark.parametrize("cls, hyper", CASES, ids=CASE_IDS)
def test_rule_equals_wrapper_bit_for_bit_on_the_traced_path(cls, hyper, foreach, dtype):
    problem = make_problem(7)
    params = problem.init_params(dtype)
    half = len(params) // 2
    group2 = dict(weight_decay=0.0, warmup_steps=3)
    opt = cls([{"params": params[:half]}, {"params": params[half:], **group2}],
              foreach=foreach, maximize=True, **hyper)
    opt.train()
    groups = [g for g in opt.param_groups for _ in g["params"]]
    copies = [p.detach().clone() for p in params]
    states = [opt.init_state(c, g) for c, g in zip(copies, groups)]
    for step in range(25):
        opt.zero_grad()
        (-problem.loss(params, step)).backward()
        grads = [p.grad.clone() for p in params]
        opt.step()
        for i, group in enumerate(groups):
            copies[i], states[i] = type(opt).rule(copies[i], -grads[i], states[i],
                                                  **opt.rule_kwargs(group))
    assert all(torch.equal(p.detach(), c) for p, c in zip(params, copies))
    assert opt._engine.plans and not opt._engine.refused          # traced, not a fallback
    before = [p.detach().clone() for p in params]
    opt.eval()
    assert all(torch.equal(p.detach(), s.x) for p, s in zip(params, states))
    opt.train()                                                   # exactly y again
    assert all(torch.equal(p.detach(), b) for p, b in zip(params, before))


@pytest.mark.parametrize("cls, hyper", CASES, ids=CASE_IDS)
def test_a_step_allocates_no_tensor(cls, hyper):
    params = [torch.randn(64, 300, requires_grad=True), torch.randn(40_000, requires_grad=True)]
    opt = cls(params, **hyper)
    opt.train()
    for _ in range(2):
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    with CountAllocations() as counter:
        opt.step()
    assert counter.allocated == []


@pytest.mark.parametrize("update, init, kwargs", [
    (schedule_free_sgd_update, schedule_free_sgd_init,
     dict(lr=0.1, c=0.3, momentum=0.9, weight_decay=0.1)),
    (schedule_free_adamw_update, schedule_free_adamw_init,
     dict(lr=0.1, c=0.3, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.1)),
], ids=CASE_IDS)
def test_rules_are_pure_and_numpy_equals_torch(update, init, kwargs):
    rng = np.random.default_rng(8)
    n_param, grads = rng.normal(size=(3, 2)), [rng.normal(size=(3, 2)) for _ in range(6)]
    t_param = torch.from_numpy(n_param.copy())
    n_state, t_state = init(n_param), init(t_param)
    for grad in grads:
        kept = [a.copy() for a in (n_param, grad, *n_state)]
        new_param, new_state = update(n_param, grad, n_state, **kwargs)
        assert all(np.array_equal(a, b) for a, b in zip(kept, (n_param, grad, *n_state)))
        n_param, n_state = new_param, new_state
        t_param, t_state = update(t_param, torch.from_numpy(grad), t_state, **kwargs)
    np.testing.assert_allclose(n_param, t_param.numpy(), rtol=1e-14)
    for a, b in zip(n_state, t_state):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-14)


# -- train and eval modes, checkpoints ----------------------------------------------------------
@pytest.mark.parametrize("cls, hyper", CASES, ids=CASE_IDS)
def test_step_in_eval_mode_raises_and_modes_switch_only_once(cls, hyper):
    p = torch.ones(3, requires_grad=True)
    opt = cls([p], **hyper)
    p.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match=r"eval mode.*optimizer\.train\(\)"):
        opt.step()                                 # a new optimizer is in eval mode
    opt.eval()
    opt.train()
    assert torch.equal(p, torch.ones(3))           # nothing to switch before the first step
    for grad in (1.0, -2.0):                       # (after one step c_2 = 1: x = z = y)
        p.grad = torch.full((3,), grad)
        opt.step()
    y = p.detach().clone()
    opt.eval()
    x = p.detach().clone()
    opt.eval()                                     # a second eval() changes nothing
    assert torch.equal(p, x) and not torch.equal(x, y)
    opt.train()
    opt.train()
    assert torch.equal(p, y)


@pytest.mark.parametrize("cls, hyper", CASES, ids=CASE_IDS)
def test_checkpoint_in_eval_mode_resumes_bit_for_bit(cls, hyper):
    problem = make_problem(9)

    def steps(params, opt, start, n):
        opt.train()
        for step in range(start, start + n):
            opt.zero_grad()
            problem.loss(params, step).backward()
            opt.step()
        opt.eval()

    straight = problem.init_params()
    opt = cls(straight, **hyper)
    steps(straight, opt, 0, 40)
    saved_params = [p.detach().clone() for p in straight]
    saved = copy.deepcopy(opt.state_dict())
    steps(straight, opt, 40, 40)

    resumed = [p.clone().requires_grad_() for p in saved_params]
    opt2 = cls(resumed, **hyper)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["step"] == 40 and not opt2.param_groups[0]["train_mode"]
    steps(resumed, opt2, 40, 40)
    assert all(torch.equal(a, b) for a, b in zip(straight, resumed))


@pytest.mark.parametrize("make, message", [
    (lambda p: dopt.SGDScheduleFree(p, lr=-1.0), r"lr \(η\) must be in \[0, ∞\), got -1\.0"),
    (lambda p: dopt.SGDScheduleFree(p, momentum=1.5),
     r"momentum \(β\) must be in \[0, 1\], got 1\.5"),
    (lambda p: dopt.SGDScheduleFree(p, warmup_steps=-1),
     r"warmup_steps \(W\) must be an integer >= 0, got -1"),
    (lambda p: dopt.SGDScheduleFree(p, weight_decay=-0.1),
     r"weight_decay \(λ\) must be in \[0, ∞\), got -0\.1"),
    (lambda p: dopt.AdamWScheduleFree(p, betas=(0.9, 1.0)),
     r"betas\[1\] \(β₂\) must be in \[0, 1\), got 1\.0"),
    (lambda p: dopt.AdamWScheduleFree(p, betas=(1.1, 0.9)),
     r"betas\[0\] \(β\) must be in \[0, 1\], got 1\.1"),
    (lambda p: dopt.AdamWScheduleFree(p, eps=-1e-8), r"eps \(ε\) must be in \[0, ∞\)"),
    (lambda p: dopt.AdamWScheduleFree(p, r=-1.0), r"r \(r\) must be in \[0, ∞\), got -1\.0"),
    (lambda p: dopt.AdamWScheduleFree(p, weight_lr_power=-2.0),
     r"weight_lr_power \(p\) must be in \[0, ∞\), got -2\.0"),
    (lambda p: dopt.AdamWScheduleFree(p, betas=0.9), r"betas \(β, β₂\) must be a pair"),
])
def test_bad_hyperparameters_name_argument_symbol_and_value(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make([torch.zeros(2, requires_grad=True)])


def test_shape_mismatch_is_refused_by_the_rule():
    state = schedule_free_sgd_init(np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        schedule_free_sgd_update(np.zeros(3), np.zeros(4), state, lr=0.1, c=1.0)
