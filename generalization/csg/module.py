"""CSG: Contrastive Syn-to-Real Generalization.

Chen, Yu, De Mello, Liu, Alvarez, Wang, Anandkumar, "Contrastive Syn-to-Real Generalization", ICLR 2021,
arXiv:2104.02290; official code NVlabs/CSG. No target image is seen. Training on synthetic images collapses the
features of an ImageNet-pretrained network; CSG keeps them diverse and close to ImageNet's with a contrastive term.
Per step, for an image x and two augmented views x_q, x_k (RandAugment, one op at magnitude 6):

    for each stage l ∈ G (ResNet: layer3, layer4):
        q_l = normalize(h_l(A-pool(f_e^l(x_q))))                       the trainable encoder, query head h_l
        k_l = normalize(h̃_l(A-pool(f_o^l(x_k); attention of f_e^l(x_k)))) the frozen ImageNet encoder, key head h̃_l
        L_NCE^l = −log exp(q·k/τ) / (exp(q·k/τ) + Σ_queue exp(q·n/τ))     τ = 0.07, then k_l is enqueued
    L = CE(task head(f_e(x_q)), y) + λ Σ_l L_NCE^l                       λ = 0.1 (classification)

h̃_l is an exponential moving average of h_l (m = 0.999), updated before the keys are computed; the key encoder
itself is a frozen copy of the ImageNet network (not a momentum encoder); one queue of keys per stage.

As the official code: BN statistics frozen (eval mode throughout), the lr-in-momentum SGD, backbone at 0.1 of the
rate, 100-step quadratic warm-up then 0.9-power decay to zero. Departures: EfficientNet-Lite0 (offline weights) on
CPU, whose stages are taken at strides 16 and 32 (``[3, final]``: the block-4 output and the final 1280-channel
map) through a ReLU (its block outputs are linear, A-pool needs non-negative maps); the queue is a config value
(official 65,536) and is clamped, with a warning, to the number of training images (a larger queue would hold
several keys of the same image, each a false negative); views are drawn on the CPU with albumentations (seeded from
torch's generator); evaluation is the zoo's (argmax accuracy on the real split, final weights, validation-selected
beside them), not the papers' mean per-class accuracy of flip-averaged sigmoid scores, so every row of the zoo is
scored the same way. Segmentation (dense CSG): the maps are cut into ``chunks × chunks`` patches, each A-pooled and
contrasted with the same patch of the key view (the image colour-jittered: same pixels), the queue holding patch keys;
the segmenter is the FCN-8s of :class:`~generalization.backbone.ImageNetSegmenter` (official: a DeepLab-v3-style ASPP
head on a dilated ResNet), and the projection heads are trained (the official segmentation script leaves them out of
its optimizer, a fixed random projection).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generalization.backbone import FINAL, ImageNetTaskNetwork, frozen_modes, stage_maps
from generalization.csg.parts import (
    KeyQueue,
    ProjectionHead,
    a_pool,
    augment_batch,
    info_nce,
    key_color_jitter,
    momentum_update,
    patches,
    rand_augment,
)
from syn2real.batch import Batch
from syn2real.losses import check_finite, task_loss
from syn2real.optim import OptimizerSpec, SchedulerSpec
from syn2real.registry import register_method
from syn2real.rng import CheckpointedTorchRandomState
from syn2real.tasks import TaskEvaluation, TaskNetworkSpec


@register_method
class CSG(CheckpointedTorchRandomState, TaskEvaluation):
    """Fine-tune an ImageNet network on synthetic data with CSG's multi-stage contrastive term.

    Args:
        network: the backbone (a timm classifier with ImageNet weights; see ASG) and the data's classes/channels.
        input_size: side images are resized to inside the network.
        head_hidden: hidden width of the task head (official: 512).
        optimizer: official: SGD with the rate in its momentum, lr 1e-4, momentum 0.9, weight decay 5e-4.
        scheduler: official: 100-step quadratic warm-up, 0.9-power decay to zero, per step.
        backbone_lr_factor: the backbone's share of the rate (official: 0.1).
        contrastive_weight: λ (official: 0.1 classification).
        stages: timm feature indices (or ``final``) whose maps are contrasted (ResNet [3, final] = layer3, layer4).
        projection_dim: output size of the projection heads (official: 128).
        queue_size: negatives per stage (official: 65,536; clamped to the training set's size).
        temperature: τ (official: 0.07).
        key_momentum: EMA momentum of the key heads (official: 0.999).
        apool: attentional pooling (official: on); ``false`` = global average pooling.
        augment_magnitude: RandAugment magnitude of both views (official: 6 of 30); 0 = no augmentation.
            Segmentation: any positive value = the key view colour-jittered (0.4 each), the query unchanged.
        chunks: dense CSG: each stage map cut into ``chunks × chunks`` patches, one anchor each (official
            segmentation: 8; classification: 1).
        freeze_bn: keep the network in eval mode while training (official).
    """

    def __init__(
        self,
        *,
        network: TaskNetworkSpec = TaskNetworkSpec(
            arch="efficientnet_lite0", num_classes=12, in_channels=3, pretrained="imagenet-offline"
        ),
        input_size: int = 224,
        head_hidden: int = 512,
        optimizer: OptimizerSpec = OptimizerSpec(name="sgd_lr_in_momentum", lr=1e-4, momentum=0.9, weight_decay=5e-4),
        scheduler: SchedulerSpec = SchedulerSpec(name="warmup_poly", warmup_steps=100, power=0.9, floor_progress=1.0),
        backbone_lr_factor: float = 0.1,
        contrastive_weight: float = 0.1,
        stages: list[int | str] = [3, FINAL],  # noqa: B006 - jsonargparse needs a list; never mutated
        projection_dim: int = 128,
        queue_size: int = 65536,
        temperature: float = 0.07,
        key_momentum: float = 0.999,
        apool: bool = True,
        augment_magnitude: int = 6,
        chunks: int = 1,
        freeze_bn: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        spec = self.setup_task(network=network, optimizer=optimizer, scheduler=scheduler)
        if not stages:
            raise ValueError("CSG needs at least one stage to contrast (e.g. stages: [3, final])")
        self.stages = list(stages)
        self.network = ImageNetTaskNetwork.from_spec(spec, input_size=input_size, head_hidden=head_hidden)
        self.key_encoder = self.network.frozen_copy()
        with torch.no_grad():
            probe = torch.zeros(1, 3, input_size, input_size)
            probe_maps = stage_maps(self.key_encoder, probe, self.stages)[1]
            channels = [m.shape[1] for m in probe_maps]
        self.segmentation = spec.task == "segmentation"
        for stage, m in zip(self.stages, probe_maps, strict=True):
            if m.shape[-1] % chunks or m.shape[-2] % chunks:
                raise ValueError(
                    f"stage {stage}'s map is {tuple(m.shape[-2:])} at input_size {input_size}: not divisible into "
                    f"chunks: {chunks} per side; change chunks or input_size"
                )
        self.query_heads = nn.ModuleList(ProjectionHead(channels=c, dim=projection_dim) for c in channels)
        self.key_heads = nn.ModuleList(ProjectionHead(channels=c, dim=projection_dim) for c in channels)
        self.key_heads.load_state_dict(self.query_heads.state_dict())
        self.key_heads.requires_grad_(False)
        self.queues = nn.ModuleList(KeyQueue(size=queue_size, dim=projection_dim) for _ in channels)
        self.augment = (
            None
            if augment_magnitude <= 0
            else key_color_jitter()
            if self.segmentation
            else rand_augment(augment_magnitude)
        )

    def setup(self, stage: str) -> None:
        """Clamp the queue to the training set's size (before a checkpoint's queues are restored)."""
        if stage != "fit":
            return
        try:
            images = len(self.trainer.datamodule.train_dataloader().dataset)
        except (AttributeError, TypeError):
            return
        size = images * self.hparams.chunks**2  # one key per image, or per patch
        if size < self.hparams.queue_size:
            warnings.warn(
                f"CSG's queue_size {self.hparams.queue_size} exceeds the {size} training "
                f"{'images' if self.hparams.chunks == 1 else 'patches'}; clamped to {size} (a larger queue would "
                "hold several keys of one image, each a false negative)",
                stacklevel=2,
            )
            for queue in self.queues:
                queue.keys = queue.keys[:size].clone()
                queue.pointer.zero_()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A queue clamped to its training data is restored at the checkpoint's size (evaluation, export, resume)."""
        super().on_load_checkpoint(checkpoint)
        for i, queue in enumerate(self.queues):
            saved = checkpoint["state_dict"].get(f"queues.{i}.keys")
            if saved is not None and saved.shape != queue.keys.shape:
                queue.keys = torch.empty_like(saved)

    def on_train_epoch_start(self) -> None:
        frozen_modes(self.network, [self.key_encoder], freeze_bn=self.hparams.freeze_bn)

    def views(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Query and key views: two RandAugment draws (the same image twice without augmentation).

        Segmentation: the image and a colour-jittered copy (the same pixels: patch i of one is patch i of the other).
        """
        if self.augment is None:
            return images, images
        if self.segmentation:
            return images, augment_batch(images, self.augment)
        return augment_batch(images, self.augment), augment_batch(images, self.augment)

    def pool(self, maps: Tensor, attention_from: Tensor | None = None) -> Tensor:
        """A-pool (or average pooling) of every map, or of every patch of a ``chunks × chunks`` grid (dense CSG)."""
        c = self.hparams.chunks
        if c > 1:
            maps = patches(maps, c)
            attention_from = None if attention_from is None else patches(attention_from, c)
        return a_pool(maps, attention_from) if self.hparams.apool else maps.mean(dim=(2, 3))

    def losses(
        self, query_images: Tensor, key_images: Tensor, labels: Tensor
    ) -> tuple[dict[str, Tensor], list[Tensor]]:
        """Task cross-entropy on the query view, InfoNCE per stage and the weighted objective; the keys per stage.

        The queues are not changed (the caller enqueues the keys after the step).
        """
        net = self.network
        final, query_maps, raw = stage_maps(net.backbone, net.normalize(query_images), self.stages, levels=net.levels)
        loss_task = task_loss(net.logits_from_maps(final, raw, query_images.shape[-2:]), labels)
        with torch.no_grad():
            key_x = net.normalize(key_images)
            _, attention_maps, _ = stage_maps(net.backbone, key_x, self.stages)  # trainable encoder on the key view
            _, key_maps, _ = stage_maps(self.key_encoder, key_x, self.stages)
        out = {"loss_task": loss_task}
        keys = []
        for i, (q_map, k_map, a_map) in enumerate(zip(query_maps, key_maps, attention_maps, strict=True)):
            q = F.normalize(self.query_heads[i](self.pool(q_map)), dim=1)
            with torch.no_grad():
                k = F.normalize(self.key_heads[i](self.pool(k_map, a_map)), dim=1)
            negatives = self.queues[i].keys.clone()  # a snapshot: the queue moves on before the backward pass
            out[f"loss_nce_{self.stages[i]}"] = info_nce(q, k, negatives, self.hparams.temperature)
            keys.append(k)
        out["loss_nce"] = sum(out[f"loss_nce_{s}"] for s in self.stages)
        out["loss"] = loss_task + self.hparams.contrastive_weight * out["loss_nce"]
        return out, keys

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        if batch.labels is None:
            raise ValueError("CSG trains on labeled synthetic images; the training data has no labels")
        for key_head, query_head in zip(self.key_heads, self.query_heads, strict=True):
            momentum_update(key_head, query_head, self.hparams.key_momentum)  # before the keys, as the official code
        query_images, key_images = self.views(batch.images)
        out, stage_keys = self.losses(query_images, key_images, batch.labels)
        check_finite(out["loss"], name="train/loss", step=self.global_step)
        for queue, keys in zip(self.queues, stage_keys, strict=True):
            queue.push(keys)
        self.log_dict({f"train/{k}": v for k, v in out.items()}, batch_size=len(batch))
        return out["loss"]

    def configure_optimizers(self) -> Any:
        lr = self.optimizer_spec.lr
        groups = self.network.layer_groups()
        head = groups.pop("task_head") + list(self.query_heads.parameters())
        backbone = [p for params in groups.values() for p in params]
        return self.configure_task_optimization(
            [{"params": backbone, "lr": lr * self.hparams.backbone_lr_factor}, {"params": head, "lr": lr}]
        )
