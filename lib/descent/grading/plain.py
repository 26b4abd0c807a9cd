"""Plain data: the only form in which anything comes back from the student's side.

The student's code runs in another process (:mod:`descent.grading.confine`); what its
functions return crosses to the grader as JSON made by :func:`encode` and is read back by
:func:`decode`, which validates as it goes. Nothing the student's side sends is ever unpickled
or executed.

Exact types only: a subclass of ``float`` or ``ndarray`` is read through the base type, so a
value that overrides ``__eq__``, ``__float__`` or ``__array__`` arrives as the number it holds.
Anything that is not a number, a string, an array of a base dtype, or a tuple, list or dict
of those arrives as :class:`Opaque` (its type's name only).
"""

from __future__ import annotations

import base64
import collections
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

MAX_DEPTH = 12
MAX_ITEMS = 100_000
MAX_TEXT = 2_000            # characters kept of any string the student's side sends


class ProtocolError(Exception):
    """What the student's side sent is not plain data in the agreed form."""


def bounded(text: Any, limit: int = MAX_TEXT) -> str:
    """``text`` as a printable one-screen string: control characters dropped, cut at
    ``limit`` characters (with a note that it was cut)."""
    text = str.__str__(text) if isinstance(text, str) else "<not text>"
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]", "", text)
    return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit} more]"


# -- the student's side: encode --------------------------------------------------------------

def _array(kind: str, arr: np.ndarray, **extra) -> dict:
    arr = arr.copy(order="C")                  # (ascontiguousarray would make 0-d arrays 1-d)
    return {kind: {"dtype": arr.dtype.str, "shape": list(arr.shape),
                   "data": base64.b64encode(arr.tobytes()).decode("ascii"), **extra}}


def encode(x: Any, depth: int = 0) -> Any:
    """A JSON-able form of ``x`` that :func:`decode` turns back into the same plain data.

    Runs on the student's values: it never calls their methods (base-type accessors only)
    and never raises for a strange value (it becomes ``{"$opaque": type name}``).
    """
    if depth > MAX_DEPTH:
        return {"$opaque": "nested too deeply"}
    if x is None or x is True or x is False:
        return x
    if isinstance(x, bool):                     # numpy bool_ is not a bool
        return bool.__bool__(x)
    if isinstance(x, int):
        value = int.__index__(x)
        return value if abs(value) < 2**53 else {"$int": str(value)}
    if isinstance(x, float):
        value = float.__float__(x)
        return value if np.isfinite(value) else {"$float": repr(value)}
    if isinstance(x, str):
        return bounded(x)
    if isinstance(x, torch.Tensor):
        try:
            t = torch.Tensor.detach(x).as_subclass(torch.Tensor).cpu()
            dtype = str(t.dtype).removeprefix("torch.")
            if t.dtype == torch.bfloat16:
                t = t.float()
            return _array("$tensor", t.numpy(), torch_dtype=dtype)
        except Exception as err:                 # noqa: BLE001 - e.g. a sparse or meta tensor
            return {"$opaque": f"tensor ({type(err).__name__})"}
    if isinstance(x, np.ndarray):
        arr = x.view(np.ndarray)
        if arr.dtype.kind not in "biufc":
            return {"$opaque": f"ndarray of {arr.dtype}"}
        return _array("$ndarray", arr)
    if isinstance(x, np.generic) and np.dtype(type(x)).kind in "biufc":
        return _array("$npscalar", np.asarray(x))
    if isinstance(x, tuple):
        items = [encode(v, depth + 1) for v in _items(x)]
        fields = getattr(type(x), "_fields", None)
        if isinstance(fields, tuple) and all(type(f) is str for f in fields) \
                and len(fields) == len(items):
            return {"$namedtuple": {"name": bounded(type(x).__name__, 100),
                                    "fields": list(fields), "values": items}}
        return {"$tuple": items}
    if isinstance(x, list):
        return [encode(v, depth + 1) for v in _items(x)]
    if isinstance(x, dict):
        return {"$dict": [[encode(k, depth + 1), encode(v, depth + 1)]
                          for k, v in _pairs(x)]}
    return {"$opaque": type_name(x)}


def _items(x) -> Iterator:
    """The elements :func:`encode` reads of a tuple or list, in order (base iterators)."""
    iterate = tuple.__iter__ if isinstance(x, tuple) else list.__iter__
    for index, item in enumerate(iterate(x)):
        if index >= MAX_ITEMS:
            return
        yield item


def _pairs(x: dict) -> list:
    return list(dict.items(x))[:MAX_ITEMS]


def part(x: Any, path: tuple[int, ...]) -> Any:
    """The element of ``x`` at ``path`` (indices as :func:`encode` walked it): how the
    student's side finds a value the grader passes back (see ``descent.grading.door``)."""
    for index in path:
        if isinstance(x, (tuple, list)):
            x = list(_items(x))[index]
        elif isinstance(x, dict):
            x = _pairs(x)[index][1]
        else:
            raise LookupError("no such element")
    return x


