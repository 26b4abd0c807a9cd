"""Read the benchmark's recorded numbers back (chapter 7).

``benchmarks/bench_optim.py`` writes its results as a Markdown table under a ``## …``
heading of ``benchmarks/RESULTS.md``. The book never retypes those numbers: it calls
:func:`read_table`, which returns the table's rows as dicts, or ``None`` when the file or
the section does not exist yet (the benchmark has not been run on this checkout).

- :func:`find_results` — the path of ``benchmarks/RESULTS.md``, searched from a directory
  upwards (a notebook runs in ``book/``, a test in the repository root);
- :func:`read_section` — the text of one section (to quote its notes and machine line);
- :func:`read_table` — the first Markdown table of one section, as ``[{column: cell}]``;
- :func:`as_number` — a cell such as ``"2.36"`` or ``"1.05×"`` as a float;
- :func:`write_section` — what the benchmark scripts use to replace their own section;
- :func:`interleaved_times`, :func:`paired_ratio`, :func:`cpu_timer`, :func:`cuda_timer` —
  how the step benchmarks time paths against each other on a shared machine.
"""

from __future__ import annotations

import os
import random
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["find_results", "read_section", "read_table", "as_number", "write_section",
           "interleaved_times", "paired_ratio", "cpu_timer", "cuda_timer"]


def find_results(start: str | os.PathLike | None = None,
                 name: str = "benchmarks/RESULTS.md") -> Path | None:
    """``start/name``, or the same under the nearest parent of ``start`` that has it."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / name).is_file():
            return folder / name
    return None


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def read_section(path: str | os.PathLike | None, section: str) -> str | None:
    """The text under the heading ``section`` (e.g. ``"## Optimizer step"``), or ``None``.

    ``None`` when ``path`` is None or missing or the heading is absent. The section ends at
    the next heading of the same or a higher level.
    """
    if path is None or not Path(path).is_file():
        return None
    text = Path(path).read_text(encoding="utf-8")
    level = len(section) - len(section.lstrip("#"))
    match = re.search(rf"^{re.escape(section.strip())}[ \t]*$(.*?)(?=^#{{1,{level}}} |\Z)",
                      text, re.MULTILINE | re.DOTALL)
    return None if match is None else match.group(1).strip("\n")


def read_table(path: str | os.PathLike | None, section: str) -> list[dict[str, str]] | None:
    """The first Markdown table under the heading ``section``, one dict per body row.

    Rows are keyed by the header's cells. ``None`` when the section is missing (see
    :func:`read_section`) or holds no table.
    """
    body_text = read_section(path, section)
    if body_text is None:
        return None
    lines = [line for line in body_text.splitlines() if line.strip().startswith("|")]
    # a table: a header row, a separator row of dashes and colons, then the body
    for i in range(len(lines) - 1):
        if re.fullmatch(r"[\s|:\-]+", lines[i + 1]) and "-" in lines[i + 1]:
            header = _cells(lines[i])
            body = []
            for line in lines[i + 2:]:
                cells = _cells(line)
                if len(cells) != len(header):
                    break
                body.append(dict(zip(header, cells, strict=True)))
            return body
    return None


def as_number(cell: str) -> float:
    """A table cell as a float: ``"2.36"`` → 2.36, ``"1.05×"`` → 1.05, ``"1,000"`` → 1000."""
    cleaned = cell.replace(",", "").replace("×", "").replace("x", "").strip()
    try:
        return float(cleaned)
    except ValueError:
        raise ValueError(f"cell must hold a number, got {cell!r}") from None


def write_section(path: str | os.PathLike, block: str) -> None:
    """Replace the ``## …`` section that ``block`` starts with (its first line), up to the next
    ``## `` heading, or append it; the rest of the file is kept as it is."""
    path = Path(path)
    heading = block.splitlines()[0].strip()
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(heading)}[ \t]*\n.*?(?=^## |\Z)",
                         re.MULTILINE | re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _: block.rstrip("\n") + "\n\n", old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + block
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")


# -- timing paths against each other -------------------------------------------------------------
def cpu_timer(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes, by the wall clock."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cuda_timer(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes on the current CUDA stream, from CUDA events."""
    import torch
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3


def interleaved_times(steps: dict[str, Callable[[], object]], *, rounds: int, warmup: int = 3,
                      seed: int = 0, timer: Callable = cpu_timer) -> dict[str, list[float]]:
    """Seconds of ``rounds`` calls of each ``steps[name]()``, one of each per round.

    Within a round the order is shuffled (seeded): a change in the machine's load then hits
    every path alike, and no path always runs right after the same other one (whose
    leftovers in the caches would favour or penalise it).
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    rng = random.Random(seed)
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            times[name].append(timer(steps[name]))
    return times


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """The median over rounds of ``numerator[i] / denominator[i]`` (times from one round)."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))
