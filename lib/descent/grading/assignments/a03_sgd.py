"""Checks for assignment 03-sgd: the epoch sampler, the 1/B law, Robbins–Monro, a training run.

Chapter 3 ({ref}`ch03-sgd`). With per-example gradients :math:`g_i`, their mean
:math:`\\bar g` and spread :math:`\\sigma^2 = \\frac1N\\sum_i\\lVert g_i-\\bar g\\rVert^2`, a
mini-batch of B distinct examples gives :math:`\\hat g_B = \\frac1B\\sum_{i\\in\\mathcal B} g_i`:

.. math::

    \\mathbb E\\lVert \\hat g_B - \\bar g\\rVert^2 = \\frac{\\sigma^2}{B}\\,\\frac{N-B}{N-1},
    \\qquad \\eta_t = \\frac{\\eta_0}{1 + t/\\tau},
    \\qquad \\theta_t = \\theta_{t-1} - \\eta_t\\,\\hat g_{B,t}. \\tag{SGD}

The references: the sampler is judged by its properties (every example once per epoch, a new
order each epoch, the same batches for the same seed), so any random generator passes; the
variance by :mod:`descent.noise` (the prediction, and the grader's own sampling for the
measurement's standard error); the schedule by its formula; the training run by the same
run with an autograd gradient and ``descent.rules.sgd_update``, on the same device.

Symbols ↔ arguments: N ``n``, B ``batch_size``, K ``draws``, η₀ ``lr0``, τ ``tau``,
t ``t`` (0 for the first step), θ = (W, b).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from descent.grading import randomness, sandbox
from descent.grading.compare import TOL32, TOL64, allclose, first_difference, scale_mistake
from descent.grading.explore import answered  # noqa: F401 - explore cells: checks.answered
from descent.grading.feedback import PASS, Verdict, fail, passed
from descent.grading.schedules import judge_schedule, run_schedule
from descent.grading.training import TOLERANCE, best_device, graded_on_cuda

PART_SAMPLER = ("3.1", "a shuffled epoch: each example exactly once, a new order each epoch")
PART_VARIANCE = ("3.2", "the 1/B law, E‖ĝ_B − ḡ‖² = (σ²/B)·(N − B)/(N − 1)")
PART_SLOPE = ("3.3", "the log-log slope of the variance against B")
PART_SCHEDULE = ("3.4", "Robbins–Monro, η_t = η₀/(1 + t/τ)")
PART_TRAIN = ("3.5", "eq. (SGD), θ_t = θ_{t−1} − η_t ĝ_B, on softmax regression")


def _references():
    """What the parts of this assignment may not call: the library's own answers."""
    from descent.data import Batches
    return sandbox.forbidding({"descent.noise": None, "descent.data": ("batches",)}, (Batches,))


def _name(fn) -> str:
    return getattr(fn, "__name__", "your function")


def _raise_if_untrusted_failed(out: sandbox.Outcome, name: str, part, where: str = "") -> None:
    if out.delegated:
        fail(f"no points for this part: {name} calls {', '.join(out.delegated)}, the "
             "reference this part asks you to write yourself.", "delegation").raise_for(*part)
    if out.error:
        fail(f"{name} raised {out.error}{where}.", "exception").raise_for(*part)
    if out.mutated:
        fail(f"{name} changed its input {', '.join(out.mutated)} in place; leave the caller's "
             f"arrays as they were (work on copies){where}.", "mutates-input").raise_for(*part)


# -- 3.1 the epoch sampler -----------------------------------------------------------------

def trusted_epoch_batches(n, batch_size, *, epochs, seed, drop_last=False):
    """The grader's sampler: one seeded generator, a fresh permutation per epoch."""
    rng = np.random.default_rng(seed)
    stop = n - n % batch_size if drop_last else n
    return [[order[i:i + batch_size] for i in range(0, stop, batch_size)]
            for order in (rng.permutation(n) for _ in range(epochs))]


