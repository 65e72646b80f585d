"""Every file under configs/ parses (GPU ones too), experiments compose what they reference, none is orphaned."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
import yaml

from syn2real.bench.schedules_config import load_schedules_config
from syn2real.bench.zoo_pairs import check_rows, load_zoo_config
from syn2real.cli import cli_main

REPO = Path(__file__).parents[1]
CONFIGS = REPO / "configs"
SMOKE_TASK = CONFIGS / "smoke" / "task.yaml"
FULL = sorted((CONFIGS / "experiments").glob("*.yaml")) + sorted((CONFIGS / "smoke").glob("*.yaml"))
MODELS = sorted((CONFIGS / "model").rglob("*.yaml"))
DATA = sorted((CONFIGS / "data").glob("*.yaml"))
TRAINERS = sorted((CONFIGS / "trainer").glob("*.yaml"))
BENCH = sorted((CONFIGS / "bench").glob("*.yaml"))
OPTIMIZE_SIM = sorted((CONFIGS / "optimize_sim").glob("*.yaml"))


def _id(path: Path) -> str:
    return str(path.relative_to(CONFIGS))


def _printed(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    with pytest.raises(SystemExit) as exit_:
        cli_main(["fit", *args, "--print_config"])
    out = capsys.readouterr()
    assert exit_.value.code in (0, None), out.err
    return yaml.safe_load(out.out)


@pytest.mark.parametrize("path", FULL, ids=_id)
def test_every_full_config_parses(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _printed(["--config", str(path)], capsys)
    assert config["model"]["class_path"] and config["data"]["class_path"]


def test_experiments_override_the_shared_trainer(capsys: pytest.CaptureFixture[str]) -> None:
    """`trainer: ../trainer/cpu.yaml` then dotted keys: the include and the overrides both take effect."""
    config = _printed(["--config", str(CONFIGS / "experiments" / "target_oracle__digits.yaml")], capsys)
    assert config["trainer"]["max_epochs"] == 30 and config["trainer"]["accelerator"] == "cpu"
    assert config["trainer"]["logger"]["init_args"]["name"] == "target_oracle__digits"
    assert config["trainer"]["callbacks"][0]["init_args"]["save_last"] is True
    model = config["model"]["init_args"]
    assert model["network"]["arch"] == "small_cnn" and model["optimizer"]["lr"] == pytest.approx(2e-3)
    gta = _printed(["--config", str(CONFIGS / "experiments" / "cyclegan__gta5_to_cityscapes.yaml")], capsys)
    assert gta["trainer"]["accelerator"] == "gpu" and gta["trainer"]["callbacks"][0]["init_args"]["every_n_epochs"] == 5
    assert gta["model"]["init_args"]["num_blocks"] == 9  # the reference model file


@pytest.mark.parametrize("path", MODELS, ids=_id)
def test_every_model_config_instantiates(path: Path) -> None:
    cli = cli_main(["--config", str(SMOKE_TASK), "--model", str(path)], run=False)
    assert type(cli.model).__name__ == yaml.safe_load(path.read_text())["class_path"].rsplit(".", 1)[1]


@pytest.mark.parametrize("path", DATA, ids=_id)
def test_every_data_config_instantiates(path: Path) -> None:
    cli = cli_main(["--config", str(SMOKE_TASK), "--data", str(path)], run=False)
    assert type(cli.datamodule).__name__ == yaml.safe_load(path.read_text())["class_path"].rsplit(".", 1)[1]


@pytest.mark.parametrize("path", TRAINERS, ids=_id)
def test_every_trainer_config_parses(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _printed(["--config", str(SMOKE_TASK), "--trainer", str(path)], capsys)
    assert config["trainer"]["accelerator"] == yaml.safe_load(path.read_text())["accelerator"]


def test_bench_configs_load_into_the_typed_config() -> None:
    full = load_schedules_config([CONFIGS / "bench" / "schedules.yaml"])
    quick = load_schedules_config([CONFIGS / "bench" / "schedules.yaml", CONFIGS / "bench" / "schedules_quick.yaml"])
    assert (
        full.budgets == (0, 10, 50, 250, 1000) and full.network.arch == "small_cnn" and full.lr == pytest.approx(2e-3)
    )
    assert quick.budgets == (0, 10, 100) and quick.seeds == (0,) and quick.finetune_lr == full.finetune_lr
    zoo = load_zoo_config(CONFIGS / "bench" / "zoo.yaml")
    rows = sorted({p.stem.split("__")[0] for p in (CONFIGS / "experiments").glob("*__digits*.yaml")})
    check_rows(zoo, rows, config_path=CONFIGS / "bench" / "zoo.yaml")  # every digits experiment has its pairing
    assert len(zoo.seeds) >= 2


@pytest.mark.parametrize("path", OPTIMIZE_SIM, ids=_id)
def test_every_optimize_sim_config_builds_its_search_space(path: Path) -> None:
    from syn2real.cli.optimize_sim import build_renderer, load_run_config
    from syn2real.simopt import SearchSpace

    config = load_run_config(path, {})  # the strategy only picks the optimizer, not the space
    renderer = build_renderer(config, path)
    space = SearchSpace(renderer, config["search"])
    assert space.dim >= 1 and 0 <= float(space.initial().min()) <= float(space.initial().max()) <= 1
    start = {**renderer.defaults(), **config["start"]}
    begun = space.to_psi(space.initial(config["start"]))
    assert begun == pytest.approx({k: start[k] for k in begun})  # the start ψ lies inside every range, unclipped


def test_no_config_is_orphaned_and_all_are_shipped() -> None:
    tested = {*FULL, *MODELS, *DATA, *TRAINERS, *BENCH, *OPTIMIZE_SIM}
    assert set(CONFIGS.rglob("*.yaml")) == tested
    shipped = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    policies = set(CONFIGS.rglob("*.pt"))  # learned policies (ASG) ship beside the configs that deploy them
    folders = {str(p.parent.relative_to(REPO)) for p in tested | policies}
    assert {f"share/syn2real/{f}" for f in folders} == set(shipped), "list every configs/ folder in pyproject.toml"
