"""What every simulator-output reader hands over, and how a frame becomes syn2real samples.

A reader turns one rendered frame of its format into a :class:`Frame` (numpy arrays at the render's resolution,
class *names* as the simulator spells them). :class:`ClassMapping` maps those names to the user's classes, and
:func:`segmentation_sample` / :func:`crop_samples` make the samples: a label map per frame (unmapped classes
-> 255, pixels of no object -> the background class), or one labeled crop per object (from the format's 2-D
boxes or the instance map's extent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.errors import DatasetError
from syn2real.batch import IGNORE_INDEX, Sample

Task = Literal["classification", "segmentation"]
CropsFrom = Literal["auto", "boxes", "instances"]


@dataclass
class Instance:
    """One labeled object of a frame.

    Attributes:
        id: the object's id in the frame's instance map (0 when the format has no instance map).
        label: the simulator's class name.
        box: ``(x0, y0, x1, y1)`` in pixels, ``x1``/``y1`` exclusive; ``None`` where the format records no box.
        visible: the visible fraction the format records (``None``: not recorded).
        key: the format's own handle of the object (a prim path, an instance id), to join its annotations.
    """

    id: int
    label: str
    box: tuple[int, int, int, int] | None = None
    visible: float | None = None
    key: Any = None


@dataclass
class Frame:
    """One rendered frame.

    Attributes:
        id: unique sample id (no path separators).
        where: the file to name in errors about this frame.
        image: ``H×W×3`` uint8 RGB.
        semantic: ``H×W`` int class-name index into the reader's ``class_names`` (-1: no object), or ``None``.
        instance_map: ``H×W`` int instance ids (0: no object), or ``None``.
        instances: the frame's labeled objects.
        depth: ``H×W`` float32 (non-finite where no surface was hit), or ``None``.
        params: per-frame simulator parameters (JSON-serialisable).
    """

    id: str
    where: Path
    image: np.ndarray
    semantic: np.ndarray | None = None
    instance_map: np.ndarray | None = None
    instances: list[Instance] = field(default_factory=list)
    depth: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)


class ClassMapping:
    """The simulator's class names -> the user's classes.

    Args:
        spec: ``None`` (every class the dataset defines, in its order), a list of simulator class names to keep, or
            a mapping ``simulator name -> class name`` (several names may map to one class). Names left out are
            unmapped: ignore (255) in label maps, no crop in classification.
        defined: the class names the dataset's definitions declare.
        background: segmentation only: the class of pixels on no object (first in the class list); ``None`` makes
            them ignore (255).
        task: classification or segmentation.
        where: the definitions file, named in errors.
    """

    def __init__(
        self,
        spec: dict[str, str] | list[str] | None,
        defined: list[str],
        *,
        background: str | None,
        task: Task,
        where: Path,
    ) -> None:
        pairs = list(spec.items()) if isinstance(spec, dict) else [(n, n) for n in (spec or defined)]
        unknown = [name for name, _ in pairs if name not in defined]
        if unknown:
            raise DatasetError(
                where,
                f"the class mapping names {unknown}, which the dataset does not define (it defines {defined})",
                "map only defined class names (spelled as in the definitions)",
            )
        classes = [background] if task == "segmentation" and background is not None else []
        for _, ours in pairs:
            if ours not in classes:
                classes.append(ours)
        if len(classes) == (1 if task == "segmentation" and background is not None else 0):
            raise DatasetError(where, "the class mapping keeps no class", "map at least one defined class")
        if task == "segmentation" and len(classes) > IGNORE_INDEX:
            raise DatasetError(where, f"{len(classes)} classes do not fit 8-bit label maps", "map to fewer classes")
        self.classes = classes
        self.background = classes.index(background) if task == "segmentation" and background is not None else None
        self._ours = {name: classes.index(ours) for name, ours in pairs}
        # lookup tables over class-name index + 1 (0: no object), used per sample by label_map / foreground
        self._lut = np.full(len(defined) + 1, IGNORE_INDEX, dtype=np.uint8)
        self._lut[0] = IGNORE_INDEX if self.background is None else self.background
        self._mapped = np.zeros(len(defined) + 1, dtype=bool)
        for k, name in enumerate(defined):
            if name in self._ours:
                self._lut[k + 1], self._mapped[k + 1] = self._ours[name], True

    def index(self, name: str) -> int | None:
        """The class index of a simulator class name, ``None`` when unmapped."""
        return self._ours.get(name)

    def label_map(self, semantic: np.ndarray) -> np.ndarray:
        """Class-name indices (-1: no object) -> class indices, 255 for unmapped (and for background without one)."""
        return self._lut[semantic.astype(np.int64) + 1]

    def foreground(self, semantic: np.ndarray) -> np.ndarray:
        """Pixels on an object of a mapped class."""
        return self._mapped[semantic.astype(np.int64) + 1]


def semantic_from_instances(frame: Frame, class_names: list[str]) -> np.ndarray:
    """The semantic map a frame's instance map and instance labels imply (-1 where no object)."""
    assert frame.instance_map is not None
    semantic = np.full(frame.instance_map.shape, -1, dtype=np.int32)
    for inst in frame.instances:
        if inst.id > 0:  # objects known only by a box (id 0) have no pixels in the map
            semantic[frame.instance_map == inst.id] = class_names.index(inst.label)
    return semantic


