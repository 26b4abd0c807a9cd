"""The pure rules behind ``descent.optim`` and the wrappers' torch.optim behaviour.

Rule ≡ wrapper, NumPy ≡ torch, no mutation, a hand-computed Adam step at t = 5, parameters
without gradients, ``zero_grad``, bad input, and what a NaN gradient does.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from optim_problems import SPEC_BY_NAME, SPECS, build, max_rel_diff, run, sample_setup

import descent.optim as dopt
from descent import rules
from descent.optim.adam import AdamState

IDS = [spec.name for spec in SPECS]
NUMPY_SPECS = [spec for spec in SPECS if spec.name != "Muon"]  # Muon is torch-only


pytestmark = pytest.mark.usefixtures("one_thread")


def _rule_and_kwargs(spec, seed=0):
    """A wrapper built with random hyperparameters, its rule, and the rule's keywords."""
    rng = np.random.default_rng(seed)
    opt = spec.ours([torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)],
                    **spec.hyper(rng))
    group = opt.param_groups[0]
    return opt, group, type(opt).rule, opt.rule_kwargs(group)


def _trajectory(seed, shape=(3, 2)):
    g = torch.Generator().manual_seed(seed)
    param = torch.randn(shape, generator=g, dtype=torch.float64)
    grads = [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(8)]
    return param, grads


# -- the rule is the wrapper ---------------------------------------------------------------------
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_rule_equals_wrapper(spec):
    problem, kwargs, group2, maximize = sample_setup(spec, 7)
    params = problem.init_params()
    opt = build(spec.ours, params, kwargs, group2)
    # Replay the same gradients through the bare rules, tensor by tensor.
    copies = [p.detach().clone() for p in params]
    states = [None] * len(params)
    for _ in range(20):
        opt.zero_grad()
        loss = problem.loss(params)
        (-loss if maximize else loss).backward()
        grads = [p.grad.clone() for p in params]
        opt.step()
        for i, group in enumerate(g for g in opt.param_groups for _ in g["params"]):
            grad = -grads[i] if maximize else grads[i]
            state = states[i] if states[i] is not None else opt.init_state(copies[i], group)
            copies[i], states[i] = type(opt).rule(copies[i], grad, state,
                                                  **opt.rule_kwargs(group))
    assert all(torch.equal(a.detach(), b) for a, b in zip(params, copies, strict=True))


def test_every_rule_is_exported():
    for spec in SPECS:
        name = spec.name.lower()
        assert callable(getattr(rules, f"{name}_init"))
        assert callable(getattr(rules, f"{name}_update"))
        assert getattr(dopt, spec.name) is spec.ours


@pytest.mark.parametrize("spec", NUMPY_SPECS, ids=[s.name for s in NUMPY_SPECS])
def test_rule_on_numpy_equals_rule_on_torch(spec):
    opt, group, rule, kwargs = _rule_and_kwargs(spec, seed=1)
    param, grads = _trajectory(1)
    t_param, n_param = param, param.numpy().copy()
    t_state, n_state = opt.init_state(t_param, group), opt.init_state(n_param, group)
    for grad in grads:
        t_param, t_state = rule(t_param, grad, t_state, **kwargs)
        n_param, n_state = rule(n_param, grad.numpy(), n_state, **kwargs)
        assert isinstance(n_param, np.ndarray)
    np.testing.assert_allclose(n_param, t_param.numpy(), rtol=1e-13, atol=0)
    for n_field, t_field in zip(n_state, t_state, strict=True):
        if t_field is None:
            assert n_field is None
        else:
            np.testing.assert_allclose(np.asarray(n_field, dtype=np.float64),
                                       np.asarray(t_field, dtype=np.float64), rtol=1e-13)


def test_muon_rule_is_torch_only():
    state = rules.muon_init(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="bfloat16"):
        rules.muon_update(np.zeros((2, 3)), np.ones((2, 3)), state)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_rule_does_not_mutate_its_inputs(spec):
    opt, group, rule, kwargs = _rule_and_kwargs(spec, seed=2)
    param, grads = _trajectory(2)
    state = opt.init_state(param, group)
    for grad in grads[:4]:  # a mid-run state, with every buffer filled
        param, state = rule(param, grad, state, **kwargs)
    before = [x.clone() if torch.is_tensor(x) else x for x in (param, grads[4], *state)]
    new_param, new_state = rule(param, grads[4], state, **kwargs)
    after = (param, grads[4], *state)
    for x, y in zip(before, after, strict=True):
        assert (torch.equal(x, y) if torch.is_tensor(x) else x == y)
    assert new_param is not param
    assert not torch.equal(new_param, param)


