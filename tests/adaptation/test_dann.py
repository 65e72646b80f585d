from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from adaptation.dann import DANN
from datamodules.data_modules import RandomDomainPairDataModule
from syn2real.batch import Batch, DomainBatch
from syn2real.losses import domain_adversarial_loss
from syn2real.optim import OptimizerSpec
from syn2real.progress import annealed_lr_factor, dann_lambda
from syn2real.tasks import TaskNetworkSpec


def test_domain_loss_matches_hand_computed_bce() -> None:
    src, tgt = torch.tensor([2.0, -1.0]), torch.tensor([0.5])
    loss, acc = domain_adversarial_loss(src, tgt)
    expected = -(math_log_sigmoid(2.0) + math_log_sigmoid(-1.0) + math_log_sigmoid(-0.5)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert acc.item() == pytest.approx(1 / 3)  # only the first source logit is on the right side


def math_log_sigmoid(x: float) -> float:
    return F.logsigmoid(torch.tensor(x)).item()


def _batch(seed: int = 0) -> DomainBatch:
    g = torch.Generator().manual_seed(seed)
    return DomainBatch(
        source=Batch(images=torch.rand(4, 1, 32, 32, generator=g), labels=torch.tensor([0, 1, 2, 0])),
        target=Batch(images=torch.rand(4, 1, 32, 32, generator=g)),
    )


def _classification_dann() -> tuple[DANN, DomainBatch]:
    torch.manual_seed(0)
    return DANN(network=TaskNetworkSpec(width=4, num_classes=3), discriminator_hidden=8), _batch()


def _per_patch_segmentation_dann() -> DANN:
    torch.manual_seed(0)
    spec = TaskNetworkSpec(arch="small_fcn", task="segmentation", width=4, num_classes=3)
    return DANN(network=spec, discriminator_hidden=8, discriminator_stride=2)


def _per_patch_segmentation_dann_and_batch() -> tuple[DANN, DomainBatch]:
    model = _per_patch_segmentation_dann()
    batch = DomainBatch(
        source=Batch(images=torch.rand(2, 1, 16, 16), labels=torch.randint(3, (2, 16, 16))),
        target=Batch(images=torch.rand(2, 1, 16, 16)),
    )
    return model, batch


@pytest.mark.parametrize("build", [_classification_dann, _per_patch_segmentation_dann_and_batch])
def test_features_get_the_reversed_scaled_domain_gradient(build: Callable[[], tuple[DANN, DomainBatch]]) -> None:
    model, batch = build()
    model.eval()  # no dropout, fixed BN
    head = {id(p) for p in model.network.head_module.parameters()}
    features = [p for p in model.network.parameters() if id(p) not in head]

    def feature_grads(lam: float) -> list[torch.Tensor]:
        model.zero_grad()
        model.losses(batch, lam=lam)["loss_domain"].backward()
        return [p.grad.clone() for p in features]

    plain = feature_grads(-1.0)  # λ = −1: the reversal layer passes the gradient through unchanged
    assert any(g.abs().sum() > 0 for g in plain)
    for got, want in zip(feature_grads(0.4), plain, strict=True):
        torch.testing.assert_close(got, -0.4 * want)


def test_total_loss_is_classification_plus_weighted_domain_loss() -> None:
    torch.manual_seed(0)
    model = DANN(network=TaskNetworkSpec(width=4, num_classes=3), discriminator_hidden=8, lambda_domain=0.3).eval()
    out = model.losses(_batch(), lam=0.5)
    torch.testing.assert_close(out["loss"], out["loss_cls"] + 0.3 * out["loss_domain"])


def test_schedules_follow_training_progress(tmp_path: Path) -> None:
    model = DANN(
        network=TaskNetworkSpec(width=4, num_classes=3),
        discriminator_hidden=8,
        optimizer=OptimizerSpec(name="sgd", lr=0.01),
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=6,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=tmp_path,
    )
    before_net = [p.detach().clone() for p in model.network.parameters()]
    before_disc = [p.detach().clone() for p in model.discriminator.parameters()]
    trainer.fit(model, RandomDomainPairDataModule(num_classes=3, batch_size=4))
    total = trainer.estimated_stepping_batches
    assert total == 6
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(0.01 * annealed_lr_factor(6 / 6))
    assert trainer.callback_metrics["train/lambda"].item() == pytest.approx(dann_lambda(5 / 6), rel=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(before_net, model.network.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(before_disc, model.discriminator.parameters(), strict=True))


def test_segmentation_variant_classifies_every_position() -> None:
    model = DANN(
        network=TaskNetworkSpec(arch="small_fcn", task="segmentation", width=4, num_classes=3), discriminator_hidden=8
    )
    batch = DomainBatch(
        source=Batch(images=torch.rand(2, 1, 16, 16), labels=torch.randint(3, (2, 16, 16))),
        target=Batch(images=torch.rand(2, 1, 16, 16)),
    )
    features = model.network.forward_features(batch.source.images)
    assert model.discriminator(features).shape == (2, 16, 16)
    out = model.losses(batch, lam=1.0)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])


