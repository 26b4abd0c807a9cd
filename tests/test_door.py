"""The door between the grader and the student's code, and the confined process behind it.

``descent.grading.plain`` (what comes back), ``descent.grading.door`` (what goes across and
how), ``descent.grading.confine`` (where the student's code runs). The corpus tests
(``test_grading.py``) grade every known mistake and correct rewrite through a door in this
process and require the same verdict as a plain run; ``test_grading_class.py`` grades the
hostile corpus through the confined process. Here: the pieces, one property at a time.
"""

from __future__ import annotations

import functools
import json
import math
import os
import pickle
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from nbgrader_helpers import ALL_ASSIGNMENTS, grade_in_process, hidden_lines, source

from descent.grading import confine, plain, sandbox, trusted
from descent.grading.assignments import a08_practice as a08
from descent.grading.door import DirectCall, LocalDoor, StudentName, opened

CONFINED = confine.probe().namespaces
needs_confinement = pytest.mark.skipif(not CONFINED, reason="namespaces are not permitted here")


# -- plain data: the number a value holds, nothing else ---------------------------------------

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
    back = plain.decode(json.loads(json.dumps(plain.encode(value), allow_nan=False)))
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
    back = plain.decode(plain.encode(State(3, np.ones(2), torch.ones(2, dtype=torch.bfloat16))))
    assert back._fields == ("t", "m", "v") and back.t == 3
    assert back.v.dtype == torch.bfloat16 and np.array_equal(back.m, np.ones(2))


def test_values_that_lie_about_themselves_arrive_as_the_number_they_hold():
    liar = _AlwaysEqual(0.25)
    assert liar == 123.0                                   # what a comparison over there sees
    assert plain.decode(plain.encode(liar)) == 0.25        # what the grader sees
    sneaky = np.arange(3.0).view(_Sneaky)
    back = plain.decode(plain.encode(sneaky))
    assert type(back) is np.ndarray and not np.array_equal(back, np.zeros(3))


def test_objects_become_opaque_strings_are_bounded_and_depth_is_limited():
    class Optimizerish:
        pass

    assert isinstance(plain.decode(plain.encode(Optimizerish())), plain.Opaque)
    deep: list = []
    for _ in range(50):
        deep = [deep]
    assert "nested too deeply" in json.dumps(plain.encode(deep))
    assert isinstance(plain.decode(plain.encode(np.array(["a"]))), plain.Opaque)
    long = plain.decode(plain.encode("x" * 10**6 + "\x1b[2J"))
    assert len(long) < 2100 and "\x1b" not in long and long.endswith("more]")


@pytest.mark.parametrize("bad", [
    {"$pickle": "gASV"}, {"$ndarray": {"dtype": "|O", "shape": [1], "data": ""}},
    {"$ndarray": {"dtype": "<f8", "shape": [3], "data": "AAAAAAAA8D8="}},
    {"$tensor": {"dtype": "<f8", "shape": [1], "data": "AAAAAAAA8D8=",
                 "torch_dtype": "os.system"}},
    {"$namedtuple": {"name": "S", "fields": ["__class__"], "values": [1]}},
    {"a": 1, "b": 2}])
def test_decoding_rejects_anything_but_the_agreed_tags(bad):
    with pytest.raises(plain.ProtocolError):
        plain.decode(bad)


# -- the door: code crosses by name only, data by value, results as plain data --------------------

def test_a_lambda_or_a_test_cell_s_function_never_crosses():
    with LocalDoor() as door, opened(door):
        door.run_cell("a", "def f(g):\n    return g(2)\n")
        with pytest.raises(pickle.PicklingError, match="only library functions travel"):
            sandbox.call(StudentName("f"), lambda x: x + 1)

        def local(x):
            return x
        with pytest.raises(pickle.PicklingError, match="cannot cross"):
            sandbox.call(StudentName("f"), local)
        assert sandbox.call(StudentName("f"), functools.partial(math.pow, 3)).value == 9.0


def test_returned_values_go_back_as_themselves_and_missing_names_are_name_errors():
    with LocalDoor() as door, opened(door):
        door.run_cell("a", "class Box:\n    def __init__(self, v):\n        self.v = v\n"
                           "def make(v):\n    return Box(v), [Box(v + 1)]\n"
                           "def open_box(box):\n    return box.v\n")
        out = sandbox.call(StudentName("make"), 4)
        box, (inner,) = out.value
        assert isinstance(box, plain.Opaque)              # the grader sees no Box, only a name
        assert sandbox.call(StudentName("open_box"), box).value == 4
        assert sandbox.call(StudentName("open_box"), inner).value == 5
        with pytest.raises(NameError, match="'absent' is not defined"):
            sandbox.call(StudentName("absent"))
        with pytest.raises(DirectCall):
            StudentName("make")(1)


