"""AdaBN: Adaptive Batch Normalization, the AdaIN-style replacement of BN statistics.

Li, Wang, Shi, Liu, Hou, "Revisiting Batch Normalization For Practical Domain Adaptation", arXiv:1603.04779, 2016.
The synthetic-data literature applies the same idea as "replace the BN statistics of synthetic images with
statistics of real images" (inspired by AdaIN, Huang & Belongie, ICCV 2017).

Algorithm: train the task network on labeled source data; then, keeping every learned weight, replace each BN
layer's mean/variance with the statistics of the unlabeled target images
(:func:`syn2real.bn_stats.reestimate_bn_stats`).

This module trains the source model itself (cross-entropy on ``DomainBatch.source``, so the experiment is one
command with the source-only budget) and keeps a second copy, ``adapted``, whose BN statistics are re-estimated on
the target pool (no augmentation) before every validation and test; ``task_model`` is that copy. The test also
scores the *same* weights with their source statistics (``test/<metric>_source_bn``): AdaBN's paired baseline, one
checkpoint with and without re-estimation, so the difference is what the re-estimation does. For a model
that is already trained, use ``syn2real adapt-bn`` or :class:`~refinement.adabn.callback.AdaBNCallback`.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from syn2real.batch import Batch, DomainBatch
from syn2real.bn_stats import reestimate_bn_stats, target_images
from syn2real.data_api import PairedDomains, require_datamodule
from syn2real.optim import OptimizerSpec, SchedulerSpec
from syn2real.registry import register_method
from syn2real.tasks import TaskModule, TaskNetwork, TaskNetworkSpec


@register_method
class AdaBN(TaskModule):
    """Source training (exactly as ``TaskModule``) + BN statistics re-estimated on the target before evaluation.

    Args:
        stats_batch_size: batch size of the re-estimation pass (fixed; a last partial batch is dropped).
        network: the task network (must contain BN layers).
        optimizer: source-training optimizer (as ``TaskModule``).
        scheduler: source-training LR schedule (as ``TaskModule``).
        label_smoothing: cross-entropy label smoothing.
        init_from: start from the task network of this checkpoint.
        freeze_features: train the head only.
    """

    def __init__(
        self,
        *,
        stats_batch_size: int = 128,
        network: TaskNetworkSpec = TaskNetworkSpec(),
        optimizer: OptimizerSpec = OptimizerSpec(),
        scheduler: SchedulerSpec = SchedulerSpec(name="cosine"),
        label_smoothing: float = 0.0,
        init_from: str | None = None,
        freeze_features: bool = False,
    ) -> None:
        super().__init__(
            network=network,
            optimizer=optimizer,
            scheduler=scheduler,
            init_from=init_from,
            freeze_features=freeze_features,
            label_smoothing=label_smoothing,
        )
        self.adapted: TaskNetwork = copy.deepcopy(self.network).requires_grad_(False)
        self.test_metric_source_bn = self.test_metric.clone()

    @property
    def task_model(self) -> TaskNetwork:
        return self.adapted

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate", "test"):
            require_datamodule(self, PairedDomains, purpose="BN statistics are re-estimated on the target pool")

    def training_step(self, batch: DomainBatch, batch_idx: int) -> Tensor:
        return super().training_step(batch.source, batch_idx)

    def adapt(self) -> int:
        """Copy the source-trained weights into ``adapted`` and re-estimate its BN statistics on the target."""
        self.adapted.load_state_dict(self.network.state_dict())
        with torch.inference_mode(False), torch.no_grad():
            return reestimate_bn_stats(self.adapted, target_images(self, self.hparams.stats_batch_size))

    def on_validation_epoch_start(self) -> None:
        if not self.trainer.sanity_checking:
            self.adapt()

    def on_test_epoch_start(self) -> None:
        self.adapt()

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        super().test_step(batch, batch_idx)
        # the same checkpoint before re-estimation: the source-trained network with its source BN statistics
        self.test_metric_source_bn.update(self.network(batch.images).argmax(1), batch.labels)
        self.log(f"test/{self.metric_name}_source_bn", self.test_metric_source_bn, batch_size=len(batch))
