"""A diverging run stops before it damages its weights or its last finite checkpoint, and a diverged refiner is
not exported."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from datamodules.data_modules import RandomDataModule, RandomDomainPairDataModule
from refinement.cyclegan import CycleGAN
from syn2real.export import refine_dataset
from syn2real.finite_guard import FiniteGuard
from syn2real.losses import NonFiniteLossError
from syn2real.tasks import TaskModule, TaskNetworkSpec
from tests.conftest import make_samples, quiet_trainer, write_dataset


class PoisonGradient(pl.Callback):
    """Makes one gradient NaN after the backward pass of step ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step == self.at:
            next(p for p in pl_module.parameters() if p.grad is not None).grad[0] = float("nan")


def test_a_step_with_a_non_finite_gradient_is_refused_and_the_weights_stay(tmp_path: Path) -> None:
    model = TaskModule(network=TaskNetworkSpec(width=4, num_classes=3))
    kept: dict[str, torch.Tensor] = {}

    class Snapshot(pl.Callback):
        def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
            kept.update({k: v.clone() for k, v in pl_module.state_dict().items()})

    trainer = quiet_trainer(tmp_path, callbacks=[PoisonGradient(at=1), Snapshot(), FiniteGuard()], max_steps=3)
    with pytest.raises(NonFiniteLossError, match=r"the gradient of network\..* is not finite at step 1"):
        trainer.fit(model, RandomDataModule(num_classes=3, size=16, batch_size=4))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in kept.items())  # step 1 was not applied
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_checkpoint_with_non_finite_weights_is_not_written(tmp_path: Path) -> None:
    model = TaskModule(network=TaskNetworkSpec(width=4, num_classes=3))
    trainer = quiet_trainer(tmp_path, callbacks=[FiniteGuard()], max_steps=1)
    trainer.fit(model, RandomDataModule(num_classes=3, size=16, batch_size=4))
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    good = (tmp_path / "last.ckpt").read_bytes()
    with torch.no_grad():
        next(model.parameters())[0] = float("inf")
    with pytest.raises(NonFiniteLossError, match="is not finite at step 1: this checkpoint is not written"):
        trainer.save_checkpoint(tmp_path / "last.ckpt")
    assert (tmp_path / "last.ckpt").read_bytes() == good


def test_refine_refuses_a_diverged_refiner(tmp_path: Path) -> None:
    model = CycleGAN(in_channels=1, base_channels=4, num_blocks=1, disc_base_channels=4, disc_layers=1, pool_size=2)
    trainer = quiet_trainer(tmp_path, max_steps=1)
    trainer.fit(model, RandomDomainPairDataModule(size=8, batch_size=2))
    with torch.no_grad():
        next(model.gen_s2t.parameters())[0] = float("nan")
    trainer.save_checkpoint(tmp_path / "nan.ckpt")  # no guard here: a checkpoint from elsewhere
    data = write_dataset(tmp_path / "d", make_samples(2))
    with pytest.raises(ValueError, match="the refiner's weights are not finite"):
        refine_dataset(tmp_path / "nan.ckpt", data, tmp_path / "out")
    assert not (tmp_path / "out").exists()
