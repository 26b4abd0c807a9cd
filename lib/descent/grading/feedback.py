"""How a check reports: one exception type whose message a student can act on.

Every message starts with the part and the equation that failed, e.g.
``[Part 2.1, eq. (2.1)] …``, then says what differs in words, then (where it helps) the
step, the element, the expected and the received value. nbgrader marks a grade cell as failed
when it raises; :class:`CheckFailed` subclasses ``AssertionError`` so that it reads as a failed
test, not as a crash of the grader.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


class CheckFailed(AssertionError):
    """A student's answer differs from the reference. ``str(err)`` is the whole feedback."""

    def __init__(self, part: str, equation: str, message: str, *, mistake: str | None = None):
        self.part, self.equation, self.mistake = part, equation, mistake
        super().__init__(f"[{_where(part, equation)}] {message}")


class DelegationError(RuntimeError):
    """Raised inside the student's code when it calls a reference it should implement."""


@dataclass(frozen=True)
class Verdict:
    """The trusted side's answer for one part: ``ok`` or a message (and a mistake's name)."""

    ok: bool
    message: str = ""
    mistake: str | None = None

    def raise_for(self, part: str, equation: str) -> None:
        if not self.ok:
            raise CheckFailed(part, equation, self.message + _warnings_note(),
                              mistake=self.mistake)


PASS = Verdict(True)

# What the student's code warned during the calls of the current check (collected by
# ``sandbox.call``, cleared when the check passes or fails). A warning is shown, never written
# to stderr: nbgrader scores a grade cell that writes to stderr 0, even when it passed.
# Per thread: the class grader grades several notebooks at once in one process.
_WARNED = threading.local()


def _warned() -> list[str]:
    if not hasattr(_WARNED, "messages"):
        _WARNED.messages = []
    return _WARNED.messages


def warned(messages) -> None:
    """Keep the warnings of one call of the student's code, to show with the verdict."""
    kept = _warned()
    for message in messages or ():
        if message not in kept and len(kept) < 5:
            kept.append(str(message))


def forget_warnings() -> None:
    """Start a grade cell afresh: a warning left by an earlier cell is not this one's."""
    _warned().clear()


def _warnings_note() -> str:
    kept = _warned()
    note = (" Your code warned (a warning costs nothing; read it all the same): "
            + "; ".join(kept) + ".") if kept else ""
    kept.clear()
    return note


def fail(message: str, mistake: str | None = None) -> Verdict:
    return Verdict(False, message, mistake)


def passed(part: str, checks: int) -> None:
    """Print a one-line success note. Checks return None: nbgrader would read a number
    returned as the cell's value as *partial credit*."""
    print(f"Part {part}: all {checks} checks match the reference.{_warnings_note()}")


def _where(part: str, equation: str) -> str:
    return f"Part {part}, {equation}" if equation else f"Part {part}"


def fmt(x) -> str:
    """A number or a small array, short enough for a feedback line."""
    arr = np.asarray(x, dtype=float) if not isinstance(x, str) else x
    if isinstance(arr, str):
        return arr
    if arr.ndim == 0:
        return f"{float(arr):.6g}"
    flat = arr.ravel()
    body = ", ".join(f"{v:.6g}" for v in flat[:6])
    return f"[{body}{', …' if flat.size > 6 else ''}] (shape {arr.shape})"


def brief_exception(err: BaseException) -> str:
    """``ZeroDivisionError: division by zero`` plus the student's line that raised, if known."""
    text = f"{type(err).__name__}: {err}".strip()
    tb = err.__traceback__
    line = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if "ipykernel" in code.co_filename or code.co_filename.startswith("<"):
            line = f"{code.co_name}, line {tb.tb_lineno}"
        tb = tb.tb_next
    return f"{text} (in {line})" if line else text
