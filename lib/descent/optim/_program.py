"""The default path of :mod:`descent.optim`: a pure rule traced once per group, run in place.

A rule such as :func:`~descent.optim.adam.adam_update` is written out of place, one new
array per symbol of the equation. Called tensor by tensor, that is one kernel, one fresh
allocation and one pass over memory per operation, and several microseconds of Python per
operation and tensor. This module runs *the same function* without those costs, in three
steps:

1. **Trace.** The rule is called once for a whole param group, with stand-ins
   (:class:`Traced`) for θ, g and each state tensor, and (:class:`Number`) for the step
   count and the float hyperparameters. Arithmetic on the tensor stand-ins is recorded on a
   :class:`Tape`; the rule's arithmetic on numbers (``t = step + 1``, the bias corrections
   ``1 - β₁ᵗ``, ``lr / bias1``) becomes a small Python function that recomputes them once per
   step: hoisted out of every loop over elements by construction. Where the rule branches on
   a number (``if weight_decay != 0``), the branch taken is guarded, and the rule is traced
   again when a guard fails. So one trace serves every step and every learning rate of a
   schedule.
2. **Plan.** :func:`plan` turns the tape into a short program that writes each result into
   memory that is free at that point: into θ and the state tensors themselves once their old
   values are no longer needed, so ``m = β₁ m + (1 - β₁) g`` runs as ``m *= β₁`` and
   ``m += (1 - β₁)·g``; otherwise into scratch buffers that the optimizer keeps from step to
   step. No tensor is allocated in a step, and the numbers of the tape become 0-d tensors,
   which torch's kernels take with less overhead than Python floats.
3. **Run.** On the CPU the program runs tensor by tensor, so that each tensor's data stays
   in cache across its operations (for many tensors this beats torch's multi-tensor kernels
   on a CPU); tensors too small for that to matter, and every CUDA tensor, go together
   through ``torch._foreach_*``: one call per operation for the whole group.

Exactness. Each operation of the program is the operation the rule wrote, on the same
operands, in the same order, in the same precision; only *where* the result is written
changes. So a step gives the numbers of calling the rule, bit for bit. The rewrites made are
identities of IEEE arithmetic: ``x·1``, ``x/1`` and ``x - 0`` are ``x``; ``x - c`` is
``x + (-c)``; and ``a ± (s·b)/c``, ``a ± s·b`` and ``(s·b)·c`` run as one ``addcdiv`` or
``addcmul`` (three or two operations in one pass over memory) where that kernel is checked,
once per device, dtype and path, to give the same bits as the operations it replaces
(:data:`FUSIONS`, :func:`exact_fusions`).

What cannot be traced (a reduction such as LAMB's norms, a matrix product, a branch on an
array's values, an unsupported dtype) raises :class:`Untraceable`, and that group runs the
rule per tensor instead (:meth:`~descent.optim._base.RuleOptimizer.step_group`). Rules must
be pure: the trace calls a rule once per group, not once per tensor.
"""

from __future__ import annotations

import math
import numbers
import operator
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

__all__ = ["Untraceable", "Concretize", "Stale", "Traced", "Number", "Tape", "Trace",
           "Program", "trace", "plan", "program_for", "exact_fusions", "Engine"]


class Untraceable(Exception):
    """The rule did something the tape does not record; run it tensor by tensor instead."""


# What a stand-in answers for ``.shape``: the same for θ and g, so a rule's shape check
# passes; a rule that computes with the shape cannot be traced (``ndim`` etc. raise).
_ANY_SHAPE = ("…",)
_COMMUTATIVE = {"add", "mul", "maximum"}
_UNARY = {"neg", "sqrt", "abs", "sign"}


class Traced:
    """A stand-in for one tensor of every tensor of a group, while the rule is traced."""

    __slots__ = ("tape", "id")
    _descent_traced = True          # what descent._arrays looks for
    __array_ufunc__ = None          # NumPy scalars defer to our reflected operators

    def __init__(self, tape: Tape, id: int):  # noqa: A002 - the value's number on the tape
        self.tape, self.id = tape, id

    shape = property(lambda self: _ANY_SHAPE)

    def __add__(self, other): return self.tape.binary("add", self, other)
    def __radd__(self, other): return self.tape.binary("add", other, self)
    def __sub__(self, other): return self.tape.binary("sub", self, other)
    def __rsub__(self, other): return self.tape.binary("sub", other, self)
    def __mul__(self, other): return self.tape.binary("mul", self, other)
    def __rmul__(self, other): return self.tape.binary("mul", other, self)
    def __truediv__(self, other): return self.tape.binary("div", self, other)
    def __rtruediv__(self, other): return self.tape.binary("div", other, self)
    def __neg__(self): return self.tape.unary("neg", self)
    def __pos__(self): return self
    def __abs__(self): return self.tape.unary("abs", self)
    def sqrt(self): return self.tape.unary("sqrt", self)
    def sign(self): return self.tape.unary("sign", self)
    def maximum(self, other): return self.tape.binary("maximum", self, other)

    def _refuse(self, *args, **kwargs):
        raise Untraceable("the rule uses an array's values in Python (a branch, a float(), a "
                          "comparison or an index)")

    __bool__ = __float__ = __int__ = __index__ = __len__ = __iter__ = __getitem__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = __eq__ = __ne__ = __pow__ = __rpow__ = _refuse
    __hash__ = object.__hash__

    def __getattr__(self, name):
        raise Untraceable(f"the rule uses .{name} of an array, which the tape does not record")


