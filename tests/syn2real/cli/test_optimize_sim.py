"""``syn2real optimize-sim`` end to end with tiny budgets (each strategy writes stages a method can train on), and
its refusals before the first stage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from datamodules.sources import Syn2RealSource
from syn2real.cli import main

TINY = {
    "benchmark": "digits",
    "simulator": {"size": 16},
    "search": {"scale": [0.5, 1.2], "clutter": [0.0, 0.6]},
    "stages": 2,
    "stage_samples": 12,
    "network": {"width": 4},
    "meta-sim": {"samples": 8, "feature_size": 32},
    "autosimulate": {"train_samples": 32, "inner_steps": 2, "batch_size": 8, "hessian_samples": 8, "cg_iterations": 2},
    "lts": {"samples_per_stage": 2, "train_samples": 32, "steps": 2, "batch_size": 8},
}


def _config(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(["optimize-sim", *argv])
    return int(exit_info.value.code or 0)


@pytest.mark.parametrize("strategy", ["meta-sim", "autosimulate", "lts"])
def test_each_strategy_writes_scored_stages_and_a_report(tmp_path: Path, strategy: str) -> None:
    out = tmp_path / "out"
    assert _run(["--config", str(_config(tmp_path, strategy=strategy)), "--out", str(out)]) == 0
    infos = [json.loads((out / f"stage_00{i}" / "dataset.json").read_text()) for i in range(2)]
    assert [i["stage"]["index"] for i in infos] == [0, 1]
    assert all(isinstance(i["stage"]["score"], float) for i in infos)
    assert infos[0]["stage"]["parameters"]["scale"] == [0.6, 0.9]  # stage 0 is the default ψ
    assert infos[0]["stage"]["strategy"] == strategy
    for name in ("score.png", "psi.png", "samples.png", "report.md", "stages.csv"):
        assert (out / name).is_file()
    data = Syn2RealSource(root=str(out), stage="best").load()
    assert len(data) == 12 and data[0].image.shape == (1, 16, 16) and data[0].mask is not None
    # re-running the finished command resumes: nothing is redone
    before = (out / "stage_001" / "dataset.json").stat().st_mtime_ns
    assert _run(["--config", str(_config(tmp_path, strategy=strategy)), "--out", str(out)]) == 0
    assert (out / "stage_001" / "dataset.json").stat().st_mtime_ns == before


def test_real_folder_of_unlabeled_images_feeds_meta_sim(tmp_path: Path) -> None:
    from PIL import Image

    real = tmp_path / "real"
    real.mkdir()
    for i in range(4):
        Image.fromarray((torch.rand(16, 16) * 255).byte().numpy()).save(real / f"{i}.png")
    config = _config(tmp_path, strategy="meta-sim", real=str(real), stages=1)
    assert _run(["--config", str(config), "--out", str(tmp_path / "out")]) == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"strategy": "meta-sim", "search": {"colour": [0, 1]}}, "unknown simulator field 'colour'"),
        ({"strategy": "meta-sim", "search": {"scale": [0.5, 5.0]}}, "outside the valid domain"),
        ({"strategy": "meta-sim", "simulator": {"sizes": 16}}, "unknown simulator fields"),
        ({"strategy": "annealing"}, "is not one of"),
        ({"strategy": "meta-sim", "real": "EMPTY"}, "holds no images"),
        ({"strategy": "autosimulate", "real": "EMPTY"}, "needs labeled real validation images"),
        ({"strategy": "lts", "real_val": "EMPTY"}, "has no class subfolders"),
        ({"strategy": "meta-sim", "benchmark": "mnist"}, "unknown benchmark"),
        ({"strategy": "meta-sim", "benchmark": "digits-photo"}, "set simulator: {channels: 3}"),
    ],
)
def test_bad_input_is_refused_before_the_first_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, object], message: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    changes = {k: str(empty) if v == "EMPTY" else v for k, v in changes.items()}
    out = tmp_path / "out"
    assert _run(["--config", str(_config(tmp_path, **changes)), "--out", str(out)]) == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not out.exists()


def test_a_folder_holding_another_tools_stages_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit):
        main(["simulate", "--out", str(out / "stage_000"), "--num-samples", "2"])
    before = sorted(p.name for p in out.rglob("*"))
    assert _run(["--config", str(_config(tmp_path, strategy="meta-sim")), "--out", str(out)]) == 2
    assert "written by syn2real.simulate" in " ".join(capsys.readouterr().err.split())
    assert sorted(p.name for p in out.rglob("*")) == before


def test_a_run_with_other_settings_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _run(["--config", str(_config(tmp_path, strategy="lts", stages=1)), "--out", str(out)]) == 0
    assert _run(["--config", str(_config(tmp_path, strategy="autosimulate", stages=1)), "--out", str(out)]) == 2
    assert "other settings" in " ".join(capsys.readouterr().err.split())


def test_a_users_own_renderer_is_driven_from_the_command_line(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        strategy="meta-sim",
        renderer="tests.syn2real.test_simopt:ToyRenderer",
        simulator={},
        search={"level": [0.0, 1.0]},
        **{"meta-sim": {"samples": 8, "features": "pixels", "feature_size": 2}},
    )
    out = tmp_path / "out"
    assert _run(["--config", str(config), "--out", str(out)]) == 0
    info = json.loads((out / "stage_001" / "dataset.json").read_text())
    assert info["stage"]["parameters"]["level"] != 0.2  # ψ moved from the toy default
    assert json.loads((out / "run.json").read_text())["renderer"] == "tests.toy"
    assert Syn2RealSource(root=str(out), stage="best").load()[0].image.shape == (1, 4, 4)


def test_a_renderer_that_breaks_the_protocol_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, strategy="meta-sim", renderer="pathlib:PurePath", simulator={})
    assert _run(["--config", str(config), "--out", str(tmp_path / "out")]) == 2
    assert "does not follow the Renderer protocol" in " ".join(capsys.readouterr().err.split())


def _task_checkpoint(path: Path, **network: object) -> Path:
    from syn2real.tasks.module import TaskModule

    task = TaskModule(network={"arch": "small_cnn", "width": 4, **network})
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams)}, path)
    return path


def test_meta_sim_on_the_task_networks_features(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from syn2real.simopt.objectives import TaskFeatures

    ckpt = _task_checkpoint(tmp_path / "task.ckpt")
    features = TaskFeatures(ckpt, channels=1)
    images = torch.rand(3, 1, 16, 16)
    pooled = features(images)
    assert pooled.shape == (3, features.network.feature_dim)  # the layer before the classifier, frozen in eval mode
    assert torch.allclose(features.network.forward_head(pooled), features.network(images))
    assert not any(p.requires_grad for p in features.network.parameters()) and not features.network.training
    meta = {**TINY["meta-sim"], "features": "task", "task_checkpoint": str(ckpt)}
    config = _config(tmp_path, strategy="meta-sim", stages=1, **{"meta-sim": meta})
    assert _run(["--config", str(config), "--out", str(tmp_path / "out")]) == 0
    # refused before the first stage: no checkpoint named, a missing one, one for colour images
    for changes, message in (
        ({"task_checkpoint": None}, "features: task needs task_checkpoint"),
        ({"task_checkpoint": str(tmp_path / "nope.ckpt")}, "nope.ckpt not found"),
        ({"task_checkpoint": str(_task_checkpoint(tmp_path / "rgb.ckpt", in_channels=3))}, "takes 3-channel images"),
    ):
        out = tmp_path / "refused"
        config = _config(tmp_path, strategy="meta-sim", **{"meta-sim": {**meta, **changes}})
        assert _run(["--config", str(config), "--out", str(out)]) == 2
        assert message in " ".join(capsys.readouterr().err.split())
        assert not out.exists()
