"""What every simulator-optimization strategy is: one step per stage, from the stage's ψ to its score and the next ψ."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from syn2real.simopt.space import SearchSpace


@dataclass
class StepOutcome:
    """One stage: the score of the stage's ψ (higher is better), the ψ of the next stage, and extra figures."""

    score: float
    next_u: Tensor
    metrics: dict[str, float] = field(default_factory=dict)


class Strategy(ABC):
    """A simulator-optimization strategy moving ψ in the search space's unit cube.

    Attributes:
        name: the command-line name.
        score_name: what ``stage.score`` holds (recorded in each stage's ``dataset.json``).
    """

    name: ClassVar[str]
    score_name: ClassVar[str]

    def __init__(self, *, space: SearchSpace) -> None:
        self.space = space

    @abstractmethod
    def step(self, u: Tensor, stage: int) -> StepOutcome:
        """Score ψ = ``u`` (the ψ stage ``stage`` is rendered with) and propose the next ψ."""

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly (tensors allowed)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - stateless strategies keep this
        """Restore :meth:`state_dict`."""


class UnitAdam:
    """Adam on a point of the unit cube, clipped back into it after each step (ψ's gradient-based strategies).

    Runs are tens of steps, not thousands, so the moment averages are short (β = 0.5, 0.9 instead of 0.9, 0.999):
    with the usual 0.9 a consistent gradient carries ψ well past the optimum before the sign change is felt.

    Args:
        lr: step size in unit-cube coordinates (0.05 moves a knob by about 5% of its search range).
    """

    def __init__(self, *, lr: float, betas: tuple[float, float] = (0.5, 0.9)) -> None:
        self.lr, self.betas = lr, betas
        self.state: dict[str, Any] = {}

    def step(self, u: Tensor, grad: Tensor) -> Tensor:
        """Descend ``grad`` from ``u``; returns the new point."""
        point = u.detach().clone().double().requires_grad_(True)
        optimizer = torch.optim.Adam([point], lr=self.lr, betas=self.betas)
        if self.state:
            optimizer.load_state_dict(self.state)
        point.grad = grad.double().clone()
        optimizer.step()
        self.state = optimizer.state_dict()
        return point.detach().clamp_(0, 1)
