"""Fréchet / kernel distance (EfficientNet-Lite0 features) between syn2real datasets and the real digits.

Usage: ``python benchmarks/dataset_distance.py DATASET [DATASET ...] [--images 797] [--image-size 128]``.
The real reference is the real val + test splits (797 images; their labels are not read).
"""

from __future__ import annotations

import argparse
import sys

import torch

from datamodules.format import Syn2RealDataset
from datamodules.real_digits import RealDigits
from syn2real.batch import collate
from syn2real.distances import FeatureDistances


def distance(dataset: str, *, images: int, image_size: int) -> dict[str, float]:
    metric = FeatureDistances(image_size=image_size)
    real = torch.cat([RealDigits("val").images, RealDigits("test").images])[:images]
    for chunk in real.split(128):
        metric.update(chunk, real=True)
    synthetic = Syn2RealDataset(dataset)
    picks = torch.randperm(len(synthetic), generator=torch.Generator().manual_seed(0))[:images].tolist()
    for start in range(0, len(picks), 128):
        metric.update(collate([synthetic[i] for i in picks[start : start + 128]]).images, real=False)
    return metric.compute()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--images", type=int, default=797)
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args()
    for path in args.datasets:
        d = distance(path, images=args.images, image_size=args.image_size)
        sys.stdout.write(f"{path}: fd_effnet {d['fd_effnet']:.1f}  kid_effnet {d['kid_effnet']:.4f}\n")