def _as_epochs(value, epochs: int) -> list[list[np.ndarray]] | str:
    """The sampler's result as lists of integer arrays, or what is wrong with its shape."""
    try:
        result = [[np.asarray(batch) for batch in epoch] for epoch in value]
    except TypeError:
        return (f"it must return a list of epochs, each a list of index arrays, got "
                f"{type(value).__name__}")
    if len(result) != epochs:
        return f"it returned {len(result)} epochs, expected {epochs}"
    for e, epoch in enumerate(result):
        for k, batch in enumerate(epoch):
            if batch.ndim != 1 or (batch.size and batch.dtype.kind not in "iu"):
                return (f"batch {k} of epoch {e} is not a 1-D array of integer indices "
                        f"(shape {batch.shape}, dtype {batch.dtype})")
    return result


def _order(epoch) -> np.ndarray:
    """An epoch's indices in visiting order (empty when every batch was dropped)."""
    return np.concatenate(epoch) if len(epoch) else np.zeros(0, dtype=int)


def judge_epochs(result, n: int, batch_size: int, epochs: int, drop_last: bool) -> Verdict:
    """Trusted: the properties of a correct epoch sampler, each failure named."""
    result = _as_epochs(result, epochs)
    if isinstance(result, str):
        return fail(result + ".", "wrong-structure")
    keep = n - n % batch_size if drop_last else n
    for e, epoch in enumerate(result):
        flat = _order(epoch)
        sizes = [len(b) for b in epoch]
        if flat.size and (flat.min() < 0 or flat.max() >= n):
            bad = int(flat.max() if flat.max() >= n else flat.min())
            return fail(f"epoch {e} holds the index {bad}, outside 0 … {n - 1}.",
                        "out-of-range")
        counts = np.bincount(flat, minlength=n)
        if (counts > 1).any():
            i, j = int(np.argmax(counts > 1)), int(np.argmax(counts == 0))
            return fail(f"epoch {e} repeats example {i} ({counts[i]} times) and misses "
                        f"example {j}: it samples with replacement. An epoch is a permutation: "
                        "draw `rng.permutation(n)` once per epoch and cut it into batches.",
                        "with-replacement")
        partial = n % batch_size
        if not drop_last and partial and flat.size == n - partial \
                and all(s == batch_size for s in sizes):
            return fail(f"the last partial batch is missing: with n = {n} and B = {batch_size} "
                        f"each epoch ends with a batch of {partial}; with drop_last=False it is "
                        "kept (every example exactly once per epoch).", "dropped-partial")
        if drop_last and partial and flat.size == n:
            return fail(f"with drop_last=True the last partial batch (here {partial} examples) "
                        "must be dropped: every batch has exactly B examples.", "kept-partial")
        if flat.size != keep:
            return fail(f"epoch {e} covers {flat.size} examples, expected {keep} "
                        f"(n = {n}, B = {batch_size}, drop_last={drop_last}).", "coverage")
        wrong = [k for k, s in enumerate(sizes[:-1]) if s != batch_size]
        if wrong or (sizes and sizes[-1] > batch_size) or 0 in sizes:
            k = wrong[0] if wrong else len(sizes) - 1
            return fail(f"batch {k} of epoch {e} has {sizes[k]} examples: every batch has "
                        f"B = {batch_size}, except the last one of an epoch, which may be "
                        "smaller (when drop_last=False).", "batch-size")
    orders = [_order(epoch) for epoch in result]
    if keep > 1 and np.array_equal(orders[0], np.arange(keep)):
        return fail("epoch 0 visits the examples in order 0, 1, 2, …: shuffle them (a random "
                    "permutation per epoch).", "not-shuffled")
    if keep > 1 and epochs > 1 and all(np.array_equal(o, orders[0]) for o in orders[1:]):
        return fail("every epoch visits the examples in the same order: you create the "
                    "generator (or draw the permutation) once for all epochs, or reseed it in "
                    "every epoch. Create one seeded generator, then draw a new permutation "
                    "from it at the start of each epoch.", "same-order-each-epoch")
    return PASS


