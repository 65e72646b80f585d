"""Simulator output as a dataset: the reader protocol, :class:`FrameDataset`, the common source and stage runs.

Opening a :class:`FrameDataset` reads every frame once (every file decoded, every definition checked), so bad input
is reported before training, naming the file and the fix; the source folder is only ever read. Segmentation frames
are read again per sample; classification crops are small and kept in memory as 8-bit images.

A simulator-optimization run of real simulator output is a folder with a ``stages.yaml`` manifest::

    stages:                      # in stage order
      - {folder: round_0, score: 0.41, parameters: {light_intensity: 1.0}}
      - {folder: round_1, score: 0.57}

and reads with ``stage: latest | best | all | <index>`` like a run of syn2real stage datasets.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.errors import DatasetError
from datamodules.format import DatasetInfo
from datamodules.readers.frames import (
    ClassMapping,
    CropsFrom,
    Frame,
    Task,
    crop_samples,
    segmentation_sample,
    semantic_from_instances,
)
from datamodules.sources import Source, StageConcat
from datamodules.stages import MANIFEST, choose_stages, read_stage_manifest
from syn2real.batch import Sample


class FormatReader(ABC):
    """Reads one simulator's output folder.

    Subclasses parse the folder's definitions in ``__init__`` (raising :class:`DatasetError` naming the file when
    they are missing) and set ``class_names`` (the classes the definitions declare), ``definitions`` (the file to
    name in class-mapping errors), ``has_boxes`` and ``depth_units``.
    """

    format: ClassVar[str]
    class_names: list[str]
    definitions: Path
    has_boxes: bool = False
    depth_units: str | None = None

    def __init__(self, root: Path) -> None:
        self.root = root

    @abstractmethod
    def frames(self) -> list[Any]:
        """Cheap references to every frame, in a stable order."""

    @abstractmethod
    def read(self, ref: Any) -> Frame:
        """Decode and check one frame."""

    def where(self, ref: Any) -> Path:
        """The file a frame reference names (for errors)."""
        return ref if isinstance(ref, Path) else self.root

    def read_checked(self, ref: Any) -> Frame:
        """:meth:`read`, with a record that does not follow the format's schema reported as a :class:`DatasetError`."""
        try:
            return self.read(ref)
        except DatasetError:
            raise
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as err:
            raise DatasetError(
                self.where(ref),
                f"does not follow the {self.format} schema ({type(err).__name__}: {err})",
                "re-export the frame with the simulator's writer, or remove it",
            ) from None


