"""Timers behind ``syn2real bench speed``: a CycleGAN iteration (reference loop vs ours), start-up, simulate, refine.

Every function returns seconds (lists of per-iteration times, or one figure per call); :mod:`syn2real.bench.speed`
interleaves the calls in rounds and turns them into ratios. A CycleGAN iteration is timed with ``clock``: CPU time of
the process by default (one torch thread: immune to other load on the machine), wall time with more threads (CPU
time would add up the threads' spinning). Ours is timed from one batch's start to the next's, so every per-step cost
of the Trainer (moving the batch, hooks, schedulers, logging) is inside, and the reference's iteration includes
drawing its two batches.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from datamodules.imageio import uint8_images
from syn2real.bench.speed_reference import CycleGANSize, ReferenceCycleGAN

WARMUP_STEPS = 2


Clock = Callable[[], float]


def _quiet_trainer(root: Path | str, **kwargs: Any) -> Any:
    """A Trainer that logs, checkpoints, validates and prints nothing (one epoch unless told otherwise)."""
    import pytorch_lightning as pl

    quiet = {
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return pl.Trainer(default_root_dir=root, **quiet, **kwargs)


def gpu_clock() -> float:
    """Wall seconds once the GPU's queued work is done (a GPU step is asynchronous)."""
    torch.cuda.synchronize()
    return time.perf_counter()


def reference_step_times(
    size: CycleGANSize, steps: int, *, seed: int = 0, clock: Clock = time.process_time, device: str = "cpu"
) -> list[float]:
    """Seconds of each of ``steps`` reference iterations (after :data:`WARMUP_STEPS` untimed ones)."""
    torch.manual_seed(seed)
    loop = ReferenceCycleGAN(size, device=device)
    shape = (size.batch_size, size.channels, size.image_size, size.image_size)
    times = []
    for i in range(WARMUP_STEPS + steps):
        started = clock()
        loop.step(torch.rand(shape, device=device), torch.rand(shape, device=device))
        if i >= WARMUP_STEPS:
            times.append(clock() - started)
    return times


def ours_step_times(
    size: CycleGANSize,
    steps: int,
    *,
    precision: str = "32-true",
    seed: int = 0,
    clock: Clock = time.process_time,
    device: str = "cpu",
) -> list[float]:
    """Seconds of each of ``steps`` training steps of :class:`refinement.cyclegan.CycleGAN` under a Trainer."""
    import pytorch_lightning as pl

    from datamodules.data_modules import DomainPairDataModule
    from datamodules.sources import RandomSource
    from refinement.cyclegan import CycleGAN

    class StepTimer(pl.Callback):  # one batch's start to the next's (the last step: to the epoch's end)
        def __init__(self) -> None:
            self.starts: list[float] = []

        def on_train_batch_start(self, *args: Any) -> None:
            self.starts.append(clock())

        def on_train_epoch_end(self, *args: Any) -> None:
            self.starts.append(clock())

    torch.manual_seed(seed)
    count = (WARMUP_STEPS + steps) * size.batch_size
    source = {"size": size.image_size, "channels": size.channels, "num_samples": count}
    data = DomainPairDataModule(
        source=RandomSource(**source, seed=0),
        target=RandomSource(**source, seed=1, domain=1, use_labels=False),
        batch_size=size.batch_size,
    )
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = _quiet_trainer(
            tmp,
            accelerator="gpu" if device.startswith("cuda") else "cpu",
            devices=1,
            precision=precision,
            max_epochs=1,
            limit_train_batches=WARMUP_STEPS + steps,
            callbacks=[timer],
        )
        trainer.fit(CycleGAN(**size.model_args(), fd_samples=0), datamodule=data)
    times = [end - start for start, end in zip(timer.starts, timer.starts[1:], strict=False)]
    return times[WARMUP_STEPS:]


def profile_tables(size: CycleGANSize, steps: int, *, rows: int = 15) -> str:
    """torch.profiler's operator table (by self CPU time) for the reference loop and for ours, ``steps`` each."""
    from torch.profiler import ProfilerActivity, profile

    out = []
    for name, run in (("reference", reference_step_times), ("ours (fp32)", ours_step_times)):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run(size, steps)
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
        out.append(f"== {size.name}: {name}, {WARMUP_STEPS + steps} iterations ==\n{table}")
    return "\n".join(out)


