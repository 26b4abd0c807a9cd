"""The untrusted side: call the student's code on inputs the grader chose, record plain data.

Nothing here decides a grade. Each call returns an :class:`Outcome` of plain values (NumPy
arrays, floats, strings): what the student's function returned, whether it raised, whether it
changed its inputs, whether it called a reference it was asked to implement. The trusted side
(:mod:`descent.grading.compare`) turns outcomes into verdicts. Issue 5 moves that second half
into a clean process; this split is what makes the move possible.

**No delegation.** While student code runs, :func:`forbid_references` swaps every reference
implementation (the pure rules of :mod:`descent.rules`, the classes of :mod:`descent.optim`,
:mod:`torch.optim` and its schedulers, :mod:`descent.schedules`) for a sentinel that raises
:class:`~descent.grading.feedback.DelegationError` and records the call, so even a student
who catches the error is still seen. Function references are swapped through ``__code__``, so a
name bound earlier with ``from descent.rules import sgd_update`` is caught too.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from descent.grading import tape
from descent.grading.feedback import DelegationError, brief_exception

_CALLED: list[str] = []   # names of references called while forbidden (survives a caught error)


def _sentinel(*args, **kwargs):
    # This code object replaces a reference function's, so it runs with *that* module's
    # globals: it may use builtins only.
    here = __import__("descent.grading.sandbox", fromlist=["_CALLED"])
    name = __import__("sys")._getframe(0).f_code.co_name
    here._CALLED.append(name)
    raise here.DelegationError(f"{name} is the reference this part asks you to implement")


def _sentinel_init(self, *args, **kwargs):
    name = f"{type(self).__module__}.{type(self).__qualname__}"
    _CALLED.append(name)
    raise DelegationError(f"{name} is the reference this part asks you to implement")


# Where the references live, and which of their public names an answer may not call
# (None: every function and optimizer/scheduler class the module defines).
REFERENCES: dict[str, tuple[str, ...] | None] = {
    "descent.rules": None,
    "descent.optim": None,
    "descent.schedules": None,
    "descent.landscapes": ("classify_critical_point", "trajectory"),
    "torch.optim": None,
    "torch.optim.lr_scheduler": None,
}
_BASES = (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)


def _references() -> tuple[list[tuple[str, Callable]], list[type]]:
    """(public name, function) pairs and classes of every reference module."""
    functions, classes = [], []
    for module, only in REFERENCES.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:            # a module not written yet has nothing to forbid
            continue
        for name, obj in vars(mod).items():
            if name.startswith("_") or (only is not None and name not in only):
                continue
            owner = getattr(obj, "__module__", "") or ""
            if not owner.startswith(("descent.", "torch.optim")):
                continue
            if inspect.isclass(obj):
                if obj in _BASES or name in {"RuleOptimizer", "Schedule"}:
                    continue                       # base classes students may subclass
                if issubclass(obj, _BASES) or owner == module == "descent.schedules":
                    classes.append(obj)
            elif inspect.isfunction(obj) and not obj.__code__.co_freevars:
                functions.append((f"{module}.{name}", obj))
    unique = {id(f): (name, f) for name, f in reversed(functions)}   # first name wins
    return list(unique.values()), list(dict.fromkeys(classes))


@contextlib.contextmanager
def forbid_references() -> Iterator[list[str]]:
    """Within the block every reference raises ``DelegationError``; yields the names called."""
    functions, classes = _references()
    saved_code = {f: f.__code__ for _, f in functions}
    saved_init = {c: c.__dict__.get("__init__") for c in classes}
    start = len(_CALLED)
    called: list[str] = []
    try:
        for name, f in functions:
            f.__code__ = _sentinel.__code__.replace(co_name=name)
        for c in classes:
            c.__init__ = _sentinel_init
        yield called
    finally:
        for f, code in saved_code.items():
            f.__code__ = code
        for c, init in saved_init.items():
            if init is None:
                delattr(c, "__init__")
            else:
                c.__init__ = init
        called.extend(_CALLED[start:])
        del _CALLED[start:]


@dataclass
class Outcome:
    """What one call of student code did, as plain data."""

    value: Any = None
    error: str | None = None              # "TypeError: … (in gd_step, line 3)"
    delegated: list[str] = field(default_factory=list)
    mutated: list[str] = field(default_factory=list)   # names of inputs changed in place
    observed: Any = None                  # what ``observe`` read after the call (plain data)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.delegated and not self.mutated


def snapshot(x):
    """A deep, independent copy of arrays, tensors and containers of them."""
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, np.ndarray):
        return x.copy()
    return copy.deepcopy(x)


def same(a, b) -> bool:
    """Bitwise equality of two snapshots (NaN equals NaN); used only to detect mutation."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(
            torch.equal(a, b) or torch.all((a == b) | (a.isnan() & b.isnan())))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and bool(
            np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:
        return True


@contextlib.contextmanager
def substitute(fn: Callable, replacements: dict[str, Callable] | None) -> Iterator[None]:
    """Within the block, the global names ``fn`` looks up are the grader's trusted versions.

    A later part calls the student's earlier answers (``run_gd`` calls ``gd_step``); with the
    earlier answers replaced by correct ones, each mistake costs the points of one part only.
    """
    namespace = getattr(fn, "__globals__", {})
    saved = {name: namespace[name] for name in (replacements or {}) if name in namespace}
    try:
        for name in saved:
            namespace[name] = replacements[name]
        yield
    finally:
        namespace.update(saved)


def call(fn: Callable, *args, watch: dict[str, Any] | None = None,
         trusted: dict[str, Callable] | None = None,
         observe: Callable[[Any], Any] | None = None, **kwargs) -> Outcome:
    """Call student code with references forbidden; report errors and mutated inputs.

    ``watch`` names the inputs that must not change (e.g. ``{"param": θ, "grad": g}``);
    the call receives the very objects given in ``args``/``kwargs``, and after the call each
    watched object is compared with a snapshot taken before. ``trusted`` replaces the
    student's earlier answers during the call (see :func:`substitute`). ``observe(value)``
    reads, right after the call, the effects a check judges besides the returned value
    (gradients left in ``p.grad``, what an optimizer recorded) as plain data into
    ``Outcome.observed``: the record carries only plain data to the clean process.
    """
    if tape.replaying():                  # the clean process: the kernel's record answers
        return tape.replay(tape.site(2))
    before = {name: snapshot(obj) for name, obj in (watch or {}).items()}
    out = Outcome()
    # NumPy's overflow/invalid warnings are silenced: the verdict reports NaN/inf itself.
    with forbid_references() as called, substitute(fn, trusted), np.errstate(all="ignore"):
        try:
            out.value = fn(*args, **kwargs)
        except DelegationError as err:
            out.error = str(err)
        except Exception as err:          # the student's error is data, not a grader crash
            out.error = brief_exception(err)
    out.delegated = called
    out.mutated = [name for name, obj in (watch or {}).items() if not same(before[name], obj)]
    if observe is not None:
        try:
            out.observed = observe(out.value)
        except Exception:                 # the student's objects broke what we read: nothing
            out.observed = None
    tape.record(tape.site(2), out)        # the grading kernel: plain data for the clean verdict
    return out
