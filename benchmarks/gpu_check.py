"""Everything that needs a GPU, in one command: ``make gpu-check`` on a machine with CUDA.

The machine needs python3 with torch, numpy, matplotlib, scikit-learn and pytest; not the
project's pins, nbgrader or Jupyter. The library is imported from ``lib/`` (``PYTHONPATH=lib``),
not installed. Steps, each reported even when an earlier one failed:

1. **imports**: ``descent`` and ``descent.optim``/``train``/``models``/``data`` import with
   nbgrader, nbformat, IPython and Jupyter blocked;
2. **CUDA tests**: ``pytest -m cuda`` on the test files that need nothing beyond the above
   (:data:`CUDA_TEST_FILES`);
3. **optimizer step on CUDA**: 10M and 100M parameters in 200 tensors, descent's default
   path against torch's foreach path and ``fused=True`` against torch's fused kernel, timed
   with CUDA events, round-robin; plus the copy bandwidth of the device, so that the fused
   path's bandwidth can be judged (target: ≥ 70 % of a copy at 100M);
4. **chapters**: each book notebook's code cells executed in order, in a fresh process
   without Jupyter (the chapters choose their GPU settings with ``torch.cuda.is_available()``);
5. **grading on CUDA**: ``python -m descent.grading.gpu_check`` when that module exists
   (:func:`grading_hook`); until then the step says it is not available.

The results go to ``--out`` (default ``artifacts/gpu-check.md``) as ``## …`` sections in
the format of benchmarks/RESULTS.md, ready to paste there. The exit status is non-zero when
a step failed or a target was missed.

``--device cpu --quick`` (``make gpu-check DEVICE=cpu QUICK=1``) is a dry run of every step
on the CPU at tiny sizes, for machines without a GPU; ``tests/test_gpu_check.py`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIB = REPO / "lib"
BLOCKED = ("nbgrader", "nbformat", "nbclient", "IPython", "ipykernel", "jupyter_client",
           "jupyter_core", "jupyter_book", "hypothesis")
LIBRARY_MODULES = ("descent", "descent.optim", "descent.train", "descent.models",
                   "descent.data")
# Test files whose imports need only torch, numpy, matplotlib and pytest (not hypothesis,
# not nbgrader): their CUDA tests run here.
CUDA_TEST_FILES = ("tests/test_optim_cuda.py", "tests/test_train.py")
GRADING_MODULE = "descent.grading.gpu_check"

# name -> (class name, keywords, bytes one fp32 step moves per parameter, torch has fused)
OPTIMIZERS = {
    "Adam": ("Adam", dict(lr=1e-3), 28, True),
    "AdamW": ("AdamW", dict(lr=1e-3, weight_decay=1e-2), 28, True),
    "SGD-momentum": ("SGD", dict(lr=1e-3, momentum=0.9), 20, True),
    "SGD-Nesterov": ("SGD", dict(lr=1e-3, momentum=0.9, nesterov=True), 20, True),
    "RMSprop": ("RMSprop", dict(lr=1e-3), 20, False),
}
QUICK_OPTIMIZERS = ("SGD-momentum",)
TARGETS = {"default / torch foreach": 1.1, "fused / torch fused": 1.2, "fused / copy": 0.7}


# -- 1. imports ------------------------------------------------------------------------------
def check_imports() -> dict:
    """Import the library modules in a fresh process with the notebook stack blocked."""
    code = f"""
import builtins, sys
blocked = {BLOCKED!r}
real_import = builtins.__import__
def guarded(name, *args, **kwargs):
    if name.split('.')[0] in blocked:
        raise ImportError(f'{{name}} is blocked: the library must not need it')
    return real_import(name, *args, **kwargs)
builtins.__import__ = guarded
for module in {LIBRARY_MODULES!r}:
    __import__(module)
print('imported', ', '.join({LIBRARY_MODULES!r}))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(),
                            capture_output=True, text=True, timeout=300)
    ok = result.returncode == 0
    return {"ok": ok, "text": (result.stdout + result.stderr).strip()[-2000:]}


