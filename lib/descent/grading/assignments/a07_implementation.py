r"""Checks for assignment 07-implementation: a complete ``torch.optim.Optimizer`` (AdamW).

The student writes ``class AdamW(torch.optim.Optimizer)`` with ``__init__`` and ``step``;
everything else (``param_groups``, ``state``, ``state_dict``, ``zero_grad``) comes from the base
class when the state lives in ``self.state[p]``. The update is chapter 5's AdamW:

.. math::

    \theta &\leftarrow \theta\,(1-\eta\lambda), \quad
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\\
    \theta_t &= \theta - \frac{\eta}{1-\beta_1^t}\,
        \frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}

The parts, and what each compares (every check re-runs the student's class under the
grader's control, on a small MLP the grader builds):

- 7.1 the constructor: torch.optim.AdamW's keywords and defaults, ``ValueError`` for invalid
  values, no state before the first step;
- 7.2 the update: parameters after each of 100 steps against ``torch.optim.AdamW`` (float64:
  relative 1e-9; float32: 1e-4, :data:`~descent.grading.compare.TOL32`); a difference that
  matches a catalogued variant (:func:`descent.grading.catalogue.adam_variant`) is named;
- 7.3 param groups, parameters without gradients and the closure, each compared with the
  student's *own* class used another way (two groups = two optimizers; a parameter with
  ``grad = None`` is untouched and gets no state; ``step(closure)`` = backward, then
  ``step()``), so a mistake in the update costs 7.2, not 7.3;
- 7.4 the state dict: a run interrupted at step 50 (``state_dict`` → fresh optimizer →
  ``load_state_dict``) equals the uninterrupted run of the same class;
- 7.5 a training run on the best device (:mod:`descent.grading.training`) against
  ``torch.optim.AdamW``.

No delegation: besides ``torch.optim`` and ``descent.optim``/``descent.rules`` (forbidden by
the sandbox), torch's functional Adam kernels are references here (:func:`_no_functional_adam`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence

import numpy as np
import torch

from descent.grading import catalogue, sandbox, training
from descent.grading.compare import TOL32, TOL64, allclose, first_difference
from descent.grading.feedback import PASS, Verdict, fail, passed

PART_INIT = ("7.1", "the constructor: torch.optim.AdamW's keywords, defaults and checks")
PART_STEP = ("7.2", "eq. (AdamW), 100 steps against torch.optim.AdamW")
PART_GROUPS = ("7.3", "param groups, parameters without gradients, the closure")
PART_STATE = ("7.4", "state_dict / load_state_dict in the middle of a run")
PART_TRAIN = ("7.5", "a training run on the best device, against torch.optim.AdamW")

DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}
HYPERS = ({"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},
          {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1})

# torch's functional Adam/AdamW kernels: every path of torch.optim.Adam(W).step ends in one.
_KERNELS = (("torch.optim.adam", "_single_tensor_adam"), ("torch.optim.adam", "_multi_tensor_adam"),
            ("torch.optim.adam", "_fused_adam"), ("torch.optim.adamw", "adamw"))


def _no_functional_adam():
    """Within the block, torch's functional Adam kernels are references (delegation)."""
    return sandbox.forbidding(functions=_KERNELS)


def _name(cls) -> str:
    return getattr(cls, "__name__", "your class")


def _describe_class(cls) -> dict:
    """Plain facts about the student's class: read where the class is (through
    :func:`sandbox.call`, so they come back as plain data), judged by the checks."""
    from descent import optim
    is_class = inspect.isclass(cls)
    borrowed = [f"{base.__module__}.{base.__qualname__}"
                for base in (torch.optim.AdamW, torch.optim.Adam, optim.AdamW, optim.Adam)
                if is_class and issubclass(cls, base)]
    try:
        parameters = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        parameters = {}
    return {"optimizer": is_class and issubclass(cls, torch.optim.Optimizer),
            "borrowed": borrowed[0] if borrowed else None,
            "defaults": {key: [parameters[key].default] for key in DEFAULTS if key in parameters}}


def _class_facts(cls) -> dict:
    facts = sandbox.call(_describe_class, cls).value
    return facts if isinstance(facts, dict) else {"optimizer": False, "borrowed": None,
                                                  "defaults": {}}


def _not_a_subclass(cls, part) -> dict:
    """Subclassing torch's (or the library's) Adam/AdamW is delegation: say so plainly.
    Returns the class's facts (:func:`_describe_class`)."""
    facts = _class_facts(cls)
    if facts["borrowed"]:
        fail(f"no points for this part: {_name(cls)} subclasses {facts['borrowed']}, the "
             "reference this assignment asks you to write; subclass torch.optim.Optimizer.",
             "delegation").raise_for(*part)
    return facts


