"""Label preservation (judge agreement with source labels) and training on refined data without exporting it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from datamodules.data_modules import RandomDataModule, RandomDomainPairDataModule
from datamodules.errors import DatasetError
from datamodules.format import DatasetInfo, Syn2RealDataset
from datamodules.simulator import DigitsSimulatorConfig
from datamodules.sources import DigitsSimulatorSource, RandomSource, RealDigitsSource
from datamodules.writer import DatasetWriter
from refinement.cyclegan import CycleGAN
from syn2real.batch import Sample
from syn2real.bench.zoo_refiners import refine_training_sources, training_source, write_refined_data
from syn2real.cli import cli_main, main
from syn2real.export import load_refiner, refine_dataset
from syn2real.label_preservation import (
    LabelPreservation,
    SegmentationPreservation,
    load_judge,
    measure_label_preservation,
)
from syn2real.metrics import task_metric
from syn2real.refined_source import RefinedSource
from syn2real.tasks import TaskModule, TaskNetworkSpec
from tests.conftest import fit_and_save, make_samples, write_dataset


class Brightness(nn.Module):
    """A judge that predicts the class whose level (0, 0.5, 1 for classes 0, 1, 2) is nearest the image mean."""

    def __init__(self) -> None:
        super().__init__()
        self.levels = nn.Parameter(torch.tensor([0.0, 0.5, 1.0]), requires_grad=False)

    def forward(self, images: Tensor) -> Tensor:
        return -((images.mean((1, 2, 3))[:, None] - self.levels) ** 2)


def _images(means: list[float]) -> Tensor:
    return torch.tensor(means).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).clone()


def test_label_preservation_is_the_share_the_judge_gives_the_source_label() -> None:
    meter = LabelPreservation(Brightness())
    labels = torch.tensor([0, 1, 2, 0])
    # raw predictions 0, 1, 2, 2 (3 of 4 right); refined 1, 0, 0, 0 (1 of 4 right: the last)
    meter.update(_images([0.0, 0.5, 1.0, 1.0]), _images([0.5, 0.0, 0.0, 0.0]), labels)
    assert meter.rates() == {"raw": 0.75, "refined": 0.25, "images": 4}
    meter.update(_images([0.5]), _images([0.5]), torch.tensor([1]))  # accumulates over batches
    assert meter.rates() == {"raw": 4 / 5, "refined": 2 / 5, "images": 5}
    with pytest.raises(ValueError, match="one label per image"):
        meter.update(_images([0.0]), _images([0.0]), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="no labeled images"):
        LabelPreservation(Brightness()).rates()


class PixelLevels(nn.Module):
    """A segmenter that gives each pixel the class whose level (0, 0.5, 1 for classes 0, 1, 2) is nearest its value."""

    def __init__(self) -> None:
        super().__init__()
        self.levels = nn.Parameter(torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1), requires_grad=False)

    def forward(self, images: Tensor) -> Tensor:
        return -((images[:, :1] - self.levels) ** 2)


def test_per_pixel_label_preservation_is_the_judges_miou_and_its_ink_split() -> None:
    meter = SegmentationPreservation(PixelLevels())
    labels = torch.tensor([[[0, 1], [2, 255]]])  # the last pixel is ignored
    raw = torch.tensor([[[[0.0, 0.5], [1.0, 0.3]]]])  # read 0, 1, 2: all right
    refined = torch.tensor([[[[0.5, 0.0], [1.0, 0.9]]]])  # read 1, 0, 2: background and the 1 swapped
    meter.update(raw, refined, labels)
    rates = meter.rates()
    # refined: IoU 0 for classes 0 and 1 (each predicted once, labelled once, never both), 1 for class 2 -> 1/3;
    # of the two foreground pixels one is called foreground (the 2), and it is named right
    assert rates == pytest.approx(
        {
            "images": 1,
            "raw": 1.0,
            "refined": 1 / 3,
            "foreground_recall_raw": 1.0,
            "foreground_recall_refined": 0.5,
            "naming_raw": 1.0,
            "naming_refined": 1.0,
        }
    )
    # a second image: the refiner turns a labelled 2 into a 1 (found, misnamed); raw reads it right
    meter.update(torch.tensor([[[[1.0, 0.0]]]]), torch.tensor([[[[0.5, 0.0]]]]), torch.tensor([[[2, 0]]]))
    rates = meter.rates()
    # refined over both images: class 0 labelled 2, predicted 2, tp 1 -> 1/3; class 1 labelled 1, predicted 2,
    # tp 0 -> 0; class 2 labelled 2, predicted 1, tp 1 -> 1/2
    assert rates["images"] == 2 and rates["raw"] == pytest.approx(1.0)
    assert rates["refined"] == pytest.approx((1 / 3 + 0 + 1 / 2) / 3)
    assert rates["foreground_recall_refined"] == pytest.approx(2 / 3) and rates["naming_refined"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"label map per image \(B×H×W\)"):
        meter.update(raw, refined, torch.tensor([0]))
    with pytest.raises(ValueError, match="no labeled images"):
        SegmentationPreservation(PixelLevels()).rates()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 32×32 grey refiner and a 10-class judge, 2 training steps each."""
    folder = tmp_path_factory.mktemp("ckpt")
    refiner = CycleGAN(in_channels=1, base_channels=4, num_blocks=1, disc_base_channels=4, disc_layers=1, pool_size=2)
    judge = TaskModule(network=TaskNetworkSpec(width=4, num_classes=10))
    return (
        fit_and_save(refiner, RandomDomainPairDataModule(size=32, batch_size=2), folder / "refiner.ckpt"),
        fit_and_save(judge, RandomDataModule(num_classes=10, size=32, batch_size=4), folder / "judge.ckpt"),
    )


