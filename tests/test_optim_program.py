"""The default path of descent.optim: the rule traced once per group, run in place.

Every way the traced program runs (tensor by tensor, through ``torch._foreach_*`` with 0-d
tensor numbers as on the CPU, with float numbers and the fusions a GPU allows) must give
the numbers of calling the pure rule tensor by tensor, bit for bit; rules the tracer cannot
follow must run eagerly with the same result; and a step must not allocate.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from optim_problems import SPECS, build, sample_setup
from torch.utils._python_dispatch import TorchDispatchMode

import descent.optim as dopt
from descent import _arrays as xp
from descent.optim import _program
from descent.optim._base import RuleOptimizer

IDS = [spec.name for spec in SPECS]
pytestmark = pytest.mark.usefixtures("one_thread")


def rule_replay(opt, initial, grads_per_step, maximize):
    """θ after replaying the gradients through the bare rule, tensor by tensor."""
    groups = [g for g in opt.param_groups for _ in g["params"]]
    copies = [p.clone() for p in initial]
    states = [opt.init_state(c, g) for c, g in zip(copies, groups, strict=True)]
    for grads in grads_per_step:
        for i, group in enumerate(groups):
            grad = -grads[i] if maximize else grads[i]
            copies[i], states[i] = type(opt).rule(copies[i], grad, states[i],
                                                  **opt.rule_kwargs(group))
    return copies


def run_wrapper(spec, seed, dtype, foreach, steps=12):
    problem, kwargs, group2, maximize = sample_setup(spec, seed)
    params = problem.init_params(dtype)
    initial = [p.detach().clone() for p in params]
    opt = build(spec.ours, params, kwargs, group2)
    for group in opt.param_groups:
        group["foreach"] = foreach
    grads_per_step = []
    for step in range(steps):
        opt.zero_grad()
        loss = problem.loss(params, step)
        (-loss if maximize else loss).backward()
        grads_per_step.append([p.grad.clone() for p in params])
        opt.step()
    return params, rule_replay(opt, initial, grads_per_step, maximize), opt


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("foreach", [False, True, None], ids=["one-by-one", "foreach", "auto"])
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_every_path_is_the_rule_bit_for_bit(spec, foreach, dtype):
    for seed in (0, 1):
        params, expected, _ = run_wrapper(spec, seed, dtype, foreach)
        for p, e in zip(params, expected, strict=True):
            assert torch.equal(p.detach(), e), (spec.name, seed)


def test_the_traced_path_runs_for_the_elementwise_rules():
    """Not a silent fallback: SGD, Adagrad, RMSprop, Adadelta, Adam(W) and Lion are traced;
    LAMB, Muon and NAdam (norms, matrix products, a scalar state) are not."""
    traced = {spec.name for spec in SPECS if spec.ours.traced} | {"Lion"}
    assert traced == {"SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Lion"}
    for spec in SPECS:
        if not spec.ours.traced:
            continue
        _, _, opt = run_wrapper(spec, 0, torch.float64, None, steps=3)
        assert opt._engine.plans and not opt._engine.refused, spec.name


# -- the multi-tensor program as a GPU runs it, checked on the CPU --------------------------------
@pytest.mark.parametrize("fusions", [frozenset(), frozenset({"quotient"})],
                         ids=["none", "quotient"])
@pytest.mark.parametrize("spec", [s for s in SPECS if s.ours.traced], ids=lambda s: s.name)
def test_the_gpu_form_of_the_program_is_the_rule_bit_for_bit(spec, fusions):
    """On CUDA the program runs through torch._foreach_* with float numbers (no 0-d tensors)
    and without the fusions whose operands broadcast: that form, run here on the CPU."""
    problem, kwargs, group2, maximize = sample_setup(spec, 11)
    params = problem.init_params()
    opt = build(spec.ours, params, kwargs, {})
    group = opt.param_groups[0]
    states = [opt.init_state(p.detach(), group) for p in params]
    kinds = tuple("number" if f == "step" else "none" if v is None else "tensor"
                  for f, v in zip(opt.State._fields, states[0], strict=True))
    found = _program.trace(type(opt).rule, opt.State._fields, kinds, (0,),
                           opt.rule_kwargs(group), maximize, opt.State, symbolic=True)
    program = _program.program_for(found.structure, fusions)
    run = program.foreach(scalar_tensors=False)
    assert run is not None
    constants, _ = found.evaluate(0, opt.rule_kwargs(group))
    thetas = [p.detach().clone() for p in params]
    grads = [torch.randn_like(t) for t in thetas]
    tensors = [[s for s in state if torch.is_tensor(s)] for state in states]
    columns = [[t.clone() for t in column] for column in zip(*tensors, strict=True)]
    new = [[torch.empty_like(t) for t in thetas] for _ in program.new_fields]
    with torch.no_grad():
        run(thetas, grads, *columns, *new, (), constants, torch.ones((), dtype=torch.float64),
            torch.full((), -0.0, dtype=torch.float64))
    for i, (theta, grad, state) in enumerate(zip(params, grads, states, strict=True)):
        expected, expected_state = type(opt).rule(theta.detach(), -grad if maximize else grad,
                                                  state, **opt.rule_kwargs(group))
        assert torch.equal(thetas[i], expected)
        got = iter(column[i] for column in columns)
        created = iter(column[i] for column in new)
        for value, before in zip(expected_state, state, strict=True):
            if torch.is_tensor(before):
                assert torch.equal(next(got), value)
            elif torch.is_tensor(value):                # a buffer the first step creates
                assert torch.equal(next(created), value)


# -- what the planner must get right ---------------------------------------------------------
class PairState(NamedTuple):
    step: int
    a: Any
    b: Any


def swap_update(param, grad, state: PairState, *, lr: float):
    """The old a is read after the new a exists; a and b trade places; t enters a number."""
    t = state.step + 1
    a = state.b * 0.5 + grad                       # new a from the old b ...
    b = state.a * (1 - 0.5 ** t)                   # ... new b from the old a
    return param - lr * (state.a + a) / (xp.sqrt(b * b) + 1.0), PairState(t, b, a)


def branchy_update(param, grad, state: PairState, *, lr: float):
    """Branches on the step count: a guarded trace, traced again when t passes 1."""
    t = state.step + 1
    scale = 1.0 if t == 1 else 0.5
    return param - (lr * scale) * grad, PairState(t, state.a + grad, state.b)


def peeking_update(param, grad, state: PairState, *, lr: float):
    """Reads a tensor's value in Python: cannot be traced at all."""
    sign = 1.0 if float(grad.sum()) >= 0 else -1.0
    return param - lr * sign * grad, PairState(state.step + 1, state.a, state.b)


