"""The record of a grading kernel and its replay in a clean process (descent.grading.tape).

The corpus tests (``test_grading.py``) already replay every known mistake and correct rewrite
and require the clean verdict to agree with the in-process one. Here: the encoding of hostile
values, a corrupt or missing record, and answers that tamper with the checks — where the two
verdicts must *disagree*, the clean one being right.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from nbgrader_helpers import assert_trusted_agrees, run_and_replay, run_from, source

import descent.grading.compare
import descent.grading.feedback
import descent.grading.rules
from descent.grading import sandbox, tape
from descent.grading.assignments import a05_adaptive

WRONG_ADAM = """
def adam_update(param, grad, state, *, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    if weight_decay:
        grad = grad + weight_decay * param
    t = state.t + 1
    m = beta1 * state.m + (1 - beta1) * grad
    v = beta2 * state.v + (1 - beta2) * grad * grad
    return param - lr * m / (v ** 0.5 + eps), AdamState(t, m, v)    # no bias correction
"""


def _with_answer(assignment: str, grade_id: str, code: str):
    nb = source(assignment)
    cell, = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    cell.source = code
    return nb


# -- encoding: plain data only, the number a value holds ---------------------------------------

class _AlwaysEqual(float):
    def __eq__(self, other):
        return True

    __hash__ = float.__hash__

    def __float__(self):
        return 1e9


class _Sneaky(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(self), bool)


@pytest.mark.parametrize("value", [
    None, True, 3, 2**80, -0.0, math.inf, math.nan, "text", [1, [2.5, None]], (1, "a"),
    {"a": 1, 2: [3.0]}, np.arange(6.0).reshape(2, 3), np.float32(1.5), np.array(2.0),
    np.int64(7), torch.tensor([[1.0, 2.0]], dtype=torch.float64),
    torch.tensor(3, dtype=torch.int32),
])
def test_plain_values_round_trip_exactly(value):
    back = tape.decode(json.loads(json.dumps(tape.encode(value), allow_nan=False)))
    if isinstance(value, torch.Tensor):
        assert back.dtype == value.dtype and torch.equal(back, value)
    elif isinstance(value, (np.ndarray, np.generic)):
        assert np.asarray(back).dtype == np.asarray(value).dtype
        assert np.shape(back) == np.shape(value) and np.array_equal(back, value)
    elif isinstance(value, float) and math.isnan(value):
        assert math.isnan(back)
    else:
        assert back == value and type(back) is type(value)


def test_namedtuple_state_keeps_its_fields_and_bfloat16_its_dtype():
    from collections import namedtuple
    State = namedtuple("AdamState", "t m v")
    back = tape.decode(tape.encode(State(3, np.ones(2), torch.ones(2, dtype=torch.bfloat16))))
    assert back._fields == ("t", "m", "v") and back.t == 3
    assert back.v.dtype == torch.bfloat16 and np.array_equal(back.m, np.ones(2))


def test_values_that_lie_about_themselves_are_recorded_as_the_number_they_hold():
    liar = _AlwaysEqual(0.25)
    assert liar == 123.0                                    # what a comparison in the kernel sees
    assert tape.decode(tape.encode(liar)) == 0.25           # what the clean process sees
    sneaky = np.arange(3.0).view(_Sneaky)
    back = tape.decode(tape.encode(sneaky))
    assert type(back) is np.ndarray and not np.array_equal(back, np.zeros(3))


def test_objects_become_opaque_and_depth_is_bounded():
    class Optimizerish:
        pass

    assert isinstance(tape.decode(tape.encode(Optimizerish())), tape.Opaque)
    deep: list = []
    for _ in range(50):
        deep = [deep]
    text = json.dumps(tape.encode(deep))
    assert "nested too deeply" in text
    assert isinstance(tape.decode(tape.encode(np.array(["a"]))), tape.Opaque)


@pytest.mark.parametrize("bad", [{"$pickle": "gASV"}, {"$ndarray": {"dtype": "|O", "shape": [1],
                                                                    "data": ""}},
                                 {"$tensor": {"dtype": "<f8", "shape": [1], "data": "AAAAAAAA8D8=",
                                              "torch_dtype": "os.system"}}, {"a": 1, "b": 2}])
def test_decoding_rejects_anything_but_the_grader_tags(bad):
    with pytest.raises(tape.ReplayError):
        tape.decode(bad)


# -- the record: corrupt, missing, overflowing --------------------------------------------------

def test_corrupt_lines_and_a_second_start_are_reported():
    lines = ['{"kind":"start","pid":1}', "not json", '{"kind":"grade","score":100}',
             '{"kind":"start","pid":2}']
    entries, problems = tape.parse(lines)
    assert len(entries) == 2
    assert any("not valid JSON" in p for p in problems)
    assert any("not a grader entry" in p for p in problems)
    assert any("started 2 times" in p for p in problems)


def test_a_missing_record_gives_every_part_zero_with_the_reason(tmp_path):
    result = tape.trusted_parts(source("05-adaptive"), tmp_path / "absent.jsonl")
    assert result.parts and all(p.score == 0 for p in result.parts.values())
    assert all(p.mistake == "no-record" for p in result.parts.values())
    assert any("no grading record" in t for t in result.tampering)


def test_the_record_stops_at_its_limit_and_says_so():
    recorder = tape.Recorder(limit=2000)
    for _ in range(20):
        recorder.record("site", sandbox.Outcome(value=np.zeros(50)))
    assert recorder.full and sum(len(line) + 1 for line in recorder.lines) <= 2000 + 100
    _, problems = tape.parse(recorder.lines)
    assert any("exceeded its limit" in p for p in problems)


def test_a_replay_error_cannot_be_swallowed_by_a_check():
    replayer = tape.Replayer([])
    with tape.recording(replayer), replayer.cell("x = 1"):
        try:
            sandbox.call(print, "never called")
        except Exception:                                   # noqa: BLE001 - the point
            pytest.fail("ReplayError was caught by `except Exception`")
        except tape.ReplayError as err:
            assert "never ran this part's checks" in str(err)


def test_the_kernel_file_records_outcomes_as_json_lines(tmp_path):
    path = tmp_path / "record.jsonl"
    recorder = tape.Recorder(path)
    with tape.recording(recorder):
        recorder.begin_cell("checks.check_something(f)")
        sandbox.call(lambda x: x * 2, np.ones(2))
    entries, problems = tape.parse(path.read_text().splitlines())
    assert not problems
    outcome = [e for e in entries if e["kind"] == "outcome"][0]
    assert outcome["cell"] == tape.digest("checks.check_something(f)")
    assert np.array_equal(tape.decode(outcome["outcome"]["value"]), [2.0, 2.0])


# -- tampering: the in-kernel verdict is fooled, the clean one is not ---------------------------

def test_a_correct_answer_agrees_and_reports_no_tampering():
    results, trusted = run_and_replay(source("05-adaptive"), "05-adaptive", "answer-adam")
    assert_trusted_agrees(results, trusted)


# What the tampering answers below replace; restored before the replay, as a clean process
# would never have seen the patches.
PATCHABLE = [(a05_adaptive, "check_adam"), (descent.grading.rules, "judge_rule"),
             (descent.grading.feedback.Verdict, "raise_for"), (np, "allclose"),
             (torch, "allclose"), (descent.grading.compare, "allclose"),
             (descent.grading.compare, "close")]


@pytest.mark.parametrize(("name", "patch", "names"), [
    ("check replaced", "checks.check_adam = lambda *a, **k: None",
     "a05_adaptive.check_adam was replaced"),
    ("judge patched", "import descent.grading.rules as _r\n"
     "from descent.grading.feedback import PASS\n"
     "_r.judge_rule = lambda *a, **k: PASS", "descent.grading.rules.judge_rule was replaced"),
    ("verdict patched", "from descent.grading.feedback import Verdict\n"
     "Verdict.raise_for = lambda self, *a: None",
     "descent.grading.feedback.Verdict.raise_for was replaced"),
    ("comparisons patched", "import descent.grading.compare as _c, numpy as _np, torch as _t\n"
     "_np.allclose = _t.allclose = lambda *a, **k: True\n"
     "_c.allclose = lambda *a, **k: True\n_c.close = lambda g, e, t: _np.ones(_np.shape(e), bool)",
     "numpy.allclose was replaced"),
])
def test_tampering_passes_in_the_kernel_but_not_in_the_clean_verdict(name, patch, names):
    nb = _with_answer("05-adaptive", "answer-adam", WRONG_ADAM + "\n" + patch)
    saved = [(owner, attr, vars(owner)[attr]) for owner, attr in PATCHABLE]
    recorder = tape.Recorder()
    try:
        results = run_from(nb, "answer-adam", recorder=recorder)
    finally:
        for owner, attr, value in saved:
            setattr(owner, attr, value)
    entries, problems = tape.parse(recorder.lines)
    trusted = tape.replay_notebook(source("05-adaptive"), entries)
    assert results["test-adam"] is None, f"{name}: the patch did not fool the kernel"
    part = trusted.parts["test-adam"]
    assert part.score == 0, part.message
    assert any(names in t for t in problems + trusted.tampering), trusted.tampering
