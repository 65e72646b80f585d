"""PixelDA: Unsupervised Pixel-Level Domain Adaptation with Generative Adversarial Networks.

Bousmalis, Silberman, Dohan, Erhan, Krishnan, CVPR 2017, arXiv:1612.05424; official code (TensorFlow 1):
``tensorflow/models/research/domain_adaptation/pixel_domain_adaptation`` (read as a specification).

A generator G(x_s, z) maps a labeled render and noise z ~ U(−1, 1)^10 to an image that a discriminator D cannot
tell from real target images; a task network T learns the labels on both the renders and the generated images, and
is what is evaluated on the real split. As released, one iteration is

    D-step (D and T):  w_dom · [BCE(D(y_t), 1) + BCE(D(G(x_s, z)), 0)]
                       + w_src · CE(T(x_s), y_s) + w_gen · CE(T(G(x_s, z)), y_s)
    G-step (G):        w_style · BCE(D(G(x_s, z')), 1) + w_task_g · CE(T(G(x_s, z')), y_s) + w_c · L_c(x_s, G(x_s, z'))

with the paper's masked pairwise MSE content loss on the renderer's foreground mask m (k values, d = x_s − G(x_s, z))

    L_c = 1/k ‖d ∘ m‖² − 1/k² (dᵀm)²

per image, averaged over the batch, with d on the generator's [-1, 1] scale (the release's image scale; its TF
``mean_pairwise_squared_error`` is twice this per image and sums over the batch, so a release content weight is
2·B times ours). Adam 1e-3, β1 0.5, weight decay 1e-5, each gradient tensor clipped to norm 5 (slim's per-tensor
clipping). Default weights are the release README's MNIST-M run (domain 0.1356, style 0.0113, task in G 0.0101, no
content loss). As in the release, the G-step's forward passes through D and T leave their BN statistics alone.

Departures: T is the zoo's task network shared by renders, generated and real images (the release gives T private
first layers for renders vs generated/real images), so its numbers compare with every other row; the D- and
G-steps use the same source and target batch (fresh noise per step) where the release draws new batches; the
residual blocks are the zoo's shared ones (reflection padding, BN ε 1e-5; release: zero padding, ε 1e-3). Two
optimizer steps per batch: Lightning's ``global_step`` counts both, so ``trainer.max_steps`` is twice the batches;
the LR schedules run per batch over ``max_epochs``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from refinement.pixelda.networks import NoiseGenerator, PixelDADiscriminator
from syn2real.batch import Batch, DomainBatch
from syn2real.bn_stats import kept_bn_statistics
from syn2real.losses import discriminator_loss, generator_loss, task_loss
from syn2real.optim import ManualSchedules, OptimizerSpec, SchedulerSpec, manual_optimization, manual_update
from syn2real.refiner import ExportableGenerator
from syn2real.registry import register_method
from syn2real.rng import CheckpointedTorchRandomState
from syn2real.tasks import TaskEvaluation, TaskNetwork, TaskNetworkSpec


def masked_pairwise_mse(source: Tensor, generated: Tensor, mask: Tensor | None) -> Tensor:
    """PixelDA's content loss, mean over the batch, on the [-1, 1] scale (images given in [0, 1]).

    Per image with ``d = 2 (source − generated)`` over all k = C·H·W values and ``m`` (``B×1×H×W``) broadcast to the
    channels: ``‖d∘m‖²/k − (Σ d∘m)²/k²``; ``mask=None`` is the unmasked pairwise MSE. Pixels outside the mask are
    free; unmasked, a uniform shift of the whole image costs nothing, and with a mask covering n of k values a
    uniform shift c of the foreground costs c²·n(k − n)/k², less than the MSE's c²·n/k.

    Examples:
        >>> x = torch.zeros(1, 1, 2, 2)
        >>> round(float(masked_pairwise_mse(x, x + 0.25, None)), 6)  # a uniform shift is free
        0.0
        >>> g = torch.tensor([[[[0.5, 0.0], [0.0, 0.0]]]])
        >>> round(float(masked_pairwise_mse(x, g, None)), 6)  # d = (−1, 0, 0, 0): 1/4 − 1/16
        0.1875
    """
    d = 2 * (source - generated)
    if mask is not None:
        d = d * mask.expand_as(d)
    d = d.flatten(1)
    k = d.shape[1]
    return (d.pow(2).sum(1) / k - d.sum(1).pow(2) / k**2).mean()


@register_method
class PixelDA(CheckpointedTorchRandomState, ManualSchedules, ExportableGenerator, TaskEvaluation):
    """PixelDA: a noise-conditioned generator, an image discriminator and a task network trained jointly.

    ``refine()`` exports generated images (``syn2real refine``); the task network is evaluated on the real split
    like any adapter (``val/target_acc``).

    Args:
        network: the task network T (see :class:`~syn2real.tasks.TaskNetworkSpec`); its ``in_channels`` are the
            image channels of renders and real images alike.
        image_size: H = W of the images (the generator's noise map is built for it).
        noise_dims: dimensions of z (release: 10).
        generator_width: filters of the generator's convs (release: 64).
        generator_blocks: residual blocks (release: 6).
        discriminator_width: filters of D's first conv (release: 64).
        discriminator_dropout: dropout after D's convs (release: 0.1).
        discriminator_noise: σ of the Gaussian noise on D's hidden layers (release: 0.2).
        domain_weight: weight of D's loss (release MNIST-M: 0.1356).
        style_weight: weight of G's adversarial loss (release MNIST-M: 0.0113).
        source_task_weight: weight of CE(T(x_s)) (release: 1).
        generated_task_weight: weight of CE(T(G(x_s))) in the D-step (release: 1).
        task_in_g_weight: weight of the G-step's task term, w_task_g · w_gen · CE(T(G(x_s))) (release MNIST-M:
            0.0101).
        content_weight: weight of the masked pairwise MSE (release MNIST-M: 0; used for LineMod).
        content_without_mask: allow the unmasked content loss when the renders carry no foreground mask (a warning
            says so); otherwise such data is an error.
        optimizer: for G and for D + T (release: Adam 1e-3, β1 0.5, weight decay 1e-5).
        scheduler: LR schedule of both optimizers (release: ×0.95 every 20k steps, about constant here).
        clip_norm: per-tensor gradient norm bound (release: 5); ``None`` = off.
        ema_decay: EMA of the generator weights used by ``refine()``; ``None`` = off.
    """

    def __init__(
        self,
        *,
        network: TaskNetworkSpec = TaskNetworkSpec(),
        image_size: int = 32,
        noise_dims: int = 10,
        generator_width: int = 64,
        generator_blocks: int = 6,
        discriminator_width: int = 64,
        discriminator_dropout: float = 0.1,
        discriminator_noise: float = 0.2,
        domain_weight: float = 0.1356,
        style_weight: float = 0.0113,
        source_task_weight: float = 1.0,
        generated_task_weight: float = 1.0,
        task_in_g_weight: float = 0.0101,
        content_weight: float = 0.0,
        content_without_mask: bool = False,
        optimizer: OptimizerSpec = OptimizerSpec(name="adam", lr=1e-3, betas=(0.5, 0.999), weight_decay=1e-5),
        scheduler: SchedulerSpec = SchedulerSpec(name="none"),
        clip_norm: float | None = 5.0,
        ema_decay: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        spec = self.setup_task(network=network, optimizer=optimizer, scheduler=scheduler)
        if spec.task != "classification":
            raise ValueError("PixelDA is implemented for classification task networks (the paper's digits setting)")
        self.automatic_optimization = False
        self.network: TaskNetwork = spec.build()
        self.gen = NoiseGenerator(
            channels=spec.in_channels,
            image_size=image_size,
            noise_dims=noise_dims,
            width=generator_width,
            num_blocks=generator_blocks,
        )
        self.discriminator = PixelDADiscriminator(
            channels=spec.in_channels,
            image_size=image_size,
            width=discriminator_width,
            dropout=discriminator_dropout,
            noise_std=discriminator_noise,
        )
        self.setup_refiner()

    @property
    def generator(self) -> NoiseGenerator:
        return self.gen

    @property
    def image_channels(self) -> int:
        return self.network_spec.in_channels

    def content_mask(self, source: Batch) -> Tensor | None:
        """The renders' foreground mask for the content loss; ``None`` = unmasked (only when allowed)."""
        if source.masks is not None or self.hparams.content_weight == 0:
            return source.masks
        if not self.hparams.content_without_mask:
            from datamodules.errors import DatasetError

            raise DatasetError(
                f"data (train source), sample {source.ids[0] if source.ids else '?'!r}",
                "has no foreground mask, which PixelDA's masked content loss needs",
                "give renders with masks (a syn2real dataset with masks/), set content_weight: 0, or set "
                "content_without_mask: true for the unmasked pairwise MSE",
            )
        warnings.warn("PixelDA: the renders have no foreground mask; the content loss is unmasked", stacklevel=2)
        return None

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if batch.source.labels is None:
            raise ValueError("PixelDA needs labels on the source domain; the source dataset has none")
        if self.global_step == 0 and batch_idx == 0:
            self.content_mask(batch.source)  # a missing mask is an error before the first update
        super().on_train_batch_start(batch, batch_idx)

    def discriminator_losses(self, x: Tensor, labels: Tensor, generated: Tensor, real: Tensor) -> dict[str, Tensor]:
        """The D-step: D on real vs (detached) generated images, and T on renders and generated images."""
        hp = self.hparams
        real_logits, fake_logits = self.discriminator(real), self.discriminator(generated)
        domain = discriminator_loss(real_logits, fake_logits, mode="vanilla")
        logits_source, logits_generated = self.network(x), self.network(generated)
        task_source, task_generated = task_loss(logits_source, labels), task_loss(logits_generated, labels)
        task = hp.source_task_weight * task_source + hp.generated_task_weight * task_generated
        total = hp.domain_weight * domain + task
        d_acc = torch.cat([(real_logits > 0).float(), (fake_logits < 0).float()]).mean()
        acc_generated = (logits_generated.argmax(1) == labels).float().mean()
        return {
            "loss_d": total,
            "loss_domain": domain,
            "loss_task_source": task_source,
            "loss_task_generated": task_generated,
            "d_acc": d_acc,
            "acc_generated": acc_generated,
        }

    def generator_losses(self, x: Tensor, labels: Tensor, mask: Tensor | None) -> dict[str, Tensor]:
        """The G-step: fool D, keep T's labels, and (if weighted) keep the foreground's pairwise structure."""
        hp = self.hparams
        generated = self.gen(x)
        with kept_bn_statistics(self.discriminator, self.network):
            style = generator_loss(self.discriminator(generated), mode="vanilla")
            task = hp.generated_task_weight * task_loss(self.network(generated), labels)
        content = masked_pairwise_mse(x, generated, mask) if hp.content_weight > 0 else style.new_zeros(())
        total = hp.style_weight * style + hp.task_in_g_weight * task + hp.content_weight * content
        return {"loss_g": total, "loss_g_style": style, "loss_g_task": task, "loss_g_content": content}

    def training_step(self, batch: DomainBatch, batch_idx: int) -> None:
        x, labels, real = batch.source.images, batch.source.labels, batch.target.images
        self.record_size(x)
        opt_g, opt_d = self.optimizers()
        with self.toggled_optimizer(opt_d):
            with torch.no_grad():
                generated = self.gen(x)
            losses_d = self.discriminator_losses(x, labels, generated, real)
            manual_update(self, opt_d, losses_d["loss_d"], name="train/loss_d", clip_norm=self.hparams.clip_norm)
        with self.toggled_optimizer(opt_g):
            losses_g = self.generator_losses(x, labels, self.content_mask(batch.source))
            manual_update(self, opt_g, losses_g["loss_g"], name="train/loss_g", clip_norm=self.hparams.clip_norm)
        self.update_ema()
        self.log_dict({f"train/{k}": v for k, v in {**losses_d, **losses_g}.items()}, batch_size=len(x))

    def configure_optimizers(self) -> Any:
        opt_g = self.optimizer_spec.build(self.gen.parameters())
        opt_d = self.optimizer_spec.build([*self.discriminator.parameters(), *self.network.parameters()])
        return manual_optimization(
            [opt_g, opt_d], self.scheduler_spec, total_steps=self.trainer.estimated_stepping_batches
        )
