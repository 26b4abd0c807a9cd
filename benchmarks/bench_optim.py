"""Time one optimizer step: descent.optim against torch.optim, on the CPU.

Usage::

    make bench                                            # the same as the next line
    .venv/bin/python benchmarks/bench_optim.py            # full run, rewrites RESULTS.md
    .venv/bin/python benchmarks/bench_optim.py --quick    # small sizes, prints only

Two parts run in one process, in this order:

1. **Default paths at three model sizes, one thread.** SGD with momentum, SGD with Nesterov
   momentum, Adam, AdamW and RMSprop on an MLP 64-32-10 (4 tensors, 2.4k parameters), an MLP
   784-256-256-10 (6 tensors, 270k) and 200 tensors of 50k (10M): ``torch.optim``'s default
   (on the CPU, its per-tensor loop) against ``descent.optim``'s default (the traced rule).
2. **Every path at 10M parameters**, as one flat tensor and as 200 tensors, on ``--threads``
   threads, for Adam, AdamW and SGD with momentum: torch's loop, foreach and fused kernel
   against descent's default and ``fused=True``, with the floor an fp32 step cannot beat
   (the bytes it must move over the in-place read-modify-write bandwidth measured here).

Each comparison is timed round-robin: one step of each path per round, in an order shuffled
every round, so that a change in the machine's load hits every path alike. The ratios are
the median over rounds of the ratio within a round. Steps use fixed float32 gradients.

Eager before compiled: ``fused=True`` runs code compiled by ``torch.compile``, whose
kernels bring their own OpenMP thread pool; once it has run, torch's eager kernels in the
same process can slow down (FACTS.md). So every eager path is timed first, and the compiled
path last, next to torch's fused kernel timed again in the same rounds.

The section "## Optimizer step" of benchmarks/RESULTS.md is replaced by this run's tables and
machine description; the other sections, hand-written notes included, are kept.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
from pathlib import Path

import torch

import descent.optim
from descent.bench import interleaved_times, paired_ratio, write_section

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Optimizer step"

# Part 1: name -> (class name, keywords); the same in torch.optim and descent.optim
DEFAULT_OPTIMIZERS = {
    "SGD-momentum": ("SGD", dict(lr=1e-3, momentum=0.9)),
    "SGD-Nesterov": ("SGD", dict(lr=1e-3, momentum=0.9, nesterov=True)),
    "Adam": ("Adam", dict(lr=1e-3)),
    "AdamW": ("AdamW", dict(lr=1e-3, weight_decay=1e-2)),
    "RMSprop": ("RMSprop", dict(lr=1e-3)),
}
MLP_SMALL = [(32, 64), (32,), (10, 32), (10,)]
MLP_MNIST = [(256, 784), (256,), (256, 256), (256,), (10, 256), (10,)]
MODELS = {"MLP 64-32-10": (MLP_SMALL, 400), "MLP 784-256-256-10": (MLP_MNIST, 150),
          "200 × 50k": ([(50_000,)] * 200, 25)}      # shapes, rounds
QUICK_MODELS = {"MLP 64-32-10": (MLP_SMALL, 100), "MLP 784-256-256-10": (MLP_MNIST, 30),
                "200 × 5k": ([(5_000,)] * 200, 10)}

# Part 2: name -> (class name, keywords, bytes one fp32 step moves per parameter)
PATH_OPTIMIZERS = {
    "Adam": ("Adam", dict(lr=1e-3), 28),
    "AdamW": ("AdamW", dict(lr=1e-3, weight_decay=1e-2), 28),
    "SGD-momentum": ("SGD", dict(lr=1e-3, momentum=0.9), 20),
}
TORCH_PATHS = {"torch loop": dict(foreach=False), "torch foreach": dict(foreach=True),
               "torch fused": dict(fused=True)}
LAYOUTS = {"1 × tensor": 1, "200 × tensors": 200}


def make_params(shapes, seed: int = 0) -> list[torch.Tensor]:
    """float32 parameters of ``shapes``, each with a fixed random gradient."""
    g = torch.Generator().manual_seed(seed)
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=g).requires_grad_()
        p.grad = torch.randn(shape, generator=g)
        params.append(p)
    return params


def optimizer(library, name: str, params, **kwargs):
    return getattr(library, name)(params, **kwargs)


# -- part 1 ------------------------------------------------------------------------------------
def run_defaults(models: dict, *, seed: int = 0) -> list[dict]:
    """torch.optim's and descent.optim's default step, one thread, at each model size."""
    torch.set_num_threads(1)
    rows = []
    for model, (shapes, rounds) in models.items():
        for name, (cls, kwargs) in DEFAULT_OPTIMIZERS.items():
            steps = {"torch": optimizer(torch.optim, cls, make_params(shapes), **kwargs).step,
                     "descent": optimizer(descent.optim, cls, make_params(shapes), **kwargs).step}
            times = interleaved_times(steps, rounds=rounds, warmup=5, seed=seed)
            row = {"optimizer": name, "model": model, "tensors": len(shapes),
                   "parameters": sum(torch.Size(s).numel() for s in shapes),
                   "torch": statistics.median(times["torch"]),
                   "descent": statistics.median(times["descent"]),
                   "ratio": paired_ratio(times["descent"], times["torch"])}
            rows.append(row)
            print(f"{model:20s} {name:13s} torch {row['torch'] * 1e6:9.1f} µs   descent "
                  f"{row['descent'] * 1e6:9.1f} µs   ratio {row['ratio']:.2f}", flush=True)
    return rows


def defaults_table(rows: list[dict]) -> str:
    lines = ["| optimizer | model | tensors | parameters | torch.optim (µs) | descent.optim (µs) "
             "| descent / torch |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['optimizer']} | {r['model']} | {r['tensors']} | {r['parameters']:,} "
                     f"| {r['torch'] * 1e6:.1f} | {r['descent'] * 1e6:.1f} | {r['ratio']:.2f}× |")
    return "\n".join(lines)


# -- part 2 ------------------------------------------------------------------------------------
def bandwidth_bytes_per_second(n: int, *, rounds: int) -> float:
    """In-place read-modify-write bandwidth: ``x.mul_(c)`` reads and writes 4 B per float."""
    x = torch.randn(n)
    times = interleaved_times({"mul_": lambda: x.mul_(1.0000001)}, rounds=rounds)["mul_"]
    return 8 * n / statistics.median(times)


def run_paths(n_params: int, threads: int, rounds: int, *, seed: int = 0) -> tuple[dict, dict]:
    """ns per parameter of each path, and the ratios, for each optimizer and layout."""
    torch.set_num_threads(threads)
    ns, ratios, machine = {}, {}, {}
    phases = [  # eager paths first; descent's compiled path last (see the module docstring)
        {**{path: (torch.optim, switch) for path, switch in TORCH_PATHS.items()},
         "descent default": (descent.optim, {})},
        {"torch fused (phase 2)": (torch.optim, dict(fused=True)),
         "descent fused": (descent.optim, dict(fused=True))},
    ]
    for phase, paths in enumerate(phases):
        for name, (cls, kwargs, _) in PATH_OPTIMIZERS.items():
            for layout, n_tensors in LAYOUTS.items():
                shapes = [(n_params // n_tensors,)] * n_tensors
                params = make_params(shapes)   # shared: each step changes θ a little, which
                steps = {path: optimizer(library, cls, params, **kwargs, **switch).step
                         for path, (library, switch) in paths.items()}   # changes no work
                times = interleaved_times(steps, rounds=rounds, warmup=3, seed=seed)
                for path, t in times.items():
                    ns[name, layout, path] = statistics.median(t) / n_params * 1e9
                    print(f"{name:13s} {layout:14s} {path:22s} "
                          f"{ns[name, layout, path]:6.2f} ns/param", flush=True)
                if phase == 0:
                    ratios[name, layout, "default"] = paired_ratio(
                        times["descent default"], times["torch loop"])
                else:
                    ratios[name, layout, "fused"] = paired_ratio(
                        times["descent fused"], times["torch fused (phase 2)"])
                del params, steps
        if phase == 0:
            machine["bandwidth"] = bandwidth_bytes_per_second(n_params, rounds=rounds)
            print(f"in-place read-modify-write bandwidth: {machine['bandwidth'] / 1e9:.1f} GB/s",
                  flush=True)
    return {"ns": ns, "ratios": ratios}, machine


def paths_table(result: dict, machine: dict) -> str:
    ns, ratios = result["ns"], result["ratios"]
    columns = ["torch loop", "torch foreach", "torch fused", "descent default",
               "descent fused"]
    lines = ["| optimizer | layout | floor | " + " | ".join(columns)
             + " | default / torch loop | fused / torch fused |",
             "|---|---|---:|" + "---:|" * len(columns) + "---:|---:|"]
    for name, (*_, bytes_per_param) in PATH_OPTIMIZERS.items():
        for layout in LAYOUTS:
            cells = [f"{ns[name, layout, c]:.2f}" for c in columns]
            floor = bytes_per_param / machine["bandwidth"] * 1e9
            lines.append(f"| {name} | {layout} | {floor:.2f} | " + " | ".join(cells)
                         + f" | {ratios[name, layout, 'default']:.2f}× "
                         f"| {ratios[name, layout, 'fused']:.2f}× |")
    return "\n".join(lines)


# -- the section ---------------------------------------------------------------------------------
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


def section(defaults: list[dict], paths: dict, machine: dict, args) -> str:
    n = f"{args.n_params:,}"
    threads = f"{args.threads} torch thread" + ("s" if args.threads != 1 else "")
    return f"""{SECTION}

