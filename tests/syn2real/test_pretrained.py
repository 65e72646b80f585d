from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from skimage import data

from syn2real.pretrained import IMAGENET_MEAN, IMAGENET_STD, efficientnet_lite0_imagenet, map_by_position
from syn2real.tasks.networks import TimmClassifier

EGYPTIAN_CAT, TABBY, TIGER_CAT, ESPRESSO = 285, 281, 282, 967


def _imagenet_input(photo) -> torch.Tensor:
    x = torch.from_numpy(photo).permute(2, 0, 1).float().div(255)[None]
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return efficientnet_lite0_imagenet().eval()


@torch.no_grad()
def test_offline_weights_recognise_a_real_cat_photo(lite0: torch.nn.Module) -> None:
    top5 = lite0(_imagenet_input(data.chelsea())).topk(5).indices[0].tolist()
    assert top5[0] in (EGYPTIAN_CAT, TABBY, TIGER_CAT)
    assert {EGYPTIAN_CAT, TABBY, TIGER_CAT} <= set(top5)


@torch.no_grad()
def test_offline_weights_recognise_espresso(lite0: torch.nn.Module) -> None:
    assert lite0(_imagenet_input(data.coffee())).argmax().item() == ESPRESSO


def test_position_mapping_checks_shapes() -> None:
    src = {"a.w": torch.zeros(2, 3), "a.b": torch.zeros(2)}
    assert list(map_by_position(src, {"x.w": torch.ones(2, 3), "x.b": torch.ones(2)})) == ["x.w", "x.b"]
    with pytest.raises(ValueError, match=r"a\.w \(2, 3\) -> x\.w \(3, 2\)"):
        map_by_position(src, {"x.w": torch.ones(3, 2), "x.b": torch.ones(2)})
    with pytest.raises(ValueError, match="2 tensors, the model expects 1"):
        map_by_position(src, {"x.w": torch.ones(2, 3)})


@torch.no_grad()
def test_grey_classifier_gets_the_imagenet_stem_summed_over_rgb(lite0: torch.nn.Module) -> None:
    net = TimmClassifier(arch="efficientnet_lite0", num_classes=10, in_channels=1, pretrained="imagenet-offline")
    stem = lite0.conv_stem.weight
    torch.testing.assert_close(net.backbone.conv_stem.weight, stem.sum(1, keepdim=True))
    torch.testing.assert_close(net.backbone.bn2.running_mean, lite0.bn2.running_mean)
