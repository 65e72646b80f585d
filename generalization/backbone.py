"""The network of the generalization family: a whole ImageNet classifier plus a new task head.

ASG and CSG keep what ImageNet taught the backbone, so they need its real ImageNet weights, its 1000-class head
(ASG's proxy guidance compares ImageNet predictions) and a frozen copy of it (ASG's teacher, CSG's key encoder).
:class:`ImageNetTaskNetwork` is a zoo task network (``forward_features`` / ``forward_head``, inputs in [0, 1]) built
from a timm classifier that loaded all its ImageNet tensors, or refused to start.

Inputs of any size and channel count: grey images are repeated to RGB and every image is resized to ``input_size``
inside the network (32-px digits are upsampled here, not in the data), then ImageNet-normalized.
"""

from __future__ import annotations

import copy
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.models import group_parameters
from torch import Tensor, nn

from syn2real.pretrained import IMAGENET_MEAN, IMAGENET_STD, OFFLINE_IMAGENET, efficientnet_lite0_imagenet
from syn2real.tasks.networks import TaskNetwork, TaskNetworkSpec

HUB = "hub"
"""``pretrained`` value that asks timm for the architecture's ImageNet weights (needs the network or timm's cache)."""


def imagenet_classifier(arch: str, pretrained: str | None) -> nn.Module:
    """A timm ImageNet classifier (1000-class head included) with every tensor loaded, in eval mode.

    Args:
        arch: a timm model name.
        pretrained: ``"imagenet-offline"`` (EfficientNet-Lite0's packaged weights), ``"hub"`` (timm's download or
            cache), or a path to a state dict / a checkpoint holding ``state_dict`` in timm's key names.

    Raises:
        FileNotFoundError: no weights (``None``, a missing file, the hub unreachable): says where to put a checkpoint.
        ValueError: an unknown architecture, or a checkpoint that does not hold the whole classifier.
    """
    if not timm.is_model(arch):
        raise ValueError(f"unknown backbone {arch!r}: use a timm model name (see timm.list_models())")
    where = (
        f"give network.pretrained: a path to {arch}'s ImageNet state dict with its 1000-class head (timm key names), "
        f"'{HUB}' where timm can download it or has it cached (~/.cache/huggingface), or use efficientnet_lite0 with "
        f"'{OFFLINE_IMAGENET}' (packaged, no network)"
    )
    if pretrained is None:
        raise FileNotFoundError(f"{arch} has no ImageNet weights and this method keeps what they hold: {where}")
    if pretrained == OFFLINE_IMAGENET:
        if arch != "efficientnet_lite0":
            raise FileNotFoundError(f"offline ImageNet weights exist only for efficientnet_lite0, not {arch}: {where}")
        return efficientnet_lite0_imagenet().eval()
    if pretrained == HUB:  # the only path that may reach the network, and only when the config asks for it
        try:
            return timm.create_model(arch, pretrained=True).eval()
        except Exception as err:  # any download or cache failure means: no weights here
            raise FileNotFoundError(
                f"timm could not load {arch}'s ImageNet weights ({type(err).__name__}: {err}): {where}"
            ) from None
    path = Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"ImageNet checkpoint {path} not found: {where}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    model = timm.create_model(arch, pretrained=False)
    own = model.state_dict()
    missing = [k for k in own if k not in state or state[k].shape != own[k].shape]
    if missing:
        raise ValueError(
            f"{path} does not hold {arch}'s whole ImageNet classifier: {len(missing)} tensors missing or of another "
            f"shape (first: {missing[0]}); {where}"
        )
    model.load_state_dict({k: state[k] for k in own})
    return model.eval()


