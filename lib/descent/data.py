"""Seeded data sets that need no download (chapters 3 and 8).

Everything here is a pure function of its arguments and its ``seed``: the same call gives
bit-identical tensors on every machine, and nothing touches the network or the global
random state (each function draws from its own ``torch.Generator``).

- :func:`digits` — the real 8×8 handwritten digits that ship inside scikit-learn
  (1,797 images, 10 classes), as a seeded train/test split of float32 tensors in [0, 1].
- :func:`linear_regression` — :math:`y = Xw^\\star + b^\\star + \\sigma\\varepsilon` with the
  true weights returned, so a fit can be compared with the truth.
- :func:`blobs` and :func:`two_moons` — synthetic classification sets.
- :class:`CharCorpus` — a character-level corpus built from Python's own help texts
  (``pydoc_data.topics``), with a vocabulary, ``encode``/``decode`` and a seeded sampler of
  ``(x, y)`` context windows for next-character prediction.
- :class:`Batches` — a seeded mini-batch iterator that replays the same sequence each time
  it is iterated (which is what lets :func:`descent.train.train` resume a run exactly).

Conventions: features are float32, class labels int64; images are ``(N, 64)`` when
``flat=True`` and ``(N, 1, 8, 8)`` otherwise.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from descent._checks import check_int, check_nonnegative, check_range

__all__ = ["Split", "Regression", "digits", "linear_regression", "blobs", "two_moons",
           "CharCorpus", "Batches", "batches"]


def _generator(seed: int) -> torch.Generator:
    check_int(seed, "seed", low=0)
    return torch.Generator().manual_seed(seed)


class Split(NamedTuple):
    """A train/test split of features ``x`` and targets ``y``."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


class Regression(NamedTuple):
    """A regression set and the truth it was drawn from: ``y = x @ w + b + noise``."""

    x: torch.Tensor   # (n, d)
    y: torch.Tensor   # (n,)
    w: torch.Tensor   # (d,)  true weights w*
    b: float          # true bias b*
    noise: float      # σ, the standard deviation of the noise