class Concretize(Untraceable):
    """The rule used a number in a way the tape does not record; trace it with plain numbers."""


class Stale(Exception):
    """A guard of a trace's numbers failed: the rule would now take another branch."""


_NUMBER_OPS = {
    "add": (operator.add, "{a} + {b}"), "radd": (lambda a, b: b + a, "{b} + {a}"),
    "sub": (operator.sub, "{a} - {b}"), "rsub": (lambda a, b: b - a, "{b} - {a}"),
    "mul": (operator.mul, "{a} * {b}"), "rmul": (lambda a, b: b * a, "{b} * {a}"),
    "div": (operator.truediv, "{a} / {b}"), "rdiv": (lambda a, b: b / a, "{b} / {a}"),
    "pow": (operator.pow, "{a} ** {b}"), "rpow": (lambda a, b: b ** a, "{b} ** {a}"),
    "floordiv": (operator.floordiv, "{a} // {b}"), "mod": (operator.mod, "{a} % {b}"),
    "neg": (lambda a, b: -a, "-{a}"), "abs": (lambda a, b: abs(a), "abs({a})"),
}
_COMPARISONS = {"lt": (operator.lt, "<"), "le": (operator.le, "<="), "gt": (operator.gt, ">"),
                "ge": (operator.ge, ">="), "eq": (operator.eq, "=="), "ne": (operator.ne, "!=")}


class Number:
    """A stand-in for a number while the rule is traced: the step count t, a learning rate.

    It carries its value, and its arithmetic (``t = step + 1``, ``1 - β₁ ** t``,
    ``lr / bias1``) is recorded as lines of a small function (:meth:`Tape.numbers`) that
    recomputes every number of the trace from t and the hyperparameters, with the same
    operations in the same order, so the floats are the same. So one trace serves every step
    and every learning rate of a schedule: only that function runs per step.

    Where the rule looks at a value (``if weight_decay != 0``, ``bool(momentum)``,
    ``float(t)``, or the tape's ``x·1 = x``), the answer is used and a *guard* is recorded:
    the function raises :class:`Stale` when the answer would differ, and the rule is traced
    again.
    """

    __slots__ = ("tape", "name", "value")
    __array_ufunc__ = None

    def __init__(self, tape: Tape, name: str, value):
        self.tape, self.name, self.value = tape, name, value

    def _op(self, op: str, other=None) -> Number:
        return self.tape.number_op(op, self, other)

    def __add__(self, other): return self._op("add", other)
    def __radd__(self, other): return self._op("radd", other)
    def __sub__(self, other): return self._op("sub", other)
    def __rsub__(self, other): return self._op("rsub", other)
    def __mul__(self, other): return self._op("mul", other)
    def __rmul__(self, other): return self._op("rmul", other)
    def __truediv__(self, other): return self._op("div", other)
    def __rtruediv__(self, other): return self._op("rdiv", other)
    def __pow__(self, other): return self._op("pow", other)
    def __rpow__(self, other): return self._op("rpow", other)
    def __floordiv__(self, other): return self._op("floordiv", other)
    def __mod__(self, other): return self._op("mod", other)
    def __neg__(self): return self._op("neg")
    def __abs__(self): return self._op("abs")
    def __pos__(self): return self

    def _compare(self, op: str, other):
        return self.tape.number_compare(op, self, other)

    def __lt__(self, other): return self._compare("lt", other)
    def __le__(self, other): return self._compare("le", other)
    def __gt__(self, other): return self._compare("gt", other)
    def __ge__(self, other): return self._compare("ge", other)
    def __eq__(self, other): return self._compare("eq", other)
    def __ne__(self, other): return self._compare("ne", other)

    def __bool__(self):
        return self.tape.guard(f"bool({self.name})", bool(self.value))

    def __float__(self):
        return float(self.tape.guard(self.name, self.value))

    def __int__(self):
        return int(self.tape.guard(self.name, self.value))

    __index__ = __int__

    def __hash__(self):
        return hash(self.tape.guard(self.name, self.value))

    def _refuse(self, *args, **kwargs):
        raise Concretize("the rule uses a number in a way the tape does not record")

    __round__ = __rfloordiv__ = __rmod__ = __divmod__ = __rdivmod__ = _refuse


