"""The injected optimizer / scheduler / network specs: what they build, and their plain form in checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from syn2real.optim import OptimizerSpec, SchedulerSpec, configure_optimization
from syn2real.specs import as_spec, plain_hparams
from syn2real.tasks import TaskModule, TaskNetworkSpec


def _params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(3))]


def test_optimizers_are_built_with_every_setting() -> None:
    sgd = OptimizerSpec(name="sgd", lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.01).build(_params())
    assert isinstance(sgd, torch.optim.SGD)
    assert (sgd.defaults["lr"], sgd.defaults["momentum"], sgd.defaults["nesterov"], sgd.defaults["weight_decay"]) == (
        0.1,
        0.5,
        True,
        0.01,
    )
    adam = OptimizerSpec(name="adam", lr=2e-4, betas=(0.5, 0.999)).build(_params())
    assert type(adam) is torch.optim.Adam and adam.defaults["betas"] == (0.5, 0.999)
    assert type(OptimizerSpec().build(_params())) is torch.optim.AdamW


def test_schedules_follow_their_formulas() -> None:
    opt = OptimizerSpec(name="sgd", lr=1.0).build(_params())
    annealed = SchedulerSpec(name="annealed", alpha=10.0, beta=0.75).build(opt, total_steps=10)
    for _ in range(5):
        opt.step()
        annealed.step()
    assert annealed.get_last_lr()[0] == pytest.approx(1 / (1 + 10 * 0.5) ** 0.75)  # μ0 / (1 + α p)^β at p = 0.5
    opt = OptimizerSpec(name="sgd", lr=1.0).build(_params())
    cosine = SchedulerSpec(name="cosine").build(opt, total_steps=4)
    for _ in range(2):
        opt.step()
        cosine.step()
    assert cosine.get_last_lr()[0] == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 4)))
    assert SchedulerSpec(name="linear_decay").interval == "epoch" and SchedulerSpec(name="cosine").interval == "step"
    assert (
        configure_optimization(_params(), OptimizerSpec(), SchedulerSpec(), total_steps=5).__class__.__name__ == "AdamW"
    )  # no scheduler: the optimizer alone
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        OptimizerSpec(name="lion").build(_params())  # type: ignore[arg-type]


def test_specs_round_trip_through_plain_dicts() -> None:
    assert as_spec(TaskNetworkSpec, {"arch": "small_cnn", "width": 8}) == TaskNetworkSpec(width=8)
    assert as_spec(SchedulerSpec, None) == SchedulerSpec()
    with pytest.raises(TypeError, match=r"OptimizerSpec has no key\(s\) \['learning_rate'\]"):
        as_spec(OptimizerSpec, {"learning_rate": 0.1})
    module = TaskModule(network=TaskNetworkSpec(width=4, num_classes=3), optimizer=OptimizerSpec(lr=0.5))
    assert module.hparams["network"] == {**TaskNetworkSpec().__dict__, "width": 4, "num_classes": 3}
    assert module.hparams["optimizer"]["lr"] == 0.5 and module.optimizer_spec.lr == 0.5
    again = TaskModule(**module.hparams)  # what load_from_checkpoint does: dicts back into typed specs
    assert again.network_spec == module.network_spec and again.optimizer_spec == module.optimizer_spec
    plain_hparams(again)  # idempotent
    assert again.hparams["optimizer"]["lr"] == 0.5


def test_lr_in_momentum_sgd_by_hand_across_a_rate_change() -> None:
    from syn2real.optim import LRInMomentumSGD

    w = torch.nn.Parameter(torch.tensor([2.0]))
    opt = OptimizerSpec(name="sgd_lr_in_momentum", lr=0.1, momentum=0.5, weight_decay=0.25).build([w])
    assert isinstance(opt, LRInMomentumSGD)
    w.grad = torch.tensor([1.0])
    opt.step()  # v1 = 0.1·(1 + 0.25·2) = 0.15; w = 1.85
    opt.param_groups[0]["lr"] = 0.2
    w.grad = torch.tensor([1.0])
    opt.step()  # v2 = 0.5·0.15 + 0.2·(1 + 0.25·1.85) = 0.3675; w = 1.4825
    assert w.item() == pytest.approx(1.4825)
    plain = torch.nn.Parameter(torch.tensor([2.0]))  # torch's SGD scales the old momentum by the new rate instead
    sgd = torch.optim.SGD([plain], lr=0.1, momentum=0.5, weight_decay=0.25)
    for lr in (0.1, 0.2):
        sgd.param_groups[0]["lr"] = lr
        plain.grad = torch.tensor([1.0])
        sgd.step()
    assert plain.item() != pytest.approx(w.item())
    with pytest.raises(ValueError, match="Nesterov"):
        OptimizerSpec(name="sgd_lr_in_momentum", nesterov=True).build([w])


def test_warmup_poly_scheduler_per_step() -> None:
    w = torch.nn.Parameter(torch.zeros(1))
    opt = OptimizerSpec(name="sgd", lr=1.0).build([w])
    sched = SchedulerSpec(name="warmup_poly", warmup_steps=10, power=0.9, floor_progress=0.8).build(
        opt, total_steps=100
    )
    rates = []
    for _ in range(100):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[0] == pytest.approx(0.01) and rates[5] == pytest.approx((0.01 + 0.99 * 0.25) * 0.95**0.9)
    assert rates[99] == pytest.approx(0.2**0.9)  # ASG's floor
    assert SchedulerSpec(name="warmup_poly").interval == "step"
