"""Running experiment configs as isolated processes, one cell at a time, with resume and failure records.

Shared by ``syn2real bench zoo`` and ``syn2real bench schedules``: a cell is one ``syn2real fit`` run in its own
folder; a finished cell (``results.json`` present) is reused, a failed one is recorded with its error.
"""

from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Cell:
    """One training run of a benchmark.

    Attributes:
        name: row label (experiment or schedule).
        seed: training seed.
        folder: run folder (Lightning's ``log_dir``): ``<out>/<name>/seed<seed>`` plus any ``key``.
        args: ``syn2real fit`` arguments.
        tags: extra columns for the tables (method, family, budget...).
    """

    name: str
    seed: int
    folder: Path
    args: list[str]
    tags: dict[str, Any] = field(default_factory=dict)


@dataclass
class CellResult:
    """What a cell produced: status ``ok`` / ``failed``, metrics, wall time, and the error tail when it failed."""

    name: str
    seed: int
    status: str
    metrics: dict[str, float]
    wall_time_s: float
    reused: bool
    error: str = ""
    tags: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        flat = {k: v for k, v in asdict(self).items() if k not in ("metrics", "tags")}
        return {**flat, **self.tags, **self.metrics}


def logger_args(cell: Cell) -> list[str]:
    """Point the run's CSVLogger at the cell folder."""
    return ["--trainer.logger=pytorch_lightning.loggers.CSVLogger",
            f"--trainer.logger.save_dir={cell.folder.parent.parent}",
            f"--trainer.logger.name={cell.folder.parent.name}",
            f"--trainer.logger.version={cell.folder.name}", "--trainer.enable_progress_bar=false",
            f"--seed_everything={cell.seed}"]


def run_cell(cell: Cell, *, log: Any = None) -> CellResult:
    """Run (or reuse) one cell in a subprocess; never raises for a failed run."""
    done = cell.folder / "results.json"
    if done.is_file():
        record = json.loads(done.read_text())
        return CellResult(cell.name, cell.seed, "ok", record["metrics"], record["metrics"].get("fit_wall_time_s", 0.0),
                          reused=True, tags=cell.tags)
    cell.folder.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "syn2real", "fit", *cell.args, *logger_args(cell)]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    cell.folder.mkdir(parents=True, exist_ok=True)
    (cell.folder / "output.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not done.is_file():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        if log is not None:
            log(f"[red]failed[/red] {cell.name} seed {cell.seed}: {tail.splitlines()[-1] if tail else proc.returncode}")
        return CellResult(cell.name, cell.seed, "failed", {}, wall, reused=False, error=tail, tags=cell.tags)
    record = json.loads(done.read_text())
    return CellResult(cell.name, cell.seed, "ok", record["metrics"], record["metrics"].get("fit_wall_time_s", wall),
                      reused=False, tags=cell.tags)


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def write_runs_csv(path: Path, results: list[CellResult]) -> list[dict[str, Any]]:
    """One CSV row per run (status, metrics, wall time, tags, error); returns the rows."""
    rows = [r.row() for r in results]
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return rows
