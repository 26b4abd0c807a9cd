"""The book's house style: figures as wide as the page, legible as shown, legends off the data.

The book's article is :data:`CONTENT_WIDTH_PX` CSS pixels wide in a 1280-px window
(sphinx-book-theme), and the browser shows an SVG at its natural size when it fits: one inch
of figure is 96 CSS pixels, one point 4/3 of a pixel. So a figure drawn
:data:`CONTENT_WIDTH_IN` inches wide is shown at exactly its natural size, and a font of
:data:`MIN_FONT_PT` points or more is at least 9 px on the screen.

- :func:`book_style` sets the rcParams below and, in IPython, shows figures as SVG at their
  natural size (no cropping, so the width is the figure's), then checks every figure a cell
  leaves open with :func:`check_figure` before it is shown. A problem raises in the cell's
  output, where the book's browser test finds it.
- :func:`subplots` makes a house-style figure of one or more panels, always
  :data:`CONTENT_WIDTH_IN` wide.
- :func:`place_legend` puts a legend where it covers no data: the first corner or side of the
  axes that is free, else below the axes; :func:`share_legend` puts one legend for all panels
  below the figure.
- :func:`legend_overlaps` and :func:`check_figure` say what a figure gets wrong: a legend
  over data, text smaller than :data:`MIN_FONT_PT`, a figure wider than the page.

Every function of :mod:`descent.plots` draws through these.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection, QuadMesh
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.path import Path
from matplotlib.text import Text
from matplotlib.transforms import Bbox, offset_copy

__all__ = ["CONTENT_WIDTH_PX", "CONTENT_WIDTH_IN", "MIN_FONT_PT", "book_style", "subplots",
           "place_legend", "share_legend", "legend_overlaps", "check_figure",
           "FigureStyleError"]

CONTENT_WIDTH_PX = 688                      # the article's content box at a 1280-px window
CONTENT_WIDTH_IN = CONTENT_WIDTH_PX / 96    # CSS: 96 px per inch
MIN_FONT_PT = 7.5                           # 10 px as shown; the browser test asks ≥ 9 px

RC = {
    "figure.figsize": (CONTENT_WIDTH_IN, 3.6),
    "figure.dpi": 96,
    "figure.constrained_layout.use": True,
    "savefig.dpi": 200,                     # rasterized parts (colour maps) at 2×+ density
    "svg.fonttype": "path",                 # text as glyph outlines: the same in every browser
    "svg.hashsalt": "descent",              # reproducible SVG ids
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "figure.titlesize": 11,
    "legend.framealpha": 0.9,
    "lines.linewidth": 1.4,
}

# Heights (inches) of a row of panels, by how many panels share the width.
_ROW_HEIGHT = {1: 3.6, 2: 3.1, 3: 2.7, 4: 2.5}
# Inside the axes, in this order of preference; "outside" is the last resort.
_INSIDE = ("upper right", "upper left", "lower left", "lower right", "center right",
           "center left", "lower center", "upper center")


class FigureStyleError(AssertionError):
    """A figure breaks the house style: a legend over data, text too small, too wide."""


# ---------------------------------------------------------------------------- figures

def book_style() -> None:
    """Apply the house style: rcParams, and in IPython SVG output plus a check of each figure."""
    mpl.rcParams.update(RC)
    try:
        from IPython import get_ipython
    except ImportError:                                     # pragma: no cover - no IPython
        return
    shell = get_ipython()
    if shell is None:
        return
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    set_matplotlib_formats("svg", bbox_inches=None)        # natural size: the figure's own
    callbacks = shell.events.callbacks["post_execute"]
    if _check_open_figures not in callbacks:
        callbacks.insert(0, _check_open_figures)            # before the figures are shown


def _check_open_figures() -> None:
    """IPython ``post_execute``: every figure the cell leaves open meets the house style."""
    problems = [f"figure {num}: {p}" for num in plt.get_fignums()
                for p in check_figure(plt.figure(num))]
    if problems:
        raise FigureStyleError("the figure breaks the book's house style:\n"
                               + "\n".join(problems))


def subplots(nrows: int = 1, ncols: int = 1, *, height: float | None = None,
             **kwargs) -> tuple[Figure, Axes | np.ndarray]:
    """``plt.subplots`` in the house style: :data:`CONTENT_WIDTH_IN` wide, constrained layout.

    ``height`` (inches) defaults to a row height that suits ``ncols`` panels side by side,
    times ``nrows``. Other keywords go to ``plt.subplots``.
    """
    if height is None:
        height = _ROW_HEIGHT.get(ncols, 2.4) * (nrows if nrows > 1 else 1) * (
            0.85 if nrows > 1 else 1.0)
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(CONTENT_WIDTH_IN, height), **kwargs)


def new_axes(ax: Axes | None, height: float | None = None) -> Axes:
    """``ax`` itself, or the axes of a new one-panel house-style figure."""
    if ax is not None:
        return ax
    _, ax = subplots(height=height)
    return ax


# ---------------------------------------------------------------------------- legends

def place_legend(ax: Axes, *, candidates: Sequence[str] = _INSIDE, **kwargs) -> Legend | None:
    """A legend for ``ax`` that covers none of its data; returns it (None if nothing to show).

    The legend goes to the first of ``candidates`` (corners and sides of the axes) where it
    covers no line, marker, band, bar or image; if there is none, below the axes, under the
    tick labels, in as many columns as fit. Call it after the last artist is drawn.
    """
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    fig = ax.figure
    legend = ax.legend(handles, labels, loc=candidates[0] if candidates else "upper right",
                       **kwargs)
    fig.draw_without_rendering()                        # the layout: where the axes end up
    renderer = fig.canvas.get_renderer()
    for loc in candidates:
        legend.set_loc(loc)
        if not _covered(legend.get_window_extent(renderer), [ax], renderer):
            return legend
    legend.remove()
    return _legend_below(ax, handles, labels, renderer, **kwargs)


def _legend_below(ax: Axes, handles, labels, renderer, **kwargs) -> Legend:
    """The legend under the axes' tick labels and x label, in as many columns as fit."""
    fig = ax.figure
    below = ax.bbox.y0 - ax.get_tightbbox(renderer).y0          # labels under the axes, px
    gap = below * 72 / fig.dpi + 4                              # points
    anchor = offset_copy(ax.transAxes, fig=fig, y=-gap, units="points")
    kwargs.pop("ncols", None)
    width = fig.bbox.width
    for ncols in range(len(labels), 0, -1):
        legend = ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                           bbox_transform=anchor, ncols=ncols, borderaxespad=0, **kwargs)
        if ncols == 1 or legend.get_window_extent(renderer).width <= 0.98 * width:
            return legend
        legend.remove()
    raise AssertionError("unreachable: one column always fits")  # pragma: no cover