SAMPLER_CASES = ((10, 3, 3, False), (10, 3, 3, True), (12, 4, 2, False), (11, 4, 2, True),
                 (7, 1, 2, True))


def check_sampler(epoch_batches: Callable, *, seeds: Sequence[int] = (0,),
                  cases: Sequence[tuple[int, int, int, bool]] = SAMPLER_CASES) -> None:
    """Each case is (n, batch_size, epochs, drop_last); n ≥ 7 so that a correct random order
    equals a fixed one with probability ≤ 1/7! per comparison. Each case runs the seed twice
    and the next seed once (:func:`descent.grading.randomness.seeded_runs`): the same seed
    must give the same batches, another seed others, and no global generator may move. The
    cases cover n % B = 0, 1, B − 1 and B = 1, with and without drop_last."""
    part, name = PART_SAMPLER, _name(epoch_batches)
    for seed in seeds:
        for n, size, epochs, drop_last in cases:
            where = f" (n={n}, batch_size={size}, epochs={epochs}, seed={seed}, " \
                    f"drop_last={drop_last})"
            with _references():
                out = sandbox.call(randomness.seeded_runs, epoch_batches, (n, size),
                                   {"epochs": epochs, "drop_last": drop_last},
                                   (seed, seed, seed + 1))
            _raise_if_untrusted_failed(out, name, part, where)
            runs = out.value["values"]
            verdict = judge_epochs(runs[0], n, size, epochs, drop_last)
            if not verdict.ok:
                fail(f"{name}: {verdict.message}{where}", verdict.mistake).raise_for(*part)
            same, other = (_as_epochs(r, epochs) for r in runs[1:])
            flat = lambda epochs_: np.concatenate([_order(e) for e in epochs_])
            if isinstance(same, str) or not np.array_equal(flat(same), flat(runs[0])):
                fail(f"{name} gives other batches when called again with the same seed: it is "
                     "not reproducible. Draw from `np.random.default_rng(seed)`, not from the "
                     f"global generator{where}.", "not-seeded").raise_for(*part)
            if not isinstance(other, str) and flat(other).size > 1 \
                    and np.array_equal(flat(other), flat(runs[0])):
                fail(f"{name} gives the same batches for seed {seed} and seed {seed + 1}: "
                     f"the seed is ignored{where}.", "seed-ignored").raise_for(*part)
            if out.value["moved"]:
                fail(randomness.moved_message(name, out.value["moved"]) + where + ".",
                     "global-rng").raise_for(*part)
    passed(part[0], len(seeds) * len(cases))


def _seeded_number(out: sandbox.Outcome, name: str, part, seed: int, where: str) -> float:
    """The first of three seeded results (seed, seed, seed + 1) as a number, after checking
    that the same seed repeats, another seed differs, and no global generator moved."""
    values = out.value["values"]
    try:
        got = [float(v) for v in values]
    except (TypeError, ValueError):
        fail(f"{name} must return one number, got {type(values[0]).__name__}{where}.",
             "wrong-type").raise_for(*part)
    if not got[0] == got[1] and not (np.isnan(got[0]) and np.isnan(got[1])):
        fail(f"{name} gives {got[0]:.10g}, then {got[1]:.10g} when called again with seed "
             f"{seed}: it is not reproducible. Draw from `np.random.default_rng(seed)`, not "
             f"from the global generator{where}.", "not-seeded").raise_for(*part)
    if got[2] == got[0]:
        fail(f"{name} gives the same result, {got[0]:.10g}, for seed {seed} and seed "
             f"{seed + 1}: the seed is ignored{where}.", "seed-ignored").raise_for(*part)
    if out.value["moved"]:
        fail(randomness.moved_message(name, out.value["moved"]) + where + ".",
             "global-rng").raise_for(*part)
    return got[0]


# -- 3.2 and 3.3 the variance of a mini-batch gradient ---------------------------------------

