from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from datamodules.data_modules import RandomDataModule
from syn2real.batch import Batch
from syn2real.losses import NonFiniteLossError, check_finite, task_loss
from syn2real.optim import OptimizerSpec, SchedulerSpec
from syn2real.tasks import TaskModule, TaskNetworkSpec


def _trainer(tmp_path: Path, **kwargs) -> pl.Trainer:
    defaults = {
        "accelerator": "cpu",
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "default_root_dir": tmp_path,
    }
    return pl.Trainer(**(defaults | kwargs))


class FixedLogits(nn.Module):
    """Predicts the class written in the top-left pixel (×10), so accuracy is known in advance."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot((images[:, 0, 0, 0] * 10).round().long(), 3).float()


def test_validation_accuracy_matches_a_hand_count(tmp_path: Path) -> None:
    predicted = torch.tensor([0, 1, 2, 2, 1, 0, 0])
    labels = torch.tensor([0, 1, 2, 0, 0, 0, 1])  # 4 of 7 right
    images = torch.zeros(7, 1, 4, 4)
    images[:, 0, 0, 0] = predicted / 10
    batches = [Batch(images=images[:4], labels=labels[:4]), Batch(images=images[4:], labels=labels[4:])]
    module = TaskModule(network=TaskNetworkSpec(width=4, num_classes=3))
    module.network = FixedLogits()
    result = _trainer(tmp_path).validate(module, DataLoader(batches, batch_size=None), verbose=False)[0]
    assert result["val/target_acc"] == pytest.approx(4 / 7)
    expected_loss = (
        task_loss(FixedLogits()(images[:4]), labels[:4]) * 4 + task_loss(FixedLogits()(images[4:]), labels[4:]) * 3
    ) / 7
    assert result["val/loss"] == pytest.approx(expected_loss.item(), rel=1e-5)


def test_cross_entropy_ignores_255_in_segmentation() -> None:
    logits = torch.zeros(1, 2, 1, 2)
    logits[0, 1, 0, 0] = 1.0
    labels = torch.tensor([[[1, 255]]])
    # only the first pixel counts: -log(e^1 / (e^0 + e^1))
    assert task_loss(logits, labels).item() == pytest.approx(-torch.log_softmax(torch.tensor([0.0, 1.0]), 0)[1].item())


def test_non_finite_loss_stops_training_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError, match=r"train/loss is nan at step 3.*Lower the learning rate"):
        check_finite(torch.tensor(float("nan")), name="train/loss", step=3)
    module = TaskModule(
        network=TaskNetworkSpec(width=4, num_classes=3),
        optimizer=OptimizerSpec(name="sgd", lr=1e30),
        scheduler=SchedulerSpec(name="none"),
    )
    dm = RandomDataModule(num_classes=3, batch_size=4)
    with pytest.raises(NonFiniteLossError):
        _trainer(tmp_path, max_steps=20, limit_val_batches=0).fit(module, dm)


def test_both_tasks_train_and_log_their_metric(tmp_path: Path) -> None:
    for task, arch, key in (
        ("classification", "small_cnn", "val/target_acc"),
        ("segmentation", "small_fcn", "val/target_miou"),
    ):
        module = TaskModule(network=TaskNetworkSpec(arch=arch, task=task, width=4, num_classes=3))
        before = [p.detach().clone() for p in module.parameters()]
        trainer = _trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1)
        trainer.fit(module, RandomDataModule(num_classes=3, task=task, batch_size=4))
        assert key in trainer.callback_metrics
        assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def test_freeze_features_trains_only_the_head(tmp_path: Path) -> None:
    module = TaskModule(network=TaskNetworkSpec(width=4, num_classes=3), freeze_features=True)
    before = {k: v.clone() for k, v in module.network.state_dict().items()}
    _trainer(tmp_path, max_steps=3, limit_val_batches=0).fit(module, RandomDataModule(num_classes=3, batch_size=4))
    after = module.network.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("head.") for k in changed)  # incl. BN running stats of the features


def test_fine_tuning_starts_from_the_given_checkpoint(tmp_path: Path) -> None:
    pretrained = TaskModule(network=TaskNetworkSpec(width=4, num_classes=3))
    trainer = _trainer(tmp_path, max_steps=2, limit_val_batches=0, enable_checkpointing=True)
    trainer.fit(pretrained, RandomDataModule(num_classes=3, batch_size=4))
    ckpt = tmp_path / "pre.ckpt"
    trainer.save_checkpoint(ckpt)
    tuned = TaskModule(network=TaskNetworkSpec(width=4, num_classes=3), init_from=str(ckpt))
    for (k, a), b in zip(pretrained.network.state_dict().items(), tuned.network.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="no complete weights"):
        TaskModule(network=TaskNetworkSpec(width=8, num_classes=3), init_from=str(ckpt))