# -- real data ------------------------------------------------------------------------------
def digits(*, seed: int = 0, test_fraction: float = 0.25, flat: bool = True) -> Split:
    """The 8×8 handwritten digits of scikit-learn, split at random by ``seed``.

    Pixels (integers 0–16 in the source) are scaled to [0, 1]. ``flat=True`` gives
    ``(N, 64)`` features for an MLP, ``flat=False`` gives ``(N, 1, 8, 8)`` images for a CNN.
    The split is a seeded permutation (not stratified); the same seed gives the same split
    in both forms.
    """
    check_range(test_fraction, "test_fraction", low=0.0, high=1.0, low_open=True,
                high_open=True)
    pixels, labels = _digits_table()
    x = torch.tensor(pixels, dtype=torch.float32) / 16.0             # scale to [0, 1]
    y = torch.tensor(labels, dtype=torch.int64)
    if not flat:
        x = x.reshape(-1, 1, 8, 8)
    order = torch.randperm(len(x), generator=_generator(seed))
    n_test = max(1, round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return Split(x[train], y[train], x[test], y[test])


@functools.lru_cache(maxsize=1)
def _digits_table() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``digits.csv.gz`` (1797 rows: 64 pixels, then the label), read directly.

    The file ships inside scikit-learn, so nothing is downloaded; reading it without importing
    ``sklearn.datasets`` saves 1–3 s in every notebook that uses the digits. It is the same
    table ``sklearn.datasets.load_digits`` returns (tested).
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise ImportError("descent.data.digits needs scikit-learn (it ships the digits)")
    table = np.loadtxt(Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz",
                       delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


# -- synthetic data -------------------------------------------------------------------------
def linear_regression(n: int = 256, d: int = 10, *, noise: float = 0.1, seed: int = 0,
                      dtype: torch.dtype = torch.float32) -> Regression:
    """Linear regression data :math:`y = Xw^\\star + b^\\star + \\sigma\\varepsilon`.

    :math:`X` and :math:`w^\\star` are standard normal, :math:`b^\\star` is drawn from
    N(0, 1) too, and :math:`\\varepsilon \\sim N(0, 1)`. Symbols ↔ arguments: σ ``noise``,
    :math:`n` ``n``, :math:`d` ``d``.
    """
    check_int(n, "n", low=1)
    check_int(d, "d", low=1)
    check_nonnegative(noise, "noise", "σ")
    g = _generator(seed)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    b = torch.randn((), generator=g, dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = x @ w + b + noise * torch.randn(n, generator=g, dtype=torch.float64)
    return Regression(x.to(dtype), y.to(dtype), w.to(dtype), float(b), float(noise))


def blobs(n: int = 300, *, centers: int = 3, d: int = 2, std: float = 1.0,
          spread: float = 5.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian blobs: ``centers`` classes, centers uniform in [-spread, spread]^d.

    Returns ``(x, y)``: float32 ``(n, d)`` points and int64 labels; class ``k`` has
    ``n // centers`` points (the first ``n % centers`` classes one more), in shuffled order.
    """
    check_int(n, "n", low=1)
    check_int(centers, "centers", low=1)
    check_int(d, "d", low=1)
    std = check_nonnegative(std, "std", "σ")
    g = _generator(seed)
    mu = (torch.rand(centers, d, generator=g) * 2 - 1) * spread
    y = torch.arange(n) % centers
    x = mu[y] + std * torch.randn(n, d, generator=g)
    order = torch.randperm(n, generator=g)
    return x[order], y[order]


def two_moons(n: int = 300, *, noise: float = 0.1,
              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaving half circles (scikit-learn's ``make_moons`` shape), seeded.

    Class 0 is the upper arc ``(cos t, sin t)``, class 1 the lower arc
    ``(1 - cos t, 1/2 - sin t)``, ``t`` uniform on [0, π]; Gaussian noise of std ``noise``.
    """
    check_int(n, "n", low=2)
    check_nonnegative(noise, "noise", "σ")
    g = _generator(seed)
    y = torch.arange(n) % 2
    t = torch.rand(n, generator=g) * math.pi
    upper = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    lower = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], dim=1)
    x = torch.where((y == 0)[:, None], upper, lower)
    x = x + noise * torch.randn(n, 2, generator=g)
    order = torch.randperm(n, generator=g)
    return x[order], y[order]


# -- text -----------------------------------------------------------------------------------
class CharCorpus:
    """A character-level corpus: text, vocabulary, ``encode``/``decode`` and a batch sampler.

    The default text is Python's own help pages (``pydoc_data.topics.topics``, about
    465,000 characters), joined in sorted-key order with a blank line between topics, so it
    is the same on every machine with the same Python. ``max_chars`` keeps the first
    characters only (handy for fast tests). The vocabulary is the sorted set of characters;
    the last ``val_fraction`` of the text is held out as ``val_data``.
    """

    def __init__(self, text: str | None = None, *, max_chars: int | None = None,
                 val_fraction: float = 0.1):
        if text is None:
            from pydoc_data.topics import topics  # ships with CPython: no download
            text = "\n\n".join(topics[key] for key in sorted(topics))
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if max_chars is not None:
            text = text[:check_int(max_chars, "max_chars", low=2)]
        check_range(val_fraction, "val_fraction", low=0.0, high=1.0, high_open=True)
        self.text = text
        self.vocab: list[str] = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.vocab)}
        data = self.encode(text)
        n_val = int(val_fraction * len(data))
        self.train_data = data[:len(data) - n_val]
        self.val_data = data[len(data) - n_val:]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> torch.Tensor:
        """Characters → int64 indices; a character outside the vocabulary is an error."""
        try:
            return torch.tensor([self.stoi[ch] for ch in text], dtype=torch.int64)
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} is not in the vocabulary "
                             f"of {self.vocab_size} characters") from None

    def decode(self, indices) -> str:
        """Indices (a tensor or a sequence of ints) → text."""
        if isinstance(indices, torch.Tensor):
            indices = indices.tolist()
        return "".join(self.vocab[i] for i in indices)

    def batches(self, batch_size: int, block_size: int, *, seed: int = 0,
                split: str = "train") -> Batches:
        """Seeded ``(x, y)`` windows: ``x`` is ``(batch_size, block_size)`` characters and
        ``y`` the same windows shifted one character to the right (the next characters)."""
        check_int(block_size, "block_size", low=1)
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        data = self.train_data if split == "train" else self.val_data
        if len(data) <= block_size:
            raise ValueError(f"block_size must be < the {split} text length {len(data)}, "
                             f"got {block_size}")
        return Batches(data, batch_size=batch_size, seed=seed, block_size=block_size)


