from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from datamodules.data_modules import DomainPairDataModule
from datamodules.errors import DatasetError
from datamodules.sources import RandomSource
from refinement.spigan import SPIGAN, normalized_depth, perceptual_loss
from syn2real.losses import NonFiniteLossError
from syn2real.pretrained import LowLevelFeatures
from tests.conftest import check_resume_reproduces, check_task_refiner_checkpoint, quiet_trainer

NET = {"arch": "small_cnn", "width": 4, "num_classes": 3, "in_channels": 1}
P_NET = {"arch": "small_fcn", "task": "segmentation", "num_classes": 1, "width": 4}
TINY = {"network": NET, "privileged_network": P_NET, "base_channels": 4, "num_blocks": 1}
TINY |= {"disc_base_channels": 4, "disc_layers": 1, "perceptual_stages": 1}


def _data(*, depth: bool = True) -> DomainPairDataModule:
    source = RandomSource(num_samples=8, size=16, seed=0, num_classes=3)
    if not depth:  # the same renders without their depth maps
        dataset = source.load()
        dataset.depth = None
        source.load = lambda transform=None: dataset  # type: ignore[method-assign]
    return DomainPairDataModule(
        source=source,
        target=RandomSource(num_samples=8, size=16, seed=1, domain=1, use_labels=False, num_classes=3),
        val=RandomSource(num_samples=4, size=16, seed=2, domain=1, num_classes=3),
        batch_size=4,
    )


def _trainer(tmp_path: Path, **kwargs: object) -> pl.Trainer:
    return quiet_trainer(tmp_path, **({"max_epochs": 1, "limit_train_batches": 2} | kwargs))


class Constant(torch.nn.Module):
    """A stand-in network: the same output ``value`` (shape ``B×C×H×W`` or ``B×C``) for any image."""

    def __init__(self, value: float, channels: int, spatial: bool) -> None:
        super().__init__()
        self.value, self.channels, self.spatial = value, channels, spatial
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        shape = (len(images), self.channels, *images.shape[-2:]) if self.spatial else (len(images), self.channels)
        return torch.full(shape, self.value) + 0 * self.anchor


def test_joint_losses_by_hand_with_stand_in_networks() -> None:
    weights = {"gan_weight": 2.0, "task_weight": 0.5, "privileged_weight": 0.1, "perceptual_weight": 0.0}
    model = SPIGAN(**TINY, **weights)
    model.discriminator = Constant(0.5, 1, spatial=True)  # LSGAN: (0.5 − 1)² = 0.25
    model.network = Constant(0.0, 3, spatial=False)  # uniform logits: ln 3 per cross-entropy
    model.privileged_net = Constant(0.25, 1, spatial=True)
    x, refined = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    depth = torch.zeros(2, 1, 4, 4)
    depth[:, :, :2] = 1.0  # half the pixels at 1, half at 0: |0.25 − z| averages (0.75 + 0.25) / 2 = 0.5
    losses = model.joint_losses(x, torch.tensor([0, 2]), depth, refined)
    assert losses["loss_g_adv"].item() == pytest.approx(0.25)
    assert losses["loss_task"].item() == pytest.approx(2 * math.log(3), rel=1e-6)
    assert losses["loss_privileged"].item() == pytest.approx(2 * 0.5)  # renders and refined renders
    assert losses["loss_perceptual"].item() == 0.0  # δ = 0: the term is off
    assert losses["loss_g"].item() == pytest.approx(2.0 * 0.25 + 0.5 * 2 * math.log(3) + 0.1 * 1.0, rel=1e-6)
    blind = SPIGAN(**TINY, privileged=False, perceptual_weight=0.0)
    x16 = torch.rand(2, 1, 16, 16)
    assert blind.joint_losses(x16, torch.tensor([0, 2]), None, x16)["loss_privileged"].item() == 0.0


@pytest.mark.parametrize("term", ["task_weight", "privileged_weight"])
def test_task_and_privileged_losses_reach_the_generator(term: str) -> None:
    # jlim13's re-implementation detaches G(x_s) before T and P, so G never learns from them; here it must
    torch.manual_seed(0)
    others = {"task_weight": 0.0, "privileged_weight": 0.0} | {term: 1.0}
    model = SPIGAN(**TINY, gan_weight=0.0, perceptual_weight=0.0, **others)
    x = torch.rand(2, 1, 16, 16)
    losses = model.joint_losses(x, torch.tensor([0, 2]), torch.rand(2, 1, 16, 16), model.gen(x))
    losses["loss_g"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.gen.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.discriminator.parameters())


