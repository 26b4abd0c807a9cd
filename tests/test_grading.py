"""descent.grading on its own: the mistake corpus in-process, every catalogued diagnosis, the
references it compares with, delegation, determinism.

The corpus test runs each submission of ``tests/submissions/<assignment>/``, for every
assignment, in this process (see ``nbgrader_helpers.check_mistake``): the grade cells it
breaks must be exactly the ones its header lists, and their message must name the mistake.
The nbgrader round trip (``test_nbgrader_roundtrip.py``) checks the same on a few
submissions through real kernels.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from nbgrader_helpers import (
    ALL_ASSIGNMENTS,
    ROOT,
    assert_trusted_agrees,
    check_mistake,
    corpus,
    notebook_path,
    run_and_grade,
    source,
)

import descent.rules as rules
from descent import grading
from descent.grading import catalogue as cat
from descent.grading.catalogue import _variant

# The in-process corpus of every assignment. 03-06 and 08 run with NBGRADER_EXECUTION set and
# from the replaced answer cell on (``run_from``: it is their corpus that dominates the time, and
# 08's exploration cell trains for seconds); 01, 02 and 07 run every cell (``run_in_process``).
FROM_ANSWER = ("03-sgd", "04-momentum", "05-adaptive", "06-schedules", "08-practice")
PARTS = {"05-adaptive": 7, "06-schedules": 6}          # grade cells the solution must pass
MISTAKES = [m for a in ALL_ASSIGNMENTS for m in corpus(a)]


@pytest.fixture(scope="module", autouse=True)
def in_solutions_folder():
    cwd = os.getcwd()
    yield
    os.chdir(cwd)


@pytest.mark.parametrize("assignment", ALL_ASSIGNMENTS)
def test_solution_passes_every_grade_cell(assignment):
    results, trusted = run_and_grade(source(assignment), assignment,
                                      as_graded=assignment in FROM_ANSWER)
    assert results and results == {k: None for k in results}, results
    assert len(results) == PARTS.get(assignment, len(results))
    assert_trusted_agrees(results, trusted)
    assert set(trusted.parts) == set(results)


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: f"{m.assignment}/{m.name}")
def test_mistake_breaks_exactly_its_part_and_is_named(mistake):
    check_mistake(mistake, from_answer=mistake.assignment in FROM_ANSWER)


# -- every catalogued rule mistake is named (the assignments that use them come later) -------

def _own_sgd(param, grad, state, *, lr, momentum=0.0, dampening=0.0, nesterov=False,
             weight_decay=0.0):
    """A student's correct heavy ball / Nesterov, written another way (in place on copies)."""
    g = grad + weight_decay * param
    b = g.copy() if state.b is None else state.b * momentum + (1 - dampening) * g
    d = g + momentum * b if nesterov else b
    new = param.copy()
    new -= lr * d
    return new, rules.SGDState(b)


SPECS = {
    "heavy-ball": lambda: grading.sgd_spec(nesterov=False),
    "nesterov": lambda: grading.sgd_spec(nesterov=True),
    "adam": lambda: grading.adam_spec(),
    "adamw": lambda: grading.adam_spec(decoupled=True),
    "rmsprop": lambda: grading.rmsprop_spec(),
}
CASES = [(name, m.name) for name, spec in SPECS.items() for m in spec().mistakes
         if not (name == "heavy-ball" and m.name.startswith("nesterov"))]


@pytest.mark.parametrize(("spec_name", "mistake_name"), CASES)
def test_each_catalogued_mistake_is_diagnosed_by_name(spec_name, mistake_name):
    spec = SPECS[spec_name]()
    mistake = next(m for m in spec.mistakes if m.name == mistake_name)
    init = mistake.init or (lambda p: rules.SGDState(None))
    with pytest.raises(grading.CheckFailed) as err:
        grading.check_rule(mistake.update, init, spec=spec, part="5.1", equation="eq. (5.1)")
    assert err.value.mistake == mistake_name
    assert str(err.value).startswith("[Part 5.1, eq. (5.1)] ")


@pytest.mark.parametrize("spec_name", ["adam", "adamw"])
def test_adam_variant_with_no_flag_is_the_library_rule_and_torch(spec_name):
    """The variants are only meaningful if, flags off, they are the reference itself."""
    decoupled = spec_name == "adamw"
    spec = SPECS[spec_name]()
    own = (_variant(cat.adam_variant, decoupled=decoupled), cat.adam_init_variant)
    grading.check_rule(*own, spec=spec, part="5", equation="", dtypes=("float64",),
                       arrays=("numpy", "torch"), seeds=(0, 1), shapes=((4,), (2, 3)))
    # and the library rule is torch.optim's, on the same hyperparameters
    p = torch.randn(5, dtype=torch.float64, requires_grad=True)
    q, state = p.detach().clone(), rules.adamw_init(p) if decoupled else rules.adam_init(p)
    opt = (torch.optim.AdamW if decoupled else torch.optim.Adam)(
        [p], lr=0.1, betas=(0.8, 0.9), eps=0.1, weight_decay=0.1, foreach=False)
    update = rules.adamw_update if decoupled else rules.adam_update
    for _ in range(10):
        g = torch.randn(5, dtype=torch.float64)
        p.grad = g.clone()
        opt.step()
        q, state = update(q, g, state, lr=0.1, beta1=0.8, beta2=0.9, eps=0.1, weight_decay=0.1)
    torch.testing.assert_close(p.detach(), q, rtol=1e-12, atol=1e-14)


