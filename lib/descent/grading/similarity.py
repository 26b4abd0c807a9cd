"""Near-copies among answer cells: a report for the instructor (what MOSS does for code).

The library is public by design, so copying it (or a classmate) is a matter of honesty, not
of the sandbox. ``python -m descent.grading.classroom similarity NN-slug`` compares each
student's answer cells with the solution's, with the library's references and with every
other student's same cell, and writes ``reports/NN-slug-similarity.html``.

How a cell is compared:

1. **Normalised AST.** The cell is parsed; names the student chose (functions, arguments,
   variables) become ``v0, v1, …`` in order of appearance, strings and docstrings become one
   token, comments and annotations disappear. Module names (``np``, ``torch``), attribute
   names, keywords and numbers stay: renaming variables or reflowing code changes nothing.
2. **Fingerprints.** The tree is flattened to tokens; every run of :data:`K` tokens is hashed
   and, as in MOSS's winnowing, the minimum hash of every window of :data:`WINDOW` hashes is
   kept. What the released notebook already gives every student (the cell's scaffold) is
   removed first, so a shared ``def`` line is not evidence.
3. **Score.** The fingerprints two cells share over all they have (Jaccard), for cells with
   at least :data:`MIN_FINGERPRINTS` left. Above ``threshold`` a pair is listed; an
   instructor reads the two cells side by side and decides.

It also lists answer cells that name a reference the part asks them to write
(``descent.rules``, ``torch.optim.Adam``, a function's ``__code__``): calling one earns no
points, and naming one is worth a look.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import html
import inspect
import itertools
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

K = 6                   # tokens per hashed run
WINDOW = 4              # hashes per winnowing window
MIN_FINGERPRINTS = 12   # below this a cell says too little to compare
KEPT_NAMES = {"np", "numpy", "torch", "math", "F", "nn", "random", "functools", "itertools",
              "self", "super", *dir(builtins)}
REFERENCE_MODULES = ("descent.rules", "descent.optim", "descent.schedules", "descent.noise",
                     "descent.lr_finder", "descent.rates")
SUSPICIOUS = re.compile(r"^(descent\.(rules|optim|schedules|noise|lr_finder|rates|train)\b|"
                        r"torch\.optim\.(SGD|Adam|AdamW|RMSprop|Adagrad|NAdam|lr_scheduler)\b|"
                        r".*(clip_grad_norm_|__code__|_single_tensor_|_multi_tensor_))")


class _Normalise(ast.NodeTransformer):
    def __init__(self):
        self.names: dict[str, str] = {}

    def _canonical(self, name: str) -> str:
        if name in KEPT_NAMES:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name):
        node.id = self._canonical(node.id)
        return node

    def visit_arg(self, node: ast.arg):
        node.arg, node.annotation = self._canonical(node.arg), None
        return node

    def _definition(self, node):
        node.name = self._canonical(node.name)
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(
                getattr(node.body[0], "value", None), ast.Constant) and isinstance(
                node.body[0].value.value, str):
            node.body = node.body[1:] or [ast.Pass()]          # the docstring
        if hasattr(node, "returns"):
            node.returns = None
        return self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _definition

    def visit_Constant(self, node: ast.Constant):
        if isinstance(node.value, str):
            node.value = "S"
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign):
        node.annotation = ast.Name("T", ast.Load())
        return self.generic_visit(node)


def tokens(source: str) -> list[str]:
    """The normalised token stream of a cell (empty when it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    tree = _Normalise().visit(tree)
    return re.findall(r"[A-Za-z_][A-Za-z_0-9]*|-?\d+\.?\d*(?:e-?\d+)?|'S'|\S",
                      ast.dump(tree, annotate_fields=False, include_attributes=False))


def fingerprints(source: str, base: frozenset[int] = frozenset()) -> frozenset[int]:
    """Winnowed hashes of the cell's K-token runs, without those of ``base``."""
    stream = tokens(source)
    hashes = [int.from_bytes(hashlib.blake2b(" ".join(stream[i:i + K]).encode(),
                                             digest_size=8).digest(), "big")
              for i in range(len(stream) - K + 1)]
    if len(hashes) <= WINDOW:
        kept = set(hashes)
    else:
        kept = {min(hashes[i:i + WINDOW]) for i in range(len(hashes) - WINDOW + 1)}
    return frozenset(kept - base)


def overlap(a: frozenset[int], b: frozenset[int]) -> float | None:
    """Jaccard similarity of two cells' fingerprints (None when one says too little)."""
    if min(len(a), len(b)) < MIN_FINGERPRINTS:
        return None
    return len(a & b) / len(a | b)


def dotted_names(source: str) -> list[str]:
    """Every module or attribute path the code names (``torch.optim.AdamW``,
    ``descent.rules``, ``f.__code__``); strings, comments and docstrings are not code."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts, inner = [node.attr], node.value
            while isinstance(inner, ast.Attribute):
                parts.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name):
                parts.append(inner.id)
            names.append(".".join(reversed(parts)))
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return names


def reference_sources() -> dict[str, str]:
    """{qualified name: source} of the library's reference functions and classes."""
    import importlib

    out = {}
    for name in REFERENCE_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for attr, obj in vars(module).items():
            if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if not str(getattr(obj, "__module__", "")).startswith("descent."):
                continue
            try:
                out[f"{obj.__module__}.{obj.__qualname__}"] = inspect.getsource(obj)
            except (OSError, TypeError):
                pass
    return out


@dataclass(frozen=True)
class Match:
    student: str
    cell: str
    other: str            # another student, "the solution", or a library reference
    score: float


def answer_cells(nb) -> dict[str, str]:
    """{grade_id: source} of a notebook's code answer cells."""
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}


