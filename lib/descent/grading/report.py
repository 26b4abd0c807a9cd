"""The instructor's report of one graded assignment: a single self-contained HTML page.

:mod:`descent.grading.classroom` grades every submission and writes
``<course>/grades/<assignment>.json``; :func:`write_report` turns it into
``<course>/reports/<assignment>.html``: the status counts, the score distribution, the pass
rate of each part, the most common diagnosed mistakes and the submissions that need a look
(failed, timeout, memory, flagged). The page has no external CSS, scripts or images (the
histogram is an inline base64 PNG), so it opens offline and can be mailed as it is.

Student ids, reasons and messages are untrusted text (a student chooses what their code
raises): every value is passed through :func:`html.escape` before it reaches the page.
:func:`summary` computes every number the page shows, as plain data, so that tests check
numbers rather than parse HTML. From a shell::

    python -m descent.grading.report 05-adaptive --course .
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import statistics
import textwrap
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# Status order on the page: scored first, then the submissions that have no score.
STATUSES = ("graded", "flagged", "failed", "timeout", "memory")
SCORED = ("graded", "flagged")
UNSCORED = ("failed", "timeout", "memory")
NEEDS_A_LOOK = ("failed", "timeout", "memory", "flagged")
GRADE_COMMAND = "python -m descent.grading.classroom grade {assignment}"  # writes the JSON
OTHER_MISTAKE = "other"  # a failed part whose check named no mistake
EXAMPLE_CHARS = 200
# Up to this many points a histogram bar is one point wide; above it the range is cut in 20.
UNIT_BINS_UP_TO = 40


def grades_path(course: Path, assignment: str) -> Path:
    return Path(course) / "grades" / f"{assignment}.json"


def load_results(course: Path, assignment: str) -> dict:
    """The classroom's results JSON; a missing file says which command writes it."""
    path = grades_path(course, assignment)
    if not path.is_file():
        raise FileNotFoundError(
            f"no grades for {assignment!r}: {path} does not exist. Grade the class first: "
            f"`{GRADE_COMMAND.format(assignment=assignment)}`, run in {Path(course)}")
    return json.loads(path.read_text(encoding="utf-8"))


def summary(results: dict) -> dict:
    """Every number the report shows, computed from the classroom's results JSON.

    ``mean``/``median`` are over the students whose status is ``graded`` (None without any);
    the histogram shows ``graded_scores`` and ``flagged_scores``; ``unscored`` counts the
    failed, timeout and memory submissions, which have no score. A part *passes* when it
    earns its full points; every part that does not is counted under its ``mistake`` name
    (``"other"`` when the check named none) in ``mistakes``, most frequent first.
    """
    students = results.get("students") or {}
    counts = dict.fromkeys(STATUSES, 0)
    scores: dict[str, list[float]] = {status: [] for status in SCORED}
    max_scores, seconds = [], []
    parts: dict[str, dict] = {}
    mistakes: dict[tuple[str, str], dict] = {}
    problems = []
    for student, record in students.items():
        status = record.get("status")
        if status not in counts:
            raise ValueError(f"student {student!r} has status {status!r}; "
                             f"expected one of {', '.join(STATUSES)}")
        counts[status] += 1
        if status in SCORED and record.get("score") is not None:
            scores[status].append(float(record["score"]))
        if record.get("max_score") is not None:
            max_scores.append(float(record["max_score"]))
        if _grading_seconds(record) is not None:
            seconds.append((_grading_seconds(record), student))
        if status in NEEDS_A_LOOK:
            problems.append({"student": student, "status": status,
                             "reason": record.get("reason") or "", "score": record.get("score")})
        for grade_id, part in (record.get("parts") or {}).items():
            _count_part(parts, mistakes, grade_id, part)

    graded = scores["graded"]
    ranked = sorted(mistakes.values(), key=lambda m: (-m["count"], m["part"], m["mistake"]))
    problems.sort(key=lambda p: (NEEDS_A_LOOK.index(p["status"]), p["student"]))
    slowest = max(seconds, default=None)
    return {
        "assignment": results.get("assignment", ""),
        "graded_at": results.get("graded_at", ""),
        "limits": results.get("limits") or {},
        "isolation": results.get("isolation") or "",
        "students": len(students),
        "counts": counts,
        "unscored": {status: counts[status] for status in UNSCORED},
        "max_score": max(max_scores) if max_scores else _sum_points(parts),
        "graded_scores": sorted(graded),
        "flagged_scores": sorted(scores["flagged"]),
        "mean": statistics.fmean(graded) if graded else None,
        "median": statistics.median(graded) if graded else None,
        "seconds": None if slowest is None else {
            "median": statistics.median(s for s, _ in seconds),
            "max": slowest[0], "slowest": slowest[1]},
        "parts": {grade_id: _part_rates(row) for grade_id, row in parts.items()},
        "mistakes": ranked,
        "problems": problems,
    }


