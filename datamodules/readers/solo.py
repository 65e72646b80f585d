"""Unity Perception SOLO output (Perception 1.0, ``com.unity.perception`` Documentation~/Schema/SoloSchema.md).

A reader of our own that follows the documented schema and the Perception writer's code (``pysolotools`` pins
numpy 1.23 / pandas 1.4 / Pillow 9.3 and does not install beside this stack)::

    annotation_definitions.json     {"annotationDefinitions": [{"@type", "id", "spec": [{label_id, label_name}]}]}
    metadata.json                   scenarioRandomSeed, scenarioActiveRandomizers, ... (optional)
    sequence.<i>/step<j>.frame_data.json
        {"sequence", "step", "captures": [RGBCamera capture: filename, position, rotation, annotations: [...]],
         "metrics": [{"id", "value" | "values"}]}

Annotations read: ``SemanticSegmentationAnnotation`` (``instances``: ``labelName``, ``pixelValue`` RGBA; black =
no object), ``InstanceSegmentationAnnotation`` (``instances``: ``instanceId``, ``labelName``, ``color``),
``BoundingBox2DAnnotation`` (``values``: ``instanceId``, ``labelName``, ``origin``, ``dimension``) and
``DepthAnnotation`` (a 32-bit float EXR, depth in channel R in metres, 0 where nothing was hit). The ``Occlusion``
metric's ``percentVisible`` is each object's visible fraction. SOLO records no randomizer *values*; a frame's ψ is
what it does record: the scalar metrics (``scenario_iteration``, ``random-seed`` and any custom ``GenericMetric``,
e.g. one that reports sampled parameters), the camera pose and the scenario seed.
"""

from __future__ import annotations

import importlib
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
    read_rgb,
    scalar_params,
    semantic_from_colours,
)

_FRAME = re.compile(r"^step(\d+)\.frame_data\.json$")
_SEQUENCE = re.compile(r"^sequence\.(\d+)$")
_BLACK = (0, 0, 0)  # no object; colours are matched on RGB (the alpha of labeled pixels is not specified)


def _kind(item: dict[str, Any]) -> str:
    """``type.unity.com/unity.solo.BoundingBox2DAnnotation`` -> ``BoundingBox2DAnnotation``."""
    return str(item.get("@type", "")).rsplit(".", 1)[-1]


def read_exr_depth(path: Path) -> np.ndarray:
    """Channel R of an EXR (Perception's depth), non-finite where its alpha is 0 or its value 0 (no hit)."""
    try:
        openexr = importlib.import_module("OpenEXR")
    except ImportError:
        raise ImportError("reading SOLO depth (EXR) needs openexr: pip install 'syn2real[simulators]'") from None
    try:
        with openexr.File(str(path)) as f:
            channels = {name: np.asarray(c.pixels) for name, c in f.channels().items()}
    except Exception as err:  # OpenEXR raises plain RuntimeError/OSError variants
        raise DatasetError(path, f"cannot be read as EXR ({err})", "re-render this frame") from None
    if "R" in channels:
        value, alpha = channels["R"], channels.get("A")
    elif channels:
        packed = channels.get("RGBA", channels.get("RGB", next(iter(channels.values()))))
        value = packed[..., 0] if packed.ndim == 3 else packed
        alpha = packed[..., 3] if packed.ndim == 3 and packed.shape[2] == 4 else None
    else:
        raise DatasetError(path, "has no channels", "re-render this frame")
    depth = value.astype(np.float32)
    depth[depth == 0] = np.inf
    if alpha is not None:
        depth[alpha == 0] = np.inf
    return depth


