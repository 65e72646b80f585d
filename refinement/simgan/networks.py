"""SimGAN's refiner: a fully convolutional ResNet without striding or pooling (output size = input size)."""

from __future__ import annotations

from torch import Tensor, nn


class RefinerBlock(nn.Module):
    """conv3×3 → ReLU → conv3×3, added to the input, ReLU after the sum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return (x + self.body(x)).relu()


class Refiner(nn.Module):
    """Conv ``kernel``×``kernel`` (width) → ReLU → ``num_blocks`` ResNet blocks → conv 1×1 → tanh.

    Paper (gaze): 3×3, width 64, 4 blocks; (hand pose): 7×7, 10 blocks. Images in [0, 1] in and out.

    Examples:
        >>> import torch
        >>> Refiner(in_channels=1, width=4, num_blocks=1)(torch.rand(2, 1, 35, 55)).shape
        torch.Size([2, 1, 35, 55])
    """

    def __init__(self, *, in_channels: int = 1, width: int = 64, num_blocks: int = 4, kernel: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel, padding=kernel // 2),
            nn.ReLU(inplace=True),
            *[RefinerBlock(width) for _ in range(num_blocks)],
            nn.Conv2d(width, in_channels, 1),
            nn.Tanh(),
        )

    def forward(self, images: Tensor) -> Tensor:
        return (self.net(images * 2 - 1) + 1) / 2
