"""NVIDIA Omniverse Replicator ``BasicWriter`` output (docs.omniverse.nvidia.com, "Replicator", BasicWriter).

One folder (or its single render-product subfolder) of per-frame files, ``NNNN`` the zero-padded frame number::

    rgb_NNNN.png                                  RGBA render (alpha dropped)
    distance_to_image_plane_NNNN.npy              H×W float32 depth in stage units (0 or inf: no hit)
    distance_to_camera_NNNN.npy                   used when the image-plane distance is absent
    semantic_segmentation_NNNN.png                colourised RGBA (or uint32 ids when not colourised)
    semantic_segmentation_labels_NNNN.json        {"(R, G, B, A)": {"class": "cube"}} (or {"id": ...})
    instance_segmentation_NNNN.png                colourised RGBA instance map
    instance_segmentation_mapping_NNNN.json       {"(R, G, B, A)": "/World/prim"}
    instance_segmentation_semantics_mapping_NNNN.json  {"(R, G, B, A)": {"class": "cube"}}
    bounding_box_2d_tight_NNNN.npy                structured: semanticId, x_min, y_min, x_max, y_max, occlusionRatio
    bounding_box_2d_tight_labels_NNNN.json        {"<semanticId>": {"class": "cube"}}
    bounding_box_2d_tight_prim_paths_NNNN.json    prim path per box row
    camera_params_NNNN.json                       camera parameters: kept as the frame's ψ

With several render products the files sit in ``<render product>/<annotator>/``: point ``root`` at one render
product. ``BACKGROUND`` and ``UNLABELLED`` are Replicator's names for pixels on no labeled object; label keys are
``"(R, G, B, A)"`` in PNG channel order (``"<id>"`` when not colourised). Box maxima are read as inclusive pixel
coordinates (undocumented). Depth of 0 or inf ("no hit") becomes ``invalid_depth``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.errors import DatasetError
from datamodules.readers.dataset import FormatReader, SimulatorOutputSource
from datamodules.readers.frames import Frame, Instance, attach_box
from datamodules.readers.images import (
    colour_keys,
    read_array_image,
    read_json,
    read_npy,
    read_rgb,
    scalar_params,
    semantic_from_colours,
)

NOT_AN_OBJECT = {"BACKGROUND", "UNLABELLED"}
_RGB = re.compile(r"^rgb_((?:\d+_)?\d+)\.(png|jpg|jpeg)$")  # rgb_0003, or rgb_1_0003 with on_time triggers


def _class_of(entry: Any, where: Path) -> str:
    if isinstance(entry, dict) and isinstance(entry.get("class"), str):
        return entry["class"]
    raise DatasetError(where, f"label entry {entry!r} has no 'class' name", 'write entries as {"class": "name"}')


class ReplicatorReader(FormatReader):
    """Reads a ``BasicWriter`` output folder (see the module docstring)."""

    format = "replicator"
    depth_units = "stage units"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.folder = self._frames_folder(root)
        self.files = {p.name: p for p in sorted(self.folder.rglob("*")) if p.is_file()}
        found = [(m.group(1), p) for name, p in self.files.items() if (m := _RGB.match(name)) is not None]
        self.numbers = sorted(found, key=lambda t: [int(v) for v in t[0].split("_")])
        label_files = [
            p
            for name, p in self.files.items()
            if re.match(
                r"^(semantic_segmentation_labels|bounding_box_2d_tight_labels|instance_segmentation_semantics_mapping)_",
                name,
            )
        ]
        if not label_files:
            raise DatasetError(
                self.folder,
                "has no label definitions (semantic_segmentation_labels_*.json, bounding_box_2d_*_labels_*.json)",
                "write with BasicWriter(semantic_segmentation=True) and/or bounding_box_2d_tight=True",
            )
        self.definitions = label_files[0].parent / "semantic_segmentation_labels_*.json"
        names: list[str] = []
        for f in label_files:
            for entry in read_json(f).values():
                name = _class_of(entry, f)
                if name not in NOT_AN_OBJECT and name not in names:
                    names.append(name)
        self.class_names = names
        self.has_boxes = any(name.startswith("bounding_box_2d_tight_") and name.endswith(".npy") for name in self.files)

    @staticmethod
    def _frames_folder(root: Path) -> Path:
        """``root``, or its one render product: the folder holding ``rgb_*`` (or its ``rgb/`` annotator folder)."""
        products = sorted(
            {p.parent.parent if p.parent.name == "rgb" else p.parent for p in root.rglob("rgb_*") if _RGB.match(p.name)}
        )
        if not products:
            raise DatasetError(root, "holds no rgb_NNNN.png frames", "point to the BasicWriter output_dir")
        if len(products) > 1:
            raise DatasetError(
                root,
                f"holds several render products {[str(d.relative_to(root)) for d in products]}",
                "point root to one of them",
            )
        return products[0]

    def frames(self) -> list[tuple[str, Path]]:
        return self.numbers

    def where(self, ref: tuple[str, Path]) -> Path:
        return ref[1]

    def read(self, ref: tuple[str, Path]) -> Frame:
        n, rgb_path = ref
        path = lambda stem, ext: self.files.get(f"{stem}_{n}.{ext}", self.folder / f"{stem}_{n}.{ext}")  # noqa: E731
        has = lambda stem, ext: f"{stem}_{n}.{ext}" in self.files  # noqa: E731  (the folder was listed once)
        image = read_rgb(rgb_path)
        h, w = image.shape[:2]
        frame = Frame(id=f"frame{n}", where=rgb_path, image=image)
        if has("semantic_segmentation", "png"):
            frame.semantic = self._semantic(
                path("semantic_segmentation", "png"), path("semantic_segmentation_labels", "json")
            )
        if has("instance_segmentation", "png"):
            self._instances(
                frame,
                path("instance_segmentation", "png"),
                path("instance_segmentation_mapping", "json"),
                path("instance_segmentation_semantics_mapping", "json"),
            )
        if has("bounding_box_2d_tight", "npy"):
            self._boxes(
                frame,
                path("bounding_box_2d_tight", "npy"),
                path("bounding_box_2d_tight_labels", "json"),
                path("bounding_box_2d_tight_prim_paths", "json"),
            )
        for stem in ("distance_to_image_plane", "distance_to_camera"):
            if has(stem, "npy"):
                depth = read_npy(path(stem, "npy"), (h, w), "depth")
                depth[depth == 0] = np.inf  # Replicator's annotator docs: 0 stands for "no hit"
                frame.depth = depth
                break
        if has("camera_params", "json"):
            frame.params = scalar_params(read_json(path("camera_params", "json")))
        for what, value in (("semantic", frame.semantic), ("instance", frame.instance_map)):
            if value is not None and value.shape != (h, w):
                raise DatasetError(
                    rgb_path,
                    f"{what} segmentation is {value.shape}, the image {h}×{w}",
                    "re-render the annotators at the image resolution",
                )
        return frame

    @staticmethod
    def _table(labels: Path, data: Path) -> dict[str, str]:
        """The label definitions written beside ``data``, with the missing-definitions error."""
        if not labels.is_file():
            raise DatasetError(
                labels,
                f"is missing: {data.name} has no label definitions",
                "restore the labels JSON BasicWriter wrote beside it",
            )
        return {key: _class_of(entry, labels) for key, entry in read_json(labels).items()}

    def _semantic(self, png: Path, labels: Path) -> np.ndarray:
        table = {k: None if name in NOT_AN_OBJECT else name for k, name in self._table(labels, png).items()}
        return semantic_from_colours(read_array_image(png), table, self.class_names, png, labels)

    def _instances(self, frame: Frame, png: Path, mapping: Path, semantics: Path) -> None:
        table = self._table(semantics, png)
        keys, colours = colour_keys(read_array_image(png), table, png, semantics)
        prims = read_json(mapping) if mapping.is_file() else {}
        ids = np.zeros(len(colours) or 1, dtype=np.int32)
        for k, colour in enumerate(colours):
            if table[colour] not in NOT_AN_OBJECT:
                ids[k] = len(frame.instances) + 1
                frame.instances.append(Instance(id=int(ids[k]), label=table[colour], key=prims.get(colour)))
        frame.instance_map = ids[keys]

    def _boxes(self, frame: Frame, npy: Path, labels: Path, prim_file: Path) -> None:
        table = {int(k): name for k, name in self._table(labels, npy).items()}
        try:
            rows = np.load(npy, allow_pickle=False)
            fields = {name: rows[name] for name in ("semanticId", "x_min", "y_min", "x_max", "y_max")}
        except (ValueError, OSError, KeyError, IndexError) as err:
            raise DatasetError(
                npy,
                f"is not a BasicWriter box array ({err})",
                "re-export it (fields semanticId, x_min, y_min, x_max, y_max)",
            ) from None
        occlusion = rows["occlusionRatio"] if "occlusionRatio" in (rows.dtype.names or ()) else None
        prims = read_json(prim_file) if prim_file.is_file() else []
        h, w = frame.image.shape[:2]
        for r in range(rows.shape[0]):
            sid = int(fields["semanticId"][r])
            if sid not in table:
                raise DatasetError(
                    npy,
                    f"box {r} has semanticId {sid}, which {labels.name} does not define",
                    "restore the matching labels JSON",
                )
            # inclusive maxima; a maximum equal to the image size can only be an exclusive one
            x1, y1 = int(fields["x_max"][r]), int(fields["y_max"][r])
            box = (int(fields["x_min"][r]), int(fields["y_min"][r]), w if x1 == w else x1 + 1, h if y1 == h else y1 + 1)
            visible = None if occlusion is None or occlusion[r] < 0 else 1.0 - float(occlusion[r])
            attach_box(frame, prims[r] if r < len(prims) else None, table[sid], box, visible)


class ReplicatorSource(SimulatorOutputSource):
    """Omniverse Replicator ``BasicWriter`` output as a source (options: :class:`SimulatorOutputSource`)."""

    reader_class = ReplicatorReader