# -- a hand-computed Adam step from mid-run ------------------------------------------------------
def test_adam_step_at_t5_by_hand():
    """Adam's fifth step, element by element in plain floats, against the rule and torch."""
    lr, b1, b2, eps, wd = 0.01, 0.8, 0.95, 1e-6, 0.1
    theta = [0.5, -1.25, 2.0]
    g = [0.3, -0.7, 1.1]
    m4 = [0.1, -0.2, 0.4]
    v4 = [0.02, 0.09, 0.5]
    expected = []
    for th, gi, mi, vi in zip(theta, g, m4, v4, strict=True):
        gi = gi + wd * th                                      # L2 term
        m5 = b1 * mi + (1 - b1) * gi                           # first moment
        v5 = b2 * vi + (1 - b2) * gi ** 2                      # second moment
        m_hat = m5 / (1 - b1 ** 5)                             # bias corrections, t = 5
        v_hat = v5 / (1 - b2 ** 5)
        expected.append(th - lr * m_hat / (math.sqrt(v_hat) + eps))
    t = lambda xs: torch.tensor(xs, dtype=torch.float64)
    state = AdamState(4, t(m4), t(v4))
    new_theta, new_state = rules.adam_update(t(theta), t(g), state, lr=lr, beta1=b1, beta2=b2,
                                             eps=eps, weight_decay=wd)
    torch.testing.assert_close(new_theta, t(expected), rtol=1e-14, atol=0)
    assert new_state.step == 5
    # torch.optim.Adam, loaded with the same state at step 4, takes the same step.
    param = t(theta).requires_grad_()
    opt = torch.optim.Adam([param], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    opt.state[param] = {"step": torch.tensor(4.0), "exp_avg": t(m4), "exp_avg_sq": t(v4)}
    param.grad = t(g)
    opt.step()
    torch.testing.assert_close(param.detach(), t(expected), rtol=1e-14, atol=0)


def test_adamw_is_adam_with_decoupled_decay():
    param, grads = _trajectory(3)
    a = b = param
    sa = sb = rules.adam_init(param)
    for grad in grads:
        a, sa = rules.adamw_update(a, grad, sa, lr=0.01, weight_decay=0.1)
        b, sb = rules.adam_update(param=b, grad=grad, state=sb, lr=0.01, weight_decay=0.1,
                                  decoupled_weight_decay=True)
    assert torch.equal(a, b)


# -- the torch.optim behaviour -------------------------------------------------------------------
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_closure_returns_loss_and_params_without_grad_are_skipped(spec):
    problem, kwargs, group2, _ = sample_setup(spec, 8)
    params = problem.init_params()
    frozen = params[1]
    opt = build(spec.ours, params, kwargs, group2)
    start = frozen.detach().clone()

    def closure():
        opt.zero_grad()
        loss = problem.loss(params)
        loss.backward()
        frozen.grad = None            # as if it took no part in the loss
        return loss

    loss = opt.step(closure)
    assert torch.is_tensor(loss) and loss.item() == pytest.approx(problem.loss(
        [p.detach() for p in problem.init_params()]).item())
    assert frozen not in opt.state
    assert torch.equal(frozen.detach(), start)
    assert all(p in opt.state for p in params if p is not frozen)
    assert opt.step() is None


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_zero_grad(spec):
    problem, kwargs, group2, _ = sample_setup(spec, 9)
    params = problem.init_params()
    opt = build(spec.ours, params, kwargs, group2)
    problem.loss(params).backward()
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    problem.loss(params).backward()
    opt.zero_grad(set_to_none=False)
    assert all(torch.count_nonzero(p.grad) == 0 for p in params)


# -- bad input -----------------------------------------------------------------------------------
def _one_param(spec):
    return [torch.zeros(2, 2, requires_grad=True)]


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_negative_lr_is_refused(spec):
    with pytest.raises(ValueError, match=r"lr \(η\) must be in \[0, ∞\), got -0.1"):
        spec.ours(_one_param(spec), lr=-0.1)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "NAdam"])
@pytest.mark.parametrize(("betas", "message"), [
    ((1.0, 0.999), r"betas\[0\] \(β₁\) must be in \[0, 1\), got 1.0"),
    ((-0.1, 0.999), r"betas\[0\] \(β₁\) must be in \[0, 1\), got -0.1"),
    ((0.9, 1.5), r"betas\[1\] \(β₂\) must be in \[0, 1\), got 1.5"),
    ((0.9,), r"betas \(β₁, β₂\) must be a pair"),
])
def test_betas_outside_unit_interval_are_refused(name, betas, message):
    with pytest.raises(ValueError, match=message):
        SPEC_BY_NAME[name].ours(_one_param(None), betas=betas)


