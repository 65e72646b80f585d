"""Reading and writing images, masks and depth maps as the syn2real format stores them.

Images and masks are PNG (8-bit grey or RGB; 16-bit grey images are read scaled to [0, 1]), segmentation label
maps are 8-bit PNG, depth maps are ``.npy`` float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from datamodules.errors import DatasetError

_RESTORE = "restore the file or remove its row from the sample table"
_BOMB = "resize it (or raise PIL.Image.MAX_IMAGE_PIXELS if the file is trusted)"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def image_size(path: Path, *, decode: bool = False) -> tuple[int, int]:
    """(height, width) of an image file, from its header.

    ``decode`` also decodes every pixel, so a corrupt or truncated file is caught here and not at the training batch
    that holds it.
    """
    try:
        with Image.open(path) as im:
            w, h = im.size
            if decode:
                im.load()
    except FileNotFoundError:
        raise DatasetError(path, "file is missing", _RESTORE) from None
    except Image.DecompressionBombError as err:
        raise DatasetError(path, f"is too large to decode safely ({err})", _BOMB) from None
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(path, f"cannot be read as an image ({err})", "re-export or remove this file") from None
    return h, w


def read_image(path: Path, channels: int) -> Tensor:
    """Image file -> ``C×H×W`` float32 in [0, 1] with ``channels`` channels (1 = grey, 3 = RGB)."""
    try:
        with Image.open(path) as im:
            if im.mode.startswith("I;16") or im.mode == "I":  # 16-bit grey: scaled to [0, 1], not clipped to 8 bits
                wide = torch.from_numpy(np.asarray(im, dtype=np.float32) / 65535.0).clamp_(0, 1)
                return wide.unsqueeze(0).expand(channels, -1, -1).clone()
            im = im.convert("L" if channels == 1 else "RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetError(path, "file is missing", _RESTORE) from None
    except Image.DecompressionBombError as err:
        raise DatasetError(path, f"is too large to decode safely ({err})", _BOMB) from None
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(path, f"cannot be read as an image ({err})", "re-export or remove this file") from None
    t = torch.from_numpy(arr.copy())
    t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
    return t.float().div_(255.0)


def read_label_map(path: Path) -> Tensor:
    """Segmentation label PNG (one class index per pixel) -> ``H×W`` long."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise DatasetError(path, f"label map has mode {im.mode}", "save label maps as 8-bit single-channel PNG")
            arr = np.asarray(im)
    except FileNotFoundError:
        raise DatasetError(path, "label map is missing", "restore it or remove its row") from None
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(path, f"cannot be read as a label map ({err})", "re-export or remove this file") from None
    return torch.from_numpy(arr.astype(np.int64))


def read_depth(path: Path) -> Tensor:
    """Depth ``.npy`` (H×W float) -> ``1×H×W`` float32."""
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(path, "depth map is missing", "restore it or remove its row") from None
    except (ValueError, OSError) as err:
        raise DatasetError(path, f"cannot be read as a .npy depth map ({err})", "re-export this file") from None
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[0] == 1)):
        raise DatasetError(path, f"depth map has shape {arr.shape}", "save one H×W float array per sample")
    if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
        raise DatasetError(
            path, "depth map holds NaN, infinite or non-numeric values", "re-render it with finite depth"
        )
    return torch.from_numpy(np.asarray(arr, dtype=np.float32)).reshape(1, *arr.shape[-2:])


def uint8_images(images: Tensor) -> np.ndarray:
    """``N×C×H×W`` [0, 1] -> ``N×H×W`` (grey) or ``N×H×W×C`` uint8 arrays as PNG stores them, rounding to nearest."""
    arr = images.detach().float().clamp(0, 1).mul(255.0).round().to(torch.uint8).cpu()
    return arr[:, 0].numpy() if arr.shape[1] == 1 else arr.permute(0, 2, 3, 1).numpy()