def compare(submissions: dict[str, dict[str, str]], solution: dict[str, str],
            released: dict[str, str], *, threshold: float = 0.8) -> dict:
    """Every pair of near-copies above ``threshold``, and the cells naming a reference.

    ``submissions``: {student: {grade_id: source}}; ``solution`` and ``released``:
    {grade_id: source} of the source notebook (markers removed) and the released one."""
    marker = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)
    base = {gid: fingerprints(text) for gid, text in released.items()}
    solution_prints = {gid: fingerprints(marker.sub("", text), base.get(gid, frozenset()))
                       for gid, text in solution.items()}
    library = {name: fingerprints(text) for name, text in reference_sources().items()}
    prints = {student: {gid: fingerprints(text, base.get(gid, frozenset()))
                        for gid, text in cells.items()}
              for student, cells in submissions.items()}
    matches: list[Match] = []
    for student, cells in prints.items():
        for gid, mine in cells.items():
            score = overlap(mine, solution_prints.get(gid, frozenset()))
            if score is not None and score >= threshold:
                matches.append(Match(student, gid, "the solution", round(score, 3)))
            for name, theirs in library.items():                 # both without the scaffold
                score = overlap(mine, theirs - base.get(gid, frozenset()))
                if score is not None and score >= threshold:
                    matches.append(Match(student, gid, name, round(score, 3)))
    for a, b in itertools.combinations(sorted(prints), 2):
        for gid in prints[a].keys() & prints[b].keys():
            score = overlap(prints[a][gid], prints[b][gid])
            if score is not None and score >= threshold:
                matches.append(Match(a, gid, b, round(score, 3)))
    named = [{"student": student, "cell": gid, "names": found}
             for student, cells in submissions.items() for gid, text in cells.items()
             if (found := sorted({n for n in dotted_names(text) if SUSPICIOUS.match(n)}))]
    matches.sort(key=lambda m: (-m.score, m.cell, m.student, m.other))
    return {"threshold": threshold, "students": len(submissions),
            "matches": [asdict(m) for m in matches], "names_a_reference": named}


def similarity_report(course: Path, assignment: str, *, threshold: float = 0.8) -> Path:
    """Compare every submission of ``assignment`` in ``course``; write the HTML report (and
    its JSON beside it) under ``reports/``; return the HTML's path."""
    import nbformat

    from descent.grading.classroom.course import release_directory, source_directory

    course = Path(course)
    name = f"{assignment}.ipynb"
    source = nbformat.read(str(course / source_directory(course) / assignment / name), 4)
    release_path = course / release_directory(course) / assignment / name
    released = nbformat.read(str(release_path), 4) if release_path.exists() else source
    submissions = {}
    for path in sorted((course / "submitted").glob(f"*/{assignment}/{name}")):
        if path.is_symlink() or path.stat().st_size > 32 * 2**20:
            continue
        try:
            submissions[path.parent.parent.name] = answer_cells(nbformat.read(str(path), 4))
        except Exception:  # noqa: BLE001 - an unreadable notebook has nothing to compare
            continue
    result = compare(submissions, answer_cells(source), answer_cells(released),
                     threshold=threshold)
    out = course / "reports" / f"{assignment}-similarity.html"
    out.parent.mkdir(exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    out.write_text(_html(assignment, result, submissions, answer_cells(source)))
    return out


def _html(assignment: str, result: dict, submissions: dict, solution: dict) -> str:
    e = html.escape
    rows = []
    for m in result["matches"]:
        mine = submissions[m["student"]].get(m["cell"], "")
        other = submissions.get(m["other"], {}).get(m["cell"]) if m["other"] in submissions \
            else solution.get(m["cell"], "") if m["other"] == "the solution" else ""
        rows.append(f"<tr><td>{m['score']:.2f}</td><td>{e(m['cell'])}</td>"
                    f"<td>{e(m['student'])}</td><td>{e(m['other'])}</td>"
                    f"<td><details><summary>cells</summary><pre>{e(mine)}</pre><hr>"
                    f"<pre>{e(other or '(library source)')}</pre></details></td></tr>")
    named = "".join(f"<li>{e(n['student'])}, {e(n['cell'])}: {e(', '.join(n['names']))}</li>"
                    for n in result["names_a_reference"]) or "<li>none</li>"
    return (f"<!doctype html><meta charset='utf-8'><title>{e(assignment)}: near-copies</title>"
            "<style>body{font-family:sans-serif;max-width:70em;margin:auto}td{padding:.2em "
            ".6em;vertical-align:top}pre{white-space:pre-wrap;font-size:85%}</style>"
            f"<h1>{e(assignment)}: near-copies among {result['students']} submissions</h1>"
            f"<p>Pairs of answer cells whose normalised code overlaps by at least "
            f"{result['threshold']:.0%} (the released scaffold removed). A match is a reason "
            "to read two cells side by side, not a verdict: short answers to one equation "
            "can coincide honestly.</p><table><tr><th>overlap</th><th>cell</th>"
            "<th>student</th><th>with</th><th></th></tr>" + "".join(rows) + "</table>"
            f"<h2>Answer cells that name a reference</h2><ul>{named}</ul>")
