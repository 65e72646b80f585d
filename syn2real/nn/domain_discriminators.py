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
    """Fully convolutional discriminator on feature maps (segmentation): a domain logit per position.

    Shape:
        ``B×C×H×W -> B×H×W``
    """

    def __init__(self, *, in_channels: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(hidden, 1, 1),
        )

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features).squeeze(1)


def domain_discriminator(
    *, feature_dim: int, segmentation: bool, hidden: int, layers: int = 2, dropout: float = 0.5
) -> nn.Module:
    """The discriminator matching a task network's features (vectors: an MLP of ``layers``; maps: convolutional)."""
    if segmentation:
        return ConvFeatureDiscriminator(in_channels=feature_dim, hidden=hidden)
    return FeatureDiscriminator(in_features=feature_dim, hidden=hidden, layers=layers, dropout=dropout)
