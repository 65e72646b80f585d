"""Write the small simulator-output fixtures under ``tests/data/`` from the formats' documentation.

    python tests/data/make_fixtures.py        # rewrites tests/data/{solo,blenderproc_hdf5,blenderproc_coco,replicator}

Every format holds the same three 24×32 scenes (frame k is ``scene(k)``): a sky band where nothing is hit, a floor,
and two or three objects of the classes ``cube``, ``sphere`` and ``cone`` (``cone`` only in the last frame), with
their semantic and instance maps, 2-D boxes (tight, exclusive maxima in :func:`scene`), depth and one randomized
parameter, the light intensity. The tests compare what each reader returns with :func:`scene`. Layouts follow
``datamodules/readers/*.py`` docstrings (SOLO: Perception 1.0 schema; BlenderProc 2: ``write_hdf5`` and
``write_coco_annotations``; Replicator: ``BasicWriter``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent
H, W = 24, 32
CLASSES = {"cube": 1, "sphere": 2, "cone": 3}  # BlenderProc category ids; SOLO label ids
SEMANTIC_COLOURS = {"cube": (255, 0, 0, 255), "sphere": (0, 255, 0, 255), "cone": (0, 0, 255, 255)}
SKY_ROWS = 4


@dataclass
class Obj:
    instance: int
    label: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    mask: np.ndarray
    visible: float


@dataclass
class Scene:
    image: np.ndarray  # H×W×3 uint8
    objects: list[Obj]
    depth: np.ndarray  # H×W float32, inf where nothing is hit (sky)
    light: float


def scene(k: int) -> Scene:
    """Frame ``k`` of every fixture."""
    yy, xx = np.mgrid[0:H, 0:W]
    image = np.zeros((H, W, 3), np.uint8)
    image[..., 2] = 200  # sky
    image[SKY_ROWS:] = (90, 80 + 5 * k, 60)  # floor
    depth = np.full((H, W), 6.0, np.float32) - 0.05 * yy
    depth[:SKY_ROWS] = np.inf
    specs = [("cube", (3 + k, 8, 11 + k, 16)), ("sphere", (16, 6 + k, 26, 16 + k))]
    if k == 2:
        specs.append(("cone", (9, 12, 18, 22)))  # partly behind the cube
    objects = []
    for n, (label, (x0, y0, x1, y1)) in enumerate(specs, start=1):
        inside = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
        if label == "sphere":
            cy, cx, r = (y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2, (x1 - x0) / 2
            inside &= (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        taken = np.zeros_like(inside)
        for o in objects:
            taken |= o.mask
        mask = inside & ~taken  # later objects are behind earlier ones
        ys, xs = np.nonzero(mask)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        image[mask] = (40 * n + 60, 200 - 30 * n, 50 + 20 * k)
        depth[mask] = 3.0 + 0.5 * n
        objects.append(Obj(n, label, box, mask, float(mask.sum() / inside.sum())))
    return Scene(image, objects, depth, light=0.5 + 0.25 * k)


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, optimize=True)


def _colour_map(s: Scene, colour_of: dict[int, tuple[int, ...]], background: tuple[int, ...]) -> np.ndarray:
    out = np.zeros((H, W, 4), np.uint8)
    out[:] = background
    for o in s.objects:
        out[o.mask] = colour_of[o.instance]
    return out


def _instance_colour(o: Obj) -> tuple[int, int, int, int]:
    return (30 * o.instance, 255 - 40 * o.instance, 17 * o.instance, 255)


def write_solo(out: Path) -> None:
    spec = [{"label_id": i, "label_name": n} for n, i in CLASSES.items()]
    definitions = [
        {
            "@type": "type.unity.com/unity.solo.BoundingBox2DAnnotation",
            "id": "bounding box",
            "description": "2-D boxes",
            "spec": spec,
        },
        {
            "@type": "type.unity.com/unity.solo.InstanceSegmentationAnnotation",
            "id": "instance segmentation",
            "description": "instance masks",
            "spec": spec,
        },
        {
            "@type": "type.unity.com/unity.solo.SemanticSegmentationAnnotation",
            "id": "semantic segmentation",
            "description": "semantic masks",
        },
        {"@type": "type.unity.com/unity.solo.DepthAnnotation", "id": "Depth", "description": "depth"},
    ]
    (out).mkdir(parents=True)
    (out / "annotation_definitions.json").write_text(json.dumps({"annotationDefinitions": definitions}, indent=1))
    (out / "metadata.json").write_text(
        json.dumps(
            {
                "perceptionVersion": "1.0.0",
                "totalFrames": 3,
                "scenarioRandomSeed": 539662031,
                "scenarioActiveRandomizers": ["LightRandomizer"],
            }
        )
    )
    import OpenEXR

    for k, (seq, step) in enumerate([(0, 0), (0, 1), (1, 0)]):
        s = scene(k)
        folder = out / f"sequence.{seq}"
        name = lambda what, ext, step=step: f"step{step}.camera{'.' + what if what else ''}.{ext}"  # noqa: E731
        _png(folder / name("", "png"), s.image)
        semantic = _colour_map(s, {o.instance: SEMANTIC_COLOURS[o.label] for o in s.objects}, (0, 0, 0, 255))
        _png(folder / name("semantic segmentation", "png"), semantic)
        _png(
            folder / name("instance segmentation", "png"),
            _colour_map(s, {o.instance: _instance_colour(o) for o in s.objects}, (0, 0, 0, 255)),
        )
        hit = np.isfinite(s.depth)
        r = np.where(hit, s.depth, 0).astype(np.float32)
        rgba = np.stack([r, np.zeros_like(r), np.zeros_like(r), hit.astype(np.float32)], axis=-1)
        OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, {"RGBA": rgba}).write(
            str(folder / name("Depth", "exr"))
        )
        annotations = [
            {
                "@type": "type.unity.com/unity.solo.BoundingBox2DAnnotation",
                "id": "bounding box",
                "sensorId": "camera",
                "values": [
                    {
                        "instanceId": o.instance,
                        "labelId": CLASSES[o.label],
                        "labelName": o.label,
                        "origin": [float(o.box[0]), float(o.box[1])],
                        "dimension": [float(o.box[2] - o.box[0]), float(o.box[3] - o.box[1])],
                    }
                    for o in s.objects
                ],
            },
            {
                "@type": "type.unity.com/unity.solo.SemanticSegmentationAnnotation",
                "id": "semantic segmentation",
                "sensorId": "camera",
                "imageFormat": "Png",
                "dimension": [W, H],
                "filename": name("semantic segmentation", "png"),
                "instances": [{"labelName": o.label, "pixelValue": list(SEMANTIC_COLOURS[o.label])} for o in s.objects],
            },
            {
                "@type": "type.unity.com/unity.solo.InstanceSegmentationAnnotation",
                "id": "instance segmentation",
                "sensorId": "camera",
                "imageFormat": "Png",
                "dimension": [W, H],
                "filename": name("instance segmentation", "png"),
                "instances": [
                    {
                        "instanceId": o.instance,
                        "labelId": CLASSES[o.label],
                        "labelName": o.label,
                        "color": list(_instance_colour(o)),
                    }
                    for o in s.objects
                ],
            },
            {
                "@type": "type.unity.com/unity.solo.DepthAnnotation",
                "id": "Depth",
                "sensorId": "camera",
                "measurementStrategy": "Depth",
                "imageFormat": "Exr",
                "dimension": [W, H],
                "filename": name("Depth", "exr"),
            },
        ]
        frame = {
            "frame": k,
            "sequence": seq,
            "step": step,
            "timestamp": 0.0,
            "captures": [
                {
                    "@type": "type.unity.com/unity.solo.RGBCamera",
                    "id": "camera",
                    "description": "",
                    "position": [0.0, 1.0 + 0.1 * k, -10.0],
                    "rotation": [0.0, 0.0, 0.0, 1.0],
                    "filename": name("", "png"),
                    "imageFormat": "Png",
                    "dimension": [W, H],
                    "projection": "Perspective",
                    "annotations": annotations,
                }
            ],
            "metrics": [
                {"@type": "type.unity.com/unity.solo.GenericMetric", "id": "scenario_iteration", "value": seq},
                {"@type": "type.unity.com/unity.solo.GenericMetric", "id": "light", "value": {"intensity": s.light}},
                {
                    "@type": "type.unity.com/unity.solo.OcclusionMetric",
                    "id": "Occlusion",
                    "values": [
                        {
                            "instanceId": o.instance,
                            "percentVisible": o.visible,
                            "percentInFrame": 1.0,
                            "visibilityInFrame": o.visible,
                        }
                        for o in s.objects
                    ],
                },
            ],
        }
        (folder / f"step{step}.frame_data.json").write_text(json.dumps(frame, indent=1))


def write_blenderproc_hdf5(out: Path) -> None:
    import h5py

    out.mkdir(parents=True)
    for k in range(3):
        s = scene(k)
        instances = np.zeros((H, W), np.int64)
        for o in s.objects:
            instances[o.mask] = o.instance
        attributes = [{"idx": 0, "category_id": 0, "name": "world"}] + [
            {"idx": o.instance, "category_id": CLASSES[o.label], "name": o.label.title()} for o in s.objects
        ]
        distance = np.where(np.isfinite(s.depth), s.depth, 10000.0).astype(np.float32)  # anti-aliased "far"
        with h5py.File(out / f"{k}.hdf5", "w", track_order=False) as f:
            for key, value in (("colors", s.image), ("distance", distance), ("instance_segmaps", instances)):
                f.create_dataset(key, data=value, compression="gzip", track_times=False)
            f.create_dataset("instance_attribute_maps", data=np.bytes_(json.dumps(attributes)), track_times=False)
            f.create_dataset("light_intensity", data=np.float32(s.light), track_times=False)
            f.create_dataset("blender_proc_version", data=np.bytes_("2.8.0"), track_times=False)


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE (column-major run lengths, starting with a background run) as BlenderProc writes it."""
    flat = mask.ravel(order="F").astype(np.uint8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    return {"counts": counts, "size": [H, W]}


def write_blenderproc_coco(out: Path) -> None:
    coco = {
        "info": {"description": "coco_annotations"},
        "licenses": [],
        "categories": [{"id": i, "name": n, "supercategory": "coco_annotations"} for n, i in CLASSES.items()],
        "images": [],
        "annotations": [],
    }
    for k in range(3):
        s = scene(k)
        _png(out / "coco_data" / "images" / f"{k:06d}.png", s.image)
        coco["images"].append({"id": k, "file_name": f"images/{k:06d}.png", "width": W, "height": H})
        for o in s.objects:
            x0, y0, x1, y1 = o.box
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": k,
                    "category_id": CLASSES[o.label],
                    "iscrowd": 0,
                    "area": int(o.mask.sum()),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "segmentation": _uncompressed_rle(o.mask),
                    "width": W,
                    "height": H,
                }
            )
    (out / "coco_data" / "coco_annotations.json").write_text(json.dumps(coco))


