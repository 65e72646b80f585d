from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from syn2real.batch import Sample, collate
from syn2real.registry import _METHODS, get_method, list_methods, register_method


def test_collate_keeps_optional_fields_optional() -> None:
    b = collate([Sample(image=torch.zeros(1, 2, 2), id="a"), Sample(image=torch.ones(1, 2, 2), domain=1, id="b")])
    assert b.labels is None and b.masks is None and b.domains.tolist() == [0, 1] and b.ids == ["a", "b"]


def test_collate_refuses_half_labeled_batches() -> None:
    with pytest.raises(ValueError, match="some samples in this batch have labels"):
        collate([Sample(image=torch.zeros(1, 2, 2), label=torch.tensor(1)), Sample(image=torch.zeros(1, 2, 2))])


def test_registry_is_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("syn2real.registry._METHODS", dict(_METHODS))
    cls = type("Fake", (pl.LightningModule,), {"__module__": "refinement.fake.module"})
    register_method(cls)
    assert "fake" in list_methods("refinement") and get_method("fake") is cls
    with pytest.raises(ValueError, match="already registered"):
        register_method(type("Other", (pl.LightningModule,), {"__module__": "refinement.fake.other"}))
    with pytest.raises(ValueError, match="must live in one of"):
        register_method(type("Stray", (pl.LightningModule,), {"__module__": "syn2real.tasks"}))
    with pytest.raises(KeyError, match="unknown method 'nope'"):
        get_method("nope")


def test_mixed_batches_drop_modalities_that_only_some_samples_have() -> None:
    synthetic = Sample(image=torch.zeros(1, 2, 2), label=torch.tensor(0), mask=torch.ones(1, 2, 2))
    real = Sample(image=torch.zeros(1, 2, 2), label=torch.tensor(1), domain=1)
    b = collate([synthetic, real])
    assert b.masks is None and b.labels.tolist() == [0, 1]
