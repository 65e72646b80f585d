from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from datamodules.data_modules import DomainPairDataModule, RandomDataModule
from datamodules.errors import DatasetError
from datamodules.sources import RandomSource
from refinement.cycada import CyCADA, OutputDiscriminator, plan_stages, semantic_consistency_loss, stage_lr_factor
from refinement.cycada.stages import StageShares
from syn2real.batch import IGNORE_INDEX
from syn2real.losses import NonFiniteLossError
from syn2real.tasks import TaskModule
from tests.conftest import check_resume_reproduces, check_task_refiner_checkpoint, quiet_trainer

NET = {"arch": "small_cnn", "width": 4, "num_classes": 3, "in_channels": 1}
TINY = {"network": NET, "base_channels": 4, "num_blocks": 1, "disc_base_channels": 4, "disc_layers": 1}
TINY |= {"pool_size": 2, "feature_hidden": 8, "feature_gate": 0.0}
EVEN = {"source": 1.0, "pixel": 1.0, "task": 1.0, "feature": 1.0}


def _data(num_classes: int = 3) -> DomainPairDataModule:
    return DomainPairDataModule(
        source=RandomSource(num_samples=32, size=16, seed=0, num_classes=num_classes),
        target=RandomSource(num_samples=32, size=16, seed=1, domain=1, use_labels=False, num_classes=num_classes),
        val=RandomSource(num_samples=4, size=16, seed=2, domain=1, num_classes=num_classes),
        batch_size=4,
    )


def _trainer(tmp_path: Path, **kwargs: object) -> pl.Trainer:
    return quiet_trainer(tmp_path, **({"max_epochs": 1, "limit_train_batches": 4} | kwargs))


