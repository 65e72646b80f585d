"""The CycleGAN machinery that CycleGAN and CyCADA share: two generators, two PatchGANs, two image pools, the losses.

Per batch, with a ~ source and b ~ target (unpaired), G: S→T, F: T→S:

    generators:      L_G = w_st · g(D_T(G(a))) + g(D_S(F(b)))
                           + λ_cyc (|F(G(a)) − a|₁ + |G(F(b)) − b|₁)
                           + λ_cyc · λ_idt (|G(b) − b|₁ + |F(a) − a|₁)
    discriminators:  L_D = d(D_T(b), D_T(pool_T(G(a)))) + d(D_S(a), D_S(pool_S(F(b))))

(w_st = 1 in CycleGAN; CyCADA's release doubles it). The L1 terms are on the generators' [-1, 1] scale
(:func:`~syn2real.losses.l1_generator_units`), as the reference code computes them.

Speed: with per-sample normalization (instance norm, the paper's, or none) a network's outputs for a concatenated
batch are its outputs for the parts, so each network is called once per dependency level instead of once per term:
F on (b, a) gives F(b) and the identity F(a); G on (a, b, F(b)) gives G(a), the identity G(b) and the cycle G(F(b));
F on G(a) gives the cycle F(G(a)): 3 generator calls instead of 6, and one call per discriminator on real and pooled
fakes instead of two. The losses equal the per-term calls' (tested); with batch norm the calls stay separate, since
concatenation would change the batch statistics.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

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

    @property
    def batched_calls(self) -> bool:
        """Whether a network may see several terms' inputs in one batch (per-sample normalization only)."""
        return self.hparams.norm != "batch"

    def calls(self, net: nn.Module, *inputs: Tensor) -> tuple[Tensor, ...]:
        """``net`` applied to each input: one concatenated call when :attr:`batched_calls`, else one call each."""
        if not self.batched_calls or len(inputs) == 1:
            return tuple(net(x) for x in inputs)
        return tuple(torch.split(net(torch.cat(inputs)), [len(x) for x in inputs]))

    def generator_losses(
        self, a: Tensor, b: Tensor, *, adv_weight_s2t: float = 1.0
    ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """Named generator terms (``loss_g`` their weighted sum), and the fakes G(a), F(b)."""
        hp = self.hparams
        identity_on = hp.lambda_identity > 0
        g, f = self.gen_s2t, self.gen_t2s
        if not self.batched_calls:  # the reference's order: batch norm's running statistics as it updates them
            fake_b, fake_a = g(a), f(b)
            rec_a, rec_b = f(fake_b), g(fake_a)
            idt_b, idt_a = (g(b), f(a)) if identity_on else (None, None)
        elif identity_on:
            fake_a, idt_a = self.calls(f, b, a)
            fake_b, idt_b, rec_b = self.calls(g, a, b, fake_a)
            (rec_a,) = self.calls(f, fake_b)
        else:
            (fake_a,) = self.calls(f, b)
            fake_b, rec_b = self.calls(g, a, fake_a)
            (rec_a,) = self.calls(f, fake_b)
        adv = adv_weight_s2t * generator_loss(self.disc_t(fake_b), mode=hp.gan_mode, target=hp.g_target)
        adv = adv + generator_loss(self.disc_s(fake_a), mode=hp.gan_mode, target=hp.g_target)
        l1 = l1_generator_units
        cycle = l1(rec_a, a) + l1(rec_b, b)
        identity = l1(idt_b, b) + l1(idt_a, a) if identity_on else a.new_zeros(())
        total = adv + hp.lambda_cycle * cycle + hp.lambda_cycle * hp.lambda_identity * identity
        return {"loss_g": total, "loss_g_adv": adv, "loss_g_cycle": cycle, "loss_g_identity": identity}, fake_b, fake_a

    def discriminator_losses(self, a: Tensor, b: Tensor, fake_b: Tensor, fake_a: Tensor) -> dict[str, Tensor]:
        """Named discriminator terms on real images and pooled (detached) fakes."""
        hp = self.hparams
        d_t = discriminator_loss(
            *self.calls(self.disc_t, b, self.pool_t(fake_b)), mode=hp.gan_mode, real_target=hp.real_target
        )
        d_s = discriminator_loss(
            *self.calls(self.disc_s, a, self.pool_s(fake_a)), mode=hp.gan_mode, real_target=hp.real_target
        )
        return {"loss_d": d_s + d_t, "loss_d_source": d_s, "loss_d_target": d_t}
