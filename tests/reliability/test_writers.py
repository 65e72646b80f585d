"""Writers never lose a user's file: overwrite only replaces a dataset, interrupted writes leave nothing behind,
written folders follow the umask, 16-bit images keep their range."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.errors import DatasetError
from datamodules.format import DatasetInfo, Syn2RealDataset
from datamodules.imageio import read_image
from datamodules.writer import PID_FILE, DatasetWriter
from syn2real.batch import Sample
from syn2real.cli import main
from tests.conftest import make_samples, tree_digest, words, write_dataset

INFO = DatasetInfo(task="classification", classes=["a"], channels=1, size=(8, 8))


def _one(out: Path, **kw: object) -> None:
    with DatasetWriter(out, INFO, **kw) as writer:
        writer.add(Sample(image=torch.zeros(1, 8, 8), label=torch.tensor(0), id="x"))


@pytest.mark.parametrize(
    "command",
    [
        lambda out, data: ["simulate", "--out", str(out), "--num-samples", "3", "--overwrite"],
        lambda out, data: ["refine", "--ckpt", "unused.ckpt", "--data", str(data), "--out", str(out), "--overwrite"],
    ],
    ids=["simulate", "refine"],
)
def test_overwrite_refuses_a_folder_that_is_not_a_dataset(tmp_path: Path, command, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    data = write_dataset(tmp_path / "data", make_samples(2))
    before = tree_digest(out)
    with pytest.raises(SystemExit) as exit_:
        main(command(out, data))
    assert exit_.value.code == 2 and tree_digest(out) == before
    assert "is not a syn2real dataset (no dataset.json), so --overwrite will not replace it" in words(
        capsys.readouterr().err
    )
    with pytest.raises(DatasetError, match="not a syn2real dataset"):
        DatasetWriter(out, INFO, overwrite=True)
    assert (out / "thesis.tex").read_text() == "years of work"


def test_refine_will_not_write_over_its_own_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    data = write_dataset(run / "stage_000", make_samples(2))
    before = tree_digest(run)
    for out in (data, run, data / "refined"):  # the dataset itself, the run folder holding it, a folder inside it
        with pytest.raises(SystemExit) as exit_:
            main(["refine", "--ckpt", "any.ckpt", "--data", str(run), "--out", str(out), "--overwrite"])
        assert exit_.value.code == 2 and "is the dataset being refined" in words(capsys.readouterr().err)
    assert tree_digest(run) == before


def test_written_folders_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        _one(tmp_path / "shared")
    finally:
        os.umask(old)
    assert (tmp_path / "shared").stat().st_mode & 0o777 == 0o755  # not mkdtemp's 0700
    assert not (tmp_path / "shared" / PID_FILE).exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the writer's handler is gone once it closed


SLOW_WRITER = """
import sys, time, torch
from datamodules.format import DatasetInfo
from datamodules.writer import DatasetWriter
from syn2real.batch import Sample
info = DatasetInfo(task="classification", classes=["a"], channels=1, size=(8, 8))
with DatasetWriter(sys.argv[1], info) as w:
    for i in range(100000):
        w.add(Sample(image=torch.zeros(1, 8, 8), label=torch.tensor(0), id=f"s{i}"))
        time.sleep(0.01)
