"""Stop a diverging run before it damages its weights or its checkpoints.

Every method names a non-finite loss (:func:`syn2real.losses.check_finite`); that fires only once a forward pass
overflows, after the step that caused it. :class:`FiniteGuard` (added to every ``syn2real fit``) checks earlier:

- before each optimizer step, that every gradient the step would apply is finite (the step is refused, so the
  weights stay as they were; with fp16 mixed precision the GradScaler's own skipping is left to do this);
- before each checkpoint is written, that every floating-point tensor of the model state is finite (the save is
  refused, so ``last.ckpt`` stays the last finite checkpoint).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch

from syn2real.losses import NonFiniteLossError

ADVICE = (
    "Lower the learning rate, enable gradient clipping (trainer.gradient_clip_val), or check the data for NaNs; "
    "the checkpoints written so far are finite"
)


def nonfinite_tensors(state: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold NaN or infinity (other entries are skipped)."""
    return [
        name
        for name, value in state.items()
        if torch.is_tensor(value) and value.is_floating_point() and not value.isfinite().all()
    ]


class FiniteGuard(pl.Callback):
    """Refuse an optimizer step with non-finite gradients and a checkpoint with non-finite weights."""

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            return  # fp16 mixed precision: the GradScaler skips overflowing steps itself
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        finite = [torch.isfinite(p.grad).all() for p in params]
        if not finite or bool(torch.stack(finite).all()):  # one device sync per step
            return
        names = {id(p): n for n, p in pl_module.named_parameters()}
        bad = next(p for p, ok in zip(params, finite, strict=True) if not ok)
        raise NonFiniteLossError(
            f"the gradient of {names.get(id(bad), 'a parameter')} is not finite at step {trainer.global_step}; "
            f"the step was not taken. {ADVICE}."
        )

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        broken = nonfinite_tensors(checkpoint.get("state_dict", {}))
        if broken:
            raise NonFiniteLossError(
                f"{broken[0]} is not finite at step {trainer.global_step}: this checkpoint is not written and the "
                f"previous one is kept. {ADVICE}."
            )
