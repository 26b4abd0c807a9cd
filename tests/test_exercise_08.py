"""Assignment 08-practice: the mistake corpus covers the diagnoses, the grader's variants.

The corpus (``tests/submissions/08-practice``; it runs in ``test_grading.py``) has an entry
for every diagnosed mistake. The grader's variants are checked here: with every switch off
each equals its reference (``descent.lr_finder``, the bug-free loop), and the notebook's
buggy loop has exactly the planted bugs. The nbgrader round trip of every assignment is
``test_nbgrader_roundtrip.py``.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from nbgrader_helpers import corpus, source

from descent import grading
from descent.grading.assignments import a08_practice as a08

ASSIGNMENT = "08-practice"
MISTAKES = corpus(ASSIGNMENT)




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
    cell = next(c for c in source(ASSIGNMENT).cells
                if c.metadata["nbgrader"]["grade_id"] == "buggy-loop")
    exec("import math, torch\nimport torch.nn.functional as F\n"
         + cell.source.split("\n\n\nx_demo")[0], ns)
    got = a08._loop_run(ns["buggy_train_loop"], 0, "cpu")
    expected = a08._loop_run(a08.reference_loop, 0, "cpu", planted=set(a08.BUGS))
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)


def test_clip_reference_is_torch_and_the_checks_restore_it():
    from descent.grading import sandbox

    code = torch.nn.utils.clip_grad_norm_.__wrapped__.__code__
    params = [torch.nn.Parameter(torch.ones(3))]
    params[0].grad = torch.ones(3)
    with a08._library_forbidden():          # the rule travels with each call
        assert torch.nn.utils.clip_grad_norm_.__wrapped__.__code__ is code
        out = sandbox.call(torch.nn.utils.clip_grad_norm_, params, 1.0)
    assert out.delegated == ["torch.nn.utils.clip_grad.clip_grad_norm_"], out
    assert torch.nn.utils.clip_grad_norm_.__wrapped__.__code__ is code
    assert float(torch.nn.utils.clip_grad_norm_(params, 1.0)) > 1      # torch's own, again


# -- part 8.6: warmup and gradient norms -------------------------------------------------------

def test_warmup_reference_passes():
    a08.check_warmup(a08.reference_warmup_loop)


@pytest.mark.parametrize("mistake", list(a08.WARMUP_MISTAKES))
def test_each_warmup_mistake_is_named(mistake):
    loop = functools.partial(a08.reference_warmup_loop, planted=frozenset({mistake}))
    with pytest.raises(grading.CheckFailed) as err:
        a08.check_warmup(loop)
    assert err.value.mistake == mistake, str(err.value)
    assert str(err.value).startswith("[Part 8.6, a training loop with linear warmup")


def test_warmup_runs_show_what_the_written_answer_says():
    runs = a08.warmup_runs(a08.reference_warmup_loop)
    plain, warm = (np.asarray(runs[k]["grad_norm"]) for k in ("no warmup", "warmup W = 30"))
    assert plain[:10].max() > 2.5 and plain[:10].max() > 2 * warm[:10].max()   # a spike
    assert warm[:10].max() < 1.5
    final = {k: float(np.mean(r["loss"][-10:])) for k, r in runs.items()}
    assert final["warmup W = 30"] < final["no warmup"]