def make_optimizer(rule):
    class Pair(RuleOptimizer):
        State = PairState
        hyperparameters = ("lr",)

        def __init__(self, params, lr=0.1, foreach=None):
            super().__init__(params, dict(lr=lr, foreach=foreach))

        def init_state(self, param, group):
            return PairState(0, torch.ones_like(param), torch.full_like(param, 2.0))

    Pair.rule = staticmethod(rule)
    return Pair


@pytest.mark.parametrize("rule", [swap_update, branchy_update, peeking_update],
                         ids=lambda r: r.__name__)
@pytest.mark.parametrize("foreach", [False, True])
def test_rules_that_test_the_planner_equal_the_reference_loop(rule, foreach):
    cls = make_optimizer(rule)
    g = torch.Generator().manual_seed(3)
    shapes = [(3, 4), (5,), (20_000,)]               # small ones and one run tensor by tensor
    results = []
    for path in ("traced", "reference"):
        params = [torch.randn(s, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
                  .requires_grad_() for i, s in enumerate(shapes)]
        opt = cls(params, foreach=foreach)
        g.manual_seed(3)
        for _ in range(4):
            for p in params:
                p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if path == "traced":
                opt.step()
            else:
                with torch.no_grad():
                    opt.step_group(opt.param_groups[0])
        results.append((params, opt))
    (traced, opt), (reference, ref_opt) = results
    for a, b in zip(traced, reference, strict=True):
        assert torch.equal(a.detach(), b.detach())
    for a, b in zip(traced, reference, strict=True):
        for key in ("step", "a", "b"):
            assert torch.equal(opt.state[a][key], ref_opt.state[b][key])
    refused = bool(opt._engine.refused)
    assert refused == (rule is peeking_update)


def test_the_numbers_are_symbolic_so_one_trace_serves_every_step_and_learning_rate():
    p = torch.zeros(3, requires_grad=True)
    opt = dopt.Adam([p], lr=0.1, foreach=False)
    traced = []
    real_trace = _program.trace

    def counting(*args, **kwargs):
        traced.append(kwargs["symbolic"])
        return real_trace(*args, **kwargs)

    _program.trace = counting
    try:
        for step in range(30):
            opt.param_groups[0]["lr"] = 0.1 * 0.9 ** step      # a schedule: a new lr each step
            p.grad = torch.ones(3)
            opt.step()
    finally:
        _program.trace = real_trace
    assert traced == [True]                                    # traced once, symbolically
    assert len(opt._engine.plans) == 1 and len(opt._engine.traces) == 1
    (plan,) = opt._engine.plans.values()
    source = plan.trace.numbers.source
    assert "h_beta1 ** x0" in source and "h_lr / " in source   # β₁ᵗ and η/(1-β₁ᵗ) per step
    constants, (t,) = plan.trace.evaluate(4, opt.rule_kwargs(opt.param_groups[0]))
    assert t == 5 and constants[-1] == 0.1 * 0.9 ** 29 / (1 - 0.9 ** 5)


def test_a_branch_on_a_hyperparameter_is_guarded():
    """SGD branches on ``weight_decay != 0``: turning weight decay on mid-run makes the trace
    stale, the rule is traced again, and the numbers follow the reference loop."""
    class Reference(dopt.SGD):
        traced = False

    results = []
    for cls in (dopt.SGD, Reference):
        p = torch.linspace(-1, 1, 5, dtype=torch.float64, requires_grad=True)
        opt = cls([p], lr=0.1, momentum=0.9)
        for step in range(6):
            opt.param_groups[0]["weight_decay"] = 0.0 if step < 3 else 0.5
            opt.param_groups[0]["dampening"] = 0.0 if step != 4 else 0.25
            p.grad = torch.cos(p.detach() * (step + 1))
            opt.step()
        results.append(p.detach())
    assert torch.equal(*results)


# -- in place ------------------------------------------------------------------------------------
class CountAllocations(TorchDispatchMode):
    """Operations that return a new tensor of more than one element (not in place, no out=)."""

    def __init__(self):
        super().__init__()
        self.allocated = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        in_place = func._schema.name.endswith("_") or "out" in kwargs or any(
            arg.alias_info is not None and arg.alias_info.is_write
            for arg in func._schema.arguments)
        if not in_place and isinstance(out, torch.Tensor) and out.numel() > 1:
            self.allocated.append(str(func))
        return out


@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)), ("Adam", {}), ("AdamW", {}),
    ("RMSprop", dict(momentum=0.5, centered=True)), ("Adagrad", {}),
])
def test_a_step_allocates_no_tensor(name, kwargs):
    params = [torch.randn(64, 300, requires_grad=True), torch.randn(40_000, requires_grad=True)]
    opt = getattr(dopt, name)(params, **kwargs)
    for _ in range(2):                                  # state and scratch exist afterwards
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    with CountAllocations() as counter:
        opt.step()
    assert counter.allocated == []