class Tape:
    """The elementwise operations of one call of a rule, in the order the rule made them.

    Values are numbered: the leaves first (θ, g, then each state tensor), then one number per
    recorded operation. A node is ``(op, a)`` or ``(op, a, b)``, each operand a value number
    or ``None`` for a number, whose value is the next one in :attr:`constants`: the numbers
    are kept apart, so that the nodes alone say which program to run.
    """

    def __init__(self, n_leaves: int):
        self.n_leaves = n_leaves
        self.nodes: list[tuple] = []
        self.constants: list[float | Number] = []
        self._lines: list[str] = []          # the arithmetic on Numbers, as Python
        self._literals: list[Any] = []       # the plain numbers it uses

    def number(self, name: str, value) -> Number:
        return Number(self, name, value)

    def _literal(self, x) -> str | None:
        """``x`` (a plain number) as a reference to the function's literals, or None."""
        if x.__class__ in (int, float, bool) or (isinstance(x, numbers.Real)
                                                 and not isinstance(x, torch.Tensor)):
            self._literals.append(x if x.__class__ in (int, float, bool) else
                                  int(x) if isinstance(x, numbers.Integral) else float(x))
            return f"K[{len(self._literals) - 1}]"
        return None

    def number_op(self, op: str, a: Number, b=None) -> Number:
        fn, template = _NUMBER_OPS[op]
        if b is None or b.__class__ is Number:
            b_text, b_value = (None, None) if b is None else (b.name, b.value)
        else:
            b_text, b_value = self._literal(b), b
            if b_text is None:
                return NotImplemented
        result = Number(self, f"x{len(self._lines)}", fn(a.value, b_value))
        self._lines.append(f"    {result.name} = " + template.format(a=a.name, b=b_text))
        return result

    def number_compare(self, op: str, a: Number, b):
        fn, symbol = _COMPARISONS[op]
        if b.__class__ is Number:
            b_text, b_value = b.name, b.value
        else:
            b_text, b_value = self._literal(b), b
            if b_text is None:
                return NotImplemented
        return self.guard(f"({a.name} {symbol} {b_text})", fn(a.value, b_value))

    def guard(self, expression: str, value):
        """Record that ``expression`` evaluates to ``value`` now; return ``value``."""
        literal = self._literal(value) if not isinstance(value, bool) else repr(value)
        test = "is not" if isinstance(value, bool) else "!="
        self._lines.append(f"    if {expression} {test} {literal}: raise Stale")
        return value

    def numbers(self, inputs: Sequence[str], outputs: Sequence) -> Callable:
        """``fn(*inputs) -> (constants, outputs)``: every number of the trace, recomputed."""
        def text(x):
            if x.__class__ is Number:
                return x.name
            self._literals.append(x)
            return f"K[{len(self._literals) - 1}]"
        constants = ", ".join(text(c) for c in self.constants)
        results = ", ".join(text(x) for x in outputs)
        body = "".join(line + "\n" for line in self._lines)
        source = (f"def numbers({', '.join(inputs)}):\n{body}"
                  f"    return ({constants}{',' if self.constants else ''}), "
                  f"({results}{',' if outputs else ''})\n")
        namespace = {"K": tuple(self._literals), "Stale": Stale}
        exec(compile(source, "<descent.optim numbers>", "exec"), namespace)  # noqa: S102
        fn = namespace["numbers"]
        # what to show: the literals in place of K[i]
        fn.source = re.sub(r"K\[(\d+)\]", lambda m: repr(self._literals[int(m.group(1))]),
                           source)
        return fn

    def leaf(self, i: int) -> Traced:
        return Traced(self, i)

    def _new(self, node: tuple) -> Traced:
        self.nodes.append(node)
        return Traced(self, self.n_leaves + len(self.nodes) - 1)

    def _id(self, x) -> int | None:
        """``x``'s value number, or None for a number (a Python or NumPy real)."""
        if x.__class__ is Traced:
            if x.tape is not self:
                raise Untraceable("a stand-in from another trace")
            return x.id
        if x.__class__ is float or x.__class__ is int or x.__class__ is Number or (
                isinstance(x, numbers.Real) and not isinstance(x, torch.Tensor)):
            return None
        raise Untraceable(f"an operand of type {type(x).__name__} (only arrays of the group "
                          "and numbers are traced)")

    def unary(self, op: str, x: Traced) -> Traced:
        return self._new((op, x.id))

    def binary(self, op: str, x, y) -> Traced:
        a, b = self._id(x), self._id(y)
        if a is None:
            if b is None:
                raise Untraceable("an operation on numbers only")
            if op not in _COMMUTATIVE:                  # c - x, c / x
                self.constants.append(x if x.__class__ is Number else float(x))
                return self._new((op, None, b))
            a, b, y = b, None, x                        # c·x = x·c, c + x = x + c
        if b is None:
            c = y if y.__class__ is Number else float(y)
            if op == "sub":                             # x - c = x + (-c), exactly
                op, c = "add", -c
            if op in ("mul", "div") and c == 1.0:       # x·1 = x/1 = x (guarded for a Number)
                return Traced(self, a)
            if (c.__class__ is float and op == "add" and c == 0.0
                    and math.copysign(1.0, c) < 0):
                return Traced(self, a)                  # x + (-0) = x
            self.constants.append(c)
        return self._new((op, a, b))


# -- tracing a rule ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Trace:
    """One call of a rule on stand-ins: the tape's structure and how to get its numbers.

    ``structure`` is everything but the numbers; two traces with the same structure run the
    same program. :meth:`evaluate` returns ``(constants, new_numbers)`` for a step count and
    the group's keywords: the operand numbers of the tape in order, and the new values of the
    state's number fields; it raises :class:`Stale` when a guard fails. ``symbolic``: whether
    the numbers were traced as functions of t and the float hyperparameters (so the trace
    serves every step and learning rate) or are the values of one step.
    """

    structure: tuple
    numbers: Callable
    number_fields: tuple[int, ...]
    hyper_names: tuple[str, ...]
    symbolic: bool

    def evaluate(self, step: int, kwargs: dict[str, Any]) -> tuple[tuple, tuple]:
        return self.numbers(*(step for _ in self.number_fields),
                            *(kwargs[name] for name in self.hyper_names))


