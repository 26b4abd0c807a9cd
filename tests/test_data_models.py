"""descent.data and descent.models: seeded, offline, and each model learns in seconds."""

import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from descent import data, models
from descent.train import train


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# -- data -----------------------------------------------------------------------------------
def test_everything_loads_without_network(no_network):
    data.digits()
    data.CharCorpus(max_chars=1000)
    data.linear_regression()
    data.two_moons()


def test_digits_split_is_seeded_scaled_and_consistent_across_forms():
    a, b, c = data.digits(seed=1), data.digits(seed=1), data.digits(seed=2)
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    assert not torch.equal(a.y_train, c.y_train)
    assert a.x_train.dtype == torch.float32 and a.y_train.dtype == torch.int64
    assert a.x_train.shape[1] == 64 and len(a.x_train) + len(a.x_test) == 1797
    assert a.x_train.min() == 0 and a.x_train.max() == 1
    img = data.digits(seed=1, flat=False)
    assert img.x_train.shape[1:] == (1, 8, 8)
    assert torch.equal(img.x_train.flatten(1), a.x_train)
    assert torch.equal(img.y_test, a.y_test)


def test_linear_regression_holds_its_truth():
    r = data.linear_regression(n=2000, d=5, noise=0.3, seed=3)
    residual = r.y.double() - (r.x.double() @ r.w.double() + r.b)
    assert abs(residual.std().item() - 0.3) < 0.03                 # σ is the noise std
    ones = torch.ones(len(r.x), 1, dtype=torch.float64)
    fit = torch.linalg.lstsq(torch.cat([r.x.double(), ones], 1), r.y.double()[:, None])
    assert torch.allclose(fit.solution[:-1, 0], r.w.double(), atol=0.03)
    assert torch.equal(data.linear_regression(seed=3).x, data.linear_regression(seed=3).x)


@pytest.mark.parametrize("make", [data.blobs, data.two_moons])
def test_classification_sets_are_seeded_and_balanced(make):
    x, y = make(300, seed=4)
    x2, y2 = make(300, seed=4)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(make(300, seed=5)[0], x)
    counts = torch.bincount(y)
    assert counts.max() - counts.min() <= 1 and x.dtype == torch.float32


def test_char_corpus_round_trip_and_windows():
    from pydoc_data.topics import topics
    corpus = data.CharCorpus()
    assert corpus.text == "\n\n".join(topics[k] for k in sorted(topics))
    sample = corpus.text[1000:1200]
    assert corpus.decode(corpus.encode(sample)) == sample
    assert corpus.vocab == sorted(set(corpus.text))
    x, y = next(iter(corpus.batches(8, 16, seed=0)))
    assert x.shape == y.shape == (8, 16)
    assert torch.equal(x[:, 1:], y[:, :-1])                          # y is x shifted by one
    text = corpus.decode(corpus.train_data)
    for row_x, row_y in zip(x, y):
        window = corpus.decode(torch.cat([row_x, row_y[-1:]]))
        assert window in text
    x2, _ = next(iter(corpus.batches(8, 16, seed=0)))
    assert torch.equal(x, x2)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        data.CharCorpus("abc").encode("abd")


def test_batches_cover_each_epoch_once_and_replay():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    b = data.batches(x, y, 4, seed=0, epochs=2)
    first = list(b)
    assert [len(yb) for _, yb in first] == [4, 4, 2, 4, 4, 2]
    assert sorted(torch.cat([yb for _, yb in first[:3]]).tolist()) == list(range(10))
    assert all(torch.equal(u[1], v[1]) for u, v in zip(first, list(b)))   # replays
    assert [len(yb) for _, yb in data.batches(x, y, 4, drop_last=True, epochs=1)] == [4, 4]
    with pytest.raises(ValueError, match="same length"):
        data.batches(x, y[:3], 2)


# -- models ---------------------------------------------------------------------------------
def test_models_are_seeded_and_leave_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = models.mlp(4, [8], 2, seed=7)
    assert torch.equal(torch.rand(3), expected)
    b, c = models.mlp(4, [8], 2, seed=7), models.mlp(4, [8], 2, seed=8)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a[0].weight, c[0].weight)
    t1, t2 = models.TinyTransformer(20, seed=1), models.TinyTransformer(20, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(t1.parameters(), t2.parameters()))


def test_transformer_is_causal():
    model = models.TinyTransformer(10, block_size=12, d_model=32, seed=0).eval()
    idx = torch.randint(10, (2, 12), generator=torch.Generator().manual_seed(0))
    changed = idx.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 10
    a, b = model(idx), model(changed)
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6)           # the past never sees ahead
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_model_input_errors_name_shapes():
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\).*\(5, 64\)"):
        models.SmallCNN()(torch.zeros(5, 64))
    with pytest.raises(ValueError, match="block_size = 8"):
        models.TinyTransformer(5, block_size=8)(torch.zeros(1, 9, dtype=torch.int64))
    with pytest.raises(ValueError, match="divisible"):
        models.TinyTransformer(5, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="activation"):
        models.mlp(2, [3], 1, activation="swish!")


def _fit(model, batches, steps, loss_fn=F.cross_entropy, lr=1e-2):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    return train(model, opt, batches, steps=steps, loss_fn=loss_fn, device="cpu")


def _mean(values):
    return sum(values) / len(values)


def test_digits_table_is_scikit_learns():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels, labels = data._digits_table()
    np.testing.assert_array_equal(pixels, bunch.data)
    np.testing.assert_array_equal(labels, bunch.target)


def test_mlp_and_cnn_learn_digits():
    flat, img = data.digits(), data.digits(flat=False)
    h = _fit(models.mlp(64, [32], 10), data.batches(flat.x_train, flat.y_train, 64), 60)
    assert _mean(h.loss[-10:]) < 0.5 * _mean(h.loss[:5])
    h = _fit(models.SmallCNN(), data.batches(img.x_train, img.y_train, 64), 60)
    assert _mean(h.loss[-10:]) < 0.5 * _mean(h.loss[:5])


def test_tiny_transformer_learns_characters():
    corpus = data.CharCorpus(max_chars=20_000)
    model = models.TinyTransformer(corpus.vocab_size, block_size=16, d_model=32)
    h = _fit(model, corpus.batches(16, 16), 60, models.sequence_cross_entropy, lr=3e-3)
    assert _mean(h.loss[-10:]) < 0.75 * _mean(h.loss[:5])
