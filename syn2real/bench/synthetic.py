"""``bench zoo --synthetic RUN``: every experiment re-run on a stage of an ``optimize-sim`` run.

Each such row is paired with the same experiment on the default ψ (same seeds, same steps, same samples).

An experiment's data config is read, every ``datamodules.DigitsSimulatorSource`` in it (the training source, DANN's
source domain, each of DSON's domains) becomes ``datamodules.Syn2RealSource(root=RUN, stage=<index>)`` with the same
domain id, labels and number of samples (a stage renders the simulator's indices 0, 1, ...; the stage is resolved
to its index once, so a run that gains stages later does not change what a twin reads), and the result is written
beside the runs; the cell passes it with ``--data``. Experiments with no simulator data (the target oracle) have
no synthetic counterpart. A refiner row is re-run whole (:func:`synthetic_cells`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from datamodules.format import read_info
from datamodules.stages import select_stages
from syn2real.bench.runs import Cell
from syn2real.bench.zoo_pairs import Pairing
from syn2real.bench.zoo_refiners import REFINER_SUFFIX, refine_training_sources, write_refined_data
from syn2real.cli.config_files import experiment_data

SIMULATOR = "datamodules.DigitsSimulatorSource"


def check_synthetic(run: Path, stage: str, channels: int) -> Path:
    """The one stage folder ``stage`` of ``run``; refuses ``all`` and a run without the benchmark's ``channels``."""
    folders = select_stages(run, stage)
    if len(folders) > 1:
        raise ValueError(
            f"--stage {stage} selects {len(folders)} stages of {run}: a twin trains on one stage (best, latest or an "
            "index); train a multi-stage method on stage: all with Syn2RealSource in its own config"
        )
    info = read_info(folders[0])
    if info.channels != channels:
        raise ValueError(
            f"{folders[0]}: stage images have {info.channels} channel(s), the benchmark's have {channels}: "
            "optimize the simulator with the benchmark's channels (simulator: {channels: ...})"
        )
    return folders[0]


def replace_simulator(node: Any, root: Path, stage: str, available: int | None = None) -> tuple[Any, int]:
    """``node`` with every simulator source replaced by the run's stage; returns it and how many were replaced.

    Each replacement reads as many samples as the simulator source rendered (its ``num_samples``, or the class
    default); with ``available`` (the stage's size) a source asking for more is refused.
    """
    if isinstance(node, dict):
        if node.get("class_path") == SIMULATOR:
            init = node.get("init_args") or {}
            wanted = init.get("num_samples", _simulator_default_samples())
            if available is not None and wanted > available:
                raise ValueError(
                    f"stage {stage} of {root} holds {available} renders, a simulator source of this experiment "
                    f"renders {wanted}: optimize with stage_samples of at least {wanted} (not --quick) to compare"
                )
            args = {"root": str(root.resolve()), "stage": stage, "domain": init.get("domain", 0)}
            args["num_samples"] = wanted  # the same renders as on the default ψ
            if "use_labels" in init:
                args["use_labels"] = init["use_labels"]
            return {"class_path": "datamodules.Syn2RealSource", "init_args": args}, 1
        out, count = {}, 0
        for key, value in node.items():
            out[key], n = replace_simulator(value, root, stage, available)
            count += n
        return out, count
    if isinstance(node, list):
        items = [replace_simulator(v, root, stage, available) for v in node]
        return [v for v, _ in items], sum(n for _, n in items)
    return node, 0


def _simulator_default_samples() -> int:
    import inspect

    from datamodules.sources import DigitsSimulatorSource

    return int(inspect.signature(DigitsSimulatorSource).parameters["num_samples"].default)


def synthetic_data_config(
    experiment: Path, run: Path, stage: str, out: Path, available: int | None = None
) -> Path | None:
    """Write the experiment's data config on ``run``'s ``stage`` into ``out``; ``None`` if it has no simulator data."""
    data, replaced = replace_simulator(experiment_data(experiment), run, stage, available)
    if not replaced:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        f"# {experiment.name} with its simulator data replaced by {run} (stage: {stage})\n" + yaml.safe_dump(data)
    )
    return out


