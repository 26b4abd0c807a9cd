"""`make test` runs on two workers with `--dist loadgroup`: the groups of tests/conftest.py
must reach pytest-xdist's scheduler, or a costly fixture (the book's build) runs on both
workers at once. Both ways to lose them have happened: a grouping hook that ran after
xdist's, and pytest 9.2's node ids, which drop the group xdist 3.8 writes
(pytest-xdist#1386). Checked by a real two-worker run of one module's cheap tests."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_group_runs_whole_on_one_worker(tmp_path):
    module = "tests/test_book.py"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p",
         "no:cacheprovider", "--basetemp", str(tmp_path / "base"), module,
         "-k", "every_book_page or every_toc_entry or code_fits or notebooks_in_git"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ran = re.findall(r"^\[(gw\d)\] \[ *\d+%\] PASSED (\S+)", run.stdout, re.MULTILINE)
    assert len(ran) == 4, run.stdout[-3000:]
    workers = {worker for worker, _ in ran}
    assert len(workers) == 1, f"one group ran on {sorted(workers)}:\n{run.stdout[-3000:]}"
    assert all(nodeid.endswith(f"@{module}") for _, nodeid in ran), ran
