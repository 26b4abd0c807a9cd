"""Trajectories that play in the book's static HTML: no kernel, no network (chapters 4–5).

Each function computes everything at build time with the library's own rules and returns a
:class:`Player`, which a notebook displays as HTML: an inline SVG drawn here (the contour
lines of the landscape, from a grid of its values, and the trajectory of the default
setting), the controls, and the data as JSON. The book's own ``_static/descent-player.js``
turns it into a player; without JavaScript (in Jupyter, say) the SVG is a static figure.

- :func:`momentum_player` — heavy ball (``descent.rules.sgd_update``) on a landscape for a
  grid of step sizes α and momenta β, with a slider for each, the error
  :math:`\\lVert\\theta_t - \\theta^\\star\\rVert` on a log scale under the contour, and the
  predicted rate ρ(α, β) of :func:`descent.rates.momentum_rate` beside it (chapter 4);
- :func:`race_player` — several trajectories (any rules) on one landscape, racing step by
  step with play and pause (chapter 5).

House style: the SVG is :data:`~descent.plots.style.CONTENT_WIDTH_PX` wide in its own units
and scales with the page (down to a phone); every word is HTML text, outside the SVG, so it
stays legible at any width. Data are rounded (coordinates to 1e-3, log-errors to 0.1) and
paths stop once they leave the view or stop moving, to keep a page's data small.
"""

from __future__ import annotations

import html
import itertools
import json
import math
from collections.abc import Mapping, Sequence

import contourpy
import matplotlib as mpl
import numpy as np

from descent._checks import check_int
from descent.landscapes import Landscape, trajectory
from descent.plots.landscape import _levels
from descent.plots.style import CONTENT_WIDTH_PX
from descent.rates import momentum_rate
from descent.rules import sgd_init, sgd_update

__all__ = ["Player", "momentum_player", "race_player", "SCRIPT", "STYLESHEET"]

SCRIPT = "descent-player.js"          # in book/_static, loaded on every page (html_js_files)
STYLESHEET = "descent-player.css"     # in book/_static (html_css_files)
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
_ids = itertools.count(1)


class Player:
    """An interactive figure: ``data`` (what the JavaScript reads) and its HTML.

    A notebook shows it as HTML (``_repr_html_``); ``data`` is there to be checked.
    """

    def __init__(self, kind: str, data: dict, markup: str):
        self.kind = kind
        self.data = data
        self.json = json.dumps(data, separators=(",", ":"), allow_nan=False)
        self.html = markup.replace("@DATA@", self.json.replace("<", "\\u003c"))

    @property
    def nbytes(self) -> int:
        """The size of the HTML the page carries, data included."""
        return len(self.html.encode())

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"{self.kind} player, {self.nbytes / 1024:.0f} KB of HTML"


# -- geometry ---------------------------------------------------------------------------------

class _Frame:
    """Data coordinates ↔ SVG units over ``view`` ((x0, x1), (y0, y1)), y pointing up."""

    def __init__(self, view, width: float = CONTENT_WIDTH_PX, height: float | None = None):
        (self.x0, self.x1), (self.y0, self.y1) = view
        if not (self.x1 > self.x0 and self.y1 > self.y0):
            raise ValueError(f"view must be ((x0, x1), (y0, y1)) with x0 < x1, y0 < y1, "
                             f"got {view}")
        self.width = float(width)
        aspect = (self.y1 - self.y0) / (self.x1 - self.x0)
        self.height = float(height or min(max(width * aspect, 0.45 * width), 0.7 * width))

    def px(self, points) -> np.ndarray:
        p = np.asarray(points, dtype=float).reshape(-1, 2)
        u = (p[:, 0] - self.x0) / (self.x1 - self.x0) * self.width
        v = (self.y1 - p[:, 1]) / (self.y1 - self.y0) * self.height
        return np.stack([u, v], -1)

    def inside(self, points, margin: float = 0.5) -> np.ndarray:
        """Points within the view grown by ``margin`` of its size on each side (and finite)."""
        p = np.asarray(points, dtype=float).reshape(-1, 2)
        dx, dy = margin * (self.x1 - self.x0), margin * (self.y1 - self.y0)
        with np.errstate(invalid="ignore"):
            return (np.isfinite(p).all(1) & (p[:, 0] > self.x0 - dx) & (p[:, 0] < self.x1 + dx)
                    & (p[:, 1] > self.y0 - dy) & (p[:, 1] < self.y1 + dy))

    def meta(self) -> dict:
        return {"view": [self.x0, self.x1, self.y0, self.y1],
                "size": [round(self.width, 1), round(self.height, 1)]}


