"""Rendered digits cached on disk by (renderer, ψ, seed, count), so repeated runs do not render again.

Every digits run renders its 10,000 training images (5,000 scenes for ``digits-scenes``) before its first batch,
the same images for the same ψ, seed and count: the zoo renders them once per cell, 5 seeds × every row. The cache
keeps the rendered tensors (exactly, float32) in one file per key. The key holds everything the images depend on:
the renderer's name and arguments, the source text of the modules that draw them, and the versions of torch, numpy
and matplotlib (whose fonts are the glyphs); any change renders afresh. Files are written atomically (a half-written
file is never read) and an unreadable one is rendered again and replaced, with a warning.

Where: ``$SYN2REAL_CACHE_DIR`` or ``~/.cache/syn2real/renders``; ``SYN2REAL_CACHE_DIR=off`` turns it off. A digits
training set takes about 90 MB (grey) or 170 MB (colour), the digits-scenes one 370 MB (images stay float32;
labels, masks and other exact small values are stored compactly and restored); delete the folder to reclaim it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

ENV = "SYN2REAL_CACHE_DIR"
OFF = ("", "0", "off", "none", "false")
_SOURCES = ("simulator.py", "glyphs.py", "digit_scenes.py", "sources.py", "render_cache.py", "../syn2real/batch.py")


def cache_dir() -> Path | None:
    """The cache folder, or ``None`` when ``$SYN2REAL_CACHE_DIR`` turns it off."""
    value = os.environ.get(ENV)
    if value is not None and value.strip().lower() in OFF:
        return None
    return Path(value).expanduser() if value else Path.home() / ".cache" / "syn2real" / "renders"


@lru_cache(maxsize=1)
def _code_digest() -> str:
    import matplotlib
    import numpy as np
    import PIL

    h = hashlib.sha256()
    for name in _SOURCES:
        h.update((Path(__file__).parent / name).read_bytes())
    h.update(f"{torch.__version__}|{np.__version__}|{matplotlib.__version__}|{PIL.__version__}".encode())
    return h.hexdigest()


def cache_key(renderer: str, arguments: dict[str, Any]) -> str:
    """The file name of ``renderer``'s output for these (JSON-able) ``arguments`` with the current code."""
    text = json.dumps({"renderer": renderer, "arguments": arguments, "code": _code_digest()}, sort_keys=True)
    return f"{renderer}-{hashlib.sha256(text.encode()).hexdigest()[:24]}.pt"


def _compact(tensors: dict[str, Tensor | None]) -> dict[str, Any]:
    """Lossless smaller storage: small non-negative integers as uint8, 0/1 floats as bool, with the dtype to restore."""
    out: dict[str, Any] = {}
    for name, t in tensors.items():
        if t is None:
            out[name] = None
        elif not t.is_floating_point() and t.numel() and int(t.min()) >= 0 and int(t.max()) <= 255:
            out[name] = {"data": t.to(torch.uint8), "dtype": str(t.dtype)}
        elif t.is_floating_point() and t.numel() and bool(((t == 0) | (t == 1)).all()):
            out[name] = {"data": t.bool(), "dtype": str(t.dtype)}
        else:
            out[name] = {"data": t, "dtype": str(t.dtype)}
    return out


def _restore(stored: dict[str, Any]) -> dict[str, Tensor | None]:
    return {
        name: None if v is None else v["data"].to(getattr(torch, v["dtype"].removeprefix("torch.")))
        for name, v in stored.items()
    }


def cached_render(
    renderer: str, arguments: dict[str, Any], render: Callable[[], dict[str, Tensor | None]]
) -> dict[str, Tensor | None]:
    """``render()``'s tensors, from the cache when this renderer already drew them for these arguments."""
    try:
        root = cache_dir()
        path = None if root is None else root / cache_key(renderer, arguments)
        cached = path is not None and path.is_file()
    except (OSError, RuntimeError) as err:  # no home folder, a folder we may not enter: no cache
        warnings.warn(f"render cache unavailable ({err}); rendering", stacklevel=2)
        return render()
    if path is None:
        return render()
    if cached:
        try:
            return _restore(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as err:  # a damaged file: render again and replace it
            warnings.warn(f"render cache {path} unreadable ({type(err).__name__}); rendering again", stacklevel=2)
    tensors = render()
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(_compact(tensors), partial)  # torch reports a full disk as RuntimeError
        os.replace(partial, path)  # atomic: readers see the whole file or none
    except (OSError, RuntimeError) as err:  # a read-only or full disk costs the cache, not the run
        warnings.warn(f"render cache {path.parent} not writable ({err}); continuing without it", stacklevel=2)
    finally:
        with contextlib.suppress(OSError):  # nothing to remove where nothing could be written
            partial.unlink(missing_ok=True)
    return tensors
