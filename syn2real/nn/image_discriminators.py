"""Image discriminators for GAN refiners: CycleGAN's PatchGAN and SimGAN's local discriminator.

Both return raw scores (logits), a map with one score per image patch; inputs are images in [0, 1].
"""

from __future__ import annotations

from torch import Tensor, nn

from syn2real.nn.generators import Norm, init_gan_weights, norm_layer


class PatchDiscriminator(nn.Module):
    """PatchGAN ``C64-C128-C256-C512`` + 1-channel conv (70×70 receptive field with ``num_layers=3``).

    The first conv has no norm; stride-2 convs for the first ``num_layers``, then a stride-1 conv; LeakyReLU 0.2;
    no sigmoid. Channels are capped at ``8·base_channels``.

    Shape:
        ``B×C×256×256 -> B×1×30×30`` with the defaults.
    """

    def __init__(
        self, *, in_channels: int = 3, base_channels: int = 64, num_layers: int = 3, norm: Norm = "instance"
    ) -> None:
        super().__init__()
        bias = norm != "batch"
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        c = base_channels
        for i in range(1, num_layers + 1):
            out = base_channels * min(2**i, 8)
            stride = 2 if i < num_layers else 1
            layers += [
                nn.Conv2d(c, out, 4, stride=stride, padding=1, bias=bias),
                norm_layer(norm, out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            c = out
        layers += [nn.Conv2d(c, 1, 4, stride=1, padding=1)]
        self.net = nn.Sequential(*layers)
        init_gan_weights(self)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images * 2 - 1)


class LocalDiscriminator(nn.Module):
    """SimGAN's local discriminator (gaze variant), one score per image patch.

    conv3 s2 96 → conv3 s2 64 → maxpool3 s1 → conv3 32 → conv1 32 → conv1 1, ReLU between, no activation on the
    scores, "same" padding.

    One logit per location ("real" = 1 in this code base; the paper's D predicts "refined", see
    ``methods/refinement.md`` §6.1). The paper's two-class softmax per location is equivalent to one logit with BCE.

    Shape:
        ``B×C×35×55 -> B×1×9×14``.
    """

    def __init__(self, *, in_channels: int = 1, widths: tuple[int, int, int, int] = (96, 64, 32, 32)) -> None:
        super().__init__()
        a, b, c, d = widths
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, a, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(a, b, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=1, padding=1),
            nn.Conv2d(b, c, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, d, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(d, 1, 1),
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images * 2 - 1)