def share_legend(fig: Figure, axes: Iterable[Axes] | None = None, **kwargs) -> Legend | None:
    """One legend for all panels, below the figure; the panels' own legends are removed.

    Entries are collected from ``axes`` (default: all of the figure's) in order, one per
    label. Returns the figure legend, or None when no panel has a labelled artist.
    """
    axes = list(fig.axes if axes is None else axes)
    entries: dict[str, object] = {}
    for ax in axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if not entries:
        return None
    ncols = kwargs.pop("ncols", min(len(entries), 4))
    return fig.legend(list(entries.values()), list(entries), loc="outside lower center",
                      ncols=ncols, **kwargs)


# ---------------------------------------------------------------------------- checks

def _covered(box: Bbox, axes: Iterable[Axes], renderer) -> list[str]:
    """The data artists of ``axes`` that are drawn inside ``box`` (display pixels)."""
    box = Bbox.from_extents(box.x0 + 1, box.y0 + 1, box.x1 - 1, box.y1 - 1)  # touching is fine
    hits = []
    for ax in axes:
        clipped = Bbox.intersection(box, ax.bbox)
        for artist in _data_artists(ax):
            region = clipped if artist.get_clip_on() else box
            if region is not None and _draws_inside(artist, region, renderer):
                hits.append(_name(artist))
    return hits


def _data_artists(ax: Axes) -> list:
    return [a for a in (*ax.lines, *ax.collections, *ax.patches, *ax.images)
            if a.get_visible() and a.get_alpha() != 0]


