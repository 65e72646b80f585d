from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from datamodules.data_modules import DomainPairDataModule
from datamodules.sources import RandomSource
from refinement.cyclegan import CycleGAN
from syn2real.losses import NonFiniteLossError
from syn2real.optim import SchedulerSpec
from tests.conftest import check_resume_reproduces

TINY = {
    "in_channels": 1,
    "base_channels": 4,
    "num_blocks": 1,
    "disc_base_channels": 4,
    "disc_layers": 1,
    "pool_size": 3,
    "fd_samples": 4,
    "fd_image_size": 32,
}


def _data(shuffle: bool = False) -> DomainPairDataModule:
    return DomainPairDataModule(
        source=RandomSource(num_samples=8, seed=0),
        batch_size=2,
        shuffle=shuffle,
        target=RandomSource(num_samples=8, seed=1, domain=1, use_labels=False),
    )


def _trainer(tmp_path: Path, epochs: int, callbacks: list | None = None, **kwargs: object) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        limit_train_batches=2,
        **kwargs,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=callbacks or [],
    )


def test_generator_loss_weights_identity_at_half_lambda() -> None:
    torch.manual_seed(0)
    model = CycleGAN(**TINY)
    a, b = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    losses, _, _ = model.generator_losses(a, b)
    expected = losses["loss_g_adv"] + 10.0 * losses["loss_g_cycle"] + 5.0 * losses["loss_g_identity"]
    torch.testing.assert_close(losses["loss_g"], expected)


