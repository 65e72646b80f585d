"""The schedules benchmark's settings: a typed dataclass read from ``configs/bench/schedules.yaml``.

Defaults live in the YAML file (shipped with the configs); each command-line flag overrides one key; unknown or
ill-typed keys are refused with the file and key named, before any run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from syn2real.bench.benchmarks import get_benchmark
from syn2real.specs import as_spec
from syn2real.tasks.networks import TaskNetworkSpec

SCHEDULES = ("synthetic_only", "real_only", "hybrid", "pretrain_finetune")


@dataclass(frozen=True)
class SchedulesConfig:
    """One schedules benchmark (see ``configs/bench/schedules.yaml`` for the meaning of every key)."""

    benchmark: str = "digits"
    schedules: tuple[str, ...] = SCHEDULES
    budgets: tuple[int, ...] = (0, 10, 50, 250, 1000)
    seeds: tuple[int, ...] = (0, 1, 2)
    real_fractions: tuple[float, ...] = (0.5,)
    synthetic: str | None = None
    synthetic_stage: str = "latest"
    synthetic_samples: int = 10000
    pretrain_config: str | None = None
    real_train: str | None = None
    real_val: str | None = None
    real_test: str | None = None
    network: TaskNetworkSpec = field(default_factory=TaskNetworkSpec)
    size: int = 32
    lr: float = 2e-3
    finetune_lr: float = 5e-4
    weight_decay: float = 1e-4
    freeze: Literal["none", "features"] = "none"
    synthetic_steps: int = 160
    finetune_steps: int = 100
    batch_size: int = 128
    finetune_batch_size: int = 64
    augment: Literal["none", "light", "strong"] = "none"
    accelerator: str = "auto"
    out: Path = Path("runs/bench/schedules")

    def check(self) -> None:
        """Everything checkable without data: benchmark and schedule names, fractions, folders given together."""
        bench = get_benchmark(self.benchmark)
        if self.real_train is None and self.synthetic is None and self.network.in_channels != bench.channels:
            raise ValueError(
                f"benchmark {self.benchmark!r} has {bench.channels}-channel images but the network takes "
                f"{self.network.in_channels}: set --channels {bench.channels}"
            )
        unknown = sorted(set(self.schedules) - set(SCHEDULES))
        if unknown:
            raise ValueError(f"unknown schedule(s) {unknown}; choose from {list(SCHEDULES)}")
        if any(b < 0 for b in self.budgets) or not self.budgets:
            raise ValueError(f"budgets are real labeled images per run, 0 or more, got {list(self.budgets)}")
        if any(not 0 < f < 1 for f in self.real_fractions):
            raise ValueError(f"real fractions must lie strictly between 0 and 1, got {list(self.real_fractions)}")
        if self.freeze not in ("none", "features"):
            raise ValueError(f"freeze must be none or features, got {self.freeze!r}")
        if self.augment not in ("none", "light", "strong"):
            raise ValueError(f"augment must be none, light or strong, got {self.augment!r}")
        if self.real_train is not None and (self.real_val is None or self.real_test is None):
            raise ValueError("with --real-train give --real-val and --real-test too (labeled class folders)")


_DEFAULTS = SchedulesConfig()


def _coerce(key: str, value: Any, where: Path | str) -> Any:
    """``value`` (from YAML or a flag) as the type of the key's default: tuple of int/float/str, int, Path..."""
    default = getattr(_DEFAULTS, key)
    try:
        if key == "network":
            return as_spec(TaskNetworkSpec, value)
        if isinstance(default, tuple):
            return tuple(type(default[0])(v) for v in value)
        if value is None or default is None:
            return value
        return type(default)(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: key {key!r} has an invalid value {value!r} ({err}); fix it") from None


def load_schedules_config(files: list[Path], overrides: dict[str, Any] | None = None) -> SchedulesConfig:
    """Defaults, then each YAML file in order, then ``overrides`` (flags; ``None`` values are ignored)."""
    known = {f.name for f in dataclasses.fields(SchedulesConfig)}
    values: dict[str, Any] = {}
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"schedules config {path} not found")
        data = yaml.safe_load(path.read_text()) or {}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {unknown}; use only {sorted(known)}")
        values |= {k: _coerce(k, v, path) for k, v in data.items()}
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _coerce(key, value, f"--{key.replace('_', '-')}")
    return SchedulesConfig(**values)