def test_perceptual_loss_is_zero_for_the_same_image_and_trains_only_the_generator_side() -> None:
    phi = LowLevelFeatures(stages=2)
    x = torch.rand(2, 1, 16, 16)
    assert perceptual_loss(phi, x, x.clone()).item() == pytest.approx(0.0, abs=1e-7)
    refined = (x + 0.2 * torch.rand_like(x)).requires_grad_(True)
    loss = perceptual_loss(phi, x, refined)
    loss.backward()
    assert loss.item() > 0 and refined.grad is not None and refined.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in phi.parameters())
    assert len(phi.maps(x)) == 3 and not phi.train().training  # stem + 2 stages, always in eval mode


def test_depth_is_normalized_per_image_or_by_range() -> None:
    depth = torch.tensor([[[[10.0, 20.0], [30.0, 50.0]]], [[[1.0, 1.5], [2.0, 3.0]]]])
    per_image = normalized_depth(depth, None)
    assert per_image[0].flatten().tolist() == pytest.approx([0.0, 0.25, 0.5, 1.0])
    assert per_image[1].flatten().tolist() == pytest.approx([0.0, 0.25, 0.5, 1.0])  # the units do not matter
    ranged = normalized_depth(depth, (0.0, 40.0))  # metres, say: clipped at 40
    assert ranged[0].flatten().tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0])
    flat = normalized_depth(torch.ones(1, 1, 2, 2), None)
    assert torch.equal(flat, torch.zeros(1, 1, 2, 2))  # a flat depth map is all 0, not NaN


def _weights(model: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if k.startswith(prefix) and k.endswith("weight")}


@pytest.mark.parametrize("privileged", [True, False])
def test_every_network_trains_and_the_ablation_leaves_p_alone(tmp_path: Path, privileged: bool) -> None:
    torch.manual_seed(0)
    model = SPIGAN(**TINY, privileged=privileged)
    parts = ("gen.", "discriminator.", "network.", "privileged_net.")
    before = {part: _weights(model, part) for part in parts}
    trainer = _trainer(tmp_path)
    trainer.fit(model, _data())
    for part in parts:
        after = _weights(model, part)
        moved = any(not torch.equal(before[part][k], after[k]) for k in after)
        assert moved == (part != "privileged_net." or privileged), part
    assert (trainer.callback_metrics["train/loss_privileged"].item() > 0) == privileged
    members = [{id(p) for group in opt.param_groups for p in group["params"]} for opt in trainer.optimizers]
    assert members[0] == {id(p) for p in model.discriminator.parameters()}
    assert {id(p) for p in model.privileged_net.parameters()} <= members[1] or not privileged
    assert members[2] == {id(p) for p in model.network.parameters()}


def test_renders_without_depth_are_an_error_unless_p_is_off(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no depth.*privileged: false"):
        _trainer(tmp_path).fit(SPIGAN(**TINY), _data(depth=False))
    _trainer(tmp_path).fit(SPIGAN(**TINY, privileged=False), _data(depth=False))


def test_a_privileged_network_must_predict_one_depth_channel() -> None:
    with pytest.raises(ValueError, match="num_classes: 1"):
        SPIGAN(**(TINY | {"privileged_network": P_NET | {"num_classes": 2}}))


def test_checkpoint_exports_refined_renders_and_tests_the_task_network(tmp_path: Path) -> None:
    torch.manual_seed(0)
    trainer = _trainer(tmp_path, limit_val_batches=1)
    trainer.fit(SPIGAN(**TINY), _data())
    assert check_task_refiner_checkpoint(trainer, "spigan", tmp_path, num_classes=3)  # and G changed the renders


def test_non_finite_loss_names_the_loss(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError, match="train/loss_g"):
        _trainer(tmp_path).fit(SPIGAN(**TINY, privileged_weight=float("nan")), _data())


def test_resume_from_checkpoint_reproduces_the_next_losses(tmp_path: Path) -> None:
    check_resume_reproduces(lambda: SPIGAN(**TINY), _data, tmp_path, losses=("train/loss_d", "train/loss_g"))


def test_segmentation_task_network(tmp_path: Path) -> None:
    from datamodules.data_modules import RandomDomainPairDataModule

    torch.manual_seed(0)
    seg = {"arch": "small_fcn", "width": 4, "num_classes": 3, "in_channels": 1, "task": "segmentation"}
    trainer = _trainer(tmp_path, limit_val_batches=1)
    trainer.fit(
        SPIGAN(**(TINY | {"network": seg})), RandomDomainPairDataModule(num_classes=3, size=16, task="segmentation")
    )
    assert {"train/loss_task", "train/loss_privileged", "val/target_miou"} <= set(trainer.callback_metrics)