@functools.lru_cache(maxsize=8)
def example_gradients(seed: int, n: int = 300) -> np.ndarray:
    """N × P per-example gradients of softmax regression on N digits, at a random point.

    Row i is ∇_θ of example i's cross-entropy, θ = (W, b) flattened (P = 64·10 + 10):
    ∂ℓᵢ/∂W = xᵢ (pᵢ − eᵧᵢ)ᵀ and ∂ℓᵢ/∂b = pᵢ − eᵧᵢ, with pᵢ = softmax(Wᵀxᵢ + b).
    """
    from descent.data import digits

    split = digits(seed=0)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(split.x_train), size=n, replace=False)
    x = split.x_train[idx].double().numpy()
    y = split.y_train[idx].numpy()
    W, b = 0.3 * rng.standard_normal((64, 10)), 0.1 * rng.standard_normal(10)
    logits = x @ W + b
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(n), y] -= 1                                      # ∂ℓᵢ/∂logits = p − e_y
    grads = np.concatenate([(x[:, :, None] * p[:, None, :]).reshape(n, -1), p], axis=1)
    grads.setflags(write=False)
    return grads


def predicted_variance(grads, batch_size: int) -> float:
    """(σ²/B)·(N − B)/(N − 1): without replacement (descent.noise)."""
    from descent.noise import gradient_spread
    from descent.noise import predicted_variance as predict

    return float(predict(gradient_spread(np.array(grads)), len(grads), batch_size,
                         replace=False))


def _squared_errors(grads, batch_size: int, draws: int, seed: int) -> np.ndarray:
    """‖ĝ_B − ḡ‖² for ``draws`` batches of B distinct rows (the grader's own sampling).

    A batch is a row of a K × N weight matrix (1/B on its B indices), so K batches cost one
    matrix product. Written here, not taken from descent.noise, because descent.noise is
    forbidden while the student's code runs.
    """
    g = np.asarray(grads, dtype=float)
    rng = np.random.default_rng(seed)
    idx = np.argsort(rng.random((draws, len(g))), axis=1)[:, :batch_size]
    weights = np.zeros((draws, len(g)))
    np.put_along_axis(weights, idx, 1.0 / batch_size, axis=1)
    return ((weights @ g - g.mean(axis=0)) ** 2).sum(axis=1)     # ‖ĝ_B − ḡ‖² per draw


@functools.lru_cache(maxsize=32)
def _draw_spread(seed: int, batch_size: int) -> float:
    """The standard deviation of one draw of ‖ĝ_B − ḡ‖², from 500 draws of the grader's."""
    return float(_squared_errors(example_gradients(seed), batch_size, 500, seed + 7919).std())


def trusted_minibatch_variance(grads, batch_size, *, draws, seed):
    """The grader's measurement, substituted for the student's while 3.3 runs."""
    return float(_squared_errors(grads, int(batch_size), int(draws), int(seed) + 104729).mean())


