"""The zoo's small task networks: shapes and receptive fields."""

from __future__ import annotations

import pytest
import torch

from syn2real.tasks.networks import SmallFCN, TaskNetworkSpec


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
    assert all(k.startswith(("features.", "head.")) for k in net.state_dict())  # old checkpoints still load
    with pytest.raises(ValueError, match="at least one stage"):
        SmallFCN(num_classes=11, width=4, stages=0)
