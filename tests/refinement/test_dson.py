from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from datamodules.data_modules import TaskDataModule
from datamodules.sources import RandomSource
from refinement.dson import DSON, DomainSpecificOptimizedNorm2d
from syn2real.nn import use_domain
from syn2real.tasks import TaskNetworkSpec


def _layer(num_domains: int = 2) -> DomainSpecificOptimizedNorm2d:
    bn = nn.BatchNorm2d(3)
    return DomainSpecificOptimizedNorm2d(bn, num_domains)


def test_mixture_weights_sum_to_one_and_receive_gradients() -> None:
    layer = _layer().train()
    w_mean, w_var = layer.mixture(0)
    torch.testing.assert_close(w_mean, torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(w_var.sum(), torch.tensor(1.0))
    x = torch.randn(4, 3, 5, 5) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    (layer(x) * torch.randn(4, 3, 5, 5)).sum().backward()
    assert layer.mix_mean.grad[0].abs().sum() > 0 and layer.mix_var.grad[0].abs().sum() > 0
    assert layer.mix_mean.grad[1].abs().sum() == 0  # domain 1 was not used


@pytest.mark.parametrize(("logits", "dims"), [([20.0, -20.0], (0, 2, 3)), ([-20.0, 20.0], (2, 3))])
def test_pure_mixtures_reduce_to_batch_or_instance_norm(logits: list[float], dims: tuple[int, ...]) -> None:
    layer = _layer().train()
    with torch.no_grad():
        layer.mix_mean[0] = torch.tensor(logits)
        layer.mix_var[0] = torch.tensor(logits)
    x = torch.randn(4, 3, 5, 5) * 3 + 1
    expected = (x - x.mean(dims, keepdim=True)) / torch.sqrt(x.var(dims, keepdim=True, unbiased=False) + 1e-5)
    torch.testing.assert_close(layer(x), expected, atol=1e-4, rtol=1e-4)


def test_running_statistics_are_per_domain() -> None:
    layer = _layer()
    model = nn.Sequential(layer).train()
    with use_domain(model, 1):
        model(torch.randn(8, 3, 4, 4) + 5)
    assert torch.equal(layer.running_mean[0], torch.zeros(3))
    assert torch.all(layer.running_mean[1] > 0.3)


def test_dson_needs_several_domains(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least two source domains"):
        DSON(num_domains=1)
    dm = TaskDataModule(
        train=[RandomSource(num_classes=3, domain=0), RandomSource(num_classes=3, seed=1, domain=0)],
        proportions=[0.5, 0.5],
        batch_size=4,
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with pytest.raises(ValueError, match=r"domain ids \[0\]"):
        trainer.fit(DSON(network=TaskNetworkSpec(width=4, num_classes=3), num_domains=2), dm)


def test_unseen_domain_inference_averages_the_branch_softmaxes() -> None:
    torch.manual_seed(0)
    model = DSON(network=TaskNetworkSpec(width=4, num_classes=3), num_domains=2).eval()
    with torch.no_grad():
        model.network.features[0][1].weight[1] += 1.0  # make the branches differ
        x = torch.rand(2, 1, 32, 32)
        probs = []
        for d in range(2):
            with use_domain(model.network, d):
                probs.append(model.network(x).softmax(1))
        torch.testing.assert_close(model.task_model(x).exp(), (probs[0] + probs[1]) / 2)
