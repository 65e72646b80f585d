"""A simulator-optimization run folder, resumable after the last complete stage.

``run.json`` says what is searched and how, one stage dataset per stage, and ``state.pt`` holds the strategy's state
after the last complete stage, so an interrupted run resumes where it stopped.

Layout::

    <run>/run.json          renderer name, fixed ψ, search space, strategy and its settings
    <run>/stage_000/ ...    syn2real datasets (dataset.json's ``stage``: name, index, parameters, score, ...)
    <run>/state.pt          ψ of the next stage, the strategy's state, the history (written after each stage)
    <run>/stages.csv        one row per complete stage: score, wall time, ψ knobs

A stage folder appears only complete (the dataset writer renames a finished temporary folder); a stage folder
newer than ``state.pt`` (the run stopped between the two writes) is removed and redone on resume.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from datamodules.errors import DatasetError
from datamodules.format import DatasetInfo, read_info
from datamodules.writer import DatasetWriter, remove_stale_partials
from syn2real import __version__
from syn2real.simopt.base import Strategy
from syn2real.simopt.space import Renderer, SearchSpace

STATE = "state.pt"
RUN = "run.json"


def stage_name(index: int) -> str:
    return f"stage_{index:03d}"


class StageRun:
    """Open (create or resume) the run folder ``folder`` for ``settings``.

    Args:
        folder: the run folder.
        renderer: the simulator; its ``name`` is recorded and checked on resume.
        settings: JSON-ready description of the run (search space, strategy, budgets); a resumed run must match.

    Raises:
        DatasetError: the folder holds another simulator's stages, a run with other settings, or unrelated files.
    """

    def __init__(self, folder: Path, *, renderer: Renderer, settings: dict[str, Any]) -> None:
        self.folder, self.renderer = folder, renderer
        self.settings = {**settings, "renderer": renderer.name}
        run_file = folder / RUN
        if run_file.is_file():
            saved = json.loads(run_file.read_text())
            if saved.get("renderer") != renderer.name:
                raise DatasetError(
                    run_file,
                    f"holds stages of simulator {saved.get('renderer')!r}, not {renderer.name!r}",
                    "choose another --out folder for this simulator",
                )
            if saved != self.settings:
                changed = sorted(k for k in {*saved, *self.settings} if saved.get(k) != self.settings.get(k))
                raise DatasetError(
                    run_file,
                    f"belongs to a run with other settings (differs in {changed})",
                    "run the same command to resume it, or choose another --out folder",
                )
        elif folder.exists() and any(folder.iterdir()):
            foreign = [p for p in folder.iterdir() if (p / "dataset.json").is_file()]
            if foreign:
                producer = read_info(foreign[0]).producer or {}
                raise DatasetError(
                    foreign[0] / "dataset.json",
                    f"is a stage written by {producer.get('name', 'another tool')}, not by this optimize-sim run",
                    "choose an empty --out folder",
                )
            raise DatasetError(folder, "exists, is not empty and is not an optimize-sim run", "choose another --out")

    def start(self) -> None:
        """Create the folder and ``run.json`` (first stage only)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.settings, indent=2) + "\n"
        _atomic_write(self.folder / RUN, lambda tmp: tmp.write_text(text))

    def load_state(self) -> dict[str, Any] | None:
        """The state after the last complete stage (stage folders after it are removed), or ``None`` for a new run."""
        path = self.folder / STATE
        state = torch.load(path, weights_only=False) if path.is_file() else None
        done = len(state["history"]) if state else 0
        for sub in self.folder.glob("stage_*"):
            index = sub.name.removeprefix("stage_")
            if index.isdigit() and int(index) >= done:
                shutil.rmtree(sub)
        remove_stale_partials(self.folder / "stage_*")  # a killed writer's; never a running one's
        return state

    def save_state(self, state: dict[str, Any]) -> None:
        _atomic_write(self.folder / STATE, lambda tmp: torch.save(state, tmp))
        write_stages_csv(self.folder / "stages.csv", state["history"])

    def write_stage(
        self, *, index: int, psi: dict[str, float], record: dict[str, Any], num_samples: int, seed: int
    ) -> Path:
        """Render ``num_samples`` under ``psi`` into ``stage_<index>`` (atomically) with ``record`` as its stage."""
        producer = {
            "name": "syn2real.optimize-sim",
            "version": __version__,
            "config": {"seed": seed, "num_samples": num_samples, "simulator": self.renderer.name},
            "parent": None,
        }
        return write_rendered(
            self.folder / stage_name(index),
            self.renderer,
            psi,
            num_samples=num_samples,
            seed=seed,
            producer=producer,
            stage={"name": stage_name(index), "index": index, **record},
        )


