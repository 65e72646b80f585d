from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from datamodules.data_modules import RandomDataModule, RandomDomainPairDataModule
from refinement.adabn import AdaBN, AdaBNCallback
from syn2real.bn_stats import reestimate_bn_stats
from syn2real.cli.adapt_bn import adapt_checkpoint
from syn2real.tasks import TaskModule, TaskNetworkSpec
from tests.conftest import make_samples, tree_digest, write_dataset


def _trainer(tmp_path: Path, **kw) -> pl.Trainer:
    base = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": tmp_path,
    }
    return pl.Trainer(**(base | kw))


def _checkpoint(tmp_path: Path, spec: dict, task: str = "classification") -> tuple[TaskModule, Path]:
    model = TaskModule(network=TaskNetworkSpec(**spec))
    trainer = _trainer(tmp_path, max_steps=1)
    channels, classes = spec["in_channels"], spec["num_classes"]
    trainer.fit(model, RandomDataModule(num_classes=classes, channels=channels, size=16, batch_size=4, task=task))
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    return model, tmp_path / "model.ckpt"


def test_running_stats_equal_the_real_inputs_statistics() -> None:
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(8, 3, 4, 4, generator=g) * 2 + 5 for _ in range(3)]
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Dropout(0.5), nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2))
    model.train()
    conv = model[2].weight.detach().clone()
    assert reestimate_bn_stats(model, batches) == 24
    everything = torch.cat(batches)
    # first BN sees the raw inputs: mean over all pixels; variance = mean of per-batch unbiased variances
    torch.testing.assert_close(model[0].running_mean, everything.mean(dim=(0, 2, 3)))
    per_batch_var = torch.stack([b.transpose(0, 1).flatten(1).var(dim=1, unbiased=True) for b in batches])
    torch.testing.assert_close(model[0].running_var, per_batch_var.mean(0))
    assert torch.equal(model[2].weight, conv)  # learned weights untouched
    assert model.training and model[0].momentum == 0.1  # mode and momentum restored


def test_dropout_stays_off_during_reestimation() -> None:
    model = nn.Sequential(nn.Dropout(0.99), nn.BatchNorm2d(1))
    x = torch.ones(4, 1, 2, 2)
    reestimate_bn_stats(model, [x])
    torch.testing.assert_close(model[1].running_mean, torch.ones(1))


def test_a_model_without_bn_is_refused() -> None:
    with pytest.raises(ValueError, match="has no BatchNorm layers"):
        reestimate_bn_stats(nn.Linear(2, 2), [torch.zeros(1, 2)])


def test_no_images_leaves_the_statistics_alone() -> None:
    bn = nn.BatchNorm2d(2)
    bn.running_mean.fill_(3.0)
    with pytest.raises(ValueError, match="no images"):
        reestimate_bn_stats(bn, [])
    assert bn.running_mean.tolist() == [3.0, 3.0]


def test_adabn_module_evaluates_with_target_statistics(tmp_path: Path) -> None:
    model = AdaBN(network=TaskNetworkSpec(width=4, num_classes=3), stats_batch_size=4)
    dm = RandomDomainPairDataModule(num_classes=3, batch_size=4)
    _trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1).fit(model, dm)
    source_stats = model.network.features[0][1].running_mean
    adapted_stats = model.adapted.features[0][1].running_mean
    assert not torch.allclose(source_stats, adapted_stats)
    for (k, a), b in zip(model.network.named_parameters(), model.adapted.parameters(), strict=True):
        assert torch.equal(a, b), k  # same weights, only statistics differ
    by_hand = model.network.__class__(num_classes=3, in_channels=1, width=4)
    by_hand.load_state_dict(model.network.state_dict())
    reestimate_bn_stats(by_hand, (b.images for b in dm.target_loader(batch_size=4)))
    torch.testing.assert_close(by_hand.features[0][1].running_var, model.adapted.features[0][1].running_var)


def test_test_scores_the_same_checkpoint_with_and_without_reestimation(tmp_path: Path) -> None:
    model = AdaBN(network=TaskNetworkSpec(width=4, num_classes=3), stats_batch_size=4)
    dm = RandomDomainPairDataModule(num_classes=3, batch_size=4)
    trainer = _trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=0)
    trainer.fit(model, dm)
    [result] = trainer.test(model, dm, verbose=False)
    dm.setup("test")
    batches = list(dm.test_dataloader())
    labels = torch.cat([b.labels for b in batches])
    model.eval()
    with torch.no_grad():
        source = torch.cat([model.network(b.images).argmax(1) for b in batches])
        adapted = torch.cat([model.adapted(b.images).argmax(1) for b in batches])
    assert result["test/target_acc_source_bn"] == pytest.approx((source == labels).float().mean().item())
    assert result["test/target_acc"] == pytest.approx((adapted == labels).float().mean().item())


