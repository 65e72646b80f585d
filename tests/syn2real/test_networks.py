"""The zoo's small task networks: shapes and receptive fields."""

from __future__ import annotations

import pytest
import torch

from syn2real.tasks.networks import SmallFCN, TaskNetworkSpec
from syn2real.tasks.weights import task_state_prefix


def receptive_field(net: torch.nn.Module, size: int = 96) -> int:
    """Side (px) of the input square that reaches the centre output pixel, read from the gradient."""
    net.eval()
    images = torch.rand(1, 3, size, size, requires_grad=True)
    net(images)[0, :, size // 2, size // 2].sum().backward()
    rows = images.grad.abs().sum(dim=(0, 1, 3)).nonzero()
    return int(rows.max() - rows.min() + 1)


@pytest.mark.parametrize(("stages", "low", "high"), [(1, 14, 14), (2, 42, 42), (3, 90, 90)])
def test_each_stage_widens_the_receptive_field(stages: int, low: int, high: int) -> None:
    torch.manual_seed(0)
    net = TaskNetworkSpec(
        arch="small_fcn", task="segmentation", num_classes=11, in_channels=3, width=4, fcn_stages=stages
    )
    model = net.build()
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 11, 64, 64)  # full resolution out, whatever the depth
    assert low <= receptive_field(model) <= high  # the measured fields (conv arithmetic alone: 12, 30, 66)


def test_one_stage_keeps_the_original_network_and_state_dict() -> None:
    net = SmallFCN(num_classes=11, in_channels=3, width=4)
    assert len(net.down) == 0 and len(net.merge) == 0
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert shapes == {  # the one-stage FCN's keys and shapes before stages existed: old checkpoints still load
        "features.0.0.weight": (4, 3, 3, 3),
        **{f"features.0.1.{k}": (4,) for k in ("weight", "bias", "running_mean", "running_var")},
        "features.2.0.weight": (8, 4, 3, 3),
        **{f"features.2.1.{k}": (8,) for k in ("weight", "bias", "running_mean", "running_var")},
        "features.3.0.weight": (8, 8, 3, 3),
        **{f"features.3.1.{k}": (8,) for k in ("weight", "bias", "running_mean", "running_var")},
        "head.weight": (11, 8, 1, 1),
        "head.bias": (11,),
    }
    with pytest.raises(ValueError, match="at least one stage"):
        SmallFCN(num_classes=11, width=4, stages=0)


def test_weights_of_a_deeper_fcn_are_not_taken_for_a_shallower_ones() -> None:
    one, three = (SmallFCN(num_classes=11, in_channels=3, width=4, stages=n) for n in (1, 3))
    state = {f"network.{k}": v for k, v in three.state_dict().items()}
    assert task_state_prefix(state, three) == "network."
    assert task_state_prefix(state, one) is None  # its head was trained on merged features: refused, not truncated
