"""ASG: Automated Synthetic-to-Real Generalization.

Chen, Yu, Wang, Anandkumar, "Automated Synthetic-to-Real Generalization", ICML 2020, arXiv:2007.06965; official code
NVlabs/ASG. No target image is seen: an ImageNet-pretrained network is fine-tuned on synthetic images only, and

1. **proxy guidance** keeps its ImageNet predictions close to a frozen copy's on the same synthetic images:

       L = CE(h_task(f(x)), y) + λ · KL(p_teacher(x) ‖ p_imagenet(f(x)))      (batchmean, λ = 0.1 on VisDA-17)

   where h_imagenet, the network's original 1000-way head, is kept and frozen;
2. **layer-wise learning rates** come from a learned policy (:mod:`generalization.asg.policy`) that picks, once per
   window of steps, a multiplier in {0, 0.1, ..., 1} of the base rate for every layer group.

As the official code: BN statistics stay at their ImageNet values (the network is in eval mode throughout; BN affine
parameters still train), the SGD keeps the rate inside its momentum (``sgd_lr_in_momentum``), and the rate follows
a 100-step quadratic warm-up and a 0.9-power decay that stops at 80% of the run. Without a policy the backbone's
groups run at ``backbone_lr_factor`` (0.1) of the head's rate; with one, every group's base is the optimizer's rate
times the policy's multiplier (times the warm-up/decay factor, kept as the segmentation script does).

``proxy_weight: 0`` and no policy is the plain ImageNet fine-tune, the generalization baseline: same network, data,
steps and optimizer. Departures: EfficientNet-Lite0 (the offline ImageNet weights) instead of ResNet-101 on CPU;
layer groups are timm's coarse stages plus the task head (ResNet: conv1+bn1, layer1-4, head = 6 groups where the
release has 7, conv1 and bn1 apart); the policy's per-group input is the group's rate over its base (schedule factor
times multiplier), as the release; evaluation is the zoo's (argmax accuracy on the real split, final weights, the
validation-selected ones beside them), not the papers' mean per-class accuracy of flip-averaged sigmoid scores (the
official code also selects on the real split it reports). ``network.task: segmentation`` trains an FCN-8s on the same
backbone (:class:`~generalization.backbone.ImageNetSegmenter`; official: FCN-8s on VGG-16, λ 75, capped at λ·KL ≤ 9
in the L2O script) with the KL on the pooled final map through the kept ImageNet head, as the official code.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generalization.asg.controller import Decision, LRController
from generalization.asg.policy import load_policy
from generalization.backbone import ImageNetTaskNetwork, frozen_imagenet_logits, frozen_modes
from syn2real.batch import Batch
from syn2real.losses import check_finite, task_loss
from syn2real.optim import OptimizerSpec, SchedulerSpec
from syn2real.progress import progress, warmup_poly_factor
from syn2real.registry import register_method
from syn2real.rng import CheckpointedTorchRandomState
from syn2real.tasks import TaskEvaluation, TaskNetworkSpec


def proxy_guidance_loss(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """KL(p_teacher ‖ p_student) over the ImageNet classes, summed over classes and averaged over the batch."""
    return F.kl_div(F.log_softmax(student_logits, 1), F.softmax(teacher_logits, 1), reduction="batchmean")


@register_method
class ASG(CheckpointedTorchRandomState, TaskEvaluation):
    """Fine-tune an ImageNet classifier on synthetic data with proxy guidance and (optionally) a learned lr policy.

    Args:
        network: the backbone (a timm classifier with ImageNet weights: ``pretrained`` = ``imagenet-offline`` for
            EfficientNet-Lite0, ``hub`` or a checkpoint path), ``num_classes`` and ``in_channels`` of the data.
        input_size: side images are resized to inside the network (224 = ImageNet's).
        head_hidden: hidden width of the new task head (official: 512; 0 = one linear layer).
        optimizer: official: SGD with the rate in its momentum, lr 1e-4, momentum 0.9, weight decay 5e-4.
        backbone_lr_factor: the backbone groups' share of the rate without a policy (official: 0.1).
        warmup_steps: quadratic warm-up length (official: 100).
        poly_power: power of the decay (official: 0.9).
        poly_floor_progress: progress at which the decay stops (official ASG: 0.8; 1.0 decays to zero).
        proxy_weight: λ of the KL proxy guidance (official: 0.1 classification; 0 = plain fine-tune).
        proxy_cap: cap on λ·KL (the official L2O segmentation script: 9); ``None`` = none.
        freeze_bn: keep the whole network in eval mode while training (official).
        policy: a policy checkpoint from ``syn2real train-policy`` (its groups must be this network's).
        policy_greedy: deploy the most likely multipliers instead of sampling (official: sample).
        policy_min_window: steps of the shortest decision window (official: 10).
    """

    def __init__(
        self,
        *,
        network: TaskNetworkSpec = TaskNetworkSpec(
            arch="efficientnet_lite0", num_classes=12, in_channels=3, pretrained="imagenet-offline"
        ),
        input_size: int = 224,
        head_hidden: int = 512,
        optimizer: OptimizerSpec = OptimizerSpec(name="sgd_lr_in_momentum", lr=1e-4, momentum=0.9, weight_decay=5e-4),
        backbone_lr_factor: float = 0.1,
        warmup_steps: int = 100,
        poly_power: float = 0.9,
        poly_floor_progress: float = 0.8,
        proxy_weight: float = 0.1,
        proxy_cap: float | None = None,
        freeze_bn: bool = True,
        policy: str | None = None,
        policy_greedy: bool = False,
        policy_min_window: int = 10,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        spec = self.setup_task(network=network, optimizer=optimizer, scheduler=SchedulerSpec(name="none"))
        self.network = ImageNetTaskNetwork.from_spec(spec, input_size=input_size, head_hidden=head_hidden)
        self.teacher = self.network.frozen_copy()
        self.group_names = list(self.network.layer_groups())
        self.controller: LRController | None = None
        if policy is not None:
            loaded = load_policy(policy, groups=self.group_names, backbone=spec.arch)
            self.controller = LRController(loaded, min_window=policy_min_window, greedy=policy_greedy)

    def on_train_epoch_start(self) -> None:
        frozen_modes(self.network, [self.teacher], freeze_bn=self.hparams.freeze_bn)

    # --- the objective -------------------------------------------------------------------------------------------
    def losses(self, images: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Task cross-entropy, proxy-guidance KL and the weighted objective of one batch."""
        task_logits, imagenet_logits = self.network.task_and_imagenet_logits(images)
        loss_task = task_loss(task_logits, labels)
        weight = self.hparams.proxy_weight
        if weight > 0:
            teacher = frozen_imagenet_logits(self.teacher, self.network, images)
            loss_proxy = proxy_guidance_loss(imagenet_logits, teacher)
            if self.hparams.proxy_cap is not None and weight * float(loss_proxy.detach()) > self.hparams.proxy_cap:
                weight = self.hparams.proxy_cap / float(loss_proxy.detach())
        else:
            loss_proxy = task_logits.new_zeros(())
        return {"loss": loss_task + weight * loss_proxy, "loss_task": loss_task, "loss_proxy": loss_proxy}

    # --- layer-wise learning rates -------------------------------------------------------------------------------
    def base_lrs(self) -> list[float]:
        """Each group's base rate: the optimizer's, the backbone at ``backbone_lr_factor`` unless a policy decides."""
        lr = self.optimizer_spec.lr
        factor = 1.0 if self.controller is not None else self.hparams.backbone_lr_factor
        return [lr if name == "task_head" else lr * factor for name in self.group_names]

    def schedule_factor(self, step: int, total_steps: int) -> float:
        """The warm-up/decay factor of step ``step`` of a run of ``total_steps``."""
        return warmup_poly_factor(
            step,
            total_steps,
            warmup_steps=self.hparams.warmup_steps,
            power=self.hparams.poly_power,
            floor_progress=self.hparams.poly_floor_progress,
        )

    def group_lrs(self, step: int, total_steps: int) -> list[float]:
        """The rates of step ``step``: base × warm-up/decay × the policy's multipliers (1 without a policy)."""
        factor = self.schedule_factor(step, total_steps)
        mults = self.controller.multipliers.tolist() if self.controller is not None else [1.0] * len(self.group_names)
        return [base * factor * m for base, m in zip(self.base_lrs(), mults, strict=True)]

    def set_lrs(self, optimizer: torch.optim.Optimizer, step: int, total_steps: int) -> None:
        """Give the optimizer's groups (built by :meth:`build_optimizer`) the rates of step ``step``."""
        for group, lr in zip(optimizer.param_groups, self.group_lrs(step, total_steps), strict=True):
            group["lr"] = lr

    def decide(self, step: int, total_steps: int) -> Decision | None:
        """Let the policy act if its window is over."""
        if self.controller is None or not self.controller.due(step):
            return None
        return self.controller.decide(step, self.schedule_factor(step, total_steps))

    def observe(self, out: dict[str, Tensor], step: int, total_steps: int) -> None:
        """Give the policy this step's signals."""
        if self.controller is not None:
            self.controller.observe(
                task_loss=float(out["loss_task"].detach()),
                proxy_loss=float(out["loss_proxy"].detach()),
                objective=float(out["loss"].detach()),
                progress=progress(step, total_steps),
                head=self.head_weight,
            )

    @property
    def head_weight(self) -> Tensor:
        """The task head's last weight matrix (a policy signal)."""
        return [m for m in self.network.head.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1].weight

    # --- Lightning -------------------------------------------------------------------------------------------------
    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        super().on_train_batch_start(batch, batch_idx)
        step, total = self.global_step, int(self.trainer.estimated_stepping_batches)
        decision = self.decide(step, total)
        if decision is not None:
            for name, m in zip(self.group_names, decision.multipliers, strict=True):
                self.log(f"policy/{name}", m, batch_size=len(batch))
        self.set_lrs(self.trainer.optimizers[0], step, total)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        if batch.labels is None:
            raise ValueError("ASG trains on labeled synthetic images; the training data has no labels")
        out = self.losses(batch.images, batch.labels)
        check_finite(out["loss"], name="train/loss", step=self.global_step)
        self.observe(out, self.global_step, int(self.trainer.estimated_stepping_batches))
        self.log_dict({f"train/{k}": v for k, v in out.items()}, batch_size=len(batch))
        return out["loss"]

    def build_optimizer(self) -> torch.optim.Optimizer:
        """The optimizer with one parameter group per layer group (rates set every step by :meth:`group_lrs`)."""
        groups = self.network.layer_groups()
        return self.optimizer_spec.build(
            [{"params": groups[n], "lr": lr} for n, lr in zip(self.group_names, self.base_lrs(), strict=True)]
        )

    def configure_optimizers(self) -> Any:
        return self.build_optimizer()
