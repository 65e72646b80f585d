"""Supervised training and fine-tuning of a task network: ``TaskModule``; real-split evaluation: ``TaskEvaluation``.

Source-only (train on synthetic, test on real), target-oracle (train on real labels) and the schedules' stages are
all a ``TaskModule`` on different data. It logs ``val/target_acc`` / ``test/target_acc`` (or ``_miou``) on the real
split the datamodule provides.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from torch import Tensor, nn

from syn2real.batch import IGNORE_INDEX, Batch, DomainBatch
from syn2real.losses import check_finite, task_loss
from syn2real.metrics import task_metric
from syn2real.optim import OptimizerSpec, SchedulerSpec, configure_optimization
from syn2real.specs import as_spec, plain_hparams
from syn2real.tasks.networks import TaskNetwork, TaskNetworkSpec
from syn2real.tasks.weights import load_task_weights


class TaskEvaluation(pl.LightningModule):
    """Validation, test and predict steps on the real split for any method that exposes ``task_model``.

    Subclasses call :meth:`setup_task` in ``__init__`` (after ``save_hyperparameters``) with their injected
    network, optimizer and scheduler specs; they log ``val/target_acc`` / ``test/target_acc`` (or ``_miou``) and
    ``val/loss`` / ``test/loss``, the same names across the zoo.
    """

    network: nn.Module
    network_spec: TaskNetworkSpec
    optimizer_spec: OptimizerSpec
    scheduler_spec: SchedulerSpec

    @property
    def task_model(self) -> nn.Module:
        """The network evaluated on the real split (images -> logits); by default ``self.network``."""
        return self.network

    def forward(self, images: Tensor) -> Tensor:
        return self.task_model(images)

    def setup_task(
        self, *, network: TaskNetworkSpec | dict, optimizer: OptimizerSpec | dict, scheduler: SchedulerSpec | dict
    ) -> TaskNetworkSpec:
        """Keep the injected specs and set up the real-split metric.

        The typed specs become ``network_spec``, ``optimizer_spec`` and ``scheduler_spec`` (``hparams`` keeps them as
        plain dicts); the metric is accuracy (classification) or mIoU (segmentation) on val and test.

        Returns:
            The network spec, to build the task network from.
        """
        self.network_spec = as_spec(TaskNetworkSpec, network)
        self.optimizer_spec = as_spec(OptimizerSpec, optimizer)
        self.scheduler_spec = as_spec(SchedulerSpec, scheduler)
        plain_hparams(self)
        name, metric = task_metric(self.network_spec.task, self.network_spec.num_classes)
        self.metric_name = name
        self.val_metric, self.test_metric = metric, metric.clone()
        return self.network_spec

    def configure_task_optimization(self, params: Any) -> Any:
        """``configure_optimizers``' result for ``params`` with the injected optimizer and scheduler."""
        return configure_optimization(
            params, self.optimizer_spec, self.scheduler_spec, total_steps=self.trainer.estimated_stepping_batches
        )

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self.global_step == 0 and batch_idx == 0:
            for part in (batch.source, batch.target) if isinstance(batch, DomainBatch) else (batch,):
                self.check_fits(part, "train")

    def on_validation_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx == 0:
            self.check_fits(batch, "val")

    def check_fits(self, batch: Batch, stage: str) -> None:
        """The data must have the channels and classes the network was built for (checked on the first batch)."""
        from datamodules.errors import DatasetError

        spec, where = self.network_spec, f"data ({stage})"
        channels = batch.images.shape[1]
        if channels != spec.in_channels:
            raise DatasetError(
                where,
                f"gives {channels}-channel images but the network takes {spec.in_channels}",
                f"set model.init_args.network.in_channels: {channels}, or give {spec.in_channels}-channel data",
            )
        labels = batch.labels
        if labels is not None and labels.numel():
            known = labels[labels != IGNORE_INDEX]
            top = int(known.max()) if known.numel() else -1
            if top >= spec.num_classes:
                raise DatasetError(
                    where,
                    f"has class index {top} but the network has {spec.num_classes} classes",
                    f"set model.init_args.network.num_classes to the data's class count ({top + 1} or more)",
                )

    def _evaluate(self, batch: Batch, stage: str, metric: Any) -> None:
        if batch.labels is None:
            raise ValueError(f"the {stage} data has no labels; point data.{stage} to a labeled real split")
        logits = self.task_model(batch.images)
        metric.update(logits.argmax(1), batch.labels)
        self.log(f"{stage}/loss", task_loss(logits, batch.labels), batch_size=len(batch))
        self.log(f"{stage}/{self.metric_name}", metric, prog_bar=True, batch_size=len(batch))

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metric)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metric)

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        logits = self.task_model(batch.images)
        return {"ids": batch.ids, "predictions": logits.argmax(1).cpu(), "probabilities": logits.softmax(1).cpu()}


class TaskModule(TaskEvaluation):
    """Train a task network with cross-entropy on labeled batches; evaluate on the real split.

    Args:
        network: the task network (see :class:`~syn2real.tasks.networks.TaskNetworkSpec`).
        optimizer: optimizer (default AdamW 1e-3, no weight decay).
        scheduler: LR schedule (default cosine to zero over the run, per step).
        init_from: start from the task network of this checkpoint (fine-tuning).
        freeze_features: train the head only (the feature extractor keeps its weights and BN statistics).
        label_smoothing: cross-entropy label smoothing.
    """

    def __init__(
        self,
        *,
        network: TaskNetworkSpec = TaskNetworkSpec(),
        optimizer: OptimizerSpec = OptimizerSpec(),
        scheduler: SchedulerSpec = SchedulerSpec(name="cosine"),
        init_from: str | None = None,
        freeze_features: bool = False,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        spec = self.setup_task(network=network, optimizer=optimizer, scheduler=scheduler)
        self.network: TaskNetwork = spec.build()
        if init_from is not None:
            load_task_weights(self.network, init_from)

    def on_train_epoch_start(self) -> None:
        if self.hparams.freeze_features:  # frozen features keep their BN statistics too
            self.network.eval()
            self.network.head_module.train()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        labeled = batch.source if isinstance(batch, DomainBatch) else batch  # AdaBN trains on the source part
        if labeled.labels is None:
            from datamodules.errors import DatasetError

            raise DatasetError(
                f"data (train), sample {labeled.ids[0]!r}",
                f"has no label, and {type(self).__name__} trains on labels",
                "give a labeled training source (use_labels: true), or train a method that uses unlabeled data",
            )
        super().on_train_batch_start(batch, batch_idx)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        logits = self.network(batch.images)
        loss = check_finite(
            task_loss(logits, batch.labels, label_smoothing=self.hparams.label_smoothing),
            name="train/loss",
            step=self.global_step,
        )
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        if self.network_spec.task == "classification":
            acc = (logits.argmax(1) == batch.labels).float().mean()
            self.log("train/acc", acc, batch_size=len(batch))
        return loss

    def configure_optimizers(self) -> Any:
        if self.hparams.freeze_features:
            self.network.requires_grad_(False)
            self.network.head_module.requires_grad_(True)
        return self.configure_task_optimization([p for p in self.network.parameters() if p.requires_grad])
