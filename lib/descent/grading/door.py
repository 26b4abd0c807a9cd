"""The door between the grader and the student's code.

A grade cell such as ``checks.check_adam(adam_update, adam_init)`` runs on the grader's side
(:mod:`descent.grading.trusted`), where ``adam_update`` is a :class:`StudentName`: a name in
the student's notebook, which lives in another process (:mod:`descent.grading.confine`).
Every call of the student's code goes through :func:`descent.grading.sandbox.call`; while a
:class:`Door` is open, that call crosses here:

- **To the student's side** goes a pickle made by :class:`_Payload`: the function to run and
  the inputs the check chose. It may hold numbers, arrays, tensors, models, the student's
  names, values the student's side returned earlier (sent back as themselves, by handle), and
  library functions and classes *by name* (``descent.…``, ``torch.…``). Code never travels
  by value: a lambda, a local function or anything defined in a grade cell is refused, so no
  grade cell, hidden test or expected value can reach the student's side.
- **Back to the grader** comes JSON only: the :class:`~descent.grading.sandbox.Outcome` as
  plain data (:mod:`descent.grading.plain`), decoded and validated here. Nothing the student's
  side sends is unpickled or executed, and it is believed only as what the student's code
  returned.

:class:`StudentSide` is the other half: it runs the notebook's cells in its own namespace and
answers calls with :func:`descent.grading.sandbox.call_here` (references forbidden, inputs
watched). :class:`LocalDoor` keeps it in this process, for the tests and the mutation tool,
with the same pickling and the same plain data as the confined process.
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import io
import json
import pickle
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch

from descent.grading import plain

ALLOWED_MODULES = ("descent", "torch", "numpy", "math", "builtins", "functools", "operator",
                   "collections", "typing", "copy")
KEPT_OUTCOMES = 256          # outcomes whose values can still be sent back by handle
MAX_RESPONSE = 64 * 2**20    # bytes of one answer from the student's side


class StudentName:
    """A name in the student's notebook, on the grader's side: sent as the name only."""

    def __init__(self, name: str):
        self.__name__ = self.__qualname__ = name

    def __call__(self, *args, **kwargs):
        raise DirectCall(self.__name__)

    def __repr__(self) -> str:
        return f"<your {self.__name__}>"


class DirectCall(Exception):
    """The grader's side called the student's code other than through ``sandbox.call``."""

    def __init__(self, name: str):
        super().__init__(f"{name} can only be called through descent.grading.sandbox.call")


class NotDefined(NameError):
    """A check asked for a name the student's notebook does not define."""

    def __init__(self, name: str):
        super().__init__(f"name {name!r} is not defined: run its answer cell, and keep the "
                         "name the assignment asks for", name=name)


