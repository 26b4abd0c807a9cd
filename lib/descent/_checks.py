"""The one place that checks user-supplied hyperparameters.

Every message names the argument, its symbol in the book, the allowed range and the value
received, e.g. ``ValueError("beta1 (β₁) must be in [0, 1), got 1.0")``.
"""

from __future__ import annotations

import math
from numbers import Real


def _describe(name: str, symbol: str | None) -> str:
    return f"{name} ({symbol})" if symbol else name


def check_real(value, name: str, symbol: str | None = None) -> float:
    """Return ``value`` as a float, or raise TypeError/ValueError for non-numbers and NaN."""
    if isinstance(value, bool) or not isinstance(value, Real):
        # A 0-d tensor is accepted as a number (torch allows a tensor lr).
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            value = value.item()
        else:
            raise TypeError(f"{_describe(name, symbol)} must be a real number, "
                            f"got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{_describe(name, symbol)} must be a finite number, got {value}")
    return value


def check_range(value, name: str, symbol: str | None = None, *, low: float = -math.inf,
                high: float = math.inf, low_open: bool = False, high_open: bool = False) -> float:
    """Check ``low <= value <= high`` (open ends where asked) and return it as a float."""
    value = check_real(value, name, symbol)
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above:
        # An infinite end is never attained: it is always written as open.
        interval = (("(" if low_open or low == -math.inf else "[") + _fmt(low) + ", "
                    + _fmt(high) + (")" if high_open or high == math.inf else "]"))
        raise ValueError(f"{_describe(name, symbol)} must be in {interval}, got {value!r}")
    return value


def check_nonnegative(value, name: str, symbol: str | None = None) -> float:
    return check_range(value, name, symbol, low=0.0)


def check_positive(value, name: str, symbol: str | None = None) -> float:
    return check_range(value, name, symbol, low=0.0, low_open=True)


def check_unit_interval(value, name: str, symbol: str | None = None) -> float:
    """A decay rate such as β₁: in [0, 1)."""
    return check_range(value, name, symbol, low=0.0, high=1.0, high_open=True)


def check_int(value, name: str, *, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")
    return value


def check_same_shape(a, b, name_a: str = "param", name_b: str = "grad") -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{name_b} must have the shape of {name_a}, got {tuple(b.shape)} "
                         f"for {name_b} and {tuple(a.shape)} for {name_a}")


def _fmt(x: float) -> str:
    if x == math.inf:
        return "∞"
    if x == -math.inf:
        return "-∞"
    return f"{x:g}"