def _env(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(LIB), **extra}
    env.setdefault("MPLBACKEND", "Agg")
    return env


# -- 2. CUDA tests ------------------------------------------------------------------------------
def run_cuda_tests(quick: bool) -> dict:
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
               *CUDA_TEST_FILES]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True,
                            timeout=3600)
    lines = (result.stdout + result.stderr).strip().splitlines()
    summary = next((line for line in reversed(lines) if " in " in line and (
        "passed" in line or "failed" in line or "skipped" in line or "error" in line)),
        lines[-1] if lines else "")
    return {"ok": result.returncode == 0, "command": " ".join(command[1:]),
            "summary": summary.strip("= "), "seconds": time.perf_counter() - start,
            "text": "\n".join(lines[-60:])}


# -- 3. the optimizer step ------------------------------------------------------------------------
def _copy_bandwidth(torch, device, n_params: int, rounds: int, timer) -> float:
    """Bytes per second of ``dst.copy_(src)`` on ``n_params`` floats (reads 4 B, writes 4 B)."""
    from descent.bench import interleaved_times
    src = torch.randn(n_params, device=device)
    dst = torch.empty_like(src)
    t = interleaved_times({"copy": lambda: dst.copy_(src)}, rounds=rounds, timer=timer)
    return 8 * n_params / statistics.median(t["copy"])


def _step(torch, library, name: str, shapes, device, **switch):
    """The ``step`` of a fresh optimizer ``name`` over float32 parameters with fixed grads."""
    cls, kwargs, _, _ = OPTIMIZERS[name]
    g = torch.Generator(device="cpu").manual_seed(0)
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=g).to(device).requires_grad_()
        p.grad = torch.randn(shape, generator=g).to(device)
        params.append(p)
    return getattr(library, cls)(params, **kwargs, **switch).step


