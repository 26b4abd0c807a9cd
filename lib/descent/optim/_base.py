"""The bridge from a pure update rule to a ``torch.optim.Optimizer``.

Each optimizer file (``sgd.py``, ``adam.py``, …) holds three things, in this order:

1. a NamedTuple state in the book's symbols (``AdamState(step, m, v)``);
2. the pure rule ``<name>_update(param, grad, state, *, hyper…) -> (new_param, new_state)``,
   which never mutates its inputs and works on NumPy arrays and torch tensors alike;
3. a thin :class:`RuleOptimizer` subclass that names the rule, the state and the keys
   ``torch.optim`` uses for the same state, so state dicts load in both directions.

The wrapper keeps ``self.state[p]`` as a dict under torch.optim's key names (``exp_avg``,
``exp_avg_sq``, ``momentum_buffer``, …) and converts to and from the NamedTuple around each
call of the rule. ``step`` is stored as a 0-d float32 tensor, as torch.optim stores it.

Three paths run the same rule; :mod:`descent.optim` explains when each is used.

- The default, :meth:`RuleOptimizer.step_group_traced`: the rule traced once per group and
  run in place (:mod:`descent.optim._program`); the same numbers as the loop below, bit for
  bit, without its allocations and most of its Python.
- :meth:`RuleOptimizer.step_group`: the readable per-tensor loop. It is the reference the
  other two are tested against, and what runs where a rule cannot be traced.
- ``fused=True`` (:meth:`RuleOptimizer.step_group_fused`): the traced rule compiled by
  ``torch.compile`` into one pass over memory per tensor.

``foreach=True`` sends every tensor through the multi-tensor (``torch._foreach_*``) form of
the traced program, ``foreach=False`` none; the default sends small CPU tensors and all CUDA
tensors.

Non-finite gradients are not caught: a NaN or inf flows through the rule exactly as through
torch.optim's (NaN in the same entries, the same numbers elsewhere), so a diverging run looks
the same in both. Check ``torch.isfinite`` or use a GradScaler before ``step`` to guard.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch.optim import Optimizer

from descent.optim import _fused, _program


def _python_number(value):
    """A NumPy scalar as the Python number it equals, exactly; anything else as it is.

    A ``LambdaLR`` whose factor is computed with NumPy leaves a ``numpy.float64`` in
    ``group["lr"]``. The tracer takes only Python floats as symbolic numbers, and its guards
    on a NumPy comparison never held, so every step raised ``Stale``.
    """
    return value.item() if isinstance(value, np.generic) else value


class RuleOptimizer(Optimizer):
    """Base class: a ``torch.optim.Optimizer`` whose ``step`` runs a pure rule.

    Subclasses set:

    - ``rule``: the pure update rule (a staticmethod);
    - ``State``: its NamedTuple state;
    - ``torch_keys``: NamedTuple field -> key in ``self.state[p]`` (torch.optim's name);
      fields not listed keep their own name;
    - ``hyperparameters``: the group keys passed to the rule as keywords;
    - ``init_state(param, group)``: the state before the first step.

    ``maximize`` is handled here, before the rule sees the gradient, exactly as torch.optim
    negates the gradient before weight decay.

    ``traced = False`` in a subclass keeps its rule out of the tracer (a rule with a
    reduction or a matrix product: LAMB, Muon, NAdam's scalar state): every step then runs
    :meth:`step_group`.
    """

    rule: ClassVar[Callable[..., tuple[Any, Any]]]
    State: ClassVar[type]
    torch_keys: ClassVar[Mapping[str, str]] = {}
    hyperparameters: ClassVar[tuple[str, ...]] = ()
    traced: ClassVar[bool] = True
    # Group keys that exist only for API compatibility with torch.optim; they do not change
    # the math and are filled in when missing (e.g. after loading a torch.optim state dict).
    compat_defaults: ClassVar[Mapping[str, Any]] = {
        "maximize": False, "foreach": None, "fused": None,
        "capturable": False, "differentiable": False,
    }

    def __init__(self, params, defaults: dict[str, Any]):
        for key, value in self.compat_defaults.items():
            defaults.setdefault(key, value)
        for key in ("capturable", "differentiable"):
            if defaults.get(key):
                raise ValueError(f"{key}=True is not supported by descent.optim; "
                                 f"use torch.optim.{type(self).__name__} for it")
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in {**self.defaults, **self.compat_defaults}.items():
                group.setdefault(key, value)

    # -- conversion between torch.optim's dict state and the rule's NamedTuple ---------------
    def init_state(self, param: torch.Tensor, group: dict[str, Any]):
        raise NotImplementedError

    def _key(self, field: str) -> str:
        return self.torch_keys.get(field, field)

    def load_rule_state(self, param: torch.Tensor, group: dict[str, Any]):
        """The NamedTuple state of ``param``, created on first use."""
        stored = self.state[param]
        if not stored:
            return self.init_state(param, group)
        # A field torch.optim did not store (a buffer it creates only for some settings, such
        # as RMSprop's momentum_buffer) comes back as None; the rule creates it when needed.
        values = {}
        for field in self.State._fields:
            value = stored.get(self._key(field))
            if field == "step" and torch.is_tensor(value):
                value = int(value.item())
            values[field] = value
        return self.State(**values)

    def store_rule_state(self, param: torch.Tensor, new_state) -> None:
        stored = self.state[param]
        for field, value in zip(self.State._fields, new_state, strict=True):
            if value is None:
                continue
            if field == "step":
                value = torch.tensor(float(value), dtype=torch.float32)
            elif value is param.grad or value is param:
                # A rule may return its input as new state (b₁ = g₁); the stored state must
                # not alias a tensor that backward() or step() will change in place.
                value = value.clone()
            stored[self._key(field)] = value

    def rule_kwargs(self, group: dict[str, Any]) -> dict[str, Any]:
        return {name: group[name] for name in self.hyperparameters}

    # -- the step -----------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        """One update of every parameter that has a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Under torch.compile, dynamo traces the plain loop (pure torch operations) instead.
        traced = self.traced and not torch.compiler.is_compiling()
        for group in self.param_groups:
            if traced:
                self.step_group_traced(group)
            elif group["fused"]:
                self.step_group_fused(group)
            else:
                self.step_group(group)
        return loss

    def step_group(self, group: dict[str, Any], params=None) -> None:
        """The rule, tensor by tensor: the reference path (``params``: a subset to update)."""
        kwargs = self.rule_kwargs(group)
        for param in group["params"] if params is None else params:
            if param.grad is None:
                continue
            if param.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            grad = -param.grad if group["maximize"] else param.grad
            state = self.load_rule_state(param, group)
            new_param, new_state = type(self).rule(param, grad, state, **kwargs)
            param.copy_(new_param)
            self.store_rule_state(param, new_state)

    # -- the default path: the rule traced once per group, run in place ----------------------
    def step_group_traced(self, group: dict[str, Any]) -> None:
        """The default path: :meth:`step_group`'s numbers, from one trace of the rule.

        Tensors are grouped by what the trace depends on (dtype, device, which state fields
        exist, the step count) and by how they run (together through ``torch._foreach_*``,
        or one by one); each such partition is traced once
        (:func:`~descent.optim._program.trace`) and its program run over its tensors. A
        partition that cannot be traced runs :meth:`step_group`.
        """
        engine = self.__dict__.get("_engine")
        if engine is None:
            engine = self._engine = _program.Engine()
        layout = engine.layouts.get(id(group))
        grads = None if layout is None else self._layout_grads(layout, group)
        if grads is None:                    # first step, or something changed: look again
            layout = engine.layouts[id(group)] = self._layout(group)
            grads = self._layout_grads(layout, group)
        partitions: dict[tuple, list] = {}
        for (p, stored, _, fields, step_tensor, base), grad in zip(layout.traced, grads,
                                                                   strict=True):
            key = (*base, 0 if step_tensor is None else int(step_tensor.item()))
            part = partitions.get(key)
            if part is None:
                part = partitions[key] = [[], [], [[] for _ in fields], []]
            part[0].append(p)
            part[1].append(grad)
            for column, (_, tensor) in zip(part[2], fields):
                column.append(tensor)
            part[3].append(stored)
        eager = list(layout.eager)
        if partitions:
            kwargs = {name: _python_number(value)
                      for name, value in self.rule_kwargs(group).items()}
            for key, part in partitions.items():
                if not self._run_traced(engine, group, kwargs, key, *part):
                    eager.extend(part[0])
        if eager:
            engine.layouts.pop(id(group), None)   # the eager loop may add state fields
            if group["fused"]:
                self.step_group_fused(group, eager)
            else:
                self.step_group(group, eager)

    def _layout(self, group: dict[str, Any]) -> _program.Layout:
        """Look at every tensor of ``group``: create missing state, check what the tracer
        needs (a dtype it runs, state tensors of θ's shape, dtype and device, a step count
        in a tensor), and record how each tensor runs. Kept until something changes."""
        layout = self._state_layout()
        foreach, state = group["foreach"], self.state
        traced, eager, with_grad = [], [], []
        for p in group["params"]:
            grad = p.grad
            with_grad.append(grad is not None)
            if grad is None:
                continue
            if grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            stored = state[p]
            if not stored:
                self.store_rule_state(p, self.init_state(p, group))
            dtype, device = p.dtype, p.device
            ok = dtype in _program.DTYPES and grad.dtype == dtype
            kinds, fields, step_tensor = [], [], None
            for key, is_step in layout:
                value = stored.get(key)
                if value is None:
                    kinds.append("none")
                elif is_step:
                    ok = ok and isinstance(value, torch.Tensor) and value.numel() == 1
                    step_tensor = value
                    kinds.append("number")
                elif (isinstance(value, torch.Tensor) and value.shape == p.shape
                      and value.dtype == dtype and value.device == device):
                    kinds.append("tensor")
                    fields.append((key, value))
                else:
                    ok = False
            if not ok:
                eager.append(p)
                continue
            together = (bool(foreach) if foreach is not None else
                        device.type != "cpu" or p.numel() <= _program.SMALL_NUMEL)
            traced.append((p, stored, len(stored), tuple(fields), step_tensor,
                           (dtype, device, tuple(kinds), together)))
        return _program.Layout(group["params"], len(group["params"]), foreach, state,
                               tuple(with_grad), traced, eager)

    def _layout_grads(self, layout: _program.Layout, group: dict[str, Any]) -> list | None:
        """The gradients of ``layout.traced``, or None when the layout no longer holds: the
        param list, ``foreach``, which tensors have a gradient, or a state dict or tensor
        changed (identity checks only, so that a step does not look at every tensor)."""
        params = group["params"]
        if (params is not layout.params or len(params) != layout.n_params
                or group["foreach"] is not layout.foreach or self.state is not layout.state):
            return None
        grads = []
        for p, has_grad in zip(params, layout.with_grad, strict=True):
            if (p.grad is not None) is not has_grad:
                return None
        state = self.state
        for p, stored, n_keys, fields, _, base in layout.traced:
            grad = p.grad
            if (grad.is_sparse or state[p] is not stored or len(stored) != n_keys
                    or p.dtype is not base[0] or grad.dtype is not base[0]):
                return None
            for key, tensor in fields:
                if stored.get(key) is not tensor:
                    return None
            grads.append(grad)
        return grads

    def _trace(self, engine, trace_key, kinds, step, kwargs, maximize, concrete):
        """A trace serving every step and learning rate (the numbers symbolic, guarded) or,
        where the rule uses a number in a way the tape cannot follow, this step's (remembered
        under ``trace_key`` plus the numbers)."""
        rule, fields = type(self).rule, self.State._fields
        if concrete is None:                 # first try: the numbers symbolic
            try:
                found = _program.trace(rule, fields, kinds, (step,), kwargs, maximize,
                                       self.State, symbolic=True)
            except _program.Concretize:
                found = None
            if found is not None:
                if trace_key is not None:
                    engine.remember(trace_key, found)
                return found
        step_key = None if trace_key is None else trace_key + (
            step, tuple(kwargs[name] for name in trace_key[1]))
        found = engine.traces.get(step_key) if step_key is not None else None
        if found is None:
            found = _program.trace(rule, fields, kinds, (step,), kwargs, maximize, self.State,
                                   symbolic=False)
            if trace_key is not None:
                engine.remember(trace_key, found)      # marks: the numbers must be concrete
                engine.remember(step_key, found)
        return found

    def programs(self) -> str:
        """What the default path ran: for each traced partition, the function that computes
        its numbers once per step and the program run over its tensors (Python source)."""
        engine = self.__dict__.get("_engine")
        if engine is None or not engine.plans:
            return "(no traced step yet)"
        parts = []
        for plan in engine.plans.values():
            form = "torch._foreach_* over the group" if plan.run else "tensor by tensor"
            source = (plan.program.foreach_sources[True] if plan.run else
                      plan.program.per_tensor_source)
            parts.append(f"# numbers, once per step\n{plan.trace.numbers.source}\n"
                         f"# the program, {form}\n{source}")
        return "\n".join(parts)

    def _state_layout(self) -> tuple[tuple[str, bool], ...]:
        """(torch.optim's key, is it the step count) for each field of the rule's state."""
        cls = type(self)
        layout = cls.__dict__.get("_state_layout_cache")
        if layout is None:
            layout = tuple((self._key(field), field == "step") for field in self.State._fields)
            cls._state_layout_cache = layout
        return layout

    def _run_traced(self, engine, group, kwargs, key, params, grads, columns, stored) -> bool:
        """Run one partition through its program; False when the rule cannot be traced."""
        dtype, device, kinds, together, step = key
        maximize = group["maximize"]
        try:                                 # the floats are symbolic: not part of the key
            trace_key = (tuple((name, value) for name, value in kwargs.items()
                               if value.__class__ is not float),
                         _program.float_hyperparameters(kwargs), kinds, maximize)
            plan_key = (trace_key, dtype, device, together)
            plan = engine.plans.get(plan_key)
        except TypeError:                    # an unhashable hyperparameter: trace every time
            trace_key = plan_key = plan = None
        if plan is None or not plan.trace.symbolic:
            plan = self._plan(engine, trace_key, plan_key, key, kwargs, maximize)
            if plan is None:
                return False
        try:
            constants, new_numbers = plan.trace.evaluate(step, kwargs)
        except _program.Stale:               # a guard failed: the rule now branches otherwise
            plan = self._plan(engine, trace_key, plan_key, key, kwargs, maximize, stale=True)
            if plan is None:
                return False
            constants, new_numbers = plan.trace.evaluate(step, kwargs)
        found, program = plan.trace, plan.program
        values = (*engine.scalars(constants, dtype), *engine.constants_of(dtype, device))
        new = [[torch.empty_like(p, memory_format=torch.preserve_format) for p in params]
               for _ in program.new_fields]
        if group["fused"] and not new and not engine.fused_failed:
            done = self._run_fused(engine, found, constants, dtype, device, params, grads,
                                   columns)           # all, unless compilation failed
            params, grads = params[done:], grads[done:]
            columns = [column[done:] for column in columns]
        if not params:
            pass                                 # fused=True did it all
        elif plan.run is not None:               # together, through torch._foreach_*
            plan.run(params, grads, *columns, *new, *values)
        else:                                    # one by one
            run, n_scratch, scratch = program.per_tensor, program.n_scratch, engine.scratch_views
            for row in zip(params, grads, *columns, *new):
                run(*row, *scratch(row[0], n_scratch), *values)
        if new:
            engine.layouts.clear()               # state fields were created: look again
        if new or found.number_fields:
            layout = self._state_layout()
            for field, column in zip(program.new_fields, new, strict=True):
                for tensors, tensor in zip(stored, column, strict=True):
                    tensors[layout[field][0]] = tensor
            for field, value in zip(found.number_fields, new_numbers, strict=True):
                if value != step:                          # t: a float32 tensor per parameter
                    name = layout[field][0]
                    torch._foreach_copy_([tensors[name] for tensors in stored],
                                         [engine.number(value)] * len(stored))
        return True

    def _run_fused(self, engine, found, constants, dtype, device, params, grads,
                   columns) -> int:
        """``fused=True``: the trace compiled (:mod:`descent.optim._fused`), chunk by chunk.
        Returns how many tensors it updated: all of them, unless compilation failed."""
        k = torch.tensor(constants, dtype=dtype, device=device)
        chunk = _fused.FUSED_CHUNK
        for start in range(0, len(params), chunk):
            end = start + chunk
            try:
                _fused.run_compiled(found.structure, [(
                    params[start:end], grads[start:end],
                    *(column[start:end] for column in columns))], k)
            except Exception as error:  # noqa: BLE001 - any compiler failure: fall back
                engine.fused_failed = True
                self._warn_fallback(error)
                return start
        return len(params)

    def _plan(self, engine, trace_key, plan_key, key, kwargs, maximize, stale=False):
        """The trace, program and multi-tensor runner of a partition; None if untraceable.
        ``stale``: the remembered trace's guards failed, trace again."""
        dtype, device, kinds, together, step = key
        if trace_key is not None and trace_key in engine.refused:
            return None
        try:
            found = None if stale or trace_key is None else engine.traces.get(trace_key)
            if found is None or not found.symbolic:
                found = self._trace(engine, trace_key, kinds, step, kwargs, maximize, found)
            program = _program.program_for(found.structure, _program.exact_fusions(
                device, dtype, multi_tensor=together))
            run = program.foreach(scalar_tensors=device.type == "cpu") if together else None
        except Exception:  # noqa: BLE001 - anything the tracer cannot follow runs eagerly
            if trace_key is not None:
                engine.refused.add(trace_key)
            return None
        plan = _program.Plan(found, program, run)
        if found.symbolic and plan_key is not None:
            if len(engine.plans) >= 64:      # groups x dtypes x switches: a handful in practice
                engine.plans.pop(next(iter(engine.plans)))
            engine.plans[plan_key] = plan
        return plan

    # -- fused=True for a rule the tracer cannot follow: the rule itself, compiled -----------
    def step_group_fused(self, group: dict[str, Any], params=None) -> None:
        """``fused=True`` where the rule cannot be traced: the rule compiled as it is.

        Parameters go in chunks of :data:`~descent.optim._fused.RULE_CHUNK` tensors through
        :func:`~descent.optim._fused.compiled_rule`, which writes θ and the state back in
        place. Where compilation fails it warns once and runs :meth:`step_group`.
        """
        kwargs = self.rule_kwargs(group)
        if params is None:
            params = [p for p in group["params"] if p.grad is not None]
        if any(p.grad.is_sparse for p in params):
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
        for start in range(0, len(params), _fused.RULE_CHUNK):
            chunk = params[start:start + _fused.RULE_CHUNK]
            states = [self.load_rule_state(p, group) for p in chunk]
            try:
                with torch._dynamo.config.patch(recompile_limit=_fused.RECOMPILE_LIMIT):
                    rest = _fused.compiled_rule(type(self).rule)(
                        chunk, [p.grad for p in chunk], states, group["maximize"], kwargs)
            except Exception as error:  # noqa: BLE001 - any compiler failure means: fall back
                self.step_group(group, chunk)    # re-raises a genuine input error
                self._warn_fallback(error)
                continue
            for param, state, kept in zip(chunk, states, rest, strict=True):
                # Fields written in place come back as None; the others (the step counter, a
                # buffer created on this step) are stored as the default path stores them.
                new_state = self.State(*(old if new is None
                                         else new.clone() if torch.is_tensor(new) else new
                                         for old, new in zip(state, kept, strict=True)))
                self.store_rule_state(param, new_state)

    def _warn_fallback(self, error: Exception) -> None:
        if getattr(self, "_fused_fallback_warned", False):
            return
        self._fused_fallback_warned = True
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        warnings.warn(f"{type(self).__name__}(fused=True): torch.compile could not compile "
                      f"{type(self).rule.__name__} ({type(error).__name__}: {reason}); using "
                      "the default path instead (the same numbers up to rounding, slower)",
                      RuntimeWarning, stacklevel=4)
