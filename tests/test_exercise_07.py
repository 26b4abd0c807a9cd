"""Assignment 07-implementation: the mistake corpus covers the diagnoses, the grader's reference.

The corpus (``tests/submissions/07-implementation``; it runs in ``test_grading.py``) holds
correct rewrites (out of place, ``_foreach`` ops, the step counter as a tensor) and an entry
for every diagnosed mistake; a mistake in the update costs 7.2 *and* 7.5, as the training
run re-runs the same update (its message names the mistake too). The grader's own reference
is checked here: the catalogued variant with no mistake switched on is torch.optim.AdamW.
The nbgrader round trip of every assignment is ``test_nbgrader_roundtrip.py``.
"""

from __future__ import annotations

import numpy as np
import torch
from nbgrader_helpers import corpus

from descent.grading.assignments import a07_implementation as a07

ASSIGNMENT = "07-implementation"
MISTAKES = corpus(ASSIGNMENT)




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


def test_functional_adam_is_a_reference_during_the_call_and_restored_after():
    import importlib

    from descent.grading import sandbox

    fn = importlib.import_module("torch.optim.adam")._single_tensor_adam
    code = fn.__code__

    def uses_the_kernel():
        fn([], [], [], [], [], [], foreach=False, capturable=False, differentiable=False,
           has_complex=False, amsgrad=False, beta1=0.9, beta2=0.9, lr=0.1, weight_decay=0.0,
           eps=1e-8, maximize=False, grad_scale=None, found_inf=None)

    assert sandbox.call(uses_the_kernel).delegated == []
    with a07._no_functional_adam():
        out = sandbox.call(uses_the_kernel)
    assert out.delegated == ["torch.optim.adam._single_tensor_adam"], out
    assert fn.__code__ is code