def float_hyperparameters(kwargs: dict[str, Any]) -> tuple[str, ...]:
    """The keywords that a symbolic trace takes as :class:`Number`: the Python floats."""
    return tuple(name for name, value in kwargs.items() if value.__class__ is float)


def trace(rule: Callable, fields: Sequence[str], kinds: Sequence[str], numbers_in: Sequence,
          kwargs: dict[str, Any], maximize: bool, State: type, *, symbolic: bool) -> Trace:
    """Trace ``rule`` for tensors whose state fields are of ``kinds``.

    ``kinds[i]`` is ``"tensor"`` (a tensor of θ's shape), ``"none"`` (absent) or ``"number"``
    (the step count: the next of ``numbers_in``). With ``symbolic``, the step count and the
    float keywords are :class:`Number` stand-ins. Raises :class:`Untraceable`
    (:class:`Concretize` when only the symbolic numbers are the problem).
    """
    n_tensors = kinds.count("tensor")
    tape = Tape(2 + n_tensors)
    theta, grad = tape.leaf(0), tape.leaf(1)
    storage, values, inputs, given = {}, [], [], iter(numbers_in)
    for i, kind in enumerate(kinds):
        if kind == "tensor":
            storage[i] = len(storage)
            values.append(tape.leaf(1 + len(storage)))
        elif kind == "number":
            inputs.append(f"n{i}")
            value = next(given)
            values.append(tape.number(f"n{i}", value) if symbolic else value)
        else:
            values.append(None)
    hyper_names = float_hyperparameters(kwargs)
    inputs += [f"h_{name}" for name in hyper_names]
    if symbolic:
        kwargs = {**kwargs, **{name: tape.number(f"h_{name}", kwargs[name])
                               for name in hyper_names}}
    if maximize:
        grad = -grad                                   # as the reference loop: g ← -g first
    new_param, new_state = rule(theta, grad, State(*values), **kwargs)
    if new_param.__class__ is not Traced or new_param.tape is not tape:
        raise Untraceable("the rule's new θ is not an array of the group")
    outputs, number_fields, new_numbers, new_fields = [("p", new_param.id)], [], [], []
    for i, (kind, value) in enumerate(zip(kinds, new_state, strict=True)):
        if value.__class__ is Traced:
            if value.tape is not tape:
                raise Untraceable("a stand-in from another trace")
            if kind == "tensor":
                outputs.append((f"s{storage[i]}", value.id))
            elif kind == "none":
                outputs.append((f"n{len(new_fields)}", value.id))
                new_fields.append(i)
            else:
                raise Untraceable(f"state field {fields[i]} changes from a number to an array")
        elif value is None:
            if kind != "none":
                raise Untraceable(f"state field {fields[i]} is dropped")
        elif kind == "number" and (value.__class__ is Number or isinstance(value, numbers.Real)):
            number_fields.append(i)
            new_numbers.append(value)
        else:
            raise Untraceable(f"state field {fields[i]} of type {type(value).__name__}")
    structure = (tape.n_leaves, tuple(tape.nodes), tuple(outputs), tuple(new_fields))
    return Trace(structure, tape.numbers(inputs, new_numbers), tuple(number_fields),
                 hyper_names, symbolic)


# -- fusions: one kernel for two or three operations, where it gives the same bits ----------
class Slot(NamedTuple):
    """A constant operand: the ``index``-th number of the trace, times ``sign``."""

    index: int
    sign: int = 1


ONE = "one"      # the divisor 1 of a fused scaled addition (a 0-d tensor of ones)
NEG_ZERO = "nz"  # the -0 added in a fused product (a 0-d tensor; x + (-0) = x exactly)

# torch's ``addcdiv(a, b, c, value=s)`` computes ``a + (s·b)/c`` on the CPU with a rounding
# after each operation, which is what a rule's ``a + (s * b) / c`` computes. So it can run
# two or three recorded operations in one pass over memory, bit for bit, in two shapes.
# And ``addcmul(a, b, c, value=s)`` computes ``a + (s·b)·c``; with ``a = -0`` the sum is exact
# whether or not the kernel contracts it into a fused multiply-add: a double product in one
# pass. (``x/s + e`` as ``addcdiv(e, x, s, value=1)`` is exact too but measured 4.6× slower
# than the two operations: with two broadcast operands torch's CPU loop is scalar.)
FUSIONS = {
    "quotient": "a ± (s·b)/c  →  addcdiv(a, b, c, value=±s)",
    "scaled": "a ± s·b  →  addcdiv(a, b, 1, value=±s)      (division by 1 is exact)",
    "product": "(s·b)·c  →  addcmul(-0, b, c, value=s)     (adding -0 is exact, contracted"
               " into a multiply-add or not)",
}
_EXACT: dict[tuple, frozenset] = {}