def _d(points_px: np.ndarray, decimals: int = 1) -> str:
    """An SVG path through points (already in SVG units), rounded to ``decimals``."""
    if len(points_px) == 0:
        return ""
    parts = [f"{x:.{decimals}f} {y:.{decimals}f}" for x, y in points_px]
    return "M" + " L".join(parts)


def _thin(points_px: np.ndarray, spacing: float = 3.0) -> np.ndarray:
    """Every point at least ``spacing`` SVG units from the last one kept, and the last: a
    contour drawn from a fine grid needs no more to look smooth, and the page stays small."""
    kept, last = [0], points_px[0]
    for k in range(1, len(points_px) - 1):
        if np.hypot(*(points_px[k] - last)) >= spacing:
            kept.append(k)
            last = points_px[k]
    kept.append(len(points_px) - 1)
    return points_px[kept]


def _contours(landscape: Landscape, frame: _Frame, levels, resolution: int) -> str:
    """The contour lines of ``landscape`` over the frame's view, as SVG paths."""
    check_int(resolution, "resolution", low=10)
    xs = np.linspace(frame.x0, frame.x1, resolution)
    ys = np.linspace(frame.y0, frame.y1, resolution)
    X, Y = np.meshgrid(xs, ys)
    Z = landscape.value(np.stack([X, Y], axis=-1))          # the precomputed grid of f
    values = _levels(Z, levels)
    generator = contourpy.contour_generator(X, Y, Z)
    colormap = mpl.colormaps["viridis"]
    norm = mpl.colors.Normalize(values.min(), values.max())
    paths = []
    for level in values:
        color = mpl.colors.to_hex(colormap(norm(level)))
        for line in generator.lines(level):
            if len(line) > 1:
                points = _thin(frame.px(line))          # whole units: 1 px at 688 px
                paths.append(f'<path d="{_d(points, 0)}" stroke="{color}"/>')
    return '<g class="dp-contours" fill="none" stroke-width="1">' + "".join(paths) + "</g>"


def _star(frame: _Frame, point) -> str:
    cx, cy = frame.px(point)[0]
    corners = []
    for k in range(10):
        r = 9.0 if k % 2 == 0 else 3.8
        a = math.pi / 2 + k * math.pi / 5
        corners.append((cx + r * math.cos(a), cy - r * math.sin(a)))
    return f'<path class="dp-min" d="{_d(np.array(corners))} Z"/>'


def _flat(path: np.ndarray) -> list[float]:
    return [round(float(v), 3) for v in np.asarray(path, dtype=float).reshape(-1)]


def _keep(path: np.ndarray, frame: _Frame, minimum) -> np.ndarray:
    """The part of ``path`` worth drawing: up to the first point past its last visit to the
    (grown) view, so a diverging path runs off the plot and stops, and up to where it has
    stopped moving (within 0.3% of the view's size of the minimum, about 2 SVG units)."""
    inside = frame.inside(path)
    visits = np.flatnonzero(inside)
    end = 1 if not len(visits) else min(len(path), int(visits[-1]) + 2)
    if not np.isfinite(path[:end]).all():
        end = int(np.argmin(np.isfinite(path).all(axis=1)))
    if minimum is not None:
        scale = 3e-3 * max(frame.x1 - frame.x0, frame.y1 - frame.y0)
        with np.errstate(invalid="ignore"):
            close = np.linalg.norm(path - minimum, axis=1) < scale
        settled = np.flatnonzero(~close[::-1])                 # from the end: still moving
        last = len(path) - (settled[0] if len(settled) else len(path))
        end = min(end, last + 1)
    return path[:max(end, 1)]


