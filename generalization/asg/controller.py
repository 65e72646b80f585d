"""Running ASG's policy inside training: windows of steps, the signals they gather, one decision per window.

The official deployment loop (NVlabs/ASG ``l2o_train.py``) lets the policy act once per window of SGD steps; the
window grows with the steps done, so there are a handful of decisions per epoch. Its code computes the length as
``max(min_iter, step_in_epoch + previous_steps // 20)`` while its comment says the intent is ``(...) // 20``; we use
the intent over the whole run: ``window = max(min_window, steps_done // 20)``.

Reward (the paper's meta-training loop is not in the release; our choice): after a window, the reward of the action
taken at its start is minus the window's mean training objective, ``−mean(task loss + λ · proxy loss)``: the
policy is paid for rates under which the proxy-guided objective falls fastest, which needs no real image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.distributions import Categorical

from generalization.asg.policy import SIGNALS, LRPolicy


@dataclass
class Decision:
    """One action of the policy: the multipliers it sampled, and what REINFORCE and a reader need about it.

    ``log_prob`` and ``entropy`` are for REINFORCE; ``expected`` is each group's expected multiplier
    ``Σ_a π(a|s)·a``: what the policy prefers, without the sampling noise.
    """

    step: int
    multipliers: list[float]
    log_prob: Tensor
    entropy: Tensor
    expected: list[float]


class LRController(nn.Module):
    """A policy deployed over a run: ``observe`` every step, ``decide`` when ``due``; state is in buffers.

    Args:
        policy: the policy network (frozen when deployed; trained by ``syn2real train-policy``).
        min_window: shortest window in steps (official: 10 classification, 20 segmentation).
        greedy: take the most likely multiplier instead of sampling one (the official deployment samples).
        learn: keep the graph of the policy's decisions (meta-training); otherwise decisions carry no gradient.
    """

    def __init__(self, policy: LRPolicy, *, min_window: int = 10, greedy: bool = False, learn: bool = False) -> None:
        super().__init__()
        self.policy, self.min_window, self.greedy, self.learn = policy, min_window, greedy, learn
        if not learn:
            policy.requires_grad_(False)
        groups = len(policy.groups)
        self.register_buffer("multipliers", torch.ones(groups))
        self.register_buffer("state", policy.initial_state())
        self.register_buffer("sums", torch.zeros(len(SIGNALS) + 1))  # the signals, then the objective
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer("next_decision", torch.tensor(min_window))
        self._live_state: Tensor | None = None  # meta-training: the state with its graph

    def window(self, step: int) -> int:
        """Steps until the next decision when deciding at ``step``."""
        return max(self.min_window, step // 20)

    def due(self, step: int) -> bool:
        return step >= int(self.next_decision) and int(self.count) > 0

    def observe(self, *, task_loss: float, proxy_loss: float, objective: float, progress: float, head: Tensor) -> None:
        """Add one step's signals (the task head's last weight matrix ``head``) to the window."""
        w = head.detach().float()
        values = [task_loss, proxy_loss, progress, float(w.mean()), float(w.std()), objective]
        self.sums += torch.tensor(values, device=self.sums.device)
        self.count += 1

    def window_reward(self) -> float:
        """Minus the mean objective of the window so far: the reward of the last decision."""
        return -float(self.sums[-1] / self.count.clamp(min=1))

    def decide(self, step: int, schedule_factor: float = 1.0) -> Decision:
        """Pick the groups' multipliers from the window's mean signals; the window restarts.

        The policy also sees each group's current rate over its base: ``schedule_factor`` (the warm-up/decay factor
        at ``step``) times the group's multiplier.
        """
        signals = (self.sums[:-1] / self.count.clamp(min=1)).float()
        state = self._live_state if self.learn and self._live_state is not None else self.state.clone()
        with torch.set_grad_enabled(self.learn):
            logits, new_state = self.policy(signals, self.multipliers * schedule_factor, state)
            dist = Categorical(logits=logits)
            index = logits.argmax(-1) if self.greedy else dist.sample()
            log_prob, entropy = dist.log_prob(index).sum(), dist.entropy().sum()
            expected = (dist.probs.detach() * self.policy.actions).sum(-1)
        self.multipliers.copy_(self.policy.actions[index])
        self.state.copy_(new_state.detach())
        self._live_state = new_state if self.learn else None
        self.sums.zero_()
        self.count.zero_()
        self.next_decision.fill_(step + self.window(step))
        return Decision(step, self.multipliers.tolist(), log_prob, entropy, expected.tolist())