class FrameDataset(Dataset[Sample]):
    """A simulator's output folder as syn2real samples (see :class:`SimulatorOutputSource` for the options)."""

    def __init__(
        self,
        reader: FormatReader,
        *,
        task: Task,
        classes: dict[str, str] | list[str] | None,
        background: str | None,
        channels: int,
        size: tuple[int, int] | None,
        crops_from: CropsFrom,
        padding: float,
        min_visible: float,
        clip_boxes: bool,
        invalid_depth: float,
        domain: int = 0,
        use_labels: bool = True,
        transform: Any = None,
    ) -> None:
        self.reader, self.task, self.channels, self.domain = reader, task, channels, domain
        self.use_labels, self.transform, self.invalid_depth = use_labels, transform, invalid_depth
        self.mapping = ClassMapping(
            classes, reader.class_names, background=background, task=task, where=reader.definitions
        )
        if crops_from == "boxes" and not reader.has_boxes:
            raise DatasetError(
                reader.root,
                f"this {reader.format} output has no 2-D boxes",
                "use crops_from: instances (crops from the instance segmentation)",
            )
        self.crops_from = ("boxes" if reader.has_boxes else "instances") if crops_from == "auto" else crops_from
        self.crop = {"padding": padding, "min_visible": min_visible, "clip_boxes": clip_boxes}
        self.refs = reader.frames()
        if not self.refs:
            raise DatasetError(
                reader.root, f"holds no {reader.format} frames", "point to the simulator's output folder"
            )
        self._given_size = None if size is None else (int(size[0]), int(size[1]))
        self.size = self._given_size or ((64, 64) if task == "classification" else None)
        self._items: list[tuple[int, Any]] = []  # (frame position, stored crop or None)
        self._params: list[dict[str, Any]] = []
        self._open()

    @property
    def classes(self) -> list[str]:
        return self.mapping.classes

    def _open(self) -> None:
        seen: set[str] = set()
        depth_frames = 0
        for k, ref in enumerate(self.refs):
            frame = self.reader.read_checked(ref)
            if frame.id in seen:
                raise DatasetError(frame.where, f"frame id {frame.id!r} occurs twice", "give every frame its own file")
            seen.add(frame.id)
            depth_frames += frame.depth is not None
            if frame.depth is not None and frame.depth.shape != frame.image.shape[:2]:
                raise DatasetError(
                    frame.where,
                    f"depth of frame {frame.id!r} is {frame.depth.shape[0]}×{frame.depth.shape[1]}, its image "
                    f"{frame.image.shape[0]}×{frame.image.shape[1]}",
                    "re-render depth at the image resolution",
                )
            if self.task == "segmentation":
                self._semantic(frame)
                shape = tuple(frame.image.shape[:2])
                if self.size is None:
                    self.size = shape  # type: ignore[assignment]
                elif self._given_size is None and shape != self.size:
                    raise DatasetError(
                        frame.where,
                        f"frame {frame.id!r} is {shape[0]}×{shape[1]}, the first frame {self.size[0]}×{self.size[1]}",
                        "set `size` (--size H W) to resize every frame",
                    )
                self._items.append((k, None))
                self._params.append(frame.params)
            else:
                for sample in self._crops(frame):
                    sample.image = sample.image.mul(255).round_().to(torch.uint8)
                    self._items.append((k, sample))
                    self._params.append(frame.params)
        self.has_depth = depth_frames == len(self.refs)
        if 0 < depth_frames < len(self.refs):
            warnings.warn(
                f"{self.reader.root}: only {depth_frames} of {len(self.refs)} frames have depth; depth is left out",
                stacklevel=2,
            )
        if not self._items:
            raise DatasetError(
                self.reader.root,
                "yields no crops of a mapped class (after min_visible)",
                "check the class mapping and lower min_visible",
            )

    def _semantic(self, frame: Frame) -> np.ndarray:
        if frame.semantic is not None:
            return frame.semantic
        if frame.instance_map is not None:
            return semantic_from_instances(frame, self.reader.class_names)
        raise DatasetError(
            frame.where,
            f"frame {frame.id!r} has no semantic or instance segmentation",
            "render a segmentation output, or use task: classification with 2-D boxes",
        )

    def _crops(self, frame: Frame) -> list[Sample]:
        return crop_samples(
            frame,
            self.mapping,
            crops_from=self.crops_from,
            channels=self.channels,
            size=self.size,
            invalid_depth=self.invalid_depth,
            **self.crop,
        )  # type: ignore[arg-type]

    def info(self) -> DatasetInfo:
        """The ``dataset.json`` header of this data as a syn2real dataset."""
        assert self.size is not None
        return DatasetInfo(
            task=self.task,
            classes=list(self.classes),
            channels=self.channels,
            size=tuple(self.size),
            masks=True,
            depth=self.has_depth,
            labels=self.use_labels,
            depth_units=self.reader.depth_units if self.has_depth else None,
        )

    def labels(self) -> list[int]:
        """Class index per sample (classification crops); ``-1`` for segmentation frames."""
        return [int(s.label) if s is not None else -1 for _, s in self._items]

    def params(self, index: int) -> dict[str, Any]:
        """The simulator parameters the format recorded for this sample's frame."""
        return self._params[index]

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Sample:
        k, stored = self._items[index]
        if stored is None:
            frame = self.reader.read_checked(self.refs[k])
            sample = segmentation_sample(
                frame,
                self._semantic(frame),
                self.mapping,
                channels=self.channels,
                size=self.size,
                invalid_depth=self.invalid_depth,
            )
        else:
            sample = Sample(
                image=stored.image.float().div(255.0),
                label=stored.label,
                mask=stored.mask,
                depth=stored.depth,
                id=stored.id,
            )
        sample.domain = self.domain
        if not self.use_labels:
            sample.label = None
        if not self.has_depth:
            sample.depth = None
        return self.transform(sample) if self.transform is not None else sample


