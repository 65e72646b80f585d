"""Finding and loading a task network's weights in any syn2real checkpoint (or a plain state dict)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

TASK_PREFIXES = ("task_model.", "adapted.", "network.", "")
"""Where a checkpoint's state dict keeps the task network, in order of preference."""


def task_state_prefix(state: dict[str, Tensor], network: nn.Module) -> str | None:
    """The first prefix under which ``state`` holds complete, shape-compatible weights of ``network``."""
    own = network.state_dict()
    for prefix in TASK_PREFIXES:
        picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix) and k[len(prefix) :] in own}
        if len(picked) == len(own) and all(v.shape == own[k].shape for k, v in picked.items()):
            return prefix
    return None


def load_task_state(network: nn.Module, state: dict[str, Tensor]) -> str | None:
    """Load ``network``'s weights from a checkpoint's state dict; returns the prefix they were under.

    ``None`` (and nothing loaded) when no prefix holds a complete, shape-compatible set.
    """
    prefix = task_state_prefix(state, network)
    if prefix is not None:
        own = network.state_dict()
        network.load_state_dict(
            {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix) and k[len(prefix) :] in own}
        )
    return prefix


def load_task_weights(network: nn.Module, checkpoint: str | Path) -> str:
    """Load task-network weights from a syn2real checkpoint (any method exposing ``task_model``) or a state dict.

    Returns:
        The state-dict prefix the weights were found under.

    Raises:
        FileNotFoundError: if there is no such file.
        ValueError: if no complete set of weights for this network is in the file.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    state = torch.load(path, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state)
    prefix = load_task_state(network, state)
    if prefix is None:
        raise ValueError(
            f"{path} holds no complete weights for this task network ({type(network).__name__}); was "
            "it trained with the same arch / num_classes / in_channels?"
        )
    return prefix