# -- mini-batches ---------------------------------------------------------------------------
class Batches:
    """A seeded, endless mini-batch iterator that replays from the start on each ``iter()``.

    Two modes:

    - ``Batches(x, y, batch_size=…)``: epochs of a fresh seeded permutation of the rows of
      ``x`` and ``y``; each epoch ends with a smaller batch unless ``drop_last=True``.
    - ``Batches(data, batch_size=…, block_size=T)``: windows of a 1-D token sequence, with
      random start positions; yields ``(data[s:s+T], data[s+1:s+T+1])`` stacked.

    ``epochs=None`` (the default) iterates for ever; the training loop decides how many
    steps to take; in window mode ``epochs`` counts batches (there is no natural epoch).
    Each ``iter()`` restarts from ``seed``, so iterating twice gives the same batches: a
    resumed run can replay the data exactly.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None = None, *, batch_size: int,
                 seed: int = 0, shuffle: bool = True, drop_last: bool = False,
                 epochs: int | None = None, block_size: int | None = None):
        self.batch_size = check_int(batch_size, "batch_size", low=1)
        self.seed = check_int(seed, "seed", low=0)
        self.shuffle, self.drop_last, self.block_size = shuffle, drop_last, block_size
        self.epochs = None if epochs is None else check_int(epochs, "epochs", low=1)
        if block_size is None:
            if y is None:
                raise ValueError("y is required unless block_size is given")
            if len(x) != len(y):
                raise ValueError(f"x and y must have the same length, got {len(x)} for x "
                                 f"and {len(y)} for y")
            if drop_last and len(x) < batch_size:
                raise ValueError(f"batch_size must be <= len(x) = {len(x)} with "
                                 f"drop_last=True, got {batch_size}")
        self.x, self.y = x, y

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = _generator(self.seed)
        if self.block_size is not None:
            yield from self._windows(g)
            return
        n, epoch = len(self.x), 0
        while self.epochs is None or epoch < self.epochs:
            order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
            stop = n - n % self.batch_size if self.drop_last else n
            for start in range(0, stop, self.batch_size):
                idx = order[start:start + self.batch_size]
                yield self.x[idx], self.y[idx]
            epoch += 1

    def _windows(self, g: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        data, t = self.x, self.block_size
        offsets = torch.arange(t)
        count = 0
        while self.epochs is None or count < self.epochs:
            starts = torch.randint(len(data) - t, (self.batch_size,), generator=g)
            idx = starts[:, None] + offsets                  # (batch_size, block_size)
            yield data[idx], data[idx + 1]                   # y is x shifted by one
            count += 1


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, seed: int = 0,
            shuffle: bool = True, drop_last: bool = False,
            epochs: int | None = None) -> Batches:
    """Seeded mini-batches of ``(x, y)``; see :class:`Batches`."""
    return Batches(x, y, batch_size=batch_size, seed=seed, shuffle=shuffle,
                   drop_last=drop_last, epochs=epochs)
