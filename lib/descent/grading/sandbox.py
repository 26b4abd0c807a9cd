"""The one door to student code: call it on inputs the grader chose, get plain data back.

Nothing here decides a grade. Each call returns an :class:`Outcome` of plain values (NumPy
arrays, floats, strings): what the student's function returned, whether it raised, whether it
changed its inputs, whether it called a reference it was asked to implement. The trusted side
(:mod:`descent.grading.compare` and the checks) turns outcomes into verdicts.

:func:`call` is that door. In the student's own Jupyter (and under ``make autograde``) it
calls the function right here. When the class grader grades, a
:class:`~descent.grading.door.Door` is open and the same call crosses to the student's
process, which runs :func:`call_here` there and sends back the outcome as plain data. What a
call may not use and which earlier answers the grader lends it (:class:`Rules`) travel with
the call, so they hold on the student's side.

**No delegation.** While student code runs, :func:`forbid_references` swaps every reference
implementation (the pure rules of :mod:`descent.rules`, the classes of :mod:`descent.optim`,
:mod:`torch.optim` and its schedulers, :mod:`descent.schedules`, and what a part adds with
:func:`forbidding`) for a sentinel that raises
:class:`~descent.grading.feedback.DelegationError` and records the call, so even a student
who catches the error is still seen. Function references are swapped through ``__code__``, so a
name bound earlier with ``from descent.rules import sgd_update`` is caught too. A reference
copied before the call is not caught: that is a matter of honesty, which ``make similarity``
reports to the instructor.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import inspect
import io
import threading
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from descent.grading import door as _door
from descent.grading.feedback import DelegationError, brief_exception, warned

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


@dataclass(frozen=True)
class Rules:
    """What one call may not use, and the grader's versions of earlier answers it gets.

    ``forbid``: more reference modules (name → public names, or None for all);
    ``allow``: reference modules this part may use after all (a training loop builds a
    ``torch.optim`` optimizer); ``classes``: more classes whose construction is delegation;
    ``functions``: more functions, as (module, attribute path) (torch's functional kernels,
    ``"clip_grad_norm_.__wrapped__"``); ``trusted``: notebook names replaced during the call
    by the grader's versions (a later part calls an earlier answer: one mistake costs one
    part). Plain data and library objects only: the rules travel with the call.
    """

    forbid: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)
    allow: tuple[str, ...] = ()
    classes: tuple[type, ...] = ()
    functions: tuple[tuple[str, str], ...] = ()
    trusted: Mapping[str, Callable] = field(default_factory=dict)

    def __add__(self, other: Rules) -> Rules:
        return Rules({**self.forbid, **other.forbid}, (*self.allow, *other.allow),
                     (*self.classes, *other.classes), (*self.functions, *other.functions),
                     {**self.trusted, **other.trusted})


_LOCAL = threading.local()     # per thread: the enclosing rules, and whether we are "here"


def _stack(name: str) -> list:
    if not hasattr(_LOCAL, name):
        setattr(_LOCAL, name, [])
    return getattr(_LOCAL, name)


@contextlib.contextmanager
def _adding(rules: Rules) -> Iterator[None]:
    _stack("rules").append(rules)          # of the enclosing ``forbidding``/``trusting`` blocks
    try:
        yield
    finally:
        _stack("rules").remove(rules)


def forbidding(modules: Mapping[str, tuple[str, ...] | None] | None = None,
               classes: tuple[type, ...] = (), *, functions: tuple[tuple[str, str], ...] = (),
               allow: tuple[str, ...] = ()):
    """Within the block every :func:`call` also forbids these references (see :class:`Rules`).

    Some parts ask for something the library has elsewhere: 03-sgd's sampler
    (``descent.data.batches``), 04-momentum's optimal tuning (``descent.rates``)."""
    return _adding(Rules(dict(modules or {}), tuple(allow), tuple(classes), tuple(functions)))


def trusting(replacements: Mapping[str, Callable] | None) -> contextlib.AbstractContextManager:
    """Within the block every :func:`call` runs with these notebook names replaced by the
    grader's versions (``{"adam_update": trusted_adam_update}``)."""
    return _adding(Rules(trusted=dict(replacements or {})))


_SCANNED: dict[tuple, tuple[list[tuple[str, Callable]], list[type]]] = {}


