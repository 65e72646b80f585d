"""Data in, batches out: the syn2real dataset format, folder datasets, the digits benchmark and DataModules.

This package imports only ``syn2real.batch`` from the core (DESIGN.md, "Layers").
"""

from datamodules.data_modules import DomainPairDataModule, RandomDataModule, RandomDomainPairDataModule, TaskDataModule
from datamodules.errors import DatasetError
from datamodules.folders import ImageFolderDataset, SegmentationFolderDataset, UnlabeledFolderDataset
from datamodules.format import DatasetInfo, Syn2RealDataset
from datamodules.real_digits import RealDigits
from datamodules.simulator import DigitsSimulator, DigitsSimulatorConfig
from datamodules.sources import (
    BudgetSource,
    DigitsSimulatorSource,
    ImageFolderSource,
    RandomSource,
    RealDigitsSource,
    SampleTensorDataset,
    SegmentationFolderSource,
    Source,
    Syn2RealSource,
    UnlabeledFolderSource,
)
from datamodules.stages import select_stages
from datamodules.writer import DatasetWriter
