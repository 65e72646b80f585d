"""Losses shared by two or more methods, and the non-finite-loss guard every training step uses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from syn2real.batch import IGNORE_INDEX


class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or infinite; training stops so no bad checkpoint is written."""


def check_finite(loss: Tensor, *, name: str, step: int) -> Tensor:
    """Return ``loss`` unchanged, or raise :class:`NonFiniteLossError` naming the loss and step."""
    if not torch.isfinite(loss).all():
        raise NonFiniteLossError(
            f"{name} is {loss.detach().float().cpu().tolist()} at step {step}. Training stopped; earlier checkpoints "
            "are intact. Lower the learning rate, enable gradient clipping (trainer.gradient_clip_val), or check "
            "the data for NaNs."
        )
    return loss


def task_loss(logits: Tensor, labels: Tensor, *, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy for classification (``B×K`` vs ``B``) or segmentation (``B×K×H×W`` vs ``B×H×W``, 255 ignored)."""
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)
