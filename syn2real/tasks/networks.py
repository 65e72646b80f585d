"""Task networks behind one builder, identical for every method so their numbers compare.

Every network owns its input normalization (inputs are [0, 1] images, DESIGN.md "Data contract") and splits into
``forward_features`` (what DANN's domain classifier and AdaBN's statistics see) and ``forward_head``.

- ``small_cnn``: a 5-conv BN-ReLU CNN sized for 32-px digits.
- ``lenet``: the LeNet-sized digits network of the domain-adaptation literature (DANN's MNIST network with BN), the
  digits benchmarks' network: about 6× fewer multiply-adds than ``small_cnn`` at 32 px.
- any timm model name (``resnet18``, ``efficientnet_lite0``...): a timm backbone with a linear head.
- ``small_fcn``: a tiny fully convolutional segmenter (tests, toy data).
- any segmentation-models-pytorch architecture (``unet``, ``deeplabv3plus``, ``fpn``...) with ``encoder``.

Methods receive a :class:`TaskNetworkSpec` (their ``network`` argument) and build the network from it, so every
method configures its task network with the same keys: ``model.init_args.network: {arch: resnet18, num_classes: 12}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import segmentation_models_pytorch as smp
import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from syn2real.pretrained import IMAGENET_MEAN, IMAGENET_STD, load_backbone_weights

Task = Literal["classification", "segmentation"]


class TaskNetwork(nn.Module):
    """Base class: ``forward(images) = forward_head(forward_features(images))``; inputs in [0, 1].

    Args:
        in_channels: image channels.
        mean: per-channel mean subtracted inside (length 1 or ``in_channels``).
        std: per-channel std divided inside.
    """

    feature_dim: int

    def __init__(self, *, in_channels: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        if in_channels != len(mean):
            mean, std = (sum(mean) / len(mean),) * in_channels, (sum(std) / len(std),) * in_channels
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def normalize(self, images: Tensor) -> Tensor:
        return (images - self.mean) / self.std

    def forward_features(self, images: Tensor) -> Tensor:
        raise NotImplementedError

    def forward_head(self, features: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, images: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(images))

    @property
    def head_module(self) -> nn.Module:
        """The layers after the features (trained alone when features are frozen)."""
        return self.head


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(TaskNetwork):
    """Five 3×3 conv-BN-ReLU layers in three stages, global average pool, dropout and a linear head.

    Stages have ``width``, ``2·width``, ``4·width`` channels: 140 k parameters at ``width=32``.
    """

    def __init__(self, *, num_classes: int = 10, in_channels: int = 1, width: int = 32, dropout: float = 0.3) -> None:
        super().__init__(in_channels=in_channels, mean=(0.5,), std=(0.5,))
        w = width
        self.features = nn.Sequential(
            _conv_bn_relu(in_channels, w),
            _conv_bn_relu(w, w),
            nn.MaxPool2d(2),
            _conv_bn_relu(w, 2 * w),
            _conv_bn_relu(2 * w, 2 * w),
            nn.MaxPool2d(2),
            _conv_bn_relu(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.feature_dim = 4 * w
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * w, num_classes))

    def forward_features(self, images: Tensor) -> Tensor:
        return self.features(self.normalize(images))

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)


class LeNet(TaskNetwork):
    """The digits network of DANN (Ganin & Lempitsky 2015, MNIST→MNIST-M), with BN as its common PyTorch ports.

    G_f: conv 5×5 (``width``) → BN → ReLU → max-pool 2 → conv 5×5 (1.5·``width``) → BN → ReLU → 4×4 max-pool
    (adaptive, so 28- and 32-px inputs give the same 768 features at ``width=32``); G_y: FC 100 → BN → ReLU →
    dropout → FC 100 → BN → ReLU → FC ``num_classes`` (the paper's label predictor).
    """

    def __init__(self, *, num_classes: int = 10, in_channels: int = 1, width: int = 32, dropout: float = 0.5) -> None:
        super().__init__(in_channels=in_channels, mean=(0.5,), std=(0.5,))
        w2 = (3 * width) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, w2, 5, bias=False),
            nn.BatchNorm2d(w2),
            nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool2d(4),
            nn.Flatten(),
        )
        self.feature_dim = 16 * w2
        self.head = nn.Sequential(
            nn.Linear(self.feature_dim, 100, bias=False),
            nn.BatchNorm1d(100),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(100, 100, bias=False),
            nn.BatchNorm1d(100),
            nn.ReLU(inplace=True),
            nn.Linear(100, num_classes),
        )

    def forward_features(self, images: Tensor) -> Tensor:
        return self.features(self.normalize(images))

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)


class TimmClassifier(TaskNetwork):
    """A timm backbone (pooled features) and a linear head; the backbone's ImageNet mean/std applied inside."""

    def __init__(self, *, arch: str, num_classes: int, in_channels: int = 3, pretrained: str | None = None) -> None:
        if not timm.is_model(arch):
            raise ValueError(
                f"unknown network {arch!r}: use 'small_cnn', 'lenet' or a timm model name (see timm.list_models())"
            )
        backbone = timm.create_model(arch, pretrained=False, num_classes=0, in_chans=in_channels)
        cfg = backbone.pretrained_cfg
        super().__init__(
            in_channels=in_channels, mean=tuple(cfg.get("mean", IMAGENET_MEAN)), std=tuple(cfg.get("std", IMAGENET_STD))
        )
        load_backbone_weights(backbone, arch, pretrained)
        self.backbone = backbone
        self.feature_dim = backbone.num_features
        self.head = nn.Linear(backbone.num_features, num_classes)

    def forward_features(self, images: Tensor) -> Tensor:
        return self.backbone(self.normalize(images))

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)


