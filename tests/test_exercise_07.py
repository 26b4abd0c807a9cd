"""Assignment 07-implementation: the solution, the mistake corpus, the nbgrader round trip.

The corpus (``tests/submissions/07-implementation``) runs in this process, as in
``test_grading.py``: each submission must break exactly the grade cells its header lists,
with a message that names the mistake; correct rewrites (out of place, ``_foreach`` ops, the
step counter as a tensor) break none. A mistake in the update costs 7.2 *and* 7.5: the
training run re-runs the same update (its message names the mistake too). The round trip
releases the assignment, runs ``validate --invert`` on the blank, autogrades the solution
(which is what ``validate`` on it would check), the blank and one corpus entry through real
kernels, and checks the feedback. The grader's own reference is checked too: the catalogued
variant with no mistake switched on is torch.optim.AdamW.
"""

from __future__ import annotations

import json
import time

import nbformat
import numpy as np
import pytest
import torch
from nbgrader_helpers import (
    ROOT,
    cell_scores,
    corpus,
    make_course,
    max_scores,
    nbgrader,
    notebook_path,
    run_in_process,
    submit,
)

from descent.grading.assignments import a07_implementation as a07

ASSIGNMENT = "07-implementation"
MISTAKES = corpus(ASSIGNMENT)
ROUNDTRIP = ("decay-coupled",)      # one diagnosis through a real kernel (~5 s each)


def source():
    return nbformat.read(str(notebook_path(ROOT / "solutions", ASSIGNMENT)), 4)


def test_solution_passes_every_grade_cell():
    results = run_in_process(source())
    assert results and all(err is None for err in results.values()), results


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.name)
def test_mistake_breaks_exactly_its_part_and_is_named(mistake):
    results = run_in_process(mistake.notebook())
    failed = {k for k, err in results.items() if err}
    assert failed == set(mistake.loses), results
    for part in mistake.loses:
        assert mistake.feedback in results[part], results[part]
        assert results[part].startswith("CheckFailed: [Part "), results[part]


def test_every_diagnosed_mistake_has_a_corpus_entry():
    diagnosed = {name for name, _, _ in a07.mistakes()} - {"t-off-by-one-late"}
    named = {m.name for m in MISTAKES}
    aliases = {"l2-instead-of-decoupled": "decay-coupled",
               "decay-not-scaled-by-lr": "decay-not-scaled"}
    assert {aliases.get(n, n) for n in diagnosed} <= named


def test_the_variant_optimizer_with_no_mistake_is_torch_adamw():
    hyper = a07.HYPERS[1]
    ours = a07.trajectory(lambda p: a07._VariantAdamW(
        p, lambda *a, **k: a07.catalogue.adam_variant(*a, **k, decoupled=True),
        a07.catalogue.adam_init_variant, **hyper), 0, torch.float64, 50)
    torch_run = a07.trajectory(lambda p: torch.optim.AdamW(p, **hyper), 0, torch.float64, 50)
    np.testing.assert_allclose(ours, torch_run, rtol=1e-12, atol=1e-14)


def test_references_are_restored_after_a_check():
    import importlib

    fn = importlib.import_module("torch.optim.adam")._single_tensor_adam
    code = fn.__code__
    with a07._no_functional_adam():
        assert fn.__code__ is not code
    assert fn.__code__ is code


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("nbgrader07"), (ASSIGNMENT,))
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    released = nbformat.read(str(notebook_path(course / "exercises", ASSIGNMENT)), 4)
    submit(course, "solution", ASSIGNMENT, source())
    submit(course, "blank", ASSIGNMENT, released)
    for mistake in MISTAKES:
        if mistake.name in ROUNDTRIP:
            submit(course, mistake.name, ASSIGNMENT, mistake.notebook())
    start = time.perf_counter()
    nbgrader(course, "autograde", ASSIGNMENT, "--force")
    print(f"autograde of {ASSIGNMENT}, 3 submissions: {time.perf_counter() - start:.1f} s")
    nbgrader(course, "generate_feedback", ASSIGNMENT, "--force")
    return course



@pytest.mark.slow
def test_released_notebook_equals_the_committed_one_and_leaks_nothing(course):
    committed = nbformat.read(str(notebook_path(ROOT / "exercises", ASSIGNMENT)), 4)
    regenerated = nbformat.read(str(notebook_path(course / "exercises", ASSIGNMENT)), 4)
    key = lambda nb: [(c.cell_type, c.source, json.dumps(c.metadata.get("nbgrader", {}),
                                                         sort_keys=True)) for c in nb.cells]
    assert key(committed) == key(regenerated), f"run `make release ASSIGNMENT={ASSIGNMENT}`"
    text = notebook_path(ROOT / "exercises", ASSIGNMENT).read_text()
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "check_steps(AdamW, seeds=[3, 4]"):
        assert marker not in text


@pytest.mark.slow
def test_validate_invert_fails_every_test_on_the_blank(course):
    # `validate` on the solution is covered by autograding it as a submission (full marks,
    # the same execution plus the hidden tests); one kernel less keeps this module in budget.
    inverted = nbgrader(course, "validate", "--invert",
                        str(notebook_path(course / "exercises", ASSIGNMENT)))
    assert "Success! The notebook does not pass any tests." in inverted.stdout, inverted.stdout


@pytest.mark.slow
def test_autograde_full_marks_zero_and_exactly_the_broken_parts(course):
    full = max_scores(source())
    scores = cell_scores(course, ASSIGNMENT)
    assert scores["solution"] == full
    assert {k: v for k, v in scores["blank"].items() if k in full} == {k: 0 for k in full}
    for mistake in MISTAKES:
        if mistake.name in ROUNDTRIP:
            expected = {k: (0 if k in mistake.loses else v) for k, v in full.items()}
            assert {k: v for k, v in scores[mistake.name].items() if k in full} == expected
            html = (course / "feedback" / mistake.name / ASSIGNMENT / f"{ASSIGNMENT}.html"
                    ).read_text().replace("&#39;", "'").replace("&quot;", '"')
            assert mistake.feedback in html
            assert "BEGIN HIDDEN TESTS" not in html and "seeds=[3, 4]" not in html