class SoloReader(FormatReader):
    """Reads a SOLO dataset folder (see the module docstring)."""

    format = "solo"
    depth_units = "meters"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        meta = (
            root / "metadata" if (root / "metadata" / "annotation_definitions.json").is_file() else root
        )  # Unity Simulation
        self.definitions = meta / "annotation_definitions.json"
        if not self.definitions.is_file():
            raise DatasetError(
                self.definitions,
                "is missing (Perception writes the definition files when the simulation completes: a stopped run "
                "has none)",
                "let the simulation finish, or copy annotation_definitions.json from a completed run of the scenario",
            )
        defined = read_json(self.definitions)
        entries = defined.get("annotationDefinitions") if isinstance(defined, dict) else None
        if not isinstance(entries, list):
            raise DatasetError(self.definitions, "has no annotationDefinitions list", "restore the file Unity wrote")
        names = [
            s["label_name"]
            for e in entries
            for s in e.get("spec") or []
            if isinstance(s, dict) and isinstance(s.get("label_name"), str)
        ]
        self.has_boxes = any(_kind(e).startswith("BoundingBox2D") for e in entries)
        metadata = meta / "metadata.json"
        record = read_json(metadata) if metadata.is_file() else {}
        self.seed = record.get("scenarioRandomSeed") if isinstance(record, dict) else None
        self.refs: list[tuple[Path, int, int]] = []
        for path in self._frame_files():
            data = read_json(path)
            captures = [k for k, c in enumerate(data.get("captures") or []) if _kind(c) == "RGBCamera"]
            self.refs += [(path, k, len(captures)) for k in captures]
            for k in captures:  # the semantic labels are defined per frame only: collect their names
                for ann in data["captures"][k].get("annotations") or []:
                    if _kind(ann) == "SemanticSegmentationAnnotation":
                        names += [str(inst.get("labelName")) for inst in ann.get("instances") or []]
        self.class_names = list(dict.fromkeys(names))

    def _frame_files(self) -> list[Path]:
        found = []
        for seq in self.root.iterdir():
            if (m := _SEQUENCE.match(seq.name)) is not None and seq.is_dir():
                found += [
                    (int(m.group(1)), int(s.group(1)), f)
                    for f in seq.iterdir()
                    if (s := _FRAME.match(f.name)) is not None
                ]
        return [f for _, _, f in sorted(found)]

    def frames(self) -> list[tuple[Path, int, int]]:
        return self.refs

    def where(self, ref: tuple[Path, int, int]) -> Path:
        return ref[0]

    def read(self, ref: tuple[Path, int, int]) -> Frame:
        path, k, cameras = ref
        data = read_json(path)
        capture = data["captures"][k]
        sequence = data.get("sequence", path.parent.name.rsplit(".", 1)[-1])
        step = data.get("step", int(_FRAME.match(path.name).group(1)))  # type: ignore[union-attr]
        if not capture.get("filename"):
            raise DatasetError(path, f"capture {capture.get('id')!r} has no RGB filename", "re-render with RGB output")
        image = read_rgb(path.parent / capture["filename"])
        suffix = f"-{capture.get('id')}" if cameras > 1 else ""
        frame = Frame(id=f"seq{sequence}-step{step}{suffix}", where=path, image=image)
        shape = image.shape[:2]
        annotations = {_kind(a): a for a in capture.get("annotations") or []}
        if (ann := annotations.get("SemanticSegmentationAnnotation")) is not None:
            frame.semantic = self._semantic(path, ann, shape)
        if (ann := annotations.get("InstanceSegmentationAnnotation")) is not None:
            self._instances(frame, path, ann, shape)
        if (ann := annotations.get("BoundingBox2DAnnotation")) is not None:
            self._boxes(frame, ann)
        if (ann := annotations.get("DepthAnnotation")) is not None and ann.get("filename"):
            frame.depth = read_exr_depth(path.parent / ann["filename"])
        metrics = {m.get("id"): m for m in data.get("metrics") or [] if isinstance(m, dict)}
        visible = {
            v.get("instanceId"): v.get("percentVisible") for v in (metrics.get("Occlusion") or {}).get("values") or []
        }
        for inst in frame.instances:
            inst.visible = visible.get(inst.key, inst.visible)
        record = {str(i): m["value"] for i, m in metrics.items() if "value" in m}
        record["camera"] = {"position": capture.get("position"), "rotation": capture.get("rotation")}
        if self.seed is not None:
            record["scenarioRandomSeed"] = self.seed
        frame.params = scalar_params(record)
        return frame

    def _map(self, path: Path, ann: dict[str, Any], shape: tuple[int, ...]) -> tuple[np.ndarray, Path]:
        png = path.parent / str(ann.get("filename"))
        pixels = read_array_image(png)
        if pixels.shape[:2] != shape:
            raise DatasetError(png, f"is {pixels.shape[:2]}, its RGB capture {shape}", "re-render this frame")
        return (pixels[..., :3] if pixels.ndim == 3 else pixels), png

    def _semantic(self, path: Path, ann: dict[str, Any], shape: tuple[int, ...]) -> np.ndarray:
        pixels, png = self._map(path, ann, shape)
        table: dict[Any, str | None] = {
            tuple(i["pixelValue"][:3]): str(i["labelName"]) for i in ann.get("instances") or []
        }
        table.setdefault(_BLACK, None)
        return semantic_from_colours(pixels, table, self.class_names, png, path)

    def _instances(self, frame: Frame, path: Path, ann: dict[str, Any], shape: tuple[int, ...]) -> None:
        pixels, png = self._map(path, ann, shape)
        listed = ann.get("instances") or []
        table: dict[Any, Any] = {tuple(i["color"][:3]): i for i in listed}
        table.setdefault(_BLACK, None)
        keys, colours = colour_keys(pixels, table, png, path)
        ids = np.array([0 if table[c] is None else int(table[c]["instanceId"]) for c in colours])
        frame.instance_map = ids[keys]
        for entry in listed:
            self._check_label(entry, path)
            frame.instances.append(
                Instance(id=int(entry["instanceId"]), label=str(entry["labelName"]), key=int(entry["instanceId"]))
            )

    def _boxes(self, frame: Frame, ann: dict[str, Any]) -> None:
        for value in ann.get("values") or []:
            self._check_label(value, frame.where)
            (x, y), (w, h) = value["origin"], value["dimension"]
            box = (round(x), round(y), round(x + w), round(y + h))
            attach_box(frame, int(value["instanceId"]), str(value["labelName"]), box, None)

    def _check_label(self, entry: dict[str, Any], path: Path) -> None:
        if str(entry.get("labelName")) not in self.class_names:
            raise DatasetError(
                path,
                f"label {entry.get('labelName')!r} is not in {self.definitions.name}",
                "restore annotation_definitions.json from the same run",
            )


class SoloSource(SimulatorOutputSource):
    """Unity Perception SOLO output as a source (options: :class:`SimulatorOutputSource`)."""

    reader_class = SoloReader
