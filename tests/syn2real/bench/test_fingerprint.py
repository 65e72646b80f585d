"""A finished zoo cell is reused only while its configs say the same thing (``syn2real.bench.fingerprint``).

The training subprocess is replaced by a stand-in that writes a ``results.json`` (the real one runs in
``test_zoo.py``); everything else (fingerprints, set-aside folders, logs) is the real code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from syn2real.bench import runs
from syn2real.bench.fingerprint import FINGERPRINT_FILE, cell_fingerprint, recorded_fingerprint
from syn2real.bench.runs import Cell, run_cell


def _configs(root: Path, *, stages: int = 3, comment: str = "") -> Path:
    """experiments/x.yaml including ../model/m.yaml, which includes net.yaml from its own folder."""
    (root / "experiments").mkdir(parents=True, exist_ok=True)
    (root / "model").mkdir(exist_ok=True)
    (root / "experiments" / "x.yaml").write_text(f"{comment}\nseed_everything: 0\nmodel: ../model/m.yaml\n")
    (root / "model" / "m.yaml").write_text("class_path: a.B\ninit_args: {network: net.yaml, lr: 0.1}\n")
    (root / "model" / "net.yaml").write_text(f"arch: small_fcn\nfcn_stages: {stages}\n")
    return root / "experiments" / "x.yaml"


def test_fingerprint_follows_content_not_comments_or_place(tmp_path: Path) -> None:
    cfg = _configs(tmp_path / "a")
    base = cell_fingerprint(["--config", str(cfg), "--test_val_selected=true"])
    assert cell_fingerprint(["--config", str(_configs(tmp_path / "b", comment="# a note"))]) == cell_fingerprint(
        ["--config", str(cfg)]
    )  # a moved checkout, a new comment: the same experiment
    assert cell_fingerprint(["--config", str(cfg), "--test_val_selected=true"]) == base
    _configs(tmp_path / "a", stages=1)  # a file two includes deep changes
    assert cell_fingerprint(["--config", str(cfg), "--test_val_selected=true"]) != base
    assert cell_fingerprint(["--config", str(cfg), "--test_val_selected=false"]) != cell_fingerprint(
        ["--config", str(cfg), "--test_val_selected=true"]
    )
    (tmp_path / "a" / "model" / "net.yaml").write_text("include: m.yaml\n")  # a cycle ends at the repeat
    assert len(cell_fingerprint(["--config", str(cfg)])) == 64


class FakeFit:
    """Stands in for the ``syn2real fit`` subprocess: writes ``results.json`` (with its call number) into the run."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls += 1
        save_dir = next(a.split("=", 1)[1] for a in command if a.startswith("--trainer.logger.save_dir="))
        name = next(a.split("=", 1)[1] for a in command if a.startswith("--trainer.logger.name="))
        version = next(a.split("=", 1)[1] for a in command if a.startswith("--trainer.logger.version="))
        folder = Path(save_dir) / name / version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps({"metrics": {"test/target_acc": float(self.calls)}}))
        return subprocess.CompletedProcess(command, 0, "", "")


def _faked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[FakeFit, Cell]:
    """A cell of the configs under ``tmp_path/configs``, its fits done by a :class:`FakeFit`."""
    fit = FakeFit()
    monkeypatch.setattr(runs.subprocess, "run", fit)
    cfg = _configs(tmp_path / "configs")
    return fit, Cell(name="x", seed=0, folder=tmp_path / "out" / "x" / "seed0", args=["--config", str(cfg)])


def test_a_changed_config_runs_again_and_keeps_the_old_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fit, cell = _faked(tmp_path, monkeypatch)
    cfg = Path(cell.args[1])
    logged: list[str] = []

    first = run_cell(cell, log=logged.append)
    assert fit.calls == 1 and not first.reused and first.metrics["test/target_acc"] == 1.0
    assert recorded_fingerprint(cell.folder) == cell_fingerprint(cell.args)

    (cfg.parent / "x.yaml").write_text("# only a comment is new\n" + cfg.read_text())
    again = run_cell(cell, log=logged.append)
    assert fit.calls == 1 and again.reused and again.metrics["test/target_acc"] == 1.0 and not logged

    _configs(tmp_path / "configs", stages=1)
    changed = run_cell(cell, log=logged.append)
    assert fit.calls == 2 and not changed.reused and changed.metrics["test/target_acc"] == 2.0
    stale = cell.folder.with_name("seed0.stale")
    assert json.loads((stale / "results.json").read_text())["metrics"]["test/target_acc"] == 1.0  # kept, not lost
    assert len(logged) == 1 and "config changed" in logged[0] and "x.yaml" in logged[0] and str(stale) in logged[0]


