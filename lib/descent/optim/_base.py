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

Two paths run the same rule. The default (:meth:`RuleOptimizer.step_group`) is the readable
per-tensor loop. ``fused=True`` (:meth:`RuleOptimizer.step_group_fused`) hands the rule,
plus the write-back of θ and the state, to ``torch.compile``, which fuses them into one pass
per tensor; it falls back to the default loop, with a warning, where compilation fails.
``foreach`` is accepted for compatibility and does not change the path (on the CPU the
per-tensor loop beats torch's multi-tensor path anyway).

Non-finite gradients are not caught: a NaN or inf flows through the rule exactly as through
torch.optim's (NaN in the same entries, the same numbers elsewhere), so a diverging run looks
the same in both. Check ``torch.isfinite`` or use a GradScaler before ``step`` to guard.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch.optim import Optimizer


class RuleOptimizer(Optimizer):
    """Base class: a ``torch.optim.Optimizer`` whose ``step`` calls a pure rule per tensor.

    Subclasses set:

    - ``rule``: the pure update rule (a staticmethod);
    - ``State``: its NamedTuple state;
    - ``torch_keys``: NamedTuple field -> key in ``self.state[p]`` (torch.optim's name);
      fields not listed keep their own name;
    - ``hyperparameters``: the group keys passed to the rule as keywords;
    - ``init_state(param, group)``: the state before the first step.

    ``maximize`` is handled here, before the rule sees the gradient, exactly as torch.optim
    negates the gradient before weight decay.
    """

    rule: ClassVar[Callable[..., tuple[Any, Any]]]
    State: ClassVar[type]
    torch_keys: ClassVar[Mapping[str, str]] = {}
    hyperparameters: ClassVar[tuple[str, ...]] = ()
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
        for group in self.param_groups:
            if group["fused"]:
                self.step_group_fused(group)
            else:
                self.step_group(group)
        return loss

    def step_group(self, group: dict[str, Any]) -> None:
        kwargs = self.rule_kwargs(group)
        for param in group["params"]:
            if param.grad is None:
                continue
            if param.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            grad = -param.grad if group["maximize"] else param.grad
            state = self.load_rule_state(param, group)
            new_param, new_state = type(self).rule(param, grad, state, **kwargs)
            param.copy_(new_param)
            self.store_rule_state(param, new_state)

    # -- the fast path (fused=True): the same rule, compiled ----------------------------------
    def step_group_fused(self, group: dict[str, Any]) -> None:
        """``fused=True``: the same rule as :meth:`step_group`, compiled by ``torch.compile``.

        Parameters go in chunks of :data:`FUSED_CHUNK` tensors through :func:`compiled_rule`,
        which writes θ and the state back in place. Where compilation fails (no C++ compiler,
        an op the compiler cannot trace) it warns once and runs the default loop instead,
        which gives the same numbers.
        """
        kwargs = self.rule_kwargs(group)
        params = [p for p in group["params"] if p.grad is not None]
        if any(p.grad.is_sparse for p in params):
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
        for start in range(0, len(params), FUSED_CHUNK):
            chunk = params[start:start + FUSED_CHUNK]
            states = [self.load_rule_state(p, group) for p in chunk]
            try:
                with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
                    rest = compiled_rule(type(self).rule)(
                        chunk, [p.grad for p in chunk], states, group["maximize"], kwargs)
            except Exception as error:  # noqa: BLE001 - any compiler failure means: fall back
                self.step_group({**group, "params": chunk})  # re-raises a genuine input error
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
                      "the default per-tensor loop instead (same numbers, slower)",
                      RuntimeWarning, stacklevel=4)


# How many tensors one compiled call updates. A call costs about 40 µs of guards and Python
# (measured on 2 CPU threads), too much to pay once per tensor for many small tensors.
FUSED_CHUNK = 16
# Compiled variants kept per rule (dtypes, tensor ranks, chunk lengths, boolean switches).
RECOMPILE_LIMIT = 64

_compiled_rules: dict[Callable, Callable] = {}


def rule_in_place(rule, params, grads, states, maximize: bool, kwargs: dict[str, Any]):
    """Apply the pure ``rule`` to each tensor and write θ and the tensor state back in place.

    This is what ``torch.compile`` traces: the rule's out-of-place expressions and the
    ``copy_`` into the old tensors fuse into one loop that reads θ, g and the state once and
    writes them once, with no temporaries. Returns, per tensor, the new state with ``None``
    for every field that was written in place.
    """
    rest = []
    for param, grad, state in zip(params, grads, states, strict=True):
        new_param, new_state = rule(param, -grad if maximize else grad, state, **kwargs)
        param.copy_(new_param)
        kept = []
        for old, new in zip(state, new_state, strict=True):
            if torch.is_tensor(old) and torch.is_tensor(new):
                old.copy_(new)
                kept.append(None)
            else:
                kept.append(new)
        rest.append(tuple(kept))
    return rest


def compiled_rule(rule) -> Callable:
    """:func:`rule_in_place` for ``rule``, compiled once with dynamic shapes (cached per rule).

    Dynamic shapes make the step counter ``t`` and the tensor sizes symbolic, so a new step
    or a new size does not recompile; float hyperparameters are inputs too, so a learning-rate
    schedule does not recompile either. A new dtype, rank or chunk length does.
    """
    if rule not in _compiled_rules:
        def step_in_place(params, grads, states, maximize, kwargs):
            return rule_in_place(rule, params, grads, states, maximize, kwargs)
        _compiled_rules[rule] = torch.compile(step_in_place, dynamic=True, fullgraph=True)
    return _compiled_rules[rule]
