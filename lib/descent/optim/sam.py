r"""Sharpness-Aware Minimization, a wrapper around any optimizer (chapter 5; Foret et al. 2021).

SAM minimises the worst loss in a ball of radius :math:`\rho` around :math:`\theta`. With
the gradient :math:`g = \nabla L(\theta)` over *all* parameters at once (eq. 2 with p = 2):

.. math::

    \hat\epsilon(\theta) &= \rho\,\frac{g}{\lVert g\rVert_2}          && \text{(ascent step)}\\
    g_{\mathrm{SAM}} &= \nabla L(\theta)\big|_{\theta + \hat\epsilon(\theta)}
        && \text{(gradient at the perturbed point)}\\
    \theta &\leftarrow \text{base optimizer step from } \theta \text{ with } g_{\mathrm{SAM}}

Adaptive SAM (ASAM, Kwon et al. 2021) rescales the ball by :math:`T_\theta = |\theta|`:
:math:`\hat\epsilon = \rho\,T_\theta^2 g / \lVert T_\theta g\rVert_2`.

Conventions that bite: the norm runs over every parameter of every group together (one
global :math:`\lVert g\rVert`, not one per tensor); :math:`\hat\epsilon` is dropped before
the base step (θ is restored, only the gradient is kept); each step costs two forward and
backward passes; ``1e-12`` is added to the norm so that a zero gradient gives
:math:`\hat\epsilon = 0`; ASAM here uses :math:`T_\theta = |\theta|` without the paper's
small offset η, as the authors' code does.

Symbols ↔ arguments: ρ ``rho``, :math:`\hat\epsilon` :func:`sam_perturbation`'s result,
stored between the two steps as ``state[p]["e_w"]``.

Use::

    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
    def closure():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss
    loss = opt.step(closure)         # both steps; returns the loss at θ

or by hand: ``loss_fn(...).backward(); opt.first_step(zero_grad=True);
loss_fn(...).backward(); opt.second_step(zero_grad=True)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

from descent import _arrays as xp
from descent._checks import check_nonnegative

_NORM_EPS = 1e-12  # keeps ε̂ = 0 (not NaN) when the gradient is zero


def sam_perturbation(params, grads, *, rho: float = 0.05, adaptive: bool = False) -> list:
    """The ascent step ε̂ for every tensor (Foret et al. 2021, eq. 2; ASAM if ``adaptive``).

    ``params`` and ``grads`` are matching sequences of arrays or tensors; one norm runs over
    all of them. Pure: returns a new list, mutates nothing.
    """
    scaled = [xp.abs(p) * g if adaptive else g for p, g in zip(params, grads, strict=True)]
    g_norm = sum(xp.norm(s) ** 2 for s in scaled) ** 0.5              # ‖T g‖₂ over all tensors
    scale = rho / (g_norm + _NORM_EPS)
    return [(p * p if adaptive else 1.0) * g * scale                  # ε̂ = ρ T² g / ‖T g‖
            for p, g in zip(params, grads, strict=True)]


class SAM(Optimizer):
    """SAM around ``base_optimizer``, a class such as ``torch.optim.SGD`` or ``descent.optim.Adam``.

    ``SAM(params, base_optimizer, rho=0.05, adaptive=False, **base_kwargs)`` builds
    ``base_optimizer(self.param_groups, **base_kwargs)``; the two share their param groups,
    so a scheduler may drive either. One ρ for all groups (the norm is global).
    ``state_dict()`` is the base optimizer's.
    """

    def __init__(self, params, base_optimizer: Callable[..., Optimizer], rho: float = 0.05,
                 adaptive: bool = False, **kwargs: Any):
        self.rho = check_nonnegative(rho, "rho", "ρ")
        self.adaptive = bool(adaptive)
        if not isinstance(base_optimizer, type) or not issubclass(base_optimizer, Optimizer):
            raise TypeError("base_optimizer must be an optimizer class such as "
                            f"torch.optim.SGD, got {base_optimizer!r}")
        super().__init__(params, dict(kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults = self.base_optimizer.defaults

    def _params_with_grad(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"] if p.grad is not None]

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Move to θ + ε̂ (the ascent step); the gradient at θ must be in ``.grad``."""
        params = self._params_with_grad()
        perturbations = sam_perturbation(params, [p.grad for p in params], rho=self.rho,
                                         adaptive=self.adaptive)
        for p, e_w in zip(params, perturbations, strict=True):
            p.add_(e_w)                                                # θ + ε̂
            self.state[p]["e_w"] = e_w
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Go back to θ and take the base optimizer's step with the gradient at θ + ε̂."""
        for group in self.param_groups:
            for p in group["params"]:
                e_w = self.state[p].pop("e_w", None)
                if e_w is not None:
                    p.sub_(e_w)                                        # back to θ
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        """Both steps; returns the loss at θ.

        ``closure`` must zero the gradients, compute the loss, call ``backward()`` and return
        the loss, as for ``torch.optim.LBFGS``. It runs twice: at θ, then at θ + ε̂.
        """
        if closure is None:
            raise ValueError("SAM.step needs a closure (it evaluates the loss twice); "
                             "or call first_step() and second_step() yourself")
        with torch.enable_grad():
            loss = closure()                                           # g at θ
        self.first_step(zero_grad=True)
        with torch.enable_grad():
            closure()                                                  # g at θ + ε̂
        self.second_step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups  # torch replaces the list
