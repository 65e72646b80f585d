"""AdaBN as a Lightning callback, for any method whose ``task_model`` has BN layers (e.g. a ``TaskModule``)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from syn2real.bn_stats import BNState, bn_layers, bn_state, load_bn_state, reestimate_bn_stats, target_images
from syn2real.data_api import PairedDomains, require_datamodule


class AdaBNCallback(pl.Callback):
    """Evaluate with BN statistics re-estimated on the target domain of the ``DomainPairDataModule``.

    Before validation and test, the ``task_model``'s running statistics are replaced by target statistics; after
    validation the source statistics are put back, so training continues exactly as without the callback.

    Args:
        batch_size: batch size of the re-estimation pass.
    """

    def __init__(self, *, batch_size: int = 128) -> None:
        self.batch_size = batch_size

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage in ("fit", "validate", "test"):
            require_datamodule(pl_module, PairedDomains, purpose="AdaBNCallback re-estimates BN statistics")

    def _swap_in(self, pl_module: pl.LightningModule) -> BNState:
        saved = bn_state(bn_layers(pl_module.task_model))
        with torch.inference_mode(False), torch.no_grad():
            reestimate_bn_stats(pl_module.task_model, target_images(pl_module, self.batch_size))
        return saved

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._saved: Any = None if trainer.sanity_checking else self._swap_in(pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if getattr(self, "_saved", None) is None:
            return
        load_bn_state(bn_layers(pl_module.task_model), self._saved)
        self._saved = None

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._swap_in(pl_module)
