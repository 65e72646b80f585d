"""The renderer protocol ``optimize-sim`` drives, the built-in digits simulator behind it, and the search space.

A *knob* is one real number of ψ: a scalar field of the simulator (``clutter``) or one end of a range field
(``scale.low``, ``scale.high``). Strategies move ψ in the unit cube ``[0, 1]^d`` of the searched knobs
(:class:`SearchSpace`), which maps to each knob's search range; the renderer turns a full knob mapping into images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from datamodules.simulator import CLASSES, DigitsSimulator, DigitsSimulatorConfig, config_record


@dataclass
class RenderedBatch:
    """What a renderer returns: images ``B×C×H×W`` in [0, 1] and labels ``B``; masks, depth, ψ per sample optional."""

    images: Tensor
    labels: Tensor
    masks: Tensor | None = None
    depth: Tensor | None = None
    params: list[dict[str, Any]] | None = None


@runtime_checkable
class Renderer(Protocol):
    """A simulator ``optimize-sim`` can drive: ψ (a mapping knob → number) and sample indices → a batch.

    Rendering must be deterministic in ``(psi, seed, index)``: finite differences and paired comparisons render the
    same indices under two ψ and rely on everything else being equal.

    Attributes:
        name: identifies the simulator; a run folder written by another simulator is refused.
        classes: class names (the label of a sample is an index into them).
        channels: image channels.
        size: image side in pixels.
    """

    name: str
    classes: list[str]
    channels: int
    size: int

    def defaults(self) -> dict[str, float]:
        """Every knob's default value."""
        ...

    def domain(self) -> dict[str, tuple[float, float]]:
        """Every knob's valid interval (search ranges must lie inside it)."""
        ...

    def render(self, psi: Mapping[str, float], indices: Sequence[int], *, seed: int) -> RenderedBatch:
        """Render samples ``indices`` under ``psi`` (knobs not in ``psi`` keep their defaults)."""
        ...

    def record(self, psi: Mapping[str, float]) -> dict[str, Any]:
        """ψ as JSON-ready data for the stage record (the simulator's own config format)."""
        ...


DIGITS_DOMAIN: dict[str, tuple[float, float]] = {
    "scale": (0.05, 2.0),
    "aspect": (0.3, 3.0),
    "rotation": (-180.0, 180.0),
    "shear": (-1.0, 1.0),
    "translation": (0.0, 0.5),
    "stroke": (-3.0, 6.0),
    "blur": (0.0, 3.0),
    "noise": (0.0, 0.5),
    "foreground": (0.0, 1.0),
    "background": (0.0, 1.0),
    "gradient": (0.0, 0.5),
    "clutter": (0.0, 1.0),
    "clutter_strokes": (0.0, 8.0),
    "color_jitter": (0.0, 1.0),
    "invert": (0.0, 1.0),
    "depth_tilt": (0.0, 1.0),
    "depth_relief": (0.0, 1.0),
    "elastic": (0.0, 0.5),
}
"""Valid values of the digits simulator's searchable fields (range fields: both ends)."""
INTEGER_FIELDS = frozenset({"stroke", "clutter_strokes"})