class ImageNetTaskNetwork(TaskNetwork):
    """A pretrained timm classifier whose ImageNet head is kept (frozen) beside a new task head.

    ``forward_features`` = the backbone's pooled features; ``forward_head`` = the task head
    (Linear → ReLU → Linear, ASG's and CSG's ``fc_new``, or one Linear with ``head_hidden: 0``);
    :meth:`imagenet_logits` = the original 1000-way head on the same features.

    Args:
        arch: timm model name.
        num_classes: task classes.
        in_channels: 1 (repeated to RGB inside) or 3.
        pretrained: see :func:`imagenet_classifier`.
        input_size: side every image is resized to before the backbone.
        head_hidden: hidden width of the task head (official: 512).
    """

    def __init__(
        self,
        *,
        arch: str,
        num_classes: int,
        in_channels: int,
        pretrained: str | None,
        input_size: int = 224,
        head_hidden: int = 512,
    ) -> None:
        if in_channels not in (1, 3):
            raise ValueError(f"an ImageNet backbone takes 1 (grey, repeated) or 3 channels, not {in_channels}")
        super().__init__(in_channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        self.backbone = imagenet_classifier(arch, pretrained)
        self.imagenet_head = self.backbone.get_classifier()
        self.imagenet_head.requires_grad_(False)
        self.input_size = input_size
        self.levels: list[int] = []  # feature levels the task head reads besides the final map (a segmenter's skips)
        self.feature_dim = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features  # pooled
        self.head = (
            nn.Sequential(nn.Linear(self.feature_dim, head_hidden), nn.ReLU(), nn.Linear(head_hidden, num_classes))
            if head_hidden
            else nn.Linear(self.feature_dim, num_classes)
        )

    @classmethod
    def from_spec(cls, spec: TaskNetworkSpec, *, input_size: int, head_hidden: int) -> ImageNetTaskNetwork:
        """The network a generalization method's ``network`` spec describes (segmentation: an FCN-8s)."""
        kind = ImageNetSegmenter if spec.task == "segmentation" else ImageNetTaskNetwork
        return kind(
            arch=spec.arch,
            num_classes=spec.num_classes,
            in_channels=spec.in_channels,
            pretrained=spec.pretrained,
            input_size=input_size,
            head_hidden=head_hidden,
        )

    def normalize(self, images: Tensor) -> Tensor:
        x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size,) * 2, mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std

    def forward_features(self, images: Tensor) -> Tensor:
        return self.pool(self.backbone.forward_features(self.normalize(images)))

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def pool(self, feature_map: Tensor) -> Tensor:
        """The backbone's pooling of its final map: :meth:`forward_features` = ``pool(final map)``."""
        return self.backbone.forward_head(feature_map, pre_logits=True)

    def imagenet_logits(self, features: Tensor) -> Tensor:
        """The kept ImageNet head's 1000-way logits on :meth:`forward_features`' output."""
        return self.imagenet_head(features)

    def logits_from_maps(self, final: Tensor, raw: dict[int, Tensor], size: tuple[int, int]) -> Tensor:
        """Task logits from backbone maps already computed (final map, raw maps of :attr:`levels`)."""
        return self.forward_head(self.pool(final))

    def task_and_imagenet_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Task logits and the kept ImageNet head's logits from one pass of the backbone (ASG's two heads)."""
        features = self.forward_features(images)
        return self.forward_head(features), self.imagenet_logits(features)

    def frozen_copy(self) -> nn.Module:
        """A frozen copy of the backbone with its ImageNet head as it is now (the teacher / key encoder)."""
        return copy.deepcopy(self.backbone).eval().requires_grad_(False)

    def layer_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by layer group, input to output: timm's coarse stages, then ``task_head``.

        The ImageNet head is frozen and in no group. EfficientNet-Lite0: ``conv_stem``, ``blocks.0`` ... ``blocks.6``
        (the last with ``conv_head``); ResNets: ``conv1``, ``layer1`` ... ``layer4``.
        """
        named = dict(self.backbone.named_parameters())
        groups: dict[str, list[nn.Parameter]] = {}
        for names in group_parameters(self.backbone, self.backbone.group_matcher(coarse=True)).values():
            params = [named[n] for n in names if named[n].requires_grad]  # not the kept ImageNet head
            if params:
                name = group_name(names)
                if name in groups:
                    raise ValueError(f"two layer groups of {type(self.backbone).__name__} are both named {name!r}")
                groups[name] = params
        groups["task_head"] = list(self.head.parameters())
        return groups


def group_name(names: list[str]) -> str:
    """A layer group's name: its parameters' common module path (at most two levels), else the first one's container.

    Examples:
        >>> group_name(["layer1.0.conv1.weight", "layer1.1.bn2.bias"]), group_name(["features.2.weight"])
        ('layer1', 'features.2')
        >>> group_name(["conv_stem.weight", "bn1.weight"]), group_name(["blocks.6.0.conv_pw.weight", "bn2.bias"])
        ('conv_stem', 'blocks.6')
        >>> group_name(["blocks.0.0.conv_dw.weight", "blocks.0.0.bn1.bias"])  # a stage of one block
        'blocks.0'

    """
    paths = [n.split(".")[:-1] for n in names]
    common = []
    for parts in zip(*paths, strict=False):
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    if common:
        return ".".join(common[:2])
    first = names[0].split(".")
    return ".".join(first[:2]) if len(first) > 2 and first[1].isdigit() else first[0]


