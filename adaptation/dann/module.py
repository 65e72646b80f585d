"""DANN: Domain-Adversarial Neural Networks.

Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015, arXiv:1409.7495;
Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 2016, arXiv:1505.07818.

A feature extractor G_f feeds a label predictor G_y and, through a gradient reversal layer, a domain
classifier G_d. Per step, with progress p = step / total steps:

    λ_p = 2 / (1 + exp(-γ p)) - 1                                   (γ = 10)
    L   = CE(G_y(G_f(x_s)), y_s) + w_d · BCE(G_d(R_λp(G_f(x))), d)  (d = 1 source, 0 target)
    μ_p = μ_0 / (1 + α p)^β                                          (μ_0 = 0.01, α = 10, β = 0.75)

Departures from the paper: G_f / G_y are the zoo's task network split at ``forward_features`` (so numbers compare
across methods); source and target are forwarded as one concatenated batch (BN sees both domains, as in tllib);
for segmentation the domain classifier is fully convolutional and classifies every feature-map position (or,
with ``discriminator_stride: 2``, every 4×4 patch of positions, AdaptSegNet-style).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from syn2real.batch import DomainBatch
from syn2real.losses import check_finite, domain_adversarial_loss, task_loss
from syn2real.nn import domain_discriminator, grad_reverse
from syn2real.optim import OptimizerSpec, SchedulerSpec
from syn2real.progress import dann_lambda, progress
from syn2real.registry import register_method
from syn2real.tasks import TaskEvaluation, TaskNetwork, TaskNetworkSpec


@register_method
class DANN(TaskEvaluation):
    """Domain-adversarial training of a task network on labeled source + unlabeled target batches.

    Args:
        network: the task network, G_y ∘ G_f (see :class:`~syn2real.tasks.TaskNetworkSpec`).
        optimizer: the paper's SGD, μ_0 = 0.01, momentum 0.9.
        scheduler: the paper's annealing μ_0 / (1 + α p)^β, α = 10, β = 0.75 (``annealed``).
        discriminator_hidden: hidden width of G_d (paper: 100 for digits, 1024 for Office).
        discriminator_layers: hidden layers of G_d (paper: 1 for digits, 2 for Office).
        discriminator_dropout: dropout after each hidden layer of G_d (tllib: 0.5; the paper's digits G_d: none).
        discriminator_stride: segmentation only: 1 classifies every feature position with 3×3 convs; 2 classifies
            4×4 patches with AdaptSegNet's 4×4 stride-2 convs (about a fifth of the multiply-adds).
        lambda_domain: weight w_d of the domain loss (paper: 1).
        gamma: γ of the λ_p schedule (paper: 10).
        lambda_max: scale of λ_p (1 = paper).
        backbone_lr_scale: LR multiplier of G_f (0.1 for pretrained backbones, as tllib).
    """

    def __init__(
        self,
        *,
        network: TaskNetworkSpec = TaskNetworkSpec(),
        optimizer: OptimizerSpec = OptimizerSpec(name="sgd", lr=0.01, momentum=0.9, weight_decay=1e-3),
        scheduler: SchedulerSpec = SchedulerSpec(name="annealed", alpha=10.0, beta=0.75),
        discriminator_hidden: int = 1024,
        discriminator_layers: int = 2,
        discriminator_dropout: float = 0.5,
        discriminator_stride: int = 1,
        lambda_domain: float = 1.0,
        gamma: float = 10.0,
        lambda_max: float = 1.0,
        backbone_lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        spec = self.setup_task(network=network, optimizer=optimizer, scheduler=scheduler)
        self.network: TaskNetwork = spec.build()
        self.discriminator = domain_discriminator(
            feature_dim=self.network.feature_dim,
            segmentation=spec.task == "segmentation",
            hidden=discriminator_hidden,
            layers=discriminator_layers,
            dropout=discriminator_dropout,
            stride=discriminator_stride,
        )

    def adaptation_factor(self) -> float:
        """λ_p at the current step."""
        p = progress(self.global_step, self.trainer.estimated_stepping_batches)
        return self.hparams.lambda_max * dann_lambda(p, self.hparams.gamma)

    def losses(self, batch: DomainBatch, lam: float) -> dict[str, Tensor]:
        """Classification and domain losses of one step (the paper's objective, named terms)."""
        n = len(batch.source)
        features = self.network.forward_features(torch.cat([batch.source.images, batch.target.images]))
        loss_cls = task_loss(self.network.forward_head(features[:n]), batch.source.labels)
        domain_logits = self.discriminator(grad_reverse(features, lam))
        loss_domain, domain_acc = domain_adversarial_loss(domain_logits[:n], domain_logits[n:])
        total = loss_cls + self.hparams.lambda_domain * loss_domain
        return {"loss": total, "loss_cls": loss_cls, "loss_domain": loss_domain, "domain_acc": domain_acc}

    def training_step(self, batch: DomainBatch, batch_idx: int) -> Tensor:
        if batch.source.labels is None:
            raise ValueError("DANN needs labels on the source domain; the source dataset has none")
        lam = self.adaptation_factor()
        out = self.losses(batch, lam)
        check_finite(out["loss"], name="train/loss", step=self.global_step)
        self.log_dict({f"train/{k}": v for k, v in out.items()}, prog_bar=False, batch_size=len(batch.source))
        self.log("train/lambda", lam, batch_size=len(batch.source))
        return out["loss"]

    def configure_optimizers(self) -> Any:
        lr = self.optimizer_spec.lr
        head = {id(p) for p in self.network.head_module.parameters()}
        groups = [
            {
                "params": [p for p in self.network.parameters() if id(p) not in head],
                "lr": lr * self.hparams.backbone_lr_scale,
            },
            {"params": list(self.network.head_module.parameters()) + list(self.discriminator.parameters()), "lr": lr},
        ]
        return self.configure_task_optimization(groups)
