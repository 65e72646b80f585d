"""CSG: A-pool, InfoNCE, queue and EMA by hand; the objective from its pieces; frozen parts stay frozen."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from datamodules import RandomDataModule
from generalization.backbone import stage_maps
from generalization.csg import CSG
from generalization.csg.parts import (
    KeyQueue,
    Sharpness,
    a_pool,
    augment_batch,
    info_nce,
    momentum_update,
    patches,
    rand_augment,
)
from syn2real.tasks import TaskNetworkSpec
from tests.conftest import quiet_trainer

SPEC = TaskNetworkSpec(arch="efficientnet_lite0", num_classes=3, in_channels=1, pretrained="imagenet-offline")


def _csg(**kwargs: object) -> CSG:
    return CSG(network=SPEC, input_size=32, head_hidden=8, projection_dim=8, queue_size=8, **kwargs)


def test_a_pool_weights_positions_by_their_agreement_with_the_mean() -> None:
    v = torch.tensor([[1.0, 0.0], [3.0, 2.0]]).view(1, 2, 1, 2)  # channels (1, 3) at position 0, (0, 2) at 1
    mean = torch.tensor([0.5, 2.5])
    scores = torch.tensor([1 * 0.5 + 3 * 2.5, 0 * 0.5 + 2 * 2.5])  # ⟨v_ij, v̄⟩ = 8, 5
    a = scores / scores.sum()
    expected = a[0] * torch.tensor([1.0, 3.0]) + a[1] * torch.tensor([0.0, 2.0])
    assert torch.allclose(a_pool(v)[0], expected) and torch.allclose(v.mean(dim=(2, 3))[0], mean)
    other = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).view(1, 2, 1, 2)  # attention from another map: all on position 1
    assert torch.allclose(a_pool(v, other)[0], torch.tensor([0.0, 2.0]))


def test_info_nce_by_hand() -> None:
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[0.6, 0.8]])
    negatives = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    tau = 0.5
    pos, negs = math.exp(0.6 / tau), math.exp(0.0 / tau) + math.exp(-1.0 / tau)
    assert info_nce(q, k, negatives, tau).item() == pytest.approx(-math.log(pos / (pos + negs)), rel=1e-6)


def test_info_nce_is_smallest_when_the_views_are_identical() -> None:
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(4, 16), dim=1)
    negatives = torch.nn.functional.normalize(torch.randn(32, 16), dim=1)
    identical = info_nce(q, q, negatives, 0.07)
    for _ in range(20):  # any other unit positive scores worse
        other = torch.nn.functional.normalize(q + 0.5 * torch.randn(4, 16), dim=1)
        assert info_nce(q, other, negatives, 0.07) > identical
    assert identical < math.log(1 + 32)  # and better than chance among the 33 candidates


def test_queue_is_fifo_and_wraps_around() -> None:
    queue = KeyQueue(size=4, dim=2)
    assert torch.allclose(queue.keys.norm(dim=1), torch.ones(4))  # random unit keys at the start
    first, second = torch.full((3, 2), 1.0), torch.full((3, 2), 2.0)
    queue.push(first)
    queue.push(second)
    assert queue.keys[:, 0].tolist() == [2.0, 2.0, 1.0, 2.0] and int(queue.pointer) == 2


def test_momentum_update_by_hand() -> None:
    target, source = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    with torch.no_grad():
        target.weight.fill_(1.0)
        source.weight.fill_(3.0)
    momentum_update(target, source, 0.75)
    assert target.weight.item() == pytest.approx(0.75 * 1 + 0.25 * 3)


def test_sharpness_blurs_below_one_and_sharpens_above_as_pil() -> None:
    image = np.zeros((3, 3, 1), dtype=np.uint8)
    image[1, 1] = 130  # one bright pixel: PIL's SMOOTH gives the centre (5·130)/13 = 50; the border stays
    smooth = Sharpness(factor=0.0)(image=image)["image"]
    assert smooth[1, 1, 0] == 50 and smooth.sum() == 50
    half = Sharpness(factor=0.5)(image=image)["image"]
    assert half[1, 1, 0] == 90  # 50 + 0.5 · (130 − 50)
    sharp = Sharpness(factor=1.5)(image=image)["image"]
    assert sharp[1, 1, 0] == 170  # 50 + 1.5 · (130 − 50)
    assert np.array_equal(Sharpness(factor=1.0)(image=image)["image"], image)


def test_views_are_augmented_independently_and_stay_images() -> None:
    torch.manual_seed(0)
    images = torch.rand(8, 1, 32, 32)
    transform = rand_augment(6)
    a, b = augment_batch(images, transform), augment_batch(images, transform)
    assert a.shape == images.shape and a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, b)
    plain = _csg(augment_magnitude=0)
    q, k = plain.views(images)
    assert q is k is images


def test_objective_is_task_plus_weighted_infonce_over_stages_from_its_pieces() -> None:
    torch.manual_seed(0)
    method = _csg(contrastive_weight=0.3).train()
    assert method.stages == [3, "final"]
    assert [h[0].in_features for h in method.query_heads] == [112, 1280]  # Lite0 at strides 16 and 32
    q_img, k_img = torch.rand(4, 1, 32, 32), torch.rand(4, 1, 32, 32)
    labels = torch.tensor([0, 1, 2, 0])
    out, keys = method.losses(q_img, k_img, labels)
    net = method.network
    final, q_maps, _ = stage_maps(net.backbone, net.normalize(q_img), method.stages)
    _, att, _ = stage_maps(net.backbone, net.normalize(k_img), method.stages)
    _, k_maps, _ = stage_maps(method.key_encoder, net.normalize(k_img), method.stages)
    total = torch.nn.functional.cross_entropy(net.head(net.pool(final)), labels)
    assert out["loss_task"].item() == pytest.approx(total.item(), rel=1e-5)
    nce = 0.0
    for i in range(2):
        q = torch.nn.functional.normalize(method.query_heads[i](a_pool(q_maps[i])), dim=1)
        k = torch.nn.functional.normalize(method.key_heads[i](a_pool(k_maps[i], att[i])), dim=1)
        assert torch.allclose(k, keys[i], atol=1e-5)
        nce += info_nce(q, k, method.queues[i].keys, 0.07).item()
    assert out["loss_nce"].item() == pytest.approx(nce, rel=1e-5)
    assert out["loss"].item() == pytest.approx(total.item() + 0.3 * nce, rel=1e-5)


def test_training_step_moves_query_side_emas_keys_and_fills_queues(tmp_path: Path) -> None:
    method = _csg(scheduler={"name": "warmup_poly", "warmup_steps": 1}, optimizer={"name": "sgd", "lr": 0.05})
    before = {k: v.clone() for k, v in method.state_dict().items()}
    trainer = quiet_trainer(tmp_path, max_steps=1)
    trainer.fit(method, datamodule=RandomDataModule(num_classes=3, size=32, channels=1, batch_size=4))
    after = method.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert not {k for k in changed if k.startswith("key_encoder.")}  # frozen ImageNet key encoder
    assert not {k for k in changed if "running_" in k or "num_batches" in k}  # BN statistics frozen
    assert {"network.head.0.weight", "query_heads.0.0.weight", "network.backbone.conv_stem.weight"} <= changed
    # the key head moved by EMA toward the query head as it was before the step (equal at the start: no move)
    assert torch.allclose(after["key_heads.1.2.weight"], before["key_heads.1.2.weight"], atol=1e-7)
    for i in range(2):
        assert int(after[f"queues.{i}.pointer"]) == 4  # one batch of keys enqueued per stage
        assert torch.allclose(after[f"queues.{i}.keys"][:4].norm(dim=1), torch.ones(4))
        assert torch.equal(after[f"queues.{i}.keys"][4:], before[f"queues.{i}.keys"][4:])


def test_each_step_moves_the_key_heads_by_ema_of_the_query_heads_before_the_keys(tmp_path: Path) -> None:
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    class Heads(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):  # type: ignore[no-untyped-def]
            seen.append((module.query_heads[0][0].weight.detach().clone(), module.key_heads[0][0].weight.clone()))

    method = _csg(key_momentum=0.9, optimizer={"name": "sgd", "lr": 0.5})
    quiet_trainer(tmp_path, max_steps=2, callbacks=[Heads()]).fit(
        method, datamodule=RandomDataModule(num_classes=3, size=32, channels=1, batch_size=4)
    )
    (q0, k0), (q1, k1) = seen
    assert not torch.allclose(q1, q0)  # the query head trained in step 1
    assert torch.allclose(k1, 0.9 * k0 + 0.1 * q0)  # step 1's EMA, from the query head before its update
    assert torch.allclose(method.key_heads[0][0].weight, 0.9 * k1 + 0.1 * q1)  # step 2's


def test_a_queue_larger_than_the_data_is_clamped_with_a_warning(tmp_path: Path) -> None:
    method = CSG(network=SPEC, input_size=32, head_hidden=8, projection_dim=8, queue_size=100)
    trainer = quiet_trainer(tmp_path, max_steps=1)
    with pytest.warns(UserWarning, match="queue_size 100 exceeds the 16 training images; clamped to 16"):
        trainer.fit(method, datamodule=RandomDataModule(num_classes=3, size=32, channels=1, batch_size=4))
    assert all(q.keys.shape == (16, 8) for q in method.queues)
    trainer.save_checkpoint(tmp_path / "csg.ckpt")
    loaded = CSG.load_from_checkpoint(tmp_path / "csg.ckpt")  # evaluation and export rebuild the clamped queue
    assert all(torch.equal(a.keys, b.keys) for a, b in zip(loaded.queues, method.queues, strict=True))


def test_stages_must_be_given() -> None:
    with pytest.raises(ValueError, match="at least one stage"):
        _csg(stages=[])


SEG = TaskNetworkSpec(
    arch="efficientnet_lite0", num_classes=4, in_channels=3, task="segmentation", pretrained="imagenet-offline"
)


def test_dense_csg_contrasts_patches_of_a_colour_jittered_key_view(tmp_path: Path) -> None:
    torch.manual_seed(0)
    method = CSG(network=SEG, input_size=64, head_hidden=8, projection_dim=8, queue_size=64, chunks=2)
    images, labels = torch.rand(2, 3, 32, 32), torch.randint(0, 4, (2, 32, 32))
    query, key = method.views(images)
    assert query is images and not torch.equal(key, images)  # same pixels, only the colours of the key change
    out, keys = method.losses(query, key, labels)
    assert [k.shape for k in keys] == [(8, 8), (8, 8)]  # 2 images x 2x2 patches per stage
    net = method.network
    _, q_maps, _ = stage_maps(net.backbone, net.normalize(query), method.stages)
    _, att, _ = stage_maps(net.backbone, net.normalize(key), method.stages)
    _, k_maps, _ = stage_maps(method.key_encoder, net.normalize(key), method.stages)
    nce = 0.0
    for i in range(2):
        q = torch.nn.functional.normalize(method.query_heads[i](a_pool(patches(q_maps[i], 2))), dim=1)
        k = torch.nn.functional.normalize(method.key_heads[i](a_pool(patches(k_maps[i], 2), patches(att[i], 2))), dim=1)
        assert torch.allclose(k, keys[i], atol=1e-5)
        nce += info_nce(q, k, method.queues[i].keys, 0.07).item()
    ce = torch.nn.functional.cross_entropy(net(query), labels)
    assert out["loss"].item() == pytest.approx(ce.item() + 0.1 * nce, rel=1e-5)
    big = CSG(network=SEG, input_size=64, head_hidden=8, projection_dim=8, queue_size=100, chunks=2)
    data = RandomDataModule(num_classes=4, size=32, channels=3, task="segmentation", batch_size=2)
    with pytest.warns(UserWarning, match="exceeds the 64 training patches; clamped to 64"):
        quiet_trainer(tmp_path, max_steps=1).fit(big, datamodule=data)
    assert int(big.queues[0].pointer) == 8  # one key per patch enqueued


def test_chunks_that_do_not_divide_a_stage_map_are_refused() -> None:
    with pytest.raises(ValueError, match=r"stage final's map is \(2, 2\) at input_size 64: not divisible"):
        CSG(network=SEG, input_size=64, chunks=4, queue_size=8)