def attach_box(frame: Frame, key: Any, label: str, box: tuple[int, int, int, int], visible: float | None) -> None:
    """Give a 2-D box to the frame's object with the same ``key``, or add an object known only by its box.

    Objects known only by a box have id 0: no pixels in the instance map.
    """
    owner = next((i for i in frame.instances if key is not None and i.key == key), None)
    if owner is None:
        frame.instances.append(Instance(id=0, label=label, box=box, visible=visible, key=key))
    else:
        owner.box = box
        owner.visible = visible if visible is not None else owner.visible


def clean_depth(depth: np.ndarray, fill: float) -> np.ndarray:
    """Depth with non-finite values (no surface hit) set to ``fill``: the syn2real format stores finite depth."""
    out = np.asarray(depth, dtype=np.float32).copy()
    out[~np.isfinite(out)] = fill
    return out


def _resize(t: torch.Tensor, size: tuple[int, int], *, smooth: bool) -> torch.Tensor:
    """``C×H×W`` -> ``C×size``: bilinear with antialiasing for images, nearest for labels, masks and depth."""
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    if smooth:
        return F.interpolate(t[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    return F.interpolate(t[None].float(), size=size, mode="nearest-exact")[0].to(t.dtype)


def _image_tensor(image: np.ndarray, channels: int) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    if channels == 1:  # ITU-R 601 luma, as PIL's convert("L")
        t = (0.299 * t[0:1] + 0.587 * t[1:2] + 0.114 * t[2:3]).clamp_(0, 1)
    return t


def segmentation_sample(
    frame: Frame,
    semantic: np.ndarray,
    mapping: ClassMapping,
    *,
    channels: int,
    size: tuple[int, int] | None,
    invalid_depth: float,
) -> Sample:
    """A frame as one segmentation sample: label map, foreground mask of mapped classes, depth."""
    out = size or tuple(frame.image.shape[:2])
    labels = torch.from_numpy(mapping.label_map(semantic).astype(np.int64))
    mask = torch.from_numpy(mapping.foreground(semantic)).float()[None]
    depth = None if frame.depth is None else torch.from_numpy(clean_depth(frame.depth, invalid_depth))[None]
    return Sample(
        image=_resize(_image_tensor(frame.image, channels), out, smooth=True).clamp_(0, 1),
        label=_resize(labels[None], out, smooth=False)[0],
        mask=_resize(mask, out, smooth=False),
        depth=None if depth is None else _resize(depth, out, smooth=False),
        id=frame.id,
    )


def instance_box(pixels: np.ndarray) -> tuple[int, int, int, int] | None:
    """The tight box of an object's pixels (``None`` when it has none)."""
    ys, xs = np.nonzero(pixels)
    if ys.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def check_box(frame: Frame, box: tuple[float, float, float, float], *, clip: bool) -> tuple[int, int, int, int]:
    """A box inside the frame (clipped to it with ``clip``), else an error naming the file."""
    h, w = frame.image.shape[:2]
    x0, y0, x1, y1 = box
    inside = 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    if not inside and not clip:
        raise DatasetError(
            frame.where,
            f"box {tuple(round(v, 1) for v in box)} of frame {frame.id!r} lies outside the {w}×{h} image",
            "re-render with boxes clipped to the image, or set clip_boxes: true (--clip-boxes) to clip them",
        )
    cx0, cy0 = int(np.floor(max(0, x0))), int(np.floor(max(0, y0)))
    cx1, cy1 = int(np.ceil(min(w, x1))), int(np.ceil(min(h, y1)))
    return cx0, cy0, max(cx1, cx0), max(cy1, cy0)


def crop_samples(
    frame: Frame,
    mapping: ClassMapping,
    *,
    crops_from: Literal["boxes", "instances"],
    channels: int,
    size: tuple[int, int],
    padding: float,
    min_visible: float,
    clip_boxes: bool,
    invalid_depth: float,
) -> list[Sample]:
    """One labeled crop per object of a mapped class, resized to ``size``.

    The crop is a square around the object's box, widened by ``padding`` × the box's longer side on every side, zero
    beyond the image; its mask is the object's own pixels (its box where the format has no instance map). Crop ids
    are ``<frame id>-obj<position in the frame>``.

    Objects whose recorded visible fraction × in-frame fraction is below ``min_visible`` are skipped.
    """
    image = _image_tensor(frame.image, channels)
    depth = None if frame.depth is None else torch.from_numpy(clean_depth(frame.depth, invalid_depth))[None]
    samples = []
    if crops_from == "instances" and frame.instance_map is None:
        raise DatasetError(
            frame.where,
            f"frame {frame.id!r} has no instance segmentation to crop objects from",
            "render instance segmentation, or use crops_from: boxes",
        )
    for k, inst in enumerate(frame.instances):
        label = mapping.index(inst.label)
        if label is None:
            continue
        pixels = frame.instance_map == inst.id if frame.instance_map is not None and inst.id > 0 else None
        raw = inst.box if crops_from == "boxes" else (instance_box(pixels) if pixels is not None else None)
        if raw is None:
            continue
        box = check_box(frame, raw, clip=clip_boxes)
        area = (raw[2] - raw[0]) * (raw[3] - raw[1])
        in_frame = (box[2] - box[0]) * (box[3] - box[1]) / area if area > 0 else 0.0
        if in_frame == 0.0 or (1.0 if inst.visible is None else inst.visible) * in_frame < min_visible:
            continue
        side = max(box[2] - box[0], box[3] - box[1]) * (1 + 2 * padding)
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x0, y0 = round(cx - side / 2), round(cy - side / 2)
        s = max(1, round(side))
        if pixels is not None:
            own = _window(torch.from_numpy(pixels)[None], x0, y0, s).float()
        else:  # no instance map: the box is the best foreground there is
            own = torch.zeros(1, s, s)
            own[:, max(0, box[1] - y0) : box[3] - y0, max(0, box[0] - x0) : box[2] - x0] = 1.0
        samples.append(
            Sample(
                image=_resize(_window(image, x0, y0, s), size, smooth=True).clamp_(0, 1),
                label=torch.tensor(label, dtype=torch.long),
                mask=_resize(own, size, smooth=False),
                depth=None if depth is None else _resize(_window(depth, x0, y0, s, invalid_depth), size, smooth=False),
                id=f"{frame.id}-obj{k:03d}",
            )
        )
    return samples


def _window(t: torch.Tensor, x0: int, y0: int, side: int, fill: float = 0.0) -> torch.Tensor:
    """The ``side``×``side`` window of ``C×H×W`` at ``(x0, y0)``, ``fill`` where it leaves the image."""
    h, w = t.shape[-2:]
    out = torch.full((t.shape[0], side, side), fill, dtype=t.dtype)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        out[:, sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = t[:, sy0:sy1, sx0:sx1]
    return out