def write_replicator(out: Path) -> None:
    out.mkdir(parents=True)
    for k in range(3):
        s = scene(k)
        n = f"{k:04d}"
        _png(out / f"rgb_{n}.png", np.concatenate([s.image, np.full((H, W, 1), 255, np.uint8)], axis=2))
        semantic = _colour_map(s, {o.instance: SEMANTIC_COLOURS[o.label] for o in s.objects}, (0, 0, 0, 0))
        semantic[SKY_ROWS:][semantic[SKY_ROWS:, :, 3] == 0] = (0, 0, 0, 255)  # the floor is unlabeled
        _png(out / f"semantic_segmentation_{n}.png", semantic)
        labels = {"(0, 0, 0, 0)": {"class": "BACKGROUND"}, "(0, 0, 0, 255)": {"class": "UNLABELLED"}}
        labels |= {str(SEMANTIC_COLOURS[o.label]): {"class": o.label} for o in s.objects}
        (out / f"semantic_segmentation_labels_{n}.json").write_text(json.dumps(labels))
        instance = _colour_map(s, {o.instance: _instance_colour(o) for o in s.objects}, (0, 0, 0, 0))
        _png(out / f"instance_segmentation_{n}.png", instance)
        prims = {str(_instance_colour(o)): f"/World/{o.label.title()}_{o.instance}" for o in s.objects}
        (out / f"instance_segmentation_mapping_{n}.json").write_text(json.dumps({"(0, 0, 0, 0)": "BACKGROUND"} | prims))
        semantics = {"(0, 0, 0, 0)": {"class": "BACKGROUND"}} | {
            str(_instance_colour(o)): {"class": o.label} for o in s.objects
        }
        (out / f"instance_segmentation_semantics_mapping_{n}.json").write_text(json.dumps(semantics))
        ids = {name: i for i, name in enumerate(CLASSES)}
        boxes = np.array(
            [(ids[o.label], o.box[0], o.box[1], o.box[2] - 1, o.box[3] - 1, 1.0 - o.visible) for o in s.objects],
            dtype=[
                ("semanticId", "<u4"),
                ("x_min", "<i4"),
                ("y_min", "<i4"),
                ("x_max", "<i4"),
                ("y_max", "<i4"),
                ("occlusionRatio", "<f4"),
            ],
        )
        np.save(out / f"bounding_box_2d_tight_{n}.npy", boxes)
        (out / f"bounding_box_2d_tight_labels_{n}.json").write_text(
            json.dumps({str(i): {"class": name} for name, i in ids.items()})
        )
        (out / f"bounding_box_2d_tight_prim_paths_{n}.json").write_text(
            json.dumps([f"/World/{o.label.title()}_{o.instance}" for o in s.objects])
        )
        np.save(out / f"distance_to_image_plane_{n}.npy", s.depth)
        camera = {
            "cameraFocalLength": 24.0,
            "cameraAperture": [20.955, 15.716],
            "metersPerSceneUnit": 1.0,
            "renderProductResolution": [W, H],
            "cameraModel": "pinhole",
            "light_intensity": s.light,
            "cameraViewTransform": np.eye(4).ravel().tolist(),
        }
        (out / f"camera_params_{n}.json").write_text(json.dumps(camera))


WRITERS = {
    "solo": write_solo,
    "blenderproc_hdf5": write_blenderproc_hdf5,
    "blenderproc_coco": write_blenderproc_coco,
    "replicator": write_replicator,
}


def main() -> None:
    for name, write in WRITERS.items():
        out = HERE / name
        shutil.rmtree(out, ignore_errors=True)
        write(out)


if __name__ == "__main__":
    main()
