"""Shared fixtures: tiny synthetic datasets on disk, written with the real writer."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

import syn2real.cli  # noqa: F401  (imports every family: the registry is full before collection)
from datamodules.format import DatasetInfo
from datamodules.writer import DatasetWriter
from syn2real.batch import Sample


@pytest.fixture(scope="session", autouse=True)
def _render_cache_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Tests (and the commands they start) cache renders in a folder of their own, never in ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SYN2REAL_CACHE_DIR", str(tmp_path_factory.mktemp("render_cache")))
        yield


def make_samples(n: int = 6, *, channels: int = 1, size: int = 8, num_classes: int = 3) -> list[Sample]:
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        image = torch.randint(0, 256, (channels, size, size), generator=g).float() / 255
        out.append(
            Sample(
                image=image,
                label=torch.tensor(i % num_classes),
                mask=(torch.rand(1, size, size, generator=g) > 0.5).float(),
                depth=torch.rand(1, size, size, generator=g),
                id=f"s{i:03d}",
            )
        )
    return out


def write_dataset(
    root: Path,
    samples: list[Sample],
    *,
    classes: list[str] | None = None,
    stage: dict | None = None,
    channels: int = 1,
    size: int = 8,
) -> Path:
    info = DatasetInfo(
        task="classification",
        classes=classes or ["a", "b", "c"],
        channels=channels,
        size=(size, size),
        masks=True,
        depth=True,
        depth_units="relative",
        stage=stage,
        producer={"name": "tests"},
    )
    with DatasetWriter(root, info) as w:
        for s in samples:
            w.add(s, params={"index": s.id})
    return root


def quiet_trainer(root: Path, *, callbacks: list | None = None, **kwargs: object) -> pl.Trainer:
    """A CPU Trainer that logs, checkpoints, prints and validates nothing unless told (``kwargs`` override)."""
    options: dict[str, object] = {
        "accelerator": "cpu",
        "limit_val_batches": 0,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": root,
        "callbacks": callbacks or [],
    }
    return pl.Trainer(**(options | kwargs))


class LossRecorder(pl.Callback):
    """``(epoch, *values)`` of the named logged losses after every training batch (``None`` for one not yet logged)."""

    def __init__(self, *names: str) -> None:
        self.names, self.losses = names, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        m = trainer.callback_metrics
        self.losses.append((trainer.current_epoch, *(m[name].item() if name in m else None for name in self.names)))


def check_resume_reproduces(make_model, make_data, root: Path, *, losses: tuple[str, ...], batches: int = 2) -> None:
    """A two-epoch run that checkpoints after each epoch, against the second epoch resumed from its first checkpoint
    in another random state: the second epoch's named losses are the same (rel 1e-5), batch by batch."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    pl.seed_everything(0)
    straight = LossRecorder(*losses)
    saver = ModelCheckpoint(dirpath=root / "ckpts", filename="{epoch}", save_top_k=-1, every_n_epochs=1)
    options = {"max_epochs": 2, "limit_train_batches": batches, "enable_checkpointing": True}
    quiet_trainer(root / "a", callbacks=[straight, saver], **options).fit(make_model(), make_data())
    torch.manual_seed(123)  # a resumed process does not share the first one's random state
    resumed = LossRecorder(*losses)
    trainer = quiet_trainer(root / "b", callbacks=[resumed], **options)
    trainer.fit(make_model(), make_data(), ckpt_path=root / "ckpts" / "epoch=0.ckpt")
    expected = [loss for loss in straight.losses if loss[0] == 1]
    assert len(resumed.losses) == len(expected) == batches
    for got, want in zip(resumed.losses, expected, strict=True):
        assert [v is None for v in got] == [v is None for v in want]  # the same losses logged so far
        assert [v for v in got if v is not None] == pytest.approx([v for v in want if v is not None], rel=1e-5)


def check_task_refiner_checkpoint(trainer: pl.Trainer, method: str, root: Path, *, num_classes: int) -> bool:
    """A trained method that is both a task model and a refiner (16-px grey tiny runs): its checkpoint records the
    refiner, its forward is the task network, and ``refine_dataset`` keeps every sample's id, label, mask and depth.

    Returns whether the refiner changed any image.
    """
    from datamodules.format import Syn2RealDataset
    from syn2real.export import load_refiner, refine_dataset

    assert "val/target_acc" in trainer.callback_metrics
    ckpt = root / f"{method}.ckpt"
    trainer.save_checkpoint(ckpt)
    refiner, record = load_refiner(ckpt)
    assert record["method"] == method and record["channels"] == 1 and record["size"] == [16, 16]
    assert refiner(torch.rand(2, 1, 16, 16)).shape == (2, num_classes)  # forward is the task network
    raw = write_dataset(root / "raw", make_samples(4, size=16), size=16)
    refine_dataset(ckpt, raw, root / "refined", batch_size=2)
    pairs = list(zip(Syn2RealDataset(raw), Syn2RealDataset(root / "refined"), strict=True))
    for a, b in pairs:
        assert a.id == b.id and torch.equal(a.label, b.label)
        assert torch.equal(a.mask, b.mask) and torch.allclose(a.depth, b.depth)
    return not all(torch.equal(a.image, b.image) for a, b in pairs)


def words(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def tiny_trainer_config(*, checkpoint: dict | None = None, **overrides: object) -> dict:
    """The ``trainer:`` block of a tiny CPU experiment config (1 epoch of 2 batches, 1 val/test batch), keeping
    ``last.ckpt``; ``checkpoint`` adds ModelCheckpoint arguments, ``overrides`` Trainer ones."""
    save = {"save_last": True} | (checkpoint or {})
    return {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 1,
        "limit_train_batches": 2,
        "limit_val_batches": 1,
        "limit_test_batches": 1,
        "enable_model_summary": False,
        "callbacks": [{"class_path": "pytorch_lightning.callbacks.ModelCheckpoint", "init_args": save}],
    } | overrides


def fit_and_save(model: pl.LightningModule, data: pl.LightningDataModule, path: Path, *, steps: int = 2) -> Path:
    """Train ``model`` for ``steps`` steps on ``data`` and save its checkpoint at ``path``."""
    trainer = quiet_trainer(path.parent, max_steps=steps)
    trainer.fit(model, data)
    trainer.save_checkpoint(path)
    return path


def tree_digest(root: Path) -> str:
    """Hash of every file's path, bytes and mtime under root: proves a reader left the folder untouched."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
            h.update(str(p.stat().st_mtime_ns).encode())
    return h.hexdigest()


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "ds", make_samples())
