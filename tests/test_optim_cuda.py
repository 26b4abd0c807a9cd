"""descent.optim on CUDA: the traced program, torch.optim's numbers, and the fused path.

Run by ``make gpu-check`` on a machine with CUDA (``-m cuda``); skipped elsewhere. This file
imports only torch, numpy and the library (no hypothesis, no nbgrader), so that it runs on a
bare CUDA machine with ``PYTHONPATH=lib``.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from optim_problems import SPECS, build, max_rel_diff, sample_setup

from descent.optim import _program

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
TRACED = [spec for spec in SPECS if spec.ours.traced]
CUDA = torch.device("cuda")


def on_cuda(params):
    return [p.detach().to(CUDA).requires_grad_() for p in params]


def set_grads(problem, params, step, maximize):
    """The gradient of the step-th loss, computed on the CPU (where the problem's data
    lives) and put on the CUDA parameters."""
    cpu = [p.detach().cpu().requires_grad_() for p in params]
    loss = problem.loss(cpu, step)
    (-loss if maximize else loss).backward()
    for p, q in zip(params, cpu, strict=True):
        p.grad = q.grad.to(CUDA)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("foreach", [None, False], ids=["foreach", "one-by-one"])
@pytest.mark.parametrize("spec", TRACED, ids=lambda s: s.name)
def test_the_program_on_cuda_is_the_rule_bit_for_bit(spec, foreach, dtype):
    """The traced program (multi-tensor by default on CUDA, or tensor by tensor with CPU
    numbers) against the bare rule on the same device, tensor by tensor."""
    problem, kwargs, group2, maximize = sample_setup(spec, 2)
    params = on_cuda(problem.init_params(dtype))
    initial = [p.detach().clone() for p in params]
    opt = build(spec.ours, params, kwargs, group2)
    for group in opt.param_groups:
        group["foreach"] = foreach
    grads_per_step = []
    for step in range(10):
        set_grads(problem, params, step, maximize)
        grads_per_step.append([p.grad.clone() for p in params])
        opt.step()
    groups = [g for g in opt.param_groups for _ in g["params"]]
    copies = initial
    states = [opt.init_state(c, g) for c, g in zip(copies, groups, strict=True)]
    for grads in grads_per_step:
        for i, group in enumerate(groups):
            grad = -grads[i] if maximize else grads[i]
            copies[i], states[i] = type(opt).rule(copies[i], grad, states[i],
                                                  **opt.rule_kwargs(group))
    for p, e in zip(params, copies, strict=True):
        assert torch.equal(p.detach(), e)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_equal_to_torch_on_cuda_over_150_steps(spec):
    """float64, 150 steps of a problem still descending, two groups: within 1e-9 of the
    same torch.optim class on the same device (its CUDA default is the foreach path)."""
    problem, kwargs, group2, maximize = sample_setup(spec, 0)
    results = []
    for cls in (spec.ours, spec.theirs):
        params = on_cuda(problem.init_params())
        opt = build(cls, params, kwargs, group2)
        for step in range(150):
            set_grads(problem, params, step, maximize)
            opt.step()
        results.append([p.detach().cpu() for p in params])
    assert max_rel_diff(*results) <= 1e-9


@pytest.mark.parametrize("spec", TRACED, ids=lambda s: s.name)
def test_one_step_from_torchs_state_on_cuda(spec):
    """Half a run with torch.optim on CUDA, its state loaded (deep-copied) into descent and
    into a second torch optimizer: the next step agrees to 1e-12 in float64."""
    problem, kwargs, group2, maximize = sample_setup(spec, 4)
    params = on_cuda(problem.init_params())
    theirs = build(spec.theirs, params, kwargs, group2)
    for step in range(20):
        set_grads(problem, params, step, maximize)
        theirs.step()
    saved = theirs.state_dict()
    stepped = []
    for cls in (spec.ours, spec.theirs):
        copies = [p.detach().clone().requires_grad_() for p in params]
        for c, p in zip(copies, params, strict=True):
            c.grad = p.grad.clone()
        opt = build(cls, copies, {}, {})
        opt.load_state_dict(copy.deepcopy(saved))
        opt.step()
        stepped.append(copies)
    assert max_rel_diff(*stepped) <= 1e-12


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD"])
def test_fused_on_cuda_equals_the_default_path(name):
    """fused=True compiles the traced rule (Triton on CUDA); it may contract a product and
    a sum into one multiply-add, so the numbers agree to rounding, not bit for bit."""
    spec = next(s for s in SPECS if s.name == name)
    problem, kwargs, group2, maximize = sample_setup(spec, 5)
    results = []
    for fused in (False, True):
        params = on_cuda(problem.init_params())
        opt = build(spec.ours, params, {**kwargs, "fused": fused}, group2)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)     # no silent fallback
            for step in range(25):
                set_grads(problem, params, step, maximize)
                opt.step()
        results.append([p.detach().cpu() for p in params])
    assert max_rel_diff(*results) <= 1e-12


def test_the_fusions_are_checked_on_cuda():
    """Which addcdiv fusions give the unfused bits on this GPU (printed for the record)."""
    for dtype in (torch.float32, torch.float64):
        for multi in (False, True):
            found = _program.exact_fusions(CUDA, dtype, multi)
            assert found <= set(_program.FUSIONS)
            print(f"CUDA {dtype} {'multi-tensor' if multi else 'one by one'}: {sorted(found)}")
