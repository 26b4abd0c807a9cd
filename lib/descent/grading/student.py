"""The student's side of a confined process (``python -m descent.grading.student``).

Started by :mod:`descent.grading.jail` in the confined root. It answers the grader over two
pipes (their file descriptors in ``DESCENT_GRADING_FDS``; framed by :func:`read_frame` and
:func:`write_frame`): run one of the notebook's cells, or call a name of the notebook on the
inputs the grader sent
(:class:`~descent.grading.door.StudentSide`). Requests are pickles from the grader; answers
are JSON. The notebook's cells run in an IPython shell, as in Jupyter (magics, display), with
their output thrown away: nothing the student's code prints reaches the grader.

Nothing here is trusted. The student's code runs in this process and may replace any of it;
all it can gain is to send other plain data as its own results.
"""

from __future__ import annotations

import json
import os
import pickle
import struct

MAX_FRAME = 256 * 2**20


def read_frame(fd: int) -> bytes | None:
    """One framed message (4-byte big-endian length, then the bytes); None at end of file."""
    header = _read(fd, 4)
    if header is None:
        return None
    (size,) = struct.unpack(">I", header)
    if size > MAX_FRAME:
        raise ValueError(f"a frame of {size} bytes")
    return _read(fd, size) if size else b""


def _read(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_frame(fd: int, data: bytes) -> None:
    view = memoryview(struct.pack(">I", len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def main() -> None:
    requests, answers = (int(fd) for fd in os.environ.get("DESCENT_GRADING_FDS", "3,4")
                         .split(","))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):                          # the student's prints go nowhere
        os.dup2(devnull, fd)
    from IPython.core.interactiveshell import InteractiveShell

    from descent.grading.door import StudentSide
    from descent.grading.feedback import brief_exception

    shell = InteractiveShell.instance()
    shell.showtraceback = lambda *args, **kwargs: None      # the error is sent, not shown

    class ShellSide(StudentSide):
        def run_cell(self, label: str, source: str) -> str | None:
            result = shell.run_cell(source, store_history=False)
            error = result.error_before_exec or result.error_in_exec
            return None if error is None else brief_exception(error)

    side = ShellSide(shell.user_ns)
    write_frame(answers, json.dumps({"ready": os.getpid()}).encode())
    while True:
        data = read_frame(requests)
        if data is None:
            return
        try:
            answer = side.answer(pickle.loads(data))
            text = json.dumps(answer, allow_nan=False)
        except BaseException as err:  # noqa: BLE001 - whatever happened, answer in kind
            text = json.dumps({"error": brief_exception(err)})
        write_frame(answers, text.encode())


if __name__ == "__main__":
    main()