def _count_part(parts: dict, mistakes: dict, grade_id: str, part: dict) -> None:
    points, score = float(part.get("points") or 0.0), float(part.get("score") or 0.0)
    row = parts.setdefault(grade_id, {"points": points, "submissions": 0, "passed": 0,
                                      "total": 0.0})
    row["submissions"] += 1
    row["total"] += score
    if score >= points or math.isclose(score, points):
        row["passed"] += 1
        return
    name = part.get("mistake") or OTHER_MISTAKE
    entry = mistakes.setdefault((grade_id, name), {"part": grade_id, "mistake": name,
                                                   "count": 0, "example": ""})
    entry["count"] += 1
    if not entry["example"] and part.get("message"):
        entry["example"] = shorten(part["message"])


def _grading_seconds(record: dict) -> float | None:
    """The wall time of one submission: ``seconds``, or the classroom's ``timings``."""
    value = record.get("seconds", (record.get("timings") or {}).get("total_seconds"))
    return None if value is None else float(value)


def _part_rates(row: dict) -> dict:
    n = row["submissions"]
    return {"points": row["points"], "submissions": n, "passed": row["passed"],
            "pass_rate": row["passed"] / n if n else None,
            "mean_score": row["total"] / n if n else None}


def _sum_points(parts: dict) -> float | None:
    return sum(row["points"] for row in parts.values()) if parts else None


def shorten(text: str, width: int = EXAMPLE_CHARS) -> str:
    """One line of at most ``width`` characters (whitespace collapsed, cut at a word)."""
    return textwrap.shorten(str(text), width=width, placeholder=" …")


# -- the page --------------------------------------------------------------------------------


def write_report(course: Path, assignment: str, out: Path | None = None) -> Path:
    """Write the report of ``<course>/grades/<assignment>.json`` to ``out`` (default
    ``<course>/reports/<assignment>.html``) and return its path."""
    results = load_results(course, assignment)
    out = Path(out) if out is not None else Path(course) / "reports" / f"{assignment}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(summary(results)), encoding="utf-8")
    return out