def _references(rules: Rules) -> tuple[list[tuple[str, Callable]], list[type]]:
    """(public name, function) pairs and classes of every reference module.

    Scanned once per set of rules and kept while no reference module gains or loses a name:
    a check calls the student's code thousands of times (a step per call), and scanning the
    modules was half of 04-momentum's grading."""
    modules = {k: v for k, v in {**REFERENCES, **rules.forbid}.items() if k not in rules.allow}
    loaded = {}
    for module in modules:
        try:
            loaded[module] = importlib.import_module(module)
        except ImportError:            # a module not written yet has nothing to forbid
            continue
    key = (tuple((name, modules[name], len(vars(mod))) for name, mod in loaded.items()),
           rules.classes, rules.functions)
    if key not in _SCANNED:
        _SCANNED[key] = _scan(loaded, modules, rules)
    return _SCANNED[key]


def _scan(loaded: dict, modules: dict, rules: Rules) -> tuple[list[tuple[str, Callable]],
                                                              list[type]]:
    functions, classes = [], list(rules.classes)
    for module, mod in loaded.items():
        only = modules[module]
        for name, obj in vars(mod).items():
            if (only is None and name.startswith("_")) or (only is not None and name not in only):
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
                if any(part.startswith("_") for part in owner.split(".")):
                    continue      # a private helper imported there (descent._checks.check_int):
                    #               no answer, and the library's models and data call it
                functions.append((f"{module}.{name}", obj))
    for module, path in rules.functions:
        try:
            obj = functools.reduce(getattr, path.split("."), importlib.import_module(module))
        except (ImportError, AttributeError):
            continue
        if inspect.isfunction(obj) and not obj.__code__.co_freevars:
            functions.append((f"{module}.{path.replace('.__wrapped__', '')}", obj))
    unique = {id(f): (name, f) for name, f in reversed(functions)}   # first name wins
    return list(unique.values()), list(dict.fromkeys(classes))


@contextlib.contextmanager
def forbid_references(rules: Rules = Rules()) -> Iterator[list[str]]:
    """Within the block every reference raises ``DelegationError``; yields the names called."""
    functions, classes = _references(rules)
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
    warnings: list[str] = field(default_factory=list)   # what the student's code warned

    @property
    def ok(self) -> bool:
        return self.error is None and not self.delegated and not self.mutated

    def plain(self) -> dict:
        """This outcome as plain data, to send as the value of an enclosing call (a loop of
        calls run on the student's side in one crossing of the door)."""
        return {"value": self.value, "error": self.error, "delegated": list(self.delegated),
                "mutated": list(self.mutated), "observed": self.observed,
                "warnings": list(self.warnings)}

    @classmethod
    def from_plain(cls, data) -> Outcome:
        """The inverse of :meth:`plain`, checked (it came from the student's side)."""
        from descent.grading.plain import ProtocolError

        texts = ("delegated", "mutated", "warnings")
        if not isinstance(data, dict) or set(data) != {"value", "observed", "error", *texts} \
                or not (data["error"] is None or isinstance(data["error"], str)) \
                or not all(isinstance(data[k], list) and all(isinstance(s, str)
                                                             for s in data[k]) for k in texts):
            raise ProtocolError("an outcome sent as a value is malformed")
        return cls(**data)


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


def _globals_of(obj) -> dict | None:
    """The namespace a notebook function or class looks its names up in, if it is one."""
    if isinstance(obj, functools.partial):
        return _globals_of(obj.func)
    if isinstance(obj, types.FunctionType):
        return obj.__globals__ if obj.__module__ == "__main__" else None
    if isinstance(obj, type) and obj.__module__ == "__main__":
        for value in vars(obj).values():
            fn = inspect.unwrap(getattr(value, "__func__", value))   # @torch.no_grad()
            if isinstance(fn, types.FunctionType):
                return fn.__globals__
    return None


def notebook_namespace(fn, args=(), kwargs=None) -> dict | None:
    """The student's notebook namespace, found through the code a call is given."""
    candidates = [fn, *args, *(kwargs or {}).values()]
    for obj in candidates:
        if isinstance(obj, functools.partial):
            candidates += [*obj.args, *obj.keywords.values()]
        found = _globals_of(obj)
        if found is not None:
            return found
    return None


def notebook_names(obj, *names: str) -> dict[str, Any]:
    """The values of ``names`` in the notebook where ``obj`` (the student's) was defined.

    On the grader's side of a door, ``obj`` is a name and so are the answers: a call of one
    that the notebook lacks raises ``NameError``."""
    if isinstance(obj, _door.StudentName):
        return {name: _door.StudentName(name) for name in names}
    namespace = _globals_of(obj) or {}
    return {name: namespace[name] for name in names if name in namespace}


