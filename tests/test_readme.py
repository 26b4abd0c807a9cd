"""The README's commands, run verbatim on a fresh clone, in order; the walkthrough keeps its word.

``test_readme_commands_run_on_a_fresh_clone`` clones the repository at HEAD into a temporary
folder, lays the working tree over it (tracked and untracked, not ignored: what the next
commit holds, so the test checks the work in progress too; on a clean checkout it changes
nothing), then runs every line of every ```bash block of README.md there, one command at a
time with ``bash -c``, in the order the README gives them. Each must exit 0 and print no
"checksum" warning. Then the walkthrough's promises are checked on what the commands left:
alice has every autograded point, bob loses exactly his two parts, bob's feedback names his
mistake and shows no hidden test.

Two shortcuts, neither of which changes a command:

- The clone's ``.venv`` is a symlink to the project's virtual environment (the one running
  this test), so ``make`` does not spend a minute installing the pins again; ``descent`` is
  installed editable there, from this working tree, whose files the clone carries anyway.
  The clone's ``requirements.txt`` and ``pyproject.toml`` get an old mtime so that make finds
  the environment's stamp up to date and never reinstalls into the shared environment.
- Commands that cannot run inside the test suite are listed in ``NOT_RUN`` with the reason
  and the test that covers them; a listed command that no longer appears in the README fails
  the test, so the list cannot hide anything.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent

# README command (exact line, comment stripped) -> why it does not run here, and where it is
# covered instead.
NOT_RUN = {
    "make book": "builds the whole book (60-120 s); the suite builds it once, strictly, in the "
                 "built_book fixture (tests/conftest.py, used by tests/test_book.py)",
    "make test": "is this test suite: it would run itself recursively",
    "make student-release": "builds the whole book when _build/html is stale, as it is on a "
                            "fresh clone; tests/test_student_release.py runs the target on the "
                            "session's built book",
}

WALKTHROUGH = "01-problem"
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)


def commands(block: str) -> list[str]:
    """The block's command lines: continuation lines joined, blank and comment lines dropped."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(line.strip())
    return out


def bare(command: str) -> str:
    """The command without its trailing comment and extra spaces."""
    return " ".join(command.split("#", 1)[0].split())


def readme_commands() -> list[str]:
    return [c for block in bash_blocks((ROOT / "README.md").read_text()) for c in commands(block)]


def clone(dest: Path) -> Path:
    """A fresh clone of HEAD with the working tree laid over it, and the project's venv."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(dest)],
                   check=True, capture_output=True)
    subprocess.run(["git", "checkout", "--quiet", head], cwd=dest, check=True,
                   capture_output=True)
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src, dst = ROOT / rel, dest / rel
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        elif not src.exists() and dst.is_file():   # deleted in the working tree
            dst.unlink()
    (dest / ".venv").symlink_to(VENV, target_is_directory=True)
    for name in ("requirements.txt", "pyproject.toml"):   # the venv's stamp is up to date
        os.utime(dest / name, (0, 0))
    return dest


def test_not_run_list_names_readme_commands():
    """Every exclusion is a command the README gives; nothing else is excluded."""
    given = {bare(c) for c in readme_commands()}
    assert set(NOT_RUN) <= given, f"NOT_RUN lists commands not in README: {set(NOT_RUN) - given}"


def test_the_walkthrough_is_in_a_command_block():
    """The walkthrough's commands, release first, are in a block the test runs."""
    order = [bare(c) for c in readme_commands()]
    steps = [f"make release ASSIGNMENT={WALKTHROUGH}", "make sample",
             f"make autograde ASSIGNMENT={WALKTHROUGH}", f"make feedback ASSIGNMENT={WALKTHROUGH}",
             "make export"]
    positions = [order.index(step) for step in steps]
    assert positions == sorted(positions), order


def _hidden_lines() -> list[str]:
    import nbformat
    nb = nbformat.read(str(ROOT / "solutions" / WALKTHROUGH / f"{WALKTHROUGH}.ipynb"), 4)
    return [line.strip() for cell in nb.cells for region in HIDDEN.findall(cell.source)
            for line in region.splitlines() if line.strip()]


