"""Meta-training ASG's learning-rate policy with REINFORCE on short, truncated training episodes.

The official release has the policy network and a REINFORCE class but no loop that computes rewards or updates the
policy; this is ours. One episode = a fresh copy of the ImageNet network fine-tuned for ``steps`` steps on the
synthetic training data with ASG's objective, the policy choosing every layer group's rate once per window
(:class:`~generalization.asg.controller.LRController`). The reward of a decision is minus the mean objective of the
window it governed; returns are discounted by γ; after each episode

    L_policy = −(1/K) Σ_k Â_k · log π(a_k | s_k),    Â_k = (G_k − b_k) / (std_k(G_k − b_k) + ε)

with b_k an exponential moving average, over episodes, of the return at decision k (decision k comes at the same
step in every episode, so b_k removes the part of the reward that only says how far training is) and the policy
updated by SGD with momentum 0.9 (official: lr 7e-4). The official REINFORCE has no baseline; without one every
decision is pushed by the sign of a loss.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from generalization.asg.controller import Decision, LRController
from generalization.asg.module import ASG
from generalization.asg.policy import LRPolicy
from syn2real.batch import Batch
from syn2real.losses import check_finite


@dataclass
class Episode:
    """What one episode did: its decisions with their rewards, and its objective per step."""

    decisions: list[Decision] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    objective: list[float] = field(default_factory=list)


def discounted_returns(rewards: list[float], gamma: float) -> list[float]:
    """``G_k = r_k + γ·G_{k+1}``.

    Examples:
        >>> discounted_returns([1.0, 0.0, 2.0], 0.5)
        [1.5, 1.0, 2.0]
    """
    out, running = [], 0.0
    for r in reversed(rewards):
        running = r + gamma * running
        out.append(running)
    return out[::-1]


class ReturnBaseline:
    """Per-decision-index exponential moving average of returns (initialized by the first episode)."""

    def __init__(self, momentum: float = 0.9) -> None:
        self.momentum, self.values = momentum, torch.zeros(0)

    def advantages(self, returns: Tensor) -> Tensor:
        """``returns − b`` (then ``b`` moves toward ``returns``), normalized by their std when there are several."""
        if len(self.values) < len(returns):  # new decision indices start at their first return
            self.values = torch.cat([self.values, returns[len(self.values) :]])
        baseline = self.values[: len(returns)]
        adv = returns - baseline
        self.values[: len(returns)] = self.momentum * baseline + (1 - self.momentum) * returns
        return adv / (adv.std() + 1e-8) if len(adv) > 1 else adv


def reinforce_loss(log_probs: list[Tensor], advantages: Tensor) -> Tensor:
    """``−mean_k(Â_k · log π(a_k|s_k))``."""
    return -(torch.stack(log_probs) * advantages.to(log_probs[0].device)).mean()


def run_episode(method: ASG, controller: LRController, batches: Iterator[Batch], *, steps: int) -> Episode:
    """Fine-tune ``method``'s network (already reset) for ``steps`` steps with the controller choosing the rates."""
    method.controller = controller
    optimizer = method.build_optimizer()
    method.train()
    episode = Episode()
    for step in range(steps):
        if controller.due(step):
            if episode.decisions:
                episode.rewards.append(controller.window_reward())
            episode.decisions.append(controller.decide(step))
        for group, lr in zip(optimizer.param_groups, method.group_lrs(step, steps), strict=True):
            group["lr"] = lr
        batch = next(batches)
        out = method.losses(batch.images, batch.labels)
        check_finite(out["loss"], name="train-policy episode loss", step=step)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        method.observe(out, step, steps)
        episode.objective.append(float(out["loss"].detach()))
    if episode.decisions:
        episode.rewards.append(controller.window_reward())
    return episode


def train_policy(
    method: ASG,
    batches: Iterator[Batch],
    *,
    episodes: int,
    steps: int,
    min_window: int = 10,
    gamma: float = 0.99,
    meta_lr: float = 7e-4,
    hidden: int = 20,
    on_episode: Callable[[int, Episode, float], None] | None = None,
) -> LRPolicy:
    """Meta-train a policy for ``method``'s network: ``episodes`` REINFORCE updates, each after one episode.

    Every episode starts from the network's weights as given (the ImageNet ones); ``on_episode(index, episode,
    policy_loss)`` reports each.
    """
    initial = copy.deepcopy(method.network.state_dict())
    policy = LRPolicy(groups=method.group_names, hidden=hidden)
    meta_optimizer = torch.optim.SGD(policy.parameters(), lr=meta_lr, momentum=0.9)
    baseline = ReturnBaseline()
    for index in range(episodes):
        method.network.load_state_dict(initial)
        controller = LRController(policy, min_window=min_window, learn=True)
        episode = run_episode(method, controller, batches, steps=steps)
        if not episode.decisions:
            raise ValueError(f"an episode of {steps} steps holds no decision: use more steps than {min_window}")
        advantages = baseline.advantages(torch.tensor(discounted_returns(episode.rewards, gamma)))
        loss = reinforce_loss([d.log_prob for d in episode.decisions], advantages)
        meta_optimizer.zero_grad()
        loss.backward()
        meta_optimizer.step()
        if on_episode is not None:
            on_episode(index, episode, float(loss.detach()))
    method.network.load_state_dict(initial)
    method.controller = None
    return policy