"""


def test_sigterm_removes_the_partial_folder(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(out)], cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".ds.partial-*/images/*.png")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(tmp_path.glob(".ds.partial-*")), "the writer never started"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writers_partial_folder_is_removed_by_the_next_writer(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / ".ds.partial-abc123"
    (stale / "images").mkdir(parents=True)
    host = socket.gethostname()
    (stale / PID_FILE).write_text(f"{host}:{dead.stdout.strip()}")
    foreign = tmp_path / ".ds.partial-notours"  # no owner file: not known to be ours, left alone
    foreign.mkdir()
    live = tmp_path / ".ds.partial-running"  # a writer that still runs (this process)
    live.mkdir()
    (live / PID_FILE).write_text(f"{host}:{os.getpid()}")
    elsewhere = tmp_path / ".ds.partial-otherhost"  # another host's writer on a shared disk: its pids are not ours
    elsewhere.mkdir()
    (elsewhere / PID_FILE).write_text(f"not-{host}:{dead.stdout.strip()}")
    _one(tmp_path / "ds")
    assert not stale.exists() and foreign.exists() and live.exists() and elsewhere.exists()
    assert len(Syn2RealDataset(tmp_path / "ds")) == 1


def test_16_bit_grey_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 256, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "wide.png")
    grey = read_image(tmp_path / "wide.png", channels=1)
    assert grey.shape == (1, 1, 4) and torch.allclose(grey[0, 0], torch.tensor([0, 256, 32768, 65535]) / 65535)
    rgb = read_image(tmp_path / "wide.png", channels=3)
    assert rgb.shape == (3, 1, 4) and torch.equal(rgb[0], rgb[2])


def test_a_run_without_logger_writes_nothing_outside_a_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syn2real.cli import cli_main

    configs = Path(__file__).parents[2] / "configs"
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="results.json is not written"):
        cli_main(["fit", "--config", str(configs / "smoke" / "task.yaml")])  # logger: false
    assert list(tmp_path.iterdir()) == []


def test_adapt_bn_will_not_write_over_its_own_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"weights")
    with pytest.raises(SystemExit) as exit_:
        main(["adapt-bn", "--ckpt", str(ckpt), "--data", "digits-pool", "--out", str(ckpt), "--overwrite"])
    assert exit_.value.code == 2 and "is the checkpoint being adapted" in words(capsys.readouterr().err)
    assert ckpt.read_bytes() == b"weights"


def test_lightning_reaches_every_training_samplers_epoch() -> None:
    """The datamodules' own training loaders (mixture, plain, domain pair) reshuffle when Lightning sets the epoch."""
    from lightning_fabric.utilities.data import _set_sampler_epoch

    from datamodules import RandomDataModule, RandomDomainPairDataModule, RandomSource, TaskDataModule

    mixed = TaskDataModule(train=[RandomSource(num_samples=8), RandomSource(num_samples=8, seed=1)], batch_size=2)
    plain, pair = RandomDataModule(num_samples=8, batch_size=2), RandomDomainPairDataModule(num_samples=8, batch_size=2)
    for dm in (mixed, plain, pair):
        dm.setup("fit")
    loaders = [mixed.train_dataloader(), plain.train_dataloader(), *pair.train_dataloader().flattened]
    samplers = [loaders[0].batch_sampler, *(loader.sampler for loader in loaders[1:])]
    orders = [[batch.ids for batch in loader] for loader in loaders]
    for loader in loaders:
        _set_sampler_epoch(loader, 1)  # what Lightning's fit loop calls before each epoch
    assert [sampler.epoch for sampler in samplers] == [1, 1, 1, 1]
    assert all([batch.ids for batch in loader] != order for loader, order in zip(loaders, orders, strict=True))


def _fail_saving(monkeypatch: pytest.MonkeyPatch, name: str, error: OSError) -> None:
    """Make the writer's PNG save of the file ``name`` raise ``error`` (every other file is written)."""
    import datamodules.writer as writer_module

    real_save = writer_module._save_png

    def failing(path: Path, array: np.ndarray) -> None:
        if path.name == name:
            raise error
        real_save(path, array)

    monkeypatch.setattr(writer_module, "_save_png", failing)


def test_a_failed_write_on_a_writer_thread_raises_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_saving(monkeypatch, "0005.png", OSError(28, "No space left on device"))
    with pytest.raises(OSError, match="No space left"), DatasetWriter(tmp_path / "out", INFO, workers=2) as writer:
        writer.add_batch(ids=[f"{i:04d}" for i in range(8)], images=torch.rand(8, 1, 8, 8), labels=torch.zeros(8))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*partial*"))


def test_a_failed_write_surfaces_at_a_later_batch_while_memory_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_saving(monkeypatch, "b0-3.png", OSError(5, "Input/output error"))
    batches = 0
    with pytest.raises(OSError, match="Input/output"), DatasetWriter(tmp_path / "out", INFO, workers=2) as writer:
        for batch in range(50):
            writer.add_batch(ids=[f"b{batch}-{i}" for i in range(8)], images=torch.rand(8, 1, 8, 8), labels=[0] * 8)
            batches += 1
            assert len(writer._pending) <= 2 * writer.workers  # queued writes are bounded by batches
    assert batches < 50  # raised while writing, not only when the writer closed
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*partial*"))


def test_the_caller_failing_with_writes_in_flight_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), DatasetWriter(tmp_path / "out", INFO, workers=3) as writer:
        for batch in range(6):
            writer.add_batch(ids=[f"b{batch}-{i}" for i in range(16)], images=torch.rand(16, 1, 8, 8), labels=[0] * 16)
        raise KeyboardInterrupt
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*partial*"))


def test_threaded_writes_keep_what_the_batch_held_when_it_was_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    info = DatasetInfo(task="classification", classes=["a"], channels=1, size=(8, 8), depth=True)
    depth = torch.rand(4, 1, 8, 8)
    kept = depth.clone()
    reused, real_save = threading.Event(), np.save

    def save_after_reuse(
        path: Path, array: np.ndarray
    ) -> None:  # the write runs only once the caller reused its tensor
        reused.wait(timeout=10)
        real_save(path, array)

    monkeypatch.setattr("datamodules.writer.np.save", save_after_reuse)
    with DatasetWriter(tmp_path / "out", info, workers=2) as writer:
        writer.add_batch(ids=list("abcd"), images=torch.rand(4, 1, 8, 8), labels=[0] * 4, depth=depth)
        depth.zero_()  # the caller reuses its buffer at once
        reused.set()
    for k, sid in enumerate("abcd"):
        assert np.array_equal(np.load(tmp_path / "out" / "depth" / f"{sid}.npy"), kept[k, 0].numpy())