def exact_fusions(device: torch.device, dtype: torch.dtype, multi_tensor: bool) -> frozenset:
    """The :data:`FUSIONS` whose kernel gives the bits of the unfused operations here.

    Checked once per device type, dtype and path (one tensor at a time, or
    ``torch._foreach_*``) on 4,099 random values, the vectorised body and the scalar tail of
    a kernel, with the numbers passed as the programs pass them. A kernel that contracts a
    product and a sum into one fused multiply-add, or that reassociates ``(s·b)/c`` into
    ``s·(b/c)`` (as a CUDA kernel may), fails the check and its fusion is not used. On a GPU,
    the multi-tensor path uses no fusion whose operands need broadcasting (it would leave
    torch's multi-tensor kernels).
    """
    key = (device.type, dtype, multi_tensor)
    if key not in _EXACT:
        _EXACT[key] = frozenset(name for name in FUSIONS
                                if _fusion_is_exact(name, device, dtype, multi_tensor))
    return _EXACT[key]


def _fusion_is_exact(name: str, device, dtype, multi_tensor: bool) -> bool:
    if multi_tensor and name in ("scaled", "product") and device.type != "cpu":
        return False
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(4099, generator=g, dtype=dtype) for _ in range(3))
    specials = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30, 0.5, -2.0], dtype=dtype)
    for x, shift in ((a, 0), (b, 3), (c, 5)):           # zeros, tiny and huge values meet
        x[:8] = specials.roll(shift)
    a, b = a.to(device), b.to(device)
    c = (c.abs() + 0.5).to(device) if name == "quotient" else c.to(device)
    one = torch.ones((), dtype=dtype, device=device)
    negative_zero = torch.full((), -0.0, dtype=dtype, device=device)
    as_bits = torch.int32 if dtype == torch.float32 else torch.int64
    try:
        for s in (1e-3 / (1 - 0.9), 0.37, 3.0, 1 / 3):
            for sign in (1, -1):
                if name == "quotient":
                    expected = a + (s * b) / c if sign > 0 else a - (s * b) / c
                    args, kernel = (a, b, c), "addcdiv"
                elif name == "scaled":
                    expected = a + s * b if sign > 0 else a - s * b
                    args, kernel = (a, b, one), "addcdiv"
                else:
                    expected = (sign * s * b) * c
                    args, kernel = (negative_zero, b, c), "addcmul"
                value = sign * s
                if multi_tensor:
                    got = getattr(torch, f"_foreach_{kernel}")(
                        [args[0].expand_as(b)], [args[1]], [args[2].expand_as(b)], value)[0]
                else:
                    got = getattr(torch, kernel)(*args, value=value)
                if not torch.equal(got.view(as_bits), expected.view(as_bits)):   # bits
                    return False
    except RuntimeError:              # e.g. a 0-d CPU tensor the device's kernel refuses
        return False
    return True


class Instruction(NamedTuple):
    op: str             # "add", "sub", "mul", "div", "maximum", unary ops, "addcdiv", "copy"
    out: str            # storage the result is written to
    args: tuple         # storage names (str), constants (Slot) or ONE


def _fuse(n_leaves: int, nodes: list[list], outputs, fusions: frozenset) -> None:
    """Rewrite the nodes that :data:`FUSIONS` allows into ``addcdiv``/``addcmul`` nodes.

    Such a node is ``[kernel, a, b, c, value]``; the product and quotient it replaces must
    have no other use, and become ``["dead"]``.
    """
    uses: dict[int, int] = {}
    for node in nodes:
        for x in node[1:]:
            if isinstance(x, int):
                uses[x] = uses.get(x, 0) + 1
    for _, value in outputs:
        uses[value] = uses.get(value, 0) + 1

    def only_use(value, op):
        """The node that computes ``value`` with ``op``, if nothing else reads it."""
        if not isinstance(value, int) or value < n_leaves or uses.get(value) != 1:
            return None
        node = nodes[value - n_leaves]
        return node if node[0] == op else None

    for node in nodes:
        op = node[0]
        if op == "mul" and "product" in fusions and isinstance(node[1], int) \
                and isinstance(node[2], int):
            for q, c in ((node[1], node[2]), (node[2], node[1])):   # (s·b)·c or c·(s·b)
                product = only_use(q, "mul")
                if product is not None and isinstance(product[1], int) \
                        and isinstance(product[2], Slot):
                    node[:] = ["addcmul", NEG_ZERO, product[1], c, product[2]]
                    product[:] = ["dead"]
                    break
            continue
        if op not in ("add", "sub") or not (isinstance(node[1], int) and isinstance(node[2], int)):
            continue
        for a, q in ((node[1], node[2]), (node[2], node[1])) if op == "add" else \
                ((node[1], node[2]),):
            sign = -1 if op == "sub" else 1
            quotient = only_use(q, "div") if "quotient" in fusions else None
            product = only_use(quotient[1], "mul") if quotient is not None else None
            if product is not None and isinstance(product[1], int) \
                    and isinstance(product[2], Slot) and isinstance(quotient[2], int):
                node[:] = ["addcdiv", a, product[1], quotient[2],    # a ± (s·b)/c
                           Slot(product[2].index, sign * product[2].sign)]
                quotient[:], product[:] = ["dead"], ["dead"]
                break
            product = only_use(q, "mul") if "scaled" in fusions else None
            if product is not None and isinstance(product[1], int) \
                    and isinstance(product[2], Slot):
                node[:] = ["addcdiv", a, product[1], ONE,            # a ± s·b
                           Slot(product[2].index, sign * product[2].sign)]
                product[:] = ["dead"]
                break


