from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sklearn.datasets import load_digits

from datamodules.data_modules import TaskDataModule
from datamodules.digit_scenes import RealDigitScenes, RealDigitScenesSource, RenderedDigitScenesSource, tile
from datamodules.simulator import DigitsSimulator, DigitsSimulatorConfig
from syn2real.batch import IGNORE_INDEX
from syn2real.bench.benchmarks import get_benchmark
from syn2real.bench.zoo import metric_of
from syn2real.tasks import TaskModule
from tests.conftest import quiet_trainer


def _cells(maps: torch.Tensor) -> list[torch.Tensor]:
    """The four cells (row-major) of ``H×W`` maps."""
    h, w = maps.shape[-2] // 2, maps.shape[-1] // 2
    return [maps[..., r * h : (r + 1) * h, c * w : (c + 1) * w] for r in (0, 1) for c in (0, 1)]


def test_real_scenes_are_disjoint_across_splits_and_labelled_from_their_own_digits() -> None:
    splits = {s: RealDigitScenes(s) for s in ("pool", "val", "test")}
    assert {s: len(d) for s, d in splits.items()} == {"pool": 1000, "val": 300, "test": 500}
    digits = {s: {i for scene in d.members for i in scene} for s, d in splits.items()}
    assert (
        not digits["pool"] & digits["val"]
        and not digits["pool"] & digits["test"]
        and not digits["val"] & digits["test"]
    )
    target = load_digits().target
    val = splits["val"]
    for index in range(5):  # each cell holds exactly its digit's class, background and the ignored edge
        for cell, member in zip(_cells(val.label_maps[index]), val.members[index], strict=True):
            assert set(cell.unique().tolist()) <= {0, 1 + int(target[member]), IGNORE_INDEX}
            assert (cell == 1 + int(target[member])).any()
    assert splits["pool"][0].label is None and val[0].label.shape == (64, 64)  # the pool's labels are not read
    again = RealDigitScenes("val")
    assert torch.equal(again.images, val.images) and again.members == val.members  # fixed, not seeded by the run


def test_photo_scenes_are_colour_and_keep_their_labels() -> None:
    black, photo = RealDigitScenes("test", channels=3), RealDigitScenes("test", channels=3, background="photo")
    assert photo.images.shape == (500, 3, 64, 64) and not torch.equal(black.images, photo.images)
    assert torch.equal(black.label_maps, photo.label_maps)
    with pytest.raises(ValueError, match="channels: 3"):
        RealDigitScenes("test", background="photo")


def test_rendered_scenes_tile_four_renders_with_their_masks_depth_and_labels() -> None:
    config = DigitsSimulatorConfig(channels=3)
    scenes = RenderedDigitScenesSource(num_samples=3, seed=4, config=config).load()
    renders = DigitsSimulator(config, seed=4).render(range(12))
    assert torch.equal(scenes.images, tile(renders.images)) and torch.equal(scenes.depth, tile(renders.depth))
    for index in range(3):
        sample = scenes[index]
        for k, (labels, mask) in enumerate(zip(_cells(sample.label), _cells(sample.mask[0]), strict=True)):
            digit = int(renders.labels[4 * index + k])
            assert torch.equal(labels[mask > 0.5], torch.full_like(labels[mask > 0.5], 1 + digit))  # the ink
            assert set(labels[mask < 0.5].unique().tolist()) <= {0, IGNORE_INDEX}  # background, the ring outside


def test_photo_blended_renders_keep_shapes_labels_masks_and_depth_on_real_style_backgrounds() -> None:
    from datamodules.digit_scenes import RENDER_PHOTO_KEYS
    from datamodules.photo_blend import photo_patches

    config = DigitsSimulatorConfig(channels=3)
    plain = RenderedDigitScenesSource(num_samples=3, seed=4, config=config).load()
    blended = RenderedDigitScenesSource(num_samples=3, seed=4, config=config, background="photo").load()
    assert torch.equal(blended.label_tensor, plain.label_tensor) and torch.equal(blended.masks, plain.masks)
    assert torch.equal(blended.depth, plain.depth) and blended.images.shape == plain.images.shape
    patches = photo_patches([RENDER_PHOTO_KEYS + 4 * 10**7 + i for i in range(3)], 64)
    ink = plain.images.mean(1, keepdim=True) * plain.masks
    assert torch.allclose(blended.images, (patches - ink).abs())  # |patch - ink|: the real scenes' blend
    background = plain.masks.expand_as(plain.images) < 0.5
    assert torch.equal(blended.images[background], patches[background])  # the simulator's background is gone
    with pytest.raises(ValueError, match=r"set config\.channels: 3"):
        RenderedDigitScenesSource(num_samples=3, background="photo")
    with pytest.raises(ValueError, match="'simulator' or 'photo'"):
        RenderedDigitScenesSource(num_samples=3, config=config, background="texture")  # type: ignore[arg-type]


def test_a_segmentation_network_trains_on_rendered_scenes_and_is_scored_by_miou(tmp_path: Path) -> None:
    data = TaskDataModule(
        train=[RenderedDigitScenesSource(num_samples=8, config=DigitsSimulatorConfig(channels=3))],
        val=RealDigitScenesSource(split="val", channels=3, background="photo"),
        batch_size=4,
    )
    model = TaskModule(
        network={"arch": "small_fcn", "width": 4, "num_classes": 11, "in_channels": 3, "task": "segmentation"}
    )
    trainer = quiet_trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(model, data)
    assert 0 <= trainer.callback_metrics["val/target_miou"].item() <= 1


def test_the_benchmark_is_segmentation_scored_by_miou() -> None:
    bench = get_benchmark("digits-scenes", task=None)
    assert bench.task == "segmentation" and bench.metric == "test/target_miou" and bench.channels == 3
    assert metric_of("digits-scenes", None) == "test/target_miou" and metric_of("digits", None) == "test/target_acc"
    assert metric_of("digits-scenes", "test/loss") == "test/loss"
    with pytest.raises(ValueError, match="is segmentation; this command takes classification: digits, digits-photo"):
        get_benchmark("digits-scenes")  # schedules and optimize-sim score classifiers
