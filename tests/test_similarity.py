"""``make similarity``: near-copies among answer cells, for the instructor."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
from nbgrader_helpers import (
    SUBMISSIONS,
    make_course,
    nbgrader,
    read_cell_file,
    solution_answers,
    source,
    student_notebook,
    submit,
)

from descent.grading import similarity

ASSIGNMENT = "05-adaptive"
RELEASED = similarity.answer_cells(
    nbformat.read(f"exercises/{ASSIGNMENT}/{ASSIGNMENT}.ipynb", 4))
SOLUTION = similarity.answer_cells(source(ASSIGNMENT))


def _answers(**cells) -> dict[str, str]:
    return {**similarity.answer_cells(student_notebook(ASSIGNMENT)), **cells}


def _corpus(name: str) -> str:
    return read_cell_file(SUBMISSIONS / ASSIGNMENT / f"{name}.cell")[1]


def _pairs(result) -> set[tuple[str, str, str]]:
    return {(m["student"], m["cell"], m["other"]) for m in result["matches"]}


def test_renaming_and_reformatting_does_not_hide_a_copy():
    adam = solution_answers(ASSIGNMENT)[0]["answer-adam"]
    renamed = (adam.replace("m_hat", "first").replace("v_hat", "second")
               .replace("new_param", "theta").replace("# ", "#  note: "))
    renamed = renamed.replace("    t = state.t + 1", "    t = (state.t\n         + 1)")
    result = similarity.compare({"a": _answers(), "b": _answers(**{"answer-adam": renamed})},
                                SOLUTION, RELEASED, threshold=0.9)
    assert ("a", "answer-adam", "b") in _pairs(result)
    assert ("b", "answer-adam", "the solution") in _pairs(result)


def test_an_independent_correct_answer_is_not_a_match():
    own = _corpus("correct-adam-in-place-copy")
    result = similarity.compare({"a": _answers(), "b": _answers(**{"answer-adam": own})},
                                SOLUTION, RELEASED, threshold=0.8)
    pairs = _pairs(result)
    assert ("a", "answer-adam", "b") not in pairs
    assert ("b", "answer-adam", "the solution") not in pairs


def test_the_released_scaffold_is_not_evidence():
    """Two blank notebooks share every line the release gave them, and match on nothing."""
    result = similarity.compare({"a": RELEASED, "b": RELEASED}, SOLUTION, RELEASED,
                                threshold=0.5)
    assert result["matches"] == []


def test_a_library_function_copied_into_an_answer_is_found():
    import inspect

    import descent.optim.rmsprop as library

    copied = inspect.getsource(library.rmsprop_update).replace("rmsprop_update", "my_rule")
    result = similarity.compare({"a": _answers(**{"answer-rmsprop": copied})}, SOLUTION,
                                RELEASED, threshold=0.8)
    assert ("a", "answer-rmsprop", "descent.optim.rmsprop.rmsprop_update") in _pairs(result)


def test_answers_that_name_a_reference_are_listed_but_not_words_about_it():
    naming = _corpus("adam-delegates-rules")
    talking = '"""Like torch.optim.Adam and descent.rules.adam_update, written myself."""\n' + \
        SOLUTION["answer-adagrad"]
    result = similarity.compare({"a": _answers(**{"answer-adam": naming,
                                                  "answer-adagrad": talking})},
                                SOLUTION, RELEASED)
    named = {(n["cell"], tuple(n["names"])) for n in result["names_a_reference"]}
    assert any(cell == "answer-adam" and any(n.startswith("descent.rules") for n in names)
               for cell, names in named), named
    assert not any(cell == "answer-adagrad" for cell, _ in named)


def test_the_command_writes_an_escaped_report(tmp_path):
    course = make_course(tmp_path, [ASSIGNMENT])
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    evil = "<img src=x onerror=alert(1)>"
    submit(course, "alice", ASSIGNMENT, student_notebook(ASSIGNMENT))
    submit(course, evil, ASSIGNMENT, student_notebook(
        ASSIGNMENT, {"answer-adam": SOLUTION["answer-adam"] + f"\n# {evil}\n"}))
    out = subprocess.run([sys.executable, "-m", "descent.grading.classroom", "similarity",
                          ASSIGNMENT, "--course", str(course), "--threshold", "0.9"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    page = (course / "reports" / f"{ASSIGNMENT}-similarity.html").read_text()
    found = json.loads((course / "reports" / f"{ASSIGNMENT}-similarity.json").read_text())
    assert any(m["other"] == evil or m["student"] == evil for m in found["matches"])
    assert evil not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