def _optimizer_facts(opt) -> dict:
    """What a freshly constructed optimizer holds: its first group's settings, its state size."""
    groups = getattr(opt, "param_groups", None)
    group = {k: v for k, v in groups[0].items() if k != "params"} if groups else {}
    return {"group": group, "state": len(opt.state)}


def _raise_if_failed(out: sandbox.Outcome, name: str, part, where: str = "") -> None:
    if out.delegated:
        fail(f"no points for this part: {name} calls {', '.join(out.delegated)}, the "
             "reference this assignment asks you to write yourself.", "delegation"
             ).raise_for(*part)
    if out.error:
        hint = ""
        if "does not require grad" in out.error:
            hint = (" step() runs under @torch.no_grad(): evaluate the closure inside "
                    "`with torch.enable_grad():`, as torch.optim does.")
        elif out.error.startswith("ZeroDivisionError"):
            hint = (" A bias correction 1 − βᵗ is 0, i.e. t = 0 on the first update: the step "
                    "counter starts at 0 and is incremented *before* use, so the first update "
                    "has t = 1 in m̂_t = m_t/(1 − β₁ᵗ).")
        fail(f"{name} raised {out.error}{where}.{hint}", "exception").raise_for(*part)


# -- the grader's problem: a small MLP, a fixed batch --------------------------------------

def problem(seed: int, dtype=torch.float64, widths: Sequence[int] = (6, 16, 3),
            examples: int = 32):
    """A fresh MLP (Linear-Tanh-Linear) and a regression batch, from the grader's seed."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(examples, widths[0], generator=gen, dtype=dtype)
    y = torch.randn(examples, widths[-1], generator=gen, dtype=dtype)
    torch.manual_seed(seed + 1000)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=False)):
        layers.append(torch.nn.Linear(a, b, dtype=dtype))
        if i < len(widths) - 2:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers), x, y


def _flat(model) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double().numpy()


def trajectory(make_optimizer: Callable, seed: int, dtype=torch.float64, steps: int = 100,
               *, groups: Callable | None = None, start: int = 0,
               state: dict | None = None, model=None) -> np.ndarray:
    """The parameters (flattened) after each of ``steps`` steps, shape (steps, P).

    ``groups(model)`` gives the ``params`` argument (default ``model.parameters()``). This is
    plain grader code; the caller decides whether it runs in the sandbox.
    """
    if model is None:
        model, x, y = problem(seed, dtype)
    else:
        _, x, y = problem(seed, dtype)
    optimizer = make_optimizer(groups(model) if groups else model.parameters())
    if state is not None:
        optimizer.load_state_dict(state)
    out = []
    for _ in range(start, steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        out.append(_flat(model))
    return np.array(out)


def _torch_adamw(**hyper) -> Callable:
    return functools.partial(torch.optim.AdamW, **hyper)


class _VariantAdamW(torch.optim.Optimizer):
    """Trusted: an optimizer that applies one catalogued variant of AdamW per tensor."""

    def __init__(self, params, rule, init, **hyper):
        self.rule, self.init = rule, init
        super().__init__(params, hyper)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p].get("s") or self.init(p)
                new, self.state[p]["s"] = self.rule(p.clone(), p.grad, state, lr=group["lr"],
                                                    beta1=b1, beta2=b2, eps=group["eps"],
                                                    weight_decay=group["weight_decay"])
                p.copy_(new)


def _decay_after(param, grad, state, *, lr, beta1, beta2, eps, weight_decay):
    """Variant: the decoupled decay applied to θ *after* the Adam step (torch decays first)."""
    new, state = catalogue.adam_variant(param, grad, state, lr=lr, beta1=beta1, beta2=beta2,
                                        eps=eps, weight_decay=0.0, decoupled=True)
    return new * (1 - lr * weight_decay), state


def mistakes() -> list[tuple[str, str, Callable]]:
    """(name, explanation, variant rule) for the AdamW mistakes this part names."""
    out = [(m.name, m.explain, m.update) for m in catalogue.adam_spec(decoupled=True).mistakes]
    out.append(("decay-after-step", "the weight decay is applied after the Adam step: you "
                "shrink the *updated* parameter. AdamW (torch) decays first, θ ← θ(1 − ηλ), "
                "then takes the Adam step from the decayed θ", _decay_after))
    return out


def _diagnose(got: np.ndarray, seed: int, dtype, hyper: dict, tol) -> Verdict | None:
    """The catalogued mistake whose run matches the student's, as a verdict; else None."""
    for name, explain, rule in mistakes():
        variant = trajectory(functools.partial(_VariantAdamW, rule=rule,
                                               init=catalogue.adam_init_variant, **hyper),
                             seed, dtype, len(got))
        if allclose(got, variant, tol):
            return fail(explain, name)
    return None