def render(facts: dict) -> str:
    """The HTML page of a :func:`summary`."""
    title = f"Grades of {facts['assignment'] or 'an assignment'}"
    if facts["students"] == 0:
        body = ("<p class='empty'>No submissions: the grades file lists no students, so there "
                "is no score, part or mistake to report. Check that the submissions are in "
                "<code>submitted/&lt;student&gt;/" + _e(facts["assignment"]) +
                "/</code> and grade again.</p>")
    else:
        body = "\n".join([_distribution(facts), _parts_table(facts), _mistakes_table(facts),
                          _problems_table(facts)])
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n"
            f"<h1>{_e(title)}</h1>\n{_header(facts)}\n{body}\n</body></html>\n")


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 62em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f2f2f2; }
.empty { padding: 1em; background: #fff6d6; border: 1px solid #e0c060; }
code, .msg { font-family: ui-monospace, monospace; font-size: 0.9em; }
"""


def _header(facts: dict) -> str:
    counts = ", ".join(f"{n} {status}" for status, n in facts["counts"].items() if n)
    lines = [("graded at", facts["graded_at"] or "unknown"),
             ("isolation", _describe(facts["isolation"]) or "unknown"),
             ("limits", _describe(facts["limits"]) or "none recorded"),
             ("students", f"{facts['students']}" + (f" ({counts})" if counts else ""))]
    graded = facts["counts"]["graded"]
    if facts["mean"] is not None:
        lines.append(("score", f"mean {_num(facts['mean'])}, median {_num(facts['median'])} "
                               f"out of {_num(facts['max_score'])}, over the {graded} graded "
                               "submissions"))
    if facts["seconds"] is not None:
        t = facts["seconds"]
        lines.append(("grading time", f"median {t['median']:.1f} s per submission, slowest "
                                      f"{t['max']:.1f} s ({t['slowest']})"))
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in lines)
    return f"<table class='header'>{rows}</table>"


def _distribution(facts: dict) -> str:
    unscored = sum(facts["unscored"].values())
    note = (f"<p>{unscored} submissions have no score "
            f"({', '.join(f'{n} {s}' for s, n in facts['unscored'].items() if n)}): "
            "they are the separate bar on the left.</p>" if unscored else "")
    png = histogram_png(facts)
    return (f"<h2>Score distribution</h2>\n<img alt='histogram of the scores' "
            f"src='data:image/png;base64,{png}'>\n{note}")


def histogram_png(facts: dict) -> str:
    """The score histogram (graded and flagged stacked, unscored as a separate bar), as
    base64 PNG text."""
    graded, flagged = facts["graded_scores"], facts["flagged_scores"]
    top = facts["max_score"] or max([*graded, *flagged, 1.0])
    edges = _bin_edges(top)
    width = edges[1] - edges[0]
    centers = (edges[:-1] + edges[1:]) / 2
    clip = lambda xs: np.clip(np.asarray(xs, dtype=float), edges[0], edges[-1])
    in_graded = np.histogram(clip(graded), edges)[0]
    in_flagged = np.histogram(clip(flagged), edges)[0]

    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(centers, in_graded, width=0.9 * width, color="tab:blue",
           label="graded" if graded else None)
    ax.bar(centers, in_flagged, width=0.9 * width, bottom=in_graded, color="tab:orange",
           label="flagged" if flagged else None)
    no_score_x = edges[0] - 2 * width
    bottom = 0
    for status, color in zip(UNSCORED, ("tab:red", "tab:purple", "tab:gray")):
        n = facts["unscored"][status]
        if n:
            ax.bar(no_score_x, n, width=1.5 * width, bottom=bottom, color=color, hatch="//",
                   label=f"{status} (no score)")
            bottom += n
    ticks = [t for t in MaxNLocator(nbins=12, integer=True).tick_values(0, top) if 0 <= t <= top]
    ax.set_xticks([no_score_x, *ticks], ["no score", *(_num(t) for t in ticks)])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    tallest = max(int((in_graded + in_flagged).max()), sum(facts["unscored"].values()), 1)
    ax.set_ylim(0, 1.1 * tallest)
    ax.set_xlabel(f"score (out of {_num(top)})")
    ax.set_ylabel("students")
    ax.set_title(f"{facts['assignment']}: {facts['students']} submissions")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(True, axis="y", alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _bin_edges(top: float) -> np.ndarray:
    if top <= UNIT_BINS_UP_TO:
        return np.arange(-0.5, math.ceil(top) + 1.0, 1.0)    # one bar per whole point
    return np.linspace(0.0, top, 21)


def _parts_table(facts: dict) -> str:
    rows = [(p, _num(r["points"]), r["submissions"], _percent(r["pass_rate"]),
             _num(r["mean_score"])) for p, r in facts["parts"].items()]
    return ("<h2>Parts</h2>\n<p>A part passes when it earns its full points.</p>\n"
            + _table(("part", "points", "submissions", "pass rate", "mean score"), rows,
                     numeric={1, 2, 3, 4}, css_class="parts"))


def _mistakes_table(facts: dict) -> str:
    if not facts["mistakes"]:
        return "<h2>Common mistakes</h2>\n<p>No part was failed.</p>"
    rows = [(m["part"], m["mistake"], m["count"], m["example"]) for m in facts["mistakes"]]
    return ("<h2>Common mistakes</h2>\n<p>Failed parts by the mistake the check diagnosed, "
            f"most frequent first; “{OTHER_MISTAKE}” groups the failures the checks did not "
            "name.</p>\n" + _table(("part", "mistake", "count", "example message"), rows,
                                   numeric={2}, message={3}, css_class="mistakes"))


def _problems_table(facts: dict) -> str:
    if not facts["problems"]:
        return ("<h2>Submissions to look at</h2>\n<p>None: every submission was graded "
                "without a flag.</p>")
    rows = [(p["student"], p["status"], _num(p["score"]), p["reason"])
            for p in facts["problems"]]
    return ("<h2>Submissions to look at</h2>\n" +
            _table(("student", "status", "score", "reason"), rows, numeric={2}, message={3},
                   css_class="problems"))


def _table(head: Iterable[str], rows: Iterable[tuple], *, numeric=frozenset(),
           message=frozenset(), css_class: str = "") -> str:
    def cell(i, value):
        cls = " class='num'" if i in numeric else " class='msg'" if i in message else ""
        return f"<td{cls}>{_e(value)}</td>"
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(cell(i, v) for i, v in enumerate(row)) + "</tr>\n"
                   for row in rows)
    return f"<table class='{_e(css_class)}'><tr>{header}</tr>\n{body}</table>"


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _num(x) -> str:
    return "—" if x is None else f"{float(x):.3g}" if abs(float(x)) < 1000 else f"{x:.0f}"


def _percent(x) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def _describe(value) -> str:
    """A string as it is; a mapping (the classroom's limits, isolation) as ``key: value, …``."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v if isinstance(v, str) else json.dumps(v)}"
                         for k, v in value.items())
    return str(value)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m descent.grading.report",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("assignment", help="e.g. 05-adaptive")
    parser.add_argument("--course", type=Path, default=Path("."),
                        help="the course directory holding grades/ (default: .)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the HTML file (default: <course>/reports/<assignment>.html)")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.course, args.assignment, args.out)
    except FileNotFoundError as err:
        parser.exit(2, f"error: {err}\n")
    print(path)
    return path


if __name__ == "__main__":
    main()
