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
    for index, score in enumerate([0.2, 0.5]):
        with pytest.raises(SystemExit):
            main(
                [
                    "simulate",
                    "--out",
                    str(out / f"stage_{index:03d}"),
                    "--num-samples",
                    "4",
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
