"""descent.plots.interactive: the players' data are the library's trajectories and rates,
their HTML is self-contained (no URL, no TeX, every word outside the SVG) and small. The
players themselves are driven in Chromium by tests/test_players.py."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from descent import landscapes as LS
from descent import rates
from descent.plots.interactive import Player, momentum_player, race_player
from descent.rules import adam_init, adam_update, sgd_init, sgd_update

BOWL = LS.quadratic_bowl(kappa=100.0, angle=np.pi / 6)
X0 = [-1.5, 1.0]
HB = rates.optimal_heavy_ball(1.0, 0.01)
LRS = [0.5, 1.0, HB.lr, 4.5]           # 4.5 diverges at every β below 1.25
MOMENTA = [0.0, HB.momentum, 0.9]


@pytest.fixture(scope="module")
def player():
    return momentum_player(BOWL, X0, LRS, MOMENTA, steps=60, start=(1.0, 0.9),
                           view=((-2, 2), (-1.3, 1.3)), caption="a <caption> & more")


def test_momentum_player_holds_the_rules_trajectories(player):
    data = player.data
    assert data["kind"] == "momentum" and data["start"] == [1, 2]
    assert len(data["paths"]) == len(LRS) * len(MOMENTA)
    curvatures = np.linalg.eigvalsh(BOWL.hessian(np.zeros(2)))
    for k, (lr, beta) in enumerate((a, b) for a in LRS for b in MOMENTA):
        path = LS.trajectory(BOWL, X0, sgd_update, sgd_init, 60, lr=lr, momentum=beta)
        kept = np.array(data["paths"][k]).reshape(-1, 2)
        np.testing.assert_allclose(kept, path[: len(kept)], atol=5e-4)    # rounded to 1e-3
        assert data["rates"][k] == pytest.approx(
            float(rates.momentum_rate(lr, beta, curvatures)), abs=1e-5)
        with np.errstate(over="ignore", invalid="ignore"):
            error = np.log10(np.linalg.norm(path, axis=1))
        logs = data["logerr"][k]
        assert len(logs) == 61
        for t, value in enumerate(logs):
            if value is None:                                        # diverged off the panel
                assert not np.isfinite(error[t]) or error[t] >= 6
            else:
                assert value == pytest.approx(max(error[t], -12), abs=0.051)


def test_paths_stop_where_they_leave_the_view_or_settle(player):
    data = player.data
    diverging = np.array(data["paths"][3 * len(MOMENTA)]).reshape(-1, 2)     # α = 4.5, β = 0
    assert len(diverging) < 61 and np.abs(diverging[-1]).max() > 2        # ran off the plot
    best = int(np.argmin([logs[-1] if logs[-1] is not None else 99
                          for logs in data["logerr"]]))
    assert data["logerr"][best][-1] <= -2.5                              # it converged ...
    fast = np.array(data["paths"][best]).reshape(-1, 2)
    assert np.linalg.norm(fast[-1]) < 0.013 and len(fast) < 61          # ... settled, cut


def test_html_is_self_contained_and_small(player):
    text = player.html
    assert "http" not in text and "$" not in text and "\\" not in text.split("dp-data")[0]
    assert "&lt;caption&gt; &amp; more" in text                           # escaped
    assert '<div class="dp-controls" hidden>' in text                      # shown by JS
    svg_text = re.findall(r"<svg.*?</svg>", text, flags=re.S)
    assert svg_text and all("<text" not in s for s in svg_text[:1])         # words in HTML
    blob = re.search(r'<script type="application/json" class="dp-data">(.*?)</script>',
                     text, flags=re.S).group(1)
    assert json.loads(blob) == player.data
    assert player.nbytes < 120_000
    assert player._repr_html_() == text and "KB" in repr(player)


def test_race_player_loss_and_checks():
    rosen = LS.rosenbrock()
    runs = {"GD": LS.trajectory(rosen, [-1.2, 1.0], sgd_update, sgd_init, 50, lr=1e-3),
            "Adam": LS.trajectory(rosen, [-1.2, 1.0], adam_update, adam_init, 50, lr=0.1)}
    race = race_player(rosen, runs, view=((-2, 2), (-0.5, 3)))
    assert isinstance(race, Player) and race.data["steps"] == 50
    for entry, (label, path) in zip(race.data["runs"], runs.items()):
        assert entry["label"] == label
        np.testing.assert_allclose(entry["loss"], rosen.value(path), rtol=1e-3)
        np.testing.assert_allclose(np.array(entry["path"]).reshape(-1, 2), path, atol=5e-4)
    assert race.nbytes < 80_000
    with pytest.raises(ValueError, match="same T"):
        race_player(rosen, {"a": np.zeros((3, 2)), "b": np.zeros((4, 2))})
    with pytest.raises(ValueError, match="2-D"):
        race_player(LS.quadratic_bowl(4.0, dim=3), {"a": np.zeros((3, 3))})


def test_momentum_player_arguments():
    with pytest.raises(ValueError, match="grid's values"):
        momentum_player(BOWL, X0, LRS, MOMENTA, steps=5, start=(0.7, 0.0))
    with pytest.raises(ValueError, match="at least one"):
        momentum_player(BOWL, X0, [], MOMENTA, steps=5)
    with pytest.raises(ValueError, match="view"):
        momentum_player(BOWL, X0, LRS, MOMENTA, steps=5, view=((1, 0), (0, 1)))
