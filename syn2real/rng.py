"""Torch's global random state in a checkpoint, for methods whose training draws from it (dropout, noise, masks).

Lightning restores the weights, optimizers and loops of a resumed run, not torch's generators: a method that keeps
them in its checkpoint (:func:`save_torch_rng` in ``on_save_checkpoint``, :func:`restore_torch_rng` in
``on_load_checkpoint``) continues their sequence exactly where the interrupted run would have.
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
