"""``torch.optim.Optimizer`` subclasses built on the pure rules of :mod:`descent.rules`."""

from descent.optim._base import RuleOptimizer
from descent.optim.sgd import SGD

__all__ = ["RuleOptimizer", "SGD"]