def bench(device_name: str, sizes: list[int], names, rounds: int, n_tensors: int = 200) -> dict:
    import torch

    import descent.optim
    from descent.bench import cpu_timer, cuda_timer, interleaved_times, paired_ratio

    device = torch.device(device_name)
    timer = cuda_timer if device.type == "cuda" else cpu_timer
    if device.type == "cpu":
        # one thread: compiled kernels bring their own OpenMP pool, which stalls torch's
        # (measured: torch's fused step 100x slower next to them at two threads)
        torch.set_num_threads(1)
    rows, copies = [], {}
    for n_params in sizes:
        shapes = [(n_params // n_tensors,)] * n_tensors
        copies[n_params] = _copy_bandwidth(torch, device, n_params, rounds, timer)
        for name in names:
            _, _, bytes_per_param, torch_fused = OPTIMIZERS[name]
            row = {"optimizer": name, "parameters": n_params, "bytes": bytes_per_param}
            # eager paths first; the compiled one in its own rounds (on a CPU its thread pool
            # would slow the eager kernels that run after it)
            steps = {"torch foreach": _step(torch, torch.optim, name, shapes, device,
                                            foreach=True),
                     "descent default": _step(torch, descent.optim, name, shapes, device)}
            t = interleaved_times(steps, rounds=rounds, warmup=3, timer=timer)
            row["torch foreach"] = statistics.median(t["torch foreach"])
            row["descent default"] = statistics.median(t["descent default"])
            row["default / torch foreach"] = paired_ratio(t["descent default"],
                                                          t["torch foreach"])
            del steps
            if torch_fused:
                steps = {"torch fused": _step(torch, torch.optim, name, shapes, device,
                                              fused=True),
                         "descent fused": _step(torch, descent.optim, name, shapes, device,
                                                fused=True)}
                t = interleaved_times(steps, rounds=rounds, warmup=3, timer=timer)
                row["torch fused"] = statistics.median(t["torch fused"])
                row["descent fused"] = statistics.median(t["descent fused"])
                row["fused / torch fused"] = paired_ratio(t["descent fused"], t["torch fused"])
                row["fused / copy"] = (bytes_per_param * n_params / row["descent fused"]
                                       / copies[n_params])
                del steps
            rows.append(row)
            print(f"  {name:13s} {n_params:>12,} " + "  ".join(
                f"{k} {v:.3g}" for k, v in row.items() if isinstance(v, float)), flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return {"rows": rows, "copy": copies, "device": _device_name(device), "tensors": n_tensors}


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def bench_section(result: dict, rounds: int, label: str) -> str:
    def ms(row, key):
        return f"{row[key] * 1e3:.3f}" if key in row else "—"

    def ratio(row, key):
        if key not in row:
            return "—"
        value = row[key]
        target = TARGETS[key]
        met = value >= target if key == "fused / copy" else value <= target
        if key == "fused / copy" and row["parameters"] < 100_000_000:
            met = True                            # the target is for 100M parameters
        text = f"{value:.0%}" if key == "fused / copy" else f"{value:.2f}×"
        return text if met else f"**{text}**"

    lines = ["| optimizer | parameters | torch foreach (ms) | descent default (ms) "
             "| default / torch foreach | torch fused (ms) | descent fused (ms) "
             "| fused / torch fused | fused bandwidth / copy |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['optimizer']} | {row['parameters']:,} | {ms(row, 'torch foreach')} "
                     f"| {ms(row, 'descent default')} | {ratio(row, 'default / torch foreach')} "
                     f"| {ms(row, 'torch fused')} | {ms(row, 'descent fused')} "
                     f"| {ratio(row, 'fused / torch fused')} | {ratio(row, 'fused / copy')} |")
    copies = ", ".join(f"{bw / 1e9:.0f} GB/s at {n:,}" for n, bw in result["copy"].items())
    return f"""## Optimizer step on {label}

Produced by `make gpu-check` (`benchmarks/gpu_check.py`): one `opt.step()` on fixed float32
gradients, parameters in {result['tensors']} equal tensors, median of {rounds} rounds (one
step of each path per round, shuffled), timed with CUDA events on a GPU; ratios are the
median over rounds of the ratio within a round. *descent default* is the traced rule
(multi-tensor on CUDA); *descent fused* is `fused=True` (the traced rule compiled by
`torch.compile`). *fused bandwidth / copy*: the bytes a step must move (28 B/param for
Adam/AdamW, 20 B for SGD and RMSprop) over the fused step's time, as a share of
`dst.copy_(src)`'s bandwidth ({copies}). Bold: a target missed (default ≤ 1.1× torch
foreach; fused ≤ 1.2× torch fused; fused ≥ 70 % of copy bandwidth at 100M).

{chr(10).join(lines)}

Device: {result['device']}.
"""


# -- 4. chapters -------------------------------------------------------------------------------
def run_notebook(path: Path) -> None:
    """Execute the code cells of one notebook in order, in this process (no Jupyter)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    notebook = json.loads(path.read_text(encoding="utf-8"))
    namespace = {"__name__": "__main__", "__file__": str(path)}
    os.chdir(path.parent)                     # as Jupyter Book runs it: in its own folder
    for i, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        exec(compile(source, f"{path.name} [code cell {i}]", "exec"), namespace)  # noqa: S102
        plt.close("all")


def run_chapters(paths: list[Path]) -> dict:
    results = []
    for path in paths:
        start = time.perf_counter()
        result = subprocess.run([sys.executable, __file__, "--run-notebook", str(path)],
                                cwd=REPO, env=_env(), capture_output=True, text=True,
                                timeout=3600)
        seconds = time.perf_counter() - start
        error = None
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            error = lines[-1] if lines else f"exit status {result.returncode}"
        results.append({"chapter": path.stem, "seconds": seconds, "error": error,
                        "tail": result.stderr.strip()[-3000:] if error else ""})
        print(f"  {path.stem:24s} {seconds:7.1f} s  {'ok' if error is None else error}",
              flush=True)
    return {"ok": all(r["error"] is None for r in results), "chapters": results}


def chapters_section(result: dict, label: str) -> str:
    lines = ["| chapter | seconds | result |", "|---|---:|---|"]
    for r in result["chapters"]:
        outcome = "ok" if r["error"] is None else f"**failed**: {r['error'][:160]}"
        lines.append(f"| {r['chapter']} | {r['seconds']:.1f} | {outcome} |")
    return f"""## Chapters on {label}

Each notebook of `book/` executed cell by cell in a fresh Python process (no Jupyter), in its
own folder, at the settings the chapter picks for this machine
(`torch.cuda.is_available()`); a chapter fails when a cell raises, its asserted predictions
included.

{chr(10).join(lines)}
"""


# -- 5. grading on CUDA (the lead's module; this only calls it) --------------------------------
def grading_hook(device: str, quick: bool) -> dict:
    """Run ``python -m descent.grading.gpu_check`` if that module exists, else say so.

    Contract offered to that module: it runs with ``PYTHONPATH=lib`` in the repository root,
    with ``DESCENT_GPU_CHECK_DEVICE`` (``cuda`` or ``cpu``) and ``DESCENT_GPU_CHECK_QUICK``
    (``1`` for a dry run at tiny sizes) in its environment; what it prints to stdout (ideally
    a ``## …`` Markdown section) goes into the report as it is, and a non-zero exit status
    marks the step failed. The module is found by its file, without importing
    ``descent.grading`` (which may need nbgrader).
    """
    module_file = LIB.joinpath(*GRADING_MODULE.split(".")).with_suffix(".py")
    if not module_file.is_file():
        return {"ok": True, "available": False,
                "text": f"The grading step is not available yet: {GRADING_MODULE} does not "
                        f"exist in this checkout ({_shown(module_file)})."}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", GRADING_MODULE], cwd=REPO,
                            env=_env(DESCENT_GPU_CHECK_DEVICE=device,
                                     DESCENT_GPU_CHECK_QUICK="1" if quick else "0"),
                            capture_output=True, text=True, timeout=6 * 3600)
    return {"ok": result.returncode == 0, "available": True,
            "seconds": time.perf_counter() - start, "text": result.stdout.strip(),
            "stderr": result.stderr.strip()[-3000:]}


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


# -- the report ----------------------------------------------------------------------------------
def report(results: dict, args) -> str:
    import torch
    label = "CUDA" if args.device == "cuda" else "CPU (dry run)" if args.quick else "CPU"
    head = (f"# GPU check\n\n`{' '.join(sys.argv[1:]) or '(no arguments)'}` on "
            f"{platform.node()}: torch {torch.__version__}, Python {platform.python_version()}"
            f", {time.strftime('%Y-%m-%d %H:%M')}. Paste the `##` sections into "
            "benchmarks/RESULTS.md.\n")
    parts = [head, "## Summary\n", "| step | result |", "|---|---|"]
    for step, outcome in results["summary"].items():
        parts.append(f"| {step} | {outcome} |")
    parts.append("")
    imports = results["imports"]
    parts.append(f"## Library imports without the notebook stack\n\n"
                 f"{'ok' if imports['ok'] else '**failed**'}: {', '.join(LIBRARY_MODULES)} "
                 f"with {', '.join(BLOCKED)} blocked, `PYTHONPATH=lib`.\n\n"
                 + ("" if imports["ok"] else f"```\n{imports['text']}\n```\n"))
    tests = results.get("tests")
    if tests:
        parts.append(f"## CUDA tests\n\n`{tests['command']}`: {tests['summary']} "
                     f"({tests['seconds']:.0f} s).\n"
                     + ("" if tests["ok"] else f"\n```\n{tests['text']}\n```\n"))
    if "bench" in results:
        parts.append(bench_section(results["bench"], args.rounds, label))
    if "chapters" in results:
        parts.append(chapters_section(results["chapters"], label))
        for r in results["chapters"]["chapters"]:
            if r["error"]:
                parts.append(f"```\n{r['chapter']}:\n{r['tail']}\n```\n")
    grading = results.get("grading")
    if grading:
        parts.append(f"## Grading on {label}\n\n" + (grading["text"] or "(no output)") + "\n"
                     + (f"\n```\n{grading.get('stderr', '')}\n```\n" if not grading["ok"]
                        else ""))
    for step, error in results.get("errors", {}).items():
        parts.append(f"## {step}: error\n\n```\n{error}\n```\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a dry run")
    parser.add_argument("--out", type=Path, default=REPO / "artifacts" / "gpu-check.md")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--chapters", nargs="*", default=None,
                        help="notebook stems to run (default: every chapter; with --quick: "
                             "07-implementation, the shortest)")
    parser.add_argument("--notebooks", nargs="*", type=Path, default=None,
                        help="notebook files to run instead of the book's chapters")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["tests", "bench", "chapters", "grading"])
    parser.add_argument("--run-notebook", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_notebook:
        run_notebook(args.run_notebook.resolve())
        return 0
    sys.path.insert(0, str(LIB))
    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        print("No CUDA device: run `make gpu-check DEVICE=cpu QUICK=1` for a dry run.",
              file=sys.stderr)
        return 2
    args.rounds = args.rounds or (5 if args.quick else 21)
    results: dict = {"summary": {}, "errors": {}}
    ok = True

    def step(name, fn):
        nonlocal ok
        print(f"[{name}]", flush=True)
        start = time.perf_counter()
        try:
            return fn()
        except Exception:  # noqa: BLE001 - every step is reported, whatever happened
            results["errors"][name] = traceback.format_exc()[-4000:]
            results["summary"][name] = "**error** (see below)"
            ok = False
            return None
        finally:
            print(f"[{name}: {time.perf_counter() - start:.1f} s]", flush=True)

    imports = step("imports", check_imports)
    if imports is not None:
        results["imports"] = imports
        results["summary"]["imports"] = "ok" if imports["ok"] else "**failed**"
        ok &= imports["ok"]
    if "tests" not in args.skip:
        tests = step("CUDA tests", lambda: run_cuda_tests(args.quick))
        if tests is not None:
            results["tests"] = tests
            results["summary"]["CUDA tests"] = tests["summary"] if tests["ok"] else \
                f"**failed**: {tests['summary']}"
            ok &= tests["ok"]
    if "bench" not in args.skip:
        sizes = [16 * 1_000] if args.quick else [10_000_000, 100_000_000]
        names = QUICK_OPTIMIZERS if args.quick else tuple(OPTIMIZERS)
        found = step("optimizer step", lambda: bench(args.device, sizes, names, args.rounds,
                                                     n_tensors=16 if args.quick else 200))
        if found is not None:
            results["bench"] = found
            missed = [f"{r['optimizer']} {r['parameters']:,} {key}" for r in found["rows"]
                      for key, target in TARGETS.items() if key in r and (
                          r[key] < target if key == "fused / copy" else r[key] > target)
                      and (key != "fused / copy" or r["parameters"] >= 100_000_000)]
            results["summary"]["optimizer step"] = (
                "dry run: targets not judged" if args.quick else "every target met"
                if not missed else "targets missed: " + "; ".join(missed))
            ok &= not missed or args.quick
    if "chapters" not in args.skip:
        stems = args.chapters if args.chapters is not None else (
            ["07-implementation"] if args.quick else None)
        paths = sorted((REPO / "book").glob("*.ipynb"))
        if stems is not None:
            paths = [p for p in paths if p.stem in stems]
        if args.notebooks is not None:
            paths = [p.resolve() for p in args.notebooks]
        found = step("chapters", lambda: run_chapters(paths))
        if found is not None:
            results["chapters"] = found
            failed = [r["chapter"] for r in found["chapters"] if r["error"]]
            results["summary"]["chapters"] = (f"{len(paths)} ran, all ok" if not failed else
                                              f"**failed**: {', '.join(failed)}")
            ok &= not failed
    if "grading" not in args.skip:
        found = step("grading", lambda: grading_hook(args.device, args.quick))
        if found is not None:
            results["grading"] = found
            results["summary"]["grading"] = ("not available yet" if not found["available"]
                                             else "ok" if found["ok"] else "**failed**")
            ok &= found["ok"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(results, args), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
