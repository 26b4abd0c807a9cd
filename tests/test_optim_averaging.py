"""Weight averaging (descent.optim.averaging) against torch.optim.swa_utils and the equations.

``AveragedModel`` (SWA by default, EMA through the ``get_*_avg_fn`` factories, with and
without ``use_buffers``) is compared with torch's ``AveragedModel`` in float64 over 200
updates of a small network with BatchNorm that is being trained; ``SWALR`` with torch's
``SWALR`` over its whole anneal and beyond, both strategies; the rules with the sums they
claim to compute; ``update_bn`` with the running mean of the batch statistics.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.optim import swa_utils as tsw

import descent.optim as dopt
from descent.rules import (
    AverageState,
    average_init,
    ema_update,
    swa_anneal_alpha,
    swa_update,
    swalr_lr,
)

pytestmark = pytest.mark.usefixtures("one_thread")
UPDATES = 200


def network(seed: int = 0) -> torch.nn.Module:
    """Linear, BatchNorm (float buffers and the integer num_batches_tracked), ReLU, Linear."""
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                              torch.nn.Linear(8, 3)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return net


def averaged_pair(ours_kwargs: dict, theirs_kwargs: dict, use_buffers: bool):
    """descent's and torch's AveragedModel, updated side by side along one SGD run."""
    model = network()
    ours = dopt.AveragedModel(model, use_buffers=use_buffers, **ours_kwargs)
    theirs = tsw.AveragedModel(model, use_buffers=use_buffers, **theirs_kwargs)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    for _ in range(UPDATES):
        x = torch.randn(16, 4, generator=g, dtype=torch.float64)
        y = torch.randn(16, 3, generator=g, dtype=torch.float64)
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        ours.update_parameters(model)
        theirs.update_parameters(model)
    return model, ours, theirs


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


# -- AveragedModel ------------------------------------------------------------------------------
@pytest.mark.parametrize("use_buffers", [False, True], ids=["params", "params+buffers"])
@pytest.mark.parametrize("kind", ["swa-default", "ema-avg_fn"])
def test_averaged_model_equals_torch_bit_for_bit(kind, use_buffers):
    """The default (SWA) average and get_ema_avg_fn: the same operations as torch's on the
    CPU, so the same bits, parameters and buffers, after 200 updates."""
    if kind == "swa-default":
        ours_kwargs = theirs_kwargs = {}
    else:
        ours_kwargs = dict(avg_fn=dopt.get_ema_avg_fn(0.95))
        theirs_kwargs = dict(avg_fn=tsw.get_ema_avg_fn(0.95))
    model, ours, theirs = averaged_pair(ours_kwargs, theirs_kwargs, use_buffers)
    mine, torchs = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(torchs)                     # the same layout: n_averaged too
    for key in torchs:
        assert torch.equal(mine[key], torchs[key]), key
    assert int(ours.n_averaged) == UPDATES
    # and the average is not the model: it was really averaged
    assert rel_diff(ours.module[0].weight, model[0].weight) > 1e-5


@pytest.mark.parametrize("use_buffers", [False, True], ids=["params", "params+buffers"])
def test_ema_multi_avg_fn_equals_torchs_to_rounding(use_buffers):
    """torch's get_ema_multi_avg_fn uses lerp, descent's the textbook form: equal to
    rounding (≤ 1e-14 relative after 200 updates)."""
    ours_kwargs = dict(multi_avg_fn=dopt.get_ema_multi_avg_fn(0.9))
    theirs_kwargs = dict(multi_avg_fn=tsw.get_ema_multi_avg_fn(0.9))
    _, ours, theirs = averaged_pair(ours_kwargs, theirs_kwargs, use_buffers)
    mine, torchs = ours.state_dict(), theirs.state_dict()
    for key in torchs:
        if torchs[key].is_floating_point():
            assert rel_diff(mine[key], torchs[key]) < 1e-14, key
        else:
            assert torch.equal(mine[key], torchs[key]), key


@pytest.fixture
def float64_default():
    """torch computes get_swa_multi_avg_fn's weight 1/(n + 1) as a tensor of the *default*
    dtype: float32 unless it is set, which alone moves a float64 average by ~1e-10."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(dtype)


def test_swa_multi_avg_fn_equals_torchs_to_rounding(float64_default):
    """get_swa_multi_avg_fn: descent's running mean against torch's lerp, parameters only
    (torch's own version fails on an integer buffer: addcdiv refuses integer division)."""
    _, ours, theirs = averaged_pair(dict(multi_avg_fn=dopt.get_swa_multi_avg_fn()),
                                    dict(multi_avg_fn=tsw.get_swa_multi_avg_fn()), False)
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert rel_diff(a, b) < 1e-14, name