def _controls(rows: str, steps: int) -> str:
    return (f'<div class="dp-controls" hidden>{rows}'
            '<div class="dp-row"><button type="button" class="dp-play" aria-pressed="false">'
            'Play</button><label class="dp-slider">iteration t '
            f'<input type="range" class="dp-t" min="0" max="{steps}" step="1" value="{steps}">'
            f'<output class="dp-t-out">{steps}</output></label></div></div>')


# -- the momentum player ----------------------------------------------------------------------

def momentum_player(landscape: Landscape, x0, lrs: Sequence[float], momenta: Sequence[float], *,
                    steps: int = 100, start: tuple[float, float] | None = None,
                    view=None, levels: int | Sequence[float] = 14, resolution: int = 160,
                    caption: str = "") -> Player:
    """Heavy ball on a 2-D ``landscape`` for every pair of ``lrs`` (α) and ``momenta`` (β).

    Each pair runs ``steps`` steps of ``descent.rules.sgd_update(lr=α, momentum=β)`` from
    ``x0`` (PyTorch's buffer form, which is Polyak's heavy ball with α = η, chapter 4). The
    player shows the path of the pair the sliders select, the iterate at step t, the error
    :math:`\\lVert\\theta_t-\\theta^\\star\\rVert` (to the landscape's first minimum) on a log
    scale, and, for a quadratic, the rate ρ(α, β) of :func:`descent.rates.momentum_rate`
    from the eigenvalues of its Hessian (dashed: :math:`\\rho^t` times the first error).
    ``start`` is the pair of values shown first (default: the middle of each list); ``view``
    the plotted box (default: ``landscape.bounds``).
    """
    if not isinstance(landscape, Landscape) or landscape.dim != 2:
        raise ValueError("landscape must be a 2-D Landscape")
    check_int(steps, "steps", low=1)
    lrs = [float(v) for v in lrs]
    momenta = [float(v) for v in momenta]
    if not lrs or not momenta:
        raise ValueError("lrs and momenta must each hold at least one value")
    i0, j0 = (len(lrs) // 2, len(momenta) // 2) if start is None else (
        _index(lrs, start[0], "start[0] (α)"), _index(momenta, start[1], "start[1] (β)"))
    frame = _Frame(view or landscape.bounds)
    minimum = landscape.minima[0] if len(landscape.minima) else None
    if minimum is None:
        raise ValueError(f"{landscape.name} has no minimum to measure the error against")
    curvatures = None
    H = landscape.hessian(minimum)
    if np.allclose(landscape.hessian(np.asarray(x0, dtype=float)), H):
        curvatures = np.linalg.eigvalsh(H)                     # a quadratic: ρ is exact

    paths, logerr, rates = [], [], []
    for lr, beta in itertools.product(lrs, momenta):            # row-major: i·len(β) + j
        path = trajectory(landscape, x0, sgd_update, sgd_init, steps, lr=lr, momentum=beta)
        with np.errstate(over="ignore", invalid="ignore"):
            error = np.linalg.norm(path - minimum, axis=1)       # ‖θ_t − θ*‖
            log = np.log10(np.maximum(error, 1e-300))
        log = [round(float(v), 1) if np.isfinite(v) and v < 6 else None for v in log]
        paths.append(_flat(_keep(path, frame, minimum)))
        logerr.append([max(v, -12.0) if v is not None else None for v in log])
        if curvatures is not None:
            rates.append(round(float(momentum_rate(lr, beta, curvatures)), 5))
    data = {"kind": "momentum", **frame.meta(), "lrs": lrs, "momenta": momenta,
            "steps": steps, "start": [i0, j0], "paths": paths, "logerr": logerr,
            "rates": rates or None, "minimum": _flat(minimum)}

    k0 = i0 * len(momenta) + j0
    note = ("; dashed, ρᵗ‖θ₀ − θ*‖ with the rate ρ of the iteration matrix"
            if rates else "")
    readout = f"α = {lrs[i0]:.3g}, β = {momenta[j0]:.3g}" + (
        f": rate ρ = {rates[k0]:.4g}" if rates else "")
    first = np.array(paths[k0]).reshape(-1, 2)
    pid = next(_ids)
    e_frame = _Frame(((0, steps), (-12, 1)), height=150)
    grid = "".join(
        f'<line x1="0" x2="{e_frame.width:.0f}" y1="{y:.1f}" y2="{y:.1f}"/>'
        for y in e_frame.px([[0, d] for d in range(-12, 1, 3)])[:, 1])
    ticks = "".join(
        f'<text x="4" y="{y + 14:.1f}">10{_superscript(d)}</text>'
        for d, y in zip(range(-12, 1, 3), e_frame.px([[0, d] for d in range(-12, 1, 3)])[:, 1])
        if d > -12)                                            # under each line
    errors = np.array([[t, v] for t, v in enumerate(logerr[k0]) if v is not None])
    sliders = "".join(
        f'<div class="dp-row"><label class="dp-slider">{name} '
        f'<input type="range" class="dp-{key}" min="0" max="{len(values) - 1}" step="1" '
        f'value="{index}"><output class="dp-{key}-out">{values[index]:.3g}</output></label>'
        '</div>'
        for name, key, values, index in (("step size α", "lr", lrs, i0),
                                         ("momentum β", "momentum", momenta, j0)))
    markup = (
        f'<figure class="descent-player" data-kind="momentum" id="descent-player-{pid}">'
        f'<svg class="dp-plot" viewBox="0 0 {frame.width:.0f} {frame.height:.0f}" '
        'role="img" aria-label="contour lines of the landscape with the heavy-ball path">'
        f'{_contours(landscape, frame, levels, resolution)}{_star(frame, minimum)}'
        f'<path class="dp-path" d="{_d(frame.px(first))}"/>'
        f'<circle class="dp-start" r="5" cx="{frame.px(first[0])[0, 0]:.1f}" '
        f'cy="{frame.px(first[0])[0, 1]:.1f}"/>'
        f'<circle class="dp-iterate" r="6" cx="{frame.px(first[-1])[0, 0]:.1f}" '
        f'cy="{frame.px(first[-1])[0, 1]:.1f}"/></svg>'
        f'<svg class="dp-error" viewBox="0 0 {e_frame.width:.0f} {e_frame.height:.0f}" '
        'role="img" aria-label="the error on a log scale against the iteration">'
        f'<g class="dp-grid">{grid}</g><g class="dp-ticks">{ticks}</g>'
        '<path class="dp-rate" d=""/>'
        f'<path class="dp-errcurve" d="{_d(e_frame.px(errors))}"/>'
        f'<line class="dp-now" y1="0" y2="{e_frame.height:.0f}" x1="{e_frame.width:.1f}" '
        f'x2="{e_frame.width:.1f}"/></svg>'
        '<p class="dp-note">Above: the path of heavy ball from the white circle; the red dot '
        'is the iterate at step t. Below: the error ‖θₜ − θ*‖ against t, on a log scale'
        f'{note}.</p>'
        f'{_controls(sliders, steps)}'
        f'<p class="dp-readout" aria-live="polite">{html.escape(readout)}</p>'
        f'<figcaption>{html.escape(caption)}</figcaption>'
        '<script type="application/json" class="dp-data">@DATA@</script></figure>')
    return Player("momentum", data, markup)