def _draws_inside(artist, region: Bbox, renderer) -> bool:
    if isinstance(artist, mpl.lines.Line2D):
        xy = artist.get_transform().transform(np.asarray(artist.get_xydata(), dtype=float))
        finite = np.isfinite(xy).all(axis=1)
        if artist.get_marker() not in (None, "None", "", " ", "none"):
            pad = artist.get_markersize() * renderer.points_to_pixels(1.0) / 2
            grown = region.padded(pad)
            if finite.any() and grown.count_contains(xy[finite]) > 0:
                return True
        if artist.get_linestyle() in ("None", "", " ", "none") or artist.get_linewidth() == 0:
            return False
        # one polyline per run of finite points (a masked value breaks the line)
        breaks = np.flatnonzero(~finite)
        for run in np.split(xy, breaks):
            run = run[np.isfinite(run).all(axis=1)]
            if len(run) >= 2 and Path(run).intersects_bbox(region, filled=False):
                return True
            if len(run) == 1 and region.count_contains(run) > 0:
                return True
        return False
    if isinstance(artist, QuadMesh | mpl.image.AxesImage):
        return artist.get_window_extent(renderer).overlaps(region)
    if isinstance(artist, PathCollection) and len(artist.get_offsets()):
        points = artist.get_offset_transform().transform(np.asarray(artist.get_offsets()))
        sizes = artist.get_sizes()
        pad = float(np.sqrt(sizes.max()) if len(sizes) else 6.0) * renderer.points_to_pixels(1) / 2
        return region.padded(pad).count_contains(points[np.isfinite(points).all(axis=1)]) > 0
    if isinstance(artist, mpl.collections.Collection):
        transform = artist.get_transform()
        filled = len(artist.get_facecolor()) and np.any(artist.get_facecolor()[:, 3] > 0)
        return any(transform.transform_path(path).intersects_bbox(region, filled=bool(filled))
                   for path in artist.get_paths())
    if isinstance(artist, mpl.patches.Patch):
        return artist.get_window_extent(renderer).overlaps(region)
    return False


def _name(artist) -> str:
    label = artist.get_label() if hasattr(artist, "get_label") else ""
    return f"{type(artist).__name__} {label!r}" if label and not label.startswith("_") \
        else type(artist).__name__


def legend_overlaps(fig: Figure) -> list[str]:
    """Each legend of ``fig`` that covers data, with the artists it covers (drawn first)."""
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    found = []
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            hits = _covered(legend.get_window_extent(renderer), fig.axes, renderer)
            if hits:
                found.append(f"the legend of {_axes_name(ax)} covers {', '.join(hits[:4])}")
    for legend in fig.legends:
        hits = _covered(legend.get_window_extent(renderer), fig.axes, renderer)
        if hits:
            found.append(f"the figure legend covers {', '.join(hits[:4])}")
    return found


def _axes_name(ax: Axes) -> str:
    title = ax.get_title()
    return f"the panel {title!r}" if title else "a panel"


def check_figure(fig: Figure) -> list[str]:
    """What keeps ``fig`` from being read as the book shows it (an empty list: nothing).

    - wider than :data:`CONTENT_WIDTH_IN` (the page would scale it, and its text, down);
    - visible text smaller than :data:`MIN_FONT_PT`;
    - a legend that covers data (:func:`legend_overlaps`).
    """
    problems = []
    width = fig.get_size_inches()[0]
    if width > CONTENT_WIDTH_IN + 1e-6:
        problems.append(f"{width:.2f} in wide; the page is {CONTENT_WIDTH_IN:.2f} in "
                        f"({CONTENT_WIDTH_PX} px), so it would be shown at "
                        f"{CONTENT_WIDTH_IN / width:.0%}")
    problems += legend_overlaps(fig)                        # draws: tick labels exist now
    small = sorted({(round(t.get_fontsize(), 1), t.get_text()[:30]) for t in fig.findobj(Text)
                    if t.get_visible() and t.get_text().strip() and _in_figure(t, fig)
                    and t.get_fontsize() < MIN_FONT_PT})
    if small:
        problems.append(f"text smaller than {MIN_FONT_PT} pt: "
                        + ", ".join(f"{text!r} at {size} pt" for size, text in small[:5]))
    return problems


def _in_figure(text: Text, fig: Figure) -> bool:
    """Whether ``text`` is drawn: tick labels beyond the axis limits exist but are not."""
    axis = getattr(text, "axes", None)
    if axis is None:
        return True
    try:
        extent = text.get_window_extent(fig.canvas.get_renderer())
    except RuntimeError:                                    # pragma: no cover - not drawn
        return True
    return extent.width > 0 and fig.bbox.overlaps(extent)
