"""Finding and loading a task network's weights in any syn2real checkpoint (or a plain state dict)."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

TASK_PREFIXES = ("task_model.", "adapted.", "network.", "")
"""Where a checkpoint's state dict keeps the task network, in order of preference."""


def read_checkpoint(path: Path) -> Any:
    """``torch.load`` of a checkpoint file with a clear error naming the file when it is missing or not one."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, EOFError, RuntimeError, OSError, ValueError) as err:
        from datamodules.errors import DatasetError

        raise DatasetError(
            path,
            f"cannot be read as a PyTorch checkpoint ({type(err).__name__}: {err}); it may be truncated or not a "
            "checkpoint",
            "point to a .ckpt written by syn2real (e.g. <run>/checkpoints/last.ckpt)",
        ) from None


def task_state_prefix(state: dict[str, Tensor], network: nn.Module) -> str | None:
    """The first prefix under which ``state`` holds complete, shape-compatible weights of ``network``.

    Weights of a deeper network of the same kind do not count as compatible: extra keys under the prefix that belong
    to one of ``network``'s own submodules (a three-stage ``small_fcn``'s ``down.*`` given to a one-stage one) would
    be dropped while the head trained on them is kept.
    """
    own = network.state_dict()
    slots = {name for name, _ in network.named_children()}
    for prefix in TASK_PREFIXES:
        under = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        picked = {k: v for k, v in under.items() if k in own}
        deeper = any(k not in own and k.split(".", 1)[0] in slots for k in under)
        if len(picked) == len(own) and not deeper and all(v.shape == own[k].shape for k, v in picked.items()):
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
    state = read_checkpoint(path)
    state = state.get("state_dict", state)
    prefix = load_task_state(network, state)
    if prefix is None:
        raise ValueError(
            f"{path} holds no complete weights for this task network ({type(network).__name__}); was "
            "it trained with the same arch / num_classes / in_channels?"
        )
    return prefix


@dataclass
class TaskCheckpoint:
    """A task network rebuilt from a syn2real checkpoint.

    Attributes:
        network: the network with the checkpoint's weights.
        spec: its :class:`~syn2real.tasks.networks.TaskNetworkSpec`.
        prefix: where in the state dict its weights were.
        checkpoint: the loaded checkpoint dictionary.
    """

    network: nn.Module
    spec: Any
    prefix: str
    checkpoint: dict[str, Any]


def load_task_checkpoint(path: Path) -> TaskCheckpoint:
    """Rebuild the task network of a syn2real checkpoint (its ``network`` hyperparameter) with its trained weights.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a syn2real task checkpoint, or no plain task network in it (DSBN/DSON keep per-domain
            statistics of their own).
    """
    from syn2real.specs import as_spec
    from syn2real.tasks.networks import TaskNetworkSpec

    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    if "state_dict" not in checkpoint or "network" not in hparams:
        raise ValueError(f"{path} is not a syn2real task checkpoint (no state_dict / no `network` hyperparameter)")
    spec = as_spec(TaskNetworkSpec, hparams["network"])
    network = dataclasses.replace(spec, pretrained=None).build()  # the checkpoint's weights replace any
    prefix = load_task_state(network, checkpoint["state_dict"])
    if prefix is None:
        raise ValueError(
            f"{path} holds no plain task network (DSBN/DSON keep per-domain statistics of their own): use a "
            "checkpoint of a task method such as source_only, target_oracle or DANN"
        )
    return TaskCheckpoint(network=network, spec=spec, prefix=prefix, checkpoint=checkpoint)
