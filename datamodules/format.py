"""The syn2real dataset format: the interchange format every stage reads and writes (DESIGN.md, "Dataset formats").

A dataset is a folder::

    dataset.json   format version, task, class names, channels, size, modalities, depth units, producer, stage
    samples.csv    one row per sample: id, image, label, mask, depth, params (per-sample simulator parameters, JSON)
    images/  masks/  depth/  labels/   (labels/ holds segmentation label maps; classification labels sit in the csv)

A simulator-optimization run is a folder of such datasets, one per stage (see :mod:`datamodules.stages`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.errors import DatasetError
from datamodules.imageio import image_size, read_depth, read_image, read_label_map
from syn2real.batch import IGNORE_INDEX, Sample

FORMAT_NAME = "syn2real-dataset"
FORMAT_VERSION = 1
COLUMNS = ("id", "image", "label", "mask", "depth", "params")
Task = Literal["classification", "segmentation"]


@dataclass
class DatasetInfo:
    """The contents of ``dataset.json``.

    Attributes:
        task: ``classification`` or ``segmentation``.
        classes: class names; labels index into this list.
        channels: 1 (grey) or 3 (RGB).
        size: ``(height, width)`` of every image.
        masks: whether every sample has a foreground mask.
        depth: whether every sample has a depth map.
        labels: whether samples are labeled.
        depth_units: what a depth value means (e.g. ``"relative"``, ``"meters"``).
        producer: who wrote it: ``name``, ``version``, ``config``, ``parent`` (the dataset it was derived from).
        stage: optional simulator-stage record: ``name``, ``index``, ``parameters``, ``score``.
        num_samples: number of rows in the sample table.
    """

    task: Task
    classes: list[str]
    channels: int
    size: tuple[int, int]
    masks: bool = False
    depth: bool = False
    labels: bool = True
    depth_units: str | None = None
    producer: dict[str, Any] = field(default_factory=dict)
    stage: dict[str, Any] | None = None
    num_samples: int = 0

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        modalities = {k: body.pop(k) for k in ("labels", "masks", "depth")}
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            **body,
            "size": list(self.size),
            "modalities": modalities,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> DatasetInfo:
        if data.get("format") != FORMAT_NAME:
            raise DatasetError(
                where,
                f"'format' is {data.get('format')!r}, not {FORMAT_NAME!r}",
                "point to a folder written by syn2real (simulate, refine or DatasetWriter)",
            )
        if data.get("version") != FORMAT_VERSION:
            raise DatasetError(
                where,
                f"format version {data.get('version')!r} is not supported (this syn2real "
                f"reads version {FORMAT_VERSION})",
                "re-export the dataset with this syn2real version",
            )
        missing = [k for k in ("task", "classes", "channels", "size") if k not in data]
        if missing:
            raise DatasetError(where, f"missing keys {missing}", "add them; see the dataset format in README.md")
        if data["task"] not in ("classification", "segmentation"):
            raise DatasetError(where, f"unknown task {data['task']!r}", "use 'classification' or 'segmentation'")
        if data["channels"] not in (1, 3):
            raise DatasetError(where, f"channels is {data['channels']!r}", "use 1 (grey) or 3 (RGB)")
        size = data["size"]
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise DatasetError(where, f"'size' is {size!r}", "write [height, width] in pixels, e.g. [32, 32]")
        if not isinstance(data["classes"], list) or not data["classes"]:
            raise DatasetError(
                where, f"'classes' is {data['classes']!r}", 'write the class names as a list, e.g. ["0", "1"]'
            )
        modalities = data.get("modalities", {})
        return cls(
            task=data["task"],
            classes=[str(c) for c in data["classes"]],
            channels=int(data["channels"]),
            size=(int(data["size"][0]), int(data["size"][1])),
            masks=bool(modalities.get("masks", False)),
            depth=bool(modalities.get("depth", False)),
            labels=bool(modalities.get("labels", True)),
            depth_units=data.get("depth_units"),
            producer=dict(data.get("producer") or {}),
            stage=data.get("stage"),
            num_samples=int(data.get("num_samples", 0)),
        )


@dataclass
class Row:
    """One row of the sample table, paths relative to the dataset root."""

    id: str
    image: str
    label: str = ""
    mask: str = ""
    depth: str = ""
    params: str = ""


def read_info(root: Path) -> DatasetInfo:
    """Parse ``root/dataset.json`` with a clear error when it is missing or malformed."""
    path = root / "dataset.json"
    if not root.is_dir():
        raise DatasetError(root, "folder does not exist", "check the path, or create it with `syn2real simulate --out`")
    if not path.is_file():
        raise DatasetError(
            path,
            "missing: this folder is not a syn2real dataset",
            "point to a folder written by `syn2real simulate`/`refine`, to a folder of such stage "
            "folders, or use ImageFolderSource for plain class folders",
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(path, f"is not valid JSON ({err})", "repair or re-export the file") from None
    return DatasetInfo.from_json(data, path)


def read_rows(root: Path) -> list[Row]:
    """Parse ``root/samples.csv``."""
    path = root / "samples.csv"
    if not path.is_file():
        raise DatasetError(path, "sample table is missing", "re-export the dataset; every dataset needs samples.csv")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"id", "image"} <= set(reader.fieldnames):
            raise DatasetError(
                path,
                f"header is {reader.fieldnames}, needs at least 'id' and 'image'",
                f"write the columns {list(COLUMNS)}",
            )
        return [Row(**{k: (r.get(k) or "") for k in COLUMNS}) for r in reader]


class Syn2RealDataset(Dataset[Sample]):
    """A syn2real dataset folder as a map-style dataset of :class:`~syn2real.batch.Sample`.

    Everything is validated when the dataset is opened, before any training: the sample table, that each file
    exists, decodes and has the size in ``dataset.json``, that labels are in range and depth is finite. Nothing
    in the folder is modified.

    Args:
        root: the dataset folder (holding ``dataset.json``).
        domain: domain id written into each sample (0 = source/synthetic).
        use_labels: set ``False`` to drop labels (unlabeled use of a labeled dataset).
        transform: optional callable ``Sample -> Sample`` (augmentation).
        verify: check every file on open (every image, mask and label map fully decoded, depth maps loaded);
            ``"headers"`` reads only each image's, mask's and label map's header (its size) and checks that depth
            files exist: what an export that decodes every image and carries the rest over needs up front; ``False``
            only for datasets you just validated.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        domain: int = 0,
        use_labels: bool = True,
        transform: Any = None,
        verify: bool | Literal["headers"] = True,
    ) -> None:
        self.root = Path(root)
        self.info = read_info(self.root)
        self.rows = read_rows(self.root)
        self.domain = domain
        self.use_labels = use_labels and self.info.labels
        self.transform = transform
        self._labels = self._check_rows(verify=verify)

    @property
    def classes(self) -> list[str]:
        return self.info.classes

    def _check_rows(self, *, verify: bool | str) -> list[int]:
        table = self.root / "samples.csv"
        if not self.rows:
            raise DatasetError(table, "has no rows", "write at least one sample")
        if self.info.num_samples and self.info.num_samples != len(self.rows):
            raise DatasetError(
                self.root / "dataset.json",
                f"num_samples is {self.info.num_samples} but samples.csv has {len(self.rows)} rows (a copy cut short?)",
                "re-copy or re-export the dataset, or correct num_samples if rows were removed on purpose",
            )
        seen: set[str] = set()
        labels: list[int] = []
        for n, row in enumerate(self.rows, start=2):  # row 1 is the header
            where = f"{table}:row {n} (id {row.id!r})"
            if not row.id or row.id in seen:
                raise DatasetError(where, "id is empty or repeated", "give every sample a unique id")
            seen.add(row.id)
            labels.append(self._check_label(row, where, verify))
            if verify:
                self._check_files(row, where, decode=verify is True)
        return labels

    def _check_label(self, row: Row, where: str, verify: bool | str) -> int:
        if not self.info.labels:
            return -1
        if self.info.task == "segmentation":
            if not row.label:
                raise DatasetError(where, "has no label map", "fill the 'label' column with the label PNG's path")
            if verify:
                self._check_size(self.root / row.label, where, "label map", decode=verify is True)
            return -1
        if not row.label:
            raise DatasetError(
                where,
                "has no label (the 'label' column is empty or missing) though the dataset is labeled",
                f"write a class index in 0..{len(self.classes) - 1}, or set modalities.labels to false in dataset.json",
            )
        try:
            label = int(row.label)
        except ValueError:
            raise DatasetError(
                where, f"label {row.label!r} is not an integer", f"use a class index in 0..{len(self.classes) - 1}"
            ) from None
        if not 0 <= label < len(self.classes):
            raise DatasetError(
                where,
                f"label {label} is out of range for {len(self.classes)} classes",
                f"use a class index in 0..{len(self.classes) - 1} or fix 'classes' in dataset.json",
            )
        return label

    def _check_files(self, row: Row, where: str, *, decode: bool) -> None:
        self._check_size(self.root / row.image, where, "image", decode=decode)
        for flag, rel, what in ((self.info.masks, row.mask, "mask"), (self.info.depth, row.depth, "depth")):
            if not flag:
                continue
            if not rel:
                raise DatasetError(
                    where,
                    f"has no {what} though dataset.json lists {what} as a modality",
                    f"add the {what} file or set modalities.{what} to false",
                )
            if what == "depth" and not decode:  # headers mode: a depth map an export carries over has to exist
                self._check_exists(self.root / rel, where, what)
            elif what == "depth":
                shape = tuple(read_depth(self.root / rel).shape[-2:])
                if shape != self.info.size:
                    raise DatasetError(
                        self.root / rel,
                        f"depth map is {shape}, the dataset is {self.info.size}",
                        "re-render the depth map at the image size",
                    )
            else:
                self._check_size(self.root / rel, where, what, decode=decode)

    @staticmethod
    def _check_exists(path: Path, where: str, what: str) -> None:
        if not path.is_file():
            raise DatasetError(
                path, f"{what} listed at {where} is missing", "restore the file or remove its row from samples.csv"
            )

    def _check_size(self, path: Path, where: str, what: str, *, decode: bool) -> None:
        self._check_exists(path, where, what)
        size = image_size(path, decode=decode)
        if size != self.info.size:
            raise DatasetError(
                path,
                f"{what} is {size[0]}×{size[1]}, dataset.json says {self.info.size[0]}×{self.info.size[1]}",
                "resize it, or fix 'size' in dataset.json",
            )

    def labels(self) -> list[int]:
        """Class index per sample (classification), for stratified splits; ``-1`` where unknown."""
        return list(self._labels)

    def params(self, index: int) -> dict[str, Any]:
        """Per-sample simulator parameters recorded in the table."""
        return json.loads(self.rows[index].params) if self.rows[index].params else {}

    def __len__(self) -> int:
        return len(self.rows)

    def label_map(self, index: int) -> Tensor:
        """Row ``index``'s label map (segmentation): ids of no known class read as the ignore index."""
        label = read_label_map(self.root / self.rows[index].label)
        label[(label >= len(self.classes)) & (label != IGNORE_INDEX)] = IGNORE_INDEX
        return label

    def __getitem__(self, index: int) -> Sample:
        row = self.rows[index]
        label = None
        if self.use_labels:
            if self.info.task == "classification":
                label = torch.tensor(self._labels[index], dtype=torch.long)
            else:
                label = self.label_map(index)
        sample = Sample(
            image=read_image(self.root / row.image, self.info.channels),
            label=label,
            mask=(read_image(self.root / row.mask, 1) > 0.5).float() if self.info.masks else None,
            depth=read_depth(self.root / row.depth) if self.info.depth else None,
            domain=self.domain,
            id=row.id,
        )
        return self.transform(sample) if self.transform is not None else sample
