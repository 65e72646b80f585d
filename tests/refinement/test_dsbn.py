from __future__ import annotations

import pytest
import torch
from torch import nn

from refinement.dsbn import DSBN, DomainSpecificBatchNorm, convert_to_dsbn
from syn2real.batch import Batch, DomainBatch
from syn2real.nn import use_domain
from syn2real.tasks import TaskNetworkSpec


def _net() -> nn.Module:
    return convert_to_dsbn(nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)), num_domains=2)


def test_each_domain_keeps_its_own_statistics() -> None:
    net = _net().train()
    with use_domain(net, 1):
        net(torch.randn(8, 1, 4, 4) + 10)
    dsbn = net[1]
    assert isinstance(dsbn, DomainSpecificBatchNorm)
    assert torch.equal(dsbn.branches[0].running_mean, torch.zeros(2))  # source branch untouched
    assert not torch.equal(dsbn.branches[1].running_mean, torch.zeros(2))
    assert dsbn.domain == 0  # routing restored after the block


def test_branches_share_every_other_weight() -> None:
    net = _net()
    names = [n for n, _ in net.named_parameters()]
    assert names == [
        "0.weight",
        "0.bias",
        "1.branches.0.weight",
        "1.branches.0.bias",
        "1.branches.1.weight",
        "1.branches.1.bias",
    ]


def test_unknown_domain_and_bn_free_models_are_refused() -> None:
    with pytest.raises(ValueError, match="domain 2 has no branch"), use_domain(_net(), 2):
        pass
    with pytest.raises(ValueError, match="no BatchNorm"):
        convert_to_dsbn(nn.Linear(2, 2), 2)


def test_training_step_uses_both_branches_and_pseudo_labels() -> None:
    torch.manual_seed(0)
    model = DSBN(network=TaskNetworkSpec(width=4, num_classes=3), discriminator_hidden=8, pseudo_label_threshold=0.0)
    batch = DomainBatch(
        source=Batch(images=torch.rand(4, 1, 32, 32), labels=torch.tensor([0, 1, 2, 0])),
        target=Batch(images=torch.rand(4, 1, 32, 32) + 0.5),
    )
    out = model.losses(batch, p=0.9)
    out["loss"].backward()
    branches = model.network.features[0][1].branches
    assert branches[0].weight.grad is not None and branches[1].weight.grad is not None
    assert out["pseudo_fraction"] == 1.0 and out["loss_pseudo"] > 0
    early = model.losses(batch, p=0.1)  # before pseudo_label_start: no target CE in the total
    torch.testing.assert_close(early["loss"], early["loss_cls"] + 0.1 * early["loss_adv"])


def test_pseudo_labels_come_from_the_target_branch_in_eval_mode() -> None:
    torch.manual_seed(0)
    model = DSBN(network=TaskNetworkSpec(width=4, num_classes=3), discriminator_hidden=8)
    model.network.head[0].p = 0.9  # heavy dropout: train-mode predictions would change from call to call
    model.network.features[0][1].branches[1].running_mean += 1.0  # the two branches now predict differently
    model.train()
    images = torch.rand(16, 1, 32, 32)
    first, second = model.pseudo_labels(images), model.pseudo_labels(images)
    torch.testing.assert_close(first, second)
    model.eval()
    with use_domain(model.network, 1):
        expected = model.network(images).softmax(1).max(1)
    with use_domain(model.network, 0):
        source_branch = model.network(images).softmax(1).max(1)
    assert not torch.allclose(source_branch[0], expected[0]), "the check must tell the branches apart"
    model.train()
    torch.testing.assert_close(first[0], expected[0])
    torch.testing.assert_close(first[1], expected[1])
    assert model.network.training, "the network is back in train mode after labelling"


def test_a_head_with_batchnorm_is_split_by_domain_too() -> None:
    """LeNet's head has BN: the target images' head pass must update the target branch, the source's the source."""
    torch.manual_seed(0)
    model = DSBN(network=TaskNetworkSpec(arch="lenet", width=4, num_classes=3), discriminator_hidden=8)
    model.train()
    batch = DomainBatch(
        source=Batch(images=torch.rand(4, 1, 32, 32), labels=torch.tensor([0, 1, 2, 0])),
        target=Batch(images=torch.rand(4, 1, 32, 32) + 0.5),
    )
    model.losses(batch, p=0.1)
    for name, module in model.network.head.named_children():
        if hasattr(module, "branches"):
            assert [int(b.num_batches_tracked) for b in module.branches] == [1, 1], name
