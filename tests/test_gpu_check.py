"""``make gpu-check``: its CPU dry run goes through every step and writes the report.

The real run needs a CUDA machine; here ``--device cpu --quick`` runs each step at tiny
sizes (the chapters step on a two-cell notebook instead of a book chapter, to stay fast),
and the notebook runner and the grading hook are checked on their failure paths.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def notebook(path: Path, *cells: str) -> Path:
    path.write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# a chapter\n"]},
        *({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
           "source": cell.splitlines(keepends=True)} for cell in cells)],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


TRAINING_CELLS = (
    "import torch\nimport descent.optim\n"
    "DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'\n"
    "w = torch.zeros(3, device=DEVICE, requires_grad=True)\n"
    "opt = descent.optim.Adam([w], lr=0.1)",
    "for _ in range(20):\n    opt.zero_grad()\n    ((w - 1) ** 2).sum().backward()\n"
    "    opt.step()\nassert float(((w - 1) ** 2).sum()) < 3.0",
)


def test_the_dry_run_goes_through_every_step(tmp_path):
    out = tmp_path / "gpu-check.md"
    chapter = notebook(tmp_path / "tiny-chapter.ipynb", *TRAINING_CELLS)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out),
         "--notebooks", str(chapter)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "lib")},
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = out.read_text()
    summary = report[report.index("## Summary"):report.index("## Library imports")]
    assert "| imports | ok |" in summary
    assert "| CUDA tests | " in summary and "skipped" in summary and "failed" not in summary
    assert "| optimizer step | dry run: targets not judged |" in summary
    assert "| chapters | 1 ran, all ok |" in summary
    assert "| grading | ok |" in summary
    assert "## Grading on CPU" in report and "6 of 6 graded as expected" in report
    table = report[report.index("## Optimizer step on CPU (dry run)"):]
    assert "| SGD-momentum | 16,000 |" in table            # default and fused both timed
    row = next(line for line in table.splitlines() if line.startswith("| SGD-momentum"))
    assert row.count("—") == 0
    assert "| tiny-chapter |" in report and "`PYTHONPATH=lib`" in report


def test_a_failing_chapter_is_reported_with_its_error(tmp_path):
    gpu_check = load_gpu_check()
    good = notebook(tmp_path / "good.ipynb", "x = 1", "assert x == 1")
    bad = notebook(tmp_path / "bad.ipynb", "x = 1", "assert x == 2, 'prediction failed'")
    result = gpu_check.run_chapters([good, bad])
    assert not result["ok"]
    errors = {r["chapter"]: r["error"] for r in result["chapters"]}
    assert errors["good"] is None
    assert "AssertionError: prediction failed" in errors["bad"]
    assert "**failed**: AssertionError: prediction failed" in gpu_check.chapters_section(
        result, "CPU")


def test_the_grading_hook_calls_the_module_when_it_exists(tmp_path, monkeypatch):
    gpu_check = load_gpu_check()
    monkeypatch.setattr(gpu_check, "LIB", tmp_path)
    assert gpu_check.grading_hook("cpu", True)["available"] is False
    package = tmp_path / "descent" / "grading"
    package.mkdir(parents=True)
    (tmp_path / "descent" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "gpu_check.py").write_text(
        "import os\nprint('## Grading on CPU')\n"
        "print(os.environ['DESCENT_GPU_CHECK_DEVICE'], os.environ['DESCENT_GPU_CHECK_QUICK'])\n")
    found = gpu_check.grading_hook("cpu", True)
    assert found["available"] and found["ok"]
    assert found["text"] == "## Grading on CPU\ncpu 1"
    (package / "gpu_check.py").write_text("raise SystemExit(3)\n")
    assert gpu_check.grading_hook("cuda", False)["ok"] is False


def test_the_library_import_check_catches_a_notebook_import(tmp_path, monkeypatch):
    """(That the real library passes this check is in the dry run above.)"""
    gpu_check = load_gpu_check()
    fake = tmp_path / "descent"
    fake.mkdir()
    (fake / "__init__.py").write_text("import nbformat\n")
    monkeypatch.setattr(gpu_check, "LIB", tmp_path)
    found = gpu_check.check_imports()
    assert not found["ok"] and "nbformat is blocked" in found["text"]