def plan(structure: tuple, fusions: frozenset = frozenset()) -> tuple[list[Instruction], int]:
    """The instructions that compute a traced rule in place, and how many scratch buffers.

    Storages: ``p`` (θ, written last with θ_t), ``g`` (read only), ``s<j>`` (the state
    tensors, written with their new values), ``n<j>`` (state tensors the rule creates on this
    step) and ``a<k>`` (scratch). A result goes, in this order of preference: into the
    storage whose final value it is, once that storage's old value is dead; into the storage
    of an operand that dies here (an in-place operation); into a free scratch buffer.
    """
    n_leaves, shaped_nodes, outputs, new_fields = structure
    slots = iter(range(10**9))                 # the k-th None is the k-th number
    nodes = [[op, *(Slot(next(slots)) if a is None else a for a in args)]
             for op, *args in shaped_nodes]
    if fusions:
        _fuse(n_leaves, nodes, outputs, fusions)
    end = len(nodes)

    final = dict(outputs)                    # storage -> the value it must hold at the end
    needed = set(final.values())             # dead code: values that nothing reads
    for i in reversed(range(len(nodes))):
        if nodes[i][0] == "dead" or n_leaves + i not in needed:
            nodes[i] = ["dead"]
        else:
            needed.update(a for a in nodes[i][1:] if isinstance(a, int))
    last_use: dict[int, int] = {}            # liveness: the last instruction reading a value
    for i, node in enumerate(nodes):
        for a in node[1:]:
            if isinstance(a, int):
                last_use[a] = i
    for value in final.values():
        last_use[value] = end
    final_of = {}                            # value -> storages whose final value it is
    for storage, value in final.items():
        final_of.setdefault(value, []).append(storage)

    location = {0: "p", 1: "g", **{2 + j: f"s{j}" for j in range(n_leaves - 2)}}
    content = {storage: value for value, storage in location.items()}
    content.update({f"n{j}": None for j in range(len(new_fields))})
    scratch: list[str] = []

    def dead(storage, at):
        value = content.get(storage)
        return value is None or last_use.get(value, -1) <= at

    instructions: list[Instruction] = []
    for i, node in enumerate(nodes):
        op, args = node[0], node[1:]
        if op == "dead":
            continue
        value = n_leaves + i
        operand_storages = [location[a] for a in args if isinstance(a, int)]
        target = next((s for s in final_of.get(value, ()) if dead(s, i)), None)
        if target is None:
            # an operand's storage that dies here: an in-place operation. A value that is
            # another storage's final value stays out of θ and the state (no copy cycles).
            for s in operand_storages:
                if s != "g" and dead(s, i) and (s.startswith("a") or value not in final_of):
                    target = s
                    break
        if target is None:
            target = next((s for s in scratch if dead(s, i)), None)
        if target is None:
            target = f"a{len(scratch)}"
            scratch.append(target)
        instructions.append(Instruction(op, target, tuple(
            location[a] if isinstance(a, int) else a for a in args)))
        content[target] = value
        location[value] = target

    # the outputs not computed in place are copied; a copy must read its source before
    # another copy overwrites it
    pending = [(storage, location[value]) for storage, value in final.items()
               if location[value] != storage]
    while pending:
        sources = {src for _, src in pending}
        ready = [(dst, src) for dst, src in pending if dst not in sources or dst == src]
        if not ready:
            raise Untraceable("the outputs of the rule form a cycle of copies")
        for dst, src in ready:
            instructions.append(Instruction("copy", dst, (src,)))
            pending.remove((dst, src))
    return instructions, len(scratch)


# -- code generation ----------------------------------------------------------------------
def _scalar(arg, tensor: bool) -> str:
    """The generated expression of a constant operand: a 0-d tensor ``c[k]`` or a float."""
    if tensor and arg.sign > 0:
        return f"c[{arg.index}]"
    return f"f[{arg.index}]" if arg.sign > 0 else f"(-f[{arg.index}])"


def _addcdiv_operand(x) -> str:
    if x == ONE:
        return "one"
    if x == NEG_ZERO:
        return "nz"
    if isinstance(x, Slot):
        return f"f[{x.index}]" if x.sign > 0 else f"-f[{x.index}]"
    return x


def _per_tensor_source(instructions, n_state, n_new, n_scratch) -> str:
    """A function that runs the program on one tensor: ``fn(p, g, s0…, n0…, a0…, c, f, one)``.

    Scalars are 0-d tensors ``c[k]``; ``f[k]`` are the same numbers as floats; ``one`` is a
    0-d tensor of ones (the divisor of a fused scaled addition).
    """
    params = ["p", "g", *(f"s{j}" for j in range(n_state)), *(f"n{j}" for j in range(n_new)),
              *(f"a{k}" for k in range(n_scratch)), "c", "f", "one", "nz"]
    lines = [f"def run({', '.join(params)}):"]
    for op, out, args in instructions:
        if op == "copy":
            lines.append(f"    {out}.copy_({args[0]})")
        elif op in ("addcdiv", "addcmul"):
            a, b, c = (_scalar(x, True) if isinstance(x, Slot) else _addcdiv_operand(x)
                       for x in args[:3])
            value = _addcdiv_operand(args[3])
            if out == a:
                lines.append(f"    {a}.{op}_({b}, {c}, value={value})")
            else:
                lines.append(f"    torch.{op}({a}, {b}, {c}, value={value}, out={out})")
        elif op in _UNARY:
            (a,) = args
            lines.append(f"    {a}.{op}_()" if out == a else f"    torch.{op}({a}, out={out})")
        else:
            a, b = (x if isinstance(x, str) else _scalar(x, True) for x in args)
            if out == a and op != "maximum":
                lines.append(f"    {a}.{op}_({b})")
            elif out == b and op in _COMMUTATIVE and op != "maximum":
                lines.append(f"    {b}.{op}_({a})")
            else:
                lines.append(f"    torch.{op}({a}, {b}, out={out})")
    return "\n".join(lines) + "\n"


