"""Digit glyphs rasterized from the TrueType fonts that ship inside matplotlib (no download, no system fonts)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.ft2font import FT2Font
from PIL import Image

ATLAS_SIZE = 64
"""Side of the square canvas each glyph is drawn on; the glyph's height fills ``GLYPH_FILL`` of it."""
GLYPH_FILL = 0.75
DIGITS = "0123456789"
SYMBOL_FONTS = frozenset({"cmsy10", "cmex10"})
"""TeX symbol fonts map the digit code points to math symbols (∞, ∈, ...): never digits."""


def font_dir() -> Path:
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _raster(font: FT2Font, char: str) -> np.ndarray:
    font.set_text(char, 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    img = np.asarray(font.get_image(), dtype=np.float32) / 255.0
    ys, xs = np.nonzero(img > 0.05)
    if len(ys) == 0:
        return np.zeros((0, 0), np.float32)
    return img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _place(glyph: np.ndarray) -> np.ndarray:
    """Scale a cropped glyph so its height is ``GLYPH_FILL`` of the canvas and centre it."""
    h, w = glyph.shape
    target_h = round(ATLAS_SIZE * GLYPH_FILL)
    scale = min(target_h / h, (ATLAS_SIZE - 4) / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = np.asarray(Image.fromarray(glyph).resize((nw, nh), Image.Resampling.BILINEAR), dtype=np.float32)
    canvas = np.zeros((ATLAS_SIZE, ATLAS_SIZE), np.float32)
    top, left = (ATLAS_SIZE - nh) // 2, (ATLAS_SIZE - nw) // 2
    canvas[top : top + nh, left : left + nw] = resized
    return np.clip(canvas, 0.0, 1.0)


def digit_fonts() -> list[str]:
    """Names of the bundled fonts that draw all ten digits as ten distinct glyphs, sorted."""
    return list(_atlas()[0])


@lru_cache(maxsize=1)
def _atlas() -> tuple[tuple[str, ...], torch.Tensor]:
    names, glyphs = [], []
    for path in sorted(font_dir().glob("*.ttf")):
        if path.stem in SYMBOL_FONTS:
            continue
        font = FT2Font(str(path))
        font.set_size(96, 72)
        if any(font.get_char_index(ord(c)) == 0 for c in DIGITS):
            continue
        rasters = [_raster(font, c) for c in DIGITS]
        if any(r.size == 0 for r in rasters):
            continue
        placed = np.stack([_place(r) for r in rasters])
        flat = placed.reshape(10, -1)
        if np.abs(flat[:, None] - flat[None]).sum(-1)[~np.eye(10, dtype=bool)].min() < 1.0:
            continue  # placeholder fonts draw one box for every character
        names.append(path.stem)
        glyphs.append(placed)
    return tuple(names), torch.from_numpy(np.stack(glyphs)).unsqueeze(2)  # F×10×1×S×S


def glyph_atlas(fonts: list[str] | None = None) -> tuple[list[str], torch.Tensor]:
    """``(font names, F×10×1×S×S float atlas)`` for the requested fonts (all digit fonts when ``None``).

    Raises:
        ValueError: naming any requested font that is not bundled, and the available ones.
    """
    names, atlas = _atlas()
    if fonts is None:
        return list(names), atlas
    unknown = [f for f in fonts if f not in names]
    if unknown:
        raise ValueError(f"unknown fonts {unknown}; bundled digit fonts: {list(names)}")
    idx = [names.index(f) for f in fonts]
    return list(fonts), atlas[idx]
