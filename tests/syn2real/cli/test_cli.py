"""The real command line: smoke configs through LightningCLI, simulate, list, bad config keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from datamodules.format import Syn2RealDataset
from syn2real.cli import cli_main, main
from syn2real.method_index import method_index
from syn2real.registry import get_method, list_methods
from tests.conftest import tree_digest

REPO = Path(__file__).parents[3]
CONFIGS = REPO / "configs"
# "task" = the supervised TaskModule (source-only, oracle, fine-tuning); methods from the source index, so the list
# does not depend on which test modules imported the families before this one was collected
SMOKE = ["task", *(entry.name for entry in method_index())]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", SMOKE)
def test_smoke_config_trains_through_the_real_cli(name: str, tmp_path: Path) -> None:
    cfg = CONFIGS / "smoke" / f"{name}.yaml"
    assert cfg.is_file(), f"{name} has no smoke config at {cfg}"
    cli = cli_main(["--config", str(cfg), f"--trainer.default_root_dir={tmp_path}"], run=False)
    before = {id(p): p.detach().clone() for p in cli.model.parameters()}
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    for i, opt in enumerate(cli.trainer.optimizers):  # every player really stepped
        params = [p for group in opt.param_groups for p in group["params"]]
        assert any(not torch.equal(p, before[id(p)]) for p in params), f"{name}: optimizer {i} changed nothing"
    assert all(torch.isfinite(v).all() for v in cli.trainer.callback_metrics.values())


def test_unknown_config_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = yaml.safe_load((CONFIGS / "smoke" / "task.yaml").read_text())
    cfg["model"]["init_args"]["learning_rat"] = 0.1  # a typo of a real key
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(SystemExit) as exit_:
        cli_main(["fit", "--config", str(path)])
    assert exit_.value.code != 0
    assert "learning_rat" in capsys.readouterr().err


def test_fit_tests_the_final_model_and_writes_results(tmp_path: Path) -> None:
    cli_main(
        [
            "fit",
            "--config",
            str(CONFIGS / "smoke" / "task.yaml"),
            "--trainer.fast_dev_run=false",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
            "--trainer.logger=pytorch_lightning.loggers.CSVLogger",
            f"--trainer.logger.save_dir={tmp_path}",
        ]
    )
    results = json.loads(next(tmp_path.rglob("results.json")).read_text())
    assert results["subcommand"] == "fit" and results["model"] == "TaskModule"
    assert results["torch_threads"] == torch.get_num_threads() and results["torch_version"] == torch.__version__
    assert 0 <= results["metrics"]["test/target_acc"] <= 1 and results["metrics"]["fit_wall_time_s"] > 0


@pytest.mark.parametrize("name", ["task", "cycada"])  # CyCADA's image pools are state beside the tensors
def test_val_selected_weights_are_tested_beside_the_final_ones(tmp_path: Path, name: str) -> None:
    import csv

    cli_main(
        [
            "fit",
            "--config",
            str(CONFIGS / "smoke" / f"{name}.yaml"),
            "--trainer.fast_dev_run=false",
            "--trainer.max_epochs=3",
            "--trainer.limit_train_batches=2",
            "--trainer.logger=pytorch_lightning.loggers.CSVLogger",
            f"--trainer.logger.save_dir={tmp_path}",
            "--test_val_selected=true",
        ]
    )
    metrics = json.loads(next(tmp_path.rglob("results.json")).read_text())["metrics"]
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    val = [float(r["val/target_acc"]) for r in rows if r.get("val/target_acc")]
    assert len(val) == 3
    assert metrics["valsel_epoch"] == val.index(max(val)) and metrics["valsel_score"] == pytest.approx(max(val))
    assert 0 <= metrics["test_valsel/target_acc"] <= 1 and 0 <= metrics["test/target_acc"] <= 1


def test_simulate_writes_a_stage_dataset_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "sim" / "stage_002"
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--out", str(out), "--num-samples", "20", "--seed", "5", "--stage-index", "2"])
    assert exit_.value.code == 0
    ds = Syn2RealDataset(out)
    assert len(ds) == 20 and ds.info.masks and ds.info.depth and ds.info.stage["index"] == 2
    assert ds.info.stage["parameters"]["size"] == 32 and "rotation" in ds.params(0)
    assert ds.info.producer["config"]["seed"] == 5
    before = tree_digest(out)
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--out", str(out), "--num-samples", "5"])
    assert exit_.value.code == 2 and tree_digest(out) == before
    with pytest.raises(SystemExit):
        main(["simulate", "--out", str(out), "--num-samples", "5", "--overwrite"])
    assert len(Syn2RealDataset(out)) == 5


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_simulate_with_writer_threads_writes_the_same_bytes_as_one(tmp_path: Path) -> None:
    for workers in (1, 3):
        with pytest.raises(SystemExit) as exit_:
            main(["simulate", "--out", str(tmp_path / f"w{workers}"), "--num-samples", "300", f"--workers={workers}"])
        assert exit_.value.code == 0
    one, three = _file_bytes(tmp_path / "w1"), _file_bytes(tmp_path / "w3")
    assert len(one) == 2 + 3 * 300 and one == three  # dataset.json, samples.csv, image + mask + depth per sample


def test_simulate_names_an_unknown_simulator_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "psi.yaml").write_text("rotaton: [0.0, 1.0]\n")
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--out", str(tmp_path / "o"), "--config", str(tmp_path / "psi.yaml")])
    assert exit_.value.code == 2 and "unknown simulator keys ['rotaton']" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_tour_simulate_then_fit_on_the_folder(tmp_path: Path) -> None:
    """README tour: `syn2real simulate` -> `syn2real fit` on that folder -> test on real digits."""
    with pytest.raises(SystemExit):
        main(["simulate", "--out", str(tmp_path / "sim" / "stage_000"), "--num-samples", "32"])
    cli_main(
        [
            "fit",
            "--config",
            str(CONFIGS / "smoke" / "task.yaml"),
            "--data",
            str(CONFIGS / "data" / "simulated_folder.yaml"),
            f"--data.train.init_args.root={tmp_path / 'sim'}",
            "--data.batch_size=8",
            "--model.network.num_classes=10",
            "--trainer.fast_dev_run=false",
            "--trainer.max_epochs=1",
            "--trainer.limit_val_batches=1",
            "--trainer.limit_test_batches=1",
            "--trainer.logger=pytorch_lightning.loggers.CSVLogger",
            f"--trainer.logger.save_dir={tmp_path}",
        ]
    )
    assert "test/target_acc" in json.loads(next(tmp_path.rglob("results.json")).read_text())["metrics"]


def test_list_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["list"])
    assert exit_.value.code == 0
    assert "source_only__digits.yaml" in capsys.readouterr().out
    main(["--help"])
    assert "simulate" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["fitt"])
    assert exit_.value.code == 2


def test_list_fits_80_columns_without_cutting_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exit_:
        main(["list"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 80
    assert "…" not in out
    for name in list_methods():  # full class paths, whole
        cls = get_method(name)
        assert f"{cls.__module__.removesuffix('.module')}.{cls.__qualname__}" in out
    assert "configs/experiments/cyclegan__gta5_to_cityscapes.yaml" in out


def test_configs_are_found_outside_a_checkout_or_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from syn2real.cli import configs

    monkeypatch.setenv(configs.ENV, str(CONFIGS))
    assert configs.configs_dir() == CONFIGS
    monkeypatch.delenv(configs.ENV)
    monkeypatch.setattr(configs, "candidates", lambda: [tmp_path / "nowhere"])
    with pytest.raises(FileNotFoundError, match="pass --configs DIR or set SYN2REAL_CONFIGS"):
        configs.configs_dir()
    with pytest.raises(SystemExit) as exit_:
        main(["list", "--configs", str(tmp_path)])
    assert exit_.value.code == 2 and "has no experiments/ subfolder" in capsys.readouterr().err
