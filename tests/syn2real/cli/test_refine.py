"""``syn2real refine``: export keeps everything but the images, records provenance, and refuses bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from datamodules.data_modules import RandomDataModule, RandomDomainPairDataModule
from datamodules.errors import DatasetError
from datamodules.format import Syn2RealDataset
from refinement.cyclegan import CycleGAN
from syn2real.cli import main
from syn2real.export import refine_dataset
from syn2real.tasks import TaskModule, TaskNetworkSpec
from tests.conftest import fit_and_save, make_samples, tree_digest, write_dataset


@pytest.fixture(scope="module")
def refiner_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = CycleGAN(in_channels=1, base_channels=4, num_blocks=1, disc_base_channels=4, disc_layers=1, pool_size=2)
    return fit_and_save(
        model, RandomDomainPairDataModule(size=16, batch_size=2), tmp_path_factory.mktemp("r") / "r.ckpt"
    )


def test_export_keeps_ids_labels_masks_depth_and_records_provenance(refiner_ckpt: Path, tmp_path: Path) -> None:
    source = write_dataset(
        tmp_path / "run" / "stage_000",
        make_samples(5, size=16),
        size=16,
        stage={"name": "s0", "index": 0, "parameters": {"blur": 1}, "score": None},
    )
    before = tree_digest(source)
    result = refine_dataset(refiner_ckpt, tmp_path / "run", tmp_path / "refined", batch_size=2)
    assert result["images"] == 5 and tree_digest(source) == before
    original, refined = Syn2RealDataset(source), Syn2RealDataset(tmp_path / "refined")
    for a, b in zip(original, refined, strict=True):
        assert a.id == b.id and int(a.label) == int(b.label)
        assert torch.equal(a.mask, b.mask) and torch.equal(a.depth, b.depth)
    assert any(not torch.equal(a.image, b.image) for a, b in zip(original, refined, strict=True))
    assert [refined.params(i) for i in range(5)] == [original.params(i) for i in range(5)]
    producer = json.loads((tmp_path / "refined" / "dataset.json").read_text())["producer"]
    assert producer["name"] == "syn2real.refine"
    assert producer["refiner"] == "refinement.cyclegan.module.CycleGAN"
    assert producer["checkpoint"] == str(refiner_ckpt.resolve()) and producer["parent"] == str(source.resolve())
    assert refined.info.stage["parameters"] == {"blur": 1}


def test_refusals_write_nothing(refiner_ckpt: Path, tmp_path: Path) -> None:
    small = write_dataset(tmp_path / "small", make_samples(2, size=8), size=8)
    with pytest.raises(DatasetError, match="trained on 16×16"):
        refine_dataset(refiner_ckpt, small, tmp_path / "out1")
    rgb = write_dataset(tmp_path / "rgb", make_samples(2, size=16, channels=3), size=16, channels=3)
    with pytest.raises(DatasetError, match="3-channel images; the refiner was trained on 1-channel"):
        refine_dataset(refiner_ckpt, rgb, tmp_path / "out2")
    task = TaskModule(network=TaskNetworkSpec(width=4, num_classes=3))
    task_ckpt = fit_and_save(task, RandomDataModule(num_classes=3, size=16, batch_size=4), tmp_path / "task.ckpt")
    ok = write_dataset(tmp_path / "ok", make_samples(2, size=16), size=16)
    with pytest.raises(ValueError, match="not a refiner checkpoint"):
        refine_dataset(task_ckpt, ok, tmp_path / "out3")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="exists and is not empty"):
        refine_dataset(refiner_ckpt, ok, tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    assert not any((tmp_path / f"out{i}").exists() for i in (1, 2, 3))
    assert not list(tmp_path.glob(".*partial*"))


def test_command_line(refiner_ckpt: Path, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "d", make_samples(3, size=16), size=16)
    with pytest.raises(SystemExit) as exit_:
        main(["refine", "--ckpt", str(refiner_ckpt), "--data", str(data), "--out", str(tmp_path / "r")])
    assert exit_.value.code == 0 and len(Syn2RealDataset(tmp_path / "r")) == 3
    with pytest.raises(SystemExit) as exit_:
        main(["refine", "--ckpt", str(refiner_ckpt), "--data", str(data), "--out", str(tmp_path / "r")])
    assert exit_.value.code == 2


def test_a_noise_refiner_exports_reproducibly_from_its_seed(tmp_path: Path) -> None:
    from refinement.pixelda import PixelDA

    network = {"arch": "small_cnn", "width": 4, "num_classes": 10, "in_channels": 1}
    model = PixelDA(network=network, image_size=16, noise_dims=3, generator_width=4, generator_blocks=1)
    for w in (model.gen.project[0].weight, model.gen.stem[0].weight, model.gen.head.weight):
        torch.nn.init.normal_(w, 0.0, 0.5)  # GAN init keeps a tiny generator near 0.5: make the noise visible in 8 bits
    ckpt = fit_and_save(model, RandomDomainPairDataModule(size=16, batch_size=2), tmp_path / "pixelda.ckpt")
    source = write_dataset(tmp_path / "raw", make_samples(4, size=16), size=16)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    runs = {
        name: refine_dataset(ckpt, source, tmp_path / name, batch_size=2, seed=seed)
        for name, seed in (("a", 0), ("b", 0), ("c", 1))
    }
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is untouched
    images = {name: torch.stack([s.image for s in Syn2RealDataset(tmp_path / name)]) for name in runs}
    assert torch.equal(images["a"], images["b"]) and not torch.equal(images["a"], images["c"])
    producer = json.loads((tmp_path / "c" / "dataset.json").read_text())["producer"]
    assert producer["refiner"] == "refinement.pixelda.module.PixelDA" and producer["seed"] == 1


def test_export_links_unchanged_files_and_worker_processes_give_the_same_bytes(
    refiner_ckpt: Path, tmp_path: Path
) -> None:
    source = write_dataset(tmp_path / "src", make_samples(7, size=16), size=16)
    refine_dataset(refiner_ckpt, source, tmp_path / "r0", batch_size=3)
    refine_dataset(refiner_ckpt, source, tmp_path / "r2", batch_size=3, workers=2)
    files = sorted(p.relative_to(tmp_path / "r0") for p in (tmp_path / "r0").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "r2") for p in (tmp_path / "r2").rglob("*") if p.is_file())
    for rel in files:
        assert (tmp_path / "r0" / rel).read_bytes() == (tmp_path / "r2" / rel).read_bytes(), rel
    for sample_id in ("s000", "s006"):  # masks and depth are the parent's files, linked (same filesystem here)
        for rel in (f"masks/{sample_id}.png", f"depth/{sample_id}.npy"):
            assert (tmp_path / "r0" / rel).samefile(source / rel)


def test_export_copies_what_it_cannot_link(refiner_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_dataset(tmp_path / "src", make_samples(3, size=16), size=16)

    def cross_device(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr("datamodules.writer.os.link", cross_device)
    refine_dataset(refiner_ckpt, source, tmp_path / "r", batch_size=2)
    for rel in ("masks/s001.png", "depth/s001.npy"):
        assert not (tmp_path / "r" / rel).samefile(source / rel)
        assert (tmp_path / "r" / rel).read_bytes() == (source / rel).read_bytes()


def test_a_truncated_image_stops_the_export_naming_it_and_leaves_nothing(refiner_ckpt: Path, tmp_path: Path) -> None:
    source = write_dataset(tmp_path / "src", make_samples(4, size=16), size=16)
    png = source / "images" / "s002.png"
    png.write_bytes(png.read_bytes()[:-30])  # the header is intact: only decoding the pixels finds it
    with pytest.raises(DatasetError, match=r"s002\.png: cannot be read as an image"):
        refine_dataset(refiner_ckpt, source, tmp_path / "out", batch_size=2)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*partial*"))


def test_a_segmentation_dataset_exports_with_its_label_maps_linked(refiner_ckpt: Path, tmp_path: Path) -> None:
    from datamodules.format import DatasetInfo
    from datamodules.writer import DatasetWriter

    info = DatasetInfo(task="segmentation", classes=["bg", "a"], channels=1, size=(16, 16), masks=True, depth=True)
    with DatasetWriter(tmp_path / "seg", info) as writer:
        writer.add_batch(
            ids=["x0", "x1", "x2"],
            images=torch.rand(3, 1, 16, 16),
            labels=torch.randint(0, 2, (3, 16, 16)),
            masks=torch.rand(3, 1, 16, 16),
            depth=torch.rand(3, 1, 16, 16),
        )
    refine_dataset(refiner_ckpt, tmp_path / "seg", tmp_path / "r", batch_size=2)
    original, refined = Syn2RealDataset(tmp_path / "seg"), Syn2RealDataset(tmp_path / "r")
    for a, b in zip(original, refined, strict=True):
        assert a.id == b.id and torch.equal(a.label, b.label) and torch.equal(a.mask, b.mask)
    assert (tmp_path / "r" / "labels" / "x1.png").samefile(tmp_path / "seg" / "labels" / "x1.png")


def test_an_unreadable_image_read_by_a_worker_process_is_the_same_one_line_error(
    refiner_ckpt: Path, tmp_path: Path
) -> None:
    source = write_dataset(tmp_path / "src", make_samples(4, size=16), size=16)
    png = source / "images" / "s003.png"
    png.write_bytes(png.read_bytes()[:-30])
    with pytest.raises(DatasetError, match=r"s003\.png: cannot be read as an image") as err:
        refine_dataset(refiner_ckpt, source, tmp_path / "out", batch_size=2, workers=2)
    assert type(err.value) is DatasetError and "Fix:" in str(err.value) and "Traceback" not in str(err.value)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*partial*"))
