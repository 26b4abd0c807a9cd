"""The references the grader compares with, and the catalogue of known mistakes.

Each mistake is a *variant of the reference rule*: the same signature, one thing done the
way students often do it. When a student's iterates match a variant (and not the reference),
the feedback names that mistake and the equation that fixes it.

The references are the library's own rules (:mod:`descent.rules`), looked up when a spec is
built, so the grader can never drift from the book. The variants are written here, in NumPy/
torch-agnostic arithmetic, each with every flag off equal to the reference (a test checks it
against :mod:`descent.rules` and ``torch.optim``).

Conventions (the book's, and PyTorch's): the step counter ``t`` is incremented *before* use,
so the first update has t = 1; ε is added *outside* the square root; Adam's ``weight_decay``
is an L2 term added to the gradient, AdamW's is decoupled and scaled by the learning rate.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

from descent import _arrays as xp
from descent.grading.rules import Mistake, RuleSpec

# -- gradient descent (chapter 2, eq. θ_t = θ_{t-1} − η g) --------------------------------------


def _gd(param, grad, state, *, lr):
    return param - lr * grad, state                              # θ_t = θ_{t-1} − η g_t


def _gd_ascent(param, grad, state, *, lr):
    return param + lr * grad, state


def _gd_no_lr(param, grad, state, *, lr):
    return param - grad, state


GD_MISTAKES = (
    Mistake("gradient-ascent", "you step along +g: gradient descent moves *against* the "
            "gradient, θ_t = θ_{t-1} − η g_t (the minus sign is missing)", _gd_ascent),
    Mistake("lr-missing", "the learning rate η is missing: your step is θ − g, the update is "
            "θ_t = θ_{t-1} − η g_t", _gd_no_lr),
)


def gd_spec() -> RuleSpec:
    """Plain gradient descent: the reference is ``descent.rules.sgd_update`` with μ = 0."""
    rules = importlib.import_module("descent.rules")
    update = lambda param, grad, state, *, lr: (rules.sgd_update(param, grad, rules.sgd_init(
        param), lr=lr)[0], state)
    return RuleSpec("gradient descent", update, lambda param: None,
                    hypers=({"lr": 0.1}, {"lr": 0.7}), mistakes=GD_MISTAKES, stateless=True)


# -- SGD with momentum, PyTorch's convention (chapter 4) --------------------------------------


class _Buffer(NamedTuple):
    b: Any = None


def sgd_momentum_variant(param, grad, state, *, lr, momentum=0.0, dampening=0.0,
                         nesterov=False, weight_decay=0.0, ema=False, no_lookahead=False,
                         swapped=False):
    """PyTorch's SGD (all flags off) or one of its known mistakes (a flag on)."""
    if weight_decay:
        grad = grad + weight_decay * param                       # L2 term
    b_old = state.b
    if ema:                                                      # b = μb + (1−μ)g, b₀ = 0
        b = (1 - momentum) * grad if b_old is None else momentum * b_old + (1 - momentum) * grad
    else:                                                        # b = μb + (1−τ)g, b₁ = g
        b = grad if b_old is None else momentum * b_old + (1 - dampening) * grad
    if nesterov and swapped:
        d = b + momentum * grad
    elif nesterov and not no_lookahead:
        d = grad + momentum * b                                  # Nesterov look-ahead
    else:
        d = b
    return param - lr * d, _Buffer(b)


def _variant(fn, **flags):
    return lambda param, grad, state, **hyper: fn(param, grad, state, **hyper, **flags)


SGD_MISTAKES = (
    Mistake("ema-momentum", "your momentum buffer is an EMA, b = μb + (1−μ)g; PyTorch's "
            "convention (asked here) is b_t = μ b_{t-1} + g_t with b_1 = g_1, so the step is "
            "about η/(1−μ) times larger than yours", _variant(sgd_momentum_variant, ema=True)),
    Mistake("nesterov-heavy-ball", "wrong Nesterov look-ahead: your step equals the heavy-ball "
            "step b_t (= g_t + μ b_{t-1}, the *old* buffer); PyTorch's Nesterov steps along "
            "d_t = g_t + μ b_t, with the buffer after this step's update",
            _variant(sgd_momentum_variant, no_lookahead=True)),
    Mistake("nesterov-swapped", "wrong Nesterov look-ahead: you step along b_t + μ g_t; "
            "PyTorch's Nesterov steps along d_t = g_t + μ b_t",
            _variant(sgd_momentum_variant, swapped=True)),
)


