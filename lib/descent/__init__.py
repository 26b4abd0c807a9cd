"""descent: the shared library of the Descent course.

Reference update rules (:mod:`descent.rules`), ``torch.optim`` optimizers built on them
(:mod:`descent.optim`), learning-rate schedules, test landscapes, data, models, one
training loop, the LR range test, plots and the grading checks.
"""

__version__ = "0.1.0"
