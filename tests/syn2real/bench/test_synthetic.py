"""``bench zoo --synthetic``: every simulator source of an experiment becomes the run's stage, nothing else changes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from syn2real.bench.runs import Cell
from syn2real.bench.synthetic import check_synthetic, synthetic_cells, synthetic_data_config
from syn2real.bench.zoo_pairs import Pairing
from syn2real.cli import main
from syn2real.cli.configs import configs_dir

EXPERIMENTS = configs_dir(None) / "experiments"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("optsim") / "run"
    for index, (score, count) in enumerate([(0.2, 4), (0.5, 10000)]):  # best: as many renders as the experiments
        with pytest.raises(SystemExit):
            main(
                [
                    "simulate",
                    "--out",
                    str(out / f"stage_{index:03d}"),
                    "--num-samples",
                    str(count),
                    "--stage-index",
                    str(index),
                    "--score",
                    str(score),
                ]
            )
    return out


def test_every_simulator_source_is_replaced_with_its_domain(tmp_path: Path, run: Path) -> None:
    derived = synthetic_data_config(EXPERIMENTS / "dson__digits.yaml", run, "best", tmp_path / "dson.yaml")
    assert derived is not None
    data = yaml.safe_load(derived.read_text())
    sources = data["init_args"]["train"]
    assert [s["class_path"] for s in sources] == ["datamodules.Syn2RealSource"] * 3
    assert [s["init_args"]["domain"] for s in sources] == [0, 1, 2]
    assert {s["init_args"]["stage"] for s in sources} == {"best"}
    assert data["init_args"]["val"]["class_path"] == "datamodules.RealDigitsSource"  # real data untouched
    pair = yaml.safe_load(
        synthetic_data_config(EXPERIMENTS / "dann__digits.yaml", run, "best", tmp_path / "d.yaml").read_text()
    )
    assert pair["init_args"]["source"]["class_path"] == "datamodules.Syn2RealSource"
    assert pair["init_args"]["target"]["class_path"] == "datamodules.RealDigitsSource"


def test_an_experiment_without_simulator_data_has_no_synthetic_twin(tmp_path: Path, run: Path) -> None:
    assert synthetic_data_config(EXPERIMENTS / "target_oracle__digits.yaml", run, "best", tmp_path / "o.yaml") is None


def test_synthetic_cells_are_paired_with_the_same_row_on_the_default_psi(tmp_path: Path, run: Path) -> None:
    cells = [
        Cell(name, seed, tmp_path / name / f"seed{seed}", ["--config", str(EXPERIMENTS / f"{name}__digits.yaml"), "-x"])
        for name in ("source_only", "target_oracle")
        for seed in (0, 1)
    ]
    rows = {"source_only": Pairing("reference", "baseline"), "target_oracle": Pairing("reference", "ceiling")}
    new, pairings = synthetic_cells(cells, run, "best", tmp_path, rows)
    assert [(c.name, c.seed) for c in new] == [("source_only@best", 0), ("source_only@best", 1)]
    assert pairings == {"source_only@best": Pairing("baseline", "source_only")}
    assert new[0].args[:4] == [
        "--config",
        cells[0].args[1],
        "--data",
        str(tmp_path / "synthetic" / "source_only.data.yaml"),
    ]
    assert new[0].args[-1] == "-x"


def test_a_run_with_other_channels_is_refused(run: Path) -> None:
    assert check_synthetic(run, "best", 1).name == "stage_001"
    with pytest.raises(ValueError, match="1 channel"):
        check_synthetic(run, "best", 3)


def test_a_refiner_row_is_rerun_whole_on_the_stage_and_judged_on_its_renders(tmp_path: Path, run: Path) -> None:
    from syn2real.bench.zoo_refiners import judged_data, refiner_cells

    task = EXPERIMENTS / "source_only__digits.yaml"
    cells = refiner_cells(
        "cyclegan",
        EXPERIMENTS / "cyclegan__digits.yaml",
        task,
        [0, 1],
        tmp_path,
        refiner_args=["-r"],
        task_args=["-t"],
        tags={"method": "cyclegan"},
    )
    rows = {"cyclegan": Pairing("refines", "source_only")}
    new, pairings = synthetic_cells(cells, run, "best", tmp_path, rows)
    assert [(c.name, c.seed) for c in new] == [
        ("cyclegan@best:refiner", 0),
        ("cyclegan@best", 0),
        ("cyclegan@best:refiner", 1),
        ("cyclegan@best", 1),
    ]
    assert pairings == {"cyclegan@best": Pairing("baseline", "cyclegan")}  # paired with the default-ψ refiner row
    refiner, twin = new[2], new[3]
    assert refiner.folder == tmp_path / "cyclegan@best" / "refiner" / "seed1"
    assert refiner.args[-1] == "-r" and refiner.needs is None
    refiner_data = yaml.safe_load(Path(refiner.args[refiner.args.index("--data") + 1]).read_text())
    source = refiner_data["init_args"]["source"]
    assert source["class_path"] == "datamodules.Syn2RealSource"  # the refiner learns from the stage's renders
    assert source["init_args"]["root"] == str(run.resolve())
    assert source["init_args"]["stage"] == "1"  # `best` resolved once: a run that gains stages does not move twins
    assert source["init_args"]["num_samples"] == 3000  # as many renders as the refiner sees on the default ψ
    assert refiner_data["init_args"]["target"]["class_path"] == "datamodules.RealDigitsSource"

    assert twin.folder == tmp_path / "cyclegan@best" / "seed1" and twin.needs == refiner.folder
    assert twin.args[:2] == ["--config", str(task)] and twin.args[-1] == "-t"
    assert twin.args.count("--data") == 1  # the default-ψ refined data is replaced, not added to
    checkpoint = refiner.folder / "checkpoints" / "last.ckpt"
    data = yaml.safe_load(Path(twin.args[twin.args.index("--data") + 1]).read_text())
    (train,) = data["init_args"]["train"]
    assert train["class_path"] == "syn2real.refined_source.RefinedSource"
    assert train["init_args"]["checkpoint"] == str(checkpoint.resolve())  # the twin's own refiner
    assert train["init_args"]["source"]["class_path"] == "datamodules.Syn2RealSource"  # on the stage's renders
    assert data["init_args"]["val"]["class_path"] == "datamodules.RealDigitsSource"
    # label preservation: the twin's refiner, judged on the stage's raw renders
    assert twin.tags["refiner_checkpoint"] == str(checkpoint)
    judged = judged_data(twin.tags)
    assert judged["init_args"]["train"][0]["class_path"] == "datamodules.Syn2RealSource"
    assert judged_data(cells[1].tags)["init_args"]["train"][0]["class_path"] == "datamodules.DigitsSimulatorSource"


def test_a_method_holding_a_refiner_is_judged_by_its_twins_checkpoint(tmp_path: Path, run: Path) -> None:
    folder = tmp_path / "pixelda" / "seed0"
    tags = {
        "refiner_checkpoint": str(folder / "checkpoints" / "last.ckpt"),
        "task_experiment": str(EXPERIMENTS / "source_only__digits.yaml"),
    }
    cell = Cell("pixelda", 0, folder, ["--config", str(EXPERIMENTS / "pixelda__digits.yaml")], tags)
    rows = {"pixelda": Pairing("baseline", "source_only")}
    (twin,), _ = synthetic_cells([cell], run, "best", tmp_path, rows)
    assert twin.folder == tmp_path / "pixelda@best" / "seed0" and twin.needs is None
    assert twin.tags["refiner_checkpoint"] == str(twin.folder / "checkpoints" / "last.ckpt")
    assert twin.tags["task_data"] == str(tmp_path / "synthetic" / "source_only.data.yaml")


def test_a_stage_smaller_than_an_experiments_renders_or_several_stages_are_refused(tmp_path: Path, run: Path) -> None:
    cell = Cell("source_only", 0, tmp_path / "s", ["--config", str(EXPERIMENTS / "source_only__digits.yaml")])
    rows = {"source_only": Pairing("reference", "baseline")}
    with pytest.raises(ValueError, match="holds 4 renders, a simulator source of this experiment renders 10000"):
        synthetic_cells([cell], run, "0", tmp_path, rows)
    with pytest.raises(ValueError, match="selects 2 stages"):
        check_synthetic(run, "all", 1)