@contextlib.contextmanager
def substitute(namespace: dict | None, replacements: Mapping[str, Callable] | None
               ) -> Iterator[None]:
    """Within the block, ``namespace``'s names in ``replacements`` are the grader's versions.

    A later part calls the student's earlier answers (``run_gd`` calls ``gd_step``); with the
    earlier answers replaced by correct ones, each mistake costs the points of one part only.
    """
    namespace = namespace if namespace is not None else {}
    saved = {name: namespace[name] for name in (replacements or {}) if name in namespace}
    try:
        for name in saved:
            namespace[name] = replacements[name]
        yield
    finally:
        namespace.update(saved)


@contextlib.contextmanager
def here() -> Iterator[None]:
    """Within the block, :func:`call` runs on this side even if a door is open (the
    student's side of a :class:`~descent.grading.door.LocalDoor`)."""
    _stack("here").append(True)
    try:
        yield
    finally:
        _stack("here").pop()


def call(fn: Callable, *args, watch: dict[str, Any] | None = None,
         trusted: Mapping[str, Callable] | None = None,
         observe: Callable[[Any], Any] | None = None, **kwargs) -> Outcome:
    """Call student code with references forbidden; report errors and mutated inputs.

    ``watch`` names the inputs that must not change (e.g. ``{"param": θ, "grad": g}``);
    the call receives the very objects given in ``args``/``kwargs``, and after the call each
    watched object is compared with a snapshot taken before. ``trusted`` replaces the
    student's earlier answers during the call (see :class:`Rules`). ``observe(value)``
    reads, right after the call, the effects a check judges besides the returned value
    (gradients left in ``p.grad``, what an optimizer recorded) as plain data into
    ``Outcome.observed``.

    While the class grader has a door open, everything given here crosses to the student's
    process (library functions by name, data by value; see :mod:`descent.grading.door`) and
    the outcome comes back as plain data. So ``fn`` and ``observe`` are the student's names
    or library functions (``functools.partial`` of them), never lambdas.
    """
    rules = sum(_stack("rules"), Rules()) + Rules(trusted=dict(trusted or {}))
    door = _door.current()
    if door is not None and not _stack("here"):
        out = door.call(fn, args, kwargs, watch=watch, rules=rules, observe=observe)
    else:
        out = call_here(fn, *args, watch=watch, rules=rules, observe=observe, **kwargs)
    warned(out.warnings)              # shown with the check's verdict (feedback.passed)
    return out


def call_here(fn: Callable, *args, watch: dict[str, Any] | None = None,
              rules: Rules = Rules(), observe: Callable[[Any], Any] | None = None,
              namespace: dict | None = None, **kwargs) -> Outcome:
    """:func:`call`, on this side of any door. ``namespace``: the notebook's (found from
    ``fn`` and the arguments when not given), where ``rules.trusted`` applies."""
    if namespace is None:
        namespace = notebook_namespace(fn, args, kwargs)
    before = {name: snapshot(obj) for name, obj in (watch or {}).items()}
    out = Outcome()
    # NumPy's overflow/invalid warnings are silenced: the verdict reports NaN/inf itself.
    with here(), forbid_references(rules) as called, substitute(namespace, rules.trusted), \
            np.errstate(all="ignore"), warnings.catch_warnings(record=True) as caught, \
            contextlib.redirect_stderr(io.StringIO()) as stderr:
        # Warnings are kept as data, not written to stderr: nbgrader scores a grade cell that
        # writes to stderr 0 even when every check in it passed.
        warnings.simplefilter("always")
        try:
            out.value = fn(*args, **kwargs)
        except DelegationError as err:
            out.error = str(err)
        except Exception as err:          # the student's error is data, not a grader crash
            out.error = brief_exception(err)
        except SystemExit as err:         # sys.exit() in an answer: data too
            out.error = brief_exception(err)
    out.delegated = called
    printed = [f"printed to stderr: {line}" for line in stderr.getvalue().splitlines()
               if line.strip()]
    # A ResourceWarning is raised when the garbage collector happens to free an object made
    # earlier (an unclosed file of an earlier cell): it says nothing about this call.
    said = [f"{w.category.__name__}: {w.message}"[:300] for w in caught
            if not issubclass(w.category, ResourceWarning)]
    out.warnings = list(dict.fromkeys(said + [p[:300] for p in printed]))[:5]
    out.mutated = [name for name, obj in (watch or {}).items() if not same(before[name], obj)]
    if observe is not None:
        try:
            out.observed = observe(out.value)
        except Exception:                 # the student's objects broke what we read: nothing
            out.observed = None
    return out
