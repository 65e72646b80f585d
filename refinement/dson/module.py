"""DSON: Learning to Optimize Domain Specific Normalization for Domain Generalization.

Seo, Suh, Kim, Kim, Han, Han, ECCV 2020, arXiv:1907.04275.

Multi-source domain generalization: no target data. Each BN layer becomes a per-domain mixture of batch and
instance normalization (:class:`~refinement.dson.norm.DomainSpecificOptimizedNorm2d`) with per-domain γ/β and
learned mixture weights; everything else is shared. Each training batch holds samples of every source domain
(e.g. several simulator settings ψ or stages); each domain's sub-batch is forwarded through its own branch and
the loss is the mean of the per-domain cross-entropies.

Inference on an unseen (real) domain: the image goes through every source branch (each with its running batch
statistics, its γ/β and its mixture, plus the image's own instance statistics) and the softmax outputs are
averaged. No public official code was found; the softmax parametrisation of the mixture follows a third-party
re-implementation (see ``methods/adaptation.md`` §1.4).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from refinement.dson.norm import convert_to_dson
from syn2real.batch import Batch
from syn2real.data_api import TrainingDomains, require_datamodule
from syn2real.losses import check_finite, task_loss
from syn2real.nn import use_domain
from syn2real.optim import OptimizerSpec, SchedulerSpec
from syn2real.registry import register_method
from syn2real.tasks import TaskEvaluation, TaskNetwork, TaskNetworkSpec


class DomainEnsemble(nn.Module):
    """Average the softmax of every domain branch; returns log-probabilities (usable as logits)."""

    def __init__(self, network: TaskNetwork, num_domains: int) -> None:
        super().__init__()
        self.network, self.num_domains = network, num_domains

    def forward(self, images: Tensor) -> Tensor:
        probs = []
        for d in range(self.num_domains):
            with use_domain(self.network, d):
                probs.append(self.network(images).softmax(1))
        return torch.stack(probs).mean(0).clamp_min(1e-12).log()


@register_method
class DSON(TaskEvaluation):
    """Domain-specific optimized normalization, trained on several labeled source domains.

    Args:
        network: the task network (its ``BatchNorm2d`` layers are replaced; pretrained BN initialises every domain).
        num_domains: number of source domains; the data's domain ids must be ``0..num_domains-1``.
        optimizer: optimizer.
        scheduler: LR schedule.
    """

    def __init__(
        self,
        *,
        network: TaskNetworkSpec = TaskNetworkSpec(),
        num_domains: int = 3,
        optimizer: OptimizerSpec = OptimizerSpec(name="adamw", lr=1e-3),
        scheduler: SchedulerSpec = SchedulerSpec(name="cosine"),
    ) -> None:
        super().__init__()
        if num_domains < 2:
            raise ValueError(
                f"DSON needs at least two source domains (num_domains={num_domains}); with one "
                "domain train a TaskModule, or split your synthetic data by simulator setting/stage"
            )
        self.save_hyperparameters()
        spec = self.setup_task(network=network, optimizer=optimizer, scheduler=scheduler)
        self.network: TaskNetwork = convert_to_dson(spec.build(), num_domains)  # type: ignore[assignment]

    @property
    def task_model(self) -> nn.Module:
        return DomainEnsemble(self.network, self.hparams.num_domains)

    def setup(self, stage: str) -> None:
        """Refuse data with other domain ids than configured, before the first step."""
        if stage != "fit":
            return
        datamodule = require_datamodule(self, TrainingDomains, purpose="each source domain trains its own branch")
        found = datamodule.training_domain_ids()
        if found != list(range(self.hparams.num_domains)):
            raise ValueError(
                f"DSON was configured for domains 0..{self.hparams.num_domains - 1} but the training "
                f"sources have domain ids {found}: give each source its own `domain` (0, 1, ...) and "
                "set model.num_domains to their number (at least 2)"
            )

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        if batch.labels is None or batch.domains is None:
            raise ValueError("DSON needs labeled samples with domain ids")
        losses = []
        for d in batch.domains.unique().tolist():
            if d >= self.hparams.num_domains:
                raise ValueError(f"sample domain {d} has no branch (num_domains={self.hparams.num_domains})")
            pick = batch.domains == d
            with use_domain(self.network, d):
                losses.append(task_loss(self.network(batch.images[pick]), batch.labels[pick]))
        loss = check_finite(torch.stack(losses).mean(), name="train/loss", step=self.global_step)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        return loss

    def configure_optimizers(self) -> Any:
        return self.configure_task_optimization(self.network.parameters())
