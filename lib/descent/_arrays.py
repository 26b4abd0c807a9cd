"""The few array operations the pure rules need, for NumPy arrays and torch tensors alike.

Arithmetic operators already work on both; these cover the functions whose names differ.
None of them mutates its input.

A third kind of array passes through here: the stand-ins with which
:mod:`descent.optim._program` traces a rule once per param group. They record ``sqrt``,
``abs``, ``sign`` and ``maximum``; the other functions cannot be recorded elementwise (a
norm is a reduction; ``zeros_like``, ``where`` and ``copy`` make arrays of their own), so
they raise ``Untraceable`` and that group runs the rule tensor by tensor instead.
"""

from __future__ import annotations

import numpy as np
import torch


def is_torch(x) -> bool:
    return isinstance(x, torch.Tensor)


def is_traced(x) -> bool:
    """A stand-in of :mod:`descent.optim._program` (checked by a class flag, not an import)."""
    return getattr(type(x), "_descent_traced", False)


def _not_traced(name: str, *arrays) -> None:
    if any(is_traced(x) for x in arrays):
        from descent.optim._program import Untraceable
        raise Untraceable(f"{name} is not recorded by the tracer")


def zeros_like(x):
    _not_traced("zeros_like", x)
    return torch.zeros_like(x, memory_format=torch.preserve_format) if is_torch(x) \
        else np.zeros_like(x)


def full_like(x, value: float):
    _not_traced("full_like", x)
    return torch.full_like(x, value, memory_format=torch.preserve_format) if is_torch(x) \
        else np.full_like(x, value)


def sqrt(x):
    if is_traced(x):
        return x.sqrt()
    return torch.sqrt(x) if is_torch(x) else np.sqrt(x)


def abs(x):  # noqa: A001 - mirrors the NumPy/torch name on purpose
    if is_traced(x):
        return x.__abs__()
    return torch.abs(x) if is_torch(x) else np.abs(x)


def sign(x):
    if is_traced(x):
        return x.sign()
    return torch.sign(x) if is_torch(x) else np.sign(x)


def maximum(a, b):
    if is_traced(a):
        return a.maximum(b)
    if is_traced(b):
        return b.tape.binary("maximum", a, b)
    return torch.maximum(a, b) if is_torch(a) else np.maximum(a, b)


def norm(x) -> float:
    """Frobenius / Euclidean norm of the whole array, as a 0-d array or tensor."""
    _not_traced("norm", x)
    return torch.linalg.vector_norm(x) if is_torch(x) else np.linalg.norm(np.ravel(x))


def where(cond, a, b):
    _not_traced("where", cond, a, b)
    return torch.where(cond, a, b) if is_torch(cond) else np.where(cond, a, b)


def copy(x):
    _not_traced("copy", x)
    return x.clone() if is_torch(x) else np.array(x, copy=True)
