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

import warnings
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

def place_legend(ax: Axes, *, candidates: Sequence[str] = _INSIDE, outside: str = "below",
                 **kwargs) -> Legend | None:
    """A legend for ``ax`` that covers none of its data; returns it (None if nothing to show).

    The legend goes to the first of ``candidates`` (corners and sides of the axes) where it
    covers no line, marker, band, bar or image; if there is none, ``outside`` the axes:
    ``"below"`` them, under the tick labels, in as many columns as fit, or to their
    ``"right"``, in one column. ``candidates=()`` goes outside at once. Call it after the last
    artist is drawn.
    """
    if outside not in ("below", "right"):
        raise ValueError(f"outside must be 'below' or 'right', got {outside!r}")
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    fig = ax.figure
    legend = ax.legend(handles, labels, loc=candidates[0] if candidates else "upper right",
                       **kwargs)
    renderer = _laid_out(fig)
    for loc in candidates:
        legend.set_loc(loc)
        if not _covered(legend.get_window_extent(renderer), [ax], renderer):
            return legend
    # The trial legend was inside the axes, so the layout holds without it.
    legend.set_visible(False)
    tight = ax.get_tightbbox(renderer)
    legend.remove()
    return _legend_outside(ax, handles, labels, renderer, tight, outside, **kwargs)


def _laid_out(fig: Figure):
    """Lay the figure out (positions final, nothing rasterized) and return its renderer.

    A trial layout may not fit (a legend being placed is briefly too large); constrained
    layout then warns and keeps the previous positions. The warning is about the trial, not
    the figure: the figure as shown is checked when it is drawn for real.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="constrained_layout not applied")
        fig.draw_without_rendering()
    return fig.canvas.get_renderer()


def _legend_outside(ax: Axes, handles, labels, renderer, tight: Bbox, where: str,
                    **kwargs) -> Legend:
    """The legend beside the axes' labels (``tight``, their extent in pixels): below, in as
    many columns as fit, or right, in one."""
    fig = ax.figure
    kwargs.pop("ncols", None)
    if where == "right":
        gap = (tight.x1 - ax.bbox.x1) * 72 / fig.dpi + 4      # tick labels to the right, pt
        anchor = offset_copy(ax.transAxes, fig=fig, x=gap, units="points")
        return ax.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5),
                         bbox_transform=anchor, ncols=1, borderaxespad=0, **kwargs)
    gap = (ax.bbox.y0 - tight.y0) * 72 / fig.dpi + 4            # labels under the axes, pt
    anchor = offset_copy(ax.transAxes, fig=fig, y=-gap, units="points")
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
    renderer = _laid_out(fig)
    for ncols in range(kwargs.pop("ncols", len(entries)), 0, -1):   # as many as fit
        legend = fig.legend(list(entries.values()), list(entries), loc="outside lower center",
                            ncols=ncols, **kwargs)
        if ncols == 1 or legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
            return legend
        legend.remove()
    raise AssertionError("unreachable: one column always fits")  # pragma: no cover


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
    renderer = _laid_out(fig)
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
    - visible text smaller than :data:`MIN_FONT_PT`, or cut off by the figure's edge;
    - a legend that covers data (:func:`legend_overlaps`).
    """
    problems = []
    width = fig.get_size_inches()[0]
    if width > CONTENT_WIDTH_IN + 1e-6:
        problems.append(f"{width:.2f} in wide; the page is {CONTENT_WIDTH_IN:.2f} in "
                        f"({CONTENT_WIDTH_PX} px), so it would be shown at "
                        f"{CONTENT_WIDTH_IN / width:.0%}")
    problems += legend_overlaps(fig)                        # draws: tick labels exist now
    texts = _drawn_texts(fig)
    small = sorted({(round(t.get_fontsize(), 1), t.get_text()[:30]) for t in texts
                    if t.get_fontsize() < MIN_FONT_PT})
    if small:
        problems.append(f"text smaller than {MIN_FONT_PT} pt: "
                        + ", ".join(f"{text!r} at {size} pt" for size, text in small[:5]))
    renderer = fig.canvas.get_renderer()
    edge = fig.bbox.padded(1)
    cut = [t.get_text()[:30] for t in texts
           if not _inside(t.get_window_extent(renderer), edge)]
    if cut:
        problems.append(f"text cut off by the edge of the figure: {cut[:5]}")
    return problems


def _inside(box: Bbox, outer: Bbox) -> bool:
    return (box.x0 >= outer.x0 and box.y0 >= outer.y0 and box.x1 <= outer.x1
            and box.y1 <= outer.y1)


def _drawn_texts(fig: Figure) -> list[Text]:
    """The figure's visible, non-empty texts that are drawn: tick labels only for ticks
    inside the axis limits (matplotlib keeps, but does not draw, the others)."""
    ticks = set()
    for ax in fig.axes:
        for axis, index in ((ax.xaxis, 0), (ax.yaxis, 1)):
            low, high = sorted(axis.get_view_interval())
            for tick in (*axis.get_major_ticks(), *axis.get_minor_ticks()):
                for label in (tick.label1, tick.label2):
                    ticks.add(id(label))
                    if low <= label.get_position()[index] <= high:
                        ticks.discard(id(label))      # drawn: keep it
    return [t for t in fig.findobj(Text) if id(t) not in ticks and t.get_visible()
            and t.get_text().strip()]