class SimulatorOutputSource(Source):
    """A simulator's output folder (or a ``stages.yaml`` run of such folders) as training data.

    Args:
        root: the output folder, or a folder with a ``stages.yaml`` manifest of output folders.
        task: ``segmentation`` (one label map per frame) or ``classification`` (one crop per object).
        classes: ``None`` keeps every class the definitions declare; a list keeps those simulator classes; a
            mapping ``simulator name -> class`` renames and merges. Unmapped: 255 in label maps, no crop.
        background: segmentation: the class of pixels on no object (class 0); ``null`` makes them ignore (255).
        channels: 3 (RGB) or 1 (grey).
        size: segmentation: resize every frame to ``[H, W]`` (default: keep; frames must then agree);
            classification: the crop size (default ``[64, 64]``).
        crops_from: classification: ``boxes`` (the format's 2-D boxes), ``instances`` (the extent of each object in
            the instance segmentation) or ``auto`` (boxes where the format has them).
        padding: classification: context around each box, as a fraction of its longer side on every side.
        min_visible: classification: skip objects whose recorded visible fraction × in-frame fraction is lower.
        clip_boxes: clip boxes that leave the image instead of refusing them.
        invalid_depth: the depth written where the simulator hit no surface (inf/NaN in its output).
        stage: with a ``stages.yaml`` run: ``latest`` | ``best`` | ``all`` | a stage index.
        domain_per_stage: with ``stage: all``, give stage k the domain ``domain + k``.
        use_labels: attach labels.
        domain: domain id (0 = source).
    """

    reader_class: ClassVar[type[FormatReader]]

    def __init__(
        self,
        *,
        root: str,
        task: Task = "segmentation",
        classes: dict[str, str] | list[str] | None = None,
        background: str | None = "background",
        channels: int = 3,
        size: tuple[int, int] | None = None,
        crops_from: CropsFrom = "auto",
        padding: float = 0.1,
        min_visible: float = 0.0,
        clip_boxes: bool = False,
        invalid_depth: float = 0.0,
        stage: str = "latest",
        domain_per_stage: bool = False,
        use_labels: bool = True,
        domain: int = 0,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if padding < 0 or not 0 <= min_visible <= 1:
            raise ValueError(f"padding must be >= 0 and min_visible in [0, 1], got {padding}, {min_visible}")
        self.root, self.task, self.classes, self.background = root, task, classes, background
        self.channels, self.size, self.crops_from, self.padding = channels, size, crops_from, padding
        self.min_visible, self.clip_boxes, self.invalid_depth = min_visible, clip_boxes, invalid_depth
        self.stage, self.domain_per_stage, self.use_labels, self.domain = stage, domain_per_stage, use_labels, domain

    def stages(self) -> list[tuple[Path, dict[str, Any] | None]]:
        """The output folders to read, with their stage records (``None`` for a plain folder)."""
        root = Path(self.root)
        if not root.is_dir():
            raise DatasetError(root, "folder does not exist", "check the path to the simulator's output")
        listed = read_stage_manifest(root)
        if listed is None:
            return [(root, None)]
        return [listed[k] for k in choose_stages(root / MANIFEST, [r for _, r in listed], self.stage)]

    def open(self, folder: Path, *, domain: int | None = None, transform: Any = None) -> FrameDataset:
        """One output folder as a :class:`FrameDataset` with this source's options."""
        try:
            reader = self.reader_class(folder)
        except (DatasetError, ImportError):
            raise
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as err:
            raise DatasetError(
                folder,
                f"its definitions do not follow the format ({type(err).__name__}: {err})",
                "point to the simulator's unmodified output folder",
            ) from None
        return FrameDataset(
            reader,
            task=self.task,
            classes=self.classes,
            background=self.background,
            channels=self.channels,
            size=self.size,
            crops_from=self.crops_from,
            padding=self.padding,
            min_visible=self.min_visible,
            clip_boxes=self.clip_boxes,
            invalid_depth=self.invalid_depth,
            domain=self.domain if domain is None else domain,
            use_labels=self.use_labels,
            transform=transform,
        )

    def load(self, transform: Any = None) -> Dataset[Sample]:
        parts = [
            self.open(folder, domain=self.domain + (k if self.domain_per_stage else 0), transform=transform)
            for k, (folder, _) in enumerate(self.stages())
        ]
        if len(parts) == 1:
            return parts[0]
        for part in parts[1:]:
            if part.classes != parts[0].classes or part.size != parts[0].size:
                raise DatasetError(
                    part.reader.root,
                    f"classes {part.classes} / size {part.size} differ from {parts[0].reader.root}",
                    "map every stage to the same classes and size",
                )
        return StageConcat(parts)  # type: ignore[arg-type]
