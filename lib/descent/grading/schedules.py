"""Check a learning-rate schedule ``lr = schedule(step)`` against the reference schedule.

Convention (chapter 6, and ``torch.optim.lr_scheduler``): step 0 is the first optimizer step,
so a linear warmup of W steps gives η·1/W at step 0 and reaches the base rate η at step W − 1
(or W, as the reference defines); a cosine over T steps reaches η_min at step T.

Tolerance comes first: values within float64 rounding pass, and so do values within float32's
(:data:`~descent.grading.compare.TOL32`: a schedule computed in float32, or in another order,
is correct). Only then is a mistake named, and only when it reproduces the student's values:
a variant the caller names (``mistakes``: e.g. a cosine divided by T − W + 1, written out
for the case at hand), or the curve shifted by one step (a warmup boundary off by one: each
differing value is the reference's value one step later or earlier).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from descent.grading import sandbox
from descent.grading.compare import TOL32, TOL64, allclose, close, first_difference
from descent.grading.feedback import PASS, Verdict, fail, passed

ScheduleMistake = tuple[str, str, Callable[[int], float]]   # (name, explanation, variant)


def values(schedule: Callable[[int], float], steps: int) -> list[float]:
    """``[schedule(0), …, schedule(steps − 1)]`` (runs on the student's side)."""
    return [float(schedule(t)) for t in range(steps)]


def run_schedule(schedule: Callable[[int], float], steps: int) -> sandbox.Outcome:
    """Untrusted: ``[schedule(0), …, schedule(steps − 1)]`` as a float64 array."""
    out = sandbox.call(values, schedule, steps)
    if out.ok:
        out.value = np.asarray(out.value, dtype=float)
    return out


def judge_schedule(reference: Callable[[int], float], steps: int, got: sandbox.Outcome, *,
                   fn_name: str = "your schedule",
                   mistakes: Sequence[ScheduleMistake] = ()) -> Verdict:
    """Trusted: compare with the reference's values (float32 rounding accepted), then name an
    one of ``mistakes``, or an off-by-one shift, when it reproduces the values."""
    if got.delegated:
        return fail(f"no points for this part: {fn_name} calls {', '.join(got.delegated)}, "
                    "the reference this part asks you to write yourself.", "delegation")
    if got.error:
        return fail(f"{fn_name} raised {got.error}.", "exception")
    expected = np.array([float(reference(t)) for t in range(steps + 1)])
    mine, exp = got.value, expected[:steps]
    if allclose(mine, exp, TOL32):
        return PASS                                 # float32 arithmetic is correct too
    differ = ~close(mine, exp, TOL32)
    first = int(np.argmax(differ))
    for name, explain, variant in mistakes:
        values_ = np.array([float(variant(t)) for t in range(steps)])
        if allclose(mine, values_, TOL32) and not allclose(values_, exp, TOL32):
            return fail(f"{explain} (first at step {first}: expected {exp[first]:.6g}, got "
                        f"{mine[first]:.6g}).", name)
    later = expected[1:steps + 1]                           # η(t + 1)
    earlier = np.concatenate([[0.0], expected[:steps - 1]])  # η(t − 1), with η(−1) = 0
    shifted = close(mine, later, TOL32) | close(mine, earlier, TOL32)
    if shifted[differ].all():
        t = first
        return fail(f"the schedule is off by one step (first at step {t}: expected "
                    f"{exp[t]:.6g}, got {mine[t]:.6g}, the value of step "
                    f"{t + 1 if close(mine[t], later[t], TOL32) else t - 1}): a warmup boundary "
                    "off by one. Step 0 is the first optimizer step; check `<` vs `<=` at the "
                    "boundary and t vs t + 1 in the formula.", "off-by-one")
    verdict = first_difference(mine, exp, TOL64, what=f"learning rate of {fn_name}",
                               rows="step")
    return fail(verdict.message, verdict.mistake)


def check_schedule(schedule: Callable[[int], float], reference: Callable[[int], float], *,
                   steps: int, part: str, equation: str,
                   mistakes: Sequence[ScheduleMistake] = ()) -> None:
    """Compare ``schedule`` with ``reference`` over steps 0 … steps − 1; raise on a difference."""
    got = run_schedule(schedule, steps)
    judge_schedule(reference, steps, got, fn_name=getattr(schedule, "__name__", "your schedule"),
                   mistakes=mistakes).raise_for(part, equation)
    passed(part, steps)
