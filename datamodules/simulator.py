"""The built-in digits simulator: procedural digits 0–9 under parameters ψ, with label, foreground mask and depth.

Glyphs come from the TrueType fonts bundled with matplotlib (:mod:`datamodules.glyphs`). Each sample's parameters
are drawn from ``numpy.random.default_rng([seed, index])``, so a sample depends only on ``(seed, index)``, never on
which other samples are rendered with it. Rendering is batched in torch (supersampled 2× then averaged).

Depth is the digit as a raised relief on a tilted plane: ``z = 1 + a·x + b·y − relief·alpha`` in relative units
(smaller = closer to the camera), which gives privileged-information methods (SPIGAN) something real to use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from datamodules.glyphs import GLYPH_FILL, glyph_atlas
from syn2real.batch import Sample

CLASSES = [str(d) for d in range(10)]


@dataclass
class DigitsSimulatorConfig:
    """Simulator parameters ψ: each ``(low, high)`` pair is a uniform range drawn per sample.

    Attributes:
        size: output side in pixels.
        channels: 1 (grey) or 3 (colour: foreground and background colours jittered per channel).
        fonts: bundled font names to draw from (``None``: every bundled digit font).
        scale: digit height as a fraction of the image side.
        aspect: width stretch.
        rotation: degrees.
        shear: horizontal shear factor.
        translation: maximum shift of the digit centre, as a fraction of the side, per axis.
        stroke: stroke-width change in glyph-atlas pixels (negative thins); integers.
        blur: Gaussian blur sigma in output pixels.
        noise: standard deviation of additive Gaussian pixel noise.
        foreground: digit intensity.
        background: background intensity.
        gradient: amplitude of a linear illumination gradient over the background.
        clutter: probability that the background holds clutter strokes.
        clutter_strokes: how many strokes a cluttered background holds.
        color_jitter: per-channel colour jitter (``channels: 3`` only).
        invert: probability of a dark digit on a light background.
        depth_tilt: maximum slope of the depth plane per axis.
        depth_relief: height of the digit relief in depth units.
        elastic: amplitude of a smooth random displacement of the glyph (a handwriting-like wobble of the strokes), as
            a fraction of the side; ``(0, 0)`` = off.
        elastic_grid: control points per axis of the displacement field (fewer = smoother, larger bends).
    """

    size: int = 32
    channels: int = 1
    fonts: list[str] | None = None
    scale: tuple[float, float] = (0.6, 0.9)
    aspect: tuple[float, float] = (0.8, 1.2)
    rotation: tuple[float, float] = (-15.0, 15.0)
    shear: tuple[float, float] = (-0.25, 0.25)
    translation: float = 0.08
    stroke: tuple[int, int] = (-1, 4)
    blur: tuple[float, float] = (0.0, 1.2)
    noise: tuple[float, float] = (0.0, 0.06)
    foreground: tuple[float, float] = (0.6, 1.0)
    background: tuple[float, float] = (0.0, 0.3)
    gradient: float = 0.15
    clutter: float = 0.3
    clutter_strokes: int = 2
    color_jitter: float = 0.4
    invert: float = 0.0
    depth_tilt: float = 0.3
    depth_relief: float = 0.2
    elastic: tuple[float, float] = (0.0, 0.0)
    elastic_grid: int = 4

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {self.channels}")
        if self.size < 8:
            raise ValueError(f"size must be at least 8 pixels, not {self.size}")
        if self.elastic_grid < 2:
            raise ValueError(f"elastic_grid must be at least 2 control points, not {self.elastic_grid}")
        ranges = ("scale", "aspect", "rotation", "shear", "stroke", "blur", "noise", "foreground", "background")
        for name in (*ranges, "elastic"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name} range ({low}, {high}) has low > high")


@dataclass
class Rendered:
    """A rendered batch: images ``B×C×H×W`` in [0, 1], labels ``B``, masks and depth ``B×1×H×W``, ψ per sample."""

    images: Tensor
    labels: Tensor
    masks: Tensor
    depth: Tensor
    params: list[dict[str, Any]]


class DigitsSimulator:
    """Render digits deterministically from ``(seed, index)``.

    Args:
        config: the simulator parameters ψ.
        seed: the dataset seed.

    Examples:
        >>> sim = DigitsSimulator(DigitsSimulatorConfig(size=16), seed=0)
        >>> out = sim.render([0, 1, 2])
        >>> tuple(out.images.shape), out.images.min() >= 0, out.images.max() <= 1
        ((3, 1, 16, 16), tensor(True), tensor(True))
        >>> torch.equal(sim.render([2]).images[0], out.images[2])
        True
    """

    def __init__(self, config: DigitsSimulatorConfig | None = None, *, seed: int = 0) -> None:
        self.config = config or DigitsSimulatorConfig()
        self.seed = seed
        self.fonts, atlas = glyph_atlas(self.config.fonts)
        self._strokes = _stroke_variants(atlas, *self.config.stroke)  # K×F×10×1×A×A

    def draw(self, index: int) -> dict[str, Any]:
        """The parameters ψ of sample ``index`` (pure function of ``(seed, index)``)."""
        c = self.config
        rng = np.random.default_rng([self.seed, index])
        u = rng.uniform
        invert = bool(rng.random() < c.invert)
        p: dict[str, Any] = {
            "digit": int(rng.integers(10)),
            "font": self.fonts[int(rng.integers(len(self.fonts)))],
            "scale": u(*c.scale),
            "aspect": u(*c.aspect),
            "rotation": u(*c.rotation),
            "shear": u(*c.shear),
            "dx": u(-c.translation, c.translation),
            "dy": u(-c.translation, c.translation),
            "stroke": int(rng.integers(c.stroke[0], c.stroke[1] + 1)),
            "blur": u(*c.blur),
            "noise": u(*c.noise),
            "foreground": u(*c.foreground),
            "background": u(*c.background),
            "invert": invert,
            "gradient": u(-c.gradient, c.gradient),
            "gradient_angle": u(0, 2 * math.pi),
            "tilt_x": u(-c.depth_tilt, c.depth_tilt),
            "tilt_y": u(-c.depth_tilt, c.depth_tilt),
            "clutter": bool(rng.random() < c.clutter),
        }
        p["fg_color"] = (1 + c.color_jitter * (rng.random(3) - 0.5)).tolist() if c.channels == 3 else [1.0]
        p["bg_color"] = (1 + c.color_jitter * (rng.random(3) - 0.5)).tolist() if c.channels == 3 else [1.0]
        # clutter strokes: (angle, offset, width, intensity), drawn always so ψ has a fixed layout
        p["strokes"] = [[u(0, math.pi), u(-0.9, 0.9), u(0.03, 0.1), u(0.2, 0.8)] for _ in range(c.clutter_strokes)]
        p["noise_seed"] = int(rng.integers(2**31))
        # drawn last, so adding the knob left every earlier draw (and the default renders) unchanged
        p["elastic"] = u(*c.elastic)
        p["elastic_seed"] = int(rng.integers(2**31))
        return p

    def render(self, indices: Sequence[int]) -> Rendered:
        """Render the samples ``indices`` as one batch."""
        params = [self.draw(i) for i in indices]
        c, n, s = self.config, len(params), self.config.size
        alpha = self._glyphs(params)  # B×1×S×S coverage in [0, 1]
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, s), torch.linspace(-1, 1, s), indexing="ij")
        col = lambda key: torch.tensor([p[key] for p in params], dtype=torch.float32).view(n, 1, 1, 1)  # noqa: E731
        angle = col("gradient_angle")
        background = col("background") + col("gradient") * (xx * torch.cos(angle) + yy * torch.sin(angle))
        background = background * torch.tensor([p["bg_color"] for p in params]).view(n, -1, 1, 1)
        clutter = self._clutter(params, xx, yy)
        background = background * (1 - clutter) + clutter * col("foreground") * 0.7
        foreground = col("foreground") * torch.tensor([p["fg_color"] for p in params]).view(n, -1, 1, 1)
        images = background * (1 - alpha) + foreground * alpha
        inv = col("invert")
        images = inv * (1 - images) + (1 - inv) * images
        images = _gaussian_blur(images, col("blur").view(n))
        noise = torch.stack(
            [
                torch.from_numpy(
                    np.random.default_rng(p["noise_seed"]).standard_normal((c.channels, s, s)).astype(np.float32)
                )
                for p in params
            ]
        )
        images = (images + noise * col("noise")).clamp_(0, 1)
        depth = 1 + col("tilt_x") * xx + col("tilt_y") * yy - c.depth_relief * alpha
        return Rendered(
            images=images,
            labels=torch.tensor([p["digit"] for p in params]),
            masks=(alpha > 0.5).float(),
            depth=depth,
            params=params,
        )

    def sample(self, index: int) -> Sample:
        out = self.render([index])
        return Sample(
            image=out.images[0], label=out.labels[0], mask=out.masks[0], depth=out.depth[0], id=f"{index:07d}"
        )

    def _glyphs(self, params: list[dict[str, Any]]) -> Tensor:
        """Pick, thicken/thin and warp each sample's glyph; supersample 2× and average down."""
        fonts = torch.tensor([self.fonts.index(p["font"]) for p in params])
        digits = torch.tensor([p["digit"] for p in params])
        strokes = torch.tensor([p["stroke"] for p in params]) - self.config.stroke[0]
        glyph = self._strokes[strokes, fonts, digits]  # B×1×A×A
        r = np.radians([p["rotation"] for p in params])
        sh = np.array([p["shear"] for p in params])
        sy = np.array([p["scale"] for p in params]) / GLYPH_FILL  # the atlas glyph fills GLYPH_FILL of its canvas
        sx = sy * np.array([p["aspect"] for p in params])
        cos, sin = np.cos(r), np.sin(r)
        # forward map A = R(r) · Shear(sh) · diag(sx, sy); affine_grid wants the inverse: in = A⁻¹ (out − t)
        row0 = np.stack([cos * sx, (cos * sh - sin) * sy], -1)
        row1 = np.stack([sin * sx, (sin * sh + cos) * sy], -1)
        a = np.stack([row0, row1], 1)
        inv = np.linalg.inv(a)
        shift = 2 * np.array([[p["dx"], p["dy"]] for p in params])
        thetas = torch.from_numpy(np.concatenate([inv, -(inv @ shift[..., None])], axis=2)).float()
        s = self.config.size
        grid = F.affine_grid(thetas, [len(params), 1, 2 * s, 2 * s], align_corners=False)
        if any(p["elastic"] > 0 for p in params):
            grid = grid + self._displacement(params, 2 * s)
        warped = F.grid_sample(glyph, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return F.avg_pool2d(warped, 2).clamp_(0, 1)

    def _displacement(self, params: list[dict[str, Any]], side: int) -> Tensor:
        """Smooth per-sample displacements ``B×side×side×2`` in grid units.

        A control grid of U(−1, 1) offsets, bicubically upsampled, times the sample's amplitude (a fraction of the
        side is twice that in grid units).
        """
        g = self.config.elastic_grid
        coarse = np.stack([np.random.default_rng(p["elastic_seed"]).uniform(-1, 1, (2, g, g)) for p in params])
        field = F.interpolate(torch.from_numpy(coarse).float(), size=(side, side), mode="bicubic", align_corners=True)
        amplitude = torch.tensor([2 * p["elastic"] for p in params], dtype=torch.float32).view(-1, 1, 1, 1)
        return (field * amplitude).permute(0, 2, 3, 1)

    def _clutter(self, params: list[dict[str, Any]], xx: Tensor, yy: Tensor) -> Tensor:
        """Straight strokes across the background: a soft line per (angle, offset, width, intensity)."""
        if self.config.clutter_strokes == 0:
            return torch.zeros(len(params), 1, *xx.shape)
        st = torch.tensor([p["strokes"] for p in params], dtype=torch.float32)  # B×K×4
        on = torch.tensor([p["clutter"] for p in params], dtype=torch.float32).view(-1, 1, 1, 1)
        ang, off, width, level = (st[..., i].view(*st.shape[:2], 1, 1) for i in range(4))
        dist = (xx * torch.cos(ang) + yy * torch.sin(ang) - off).abs()
        lines = (level * (1 - dist / width).clamp(min=0)).amax(dim=1, keepdim=True)
        return lines * on


def _stroke_variants(atlas: Tensor, low: int, high: int) -> Tensor:
    """The atlas thinned (k < 0, min-pool) or thickened (k > 0, max-pool) by |k| pixels, for k in low..high."""
    out = []
    for k in range(low, high + 1):
        g = atlas.flatten(0, 1)
        for _ in range(abs(k)):
            g = F.max_pool2d(g, 3, 1, 1) if k > 0 else -F.max_pool2d(-g, 3, 1, 1)
        out.append(g.view_as(atlas))
    return torch.stack(out)


def _gaussian_blur(images: Tensor, sigma: Tensor, radius: int = 3) -> Tensor:
    """Blur each image with its own Gaussian (``sigma`` ``B``; 0 leaves it unchanged) via one grouped conv."""
    b, c, h, w = images.shape
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    safe = sigma.clamp(min=1e-3).view(b, 1)
    k1 = torch.exp(-(x.view(1, -1) ** 2) / (2 * safe**2))
    k1 = k1 / k1.sum(dim=1, keepdim=True)
    kernel = (k1.unsqueeze(2) * k1.unsqueeze(1)).repeat_interleave(c, dim=0).unsqueeze(1)  # (B·C)×1×k×k
    padded = F.pad(images.reshape(1, b * c, h, w), [radius] * 4, mode="replicate")
    return F.conv2d(padded, kernel, groups=b * c).view(b, c, h, w)


def config_record(config: DigitsSimulatorConfig) -> dict[str, Any]:
    """The simulator config as JSON-ready data, for ``dataset.json``."""
    return asdict(config)