def test_gradients_and_shared_objects_survive_the_crossing():
    params = [torch.nn.Parameter(torch.ones(3))]
    params[0].grad = torch.full((3,), 2.0)

    with LocalDoor() as door, opened(door):
        door.run_cell("a", "def scale(ps, c):\n    for p in ps:\n        p.grad.mul_(c)\n")
        out = sandbox.call(StudentName("scale"), params, 0.5,
                           observe=functools.partial(a08._params_and_grads, params))
    assert torch.equal(out.observed["grads"][0], torch.ones(3))   # p.grad crossed, came back
    assert torch.equal(params[0].grad, torch.full((3,), 2.0))   # the grader's copy is its own


def test_no_request_carries_a_test_cell_a_hidden_test_or_code_by_value():
    """Every request of every solution's grading: cells sent are the notebook's non-test
    cells; no payload holds a test cell's or a hidden test's text, and every global it
    names is a library module's."""
    requests = []

    class Spying(LocalDoor):
        def _send(self, request):
            requests.append(request)
            return super()._send(request)

    for assignment in ALL_ASSIGNMENTS:
        requests.clear()
        nb = source(assignment)
        with Spying() as door:
            verdict = trusted.grade_notebook(nb, nb, door)
        assert all(p.score == p.points for p in verdict.parts.values()), assignment
        tests = [c.source for c in trusted.autograded_cells(nb)]
        secret = [line for line in hidden_lines(assignment) if len(line) > 12]
        sent_cells = [r[2] for r in requests if r[0] == "cell"]
        assert not set(sent_cells) & set(tests), assignment
        for request in requests:
            blob = pickle.dumps(request)
            for line in secret:
                assert line.encode() not in blob, (assignment, line)
            if request[0] == "call":
                for name in _globals(request[1]):
                    assert name.split(".")[0] in {"descent", "torch", "numpy", "builtins",
                                                  "functools", "collections", "copyreg",
                                                  "_codecs", "math"}, (assignment, name)


def _globals(payload: bytes) -> set[str]:
    """Every module.name a payload asks the unpickler for."""
    import io

    names: set[str] = set()

    class Spy(pickle.Unpickler):
        def find_class(self, module, name):
            names.add(f"{module}.{name}")
            return super().find_class(module, name)

        def persistent_load(self, pid):
            return print                     # a student's name: any callable stands in

    Spy(io.BytesIO(payload)).load()
    return names


def test_a_grade_cell_that_hands_a_check_its_own_function_is_a_grader_bug():
    nb = source("02-gradient-descent")
    cell = next(c for c in trusted.autograded_cells(nb))
    cell.source = "checks.check_step(lambda theta, grad, lr: gd_step(theta, grad, lr))"
    with pytest.raises(trusted.GraderBug, match="check_step"), LocalDoor() as door:
        trusted.grade_notebook(nb, nb, door)


def test_demonstration_lines_are_skipped_and_checks_still_run():
    """02's visible tests print the student's own result first: that line runs nowhere on
    the grader's side, and the check after it decides."""
    nb = source("02-gradient-descent")
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                  == "answer-edge")
    answer.source = "def divergence_threshold(A, theta0):\n    return 1.0\n"
    verdict = grade_in_process(nb, "02-gradient-descent")
    assert verdict.parts["test-edge"].score == 0
    assert "divergence threshold" in verdict.parts["test-edge"].message
    assert verdict.parts["test-step"].score == verdict.parts["test-step"].points


def test_warnings_of_the_student_s_code_are_data_not_stderr(capfd):
    with LocalDoor() as door, opened(door):
        door.run_cell("a", "import warnings\ndef f():\n    warnings.warn('careful')\n"
                           "    return 1\n")
        out = sandbox.call(StudentName("f"))
    assert out.value == 1 and out.warnings == ["UserWarning: careful"]
    assert "careful" not in capfd.readouterr().err


# -- the confined process ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def confined():
    """One confined student's side for the probes below (each probe is a cell and a call)."""
    if not CONFINED:
        pytest.skip(f"this machine cannot confine student code: {confine.probe().note}")
    door = confine.ConfinedDoor(confine.Limits(cell_seconds=60), confine.probe())
    yield door
    door.close()


