"""Assignment 03-sgd: the references its checks use, against the library and autograd.

The notebook and its mistake corpus run in process in ``test_grading.py``, the nbgrader round
trip in ``test_nbgrader_roundtrip.py`` (both for every assignment).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from descent import grading
from descent.grading.assignments import a03_sgd as a03
from descent.noise import per_example_grads

# -- the references of the checks -----------------------------------------------------------

def test_example_gradients_are_autograd_per_example_gradients():
    """Row i of the grader's matrix is ∇(W, b) of example i's cross-entropy (torch.func)."""
    grads = a03.example_gradients(1, n=40)
    split_x = torch.tensor(grads[:, -10:])                       # ∂ℓᵢ/∂logits = p − e_y
    assert np.allclose(split_x.sum(dim=1).numpy(), 0, atol=1e-12)
    from descent.data import digits

    split = digits(seed=0)
    rng = np.random.default_rng(1)
    idx = rng.choice(len(split.x_train), size=40, replace=False)
    W, b = 0.3 * rng.standard_normal((64, 10)), 0.1 * rng.standard_normal(10)
    model = torch.nn.Linear(64, 10).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor(W.T))
        model.bias.copy_(torch.tensor(b))
    auto = per_example_grads(model, torch.nn.functional.cross_entropy,
                             split.x_train[idx].double(), split.y_train[idx]).numpy()
    weight = auto[:, :640].reshape(40, 10, 64).transpose(0, 2, 1).reshape(40, 640)
    assert np.allclose(grads, np.concatenate([weight, auto[:, 640:]], axis=1), atol=1e-12)


def test_grader_sampling_is_unbiased_for_the_predicted_variance():
    grads = a03.example_gradients(0)
    for size in (8, 100):
        errors = a03._squared_errors(grads, size, 2000, seed=5)
        se = errors.std() / np.sqrt(len(errors))
        assert abs(errors.mean() - a03.predicted_variance(grads, size)) < 5 * se


def test_trusted_sampler_passes_its_own_judge():
    for n, size, epochs, drop_last in a03.SAMPLER_CASES:
        got = a03.trusted_epoch_batches(n, size, epochs=epochs, seed=3, drop_last=drop_last)
        assert a03.judge_epochs(got, n, size, epochs, drop_last).ok


def test_reference_step_is_torch_sgd_on_the_cross_entropy():
    W, b, x, y = a03._batch(2, 7, torch.float64)
    new_W, new_b = a03.reference_logreg_step(W, b, x, y, 0.3)
    W_, b_ = W.clone().requires_grad_(), b.clone().requires_grad_()
    opt = torch.optim.SGD([W_, b_], lr=0.3)
    torch.nn.functional.cross_entropy(x @ W_ + b_, y).backward()
    opt.step()
    assert torch.allclose(new_W, W_.detach(), rtol=1e-12) and torch.allclose(new_b, b_.detach())


def test_training_run_is_deterministic_and_learns():
    run = a03.LogRegRun()
    first = a03.logreg_losses(None, run, untrusted=False).value
    again = a03.logreg_losses(None, run, untrusted=False).value
    assert np.array_equal(first["losses"], again["losses"])
    assert first["final"] < 0.6 and first["accuracy"] > 0.85


def test_a_faster_schedule_leaves_the_reference_curve():
    def step(W, b, x, y, lr):                     # a correct step, but 5 % larger each time
        p = torch.softmax(x @ W + b, dim=1)
        p[torch.arange(len(y)), y] -= 1
        return W - 1.05 * lr * x.T @ p / len(y), b - 1.05 * lr * p.mean(dim=0)

    a03.check_logreg(lambda W, b, x, y, lr: step(W, b, x, y, lr / 1.05), seeds=())
    with pytest.raises(grading.CheckFailed, match="leaves the reference run"):
        a03.check_logreg(step, seeds=())


