"""``torch.optim.Optimizer`` subclasses built on the pure rules of :mod:`descent.rules`.

**One source of truth.** Each rule is written once, out of place, as the book's equation:
``adam_update(param, grad, state, *, lr, beta1, beta2, eps) -> (new_param, new_state)`` with
``AdamState(step, m, v)``. The chapters print it, the grader compares against it, and every
optimizer here runs it. None of them runs a second, hand-optimised copy of the math.

**How a step runs the rule (the default path).** Called tensor by tensor, an out-of-place
rule costs one kernel, one fresh tensor and a few microseconds of Python per operation and
tensor: about twice torch.optim's step, whose kernels work in place. So the wrapper does not
call the rule per tensor; it *traces* it once per param group
(:mod:`descent.optim._program`):

1. the rule is called with stand-ins for θ, g and the state, which record its elementwise
   operations, and for t and the float hyperparameters, whose arithmetic (the bias
   corrections 1 - β₁ᵗ, η/(1 - β₁ᵗ)) becomes a small function evaluated once per step: the
   bias corrections are hoisted out of every loop over elements, and a learning-rate
   schedule needs no new trace (a branch such as ``if weight_decay != 0`` is guarded);
2. the recorded operations are planned in place: each result is written into θ or a state
   tensor as soon as its old value is dead (``m = β₁m + (1-β₁)g`` runs as ``m *= β₁``,
   ``m += (1-β₁)g``), else into scratch buffers kept from step to step; nothing is
   allocated in a step;
3. the plan runs tensor by tensor on the CPU (each tensor stays in cache across its
   operations) and through ``torch._foreach_*`` for small tensors and on CUDA (one call per
   operation for a whole group).

Every operation is the one the rule wrote, on the same operands, in the same order and
precision, so a step gives the numbers of calling the rule, bit for bit (tested for every
optimizer, every path, float32 and float64). A few exact identities shorten the plan
(``x·1 = x``; ``a ± s·b`` and ``a ± (s·b)/c`` as one ``addcdiv`` where a check on the
device shows that kernel gives the same bits). This was chosen over the alternatives:
compiling the default path (seconds of compilation per rule and shape, a C++ compiler,
an OpenMP pool that slows eager torch afterwards) and multi-tensor calls of the raw rule
(out-of-place allocations for every tensor, no cache locality on a CPU).

**The other two paths.** :meth:`RuleOptimizer.step_group` is the readable loop that calls
the rule per tensor: the reference the traced path is tested against, and what runs for
rules the tracer cannot follow (LAMB's norms, Muon's matrix products, NAdam's scalar
state: ``traced = False``). Schedule-Free SGD and AdamW are traced: their per-step numbers
(η_t, the averaging weight c_{t+1}) are computed once per group and passed to the rule as
hyperparameters.

**Weight averaging** (:mod:`descent.optim.averaging`) is not an optimizer but a companion:
``AveragedModel``, ``SWALR``, the ``get_*_avg_fn`` factories and ``update_bn``, with the
names, keywords and numbers of ``torch.optim.swa_utils``, on the pure rules ``swa_update``
and ``ema_update``. ``fused=True`` compiles the same trace with ``torch.compile``
into one loop per tensor, the numbers passed in as a tensor (:mod:`descent.optim._fused`);
its results equal the default path's to rounding. ``foreach=True``/``False`` force the
multi-tensor or the one-by-one form of the traced program.

:meth:`RuleOptimizer.programs` shows what a step ran. Measured speed against torch.optim:
benchmarks/RESULTS.md ("Optimizer step"), ``make bench`` and ``make gpu-check``.
"""

from descent.optim._base import RuleOptimizer
from descent.optim.adadelta import Adadelta
from descent.optim.adagrad import Adagrad
from descent.optim.adam import Adam, AdamW
from descent.optim.averaging import (
    SWALR,
    AveragedModel,
    get_ema_avg_fn,
    get_ema_multi_avg_fn,
    get_swa_avg_fn,
    get_swa_multi_avg_fn,
    update_bn,
)
from descent.optim.lamb import LAMB
from descent.optim.lion import Lion
from descent.optim.muon import Muon
from descent.optim.nadam import NAdam
from descent.optim.rmsprop import RMSprop
from descent.optim.sam import SAM
from descent.optim.schedule_free import AdamWScheduleFree, SGDScheduleFree
from descent.optim.sgd import SGD

__all__ = ["RuleOptimizer", "SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "NAdam",
           "Muon", "Lion", "LAMB", "SAM", "SGDScheduleFree", "AdamWScheduleFree",
           "AveragedModel", "SWALR", "get_swa_avg_fn", "get_swa_multi_avg_fn",
           "get_ema_avg_fn", "get_ema_multi_avg_fn", "update_bn"]