def test_every_avg_fn_form_gives_the_same_average():
    """avg_fn, multi_avg_fn and the default are one rule: descent's forms agree bit for bit."""
    runs = [averaged_pair(kwargs, {}, True)[1].state_dict() for kwargs in (
        {}, dict(avg_fn=dopt.get_swa_avg_fn()), dict(multi_avg_fn=dopt.get_swa_multi_avg_fn()))]
    ema = [averaged_pair(kwargs, {}, True)[1].state_dict() for kwargs in (
        dict(avg_fn=dopt.get_ema_avg_fn(0.9)), dict(multi_avg_fn=dopt.get_ema_multi_avg_fn(0.9)))]
    for family in (runs, ema):
        for other in family[1:]:
            assert all(torch.equal(family[0][k], other[k]) for k in family[0])


def test_state_dicts_load_across_libraries():
    _, ours, theirs = averaged_pair({}, {}, True)
    fresh_torch, fresh_ours = tsw.AveragedModel(network(5)), dopt.AveragedModel(network(5))
    fresh_torch.load_state_dict(ours.state_dict())
    fresh_ours.load_state_dict(theirs.state_dict())
    x = torch.randn(5, 4, dtype=torch.float64)
    for model in (ours, theirs, fresh_torch, fresh_ours):
        model.eval()
    assert torch.equal(fresh_torch(x), ours(x)) and torch.equal(fresh_ours(x), theirs(x))
    assert isinstance(ours, tsw.AveragedModel)


def test_buffers_follow_the_model_without_use_buffers():
    model, ours, _ = averaged_pair({}, {}, False)
    for mine, theirs in zip(ours.module.buffers(), model.buffers(), strict=True):
        assert torch.equal(mine, theirs)


def test_both_functions_are_refused_and_decay_is_checked():
    with pytest.raises(AssertionError, match="Only one"):
        dopt.AveragedModel(network(), avg_fn=dopt.get_swa_avg_fn(),
                           multi_avg_fn=dopt.get_swa_multi_avg_fn())
    with pytest.raises(ValueError, match=r"decay \(β\) must be in \[0, 1\], got 1\.5"):
        dopt.get_ema_multi_avg_fn(1.5)
    with pytest.raises(TypeError, match=r"decay \(β\) must be a real number"):
        dopt.get_ema_avg_fn("0.9")


# -- the rules -----------------------------------------------------------------------------------
def iterates(n: int, shape=(3, 2), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape) for _ in range(n)]


def test_swa_rule_is_the_mean_of_the_iterates():
    thetas = iterates(500)
    state = average_init()
    for k, theta in enumerate(thetas, start=1):
        state = swa_update(theta, state)
        assert state.n == k
        if k in (1, 2, 37, 500):
            np.testing.assert_allclose(state.theta_bar, np.mean(thetas[:k], axis=0),
                                       rtol=1e-12, atol=1e-14)


def test_ema_rule_is_the_exponentially_weighted_sum():
    """θ̄_n = β^{n-1} θ_1 + Σ_{k=2}^{n} (1 - β) β^{n-k} θ_k: the first iterate is copied,
    so the weights already sum to 1 (no bias correction needed)."""
    beta, thetas = 0.9, iterates(200, seed=1)
    state = average_init()
    for theta in thetas:
        state = ema_update(theta, state, decay=beta)
    n = len(thetas)
    weights = [beta ** (n - 1)] + [(1 - beta) * beta ** (n - k) for k in range(2, n + 1)]
    assert np.isclose(sum(weights), 1.0)
    expected = sum(w * theta for w, theta in zip(weights, thetas, strict=True))
    np.testing.assert_allclose(state.theta_bar, expected, rtol=1e-12, atol=1e-14)
    assert state.n == n


@pytest.mark.parametrize("rule", [swa_update, lambda p, s: ema_update(p, s, decay=0.8)],
                         ids=["swa", "ema"])
def test_rules_are_pure_copy_first_and_numpy_equals_torch(rule):
    thetas = iterates(20, seed=2)
    first = rule(thetas[0], average_init())
    assert first.theta_bar is not thetas[0] and np.array_equal(first.theta_bar, thetas[0])
    before = [t.copy() for t in thetas]
    n_state, t_state = average_init(), average_init()
    for theta in thetas:
        kept = n_state
        n_state = rule(theta, n_state)
        t_state = rule(torch.from_numpy(theta), t_state)
        assert kept.theta_bar is None or kept.theta_bar is not n_state.theta_bar
    assert all(np.array_equal(a, b) for a, b in zip(before, thetas, strict=True))
    np.testing.assert_array_equal(n_state.theta_bar, t_state.theta_bar.numpy())
    with pytest.raises(ValueError, match="shape"):
        rule(np.zeros(4), AverageState(1, np.zeros(3)))


