"""Data in, batches out: the syn2real dataset format, folder datasets, the digits benchmark and DataModules.

This package imports only ``syn2real.batch`` from the core (DESIGN.md, "Layers"). Its names load on first use
(``datamodules.TaskDataModule`` imports Lightning then, ``datamodules.errors`` alone imports nothing heavy), so
light commands such as ``syn2real simulate --help`` start without torch or Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "data_modules": ("DomainPairDataModule", "RandomDataModule", "RandomDomainPairDataModule", "TaskDataModule"),
    "digit_scenes": ("RealDigitScenes", "RealDigitScenesSource", "RenderedDigitScenesSource"),
    "errors": ("DatasetError",),
    "folders": ("ImageFolderDataset", "SegmentationFolderDataset", "UnlabeledFolderDataset"),
    "format": ("DatasetInfo", "Syn2RealDataset"),
    "readers": ("BlenderProcSource", "ReplicatorSource", "SoloSource"),
    "real_digits": ("RealDigits",),
    "simulator": ("DigitsSimulator", "DigitsSimulatorConfig"),
    "sources": (
        "BudgetSource",
        "DigitsSimulatorSource",
        "ImageFolderSource",
        "RandomSource",
        "RealDigitsSource",
        "SampleTensorDataset",
        "SegmentationFolderSource",
        "Source",
        "Syn2RealSource",
        "UnlabeledFolderSource",
    ),
    "stages": ("select_stages",),
    "writer": ("DatasetWriter",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'datamodules' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"datamodules.{_WHERE[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
