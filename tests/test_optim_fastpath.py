"""``fused=True``: the traced rule compiled by ``torch.compile`` gives the default path's numbers.

Compilation dominates the time here (a few seconds per variant on 2 cores), so the problems
are tiny and every test shares the same two-group layout (one compiled graph per rule and
dtype).
"""

from __future__ import annotations

import warnings

import pytest
import torch

import descent.optim._fused as fused_module
from descent.optim import SGD, Adam, AdamW

STEPS = 25


@pytest.fixture(autouse=True, scope="module")
def compile_in_process():
    """Compile in this process: starting inductor's pool of compile workers costs more
    (≈ 15 s on 2 cores) than it saves on these few small kernels."""
    with torch._inductor.config.patch(compile_threads=1):
        yield

CASES = [
    (SGD, dict(lr=0.05, momentum=0.9, weight_decay=1e-3), dict(lr=0.02, momentum=0.5,
                                                               nesterov=True)),
    (Adam, dict(lr=1e-2, weight_decay=1e-2), dict(lr=3e-2, betas=(0.8, 0.99))),
    (AdamW, dict(lr=1e-2, amsgrad=True), dict(lr=3e-2, weight_decay=0.1)),
]


def make_params(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_()
            for s in [(3, 4), (5,), (2, 3), (4,)]]


def loss_fn(params):
    return sum(((p - 0.5) ** 2).sum() + 0.2 * torch.sin(2 * p).sum() for p in params)


def run(cls, kwargs, group2, *, fused, dtype=torch.float64, steps=STEPS, maximize=False):
    params = make_params(dtype)
    opt = cls([{"params": params[:2]}, {"params": params[2:], **group2}], fused=fused,
              maximize=maximize, **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        (-loss_fn(params) if maximize else loss_fn(params)).backward()
        opt.step()
    return params, opt


@pytest.mark.parametrize("cls, kwargs, group2", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_fused_equals_default_in_float64(cls, kwargs, group2):
    expected, reference = run(cls, kwargs, group2, fused=False)
    actual, opt = run(cls, kwargs, group2, fused=True)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-13, atol=0)
    # The state is stored as the default path stores it, under torch.optim's keys.
    for p, q in zip(actual, expected, strict=True):
        for key, value in reference.state[q].items():
            torch.testing.assert_close(opt.state[p][key], value, rtol=1e-13, atol=0)


def test_fused_equals_default_in_float32():
    # Inductor evaluates the rule's expressions in the same order and the same precision as
    # eager; the remaining difference is the vectorised sqrt/division (≤ 1 ulp each), which 25
    # Adam steps amplify to a few ulps of float32 (observed ≤ 1e-7 relative).
    cls, kwargs, group2 = CASES[1]
    expected, _ = run(cls, kwargs, group2, fused=False, dtype=torch.float32)
    actual, _ = run(cls, kwargs, group2, fused=True, dtype=torch.float32)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-6, atol=1e-7)


def test_fused_maximize_and_params_without_grad():
    runs = []
    for fused in (False, True):
        params = make_params(torch.float64)
        opt = Adam([{"params": params[:2]}, {"params": params[2:]}], lr=1e-2, maximize=True,
                   fused=fused)
        for _ in range(3):
            opt.zero_grad()
            (-loss_fn(params[:3])).backward()          # params[3] gets no gradient
            opt.step()
        assert params[3] not in opt.state
        runs.append(params)
    for a, e in zip(*runs, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-13, atol=0)
    torch.testing.assert_close(runs[1][3], make_params(torch.float64)[3], rtol=0, atol=0)


def test_fused_state_dict_continues_on_the_default_path():
    cls, kwargs, group2 = CASES[1]
    expected, _ = run(cls, kwargs, group2, fused=False, steps=10)
    params, opt = run(cls, kwargs, group2, fused=True, steps=5)
    saved = opt.state_dict()
    opt = cls([{"params": params[:2]}, {"params": params[2:], **group2}], **kwargs)
    opt.load_state_dict(saved)
    for group in opt.param_groups:
        group["fused"] = False
    for _ in range(5):
        opt.zero_grad()
        loss_fn(params).backward()
        opt.step()
    for a, e in zip(params, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-13, atol=0)


def test_falls_back_with_a_warning_when_compilation_fails(monkeypatch):
    def no_compiler(rule):
        def fail(*args):
            raise RuntimeError("no C++ compiler found")
        return fail

    monkeypatch.setattr(fused_module, "compiled_program", no_compiler)
    monkeypatch.setattr(fused_module, "compiled_rule", no_compiler)
    cls, kwargs, group2 = CASES[0]
    expected, _ = run(cls, kwargs, group2, fused=False, steps=5)
    with pytest.warns(RuntimeWarning, match=r"SGD\(fused=True\): torch.compile could not "
                                            r"compile sgd_update .*no C\+\+ compiler"):
        actual, _ = run(cls, kwargs, group2, fused=True, steps=5)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=0, atol=0)

    with warnings.catch_warnings():  # warned once per optimizer, not once per step
        warnings.simplefilter("error")
        params = make_params(torch.float64)
        opt = SGD(params, lr=0.1, fused=True)
        with pytest.warns(RuntimeWarning):
            loss_fn(params).backward()
            opt.step()
        opt.step()
