"""Validation-selected weights: the epoch a user with real validation labels would keep.

Headline numbers in the zoo are the *final* weights (no real labels used). Beside them, :class:`BestValidationWeights`
keeps a CPU copy of the module's weights at the best real-validation score, so the same run can also be tested at
that epoch; such a number uses the validation labels and is labelled so.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch


class BestValidationWeights(pl.Callback):
    """Keep the module's ``state_dict`` (on CPU) from the validation with the best ``monitor``.

    Args:
        monitor: the logged validation metric (default: the module's ``val/<metric_name>``, else ``val/target_acc``).
        mode: ``max`` (accuracy, mIoU) or ``min`` (a loss).
    """

    def __init__(self, *, monitor: str | None = None, mode: str = "max") -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.monitor, self.mode = monitor, mode
        self.best = math.nan
        self.epoch = -1
        self.state: dict[str, torch.Tensor] | None = None

    def monitored(self, pl_module: pl.LightningModule) -> str:
        return self.monitor or f"val/{getattr(pl_module, 'metric_name', 'target_acc')}"

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitored(pl_module))
        if value is None:
            return
        score = float(value)
        better = math.isnan(self.best) or (score > self.best if self.mode == "max" else score < self.best)
        if better:
            self.best, self.epoch = score, trainer.current_epoch
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}

    def restore(self, pl_module: pl.LightningModule) -> dict[str, Any]:
        """Load the kept weights into ``pl_module``; returns what was restored (epoch, score)."""
        if self.state is None:
            raise RuntimeError("no validation ran: nothing to restore")
        pl_module.load_state_dict(self.state)
        return {"epoch": self.epoch, "score": self.best}
