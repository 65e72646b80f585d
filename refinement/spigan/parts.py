"""SPIGAN's own parts: the perceptual regularizer's frozen feature network, and depth as a regression target."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from syn2real.pretrained import IMAGENET_MEAN, IMAGENET_STD, efficientnet_lite0_imagenet


class PerceptualFeatures(nn.Module):
    """Feature maps of the first ``stages`` stages of the offline ImageNet EfficientNet-Lite0 (frozen).

    The paper's φ is VGG19 (conv layers of several stages); VGG weights cannot be loaded offline, so φ is the
    EfficientNet-Lite0 stem and its first blocks, the same role (ImageNet low- and mid-level features). Images in
    [0, 1], grey repeated to RGB, ImageNet-normalized, optionally resized to ``image_size`` first.

    Args:
        stages: how many of the network's block stages to tap (1-7; the stem output is always one of the maps).
        image_size: side the images are resized to before φ; ``None`` = as given.
    """

    def __init__(self, *, stages: int = 3, image_size: int | None = None) -> None:
        super().__init__()
        net = efficientnet_lite0_imagenet()
        if not 1 <= stages <= len(net.blocks):
            raise ValueError(f"perceptual stages must be 1-{len(net.blocks)}, got {stages}")
        self.stem = nn.Sequential(net.conv_stem, net.bn1)
        self.stages = nn.ModuleList(net.blocks[:stages])
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> PerceptualFeatures:  # always a frozen feature extractor
        return super().train(False)

    def forward(self, images: Tensor) -> list[Tensor]:
        x = images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images
        if self.image_size is not None:
            x = F.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", align_corners=False)
        x = self.stem((x - self.mean) / self.std)
        maps = [x]
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps


def perceptual_loss(features: nn.Module, source: Tensor, refined: Tensor) -> Tensor:
    """L_perc = Σ_l mean |φ_l(x_s) − φ_l(G(x_s))| over the tapped maps (φ's weights get no gradient)."""
    with torch.no_grad():
        wanted = features(source)
    return sum(
        (F.l1_loss(got, want) for got, want in zip(features(refined), wanted, strict=True)), source.new_zeros(())
    )


def normalized_depth(depth: Tensor, depth_range: tuple[float, float] | None) -> Tensor:
    """Depth as P's [0, 1] target.

    ``depth_range = (near, far)`` in the dataset's own units (``depth_units`` in its dataset.json): clipped to the
    range and scaled, so metric depth keeps its meaning across images and far pixels (sky) cannot dominate the L1
    (the spec's pitfall). ``None``: each image scaled by its own min and max, which needs no units (relative depth,
    such as the digits simulator's).

    Examples:
        >>> normalized_depth(torch.tensor([[[[2.0, 4.0], [3.0, 100.0]]]]), (2.0, 6.0)).flatten().tolist()
        [0.0, 0.5, 0.25, 1.0]
        >>> normalized_depth(torch.tensor([[[[2.0, 4.0], [3.0, 6.0]]]]), None).flatten().tolist()
        [0.0, 0.5, 0.25, 1.0]
    """
    if depth_range is not None:
        near, far = depth_range
        return ((depth - near) / (far - near)).clamp(0, 1)
    flat = depth.flatten(1)
    low, high = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
    return (depth - low) / (high - low).clamp_min(1e-8)
