"""AdaBN: Adaptive Batch Normalization, the AdaIN-style replacement of BN statistics.

Li, Wang, Shi, Liu, Hou, "Revisiting Batch Normalization For Practical Domain Adaptation", arXiv:1603.04779, 2016.
The synthetic-data literature applies the same idea as "replace the BN statistics of synthetic images with
statistics of real images" (inspired by AdaIN, Huang & Belongie, ICCV 2017).

Algorithm: train the task network on labeled source data; then, keeping every learned weight, replace each BN
layer's mean/variance with the statistics of the unlabeled target images (:func:`reestimate_bn_stats`).

This module trains the source model itself (cross-entropy on ``DomainBatch.source``, so the experiment is one
command with the source-only budget) and keeps a second copy, ``adapted``, whose BN statistics are re-estimated on
the target pool (no augmentation) before every validation and test; ``task_model`` is that copy. For a model
that is already trained, use ``syn2real adapt-bn`` or :class:`~refinement.adabn.callback.AdaBNCallback`.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from torch import Tensor

from refinement.adabn.stats import reestimate_bn_stats
from syn2real.batch import DomainBatch
from syn2real.networks import Task, TaskNetwork
from syn2real.registry import register_method
from syn2real.tasks import TaskModule


def target_batches(module: Any, batch_size: int) -> Any:
    """Unaugmented target images of the attached ``DomainPairDataModule``, on the module's device."""
    datamodule = module.trainer.datamodule
    if not hasattr(datamodule, "target_loader"):
        raise ValueError(f"{type(module).__name__} needs a DomainPairDataModule (source + unlabeled target); got "
                         f"{type(datamodule).__name__}")
    return (b.images.to(module.device) for b in datamodule.target_loader(batch_size=batch_size))


@register_method
class AdaBN(TaskModule):
    """Source training (exactly as ``TaskModule``) + BN statistics re-estimated on the target before evaluation.

    Args:
        arch: task network.
        num_classes: output classes.
        in_channels: image channels.
        task: ``classification`` or ``segmentation``.
        encoder: smp encoder (segmentation).
        width: base width of the small networks.
        pretrained: backbone weights.
        init_from: start from the task network of this checkpoint.
        freeze_features: train the head only.
        optimizer: ``adam`` or ``sgd``.
        lr: learning rate.
        weight_decay: weight decay.
        scheduler: ``cosine`` or ``none``.
        label_smoothing: cross-entropy label smoothing.
        stats_batch_size: batch size of the re-estimation pass (fixed; a last partial batch is dropped).
    """

    def __init__(self, *, arch: str = "small_cnn", num_classes: int = 10, in_channels: int = 1,
                 task: Task = "classification", encoder: str = "resnet18", width: int = 32,
                 pretrained: str | None = None, init_from: str | None = None, freeze_features: bool = False,
                 optimizer: Literal["adam", "sgd"] = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                 scheduler: Literal["cosine", "none"] = "cosine", label_smoothing: float = 0.0,
                 stats_batch_size: int = 128) -> None:
        super().__init__(arch=arch, num_classes=num_classes, in_channels=in_channels, task=task, encoder=encoder,
                         width=width, pretrained=pretrained, init_from=init_from, freeze_features=freeze_features,
                         optimizer=optimizer, lr=lr, weight_decay=weight_decay, scheduler=scheduler,
                         label_smoothing=label_smoothing)
        self.adapted: TaskNetwork = copy.deepcopy(self.network).requires_grad_(False)

    @property
    def task_model(self) -> TaskNetwork:
        return self.adapted

    def training_step(self, batch: DomainBatch, batch_idx: int) -> Tensor:
        return super().training_step(batch.source, batch_idx)

    def adapt(self) -> int:
        """Copy the source-trained weights into ``adapted`` and re-estimate its BN statistics on the target."""
        self.adapted.load_state_dict(self.network.state_dict())
        with torch.inference_mode(False), torch.no_grad():
            return reestimate_bn_stats(self.adapted, target_batches(self, self.hparams.stats_batch_size))

    def on_validation_epoch_start(self) -> None:
        if not self.trainer.sanity_checking:
            self.adapt()

    def on_test_epoch_start(self) -> None:
        self.adapt()