def test_correct_rules_written_another_way_pass_in_float32_and_float64():
    for nesterov in (False, True):
        grading.check_rule(_own_sgd, lambda p: rules.SGDState(None),
                           spec=grading.sgd_spec(nesterov=nesterov), part="4.1", equation="",
                           seeds=(3, 4), shapes=((5,), (2, 2)))
    spec = grading.rmsprop_spec()
    own = _variant(cat.rmsprop_variant), cat.rmsprop_init_variant
    grading.check_rule(*own, spec=spec, part="5.2", equation="", arrays=("numpy", "torch"))


def test_in_place_rule_is_reported_as_mutating_the_callers_array():
    def adam_in_place(param, grad, state, **hyper):
        new, s = cat.adam_variant(param, grad, state, **hyper)
        param[...] = new
        return param, s

    with pytest.raises(grading.CheckFailed) as err:
        grading.check_rule(adam_in_place, cat.adam_init_variant, spec=SPECS["adam"](),
                           part="5.1", equation="")
    assert err.value.mistake == "mutates-input" and "in place" in str(err.value)


def test_nan_and_wrong_shape_are_reported():
    spec = grading.gd_spec()
    with pytest.raises(grading.CheckFailed, match="nan .* where the reference is finite"):
        grading.check_rule(lambda theta, grad, lr: theta - lr * grad * np.nan, spec=spec,
                           part="2.1", equation="")
    with pytest.raises(grading.CheckFailed, match="shape"):
        grading.check_rule(lambda theta, grad, lr: (theta - lr * grad).ravel()[:1], spec=spec,
                           part="2.1", equation="")


def test_delegation_is_caught_even_when_the_error_is_swallowed_and_references_restored():
    def sneaky(theta, grad, lr):
        try:
            return rules.sgd_update(theta, grad, rules.sgd_init(theta), lr=lr)[0]
        except Exception:
            return theta - lr * grad

    with pytest.raises(grading.CheckFailed, match="no points for this part.*descent.rules"):
        grading.check_rule(sneaky, spec=grading.gd_spec(), part="2.1", equation="")
    # after the check, the references work again
    assert np.allclose(rules.sgd_update(np.ones(2), np.ones(2), rules.sgd_init(0), lr=0.5)[0],
                       0.5)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def _build_and_draw(seed):
    """The student's side of a training check: a library model and a batch of its data."""
    from descent import data, models
    model = models.TinyTransformer(5, block_size=4, d_model=8, n_heads=2, n_layers=1, seed=seed)
    x, y = next(iter(data.CharCorpus("abcde" * 40).batches(3, 4, seed=seed)))
    return float(model(x).sum()), tuple(y.shape)


def test_library_objects_that_use_private_helpers_can_be_built_inside_a_call():
    """Forbidding descent.schedules does not forbid the input checks it imports from
    descent._checks, which the library's models and data call too; its own answers stay
    forbidden."""
    from descent.grading import sandbox

    out = sandbox.call(_build_and_draw, 0)
    assert out.error is None and out.delegated == [], out.error
    assert out.value[1] == (3, 4)
    names = {name for name, _ in sandbox._references(sandbox.Rules())[0]}
    assert not any(".check_" in name for name in names), sorted(names)
    assert any(name.startswith("descent.schedules.") for name in names)


# -- schedules -----------------------------------------------------------------------------

def warmup_cosine(t, warmup=5, total=20, lr=1.0, lr_min=0.1):
    if t < warmup:
        return lr * (t + 1) / warmup
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * min(t - warmup, total - warmup)
                                                  / (total - warmup))) / 2


def _short_cosine(t, warmup=5, total=20, lr=1.0, lr_min=0.1):
    """The cosine divided by T − W + 1, written independently of the test's lambdas."""
    if t < warmup:
        return lr * (t + 1) / warmup
    x = min(t, total) - warmup
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * x / (total - warmup + 1)))


SHORT = ("cosine-short", "the cosine does not reach its minimum", _short_cosine)


def test_schedule_mistakes_are_named():
    check = lambda fn: grading.check_schedule(fn, warmup_cosine, steps=25, part="6.1",
                                              equation="eq. (6.3)", mistakes=[SHORT])
    check(lambda t: warmup_cosine(t))
    off = lambda t: t / 5 if t < 5 else warmup_cosine(t)                 # warmup from 0
    short = lambda t: warmup_cosine(t) if t < 5 else 0.1 + 0.9 * (
        1 + math.cos(math.pi * min(t - 5, 15) / 16)) / 2                  # π·t/(T + 1)
    for fn, name in ((off, "off-by-one"), (short, "cosine-short")):
        with pytest.raises(grading.CheckFailed) as err:
            check(fn)
        assert err.value.mistake == name