class SmallFCN(TaskNetwork):
    """A tiny fully convolutional segmenter: conv stages, FCN-style skips, bilinear upsampling, 1×1 head.

    The first stage is a conv at full resolution, then two at 1/2 (a receptive field of 14 px, measured from the
    gradient: ink against background, not which digit it is). Each of the ``stages - 1`` further stages pools once
    more and adds two convs at ``2·width``; their maps come back coarse to fine, each upsampled onto the finer map,
    added and passed through one more conv (an FCN / U-Net style skip), so strokes keep their 1/2-resolution edges
    while every pixel sees the whole digit: 42 px of receptive field at ``stages=2``, 90 px at ``stages=3`` (a
    ``digits-scenes`` digit is 24 px).
    With ``stages=1`` the network and its state dict are those of the original one-stage FCN.
    """

    def __init__(self, *, num_classes: int, in_channels: int = 3, width: int = 16, stages: int = 1) -> None:
        super().__init__(in_channels=in_channels, mean=(0.5,), std=(0.5,))
        if stages < 1:
            raise ValueError(f"small_fcn needs at least one stage, got fcn_stages={stages}")
        self.features = nn.Sequential(
            _conv_bn_relu(in_channels, width),
            nn.MaxPool2d(2),
            _conv_bn_relu(width, 2 * width),
            _conv_bn_relu(2 * width, 2 * width),
        )
        c = 2 * width
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), _conv_bn_relu(c, c), _conv_bn_relu(c, c)) for _ in range(stages - 1)
        )
        self.merge = nn.ModuleList(_conv_bn_relu(c, c) for _ in range(stages - 1))
        self.feature_dim = c
        self.head = nn.Conv2d(c, num_classes, 1)

    def forward_features(self, images: Tensor) -> Tensor:
        maps = [self.features(self.normalize(images))]
        for stage in self.down:
            maps.append(stage(maps[-1]))
        x = maps.pop()
        for merge, skip in zip(reversed(self.merge), reversed(maps), strict=True):
            x = merge(F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False) + skip)
        return F.interpolate(x, size=images.shape[-2:], mode="bilinear", align_corners=False)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)


