"""Scheduling of benchmark cells: parallel runs, dependencies, failed dependencies, result order.

``run_cell`` (a real ``syn2real fit`` subprocess) is replaced by a recorder here; the real one runs in
``tests/syn2real/bench/test_zoo.py`` and ``tests/syn2real/bench/test_schedules.py`` with ``--jobs 2``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from syn2real.bench import runs
from syn2real.bench.runs import Cell, CellResult, run_cells


def _cells(names: list[str], tmp_path: Path) -> list[Cell]:
    return [Cell(name=n, seed=0, folder=tmp_path / n / "seed0", args=[]) for n in names]


class Recorder:
    """Stands in for ``run_cell``: sleeps a little, fails cells named ``bad*``, records overlap and threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = self.peak = 0
        self.started: list[str] = []
        self.finished: list[str] = []
        self.threads: set[int | None] = set()

    def __call__(self, cell: Cell, *, log: object = None, threads: int | None = None) -> CellResult:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.started.append(cell.name)
            self.threads.add(threads)
        time.sleep(0.05)
        with self.lock:
            self.active -= 1
            self.finished.append(cell.name)
        status = "failed" if cell.name.startswith("bad") else "ok"
        return CellResult(cell.name, cell.seed, status, {}, 0.05, reused=False)


def test_jobs_run_concurrently_and_results_keep_cell_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder()
    monkeypatch.setattr(runs, "run_cell", rec)
    monkeypatch.setattr(runs.os, "cpu_count", lambda: 4)
    cells = _cells(["a", "b", "c", "d", "e"], tmp_path)
    results = run_cells(cells, jobs=2)
    assert [r.name for r in results] == ["a", "b", "c", "d", "e"]
    assert rec.peak == 2 and rec.threads == {2}  # two at a time, 4 cpus // 2 jobs threads each


def test_one_job_runs_in_order_with_default_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder()
    monkeypatch.setattr(runs, "run_cell", rec)
    run_cells(_cells(["a", "b", "c"], tmp_path), jobs=1)
    assert rec.started == ["a", "b", "c"] and rec.peak == 1 and rec.threads == {None}


def test_dependent_cell_waits_and_inherits_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder()
    monkeypatch.setattr(runs, "run_cell", rec)
    cells = _cells(["pre", "bad_pre", "x", "finetune", "finetune_of_bad"], tmp_path)
    seen: list[str] = []
    results = run_cells(cells, jobs=3, after={3: 0, 4: 1}, on_result=lambda c, r: seen.append(c.name))
    assert rec.started.index("finetune") > rec.finished.index("pre")
    assert "finetune_of_bad" not in rec.started  # never ran
    assert results[4].status == "failed" and "bad_pre seed 0 (needed first) failed" in results[4].error
    assert results[3].status == "ok" and sorted(seen) == sorted(c.name for c in cells)


def test_bad_jobs_and_dangling_dependencies_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "run_cell", Recorder())
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        run_cells(_cells(["a"], tmp_path), jobs=0)
    with pytest.raises(ValueError, match="depend on cells that never run"):
        run_cells(_cells(["a"], tmp_path), after={0: 5})
