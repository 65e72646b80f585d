"""CycleGAN: Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks.

Zhu, Park, Isola, Efros, ICCV 2017, arXiv:1703.10593 (reference code: junyanz/pytorch-CycleGAN-and-pix2pix).

Two generators G: S→T (the refiner) and F: T→S, two PatchGAN discriminators D_T and D_S. Per batch, with a ~ source
and b ~ target (unpaired):

    generators:      L_G = g(D_T(G(a))) + g(D_S(F(b)))
                           + λ_cyc (|F(G(a)) − a|₁ + |G(F(b)) − b|₁)
                           + λ_cyc · λ_idt (|G(b) − b|₁ + |F(a) − a|₁)                (identity weight 0.5·λ)
    discriminators:  L_D = d(D_T(b), D_T(pool_T(G(a)))) + d(D_S(a), D_S(pool_S(F(b))))

with LSGAN g/d (D's objective halved), 50-image pools per direction, Adam 2e-4 β (0.5, 0.999) for {G, F} and for
{D_S, D_T}, and the linear policy: constant LR for ``constant_epochs`` then linear decay over ``decay_epochs``
(stepped per epoch). The L1 terms are measured on the generators' [-1, 1] scale, as the reference computes them
(the zoo's images are [0, 1]; :func:`~syn2real.losses.l1_generator_units`), so λ means what the paper's λ means.
Reference defaults throughout; ``ema_decay`` (off by default) adds an EMA generator used by
``refine()``.
"""

from __future__ import annotations

from typing import Any

from refinement.cyclegan.translation import CycleTranslation
from syn2real.batch import DomainBatch
from syn2real.losses import AdversarialMode
from syn2real.nn import ResnetGenerator
from syn2real.nn.generators import Norm
from syn2real.optim import ManualSchedules, OptimizerSpec, SchedulerSpec, manual_optimization, manual_update
from syn2real.refiner import RefinerBase
from syn2real.registry import register_method
from syn2real.specs import as_spec, plain_hparams


@register_method
class CycleGAN(CycleTranslation, ManualSchedules, RefinerBase):
    """CycleGAN refiner (source → target) with the reference defaults.

    Args:
        in_channels: image channels (both domains).
        base_channels: generator width (paper: 64).
        num_blocks: generator residual blocks (paper: 9 at 256 px, 6 at 128 px).
        num_downsampling: generator stride-2 stages (paper: 2).
        norm: generator and discriminator norm (paper: instance).
        disc_base_channels: PatchGAN width (paper: 64).
        disc_layers: PatchGAN stride-2 layers (paper: 3, the 70×70 PatchGAN).
        gan_mode: ``lsgan`` (paper), ``vanilla`` or ``hinge``.
        real_target: discriminator target for real images (< 1: one-sided label smoothing).
        g_target: generator target (0.9: GazeGAN-style smoothing).
        lambda_cycle: λ of the cycle loss (paper: 10).
        lambda_identity: identity weight relative to λ_cycle (paper: 0.5).
        pool_size: image pool per direction (paper: 50).
        optimizer: one for {G, F}, one for {D_S, D_T} (paper: Adam 2e-4, β (0.5, 0.999)).
        scheduler: the paper's ``linear_decay``, stepped per epoch: 100 constant epochs, then 100 decaying to 0.
        ema_decay: EMA of the refiner's weights (e.g. 0.999); ``None`` = off (paper).
        fd_samples: images per side for ``val/fd_effnet`` / ``val/kid_effnet``.
        fd_image_size: input size of the feature network for the distances.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        base_channels: int = 64,
        num_blocks: int = 9,
        num_downsampling: int = 2,
        norm: Norm = "instance",
        disc_base_channels: int = 64,
        disc_layers: int = 3,
        gan_mode: AdversarialMode = "lsgan",
        real_target: float = 1.0,
        g_target: float = 1.0,
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        pool_size: int = 50,
        optimizer: OptimizerSpec = OptimizerSpec(name="adam", lr=2e-4, betas=(0.5, 0.999)),
        scheduler: SchedulerSpec = SchedulerSpec(name="linear_decay", constant_epochs=100, decay_epochs=100),
        ema_decay: float | None = None,
        fd_samples: int = 500,
        fd_image_size: int = 224,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.optimizer_spec = as_spec(OptimizerSpec, optimizer)
        self.scheduler_spec = as_spec(SchedulerSpec, scheduler)
        plain_hparams(self)
        self.automatic_optimization = False
        self.build_translation(
            channels=in_channels,
            base_channels=base_channels,
            num_blocks=num_blocks,
            num_downsampling=num_downsampling,
            norm=norm,
            disc_base_channels=disc_base_channels,
            disc_layers=disc_layers,
            pool_size=pool_size,
        )
        self.setup_refiner()

    @property
    def generator(self) -> ResnetGenerator:
        return self.gen_s2t

    def training_step(self, batch: DomainBatch, batch_idx: int) -> None:
        a, b = batch.source.images, batch.target.images
        self.record_size(a)
        opt_g, opt_d = self.optimizers()
        with self.toggled_optimizer(opt_g):
            losses_g, fake_b, fake_a = self.generator_losses(a, b)
            manual_update(self, opt_g, losses_g["loss_g"], name="train/loss_g")
        self.update_ema()
        with self.toggled_optimizer(opt_d):
            losses_d = self.discriminator_losses(a, b, fake_b.detach(), fake_a.detach())
            manual_update(self, opt_d, losses_d["loss_d"], name="train/loss_d")
        self.log_dict({f"train/{k}": v for k, v in {**losses_g, **losses_d}.items()}, prog_bar=False, batch_size=len(a))

    def configure_optimizers(self) -> Any:
        opt_g = self.optimizer_spec.build([*self.gen_s2t.parameters(), *self.gen_t2s.parameters()])
        opt_d = self.optimizer_spec.build([*self.disc_s.parameters(), *self.disc_t.parameters()])
        return manual_optimization(
            [opt_g, opt_d], self.scheduler_spec, total_steps=self.trainer.estimated_stepping_batches
        )
