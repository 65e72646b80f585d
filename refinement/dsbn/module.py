"""DSBN: Domain-Specific Batch Normalization for Unsupervised Domain Adaptation.

Chang, You, Seo, Kwak, Han, CVPR 2019, arXiv:1906.03950 (official code: wgchang/DSBN).

Every BN layer of the task network gets one branch per domain (its own running statistics and γ/β); all other
weights are shared. A forward pass holds one domain. Evaluation on the real domain uses the target branch.

Training, following the paper's two stages within one run (progress p = step / total steps):

    L = CE(f_s(x_s), y_s) + w_adv · BCE(D(R_λp(g_s(x_s), g_t(x_t))), d)       stage 1: adversarial alignment
        + [p ≥ p_pl] · w_pl · CE(f_t(x_t), ŷ_t)  on confident targets         stage 2: target pseudo-labels

with λ_p = 2 / (1 + exp(-10 p)) - 1 as in the official code. Departures: the official stage 1 is MSTN (adversarial
+ semantic centroid loss) with a negated-BCE generator; we use a gradient-reversal adversary on the task features
and no centroid term. The official stage 2 trains a fresh network on a frozen stage-1 teacher's pseudo-labels; we
keep training the same network on its own confident target predictions (threshold ``pseudo_label_threshold``),
made by the target branch in eval mode (dropout off, the branch's running statistics) as a frozen teacher would.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from refinement.dsbn.norm import convert_to_dsbn
from syn2real.batch import DomainBatch
from syn2real.losses import check_finite, domain_adversarial_loss, task_loss
from syn2real.nn import domain_discriminator, grad_reverse, use_domain
from syn2real.optim import OptimizerSpec, SchedulerSpec
from syn2real.progress import dann_lambda, progress
from syn2real.registry import register_method
from syn2real.tasks import TaskEvaluation, TaskNetwork, TaskNetworkSpec

SOURCE, TARGET = 0, 1


class DomainView(nn.Module):
    """A DSBN network seen through one domain's branches (what evaluation on that domain runs)."""

    def __init__(self, network: TaskNetwork, domain: int) -> None:
        super().__init__()
        self.network, self.domain = network, domain

    def forward(self, images: Tensor) -> Tensor:
        with use_domain(self.network, self.domain):
            return self.network(images)


@register_method
class DSBN(TaskEvaluation):
    """Domain-specific BN branches (source 0, target 1), adversarial alignment, then target pseudo-labels.

    Args:
        network: the task network (must contain BN layers; classification, as pseudo-labels are per image).
        optimizer: optimizer (Adam as the official code).
        scheduler: LR schedule (none in the official code).
        discriminator_hidden: hidden width of the domain discriminator.
        lambda_adv: weight of the adversarial term (official code: 0.1).
        gamma: γ of the λ_p schedule (10).
        lambda_pseudo: weight of the pseudo-label term.
        pseudo_label_threshold: minimum softmax confidence of a target prediction to train on it.
        pseudo_label_start: training progress at which stage 2 (pseudo-labels) starts.
    """

    def __init__(
        self,
        *,
        network: TaskNetworkSpec = TaskNetworkSpec(),
        optimizer: OptimizerSpec = OptimizerSpec(name="adamw", lr=1e-3),
        scheduler: SchedulerSpec = SchedulerSpec(name="none"),
        discriminator_hidden: int = 1024,
        lambda_adv: float = 0.1,
        gamma: float = 10.0,
        lambda_pseudo: float = 1.0,
        pseudo_label_threshold: float = 0.9,
        pseudo_label_start: float = 0.5,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        spec = self.setup_task(network=network, optimizer=optimizer, scheduler=scheduler)
        if spec.task != "classification":
            raise ValueError("DSBN here supports classification (pseudo-labels are per image)")
        plain = spec.build()
        self.network: TaskNetwork = convert_to_dsbn(plain, num_domains=2)  # type: ignore[assignment]
        self.discriminator = domain_discriminator(
            feature_dim=plain.feature_dim, segmentation=False, hidden=discriminator_hidden
        )

    @property
    def task_model(self) -> nn.Module:
        return DomainView(self.network, TARGET)

    @torch.no_grad()
    def pseudo_labels(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Confidence and class of the target branch's prediction in eval mode (no dropout, running statistics)."""
        was_training = self.network.training
        self.network.eval()
        try:
            with use_domain(self.network, TARGET):
                confidence, labels = self.network(images).softmax(1).max(1)
        finally:
            self.network.train(was_training)
        return confidence, labels

    def losses(self, batch: DomainBatch, p: float) -> dict[str, Tensor]:
        """The named loss terms of one step at progress ``p``."""
        hp = self.hparams
        with use_domain(self.network, SOURCE):
            fs = self.network.forward_features(batch.source.images)
        with use_domain(self.network, TARGET):
            ft = self.network.forward_features(batch.target.images)
        with use_domain(self.network, SOURCE):  # a head with BN (lenet) has per-domain branches too
            loss_cls = task_loss(self.network.forward_head(fs), batch.source.labels)
        d = self.discriminator(grad_reverse(torch.cat([fs, ft]), dann_lambda(p, hp.gamma)))
        loss_adv, _ = domain_adversarial_loss(d[: len(fs)], d[len(fs) :])
        with use_domain(self.network, TARGET):
            logits_t = self.network.forward_head(ft)
        keep = torch.zeros(len(ft), dtype=torch.bool, device=ft.device)
        loss_pl = logits_t.sum() * 0.0
        if p >= hp.pseudo_label_start:
            confidence, pseudo = self.pseudo_labels(batch.target.images)
            keep = confidence >= hp.pseudo_label_threshold
            if keep.any():
                loss_pl = task_loss(logits_t[keep], pseudo[keep])
        total = loss_cls + hp.lambda_adv * loss_adv + hp.lambda_pseudo * loss_pl
        return {
            "loss": total,
            "loss_cls": loss_cls,
            "loss_adv": loss_adv,
            "loss_pseudo": loss_pl,
            "pseudo_fraction": keep.float().mean(),
        }

    def training_step(self, batch: DomainBatch, batch_idx: int) -> Tensor:
        if batch.source.labels is None:
            raise ValueError("DSBN needs labels on the source domain; the source dataset has none")
        out = self.losses(batch, progress(self.global_step, self.trainer.estimated_stepping_batches))
        check_finite(out["loss"], name="train/loss", step=self.global_step)
        self.log_dict({f"train/{k}": v for k, v in out.items()}, batch_size=len(batch.source))
        return out["loss"]

    def configure_optimizers(self) -> Any:
        return self.configure_task_optimization([*self.network.parameters(), *self.discriminator.parameters()])