def command_seconds(argv: list[str]) -> float:
    """Wall seconds of ``syn2real <argv>`` in a fresh interpreter (what a user waits for at the shell)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "syn2real", *argv], check=True, capture_output=True)
    return time.perf_counter() - started


def simulate_seconds(out: Path, num_samples: int, *, workers: int = 1) -> float:
    """Wall seconds of ``syn2real simulate``'s work (render + write the full format) for ``num_samples`` digits."""
    from syn2real.cli.simulate import simulate_command

    shutil.rmtree(out, ignore_errors=True)  # a previous round's output goes before the timer starts
    started = time.perf_counter()
    argv = ["--out", str(out), "--num-samples", str(num_samples), "--workers", str(workers)]
    status = simulate_command(argv)
    if status != 0:
        raise RuntimeError(f"syn2real simulate {' '.join(argv)} exited with {status}")
    return time.perf_counter() - started


def rendered_arrays(num_samples: int) -> dict[str, np.ndarray]:
    """The default simulator's first ``num_samples`` digits as the arrays the full format stores (uint8, float32)."""
    from datamodules.simulator import DigitsSimulatorConfig
    from syn2real.simopt.space import DigitsRenderer

    batch = DigitsRenderer(DigitsSimulatorConfig()).render({}, list(range(num_samples)), seed=0)
    masks = (batch.masks > 0.5).to(torch.uint8).mul(255)
    return {
        "images": uint8_images(batch.images),  # the writer's own conversion, so the floor encodes the same arrays
        "masks": masks[:, 0].numpy(),
        "depth": batch.depth[:, 0].float().numpy(),
        "labels": batch.labels.numpy(),
    }


def write_floor_seconds(out: Path, arrays: dict[str, np.ndarray]) -> float:
    """Wall seconds of the full-format I/O floor: PIL writing each image and mask PNG, numpy each depth, one CSV."""
    for sub in ("images", "masks", "depth"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with (out / "samples.csv").open("w", newline="") as f:
        rows = csv.writer(f)
        for k in range(len(arrays["labels"])):
            sid = f"{k:07d}"
            Image.fromarray(arrays["images"][k]).save(out / "images" / f"{sid}.png")
            Image.fromarray(arrays["masks"][k]).save(out / "masks" / f"{sid}.png")
            np.save(out / "depth" / f"{sid}.npy", arrays["depth"][k])
            rows.writerow([sid, f"images/{sid}.png", int(arrays["labels"][k]), f"masks/{sid}.png", f"depth/{sid}.npy"])
    return time.perf_counter() - started


def render_floor_seconds(out: Path, num_samples: int) -> float:
    """Wall seconds of simulate's floor: render ``num_samples`` digits in memory, then :func:`write_floor_seconds`."""
    started = time.perf_counter()
    arrays = rendered_arrays(num_samples)
    return time.perf_counter() - started + write_floor_seconds(out, arrays)


def tiny_refiner(folder: Path) -> tuple[Path, torch.nn.Module]:
    """A digits-sized CycleGAN (grey, 32 px) trained one step and checkpointed: what refine runs; its generator."""
    from datamodules.data_modules import DomainPairDataModule
    from datamodules.sources import RandomSource
    from refinement.cyclegan import CycleGAN
    from syn2real.bench.speed_reference import SIZES

    size = SIZES["digits"]
    model = CycleGAN(**{**size.model_args(), "in_channels": 1}, fd_samples=0)
    data = DomainPairDataModule(
        source=RandomSource(size=32, channels=1, num_samples=4, seed=0),
        target=RandomSource(size=32, channels=1, num_samples=4, seed=1, domain=1, use_labels=False),
        batch_size=4,
    )
    trainer = _quiet_trainer(folder, accelerator="cpu", max_steps=2)
    trainer.fit(model, datamodule=data)
    trainer.save_checkpoint(folder / "refiner.ckpt")
    return folder / "refiner.ckpt", model.gen_s2t.eval()


def refine_seconds(ckpt: Path, data: Path, out: Path, *, workers: int = 0) -> float:
    """Wall seconds of ``syn2real refine``'s work on ``data`` (a syn2real dataset)."""
    from rich.console import Console

    from syn2real.export import refine_dataset

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    refine_dataset(ckpt, data, out, workers=workers, console=Console(quiet=True))
    return time.perf_counter() - started


def refine_floor_seconds(generator: torch.nn.Module, data: Path, out: Path, *, batch_size: int = 64) -> float:
    """Wall seconds of the refine floor: read every image with PIL, the generator forward, write every image PNG."""
    paths = sorted((data / "images").iterdir())
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            arrays = [np.asarray(Image.open(p)) for p in chunk]
            x = torch.from_numpy(np.stack(arrays)).float().div_(255.0)
            x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
            y = generator(x).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
            y = y[:, 0].numpy() if y.shape[1] == 1 else y.permute(0, 2, 3, 1).numpy()
            for p, image in zip(chunk, y, strict=True):
                Image.fromarray(image).save(out / p.name)
    return time.perf_counter() - started
