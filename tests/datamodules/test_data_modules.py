from __future__ import annotations

import pytest
import torch

from datamodules.data_modules import DomainPairDataModule, TaskDataModule
from datamodules.sources import RandomSource, RealDigitsSource
from datamodules.transforms import SampleTransform
from syn2real.batch import IGNORE_INDEX, Batch, DomainBatch, Sample


def test_task_datamodule_mixes_sources_in_the_given_proportions() -> None:
    dm = TaskDataModule(
        train=[RandomSource(num_samples=40, seed=0, domain=0), RandomSource(num_samples=8, seed=1, domain=1)],
        proportions=[0.75, 0.25],
        val=RandomSource(num_samples=8, domain=1),
        batch_size=8,
        epoch_size=80,
    )
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 10 and all(isinstance(b, Batch) for b in batches)
    assert [int((b.domains == 1).sum()) for b in batches] == [2] * 10
    assert isinstance(next(iter(dm.val_dataloader())), Batch)


def test_channel_mismatch_is_refused_before_training() -> None:
    dm = TaskDataModule(train=[RandomSource(channels=3)], val=RealDigitsSource(split="val", channels=1))
    with pytest.raises(ValueError, match=r"val \(RealDigitsSource\) has 1-channel images but train\[0\].* has 3"):
        dm.setup("fit")


def test_pair_datamodule_yields_domain_batches() -> None:
    dm = DomainPairDataModule(
        source=RandomSource(num_samples=12, domain=0),
        target=RandomSource(num_samples=5, domain=1, use_labels=False, seed=1),
        val=RandomSource(num_samples=4, domain=1),
        batch_size=4,
    )
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches = [dm.on_after_batch_transfer(b, 0) for b, *_ in loader]
    assert len(batches) == 3  # the larger domain once, the smaller cycled
    assert all(isinstance(b, DomainBatch) for b in batches)
    assert batches[0].source.labels is not None and batches[0].target.labels is None
    assert batches[0].target.domains.tolist() == [1] * 4


def test_pair_datamodule_refuses_other_image_sizes() -> None:
    dm = DomainPairDataModule(source=RandomSource(size=32), target=RandomSource(size=16), batch_size=2)
    with pytest.raises(ValueError, match="images are 16×16 but source"):
        dm.setup("fit")


def test_missing_test_split_has_a_clear_message() -> None:
    dm = TaskDataModule(train=[RandomSource()])
    dm.setup("test")
    with pytest.raises(ValueError, match="no `test` dataset configured"):
        dm.test_dataloader()


def test_augmentation_moves_mask_depth_and_label_map_together() -> None:
    image = torch.zeros(1, 16, 16)
    image[:, 4:12, 4:12] = 1.0
    labels = torch.zeros(16, 16, dtype=torch.long)
    labels[4:12, 4:12] = 1
    sample = Sample(image=image, label=labels, mask=image.clone(), depth=image.clone())
    out = SampleTransform("strong", seed=0)
    for _ in range(5):
        s = out(sample)
        assert s.image.shape == (1, 16, 16) and s.image.min() >= 0 and s.image.max() <= 1
        assert set(s.label.unique().tolist()) <= {0, 1, IGNORE_INDEX}
        assert torch.equal(s.mask > 0.5, s.depth > 0.5)  # geometry shared by mask and depth
        assert torch.equal(s.label == 1, s.mask[0] > 0.5)


def test_a_budget_smaller_than_a_batch_still_trains_for_the_epoch_size() -> None:
    dm = TaskDataModule(train=[RandomSource(num_samples=5)], batch_size=8, epoch_size=80)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 10 and all(len(b) == 8 for b in batches)
    dm = TaskDataModule(train=[RandomSource(num_samples=5)], batch_size=8)
    dm.setup("fit")
    assert len(list(dm.train_dataloader())) == 1  # one epoch of the data, never zero batches
