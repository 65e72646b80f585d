"""Image-to-image generators shared by the GAN refiners (CycleGAN, CyCADA, SPIGAN), and GAN weight init.

Generators take and return images in [0, 1] (DESIGN.md data contract): they map to [-1, 1] inside and end in
``tanh``, whose output is mapped back.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

Norm = Literal["instance", "batch", "none"]


def norm_layer(norm: Norm, channels: int) -> nn.Module:
    """InstanceNorm without affine or running statistics (CycleGAN upstream), BatchNorm, or identity."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; use instance, batch or none")


def init_gan_weights(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """CycleGAN's ``normal`` init: conv/linear weights ~ N(0, gain), biases 0; BN weights ~ N(1, gain)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return module


class ResidualBlock(nn.Module):
    """Reflection-padded conv-norm-ReLU-conv-norm with an identity skip (no activation after the sum)."""

    def __init__(self, channels: int, norm: Norm) -> None:
        super().__init__()
        bias = norm != "batch"
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator ``c7s1-w, d2w, d4w, R4w×n, u2w, uw, c7s1-out``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        base_channels: width ``w`` of the first layer (paper: 64).
        num_blocks: residual blocks at the bottleneck (paper: 6 for 128 px, 9 for 256 px).
        num_downsampling: stride-2 stages (paper: 2).
        norm: ``instance`` (paper), ``batch`` or ``none``.

    Shape:
        ``B×in×H×W -> B×out×H×W`` for ``H, W`` divisible by ``2**num_downsampling``.

    Examples:
        >>> import torch
        >>> g = ResnetGenerator(in_channels=1, out_channels=1, base_channels=4, num_blocks=1)
        >>> y = g(torch.rand(2, 1, 16, 16))
        >>> tuple(y.shape), bool(y.min() >= 0), bool(y.max() <= 1)
        ((2, 1, 16, 16), True, True)
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 64,
        num_blocks: int = 9,
        num_downsampling: int = 2,
        norm: Norm = "instance",
    ) -> None:
        super().__init__()
        bias = norm != "batch"
        w = base_channels
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, w, 7, bias=bias),
            norm_layer(norm, w),
            nn.ReLU(inplace=True),
        ]
        for i in range(num_downsampling):
            c = w * 2**i
            layers += [
                nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias),
                norm_layer(norm, 2 * c),
                nn.ReLU(inplace=True),
            ]
        c = w * 2**num_downsampling
        layers += [ResidualBlock(c, norm) for _ in range(num_blocks)]
        for i in range(num_downsampling, 0, -1):
            c = w * 2**i
            layers += [
                nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                norm_layer(norm, c // 2),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(w, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_gan_weights(self)

    def forward(self, images: Tensor) -> Tensor:
        return (self.net(images * 2 - 1) + 1) / 2