# -- 7.1 the constructor -------------------------------------------------------------------

def check_init(cls: type) -> None:
    part, name = PART_INIT, _name(cls)
    facts = _not_a_subclass(cls, part)
    if not facts["optimizer"]:
        fail(f"{name} must be a class that subclasses torch.optim.Optimizer.", "not-optimizer"
             ).raise_for(*part)
    for key, default in DEFAULTS.items():
        found = facts["defaults"].get(key)
        if found is None or found[0] != default:
            got = "missing" if found is None else f"default {found[0]!r}"
            fail(f"the keyword {key} is {got}; torch.optim.AdamW's is {key}={default!r} (the "
                 "same keywords and defaults, so that your class can replace torch's).",
                 "defaults").raise_for(*part)
    params = [torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))]
    out = sandbox.call(cls, params, lr=0.01, weight_decay=0.1, observe=_optimizer_facts)
    _raise_if_failed(out, name, part, " when constructed with lr=0.01, weight_decay=0.1")
    seen = out.observed or {"group": {}, "state": 0}
    group = seen["group"]
    expected = {**DEFAULTS, "lr": 0.01, "weight_decay": 0.1}
    for key, value in expected.items():
        if key not in group or tuple(np.atleast_1d(group[key])) != tuple(np.atleast_1d(value)):
            fail(f"param_groups[0][{key!r}] is {group.get(key, 'missing')!r}, expected "
                 f"{value!r}: pass a dict of the hyperparameters as `defaults` to "
                 "super().__init__(params, defaults).", "param-groups").raise_for(*part)
    if seen["state"]:
        fail("the optimizer has state before its first step: create each parameter's state "
             "lazily, in step(), the first time the parameter has a gradient (as torch.optim "
             "does; it may be moved to another device or loaded from a state dict before).",
             "eager-state").raise_for(*part)
    bad = [("lr", -0.1, "η ≥ 0"), ("eps", -1e-8, "ε ≥ 0"), ("betas", (1.0, 0.999), "β₁ in [0, 1)"),
           ("betas", (0.9, -0.1), "β₂ in [0, 1)"), ("weight_decay", -0.01, "λ ≥ 0")]
    for key, value, rule in bad:
        out = sandbox.call(cls, params, **{key: value})
        if out.delegated:
            _raise_if_failed(out, name, part)
        if out.error is None or not out.error.startswith("ValueError"):
            got = "was accepted" if out.error is None else f"raised {out.error}"
            fail(f"{name}(params, {key}={value!r}) {got}; it must raise ValueError naming the "
                 f"argument and the allowed range ({rule}), as torch.optim.AdamW does.",
                 "validation").raise_for(*part)
    # The edges of the allowed ranges are allowed (torch.optim.AdamW accepts them all).
    edges = [("lr", 0.0, "η ≥ 0"), ("eps", 0.0, "ε ≥ 0"), ("betas", (0.0, 0.0), "β in [0, 1)"),
             ("weight_decay", 0.0, "λ ≥ 0")]
    for key, value, rule in edges:
        out = sandbox.call(cls, params, **{key: value})
        _raise_if_failed(out, name, part, f" when constructed with {key}={value!r}: the "
                         f"allowed range is {rule}, its edge included, as in torch.optim.AdamW")
    passed(part[0], len(DEFAULTS) + len(expected) + len(bad) + len(edges) + 1)


# -- 7.2 the update ------------------------------------------------------------------------

def judge_steps(got: sandbox.Outcome, seed: int, dtype, hyper: dict, name: str) -> Verdict:
    """Trusted: ``got.value`` (steps, P) against torch.optim.AdamW on the same problem."""
    tol = TOL64 if dtype == torch.float64 else TOL32
    expected = trajectory(_torch_adamw(**hyper), seed, dtype, len(got.value))
    where = f" (MLP seed {seed}, {str(dtype)[6:]}, {hyper})"
    verdict = first_difference(got.value, expected, tol, what=f"parameters of {name}",
                               rows="step")
    if verdict.ok:
        return PASS
    known = _diagnose(got.value, seed, dtype, hyper, tol)
    if known:
        return fail(f"{known.message}{where}.", known.mistake)
    return fail(f"{verdict.message.replace('at step ', 'after step ')} "
                f"(steps counted from 0){where}", verdict.mistake)


