"""Meta-training ASG's learning-rate policy with REINFORCE on short, truncated training episodes.

The official release has the policy network and a REINFORCE class but no loop that computes rewards or updates the
policy; this is ours. One episode = a fresh copy of the ImageNet network fine-tuned on the synthetic training data
with ASG's objective for the first ``steps`` steps of a ``run_steps``-step run (truncated, as the release's
``--early-stop`` option: the warm-up/decay schedule and the progress signal are the full run's), the policy choosing
every layer group's rate once per window
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
from generalization.backbone import frozen_modes
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


def run_episode(
    method: ASG, controller: LRController, batches: Iterator[Batch], *, steps: int, run_steps: int
) -> Episode:
    """A truncated episode: the first ``steps`` steps of a ``run_steps``-step run, the controller choosing the rates.

    The network must already be reset; the schedule and the progress signal are the full run's.
    """
    method.controller = controller
    optimizer = method.build_optimizer()
    frozen_modes(method.network, [method.teacher], freeze_bn=method.hparams.freeze_bn)
    episode = Episode()
    for step in range(steps):
        if controller.due(step):
            if episode.decisions:  # the window that ends here is the outcome of the last decision
                episode.rewards.append(controller.window_reward())
            episode.decisions.append(controller.decide(step, method.schedule_factor(step, run_steps)))
        method.set_lrs(optimizer, step, run_steps)
        batch = next(batches)
        out = method.losses(batch.images, batch.labels)
        check_finite(out["loss"], name="train-policy episode loss", step=step)
        method.observe(out, step, run_steps)  # before the update, as in a fit's training_step
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
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
    run_steps: int,
    min_window: int = 10,
    gamma: float = 0.99,
    meta_lr: float = 7e-4,
    hidden: int = 20,
    on_episode: Callable[[int, Episode, float], None] | None = None,
) -> LRPolicy:
    """Meta-train a policy for ``method``'s network: ``episodes`` REINFORCE updates, each after one episode.

    An episode is the first ``steps`` steps of a ``run_steps``-step run (truncated: the schedule and the progress the
    policy sees are the full run's); every episode starts from the network's weights as given (the ImageNet ones);
    ``on_episode(index, episode, policy_loss)`` reports each.
    """
    initial = copy.deepcopy(method.network.state_dict())
    policy = LRPolicy(groups=method.group_names, hidden=hidden)
    meta_optimizer = torch.optim.SGD(policy.parameters(), lr=meta_lr, momentum=0.9)
    baseline = ReturnBaseline()
    for index in range(episodes):
        method.network.load_state_dict(initial)
        controller = LRController(policy, min_window=min_window, learn=True)
        episode = run_episode(method, controller, batches, steps=steps, run_steps=run_steps)
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
