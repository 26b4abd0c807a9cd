"""One module per assignment: the inputs the grader chooses and the checks its cells call.

``a01_problem`` serves ``solutions/01-problem``, ``a02_gradient_descent`` serves
``solutions/02-gradient-descent``, and so on. Each module holds, for each part:

- a function building the grader's inputs from seeds and shapes (never pasted arrays);
- the trusted reference for that part (torch autograd, ``numpy.linalg``, a library rule);
- ``check_<part>(student_fn, *, seeds=…, shapes=…)``, one call per test cell, built on the
  generic ``run_*``/``judge_*`` halves of :mod:`descent.grading`.

A test cell then reads ``checks.check_loss(mse_loss)`` (visible) and, between the hidden-test
markers, the same call with seeds and shapes the student never saw.
"""
