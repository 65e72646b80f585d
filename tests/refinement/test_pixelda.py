from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from datamodules.data_modules import DomainPairDataModule
from datamodules.errors import DatasetError
from datamodules.sources import RandomSource
from refinement.pixelda import NoiseGenerator, PixelDA, masked_pairwise_mse
from syn2real.batch import Batch
from syn2real.export import load_refiner
from syn2real.losses import NonFiniteLossError
from tests.conftest import check_resume_reproduces, quiet_trainer

NET = {"arch": "small_cnn", "width": 4, "num_classes": 10, "in_channels": 1}
TINY = {"network": NET, "image_size": 16, "noise_dims": 3, "generator_width": 4, "generator_blocks": 1}
TINY |= {"discriminator_width": 4}


def _data(*, masks: bool = True) -> DomainPairDataModule:
    source = RandomSource(num_samples=8, size=16, seed=0)
    if not masks:  # the same renders without their foreground masks
        dataset = source.load()
        dataset.masks = None
        source.load = lambda transform=None: dataset  # type: ignore[method-assign]
    return DomainPairDataModule(
        source=source,
        target=RandomSource(num_samples=8, size=16, seed=1, domain=1, use_labels=False),
        val=RandomSource(num_samples=4, size=16, seed=2, domain=1),
        batch_size=4,
    )


def _trainer(tmp_path: Path, **kwargs: object) -> pl.Trainer:
    return quiet_trainer(tmp_path, **({"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1} | kwargs))


def test_masked_pairwise_mse_by_hand() -> None:
    x = torch.zeros(1, 1, 2, 2)
    g = torch.tensor([[[[0.5, 0.25], [0.0, 1.0]]]])
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    # d = 2(x − g) on the [-1, 1] scale = (−1, −0.5, 0, −2); masked: (−1, −0.5, 0, 0); k = 4
    # ‖d∘m‖²/k = 1.25/4, (Σ d∘m)²/k² = 2.25/16
    assert masked_pairwise_mse(x, g, mask).item() == pytest.approx(1.25 / 4 - 2.25 / 16)
    # pixels outside the mask are free; unmasked, a uniform shift is free
    assert masked_pairwise_mse(x, g * mask + 0.7 * (1 - mask), mask).item() == pytest.approx(1.25 / 4 - 2.25 / 16)
    assert masked_pairwise_mse(x, x + 0.3, None).item() == pytest.approx(0.0, abs=1e-7)
    # the mask broadcasts over channels: two identical channels give the same value
    two = masked_pairwise_mse(x.repeat(1, 2, 1, 1), g.repeat(1, 2, 1, 1), mask)
    assert two.item() == pytest.approx(1.25 / 4 - 2.25 / 16)


class Brightness(torch.nn.Module):
    """A stand-in discriminator: logit 3 for a bright (real, all-ones) image, −3 for a dark one."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return 3.0 * (2 * images.mean(dim=(1, 2, 3)) - 1)


class Uniform(torch.nn.Module):
    """A stand-in task network: zero logits over 10 classes (cross-entropy ln 10 whatever the label)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.zeros(()))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.scale * images.mean() * torch.ones(len(images), 10)


def test_losses_by_hand_with_stand_in_discriminator_and_task_network() -> None:
    torch.manual_seed(0)
    weights = {"domain_weight": 0.5, "source_task_weight": 0.7, "generated_task_weight": 2.0}
    weights |= {"style_weight": 0.25, "task_in_g_weight": 3.0}
    model = PixelDA(**TINY, **weights)
    model.discriminator, model.network = Brightness(), Uniform()
    x, labels = torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 2, 3])
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731  BCE-with-logits: target 1 → softplus(−v), 0 → softplus(v)
    # D-step: real (ones) → logit 3 with target 1, generated (zeros) → −3 with target 0; T: ln 10 per term
    d = model.discriminator_losses(x, labels, torch.zeros(4, 1, 16, 16), torch.ones(4, 1, 16, 16))
    assert d["loss_domain"].item() == pytest.approx(2 * softplus(-3.0), rel=1e-5)
    assert d["d_acc"].item() == 1.0
    assert d["loss_d"].item() == pytest.approx(0.5 * 2 * softplus(-3.0) + (0.7 + 2.0) * math.log(10), rel=1e-5)
    # G-step, non-saturating: BCE(D(G(x)), 1) = softplus(−D(G(x))); D(G(x)) is known from the generated mean
    torch.manual_seed(1)
    g = model.generator_losses(x, labels, None)
    torch.manual_seed(1)  # the same noise again: the G-step's generated images, recomputed
    with torch.no_grad():
        logits = Brightness()(model.gen(x)).tolist()
    style = g["loss_g_style"].item()
    assert style == pytest.approx(sum(softplus(-v) for v in logits) / len(logits), rel=1e-5)
    assert g["loss_g_task"].item() == pytest.approx(2.0 * math.log(10), rel=1e-5)
    assert g["loss_g"].item() == pytest.approx(0.25 * style + 3.0 * 2.0 * math.log(10), rel=1e-5)
    assert g["loss_g_content"].item() == 0.0  # content_weight 0: the term is off


