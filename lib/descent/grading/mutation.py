"""Mutation testing of the grader: every mutant of every solution must lose points.

For each answer cell of each source notebook (``solutions/NN-slug``), :mod:`descent.grading.
mutants` writes its mutants; each is graded as a submission exactly as the class grader grades
(:func:`descent.grading.trusted.grade_notebook`, the source notebook's grade cells with the
hidden tests, the student's side behind a :class:`~descent.grading.door.LocalDoor`), in a
forked process with a time limit. A mutant is

- **killed** when a grade cell of its part (the grade cells between its answer cell and the
  next answer cell) scores less than its points; the verdict's message is kept, to count how
  many were **named** (a hand-written message that names the mistake and its fix, or the
  diagnosis search, :mod:`descent.grading.search`), merely **explained** (an exception, an
  answer of the wrong type, a time-out: the message says what happened, and no mutant of the
  reference reproduced it) or only located ("differs at …");
- **equivalent** when it is listed in ``tests/mutants/equivalent.toml`` (each listed mutant
  has a numerical proof in ``tests/test_mutants.py``);
- **survived** otherwise: a check to strengthen.

``make mutants`` runs every mutant and prints the table; ``--results`` rewrites the mutation
section of ``benchmarks/RESULTS.md``. ``tests/test_mutants.py`` runs a fixed sample.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from descent.grading import mutants as generator
from descent.grading import search

ROOT = Path(__file__).resolve().parents[3]
ASSIGNMENTS = ("01-problem", "02-gradient-descent", "03-sgd", "04-momentum", "05-adaptive",
               "06-schedules", "07-implementation", "08-practice")
EQUIVALENT = ROOT / "tests" / "mutants" / "equivalent.toml"
TIMEOUT = 20.0           # seconds per mutant: a correct notebook grades in under 3

# What a failing part's ``mistake`` says about its message: the search's names start with
# "mutant:"; the messages that only locate a difference are
# :data:`descent.grading.search.LOCATED`; these only say what happened (the search tries to
# name the first four, :data:`descent.grading.search.DESCRIBED`; unnamed, they count as
# explained); every other mistake is a hand-written message that names the mistake and says
# the fix ("changed the caller's `param` in place … write `new_param = param - lr * grad`",
# "`p = new_p` only rebinds the name", "(params, lr=-0.1) was accepted; it must raise
# ValueError …"), the catalogue's named mistakes.
EXPLAINED = {"exception", "wrong-type", "wrong-structure", "coverage", "not-run", "timeout",
             "protocol", "memory", "failed"}


def source_notebook(assignment: str, root: Path = ROOT):
    return nbformat.read(str(root / "solutions" / assignment / f"{assignment}.ipynb"), 4)


AnswerCell, answer_cells = generator.AnswerCell, generator.answer_cells


def all_mutants(assignment: str, root: Path = ROOT) -> list[generator.Mutant]:
    return [m for cell in answer_cells(source_notebook(assignment, root))
            for m in generator.mutants(cell.grade_id, cell.source)]


def equivalent(path: Path = EQUIVALENT) -> dict[tuple[str, str, str], str]:
    """{(assignment, cell, mutant ident): why} of the mutants listed as equivalent."""
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text())
    return {(e["assignment"], e["cell"], e["mutant"]): e["why"] for e in data.get("mutant", [])}


def equivalent_rtol(path: Path = EQUIVALENT) -> dict[tuple[str, str, str], float]:
    """{(assignment, cell, mutant ident): rtol} of the entries that give one (equivalent
    within a check's tolerance rather than to rounding)."""
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text())
    return {(e["assignment"], e["cell"], e["mutant"]): float(e["rtol"])
            for e in data.get("mutant", []) if "rtol" in e}


