"""Real data as plain folders: class subfolders (labeled), a flat folder (unlabeled), and segmentation pairs.

Every folder is checked when opened (files readable, sizes consistent) and never modified. Images of other sizes
are resized to ``size`` when one is given; otherwise all images must share one size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from datamodules.errors import DatasetError
from datamodules.imageio import IMAGE_SUFFIXES, image_size, read_image, read_label_map
from syn2real.batch import IGNORE_INDEX, Sample


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _check_sizes(files: list[Path], size: tuple[int, int] | None) -> tuple[int, int]:
    """All files readable; with no ``size`` given, all of one size (returned)."""
    first = image_size(files[0])
    for f in files:
        s = image_size(f, decode=True)
        if size is None and s != first:
            raise DatasetError(
                f,
                f"is {s[0]}×{s[1]} but {files[0].name} is {first[0]}×{first[1]}",
                "give the dataset a `size` to resize every image to, or resize the files",
            )
    return size or first


class _FolderBase(Dataset[Sample]):
    def __init__(
        self, files: list[Path], *, channels: int, size: tuple[int, int] | None, domain: int, transform: Any
    ) -> None:
        self.files = files
        self.channels = channels
        self.size = _check_sizes(files, tuple(size) if size else None)  # type: ignore[arg-type]
        self.domain = domain
        self.transform = transform

    def _image(self, index: int) -> torch.Tensor:
        img = read_image(self.files[index], self.channels)
        if tuple(img.shape[-2:]) != self.size:
            img = F.interpolate(img[None], size=self.size, mode="bilinear", antialias=True, align_corners=False)[0]
        return img.clamp_(0, 1)

    def _finish(self, sample: Sample) -> Sample:
        return self.transform(sample) if self.transform is not None else sample

    def __len__(self) -> int:
        return len(self.files)


class ImageFolderDataset(_FolderBase):
    """Labeled images in class subfolders: ``root/<class>/<image>``; classes sorted by name unless given.

    Args:
        root: the folder of class subfolders.
        classes: class names in label order (e.g. to match a synthetic dataset); every subfolder must be listed.
        channels: 1 or 3.
        size: ``(height, width)`` to resize to, or ``None`` to require one size.
        domain: domain id of the samples (1 = real).
        use_labels: attach labels.
        transform: optional ``Sample -> Sample``.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        classes: list[str] | None = None,
        channels: int = 3,
        size: tuple[int, int] | None = None,
        domain: int = 1,
        use_labels: bool = True,
        transform: Any = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(self.root, "folder does not exist", "check the path")
        found = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if not found:
            raise DatasetError(
                self.root,
                "has no class subfolders",
                "put images in root/<class name>/, or use UnlabeledFolderDataset for a flat folder",
            )
        self.classes = list(classes) if classes is not None else found
        extra = [c for c in found if c not in self.classes]
        if extra:
            raise DatasetError(
                self.root / extra[0],
                f"class folder {extra[0]!r} is not among the classes {self.classes}",
                "add it to `classes` or move it out of the dataset folder",
            )
        files, labels = [], []
        for label, name in enumerate(self.classes):
            folder = self.root / name
            images = _images_in(folder) if folder.is_dir() else []
            if folder.is_dir() and not images:
                raise DatasetError(
                    folder,
                    "class folder holds no images",
                    f"add {', '.join(IMAGE_SUFFIXES)} files or remove the folder (and the class from `classes`)",
                )
            files += images
            labels += [label] * len(images)
        if not files:
            raise DatasetError(
                self.root, "holds no images", f"add {', '.join(IMAGE_SUFFIXES)} files to the class folders"
            )
        self.label_list = labels
        self.use_labels = use_labels
        super().__init__(files, channels=channels, size=size, domain=domain, transform=transform)

    def labels(self) -> list[int]:
        return list(self.label_list) if self.use_labels else []

    def __getitem__(self, index: int) -> Sample:
        label = torch.tensor(self.label_list[index]) if self.use_labels else None
        rel = self.files[index].relative_to(self.root).as_posix()
        return self._finish(Sample(image=self._image(index), label=label, domain=self.domain, id=rel))


