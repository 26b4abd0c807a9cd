"""Determinism of a function given a seed: the run-half the checks send to the student's side.

A function that takes ``seed`` (or a generator) must give the same result for the same seed,
another result for another seed, and leave the global generators alone: NumPy's legacy global
``RandomState`` (``np.random.rand``, ``np.random.seed``), torch's default generator and
Python's ``random``. :func:`seeded_runs` calls the student's function once per seed, on the
student's side, and reports the values and whether a global generator moved; the checks judge.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch


def fingerprints() -> dict[str, str]:
    """A short hash of each global generator's state."""
    state = np.random.get_state()
    numpy = hashlib.sha256(np.asarray(state[1]).tobytes() + repr(state[2:]).encode())
    return {"NumPy's global generator (np.random)": numpy.hexdigest()[:16],
            "torch's global generator": hashlib.sha256(
                torch.random.get_rng_state().numpy().tobytes()).hexdigest()[:16],
            "Python's random": hashlib.sha256(repr(random.getstate()).encode()).hexdigest()[:16]}


def seeded_runs(fn: Callable, args: Sequence, kwargs: dict, seeds: Sequence[int]) -> dict:
    """``fn(*args, **kwargs, seed=s)`` for each ``s`` in ``seeds`` (runs on the student's side).

    Returns ``{"values": [...], "moved": [names of the global generators whose state
    changed]}``."""
    before = fingerprints()
    values: list[Any] = [fn(*args, **kwargs, seed=s) for s in seeds]
    after = fingerprints()
    return {"values": values, "moved": [name for name in before if before[name] != after[name]]}


def moved_message(name: str, moved: Sequence[str]) -> str:
    return (f"{name} changes the state of {' and '.join(moved)}: it draws from (or reseeds) a "
            "global generator. Create one generator from the seed it is given, "
            "`rng = np.random.default_rng(seed)`, and draw only from it, so that the same seed "
            "gives the same result and nothing else is disturbed")