def _points() -> tuple[float, dict[str, float]]:
    import nbformat
    nb = nbformat.read(str(ROOT / "solutions" / WALKTHROUGH / f"{WALKTHROUGH}.ipynb"), 4)
    code = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
            for c in nb.cells if c.cell_type == "code"
            and c.metadata.get("nbgrader", {}).get("grade")}
    return sum(code.values()), code


@pytest.mark.slow
def test_readme_commands_run_on_a_fresh_clone(tmp_path):
    repo = clone(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(VENV)))     # as a newcomer's shell
    env["TMPDIR"] = str(tmp_path / "tmp")                             # the graders' temp files
    (tmp_path / "tmp").mkdir()
    log, ran = [], []
    for command in readme_commands():
        if bare(command) in NOT_RUN:
            continue
        proc = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=600)
        output = proc.stdout + proc.stderr
        log.append(f"$ {command}\n{output}")
        assert proc.returncode == 0, f"README command failed (exit {proc.returncode}): " \
                                     f"{command}\n{output[-4000:]}"
        assert "checksum" not in output.lower(), f"{command} warns:\n{output[-4000:]}"
        ran.append(bare(command))
    (tmp_path / "readme-run.log").write_text("\n".join(log))
    assert f"make autograde ASSIGNMENT={WALKTHROUGH}" in ran and "make export" in ran

    total, parts = _points()
    rows = {r["student_id"]: r for r in csv.DictReader(open(repo / "grades.csv"))
            if r.get("assignment", WALKTHROUGH) == WALKTHROUGH}
    assert set(rows) == {"alice", "bob"}, rows
    assert float(rows["alice"]["raw_score"]) == total
    assert float(rows["bob"]["raw_score"]) == total - parts["test-loss"] - parts["test-classify"]

    bob = (repo / "feedback" / "bob" / WALKTHROUGH / f"{WALKTHROUGH}.html").read_text()
    alice = (repo / "feedback" / "alice" / WALKTHROUGH / f"{WALKTHROUGH}.html").read_text()
    assert "n times the reference" in bob, "bob's feedback does not name his mistake"
    for html in (alice, bob):
        assert "BEGIN HIDDEN TESTS" not in html
        for line in _hidden_lines():
            assert line not in html.replace("&#39;", "'").replace("&quot;", '"'), line


def test_sample_class_is_what_make_sample_class_writes():
    """tests/submissions/sample is the released notebook with answers, as the script writes
    it, so that nbgrader sees every locked cell unchanged (no checksum warning)."""
    import nbformat
    sys.path.insert(0, str(ROOT / "make"))
    try:
        import sample_class
    finally:
        sys.path.pop(0)
    for name, nb in sample_class.students().items():
        committed = ROOT / "tests" / "submissions" / "sample" / name / WALKTHROUGH / \
            f"{WALKTHROUGH}.ipynb"
        assert nbformat.writes(nb) + "\n" == committed.read_text(), (
            f"tests/submissions/sample/{name} is stale: run .venv/bin/python make/sample_class.py")


@pytest.mark.slow
def test_only_a_changed_grade_cell_warns(tmp_path):
    """nbgrader_config.py's OverwriteReleasedCells: a grade cell handed in as released gets
    its hidden tests back without a warning; an edited one still warns and is restored."""
    import nbformat
    from nbgrader_helpers import make_course, nbgrader, notebook_path, submit

    course = make_course(tmp_path, (WALKTHROUGH,))
    nbgrader(course, "generate_assignment", WALKTHROUGH, "--force")
    released = nbformat.read(str(notebook_path(course / "exercises", WALKTHROUGH)), 4)
    submit(course, "asreleased", WALKTHROUGH, released)
    edited = nbformat.from_dict(released)
    cell = next(c for c in edited.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                == "test-loss")
    cell.source = "pass  # no test here"
    submit(course, "edited", WALKTHROUGH, edited)
    out = nbgrader(course, "autograde", WALKTHROUGH, "--force")
    log = out.stdout + out.stderr
    warned = re.findall(r"Attribute 'checksum' for cell (\S+) has changed", log)
    assert warned == ["test-loss"], log[-3000:]
    hidden = _hidden_lines()
    for student in ("asreleased", "edited"):
        graded = notebook_path(course / "autograded" / student, WALKTHROUGH).read_text()
        assert all(json_line in graded for json_line in
                   (json.dumps(line)[1:-1] for line in hidden)), f"{student}: hidden tests not run"