def _index(values: list[float], value: float, name: str) -> int:
    matches = [k for k, v in enumerate(values) if math.isclose(v, value, rel_tol=1e-9)]
    if not matches:
        raise ValueError(f"{name} must be one of the grid's values, got {value!r}")
    return matches[0]


def _superscript(n: int) -> str:
    table = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    return str(n).translate(table)


# -- the race ---------------------------------------------------------------------------------

def race_player(landscape: Landscape, runs: Mapping[str, np.ndarray], *, view=None,
                levels: int | Sequence[float] = 12, resolution: int = 160,
                caption: str = "") -> Player:
    """Trajectories ``{label: path}`` on a 2-D ``landscape``, racing with play and pause.

    Each path is a ``(T+1, 2)`` array, e.g. from :func:`descent.landscapes.trajectory`; all
    must have the same length. The player draws each route faintly, then the path so far,
    the iterate at step t and, beside its label, :math:`f(\\theta_t)`.
    """
    if not isinstance(landscape, Landscape) or landscape.dim != 2:
        raise ValueError("landscape must be a 2-D Landscape")
    if not runs:
        raise ValueError("runs must hold at least one trajectory")
    arrays = {str(k): np.asarray(v, dtype=float) for k, v in runs.items()}
    lengths = {len(p) for p in arrays.values()}
    if len(lengths) != 1 or any(p.ndim != 2 or p.shape[1] != 2 for p in arrays.values()):
        raise ValueError("every path must have shape (T+1, 2), with the same T")
    steps = lengths.pop() - 1
    frame = _Frame(view or landscape.bounds)
    minimum = landscape.minima[0] if len(landscape.minima) else None
    entries, layers, legend = [], [], []
    for (label, path), color in zip(arrays.items(), itertools.cycle(_COLORS)):
        kept = _keep(path, frame, None)
        with np.errstate(over="ignore", invalid="ignore"):
            loss = landscape.value(path)
        entries.append({"label": label, "color": color, "path": _flat(kept),
                        "loss": [float(f"{v:.4g}") if np.isfinite(v) else None
                                 for v in loss]})
        points = frame.px(kept)
        layers.append(
            f'<path class="dp-ghost" style="stroke:{color}" d="{_d(points)}"/>'
            f'<path class="dp-path" style="stroke:{color}" d="{_d(points)}"/>'
            f'<circle class="dp-iterate" r="6" style="fill:{color}" cx="{points[-1, 0]:.1f}" '
            f'cy="{points[-1, 1]:.1f}"/>')
        legend.append(f'<li><span class="dp-swatch" style="background:{color}"></span>'
                      f'{html.escape(label)}: <output class="dp-loss">'
                      f'f = {loss[-1]:.3g}</output></li>')
    data = {"kind": "race", **frame.meta(), "steps": steps, "runs": entries,
            "minimum": _flat(minimum) if minimum is not None else None}
    pid = next(_ids)
    start = frame.px(next(iter(arrays.values()))[0])[0]
    markup = (
        f'<figure class="descent-player" data-kind="race" id="descent-player-{pid}">'
        f'<svg class="dp-plot" viewBox="0 0 {frame.width:.0f} {frame.height:.0f}" '
        'role="img" aria-label="contour lines of the landscape with the racing paths">'
        f'{_contours(landscape, frame, levels, resolution)}'
        f'{_star(frame, minimum) if minimum is not None else ""}'
        f'<circle class="dp-start" r="5" cx="{start[0]:.1f}" cy="{start[1]:.1f}"/>'
        f'{"".join(layers)}</svg>'
        f'<ul class="dp-legend">{"".join(legend)}</ul>'
        f'{_controls("", steps)}'
        f'<figcaption>{html.escape(caption)}</figcaption>'
        '<script type="application/json" class="dp-data">@DATA@</script></figure>')
    return Player("race", data, markup)
