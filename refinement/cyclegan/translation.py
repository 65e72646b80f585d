"""The CycleGAN machinery that CycleGAN and CyCADA share: two generators, two PatchGANs, two image pools, the losses.

Per batch, with a ~ source and b ~ target (unpaired), G: S→T, F: T→S:

    generators:      L_G = w_st · g(D_T(G(a))) + g(D_S(F(b)))
                           + λ_cyc (|F(G(a)) − a|₁ + |G(F(b)) − b|₁)
                           + λ_cyc · λ_idt (|G(b) − b|₁ + |F(a) − a|₁)
    discriminators:  L_D = d(D_T(b), D_T(pool_T(G(a)))) + d(D_S(a), D_S(pool_S(F(b))))

(w_st = 1 in CycleGAN; CyCADA's release doubles it). The L1 terms are on the generators' [-1, 1] scale
(:func:`~syn2real.losses.l1_generator_units`), as the reference code computes them.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from syn2real.losses import discriminator_loss, generator_loss, l1_generator_units
from syn2real.nn import ImagePool, PatchDiscriminator, ResnetGenerator
from syn2real.nn.generators import Norm


class CycleTranslation:
    """CycleGAN's networks and losses, mixed into a ``LightningModule``.

    :meth:`build_translation` makes ``gen_s2t``, ``gen_t2s``, ``disc_s``, ``disc_t``, ``pool_s`` and ``pool_t``.

    Hyperparameters read from ``self.hparams``: ``gan_mode``, ``g_target``, ``real_target``, ``lambda_cycle``,
    ``lambda_identity``.
    """

    hparams: Any

    def build_translation(
        self,
        *,
        channels: int,
        base_channels: int,
        num_blocks: int,
        num_downsampling: int,
        norm: Norm,
        disc_base_channels: int,
        disc_layers: int,
        pool_size: int,
    ) -> None:
        gen = {
            "in_channels": channels,
            "out_channels": channels,
            "base_channels": base_channels,
            "num_blocks": num_blocks,
            "num_downsampling": num_downsampling,
            "norm": norm,
        }
        disc = {"in_channels": channels, "base_channels": disc_base_channels, "num_layers": disc_layers, "norm": norm}
        self.gen_s2t, self.gen_t2s = ResnetGenerator(**gen), ResnetGenerator(**gen)
        self.disc_s, self.disc_t = PatchDiscriminator(**disc), PatchDiscriminator(**disc)
        self.pool_s = ImagePool(capacity=pool_size, mode="cyclegan", seed=1)
        self.pool_t = ImagePool(capacity=pool_size, mode="cyclegan", seed=2)

    def generator_losses(
        self, a: Tensor, b: Tensor, *, adv_weight_s2t: float = 1.0
    ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """Named generator terms (``loss_g`` their weighted sum), and the fakes G(a), F(b)."""
        hp = self.hparams
        fake_b, fake_a = self.gen_s2t(a), self.gen_t2s(b)
        adv = adv_weight_s2t * generator_loss(self.disc_t(fake_b), mode=hp.gan_mode, target=hp.g_target)
        adv = adv + generator_loss(self.disc_s(fake_a), mode=hp.gan_mode, target=hp.g_target)
        l1 = l1_generator_units
        cycle = l1(self.gen_t2s(fake_b), a) + l1(self.gen_s2t(fake_a), b)
        identity = l1(self.gen_s2t(b), b) + l1(self.gen_t2s(a), a) if hp.lambda_identity > 0 else a.new_zeros(())
        total = adv + hp.lambda_cycle * cycle + hp.lambda_cycle * hp.lambda_identity * identity
        return {"loss_g": total, "loss_g_adv": adv, "loss_g_cycle": cycle, "loss_g_identity": identity}, fake_b, fake_a

    def discriminator_losses(self, a: Tensor, b: Tensor, fake_b: Tensor, fake_a: Tensor) -> dict[str, Tensor]:
        """Named discriminator terms on real images and pooled (detached) fakes."""
        hp = self.hparams
        d_t = discriminator_loss(
            self.disc_t(b), self.disc_t(self.pool_t(fake_b)), mode=hp.gan_mode, real_target=hp.real_target
        )
        d_s = discriminator_loss(
            self.disc_s(a), self.disc_s(self.pool_s(fake_a)), mode=hp.gan_mode, real_target=hp.real_target
        )
        return {"loss_d": d_s + d_t, "loss_d_source": d_s, "loss_d_target": d_t}