def _foreach_source(instructions, n_state, n_new, scalar_tensors: bool) -> str:
    """A function that runs the program on lists of tensors with ``torch._foreach_*``.

    Scratch values are new lists (out-of-place calls); everything else is in place.
    ``scalar_tensors``: constants as 0-d tensors ``c[k]`` (faster on the CPU) or floats.
    """
    params = ["p", "g", *(f"s{j}" for j in range(n_state)), *(f"n{j}" for j in range(n_new)),
              "c", "f", "one", "nz"]
    lines = [f"def run({', '.join(params)}):"]
    if any(op == "addcdiv" and args[2] == ONE for op, _, args in instructions):
        lines.append("    ones = [one] * len(p)")
    if any(op == "addcmul" for op, _, _ in instructions):
        lines.append("    nzs = [nz] * len(p)")
    tensor_overload = {"add", "mul", "div"}          # _foreach_<op>_.Tensor exists

    def scalar(x, op):
        return _scalar(x, scalar_tensors and op in tensor_overload)

    for op, out, args in instructions:
        fresh = out.startswith("a")                 # a scratch list may be a new list
        if op == "copy":
            lines.append(f"    torch._foreach_copy_({out}, {args[0]})")
            continue
        if op == "addcmul":                         # a fused product: always a new list
            _, b, c, value = args
            call = f"torch._foreach_addcmul(nzs, {b}, {c}, {_addcdiv_operand(value)})"
            lines.append(f"    {out} = {call}" if fresh else
                         f"    torch._foreach_copy_({out}, {call})")
            continue
        if op == "addcdiv":
            a, b, c, value = args
            if out == b and out != a and c == ONE:  # b ← a ± s·b: the two operations, in place
                lines.append(f"    torch._foreach_mul_({b}, {scalar(value, 'mul')})")
                lines.append(f"    torch._foreach_add_({b}, {a})")
                continue
            c = "ones" if c == ONE else c
            call = f"_foreach_addcdiv{{}}({{}}, {b}, {c}, {_addcdiv_operand(value)})"
        elif op in _UNARY:
            (a,) = args
            call = f"_foreach_{op}{{}}({{}})"
        else:
            a, b = args
            if isinstance(a, Slot):                  # c - x or c / x
                if op == "sub":
                    tmp = f"torch._foreach_neg({b})"
                    if out == b:
                        lines.append(f"    torch._foreach_neg_({b})")
                    elif fresh:
                        lines.append(f"    {out} = {tmp}")
                    else:
                        lines.append(f"    torch._foreach_copy_({out}, {tmp})")
                    lines.append(f"    torch._foreach_add_({out}, {scalar(a, 'add')})")
                    continue
                raise Untraceable(f"{op} with a number first has no multi-tensor kernel")
            if out == b and op in _COMMUTATIVE and out != a:
                a, b = b, a
            b_text = b if isinstance(b, str) else scalar(b, op)
            if scalar_tensors and op == "add" and not isinstance(b, str) and out == a:
                # _foreach_add_.Tensor costs ~2 µs per tensor on the CPU, a loop of add_ ~1
                lines.append(f"    for x in {a}: x.add_({b_text})")
                continue
            call = f"_foreach_{op}{{}}({{}}, {b_text})"
        if out == a:
            lines.append("    torch." + call.format("_", a))
        elif fresh:
            lines.append(f"    {out} = torch." + call.format("", a))
        else:
            lines.append(f"    torch._foreach_copy_({out}, torch." + call.format("", a) + ")")
    return "\n".join(lines) + "\n"


class Program:
    """A planned rule: its instructions and the two functions generated from them."""

    def __init__(self, structure: tuple, fusions: frozenset):
        n_leaves, _, _, new_fields = structure
        self.structure = structure
        self.instructions, self.n_scratch = plan(structure, fusions)
        self.n_state, self.n_new = n_leaves - 2, len(new_fields)
        self.new_fields = new_fields
        self.per_tensor_source = _per_tensor_source(self.instructions, self.n_state,
                                                    self.n_new, self.n_scratch)
        self.per_tensor = _compile(self.per_tensor_source)
        self.foreach_sources, self._foreach = {}, {}
        for scalar_tensors in (True, False):
            try:
                source = _foreach_source(self.instructions, self.n_state, self.n_new,
                                         scalar_tensors)
            except Untraceable:
                continue
            self.foreach_sources[scalar_tensors] = source
            self._foreach[scalar_tensors] = _compile(source)

    def foreach(self, scalar_tensors: bool) -> Callable | None:
        return self._foreach.get(scalar_tensors)

    def __repr__(self) -> str:
        return f"Program(\n{self.per_tensor_source})"


