"""PixelDA's generator G(x, z) and discriminator D (the released ``pixelda_model.py``, read as a specification).

Both take and return images in [0, 1] (DESIGN.md data contract) and work on the [-1, 1] scale inside, as the release.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from syn2real.nn import init_gan_weights
from syn2real.nn.generators import ResidualBlock


class NoiseGenerator(nn.Module):
    """ResNet generator with a noise channel: z ~ U(−1, 1)^d → FC → BN → ReLU → one H×W map, concatenated to x.

    Then conv 3×3 + ReLU, ``num_blocks`` residual blocks (conv-BN-ReLU-conv-BN + skip), conv 1×1 → tanh. No striding:
    the output has the input's size, which must be ``image_size`` (the noise projection is built for it).

    Args:
        channels: image channels (in and out).
        image_size: H = W of the images.
        noise_dims: dimensions of z (release: 10; 0 = no noise channel).
        width: filters of every conv (release: 64).
        num_blocks: residual blocks (release: 6).

    Examples:
        >>> g = NoiseGenerator(channels=3, image_size=8, width=4, num_blocks=1)
        >>> y = g(torch.rand(2, 3, 8, 8))
        >>> tuple(y.shape), bool(y.min() >= 0), bool(y.max() <= 1)
        ((2, 3, 8, 8), True, True)
    """

    def __init__(self, *, channels: int, image_size: int, noise_dims: int = 10, width: int = 64, num_blocks: int = 6):
        super().__init__()
        self.image_size, self.noise_dims = image_size, noise_dims
        self.project = (
            nn.Sequential(nn.Linear(noise_dims, image_size * image_size), nn.BatchNorm1d(image_size**2), nn.ReLU())
            if noise_dims
            else None
        )
        extra = 1 if noise_dims else 0
        self.stem = nn.Sequential(nn.Conv2d(channels + extra, width, 3, padding=1), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[ResidualBlock(width, "batch") for _ in range(num_blocks)])
        self.head = nn.Conv2d(width, channels, 1)
        init_gan_weights(self)

    def sample_noise(self, batch: int, device: torch.device) -> Tensor:
        """Noise z ~ U(−1, 1), fresh per call (torch's global generator: seed it for reproducible exports)."""
        return torch.rand(batch, self.noise_dims, device=device) * 2 - 1

    def forward(self, images: Tensor, noise: Tensor | None = None) -> Tensor:
        b, _, h, w = images.shape
        if (h, w) != (self.image_size, self.image_size):
            raise ValueError(
                f"PixelDA's generator was built for {self.image_size}×{self.image_size} images and got {h}×{w}; "
                "set model.init_args.image_size to the data's size (source and target must have the same size)"
            )
        x = images * 2 - 1
        if self.project is not None:
            z = self.sample_noise(b, images.device) if noise is None else noise
            x = torch.cat([x, self.project(z).view(b, 1, h, w)], dim=1)
        return (torch.tanh(self.head(self.blocks(self.stem(x)))) + 1) / 2


class GaussianNoise(nn.Module):
    """Adds N(0, σ²) noise in training mode only (the release's noise on D's hidden layers)."""

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = std

    def forward(self, x: Tensor) -> Tensor:
        return x + self.std * torch.randn_like(x) if self.training and self.std > 0 else x


class PixelDADiscriminator(nn.Module):
    """Conv 3×3 stride 1 (no BN), then stride-2 convs doubling the filters until 4×4, then FC → one logit.

    Every conv is followed by LeakyReLU 0.2, dropout and Gaussian noise (training only); BN on all but the first.

    Args:
        channels: image channels.
        image_size: H = W of the images.
        width: filters of the first conv (release: 64).
        dropout: drop probability after each conv (release: keep 0.9 → 0.1).
        noise_std: σ of the hidden-layer noise (release: 0.2).

    Examples:
        >>> d = PixelDADiscriminator(channels=1, image_size=32, width=4)
        >>> tuple(d(torch.rand(2, 1, 32, 32)).shape)
        (2,)
    """

    def __init__(
        self, *, channels: int, image_size: int, width: int = 64, dropout: float = 0.1, noise_std: float = 0.2
    ) -> None:
        super().__init__()

        def after(c: int, bn: bool) -> list[nn.Module]:
            norm: list[nn.Module] = [nn.BatchNorm2d(c)] if bn else []
            return [*norm, nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout), GaussianNoise(noise_std)]

        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), *after(width, bn=False)]
        size, c = image_size, width
        while size > 4:
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=False), *after(2 * c, bn=True)]
            size, c = math.ceil(size / 2), 2 * c
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c * size * size, 1)
        init_gan_weights(self)

    def forward(self, images: Tensor) -> Tensor:
        return self.fc(self.features(images * 2 - 1).flatten(1)).squeeze(1)