Produced by `make bench` (`.venv/bin/python benchmarks/bench_optim.py`): one `opt.step()`
on fixed float32 gradients, every comparison timed round-robin (one step of each path per
round, in a shuffled order), ratios the median over rounds of the ratio within a round.

**All paths at {n} parameters**, as one flat tensor or as 200 equal tensors,
{threads}, in ns per parameter (lower is better), median of
{args.rounds} rounds after 3 warm-up steps. *floor* is the bytes one step must move (28 B/param for
Adam/AdamW, 20 B for SGD with momentum) over the in-place read-modify-write bandwidth
measured in the same run. *descent default* is the traced rule run in place; *descent fused*
is `fused=True`, the traced rule compiled by `torch.compile` (compile time excluded: it
happens in the warm-up), timed in a second phase round-robin with torch's fused kernel,
which *fused / torch fused* compares against (the table shows torch fused's first timing).

{paths_table(paths, machine)}

Target (issue 12): *fused / torch fused* ≤ 1.2×.

**Default paths at three model sizes, one thread** (median step time; torch.optim's default
on the CPU is its per-tensor loop):

{defaults_table(defaults)}

Target (issue 12): *descent / torch* ≤ 1.1× everywhere.

Machine: {cpu_model()}, {os.cpu_count()} cores visible, torch {torch.__version__}, Python
{platform.python_version()}. In-place read-modify-write bandwidth ({threads}):
{machine['bandwidth'] / 1e9:.1f} GB/s. Load average (1, 5, 15 min) before the run:
{machine['load before']}; after: {machine['load after']}{note_if_loaded(machine)}.
"""


def note_if_loaded(machine: dict) -> str:
    try:
        busy = float(machine["load before"].split(",")[0]) > 0.5
    except ValueError:
        busy = False
    return (" — other processes were running: the absolute numbers are pessimistic and "
            "noisy; the ratios, timed round-robin, less so") if busy else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-params", type=int, default=10_000_000)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for part 2 (part 1 always uses one); one by "
                             "default: on a shared 2-core machine, a second thread's barriers "
                             "stall whenever another process takes a core")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, few rounds, print only (no RESULTS.md)")
    parser.add_argument("--part", choices=["defaults", "paths", "both"], default="both")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_params, args.rounds = 1_000_000, 5
    machine = {"load before": load_average()}
    defaults = paths = None
    if args.part in ("defaults", "both"):
        defaults = run_defaults(QUICK_MODELS if args.quick else MODELS)
    if args.part in ("paths", "both"):
        paths, bandwidth = run_paths(args.n_params, args.threads, args.rounds)
        machine.update(bandwidth)
    machine["load after"] = load_average()
    if defaults is None or paths is None:
        return
    text = section(defaults, paths, machine, args)
    print(text)
    if not args.quick:
        write_section(RESULTS, text)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