def test_scratch_is_shared_and_not_in_the_state_dict():
    params = [torch.randn(n, requires_grad=True) for n in (30_000, 50_000, 20_000)]
    opt = dopt.Adam(params)
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    (flat,) = opt._engine.scratch.values()
    assert flat.numel() == 50_000                      # one buffer, the largest tensor's size
    saved = opt.state_dict()
    assert set(saved) == {"state", "param_groups"}
    assert all(set(s) == {"step", "exp_avg", "exp_avg_sq"} for s in saved["state"].values())


def test_numbers_are_passed_exactly():
    """A 0-d tensor of θ's dtype is the Python float torch would use: same bits."""
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(1000, generator=g, dtype=dtype)
        engine = _program.Engine()
        values = (0.1, 1 / 3, 0.999, 1e-8, np.float64(2.5), 7)
        c, f = engine.scalars(tuple(float(v) for v in values), dtype)
        for tensor, value in zip(c, values, strict=True):
            assert torch.equal(x * tensor, x * value)
            assert torch.equal(x / tensor, x / value)


# -- the layout kept between steps notices every change -------------------------------------
def test_changes_between_steps_are_seen_as_the_reference_loop_sees_them():
    """Each mutation a training loop may make between steps, on the traced path and on the
    reference loop (``traced = False``): the same numbers, bit for bit."""
    class Reference(dopt.Adam):
        traced = False

    results = []
    for cls in (dopt.Adam, Reference):
        g = torch.Generator().manual_seed(0)
        params = [torch.randn(s, generator=g, dtype=torch.float64).requires_grad_()
                  for s in [(3, 4), (5,), (20_000,), (7,)]]
        opt = cls(params[:3], lr=0.05)

        def step(active, opt=opt, params=params, g=g):
            for i, p in enumerate(params):
                p.grad = (torch.randn(p.shape, generator=g, dtype=torch.float64)
                          if i in active else None)
            opt.step()

        step({0, 1, 2})
        step({0, 2})                                  # a gradient disappears ...
        step({0, 1, 2})                               # ... and comes back (its t lags)
        opt.param_groups[0]["lr"] = 0.01              # a scheduler's write
        step({0, 1, 2})
        opt.state[params[0]]["exp_avg"] = torch.ones(3, 4, dtype=torch.float64)
        step({0, 1, 2})                               # a state tensor replaced
        opt.param_groups[0]["foreach"] = True         # another path, the same numbers
        step({0, 1, 2})
        opt.add_param_group({"params": [params[3]], "lr": 0.2})
        step({0, 1, 2, 3})
        saved = copy.deepcopy(opt.state_dict())
        step({0, 1, 2, 3})
        opt.load_state_dict(saved)                    # back one step, new state tensors
        step({0, 1, 2, 3})
        results.append([p.detach().clone() for p in params])
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