@pytest.mark.parametrize(("spec", "keyword"), [
    (spec, keyword) for spec in SPECS for keyword in ("eps", "weight_decay")
    if not (spec.name == "SGD" and keyword == "eps")  # SGD has no eps
], ids=lambda x: getattr(x, "name", x))
def test_negative_eps_and_weight_decay_are_refused(spec, keyword):
    with pytest.raises(ValueError, match=rf"{keyword} \((ε|λ)\) must be in .*got -0.5"):
        spec.ours(_one_param(spec), **{keyword: -0.5})


@pytest.mark.parametrize(("name", "keyword", "value"), [
    ("RMSprop", "alpha", 1.5), ("Adadelta", "rho", -0.1), ("Adagrad", "lr_decay", -1.0),
    ("NAdam", "momentum_decay", -1.0), ("RMSprop", "momentum", -0.5),
    ("Muon", "momentum", -0.5), ("Muon", "adjust_lr_fn", "bogus"), ("Muon", "ns_steps", -1),
    ("Muon", "ns_coefficients", (1.0, 2.0)),
])
def test_other_bad_hyperparameters_are_refused(name, keyword, value):
    with pytest.raises(ValueError, match=keyword):
        SPEC_BY_NAME[name].ours(_one_param(None), **{keyword: value})


def test_muon_refuses_non_matrix_parameters():
    with pytest.raises(ValueError, match=r"2-D parameters only.*\(3,\)"):
        dopt.Muon([torch.zeros(3, requires_grad=True)])


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_mismatched_shapes_are_refused_by_the_rule(spec):
    opt, group, rule, kwargs = _rule_and_kwargs(spec)
    param = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"grad must have the shape of param, got \(2, 3\)"):
        rule(param, torch.zeros(2, 3, dtype=torch.float64), opt.init_state(param, group),
             **kwargs)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_nan_gradient_propagates_like_torch(spec):
    """Decision: a NaN gradient is not caught; it poisons exactly what it poisons in
    torch.optim (NaN where torch has NaN, the same numbers elsewhere), so a diverging run
    looks the same in both. Guard with ``torch.isfinite`` or GradScaler upstream."""
    problem, kwargs, group2, maximize = sample_setup(spec, 10)
    results = []
    for cls in (spec.ours, spec.theirs):
        params = problem.init_params()
        opt = build(cls, params, kwargs, group2)
        run(problem, opt, params, 3, maximize=maximize)
        opt.zero_grad()
        problem.loss(params).backward()
        params[0].grad[0, 0] = float("nan")
        opt.step()
        results.append([p.detach().clone() for p in params])
    ours, theirs = results
    assert ours[0].isnan().any()
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a.isnan(), b.isnan())
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0, equal_nan=True)


def test_adagrad_takes_initial_accumulator_value_from_the_group():
    """Documented difference: torch.optim.Adagrad uses the constructor's value for all groups."""
    a = torch.ones(2, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    opt = dopt.Adagrad([{"params": [a]}, {"params": [b], "initial_accumulator_value": 3.0}],
                       initial_accumulator_value=1.0)
    a.grad, b.grad = torch.ones(2), torch.ones(2)
    opt.step()
    torch.testing.assert_close(opt.state[a]["sum"], torch.full((2,), 2.0))
    torch.testing.assert_close(opt.state[b]["sum"], torch.full((2,), 4.0))


def test_state_is_created_lazily_and_converges_on_a_parabola():
    """Every optimizer drives a convex quadratic towards its minimum at zero."""
    for spec in SPECS:
        x = torch.tensor([[3.0, -2.0], [1.0, 4.0]], dtype=torch.float64, requires_grad=True)
        kwargs = {"Adadelta": dict(eps=1e-2), "Muon": dict(lr=0.05, weight_decay=0.0),
                  "SGD": dict(lr=0.1), "Adagrad": dict(lr=0.5)}.get(spec.name, dict(lr=0.05))
        opt = spec.ours([x], **kwargs)
        assert not opt.state
        start = x.detach().norm()
        for _ in range(300):
            opt.zero_grad()
            (x * x).sum().mul(0.5).backward()
            opt.step()
        assert x.detach().norm() < 0.2 * start, spec.name


def test_max_rel_diff_helper():
    a = [torch.tensor([1.0, 2.0], dtype=torch.float64)]
    b = [torch.tensor([1.0, 2.0 + 2e-9], dtype=torch.float64)]
    assert max_rel_diff(a, b) == pytest.approx(1e-9, rel=1e-6)