class UnlabeledFolderDataset(_FolderBase):
    """Unlabeled images in one flat folder (e.g. the real adaptation pool)."""

    def __init__(
        self,
        root: str | Path,
        *,
        channels: int = 3,
        size: tuple[int, int] | None = None,
        domain: int = 1,
        transform: Any = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(self.root, "folder does not exist", "check the path")
        files = _images_in(self.root)
        if not files:
            raise DatasetError(self.root, "holds no images", f"add {', '.join(IMAGE_SUFFIXES)} files")
        super().__init__(files, channels=channels, size=size, domain=domain, transform=transform)

    def __getitem__(self, index: int) -> Sample:
        return self._finish(Sample(image=self._image(index), domain=self.domain, id=self.files[index].name))


def read_class_map(path: Path) -> tuple[list[str], dict[int, int]]:
    """A class-mapping JSON: ``{"classes": [...], "mapping": {"<raw value>": <class index>, ...}}``.

    ``mapping`` is optional (raw values are class indices); raw values it does not list become ignore (255).
    """
    if not path.is_file():
        raise DatasetError(
            path,
            "class-mapping file is missing",
            'write {"classes": [names...]} (and optionally "mapping": {raw value: class index})',
        )
    try:
        data = json.loads(path.read_text())
        classes = [str(c) for c in data["classes"]]
        mapping = {int(k): int(v) for k, v in data.get("mapping", {}).items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise DatasetError(
            path, f"is not a valid class map ({err!r})", 'write {"classes": [...], "mapping": {"7": 0, ...}}'
        ) from None
    bad = {k: v for k, v in mapping.items() if not 0 <= v < len(classes)}
    if bad:
        raise DatasetError(path, f"maps to class indices outside 0..{len(classes) - 1}: {bad}", "fix the mapping")
    return classes, mapping


class SegmentationFolderDataset(_FolderBase):
    """Image + label-map pairs matched by file stem: ``images/<stem>.*`` with ``labels/<stem>.png``.

    Args:
        images: the image folder.
        labels: the label-map folder (single-channel PNGs of raw values).
        class_map: the class-mapping JSON (see :func:`read_class_map`).
        channels: 1 or 3.
        size: resize images (bilinear) and label maps (nearest) to this ``(height, width)``.
        domain: domain id (1 = real).
        transform: optional ``Sample -> Sample``.
    """

    def __init__(
        self,
        images: str | Path,
        labels: str | Path,
        class_map: str | Path,
        *,
        channels: int = 3,
        size: tuple[int, int] | None = None,
        domain: int = 1,
        transform: Any = None,
    ) -> None:
        self.classes, self.mapping = read_class_map(Path(class_map))
        image_dir, label_dir = Path(images), Path(labels)
        for d in (image_dir, label_dir):
            if not d.is_dir():
                raise DatasetError(d, "folder does not exist", "check the path")
        files = _images_in(image_dir)
        if not files:
            raise DatasetError(image_dir, "holds no images", "add images")
        by_stem = {p.stem: p for p in _images_in(label_dir)}
        self.label_files = []
        for f in files:
            if f.stem not in by_stem:
                raise DatasetError(
                    f, f"has no label map {label_dir / (f.stem + '.png')}", "add the label map or remove the image"
                )
            if image_size(by_stem[f.stem]) != image_size(f):
                raise DatasetError(
                    by_stem[f.stem],
                    f"label map size {image_size(by_stem[f.stem])} differs from its image {image_size(f)}",
                    "re-export the label map at the image size",
                )
            self.label_files.append(by_stem[f.stem])
        lut = torch.full((65536,), IGNORE_INDEX, dtype=torch.long)
        if self.mapping:
            for raw, cls in self.mapping.items():
                lut[raw] = cls
        else:
            lut[: len(self.classes)] = torch.arange(len(self.classes))
        self.lut = lut
        super().__init__(files, channels=channels, size=size, domain=domain, transform=transform)

    def __getitem__(self, index: int) -> Sample:
        label = self.lut[read_label_map(self.label_files[index])]
        if tuple(label.shape) != self.size:
            label = F.interpolate(label[None, None].float(), size=self.size, mode="nearest")[0, 0].long()
        return self._finish(
            Sample(image=self._image(index), label=label, domain=self.domain, id=self.files[index].name)
        )
