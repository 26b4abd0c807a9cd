"""Mutation testing of the grader (:mod:`descent.grading.mutation`), as a test.

- a fixed sample of the mutants of every assignment is graded as submissions through the
  class grader's path: each must lose points on its part, or be listed as equivalent;
- every mutant listed in ``tests/mutants/equivalent.toml`` is proved equivalent numerically:
  the reference and the mutant, called on random inputs, agree;
- the generator's operators, and the diagnosis search's names, on a few known mutants.

The whole run is ``make mutants`` (its table is in ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest
import torch
from nbgrader_helpers import corpus

from descent.grading import mutants as generator
from descent.grading import mutation, search

LISTED = mutation.equivalent()
SAMPLE_EVERY = 25          # one mutant in 25 of each assignment, at a fixed offset


def _sample() -> list[str]:
    keys = []
    for assignment in mutation.ASSIGNMENTS:
        found = [f"{assignment}/{m.cell}/{m.ident}" for m in mutation.all_mutants(assignment)]
        keys += found[7::SAMPLE_EVERY]
    return keys


SAMPLE = _sample()


def test_the_generator_covers_every_operator_and_enough_mutants():
    everything = [m for a in mutation.ASSIGNMENTS for m in mutation.all_mutants(a)]
    assert len(everything) >= 300
    assert {m.operator for m in everything} == set(generator.OPERATORS)
    assert len({(m.cell, m.ident) for m in everything}) == len(everything)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)     # `None()` in a removed closure
        for m in everything:
            compile(m.source, m.ident, "exec")


def test_sampled_mutants_lose_points_on_their_part():
    """A fixed sample (about 40 mutants, every assignment): killed, or listed as equivalent."""
    results = mutation.run(select_=SAMPLE, workers=2)
    assert len(results) == len(SAMPLE)
    survivors = [f"{g.assignment}/{g.cell}/{g.ident} ({g.description})" for g in results
                 if g.status in ("survived", "equivalent-killed")]
    assert not survivors, survivors
    killed = [g for g in results if g.status == "killed"]
    named = [g for g in killed if g.kind == "named" or g.ident in (g.named_as or [])]
    assert len(named) >= 0.9 * len(killed), [(g.ident, g.kind, g.named_as) for g in killed
                                             if g not in named]


# -- the equivalent mutants, proved -----------------------------------------------------------

def _namespaces(assignment: str, cell: str, ident: str) -> tuple[dict, dict]:
    source_nb = mutation.source_notebook(assignment)
    answer = next(c for c in mutation.answer_cells(source_nb) if c.grade_id == cell)
    mutant = next((m for m in generator.mutants(cell, answer.source) if m.ident == ident), None)
    assert mutant is not None, f"{assignment}/{cell}/{ident} is listed but no longer generated"
    reference = search.base_namespace(source_nb, answer.parts[0])
    mutated = dict(reference)
    exec(compile(mutant.source, ident, "exec"), mutated)  # noqa: S102
    return reference, mutated


def _tensors(x):
    return [v.detach().double().numpy() if torch.is_tensor(v) else np.asarray(v, float)
            for v in (x if isinstance(x, (list, tuple)) else [x])]


def _mlp_and_batches(rng, sizes):
    seed = int(rng.integers(1000))
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8, dtype=torch.float64), torch.nn.Tanh(),
                                torch.nn.Linear(8, 1, dtype=torch.float64))
    gen = torch.Generator().manual_seed(seed)
    batches = [(torch.randn(n, 4, generator=gen, dtype=torch.float64),
                torch.randn(n, 1, generator=gen, dtype=torch.float64)) for n in sizes]
    return model, batches


def _accum(rng, ns):
    model, micro = _mlp_and_batches(rng, [int(n) for n in rng.integers(1, 20, 3)])
    value = ns["accumulate_gradients"](model, torch.nn.functional.mse_loss, micro)
    return [value] + [p.grad for p in model.parameters()]


def _clip(rng, ns):
    torch.manual_seed(int(rng.integers(1000)))
    params = [torch.nn.Parameter(torch.zeros(int(n), dtype=torch.float64))
              for n in rng.integers(1, 6, 3)]
    scale = 10 ** rng.uniform(-0.7, 2)              # gradient norms from 0.2 to 100
    for p in params:
        p.grad = torch.randn(p.shape, dtype=torch.float64)
    norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in params))
    for p in params:
        p.grad *= scale / norm
    returned = ns["clip_grad_norm"](params, float(10 ** rng.uniform(-1, 1.5)))
    return [returned] + [p.grad for p in params]


def _amp(rng, ns):
    model, [(x, y)] = _mlp_and_batches(rng, [16])
    model = model.float()
    x, y = x.float(), y.float()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    dtype = (torch.bfloat16, torch.float16)[int(rng.integers(2))]
    losses = [ns["amp_step"](model, optimizer, scaler, x, y, dtype=dtype) for _ in range(3)]
    return losses + list(model.parameters())


def _debug(rng, ns):
    seed, n = int(rng.integers(1000)), int(rng.integers(30, 90))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, dtype=torch.float64, generator=gen)
    y = torch.randn(n, 1, dtype=torch.float64, generator=gen)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4, dtype=torch.float64), torch.nn.Tanh(),
                                torch.nn.Linear(4, 1, dtype=torch.float64))
    return ns["train_loop"](model, x, y, epochs=2, batch_size=int(rng.integers(5, 40)))


def _range(rng, ns):
    from descent.grading.assignments import a08_practice
    kw = {"min_lr": 10 ** rng.uniform(-5, -3), "max_lr": 10 ** rng.uniform(0, 1.5),
          "steps": int(rng.integers(20, 80)), "beta": float(rng.uniform(0.8, 0.99)),
          "diverge": float(rng.uniform(1.5, 5))}
    return list(ns["lr_range_test"](a08_practice.grader_train_step(int(rng.integers(50))),
                                    **kw))


def _warmup(rng, ns):
    import itertools

    from descent.grading.assignments import a08_practice
    steps, peak = int(rng.integers(3, 12)), float(10 ** rng.uniform(-3.5, -2))
    model, optimizer, batches = a08_practice.warmup_setup(int(rng.integers(50)), "cpu", peak)
    out = ns["train_with_warmup"](model, list(itertools.islice(batches, steps)), optimizer,
                                  steps=steps, warmup_steps=int(rng.integers(0, steps + 3)),
                                  peak_lr=peak, device="cpu")
    return [out["loss"], out["grad_norm"]]


def _edge(rng, ns):
    from descent.grading.assignments import a02_gradient_descent as a02
    A, theta0 = a02.problem(int(rng.integers(1000)), int(rng.integers(2, 6)))
    return ns["divergence_threshold"](A, theta0, steps=int(rng.integers(2, 60)))


def _run(rng, ns):
    from descent.grading.assignments import a02_gradient_descent as a02
    A, theta0 = a02.problem(int(rng.integers(1000)), int(rng.integers(1, 6)))
    return ns["run_gd"](functools.partial(a02.quadratic_gradient, A), theta0,
                        float(rng.uniform(0.01, 0.5)), int(rng.integers(1, 30)))


def _logreg(rng, ns):
    gen = torch.Generator().manual_seed(int(rng.integers(1000)))
    n = int(rng.integers(1, 20))
    W, b = torch.randn(64, 10, generator=gen), torch.randn(10, generator=gen)
    x, y = torch.rand(n, 64, generator=gen), torch.randint(10, (n,), generator=gen)
    return list(ns["logreg_sgd_step"](W, b, x, y, float(rng.uniform(0.01, 2))))


def _warmup_cosine(rng, ns):
    total = int(rng.integers(2, 60))
    hyper = {"lr": float(rng.uniform(0.01, 2)), "warmup_steps": int(rng.integers(0, total)),
             "total_steps": total, "eta_min": float(rng.uniform(0, 0.01))}
    return [ns["warmup_cosine"](t, **hyper) for t in range(total + 10)]


def _paths(rng, ns):
    from descent.landscapes import quadratic_bowl, rosenbrock
    from descent.rules import sgd_init, sgd_update

    landscape = quadratic_bowl(float(rng.uniform(1, 100)), float(rng.uniform(-1, 1))) \
        if rng.uniform() < 0.5 else rosenbrock()
    runs = {"GD": (sgd_update, sgd_init, {"lr": float(rng.uniform(1e-4, 1e-3))}),
            "NAG": (sgd_update, sgd_init, {"lr": float(rng.uniform(1e-4, 1e-3)),
                                           "momentum": float(rng.uniform(0, 0.95)),
                                           "nesterov": True})}
    out = ns["trajectories"](landscape, rng.uniform(-1.5, 1.5, 2), runs,
                             int(rng.integers(0, 40)))
    return [out[label] for label in runs]


PROBES = {
    ("01-problem", "answer-loss"): lambda rng, ns: ns["mse_loss"](
        rng.standard_normal(3), rng.standard_normal((int(rng.integers(1, 30)), 3)),
        rng.standard_normal(1)),
    ("01-problem", "answer-relerr"): lambda rng, ns: [
        ns["relative_error"](a, b) for a, b in [
            (rng.standard_normal(5), rng.standard_normal(5)), (np.zeros(3), np.zeros(3)),
            (np.zeros(2), rng.standard_normal(2))]],
    ("02-gradient-descent", "answer-run"): _run,
    ("02-gradient-descent", "answer-edge"): _edge,
    ("03-sgd", "answer-variance"): lambda rng, ns: ns["minibatch_variance"](
        rng.standard_normal((50, 7)), int(rng.integers(1, 50)), draws=int(rng.integers(1, 40)),
        seed=int(rng.integers(1000))),
    ("03-sgd", "answer-train"): _logreg,
    ("04-momentum", "answer-tuning"): lambda rng, ns: list(ns["best_heavy_ball"](
        *sorted(10 ** rng.uniform(-3, 3, 2))[::-1])),
    ("04-momentum", "answer-paths"): _paths,
    ("06-schedules", "answer-warmup-cosine"): _warmup_cosine,
    ("06-schedules", "answer-invsqrt"): lambda rng, ns: [
        ns["inverse_sqrt"](t, lr=1.3, warmup_steps=int(rng.integers(1, 30)))
        for t in range(80)],
    ("08-practice", "answer-range"): _range,
    ("08-practice", "answer-accum"): _accum,
    ("08-practice", "answer-clip"): _clip,
    ("08-practice", "answer-amp"): _amp,
    ("08-practice", "answer-debug"): _debug,
    ("08-practice", "answer-warmup"): _warmup,
}


@pytest.mark.parametrize("entry", sorted(LISTED), ids="/".join)
def test_listed_equivalent_mutant_computes_what_the_reference_does(entry):
    assignment, cell, ident = entry
    rtol = mutation.equivalent_rtol().get(entry, 1e-12)
    reference, mutated = _namespaces(assignment, cell, ident)
    probe = PROBES[(assignment, cell)]
    for seed in range(20):
        expected = _tensors(probe(np.random.default_rng(seed), reference))
        got = _tensors(probe(np.random.default_rng(seed), mutated))
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=rtol, atol=1e-300,
                                       err_msg=f"{ident} (random inputs, seed {seed})")


# -- the search on a few mutants it must name ----------------------------------------------

@pytest.mark.parametrize(("assignment", "cell", "ident", "text"), [
    ("05-adaptive", "answer-adam", "drop-term:9:27:drop 1",
     "as if (1 − β₂) were β₂ in second moment v_t"),
    ("06-schedules", "answer-sgdr", "default:6:40:T_mult", "T_mult"),
    ("08-practice", "answer-range", "default:14:49:diverge", "diverge"),
    # an exception is named too, by a mutant raising it in the same function (details kept)
    ("05-adaptive", "answer-adam", "remove:9:4:remove v = beta2 * state.v + (1 - bet",
     "second moment v_t were missing"),
])
def test_search_names_a_mutant_of_the_reference_in_the_students_terms(assignment, cell, ident,
                                                                       text):
    source_nb = mutation.source_notebook(assignment)
    answer = next(c for c in mutation.answer_cells(source_nb) if c.grade_id == cell)
    mutant = next(m for m in generator.mutants(cell, answer.source) if m.ident == ident)
    parts = mutation.grade(assignment, mutation.mutated_notebook(source_nb, mutant,
                                                                 answer.parts), source_nb)
    lost = [parts[gid] for gid in answer.parts if parts[gid][0] < parts[gid][1]]
    assert lost and lost[0][2].startswith("mutant:"), lost
    assert text in lost[0][3] and "Your code behaves as if" in lost[0][3], lost[0][3]
    assert "reproduces every result of yours" in lost[0][3]
    if ident.startswith("remove"):
        assert "(Details: adam_update raised NameError: name 'v' is not defined" in lost[0][3]


def test_the_search_names_no_exception_that_no_mutant_raises():
    """A student's own exception (a 1-D-only step raising on a matrix) matches no mutant of
    the reference: the message stays the exception, nothing is guessed."""
    mistake = next(m for m in corpus("02-gradient-descent") if m.name == "step-raises")
    source_nb = mutation.source_notebook(mistake.assignment)
    parts = mutation.grade(mistake.assignment, mistake.notebook(), source_nb)
    score, points, kind, message = parts[mistake.loses[0]]
    assert score < points and kind == "exception", (kind, message)
    assert "raised" in message and "behaves as if" not in message
