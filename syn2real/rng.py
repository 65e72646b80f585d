"""Torch's global random state in a checkpoint, for methods whose training draws from it (dropout, noise, masks).

Lightning restores the weights, optimizers and loops of a resumed run, not torch's generators: a method that keeps
them in its checkpoint (mix in :class:`CheckpointedTorchRandomState`, or call :func:`save_torch_rng` in
``on_save_checkpoint`` and :func:`restore_torch_rng` in ``on_load_checkpoint``) continues their sequence exactly
where the interrupted run would have.
"""

from __future__ import annotations

from typing import Any

import torch

KEY = "syn2real_torch_rng"


def save_torch_rng(checkpoint: dict[str, Any]) -> None:
    """Keep torch's CPU (and every CUDA device's) random state in ``checkpoint``."""
    checkpoint[KEY] = {
        "cpu": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_torch_rng(checkpoint: dict[str, Any], *, resuming: bool) -> None:
    """Set torch's random state from ``checkpoint`` when ``resuming`` a fit (not when a checkpoint is only loaded)."""
    state = checkpoint.get(KEY)
    if state is None or not resuming:
        return
    torch.set_rng_state(state["cpu"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointedTorchRandomState:
    """Mixed into a ``LightningModule``: its checkpoints keep torch's random state.

    Put it before the classes whose checkpoint hooks it extends. Resuming a fit restores the state; loading a
    checkpoint without a trainer (export) leaves the caller's random state alone.
    """

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)  # type: ignore[misc]
        save_torch_rng(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)  # type: ignore[misc]
        restore_torch_rng(checkpoint, resuming=self._trainer is not None)  # type: ignore[attr-defined]
