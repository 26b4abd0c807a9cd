"""Time one optimizer step: descent.optim (default and fused paths) against torch.optim.

Usage::

    .venv/bin/python benchmarks/bench_optim.py            # full run, writes RESULTS.md
    .venv/bin/python benchmarks/bench_optim.py --quick    # 1M parameters, prints only

Everything runs in one process on ``--threads`` CPU threads (default 2). For each optimizer
(Adam, AdamW, SGD with momentum) and each layout (one flat tensor of N parameters, and 200
tensors of N/200), it times ``opt.step()`` on fixed gradients: a few warm-up steps (which
also compile the fused path), then the median of ``--repeats`` timed steps. The same run
measures the in-place read-modify-write bandwidth of the machine (``x.mul_(c)`` moves 8 B per
float32), which gives the floor for an optimizer step: an fp32 Adam step reads θ, g, m, v and
writes θ, m, v, i.e. 28 B per parameter; SGD with momentum moves 20 B.

Within a phase the paths are timed round-robin (one step of each in turn), so that the
ratios hold even when the machine's load changes. The eager paths are timed first and
descent's compiled path last, next to torch's fused kernel timed again: torch.compile's
kernels bring their own OpenMP thread pool, whose spinning threads slow down eager torch ops
that run right after them (measured: torch.optim's loop up to 10x slower), so mixing the
two would be unfair to the eager paths.

The section "## Optimizer step" of benchmarks/RESULTS.md is replaced by this run's table and
machine description; other sections of that file are kept.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time
from pathlib import Path

import torch

import descent.optim
from descent.bench import write_section

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Optimizer step"

# name -> (torch class, descent class, keywords, bytes moved per parameter by one fp32 step)
OPTIMIZERS = {
    "Adam": (torch.optim.Adam, descent.optim.Adam, dict(lr=1e-3), 28),
    "AdamW": (torch.optim.AdamW, descent.optim.AdamW, dict(lr=1e-3, weight_decay=1e-2), 28),
    "SGD-momentum": (torch.optim.SGD, descent.optim.SGD, dict(lr=1e-3, momentum=0.9), 20),
}
TORCH_PATHS = {"loop": dict(foreach=False), "foreach": dict(foreach=True),
               "fused": dict(fused=True)}
DESCENT_PATHS = {"default": dict(), "fused": dict(fused=True)}


def median_seconds(fn, *, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(steps: dict, *, warmup: int, repeats: int) -> dict:
    """Median seconds of each ``steps[path]()``, timed round-robin so that a change in the
    machine's load hits every path alike and the ratios between paths stay meaningful."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {path: [] for path in steps}
    for _ in range(repeats):
        for path, step in steps.items():
            start = time.perf_counter()
            step()
            times[path].append(time.perf_counter() - start)
    return {path: statistics.median(t) for path, t in times.items()}


def make_problem(n_params: int, n_tensors: int, seed: int = 0) -> list[torch.Tensor]:
    """``n_tensors`` float32 parameters of ``n_params`` in total, each with a fixed gradient."""
    g = torch.Generator().manual_seed(seed)
    size = n_params // n_tensors
    params = []
    for _ in range(n_tensors):
        p = torch.randn(size, generator=g).requires_grad_()
        p.grad = torch.randn(size, generator=g)
        params.append(p)
    return params


def bandwidth_bytes_per_second(n: int, *, repeats: int) -> float:
    """In-place read-modify-write bandwidth: ``x.mul_(c)`` reads and writes 4 B per float."""
    x = torch.randn(n)
    seconds = median_seconds(lambda: x.mul_(1.0000001), warmup=3, repeats=repeats)
    return 8 * n / seconds


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def run(n_params: int, threads: int, repeats: int, warmup: int) -> tuple[dict, dict]:
    torch.set_num_threads(threads)
    layouts = {"1 × tensor": 1, "200 × tensors": 200}
    ns = {}  # (optimizer, layout, path) -> ns per parameter
    machine = {"load before": load_average()}
    # Phase 1 times the eager paths, phase 2 descent's compiled path next to torch's fused
    # kernel, timed again there so that the fused ratio is measured side by side too.
    phases = [{**{f"torch {k}": ("torch", v) for k, v in TORCH_PATHS.items()},
               "descent default": ("descent", DESCENT_PATHS["default"])},
              {"torch fused (phase 2)": ("torch", TORCH_PATHS["fused"]),
               "descent fused": ("descent", DESCENT_PATHS["fused"])}]
    for phase, paths in enumerate(phases):
        for name, (torch_cls, descent_cls, kwargs, _) in OPTIMIZERS.items():
            for layout, n_tensors in layouts.items():
                # One set of parameters and fixed gradients, shared by every optimizer: each
                # step changes θ a little, which does not change the work a step does.
                params = make_problem(n_params, n_tensors)
                steps = {}
                for path, (library, switch) in paths.items():
                    cls = torch_cls if library == "torch" else descent_cls
                    steps[path] = cls(params, **kwargs, **switch).step
                seconds = interleaved_medians(steps, warmup=warmup, repeats=repeats)
                for path, s in seconds.items():
                    ns[name, layout, path] = s / n_params * 1e9
                    print(f"{name:13s} {layout:14s} {path:22s} "
                          f"{ns[name, layout, path]:6.2f} ns/param", flush=True)
                del params, steps
        if phase == 0:
            machine["bandwidth"] = bandwidth_bytes_per_second(n_params, repeats=repeats)
            print(f"in-place read-modify-write bandwidth: {machine['bandwidth'] / 1e9:.1f} GB/s",
                  flush=True)
    machine["load after"] = load_average()
    return ns, machine


