"""Tiny models that train on a CPU in seconds (chapters 3–8).

- :func:`mlp` — a multilayer perceptron of chosen widths and activation;
- :class:`SmallCNN` — two 3×3 convolutions for the 1×8×8 digits of :func:`descent.data.digits`;
- :class:`TinyTransformer` — a character-level, decoder-only transformer (causal
  self-attention, pre-norm blocks, learned positions), with :func:`sequence_cross_entropy`
  as its loss.

Every constructor takes a ``seed`` and initialises its weights from it inside
``torch.random.fork_rng``: the same seed gives the same weights, and the global random state
is left untouched.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from descent._checks import check_int, check_range

__all__ = ["mlp", "SmallCNN", "TinyTransformer", "sequence_cross_entropy", "count_parameters"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid,
                "silu": nn.SiLU, "identity": nn.Identity}


def _seeded(build, seed: int):
    """Run ``build()`` with torch's global RNG set to ``seed``, then restore it."""
    check_int(seed, "seed", low=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def count_parameters(model: nn.Module) -> int:
    """The number of trainable scalars in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def mlp(in_features: int, widths: tuple[int, ...] | list[int], out_features: int, *,
        activation: str = "relu", seed: int = 0, dtype: torch.dtype = torch.float32
        ) -> nn.Sequential:
    """``Linear → act → … → Linear``: hidden layers of the given ``widths``.

    ``widths=()`` gives a linear model (logistic or linear regression). PyTorch's default
    initialisation (Kaiming-uniform weights, uniform biases), drawn from ``seed``.
    """
    check_int(in_features, "in_features", low=1)
    check_int(out_features, "out_features", low=1)
    for w in widths:
        check_int(w, "widths[i]", low=1)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, "
                         f"got {activation!r}")

    def build():
        sizes = [in_features, *widths, out_features]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b, dtype=dtype))
            if i < len(sizes) - 2:
                layers.append(_ACTIVATIONS[activation]())
        return nn.Sequential(*layers)

    return _seeded(build, seed)


class SmallCNN(nn.Module):
    """A small CNN for ``(N, 1, 8, 8)`` digits: two conv–ReLU–maxpool stages and a linear head.

    Shapes: 1×8×8 → ``c1``×4×4 → ``c2``×2×2 → ``num_classes`` logits.
    """

    def __init__(self, num_classes: int = 10, *, channels: tuple[int, int] = (8, 16),
                 seed: int = 0):
        super().__init__()
        check_int(num_classes, "num_classes", low=2)
        c1, c2 = (check_int(c, "channels[i]", low=1) for c in channels)

        def build():
            features = nn.Sequential(
                nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # → c1×4×4
                nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # → c2×2×2
            )
            return features, nn.Linear(c2 * 2 * 2, num_classes)

        self.features, self.head = _seeded(build, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 8, 8):
            raise ValueError(f"SmallCNN expects images of shape (N, 1, 8, 8), got "
                             f"{tuple(x.shape)}; use descent.data.digits(flat=False)")
        return self.head(self.features(x).flatten(1))


class _Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(),
                                 nn.Linear(4 * d_model, d_model), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        # (B, T, D) → (B, heads, T, D/heads)
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)
                   for z in (q, k, v))
        att = F.scaled_dot_product_attention(               # softmax(QKᵀ/√d_h + causal mask) V
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class TinyTransformer(nn.Module):
    """A character-level decoder-only transformer (GPT-style, pre-norm, learned positions).

    Input: int64 tokens ``(B, T)`` with ``T <= block_size``; output: logits ``(B, T, V)``
    for the next character at each position. Train it with :func:`sequence_cross_entropy`.
    The defaults (2 layers, ``d_model=48``, 4 heads, about 60k parameters for a 100-character
    vocabulary) learn visible structure on :class:`descent.data.CharCorpus` in seconds.
    """

    def __init__(self, vocab_size: int, *, block_size: int = 32, d_model: int = 48,
                 n_heads: int = 4, n_layers: int = 2, dropout: float = 0.0, seed: int = 0):
        super().__init__()
        check_int(vocab_size, "vocab_size", low=1)
        self.block_size = check_int(block_size, "block_size", low=1)
        check_int(d_model, "d_model", low=1)
        check_int(n_heads, "n_heads", low=1)
        check_int(n_layers, "n_layers", low=1)
        check_range(dropout, "dropout", "p", low=0.0, high=1.0, high_open=True)
        if d_model % n_heads:
            raise ValueError(f"d_model must be divisible by n_heads, got d_model={d_model}, "
                             f"n_heads={n_heads}")

        def build():
            return (nn.Embedding(vocab_size, d_model), nn.Embedding(block_size, d_model),
                    nn.ModuleList(_Block(d_model, n_heads, dropout) for _ in range(n_layers)),
                    nn.LayerNorm(d_model), nn.Linear(d_model, vocab_size))

        self.tok, self.pos, self.blocks, self.ln_f, self.head = _seeded(build, seed)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.ndim != 2 or idx.shape[1] > self.block_size:
            raise ValueError(f"TinyTransformer expects tokens of shape (B, T) with "
                             f"T <= block_size = {self.block_size}, got {tuple(idx.shape)}")
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, n_new: int, *, temperature: float = 1.0,
                 seed: int = 0) -> torch.Tensor:
        """Append ``n_new`` sampled characters to ``idx`` ``(B, T)``; seeded, no global RNG."""
        g = torch.Generator(device=idx.device).manual_seed(seed)
        for _ in range(n_new):
            logits = self(idx[:, -self.block_size:])[:, -1] / temperature
            nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=g)
            idx = torch.cat([idx, nxt], dim=1)
        return idx


def sequence_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every position: logits ``(B, T, V)``, targets ``(B, T)``."""
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits must be (B, T, V) for targets (B, T), got "
                         f"{tuple(logits.shape)} and {tuple(targets.shape)}")
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