def _ask(door, code: str, *args):
    """Define ``probe`` on the student's side with ``code`` and return what it returns."""
    door.begin("a probe")
    error = door.run_cell("probe", code)
    assert error is None, error
    with opened(door):
        out = sandbox.call(StudentName("probe"), *args)
    assert out.error is None, out.error
    return out.value


@needs_confinement
def test_the_confined_root_holds_the_library_and_not_the_course(confined):
    from nbgrader_helpers import ROOT

    mine = Path.home() / f".descent-probe-{os.getpid()}"      # in the grader's home
    mine.write_text("the instructor's")
    try:
        seen = _ask(confined, "import os\ndef probe(paths):\n"
                              "    return {p: os.path.exists(p) for p in paths}\n",
                    [str(ROOT / "lib" / "descent" / "rules.py"), str(ROOT / "solutions"),
                     str(ROOT / "make" / "notebooks"), str(ROOT / ".git"), str(ROOT / "tests"),
                     str(mine), "/home", "/etc/shadow", "/var", "/srv"])
    finally:
        mine.unlink()
    assert seen.pop(str(ROOT / "lib" / "descent" / "rules.py")) is True
    assert not any(seen.values()), seen


WRITES = """
def probe(paths):
    out = {}
    for p in paths:
        try:
            open(p, "w").write("x")
            out[p] = "written"
        except OSError as err:
            out[p] = type(err).__name__
    return out
"""

FACTS = """
import os, socket
def probe():
    procs = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    caps = [line for line in open("/proc/self/status") if line.startswith("CapEff")]
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=2)
        net = "connected"
    except OSError as err:
        net = type(err).__name__
    spaces = {n: os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "mnt", "net", "ipc", "uts")}
    return procs, os.getuid(), caps[0].split()[1], net, sorted(os.environ), spaces
"""


@needs_confinement
def test_only_its_own_folders_are_writable_and_they_are_bounded(confined):
    from nbgrader_helpers import ROOT

    seen = _ask(confined, WRITES,
                ["/job/mine.txt", "/tmp/mine.txt", "/dev/shm/mine.txt", "/mine.txt",
                 "/usr/mine.txt", str(ROOT / "lib" / "mine.txt")])
    assert seen == {"/job/mine.txt": "written", "/tmp/mine.txt": "written",
                    "/dev/shm/mine.txt": "written", "/mine.txt": "OSError",
                    "/usr/mine.txt": "OSError", str(ROOT / "lib" / "mine.txt"): "OSError"}
    mounts = _ask(confined, "def probe():\n"
                            "    with open('/proc/self/mounts') as f:\n"
                            "        return f.read()\n")
    job = next(line for line in mounts.splitlines() if " /job " in line)
    assert "size=" in job and "nr_inodes=" in job
    fresh = {line.split()[1] for line in mounts.splitlines() if line.split()[0] == "tmpfs"}
    assert {"/job", "/tmp", "/run", "/dev/shm", "/dev/mqueue"} <= fresh, fresh


@needs_confinement
def test_it_sees_only_its_own_processes_runs_unprivileged_and_has_no_network(confined):
    facts = _ask(confined, FACTS)
    procs, uid, caps, network, env, spaces = facts
    assert all(link != os.readlink(f"/proc/self/ns/{name}") for name, link in spaces.items())
    assert len(procs) <= 4 and 1 in procs                      # PID 1 of its own namespace
    assert int(caps, 16) == 0                                   # no capability at all
    assert uid != 0 or confine.probe().user_namespace
    assert network != "connected"
    assert set(env) <= set(confine.student_environment()) | {"DESCENT_GRADING_FDS"}


@needs_confinement
def test_a_cell_that_runs_too_long_is_a_timeout_and_leaves_nothing():
    door = confine.ConfinedDoor(confine.Limits(cell_seconds=3), confine.probe())
    try:
        door.begin("cell sleepy")
        door.run_cell("a", "import os\npid = os.getpid()\n")
        with opened(door):
            door.begin("cell sleepy")
            with pytest.raises(BaseException) as closed:
                door.run_cell("b", "import time\nwhile True:\n    time.sleep(0.1)\n")
        assert closed.value.status == "timeout"
        assert closed.value.reason == "cell sleepy ran longer than 3 s (cell limit); stopped"
        assert door.process.poll() is not None
    finally:
        door.close()