def sgd_spec(*, nesterov: bool = False) -> RuleSpec:
    """Heavy ball (or Nesterov) in PyTorch's convention; reference ``descent.rules.sgd_update``."""
    rules = importlib.import_module("descent.rules")
    hypers = ({"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": nesterov,
               "weight_decay": 0.0},
              {"lr": 0.05, "momentum": 0.5, "dampening": 0.0, "nesterov": nesterov,
               "weight_decay": 0.1})
    return RuleSpec("Nesterov momentum" if nesterov else "heavy-ball momentum",
                    rules.sgd_update, rules.sgd_init, hypers, SGD_MISTAKES)


# -- Adam and AdamW (chapter 5) ------------------------------------------------------------------


class _Moments(NamedTuple):
    t: int
    m: Any
    v: Any


def adam_init_variant(param) -> _Moments:
    return _Moments(0, xp.zeros_like(param), xp.zeros_like(param))


def adam_variant(param, grad, state, *, lr, beta1=0.9, beta2=0.999, eps=1e-8,
                 weight_decay=0.0, decoupled=False, bias_correction=True, t_shift=0,
                 freeze_t=False, eps_inside=False, decay="ok"):
    """Adam (``decoupled=False``) or AdamW, or one of their known mistakes.

    Flags: ``bias_correction=False``; ``t_shift`` (the t used in the correction is off by
    that much); ``freeze_t`` (t never incremented: stays 1); ``eps_inside`` (√(v̂+ε));
    ``decay`` = ``"l2"`` (AdamW's decay added to the gradient instead), ``"unscaled"``
    (decoupled decay θ ← θ − λθ, not scaled by η).
    """
    t = 1 if freeze_t else state.t + 1                           # t incremented before use
    tc = t + t_shift
    if weight_decay and (not decoupled or decay == "l2"):
        grad = grad + weight_decay * param                       # Adam: L2 term
    elif weight_decay and decay == "unscaled":
        param = param - weight_decay * param
    elif weight_decay:
        param = param * (1 - lr * weight_decay)                  # AdamW: θ ← θ − ηλθ
    m = beta1 * state.m + (1 - beta1) * grad                     # first moment
    v = beta2 * state.v + (1 - beta2) * grad * grad              # second moment
    if bias_correction:
        m_hat, v_hat = m / (1 - beta1 ** tc), v / (1 - beta2 ** tc)   # bias correction
    else:
        m_hat, v_hat = m, v
    denom = xp.sqrt(v_hat + eps) if eps_inside else xp.sqrt(v_hat) + eps
    return param - lr * m_hat / denom, _Moments(t, m, v)         # θ_t = θ_{t-1} − η m̂/(√v̂+ε)


# (name, explanation, flags of adam_variant) for Adam; AdamW adds the weight-decay mistakes.
_ADAM_MISTAKES = (
    ("no-bias-correction", "bias correction is missing: your first step equals "
     "η·(1−β₁)·g/(√((1−β₂)g²)+ε), not about η·sign(g). Divide the moments by (1 − β₁ᵗ) "
     "and (1 − β₂ᵗ): m̂_t = m_t/(1−β₁ᵗ), v̂_t = v_t/(1−β₂ᵗ)", {"bias_correction": False}),
    ("t-starts-at-0", "the step counter is off by one: your bias correction uses t − 1 "
     "(t starting at 0, 1 − β⁰ = 0 on the first step). Increment t *before* using it, so "
     "the first update has t = 1 in m̂_t = m_t/(1−β₁ᵗ)", {"t_shift": -1}),
    ("t-off-by-one-late", "the step counter is off by one: your bias correction uses "
     "t + 1 (t starting at 1 and incremented before use). The first update has t = 1 in "
     "m̂_t = m_t/(1−β₁ᵗ)", {"t_shift": 1}),
    ("t-not-incremented", "the step counter t is never incremented: your bias correction "
     "uses t = 1 on every step. Store t + 1 in the new state: m̂_t = m_t/(1−β₁ᵗ)",
     {"freeze_t": True}),
    ("eps-inside-sqrt", "ε is inside the square root: you divide by √(v̂ + ε); the update "
     "divides by √v̂ + ε (ε outside the root, as in the paper and PyTorch)",
     {"eps_inside": True}),
)
_ADAMW_MISTAKES = (
    ("l2-instead-of-decoupled", "weight decay is coupled: you add λθ to the gradient "
     "(Adam + L2), so the decay is rescaled by 1/(√v̂+ε). AdamW decouples it: "
     "θ ← θ − ηλθ, applied to the parameter, outside the adaptive step", {"decay": "l2"}),
    ("decay-not-scaled-by-lr", "the decoupled weight decay is not scaled by the learning "
     "rate: you apply θ ← θ − λθ; AdamW (PyTorch's convention) applies θ ← θ − ηλθ",
     {"decay": "unscaled"}),
)