class Constant(torch.nn.Module):
    """A stand-in generator whose output is known: every pixel ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, self.value)


def test_cycle_and_identity_terms_are_in_the_reference_minus_one_to_one_units() -> None:
    # a = 0, b = 1 in [0, 1]; G ≡ 0.25, F ≡ 0.5. On the reference's [-1, 1] scale:
    # cycle    |F(G(a)) − a| = |0 − (−1)| = 1,   |G(F(b)) − b| = |−0.5 − 1| = 1.5   → 2.5
    # identity |G(b) − b|    = |−0.5 − 1| = 1.5, |F(a) − a|    = |0 − (−1)| = 1     → 2.5
    # ([0, 1] units would give 1.25 each: half the paper's weight.)
    model = CycleGAN(**TINY)
    model.gen_s2t, model.gen_t2s = Constant(0.25), Constant(0.5)
    a, b = torch.zeros(2, 1, 16, 16), torch.ones(2, 1, 16, 16)
    losses, _, _ = model.generator_losses(a, b)
    assert losses["loss_g_cycle"].item() == pytest.approx(2.5)
    assert losses["loss_g_identity"].item() == pytest.approx(2.5)
    expected = losses["loss_g_adv"].item() + 10.0 * 2.5 + 5.0 * 2.5
    assert losses["loss_g"].item() == pytest.approx(expected)


@pytest.mark.parametrize("shuffle", [False, True], ids=["fixed-order", "shuffled"])
def test_resume_from_checkpoint_reproduces_the_next_losses(tmp_path: Path, shuffle: bool) -> None:
    model = lambda: CycleGAN(**TINY, ema_decay=0.9)  # noqa: E731
    check_resume_reproduces(model, lambda: _data(shuffle), tmp_path, losses=("train/loss_g", "train/loss_d"))


def test_checkpoint_restores_pools_ema_and_schedulers(tmp_path: Path) -> None:
    model = CycleGAN(
        **TINY, ema_decay=0.9, scheduler=SchedulerSpec(name="linear_decay", constant_epochs=1, decay_epochs=2)
    )
    trainer = _trainer(tmp_path, 2)
    trainer.fit(model, _data(shuffle=True))
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    state = torch.load(tmp_path / "m.ckpt", map_location="cpu", weights_only=False)
    assert state["state_dict"]["pool_t._extra_state"]["count"] == 3
    assert any(k.startswith("generator_ema.") for k in state["state_dict"])
    assert [s["last_epoch"] for s in state["lr_schedulers"]] == [2, 2]
    assert state["syn2real_refiner"]["size"] == [32, 32]
    reloaded = CycleGAN.load_from_checkpoint(tmp_path / "m.ckpt")
    x = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(reloaded.refine(x), model.refine(x))


def test_non_finite_loss_stops_training(tmp_path: Path) -> None:
    model = CycleGAN(**{**TINY, "lambda_cycle": float("nan")})
    with pytest.raises(NonFiniteLossError, match="train/loss_g"):
        _trainer(tmp_path, 1).fit(model, _data())


def test_validation_logs_feature_distances_and_saves_a_sample_grid(tmp_path: Path) -> None:
    data = DomainPairDataModule(
        source=RandomSource(num_samples=8, seed=0),
        batch_size=2,
        target=RandomSource(num_samples=8, seed=1, domain=1, use_labels=False),
        val=RandomSource(num_samples=8, seed=2, domain=1),
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=4,
        num_sanity_val_steps=0,
        logger=pl.loggers.CSVLogger(tmp_path),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(CycleGAN(**TINY), data)
    assert trainer.callback_metrics["val/fd_effnet"] > 0
    assert torch.isfinite(trainer.callback_metrics["val/kid_effnet"])
    grid = Path(trainer.log_dir) / "samples" / "epoch000.png"
    assert grid.is_file()


def _losses_and_grads(model: CycleGAN, a: torch.Tensor, b: torch.Tensor) -> tuple[dict, dict]:
    model.zero_grad()
    losses_g, fake_b, fake_a = model.generator_losses(a, b)
    losses_d = model.discriminator_losses(a, b, fake_b.detach(), fake_a.detach())
    (losses_g["loss_g"] + losses_d["loss_d"]).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in {**losses_g, **losses_d}.items()}, grads


@pytest.mark.parametrize("lambda_identity", [0.5, 0.0])
def test_batched_network_calls_equal_the_per_term_calls(
    monkeypatch: pytest.MonkeyPatch, lambda_identity: float
) -> None:
    torch.manual_seed(0)
    model = CycleGAN(**{**TINY, "pool_size": 0, "lambda_identity": lambda_identity})
    a, b = torch.rand(3, 1, 16, 16), torch.rand(2, 1, 16, 16)  # unequal batches, as a loader's last batch can be
    calls = {"gen": 0, "disc": 0}
    for net, kind in ((model.gen_s2t, "gen"), (model.gen_t2s, "gen"), (model.disc_s, "disc"), (model.disc_t, "disc")):
        net.register_forward_hook(lambda *_, kind=kind: calls.__setitem__(kind, calls[kind] + 1))
    batched, batched_grads = _losses_and_grads(model, a, b)
    assert calls == {"gen": 3, "disc": 4}  # 2 in the generator terms, one per discriminator on real + fake
    monkeypatch.setattr(CycleGAN, "batched_calls", property(lambda self: False))
    calls.update(gen=0, disc=0)
    separate, separate_grads = _losses_and_grads(model, a, b)
    assert calls == {"gen": 6 if lambda_identity else 4, "disc": 6}
    for name in separate:
        torch.testing.assert_close(batched[name], separate[name], rtol=1e-5, atol=1e-6)
    assert batched_grads.keys() == separate_grads.keys() and len(batched_grads) == len(list(model.parameters()))
    for name in separate_grads:
        torch.testing.assert_close(batched_grads[name], separate_grads[name], rtol=1e-4, atol=1e-5)  # summation order


def test_batch_norm_keeps_the_calls_separate_in_the_reference_order() -> None:
    import copy

    torch.manual_seed(0)
    model = CycleGAN(**{**TINY, "norm": "batch"})
    reference = copy.deepcopy(model)
    assert not model.batched_calls
    count = []
    model.gen_s2t.register_forward_hook(lambda *_: count.append(1))
    a, b = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    model.generator_losses(a, b)
    assert len(count) == 3  # G(a), G(F(b)), G(b): one call each, batch statistics of each input alone
    g, f = reference.gen_s2t, reference.gen_t2s
    fake_b, fake_a = g(a), f(b)  # the reference code's order of calls, so running statistics update alike
    f(fake_b), g(fake_a), g(b), f(a)
    for net in ("gen_s2t", "gen_t2s"):
        pairs = zip(getattr(model, net).named_buffers(), getattr(reference, net).buffers(), strict=True)
        for (name, ours), theirs in pairs:
            torch.testing.assert_close(ours, theirs, msg=f"{net}.{name}")


def test_bf16_mixed_precision_trains_every_network_in_fp32_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CycleGAN(**TINY)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = _trainer(tmp_path, 1, precision="bf16-mixed")  # two batches: two G and two D updates
    trainer.fit(model, _data())
    logged = trainer.callback_metrics
    assert all(torch.isfinite(logged[f"train/{k}"]) for k in ("loss_g", "loss_d", "loss_g_cycle"))
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32, name  # autocast computes in bf16; the weights Adam updates stay fp32
        assert not torch.equal(p.detach(), before[name]), f"{name} did not move"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.refine(torch.rand(2, 1, 16, 16)).dtype == torch.bfloat16  # what autocast gives inside a run


def test_the_feature_distance_is_fp32_under_autocast() -> None:
    from syn2real.distances import EffNetFeatures

    net = EffNetFeatures(image_size=32)
    x = torch.rand(2, 3, 32, 32)
    plain = net(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = net(x)
    assert under.dtype == torch.float32 and torch.equal(plain, under)
