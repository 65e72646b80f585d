"""Refiners in ``syn2real bench zoo``: judged by the task model they train, paired with the same model on raw renders.

A row ``<refiner>: {refines: <task row>}`` in ``configs/bench/zoo.yaml`` runs, per seed:

1. ``<refiner>:refiner`` — the refiner's own experiment (``<refiner>__<benchmark>.yaml``), folder
   ``<refiner>/refiner/seed<s>``;
2. ``<refiner>`` — the task row's experiment with each of its training sources (a feature adapter's labeled
   ``source``) wrapped in :class:`~syn2real.refined_source.RefinedSource` (that seed's refiner checkpoint), folder
   ``<refiner>/seed<s>``.

Step 2 trains on exactly the renders the task row trains on, refined, with the same seed, steps and recipe, so the
paired difference is the refiner's effect on the real test. Afterwards the *judge* row's run of the same seed (the
target oracle: trained on real labels) measures label preservation on those renders, raw and refined, per image or
per pixel (:mod:`syn2real.label_preservation`); the result is kept in ``label_preservation.json`` beside the task
run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from syn2real.bench.runs import Cell, CellResult
from syn2real.bench.zoo_report import PRESERVATION_KINDS
from syn2real.cli.config_files import experiment_data

REFINER_SUFFIX = ":refiner"
PRESERVATION = "label_preservation.json"


def refined_data(task_experiment: Path, checkpoint: Path) -> dict[str, Any]:
    """The task experiment's data block with every training source seen through the refiner of ``checkpoint``."""
    return refine_training_sources(experiment_data(task_experiment), checkpoint, task_experiment)


def training_key(data: dict[str, Any]) -> str | None:
    """Where a data block keeps its labeled renders: a task data module's ``train``, a domain pair's ``source``."""
    init = data.get("init_args") or {}
    return "train" if "train" in init else "source" if "source" in init else None


def refine_training_sources(data: dict[str, Any], checkpoint: Path, where: Path) -> dict[str, Any]:
    """``data`` (read from ``where``) with every labeled training source wrapped in the refiner of ``checkpoint``.

    A task data module's ``train`` sources, or a domain-pair data module's ``source`` (the renders a feature-level
    adapter such as DANN trains on; its unlabeled ``target`` and the real val / test stay as they are).
    """
    init = data.get("init_args") or {}
    key = training_key(data)
    if key is None:
        raise ValueError(
            f"{where}: its data has no `train` or `source` renders for a refiner to refine: a `refines:` row in "
            "zoo.yaml must name a task row that trains on renders (e.g. source_only or dann)"
        )
    wrap = lambda node: {  # noqa: E731
        "class_path": "syn2real.refined_source.RefinedSource",
        "init_args": {"source": node, "checkpoint": str(checkpoint.resolve())},
    }
    sources = init[key]
    sources = [wrap(node) for node in sources] if isinstance(sources, list) else wrap(sources)
    return {**data, "init_args": {**init, key: sources}}