def type_name(x) -> str:
    try:
        cls = type(x)
        return bounded(f"{cls.__module__}.{cls.__qualname__}", 200)
    except Exception:                            # noqa: BLE001 - a hostile metaclass
        return "an object"


# -- the grader's side: decode ---------------------------------------------------------------

class Opaque:
    """A value the student's side could not send as plain data (one of their objects)."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


_NAMEDTUPLES: dict[tuple, type] = {}


def namedtuple_type(name: str, fields: tuple[str, ...]) -> type:
    """The grader's stand-in for the student's NamedTuple class ``name`` with ``fields``."""
    key = (name, tuple(fields))
    if key not in _NAMEDTUPLES:
        cls = collections.namedtuple(name if name.isidentifier() else "State", fields)
        cls.__reduce__ = _reduce_namedtuple
        _NAMEDTUPLES[key] = cls
    return _NAMEDTUPLES[key]


def make_namedtuple(name: str, fields: tuple[str, ...], values: tuple) -> tuple:
    return namedtuple_type(name, fields)(*values)


def _reduce_namedtuple(self):
    # Sent back to the student's side by value: rebuilt there as the same stand-in class.
    return make_namedtuple, (type(self).__name__, type(self)._fields, tuple(self))


def _decode_array(spec: Any) -> np.ndarray:
    if not isinstance(spec, dict) or not isinstance(spec.get("data"), str) \
            or not isinstance(spec.get("shape"), list):
        raise ProtocolError("an array is malformed")
    try:
        dtype = np.dtype(str(spec.get("dtype")))
    except TypeError as err:
        raise ProtocolError(f"an array has an unknown dtype {spec.get('dtype')!r:.40}") from err
    if dtype.kind not in "biufc" or dtype.hasobject:
        raise ProtocolError(f"an array has dtype {dtype}, not a number type")
    shape = tuple(int(n) for n in spec["shape"])
    try:
        data = base64.b64decode(spec["data"], validate=True)
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    except ValueError as err:
        raise ProtocolError("an array's data does not match its shape") from err


def decode(x: Any, depth: int = 0) -> Any:
    """The inverse of :func:`encode`; validates as it goes (the input is untrusted)."""
    if depth > MAX_DEPTH + 1:
        raise ProtocolError("a value is nested too deeply")
    if x is None or isinstance(x, (bool, int, float)):
        return x
    if isinstance(x, str):
        return bounded(x)
    if isinstance(x, list):
        return [decode(v, depth + 1) for v in x[:MAX_ITEMS]]
    if not isinstance(x, dict) or len(x) != 1:
        raise ProtocolError(f"a value is malformed: {bounded(repr(x), 80)}")
    (tag, body), = x.items()
    try:
        if tag == "$int":
            return int(str(body)[:400])
        if tag == "$float":
            return float(str(body)[:40])
        if tag == "$ndarray":
            return _decode_array(body)
        if tag == "$npscalar":
            return _decode_array(body)[()]
        if tag == "$tensor":
            arr = _decode_array(body)
            dtype = getattr(torch, str(body.get("torch_dtype", "")), None)
            if not isinstance(dtype, torch.dtype):
                raise ProtocolError(f"a tensor has dtype {bounded(body.get('torch_dtype'), 40)}")
            return torch.from_numpy(arr).to(dtype)
        if tag == "$tuple":
            return tuple(decode(v, depth + 1) for v in body[:MAX_ITEMS])
        if tag == "$namedtuple":
            fields = tuple(str(f) for f in body["fields"])
            if not all(f.isidentifier() and not f.startswith("_") for f in fields) \
                    or len(set(fields)) != len(fields) or len(fields) != len(body["values"]):
                raise ProtocolError("a named tuple is malformed")
            return make_namedtuple(str(body["name"]), fields,
                                   tuple(decode(v, depth + 1) for v in body["values"]))
        if tag == "$dict":
            return {_hashable(decode(k, depth + 1)): decode(v, depth + 1)
                    for k, v in body[:MAX_ITEMS]}
        if tag == "$opaque":
            return Opaque(bounded(body, 200))
    except ProtocolError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise ProtocolError(f"a {tag} value is malformed") from err
    raise ProtocolError(f"unknown tag {bounded(tag, 40)!r}")


def _hashable(key):
    return key if isinstance(key, (str, int, float, bool, type(None), tuple)) else repr(key)


def nodes(x: Any, path: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], Any]]:
    """(path, value) of ``x`` and of every container element in it, as :func:`part` finds
    them on the student's side; numbers and strings are left out (they are sent as they
    are)."""
    if x is None or isinstance(x, (bool, int, float, str)):
        return
    yield path, x
    if isinstance(x, (tuple, list)):
        for index, item in enumerate(x):
            yield from nodes(item, (*path, index))
    elif isinstance(x, dict):
        for index, item in enumerate(x.values()):
            yield from nodes(item, (*path, index))
