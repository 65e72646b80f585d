"""Simulator-optimization runs: a folder of stage datasets, one per stage (``stage_000/``, ``stage_001/`` ...).

Each stage is a syn2real dataset whose ``dataset.json`` carries a ``stage`` record (name, index, parameters,
score). A run of another simulator's output folders lists them in a ``stages.yaml`` manifest
(:func:`read_stage_manifest`). ``select_stages`` picks ``latest``, ``best`` (highest score), ``all`` or one stage
index, and refuses stages whose class lists disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from torch.utils.data import Dataset, Subset

from datamodules.errors import DatasetError
from datamodules.format import DatasetInfo, read_info
from syn2real.batch import Sample

MANIFEST = "stages.yaml"


def list_stages(run: Path) -> list[tuple[Path, DatasetInfo]]:
    """The stage datasets under ``run``, ordered by stage index (folder name where the index is missing)."""
    found = []
    for sub in sorted(p for p in run.iterdir() if p.is_dir() and (p / "dataset.json").is_file()):
        info = read_info(sub)
        index = (info.stage or {}).get("index")
        found.append((index if isinstance(index, int) else len(found), sub.name, sub, info))
    found.sort(key=lambda t: (t[0], t[1]))
    return [(p, i) for _, _, p, i in found]


def select_stages(root: str | Path, stage: str | int = "latest") -> list[Path]:
    """Dataset folders to read for ``root`` and ``stage`` (``latest`` | ``best`` | ``all`` | stage index).

    A ``root`` that is itself a dataset is returned as is (for ``latest``/``all``, or its own index).
    """
    root = Path(root)
    if (root / "dataset.json").is_file():
        info = read_info(root)
        own = (info.stage or {}).get("index")
        if stage in ("latest", "all", "best") or str(stage) == str(own):
            return [root]
        raise DatasetError(
            root,
            f"is a single dataset (stage index {own}), not a run holding stage {stage!r}",
            "point to the run folder that holds the stage folders, or use stage: latest",
        )
    if not root.is_dir():
        raise DatasetError(root, "folder does not exist", "check the path, or create it with `syn2real simulate`")
    stages = list_stages(root)
    if not stages:
        raise DatasetError(
            root / "dataset.json",
            "missing, and no stage folders with a dataset.json inside",
            "point to a syn2real dataset or a folder of stage datasets",
        )
    chosen = [stages[k] for k in choose_stages(root, [i.stage for _, i in stages], stage)]
    first_path, first = chosen[0]
    for path, info in chosen[1:]:
        if info.classes != first.classes or info.task != first.task:
            raise DatasetError(
                path / "dataset.json",
                f"class list {info.classes} differs from {first.classes} in {first_path / 'dataset.json'}",
                "use stages rendered with the same classes, or select one stage",
            )
    return [p for p, _ in chosen]


def choose_stages(root: Path, records: list[dict[str, Any] | None], stage: str | int) -> list[int]:
    """Positions in ``records`` (stage records, in stage order) that ``stage`` selects.

    ``stage`` is ``latest`` | ``best`` (highest score) | ``all`` | a stage index.
    """
    if stage == "all":
        return list(range(len(records)))
    if stage == "latest":
        return [len(records) - 1]
    if stage == "best":
        scored = [k for k, r in enumerate(records) if isinstance((r or {}).get("score"), int | float)]
        if not scored:
            raise DatasetError(
                root,
                "no stage records a score, so there is no 'best'",
                "write stage.score in each dataset.json (score: in stages.yaml), or use stage: latest | all | <index>",
            )
        return [max(scored, key=lambda k: records[k]["score"])]  # type: ignore[index]
    try:
        wanted = int(stage)
    except ValueError:
        raise DatasetError(root, f"unknown stage {stage!r}", "use latest, best, all or a stage index") from None
    for k, record in enumerate(records):
        if (record or {}).get("index") == wanted:
            return [k]
    have = [(r or {}).get("index") for r in records]
    raise DatasetError(root, f"has no stage with index {wanted} (stages: {have})", "pick one of the listed indices")


def read_stage_manifest(root: Path) -> list[tuple[Path, dict[str, Any]]] | None:
    """The stages a ``stages.yaml`` in ``root`` lists, as ``(folder, stage record)``; ``None`` without one."""
    path = root / MANIFEST
    if not path.is_file():
        return None
    fix = (
        "write `stages:` as a list of {folder: NAME, score: NUMBER, parameters: {...}} (score and parameters optional)"
    )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise DatasetError(path, f"is not valid YAML ({' '.join(str(err).split())})", "fix the YAML syntax") from None
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, list) or not stages:
        raise DatasetError(path, "has no `stages:` list", fix)
    out = []
    for k, entry in enumerate(stages):
        where = f"{path}:stages[{k}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("folder"), str):
            raise DatasetError(where, f"is {entry!r}, with no folder", fix)
        unknown = sorted(set(entry) - {"folder", "score", "parameters", "name"})
        if unknown:
            raise DatasetError(where, f"has unknown keys {unknown}", fix)
        score = entry.get("score")
        if score is not None and not isinstance(score, int | float):
            raise DatasetError(where, f"score {score!r} is not a number", "write the stage's score as a number")
        folder = root / entry["folder"]
        if not folder.is_dir():
            raise DatasetError(where, f"folder {folder} does not exist", "fix the folder name or remove the entry")
        record = {
            "name": entry.get("name", entry["folder"]),
            "index": k,
            "parameters": entry.get("parameters") or {},
            "score": score,
        }
        out.append((folder, record))
    return out


class FirstSamples(Subset[Sample]):
    """The first ``count`` samples of a dataset, with its class list and labels."""

    def __init__(self, data: Dataset[Sample], count: int) -> None:
        super().__init__(data, range(count))
        self.classes = getattr(data, "classes", None)

    def labels(self) -> list[int]:
        return self.dataset.labels()[: len(self)]  # type: ignore[attr-defined]
