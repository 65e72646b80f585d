"""Simulator-output readers: each fixture round-trips into a syn2real dataset, crops keep their labels, unmapped
classes become 255, ψ is kept, stage runs select by score, and every bad input is named before training."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from datamodules.errors import DatasetError
from datamodules.format import Syn2RealDataset
from datamodules.readers import BlenderProcSource, ReplicatorSource, SimulatorOutputSource, SoloSource
from syn2real.batch import IGNORE_INDEX
from syn2real.cli import main
from tests.conftest import tree_digest
from tests.data.make_fixtures import CLASSES, scene

DATA = Path(__file__).parents[1] / "data"
NAMES = {"1": "cube", "2": "sphere", "3": "cone"}  # BlenderProc HDF5 classes are category ids
# (source, fixture, class mapping to cube/sphere/cone, the frame's light intensity as the format records it)
FORMATS = {
    "solo": (SoloSource, "solo", None, "light.intensity"),
    "blenderproc_hdf5": (BlenderProcSource, "blenderproc_hdf5", NAMES, "light_intensity"),
    "blenderproc_coco": (BlenderProcSource, "blenderproc_coco", None, None),
    "replicator": (ReplicatorSource, "replicator", None, "light_intensity"),
}
FRAME_IDS = {  # frame k's sample id in each format (SOLO: sequence and step; the others: the file's number)
    "solo": ["seq0-step0", "seq0-step1", "seq1-step0"],
    "blenderproc_hdf5": ["frame0", "frame1", "frame2"],
    "blenderproc_coco": ["image0", "image1", "image2"],
    "replicator": ["frame0000", "frame0001", "frame0002"],
}
FROM = {
    "solo": "solo",
    "blenderproc_hdf5": "blenderproc",
    "blenderproc_coco": "blenderproc",
    "replicator": "replicator",
}


def expected_labels(k: int, keep: tuple[str, ...] = ("cube", "sphere", "cone")) -> torch.Tensor:
    """Frame k's label map: background 0, kept classes in their order from 1, others 255."""
    s = scene(k)
    out = np.zeros(s.depth.shape, np.int64)
    for o in s.objects:
        out[o.mask] = keep.index(o.label) + 1 if o.label in keep else IGNORE_INDEX
    return torch.from_numpy(out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_segmentation_round_trips_through_import(fmt: str, tmp_path: Path) -> None:
    _, folder, mapping, light_key = FORMATS[fmt]
    src = DATA / folder
    before = tree_digest(src)
    argv = ["import", "--from", FROM[fmt], str(src), "--out", str(tmp_path / "ds")]
    if mapping:
        (tmp_path / "map.yaml").write_text(json.dumps(mapping))
        argv += ["--class-map", str(tmp_path / "map.yaml")]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    assert tree_digest(src) == before  # the simulator's folder is only read
    ds = Syn2RealDataset(tmp_path / "ds")
    assert ds.classes == ["background", "cube", "sphere", "cone"] and len(ds) == 3
    assert ds.info.producer["name"] == "syn2real.import" and ds.info.masks
    for k in range(3):
        s, sample = scene(k), ds[k]
        assert torch.equal(sample.label, expected_labels(k))
        assert torch.equal(sample.mask[0].bool(), torch.from_numpy(np.any([o.mask for o in s.objects], axis=0)))
        assert torch.allclose(sample.image, torch.from_numpy(s.image).permute(2, 0, 1).float() / 255, atol=1 / 255)
        if fmt == "blenderproc_coco":  # COCO carries no depth
            assert not ds.info.depth
            continue
        want = torch.from_numpy(np.where(np.isfinite(s.depth), s.depth, 0.0)).float()
        assert ds.info.depth and torch.allclose(sample.depth[0], want)  # no hit -> invalid_depth (0)
        assert ds.params(k)[light_key] == pytest.approx(s.light)


@pytest.mark.parametrize("fmt", FORMATS)
def test_crops_keep_their_objects_label_and_pixels(fmt: str) -> None:
    source, folder, mapping, _ = FORMATS[fmt]
    ds = source(root=str(DATA / folder), task="classification", classes=mapping, size=(32, 32), padding=0.0).load()
    assert ds.classes == ["cube", "sphere", "cone"]
    objects = [(k, o) for k in range(3) for o in scene(k).objects]
    assert len(ds) == len(objects) == 7
    for i, (k, o) in enumerate(objects):
        sample = ds[i]
        assert int(sample.label) == ds.classes.index(o.label), sample.id
        assert sample.id == f"{FRAME_IDS[fmt][k]}-obj{o.instance - 1:03d}" and sample.image.shape == (3, 32, 32)
        colour = torch.tensor(scene(k).image[o.mask][0], dtype=torch.float32) / 255
        inside = sample.mask[0] > 0.5
        assert inside.float().mean() > 0.3  # the object fills its own tight crop
        assert torch.allclose(sample.image[:, inside].mean(1), colour, atol=0.02)  # its pixels, its colour


def test_unmapped_classes_become_ignore_and_background_can_be_ignored() -> None:
    ds = ReplicatorSource(root=str(DATA / "replicator"), classes=["cube"]).load()
    assert ds.classes == ["background", "cube"]
    assert torch.equal(ds[2].label, expected_labels(2, keep=("cube",)))
    assert (ds[2].label == IGNORE_INDEX).any()
    ignored = ReplicatorSource(root=str(DATA / "replicator"), classes=["cube"], background=None).load()
    assert ignored.classes == ["cube"] and set(ignored[0].label.unique().tolist()) == {0, IGNORE_INDEX}
    crops = ReplicatorSource(root=str(DATA / "replicator"), task="classification", classes={"sphere": "ball"}).load()
    assert crops.classes == ["ball"] and len(crops) == 3 and crops.labels() == [0, 0, 0]


def test_min_visible_uses_the_recorded_visibility() -> None:
    kwargs = {"root": str(DATA / "replicator"), "task": "classification"}
    partly = [o for k in range(3) for o in scene(k).objects if o.visible < 0.9]
    assert partly  # the fixture has occluded objects
    assert len(ReplicatorSource(**kwargs, min_visible=0.9).load()) == 7 - len(partly)


def test_a_stage_run_selects_by_score_and_imports_as_stage_datasets(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for name in ("round_0", "round_1"):
        shutil.copytree(DATA / "replicator", run / name)
    (run / "stages.yaml").write_text(
        "stages:\n  - {folder: round_0, score: 0.7, parameters: {light: 1.0}}\n  - {folder: round_1, score: 0.4}\n"
    )
    best = ReplicatorSource(root=str(run), stage="best")
    assert [f.name for f, _ in best.stages()] == ["round_0"]
    assert len(ReplicatorSource(root=str(run), stage="all").load()) == 6
    with pytest.raises(SystemExit) as exit_:
        main(["import", "--from", "replicator", str(run), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 0
    from datamodules.sources import Syn2RealSource

    stage = Syn2RealDataset(tmp_path / "out" / "stage_000")
    assert stage.info.stage == {"name": "round_0", "index": 0, "parameters": {"light": 1.0}, "score": 0.7}
    chosen = Syn2RealSource(root=str(tmp_path / "out"), stage="best").load()
    assert chosen.root.name == "stage_000"  # type: ignore[attr-defined]


# ---- bad input: an error naming the file and the fix, before training; the source folder untouched -------------


def _copy(tmp_path: Path, folder: str) -> Path:
    dst = tmp_path / folder
    shutil.copytree(DATA / folder, dst)
    return dst


def _edit_json(path: Path, edit: Callable[[Any], Any]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _refused(source: SimulatorOutputSource, match: str, where: str) -> None:
    root = Path(source.root)
    before = tree_digest(root)
    with pytest.raises(DatasetError, match=match) as err:
        source.load()
    assert where in err.value.where and err.value.fix
    assert tree_digest(root) == before


def test_missing_definitions_are_named(tmp_path: Path) -> None:
    solo = _copy(tmp_path, "solo")
    (solo / "annotation_definitions.json").unlink()
    _refused(SoloSource(root=str(solo)), "is missing", "annotation_definitions.json")
    rep = _copy(tmp_path, "replicator")
    (rep / "semantic_segmentation_labels_0001.json").unlink()
    _refused(ReplicatorSource(root=str(rep)), "no label definitions", "semantic_segmentation_labels_0001.json")
    import h5py

    bp = _copy(tmp_path, "blenderproc_hdf5")
    with h5py.File(bp / "1.hdf5", "a") as f:
        del f["instance_attribute_maps"]
    _refused(BlenderProcSource(root=str(bp)), "no instance_attribute_maps", "1.hdf5")


def test_a_label_colour_with_no_definition_is_named(tmp_path: Path) -> None:
    rep = _copy(tmp_path, "replicator")
    _edit_json(rep / "semantic_segmentation_labels_0000.json", lambda d: d.pop("(255, 0, 0, 255)"))
    _refused(
        ReplicatorSource(root=str(rep)),
        r"label colour \(255, 0, 0, 255\) has no definition",
        "semantic_segmentation_0000.png",
    )
    solo = _copy(tmp_path, "solo")
    frame = solo / "sequence.0" / "step1.frame_data.json"
    _edit_json(frame, lambda d: d["captures"][0]["annotations"][1]["instances"].pop(1))  # sphere's colour
    _refused(SoloSource(root=str(solo)), r"label colour \(0, 255, 0\)", "semantic segmentation.png")


def test_depth_of_another_shape_is_named(tmp_path: Path) -> None:
    rep = _copy(tmp_path, "replicator")
    np.save(rep / "distance_to_image_plane_0002.npy", np.ones((12, 16), np.float32))
    _refused(ReplicatorSource(root=str(rep)), r"depth array is \(12, 16\)", "distance_to_image_plane_0002.npy")
    import h5py

    bp = _copy(tmp_path, "blenderproc_hdf5")
    with h5py.File(bp / "0.hdf5", "a") as f:
        del f["distance"]
        f.create_dataset("distance", data=np.ones((24, 31), np.float32))
    _refused(BlenderProcSource(root=str(bp)), "distance is", "0.hdf5")


def test_a_class_mapping_naming_an_undefined_class_is_named() -> None:
    source = SoloSource(root=str(DATA / "solo"), classes={"cube": "cube", "pyramid": "pyramid"})
    _refused(source, r"names \['pyramid'\].*defines \['cube', 'sphere', 'cone'\]", "annotation_definitions.json")
    _refused(BlenderProcSource(root=str(DATA / "blenderproc_hdf5"), classes=["cube"]), "cube", "0.hdf5")


def test_boxes_outside_the_image_are_named_or_clipped_on_request(tmp_path: Path) -> None:
    rep = _copy(tmp_path, "replicator")
    boxes = np.load(rep / "bounding_box_2d_tight_0001.npy")
    boxes["x_max"][0] = 40  # the image is 32 wide
    np.save(rep / "bounding_box_2d_tight_0001.npy", boxes)
    _refused(ReplicatorSource(root=str(rep), task="classification"), "lies outside the 32×24 image", "rgb_0001.png")
    clipped = ReplicatorSource(root=str(rep), task="classification", clip_boxes=True).load()
    assert len(clipped) == 7


def test_crops_from_boxes_needs_boxes_and_bad_options_fail_early(tmp_path: Path) -> None:
    _refused(
        BlenderProcSource(root=str(DATA / "blenderproc_hdf5"), task="classification", crops_from="boxes"),
        "no 2-D boxes",
        "blenderproc_hdf5",
    )
    _refused(SoloSource(root=str(tmp_path / "nowhere")), "does not exist", "nowhere")
    with pytest.raises(ValueError, match="channels"):
        SoloSource(root=str(DATA / "solo"), channels=2)


def test_import_refuses_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["import", "--from", "solo", str(DATA / "solo"), "--out", str(tmp_path / "o"), "--classes", "pyramid"])
    assert exit_.value.code == 2 and "pyramid" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_every_fixture_class_is_defined_once() -> None:
    assert sorted(CLASSES) == sorted(SoloSource(root=str(DATA / "solo"), task="classification").load().classes)


def test_objects_known_only_by_a_box_leave_the_background_alone(tmp_path: Path) -> None:
    rep = _copy(tmp_path, "replicator")
    for f in [*rep.glob("semantic_segmentation_*"), *rep.glob("bounding_box_2d_tight_prim_paths_*")]:
        f.unlink()  # labels from the instance map; boxes no longer joined to instances
    ds = ReplicatorSource(root=str(rep)).load()
    assert all(torch.equal(ds[k].label, expected_labels(k)) for k in range(3))


def test_category_zero_is_background_and_a_frame_without_segmentation_is_named(tmp_path: Path) -> None:
    import h5py

    bp = _copy(tmp_path, "blenderproc_hdf5")
    with h5py.File(bp / "2.hdf5", "a") as f:  # the cone (instance 3) gets category 0
        attributes = json.loads(f["instance_attribute_maps"][()])
        attributes[3]["category_id"] = 0
        del f["instance_attribute_maps"]
        f.create_dataset("instance_attribute_maps", data=np.bytes_(json.dumps(attributes)))
    two = {"1": "cube", "2": "sphere"}
    ds = BlenderProcSource(root=str(bp), classes=two).load()
    assert torch.equal(
        ds[2].label,
        expected_labels(2, keep=("cube", "sphere")).masked_fill(torch.from_numpy(scene(2).objects[2].mask), 0),
    )
    with h5py.File(bp / "1.hdf5", "a") as f:
        del f["instance_segmaps"], f["instance_attribute_maps"]
    _refused(BlenderProcSource(root=str(bp), classes=two), "no semantic or instance segmentation", "1.hdf5")


def test_replicator_on_time_names_and_malformed_records_are_read_or_named(tmp_path: Path) -> None:
    rep = _copy(tmp_path, "replicator")
    for f in list(rep.iterdir()):
        f.rename(f.with_name(f.name.replace("_0001.", "_1_0001.")))
    assert len(ReplicatorSource(root=str(rep)).load()) == 3
    np.save(rep / "bounding_box_2d_tight_0000.npy", np.zeros(3))  # not the structured box array
    _refused(ReplicatorSource(root=str(rep), task="classification"), "not a BasicWriter box array", "_0000.npy")
    solo = _copy(tmp_path, "solo")
    _edit_json(
        solo / "sequence.1" / "step0.frame_data.json",
        lambda d: (
            d["captures"][0].pop("annotations")
            and d["captures"][0].update(
                annotations=[{"@type": "x.BoundingBox2DAnnotation", "values": [{"labelName": "cube", "instanceId": 9}]}]
            )
        ),
    )
    _refused(SoloSource(root=str(solo), task="classification"), "does not follow the solo schema", "step0.frame_data")


def test_import_refuses_an_output_inside_the_source_and_reimports_a_run(tmp_path: Path) -> None:
    rep = _copy(tmp_path, "replicator")
    before = tree_digest(rep)
    with pytest.raises(SystemExit) as exit_:
        main(["import", "--from", "replicator", str(rep), "--out", str(rep / "converted")])
    assert exit_.value.code == 2 and tree_digest(rep) == before
    run = tmp_path / "run"
    shutil.copytree(rep, run / "r0")
    (run / "stages.yaml").write_text("stages:\n  - {folder: r0, score: 1}\n")
    for extra in ([], ["--overwrite"]):
        with pytest.raises(SystemExit) as exit_:
            main(["import", "--from", "replicator", str(run), "--out", str(tmp_path / "o"), *extra])
        assert exit_.value.code == 0
    assert len(Syn2RealDataset(tmp_path / "o" / "stage_000")) == 3
