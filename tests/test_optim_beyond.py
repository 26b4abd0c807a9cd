"""Lion, LAMB and SAM against their papers' equations, written out here independently.

Each reference below is the paper's algorithm transcribed in a few lines of torch (float64),
not a call into ``descent``; the optimizers must follow it over 60 steps on a multi-tensor
problem with two parameter groups.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from descent.optim import LAMB, SAM, SGD, Adam, Lion
from descent.rules import (
    lamb_init,
    lamb_update,
    lion_init,
    lion_update,
    sam_perturbation,
)

STEPS = 60


def make_params(seed: int, dtype=torch.float64) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (5,), (2, 2, 2)]
    params = [torch.randn(s, generator=g, dtype=dtype) for s in shapes]
    params.append(torch.zeros(3, dtype=dtype))  # a zero "bias": LAMB's ratio-1 case
    return params


def loss_fn(params: list[torch.Tensor]) -> torch.Tensor:
    """Smooth, nonconvex, and still descending after 60 small steps."""
    return sum(((p - 0.7) ** 2).sum() + 0.3 * torch.sin(3 * p).sum() for p in params)


def grads_at(params: list[torch.Tensor]) -> list[torch.Tensor]:
    leaves = [p.detach().requires_grad_() for p in params]
    return list(torch.autograd.grad(loss_fn(leaves), leaves))


def run_optimizer(make_opt, seed: int = 0, steps: int = STEPS) -> list[torch.Tensor]:
    params = [p.requires_grad_() for p in make_params(seed)]
    opt = make_opt([{"params": params[:2]}, {"params": params[2:], "lr_scale": True}])
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(params).backward()
        opt.step()
    return [p.detach() for p in params]


def assert_close(actual, expected, rtol=1e-10):
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=rtol, atol=1e-12)


def two_groups(cls, group2: dict, **kwargs):
    """An optimizer whose second group overrides ``group2``."""
    def make(groups):
        groups[1] = {"params": groups[1]["params"], **group2}
        return cls(groups, **kwargs)
    return make


# -- Lion (Chen et al. 2023, Algorithm 2) -----------------------------------------------------
def lion_paper(params, steps, groups):
    """Algorithm 2: c = β₁m + (1-β₁)g; θ ← θ - η(sign(c) + λθ); m ← β₂m + (1-β₂)g."""
    params = [p.clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    for _ in range(steps):
        grads = grads_at(params)
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            lr, (b1, b2), wd = groups(i)
            c = b1 * m[i] + (1 - b1) * g
            params[i] = p - lr * (torch.sign(c) + wd * p)
            m[i] = b2 * m[i] + (1 - b2) * g
    return params


def test_lion_follows_the_paper():
    hyper = [(3e-3, (0.9, 0.99), 0.1), (1e-2, (0.8, 0.95), 0.0)]
    groups = lambda i: hyper[0] if i < 2 else hyper[1]
    expected = lion_paper(make_params(0), STEPS, groups)
    actual = run_optimizer(two_groups(Lion, dict(lr=1e-2, betas=(0.8, 0.95), weight_decay=0.0),
                                      lr=3e-3, betas=(0.9, 0.99), weight_decay=0.1))
    assert_close(actual, expected)


# -- LAMB (You et al. 2020, Algorithm 2) -------------------------------------------------------
def lamb_paper(params, steps, groups):
    """Algorithm 2 per layer, with bias correction and φ = identity."""
    params = [p.clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        grads = grads_at(params)
        for i, (x, g) in enumerate(zip(params, grads, strict=True)):
            lr, (b1, b2), eps, wd = groups(i)
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat, v_hat = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
            r = m_hat / (v_hat.sqrt() + eps) + wd * x
            x_norm, r_norm = x.norm().item(), r.norm().item()
            ratio = x_norm / r_norm if x_norm > 0 and r_norm > 0 else 1.0
            params[i] = x - lr * ratio * r
    return params


def test_lamb_follows_the_paper():
    hyper = [(1e-2, (0.9, 0.999), 1e-6, 0.01), (3e-2, (0.85, 0.99), 1e-8, 0.0)]
    groups = lambda i: hyper[0] if i < 2 else hyper[1]
    expected = lamb_paper(make_params(1), STEPS, groups)
    actual = run_optimizer(two_groups(LAMB, dict(lr=3e-2, betas=(0.85, 0.99), eps=1e-8,
                                                 weight_decay=0.0),
                                      lr=1e-2, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01),
                           seed=1)
    assert_close(actual, expected)
    assert actual[3].abs().sum() > 0, "a zero tensor must move (trust ratio 1)"


# -- SAM (Foret et al. 2021, Algorithm 1) ------------------------------------------------------
def sam_paper(params, steps, *, rho, lr, momentum, adaptive=False):
    """ε̂ = ρ T²g/‖Tg‖ (T = 1, or |θ| for ASAM); g_SAM = ∇L(θ + ε̂); SGD-momentum step at θ."""
    params = [p.clone() for p in params]
    buf = [None] * len(params)
    for _ in range(steps):
        g = grads_at(params)
        tg = [p.abs() * gi if adaptive else gi for p, gi in zip(params, g, strict=True)]
        norm = torch.sqrt(sum((x * x).sum() for x in tg))
        eps = [(p * p if adaptive else 1.0) * rho * gi / (norm + 1e-12)
               for p, gi in zip(params, g, strict=True)]
        g_sam = grads_at([p + e for p, e in zip(params, eps, strict=True)])
        for i, gi in enumerate(g_sam):
            buf[i] = gi.clone() if buf[i] is None else momentum * buf[i] + gi
            params[i] = params[i] - lr * buf[i]
    return params


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("base", [torch.optim.SGD, SGD])
def test_sam_follows_the_paper(adaptive, base):
    rho = 0.5 if adaptive else 0.05
    expected = sam_paper(make_params(2), STEPS, rho=rho, lr=0.02, momentum=0.9,
                         adaptive=adaptive)
    params = [p.requires_grad_() for p in make_params(2)]
    opt = SAM([{"params": params[:2]}, {"params": params[2:]}], base, rho=rho,
              adaptive=adaptive, lr=0.02, momentum=0.9)

    def closure():
        opt.zero_grad()
        loss = loss_fn(params)
        loss.backward()
        return loss

    for _ in range(STEPS):
        loss = opt.step(closure)
        assert torch.isfinite(loss)
    assert_close([p.detach() for p in params], expected)


def test_sam_two_calls_equal_step_with_closure():
    runs = []
    for by_hand in (False, True):
        params = [p.requires_grad_() for p in make_params(3)]
        opt = SAM(params, Adam, rho=0.1, lr=1e-2)
        for _ in range(10):
            if by_hand:
                opt.zero_grad()
                loss_fn(params).backward()
                opt.first_step(zero_grad=True)
                loss_fn(params).backward()
                opt.second_step(zero_grad=True)
            else:
                opt.step(lambda opt=opt, params=params: (opt.zero_grad(),
                                                         loss_fn(params).backward()))
        runs.append([p.detach() for p in params])
    assert_close(*runs, rtol=0)


def test_sam_perturbation_is_pure_and_has_norm_rho():
    params, grads = make_params(4), grads_at(make_params(4))
    before = [g.clone() for g in grads]
    eps = sam_perturbation(params, grads, rho=0.3)
    assert torch.sqrt(sum((e * e).sum() for e in eps)).item() == pytest.approx(0.3)
    assert_close(grads, before, rtol=0)
    as_numpy = sam_perturbation([p.numpy() for p in params], [g.numpy() for g in grads],
                                rho=0.3, adaptive=True)
    assert_close([torch.from_numpy(np.asarray(e)) for e in as_numpy],
                 sam_perturbation(params, grads, rho=0.3, adaptive=True))
    zero = sam_perturbation(params, [torch.zeros_like(g) for g in grads], rho=0.3)
    assert all(torch.equal(z, torch.zeros_like(z)) for z in zero), "zero gradient: ε̂ = 0"


# -- the pure rules ---------------------------------------------------------------------------
RULES = [
    (lion_update, lion_init, dict(lr=1e-3, beta1=0.9, beta2=0.99, weight_decay=0.1)),
    (lamb_update, lamb_init, dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.1)),
]


@pytest.mark.parametrize("rule, init, kwargs", RULES)
def test_rule_is_pure_and_numpy_equals_torch(rule, init, kwargs):
    g = torch.Generator().manual_seed(5)
    param, grad = torch.randn(6, 2, generator=g, dtype=torch.float64), torch.randn(
        6, 2, generator=g, dtype=torch.float64)
    state = init(param)
    for _ in range(3):  # move the state off zero first
        _, state = rule(param, grad, state, **kwargs)
    saved = [param.clone(), grad.clone()] + [s.clone() for s in state if torch.is_tensor(s)]
    new_t, state_t = rule(param, grad, state, **kwargs)
    assert_close([param, grad] + [s for s in state if torch.is_tensor(s)], saved, rtol=0)
    np_state = type(state)(*(s.numpy() if torch.is_tensor(s) else s for s in state))
    new_n, state_n = rule(param.numpy(), grad.numpy(), np_state, **kwargs)
    torch.testing.assert_close(torch.from_numpy(np.asarray(new_n)), new_t, rtol=1e-14, atol=0)
    for a, b in zip(state_n, state_t, strict=True):
        if torch.is_tensor(b):
            torch.testing.assert_close(torch.from_numpy(np.asarray(a)), b, rtol=1e-14, atol=0)


def test_lamb_ratio_is_one_for_a_zero_tensor_and_lion_moves_by_lr():
    zero, grad = torch.zeros(4, dtype=torch.float64), torch.tensor([1.0, -2.0, 0.5, 0.0],
                                                                    dtype=torch.float64)
    new, _ = lamb_update(zero, grad, lamb_init(zero), lr=0.1, eps=1e-12)
    torch.testing.assert_close(new, -0.1 * torch.sign(grad))  # first Adam step: ±η (0 at g=0)
    new, _ = lion_update(zero + 1, grad, lion_init(zero), lr=0.1)
    torch.testing.assert_close(new, 1 - 0.1 * torch.sign(grad))


# -- the optimizers: state dict, convergence, maximize, bad input -----------------------------
OPTIMIZERS = [
    (Lion, dict(lr=3e-3, weight_decay=0.1)),
    (LAMB, dict(lr=1e-2, weight_decay=0.01)),
]


@pytest.mark.parametrize("cls, kwargs", OPTIMIZERS)
def test_state_dict_round_trip(cls, kwargs):
    whole = run_optimizer(lambda groups: cls(groups, **kwargs), steps=40)
    params = [p.requires_grad_() for p in make_params(0)]
    opt = cls([{"params": params[:2]}, {"params": params[2:], "lr_scale": True}], **kwargs)
    for i in range(40):
        if i == 20:
            saved = opt.state_dict()
            opt = cls([{"params": params[:2]}, {"params": params[2:]}], **kwargs)
            opt.load_state_dict(saved)
        opt.zero_grad()
        loss_fn(params).backward()
        opt.step()
    assert_close([p.detach() for p in params], whole, rtol=0)


def test_sam_state_dict_round_trip():
    def run(split):
        params = [p.requires_grad_() for p in make_params(6)]
        opt = SAM(params, Adam, rho=0.05, lr=1e-2)
        closure = lambda: (opt.zero_grad(), loss_fn(params).backward())
        for i in range(20):
            if i == split:
                saved = opt.state_dict()
                opt = SAM(params, Adam, rho=0.05, lr=1e-2)
                opt.load_state_dict(saved)
                closure = lambda: (opt.zero_grad(), loss_fn(params).backward())  # noqa: B023
            opt.step(closure)
        return [p.detach() for p in params]
    assert_close(run(10), run(-1), rtol=0)


@pytest.mark.parametrize("make", [
    lambda ps: Lion(ps, lr=1e-1),
    lambda ps: LAMB(ps, lr=3e-2),
    lambda ps: SAM(ps, torch.optim.SGD, rho=0.05, lr=0.05),
], ids=["Lion", "LAMB", "SAM"])
def test_converges_on_a_quadratic(make):
    g = torch.Generator().manual_seed(7)
    a = torch.rand(20, generator=g, dtype=torch.float64) * 9 + 1   # curvatures in [1, 10]
    x = torch.full((20,), 3.0, dtype=torch.float64, requires_grad=True)
    opt = make([x])

    def closure():
        opt.zero_grad()
        loss = 0.5 * (a * (x - 1) ** 2).sum()
        loss.backward()
        return loss

    # Lion moves by ±η and LAMB by η‖θ‖: with a constant η both hover at that scale around
    # the minimum, so η is annealed to 0 (a cosine schedule), as in the papers' runs.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=300)
    start = closure().item()
    for _ in range(300):
        opt.step(closure)
        schedule.step()
    assert closure().item() < 1e-6 * start


@pytest.mark.parametrize("cls", [Lion, LAMB])
def test_maximize_ascends(cls):
    x = torch.tensor([1.0, -1.0], dtype=torch.float64, requires_grad=True)
    opt = cls([x], lr=1e-2, maximize=True)
    (x ** 2).sum().backward()
    opt.step()
    assert (x.detach().abs() > 1).all()


@pytest.mark.parametrize("make, message", [
    (lambda p: Lion(p, lr=-1.0), r"lr \(η\) must be in \[0, ∞\), got -1.0"),
    (lambda p: Lion(p, betas=(0.9, 1.0)), r"betas\[1\] \(β₂\) must be in \[0, 1\), got 1.0"),
    (lambda p: Lion(p, weight_decay=-0.1), r"weight_decay \(λ\)"),
    (lambda p: LAMB(p, betas=(-0.1, 0.999)), r"betas\[0\] \(β₁\) must be in \[0, 1\)"),
    (lambda p: LAMB(p, eps=0.0), r"eps \(ε\) must be in \(0, ∞\), got 0.0"),
    (lambda p: LAMB(p, lr=float("nan")), r"lr \(η\) must be a (finite )?number, got nan"),
    (lambda p: SAM(p, torch.optim.SGD, rho=-0.05, lr=0.1), r"rho \(ρ\) must be in \[0, ∞\)"),
])
def test_bad_hyperparameters_name_argument_and_value(make, message):
    with pytest.raises(ValueError, match=message):
        make([torch.zeros(2, requires_grad=True)])


def test_bad_inputs():
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(TypeError, match="base_optimizer must be an optimizer class"):
        SAM([p], torch.optim.SGD([p], lr=0.1), lr=0.1)
    with pytest.raises(ValueError, match="SAM.step needs a closure"):
        SAM([p], torch.optim.SGD, lr=0.1).step()
    for rule, init, kwargs in RULES:
        with pytest.raises(ValueError, match="grad must have the shape of param"):
            rule(torch.zeros(3), torch.zeros(4), init(torch.zeros(3)), **kwargs)


def test_nan_gradient_propagates():
    """A NaN gradient is not hidden: it reaches θ (as in torch.optim), where a run can see it.

    Lion's direction sign(c) + 0·c is NaN there (torch.sign alone would give 0 and freeze
    the coordinate silently); LAMB's norms become NaN, and so does the whole tensor.
    """
    for cls in (Lion, LAMB):
        x = torch.ones(3, requires_grad=True)
        x.grad = torch.tensor([float("nan"), 1.0, 1.0])
        cls([x], lr=0.1).step()
        assert torch.isnan(x).any()