def _compile(source: str) -> Callable:
    namespace: dict[str, Any] = {"torch": torch}
    exec(compile(source, "<descent.optim program>", "exec"), namespace)  # noqa: S102
    return namespace["run"]


_PROGRAMS: dict[tuple, Program] = {}


def program_for(structure: tuple, fusions: frozenset) -> Program:
    """The :class:`Program` of a trace structure with ``fusions`` (cached for the process)."""
    key = (structure, fusions)
    found = _PROGRAMS.get(key)
    if found is None:
        found = _PROGRAMS[key] = Program(structure, fusions)
    return found


# -- running it --------------------------------------------------------------------------------
# On the CPU, tensors of at most this many elements go through the multi-tensor path: for them
# Python's overhead per call dominates, and their out-of-place temporaries are small.
SMALL_NUMEL = 16_384
DTYPES = (torch.float32, torch.float64)   # what the tracer runs; others go eagerly


class Layout(NamedTuple):
    """How the tensors of one param group run, as of the last look (see
    :meth:`~descent.optim._base.RuleOptimizer._layout`)."""

    params: list                 # the group's list of parameters (identity)
    n_params: int
    foreach: bool | None
    state: dict                  # the optimizer's state (identity)
    with_grad: tuple             # which parameters had a gradient
    traced: list                 # (θ, state dict, its size, (key, tensor)…, step tensor, key)
    eager: list                  # parameters the tracer does not take


class Plan(NamedTuple):
    """What a partition runs: its trace, the program, and the program's multi-tensor form
    (None when it runs tensor by tensor)."""

    trace: Trace
    program: Program
    run: Callable | None


class Engine:
    """What one optimizer keeps between steps for the traced path: scratch buffers, the
    scalars of the last trace, and the traces themselves (keyed by everything they read)."""

    def __init__(self):
        self.scratch: dict[tuple, torch.Tensor] = {}
        self.views: dict[tuple, tuple[torch.Tensor, ...]] = {}
        self.traces: OrderedDict[tuple, Trace] = OrderedDict()
        self.plans: dict[tuple, Plan] = {}
        self.layouts: dict[int, Layout] = {}
        self.refused: set[tuple] = set()
        self.fused_failed = False            # fused=True could not compile: default path
        self._scalars: dict[tuple, list] = {}
        self._number: list | None = None
        self._ones: dict[tuple, tuple] = {}

    # scratch: one flat buffer per dtype and device, views per shape
    def scratch_views(self, param: torch.Tensor, n: int) -> tuple[torch.Tensor, ...]:
        key = (param.dtype, param.device, param.shape, n)
        views = self.views.get(key)
        if views is None:
            numel = param.numel()
            flat_key = (param.dtype, param.device)
            flat = self.scratch.get(flat_key)
            if flat is None or flat.numel() < n * numel:
                flat = torch.empty(n * numel, dtype=param.dtype, device=param.device)
                self.scratch[flat_key] = flat
                self.views = {k: v for k, v in self.views.items() if k[:2] != flat_key}
            views = tuple(flat[k * numel:(k + 1) * numel].view(param.shape) for k in range(n))
            self.views[key] = views
        return views

    def scalars(self, constants: tuple[float, ...], dtype: torch.dtype) -> tuple:
        """The numbers of a trace as ``(c, f)``: 0-d tensors of ``dtype``, and floats.

        A 0-d tensor of θ's dtype enters a kernel as the same float32/float64 value that torch
        makes of a Python float (round to nearest), so the result is the same bits, with less
        overhead per call. The tensors are views of one buffer per dtype and count, rewritten
        (through NumPy, without a kernel) only when the numbers change.
        """
        key = (dtype, len(constants))
        slot = self._scalars.get(key)
        if slot is None:
            buffer = torch.zeros(len(constants), dtype=dtype)
            slot = self._scalars[key] = [buffer.unbind(0), buffer.numpy(), None]
        if slot[2] != constants:
            slot[1][:] = constants
            slot[2] = constants
        return slot[0], constants

    def remember(self, key: tuple, found: Trace) -> None:
        """Keep a trace for the next steps (a symbolic one serves them all; a concrete one,
        only its own step: the oldest go)."""
        self.traces[key] = found
        if len(self.traces) > 16:
            self.traces.popitem(last=False)

    def constants_of(self, dtype: torch.dtype, device: torch.device) -> tuple:
        """The 0-d tensors ``one`` and ``nz`` (-0) that fused kernels take as operands."""
        key = (dtype, device)
        found = self._ones.get(key)
        if found is None:
            found = self._ones[key] = (torch.ones((), dtype=dtype, device=device),
                                       torch.full((), -0.0, dtype=dtype, device=device))
        return found

    def number(self, value) -> torch.Tensor:
        """``value`` in a float32 0-d tensor, as torch.optim stores the step count (one
        tensor, rewritten through NumPy; it is only ever the source of a copy)."""
        if self._number is None:
            tensor = torch.zeros((), dtype=torch.float32)
            self._number = [None, tensor, tensor.numpy()]
        if self._number[0] != value:
            self._number[2][()] = value
            self._number[0] = value
        return self._number[1]