def check_variance(minibatch_variance: Callable, *, seeds: Sequence[int] = (0,),
                   batch_sizes: Sequence[int] = (8, 100), draws: int = 500) -> None:
    """The measurement within 5 standard errors of the prediction, and seeded: the same seed
    twice gives the same number, the next seed another, and no global generator moves
    (:func:`descent.grading.randomness.seeded_runs`).

    Why 5: the mean of K draws has standard error s/√K, with s the spread of one draw (the
    grader measures it on 500 draws of its own, once per seed and B); a correct measurement
    fails with probability below 1e-6. Measured here: s/√K is 1.2 % of the variance at
    K = 1000, so 1.7 % at K = 500. The mistakes lie much further away: sampling with
    replacement gives σ²/B, (N − 1)/(N − B) = 1.5 times more at B = 100 of N = 300 (about
    30 standard errors); a sum instead of a mean gives B² times more; a mean over the P
    coordinates gives P = 650 times less.
    """
    part, name = PART_VARIANCE, _name(minibatch_variance)
    for seed in seeds:
        grads = example_gradients(seed)
        n, p = grads.shape
        for size in batch_sizes:
            arg = np.array(grads)
            with _references():
                out = sandbox.call(randomness.seeded_runs, minibatch_variance, (arg, size),
                                   {"draws": draws}, (seed, seed, seed + 1),
                                   watch={"grads": arg})
            where = f" (N = {n}, P = {p}, B = {size}, K = {draws} draws, seed {seed})"
            _raise_if_untrusted_failed(out, name, part, where)
            got = _seeded_number(out, name, part, seed, where)
            expected = predicted_variance(grads, size)
            se = _draw_spread(seed, size) / math.sqrt(draws)
            if np.isfinite(got) and abs(got - expected) <= 5 * se:
                continue
            with_replacement = expected * (n - 1) / (n - size)
            known = {
                with_replacement: "this is σ²/B, the variance *with* replacement: draw each "
                "batch without replacement (B distinct examples, as in an epoch), "
                "`rng.choice(N, B, replace=False)`, whose variance is (σ²/B)·(N − B)/(N − 1)",
                expected * size ** 2: "your ĝ_B sums the B gradients: average them, "
                "ĝ_B = (1/B) Σ g_i",
                expected / p: "you average the squared error over the P coordinates: the "
                "variance here is the squared norm ‖ĝ_B − ḡ‖², a sum over coordinates",
                math.sqrt(expected): "this is the standard deviation: return the mean of the "
                "squared norms ‖ĝ_B − ḡ‖², not its square root",
            }
            for value, meaning in known.items():
                if abs(got - value) <= 5 * se * max(1.0, value / expected) and \
                        abs(value - expected) > 10 * se:
                    fail(f"{meaning}{where}.", "variance").raise_for(*part)
            fail(f"{name} measured {got:.6g}; the prediction is {expected:.6g} ± {5 * se:.2g} "
                 f"(5 standard errors of a {draws}-draw mean){where}.", "measurement"
                 ).raise_for(*part)
    passed(part[0], len(seeds) * len(batch_sizes))


def check_slope(variance_slope: Callable, *, seeds: Sequence[int] = (0,),
                batch_sizes: Sequence[int] = (2, 4, 8, 16, 32, 64), draws: int = 400,
                atol: float = 0.05) -> None:
    """The fitted slope of log variance against log B, within 0.05 of the prediction's slope;
    seeded like :func:`check_variance` (the seed it is given is passed on).

    The student's ``minibatch_variance`` is replaced by the grader's own measurement while
    this part runs, so a mistake in 3.2 costs 3.2 only. Why 0.05: with 400 draws per point,
    30 repeated measurements of the slope (seeds 0 and 4, these batch sizes) had a standard
    deviation of 0.004–0.006, so 0.05 is about 9 of them. The prediction itself is not −1:
    the factor (N − B)/(N − 1) bends it.
    """
    part, name = PART_SLOPE, _name(variance_slope)
    from descent.noise import loglog_slope

    for seed in seeds:
        grads = example_gradients(seed)
        arg = np.array(grads)
        with _references():
            out = sandbox.call(randomness.seeded_runs, variance_slope,
                               (arg, list(batch_sizes)), {"draws": draws},
                               (seed, seed, seed + 1), watch={"grads": arg},
                               trusted={"minibatch_variance": trusted_minibatch_variance})
        where = f" (B = {list(batch_sizes)}, seed {seed})"
        _raise_if_untrusted_failed(out, name, part, where)
        got = _seeded_number(out, name, part, seed, where)
        expected = loglog_slope(batch_sizes, [predicted_variance(grads, b) for b in batch_sizes])
        if abs(got - expected) <= atol:
            continue
        hint = ""
        if abs(got - expected / 2) <= atol:
            hint = " That is half the slope: you fitted the standard deviation, not the variance."
        elif abs(got - 1 / expected) <= atol and abs(expected + 1) > 2 * atol:
            hint = " That is 1/slope: the arguments of the fit are swapped (x is log B)."
        elif abs(got * math.log(10) - expected) <= atol or abs(got / math.log(10) - expected) \
                <= atol:
            hint = " The logarithms of B and of the variance must use the same base."
        fail(f"{name} returned the slope {got:.4f}; the measurement's slope is about "
             f"{expected:.4f} (±{atol}).{hint}{where}", "slope").raise_for(*part)
    passed(part[0], len(seeds))


