"""Every pure update rule of the course, in one namespace.

A rule is ``<name>_update(param, grad, state, *, hyperparameters…) -> (new_param,
new_state)``; ``<name>_init(param, …)`` gives the state before the first step. Rules work on
NumPy arrays and torch tensors, never mutate their inputs, and live beside their torch
wrapper in ``descent/optim/<name>.py``.
"""

from descent.optim.sgd import SGDState, sgd_init, sgd_update

__all__ = ["SGDState", "sgd_init", "sgd_update"]
