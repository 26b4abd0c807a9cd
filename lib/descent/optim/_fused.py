"""``fused=True``: the traced rule compiled by ``torch.compile`` into one pass per tensor.

The default path (:mod:`descent.optim._program`) runs a rule's operations one kernel each,
in place. ``fused=True`` hands the same traced operations to ``torch.compile``, whose
inductor backend fuses them into one loop per tensor that reads θ, g and the state once and
writes them once: the fewest bytes an update can move.

What is compiled is not the rule's Python but its trace (:func:`functional_source`): the
elementwise operations in the rule's order, the write-back of θ and the state, and nothing
else. The numbers of the trace (the bias corrections, the learning rate) arrive as a 1-D
tensor argument ``k``, computed once per step in Python by the trace's ``numbers``
function. So the compiled code neither recompiles when the step count or a scheduled
learning rate changes, nor evaluates ``β₁ᵗ`` inside its loop over elements, as it does when
the rule itself is compiled with a symbolic ``t`` (one ``pow`` per element, measured 2-3×
slower).

Tensors go through one compiled call per chunk of :data:`FUSED_CHUNK` tensors. A call costs
some 60 µs of dynamo's frame and guards plus a few µs per tensor (inductor's size
assertions, which the guards already cover, are switched off), too much to pay per tensor.
Inductor fuses "horizontally" any two loops that read a common buffer; every tensor's loop
reads ``k``, so by default all the tensors of a chunk (of equal size) went into one loop
that streamed 7 arrays per tensor at once (224 for a chunk of 32), and the search for those
fusions made big chunks compile slowly (measured on 2 busy cores: 32 tensors ~20 s,
50 tensors ~110 s, 200 tensors ~155 s). :data:`FUSION_THRESHOLD` asks for more shared bytes
than ``k`` has, so each tensor keeps its own loop (its m and v updates still share g and
fuse) and a chunk of 100 compiles in ~30 s. Adam on 200 tensors of 50k, against torch's
fused kernel: chunks of 16 1.4×, of 32 (fusing across tensors) 1.18–1.23×, of 100 without
fusing across tensors 1.11×; one chunk of 200 1.12× but 60 s to compile. A group whose
size is not a multiple of the chunk compiles a second variant for its last chunk.

Rules the tracer cannot follow (LAMB's norms) are compiled as they are
(:func:`compiled_rule`). Where compilation fails, the optimizer warns once and takes its
default path, which gives the same numbers up to rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

# How many tensors one compiled call updates (see the module docstring).
FUSED_CHUNK = 100
# Inductor's ``score_fusion_memory_threshold`` (bytes two loops must share to be fused side
# by side; default 10): above the 16 float64 numbers ``k`` holds at most, so that loops of
# different tensors do not fuse (see the module docstring).
FUSION_THRESHOLD = 256
# Tensors per call of a rule compiled as it is (:func:`compiled_rule`): its graph holds the
# rule's own operations (LAMB's norms too), which compile more slowly per tensor.
RULE_CHUNK = 32
# Compiled variants kept per rule compiled as it is (dtypes, ranks, chunk lengths, switches).
RECOMPILE_LIMIT = 64

_UNARY = {"neg": "torch.neg", "sqrt": "torch.sqrt", "abs": "torch.abs", "sign": "torch.sign"}
_BINARY = {"add": "{a} + {b}", "sub": "{a} - {b}", "mul": "{a} * {b}", "div": "{a} / {b}",
           "maximum": "torch.maximum({a}, {b})"}
_compiled: dict[Any, Callable] = {}


def functional_source(structure: tuple) -> str:
    """The trace of a rule as a function over chunks of tensors, writing results in place.

    ``step(p, g, s0, …, k)``: lists of θ, g and each state tensor (one entry per tensor of
    the chunk) and the trace's numbers ``k``. Each operation is the tape's, in its order.
    """
    n_leaves, nodes, outputs, new_fields = structure
    if new_fields:
        raise ValueError("a step that creates state runs on the default path")
    names = ["P", "G", *(f"S{j}" for j in range(n_leaves - 2))]
    lists = ["p", "g", *(f"s{j}" for j in range(n_leaves - 2))]
    lines = [f"def step({', '.join(lists)}, k):",
             f"    for {', '.join(names)} in zip({', '.join(lists)}):"]
    slot = 0

    def operand(x):
        nonlocal slot
        if x is None:
            slot += 1
            return f"k[{slot - 1}]"
        return names[x] if x < n_leaves else f"v{x}"

    for i, (op, *args) in enumerate(nodes):
        value = f"v{n_leaves + i}"
        if op in _UNARY:
            lines.append(f"        {value} = {_UNARY[op]}({operand(args[0])})")
        else:
            a, b = operand(args[0]), operand(args[1])
            lines.append(f"        {value} = " + _BINARY[op].format(a=a, b=b))
    for storage, value in outputs:
        target = "P" if storage == "p" else f"S{storage[1:]}"
        source = operand(value)
        if source != target:
            lines.append(f"        {target}.copy_({source})")
    return "\n".join(lines) + "\n"


def compiled_program(structure: tuple) -> Callable:
    """:func:`functional_source` of ``structure``, compiled (cached per structure).

    Dynamic shapes: a tensor of another size does not recompile; another dtype or chunk
    length does.
    """
    if structure not in _compiled:
        namespace: dict[str, Any] = {"torch": torch}
        exec(compile(functional_source(structure), "<descent.optim fused>", "exec"),  # noqa: S102
             namespace)
        _compiled[structure] = torch.compile(namespace["step"], dynamic=True, fullgraph=True,
                                             options={"size_asserts": False,
                                                      "score_fusion_memory_threshold":
                                                      FUSION_THRESHOLD})
    return _compiled[structure]


def run_compiled(structure: tuple, chunks, k: torch.Tensor) -> None:
    """Call the compiled program on each chunk ``(params, grads, *state columns)``.

    Each structure is its own function, so dynamo's recompile limit counts its variants
    (dtypes and chunk lengths) alone; no configuration is patched per call (that costs as
    much as the call).
    """
    step = compiled_program(structure)
    for chunk in chunks:
        step(*chunk, k)


# -- rules the tracer cannot follow: the rule itself, compiled --------------------------------
def rule_in_place(rule, params, grads, states, maximize: bool, kwargs: dict[str, Any]):
    """Apply the pure ``rule`` to each tensor and write θ and the tensor state back in place.

    This is what ``torch.compile`` traces for a rule that :mod:`descent.optim._program`
    cannot trace. Returns, per tensor, the new state with ``None`` for every field that was
    written in place.
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
    """:func:`rule_in_place` for ``rule``, compiled once with dynamic shapes (cached)."""
    if rule not in _compiled:
        def step_in_place(params, grads, states, maximize, kwargs):
            return rule_in_place(rule, params, grads, states, maximize, kwargs)
        _compiled[rule] = torch.compile(step_in_place, dynamic=True, fullgraph=True)
    return _compiled[rule]