# -- 3.4 the Robbins–Monro schedule ----------------------------------------------------------

def reference_robbins_monro(t: int, *, lr0: float, tau: float) -> float:
    return lr0 / (1 + t / tau)                                   # η_t = η₀/(1 + t/τ)


def check_schedule(robbins_monro: Callable, *, settings: Sequence[tuple[float, float]] = (
        (0.5, 10.0), (0.1, 3.0)), steps: int = 60) -> None:
    """Steps 0 … steps − 1 against η₀/(1 + t/τ); off-by-one, a square or a root named."""
    part, name = PART_SCHEDULE, _name(robbins_monro)
    for lr0, tau in settings:
        got = run_schedule(functools.partial(robbins_monro, lr0=lr0, tau=tau), steps)
        where = f" (η₀ = {lr0}, τ = {tau})"
        if got.ok:
            ts = np.arange(steps)
            for power, meaning in ((2, "decays like 1/t²: then Σ η_t < ∞ and SGD freezes "
                                       "before it arrives (the first Robbins–Monro condition "
                                       "fails)"),
                                   (0.5, "decays like 1/√t: then Σ η_t² = ∞ and the noise "
                                         "never dies out (the second Robbins–Monro condition "
                                         "fails)")):
                if allclose(got.value, lr0 / (1 + ts / tau) ** power, TOL64):
                    fail(f"{name} {meaning}. The schedule asked for is η₀/(1 + t/τ){where}.",
                         "decay-power").raise_for(*part)
        reference = lambda t, lr0=lr0, tau=tau: reference_robbins_monro(t, lr0=lr0, tau=tau)
        verdict = judge_schedule(reference, steps, got, fn_name=name)
        if not verdict.ok:
            fail(f"{verdict.message}{where}", verdict.mistake).raise_for(*part)
    passed(part[0], len(settings) * steps)


# -- 3.5 softmax regression on the digits with SGD ---------------------------------------------

def reference_logreg_step(W, b, x, y, lr):
    """One step of (SGD) on the mean cross-entropy: autograd, then descent.rules.sgd_update."""
    from descent.rules import sgd_init, sgd_update

    W_, b_ = (torch.as_tensor(v).detach().clone().requires_grad_() for v in (W, b))
    F.cross_entropy(torch.as_tensor(x) @ W_ + b_, torch.as_tensor(y)).backward()
    return (sgd_update(W_.detach(), W_.grad, sgd_init(W_), lr=lr)[0],
            sgd_update(b_.detach(), b_.grad, sgd_init(b_), lr=lr)[0])


def _batch(seed: int, size: int, dtype: torch.dtype):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(size, 64, generator=gen, dtype=dtype)
    y = torch.randint(10, (size,), generator=gen)
    W = 0.3 * torch.randn(64, 10, generator=gen, dtype=dtype)
    b = 0.1 * torch.randn(10, generator=gen, dtype=dtype)
    return W, b, x, y


def _judge_step(got, expected, inputs, tol, where: str) -> Verdict:
    W, b, x, y = inputs
    try:
        got = tuple(torch.as_tensor(v).detach().cpu().double().numpy() for v in got)
        assert len(got) == 2
    except (TypeError, ValueError, AssertionError, RuntimeError):
        return fail(f"the step must return the pair (new_W, new_b){where}.", "wrong-type")
    dW, db = (g - v.double().numpy() for g, v in zip(got, (W, b)))
    eW, eb = (e.double().numpy() - v.double().numpy() for e, v in zip(expected, (W, b)))
    if allclose(dW, eW, tol) and allclose(db, eb, tol):
        return PASS
    if allclose(dW, eW, tol) and not np.any(db):
        return fail(f"W moves as it should but b does not: the bias is a parameter too, "
                    f"b ← b − η·mean(p − e_y){where}.", "bias-not-updated")
    meaning = scale_mistake(dW, eW, tol, {
        float(len(y)): "your step is B times too large: the gradient sums over the batch; the "
                       "loss is the *mean* cross-entropy, so divide by B",
        -1.0: "you step along +ĝ: SGD moves against the gradient, θ_t = θ_{t−1} − η_t ĝ",
        1 / float(len(y)): "your step is B times too small: you divided by B twice"})
    if meaning:
        return fail(f"{meaning}{where}.", "scale")
    verdict = first_difference(dW, eW, tol, what="change of W")
    return fail(f"{verdict.message} The gradient of the mean cross-entropy is "
                f"∂ℓ/∂W = xᵀ(softmax(xW + b) − onehot(y))/B{where}", verdict.mistake)