def synthetic_cells(
    cells: list[Cell], run: Path, stage: str, out: Path, rows: dict[str, Pairing]
) -> tuple[list[Cell], dict[str, Pairing]]:
    """A ``<row>@<stage>`` cell for every cell whose experiment trains on simulator data, paired with that row.

    A refiner row is re-run whole: ``<row>@<stage>:refiner`` trains the refiner on the stage's renders, then
    ``<row>@<stage>`` trains the task experiment on the stage's renders refined by it, paired with ``<row>`` (the
    refiner trained and applied on the default ψ). A refiner's label preservation is judged on the stage's renders.
    Returns the new cells and the pairings of their rows (each: ``baseline: <row>``, the same run on the default ψ).
    """
    (folder,) = select_stages(run, stage)
    info = read_info(folder)
    index = str((info.stage or {}).get("index", stage))  # resolved once: what every twin reads
    derived: dict[Path, Path | None] = {}

    def data_of(experiment: Path) -> Path | None:  # each experiment's data on the stage, written once
        if experiment not in derived:
            file = out / "synthetic" / f"{experiment.name.split('__')[0]}.data.yaml"
            derived[experiment] = synthetic_data_config(experiment, run, index, file, info.num_samples or None)
        return derived[experiment]

    refiners = {c.folder: c for c in cells if c.name.endswith(REFINER_SUFFIX)}
    new, pairings = [], {}
    for cell in cells:
        pairing = rows.get(cell.name, Pairing("unpaired", ""))
        if pairing.kind == "unpaired" or cell.folder in refiners:  # refiners: with their task cell, below
            continue
        data = data_of(_config(cell))
        if data is None:
            continue
        name = f"{cell.name}@{stage}"
        needs = None
        if pairing.kind == "refines":  # the refiner trained on the stage, then the task on the stage refined by it
            refiner = refiners[cell.needs]  # type: ignore[index]
            refiner_data = data_of(_config(refiner))
            if refiner_data is None:  # the refiner's own data has no simulator source: nothing to re-run
                continue
            needs = out / name / "refiner" / f"seed{cell.seed}"
            new.append(_twin(refiner, name + REFINER_SUFFIX, needs, refiner_data, run, stage))
            data = _refined(
                data, needs / "checkpoints" / "last.ckpt", out / name / "refined_data" / f"seed{cell.seed}.yaml"
            )
        pairings[name] = Pairing("baseline", cell.name)
        twin = _twin(cell, name, out / name / f"seed{cell.seed}", data, run, stage, needs)
        if "refiner_checkpoint" in cell.tags:  # judged by the twin's own refiner on the stage's renders, or not at all
            judged = data_of(Path(cell.tags["task_experiment"]))
            del twin.tags["refiner_checkpoint"]
            if judged is not None:
                twin.tags["refiner_checkpoint"] = str((needs or twin.folder) / "checkpoints" / "last.ckpt")
                twin.tags["task_data"] = str(judged)
        new.append(twin)
    return new, pairings


def _refined(data: Path, checkpoint: Path, out: Path) -> Path:
    """Write ``data`` (a data config) with its training sources refined by ``checkpoint`` to ``out``."""
    block = refine_training_sources(yaml.safe_load(data.read_text()), checkpoint, data)
    return write_refined_data(out, block, f"{data.name} refined by {checkpoint}")


def _config(cell: Cell) -> Path:
    return Path(cell.args[cell.args.index("--config") + 1])


def _twin(cell: Cell, name: str, folder: Path, data: Path, run: Path, stage: str, needs: Path | None = None) -> Cell:
    """``cell`` run on ``data`` (its ``--data`` replaced, or given right after its ``--config``) as row ``name``."""
    args = list(cell.args)
    if "--data" in args:
        args[args.index("--data") + 1] = str(data)
    else:
        at = args.index("--config") + 2
        args[at:at] = ["--data", str(data)]
    tags = {**cell.tags, "method": name, "synthetic": f"{run} (stage {stage})"}
    return Cell(name=name, seed=cell.seed, folder=folder, args=args, tags=tags, needs=needs)
