from __future__ import annotations

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
    options = {
        "accelerator": "cpu",
        "max_epochs": 1,
        "limit_train_batches": 2,
        "limit_val_batches": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": tmp_path,
    }
    return pl.Trainer(**(options | kwargs))


def test_masked_pairwise_mse_by_hand() -> None:
    x = torch.zeros(1, 1, 2, 2)
    g = torch.tensor([[[[0.5, 0.25], [0.0, 1.0]]]])
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    # d = 2(x − g) on the [-1, 1] scale = (−1, −0.5, 0, −2); masked: (−1, −0.5, 0, 0); k = 4
    # ‖d∘m‖²/k = 1.25/4, (Σ d∘m)²/k² = 2.25/16
    assert masked_pairwise_mse(x, g, mask).item() == pytest.approx(1.25 / 4 - 2.25 / 16)
    # outside the mask anything goes; inside, a uniform shift is free and a shape change is not
    assert masked_pairwise_mse(x, g * mask + 0.7 * (1 - mask), mask).item() == pytest.approx(1.25 / 4 - 2.25 / 16)
    assert masked_pairwise_mse(x, x + 0.3, None).item() == pytest.approx(0.0, abs=1e-7)
    # the mask broadcasts over channels: two identical channels give the same value
    two = masked_pairwise_mse(x.repeat(1, 2, 1, 1), g.repeat(1, 2, 1, 1), mask)
    assert two.item() == pytest.approx(1.25 / 4 - 2.25 / 16)


def test_loss_terms_are_the_weighted_sums_of_the_release() -> None:
    torch.manual_seed(0)
    model = PixelDA(**TINY, domain_weight=0.5, generated_task_weight=2.0, style_weight=0.25, task_in_g_weight=3.0)
    x, labels, real = torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 2, 3]), torch.rand(4, 1, 16, 16)
    model.eval()  # no dropout or D noise: the terms can be recomputed
    with torch.no_grad():
        generated = model.gen(x, torch.zeros(4, 3))
        d = model.discriminator_losses(x, labels, generated, real)
    expected = 0.5 * d["loss_domain"] + d["loss_task_source"] + 2.0 * d["loss_task_generated"]
    torch.testing.assert_close(d["loss_d"], expected)
    g = model.generator_losses(x, labels, None)
    torch.testing.assert_close(g["loss_g"], 0.25 * g["loss_g_style"] + 3.0 * g["loss_g_task"])
    assert g["loss_g_content"].item() == 0.0  # content_weight 0: the term is off


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

    _trainer(tmp_path, limit_train_batches=1, limit_val_batches=0, callbacks=[AfterD()]).fit(model, _data())
    after = snapshots[0]
    for part in ("gen.", "discriminator.", "network."):
        weights = [k for k in before if k.startswith(part) and k.endswith("weight")]
        assert any(not torch.equal(before[k], after[k]) for k in weights), f"{part} did not change"


def test_generator_step_does_not_move_task_or_discriminator() -> None:
    torch.manual_seed(0)
    model = PixelDA(**TINY)
    opt_g = model.optimizer_spec.build(model.gen.parameters())
    frozen = {k: v.detach().clone() for k, v in model.named_parameters() if not k.startswith("gen")}
    loss = model.generator_losses(torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 2, 3]), None)["loss_g"]
    opt_g.zero_grad()
    loss.backward()
    opt_g.step()
    for k, v in model.named_parameters():
        if k in frozen:
            assert torch.equal(frozen[k], v), f"{k} moved in the generator step"


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
