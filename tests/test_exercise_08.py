"""Assignment 08-practice: the solution, the mistake corpus, the nbgrader round trip.

The corpus (``tests/submissions/08-practice``) runs in this process, as in
``test_grading.py``: each submission must break exactly the grade cells its header lists,
with a message that names the mistake; correct rewrites break none. The round trip releases
the assignment, runs ``validate --invert`` on the blank, autogrades the solution (which is what
``validate`` on it would check), the blank and one corpus entry through real kernels, and
checks the feedback. The grader's variants are checked too: with every switch off each
equals its reference (``descent.lr_finder``, the bug-free loop).
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

from descent.grading.assignments import a08_practice as a08

ASSIGNMENT = "08-practice"
MISTAKES = corpus(ASSIGNMENT)
ROUNDTRIP = ("accum-no-zero-grad",)      # one diagnosis through a real kernel (~5 s each)


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
    named = {m.name for m in MISTAKES}
    assert {f"range-{alias}" for alias in ("linear", "misses-max", "no-bias-correction",
                                           "no-stop", "drops-last")} <= named
    assert {f"debug-keeps-{bug.replace('_', '-')}" for bug in a08.BUGS} <= named
    assert {"accum-no-zero-grad", "accum-no-rescale", "accum-divide-by-k"} <= named
    assert len(a08.RANGE_MISTAKES) == 5


def test_range_test_variant_with_no_mistake_is_the_library_lr_finder():
    kw = {"min_lr": 1e-4, "max_lr": 10.0, "steps": 60}
    expected = a08.reference_range_test(0, **kw)
    got = a08.range_test_variant(a08.grader_train_step(0), **kw)
    assert len(got[0]) == len(expected[0]) < 60           # it diverged and stopped
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12)


def test_buggy_loop_in_the_notebook_has_exactly_the_four_planted_bugs():
    ns = {}
    cell = next(c for c in source().cells if c.metadata["nbgrader"]["grade_id"] == "buggy-loop")
    exec("import math, torch\nimport torch.nn.functional as F\n"
         + cell.source.split("\n\n\nx_demo")[0], ns)
    got = a08._loop_run(ns["buggy_train_loop"], 0, "cpu")
    expected = a08._loop_run(a08.reference_loop, 0, "cpu", planted=set(a08.BUGS))
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)


def test_clip_reference_is_torch_and_the_checks_restore_it():
    code = torch.nn.utils.clip_grad_norm_.__wrapped__.__code__
    with a08._library_forbidden():
        assert torch.nn.utils.clip_grad_norm_.__wrapped__.__code__ is not code
    assert torch.nn.utils.clip_grad_norm_.__wrapped__.__code__ is code


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
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "seeds=[6, 7]"):
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
            assert "BEGIN HIDDEN TESTS" not in html and "seeds=[6, 7]" not in html
