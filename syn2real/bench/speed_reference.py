"""The reference CycleGAN iteration that ``syn2real bench speed`` times ours against.

A plain-PyTorch loop written the way the reference code (junyanz/pytorch-CycleGAN-and-pix2pix, ``cycle_gan_model.py``)
runs one iteration: the four forward passes G(a), F(G(a)), F(b), G(F(b)); then with the discriminators' gradients
off, the identity passes G(b), F(a), both LSGAN generator terms, both cycle terms, one backward and one Adam step for
{G, F}; then with the discriminators' gradients on, each discriminator on its real batch and on a 50-image pool of
fakes, ``0.5 (d_real + d_fake)`` backward per discriminator, one Adam step for {D_S, D_T}. Six generator calls and
six discriminator calls per iteration, no Lightning, no logging.

It builds the same networks as :class:`refinement.cyclegan.CycleGAN` (same classes, widths and parameter count) so
the two loops differ only in how they run an iteration. Images stay in [0, 1] as the zoo's do; the L1 terms use
:func:`~syn2real.losses.l1_generator_units` like ours, so both loops compute the same objective.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from syn2real.losses import l1_generator_units
from syn2real.nn import PatchDiscriminator, ResnetGenerator


@dataclass(frozen=True)
class CycleGANSize:
    """The network sizes and batch of one speed comparison (a subset of CycleGAN's constructor arguments)."""

    name: str
    channels: int
    image_size: int
    batch_size: int
    base_channels: int
    num_blocks: int
    disc_base_channels: int
    disc_layers: int

    def model_args(self) -> dict[str, int]:
        """Keyword arguments of :class:`refinement.cyclegan.CycleGAN` for these sizes."""
        return {
            "in_channels": self.channels,
            "base_channels": self.base_channels,
            "num_blocks": self.num_blocks,
            "disc_base_channels": self.disc_base_channels,
            "disc_layers": self.disc_layers,
        }


SIZES = {
    # configs/model/digits/cyclegan.yaml with the digits-photo experiment's colour renders and batch
    "digits": CycleGANSize("digits", 3, 32, 16, 16, 3, 16, 2),
    # the paper's networks (width 64, 6 blocks as at 128 px, 70×70 PatchGAN) at 64 px, batch 1 as the paper trains
    "paper-64px": CycleGANSize("paper-64px", 3, 64, 1, 64, 6, 64, 3),
}


class _Pool:
    """The reference's image pool: store the first 50 fakes, then swap a stored one in with probability 0.5."""

    def __init__(self, capacity: int = 50) -> None:
        self.capacity, self.images = capacity, []
        self.rng = random.Random(0)

    def query(self, images: Tensor) -> Tensor:
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.capacity:
                self.images.append(image)
                out.append(image)
            elif self.rng.random() > 0.5:
                k = self.rng.randrange(self.capacity)
                out.append(self.images[k].clone())
                self.images[k] = image
            else:
                out.append(image)
        return torch.cat(out)


class ReferenceCycleGAN:
    """The reference iteration over the networks of ``size`` (call :meth:`step` with a source and a target batch)."""

    def __init__(
        self, size: CycleGANSize, *, lambda_cycle: float = 10.0, lambda_identity: float = 0.5, device: str = "cpu"
    ) -> None:
        gen = {
            "in_channels": size.channels,
            "out_channels": size.channels,
            "base_channels": size.base_channels,
            "num_blocks": size.num_blocks,
        }
        disc = {"in_channels": size.channels, "base_channels": size.disc_base_channels, "num_layers": size.disc_layers}
        self.gen_a, self.gen_b = ResnetGenerator(**gen), ResnetGenerator(**gen)
        self.disc_a, self.disc_b = PatchDiscriminator(**disc), PatchDiscriminator(**disc)
        for net in self.networks():
            net.to(device)
        adam = {"lr": 2e-4, "betas": (0.5, 0.999)}
        self.opt_g = torch.optim.Adam([*self.gen_a.parameters(), *self.gen_b.parameters()], **adam)
        self.opt_d = torch.optim.Adam([*self.disc_a.parameters(), *self.disc_b.parameters()], **adam)
        self.pool_a, self.pool_b = _Pool(), _Pool()
        self.lambda_cycle, self.lambda_identity = lambda_cycle, lambda_identity

    def networks(self) -> list[nn.Module]:
        return [self.gen_a, self.gen_b, self.disc_a, self.disc_b]

    @staticmethod
    def _requires_grad(nets: list[nn.Module], flag: bool) -> None:
        for net in nets:
            for p in net.parameters():
                p.requires_grad_(flag)

    @staticmethod
    def _lsgan(pred: Tensor, target: float) -> Tensor:
        return F.mse_loss(pred, torch.full_like(pred, target))

    def step(self, real_a: Tensor, real_b: Tensor) -> float:
        """One iteration; returns the generator objective (a float, so the caller can check it is finite)."""
        fake_b = self.gen_a(real_a)
        rec_a = self.gen_b(fake_b)
        fake_a = self.gen_b(real_b)
        rec_b = self.gen_a(fake_a)
        self._requires_grad([self.disc_a, self.disc_b], False)
        self.opt_g.zero_grad()
        weight_idt = self.lambda_cycle * self.lambda_identity
        loss_idt = weight_idt * (
            l1_generator_units(self.gen_a(real_b), real_b) + l1_generator_units(self.gen_b(real_a), real_a)
        )
        loss_adv = self._lsgan(self.disc_a(fake_b), 1.0) + self._lsgan(self.disc_b(fake_a), 1.0)
        loss_cycle = self.lambda_cycle * (l1_generator_units(rec_a, real_a) + l1_generator_units(rec_b, real_b))
        loss_g = loss_adv + loss_cycle + loss_idt
        loss_g.backward()
        self.opt_g.step()
        self._requires_grad([self.disc_a, self.disc_b], True)
        self.opt_d.zero_grad()
        pairs = ((self.disc_a, real_b, self.pool_b.query(fake_b)), (self.disc_b, real_a, self.pool_a.query(fake_a)))
        for disc, real, fake in pairs:
            loss_d = 0.5 * (self._lsgan(disc(real), 1.0) + self._lsgan(disc(fake.detach()), 0.0))
            loss_d.backward()
        self.opt_d.step()
        return float(loss_g.detach())
