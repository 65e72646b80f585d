"""Simulator output trains through the real CLI: each format's data config with the smoke segmentation model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from syn2real.cli import cli_main

REPO = Path(__file__).parents[3]
CONFIGS = REPO / "configs"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fmt", ["solo", "blenderproc", "replicator"])
def test_a_simulator_fixture_trains_through_the_real_cli(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the data configs name the fixtures relative to the repository, as a user's would
    cli = cli_main(
        [
            "--config",
            str(CONFIGS / "smoke" / "simulator_output.yaml"),
            "--data",
            str(CONFIGS / "data" / f"{fmt}.yaml"),
            f"--trainer.default_root_dir={tmp_path}",
        ],
        run=False,
    )
    before = [p.detach().clone() for p in cli.model.parameters()]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.datamodule.classes == ["background", "cube", "sphere"]
    assert any(not torch.equal(p, b) for p, b in zip(cli.model.parameters(), before, strict=True))
    assert all(torch.isfinite(v).all() for v in cli.trainer.callback_metrics.values())
