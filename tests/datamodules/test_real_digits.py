from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.real_digits import SPLIT_SIZES, RealDigits, split_indices


def test_splits_are_disjoint_and_cover_the_dataset() -> None:
    s = split_indices()
    assert {k: len(v) for k, v in s.items()} == SPLIT_SIZES
    joined = np.concatenate(list(s.values()))
    assert len(np.unique(joined)) == len(joined) == 1797


def test_split_is_fixed() -> None:
    # the split is part of the benchmark: changing it changes every reported number
    s = split_indices()
    assert s["test"][:8].tolist() == [13, 15, 18, 20, 25, 28, 30, 32]
    assert int(s["val"].sum()) == 279628


def test_splits_are_stratified() -> None:
    counts = np.bincount(RealDigits("test").label_tensor.numpy(), minlength=10)
    assert counts.min() >= 48 and counts.max() <= 52


def test_images_follow_the_data_contract() -> None:
    ds = RealDigits("val", size=32)
    s = ds[0]
    assert s.image.shape == (1, 32, 32) and s.image.min() >= 0 and s.image.max() <= 1
    assert s.domain == 1 and s.id.startswith("sklearn-digits-")
    assert RealDigits("val", channels=3)[0].image.shape == (3, 32, 32)


def test_pool_can_drop_labels() -> None:
    assert RealDigits("pool")[0].label is None, "the pool is unlabeled unless labels are asked for"
    assert RealDigits("pool", use_labels=False)[0].label is None
    assert isinstance(RealDigits("pool", use_labels=True)[0].label, torch.Tensor)


def test_photo_digits_are_rgb_difference_blends_fixed_per_digit() -> None:
    from datamodules.photo_blend import blend_on_photos, photo_patches

    photo = RealDigits("val", channels=3, background="photo")
    plain = RealDigits("val", channels=1)
    assert photo.images.shape == (297, 3, 32, 32) and photo.images.min() >= 0 and photo.images.max() <= 1
    idx = split_indices()["val"][:4].tolist()
    patches = photo_patches(idx, 32)
    torch.testing.assert_close(photo.images[:4], (patches - plain.images[:4]).abs())  # MNIST-M's |patch − digit|
    torch.testing.assert_close(photo_patches(idx[2:3], 32), patches[2:3])  # a digit's patch depends on it alone
    assert not torch.equal(patches[0], patches[1])
    assert photo.images.std(dim=(2, 3)).mean() > 0.1  # textured, unlike the black scans' backgrounds
    with pytest.raises(ValueError, match="set channels: 3"):
        RealDigits("val", background="photo")
    with pytest.raises(ValueError, match="expected grey digits"):
        blend_on_photos(torch.zeros(2, 3, 8, 8), keys=[0, 1])
