"""SimGAN: Learning from Simulated and Unsupervised Images through Adversarial Training.

Shrivastava, Pfister, Tuzel, Susskind, Wang, Webb, CVPR 2017, arXiv:1612.07828 (no official code).

A refiner R (no striding) maps a synthetic image x to R(x); a local discriminator D scores every image patch.

    refiner:        L_R = g(D(R(x))) + λ · mean|ψ(R(x)) − ψ(x)|          (self-regularization, mean reduction)
    discriminator:  L_D = d(D(y), D(history(R(x))))                       (y real; half the fakes from the history)

Training: ``refiner_pretrain_steps`` refiner updates with the self-regularization term only, then
``disc_pretrain_steps`` discriminator updates, then alternating K_g refiner and K_d discriminator updates. Each
training batch is one update; the schedule runs on the module's own update counter (a buffer saved in
checkpoints), not on Lightning's step counter.

Departures: the paper's 2-class softmax per patch is written as one logit per patch with BCE (``vanilla``), the same
loss with the convention real = 1; λ is applied to a *mean* L1 (the paper's reduction is unclear, see
``methods/refinement.md`` §1.4) measured on the refiner's [-1, 1] scale as the re-implementations whose λ we quote
(images are [0, 1] in the zoo, so the distance is doubled); the history capacity is a parameter (50 × batch size by
default in our configs);
``psi: features`` uses the first blocks of the frozen offline EfficientNet-Lite0 as the fixed feature network.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from refinement.simgan.networks import Refiner
from syn2real.batch import DomainBatch
from syn2real.losses import AdversarialMode, discriminator_loss, generator_loss, l1_generator_units
from syn2real.nn import ImagePool, LocalDiscriminator
from syn2real.optim import OptimizerSpec, manual_update
from syn2real.pretrained import LowLevelFeatures
from syn2real.refiner import RefinerBase
from syn2real.registry import register_method
from syn2real.specs import as_spec, plain_hparams

Psi = Literal["identity", "mean", "features"]


@register_method
class SimGAN(RefinerBase):
    """SimGAN refiner with local adversarial loss, self-regularization and a history of refined images.

    Args:
        in_channels: image channels.
        width: refiner width (paper: 64).
        num_blocks: refiner ResNet blocks (paper: 4 for gaze, 10 for hand pose).
        kernel: first conv kernel (paper: 3 for gaze, 7 for hand pose).
        disc_widths: local discriminator widths (paper: 96, 64, 32, 32).
        lambda_reg: λ of the self-regularization (tune; 0.5 as carpedm20's re-implementation).
        psi: ``identity`` (paper default), ``mean`` (over channels) or ``features`` (frozen conv features).
        gan_mode: ``vanilla`` (the paper's cross-entropy), ``lsgan`` or ``hinge``.
        real_target: discriminator target for real patches.
        g_target: refiner target.
        k_g: refiner updates per round (2 as arXiv v1).
        k_d: discriminator updates per round (1).
        refiner_pretrain_steps: self-regularization-only refiner updates first (paper: 1000).
        disc_pretrain_steps: discriminator updates before alternating (paper: 200).
        history_capacity: images in the history buffer.
        optimizer: one for R, one for D (paper: plain SGD, 1e-3).
        ema_decay: EMA of the refiner weights used by ``refine()``; ``None`` = off.
        fd_samples: images per side for ``val/fd_effnet``.
        fd_image_size: input size of the feature network for the distances.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        width: int = 64,
        num_blocks: int = 4,
        kernel: int = 3,
        disc_widths: tuple[int, int, int, int] = (96, 64, 32, 32),
        lambda_reg: float = 0.5,
        psi: Psi = "identity",
        gan_mode: AdversarialMode = "vanilla",
        real_target: float = 1.0,
        g_target: float = 1.0,
        k_g: int = 2,
        k_d: int = 1,
        refiner_pretrain_steps: int = 1000,
        disc_pretrain_steps: int = 200,
        history_capacity: int = 25600,
        optimizer: OptimizerSpec = OptimizerSpec(name="sgd", lr=1e-3, momentum=0.0),
        ema_decay: float | None = None,
        fd_samples: int = 500,
        fd_image_size: int = 224,
    ) -> None:
        super().__init__()
        if k_g < 1 or k_d < 1:
            raise ValueError(f"k_g and k_d must be at least 1, got {k_g}, {k_d}")
        self.save_hyperparameters()
        self.optimizer_spec = as_spec(OptimizerSpec, optimizer)
        plain_hparams(self)
        self.automatic_optimization = False
        self.refiner = Refiner(in_channels=in_channels, width=width, num_blocks=num_blocks, kernel=kernel)
        self.discriminator = LocalDiscriminator(in_channels=in_channels, widths=tuple(disc_widths))
        self.history = ImagePool(capacity=history_capacity, mode="history", seed=3)
        self.psi_net = LowLevelFeatures(stages=2) if psi == "features" else None
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.setup_refiner()

    @property
    def generator(self) -> Refiner:
        return self.refiner

    def psi(self, images: Tensor) -> Tensor:
        """The self-regularization feature map ψ."""
        if self.hparams.psi == "mean":
            return images.mean(dim=1, keepdim=True)
        if self.hparams.psi == "features":
            return self.psi_net(images)
        return images

    def self_regularization(self, refined: Tensor, x: Tensor) -> Tensor:
        """mean|ψ(R(x)) − ψ(x)|: on the refiner's [-1, 1] scale for image-space ψ (the units λ is quoted in)."""
        if self.hparams.psi == "features":
            return (self.psi(refined) - self.psi(x)).abs().mean()
        return l1_generator_units(self.psi(refined), self.psi(x))

    def phase(self, update: int) -> str:
        """``refiner_pretrain`` | ``disc_pretrain`` | ``refiner`` | ``disc`` for the given update index."""
        hp = self.hparams
        if update < hp.refiner_pretrain_steps:
            return "refiner_pretrain"
        if update < hp.refiner_pretrain_steps + hp.disc_pretrain_steps:
            return "disc_pretrain"
        k = (update - hp.refiner_pretrain_steps - hp.disc_pretrain_steps) % (hp.k_g + hp.k_d)
        return "refiner" if k < hp.k_g else "disc"

    def refiner_losses(self, x: Tensor, *, adversarial: bool) -> dict[str, Tensor]:
        hp = self.hparams
        refined = self.refiner(x)
        reg = self.self_regularization(refined, x)
        adv = (
            generator_loss(self.discriminator(refined), mode=hp.gan_mode, target=hp.g_target)
            if adversarial
            else reg.new_zeros(())
        )
        return {"loss_r": adv + hp.lambda_reg * reg, "loss_r_adv": adv, "loss_r_reg": reg}

    def discriminator_losses(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        hp = self.hparams
        with torch.no_grad():
            refined = self.refiner(x)
        fake = self.history(refined)
        real_scores, fake_scores = self.discriminator(y), self.discriminator(fake)
        loss = discriminator_loss(real_scores, fake_scores, mode=hp.gan_mode, real_target=hp.real_target)
        acc = torch.cat([(real_scores > 0).float().flatten(), (fake_scores < 0).float().flatten()]).mean()
        return {"loss_d": loss, "d_acc": acc}

    def training_step(self, batch: DomainBatch, batch_idx: int) -> None:
        x, y = batch.source.images, batch.target.images
        self.record_size(x)
        opt_r, opt_d = self.optimizers()
        phase = self.phase(int(self.updates))
        if phase.startswith("refiner"):
            with self.toggled_optimizer(opt_r):
                losses = self.refiner_losses(x, adversarial=phase == "refiner")
                manual_update(self, opt_r, losses["loss_r"], name="train/loss_r", step=int(self.updates))
            self.update_ema()
        else:
            with self.toggled_optimizer(opt_d):
                losses = self.discriminator_losses(x, y)
                manual_update(self, opt_d, losses["loss_d"], name="train/loss_d", step=int(self.updates))
        self.updates += 1
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, batch_size=len(x))

    def configure_optimizers(self) -> Any:
        return [
            self.optimizer_spec.build(self.refiner.parameters()),
            self.optimizer_spec.build(self.discriminator.parameters()),
        ]