def test_callback_restores_source_statistics_after_validation(tmp_path: Path) -> None:
    class SourceTask(TaskModule):  # a plain task model trained on the source half of domain pairs
        def training_step(self, batch, batch_idx):
            return super().training_step(batch.source, batch_idx)

    model = SourceTask(network=TaskNetworkSpec(width=4, num_classes=3))
    dm = RandomDomainPairDataModule(num_classes=3, batch_size=4)

    class Probe(pl.Callback):
        def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self.during = pl_module.network.features[0][1].running_mean.clone()

    probe = Probe()
    trainer = _trainer(
        tmp_path,
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        callbacks=[probe, AdaBNCallback(batch_size=4)],
    )
    trainer.fit(model, dm)
    after = model.network.features[0][1].running_mean
    assert not torch.allclose(probe.during, after)  # validation saw target statistics, training keeps source ones


def test_adapt_bn_command_writes_an_adapted_checkpoint(tmp_path: Path) -> None:
    model, ckpt = _checkpoint(tmp_path, {"width": 4, "num_classes": 3, "in_channels": 1})
    data = write_dataset(tmp_path / "real", make_samples(8))
    before = tree_digest(data)
    record = adapt_checkpoint(ckpt, str(data), tmp_path / "adapted.ckpt", batch_size=4)
    assert record["images"] == 8 and tree_digest(data) == before
    adapted = TaskModule(network=TaskNetworkSpec(width=4, num_classes=3), init_from=str(tmp_path / "adapted.ckpt"))
    assert torch.equal(adapted.network.features[0][0].weight, model.network.features[0][0].weight)
    assert not torch.allclose(adapted.network.features[0][1].running_mean, model.network.features[0][1].running_mean)
    with pytest.raises(FileExistsError):
        adapt_checkpoint(ckpt, str(data), tmp_path / "adapted.ckpt")


def test_adapt_bn_refuses_other_channel_counts_and_writes_nothing(tmp_path: Path) -> None:
    _checkpoint(tmp_path, {"width": 4, "num_classes": 3, "in_channels": 1})
    rgb = write_dataset(tmp_path / "rgb", make_samples(4, channels=3), channels=3)
    with pytest.raises(Exception, match="has 3-channel images but the model takes 1"):
        adapt_checkpoint(tmp_path / "model.ckpt", str(rgb), tmp_path / "out.ckpt")
    assert not (tmp_path / "out.ckpt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".ckpt"] == ["model.ckpt"]


def test_adapt_bn_reads_the_real_pool_of_each_builtin_benchmark(tmp_path: Path) -> None:
    seg = {"arch": "small_fcn", "width": 4, "num_classes": 11, "in_channels": 3, "task": "segmentation"}
    model, ckpt = _checkpoint(tmp_path, seg, task="segmentation")
    record = adapt_checkpoint(ckpt, "digits-scenes-real-pool", tmp_path / "scenes.ckpt", batch_size=100)
    assert record["images"] == 1000  # the 1,000 unlabeled real scenes, every batch full
    adapted = TaskModule(network=TaskNetworkSpec(**seg), init_from=str(tmp_path / "scenes.ckpt"))
    first_bn = next(m for m in adapted.network.modules() if isinstance(m, nn.BatchNorm2d))
    own_bn = next(m for m in model.network.modules() if isinstance(m, nn.BatchNorm2d))
    assert not torch.allclose(first_bn.running_mean, own_bn.running_mean)
    # the pools are told apart: photo-blended digits and the black-background digits give other statistics
    cls = {"width": 4, "num_classes": 10, "in_channels": 3}
    _, cls_ckpt = _checkpoint(tmp_path / "cls", cls)
    photo = adapt_checkpoint(cls_ckpt, "digits-photo-real-pool", tmp_path / "photo.ckpt", batch_size=128)
    black = adapt_checkpoint(cls_ckpt, "digits-real-pool", tmp_path / "black.ckpt", batch_size=128)
    assert photo["images"] == black["images"] > 0
    bns = [
        TaskModule(network=TaskNetworkSpec(**cls), init_from=str(tmp_path / f"{name}.ckpt")).network.features[0][1]
        for name in ("photo", "black")
    ]
    assert not torch.allclose(bns[0].running_mean, bns[1].running_mean)


def test_adapt_bn_refuses_a_photo_pool_for_a_grey_model_and_writes_nothing(tmp_path: Path) -> None:
    _, ckpt = _checkpoint(tmp_path, {"width": 4, "num_classes": 10, "in_channels": 1})
    with pytest.raises(ValueError, match=r"'digits-photo-real-pool' holds RGB images .* takes 1 channel"):
        adapt_checkpoint(ckpt, "digits-photo-real-pool", tmp_path / "out.ckpt")
    with pytest.raises(Exception, match="digits-scenes-real-pool"):  # a typo is not a pool: the error lists them
        adapt_checkpoint(ckpt, "digits-scenes-pool", tmp_path / "out.ckpt")
    assert not (tmp_path / "out.ckpt").exists()
