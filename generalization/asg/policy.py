"""ASG's learning-to-optimize policy: per-signal LSTMs read the training, per-group heads pick learning rates.

Chen et al., "Automated Synthetic-to-Real Generalization", ICML 2020, section 3.3 and the official code's
``reinforce/models`` (NVlabs/ASG): five scalar signals of the last window (mean task loss, mean proxy-guidance
loss, mean training progress, mean and std of the task head's last weights) each feed their own one-layer LSTM
(hidden 20); the concatenated hidden states plus one group's current learning-rate ratio go through that group's
linear layer to 11 logits, a categorical distribution over the multipliers {0, 0.1, ..., 1.0} of the base rate
(orthogonal initialization, gain 0.01: every multiplier equally likely at first).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

SIGNALS = ("task_loss", "proxy_loss", "progress", "head_weight_mean", "head_weight_std")
ACTIONS = tuple(round(0.1 * i, 1) for i in range(11))
POLICY_FORMAT = "syn2real-asg-policy-1"


class LRPolicy(nn.Module):
    """The policy network: ``forward(signals, ratios, state) -> (logits[group, action], next state)``.

    Args:
        groups: the optimizee's layer-group names, input to output (one head each).
        hidden: LSTM hidden size per signal (official: 20).
        actions: the learning-rate multipliers an action picks from.
    """

    def __init__(self, *, groups: Sequence[str], hidden: int = 20, actions: Sequence[float] = ACTIONS) -> None:
        super().__init__()
        if not groups:
            raise ValueError("the policy needs at least one layer group")
        self.groups, self.hidden = list(groups), hidden
        self.register_buffer("actions", torch.tensor(list(actions), dtype=torch.float32))
        self.encoders = nn.ModuleList(nn.LSTMCell(1, hidden) for _ in SIGNALS)
        self.heads = nn.ModuleList(nn.Linear(len(SIGNALS) * hidden + 1, len(actions)) for _ in self.groups)
        for head in self.heads:
            nn.init.orthogonal_(head.weight, gain=0.01)
            nn.init.zeros_(head.bias)

    def initial_state(self) -> Tensor:
        """Zero LSTM state: ``(2, signals, hidden)`` = hidden and cell of every signal's LSTM."""
        return torch.zeros(2, len(SIGNALS), self.hidden, device=self.actions.device)

    def forward(self, signals: Tensor, ratios: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Logits ``(groups, actions)`` for the window's ``signals`` (one value each) and the groups' lr ratios."""
        hs, cs = [], []
        for i, lstm in enumerate(self.encoders):
            h, c = lstm(signals[i].view(1, 1), (state[0, i : i + 1], state[1, i : i + 1]))
            hs.append(h)
            cs.append(c)
        encoded = torch.cat(hs, dim=1).squeeze(0)
        logits = torch.stack([head(torch.cat([encoded, ratios[g : g + 1]])) for g, head in enumerate(self.heads)])
        return logits, torch.stack([torch.cat(hs), torch.cat(cs)])


def save_policy(policy: LRPolicy, path: str | Path, *, backbone: str, metadata: dict[str, Any] | None = None) -> None:
    """Write a policy checkpoint: weights, its groups and actions, the backbone it was trained on, and metadata."""
    torch.save(
        {
            "format": POLICY_FORMAT,
            "backbone": backbone,
            "groups": policy.groups,
            "hidden": policy.hidden,
            "actions": policy.actions.tolist(),
            "state_dict": policy.state_dict(),
            "metadata": metadata or {},
        },
        path,
    )


def load_policy(path: str | Path, *, groups: Sequence[str], backbone: str) -> LRPolicy:
    """The policy in ``path`` for a network with these layer ``groups``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a policy checkpoint, or trained for other groups (both lists named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy checkpoint {path} not found; train one with `syn2real train-policy`")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != POLICY_FORMAT:
        raise ValueError(f"{path} is not an ASG policy checkpoint (written by `syn2real train-policy`)")
    if list(ckpt["groups"]) != list(groups):
        raise ValueError(
            f"policy {path} was trained for the layer groups {list(ckpt['groups'])} of {ckpt['backbone']}, but this "
            f"network ({backbone}) has {list(groups)}: train a policy for it with `syn2real train-policy`"
        )
    policy = LRPolicy(groups=ckpt["groups"], hidden=ckpt["hidden"], actions=ckpt["actions"])
    policy.load_state_dict(ckpt["state_dict"])
    return policy
