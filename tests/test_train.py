"""descent.train: accumulation, clipping, checkpoints, seeds, precision, errors; curve plots."""

import json
import math

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import descent.optim
from descent import data, models
from descent.train import History, NonFiniteLossError, best_device, evaluate, train

matplotlib.use("Agg")


def _problem(n=16, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g, dtype=dtype), torch.randint(3, (n,), generator=g)


def _model(seed=0, dtype=torch.float64, dropout=0.0):
    net = models.mlp(6, [16], 3, activation="tanh", seed=seed, dtype=dtype)
    return nn.Sequential(nn.Dropout(dropout), *net) if dropout else net


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# -- accumulation ---------------------------------------------------------------------------
@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: descent.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    lambda p: torch.optim.Adam(p, lr=1e-2),
])
@pytest.mark.parametrize("cuts", [(0, 4, 8, 12, 16), (0, 5, 12, 16)])  # equal and unequal
def test_accumulation_equals_the_big_batch(make_opt, cuts):
    x, y = _problem(16)
    micro = [(x[a:b], y[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    small, big = _model(), _model()
    h_small = train(small, make_opt(small.parameters()), micro, steps=8,
                    accumulation_steps=len(micro), device="cpu")
    h_big = train(big, make_opt(big.parameters()), [(x, y)], steps=8, device="cpu")
    assert torch.allclose(_params(small), _params(big), rtol=1e-12, atol=1e-14)
    for key in ("loss", "grad_norm", "update_ratio"):
        assert getattr(h_small, key) == pytest.approx(getattr(h_big, key), rel=1e-12)


def test_accumulation_with_mse_on_vector_targets():
    r = data.linear_regression(n=10, d=4, dtype=torch.float64)
    y = torch.stack([r.y, -r.y], dim=1)                               # (n, 2) targets
    micro = [(r.x[:3], y[:3]), (r.x[3:], y[3:])]
    small = models.mlp(4, [], 2, seed=1, dtype=torch.float64)
    big = models.mlp(4, [], 2, seed=1, dtype=torch.float64)
    train(small, torch.optim.SGD(small.parameters(), lr=0.05), micro, steps=5,
          accumulation_steps=2, loss_fn=F.mse_loss, device="cpu")
    train(big, torch.optim.SGD(big.parameters(), lr=0.05), (r.x, y), steps=5,
          loss_fn=F.mse_loss, device="cpu")
    assert torch.allclose(_params(small), _params(big), rtol=1e-12, atol=1e-14)


def test_closure_optimizers_sam_and_lbfgs():
    from descent.optim import SAM

    x, y = _problem(24)
    ours, manual = _model(), _model()
    h = train(ours, SAM(ours.parameters(), torch.optim.SGD, rho=0.05, lr=0.1), (x, y),
              steps=5, closure=True, device="cpu")
    opt = SAM(manual.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
    losses = []
    for _ in range(5):
        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(manual(x), y)
            loss.backward()
            return loss
        losses.append(opt.step(closure).item())
    assert torch.allclose(_params(ours), _params(manual), rtol=1e-12, atol=1e-14)
    assert h.loss == pytest.approx(losses, rel=1e-12)                # the loss at θ_{t-1}
    model = _model()
    h = train(model, torch.optim.LBFGS(model.parameters(), lr=0.5), (x, y), steps=5,
              closure=True, device="cpu")
    assert h.loss[-1] < 0.5 * h.loss[0]


# -- what is recorded -----------------------------------------------------------------------
def test_history_records_grad_norm_update_ratio_and_scheduled_lr():
    x, y = _problem()
    model = _model()
    theta0 = _params(model).clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    h = train(model, opt, (x, y), steps=5, scheduler=sched, device="cpu")
    assert h.step == [1, 2, 3, 4, 5]
    assert h.lr == pytest.approx([0.5, 0.5, 0.05, 0.05, 0.005])       # η used for step t
    # plain SGD: ‖Δθ‖ = η‖g‖, so the ratio of step 1 is η‖g₁‖/‖θ₀‖
    assert h.update_ratio[0] == pytest.approx(0.5 * h.grad_norm[0] / theta0.norm().item(),
                                              rel=1e-12)
    model2 = _model()
    F.cross_entropy(model2(x), y).backward()
    g1 = torch.cat([p.grad.flatten() for p in model2.parameters()])
    assert h.grad_norm[0] == pytest.approx(g1.norm().item(), rel=1e-12)
    assert h.loss[0] == pytest.approx(F.cross_entropy(_model()(x), y).item(), rel=1e-12)
    again = History.from_dict(json.loads(json.dumps(h.to_dict())))
    assert again == h


def test_clipping_bounds_the_norm_the_optimizer_sees():
    seen = []

    class Spy(torch.optim.SGD):
        def step(self, closure=None):
            grads = [p.grad for g in self.param_groups for p in g["params"]]
            seen.append(torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(gr) for gr in grads])).item())
            return super().step(closure)

    x, y = _problem(64)
    model = _model()
    c = 0.45
    h = train(model, Spy(model.parameters(), lr=0.5), data.batches(x, y, 16), steps=30,
              clip_grad_norm=c, device="cpu")
    assert any(n > c for n in h.grad_norm) and any(n < c for n in h.grad_norm)
    for before, after in zip(h.grad_norm, seen):
        assert after <= c * (1 + 1e-9)                              # bounded by c
        if before < c - 1e-5:
            assert after == pytest.approx(before, rel=1e-9)         # untouched below c
        else:
            assert after == pytest.approx(c, rel=1e-4)              # scaled onto the ball


# -- reproducibility and checkpoints --------------------------------------------------------
def _run(seed, steps, path=None, resume=False, every=None):
    x, y = _problem(48, dtype=torch.float32)
    model = _model(dtype=torch.float32, dropout=0.2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20)
    h = train(model, opt, data.batches(x, y, 8, seed=1), steps=steps, scheduler=sched,
              accumulation_steps=2, clip_grad_norm=1.0, seed=seed, device="cpu",
              checkpoint_path=path, resume=resume, checkpoint_every=every)
    return h, model


def test_same_seed_same_run_other_seed_other_run():
    (h1, m1), (h2, m2), (h3, _) = _run(0, 10), _run(0, 10), _run(1, 10)
    assert h1 == h2 and torch.equal(_params(m1), _params(m2))
    assert h1.loss != h3.loss                                       # dropout masks differ


def test_resumed_run_equals_uninterrupted(tmp_path):
    full, full_model = _run(0, 20, tmp_path / "full.pt", every=5)
    _run(0, 10, tmp_path / "half.pt")
    resumed, resumed_model = _run(0, 20, tmp_path / "half.pt", resume=True)
    assert resumed.to_dict() == full.to_dict()
    assert torch.equal(_params(resumed_model), _params(full_model))
    with pytest.raises(ValueError, match="seed was 0 in the checkpoint and is 3"):
        _run(3, 20, tmp_path / "half.pt", resume=True)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        _run(0, 20, tmp_path / "missing.pt", resume=True)


# -- precision ------------------------------------------------------------------------------
def test_bf16_on_cpu_runs_and_learns():
    split = data.digits()
    model = models.mlp(64, [32], 10)
    h = train(model, torch.optim.Adam(model.parameters(), lr=1e-2),
              data.batches(split.x_train, split.y_train, 64), steps=40, precision="bf16",
              device="cpu")
    assert h.config["precision"] == "bf16"
    assert sum(h.loss[-5:]) < 0.6 * sum(h.loss[:5])
    assert next(model.parameters()).dtype == torch.float32           # master weights fp32


def test_precision_choices_on_cpu():
    model, x = _model(dtype=torch.float32), _problem(dtype=torch.float32)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        train(model, torch.optim.SGD(model.parameters()), x, steps=1, precision="fp16",
              device="cpu")
    h = train(model, torch.optim.SGD(model.parameters()), x, steps=1, precision="auto",
              device="cpu")
    assert h.config["precision"] == "fp32"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_with_grad_scaler_on_cuda():
    split = data.digits()
    model = models.mlp(64, [32], 10)
    h = train(model, torch.optim.Adam(model.parameters(), lr=1e-2),
              data.batches(split.x_train, split.y_train, 64), steps=60, precision="fp16",
              device="cuda")
    assert all(math.isfinite(v) for v in h.loss)
    assert sum(h.loss[-5:]) < 0.6 * sum(h.loss[:5])
    assert next(model.parameters()).device.type == "cuda"


# -- bad input ------------------------------------------------------------------------------
def _nan_at(step):
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        loss = F.cross_entropy(out, y)
        return loss * math.nan if len(calls) == step else loss
    return loss_fn


def test_nan_loss_raises_naming_the_step_before_updating():
    x, y = _problem()
    model, reference = _model(), _model()
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 3") as err:
        train(model, torch.optim.SGD(model.parameters(), lr=0.1), (x, y), steps=10,
              loss_fn=_nan_at(3), device="cpu")
    assert err.value.step == 3 and len(err.value.history) == 2
    train(reference, torch.optim.SGD(reference.parameters(), lr=0.1), (x, y), steps=2,
          device="cpu")
    assert torch.equal(_params(model), _params(reference))          # no update at step 3


def test_nan_loss_can_record_and_stop():
    x, y = _problem()
    model = _model()
    h = train(model, torch.optim.SGD(model.parameters(), lr=0.1), (x, y), steps=10,
              loss_fn=_nan_at(3), on_nonfinite="stop", device="cpu")
    assert len(h) == 3 and math.isnan(h.loss[-1]) and h.update_ratio[-1] == 0
    assert "step 3" in h.stopped


def test_shape_errors_name_the_shapes():
    r = data.linear_regression(n=8, d=3)
    model = models.mlp(3, [], 1)
    with pytest.raises(ValueError, match=r"\(8, 1\) and targets \(8,\)"):
        train(model, torch.optim.SGD(model.parameters()), (r.x, r.y), steps=1,
              loss_fn=F.mse_loss, device="cpu")
    x, y = _problem(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"\(16, 3\) and targets \(15,\)"):
        train(_model(dtype=torch.float32), torch.optim.SGD(model.parameters()),
              (x, y[:15]), steps=1, device="cpu")
    with pytest.raises(ValueError, match="accumulation_steps"):
        train(model, torch.optim.SGD(model.parameters()), (x, y), steps=1,
              accumulation_steps=0)
    with pytest.raises(ValueError, match=r"clip_grad_norm \(c\)"):
        train(model, torch.optim.SGD(model.parameters()), (x, y), steps=1, clip_grad_norm=-1)


def test_data_sources():
    x, y = _problem(dtype=torch.float32)
    model = _model(dtype=torch.float32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    assert len(train(model, opt, lambda i: (x, y), steps=3, device="cpu")) == 3
    with pytest.raises(ValueError, match="ran out after 2 micro-batches"):
        train(model, opt, iter([(x, y), (x, y)]), steps=3, device="cpu")
    assert best_device().type in ("cpu", "cuda", "mps")
    result = evaluate(model, x, y, device="cpu")
    assert 0 <= result["accuracy"] <= 1 and result["loss"] > 0


# -- curve plots ----------------------------------------------------------------------------
def test_plot_loss_curves_and_history():
    from descent.plots.curves import plot_history, plot_loss_curves

    runs = [_run(seed, 6)[0] for seed in (0, 1, 2)]
    ax = plot_loss_curves({"AdamW": runs, "list": [3.0, 2.0, 1.0]}, band="std")
    assert len(ax.lines) == 2 and len(ax.collections) == 1          # one band: AdamW
    mean = [sum(r.loss[i] for r in runs) / 3 for i in range(6)]
    assert list(ax.lines[0].get_ydata()) == pytest.approx(mean)
    assert ax.get_yscale() == "log"
    fig = plot_history(runs[0].to_dict())
    assert len(fig.axes) == 4
    assert list(fig.axes[3].lines[0].get_ydata()) == pytest.approx(runs[0].lr)
    matplotlib.pyplot.close("all")