def mutated_notebook(nb, mutant: generator.Mutant, parts: Sequence[str] | None = None):
    """``nb`` with the mutant's answer cell; with ``parts``, only those grade cells are kept
    (the cells after the last of them are dropped): the mutant's own part, graded faster."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == mutant.cell:
            cell.source = mutant.source
    if parts is not None:
        keep, last = [], max(i for i, c in enumerate(nb.cells)
                             if c.metadata.get("nbgrader", {}).get("grade_id") in parts)
        for cell in nb.cells[:last + 1]:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution") and \
                    meta.get("grade_id") not in parts:
                continue
            keep.append(cell)
        nb.cells = keep
    return nb


# -- grading one mutant ------------------------------------------------------------------------

@dataclass
class Graded:
    assignment: str
    cell: str
    ident: str
    operator: str
    description: str
    status: str = ""                 # killed, survived, equivalent, equivalent-killed, timeout
    parts: dict = field(default_factory=dict)   # grade_id -> [score, points, mistake, message]
    seconds: float = 0.0
    kind: str = ""                   # named, searched, explained, located (killed only)
    named_as: list[str] | None = None   # the mutants the search named (their idents)
    others: list[str] = field(default_factory=list)   # other parts that lost points


def grade(assignment: str, nb, source_nb) -> dict:
    """Every part of ``nb``, graded as the class grader does: {grade_id: [score, points,
    mistake, message]}."""
    from descent.grading import trusted
    from descent.grading.door import LocalDoor

    with LocalDoor() as door:
        result = trusted.grade_notebook(nb, source_nb, door)
    return {gid: [p.score, p.points, p.mistake, p.message] for gid, p in result.parts.items()}


def _fork(assignment: str, nb, source_nb) -> tuple[int, int]:
    """A child grading ``nb``; returns (pid, the read end of the pipe its verdict comes on)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                           # the child
        os.close(read)
        code = 0
        try:
            import contextlib
            import io
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                start = time.process_time()
                parts = grade(assignment, nb, source_nb)
                seconds = time.process_time() - start
            payload = json.dumps({"parts": parts, "seconds": seconds}).encode()
        except BaseException as err:                       # noqa: BLE001
            payload = json.dumps({"error": f"{type(err).__name__}: {err}"}).encode()
            code = 1
        with os.fdopen(write, "wb") as out:
            out.write(payload)
        os._exit(code)
    os.close(write)
    return pid, read


def classify(graded: Graded, cell: AnswerCell, listed: bool) -> Graded:
    parts = graded.parts
    if parts is None:
        graded.status, graded.kind = "killed", "explained"    # a timeout costs every part
        return graded
    lost = [gid for gid in cell.parts if parts[gid][0] < parts[gid][1]]
    graded.others = [gid for gid, p in parts.items() if gid not in cell.parts and p[0] < p[1]
                     and p[2] != "not-run"]
    if not lost:
        graded.status = "equivalent" if listed else "survived"
        return graded
    graded.status = "equivalent-killed" if listed else "killed"
    mistake = parts[lost[0]][2]
    if mistake and mistake.startswith("mutant:"):
        graded.kind = "searched"
        graded.named_as = mistake.split(":", 1)[1].split("|")
    elif mistake in EXPLAINED:
        graded.kind = "explained"
    elif mistake in search.LOCATED:
        graded.kind = "located"
    else:
        graded.kind = "named"
    return graded