def test_without_the_adversary_the_domain_branch_sends_no_gradient_into_the_features() -> None:
    torch.manual_seed(0)
    model = DANN(network=TaskNetworkSpec(arch="lenet", width=4), lambda_domain=0.0, discriminator_hidden=8)
    batch = DomainBatch(
        source=Batch(images=torch.rand(4, 1, 32, 32), labels=torch.tensor([0, 1, 2, 3])),
        target=Batch(images=torch.rand(4, 1, 32, 32)),
    )
    torch.manual_seed(1)  # the same dropout masks in both passes
    out = model.losses(batch, lam=1.0)
    assert out["loss_domain"].item() > 0  # the branch is computed and logged...
    out["loss"].backward()
    total = {n: p.grad.clone() for n, p in model.network.features.named_parameters()}
    assert all(p.grad is None or not p.grad.any() for p in model.discriminator.parameters())
    model.zero_grad()
    torch.manual_seed(1)  # ...but the features' gradient is the classification loss's alone
    model.losses(batch, lam=1.0)["loss_cls"].backward()
    for name, p in model.network.features.named_parameters():
        torch.testing.assert_close(total[name], p.grad, msg=name)


def test_paper_digits_domain_classifier_is_one_hidden_layer_of_100() -> None:
    model = DANN(
        network=TaskNetworkSpec(arch="lenet"), discriminator_hidden=100, discriminator_layers=1, discriminator_dropout=0
    )
    linears = [m for m in model.discriminator.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(768, 100), (100, 1)]
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.discriminator.modules())
    assert model.network(torch.rand(2, 1, 28, 28)).shape == model.network(torch.rand(2, 1, 32, 32)).shape == (2, 10)


class SourceLoss(pl.Callback):
    """Records the source cross-entropy each step and stops the run after ``stop_after`` steps."""

    def __init__(self, stop_after: int) -> None:
        self.losses: list[float] = []
        self.lambdas: list[float] = []
        self.stop_after = stop_after

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(trainer.callback_metrics["train/loss_cls"].item())
        self.lambdas.append(trainer.callback_metrics["train/lambda"].item())
        trainer.should_stop = trainer.global_step >= self.stop_after


@pytest.mark.timeout(240)
def test_the_digits_recipe_fits_the_source_before_the_adversary_is_at_full_weight(tmp_path: Path) -> None:
    """The shipped recipe (configs/model/digits/dann.yaml) with the schedules of its real run length.

    configs/experiments/dann__digits.yaml trains 15 epochs of 10k renders at batch 128; within the first 150 steps of
    those λ and LR schedules the source cross-entropy falls from 2.3 to about 1.0 (mean of steps 141-150: 1.00 with
    the epoch-seeded data order; bound 1.1) while λ is still ramping (0.56). The paper's
    SGD recipe over a 234-step run ended at 1.18 (issue #10); a λ ramp squeezed into a 100-step run keeps it at 2.3
    (the adversary wins first).
    """
    import yaml

    from datamodules.data_modules import DomainPairDataModule
    from datamodules.sources import DigitsSimulatorSource, RealDigitsSource

    root = Path(__file__).parents[2] / "configs"
    recipe = yaml.safe_load((root / "model/digits/dann.yaml").read_text())["init_args"]
    epochs = yaml.safe_load((root / "experiments/dann__digits.yaml").read_text())["trainer.max_epochs"]
    pl.seed_everything(0)
    model = DANN(**recipe)
    data = DomainPairDataModule(
        source=DigitsSimulatorSource(num_samples=2048, seed=0), target=RealDigitsSource(split="pool"), batch_size=64
    )
    recorder = SourceLoss(stop_after=150)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=epochs * -(-10000 // 128),  # the real run's length: its λ and LR schedules
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[recorder],
    )
    trainer.fit(model, data)
    first, last = sum(recorder.losses[:10]) / 10, sum(recorder.losses[-10:]) / 10
    assert first > 2.0 and last < 1.1, (first, last)
    assert recorder.lambdas[-1] < 0.6  # λ_p at p = 150 / 1185: 0.56, still ramping


def test_strided_segmentation_discriminator_sees_18x18_positions_per_patch_logit() -> None:
    model = _per_patch_segmentation_dann()
    features = torch.rand(1, model.network.feature_dim, 24, 24, requires_grad=True)
    logits = model.discriminator(features)
    assert logits.shape == (1, 6, 6)  # one logit per 4x4 block of positions
    # patch (2, 2) sees positions 1..18 (1 + 3*1 + 3*2 + 2*4 = 18 wide), all inside the map: no padding clips it
    logits[0, 2, 2].backward()
    rows, cols = (features.grad[0].abs().sum(0) > 0).nonzero(as_tuple=True)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (1, 18, 1, 18)


def test_discriminator_stride_other_than_1_or_2_is_refused() -> None:
    with pytest.raises(ValueError, match="stride must be 1"):
        DANN(network=TaskNetworkSpec(arch="small_fcn", task="segmentation", width=4), discriminator_stride=3)
    with pytest.raises(ValueError, match="feature maps only"):
        DANN(network=TaskNetworkSpec(width=4), discriminator_stride=2)
