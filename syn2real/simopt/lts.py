"""Learning to Simulate: a policy over ψ trained by REINFORCE with the task network's validation accuracy as reward.

Ruiz, Schulter, Chandraker. "Learning to Simulate." ICLR 2019. The policy π_ω(ψ) is a Gaussian over the simulator
parameters (here: over the search space's unit cube, mean ω, fixed σ); each iteration samples K values of ψ, renders
a training set from each, trains the main task model on it and rewards ψ with the model's accuracy on real
validation data. ω follows the REINFORCE gradient E[(R − b) ∇_ω log π_ω(ψ)] with a moving-average baseline b
(paper sec. 3.2); the step is taken with Adam. The stage's ψ is the policy mean, whose reward is measured too (it
is the stage score; it does not enter the gradient, which only uses samples of the policy).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from syn2real.simopt.base import StepOutcome, Strategy, UnitAdam
from syn2real.simopt.space import SearchSpace


class LearningToSimulate(Strategy):
    """REINFORCE on the mean of a Gaussian policy over ψ.

    Args:
        space: the search space.
        reward: ``ψ -> reward`` (:class:`~syn2real.simopt.objectives.TrainAndValidate`: real val accuracy).
        samples_per_stage: ψ drawn from the policy per stage (K).
        sigma: the policy's standard deviation in unit-cube coordinates.
        lr: Adam step of the policy mean.
        baseline_momentum: weight of the old value in the moving-average reward baseline.
        seed: the policy's sampling seed.
    """

    name: ClassVar[str] = "lts"
    score_name: ClassVar[str] = "val_acc"

    def __init__(
        self,
        *,
        space: SearchSpace,
        reward: Callable[[Mapping[str, float]], float],
        samples_per_stage: int = 4,
        sigma: float = 0.15,
        lr: float = 0.05,
        baseline_momentum: float = 0.5,
        seed: int = 0,
    ) -> None:
        super().__init__(space=space)
        if samples_per_stage < 2:
            raise ValueError("REINFORCE needs at least 2 samples per stage")
        self.reward, self.k, self.sigma, self.momentum, self.seed = (
            reward,
            samples_per_stage,
            sigma,
            baseline_momentum,
            seed,
        )
        self.adam = UnitAdam(lr=lr)
        self.baseline: float | None = None

    def step(self, u: Tensor, stage: int) -> StepOutcome:
        mean_reward = self.reward(self.space.to_psi(u))
        generator = torch.Generator().manual_seed(self.seed * 100_003 + stage)
        noise = torch.randn(self.k, len(u), generator=generator, dtype=torch.float64) * self.sigma
        rewards = torch.tensor([self.reward(self.space.to_psi((u + e).clamp(0, 1))) for e in noise])
        baseline = float(rewards.mean()) if self.baseline is None else self.baseline
        advantage = rewards.double() - baseline
        # ∇_ω log N(ψ; ω, σ²) = (ψ − ω) / σ²; ascend the reward = descend its negative
        grad = -(advantage.view(-1, 1) * noise / self.sigma**2).mean(0)
        self.baseline = self.momentum * baseline + (1 - self.momentum) * float(rewards.mean())
        return StepOutcome(
            mean_reward,
            self.adam.step(u, grad),
            {
                "sampled_reward_mean": float(rewards.mean()),
                "sampled_reward_max": float(rewards.max()),
                "baseline": baseline,
            },
        )

    def state_dict(self) -> dict[str, Any]:
        return {"adam": self.adam.state, "baseline": self.baseline}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.adam.state, self.baseline = state["adam"], state["baseline"]
