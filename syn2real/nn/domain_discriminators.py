"""Feature-level domain discriminators (DANN, DSBN's adversarial stage): logits, one per sample or pixel."""

from __future__ import annotations

from torch import Tensor, nn


class FeatureDiscriminator(nn.Module):
    """MLP ``in -> hidden (-> hidden ...) -> 1`` with ReLU and dropout.

    Two hidden layers of 1024 is DANN's Office discriminator (and tllib's); one hidden layer of 100 without dropout
    is the paper's digits domain classifier (MNIST→MNIST-M: GRL → FC 100 → ReLU → FC 1).

    Args:
        in_features: feature size.
        hidden: hidden width (DANN: 1024 for large backbones, 100 for digits).
        layers: number of hidden layers.
        dropout: dropout after each hidden layer (0 = none).

    Shape:
        ``B×in_features -> B``
    """

    def __init__(self, *, in_features: int, hidden: int = 1024, layers: int = 2, dropout: float = 0.5) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks += [nn.Linear(in_features if i == 0 else hidden, hidden), nn.ReLU(inplace=True)]
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*blocks, nn.Linear(hidden, 1))

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features).squeeze(1)


class ConvFeatureDiscriminator(nn.Module):
    """Fully convolutional discriminator on feature maps (segmentation): a domain logit per position or patch.

    ``stride=1``: two 3×3 convs at the map's resolution, a logit per feature position (``B×H×W``).
    ``stride=2``: two 4×4 convs of stride 2, the downsampling of AdaptSegNet's discriminator (Tsai et al., "Learning
    to Adapt Structured Output Space for Semantic Segmentation", CVPR 2018, arXiv:1802.10349: 4×4 stride-2 convs,
    LeakyReLU 0.2), then a 3×3 conv to one channel: a logit per 4×4 block of positions (``B×H/4×W/4``, each seeing
    18×18 positions), at a quarter of the first layer's and a sixteenth of the second's positions, so
    about a fifth of the multiply-adds of ``stride=1`` (32 channels in, 64 hidden: 50 M against 227 M per 64×64 map).

    Args:
        in_channels: channels of the feature map.
        hidden: width of the two hidden convs.
        stride: 1 (per position) or 2 (per 4×4 patch, AdaptSegNet-style).

    Shape:
        ``B×C×H×W -> B×H×W`` (stride 1) or ``B×H/4×W/4`` (stride 2)
    """

    def __init__(self, *, in_channels: int, hidden: int = 256, stride: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"discriminator stride must be 1 (per position) or 2 (per 4x4 patch), got {stride}")
        kernel, padding = (3, 1) if stride == 1 else (4, 1)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel, stride=stride, padding=padding),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(hidden, hidden, kernel, stride=stride, padding=padding),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(hidden, 1, 3 if stride == 2 else 1, padding=1 if stride == 2 else 0),
        )

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features).squeeze(1)


def domain_discriminator(
    *, feature_dim: int, segmentation: bool, hidden: int, layers: int = 2, dropout: float = 0.5, stride: int = 1
) -> nn.Module:
    """The discriminator matching a task network's features: an MLP of ``layers`` on vectors, convolutional on maps.

    ``stride`` applies to maps only, as in :class:`ConvFeatureDiscriminator`.
    """
    if segmentation:
        return ConvFeatureDiscriminator(in_channels=feature_dim, hidden=hidden, stride=stride)
    if stride != 1:
        raise ValueError(
            f"a discriminator stride of {stride} applies to feature maps only (segmentation); a classification "
            "network's features are vectors: leave the stride at 1"
        )
    return FeatureDiscriminator(in_features=feature_dim, hidden=hidden, layers=layers, dropout=dropout)