@dataclass(frozen=True)
class LogRegRun:
    """The grader's run: digits split, initial θ, batches and schedule, all from seeds.

    On CUDA while nbgrader grades (``NBGRADER_EXECUTION``) it runs 4 times as many epochs.
    """

    seed: int = 0
    epochs: int = 2
    batch_size: int = 32
    lr0: float = 2.0
    tau: float = 40.0
    device: str | None = None

    def resolved(self) -> LogRegRun:
        device = self.device or best_device().type
        epochs = self.epochs * 4 if graded_on_cuda(device) else self.epochs
        return LogRegRun(self.seed, epochs, self.batch_size, self.lr0, self.tau, device)


def logreg_losses(step: Callable, run: LogRegRun, *, untrusted: bool) -> sandbox.Outcome:
    """Train softmax regression with ``step``; the grader computes every loss itself.

    ``value`` = dict(losses per step (the mini-batch loss before the step), final training
    loss, test accuracy). With ``untrusted=True`` each call of ``step`` goes through the
    sandbox (references forbidden, inputs watched); the first failure stops the run.
    """
    from descent.data import digits

    run = run.resolved()
    device = torch.device(run.device)
    split = digits(seed=run.seed)
    x, y = split.x_train.to(device), split.y_train.to(device)
    gen = torch.Generator().manual_seed(run.seed + 1)
    W = (0.01 * torch.randn(64, 10, generator=gen)).to(device)
    b = torch.zeros(10, device=device)
    losses = []
    batches = trusted_epoch_batches(len(x), run.batch_size, epochs=run.epochs,
                                    seed=run.seed + 2)
    t = 0
    for epoch in batches:
        for idx in epoch:
            idx = torch.as_tensor(idx, device=device)
            xb, yb = x[idx], y[idx]
            losses.append(float(F.cross_entropy(xb @ W + b, yb)))
            lr = reference_robbins_monro(t, lr0=run.lr0, tau=run.tau)
            if untrusted:
                out = sandbox.call(step, W, b, xb, yb, lr, watch={"W": W, "b": b, "x": xb,
                                                                  "y": yb})
                if not out.ok:
                    out.value = {"step": t + 1}
                    return out
                try:
                    new_W, new_b = (torch.as_tensor(v).detach() for v in out.value)
                except (TypeError, ValueError, RuntimeError):
                    return sandbox.Outcome({"step": t + 1}, error="the step must return the "
                                           "pair (new_W, new_b)")
                if new_W.shape != W.shape or new_b.shape != b.shape:
                    return sandbox.Outcome({"step": t + 1}, error=(
                        f"the step returned shapes {tuple(new_W.shape)} and "
                        f"{tuple(new_b.shape)}, expected {tuple(W.shape)} and {tuple(b.shape)}"))
                W, b = new_W.to(device, torch.float32), new_b.to(device, torch.float32)
            else:
                W, b = reference_logreg_step(W, b, xb, yb, lr)
            t += 1
    final = float(F.cross_entropy(x @ W + b, y))
    accuracy = float(((split.x_test.to(device) @ W + b).argmax(dim=1)
                      == split.y_test.to(device)).float().mean())
    return sandbox.Outcome({"losses": np.asarray(losses), "final": final,
                            "accuracy": accuracy})


