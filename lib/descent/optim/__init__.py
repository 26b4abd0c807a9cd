"""``torch.optim.Optimizer`` subclasses built on the pure rules of :mod:`descent.rules`."""

from descent.optim._base import RuleOptimizer
from descent.optim.adadelta import Adadelta
from descent.optim.adagrad import Adagrad
from descent.optim.adam import Adam, AdamW
from descent.optim.lamb import LAMB
from descent.optim.lion import Lion
from descent.optim.muon import Muon
from descent.optim.nadam import NAdam
from descent.optim.rmsprop import RMSprop
from descent.optim.sam import SAM
from descent.optim.sgd import SGD

__all__ = ["RuleOptimizer", "SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "NAdam",
           "Muon", "Lion", "LAMB", "SAM"]