def run(assignments: Sequence[str] = ASSIGNMENTS, *, select_: Iterable[str] | None = None,
        workers: int = 2, timeout: float = TIMEOUT, root: Path = ROOT,
        progress: bool = False, whole: bool = False) -> list[Graded]:
    """Grade the mutants (all, or those whose ``assignment/cell/ident`` is in ``select_``)."""
    wanted = set(select_) if select_ is not None else None
    listed = equivalent()
    jobs = []
    for assignment in assignments:
        source_nb = source_notebook(assignment, root)
        for cell in answer_cells(source_nb):
            for mutant in generator.mutants(cell.grade_id, cell.source):
                key = f"{assignment}/{cell.grade_id}/{mutant.ident}"
                if wanted is None or key in wanted:
                    jobs.append((assignment, source_nb, cell, mutant))
    out: list[Graded] = []
    running: dict[int, list] = {}             # read fd -> [pid, job, start, chunks]
    pending = list(reversed(jobs))
    while pending or running:
        while pending and len(running) < workers:
            job = pending.pop()
            assignment, source_nb, cell, mutant = job
            nb = mutated_notebook(source_nb, mutant, None if whole else cell.parts)
            pid, fd = _fork(assignment, nb, source_nb)
            running[fd] = [pid, job, time.perf_counter(), []]
        now = time.perf_counter()
        wait = max(0.0, min(r[2] + timeout for r in running.values()) - now)
        ready, _, _ = select.select(list(running), [], [], wait)
        finished = []
        for fd in ready:
            chunk = os.read(fd, 1 << 20)
            if chunk:
                running[fd][3].append(chunk)
            else:
                finished.append((fd, False))
        now = time.perf_counter()
        finished += [(fd, True) for fd, r in running.items()
                     if now - r[2] > timeout and (fd, False) not in finished]
        for fd, late in finished:
            pid, job, started, chunks = running.pop(fd)
            assignment, _, cell, mutant = job
            if late:
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(fd)
            parts, seconds = None, timeout
            if not late:
                data = json.loads(b"".join(chunks) or b'{"error": "the child died"}')
                if "error" in data:
                    raise RuntimeError(f"grading {mutant.ident} crashed: {data['error']}")
                parts, seconds = data["parts"], data["seconds"]
            graded = Graded(assignment, cell.grade_id, mutant.ident, mutant.operator,
                            mutant.description, parts=parts, seconds=seconds)
            out.append(classify(graded, cell,
                                (assignment, cell.grade_id, mutant.ident) in listed))
            if progress:
                print(f"\r{len(out)}/{len(jobs)} {assignment} {cell.grade_id} "
                      f"{out[-1].status:10s}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    order = {(a, c.grade_id, m.ident): i for i, (a, _, c, m) in enumerate(jobs)}
    return sorted(out, key=lambda g: order[(g.assignment, g.cell, g.ident)])


# -- grading time per assignment ----------------------------------------------------------------

def wrong_notebook(source_nb, picks: dict[str, str] | None = None):
    """Every answer cell replaced by one of its mutants that changes numbers (``picks``: cell
    → mutant ident, e.g. the slowest the search named; else its first ``constant`` mutant):
    every part fails with numbers and the diagnosis search runs for each, the slowest
    notebook a student can hand in short of a time-out."""
    nb = nbformat.from_dict(source_nb)
    for cell in answer_cells(source_nb):
        found = generator.mutants(cell.grade_id, cell.source)
        pick = next((m for m in found if m.ident == (picks or {}).get(cell.grade_id)),
                    next((m for m in found if m.operator == "constant"), None))
        if pick is not None:
            nb = mutated_notebook(nb, pick)
    return nb


def slowest_searched(results: Sequence[Graded]) -> dict[str, dict[str, str]]:
    """{assignment: {cell: ident}} of the slowest mutant the search named, per answer cell."""
    out: dict[str, dict[str, tuple[float, str]]] = {}
    for g in results:
        if g.kind == "searched":
            best = out.setdefault(g.assignment, {}).get(g.cell)
            if best is None or g.seconds > best[0]:
                out[g.assignment][g.cell] = (g.seconds, g.ident)
    return {a: {c: v[1] for c, v in cells.items()} for a, cells in out.items()}


def _time_in_this_process(assignment: str, kind: str, root: Path,
                          picks: dict[str, str] | None = None) -> dict:
    """Grade (``trusted``: the class grader's path) or run (``kernel``: the cells in one
    namespace with ``NBGRADER_EXECUTION`` set, as nbgrader's kernel runs them, the checks
    inside) one notebook; the seconds it took, wall and CPU, from a cold start of the
    notebook's modules."""
    import contextlib
    import io

    source_nb = source_notebook(assignment, root)
    nb = wrong_notebook(source_nb, picks) if kind.endswith("wrong") else source_nb
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        if kind.startswith("trusted"):
            parts = grade(assignment, nb, source_nb)
            lost = sum(1 for p in parts.values() if p[0] < p[1])
        else:
            from descent.grading.trusted import grading_environment
            namespace: dict = {"__name__": "__main__"}
            lost = 0
            with grading_environment():
                for cell in nb.cells:
                    if cell.cell_type != "code":
                        continue
                    try:
                        exec(compile(cell.source, "<cell>", "exec"), namespace)  # noqa: S102
                    except Exception:              # noqa: BLE001 - a failing grade cell
                        lost += 1
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "lost": lost}


def timings(assignments: Sequence[str] = ASSIGNMENTS, root: Path = ROOT,
            results: Sequence[Graded] = ()) -> list[dict]:
    """Each assignment graded in a fresh process: the solution and the all-wrong notebook
    (:func:`wrong_notebook`, with the slowest mutants the search named in ``results``)
    through the class grader's path, and the solution as nbgrader's kernel runs it."""
    picks = slowest_searched(results)
    import subprocess

    rows = []
    for assignment in assignments:
        row = {"assignment": assignment}
        for kind in ("trusted", "trusted-wrong", "kernel"):
            code = ("import json, sys; from descent.grading import mutation; "
                    f"print(json.dumps(mutation._time_in_this_process({assignment!r}, "
                    f"{kind!r}, mutation.Path({str(root)!r}), "
                    f"{picks.get(assignment, {})!r})))")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                                 timeout=600)
            row[kind] = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
    return rows


