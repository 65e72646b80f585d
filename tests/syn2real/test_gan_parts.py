from __future__ import annotations

import pytest
import torch
from torch import nn

from syn2real.losses import discriminator_loss, generator_loss
from syn2real.nn import ImagePool, LocalDiscriminator, PatchDiscriminator, ResnetGenerator
from syn2real.progress import LinearDecay

REAL, FAKE = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 1.0])


def test_lsgan_losses_equal_hand_computed_values() -> None:
    # D: 0.5 * [mean((1-1)^2, (0.5-1)^2) + mean(0^2, 1^2)] = 0.5 * (0.125 + 0.5)
    assert discriminator_loss(REAL, FAKE, mode="lsgan").item() == pytest.approx(0.3125)
    # one-sided smoothing, real target 0.9: 0.5 * [mean(0.1^2, 0.4^2) + 0.5]
    assert discriminator_loss(REAL, FAKE, mode="lsgan", real_target=0.9).item() == pytest.approx(
        0.5 * ((0.01 + 0.16) / 2 + 0.5)
    )
    # G: mean((0-1)^2, (1-1)^2) = 0.5; GazeGAN target 0.9: mean(0.81, 0.01)
    assert generator_loss(FAKE, mode="lsgan").item() == pytest.approx(0.5)
    assert generator_loss(FAKE, mode="lsgan", target=0.9).item() == pytest.approx(0.41)


def test_vanilla_and_hinge_losses_equal_hand_computed_values() -> None:
    sp = lambda x: torch.nn.functional.softplus(torch.tensor(x)).item()  # noqa: E731  -log(sigmoid(-x))
    expected_d = (sp(-1.0) + sp(-0.5)) / 2 + (sp(0.0) + sp(1.0)) / 2
    assert discriminator_loss(REAL, FAKE, mode="vanilla").item() == pytest.approx(expected_d, rel=1e-6)
    assert generator_loss(FAKE, mode="vanilla").item() == pytest.approx((sp(-0.0) + sp(-1.0)) / 2, rel=1e-6)
    # hinge: mean(relu(1-1), relu(1-0.5)) + mean(relu(1+0), relu(1+1)) = 0.25 + 1.5
    assert discriminator_loss(REAL, FAKE, mode="hinge").item() == pytest.approx(1.75)
    assert generator_loss(FAKE, mode="hinge").item() == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="unknown adversarial mode"):
        generator_loss(FAKE, mode="wgan")  # type: ignore[arg-type]


def test_cyclegan_pool_fills_then_swaps_with_probability_one_half() -> None:
    pool = ImagePool(capacity=4, mode="cyclegan", seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool(first), first)  # filling: the new images come back
    returned_old = 0
    for i in range(2000):
        image = torch.full((1, 1, 1, 1), 100.0 + i)
        returned_old += int(pool(image).item() != 100.0 + i)
    assert 0.45 < returned_old / 2000 < 0.55
    assert len(pool) == 4


def test_history_pool_returns_half_current_half_buffer() -> None:
    pool = ImagePool(capacity=64, mode="history", seed=0)
    warm = pool(torch.zeros(8, 1, 1, 1))
    assert torch.equal(warm, torch.zeros(8, 1, 1, 1)) and len(pool) == 4  # b/2 stored per update
    out = pool(torch.ones(8, 1, 1, 1))
    assert out[:4].eq(1).all() and out[4:].eq(0).all()  # 4 current + 4 from the history
    assert len(pool) == 8


def test_pool_state_survives_a_checkpoint() -> None:
    a = ImagePool(capacity=3, mode="cyclegan", seed=5)
    for i in range(6):
        a(torch.full((2, 1, 2, 2), float(i)))
    b = ImagePool(capacity=3, mode="cyclegan", seed=99)
    b.load_state_dict(a.state_dict())
    x = torch.full((4, 1, 2, 2), 42.0)
    assert torch.equal(a(x), b(x))


def test_networks_have_the_reference_shapes_and_init() -> None:
    g = ResnetGenerator(in_channels=3, out_channels=3, base_channels=8, num_blocks=2)
    assert g(torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    d = PatchDiscriminator(in_channels=3, base_channels=4)
    assert d(torch.rand(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert isinstance(d.net[1], nn.LeakyReLU)  # first conv has no norm
    assert LocalDiscriminator(in_channels=1, widths=(4, 4, 4, 4))(torch.rand(1, 1, 35, 55)).shape == (1, 1, 9, 14)
    convs = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, nn.Conv2d)])
    assert abs(convs.std().item() - 0.02) < 0.002
    norms = [m for m in g.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and not any(m.affine or m.track_running_stats for m in norms)


def test_linear_decay_factor() -> None:
    f = LinearDecay(100, 100)
    assert [f(e) for e in (0, 50, 99)] == [1.0, 1.0, 1.0]
    assert f(100 + 4) == pytest.approx(1 - 5 / 101)
