from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.errors import DatasetError
from datamodules.folders import ImageFolderDataset, SegmentationFolderDataset, UnlabeledFolderDataset
from syn2real.batch import IGNORE_INDEX
from tests.conftest import tree_digest


def _png(path: Path, size: tuple[int, int] = (6, 6), value: int = 128, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (*size, 3) if mode == "RGB" else size
    Image.fromarray(np.full(shape, value, np.uint8), mode).save(path)


def test_class_folders_give_sorted_labels(tmp_path: Path) -> None:
    for cls, n in (("cat", 2), ("ant", 1)):
        for i in range(n):
            _png(tmp_path / cls / f"{i}.png")
    before = tree_digest(tmp_path)
    ds = ImageFolderDataset(tmp_path)
    assert ds.classes == ["ant", "cat"] and ds.labels() == [0, 1, 1]
    s = ds[1]
    assert s.image.shape == (3, 6, 6) and int(s.label) == 1 and s.id == "cat/0.png" and s.domain == 1
    assert tree_digest(tmp_path) == before


def test_class_order_can_follow_the_synthetic_dataset(tmp_path: Path) -> None:
    _png(tmp_path / "b" / "0.png")
    assert ImageFolderDataset(tmp_path, classes=["b", "a"]).labels() == [0]
    with pytest.raises(DatasetError, match="class folder 'b' is not among the classes"):
        ImageFolderDataset(tmp_path, classes=["a"])


def test_mixed_sizes_need_a_size(tmp_path: Path) -> None:
    _png(tmp_path / "flat" / "a.png", (6, 6))
    _png(tmp_path / "flat" / "b.png", (7, 5))
    with pytest.raises(DatasetError, match=r"b\.png: is 7×5 but a\.png is 6×6.*give the dataset a `size`"):
        UnlabeledFolderDataset(tmp_path / "flat")
    ds = UnlabeledFolderDataset(tmp_path / "flat", size=(4, 4), channels=1)
    assert ds[1].image.shape == (1, 4, 4) and ds[1].label is None


def test_unreadable_folder_image_names_the_file(tmp_path: Path) -> None:
    _png(tmp_path / "flat" / "a.png")
    (tmp_path / "flat" / "b.png").write_bytes(b"junk")
    with pytest.raises(DatasetError, match=r"b\.png: cannot be read"):
        UnlabeledFolderDataset(tmp_path / "flat")


def test_segmentation_pairs_with_a_class_map(tmp_path: Path) -> None:
    _png(tmp_path / "img" / "x.jpg")
    raw = np.array([[7, 8, 9]] * 6 + [[0, 0, 0]] * 0, np.uint8).repeat(2, axis=1)
    Image.fromarray(raw, "L").save((tmp_path / "lab").mkdir() or tmp_path / "lab" / "x.png")
    (tmp_path / "map.json").write_text(json.dumps({"classes": ["road", "car"], "mapping": {"7": 0, "8": 1}}))
    s = SegmentationFolderDataset(tmp_path / "img", tmp_path / "lab", tmp_path / "map.json")[0]
    assert s.label[0].tolist() == [0, 0, 1, 1, IGNORE_INDEX, IGNORE_INDEX]


def test_segmentation_missing_label_map_names_the_image(tmp_path: Path) -> None:
    _png(tmp_path / "img" / "x.png")
    (tmp_path / "lab").mkdir()
    (tmp_path / "map.json").write_text(json.dumps({"classes": ["a"]}))
    with pytest.raises(DatasetError, match=r"x\.png: has no label map"):
        SegmentationFolderDataset(tmp_path / "img", tmp_path / "lab", tmp_path / "map.json")


def test_bad_class_map_is_refused(tmp_path: Path) -> None:
    (tmp_path / "map.json").write_text(json.dumps({"classes": ["a"], "mapping": {"3": 4}}))
    (tmp_path / "img").mkdir()
    with pytest.raises(DatasetError, match=r"outside 0\.\.0"):
        SegmentationFolderDataset(tmp_path / "img", tmp_path / "img", tmp_path / "map.json")