def format_timings(rows: Sequence[dict]) -> str:
    lines = ["| assignment | solution, class grader (s) | every part wrong, class grader, "
             "search included (s) | parts lost | solution, in-kernel checks (s) |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        t, w, k = r["trusted"], r["trusted-wrong"], r["kernel"]
        lines.append(f"| {r['assignment']} | {t['wall']:.1f} ({t['cpu']:.1f} CPU) | "
                     f"{w['wall']:.1f} ({w['cpu']:.1f} CPU) | {w['lost']} | "
                     f"{k['wall']:.1f} ({k['cpu']:.1f} CPU) |")
    return "\n".join(lines)


# -- the table ---------------------------------------------------------------------------------

COLUMNS = ("generated", "killed", "equivalent", "survived", "named", "searched", "explained",
           "located", "max s")


def table(results: Sequence[Graded]) -> list[tuple]:
    """Rows (assignment, part, counts…) and a total row."""
    rows, groups = [], {}
    for g in results:
        groups.setdefault((g.assignment, g.cell), []).append(g)
    total = Counter()
    for (assignment, cell), items in groups.items():
        c = Counter(g.status for g in items)
        k = Counter(g.kind for g in items if g.status == "killed")
        row = Counter(generated=len(items), killed=c["killed"],
                      equivalent=c["equivalent"] + c["equivalent-killed"],
                      survived=c["survived"], named=k["named"], searched=k["searched"],
                      explained=k["explained"], located=k["located"])
        total.update(row)
        slowest = max(g.seconds for g in items)
        total["max s"] = max(total["max s"], slowest)
        rows.append((assignment, cell, *(row[col] for col in COLUMNS[:-1]), f"{slowest:.1f}"))
    rows.append(("all", "", *(total[col] for col in COLUMNS[:-1]), f"{total['max s']:.1f}"))
    return rows


def summary(results: Sequence[Graded]) -> dict[str, float]:
    t = table(results)[-1]
    counts = dict(zip(COLUMNS, t[2:], strict=True))
    numeric = counts["named"] + counts["searched"] + counts["located"]
    itself = sum(1 for g in results if g.status == "killed" and g.kind == "searched"
                 and g.ident in (g.named_as or []))
    return {**counts,
            "named correctly %": 100 * (counts["named"] + itself) / max(1, counts["killed"]),
            "killed %": 100 * counts["killed"] / max(1, counts["killed"] + counts["survived"]),
            "named % of numeric": 100 * (counts["named"] + counts["searched"]) / max(1, numeric),
            "named or explained %": 100 * (counts["killed"] - counts["located"])
            / max(1, counts["killed"])}


def format_table(results: Sequence[Graded]) -> str:
    header = ("assignment", "answer cell", *COLUMNS)
    rows = [header, *table(results)]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)) + " |"
             for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    s = summary(results)
    lines.append("")
    lines.append(f"killed: {s['killed %']:.1f} % of the non-equivalent mutants; named (catalogue "
                 f"or search) {s['named % of numeric']:.1f} % of those whose numbers differ; "
                 f"named or explained {s['named or explained %']:.1f} % of the killed.")
    lines.append(f"Named correctly (by the catalogue, or by the search with the mutant's own "
                 f"name among those given): {s['named correctly %']:.1f} % of the killed "
                 "(goal ≥ 90 %).")
    lines.append(_search_summary(results))
    return "\n".join(lines)