class DigitsRenderer:
    """The built-in digits simulator as a :class:`Renderer`: knobs are :class:`DigitsSimulatorConfig` fields.

    Args:
        base: the fixed part of ψ (size, channels, fonts and every field that is not searched).

    Examples:
        >>> r = DigitsRenderer(DigitsSimulatorConfig(size=16))
        >>> r.defaults()["scale.high"], r.domain()["clutter"]
        (0.9, (0.0, 1.0))
        >>> r.render({"scale.low": 1.0, "scale.high": 1.1}, [0, 1], seed=0).images.shape
        torch.Size([2, 1, 16, 16])
    """

    name = "syn2real.digits"
    classes = CLASSES

    def __init__(self, base: DigitsSimulatorConfig | None = None) -> None:
        self.base = base or DigitsSimulatorConfig()
        self.channels, self.size = self.base.channels, self.base.size
        self._cache: tuple[DigitsSimulatorConfig, int, DigitsSimulator] | None = None

    def defaults(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name in DIGITS_DOMAIN:
            value = getattr(self.base, name)
            if isinstance(value, tuple):
                out[f"{name}.low"], out[f"{name}.high"] = float(value[0]), float(value[1])
            else:
                out[name] = float(value)
        return out

    def domain(self) -> dict[str, tuple[float, float]]:
        return {knob: DIGITS_DOMAIN[knob.split(".")[0]] for knob in self.defaults()}

    def config(self, psi: Mapping[str, float]) -> DigitsSimulatorConfig:
        """The simulator config for ψ: a range whose ends crossed is re-ordered, integer fields rounded."""
        values = {**self.defaults(), **psi}
        changes: dict[str, Any] = {}
        for name in DIGITS_DOMAIN:
            cast = (lambda v: round(v)) if name in INTEGER_FIELDS else float
            if f"{name}.low" in values:
                low, high = sorted((values[f"{name}.low"], values[f"{name}.high"]))
                changes[name] = (cast(low), cast(high))
            else:
                changes[name] = cast(values[name])
        return dataclasses.replace(self.base, **changes)

    def render(self, psi: Mapping[str, float], indices: Sequence[int], *, seed: int) -> RenderedBatch:
        config = self.config(psi)
        if self._cache is None or self._cache[:2] != (config, seed):  # dataclass equality: same ψ, same seed
            self._cache = (config, seed, DigitsSimulator(config, seed=seed))
        out = self._cache[2].render(list(indices))
        return RenderedBatch(out.images, out.labels, out.masks, out.depth, out.params)

    def record(self, psi: Mapping[str, float]) -> dict[str, Any]:
        return config_record(self.config(psi))


class SearchSpace:
    """The searched knobs and their ranges; maps ψ to and from the unit cube strategies move in.

    Args:
        renderer: the simulator (its knobs, defaults and valid domain).
        ranges: knob → ``(low, high)`` search range. A range field named without ``.low``/``.high`` searches both
            ends over the same range.

    Raises:
        ValueError: an unknown knob, or a range outside the simulator's valid domain, or with low >= high.

    Examples:
        >>> space = SearchSpace(DigitsRenderer(), {"scale": (0.5, 1.3), "clutter": (0.0, 0.5)})
        >>> space.knobs
        ['scale.low', 'scale.high', 'clutter']
        >>> space.to_psi(torch.tensor([0.0, 1.0, 0.5]))
        {'scale.low': 0.5, 'scale.high': 1.3, 'clutter': 0.25}
    """

    def __init__(self, renderer: Renderer, ranges: Mapping[str, Sequence[float]]) -> None:
        if not ranges:
            raise ValueError("the search space is empty: name at least one simulator field to search")
        domain = renderer.domain()
        expanded: dict[str, tuple[float, float]] = {}
        for name, bounds in ranges.items():
            if len(bounds) != 2:
                raise ValueError(f"search range of {name!r} must be [low, high], got {list(bounds)}")
            knobs = [name] if name in domain else [k for k in domain if k.split(".")[0] == name and "." in k]
            if not knobs:
                fields = sorted({k.split(".")[0] for k in domain})
                raise ValueError(f"unknown simulator field {name!r} in the search space; searchable: {fields}")
            low, high = float(bounds[0]), float(bounds[1])
            for knob in knobs:
                lo, hi = domain[knob]
                if not lo <= low < high <= hi:
                    raise ValueError(
                        f"search range {name}: [{low}, {high}] is outside the valid domain [{lo}, {hi}] of {knob} "
                        "(or has low >= high)"
                    )
                expanded[knob] = (low, high)
        self.renderer = renderer
        self.ranges = expanded
        self.knobs = list(expanded)

    @property
    def dim(self) -> int:
        return len(self.knobs)

    def to_psi(self, u: Tensor) -> dict[str, float]:
        """Unit-cube point → ψ (searched knobs only)."""
        u = u.clamp(0, 1)
        return {
            k: float(lo + float(x) * (hi - lo))
            for k, (lo, hi), x in zip(self.knobs, self.ranges.values(), u, strict=True)
        }

    def to_unit(self, psi: Mapping[str, float]) -> Tensor:
        """ψ → unit-cube point (values outside a range are clipped to it)."""
        return torch.tensor(
            [(psi[k] - lo) / (hi - lo) for k, (lo, hi) in self.ranges.items()], dtype=torch.float64
        ).clamp(0, 1)

    def initial(self, psi: Mapping[str, float] | None = None) -> Tensor:
        """The starting point: ``psi`` or the renderer's defaults, clipped into the search ranges."""
        return self.to_unit({**self.renderer.defaults(), **(psi or {})})


def render_many(
    renderer: Renderer, psi: Mapping[str, float], indices: Sequence[int], *, seed: int, chunk: int = 512
) -> RenderedBatch:
    """Render ``indices`` in chunks and concatenate (images and labels only)."""
    parts = [renderer.render(psi, indices[i : i + chunk], seed=seed) for i in range(0, len(indices), chunk)]
    return RenderedBatch(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]))
