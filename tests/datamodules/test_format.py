from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.errors import DatasetError
from datamodules.format import DatasetInfo, Syn2RealDataset
from datamodules.writer import DatasetWriter
from syn2real.batch import Sample
from tests.conftest import make_samples, tree_digest, write_dataset


def _rewrite_row(root: Path, row: int, **changes: str) -> None:
    path = root / "samples.csv"
    rows = list(csv.DictReader(path.open()))
    rows[row].update(changes)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    samples = make_samples(channels=3)
    root = write_dataset(tmp_path / "ds", samples, channels=3)
    ds = Syn2RealDataset(root)
    assert len(ds) == len(samples)
    assert ds.info.channels == 3 and ds.info.size == (8, 8) and ds.info.masks and ds.info.depth
    for original, read in zip(samples, ds, strict=True):
        assert read.id == original.id
        assert int(read.label) == int(original.label)
        # 8-bit PNG: images survive exactly because they were multiples of 1/255
        torch.testing.assert_close(read.image, original.image, atol=1e-6, rtol=0)
        assert torch.equal(read.mask, original.mask)
        assert torch.equal(read.depth, original.depth)  # float32 .npy: exact
    assert ds.params(0) == {"index": "s000"}


def test_segmentation_round_trip(tmp_path: Path) -> None:
    info = DatasetInfo(task="segmentation", classes=["bg", "fg"], channels=1, size=(4, 4))
    labels = torch.tensor([[0, 1, 1, 255]] * 4)
    with DatasetWriter(tmp_path / "seg", info) as w:
        w.add(Sample(image=torch.zeros(1, 4, 4), label=labels, id="x"))
    read = Syn2RealDataset(tmp_path / "seg")[0]
    assert torch.equal(read.label, labels)


def test_reading_never_modifies_the_folder(dataset_dir: Path) -> None:
    before = tree_digest(dataset_dir)
    ds = Syn2RealDataset(dataset_dir)
    _ = [ds[i] for i in range(len(ds))]
    assert tree_digest(dataset_dir) == before


def test_missing_dataset_json_names_the_file(dataset_dir: Path) -> None:
    (dataset_dir / "dataset.json").unlink()
    with pytest.raises(DatasetError, match=r"dataset\.json.*missing.*Fix:"):
        Syn2RealDataset(dataset_dir)


def test_missing_image_names_file_and_row(dataset_dir: Path) -> None:
    (dataset_dir / "images" / "s002.png").unlink()
    with pytest.raises(DatasetError, match=r"s002\.png.*row 4.*missing") as err:
        Syn2RealDataset(dataset_dir)
    assert "remove its row" in str(err.value)


def test_unreadable_image_names_the_file(dataset_dir: Path) -> None:
    (dataset_dir / "images" / "s001.png").write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match=r"s001\.png: cannot be read as an image"):
        Syn2RealDataset(dataset_dir)


def test_label_out_of_range_names_the_row(dataset_dir: Path) -> None:
    _rewrite_row(dataset_dir, 3, label="7")
    with pytest.raises(DatasetError, match=r"samples\.csv:row 5 \(id 's003'\): label 7 is out of range for 3"):
        Syn2RealDataset(dataset_dir)


def test_mask_of_wrong_size_names_the_file(dataset_dir: Path) -> None:
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(dataset_dir / "masks" / "s004.png")
    with pytest.raises(DatasetError, match=r"masks/s004\.png: mask is 5×5, dataset\.json says 8×8"):
        Syn2RealDataset(dataset_dir)


def test_depth_of_wrong_size_names_the_file(dataset_dir: Path) -> None:
    np.save(dataset_dir / "depth" / "s000.npy", np.zeros((3, 3), np.float32))
    with pytest.raises(DatasetError, match=r"depth/s000\.npy: depth map is \(3, 3\)"):
        Syn2RealDataset(dataset_dir)


def test_wrong_format_version_is_refused(dataset_dir: Path) -> None:
    data = json.loads((dataset_dir / "dataset.json").read_text())
    data["version"] = 99
    (dataset_dir / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="format version 99 is not supported"):
        Syn2RealDataset(dataset_dir)


def test_writer_refuses_a_non_empty_folder(dataset_dir: Path) -> None:
    before = tree_digest(dataset_dir)
    info = DatasetInfo(task="classification", classes=["a"], channels=1, size=(8, 8))
    with pytest.raises(DatasetError, match=r"exists and is not empty.*--overwrite"):
        DatasetWriter(dataset_dir, info)
    assert tree_digest(dataset_dir) == before


def test_writer_overwrite_replaces(dataset_dir: Path) -> None:
    info = DatasetInfo(task="classification", classes=["a"], channels=1, size=(8, 8))
    with DatasetWriter(dataset_dir, info, overwrite=True) as w:
        w.add(Sample(image=torch.zeros(1, 8, 8), label=torch.tensor(0), id="only"))
    assert [s.id for s in Syn2RealDataset(dataset_dir)] == ["only"]


def test_interrupted_writer_leaves_nothing(tmp_path: Path) -> None:
    info = DatasetInfo(task="classification", classes=["a"], channels=1, size=(8, 8))
    with pytest.raises(RuntimeError), DatasetWriter(tmp_path / "out", info) as w:
        w.add(Sample(image=torch.zeros(1, 8, 8), label=torch.tensor(0), id="a"))
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_a_sample_of_the_wrong_shape(tmp_path: Path) -> None:
    info = DatasetInfo(task="classification", classes=["a"], channels=1, size=(8, 8))
    with pytest.raises(ValueError, match=r"shape \(3, 8, 8\)"), DatasetWriter(tmp_path / "out", info) as w:
        w.add(Sample(image=torch.zeros(3, 8, 8), label=torch.tensor(0), id="a"))
    assert not (tmp_path / "out").exists()


def test_copy_is_still_valid(dataset_dir: Path, tmp_path: Path) -> None:
    """Paths in the table are relative: a moved dataset still opens."""
    moved = shutil.copytree(dataset_dir, tmp_path / "moved")
    assert len(Syn2RealDataset(moved)) == 6