def write_results(text: str, path: Path = ROOT / "benchmarks" / "RESULTS.md") -> None:
    """Replace (or append) the section ``## Mutation testing of the grader``."""
    title = "## Mutation testing of the grader"
    old = path.read_text() if path.exists() else ""
    start = old.find(title)
    if start < 0:
        new = old.rstrip() + "\n\n" + text.strip() + "\n"
    else:
        end = old.find("\n## ", start + len(title))
        new = old[:start] + text.strip() + "\n" + (old[end:] if end >= 0 else "")
    path.write_text(new)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m descent.grading.mutation",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*", default=list(ASSIGNMENTS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=TIMEOUT)
    parser.add_argument("--json", type=Path, help="write every mutant's verdict here")
    parser.add_argument("--timing", action="store_true",
                        help="also time each assignment's grading in a fresh process (the "
                             "solution, and every part wrong with the search running)")
    parser.add_argument("--results", action="store_true",
                        help="rewrite the mutation section of benchmarks/RESULTS.md "
                             "(implies --timing)")
    parser.add_argument("--survivors", action="store_true", help="list the survivors")
    parser.add_argument("--whole", action="store_true",
                        help="grade every part of each mutant's notebook (slower), to list the "
                             "mutants that also cost another part")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = run(args.assignments, workers=args.workers, timeout=args.timeout,
                  progress=sys.stderr.isatty(), whole=args.whole)
    wall = time.perf_counter() - start
    text = format_table(results)
    print(text)
    survivors = [g for g in results if g.status in ("survived", "equivalent-killed")]
    if args.survivors or survivors:
        for g in survivors:
            print(f"{g.status}: {g.assignment}/{g.cell}/{g.ident}: {g.description}")
    if args.whole:
        for g in results:
            if g.others:
                print(f"also costs {', '.join(g.others)}: {g.assignment}/{g.cell}/{g.ident}")
    if args.json:
        args.json.write_text(json.dumps([asdict(g) for g in results], indent=1))
    rows = None
    if args.timing or args.results:
        rows = timings(args.assignments, results=results)
        print()
        print(format_timings(rows))
    if args.results:
        write_results(results_section(results, wall, args, rows))
    return 1 if survivors else 0


def results_section(results, wall: float, args, rows) -> str:
    import platform
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return "\n".join([
        "## Mutation testing of the grader",
        "",
        f"`make mutants` (`python -m descent.grading.mutation --results --workers "
        f"{args.workers}`): {len(results)} mutants graded in {wall:.0f} s on "
        f"{os.cpu_count()} cores ({platform.machine()}, shared; load average after the run "
        f"{load}), torch {_torch_version()}. Each mutant of each answer cell "
        "(`descent.grading.mutants`: arithmetic swaps, constants ±1, a hyperparameter left at "
        "its default, off-by-one, dropped terms, swapped arguments, in-place vs out-of-place, "
        "the first element or group only, the global RNG instead of the one given, removed "
        "statements) is graded as a submission by the class grader's path: the source "
        "notebook's grade cells of its part, hidden tests included "
        "(`descent.grading.trusted` behind a `LocalDoor`), in a forked process.",
        "",
        "Columns: *killed*: a grade cell of its part lost points; *equivalent*: listed in "
        "`tests/mutants/equivalent.toml` with its reason, each proved on random inputs in "
        "`tests/test_mutants.py`; *survived*: neither (none may); how the killed ones were "
        "told: *named* by a hand-written message that names the mistake and its fix (the "
        "catalogue's named mistakes; an input changed in place, a parameter not written back, "
        "a missing validation, …), *searched*: named by the diagnosis "
        "search (`descent.grading.search`: mutants of the reference replayed on the grade "
        "cell's calls; named only when one reproduces every answer), *explained*: the "
        "message says what happened (an exception and its line, an answer of the wrong type or "
        "structure, a time-out) and no mutant reproduced it, *located*: only where the "
        "numbers differ; *max s*: the CPU seconds of the slowest mutant's grading (its part "
        "only).",
        "",
        format_table(results),
        "",
        "Grading time per assignment, each in a fresh process (wall seconds on this shared "
        "machine, and the process's CPU seconds): the solution and a notebook whose every "
        "answer is a mutant that changes numbers (every part fails and the search runs for "
        "each: its budget is 3 CPU s per grade cell, 5 per notebook) through the class "
        "grader's path, and the solution run as nbgrader's kernel runs it, the checks "
        "inside (without the kernel's start, about 2-3 s more, see *Grading time per "
        "assignment* above).",
        "",
        format_timings(rows) if rows else "(not timed)",
    ])


def _search_summary(results) -> str:
    searched = [g for g in results if g.kind == "searched"]
    itself = [g for g in searched if g.ident in (g.named_as or [])]
    return (f"Of the {len(searched)} mutants the search named, {len(itself)} were named "
            f"themselves (among at most three names that each reproduce the student's "
            f"answers); the other {len(searched) - len(itself)} were named by other mutants "
            "that reproduce every answer the grade cell recorded (most compute the same "
            "function, e.g. (1 − β)·g with β dropped and g with (1 − β) dropped; the rest "
            "agree on the few answers recorded before the check stopped).")


def _torch_version() -> str:
    import torch
    return torch.__version__


if __name__ == "__main__":
    raise SystemExit(main())
