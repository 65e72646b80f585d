"""SPIGAN: Privileged Adversarial Learning from Simulation.

Lee, Ros, Li, Gaidon, ICLR 2019, arXiv:1810.03756. No official code; the re-implementation ``jlim13/spigan`` was read
for concrete defaults (its author could not reproduce the paper, and its T and P see a detached G(x_s), so G never
gets their gradients: not done here).

A generator G adapts renders x_s towards real images; a discriminator D tells G(x_s) from real x_r; the task
network T learns the labels on renders and adapted renders; a privileged network P predicts the simulator's depth
z_s from both, and so keeps G from changing the scene's geometry:

    min_{G,T,P} max_D  α L_GAN(D, G) + β L_T(T, G) + γ L_P(P, G) + δ L_perc(G)
    L_T    = CE(T(x_s), y_s) + CE(T(G(x_s)), y_s)
    L_P    = |P(x_s) − z_s|₁ + |P(G(x_s)) − z_s|₁
    L_perc = Σ_l |φ_l(x_s) − φ_l(G(x_s))|₁

One iteration: a D step on x_r vs the detached G(x_s), then one step of G, T and P on the weighted sum (D frozen,
its BN statistics too). α 1, β 0.5, γ 0.1, δ 0.33, Adam 2e-4 with Adam's default betas, least-squares GAN (the
re-implementation's values, matching the paper's as recalled). ``privileged: false`` is the paper's SPIGAN-no-PI
ablation (P neither in the loss nor trained). T and P see renders and refined renders as one batch, so their BN
statistics are those of both. Three optimizer steps per batch: Lightning's ``global_step`` counts all three, so set
the length with ``max_epochs`` (schedules run per batch over it), not ``max_steps``.

Departures: φ is the offline EfficientNet-Lite0's stem and first stages (the paper's VGG19 cannot be loaded offline;
:class:`~syn2real.pretrained.LowLevelFeatures`); depth is P's [0, 1] target, scaled per image or by a
``depth_range`` in the dataset's units (:func:`~refinement.spigan.parts.normalized_depth`); T may have its own
optimizer (the zoo's task recipe), the paper uses one Adam for all.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from refinement.spigan.parts import normalized_depth, perceptual_loss
from syn2real.batch import IGNORE_INDEX, Batch, DomainBatch
from syn2real.bn_stats import kept_bn_statistics
from syn2real.losses import AdversarialMode, discriminator_loss, generator_loss, task_loss
from syn2real.nn import PatchDiscriminator, ResnetGenerator
from syn2real.nn.generators import Norm
from syn2real.optim import ManualSchedules, OptimizerSpec, SchedulerSpec, manual_optimization, manual_update
from syn2real.pretrained import LowLevelFeatures
from syn2real.refiner import ExportableGenerator
from syn2real.registry import register_method
from syn2real.rng import CheckpointedTorchRandomState
from syn2real.specs import as_spec, plain_hparams
from syn2real.tasks import TaskEvaluation, TaskNetwork, TaskNetworkSpec


@register_method
class SPIGAN(CheckpointedTorchRandomState, ManualSchedules, ExportableGenerator, TaskEvaluation):
    """SPIGAN: adversarial refinement with a task network and a privileged depth network, trained jointly.

    ``refine()`` exports adapted renders (``syn2real refine``); the task network T is evaluated on the real split
    like any adapter (``val/target_acc``).

    Args:
        network: the task network T (see :class:`~syn2real.tasks.TaskNetworkSpec`).
        privileged_network: P, a segmentation network with one output channel; ``None`` = a ``small_fcn`` of width
            16 on the task network's channels (the paper: FCN8s like T).
        privileged: train and use P (``false``: SPIGAN-no-PI).
        base_channels: generator width (CycleGAN's ResNet generator; paper: 64).
        num_blocks: generator residual blocks.
        num_downsampling: generator stride-2 stages.
        norm: generator and discriminator norm.
        disc_base_channels: PatchGAN width.
        disc_layers: PatchGAN stride-2 layers.
        gan_mode: adversarial loss (re-implementation: ``lsgan``; paper: ``vanilla``).
        gan_weight: α.
        task_weight: β.
        privileged_weight: γ.
        perceptual_weight: δ (0 = no perceptual regularizer, and φ is not built).
        perceptual_stages: EfficientNet-Lite0 stages tapped by φ (the stem output is always one).
        perceptual_size: side images are resized to before φ; ``None`` = as given.
        depth_range: (near, far) in the dataset's depth units, clipped and scaled to [0, 1]; ``None`` = per image.
        optimizer: for G, P and D (re-implementation: Adam 2e-4, default betas).
        task_optimizer: for T; ``None`` = ``optimizer``.
        scheduler: LR schedule of every optimizer, per step or epoch.
        ema_decay: EMA of G's weights used by ``refine()``; ``None`` = off.
    """

    def __init__(
        self,
        *,
        network: TaskNetworkSpec = TaskNetworkSpec(),
        privileged_network: TaskNetworkSpec | None = None,
        privileged: bool = True,
        base_channels: int = 64,
        num_blocks: int = 9,
        num_downsampling: int = 2,
        norm: Norm = "instance",
        disc_base_channels: int = 64,
        disc_layers: int = 3,
        gan_mode: AdversarialMode = "lsgan",
        gan_weight: float = 1.0,
        task_weight: float = 0.5,
        privileged_weight: float = 0.1,
        perceptual_weight: float = 0.33,
        perceptual_stages: int = 3,
        perceptual_size: int | None = None,
        depth_range: tuple[float, float] | None = None,
        optimizer: OptimizerSpec = OptimizerSpec(name="adam", lr=2e-4),
        task_optimizer: OptimizerSpec | None = None,
        scheduler: SchedulerSpec = SchedulerSpec(name="none"),
        ema_decay: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        spec = self.setup_task(network=network, optimizer=optimizer, scheduler=scheduler)
        self.task_optimizer_spec = as_spec(OptimizerSpec, task_optimizer) if task_optimizer else self.optimizer_spec
        default_p = TaskNetworkSpec(arch="small_fcn", task="segmentation", num_classes=1, width=16)
        p_spec = as_spec(TaskNetworkSpec, privileged_network) if privileged_network else default_p
        p_spec = dataclasses.replace(p_spec, in_channels=spec.in_channels)
        if p_spec.task != "segmentation" or p_spec.num_classes != 1:
            raise ValueError("SPIGAN's privileged_network predicts depth: a segmentation network with num_classes: 1")
        plain_hparams(self)
        self.automatic_optimization = False
        channels = spec.in_channels
        self.network: TaskNetwork = spec.build()
        self.privileged_net: TaskNetwork = p_spec.build()
        self.gen = ResnetGenerator(
            in_channels=channels,
            out_channels=channels,
            base_channels=base_channels,
            num_blocks=num_blocks,
            num_downsampling=num_downsampling,
            norm=norm,
        )
        self.discriminator = PatchDiscriminator(
            in_channels=channels, base_channels=disc_base_channels, num_layers=disc_layers, norm=norm
        )
        # φ is rebuilt from the offline weights, never trained or checkpointed: kept outside the module tree
        self._perceptual = (
            [LowLevelFeatures(stages=perceptual_stages, image_size=perceptual_size)] if perceptual_weight > 0 else []
        )
        self.setup_refiner()

    @property
    def generator(self) -> ResnetGenerator:
        return self.gen

    @property
    def image_channels(self) -> int:
        return self.network_spec.in_channels

    def depth_target(self, source: Batch) -> Tensor:
        """P's target from the renders' depth; a dataset without depth is an error (P needs it)."""
        if source.depth is None:
            from datamodules.errors import DatasetError

            raise DatasetError(
                f"data (train source), sample {source.ids[0] if source.ids else '?'!r}",
                "has no depth, which SPIGAN's privileged network learns to predict",
                "give renders with depth (a syn2real dataset with depth/), or set privileged: false for SPIGAN-no-PI",
            )
        return normalized_depth(source.depth, self.hparams.depth_range)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if batch.source.labels is None:
            raise ValueError("SPIGAN needs labels on the source domain; the source dataset has none")
        if self.hparams.privileged and self.global_step == 0 and batch_idx == 0:
            self.depth_target(batch.source)  # missing depth is an error before the first update
        super().on_train_batch_start(batch, batch_idx)

    def discriminator_losses(self, real: Tensor, refined: Tensor) -> dict[str, Tensor]:
        """α · the GAN loss of D on real images vs (detached) refined renders."""
        hp = self.hparams
        loss = discriminator_loss(self.discriminator(real), self.discriminator(refined), mode=hp.gan_mode)
        return {"loss_d": hp.gan_weight * loss}

    def joint_losses(self, x: Tensor, labels: Tensor, depth: Tensor | None, refined: Tensor) -> dict[str, Tensor]:
        """The G/T/P objective: α adversarial + β task + γ privileged + δ perceptual, and its named terms."""
        hp = self.hparams
        with kept_bn_statistics(self.discriminator):  # (with norm: batch) D only scores here
            adversarial = generator_loss(self.discriminator(refined), mode=hp.gan_mode)
        both = torch.cat([x, refined])
        logits = self.network(both)
        task = task_loss(logits[: len(x)], labels) + task_loss(logits[len(x) :], labels)
        privileged = x.new_zeros(())
        if hp.privileged:
            predicted = self.privileged_net(both)
            privileged = F.l1_loss(predicted[: len(x)], depth) + F.l1_loss(predicted[len(x) :], depth)
        perceptual = perceptual_loss(self._phi(), x, refined) if self._perceptual else x.new_zeros(())
        total = (
            hp.gan_weight * adversarial
            + hp.task_weight * task
            + hp.privileged_weight * privileged
            + hp.perceptual_weight * perceptual
        )
        known = labels != IGNORE_INDEX
        acc_refined = (logits[len(x) :].argmax(1) == labels)[known].float().mean()
        return {
            "loss_g": total,
            "loss_g_adv": adversarial,
            "loss_task": task,
            "loss_privileged": privileged,
            "loss_perceptual": perceptual,
            "acc_refined": acc_refined,
        }

    def _phi(self) -> LowLevelFeatures:
        return self._perceptual[0].to(self.device)

    def training_step(self, batch: DomainBatch, batch_idx: int) -> None:
        hp = self.hparams
        x, labels, real = batch.source.images, batch.source.labels, batch.target.images
        depth = self.depth_target(batch.source) if hp.privileged else None
        self.record_size(x)
        opt_d, opt_gp, opt_t = self.optimizers()
        refined = self.gen(x)
        with self.toggled_optimizer(opt_d):
            losses_d = self.discriminator_losses(real, refined.detach())
            manual_update(self, opt_d, losses_d["loss_d"], name="train/loss_d")
        self.discriminator.requires_grad_(False)  # G, T and P step together; D only scores
        losses = self.joint_losses(x, labels, depth, refined)
        manual_update(self, [opt_gp, opt_t], losses["loss_g"], name="train/loss_g")
        self.discriminator.requires_grad_(True)
        self.update_ema()
        self.log_dict({f"train/{k}": v for k, v in {**losses_d, **losses}.items()}, batch_size=len(x))

    def configure_optimizers(self) -> Any:
        generator_side = [*self.gen.parameters()]
        if self.hparams.privileged:
            generator_side += [*self.privileged_net.parameters()]
        optimizers = [
            self.optimizer_spec.build(self.discriminator.parameters()),
            self.optimizer_spec.build(generator_side),
            self.task_optimizer_spec.build(self.network.parameters()),
        ]
        return manual_optimization(optimizers, self.scheduler_spec, total_steps=self.trainer.estimated_stepping_batches)