def test_float32_schedule_passes_before_any_mistake_is_named():
    """Tolerance first: float32 values are accepted before a mistake is looked for, and a
    curve that merely stays high is not called a short cosine unless it is one."""
    check = lambda fn: grading.check_schedule(fn, warmup_cosine, steps=25, part="6.1",
                                              equation="", mistakes=[SHORT])
    check(lambda t: float(np.float32(warmup_cosine(t))))
    high = lambda t: warmup_cosine(t) if t < 5 else warmup_cosine(t) + 0.05
    with pytest.raises(grading.CheckFailed) as err:
        check(high)
    assert err.value.mistake is None and "differs at step 5" in str(err.value)


def test_schedule_diagnoses_against_the_library_warmup_cosine():
    schedules = pytest.importorskip("descent.schedules")
    ref = schedules.WarmupCosine(lr=1.0, warmup_steps=5, total_steps=20, eta_min=0.1,
                                 start_factor=0.2)
    cosine = lambda t, denom=15: 0.1 + 0.9 * (1 + math.cos(math.pi * min(t - 5, 15) / denom)) / 2
    mine = lambda t: (0.2 + 0.8 * t / 5) if t < 5 else cosine(t)
    late = lambda t: (0.2 + 0.8 * (t + 1) / 5) if t < 5 else cosine(t)   # warmup ends early
    short = lambda t: mine(t) if t < 5 else cosine(t, denom=16)
    delegating = lambda t: schedules.WarmupCosine(1.0, 5, 20, 0.1, 0.2)(t)
    variant = ("cosine-short", "short", lambda t: mine(t) if t < 5 else 0.1 + 0.45 * (
        1 + math.cos(math.pi * min(t - 5, 15) / 16)))
    check = lambda fn: grading.check_schedule(fn, ref, steps=30, part="6.2", equation="",
                                              mistakes=[variant])
    check(mine)
    for fn, name in ((late, "off-by-one"), (short, "cosine-short"), (delegating, "delegation")):
        with pytest.raises(grading.CheckFailed) as err:
            check(fn)
        assert err.value.mistake == name, str(err.value)


# -- training runs ---------------------------------------------------------------------------

class StudentSGD(torch.optim.Optimizer):
    """A correct SGD with momentum written by a student (PyTorch convention)."""

    def __init__(self, params, lr, momentum=0.0, scale=1.0):
        super().__init__(params, {"lr": lr, "momentum": momentum})
        self.scale = scale

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                b = state.get("b")
                b = p.grad.clone() if b is None else b.mul_(group["momentum"]).add_(p.grad)
                state["b"] = b
                p.add_(b, alpha=-group["lr"] * self.scale)


def test_training_run_passes_a_correct_optimizer_and_catches_a_wrong_one():
    reference = lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)
    grading.check_training_run(lambda p: StudentSGD(p, 0.05, 0.9), reference, part="4.3",
                               equation="training run")
    with pytest.raises(grading.CheckFailed, match="leaves the reference run"):
        grading.check_training_run(lambda p: StudentSGD(p, 0.05, 0.9, scale=1.02), reference,
                                   part="4.3", equation="training run")
    with pytest.raises(grading.CheckFailed, match="no points"):
        grading.check_training_run(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
                                   reference, part="4.3", equation="training run")


def test_importing_grading_pins_torch_to_one_thread():
    code = ("import torch; torch.set_num_threads(2); import descent.grading; "
            "print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "1"


# -- determinism: the same submission, 20 fresh kernels, 20 identical scores -----------------

@pytest.mark.slow
def test_same_submission_scores_identically_in_20_fresh_kernels():
    """pytorch#188792: the first multi-threaded op in a fresh process can be wrong.

    The sample student ``bob`` (two mistakes) is merged into the source notebook (hidden tests
    included, as autograde sees it) and executed in 20 fresh kernels with nbclient, with
    threads *not* pinned by the environment (descent.grading must pin them itself). The score
    is nbgrader's rule: a code grade cell earns its points when it raises nothing.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbgrader_helpers import max_scores

    source = nbformat.read(str(notebook_path(ROOT / "solutions", "01-problem")), 4)
    bob = nbformat.read(str(ROOT / "tests/submissions/sample/bob/01-problem/01-problem.ipynb"),
                        4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in bob.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in source.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    points = max_scores(source)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    scores = []
    for _ in range(20):
        nb = nbformat.from_dict(source)
        client = NotebookClient(nb, timeout=120, allow_errors=True, kernel_name="python3",
                                resources={"metadata": {"path": str(ROOT)}})
        client.km = client.create_kernel_manager()
        client.start_new_kernel(env=env)          # a fresh kernel: a fresh process
        client.start_new_kernel_client()
        try:
            client.execute(cleanup_kc=False)
        finally:
            client._cleanup_kernel()
        scores.append(sum(p for c in nb.cells
                          if (gid := c.metadata.get("nbgrader", {}).get("grade_id")) in points
                          and not any(o.output_type == "error" for o in c.outputs)
                          for p in [points[gid]]))
    assert scores == [sum(points.values()) - 3] * 20