class DoorClosed(BaseException):
    """The student's side is gone (timeout, memory, crash): no further check can run.

    A BaseException, so that no ``except Exception`` in a check can turn it into a pass;
    ``status`` and ``reason`` say what the runner observed."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


# -- the grader's side --------------------------------------------------------------------------

class _Payload(pickle.Pickler):
    """Pickles what a call sends: data by value, code by name only (see the module doc)."""

    def __init__(self, file, handles: dict[int, tuple]):
        super().__init__(file, protocol=5)
        self.handles, self.proto = handles, 5

    def persistent_id(self, obj):
        if isinstance(obj, StudentName):
            return ("name", obj.__name__)
        known = self.handles.get(id(obj))
        if known is not None and known[2] is obj:
            return ("handle", known[0], known[1])
        if isinstance(obj, plain.Opaque):
            raise pickle.PicklingError(f"{obj!r} came from the student's side and can only "
                                       "go back as itself")
        return None

    def reducer_override(self, obj):
        if isinstance(obj, torch.Tensor) and obj.grad is not None:
            rebuild = obj.__reduce_ex__(self.proto)     # pickle drops .grad: keep it
            if len(rebuild) == 2:
                return _with_grad, (rebuild[0], rebuild[1], obj.grad)
        if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, type,
                            types.MethodType)):
            target = obj.__func__ if isinstance(obj, types.MethodType) else obj
            module = str(getattr(target, "__module__", None) or "")
            qualname = str(getattr(target, "__qualname__", ""))
            if module.split(".")[0] not in ALLOWED_MODULES or "<" in qualname:
                raise pickle.PicklingError(
                    f"{module}.{qualname} cannot cross to the student's side: only library "
                    "functions travel, by name (write it as a module-level function in "
                    "descent.grading and pass its inputs as arguments)")
        return NotImplemented


def _with_grad(rebuild: Callable, args: tuple, grad):
    tensor = rebuild(*args)
    tensor.grad = grad
    return tensor


class Door:
    """The grader's handle on one notebook's student side (see the module doc)."""

    def __init__(self):
        self._handles: dict[int, tuple] = {}          # id(value) → (handle, path, value)
        self._by_outcome: collections.deque = collections.deque()

    # what the two kinds of door implement
    def _send(self, request: tuple) -> dict:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def begin(self, label: str) -> None:
        """A cell starts (its limits and its name in messages start with it)."""

    # the grader's operations
    def run_cell(self, label: str, source: str) -> str | None:
        """Run one of the notebook's cells on the student's side; its error, if any."""
        answer = self._send(("cell", label, source))
        error = answer.get("error")
        return None if error is None else plain.bounded(error, 500)

    def call(self, fn: Callable, args: tuple, kwargs: dict, *, watch: dict | None, rules,
             observe: Callable | None):
        """:func:`descent.grading.sandbox.call` on the student's side; its outcome here."""
        from descent.grading.sandbox import Outcome

        buffer = io.BytesIO()
        _Payload(buffer, self._handles).dump((fn, args, kwargs, watch, rules, observe))
        answer = self._send(("call", buffer.getvalue()))
        if "missing" in answer:
            raise NotDefined(plain.bounded(answer["missing"], 100))
        raw = answer.get("outcome")
        if not isinstance(raw, dict):
            raise plain.ProtocolError("an answer holds no outcome")
        error, delegated, mutated = raw.get("error"), raw.get("delegated"), raw.get("mutated")
        if not (error is None or isinstance(error, str)) or not all(
                isinstance(v, list) and all(isinstance(s, str) for s in v)
                for v in (delegated, mutated)):
            raise plain.ProtocolError("an outcome is malformed")
        out = Outcome(value=plain.decode(raw.get("value")),
                      error=None if error is None else plain.bounded(error, 500),
                      delegated=[plain.bounded(s, 200) for s in delegated[:20]],
                      mutated=[plain.bounded(s, 100) for s in mutated[:20]],
                      observed=plain.decode(raw.get("observed")),
                      warnings=[plain.bounded(w, 300) for w in raw.get("warnings", [])[:5]
                                if isinstance(w, str)])
        handle = answer.get("handle")
        if isinstance(handle, int):
            self._remember(handle, out.value)
        return out

    def _remember(self, handle: int, value: Any) -> None:
        """Values returned by the student's code go back to it as themselves (a state from
        ``init`` given to ``update``), also when the check passes an element of them."""
        keys = []
        for path, node in plain.nodes(value):
            self._handles[id(node)] = (handle, path, node)
            keys.append(id(node))
        self._by_outcome.append(keys)
        while len(self._by_outcome) > KEPT_OUTCOMES:
            for key in self._by_outcome.popleft():
                self._handles.pop(key, None)

    def __enter__(self) -> Door:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_LOCAL = threading.local()     # per thread: the doors ``sandbox.call`` goes through


def _open_doors() -> list[Door]:
    if not hasattr(_LOCAL, "doors"):
        _LOCAL.doors = []
    return _LOCAL.doors


def current() -> Door | None:
    doors = _open_doors()
    return doors[-1] if doors else None