class ImageNetSegmenter(ImageNetTaskNetwork):
    """The ImageNet classifier as an FCN-8s segmenter (ASG's segmentation network), its ImageNet head still kept.

    ``forward_features`` gives the backbone's maps at strides 8 and 16 (the timm feature levels of those reductions)
    and its final map; the head projects each to ``head_hidden`` channels (1×1), sums them coarse to fine with bilinear
    upsampling (FCN-8s' skip fusion, in a hidden space), then ReLU and a 1×1 classifier; ``forward`` resizes the
    logits to the input images' size. The ImageNet logits are the kept head on the pooled final map, as the
    official code passes the student's pool5 through the teacher's classifier. Departure: FCN-8s on any timm
    backbone (official: on VGG-16, with its fc6/fc7 as convolutions). Inputs are resized to ``input_size``² inside
    (a non-square frame is squashed, the logits resized back to its shape).
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        hidden = int(kwargs.get("head_hidden") or 256)  # the FCN head's width (0: 256)
        pre_logits = getattr(self.backbone, "pre_logits", None)
        if pre_logits is not None:  # VGG's fc6/fc7: on the ImageNet path only, frozen like the teacher's (official)
            pre_logits.requires_grad_(False)
        levels = {info["reduction"]: i for i, info in enumerate(self.backbone.feature_info)}
        if 8 not in levels or 16 not in levels:
            raise ValueError(f"{kwargs['arch']} has no stride-8 and stride-16 feature levels for an FCN-8s head")
        self.levels = [levels[8], levels[16]]
        channels = [*(self.backbone.feature_info[i]["num_chs"] for i in self.skips), self.backbone.num_features]
        num_classes = int(kwargs["num_classes"])  # type: ignore[call-overload]
        self.head = FCNHead(channels=channels, hidden=hidden, num_classes=num_classes)

    @property
    def skips(self) -> list[int]:
        """The stride-8 and stride-16 feature levels the FCN head fuses (= :attr:`levels`)."""
        return self.levels

    def forward_features(self, images: Tensor) -> list[Tensor]:  # type: ignore[override]
        final, raw = backbone_maps(self.backbone, self.normalize(images), self.levels)
        return [*(raw[i] for i in self.levels), final]

    def forward_head(self, features: list[Tensor]) -> Tensor:  # type: ignore[override]
        return self.head(features)

    def forward(self, images: Tensor) -> Tensor:  # task logits only: evaluation skips the ImageNet head
        final, raw = backbone_maps(self.backbone, self.normalize(images), self.levels)
        return self.logits_from_maps(final, raw, images.shape[-2:])

    def logits_from_maps(self, final: Tensor, raw: dict[int, Tensor], size: tuple[int, int]) -> Tensor:
        logits = self.head([*(raw[i] for i in self.levels), final])
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def task_and_imagenet_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        final, raw = backbone_maps(self.backbone, self.normalize(images), self.levels)
        return self.logits_from_maps(final, raw, images.shape[-2:]), self.imagenet_logits(self.pool(final))


class FCNHead(nn.Module):
    """FCN-8s skip fusion: 1×1 projections of the stride-8/16/32 maps, summed coarse to fine, ReLU, 1×1 classifier."""

    def __init__(self, *, channels: list[int], hidden: int, num_classes: int) -> None:
        super().__init__()
        self.project = nn.ModuleList(nn.Conv2d(c, hidden, 1) for c in channels)
        self.classify = nn.Conv2d(hidden, num_classes, 1)

    def forward(self, maps: list[Tensor]) -> Tensor:
        fused = self.project[-1](maps[-1])
        for conv, skip in zip(reversed(self.project[:-1]), reversed(maps[:-1]), strict=True):
            fused = F.interpolate(fused, size=skip.shape[-2:], mode="bilinear", align_corners=False) + conv(skip)
        return self.classify(F.relu(fused))


def frozen_modes(network: nn.Module, frozen: list[nn.Module], *, freeze_bn: bool) -> None:
    """Training modes of a generalization method: frozen copies in eval, the network in eval unless told otherwise.

    In eval mode BN keeps its ImageNet statistics and dropout is off (the official code); ``freeze_bn: false`` trains
    the network in train mode. Called where Lightning starts a training epoch (it restores each module's own mode
    around validation and does not call ``train()`` on the method itself).
    """
    network.train(not freeze_bn)
    for module in frozen:
        module.eval()


FINAL = "final"
"""A stage name: the backbone's last feature map (before pooling)."""


def backbone_maps(backbone: nn.Module, x: Tensor, levels: list[int]) -> tuple[Tensor, dict[int, Tensor]]:
    """The final feature map and the raw maps of the timm feature ``levels`` for normalized ``x``, in one pass."""
    indices = sorted(set(levels))
    if not indices:
        return backbone.forward_features(x), {}
    final, inter = backbone.forward_intermediates(x, indices=indices, intermediates_only=False)
    return final, dict(zip(indices, inter, strict=True))


def stage_maps(
    backbone: nn.Module, x: Tensor, stages: list[int | str], *, levels: list[int] = ()
) -> tuple[Tensor, list[Tensor], dict[int, Tensor]]:
    """The final map, the maps of ``stages`` (timm feature indices, or ``final``), and the raw maps of all levels.

    Stage maps are made non-negative (ReLU): ResNet stage outputs already are; EfficientNet's block stages end in a
    linear projection, and CSG's attentional pooling needs non-negative features. ``levels`` are more timm feature
    levels to return raw (a segmenter's skips), from the same pass.
    """
    final, raw = backbone_maps(backbone, x, [*(s for s in stages if s != FINAL), *levels])
    return final, [F.relu(final if s == FINAL else raw[s]) for s in stages], raw


def frozen_imagenet_logits(teacher: nn.Module, network: ImageNetTaskNetwork, images: Tensor) -> Tensor:
    """The frozen teacher's ImageNet logits for the images the student sees (same resize and normalization)."""
    with torch.no_grad():
        return teacher(network.normalize(images))