class SmpSegmenter(TaskNetwork):
    """A segmentation-models-pytorch model; features are the decoder output, the head its segmentation head."""

    def __init__(
        self, *, arch: str, encoder: str, num_classes: int, in_channels: int = 3, pretrained: str | None = None
    ) -> None:
        super().__init__(in_channels=in_channels, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        try:
            self.model = smp.create_model(
                arch, encoder_name=encoder, encoder_weights=None, in_channels=in_channels, classes=num_classes
            )
        except KeyError as err:
            raise ValueError(f"unknown segmentation network {arch!r}/{encoder!r}: {err}") from None
        if pretrained is not None:
            load_backbone_weights(self.model.encoder, encoder, pretrained)
        self.feature_dim = self.model.segmentation_head[0].in_channels

    def forward_features(self, images: Tensor) -> Tensor:
        return self.model.decoder(self.model.encoder(self.normalize(images)))

    def forward_head(self, features: Tensor) -> Tensor:
        return self.model.segmentation_head(features)

    @property
    def head_module(self) -> nn.Module:
        return self.model.segmentation_head


def build_task_network(
    *,
    arch: str = "small_cnn",
    num_classes: int = 10,
    in_channels: int = 1,
    task: Task = "classification",
    encoder: str = "resnet18",
    width: int = 32,
    pretrained: str | None = None,
    fcn_stages: int = 1,
) -> TaskNetwork:
    """Build a task network by name; the arguments are the fields of :class:`TaskNetworkSpec`.

    Examples:
        >>> net = build_task_network(arch="small_cnn", num_classes=10, in_channels=1, width=8)
        >>> net(torch.rand(2, 1, 32, 32)).shape
        torch.Size([2, 10])
    """
    if task == "classification":
        if arch == "small_cnn":
            return SmallCNN(num_classes=num_classes, in_channels=in_channels, width=width)
        if arch == "lenet":
            return LeNet(num_classes=num_classes, in_channels=in_channels, width=width)
        return TimmClassifier(arch=arch, num_classes=num_classes, in_channels=in_channels, pretrained=pretrained)
    if task == "segmentation":
        if arch == "small_fcn":
            return SmallFCN(num_classes=num_classes, in_channels=in_channels, width=width, stages=fcn_stages)
        return SmpSegmenter(
            arch=arch, encoder=encoder, num_classes=num_classes, in_channels=in_channels, pretrained=pretrained
        )
    raise ValueError(f"unknown task {task!r}; use classification or segmentation")


@dataclass(frozen=True)
class TaskNetworkSpec:
    """The task network a method trains or evaluates: the one config block every task method shares.

    Args:
        arch: ``small_cnn`` / ``lenet`` / a timm name (classification); ``small_fcn`` / an smp architecture
            (segmentation).
        num_classes: output classes.
        in_channels: image channels.
        task: ``classification`` or ``segmentation``.
        encoder: smp encoder name (segmentation with an smp architecture).
        width: base width of ``small_cnn`` / ``lenet`` / ``small_fcn``.
        pretrained: ``None``, ``"imagenet-offline"`` (EfficientNet-Lite0) or a state-dict path.
        fcn_stages: ``small_fcn``'s resolution stages (1: a 14-px receptive field; 3: 90 px, a whole digit of
            ``digits-scenes``); see :class:`SmallFCN`.

    Examples:
        >>> TaskNetworkSpec(width=8).build()(torch.rand(2, 1, 32, 32)).shape
        torch.Size([2, 10])
    """

    arch: str = "small_cnn"
    num_classes: int = 10
    in_channels: int = 1
    task: Task = "classification"
    encoder: str = "resnet18"
    width: int = 32
    pretrained: str | None = None
    fcn_stages: int = 1

    def build(self) -> TaskNetwork:
        """A freshly initialised network (or with the ``pretrained`` backbone weights)."""
        return build_task_network(
            arch=self.arch,
            num_classes=self.num_classes,
            in_channels=self.in_channels,
            task=self.task,
            encoder=self.encoder,
            width=self.width,
            pretrained=self.pretrained,
            fcn_stages=self.fcn_stages,
        )
