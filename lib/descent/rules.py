"""Every pure update rule of the course, in one namespace.

A rule is ``<name>_update(param, grad, state, *, hyperparameters…) -> (new_param,
new_state)``; ``<name>_init(param, …)`` gives the state before the first step. Rules work on
NumPy arrays and torch tensors, never mutate their inputs, and live beside their torch
wrapper in ``descent/optim/<name>.py``.

Two families have a second piece. Schedule-Free SGD and AdamW take the step's η_t and
averaging weight c_{t+1} from ``schedule_free_weights`` (one small state per param group).
The averaging rules ``swa_update`` and ``ema_update`` take an iterate and an
``AverageState(n, theta_bar)`` and return the new average (they do not move θ); ``swalr_lr``
is the SWA learning rate.
"""

from descent.optim.adadelta import AdadeltaState, adadelta_init, adadelta_update
from descent.optim.adagrad import AdagradState, adagrad_init, adagrad_update
from descent.optim.adam import AdamState, adam_init, adam_update, adamw_init, adamw_update
from descent.optim.averaging import (
    AverageState,
    average_init,
    ema_update,
    swa_anneal_alpha,
    swa_update,
    swalr_lr,
)
from descent.optim.lamb import LAMBState, lamb_init, lamb_update
from descent.optim.lion import LionState, lion_init, lion_update
from descent.optim.muon import MuonState, muon_init, muon_update
from descent.optim.nadam import NAdamState, nadam_init, nadam_update
from descent.optim.rmsprop import RMSpropState, rmsprop_init, rmsprop_update
from descent.optim.sam import sam_perturbation
from descent.optim.schedule_free import (
    ScheduleFreeAdamWState,
    ScheduleFreeSGDState,
    ScheduleFreeWeights,
    schedule_free_adamw_init,
    schedule_free_adamw_update,
    schedule_free_interpolate,
    schedule_free_sgd_init,
    schedule_free_sgd_update,
    schedule_free_weights,
)
from descent.optim.sgd import SGDState, sgd_init, sgd_update

__all__ = ["SGDState", "sgd_init", "sgd_update",
           "AdagradState", "adagrad_init", "adagrad_update",
           "RMSpropState", "rmsprop_init", "rmsprop_update",
           "AdadeltaState", "adadelta_init", "adadelta_update",
           "AdamState", "adam_init", "adam_update", "adamw_init", "adamw_update",
           "NAdamState", "nadam_init", "nadam_update",
           "MuonState", "muon_init", "muon_update",
           "LionState", "lion_init", "lion_update",
           "LAMBState", "lamb_init", "lamb_update",
           "sam_perturbation",
           "ScheduleFreeWeights", "schedule_free_weights", "schedule_free_interpolate",
           "ScheduleFreeSGDState", "schedule_free_sgd_init", "schedule_free_sgd_update",
           "ScheduleFreeAdamWState", "schedule_free_adamw_init", "schedule_free_adamw_update",
           "AverageState", "average_init", "swa_update", "ema_update",
           "swa_anneal_alpha", "swalr_lr"]