ADAM_HYPERS = ({"lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
               {"lr": 0.05, "beta1": 0.8, "beta2": 0.9, "eps": 0.1, "weight_decay": 0.0})


def adam_spec(reference=None, *, decoupled: bool = False) -> RuleSpec:
    """Adam (or AdamW with ``decoupled=True``) against ``reference`` = ``(update, init)``.

    ``reference`` defaults to the library's ``adam_update``/``adamw_update`` (see
    :func:`library_rule`). A third hyperparameter set turns weight decay on, with a large ε
    so that ε inside or outside the root differs visibly.
    """
    update, init = reference or library_rule("adamw" if decoupled else "adam")
    hypers = ADAM_HYPERS + ({"lr": 0.1, "beta1": 0.9, "beta2": 0.99, "eps": 1e-3,
                             "weight_decay": 0.1 if decoupled else 0.05},)
    catalogue = _ADAM_MISTAKES + (_ADAMW_MISTAKES if decoupled else ())
    mistakes = tuple(Mistake(name, explain,
                             _variant(adam_variant, decoupled=decoupled, **flags),
                             adam_init_variant)
                     for name, explain, flags in catalogue)
    return RuleSpec("AdamW" if decoupled else "Adam", update, init, hypers, mistakes)


# -- RMSprop and AdaGrad (chapter 5) -------------------------------------------------------------


class _Accumulator(NamedTuple):
    t: int
    v: Any


def rmsprop_init_variant(param) -> _Accumulator:
    return _Accumulator(0, xp.zeros_like(param))


def rmsprop_variant(param, grad, state, *, lr, alpha=0.99, eps=1e-8, weight_decay=0.0,
                    square=True, eps_inside=False):
    """PyTorch's RMSprop without momentum (flags off), or a known mistake."""
    if weight_decay:
        grad = grad + weight_decay * param                       # L2 term
    g2 = grad * grad if square else grad                         # g² (the square)
    v = alpha * state.v + (1 - alpha) * g2                       # v_t = αv + (1−α)g²
    denom = xp.sqrt(v + eps) if eps_inside else xp.sqrt(v) + eps
    return param - lr * grad / denom, _Accumulator(state.t + 1, v)


RMSPROP_MISTAKES = (
    Mistake("rmsprop-square-missing", "the square is missing in RMSprop's average: you average "
            "g, the update averages g², v_t = α v_{t-1} + (1−α) g_t²",
            _variant(rmsprop_variant, square=False), rmsprop_init_variant),
    Mistake("eps-inside-sqrt", "ε is inside the square root: you divide by √(v + ε); the update "
            "divides by √v + ε", _variant(rmsprop_variant, eps_inside=True),
            rmsprop_init_variant),
)


def rmsprop_spec(reference=None) -> RuleSpec:
    update, init = reference or library_rule("rmsprop")
    hypers = ({"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0},
              {"lr": 0.05, "alpha": 0.9, "eps": 0.1, "weight_decay": 0.1})
    return RuleSpec("RMSprop", update, init, hypers, RMSPROP_MISTAKES)


# -- wiring to the library's reference rules ------------------------------------------------


def library_rule(name: str):
    """``(descent.rules.<name>_update, descent.rules.<name>_init)``, or a clear error."""
    rules = importlib.import_module("descent.rules")
    try:
        return getattr(rules, f"{name}_update"), getattr(rules, f"{name}_init")
    except AttributeError:
        raise NotImplementedError(f"descent.rules.{name}_update is not in the library yet; "
                                  "the grader compares with the library's rule only") from None