def test_refined_source_refines_every_image_and_keeps_the_rest(checkpoints: tuple[Path, Path]) -> None:
    refiner_ckpt, _ = checkpoints
    source = DigitsSimulatorSource(num_samples=6, seed=3)
    raw = source.load()
    refined = RefinedSource(source=source, checkpoint=str(refiner_ckpt), batch_size=4).load()
    refiner, _ = load_refiner(refiner_ckpt)
    expected = refiner.refine(torch.stack([raw[i].image for i in range(6)]))
    assert len(refined) == 6
    for i in range(6):
        a, b = raw[i], refined[i]
        assert b.id == a.id and int(b.label) == int(a.label) and b.domain == a.domain
        assert torch.equal(b.mask, a.mask) and torch.equal(b.depth, a.depth)
        assert torch.allclose(b.image, expected[i], atol=1e-6) and not torch.equal(b.image, a.image)
    colour = RefinedSource(
        source=DigitsSimulatorSource(num_samples=2, config=DigitsSimulatorConfig(channels=3)),
        checkpoint=str(refiner_ckpt),
    )
    with pytest.raises(ValueError, match=r"trained on 1-channel 32×32 images.*gives 3-channel 32×32"):
        colour.load()


def test_measured_label_preservation_matches_the_judge_on_raw_and_refined(checkpoints: tuple[Path, Path]) -> None:
    refiner_ckpt, judge_ckpt = checkpoints
    source = DigitsSimulatorSource(num_samples=20, seed=1)
    rates = measure_label_preservation(refiner_ckpt, judge_ckpt, source, batch_size=8)
    raw = source.load()
    images, labels = torch.stack([raw[i].image for i in range(20)]), torch.stack([raw[i].label for i in range(20)])
    judge, (refiner, _) = load_judge(judge_ckpt), load_refiner(refiner_ckpt)
    with torch.no_grad():
        assert rates["raw"] == int((judge(images).argmax(1) == labels).sum()) / 20
        assert rates["refined"] == int((judge(refiner.refine(images)).argmax(1) == labels).sum()) / 20
    assert rates["images"] == 20
    first = measure_label_preservation(refiner_ckpt, judge_ckpt, source, batch_size=8, limit=8)  # --quick's subset
    with torch.no_grad():
        assert first["images"] == 8 and first["raw"] == int((judge(images[:8]).argmax(1) == labels[:8]).sum()) / 8
    with pytest.raises(ValueError, match="not a syn2real task checkpoint"):
        load_judge(refiner_ckpt)


