"""``syn2real bench zoo`` on tiny configs: real runs in seconds, well-formed outputs, failures kept, resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from syn2real.bench.zoo import zoo_command

CONFIGS = Path(__file__).parents[3] / "configs"


def _tiny(name: str, folder: Path, **model_args: object) -> None:
    """A tiny experiment ``<name>__tiny.yaml`` in ``folder/experiments`` (``folder`` is then a configs folder)."""
    cfg = yaml.safe_load((CONFIGS / "smoke" / "task.yaml").read_text())
    cfg["trainer"] = yaml.safe_load((CONFIGS / "trainer" / "smoke.yaml").read_text())
    cfg["trainer"].update(
        {
            "fast_dev_run": False,
            "max_epochs": 1,
            "limit_train_batches": 2,
            "limit_val_batches": 1,
            "limit_test_batches": 1,
            "enable_checkpointing": False,
        }
    )
    cfg["model"]["init_args"].update(model_args)
    (folder / "experiments").mkdir(parents=True, exist_ok=True)
    (folder / "experiments" / f"{name}__tiny.yaml").write_text(yaml.safe_dump(cfg))


@pytest.mark.timeout(300)
def test_zoo_writes_tables_reports_failures_and_resumes(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    _tiny("source_only", configs)
    _tiny("broken", configs, network={"arch": "no_such_network", "num_classes": 3})
    out = tmp_path / "zoo"
    argv = ["--benchmark", "tiny", "--seeds", "3", "--configs", str(configs), "--out", str(out), "--jobs", "2"]
    assert zoo_command(argv) == 1  # one experiment fails: exit status says so

    rows = list(csv.DictReader((out / "results.csv").open()))
    status = {(r["name"], r["seed"], r["status"]) for r in rows}
    assert status == {("source_only", "3", "ok"), ("broken", "3", "failed")}
    assert all(0 <= float(r["test/target_acc"]) <= 1 for r in rows if r["status"] == "ok")
    assert "unknown network 'no_such_network'" in next(r["error"] for r in rows if r["status"] == "failed")
    board = json.loads((out / "results.json").read_text())["leaderboard"]
    assert [(b["method"], b["runs"], b["failed"]) for b in board] == [("source_only", 1, 0), ("broken", 0, 1)]
    markdown = (out / "leaderboard.md").read_text()
    assert "| source_only | baseline |" in markdown and "| broken | other | n/a | – | 0 | 1 |" in markdown
    with Image.open(out / "leaderboard.png") as png:
        assert png.size[0] > 100

    assert zoo_command(argv) == 1  # resume: finished cells are reused, failed ones retried
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["name"]: r["reused"] for r in rows if r["status"] == "ok"} == {"source_only": "True"}


def test_unknown_benchmark_is_refused(tmp_path: Path) -> None:
    assert zoo_command(["--benchmark", "nope", "--out", str(tmp_path)]) == 2
    assert not any(tmp_path.iterdir())


def test_interrupted_zoo_keeps_finished_runs_and_says_how_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    _tiny("source_only", configs)
    out = tmp_path / "zoo"
    finished = out / "source_only" / "seed0" / "results.json"
    finished.parent.mkdir(parents=True)
    finished.write_text('{"metrics": {"test/target_acc": 0.5}}')

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("syn2real.bench.zoo.run_cells", interrupt)
    assert (
        zoo_command(["--benchmark", "tiny", "--seeds", "0", "1", "--configs", str(configs), "--out", str(out)]) == 130
    )
    message = " ".join(capsys.readouterr().err.split())
    assert "interrupted: 1 finished run(s) are kept" in message and "Run the same command again to resume" in message
    assert finished.read_text() == '{"metrics": {"test/target_acc": 0.5}}'


def test_leaderboard_ranks_by_accuracy_and_gives_refiners_their_distance(tmp_path: Path) -> None:
    from syn2real.bench.runs import CellResult
    from syn2real.bench.zoo import leaderboard, write_tables

    results = [
        CellResult("source_only", s, "ok", {"test/target_acc": a}, 10.0, False, tags={"family": "baseline"})
        for s, a in [(0, 0.6), (1, 0.8)]
    ]
    results += [
        CellResult("gan", s, "ok", {"val/fd_effnet": fd}, 30.0, False, tags={"family": "refinement"})
        for s, fd in [(0, 100.0), (1, 120.0)]
    ]
    results += [CellResult("oracle", 0, "ok", {"test/target_acc": 0.99}, 5.0, False, tags={"family": "baseline"})]
    board = leaderboard(results, "test/target_acc")
    assert [r["method"] for r in board] == ["oracle", "source_only", "gan"]
    assert board[1]["mean"] == pytest.approx(70.0) and board[1]["std"] == pytest.approx(14.1421, abs=1e-3)
    assert board[2]["fd_effnet"] == pytest.approx(110.0) and board[2]["fd_effnet_std"] == pytest.approx(
        14.1421, abs=1e-3
    )
    write_tables(tmp_path, results, board, "test/target_acc", "tiny")
    assert "| gan | refinement | n/a | 110.0 ± 14.1 | 2 | 0 | 30 |" in (tmp_path / "leaderboard.md").read_text()
    with Image.open(tmp_path / "leaderboard.png") as png:  # second panel for the refiners: wider figure
        assert png.size[0] == 900  # 6 inches without refiners, 9 with, at 100 dpi
