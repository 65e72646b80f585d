"""ASG: the proxy-guidance objective by hand, frozen parts stay frozen, layer-group rates, bad backbones."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from datamodules import RandomDataModule
from generalization.asg import ASG
from generalization.asg.module import proxy_guidance_loss
from generalization.asg.policy import LRPolicy, save_policy
from generalization.backbone import ImageNetTaskNetwork, imagenet_classifier
from syn2real.tasks import TaskNetworkSpec
from tests.conftest import quiet_trainer

SPEC = TaskNetworkSpec(arch="efficientnet_lite0", num_classes=3, in_channels=1, pretrained="imagenet-offline")
LITE0_GROUPS = ["conv_stem", *(f"blocks.{i}" for i in range(7)), "task_head"]


def _asg(**kwargs: object) -> ASG:
    return ASG(network=SPEC, input_size=32, head_hidden=8, **kwargs)


def test_proxy_guidance_is_kl_teacher_to_student_batchmean() -> None:
    student = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]])
    teacher = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    expected = 0.0
    for s, t in zip(student, teacher, strict=True):
        p_t, p_s = torch.softmax(t, 0), torch.softmax(s, 0)
        expected += float((p_t * (p_t.log() - p_s.log())).sum())
    assert proxy_guidance_loss(student, teacher).item() == pytest.approx(expected / 2, rel=1e-6)


def test_objective_is_task_plus_weighted_kl_against_the_frozen_teacher() -> None:
    torch.manual_seed(0)
    method = _asg(proxy_weight=0.5).train()
    images, labels = torch.rand(4, 1, 32, 32), torch.tensor([0, 1, 2, 1])
    assert method.losses(images, labels)["loss_proxy"].abs().item() < 1e-6  # the student starts as the teacher
    with torch.no_grad():
        w = method.network.backbone.conv_stem.weight
        w.add_(torch.randn_like(w) * w.std())  # the student drifts from ImageNet
    out = method.losses(images, labels)
    features = method.network.forward_features(images)
    x = method.network.normalize(images)
    kl = proxy_guidance_loss(method.network.backbone.classifier(features), method.teacher(x))
    ce = F.cross_entropy(method.network.head(features), labels)
    assert out["loss_proxy"].item() == pytest.approx(kl.item(), rel=1e-5) and kl.item() > 1e-3
    assert out["loss_task"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(ce.item() + 0.5 * kl.item(), rel=1e-5)


def test_proxy_cap_bounds_the_weighted_kl() -> None:
    method = _asg(proxy_weight=10.0, proxy_cap=0.01).train()
    with torch.no_grad():
        w = method.network.backbone.conv_stem.weight
        w.add_(torch.randn_like(w) * w.std())
    out = method.losses(torch.rand(4, 1, 32, 32), torch.tensor([0, 1, 2, 1]))
    assert 10.0 * out["loss_proxy"].item() > 0.01
    assert (out["loss"] - out["loss_task"]).item() == pytest.approx(0.01, rel=1e-4)


@pytest.mark.parametrize("freeze_bn", [True, False])
def test_training_moves_backbone_and_head_but_not_bn_statistics_imagenet_head_or_teacher(
    tmp_path: Path, freeze_bn: bool
) -> None:
    method = _asg(
        warmup_steps=1, freeze_bn=freeze_bn, optimizer={"name": "sgd_lr_in_momentum", "lr": 0.05, "weight_decay": 5e-4}
    )
    before = {k: v.clone() for k, v in method.state_dict().items()}
    trainer = quiet_trainer(tmp_path, max_epochs=2, limit_train_batches=2, limit_val_batches=1)  # epochs + validation
    trainer.fit(method, datamodule=RandomDataModule(num_classes=3, size=32, channels=1, batch_size=4))
    after = method.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    statistics = {k for k in changed if k.startswith("network.") and ("running_" in k or "num_batches" in k)}
    assert bool(statistics) is not freeze_bn  # frozen: BN keeps ImageNet statistics across epochs and validation
    assert not {k for k in changed if k.startswith("teacher.")}
    assert not {k for k in changed if ".classifier." in k}  # the kept ImageNet head is frozen
    assert "network.head.0.weight" in changed and "network.backbone.conv_stem.weight" in changed
    assert "network.backbone.blocks.6.0.bn1.weight" in changed  # BN affine parameters still train


def test_layer_groups_and_their_rates_without_and_with_a_policy(tmp_path: Path) -> None:
    method = _asg(optimizer={"name": "sgd_lr_in_momentum", "lr": 0.01}, warmup_steps=10, poly_floor_progress=0.8)
    assert method.group_names == LITE0_GROUPS
    groups = method.network.layer_groups()
    trainable = {id(p) for p in method.network.parameters() if p.requires_grad}
    assert {id(p) for ps in groups.values() for p in ps} == trainable  # every trainable tensor in one group
    lrs = method.group_lrs(5, 100)
    warm = 0.01 + 0.99 * 0.25
    assert lrs[-1] == pytest.approx(0.01 * warm * 0.95**0.9)
    assert lrs[0] == pytest.approx(0.1 * lrs[-1])  # backbone at 0.1 of the head
    assert method.group_lrs(100, 100)[-1] == pytest.approx(0.01 * 0.2**0.9)  # the 20% floor

    path = tmp_path / "policy.pt"
    save_policy(LRPolicy(groups=LITE0_GROUPS), path, backbone="efficientnet_lite0")
    guided = _asg(optimizer={"name": "sgd_lr_in_momentum", "lr": 0.01}, warmup_steps=10, policy=str(path))
    guided.controller.multipliers.copy_(torch.linspace(0, 0.8, len(LITE0_GROUPS)))
    factor = (0.01 + 0.99 * 0.25) * 0.95**0.9
    expected = [0.01 * factor * float(m) for m in guided.controller.multipliers]  # no backbone factor: the policy
    assert guided.group_lrs(5, 100) == pytest.approx(expected)


def test_a_deployed_policy_sets_the_optimizer_rates(tmp_path: Path) -> None:
    path = tmp_path / "policy.pt"
    save_policy(LRPolicy(groups=LITE0_GROUPS), path, backbone="efficientnet_lite0")
    method = _asg(policy=str(path), policy_min_window=1, warmup_steps=1)
    trainer = quiet_trainer(tmp_path, max_steps=3)
    trainer.fit(method, datamodule=RandomDataModule(num_classes=3, size=32, channels=1, batch_size=4))
    mults = method.controller.multipliers
    assert not torch.equal(mults, torch.ones_like(mults))  # decisions were taken (11 choices, 9 groups)
    assert all(min(abs(m - 0.1 * i) for i in range(11)) < 1e-6 for m in mults.tolist())
    rates = [g["lr"] for g in trainer.optimizers[0].param_groups]
    assert rates == pytest.approx(method.group_lrs(2, 3))  # the last step's rates = base × schedule × multiplier


def test_policy_for_other_groups_is_refused_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "policy.pt"
    save_policy(LRPolicy(groups=["conv1", "layer1", "task_head"]), path, backbone="resnet18")
    with pytest.raises(ValueError, match=r"conv1.*resnet18.*efficientnet_lite0.*conv_stem"):
        _asg(policy=str(path))
    (tmp_path / "junk.pt").write_bytes(b"")
    torch.save({"weights": 1}, tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="not an ASG policy"):
        _asg(policy=str(tmp_path / "junk.pt"))
    with pytest.raises(FileNotFoundError, match="train-policy"):
        _asg(policy=str(tmp_path / "missing.pt"))


def test_backbone_without_imagenet_weights_says_where_to_put_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(FileNotFoundError, match=r"network\.pretrained: a path to resnet18's ImageNet state dict"):
        imagenet_classifier("resnet18", None)
    with pytest.raises(FileNotFoundError, match=r"offline ImageNet weights exist only for efficientnet_lite0"):
        imagenet_classifier("resnet18", "imagenet-offline")
    with pytest.raises(FileNotFoundError, match=r"missing\.pth not found"):
        imagenet_classifier("resnet18", str(tmp_path / "missing.pth"))
    import timm

    real_create = timm.create_model

    def offline(name: str, pretrained: bool = False, **kw: object) -> torch.nn.Module:
        if pretrained:
            raise OSError("no network")
        return real_create(name, pretrained=False, **kw)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(FileNotFoundError, match=r"timm could not load resnet18.*OSError: no network"):
        imagenet_classifier("resnet18", "hub")
    headless = real_create("resnet18", num_classes=0).state_dict()  # a backbone without its ImageNet head
    torch.save(headless, tmp_path / "headless.pth")
    with pytest.raises(ValueError, match=r"headless.pth does not hold resnet18's whole ImageNet classifier.*fc\."):
        imagenet_classifier("resnet18", str(tmp_path / "headless.pth"))


def test_a_full_checkpoint_path_loads_every_tensor(tmp_path: Path) -> None:
    import timm

    model = timm.create_model("resnet18")
    torch.save({"state_dict": model.state_dict()}, tmp_path / "r18.ckpt")
    loaded = imagenet_classifier("resnet18", str(tmp_path / "r18.ckpt"))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
    network = ImageNetTaskNetwork(
        arch="resnet18", num_classes=3, in_channels=3, pretrained=str(tmp_path / "r18.ckpt"), input_size=32
    )
    groups = network.layer_groups()
    assert list(groups) == ["conv1", "layer1", "layer2", "layer3", "layer4", "task_head"]
    trainable = {id(p) for p in network.parameters() if p.requires_grad}
    assert sorted(id(p) for ps in groups.values() for p in ps) == sorted(trainable)  # each in exactly one group


@torch.no_grad()
def test_the_kept_imagenet_head_recognises_a_real_photo_through_the_task_network() -> None:
    from skimage import data

    network = ImageNetTaskNetwork(
        arch="efficientnet_lite0", num_classes=3, in_channels=3, pretrained="imagenet-offline", input_size=224
    ).eval()
    photo = torch.from_numpy(data.coffee()).permute(2, 0, 1).float().div(255)[None]  # resized inside the network
    assert network.imagenet_logits(network.forward_features(photo)).argmax().item() == 967  # espresso
    grey = torch.rand(2, 1, 32, 32)
    assert network(grey).shape == (2, 3)  # grey 32-px digits: repeated to RGB and upsampled inside


def test_warmup_poly_factor_floor_and_no_floor() -> None:
    from syn2real.progress import warmup_poly_factor

    assert warmup_poly_factor(50, 1000, warmup_steps=100) == pytest.approx((0.01 + 0.99 * 0.25) * 0.95**0.9)
    assert warmup_poly_factor(1000, 1000, floor_progress=1.0) == 0.0
    assert warmup_poly_factor(900, 1000, floor_progress=0.8) == pytest.approx(0.2**0.9)
    assert math.isclose(warmup_poly_factor(0, 10, warmup_steps=0), 1.0)


def test_segmentation_variant_fcn8s_keeps_the_imagenet_head_on_the_pooled_final_map(tmp_path: Path) -> None:
    from generalization.backbone import ImageNetSegmenter

    spec = TaskNetworkSpec(
        arch="efficientnet_lite0", num_classes=4, in_channels=3, task="segmentation", pretrained="imagenet-offline"
    )
    method = ASG(network=spec, input_size=64, head_hidden=8, proxy_weight=0.5)
    net = method.network
    assert isinstance(net, ImageNetSegmenter) and net.skips == [2, 3]  # Lite0's stride-8 and stride-16 levels
    images, labels = torch.rand(2, 3, 48, 48), torch.randint(0, 4, (2, 48, 48))
    labels[0, :5] = 255  # ignored pixels
    with torch.no_grad():
        w = net.backbone.conv_stem.weight
        w.add_(torch.randn_like(w) * w.std())
    out = method.losses(images, labels)
    maps = net.forward_features(images)
    assert [m.shape[-1] for m in maps] == [8, 4, 2]  # strides 8, 16, 32 of the 64-px input
    logits = torch.nn.functional.interpolate(net.head(maps), size=(48, 48), mode="bilinear", align_corners=False)
    assert net(images).shape == (2, 4, 48, 48) and torch.allclose(net(images), logits, atol=1e-6)
    keep = labels != 255
    ce = torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 1)[keep], labels[keep])
    kl = proxy_guidance_loss(net.imagenet_head(net.pool(maps[-1])), method.teacher(net.normalize(images)))
    assert out["loss_task"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(ce.item() + 0.5 * kl.item(), rel=1e-5) and kl.item() > 1e-4
    data = RandomDataModule(num_classes=4, size=32, channels=3, task="segmentation", batch_size=2)
    before = net.head.classify.weight.clone()
    quiet_trainer(tmp_path, max_steps=2).fit(method, datamodule=data)
    assert not torch.equal(before, net.head.classify.weight)


def test_fcn_head_fuses_coarse_to_fine_by_hand() -> None:
    from generalization.backbone import FCNHead

    head = FCNHead(channels=[1, 1, 1], hidden=1, num_classes=1)
    with torch.no_grad():
        for conv in (*head.project, head.classify):
            conv.weight.fill_(1.0)
            conv.bias.zero_()
    maps = [torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2), torch.full((1, 1, 1, 1), 2.0)]
    maps[1][0, 0, 0, 0] = -5.0  # fused below zero there: the ReLU cuts it
    out = head(maps)
    assert out.shape == (1, 1, 4, 4)
    assert out[0, 0, 3, 3].item() == pytest.approx(2.0) and out[0, 0, 0, 0].item() == 0.0