class MeanLogits(torch.nn.Module):
    """A frozen stand-in f_S: logits m·(1, 0, −1), m the image mean."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.0, 0.0, -1.0]), requires_grad=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(1, 2, 3))[:, None] * self.w


def _ce(logits: list[float], label: int) -> float:
    return -logits[label] + math.log(sum(math.exp(v) for v in logits))


def test_semantic_consistency_by_hand_with_a_frozen_model() -> None:
    f_s = MeanLogits()
    translated_source = torch.full((1, 1, 2, 2), 0.5, requires_grad=True)  # logits (0.5, 0, −0.5)
    translated_target = torch.full((1, 1, 2, 2), 0.25, requires_grad=True)  # logits (0.25, 0, −0.25)
    target = torch.full((1, 1, 2, 2), 0.8)  # f_S says class 0: the pseudo-label of the translated target image
    source = torch.full((1, 1, 2, 2), 0.9)  # f_S says class 0 (the paper's pseudo-label of the render)
    loss = semantic_consistency_loss(f_s, translated_source, translated_target, torch.tensor([2]), target)
    assert loss.item() == pytest.approx(_ce([0.5, 0.0, -0.5], 2) + _ce([0.25, 0.0, -0.25], 0), rel=1e-6)
    paper = semantic_consistency_loss(f_s, translated_source, translated_target, torch.tensor([2]), target, source)
    assert paper.item() == pytest.approx(_ce([0.5, 0.0, -0.5], 0) + _ce([0.25, 0.0, -0.25], 0), rel=1e-6)
    loss.backward()  # gradients reach the translated images (the generators), never f_S
    assert translated_source.grad is not None and translated_source.grad.abs().sum() > 0
    assert f_s.w.grad is None and torch.equal(f_s.w, torch.tensor([1.0, 0.0, -1.0]))


@pytest.mark.parametrize("labels", ["ground_truth", "pseudo"])
def test_the_semantic_term_trains_both_generators_through_the_frozen_source_model(labels: str) -> None:
    torch.manual_seed(0)
    model = CyCADA(**TINY, semantic_labels=labels, lambda_cycle=0.0, adv_weight_s2t=0.0)
    model.source_model = MeanLogits()  # f_S: class 0 for any image, so ground truth 2 and pseudo-label 0 differ
    a, b, y = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16), torch.tensor([2, 2])
    losses, fake_b, fake_a = model.pixel_losses(a, y, b)
    with torch.no_grad():
        logits_b, logits_a = model.source_model(fake_b).tolist(), model.source_model(fake_a).tolist()
    source_label = 2 if labels == "ground_truth" else 0
    expected = sum(_ce(v, source_label) for v in logits_b) / 2 + sum(_ce(v, 0) for v in logits_a) / 2
    assert losses["loss_g_semantic"].item() == pytest.approx(expected, rel=1e-5)
    model.generator_losses = lambda *args, **kwargs: ({"loss_g": torch.zeros(())}, fake_b, fake_a)  # L_sem alone
    model.pixel_losses(a, y, b)[0]["loss_g"].backward()
    for gen in (model.gen_s2t, model.gen_t2s):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.parameters())
    assert model.source_model.w.grad is None


def test_the_accuracy_gate_averages_over_its_window() -> None:
    model = CyCADA(**(TINY | {"feature_gate": 0.6, "feature_gate_window": 3}))
    opened = [model.gate_open(torch.tensor(acc)) for acc in (0.9, 0.2, 0.5, 0.9, 0.9)]
    assert opened == [True, False, False, False, True]  # running means 0.9, 0.55, 0.533, 0.533, 0.767
    always = CyCADA(**(TINY | {"feature_gate": 0.0}))
    assert always.gate_open(torch.tensor(0.0))


def test_max_steps_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"not trainer\.max_steps"):
        _trainer(tmp_path, max_steps=3).fit(CyCADA(**TINY), _data())


def test_semantic_consistency_per_pixel() -> None:
    torch.manual_seed(0)
    f_s = torch.nn.Conv2d(1, 3, 1).requires_grad_(False)
    translated_source, translated_target, target = torch.rand(3, 2, 1, 4, 4)
    labels = torch.randint(0, 3, (2, 4, 4))
    labels[0, 0, 0] = IGNORE_INDEX  # an ignored pixel counts in neither the sum nor the mean
    loss = semantic_consistency_loss(f_s, translated_source, translated_target, labels, target)

    def pixel_ce(images: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:  # −log softmax at the label, by hand
        log_p = f_s(images).log_softmax(1).permute(0, 2, 3, 1)  # B×H×W×K
        keep = wanted != IGNORE_INDEX
        return -log_p[keep].gather(1, wanted[keep].unsqueeze(1)).mean()

    pseudo = f_s(target).argmax(1)  # f_S's own decision on each real target pixel
    expected = pixel_ce(translated_source, labels) + pixel_ce(translated_target, pseudo)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_output_discriminator_shapes() -> None:
    assert OutputDiscriminator(num_classes=10).forward(torch.rand(4, 10)).shape == (4,)
    seg = OutputDiscriminator(num_classes=5, hidden=8, task="segmentation")
    assert seg(torch.rand(2, 5, 6, 6)).shape == (2, 6, 6)


def test_stage_plan_and_learning_rates() -> None:
    plan = plan_stages("pixel+feature", StageShares(**EVEN), train_source=True, total_batches=8)
    assert [(s.name, s.start, s.end) for s in plan] == [
        ("source", 0, 2),
        ("pixel", 2, 4),
        ("task", 4, 6),
        ("feature", 6, 8),
    ]
    given = plan_stages("pixel", StageShares(pixel=3.0, task=1.0), train_source=False, total_batches=8)
    assert [(s.name, s.start, s.end) for s in given] == [("pixel", 0, 6), ("task", 6, 8)]
    tight = plan_stages("pixel+feature", StageShares(source=100.0), train_source=True, total_batches=4)
    assert [s.end - s.start for s in tight] == [1, 1, 1, 1]  # every stage keeps at least one batch
    with pytest.raises(ValueError, match="variant"):
        plan_stages("pixel-only", StageShares(), train_source=True, total_batches=8)
    with pytest.raises(ValueError, match=r"\['feature'\] must be > 0"):
        plan_stages("feature", StageShares(feature=0.0), train_source=True, total_batches=8)
    with pytest.raises(ValueError, match="train longer"):
        plan_stages("pixel+feature", StageShares(), train_source=True, total_batches=3)
    assert stage_lr_factor("pixel", 0.0) == stage_lr_factor("pixel", 0.5) == 1.0
    assert stage_lr_factor("pixel", 1.0) == 0.0 and stage_lr_factor("pixel", 0.75) == pytest.approx(0.5)
    assert stage_lr_factor("task", 0.0) == 1.0 and stage_lr_factor("task", 1.0) == pytest.approx(0.0)
    assert stage_lr_factor("feature", 0.9) == 1.0


class Snapshots(pl.Callback):
    """After every batch: the stage, and copies of f_S, f_ref, f_T and the other networks."""

    def __init__(self) -> None:
        self.after: list[tuple[str, dict[str, torch.Tensor]]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        state = _tensors(pl_module)
        self.after.append((pl_module.stage_at(int(pl_module.batches_done) - 1).name, state))


def _tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_each_stage_trains_its_own_networks_and_the_frozen_ones_stay_frozen(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CyCADA(**TINY, stages=EVEN)
    snaps = Snapshots()
    trainer = _trainer(tmp_path, limit_train_batches=8, callbacks=[snaps])
    start = _tensors(model)
    trainer.fit(model, _data())
    stages = [name for name, _ in snaps.after]
    assert stages == ["source"] * 2 + ["pixel"] * 2 + ["task"] * 2 + ["feature"] * 2
    states = [start] + [s for _, s in snaps.after]

    def moved(prefix: str, i: int) -> bool:  # did batch i (0-based) change `prefix`'s weights?
        return not _same(_part(states[i], prefix), _part(states[i + 1], prefix))

    for i, stage in enumerate(stages):
        assert moved("network.", i) == (stage in ("source", "task", "feature")), (i, stage)
        assert moved("gen_s2t.", i) == (stage == "pixel") and moved("disc_t.", i) == (stage == "pixel")
        assert moved("feature_discriminator.", i) == (stage == "feature")
    # f_S is the network as the source stage left it, and never moves again (its BN statistics included)
    end_of_source = _part(states[2], "network.")
    for state in states[3:]:
        assert _same(_part(state, "source_model."), end_of_source)
    # f_ref is f_T as the feature stage found it
    for state in states[7:]:
        assert _same(_part(state, "feature_reference."), _part(states[6], "network."))
    assert all(not p.requires_grad for p in [*model.source_model.parameters(), *model.feature_reference.parameters()])
    assert not model.source_model.training and not model.feature_reference.training
    assert int(model.batches_done) == 8


def test_feature_gate_holds_back_the_task_network_until_the_discriminator_is_accurate(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CyCADA(**(TINY | {"feature_gate": 1.01}), variant="feature")  # a gate no accuracy reaches
    snaps = Snapshots()
    _trainer(tmp_path, callbacks=[snaps]).fit(model, _data())
    first_feature = [name for name, _ in snaps.after].index("feature")
    before, after = snaps.after[first_feature - 1][1], snaps.after[-1][1]
    weights = [f"network.{name}" for name, _ in model.network.named_parameters()]
    assert all(torch.equal(before[k], after[k]) for k in weights)  # (its BN statistics see the target batches)
    assert not _same(_part(before, "feature_discriminator."), _part(after, "feature_discriminator."))


def test_a_source_checkpoint_replaces_the_source_stage(tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = TaskModule(network=NET)
    trainer = _trainer(tmp_path / "t", limit_train_batches=2)
    trainer.fit(task, RandomDataModule(num_classes=3, size=16))
    ckpt = tmp_path / "source.ckpt"
    trainer.save_checkpoint(ckpt)
    model = CyCADA(**TINY, variant="pixel", source_checkpoint=str(ckpt))
    snaps = Snapshots()
    _trainer(tmp_path, callbacks=[snaps]).fit(model, _data())
    assert snaps.after[0][0] == "pixel"
    assert _same(_part(model.state_dict(), "source_model."), dict(task.network.state_dict()))


def test_a_source_checkpoint_of_other_classes_or_channels_is_refused_before_training(tmp_path: Path) -> None:
    torch.manual_seed(0)
    for name, net in (("classes", NET | {"num_classes": 5}), ("channels", NET | {"in_channels": 3})):
        task = TaskModule(network=net)
        trainer = _trainer(tmp_path / name, limit_train_batches=1)
        trainer.fit(task, RandomDataModule(num_classes=net["num_classes"], size=16, channels=net["in_channels"]))
        ckpt = tmp_path / f"{name}.ckpt"
        trainer.save_checkpoint(ckpt)
        model = CyCADA(**TINY, source_checkpoint=str(ckpt))
        field = "num_classes" if name == "classes" else "in_channels"
        with pytest.raises(DatasetError, match=rf"{name}\.ckpt.*{field}.*source_checkpoint empty") as err:
            _trainer(tmp_path).fit(model, _data())
        assert int(model.batches_done) == 0, err.value
    wider = TaskModule(network=NET | {"width": 8})
    trainer = _trainer(tmp_path / "w", limit_train_batches=1)
    trainer.fit(wider, RandomDataModule(num_classes=3, size=16))
    trainer.save_checkpoint(tmp_path / "wider.ckpt")
    with pytest.raises(DatasetError, match=r"width 8.*width 4"):
        _trainer(tmp_path).fit(CyCADA(**TINY, source_checkpoint=str(tmp_path / "wider.ckpt")), _data())


def test_checkpoint_exports_the_translation_and_tests_the_task_network(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CyCADA(**TINY, stages=EVEN)
    trainer = _trainer(tmp_path, limit_val_batches=1)
    trainer.fit(model, _data())
    assert check_task_refiner_checkpoint(trainer, "cycada", tmp_path, num_classes=3)  # and the images translated


def test_the_feature_variant_has_no_translation_to_export() -> None:
    with pytest.raises(ValueError, match="'feature' variant"):
        CyCADA(**TINY, variant="feature").refine(torch.rand(1, 1, 16, 16))


def test_non_finite_loss_names_the_loss(tmp_path: Path) -> None:
    model = CyCADA(**TINY, stages=EVEN, lambda_cycle=float("nan"))
    with pytest.raises(NonFiniteLossError, match="train/loss_g"):
        _trainer(tmp_path).fit(model, _data())


def test_resume_from_checkpoint_reproduces_the_next_losses(tmp_path: Path) -> None:
    shares = {"source": 1.0, "pixel": 4.0, "task": 1.0, "feature": 2.0}  # epoch 2 (batches 4-7): pixel, task, feature
    check_resume_reproduces(
        lambda: CyCADA(**TINY, stages=shares),
        _data,
        tmp_path,
        losses=("train/loss_g", "train/loss_task", "train/loss_feature_d"),
        batches=4,
    )


def test_segmentation_runs_every_stage_on_score_maps(tmp_path: Path) -> None:
    from datamodules.data_modules import RandomDomainPairDataModule

    torch.manual_seed(0)
    seg = {"arch": "small_fcn", "width": 4, "num_classes": 3, "in_channels": 1, "task": "segmentation"}
    model = CyCADA(**(TINY | {"network": seg}), stages=EVEN)
    assert isinstance(model.feature_discriminator.net[0], torch.nn.Conv2d)  # a domain logit per pixel
    trainer = _trainer(tmp_path, limit_val_batches=1)
    trainer.fit(model, RandomDomainPairDataModule(num_classes=3, size=16, task="segmentation", num_samples=16))
    metrics = trainer.callback_metrics
    assert {"train/loss_g_semantic", "train/loss_task", "train/loss_feature_d", "val/target_miou"} <= set(metrics)
    assert all(torch.isfinite(v) for v in metrics.values())
