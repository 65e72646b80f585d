"""BlenderProc 2 output (github.com/DLR-RM/BlenderProc, ``blenderproc/python/writer``): HDF5 containers or COCO.

**HDF5** (``bproc.writer.write_hdf5``): one ``<frame>.hdf5`` per frame with the rendered keys as datasets::

    colors                    H×W×3 uint8 RGB (H×W×4 with a transparent film: alpha dropped)
    depth | distance          H×W float32 metres; inf, or >= 10000 (the anti-aliased distance's "far"), where no hit
    instance_segmaps          H×W int instance index (0: the world, i.e. no object)
    instance_attribute_maps   JSON bytes: [{"idx": 0, "category_id": 0, "name": "..."}, ...]: the definitions
    category_id_segmaps | class_segmaps   H×W category ids (used when there is no instance map; 0: background)
    other keys                numbers, short arrays and JSON records: kept as the frame's ψ

An object's class is its ``category_id`` (as text: map ``"1": chair`` in ``classes``), as BlenderProc's COCO writer
does; render with ``bproc.renderer.enable_segmentation_output(map_by=["category_id", "instance", "name"])``.

**COCO** (``bproc.writer.write_coco_annotations``): ``coco_annotations.json`` (in ``root`` or ``root/coco_data``)
with ``images/``; masks are RLE (BlenderProc writes uncompressed RLE) or polygons, decoded with pycocotools; class
names are the categories' names. COCO output carries no depth.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.errors import DatasetError
from datamodules.readers.dataset import FormatReader, SimulatorOutputSource
from datamodules.readers.frames import Frame, Instance
from datamodules.readers.images import read_json, read_rgb, scalar_params

NO_HIT = 1e4  # BlenderProc's anti-aliased distance maps "nothing hit" to antialiasing_distance_max = 10000
_KNOWN = {
    "colors",
    "depth",
    "distance",
    "normals",
    "instance_segmaps",
    "instance_attribute_maps",
    "category_id_segmaps",
    "class_segmaps",
    "blender_proc_version",
}
_EXTRA = "pip install 'syn2real[simulators]' (h5py, pycocotools, openexr)"


def _is_object(entry: dict[str, Any]) -> bool:
    """An ``instance_attribute_maps`` entry that is an object: not the world (idx 0) nor category 0 (background).

    BlenderProc's COCO writer also skips category 0.
    """
    return entry["idx"] != 0 and entry["category_id"] != 0


def _numbers_first(text: str) -> tuple[bool, int, str]:
    """Sort key: numeric names in numeric order (``2`` before ``10``), then the rest by name."""
    numeric = text.lstrip("-").isdigit()
    return (not numeric, int(text) if numeric else 0, text)


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"reading BlenderProc output needs {module}: {_EXTRA}") from None


class BlenderProcHdf5Reader(FormatReader):
    """Reads a folder of BlenderProc ``<frame>.hdf5`` containers (see the module docstring)."""

    format = "blenderproc"
    depth_units = "meters"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.h5py = _require("h5py")
        self.files = sorted(root.glob("*.hdf5"), key=lambda p: _numbers_first(p.stem))
        names: set[str] = set()
        seen_definitions = False
        for f in self.files:
            with self._open(f) as h5:
                if "instance_attribute_maps" in h5:
                    seen_definitions = True
                    names.update(str(e["category_id"]) for e in self._attributes(h5, f) if _is_object(e))
                elif "instance_segmaps" in h5:
                    raise DatasetError(
                        f,
                        "has instance_segmaps but no instance_attribute_maps (the object classes)",
                        'render with enable_segmentation_output(map_by=["category_id", "instance"])',
                    )
                for key in ("category_id_segmaps", "class_segmaps"):
                    if key in h5 and "instance_segmaps" not in h5:
                        seen_definitions = True
                        names.update(str(v) for v in np.unique(h5[key][()]).tolist() if v != 0)
        if self.files and not seen_definitions:
            raise DatasetError(
                self.files[0],
                "has no segmentation (instance_attribute_maps / category_id_segmaps)",
                'render with enable_segmentation_output(map_by=["category_id", "instance", "name"])',
            )
        self.class_names = sorted(names, key=_numbers_first)
        self.definitions = self.files[0] if self.files else root

    def _open(self, path: Path) -> Any:
        try:
            return self.h5py.File(path, "r")
        except OSError as err:
            raise DatasetError(path, f"cannot be read as HDF5 ({err})", "re-render or remove this frame") from None

    @staticmethod
    def _attributes(h5: Any, path: Path) -> list[dict[str, Any]]:
        try:
            entries = json.loads(h5["instance_attribute_maps"][()])
        except (ValueError, TypeError) as err:
            raise DatasetError(path, f"instance_attribute_maps is not JSON ({err})", "re-render this frame") from None
        if not isinstance(entries, list) or not all(isinstance(e, dict) and "idx" in e for e in entries):
            raise DatasetError(
                path, "instance_attribute_maps is not a list of {idx, category_id, ...}", "re-render this frame"
            )
        for e in entries:
            if "category_id" not in e:
                raise DatasetError(
                    path,
                    f"instance {e['idx']} has no category_id",
                    'map_by "category_id" in enable_segmentation_output and set it on every object',
                )
        return entries

    def frames(self) -> list[Path]:
        return self.files

    def read(self, ref: Path) -> Frame:
        with self._open(ref) as h5:
            if "colors" not in h5:
                raise DatasetError(ref, "has no 'colors'", "render colour output into the container")
            image = np.asarray(h5["colors"][()])
            if image.ndim != 3 or image.shape[2] not in (3, 4):
                raise DatasetError(
                    ref,
                    f"colors has shape {image.shape} (stereo?)",
                    "write mono frames, or stereo_separate_keys and read one side",
                )
            if image.dtype != np.uint8:  # float renders: [0, 1]
                image = (np.clip(image, 0, 1) * 255).round()
            frame = Frame(id=f"frame{ref.stem}", where=ref, image=image[..., :3].astype(np.uint8))
            shape = image.shape[:2]
            if "instance_segmaps" in h5:
                frame.instance_map = self._map(h5, "instance_segmaps", ref, shape)
                by_idx = {e["idx"]: e for e in self._attributes(h5, ref)}
                for idx in np.unique(frame.instance_map).tolist():
                    if idx == 0 or (idx in by_idx and not _is_object(by_idx[idx])):
                        frame.instance_map[frame.instance_map == idx] = 0  # the world, category 0: background
                        continue
                    if idx not in by_idx:
                        raise DatasetError(
                            ref,
                            f"instance {idx} in instance_segmaps has no instance_attribute_maps entry",
                            "re-render this frame (the two are written together)",
                        )
                    frame.instances.append(Instance(id=idx, label=str(by_idx[idx]["category_id"])))
            elif "category_id_segmaps" in h5 or "class_segmaps" in h5:
                key = "category_id_segmaps" if "category_id_segmaps" in h5 else "class_segmaps"
                ids = self._map(h5, key, ref, shape)
                present, inverse = np.unique(ids, return_inverse=True)
                index = {int(n): k for k, n in enumerate(self.class_names)}
                lut = np.array([index.get(v, -1) for v in present.tolist()], dtype=np.int32)
                frame.semantic = lut[inverse.reshape(ids.shape)]
            for key in ("depth", "distance"):
                if key in h5:
                    depth = self._map(h5, key, ref, shape, np.float32)
                    depth[depth >= NO_HIT] = np.inf
                    frame.depth = depth
                    break
            frame.params = self._params(h5)
        return frame

    @staticmethod
    def _map(h5: Any, key: str, path: Path, shape: tuple[int, ...], dtype: type = np.int64) -> np.ndarray:
        arr = np.asarray(h5[key][()])
        if arr.shape != shape:
            raise DatasetError(
                path, f"{key} is {arr.shape}, colors {shape[0]}×{shape[1]}", f"re-render {key} at the image resolution"
            )
        return arr.astype(dtype)

    @staticmethod
    def _params(h5: Any) -> dict[str, Any]:
        record: dict[str, Any] = {}
        for key in h5:
            if key in _KNOWN:
                continue
            value = h5[key][()]
            if isinstance(value, bytes):
                try:
                    value = json.loads(value)
                except ValueError:
                    value = value.decode(errors="replace")
            elif isinstance(value, np.ndarray):
                value = value.tolist() if value.size <= 16 else None
            elif isinstance(value, np.generic):
                value = value.item()
            if value is not None:
                record[key] = value
        return scalar_params(record)


class BlenderProcCocoReader(FormatReader):
    """Reads BlenderProc's COCO output (``coco_annotations.json`` + ``images/``)."""

    format = "blenderproc"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.mask_utils = _require("pycocotools.mask")
        self.definitions = coco_file(root)
        data = read_json(self.definitions)
        if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= set(data):
            raise DatasetError(
                self.definitions,
                "is not COCO (needs images, annotations, categories)",
                "point to the coco_annotations.json BlenderProc wrote",
            )
        self.categories = {c["id"]: str(c.get("name", c["id"])) for c in data["categories"]}
        self.class_names = [self.categories[k] for k in sorted(self.categories)]
        self.images = sorted(data["images"], key=lambda im: im["id"])
        self.by_image: dict[int, list[dict[str, Any]]] = {}
        for ann in data["annotations"]:
            if ann.get("category_id") not in self.categories:
                raise DatasetError(
                    self.definitions,
                    f"annotation {ann.get('id')} has category_id "
                    f"{ann.get('category_id')!r}, which 'categories' does not define",
                    "add the category or remove the annotation",
                )
            self.by_image.setdefault(ann["image_id"], []).append(ann)
        self.has_boxes = True

    def frames(self) -> list[dict[str, Any]]:
        return self.images

    def where(self, ref: dict[str, Any]) -> Path:
        return self.definitions

    def read(self, ref: dict[str, Any]) -> Frame:
        path = self.definitions.parent / ref["file_name"]
        image = read_rgb(path)
        h, w = image.shape[:2]
        frame = Frame(
            id=f"image{ref['id']}",
            where=path,
            image=image,
            instance_map=np.zeros((h, w), dtype=np.int64),
        )
        for k, ann in enumerate(self.by_image.get(ref["id"], []), start=1):
            mask = self._mask(ann["segmentation"], h, w, path)
            frame.instance_map[mask & (frame.instance_map == 0)] = k
            x, y, bw, bh = ann["bbox"]
            frame.instances.append(
                Instance(
                    id=k,
                    label=self.categories[ann["category_id"]],
                    box=(math.floor(x), math.floor(y), math.ceil(x + bw), math.ceil(y + bh)),
                )
            )
        return frame

    def _mask(self, segmentation: Any, h: int, w: int, path: Path) -> np.ndarray:
        try:
            if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
                rle = self.mask_utils.frPyObjects(segmentation, h, w)  # uncompressed RLE, as BlenderProc writes it
            elif isinstance(segmentation, list):
                rle = self.mask_utils.merge(self.mask_utils.frPyObjects(segmentation, h, w))
            else:
                rle = segmentation
            mask = self.mask_utils.decode(rle).astype(bool)
            if mask.shape != (h, w):
                raise ValueError(f"mask is {mask.shape}, the image {h}×{w}")
            return mask
        except (TypeError, ValueError, KeyError, IndexError) as err:
            raise DatasetError(
                self.definitions,
                f"a segmentation of {path.name} cannot be decoded ({err})",
                "re-export the annotations",
            ) from None


def coco_file(root: Path) -> Path:
    """The COCO annotations file of a BlenderProc output folder (``root`` or ``root/coco_data``)."""
    for candidate in (root / "coco_annotations.json", root / "coco_data" / "coco_annotations.json"):
        if candidate.is_file():
            return candidate
    raise DatasetError(root / "coco_annotations.json", "is missing", "point to BlenderProc's coco_data folder")


def blenderproc_reader(root: Path) -> FormatReader:
    """The reader for what ``root`` holds: HDF5 containers, else COCO output."""
    if any(root.glob("*.hdf5")):
        return BlenderProcHdf5Reader(root)
    if (root / "coco_annotations.json").is_file() or (root / "coco_data" / "coco_annotations.json").is_file():
        return BlenderProcCocoReader(root)
    raise DatasetError(
        root,
        "holds no BlenderProc output (*.hdf5, coco_annotations.json, coco_data/)",
        "point to the output folder given to bproc.writer.write_hdf5 or write_coco_annotations",
    )


class BlenderProcSource(SimulatorOutputSource):
    """BlenderProc HDF5 or COCO output as a source (options: :class:`SimulatorOutputSource`)."""

    reader_class = staticmethod(blenderproc_reader)  # type: ignore[assignment]
