"""Supervised training and fine-tuning of a task network: ``TaskModule``.

Source-only (train on synthetic, test on real), target-oracle (train on real labels) and the schedules' stages are
all a ``TaskModule`` on different data. It logs ``val/target_acc`` / ``test/target_acc`` (or ``_miou``) on the real
split the datamodule provides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from syn2real.batch import Batch
from syn2real.losses import check_finite, task_loss
from syn2real.metrics import task_metric
from syn2real.networks import Task, TaskNetwork, build_task_network

TASK_PREFIXES = ("task_model.", "adapted.", "network.", "")
"""Where a checkpoint's state dict keeps the task network, in order of preference."""


def task_state_prefix(state: dict[str, Tensor], network: nn.Module) -> str | None:
    """The first prefix under which ``state`` holds complete, shape-compatible weights of ``network``."""
    own = network.state_dict()
    for prefix in TASK_PREFIXES:
        picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and k[len(prefix):] in own}
        if len(picked) == len(own) and all(v.shape == own[k].shape for k, v in picked.items()):
            return prefix
    return None


def load_task_weights(network: nn.Module, checkpoint: str | Path) -> str:
    """Load task-network weights from a syn2real checkpoint (any method exposing ``task_model``) or a state dict.

    Returns:
        The state-dict prefix the weights were found under.

    Raises:
        FileNotFoundError: if there is no such file.
        ValueError: if no complete set of weights for this network is in the file.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    state = torch.load(path, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state)
    prefix = task_state_prefix(state, network)
    if prefix is None:
        raise ValueError(f"{path} holds no complete weights for this task network ({type(network).__name__}); was "
                         "it trained with the same arch / num_classes / in_channels?")
    network.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)
                             and k[len(prefix):] in network.state_dict()})
    return prefix


class TaskEvaluation(pl.LightningModule):
    """Validation, test and predict steps on the real split for any method that exposes ``task_model``.

    Subclasses call :meth:`setup_task_metrics` in ``__init__``; they log ``val/target_acc`` / ``test/target_acc``
    (or ``_miou``) and ``val/loss`` / ``test/loss``, the same names across the zoo.
    """

    network: nn.Module

    @property
    def task_model(self) -> nn.Module:
        """The network evaluated on the real split (images -> logits); by default ``self.network``."""
        return self.network

    def forward(self, images: Tensor) -> Tensor:
        return self.task_model(images)

    def setup_task_metrics(self, task: Task, num_classes: int) -> None:
        name, metric = task_metric(task, num_classes)
        self.metric_name = name
        self.val_metric, self.test_metric = metric, metric.clone()

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
        arch: task network name (see :func:`syn2real.networks.build_task_network`).
        num_classes: output classes.
        in_channels: image channels.
        task: ``classification`` or ``segmentation``.
        encoder: smp encoder (segmentation architectures).
        width: base width of the small networks.
        pretrained: backbone weights: ``None``, ``"imagenet-offline"`` or a path.
        init_from: start from the task network of this checkpoint (fine-tuning).
        freeze_features: train the head only (the feature extractor keeps its weights and BN statistics).
        optimizer: ``adam`` or ``sgd`` (momentum 0.9, Nesterov).
        lr: learning rate.
        weight_decay: weight decay.
        scheduler: ``cosine`` (per step, to zero over the run) or ``none``.
        label_smoothing: cross-entropy label smoothing.
    """

    def __init__(self, *, arch: str = "small_cnn", num_classes: int = 10, in_channels: int = 1,
                 task: Task = "classification", encoder: str = "resnet18", width: int = 32,
                 pretrained: str | None = None, init_from: str | None = None, freeze_features: bool = False,
                 optimizer: Literal["adam", "sgd"] = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                 scheduler: Literal["cosine", "none"] = "cosine", label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.network: TaskNetwork = build_task_network(arch=arch, num_classes=num_classes, in_channels=in_channels,
                                                       task=task, encoder=encoder, width=width,
                                                       pretrained=pretrained)
        if init_from is not None:
            load_task_weights(self.network, init_from)
        self.setup_task_metrics(task, num_classes)

    def on_train_epoch_start(self) -> None:
        if self.hparams.freeze_features:  # frozen features keep their BN statistics too
            self.network.eval()
            self.network.head_module.train()

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        if batch.labels is None:
            raise ValueError("TaskModule needs labeled training data; this training source has no labels")
        logits = self.network(batch.images)
        loss = check_finite(task_loss(logits, batch.labels, label_smoothing=self.hparams.label_smoothing),
                            name="train/loss", step=self.global_step)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        if self.hparams.task == "classification":
            acc = (logits.argmax(1) == batch.labels).float().mean()
            self.log("train/acc", acc, batch_size=len(batch))
        return loss

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        if hp.freeze_features:
            self.network.requires_grad_(False)
            self.network.head_module.requires_grad_(True)
        params = [p for p in self.network.parameters() if p.requires_grad]
        if hp.optimizer == "adam":
            opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=hp.lr, momentum=0.9, nesterov=True, weight_decay=hp.weight_decay)
        if hp.scheduler == "none":
            return opt
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