@contextlib.contextmanager
def opened(door: Door) -> Iterator[Door]:
    """While the block runs, ``sandbox.call`` in this thread crosses through ``door``."""
    _open_doors().append(door)
    try:
        yield door
    finally:
        _open_doors().remove(door)


def parse_answer(data: bytes) -> dict:
    """An answer from the student's side: a JSON object, or a ProtocolError."""
    if len(data) > MAX_RESPONSE:
        raise plain.ProtocolError(f"an answer is larger than {MAX_RESPONSE} bytes")
    try:
        answer = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise plain.ProtocolError("an answer is not JSON") from err
    if not isinstance(answer, dict):
        raise plain.ProtocolError("an answer is not a JSON object")
    return answer


# -- the student's side --------------------------------------------------------------------------

class StudentSide:
    """The notebook's namespace and the values its calls returned; answers the grader."""

    def __init__(self, namespace: dict | None = None):
        self.namespace = namespace if namespace is not None else {"__name__": "__main__"}
        self.values: collections.OrderedDict[int, Any] = collections.OrderedDict()
        self._next = 0

    def answer(self, request: tuple) -> dict:
        """The JSON-able answer to one request (never raises for the student's doing)."""
        kind = request[0]
        if kind == "cell":
            return {"error": self.run_cell(request[1], request[2])}
        if kind == "call":
            return self.call(request[1])
        return {"error": f"unknown request {kind!r}"}

    def run_cell(self, label: str, source: str) -> str | None:
        try:
            exec(compile(source, f"<cell {label}>", "exec"), self.namespace)  # noqa: S102
        except BaseException as err:  # noqa: BLE001 - the student's error is data
            from descent.grading.feedback import brief_exception
            return brief_exception(err)
        return None

    def call(self, payload: bytes) -> dict:
        from descent.grading.sandbox import call_here

        try:
            fn, args, kwargs, watch, rules, observe = _Arguments(self, payload).load()
        except NotDefined as missing:
            return {"missing": missing.name}
        out = call_here(fn, *args, watch=watch, rules=rules, observe=observe,
                        namespace=self.namespace, **kwargs)
        handle = self._keep(out.value)
        return {"outcome": {"value": plain.encode(out.value),
                            "error": None if out.error is None else str(out.error),
                            "delegated": [str(s) for s in out.delegated],
                            "mutated": [str(s) for s in out.mutated],
                            "observed": plain.encode(out.observed),
                            "warnings": [str(w) for w in out.warnings]},
                "handle": handle}

    def _keep(self, value: Any) -> int:
        self._next += 1
        self.values[self._next] = value
        while len(self.values) > KEPT_OUTCOMES:
            self.values.popitem(last=False)
        return self._next


class _Arguments(pickle.Unpickler):
    """Reads a call's payload, resolving the student's names and returned values."""

    def __init__(self, side: StudentSide, payload: bytes):
        super().__init__(io.BytesIO(payload))
        self.side = side

    def persistent_load(self, pid):
        kind = pid[0]
        if kind == "name":
            name = pid[1]
            if name in self.side.namespace:
                return self.side.namespace[name]
            if hasattr(builtins, name):
                return getattr(builtins, name)
            raise NotDefined(name)
        if kind == "handle":
            value = self.side.values.get(pid[1])
            if value is None and pid[1] not in self.side.values:
                raise pickle.UnpicklingError("a returned value is no longer kept")
            return plain.part(value, tuple(pid[2]))
        raise pickle.UnpicklingError(f"unknown reference {kind!r}")


class LocalDoor(Door):
    """The student's side in this very process (tests, mutation testing): the same pickles
    and the same plain data as the confined process, without its isolation. Never for a
    submission from someone else."""

    def __init__(self):
        super().__init__()
        self.side = StudentSide()

    def _send(self, request: tuple) -> dict:
        from descent.grading import sandbox

        with sandbox.here():
            answer = self.side.answer(pickle.loads(pickle.dumps(request)))
        return parse_answer(json.dumps(answer, allow_nan=False).encode())
