from __future__ import annotations

import pytest
import torch

from refinement.simgan import SimGAN

TINY = {"in_channels": 1, "width": 4, "num_blocks": 1, "disc_widths": (4, 4, 4, 4), "history_capacity": 16}


def test_schedule_pretrains_refiner_then_discriminator_then_alternates() -> None:
    model = SimGAN(**TINY, refiner_pretrain_steps=3, disc_pretrain_steps=2, k_g=2, k_d=1)
    phases = [model.phase(i) for i in range(11)]
    assert phases == ["refiner_pretrain"] * 3 + ["disc_pretrain"] * 2 + ["refiner", "refiner", "disc"] * 2


def test_self_regularization_is_mean_l1_and_pretraining_has_no_adversarial_term() -> None:
    torch.manual_seed(0)
    model = SimGAN(**TINY, lambda_reg=0.25)
    x = torch.rand(2, 1, 8, 8)
    pre = model.refiner_losses(x, adversarial=False)
    # mean L1 on the refiner's [-1, 1] scale: twice the [0, 1] difference
    torch.testing.assert_close(pre["loss_r_reg"], 2 * (model.refiner(x) - x).abs().mean())
    assert pre["loss_r_adv"].item() == 0.0
    torch.testing.assert_close(pre["loss_r"], 0.25 * pre["loss_r_reg"])
    full = model.refiner_losses(x, adversarial=True)
    assert full["loss_r_adv"].item() > 0


def test_self_regularization_by_hand_in_minus_one_to_one_units() -> None:
    # x = 0 → −1 and R(x) ≡ 0.75 → 0.5 on the [-1, 1] scale: |0.5 − (−1)| = 1.5 per pixel
    model = SimGAN(**TINY, lambda_reg=0.5)
    x = torch.zeros(2, 1, 8, 8)
    with torch.no_grad():
        reg = model.self_regularization(torch.full_like(x, 0.75), x)
    assert reg.item() == pytest.approx(1.5)


def test_psi_variants() -> None:
    x = torch.rand(2, 3, 16, 16)
    assert SimGAN(**{**TINY, "in_channels": 3}, psi="mean").psi(x).shape == (2, 1, 16, 16)
    features = SimGAN(**{**TINY, "in_channels": 3}, psi="features")
    assert features.psi(x).shape[1] == 24  # EfficientNet-Lite0 after its second block
    assert not any(p.requires_grad for p in features.psi_net.parameters())
