"""Running experiment configs as isolated processes, with resume and failure records.

Shared by ``syn2real bench zoo`` and ``syn2real bench schedules``: a cell is one ``syn2real fit`` run in its own
folder; a finished cell (``results.json`` present) is reused unless its config changed since (its recorded
:mod:`~syn2real.bench.fingerprint` differs: the old run is set aside as ``<folder>.stale`` and the cell runs again); a
failed one is recorded with its error.
:func:`run_cells` runs ``jobs`` cells at a time, each with ``cpu_count // jobs`` threads (small networks use two
one-thread processes better than one two-thread process: 1.43x the throughput on 2 cores, measured), and starts a
cell only after the cell it depends on (the pretraining of a fine-tune) finished.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from syn2real.bench.fingerprint import cell_fingerprint, config_files, record_fingerprint, recorded_fingerprint


@dataclass
class Cell:
    """One training run of a benchmark.

    Attributes:
        name: row label (experiment or schedule).
        seed: training seed.
        folder: run folder (Lightning's ``log_dir``): ``<out>/<name>/seed<seed>`` plus any ``key``.
        args: ``syn2real fit`` arguments.
        tags: extra columns for the tables (method, family, budget...).
        needs: the folder of a cell that must finish first (its checkpoint is this cell's input).
    """

    name: str
    seed: int
    folder: Path
    args: list[str]
    tags: dict[str, Any] = field(default_factory=dict)
    needs: Path | None = None


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
    return [
        "--trainer.logger=pytorch_lightning.loggers.CSVLogger",
        f"--trainer.logger.save_dir={cell.folder.parent.parent}",
        f"--trainer.logger.name={cell.folder.parent.name}",
        f"--trainer.logger.version={cell.folder.name}",
        "--trainer.enable_progress_bar=false",
        f"--seed_everything={cell.seed}",
    ]


def run_cell(cell: Cell, *, log: Any = None, threads: int | None = None) -> CellResult:
    """Run (or reuse) one cell in a subprocess (with ``threads`` intra-op threads if given); never raises."""
    done = cell.folder / "results.json"
    fingerprint = cell_fingerprint(cell.args)
    if done.is_file() and _outdated(cell):  # its input (a refiner) was retrained: set the old run aside, run again
        _set_aside(cell)
    elif _changed(cell.folder, fingerprint):
        stale = _set_aside(cell, keep_matching=fingerprint)
        if log is not None:
            configs = ", ".join(p.name for p in config_files(cell.args)) or "its arguments"
            again = "reusing the earlier run of these configs" if done.is_file() else "running it again"
            log(
                f"[yellow]config changed[/yellow] since {cell.name} seed {cell.seed} ran ({configs}): {again}; "
                f"the other run is kept in {stale}"
            )
    if done.is_file():
        return _finished(cell, done, reused=True, wall=0.0)
    cell.folder.mkdir(parents=True, exist_ok=True)
    if fingerprint is not None:  # before the run: a run cut off after its results.json still has its record
        record_fingerprint(cell.folder, cell.args, fingerprint)
    command = [sys.executable, "-m", "syn2real", "fit", *cell.args, *logger_args(cell)]
    started = time.perf_counter()
    env = None if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - started
    cell.folder.mkdir(parents=True, exist_ok=True)
    (cell.folder / "output.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not done.is_file():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        if log is not None:
            log(f"[red]failed[/red] {cell.name} seed {cell.seed}: {tail.splitlines()[-1] if tail else proc.returncode}")
        return _failed(cell, tail, wall)
    return _finished(cell, done, reused=False, wall=wall)


def _changed(folder: Path, fingerprint: str | None) -> bool:
    """Whether the finished run in ``folder`` recorded other configs than ``fingerprint`` (unknown: not changed)."""
    recorded = recorded_fingerprint(folder)
    done = (folder / "results.json").is_file()
    return done and None not in (recorded, fingerprint) and recorded != fingerprint


def _set_aside(cell: Cell, *, keep_matching: str | None = None) -> Path:
    """Move a finished run that must run again to ``<folder>.stale`` and return that path.

    An older ``.stale`` run replaced by it is deleted, unless it recorded ``keep_matching`` (an edit undone): then
    the two swap and the earlier run is the cell's again.
    """
    stale = cell.folder.with_name(cell.folder.name + ".stale")
    undone = keep_matching is not None and recorded_fingerprint(stale) == keep_matching
    if undone and (stale / "results.json").is_file():
        swap = cell.folder.with_name(cell.folder.name + ".swap")
        cell.folder.rename(swap)
        stale.rename(cell.folder)
        swap.rename(stale)
        return stale
    shutil.rmtree(stale, ignore_errors=True)
    cell.folder.rename(stale)
    return stale


def _outdated(cell: Cell) -> bool:
    """Whether the cell this one ``needs`` finished after this one did (so this result used an older input)."""
    if cell.needs is None or not (cell.needs / "results.json").is_file():
        return False
    return (cell.needs / "results.json").stat().st_mtime_ns > (cell.folder / "results.json").stat().st_mtime_ns


def _needs(cells: Sequence[Cell]) -> dict[int, int]:
    """``{i: j}`` for every cell ``i`` whose ``needs`` is cell ``j``'s folder."""
    index = {cell.folder: i for i, cell in enumerate(cells)}
    after = {}
    for i, cell in enumerate(cells):
        if cell.needs is not None:
            if cell.needs not in index:
                raise ValueError(f"{cell.name} seed {cell.seed} needs {cell.needs}, which is not a cell of this run")
            after[i] = index[cell.needs]
    return after


def finished_results(cells: Sequence[Cell]) -> list[CellResult]:
    """The results of those ``cells`` that finished earlier (``results.json`` present), without running any.

    A run whose configs changed since (its recorded fingerprint differs) is left out: it is not this experiment.
    """
    return [
        _finished(c, c.folder / "results.json", reused=True, wall=0.0)
        for c in cells
        if (c.folder / "results.json").is_file() and not _changed(c.folder, cell_fingerprint(c.args))
    ]


def _failed(cell: Cell, error: str, wall: float = 0.0) -> CellResult:
    return CellResult(cell.name, cell.seed, "failed", {}, wall, reused=False, error=error, tags=cell.tags)


def _finished(cell: Cell, done: Path, *, reused: bool, wall: float) -> CellResult:
    """The result of a cell whose ``results.json`` exists (its fit time, else ``wall``) and its curve's gains."""
    metrics = {**json.loads(done.read_text())["metrics"], **last_epoch_gains(cell.folder / "metrics.csv")}
    return CellResult(
        cell.name, cell.seed, "ok", metrics, metrics.get("fit_wall_time_s", wall), reused=reused, tags=cell.tags
    )


LAST_GAIN = "val_last_gain/"


def last_epoch_gains(metrics_csv: Path) -> dict[str, float]:
    """How much each real validation metric (``val/target_*``, higher is better) still rose in the last epoch.

    For a run's ``metrics.csv`` (Lightning's CSVLogger): the last epoch's value minus the best of the earlier epochs,
    as ``val_last_gain/target_acc`` etc. (an epoch validated several times counts with its last value; a run resumed
    from a checkpoint logs, and so shows, only the epochs after the resume). A run that has converged gains about
    nothing (or loses: noise around a plateau); a clearly positive gain says it was cut off while still learning.
    Empty when the file is missing or unreadable, or holds fewer than two validated epochs.
    """
    if not metrics_csv.is_file():
        return {}
    gains = {}
    try:
        with metrics_csv.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = [c for c in reader.fieldnames or [] if c.startswith("val/target_")]
        for column in columns:
            by_epoch = {int(float(r["epoch"])): float(r[column]) for r in rows if r.get(column) and r.get("epoch")}
            curve = [v for _, v in sorted(by_epoch.items()) if math.isfinite(v)]
            if len(curve) >= 2:
                gains[LAST_GAIN + column.removeprefix("val/")] = curve[-1] - max(curve[:-1])
    except (OSError, ValueError, csv.Error):  # a damaged log loses its curve, never the run's result
        return {}
    return gains


def run_cells(
    cells: Sequence[Cell],
    *,
    jobs: int = 1,
    after: dict[int, int] | None = None,
    log: Any = None,
    on_result: Callable[[Cell, CellResult], None] | None = None,
) -> list[CellResult]:
    """Run ``cells`` at most ``jobs`` at a time, in order; results come back in the order of ``cells``.

    ``after[i] = j`` makes cell ``i`` wait for cell ``j`` (a cell's ``needs`` folder adds the same for the cell of
    that folder); if ``j`` failed, ``i`` is recorded as failed without running. With ``jobs > 1`` each run gets
    ``os.cpu_count() // jobs`` threads (at least one).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    after = {**(after or {}), **_needs(cells)}
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    results: dict[int, CellResult] = {}
    pending = list(range(len(cells)))
    running: dict[Future[CellResult], int] = {}

    def record(i: int, result: CellResult) -> None:
        results[i] = result
        if on_result is not None:
            on_result(cells[i], result)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while pending or running:
            for i in list(pending):
                dep = after.get(i)
                if dep is not None and dep not in results:
                    continue
                if dep is not None and results[dep].status != "ok":
                    pending.remove(i)
                    record(i, _failed(cells[i], f"{cells[dep].name} seed {cells[dep].seed} (needed first) failed"))
                elif len(running) < jobs:
                    pending.remove(i)
                    running[pool.submit(run_cell, cells[i], log=log, threads=threads)] = i
            if not running:
                if pending:  # every pending cell waits on a cell that is not in the list
                    raise ValueError(f"cells {pending} depend on cells that never run")
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                record(running.pop(future), future.result())
    return [results[i] for i in range(len(cells))]


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (anything else is refused before any work starts)."""
    if not text.lstrip("+").isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def add_jobs_argument(parser: argparse.ArgumentParser) -> None:
    """``--jobs N`` for a bench command: refused by the parser unless N >= 1, so no run starts with a bad value."""
    parser.add_argument(
        "--jobs", type=positive_int, default=1, help="runs at a time (each gets cpu_count // jobs threads)"
    )


def interrupted_message(out: Path) -> str:
    """What a user reads after Ctrl-C: nothing finished is lost, and how to go on."""
    done = list(out.glob("**/results.json"))
    return (
        f"[yellow]interrupted[/yellow]: {len(done)} finished run(s) are kept under {out} (each with its "
        "results.json); the run that was cut off will start again. Run the same command again to resume."
    )


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