def check_steps(cls: type, *, seeds: Sequence[int] = (0,),
                dtypes: Sequence[torch.dtype] = (torch.float64,), hypers=HYPERS,
                steps: int = 100) -> None:
    """The student's parameters after each of ``steps`` steps against torch.optim.AdamW."""
    part, name = PART_STEP, _name(cls)
    _not_a_subclass(cls, part)
    checks = 0
    for seed in seeds:
        for dtype in dtypes:
            for hyper in hypers:
                with _no_functional_adam():
                    out = sandbox.call(trajectory, functools.partial(cls, **hyper), seed,
                                       dtype, steps)
                _raise_if_failed(out, name, part)
                out.value = np.asarray(out.value, dtype=float)
                judge_steps(out, seed, dtype, hyper, name).raise_for(*part)
                checks += 1
    passed(part[0], checks)


# -- 7.3 groups, parameters without gradients, the closure ---------------------------------

def two_groups(hyper_a: dict, hyper_b: dict, model) -> list[dict]:
    """``params`` for a model: first layer with hyper_a, the rest with hyper_b."""
    params = list(model.parameters())
    return [{"params": params[:2], **hyper_a}, {"params": params[2:], **hyper_b}]


def all_parameters(model) -> list:
    return list(model.parameters())


class Pair:
    """Two optimizers stepped together: what one optimizer with two groups must equal."""

    def __init__(self, first, second):
        self.both = (first, second)

    def zero_grad(self):
        for optimizer in self.both:
            optimizer.zero_grad()

    def step(self):
        for optimizer in self.both:
            optimizer.step()


def pair_of(cls, hyper_a: dict, hyper_b: dict, params) -> Pair:
    """One optimizer per group: what one optimizer with two groups must equal."""
    return Pair(cls(params[:2], **hyper_a), cls(params[2:], **hyper_b))


def frozen_run(cls, hyper: dict, seed: int) -> tuple[bool, bool]:
    """Three steps with the first weight's gradient removed: (unchanged, has state)."""
    model, x, y = problem(seed)
    params = list(model.parameters())
    optimizer = cls(params, **hyper)
    before = params[0].detach().clone()
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        params[0].grad = None          # a frozen weight: no gradient this step
        optimizer.step()
    return (bool(torch.equal(before, params[0].detach())), params[0] in optimizer.state
            and bool(optimizer.state[params[0]]))


def closure_run(cls, hyper: dict, seed: int):
    """Five ``step(closure)`` calls: what each returned, and the parameters after."""
    model, x, y = problem(seed)
    optimizer = cls(model.parameters(), **hyper)
    returned = []

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    for _ in range(5):
        returned.append(optimizer.step(closure))
    return returned, _flat(model)


def check_groups(cls: type, *, seeds: Sequence[int] = (0,), steps: int = 30) -> None:
    part, name = PART_GROUPS, _name(cls)
    _not_a_subclass(cls, part)
    a, b = HYPERS
    checks = 0
    for seed in seeds:
        with _no_functional_adam():
            both = sandbox.call(trajectory, cls, seed, torch.float64, steps,
                                groups=functools.partial(two_groups, a, b))
            apart = sandbox.call(trajectory, functools.partial(pair_of, cls, a, b), seed,
                                 torch.float64, steps, groups=all_parameters)
        for out in (both, apart):
            _raise_if_failed(out, name, part, f" (MLP seed {seed})")
        if not allclose(np.asarray(both.value, float), np.asarray(apart.value, float), TOL64):
            fail("with two param groups (first layer: "
                 f"{a}; the rest: {b}) your optimizer does not move each group as two "
                 "optimizers, one per group with its own hyperparameters, would: in step(), "
                 "read lr, betas, eps and weight_decay from each `group` dict, not from "
                 "self.defaults or the constructor's arguments.", "param-groups").raise_for(*part)
        checks += 1

        with _no_functional_adam():
            out = sandbox.call(frozen_run, cls, b, seed)
        _raise_if_failed(out, name, part, " (a parameter whose .grad is None)")
        unchanged, has_state = out.value
        if not unchanged or has_state:
            what = "changed" if not unchanged else "got optimizer state"
            fail(f"a parameter whose .grad is None {what}: skip it in step() (`if p.grad is "
                 "None: continue`), as torch.optim does, so frozen or unused parameters are "
                 "neither decayed nor given moments.", "grad-none").raise_for(*part)
        checks += 1

        with _no_functional_adam():
            out = sandbox.call(closure_run, cls, a, seed)
        _raise_if_failed(out, name, part, " (step(closure))")
        returned, params = out.value
        with _no_functional_adam():
            plain = sandbox.call(trajectory, functools.partial(cls, **a), seed, torch.float64,
                                 5)
        _raise_if_failed(plain, name, part)
        model, x, y = problem(seed)
        if not all(torch.is_tensor(r) for r in returned):
            fail(f"step(closure) returned {returned[0]!r}: it must return the loss the closure "
                 "returned (`loss = closure()` under torch.enable_grad(), then `return loss`).",
                 "closure").raise_for(*part)
        if not allclose(params, np.asarray(plain.value, float)[-1], TOL64):
            fail("step(closure) moves the parameters differently from backward() followed by "
                 "step(): evaluate the closure (it computes the gradients) *before* the update.",
                 "closure").raise_for(*part)
        checks += 1
    passed(part[0], checks)