def test_a_run_from_before_fingerprints_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fit = FakeFit()
    monkeypatch.setattr(runs.subprocess, "run", fit)
    cell = Cell(name="x", seed=1, folder=tmp_path / "x" / "seed1", args=["--config", str(_configs(tmp_path))])
    run_cell(cell)
    (cell.folder / FINGERPRINT_FILE).unlink()  # what every run of an older syn2real looks like
    _configs(tmp_path, stages=2)
    assert run_cell(cell).reused and fit.calls == 1  # nothing to compare with: reused, as before
    shutil.rmtree(cell.folder)
    assert not run_cell(cell).reused and fit.calls == 2


def test_absolute_paths_in_a_generated_config_move_with_it(tmp_path: Path) -> None:
    def refined_data(out: Path) -> Path:  # what the zoo writes: the refiner checkpoint's absolute path
        (out / "cyclegan" / "refined_data").mkdir(parents=True)
        path = out / "cyclegan" / "refined_data" / "seed0.yaml"
        ckpt = out / "cyclegan" / "refiner" / "seed0" / "checkpoints" / "last.ckpt"
        path.write_text(f"init_args: {{refiner: {ckpt}, since: 2020-01-01}}\n")  # a date: YAML parses it
        return path

    here, there = refined_data(tmp_path / "a"), refined_data(tmp_path / "b")
    assert cell_fingerprint(["--data", str(here)]) == cell_fingerprint(["--data", str(there)])
    other = tmp_path / "a" / "cyclegan" / "refined_data" / "seed0.yaml"
    other.write_text(other.read_text().replace("seed0/checkpoints", "seed1/checkpoints"))
    assert cell_fingerprint(["--data", str(here)]) != cell_fingerprint(["--data", str(there)])


def test_an_unreadable_config_sets_nothing_aside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fit, cell = _faked(tmp_path, monkeypatch)
    run_cell(cell)
    net = tmp_path / "configs" / "model" / "net.yaml"
    net.write_text("arch: [unclosed\n")  # a typo being fixed
    assert cell_fingerprint(cell.args) is None
    assert run_cell(cell).reused and fit.calls == 1 and not cell.folder.with_name("seed0.stale").exists()
    net.write_bytes(b"\xff\xfe not text")
    assert cell_fingerprint(cell.args) is None


def test_an_edit_undone_brings_the_earlier_run_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fit, cell = _faked(tmp_path, monkeypatch)
    logged: list[str] = []
    assert run_cell(cell).metrics["test/target_acc"] == 1.0  # A
    _configs(tmp_path / "configs", stages=1)
    assert run_cell(cell).metrics["test/target_acc"] == 2.0  # B; A set aside
    _configs(tmp_path / "configs", stages=3)
    back = run_cell(cell, log=logged.append)  # A again: its run is the cell's again, B's is set aside
    assert back.reused and back.metrics["test/target_acc"] == 1.0 and fit.calls == 2
    assert "reusing the earlier run" in logged[0]
    stale = json.loads((cell.folder.with_name("seed0.stale") / "results.json").read_text())
    assert stale["metrics"]["test/target_acc"] == 2.0


def test_the_tables_leave_out_a_run_of_changed_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs.subprocess, "run", FakeFit())
    cfg = _configs(tmp_path / "configs")
    cells = [Cell(name="x", seed=s, folder=tmp_path / "x" / f"seed{s}", args=["--config", str(cfg)]) for s in (0, 1)]
    for cell in cells:
        run_cell(cell)
    assert len(runs.finished_results(cells)) == 2
    _configs(tmp_path / "configs", stages=1)
    assert runs.finished_results(cells) == []  # seeds of the old config are not shown beside runs of the new one