def test_a_refiner_on_label_maps_is_judged_per_pixel_by_a_segmenter(
    checkpoints: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refiner_ckpt, classifier_ckpt = checkpoints
    network = TaskNetworkSpec(arch="small_fcn", width=4, num_classes=3, task="segmentation")
    segmenter = fit_and_save(
        TaskModule(network=network), RandomDataModule(num_classes=3, task="segmentation"), tmp_path / "seg.ckpt"
    )
    source = RandomSource(num_samples=10, num_classes=3, size=32, task="segmentation", seed=4)
    rates = measure_label_preservation(refiner_ckpt, segmenter, source, batch_size=4)
    raw = source.load()
    images, maps = torch.stack([raw[i].image for i in range(10)]), torch.stack([raw[i].label for i in range(10)])
    judge, (refiner, _) = load_judge(segmenter, task="segmentation"), load_refiner(refiner_ckpt)
    with torch.no_grad():
        for kind, seen in (("raw", images), ("refined", refiner.refine(images))):
            miou = task_metric("segmentation", 3)[1]
            miou.update(judge(seen).argmax(1), maps)
            assert rates[kind] == pytest.approx(float(miou.compute()))
    assert rates["images"] == 10 and 0 <= rates["foreground_recall_refined"] <= 1

    # an export of a segmentation dataset with --judge records the same per-pixel figures
    info = DatasetInfo(task="segmentation", classes=["a", "b", "c"], channels=1, size=(32, 32), producer={"name": "t"})
    with DatasetWriter(tmp_path / "seg", info) as writer:
        for i in range(10):
            writer.add(Sample(image=images[i], label=maps[i], id=f"s{i}"))
    exported = refine_dataset(refiner_ckpt, tmp_path / "seg", tmp_path / "out", judge=segmenter)["label_preservation"]
    assert exported == pytest.approx({**rates, "judge": str(segmenter.resolve())}, abs=2e-3)  # 8-bit PNG round trip
    args = ["refine", "--ckpt", str(refiner_ckpt), "--data", str(tmp_path / "seg"), "--judge", str(segmenter)]
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--out", str(tmp_path / "cli")])
    assert exit_.value.code == 0
    said = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert f"mIoU on the label maps, raw {100 * exported['raw']:.1f}%" in said  # the command says what it measured
    with pytest.raises(ValueError, match="classification network; the renders have segmentation labels"):
        measure_label_preservation(refiner_ckpt, classifier_ckpt, source, batch_size=4)


def test_refine_with_a_judge_records_label_preservation(checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
    refiner_ckpt, judge_ckpt = checkpoints
    data = write_dataset(tmp_path / "d", make_samples(6, size=32, num_classes=10), size=32, classes=list("0123456789"))
    args = ["refine", "--ckpt", str(refiner_ckpt), "--data", str(data), "--judge", str(judge_ckpt)]
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--out", str(tmp_path / "r")])
    assert exit_.value.code == 0
    kept = json.loads((tmp_path / "r" / "dataset.json").read_text())["producer"]["label_preservation"]
    assert kept["images"] == 6 and kept["judge"] == str(judge_ckpt.resolve())
    raw = Syn2RealDataset(data)
    images, labels = torch.stack([s.image for s in raw]), torch.stack([s.label for s in raw])
    judge, (refiner, _) = load_judge(judge_ckpt), load_refiner(refiner_ckpt)
    with torch.no_grad():
        assert kept["raw"] == int((judge(images).argmax(1) == labels).sum()) / 6
        assert kept["refined"] == int((judge(refiner.refine(images)).argmax(1) == labels).sum()) / 6
    three = write_dataset(tmp_path / "three", make_samples(2, size=32), size=32)  # 3 classes; the judge has 10
    with pytest.raises(ValueError, match="the judge takes 10 classes, the data has 3"):
        refine_dataset(refiner_ckpt, three, tmp_path / "r3", judge=judge_ckpt)
    assert not (tmp_path / "r3").exists()
    info = DatasetInfo(task="segmentation", classes=["bg", "fg"], channels=1, size=(32, 32), producer={"name": "t"})
    with DatasetWriter(tmp_path / "seg", info) as writer:
        writer.add(Sample(image=torch.rand(1, 32, 32), label=torch.zeros(32, 32, dtype=torch.long), id="a"))
    with pytest.raises(ValueError, match="classification network; the renders have segmentation labels"):
        refine_dataset(refiner_ckpt, tmp_path / "seg", tmp_path / "r2", judge=judge_ckpt)
    assert not (tmp_path / "r2").exists()
    bare = DatasetInfo(task="classification", classes=list("abc"), channels=1, size=(32, 32), labels=False)
    with DatasetWriter(tmp_path / "u", bare) as writer:
        writer.add(Sample(image=torch.rand(1, 32, 32), id="u0"))
    unlabeled = tmp_path / "u"
    with pytest.raises(DatasetError, match=r"has no labels.*drop --judge"):
        refine_dataset(refiner_ckpt, unlabeled, tmp_path / "r4", judge=judge_ckpt)


def test_a_domain_pair_is_refined_on_its_renders_only(checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
    """A `refines: dann` zoo row: the adapter's labeled renders go through the refiner; the real target does not."""
    refiner_ckpt, _ = checkpoints
    renders = {"class_path": "datamodules.DigitsSimulatorSource", "init_args": {"num_samples": 6, "seed": 3}}
    pool = {"class_path": "datamodules.RealDigitsSource", "init_args": {"split": "pool"}}
    block = {"class_path": "datamodules.DomainPairDataModule", "init_args": {"source": renders, "target": pool}}
    refined = refine_training_sources(block, refiner_ckpt, tmp_path / "dann.yaml")
    wrapped = refined["init_args"]["source"]
    assert wrapped["class_path"] == "syn2real.refined_source.RefinedSource"
    assert wrapped["init_args"] == {"source": renders, "checkpoint": str(refiner_ckpt.resolve())}
    assert refined["init_args"]["target"] == pool and block["init_args"]["source"] == renders  # the input is kept

    data = write_refined_data(tmp_path / "refined_data.yaml", refined, "the zoo's refined data block")
    smoke = Path(__file__).parents[2] / "configs" / "smoke" / "task.yaml"
    module = cli_main(["--config", str(smoke), "--data", str(data)], run=False).datamodule  # as the zoo's task run
    module.setup("fit")
    raw = DigitsSimulatorSource(num_samples=6, seed=3).load()
    refiner, _ = load_refiner(refiner_ckpt)
    expected = refiner.refine(torch.stack([raw[i].image for i in range(6)]))
    assert torch.allclose(torch.stack([module.source_set[i].image for i in range(6)]), expected, atol=1e-6)
    assert [int(module.source_set[i].label) for i in range(6)] == [int(raw[i].label) for i in range(6)]
    real = RealDigitsSource(split="pool").load()
    assert torch.equal(module.target_set[0].image, real[0].image)  # the target stays real

    assert len(training_source(block).load()) == 6  # what the zoo judges: the domain pair's renders

    with pytest.raises(ValueError, match=r"no `train` or `source` renders.*refines"):
        refine_training_sources({"init_args": {"target": pool}}, refiner_ckpt, tmp_path / "oracle.yaml")