def judge_logreg(got: sandbox.Outcome, run: LogRegRun, *, fn_name: str,
                 max_final_loss: float = 0.6, min_accuracy: float = 0.85) -> Verdict:
    """Trusted: the reference run on the same device, step by step, then the thresholds.

    Tolerance per device as in :mod:`descent.grading.training` (a hand-written gradient and
    autograd differ by float32 rounding, ~1e-7 relative per step, on a convex problem whose
    errors do not grow). Thresholds: from ln 10 = 2.30, two epochs of the reference reach a
    training loss of 0.27–0.30 and a test accuracy of 0.90–0.94 (seeds 0–3, measured); 0.6
    and 0.85 leave a margin.
    """
    device = run.resolved().device
    if got.delegated:
        return fail(f"no points for this part: {fn_name} calls {', '.join(got.delegated)}, "
                    "the reference this part asks you to write yourself.", "delegation")
    at = f" at step {got.value['step']}" if isinstance(got.value, dict) and "step" in \
        got.value else ""
    if got.error:
        return fail(f"{fn_name} raised {got.error}{at} of the grader's run on {device}.",
                    "exception")
    if got.mutated:
        return fail(f"{fn_name} changed its input {', '.join(got.mutated)} in place{at} "
                    "(e.g. `W -= lr * grad`): return new tensors, `W - lr * grad_W`.",
                    "mutates-input")
    expected = logreg_losses(None, run, untrusted=False).value
    mine, ref, tol = got.value["losses"], expected["losses"], TOLERANCE[device]
    if not np.isfinite(mine).all():
        t = int(np.argmax(~np.isfinite(mine)))
        return fail(f"the loss became {mine[t]} at step {t} of the grader's run on {device}; "
                    f"the reference's loss there is {ref[t]:.6g}.", "non-finite")
    rel = np.abs(mine - ref) / np.maximum(np.abs(ref), 1e-12)
    if (rel > tol).any():
        t = int(np.argmax(rel > tol))
        return fail(f"the loss curve leaves the reference run at step {t} on {device}: "
                    f"expected {ref[t]:.6g}, got {mine[t]:.6g} (relative {rel[t]:.1e} > "
                    f"{tol:g}, the tolerance for this device).", "curve")
    if not (got.value["final"] <= max_final_loss and got.value["accuracy"] >= min_accuracy):
        return fail(f"after the run the training loss is {got.value['final']:.4g} and the test "
                    f"accuracy {got.value['accuracy']:.3f}; expected a loss ≤ {max_final_loss} "
                    f"and an accuracy ≥ {min_accuracy}.", "final-loss")
    return PASS


def check_logreg(logreg_sgd_step: Callable, *, seeds: Sequence[int] = (0,),
                 batch_sizes: Sequence[int] = (5,), runs: Sequence[LogRegRun] = (LogRegRun(),)
                 ) -> None:
    """One step on grader-chosen batches (float64 and float32), then the training runs."""
    part, name = PART_TRAIN, _name(logreg_sgd_step)
    for seed in seeds:
        for size in batch_sizes:
            for dtype in (torch.float64, torch.float32):
                inputs = _batch(seed, size, dtype)
                args = tuple(v.clone() for v in inputs)
                out = sandbox.call(logreg_sgd_step, *args, 0.3,
                                   watch=dict(zip(("W", "b", "x", "y"), args)))
                where = f" (one step on a batch of B = {size}, seed {seed}, {dtype}, η = 0.3)"
                _raise_if_untrusted_failed(out, name, part, where)
                tol = TOL64 if dtype == torch.float64 else TOL32
                expected = reference_logreg_step(*inputs, 0.3)
                _judge_step(out.value, expected, inputs, tol, where).raise_for(*part)
    for run in runs:
        got = logreg_losses(logreg_sgd_step, run, untrusted=True)
        judge_logreg(got, run, fn_name=name).raise_for(*part)
        print(f"The grader's run on {run.resolved().device} (seed {run.seed}): loss "
              f"{got.value['losses'][0]:.3f} -> {got.value['final']:.3f} on the training set, "
              f"test accuracy {got.value['accuracy']:.3f}.")
    passed(part[0], len(seeds) * len(batch_sizes) * 2 + len(runs))