def test_generator_loss_is_non_saturating_against_a_confident_discriminator() -> None:
    model = PixelDA(**TINY)
    model.discriminator = Brightness()
    with torch.no_grad():
        model.gen.head.weight.zero_()
        model.gen.head.bias.fill_(-20.0)  # G(x) ≈ 0: D says "generated" with logit −3
    g = model.generator_losses(torch.rand(2, 1, 16, 16), torch.tensor([0, 1]), None)
    assert g["loss_g_style"].item() == pytest.approx(math.log1p(math.exp(3.0)), rel=1e-4)  # −log σ(−3), not log(1−σ)


def test_noise_reaches_the_output_and_size_is_checked() -> None:
    torch.manual_seed(0)
    gen = NoiseGenerator(channels=1, image_size=8, noise_dims=3, width=4, num_blocks=1).train()
    x = torch.rand(4, 1, 8, 8)
    z = torch.rand(4, 3) * 2 - 1
    assert not torch.allclose(gen(x, z), gen(x, z.flip(0)))  # the same images with other noise
    gen.eval()
    assert not torch.allclose(gen(x, -torch.ones(4, 3)), gen(x, torch.ones(4, 3)))
    with pytest.raises(ValueError, match="image_size"):
        gen(torch.rand(2, 1, 16, 16))


def test_each_update_moves_only_its_own_networks(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = PixelDA(**TINY, content_weight=1.0)
    before = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    snapshots: list[dict[str, torch.Tensor]] = []

    class AfterD(pl.Callback):  # the D+T update runs first in each step: snapshot after one whole step
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            snapshots.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})

    trainer = _trainer(tmp_path, limit_train_batches=1, limit_val_batches=0, callbacks=[AfterD()])
    trainer.fit(model, _data())
    opt_g, opt_d = ({id(p) for group in o.param_groups for p in group["params"]} for o in trainer.optimizers)
    assert opt_g == {id(p) for p in model.gen.parameters()}  # G alone in the G optimizer
    assert opt_d == {id(p) for p in [*model.discriminator.parameters(), *model.network.parameters()]}  # T with D
    after = snapshots[0]
    for part in ("gen.", "discriminator.", "network."):
        weights = [k for k in before if k.startswith(part) and k.endswith("weight")]
        assert any(not torch.equal(before[k], after[k]) for k in weights), f"{part} did not change"


def test_generator_step_keeps_the_bn_statistics_of_task_and_discriminator() -> None:
    # which parameters each step may move is the optimizers' membership (test_each_update_moves_only_its_own_networks)
    torch.manual_seed(0)
    model = PixelDA(**TINY).train()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    kept = [k for k in before if not k.startswith("gen")]
    assert kept  # T and D have BN layers whose running statistics the G-step must leave alone
    loss = model.generator_losses(torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 2, 3]), None)["loss_g"]
    loss.backward()  # the statistics are kept without touching what autograd saved
    after = model.state_dict()
    for k in kept:
        assert torch.equal(before[k], after[k]), f"{k} was updated by the generator step"
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("gen"))  # G's own ones move


def test_missing_masks_are_an_error_unless_the_fallback_is_asked_for(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="content_without_mask"):
        _trainer(tmp_path).fit(PixelDA(**TINY, content_weight=1.0), _data(masks=False))
    with pytest.warns(UserWarning, match="unmasked"):
        _trainer(tmp_path, limit_val_batches=0).fit(
            PixelDA(**TINY, content_weight=1.0, content_without_mask=True), _data(masks=False)
        )
    _trainer(tmp_path, limit_val_batches=0).fit(PixelDA(**TINY), _data(masks=False))  # no content loss: no mask needed


def test_checkpoint_exports_generated_images_and_tests_the_task_network(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = PixelDA(**TINY)
    trainer = _trainer(tmp_path)
    data = _data()
    trainer.fit(model, data)
    assert "val/target_acc" in trainer.callback_metrics
    ckpt = tmp_path / "pixelda.ckpt"
    trainer.save_checkpoint(ckpt)
    refiner, record = load_refiner(ckpt)
    assert record["method"] == "pixelda" and record["channels"] == 1 and record["size"] == [16, 16]
    refined = refiner.refine(torch.rand(3, 1, 16, 16))
    assert refined.shape == (3, 1, 16, 16) and refined.min() >= 0 and refined.max() <= 1
    batch = Batch(images=torch.rand(2, 1, 16, 16), labels=torch.tensor([1, 2]))
    assert refiner(batch.images).shape == (2, 10)  # forward is the task network


def test_non_finite_loss_names_the_loss(tmp_path: Path) -> None:
    model = PixelDA(**TINY, domain_weight=float("nan"))
    with pytest.raises(NonFiniteLossError, match="train/loss_d"):
        _trainer(tmp_path, limit_val_batches=0).fit(model, _data())


def test_resume_from_checkpoint_reproduces_the_next_losses(tmp_path: Path) -> None:
    check_resume_reproduces(lambda: PixelDA(**TINY), _data, tmp_path, losses=("train/loss_d", "train/loss_g"))


def test_renders_without_labels_are_refused(tmp_path: Path) -> None:
    data = DomainPairDataModule(
        source=RandomSource(num_samples=8, size=16, seed=0, use_labels=False),
        target=RandomSource(num_samples=8, size=16, seed=1, domain=1, use_labels=False),
        batch_size=4,
    )
    with pytest.raises(ValueError, match="labels on the source"):
        _trainer(tmp_path, limit_val_batches=0).fit(PixelDA(**TINY), data)
