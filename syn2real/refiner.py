"""What every pixel-level refiner shares.

``refine()``, the EMA generator, the checkpoint record that ``syn2real refine`` reads (:class:`ExportableGenerator`,
also used by task methods with a generator), and validation by feature distance to real images plus a sample grid
PNG (:class:`RefinerBase`).

A refiner subclass defines ``generator`` (the source→target network) and trains on
:class:`~syn2real.batch.DomainBatch` with a ``DomainPairDataModule`` (source = synthetic, target = real pool).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from syn2real.batch import Batch
from syn2real.data_api import PairedDomains, require_datamodule
from syn2real.distances import FeatureDistances

REFINER_RECORD = "syn2real_refiner"


class ExportableGenerator:
    """A method's generator made exportable with ``syn2real refine``.

    ``refine()``, the EMA copy, the image size seen in training and the checkpoint record.

    Mixed into a ``LightningModule`` (:class:`RefinerBase`, or a task method with a generator such as PixelDA).
    Subclasses define ``generator`` (and override ``image_channels`` when they have no ``in_channels``
    hyperparameter) and call :meth:`setup_refiner` at the end of ``__init__``; ``self.hparams.ema_decay`` (optional)
    turns the EMA on.
    """

    generator: nn.Module

    @property
    def image_channels(self) -> int:
        """Channels of the images the generator takes and returns."""
        return int(self.hparams.in_channels)

    def setup_refiner(self) -> None:
        decay = self.hparams.get("ema_decay")
        self.generator_ema = (
            AveragedModel(self.generator, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True) if decay else None
        )
        self.register_buffer("trained_size", torch.zeros(2, dtype=torch.long))  # H, W seen in training

    @torch.no_grad()
    def refine(self, images: Tensor) -> Tensor:
        """Refine source images (``B×C×H×W`` in [0, 1]) with the EMA generator if there is one."""
        net = self.generator_ema.module if self.generator_ema is not None else self.generator
        was = net.training
        net.eval()
        out = net(images).clamp(0, 1)
        net.train(was)
        return out

    def record_size(self, images: Tensor) -> None:
        if int(self.trained_size[0]) == 0:
            self.trained_size.copy_(torch.tensor(images.shape[-2:]))

    def update_ema(self) -> None:
        if self.generator_ema is not None:
            self.generator_ema.update_parameters(self.generator)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        cls = type(self)
        checkpoint[REFINER_RECORD] = {
            "class_path": f"{cls.__module__}.{cls.__qualname__}",
            "method": cls.__module__.split(".")[1],
            "channels": self.image_channels,
            "size": self.trained_size.tolist(),
        }


class RefinerBase(ExportableGenerator, pl.LightningModule):
    """Shared refiner behaviour; subclasses call :meth:`setup_refiner` at the end of ``__init__``.

    Hyperparameters read from ``self.hparams``: ``in_channels``, ``ema_decay``, ``fd_samples``, ``fd_image_size``.
    """

    def setup_refiner(self) -> None:
        super().setup_refiner()
        self._distances: list[FeatureDistances] = []  # built on first validation; not part of the state

    def forward(self, images: Tensor) -> Tensor:
        return self.refine(images)

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate"):  # validation refines unaugmented source images
            require_datamodule(self, PairedDomains, purpose="validation refines source images")

    # validation: distance of refined source images to real images, and a sample grid
    def _metric(self) -> FeatureDistances:
        if not self._distances:
            self._distances.append(FeatureDistances(image_size=self.hparams.fd_image_size))
        return self._distances[0].to(self.device)

    def on_validation_epoch_start(self) -> None:
        if self.trainer.sanity_checking:
            return
        metric = self._metric()
        metric.reset()
        datamodule = require_datamodule(self, PairedDomains, purpose="validation refines source images")
        loader = datamodule.source_loader(batch_size=64)
        seen, self._grid_source = 0, None
        for batch in loader:
            images = batch.images.to(self.device)
            refined = self.refine(images)
            metric.update(refined, real=False)
            if self._grid_source is None:
                self._grid_source = (images[:8].cpu(), refined[:8].cpu())
            seen += len(images)
            if seen >= self.hparams.fd_samples:
                break
        self._real_seen, self._grid_real = 0, None

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        if self.trainer.sanity_checking or self._real_seen >= self.hparams.fd_samples:
            return
        self._metric().update(batch.images, real=True)
        self._real_seen += len(batch)
        if self._grid_real is None:
            self._grid_real = batch.images[:8].cpu()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        values = self._metric().compute()
        self.log("val/fd_effnet", values["fd_effnet"])
        self.log("val/kid_effnet", values["kid_effnet"])
        self._save_grid()

    def _save_grid(self) -> None:
        if self.trainer.log_dir is None or self._grid_source is None or self._grid_real is None:
            return
        from torchvision.utils import save_image

        source, refined = self._grid_source
        n = min(len(source), len(self._grid_real))
        folder = Path(self.trainer.log_dir) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        # rows: source, refined, real
        save_image(
            torch.cat([source[:n], refined[:n], self._grid_real[:n]]),
            folder / f"epoch{self.current_epoch:03d}.png",
            nrow=n,
            padding=1,
            pad_value=0.5,
        )
