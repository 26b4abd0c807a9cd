"""Check a learning-rate schedule ``lr = schedule(step)`` against the reference schedule.

Convention (chapter 6, and ``torch.optim.lr_scheduler``): step 0 is the first optimizer step,
so a linear warmup of W steps gives η·1/W at step 0 and reaches the base rate η at step W − 1
(or W, as the reference defines); a cosine over T steps reaches η_min at step T.

The known mistakes are read off the student's values rather than written as variants,
because every schedule has them: the whole curve shifted by one step (a warmup boundary off
by one), and a cosine that stops short of its minimum (dividing by T + 1, or stopping at
T − 1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from descent.grading import sandbox
from descent.grading.compare import TOL64, allclose, close, first_difference
from descent.grading.feedback import PASS, Verdict, fail, passed


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
                   fn_name: str = "your schedule") -> Verdict:
    """Trusted: compare with the reference's values; name an off-by-one or a short cosine."""
    if got.delegated:
        return fail(f"no points for this part: {fn_name} calls {', '.join(got.delegated)}, "
                    "the reference this part asks you to write yourself.", "delegation")
    if got.error:
        return fail(f"{fn_name} raised {got.error}.", "exception")
    expected = np.array([float(reference(t)) for t in range(steps + 1)])
    mine, exp = got.value, expected[:steps]
    if allclose(mine, exp, TOL64):
        return PASS
    differ = ~close(mine, exp, TOL64)
    later = expected[1:steps + 1]                           # η(t + 1)
    earlier = np.concatenate([[0.0], expected[:steps - 1]])  # η(t − 1), with η(−1) = 0
    shifted = close(mine, later, TOL64) | close(mine, earlier, TOL64)
    if shifted[differ].all():
        t = int(np.argmax(differ))
        return fail(f"the schedule is off by one step (first at step {t}: expected "
                    f"{exp[t]:.6g}, got {mine[t]:.6g}, the value of step "
                    f"{t + 1 if close(mine[t], later[t], TOL64) else t - 1}): a warmup boundary "
                    "off by one. Step 0 is the first optimizer step; check `<` vs `<=` at the "
                    "boundary and t vs t + 1 in the formula.", "off-by-one")
    low = int(np.argmin(exp))
    starts_right = bool(close(mine[:1], exp[:1], TOL64).all())
    if starts_right and np.min(mine) > exp[low] + 1e-9 * max(1.0, abs(exp[low])):
        return fail(f"the cosine does not reach its minimum: at step {low} the reference is "
                    f"η_min = {exp[low]:.6g}, your schedule gives {mine[low]:.6g} and never goes "
                    "that low. The cosine's argument must reach π exactly at the last step: "
                    "π·t/T, not π·t/(T + 1).", "cosine-short")
    verdict = first_difference(mine, exp, TOL64, what=f"learning rate of {fn_name}",
                               rows="step")
    return fail(verdict.message, verdict.mistake)


def check_schedule(schedule: Callable[[int], float], reference: Callable[[int], float], *,
                   steps: int, part: str, equation: str) -> None:
    """Compare ``schedule`` with ``reference`` over steps 0 … steps − 1; raise on a difference."""
    got = run_schedule(schedule, steps)
    judge_schedule(reference, steps, got,
                   fn_name=getattr(schedule, "__name__", "your schedule")).raise_for(part,
                                                                                     equation)
    passed(part, steps)
