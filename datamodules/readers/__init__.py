"""Readers of real simulators' output: Unity Perception SOLO, BlenderProc (HDF5, COCO), Omniverse Replicator.

Each format is a :class:`~datamodules.sources.Source` usable in any datamodule config, and behind
``syn2real import --from solo|blenderproc|replicator SRC --out DIR``, which writes a syn2real dataset. The shared
options (task, class mapping, crops, size) are :class:`~datamodules.readers.dataset.SimulatorOutputSource`'s.
"""

from datamodules.readers.blenderproc import BlenderProcSource
from datamodules.readers.dataset import FrameDataset, SimulatorOutputSource
from datamodules.readers.replicator import ReplicatorSource
from datamodules.readers.solo import SoloSource

FORMATS = {"solo": SoloSource, "blenderproc": BlenderProcSource, "replicator": ReplicatorSource}

__all__ = ["FORMATS", "BlenderProcSource", "FrameDataset", "ReplicatorSource", "SimulatorOutputSource", "SoloSource"]
