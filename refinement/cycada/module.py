"""CyCADA: Cycle-Consistent Adversarial Domain Adaptation.

Hoffman, Tzeng, Park, Zhu, Isola, Saenko, Efros, Darrell, ICML 2018, arXiv:1711.03213; official code
``jhoffman/cycada_release`` with the CycleGAN fork ``jhoffman/pytorch-CycleGAN-and-pix2pix`` (read as a
specification).

    L_CyCADA = L_task(f_T, G_S→T(X_S), Y_S) + L_GAN(G_S→T, D_T) + L_GAN(G_T→S, D_S) + λ_cyc L_cyc + λ_sem L_sem
               + L_GAN(f_T, D_feat, G_S→T(X_S), X_T)
    L_sem    = CE(f_S(G_S→T(x_s)), y_s) + CE(f_S(G_T→S(x_t)), argmax f_S(x_t))          (f_S frozen)

trained in stages as the paper and release do, here inside one ``fit`` (:mod:`refinement.cycada.stages`):

1. ``source``: f_S = the task network trained on renders (or loaded from ``source_checkpoint``), then frozen;
2. ``pixel``: per batch a generator step on CycleGAN's loss with the S→T adversarial term × ``adv_weight_s2t``
   (release: 2) plus λ_sem · L_sem, then CycleGAN's discriminator step (pools, halved LSGAN);
3. ``task``: f_T (starting from f_S) trained on renders translated by G_S→T, with their labels;
4. ``feature``: ADDA on the task network's outputs: D_feat learns f_ref(x̃_s) = 1 vs f_T(x_t) = 0; when its batch
   accuracy reaches the gate (release: 0.6), f_T takes a step on the inverted label (plus, if weighted, CE on x̃_s).
   x̃_s are translated renders (raw ones in the ``feature`` variant); f_ref is a frozen copy of f_T from the stage's
   start in eval mode (``feature_untied``, the release's digits; f_T runs in train mode, so dropout and batch
   statistics differ between the two sides, as in the release) or f_T itself (the release's segmentation). The gate
   averages over ``feature_gate_window`` batches (the release's segmentation: 100); while it is closed, f_T's BN
   statistics still follow the target batches it scores.

Release values for digits: λ_cyc 1, no identity loss, w_S→T 2, batch 100, Adam 2e-4 β1 0.5, LSGAN, pool 50; feature
stage Adam 1e-5, gate 0.6, no task loss. ``variant`` picks the paper's ablations: ``pixel`` (stages 1-3),
``feature`` (1 and 4 on raw renders), ``pixel+feature`` (all). The task network of the last stage is what is tested
(``val/target_acc``); ``refine()`` exports the pixel stage's translation.

Departures: the release's digits run trains its semantic classifier online inside the pixel stage and uses the
ground-truth label for the S→T term; here f_S is trained first and frozen, as the paper says (``semantic_labels:
pseudo`` gives the paper's argmax f_S(x_s) for the S→T term, ``ground_truth`` the release's); f_T starts from f_S
rather than from scratch; the stages are shares of one run rather than separate jobs; the generator has no dropout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from refinement.cycada.parts import OutputDiscriminator, semantic_consistency_loss
from refinement.cycada.stages import STAGES, Stage, StageShares, Variant, plan_stages, stage_lr_factor, stage_names
from refinement.cyclegan.translation import CycleTranslation
from syn2real.batch import IGNORE_INDEX, DomainBatch
from syn2real.losses import AdversarialMode, domain_adversarial_loss, task_loss
from syn2real.nn import ResnetGenerator
from syn2real.nn.generators import Norm
from syn2real.optim import OptimizerSpec, SchedulerSpec, manual_update
from syn2real.refiner import ExportableGenerator
from syn2real.registry import register_method
from syn2real.rng import CheckpointedTorchRandomState
from syn2real.specs import as_spec, plain_hparams
from syn2real.tasks import TaskEvaluation, TaskNetwork, TaskNetworkSpec


@register_method
class CyCADA(CycleTranslation, CheckpointedTorchRandomState, ExportableGenerator, TaskEvaluation):
    """CyCADA: pixel-level (CycleGAN + semantic consistency) and feature-level adaptation, all stages in one run.

    Args:
        network: the task network (f_S and f_T; see :class:`~syn2real.tasks.TaskNetworkSpec`).
        variant: ``pixel``, ``feature`` or ``pixel+feature`` (paper: the last).
        stages: each stage's share of the run's batches (:class:`~refinement.cycada.stages.StageShares`).
        source_checkpoint: a task checkpoint (e.g. source-only's ``last.ckpt``) to use as f_S instead of training it
            in the run; same network, classes and channels.
        base_channels: generator width (paper: 64).
        num_blocks: generator residual blocks (release: 9).
        num_downsampling: generator stride-2 stages (paper: 2).
        norm: generator and PatchGAN norm (paper: instance).
        disc_base_channels: PatchGAN width (paper: 64).
        disc_layers: PatchGAN stride-2 layers (release digits: 3).
        gan_mode: pixel-stage adversarial loss (release: ``lsgan``).
        real_target: PatchGAN target for real images.
        g_target: generator target.
        lambda_cycle: λ_cyc (release digits: 1; CycleGAN: 10).
        lambda_identity: identity weight relative to λ_cyc (release digits: 0).
        adv_weight_s2t: weight of the S→T adversarial term (release: 2).
        lambda_semantic: λ_sem of the semantic-consistency loss (paper: 1).
        semantic_labels: label of G_S→T(x_s) in L_sem: ``ground_truth`` (release, TLlib) or ``pseudo`` (paper).
        pool_size: image pool per direction (paper: 50).
        translation_optimizer: for the generators and for the PatchGANs (release: Adam 2e-4, β (0.5, 0.999)); the
            LR is constant for the first half of the pixel stage, then linear to zero.
        optimizer: the task network's in the source and task stages (cosine to zero over each stage).
        feature_optimizer: f_T's and D_feat's in the feature stage, constant (release digits: Adam 1e-5).
        feature_hidden: D_feat's hidden width (release digits: 500).
        feature_adversarial_weight: λ_g, weight of f_T's adversarial term (release: digits 1, segmentation 0.1).
        feature_gate: D_feat's accuracy above which f_T is updated (release: 0.6; 0 or less = every batch).
        feature_gate_window: batches the gated accuracy is averaged over (release: digits 1, segmentation 100).
        feature_untied: D_feat sees a frozen copy of the task network on the source side (release digits) rather
            than the trained network itself (release segmentation).
        feature_task_weight: weight of CE(f_T(x̃_s), y_s) in f_T's feature-stage step (release: digits 0,
            segmentation 1).
        ema_decay: EMA of G_S→T's weights, used by ``refine()`` and the task stage; ``None`` = off.
    """

    def __init__(
        self,
        *,
        network: TaskNetworkSpec = TaskNetworkSpec(),
        variant: Variant = "pixel+feature",
        stages: StageShares = StageShares(),
        source_checkpoint: str | None = None,
        base_channels: int = 64,
        num_blocks: int = 9,
        num_downsampling: int = 2,
        norm: Norm = "instance",
        disc_base_channels: int = 64,
        disc_layers: int = 3,
        gan_mode: AdversarialMode = "lsgan",
        real_target: float = 1.0,
        g_target: float = 1.0,
        lambda_cycle: float = 1.0,
        lambda_identity: float = 0.0,
        adv_weight_s2t: float = 2.0,
        lambda_semantic: float = 1.0,
        semantic_labels: Literal["ground_truth", "pseudo"] = "ground_truth",
        pool_size: int = 50,
        translation_optimizer: OptimizerSpec = OptimizerSpec(name="adam", lr=2e-4, betas=(0.5, 0.999)),
        optimizer: OptimizerSpec = OptimizerSpec(name="adam", lr=1e-4),
        feature_optimizer: OptimizerSpec = OptimizerSpec(name="adam", lr=1e-5),
        feature_hidden: int = 500,
        feature_adversarial_weight: float = 1.0,
        feature_gate: float = 0.6,
        feature_gate_window: int = 1,
        feature_untied: bool = True,
        feature_task_weight: float = 0.0,
        ema_decay: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        spec = self.setup_task(network=network, optimizer=optimizer, scheduler=SchedulerSpec(name="none"))
        self.shares = as_spec(StageShares, stages)
        self.translation_spec = as_spec(OptimizerSpec, translation_optimizer)
        self.feature_spec = as_spec(OptimizerSpec, feature_optimizer)
        plain_hparams(self)
        stage_names(variant, self.shares, train_source=source_checkpoint is None)  # a bad variant or share: now
        self.automatic_optimization = False
        self.network: TaskNetwork = spec.build()
        self.source_model: TaskNetwork = spec.build().requires_grad_(False).eval()  # f_S
        self.feature_reference: TaskNetwork = spec.build().requires_grad_(False).eval()  # f_ref (untied)
        self.feature_discriminator = OutputDiscriminator(
            num_classes=spec.num_classes, hidden=feature_hidden, task=spec.task
        )
        self.build_translation(
            channels=spec.in_channels,
            base_channels=base_channels,
            num_blocks=num_blocks,
            num_downsampling=num_downsampling,
            norm=norm,
            disc_base_channels=disc_base_channels,
            disc_layers=disc_layers,
            pool_size=pool_size,
        )
        self.register_buffer("batches_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("gate_accuracies", torch.zeros(max(1, feature_gate_window)))  # D_feat's last accuracies
        self.register_buffer("gate_seen", torch.zeros((), dtype=torch.long))
        self._plan: list[Stage] = []
        self.setup_refiner()

    @property
    def generator(self) -> ResnetGenerator:
        return self.gen_s2t

    @property
    def image_channels(self) -> int:
        return self.network_spec.in_channels

    def train(self, mode: bool = True) -> CyCADA:
        super().train(mode)
        self.source_model.eval()  # the frozen networks keep the statistics they were trained with
        self.feature_reference.eval()
        return self

    @torch.no_grad()
    def refine(self, images: Tensor) -> Tensor:
        if "pixel" not in self.hparams.variant:
            raise ValueError(
                "this CyCADA run is the 'feature' variant: it trained no translation to refine with; export from a "
                "'pixel' or 'pixel+feature' run"
            )
        return super().refine(images)

    # stages
    def on_fit_start(self) -> None:
        hp = self.hparams
        if self.trainer.max_steps not in (-1, None):  # global_step counts optimizer steps: 1 or 2 per batch here
            raise ValueError(
                "CyCADA plans its stages over the run's batches: set trainer.max_epochs (and limit_train_batches), "
                f"not trainer.max_steps ({self.trainer.max_steps})"
            )
        if hp.source_checkpoint is not None and int(self.batches_done) == 0:
            self.load_source_model(Path(hp.source_checkpoint))
        self._plan = plan_stages(
            hp.variant,
            self.shares,
            train_source=hp.source_checkpoint is None,
            total_batches=int(self.trainer.estimated_stepping_batches),
        )

    def load_source_model(self, path: Path) -> None:
        """f_S (and f_T's starting point) from a task checkpoint, checked against this run's network."""
        from datamodules.errors import DatasetError
        from syn2real.tasks.weights import load_task_checkpoint

        loaded = load_task_checkpoint(path)
        mine = self.network_spec
        for field in ("num_classes", "in_channels", "task"):
            theirs, ours = getattr(loaded.spec, field), getattr(mine, field)
            if theirs != ours:
                raise DatasetError(
                    path,
                    f"holds a source model with {field} {theirs!r}, but CyCADA's network has {ours!r}",
                    "give a source model trained on this data (e.g. source_only's last.ckpt for this benchmark), or "
                    "leave source_checkpoint empty to train f_S in the run",
                )
        try:
            self.source_model.load_state_dict(loaded.network.state_dict())
        except RuntimeError:
            raise DatasetError(
                path,
                f"holds a {_described(loaded.spec)} source model, not CyCADA's network ({_described(mine)})",
                "set model.init_args.network to the checkpoint's network, or leave source_checkpoint empty",
            ) from None
        self.network.load_state_dict(self.source_model.state_dict())

    def stage_at(self, batch: int) -> Stage:
        """The stage that trains the run's batch number ``batch`` (0-based)."""
        return next((s for s in self._plan if batch < s.end), self._plan[-1])

    def current_stage(self) -> Stage:
        return self.stage_at(int(self.batches_done))

    def enter_stage(self, stage: Stage) -> None:
        """What a stage's first batch does first.

        f_S is frozen if the source stage just ended; f_T is copied into f_ref if the (untied) feature stage begins.
        A run resumed mid-stage has done this already (``batches_done`` is in the checkpoint).
        """
        before = self.stage_at(stage.start - 1).name if stage.start > 0 else None
        if before == "source":
            self.source_model.load_state_dict(self.network.state_dict())
        if stage.name == "feature" and self.hparams.feature_untied:
            self.feature_reference.load_state_dict(self.network.state_dict())

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if batch.source.labels is None:
            raise ValueError("CyCADA needs labels on the source domain; the source dataset has none")
        super().on_train_batch_start(batch, batch_idx)

    def training_step(self, batch: DomainBatch, batch_idx: int) -> None:
        stage = self.current_stage()
        if int(self.batches_done) == stage.start:
            self.enter_stage(stage)
        factor = stage_lr_factor(stage.name, stage.progress(int(self.batches_done)))
        x, labels, real = batch.source.images, batch.source.labels, batch.target.images
        self.record_size(x)
        opt_task, opt_g, opt_d, opt_feature, opt_feature_d = self.optimizers()
        if stage.name == "source":
            losses = self.task_step(opt_task, x, labels, factor, "source")
        elif stage.name == "pixel":
            losses = self.pixel_step(opt_g, opt_d, x, labels, real, factor)
        elif stage.name == "task":
            losses = self.task_step(opt_task, self.refine(x), labels, factor, "task")
        else:
            losses = self.feature_step(opt_feature, opt_feature_d, x, labels, real)
        self.batches_done += 1
        self.log("train/stage", float(STAGES.index(stage.name)), batch_size=len(x))
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, batch_size=len(x))

    # one step of each stage
    def _update(self, optimizer: Any, loss: Tensor, name: str, factor: float = 1.0) -> None:
        for group in optimizer.param_groups:  # the stage's LR schedule (the optimizer state keeps the base LR)
            group["lr"] = group.setdefault("base_lr", group["lr"]) * factor
        manual_update(self, optimizer, loss, name=f"train/{name}")

    def task_step(self, opt: Any, images: Tensor, labels: Tensor, factor: float, stage: str) -> dict[str, Tensor]:
        """Cross-entropy on labeled images: renders (f_S) or translated renders (f_T)."""
        with self.toggled_optimizer(opt):
            logits = self.network(images)
            loss = task_loss(logits, labels)
            self._update(opt, loss, f"loss_{stage}", factor)
        known = labels != IGNORE_INDEX
        return {f"loss_{stage}": loss, f"acc_{stage}": (logits.argmax(1) == labels)[known].float().mean()}

    def pixel_step(
        self, opt_g: Any, opt_d: Any, a: Tensor, labels: Tensor, b: Tensor, factor: float
    ) -> dict[str, Tensor]:
        """CycleGAN's generator step with the semantic-consistency loss, then its discriminator step."""
        with self.toggled_optimizer(opt_g):
            losses, fake_b, fake_a = self.pixel_losses(a, labels, b)
            self._update(opt_g, losses["loss_g"], "loss_g", factor)
        self.update_ema()
        with self.toggled_optimizer(opt_d):
            losses |= self.discriminator_losses(a, b, fake_b.detach(), fake_a.detach())
            self._update(opt_d, losses["loss_d"], "loss_d", factor)
        return losses

    def pixel_losses(self, a: Tensor, labels: Tensor, b: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """The generators' objective: CycleGAN's (S→T adversarial weighted) + λ_sem · L_sem; and G(a), F(b)."""
        hp = self.hparams
        losses, fake_b, fake_a = self.generator_losses(a, b, adv_weight_s2t=hp.adv_weight_s2t)
        semantic = a.new_zeros(())
        if hp.lambda_semantic > 0:
            pseudo_source = a if hp.semantic_labels == "pseudo" else None
            semantic = semantic_consistency_loss(self.source_model, fake_b, fake_a, labels, b, pseudo_source)
        losses |= {"loss_g": losses["loss_g"] + hp.lambda_semantic * semantic, "loss_g_semantic": semantic}
        return losses, fake_b, fake_a

    def feature_step(
        self, opt_feature: Any, opt_discriminator: Any, x: Tensor, labels: Tensor, real: Tensor
    ) -> dict[str, Tensor]:
        """ADDA on the outputs: D_feat's step, then (past the accuracy gate) f_T's step on the inverted label."""
        hp = self.hparams
        source = self.refine(x) if "pixel" in hp.variant else x
        reference = self.feature_reference if hp.feature_untied else self.network
        with torch.no_grad():
            source_out = reference(source)
        target_out = self.network(real)
        with self.toggled_optimizer(opt_discriminator):
            d_loss, d_acc = domain_adversarial_loss(
                self.feature_discriminator(source_out), self.feature_discriminator(target_out.detach())
            )
            self._update(opt_discriminator, d_loss, "loss_feature_d")
        losses = {"loss_feature_d": d_loss, "feature_d_acc": d_acc}
        if self.gate_open(d_acc):
            with self.toggled_optimizer(opt_feature):
                fooled = self.feature_discriminator(target_out)
                adversarial = F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled))
                total = hp.feature_adversarial_weight * adversarial
                if hp.feature_task_weight > 0:
                    total = total + hp.feature_task_weight * task_loss(self.network(source), labels)
                self._update(opt_feature, total, "loss_feature")
            losses["loss_feature"] = total
        losses["feature_updated"] = torch.tensor(float("loss_feature" in losses))
        return losses

    def gate_open(self, accuracy: Tensor) -> bool:
        """Record D_feat's batch accuracy; is its mean over the last ``feature_gate_window`` batches above the gate?"""
        window = self.gate_accuracies
        window[int(self.gate_seen) % len(window)] = accuracy.detach()
        self.gate_seen += 1
        if self.hparams.feature_gate <= 0:
            return True
        return float(window[: min(int(self.gate_seen), len(window))].mean()) > self.hparams.feature_gate

    def configure_optimizers(self) -> Any:
        translation = self.translation_spec
        return [
            self.optimizer_spec.build(self.network.parameters()),
            translation.build([*self.gen_s2t.parameters(), *self.gen_t2s.parameters()]),
            translation.build([*self.disc_s.parameters(), *self.disc_t.parameters()]),
            self.feature_spec.build(self.network.parameters()),
            self.feature_spec.build(self.feature_discriminator.parameters()),
        ]


def _described(spec: TaskNetworkSpec) -> str:
    stages = f", fcn_stages {spec.fcn_stages}" if spec.arch == "small_fcn" else ""
    return f"{spec.arch}, width {spec.width}{stages}"
