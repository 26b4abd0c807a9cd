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
"""

from __future__ import annotations

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
        values = {}
        for field, default in zip(self.State._fields, self.init_state(param, group),
                                  strict=True):
            value = stored.get(self._key(field), default)
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