def write_refined_data(out: Path, block: dict[str, Any], comment: str) -> Path:
    """Write a refined data block (from :func:`refine_training_sources`) to ``out`` under a one-line comment."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# {comment}\n" + yaml.safe_dump(block, sort_keys=False))
    return out


def refiner_cells(
    name: str,
    refiner_experiment: Path,
    task_experiment: Path,
    seeds: list[int],
    out: Path,
    *,
    refiner_args: list[str],
    task_args: list[str],
    tags: dict[str, Any],
    write: bool = True,
) -> list[Cell]:
    """Per seed: the refiner's training cell, then the task cell on its refined data (which ``needs`` it).

    The task cell's data config (``<refiner>/refined_data/seed<s>.yaml``) is built now, so a task experiment
    without training sources is refused before any run, and written unless ``write`` is false.
    """
    cells = []
    for seed in seeds:
        refiner = Cell(
            name=name + REFINER_SUFFIX,
            seed=seed,
            folder=out / name / "refiner" / f"seed{seed}",
            args=["--config", str(refiner_experiment), *refiner_args],
            tags={**tags, "method": name + REFINER_SUFFIX},
        )
        data = out / name / "refined_data" / f"seed{seed}.yaml"
        checkpoint = refiner.folder / "checkpoints" / "last.ckpt"
        block = refined_data(task_experiment, checkpoint)
        if write:
            write_refined_data(data, block, f"{task_experiment.name}'s data, training sources refined by {checkpoint}")
        task = Cell(
            name=name,
            seed=seed,
            folder=out / name / f"seed{seed}",
            args=["--config", str(task_experiment), "--data", str(data), *task_args],
            tags={**tags, "refiner_checkpoint": str(checkpoint), "task_experiment": str(task_experiment)},
            needs=refiner.folder,
        )
        cells += [refiner, task]
    return cells


def add_label_preservation(
    results: list[CellResult], cells: list[Cell], judge_row: str, *, limit: int | None = None
) -> list[str]:
    """Add ``label_preservation/raw`` and ``/refined`` to every finished refiner task run whose judge run finished.

    ``cells`` are one benchmark's; the judge is ``judge_row``'s run of the same seed; ``limit`` judges only the first
    renders (``--quick``). A measured value is kept in the run folder and reused while the refiner and judge
    checkpoints are the same files (size, modification time) and the limit is the same.
    Returns a note for every run that could not be judged.
    """
    by_key = {(c.name, c.seed): c for c in cells}
    ok = {(r.name, r.seed) for r in results if r.status == "ok"}
    notes = []
    for result in results:
        cell = by_key.get((result.name, result.seed))
        if result.status != "ok" or cell is None or "refiner_checkpoint" not in cell.tags:
            continue
        if (judge_row, result.seed) not in ok:
            notes.append(f"{result.name} seed {result.seed}: no finished {judge_row} run to judge labels")
            continue
        refiner = Path(cell.tags["refiner_checkpoint"])
        judge = by_key[(judge_row, result.seed)].folder / "checkpoints" / "last.ckpt"
        try:
            rates = _judged(cell.folder / PRESERVATION, refiner, judge, judged_data(cell.tags), limit)
        except (OSError, ValueError, RuntimeError) as err:  # a run that cannot be judged is a note, not a crash
            notes.append(f"{result.name} seed {result.seed}: {err}")
            continue
        for kind in PRESERVATION_KINDS:  # raw and refined; for label maps also what the judge finds and names
            if kind in rates:
                result.metrics[f"label_preservation/{kind}"] = rates[kind]
    return notes


def _identity(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _judged(cached: Path, refiner: Path, judge: Path, data: dict[str, Any], limit: int | None) -> dict[str, Any]:
    """Label-preservation rates: those kept in ``cached`` if measured with these very checkpoints, else new ones."""
    from syn2real.label_preservation import measure_label_preservation

    inputs = {
        "refiner": str(refiner),
        "judge": str(judge),
        "identity": [_identity(refiner), _identity(judge)],
        "limit": limit,
    }
    if cached.is_file():
        kept = json.loads(cached.read_text())
        if {k: kept.get(k) for k in inputs} == inputs:
            return kept
    rates = measure_label_preservation(refiner, judge, training_source(data), limit=limit)
    cached.write_text(json.dumps({**rates, **inputs}, indent=2))
    return rates


def judged_data(tags: dict[str, Any]) -> dict[str, Any]:
    """The data block whose renders a refiner is judged on.

    ``tags["task_data"]`` (a data config, written by ``--synthetic``) if given, else the data of the experiment
    ``tags["task_experiment"]``.
    """
    if "task_data" in tags:
        return yaml.safe_load(Path(tags["task_data"]).read_text())
    return experiment_data(Path(tags["task_experiment"]))


def training_source(data: dict[str, Any]) -> Any:
    """The (first) labeled training source of a data block, built from its config as LightningCLI would build it.

    A task data module's ``train``, or a domain pair's ``source``.
    """
    from jsonargparse import ArgumentParser

    from datamodules.sources import Source

    train = (data.get("init_args") or {}).get(training_key(data) or "train")
    node = train[0] if isinstance(train, list) else train
    parser = ArgumentParser()
    parser.add_argument("--source", type=Source)
    return parser.instantiate_classes(parser.parse_object({"source": node})).source
