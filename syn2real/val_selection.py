"""Validation-selected weights: the epoch a user with real validation labels would keep.

Headline numbers in the zoo are the *final* weights (no real labels used). Beside them, :class:`BestValidationWeights`
keeps a CPU copy of the module's weights at the best real-validation score, so the same run can also be tested at
that epoch; such a number uses the validation labels and is labelled so.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytorch_lightning as pl
import torch


class BestValidationWeights(pl.Callback):
    """Keep the module's ``state_dict`` (on CPU) from the validation with the highest ``val/<metric_name>``.

    The metric is the module's ``metric_name`` (accuracy or mIoU: higher is better), ``target_acc`` by default.
    """

    def __init__(self) -> None:
        self.best = math.nan
        self.epoch = -1
        self.state: dict[str, Any] | None = None

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(f"val/{getattr(pl_module, 'metric_name', 'target_acc')}")
        if value is None:
            return
        score = float(value)
        if math.isnan(self.best) or score > self.best:
            self.best, self.epoch = score, trainer.current_epoch
            self.state = {k: _copied(v) for k, v in pl_module.state_dict().items()}

    def restore(self, pl_module: pl.LightningModule) -> dict[str, Any]:
        """Load the kept weights into ``pl_module``; returns what was restored (epoch, score)."""
        if self.state is None:
            raise RuntimeError("no validation ran: nothing to restore")
        pl_module.load_state_dict(self.state)
        return {"epoch": self.epoch, "score": self.best}


def _copied(value: Any) -> Any:
    """A CPU copy of a state-dict entry: a tensor, or a module's extra state (an image pool's history, say)."""
    return value.detach().to("cpu", copy=True) if isinstance(value, torch.Tensor) else copy.deepcopy(value)
