"""The bad-input matrix: each row is an input a user can give, the error class, a fragment of its message (which
names the file and the fix), and proof that the input folder was not modified."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.errors import DatasetError
from datamodules.format import Syn2RealDataset
from syn2real.cli import main
from tests.conftest import make_samples, tree_digest, words, write_dataset


def _json(key: str, value: object) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        data = json.loads((root / "dataset.json").read_text())
        data[key] = value
        (root / "dataset.json").write_text(json.dumps(data))

    return edit


def _depth(array: np.ndarray) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        np.save(root / "depth" / "s001.npy", array)

    return edit


def _truncate(root: Path) -> None:
    png = root / "images" / "s002.png"
    png.write_bytes(png.read_bytes()[:-30])  # header intact, pixel data cut short


def _garbage(root: Path) -> None:
    png = root / "masks" / "s000.png"
    data = bytearray(png.read_bytes())
    at = data.index(b"IDAT") + 6  # past the chunk type: inside the compressed pixel data, the header stays readable
    data[at : at + 20] = b"\xff" * 20
    png.write_bytes(bytes(data))


def _no_label_column(root: Path) -> None:
    table = root / "samples.csv"
    lines = [line.split(",") for line in table.read_text().splitlines()]
    at = lines[0].index("label")
    table.write_text("\n".join(",".join(cells[:at] + cells[at + 1 :]) for cells in lines) + "\n")


DATASET_ROWS = {  # name: (how the dataset is broken, the message fragment)
    "size is a number": (_json("size", 32), "'size' is 32. Fix: write [height, width]"),
    "no label column": (_no_label_column, "row 2 (id 's000'): has no label (the 'label' column is empty or missing)"),
    "truncated image": (_truncate, "images/s002.png: cannot be read as an image"),
    "corrupt mask": (_garbage, "masks/s000.png: cannot be read as an image"),
    "classes empty": (_json("classes", []), "'classes' is []"),
    "num_samples disagrees": (_json("num_samples", 7), "num_samples is 7 but samples.csv has 3 rows"),
    "depth 2xHxW": (_depth(np.zeros((2, 8, 8), np.float32)), "depth/s001.npy: depth map has shape (2, 8, 8)"),
    "depth NaN": (_depth(np.full((8, 8), np.nan, np.float32)), "depth/s001.npy: depth map holds NaN"),
    "depth inf": (_depth(np.full((8, 8), np.inf, np.float32)), "depth/s001.npy: depth map holds NaN, infinite"),
}


@pytest.mark.parametrize("name", list(DATASET_ROWS))
def test_a_broken_dataset_is_refused_at_open_naming_file_and_fix(tmp_path: Path, name: str) -> None:
    root = write_dataset(tmp_path / "ds", make_samples(3))
    edit, fragment = DATASET_ROWS[name]
    edit(root)
    before = tree_digest(root)
    with pytest.raises(DatasetError) as err:
        Syn2RealDataset(root)
    assert type(err.value) is DatasetError and fragment in str(err.value) and "Fix:" in str(err.value)
    assert tree_digest(root) == before


def test_an_image_over_the_decompression_limit_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_dataset(tmp_path / "ds", make_samples(3))
    before = tree_digest(root)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # 8×8 = 64 pixels > 2 × 20: PIL's bomb error
    with pytest.raises(DatasetError, match=r"images/s000\.png: is too large to decode safely.*MAX_IMAGE_PIXELS"):
        Syn2RealDataset(root)
    assert tree_digest(root) == before


CLI_ROWS = {  # name: (argv builder given tmp_path, the message fragment on stderr)
    "text file as --ckpt": (
        lambda t: ["refine", "--ckpt", str(t / "notes.txt"), "--data", str(t / "ds"), "--out", str(t / "o")],
        "notes.txt: cannot be read as a PyTorch checkpoint",
    ),
    "truncated --ckpt": (
        lambda t: ["refine", "--ckpt", str(t / "cut.ckpt"), "--data", str(t / "ds"), "--out", str(t / "o")],
        "cut.ckpt: cannot be read as a PyTorch checkpoint",
    ),
    "simulate --config missing": (
        lambda t: ["simulate", "--out", str(t / "o"), "--config", str(t / "nope.yaml")],
        "nope.yaml: simulator config not found",
    ),
    "simulate --config bad YAML": (
        lambda t: ["simulate", "--out", str(t / "o"), "--config", str(t / "bad.yaml")],
        "bad.yaml: is not valid YAML",
    ),
    "simulate --config a list": (
        lambda t: ["simulate", "--out", str(t / "o"), "--config", str(t / "list.yaml")],
        "list.yaml: holds a list, not a mapping",
    ),
    "simulate --num-samples -5": (
        lambda t: ["simulate", "--out", str(t / "o"), "--num-samples", "-5"],
        "must be a whole number >= 1, got '-5'",
    ),
    "schedules --budgets -5": (
        lambda t: ["bench", "schedules", "--budgets", "-5", "--out", str(t / "o")],
        "budgets are real labeled images per run, 0 or more, got [-5]",
    ),
}


@pytest.mark.parametrize("name", list(CLI_ROWS))
def test_bad_command_line_input_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    write_dataset(tmp_path / "ds", make_samples(3))
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    (tmp_path / "cut.ckpt").write_bytes(b"PK\x03\x04" + b"\x00" * 10)
    (tmp_path / "bad.yaml").write_text("rotation: [0, 1\n")
    (tmp_path / "list.yaml").write_text("- rotation\n")
    before = tree_digest(tmp_path)
    argv, fragment = CLI_ROWS[name]
    with pytest.raises(SystemExit) as exit_:
        main(argv(tmp_path))
    assert exit_.value.code == 2
    assert fragment in words(capsys.readouterr().err)
    assert tree_digest(tmp_path) == before and not (tmp_path / "o").exists()


def test_fit_on_a_broken_dataset_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configs = Path(__file__).parents[2] / "configs"
    root = write_dataset(tmp_path / "ds", make_samples(3))
    _depth(np.full((8, 8), np.nan, np.float32))(root)
    argv = [
        "fit",
        "--config",
        str(configs / "smoke" / "task.yaml"),
        "--data",
        str(configs / "data" / "simulated_folder.yaml"),
    ]
    argv += [f"--data.train.init_args.root={root}", "--model.network.num_classes=3"]
    logs = ["--trainer.logger=pytorch_lightning.loggers.CSVLogger", f"--trainer.logger.save_dir={tmp_path / 'runs'}"]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, *logs])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert not list((tmp_path / "runs").rglob("version_*"))  # the failed run leaves no empty run folder
    assert "depth/s001.npy: depth map holds NaN" in words(err) and "--traceback" in err
    with pytest.raises(DatasetError, match="depth map holds NaN"):  # --traceback: the exception itself
        main([*argv, "--traceback"])


def test_an_empty_class_folder_is_refused(tmp_path: Path) -> None:
    from datamodules.folders import ImageFolderDataset

    for name in ("cat", "dog"):
        (tmp_path / "real" / name).mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "real" / "cat" / "a.png")
    before = tree_digest(tmp_path)
    with pytest.raises(DatasetError, match=r"real/dog: class folder holds no images"):
        ImageFolderDataset(tmp_path / "real")
    assert tree_digest(tmp_path) == before


def test_fit_with_nothing_to_train_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configs = Path(__file__).parents[2] / "configs"
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "fit",
                "--config",
                str(configs / "smoke" / "task.yaml"),
                "--trainer.fast_dev_run=false",
                "--trainer.max_epochs=0",
            ]
        )
    assert exit_.value.code == 2
    assert "trainer.max_epochs: is 0: nothing would be trained" in words(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("--model.network.in_channels=3", "data (train): gives 1-channel images but the network takes 3"),
        ("--model.network.num_classes=2", "data (train): has class index 2 but the network has 2 classes"),
    ],
    ids=["channels", "classes"],
)
def test_a_network_built_for_other_data_is_refused_at_the_first_batch(
    capsys: pytest.CaptureFixture[str], override: str, fragment: str
) -> None:
    configs = Path(__file__).parents[2] / "configs"
    argv = ["fit", "--config", str(configs / "smoke" / "task.yaml"), override]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and fragment in words(capsys.readouterr().err)


def test_unlabeled_training_data_for_a_supervised_method_names_a_sample(capsys: pytest.CaptureFixture[str]) -> None:
    configs = Path(__file__).parents[2] / "configs"
    argv = ["fit", "--config", str(configs / "smoke" / "task.yaml"), "--data", str(configs / "data" / "digits.yaml")]
    argv += ["--data.train.init_args.use_labels=false", "--data.train.init_args.num_samples=8", "--data.batch_size=4"]
    argv += ["--model.network.num_classes=10"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = words(capsys.readouterr().err)
    assert (
        exit_.value.code == 2
        and "data (train), sample 'sim0-" in err
        and "has no label, and TaskModule trains on labels" in err
    )
