"""``bench zoo --synthetic RUN``: every experiment re-run on a stage of an ``optimize-sim`` run.

Each such row is paired with the same experiment on the default ψ (same seeds, same steps, same samples).

An experiment's data config is read, every ``datamodules.DigitsSimulatorSource`` in it (the training source, DANN's
source domain, each of DSON's domains) becomes ``datamodules.Syn2RealSource(root=RUN, stage=STAGE)`` with the same
domain id, and the result is written beside the runs; the cell passes it with ``--data``. Experiments with no
simulator data (the target oracle) have no synthetic counterpart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from datamodules.format import read_info
from datamodules.stages import select_stages
from syn2real.bench.runs import Cell
from syn2real.bench.zoo_pairs import Pairing
from syn2real.cli.config_files import compose

SIMULATOR = "datamodules.DigitsSimulatorSource"


def check_synthetic(run: Path, stage: str, channels: int) -> Path:
    """The stage folder ``stage`` of ``run``; refuses a run whose images do not have the benchmark's ``channels``."""
    (folder, *_) = select_stages(run, stage)
    info = read_info(folder)
    if info.channels != channels:
        raise ValueError(
            f"{folder}: stage images have {info.channels} channel(s), the benchmark's have {channels}: "
            "optimize the simulator with the benchmark's channels (simulator: {channels: ...})"
        )
    return folder


def experiment_data(experiment: Path) -> dict[str, Any]:
    """The data block of an experiment config as LightningCLI sees it (included file, then ``data.*`` overrides)."""
    data = compose(yaml.safe_load(experiment.read_text()) or {}, experiment).get("data")
    if isinstance(data, str):
        included = experiment.parent / data
        return compose(yaml.safe_load(included.read_text()), included)
    if isinstance(data, dict):
        return data
    raise ValueError(f"{experiment}: has no data block to replace the simulator in")


def replace_simulator(node: Any, root: Path, stage: str) -> tuple[Any, int]:
    """``node`` with every simulator source replaced by the run's stage; returns it and how many were replaced."""
    if isinstance(node, dict):
        if node.get("class_path") == SIMULATOR:
            init = node.get("init_args") or {}
            args = {"root": str(root.resolve()), "stage": stage, "domain": init.get("domain", 0)}
            if "use_labels" in init:
                args["use_labels"] = init["use_labels"]
            return {"class_path": "datamodules.Syn2RealSource", "init_args": args}, 1
        out, count = {}, 0
        for key, value in node.items():
            out[key], n = replace_simulator(value, root, stage)
            count += n
        return out, count
    if isinstance(node, list):
        items = [replace_simulator(v, root, stage) for v in node]
        return [v for v, _ in items], sum(n for _, n in items)
    return node, 0


def synthetic_data_config(experiment: Path, run: Path, stage: str, out: Path) -> Path | None:
    """Write the experiment's data config on ``run``'s ``stage`` into ``out``; ``None`` if it has no simulator data."""
    data, replaced = replace_simulator(experiment_data(experiment), run, stage)
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

    Returns the new cells and the pairings of their rows (each: ``baseline: <row>``, the same run on the default ψ).
    """
    new, pairings, derived = [], {}, {}
    for cell in cells:
        pairing = rows.get(cell.name, Pairing("unpaired", ""))
        if pairing.kind in ("unpaired", "refines"):  # refiner rows: the refiner's renders are not the task's data
            continue
        cfg = Path(cell.args[cell.args.index("--config") + 1])
        if cell.name not in derived:
            derived[cell.name] = synthetic_data_config(cfg, run, stage, out / "synthetic" / f"{cell.name}.data.yaml")
        data = derived[cell.name]
        if data is None:
            continue
        name = f"{cell.name}@{stage}"
        pairings[name] = Pairing("baseline", cell.name)
        at = cell.args.index("--config") + 2
        new.append(
            Cell(
                name=name,
                seed=cell.seed,
                folder=out / name / f"seed{cell.seed}",
                args=[*cell.args[:at], "--data", str(data), *cell.args[at:]],
                tags={**cell.tags, "method": name, "synthetic": f"{run} (stage {stage})"},
            )
        )
    return new, pairings