def table(ns: dict, machine: dict) -> str:
    bandwidth = machine["bandwidth"]
    columns = ["torch loop", "torch foreach", "torch fused", "descent default",
               "descent fused"]
    lines = ["| optimizer | layout | floor | " + " | ".join(columns)
             + " | default / torch loop | fused / torch fused |",
             "|---|---|---:|" + "---:|" * len(columns) + "---:|---:|"]
    for name, (*_, bytes_per_param) in OPTIMIZERS.items():
        for layout in ("1 × tensor", "200 × tensors"):
            cells = [f"{ns[name, layout, c]:.2f}" for c in columns]
            default_ratio = ns[name, layout, "descent default"] / ns[name, layout, "torch loop"]
            fused_ratio = (ns[name, layout, "descent fused"]
                           / ns[name, layout, "torch fused (phase 2)"])
            floor = bytes_per_param / bandwidth * 1e9
            lines.append(f"| {name} | {layout} | {floor:.2f} | " + " | ".join(cells)
                         + f" | {default_ratio:.2f}× | {fused_ratio:.2f}× |")
    return "\n".join(lines)


def section(ns: dict, machine: dict, args) -> str:
    return f"""{SECTION}

One `opt.step()` on fixed float32 gradients, in ns per parameter (lower is better): median of
{args.repeats} steps after {args.warmup} warm-up steps, {args.n_params:,} parameters as one
flat tensor or as 200 equal tensors. *floor* is the bytes one step must move (28 B/param for
Adam/AdamW, 20 B for SGD with momentum) over the in-place read-modify-write bandwidth measured
in the same run. *descent fused* is `fused=True`: the same pure rule compiled by
`torch.compile`, compile time excluded (it happens in the warm-up); it is timed in a second
phase, round-robin with torch's fused kernel, and *fused / torch fused* uses that second
timing of torch fused (the table shows the first).
Produced by `.venv/bin/python benchmarks/bench_optim.py`.

{table(ns, machine)}

Targets: *default / torch loop* ≤ 1.1× on 200 tensors; *fused / torch fused* ≤ 1.2×.

Machine: {cpu_model()}, {os.cpu_count()} cores visible, {args.threads} torch threads,
torch {torch.__version__}, Python {platform.python_version()}. In-place read-modify-write
bandwidth: {machine['bandwidth'] / 1e9:.1f} GB/s. Load average (1, 5, 15 min) before the run:
{machine['load before']}; after: {machine['load after']}{NOTE_IF_LOADED(machine)}.
"""


def NOTE_IF_LOADED(machine: dict) -> str:  # noqa: N802 - reads as a phrase in the f-string
    try:
        busy = float(machine["load before"].split(",")[0]) > 0.5
    except ValueError:
        busy = False
    return (" — other processes were running during this run: the absolute numbers are "
            "pessimistic and noisy; the ratios, timed round-robin, less so") if busy else ""


def write_results(text: str) -> None:
    write_section(RESULTS, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-params", type=int, default=10_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="1M parameters, 5 repeats, print only (no RESULTS.md)")
    args = parser.parse_args()
    if args.quick:
        args.n_params, args.repeats = 1_000_000, 5
    ns, machine = run(args.n_params, args.threads, args.repeats, args.warmup)
    text = section(ns, machine, args)
    print(text)
    if not args.quick:
        write_results(text)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