# -- update_bn ---------------------------------------------------------------------------------
def test_update_bn_is_the_running_mean_of_the_batch_statistics():
    """update_bn sets BatchNorm's running statistics to the SWA running mean (swa_update) of
    each batch's mean and unbiased variance, computed at the averaged weights."""
    _, ours, _ = averaged_pair({}, {}, False)
    g = torch.Generator().manual_seed(3)
    loader = [torch.randn(n, 4, generator=g, dtype=torch.float64) for n in (16, 16, 16, 8)]
    dopt.update_bn(loader, ours)
    bn = ours.module[1]
    mean_state, var_state = average_init(), average_init()
    with torch.no_grad():
        for x in loader:
            h = ours.module[0](x)
            mean_state = swa_update(h.mean(dim=0), mean_state)
            var_state = swa_update(h.var(dim=0, unbiased=True), var_state)
    torch.testing.assert_close(bn.running_mean, mean_state.theta_bar, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(bn.running_var, var_state.theta_bar, rtol=1e-12, atol=1e-14)
    assert int(bn.num_batches_tracked) == len(loader)
    assert dopt.update_bn is tsw.update_bn


# -- SWALR ---------------------------------------------------------------------------------------
def recorded_rates(cls, strategy: str, anneal_epochs: int, *, before: int = 7,
                   after: int = 6) -> list[list[float]]:
    """Each group's rate at every step: a cosine first moves the rates (as in torch's SWA
    recipe, with SWALR built at the start), then SWALR anneals them."""
    groups = [{"params": [torch.zeros(1, requires_grad=True)]},
              {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.3}]
    opt = torch.optim.SGD(groups, lr=0.1)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20)
    swa = cls(opt, swa_lr=[0.05, 0.02], anneal_epochs=anneal_epochs, anneal_strategy=strategy)
    rates = []
    for step in range(before + anneal_epochs + after):
        rates.append([group["lr"] for group in opt.param_groups])
        opt.step()
        (cosine if step < before else swa).step()
    return rates


@pytest.mark.parametrize("anneal_epochs", [0, 1, 4, 10, 25])
@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_swalr_equals_torch_bit_for_bit(strategy, anneal_epochs):
    ours = recorded_rates(dopt.SWALR, strategy, anneal_epochs)
    theirs = recorded_rates(tsw.SWALR, strategy, anneal_epochs)
    assert ours == theirs
    assert ours[-1] == [0.05, 0.02]                        # it ends at η_swa, and stays


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_swalr_is_the_closed_form(strategy):
    """η_s = α_s η_swa + (1 - α_s) η_start with α_s = φ(min(1, s/S)), to rounding; the
    midpoint of the anneal is halfway for both shapes, the quarter point is not for cos."""
    S, lr_start, swa_lr = 12, 0.4, 0.05
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr_start)
    scheduler = tsw.SWALR(opt, swa_lr=swa_lr, anneal_epochs=S, anneal_strategy=strategy)
    for s in range(S + 4):
        alpha = swa_anneal_alpha(s, anneal_epochs=S, anneal_strategy=strategy)
        closed = alpha * swa_lr + (1 - alpha) * lr_start
        assert opt.param_groups[0]["lr"] == pytest.approx(closed, rel=1e-14, abs=0)
        opt.step()
        scheduler.step()
    half = swa_anneal_alpha(S // 2, anneal_epochs=S, anneal_strategy=strategy)
    quarter = swa_anneal_alpha(S // 4, anneal_epochs=S, anneal_strategy=strategy)
    assert half == pytest.approx(0.5)
    assert quarter == pytest.approx(0.25 if strategy == "linear" else (1 - np.cos(np.pi / 4)) / 2)
    assert swalr_lr(3, 0.4, swa_lr=0.05, anneal_epochs=0) == 0.05   # S = 0: no anneal


@pytest.mark.parametrize("kwargs, message", [
    (dict(swa_lr=-0.1), r"swa_lr \(η_swa\) must be in \[0, ∞\), got -0\.1"),
    (dict(swa_lr=[0.1, -1.0]), r"swa_lr\[1\] \(η_swa\) must be in \[0, ∞\)"),
    (dict(swa_lr=0.1, anneal_epochs=-1), r"anneal_epochs \(S\) must be an integer >= 0"),
    (dict(swa_lr=0.1, anneal_epochs=2.5), r"anneal_epochs \(S\) must be an integer"),
    (dict(swa_lr=0.1, anneal_strategy="cosine"), r"anneal_strategy \(φ\) must be 'cos' or"),
])
def test_swalr_bad_arguments_name_argument_symbol_and_value(kwargs, message):
    groups = [{"params": [torch.zeros(1, requires_grad=True)]},
              {"params": [torch.zeros(1, requires_grad=True)]}]
    opt = torch.optim.SGD(groups, lr=0.1)
    with pytest.raises((ValueError, TypeError), match=message):
        dopt.SWALR(opt, **kwargs)


def test_swalr_state_dict_round_trip():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    first = dopt.SWALR(opt, swa_lr=0.05, anneal_epochs=6, anneal_strategy="linear")
    for _ in range(3):
        opt.step()
        first.step()
    saved = first.state_dict()
    opt2 = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    opt2.load_state_dict(opt.state_dict())
    second = dopt.SWALR(opt2, swa_lr=0.05)
    second.load_state_dict(saved)
    for _ in range(5):
        for o, s in ((opt, first), (opt2, second)):
            o.step()
            s.step()
        assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]