def write_rendered(
    out: Path,
    renderer: Renderer,
    psi: Mapping[str, float],
    *,
    num_samples: int,
    seed: int,
    producer: dict[str, Any],
    stage: dict[str, Any] | None,
    overwrite: bool = False,
    on_batch: Callable[[int], None] | None = None,
    workers: int = 1,
) -> Path:
    """Render samples ``0..num_samples-1`` under ``psi`` into the syn2real dataset ``out`` (atomically).

    The modalities written are the ones the renderer returns (labels always; masks, depth and ψ per sample when
    given). ``on_batch(n)`` is called after every batch of ``n`` samples (a progress bar). With ``workers`` > 1 the
    files are written by that many threads while the next batch renders (same bytes as one worker).
    """
    probe = renderer.render(psi, [0], seed=seed)  # which modalities this renderer gives
    info = DatasetInfo(
        task="classification",
        classes=list(renderer.classes),
        channels=renderer.channels,
        size=(renderer.size,) * 2,
        masks=probe.masks is not None,
        depth=probe.depth is not None,
        labels=True,
        depth_units="relative",
        producer=producer,
        stage=stage,
    )
    with DatasetWriter(out, info, overwrite=overwrite, workers=workers) as writer:
        for start in range(0, num_samples, 256):
            idx = list(range(start, min(start + 256, num_samples)))
            batch = renderer.render(psi, idx, seed=seed)
            writer.add_batch(
                ids=[f"{i:07d}" for i in idx],
                images=batch.images,
                labels=batch.labels,
                masks=batch.masks,
                depth=batch.depth,
                params=batch.params,
            )
            if on_batch is not None:
                on_batch(len(idx))
    return out


def optimize(
    run: StageRun,
    strategy: Strategy,
    space: SearchSpace,
    *,
    stages: int,
    stage_samples: int,
    seed: int,
    start: torch.Tensor,
    on_stage: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run (or resume) ``stages`` stages; returns the history (one dict per stage)."""
    state = run.load_state()
    if state is None:
        run.start()
        state = {"u": start, "history": [], "strategy": strategy.state_dict()}
    strategy.load_state_dict(state["strategy"])
    u = state["u"]
    for index in range(len(state["history"]), stages):
        started = time.perf_counter()
        outcome = strategy.step(u, index)
        search_s = time.perf_counter() - started
        psi = space.to_psi(u)
        record = {
            "parameters": run.renderer.record(psi),
            "knobs": psi,
            "score": outcome.score,
            "score_name": strategy.score_name,
            "strategy": strategy.name,
            "metrics": outcome.metrics,
        }
        run.write_stage(index=index, psi=psi, record=record, num_samples=stage_samples, seed=seed)
        entry = {
            "stage": index,
            "score": outcome.score,
            "search_s": search_s,
            "wall_s": time.perf_counter() - started,
            **{f"psi/{k}": v for k, v in psi.items()},
            **outcome.metrics,
        }
        state = {"u": outcome.next_u, "history": [*state["history"], entry], "strategy": strategy.state_dict()}
        run.save_state(state)
        u = outcome.next_u
        if on_stage is not None:
            on_stage(entry)
    return state["history"]


def write_stages_csv(path: Path, history: list[dict[str, Any]]) -> None:
    fields = list(dict.fromkeys(k for row in history for k in row))

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(history)

    _atomic_write(path, write)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write`` a temporary sibling of ``path``, then rename it over ``path``: readers see old or new, never half."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    write(tmp)
    os.replace(tmp, path)
