"""The few array operations the pure rules need, for NumPy arrays and torch tensors alike.

Arithmetic operators already work on both; these cover the functions whose names differ.
None of them mutates its input.
"""

from __future__ import annotations

import numpy as np
import torch


def is_torch(x) -> bool:
    return isinstance(x, torch.Tensor)


def zeros_like(x):
    return torch.zeros_like(x, memory_format=torch.preserve_format) if is_torch(x) \
        else np.zeros_like(x)


def full_like(x, value: float):
    return torch.full_like(x, value, memory_format=torch.preserve_format) if is_torch(x) \
        else np.full_like(x, value)


def sqrt(x):
    return torch.sqrt(x) if is_torch(x) else np.sqrt(x)


def abs(x):  # noqa: A001 - mirrors the NumPy/torch name on purpose
    return torch.abs(x) if is_torch(x) else np.abs(x)


def sign(x):
    return torch.sign(x) if is_torch(x) else np.sign(x)


def maximum(a, b):
    return torch.maximum(a, b) if is_torch(a) else np.maximum(a, b)


def norm(x) -> float:
    """Frobenius / Euclidean norm of the whole array, as a 0-d array or tensor."""
    return torch.linalg.vector_norm(x) if is_torch(x) else np.linalg.norm(np.ravel(x))


def where(cond, a, b):
    return torch.where(cond, a, b) if is_torch(cond) else np.where(cond, a, b)


def copy(x):
    return x.clone() if is_torch(x) else np.array(x, copy=True)
