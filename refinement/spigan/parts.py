"""SPIGAN's own parts: the perceptual regularizer on frozen ImageNet features, and depth as a regression target."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from syn2real.pretrained import LowLevelFeatures


def perceptual_loss(features: LowLevelFeatures, source: Tensor, refined: Tensor) -> Tensor:
    """L_perc = Σ_l mean |φ_l(x_s) − φ_l(G(x_s))| over φ's stem and stage maps (φ's weights get no gradient).

    φ is the paper's VGG19; VGG weights cannot be loaded offline, so it is the offline EfficientNet-Lite0's stem and
    first stages (:class:`~syn2real.pretrained.LowLevelFeatures`), the same role (ImageNet low- and mid-level
    features).
    """
    with torch.no_grad():
        wanted = features.maps(source)
    return sum(
        (F.l1_loss(got, want) for got, want in zip(features.maps(refined), wanted, strict=True)), source.new_zeros(())
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
