"""Distances between refined and real images in the offline EfficientNet-Lite0 feature space.

Standard FID needs Inception weights that are not available offline; these are Fréchet and kernel (KID-style)
distances computed by torchmetrics over EfficientNet-Lite0 ImageNet features, named honestly ``fd_effnet`` and
``kid_effnet``. Compare them only with each other (same image size, same number of images).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from syn2real.pretrained import IMAGENET_MEAN, IMAGENET_STD, efficientnet_lite0_imagenet


class EffNetFeatures(nn.Module):
    """Pooled 1280-d EfficientNet-Lite0 features of images in [0, 1] (grey repeated to RGB, resized).

    Args:
        image_size: side the images are resized to before the network (ImageNet models expect ~224).
    """

    num_features = 1280

    def __init__(self, image_size: int = 224) -> None:
        super().__init__()
        self.image_size = image_size
        self.net = efficientnet_lite0_imagenet(num_classes=0).eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> EffNetFeatures:  # always a frozen feature extractor
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        x = images.float()
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        # fp32 whatever the run's precision: a distance must not change with ``precision: bf16-mixed``
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = F.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", antialias=True, align_corners=False)
            return self.net((x - self.mean) / self.std)


class FeatureDistances(nn.Module):
    """Fréchet distance and KID between two image sets in one feature space; ``update`` then ``compute``.

    Args:
        image_size: input side of the feature network.
        kid_subset_size: images per KID subset (capped by the smaller set).
    """

    def __init__(self, *, image_size: int = 224, kid_subset_size: int = 100) -> None:
        super().__init__()
        features = EffNetFeatures(image_size)
        self.fd = FrechetInceptionDistance(feature=features, normalize=True)
        self.kid = KernelInceptionDistance(feature=features, normalize=True, subset_size=kid_subset_size, subsets=50)
        self.kid_subset_size = kid_subset_size
        self.counts = {True: 0, False: 0}

    def update(self, images: Tensor, *, real: bool) -> None:
        self.fd.update(images, real=real)
        self.kid.update(images, real=real)
        self.counts[real] += images.shape[0]

    def compute(self) -> dict[str, float]:
        """``{"fd_effnet", "kid_effnet"}`` (KID: mean over subsets)."""
        smallest = min(self.counts.values())
        if smallest < 2:
            raise ValueError("need at least two images on each side to compare distributions")
        self.kid.subset_size = min(self.kid_subset_size, smallest)
        return {"fd_effnet": float(self.fd.compute()), "kid_effnet": float(self.kid.compute()[0])}

    def reset(self) -> None:
        self.fd.reset()
        self.kid.reset()
        self.counts = {True: 0, False: 0}
