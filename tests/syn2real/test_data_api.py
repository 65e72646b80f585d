"""Methods check the datamodule interface they need in ``setup``: a wrong datamodule fails before the first step."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from datamodules.data_modules import RandomDataModule, RandomDomainPairDataModule
from refinement.adabn import AdaBN
from refinement.cyclegan import CycleGAN
from refinement.dson import DSON
from syn2real.batch import collate
from syn2real.data_api import PairedDomains, TrainingDomains
from syn2real.tasks import TaskNetworkSpec

TINY = TaskNetworkSpec(width=4, num_classes=3)


def _trainer(tmp_path: Path) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=tmp_path,
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )


def test_the_datamodules_implement_the_protocols() -> None:
    assert isinstance(RandomDomainPairDataModule(num_classes=3), PairedDomains)
    assert isinstance(RandomDataModule(num_classes=3), TrainingDomains)
    assert not isinstance(RandomDataModule(num_classes=3), PairedDomains)


@pytest.mark.parametrize(
    "make",
    [
        lambda: AdaBN(network=TINY, stats_batch_size=4),
        lambda: CycleGAN(
            in_channels=1, base_channels=4, num_blocks=1, disc_base_channels=4, disc_layers=1, pool_size=2
        ),
    ],
    ids=["AdaBN", "CycleGAN"],
)
def test_a_wrong_datamodule_is_named_before_training(make, tmp_path: Path) -> None:
    model = make()
    with pytest.raises(
        TypeError,
        match=r"datamodules\.data_modules\.RandomDataModule has no source_loader, "
        r"target_loader.*PairedDomains",
    ):
        _trainer(tmp_path).fit(model, RandomDataModule(num_classes=3, batch_size=4))


def test_dataloaders_without_a_datamodule_are_refused(tmp_path: Path) -> None:
    loader = DataLoader(RandomDataModule(num_classes=3).train[0].load(), batch_size=4, collate_fn=collate)
    with pytest.raises(TypeError, match="DSON needs a datamodule providing \\['training_domain_ids'\\]"):
        _trainer(tmp_path).fit(DSON(network=TINY, num_domains=2), train_dataloaders=loader)
