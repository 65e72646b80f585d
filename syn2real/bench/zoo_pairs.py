"""Paired comparison for ``syn2real bench zoo``: which baseline each row must beat, and the per-seed differences.

The pairing lives in ``configs/bench/zoo.yaml`` (``rows:``). A row is compared with its baseline on the same data,
seeds and steps: the difference is taken seed by seed, then summarised as mean ± std over seeds, so the spread
between seeds that both runs share cancels out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from syn2real.bench.runs import CellResult, mean_std

KINDS = ("baseline", "same_run", "refines", "reference", "unpaired")


@dataclass(frozen=True)
class Pairing:
    """How one row is compared: ``kind`` is one of :data:`KINDS`, ``value`` its row / metric / words.

    ``label_preservation``: for a method whose checkpoint also holds a refiner (CyCADA, PixelDA), the task row on
    whose training renders that refiner's label preservation is judged.
    """

    kind: str
    value: str
    label_preservation: str | None = None

    @property
    def paired(self) -> bool:
        return self.kind in ("baseline", "same_run", "refines")

    @property
    def baseline_row(self) -> str | None:
        """The row whose run of the same seed is the baseline (``baseline`` and ``refines`` pairings)."""
        return self.value if self.kind in ("baseline", "refines") else None

    def same_run_metric(self, metric: str) -> str:
        """The metric of the same run that ``metric`` is compared with (a ``same_run`` pairing).

        ``{metric}`` in the value stands for ``metric`` itself, so one row serves accuracy and mIoU benchmarks; a
        fixed name takes ``metric``'s stage prefix (``test/``, ``test_valsel/``).

        Examples:
            >>> Pairing("same_run", "{metric}_source_bn").same_run_metric("test_valsel/target_miou")
            'test_valsel/target_miou_source_bn'
            >>> Pairing("same_run", "test/target_acc_source_bn").same_run_metric("test_valsel/target_acc")
            'test_valsel/target_acc_source_bn'
        """
        if "{metric}" in self.value:
            return self.value.replace("{metric}", metric)
        return f"{metric.rsplit('/', 1)[0]}/{self.value.rsplit('/', 1)[-1]}"

    def label(self, metric: str = "test/metric") -> str:
        if self.kind == "same_run":
            return f"same run, {self.same_run_metric(metric).split('/')[-1]}"
        if self.kind == "refines":
            return f"{self.value} on raw renders"
        return self.value


@dataclass(frozen=True)
class ZooConfig:
    """``seeds``, the :class:`Pairing` of every row and the ``judge`` row, read from ``configs/bench/zoo.yaml``.

    The judge row's run of a seed (a classifier trained on real labels) measures the refiners' label preservation.
    """

    seeds: tuple[int, ...]
    rows: dict[str, Pairing]
    judge: str | None = None


def load_zoo_config(path: Path) -> ZooConfig:
    """Read and check a zoo config: every row has exactly one pairing key, every baseline row exists."""
    if not path.is_file():
        raise FileNotFoundError(f"zoo config {path} not found")
    data = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(data) - {"seeds", "rows", "judge"})
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; use seeds, rows and judge")
    rows: dict[str, Pairing] = {}
    for name, spec in (data.get("rows") or {}).items():
        kinds = [k for k in spec if k in KINDS] if isinstance(spec, dict) else []
        if len(kinds) != 1 or set(spec) - {kinds[0], "label_preservation"}:
            raise ValueError(
                f"{path}: row {name!r} needs exactly one of {', '.join(KINDS)} (and optionally label_preservation), "
                f"got {spec!r}"
            )
        judged = spec.get("label_preservation")
        rows[name] = Pairing(kinds[0], str(spec[kinds[0]]), None if judged is None else str(judged))
    for name, pairing in rows.items():
        if pairing.baseline_row is not None and pairing.value not in rows:
            raise ValueError(f"{path}: row {name!r} is paired with {pairing.value!r}, which is not a row")
        if pairing.label_preservation is not None and pairing.label_preservation not in rows:
            raise ValueError(
                f"{path}: row {name!r} judges label preservation on {pairing.label_preservation!r}'s renders, which "
                "is not a row"
            )
    judge = data.get("judge")
    if judge is not None and judge not in rows:
        raise ValueError(f"{path}: judge {judge!r} is not a row")
    return ZooConfig(seeds=tuple(int(s) for s in data.get("seeds", [0, 1, 2, 3, 4])), rows=rows, judge=judge)


def check_rows(config: ZooConfig, names: list[str], *, config_path: Path) -> None:
    """Refuse experiment configs without a pairing, before any run."""
    missing = sorted(set(names) - set(config.rows))
    if missing:
        raise ValueError(
            f"no paired baseline for {missing} in {config_path}: add e.g. `{missing[0]}: {{baseline: source_only}}` "
            "under rows (or `unpaired: <why>` to leave it out of the leaderboard)"
        )


def baseline_value(
    results: dict[tuple[str, int], CellResult], row: str, seed: int, pairing: Pairing, metric: str
) -> float | None:
    """The baseline's ``metric`` for ``row``'s run of ``seed`` (``None`` if that run is missing or failed)."""
    if pairing.kind == "same_run":
        run = results.get((row, seed))
        wanted = pairing.same_run_metric(metric)
        return run.metrics.get(wanted) if run is not None and run.status == "ok" else None
    if pairing.baseline_row is not None:
        run = results.get((pairing.baseline_row, seed))
        return run.metrics.get(metric) if run is not None and run.status == "ok" else None
    return None


def paired_difference(results: list[CellResult], row: str, pairing: Pairing, metric: str) -> dict[str, Any]:
    """Per-seed ``row − baseline`` in points (×100) for ``metric``.

    Returns the differences, their mean and std, the baseline's own mean and std over the compared seeds, and how
    many seeds were compared.
    """
    by_key = {(r.name, r.seed): r for r in results}
    diffs, bases = [], []
    for r in results:
        if r.name != row or r.status != "ok" or metric not in r.metrics:
            continue
        base = baseline_value(by_key, row, r.seed, pairing, metric)
        if base is not None:
            diffs.append(100 * (r.metrics[metric] - base))
            bases.append(100 * base)
    mean, std = mean_std(diffs)
    base_mean, base_std = mean_std(bases)
    return {"diffs": diffs, "mean": mean, "std": std, "n": len(diffs), "base_mean": base_mean, "base_std": base_std}