@needs_confinement
def test_statuses_come_from_what_the_runner_observes():
    door = confine.ConfinedDoor(confine.Limits(cell_seconds=30), confine.probe())
    try:
        door.begin("cell liar")
        assert "MemoryError" in door.run_cell("a", "raise MemoryError(\"can't allocate memory\")")
        door.begin("cell exits")
        with pytest.raises(BaseException) as closed:
            door.run_cell("b", "import os\nos._exit(3)")
        assert closed.value.status == "failed"
        assert "exit status 3" in closed.value.reason
    finally:
        door.close()


@needs_confinement
def test_the_probes_student_side_is_the_first_notebooks_fresh_and_no_other(monkeypatch,
                                                                           request):
    """The probe's student side, which has run nothing, serves this process's first notebook
    under its limits, with the namespace of a new one; the next notebook gets a new one, other
    limits another, and one left over ends."""
    monkeypatch.setattr(confine, "_PROBED", {})
    monkeypatch.setattr(confine, "_AHEAD", [])
    request.addfinalizer(confine.close_ahead)       # even when an assertion fails
    limits, other = confine.Limits(), confine.Limits(cell_seconds=5)
    confinement = confine.probe(ahead=limits)
    [ahead] = confine._AHEAD
    assert ahead.ready and ahead.limits == limits and ahead.confinement == confinement
    first = confine.open_door(limits, confinement)
    second = confine.open_door(limits, confinement)
    try:
        assert first is ahead and second is not first and not confine._AHEAD
        assert first.deadline > time.monotonic() + limits.notebook_seconds - 5
        names = "def probe():\n    return sorted(k for k in globals() if not k.startswith('_'))"
        assert _ask(first, names) == _ask(second, names)
    finally:
        first.close()
        second.close()
    confine.start_ahead(limits, confinement)
    [unused] = confine._AHEAD
    third = confine.open_door(other, confinement)
    try:
        assert third is not unused and third.limits == other
        assert unused.process.poll() is not None            # ended, not left running
    finally:
        third.close()
    confine.start_ahead(other, confinement)
    [left] = confine._AHEAD
    confine.close_ahead()
    assert left.process.poll() is not None and not confine._AHEAD


@needs_confinement
def test_a_student_side_that_cannot_start_leaves_nothing_and_none_ahead(monkeypatch):
    """A failed start (here: the process cannot be made) removes the job's cgroup and folder;
    started ahead, it leaves none waiting, and the job makes its own (which says why)."""
    made = []
    real_mkdtemp, real_cgroup = confine.tempfile.mkdtemp, confine.Cgroup.__init__

    def mkdtemp(*args, **kwargs):
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    def cgroup(group, *args, **kwargs):
        real_cgroup(group, *args, **kwargs)
        made.extend(map(str, group.dirs))

    def popen(*args, **kwargs):
        raise OSError("no process can be made here")

    confinement = confine.probe()
    monkeypatch.setattr(confine, "_AHEAD", [])
    monkeypatch.setattr(confine.tempfile, "mkdtemp", mkdtemp)
    monkeypatch.setattr(confine.Cgroup, "__init__", cgroup)
    monkeypatch.setattr(confine.subprocess, "Popen", popen)
    confine.start_ahead(confine.Limits(), confinement)
    assert confine._AHEAD == []
    with pytest.raises(OSError, match="no process"):
        confine.open_door(confine.Limits(), confinement)
    assert len(made) >= 2 and [path for path in made if os.path.exists(path)] == []


def test_a_notebook_is_graded_the_same_through_either_door():
    """The confined process and the in-process door give the same verdict, part by part."""
    if not CONFINED:
        pytest.skip("namespaces are not permitted here")
    nb = source("04-momentum")
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                  == "answer-hb")
    answer.source = re.sub(r"momentum \* state\.b \+ grad", "momentum * state.b + 0.5 * grad",
                           answer.source)
    here = grade_in_process(nb, "04-momentum")
    start = time.monotonic()
    with confine.ConfinedDoor(confine.Limits(), confine.probe()) as door:
        there = trusted.grade_notebook(nb, source("04-momentum"), door)
    assert time.monotonic() - start < 60
    assert {k: (p.score, p.message) for k, p in here.parts.items()} == \
        {k: (p.score, p.message) for k, p in there.parts.items()}
    assert here.parts["test-hb"].score == 0