def test_the_fusion_check_rejects_a_kernel_with_other_bits(monkeypatch):
    """A fused kernel is used only where it gives the unfused bits; a kernel that
    reassociates (s·b)/c into s·(b/c), or adds +0 (losing a -0), must fail the check."""
    cpu = torch.device("cpu")
    for dtype in (torch.float32, torch.float64):
        for multi in (False, True):
            assert _program._fusion_is_exact("quotient", cpu, dtype, multi)
            assert _program._fusion_is_exact("product", cpu, dtype, multi)
    real_addcdiv, real_addcmul = torch.addcdiv, torch.addcmul
    monkeypatch.setattr(torch, "addcdiv", lambda a, b, c, *, value: a + value * (b / c))
    assert not _program._fusion_is_exact("quotient", cpu, torch.float64, False)
    monkeypatch.setattr(torch, "addcdiv", real_addcdiv)
    monkeypatch.setattr(torch, "addcmul",
                        lambda a, b, c, *, value: real_addcmul(a.abs(), b, c, value=value))
    assert not _program._fusion_is_exact("product", cpu, torch.float32, False)


# the reference loop calls step_group, not step(), which the scheduler cannot see
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_a_numpy_learning_rate_is_traced_like_a_float():
    """A LambdaLR whose factor is computed with NumPy leaves a numpy.float64 in the group's
    lr; the traced path must run it (one symbolic trace) and give the reference loop's bits."""
    g = torch.Generator().manual_seed(3)
    start = [torch.randn(50, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    grads = [[torch.randn(50, 4, generator=g, dtype=torch.float64) for _ in start]
             for _ in range(12)]
    results = []
    for reference in (False, True):
        params = [p.clone().requires_grad_() for p in start]
        opt = dopt.Adam(params, lr=0.01)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: (1 - 0.9 ** (k + 1)) / np.sqrt(1 - 0.999 ** (k + 1)))
        for step_grads in grads:
            assert isinstance(opt.param_groups[0]["lr"], np.floating)
            for p, grad in zip(params, step_grads):
                p.grad = grad.clone()
            if reference:
                with torch.no_grad():
                    opt.step_group(opt.param_groups[0])
            else:
                opt.step()
            schedule.step()
        results.append(params)
        if not reference:
            assert len(opt._engine.plans) == 1 and not opt._engine.refused
    assert all(torch.equal(a, b) for a, b in zip(*results))