# -- 7.4 the state dict --------------------------------------------------------------------

def resumed_run(cls, hyper: dict, seed: int, steps: int, resume_at: int):
    """A run interrupted at ``resume_at``: state_dict, a fresh optimizer, load_state_dict.
    Returns (how many parameters had state when saved, the parameters after each step)."""
    model, x, y = problem(seed)
    first = cls(model.parameters(), **hyper)
    for _ in range(resume_at):
        first.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        first.step()
    saved = first.state_dict()
    stored = len(first.state)
    make = functools.partial(cls, **hyper)
    head = trajectory(make, seed, torch.float64, resume_at)
    tail = trajectory(make, seed, torch.float64, steps, start=resume_at, state=saved,
                      model=model)
    return stored, np.concatenate([head, tail])


def check_state_dict(cls: type, *, seeds: Sequence[int] = (0,), steps: int = 100,
                     resume_at: int = 50) -> None:
    """Interrupted at ``resume_at`` (state_dict, fresh optimizer, load_state_dict) = whole run."""
    part, name = PART_STATE, _name(cls)
    _not_a_subclass(cls, part)
    hyper = HYPERS[1]
    for seed in seeds:
        with _no_functional_adam():
            out = sandbox.call(resumed_run, cls, hyper, seed, steps, resume_at)
            whole = sandbox.call(trajectory, functools.partial(cls, **hyper), seed,
                                 torch.float64, steps)
        for o in (out, whole):
            _raise_if_failed(o, name, part, f" (MLP seed {seed})")
        stored, got = out.value
        if stored == 0:
            fail("after a step, self.state is empty: keep each parameter's state (step, m, v) "
                 "in self.state[p], the dict that state_dict() saves and load_state_dict() "
                 "restores; state kept elsewhere is lost when a run is resumed.",
                 "state-outside").raise_for(*part)
        verdict = first_difference(got, np.asarray(whole.value, float), TOL64,
                                   what="resumed run", rows="step")
        if not verdict.ok:
            fail(f"a run resumed from state_dict() at step {resume_at} differs from the "
                 f"uninterrupted run: {verdict.message} Everything step() reads between steps "
                 "(t, m, v) must be in self.state[p], keyed by the parameter tensor itself.",
                 "resume").raise_for(*part)
    passed(part[0], len(seeds))


# -- 7.5 the training run ------------------------------------------------------------------

def check_training(cls: type, *, run: training.RunSpec | None = None,
                   lr: float = 1e-2, weight_decay: float = 0.05) -> None:
    """The grader's training run (:mod:`descent.grading.training`) with the student's class.

    When the curves differ, the update is checked as in 7.2 (seed 0, float64) so that the
    message names the mistake, not only the step where the curves part.
    """
    run = run or training.RunSpec()
    _not_a_subclass(cls, PART_TRAIN)
    with _no_functional_adam():
        got = training.run_training(functools.partial(cls, lr=lr, weight_decay=weight_decay),
                                    run)
    verdict = training.judge_training(_torch_adamw(lr=lr, weight_decay=weight_decay), got, run)
    if not verdict.ok and verdict.mistake not in ("delegation", "exception"):
        with _no_functional_adam():
            steps = sandbox.call(trajectory, functools.partial(cls, **HYPERS[0]), 0,
                                 torch.float64, 100)
        if steps.ok:
            steps.value = np.asarray(steps.value, dtype=float)
            update = judge_steps(steps, 0, torch.float64, HYPERS[0], _name(cls))
            if not update.ok:
                verdict = fail(f"{verdict.message} The update itself differs from AdamW's "
                               f"(Part 7.2): {update.message}", update.mistake)
    verdict.raise_for(*PART_TRAIN)
    passed(PART_TRAIN[0], len(got.value))


__all__ = ["check_init", "check_steps", "check_groups", "check_state_dict", "check_training",
           "problem", "trajectory", "mistakes"]
