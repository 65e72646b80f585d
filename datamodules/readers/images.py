"""File helpers shared by the simulator-output readers: decoding with errors that name the file, colour-keyed maps."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from datamodules.errors import DatasetError

_INTS = re.compile(r"-?\d+")


def read_json(path: Path) -> Any:
    """Parsed JSON, with an error naming the file when it is missing or malformed."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(path, "is missing", "restore the file the simulator wrote") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(path, f"is not valid JSON ({err})", "restore or re-export the file") from None


def read_array_image(path: Path) -> np.ndarray:
    """An image file fully decoded to an array as stored (RGBA stays RGBA, 16/32-bit ids stay integers)."""
    try:
        with Image.open(path) as im:
            if im.mode == "P":
                im = im.convert("RGBA")
            return np.asarray(im).copy()
    except FileNotFoundError:
        raise DatasetError(path, "is missing", "restore the file the simulator wrote") from None
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(path, f"cannot be read as an image ({err})", "re-render or remove this frame") from None


def read_rgb(path: Path) -> np.ndarray:
    """An RGB render as ``H×W×3`` uint8 (grey replicated, alpha dropped)."""
    image = read_array_image(path)
    image = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
    return image.astype(np.uint8)


def read_npy(path: Path, shape: tuple[int, int], what: str) -> np.ndarray:
    """An ``H×W`` ``.npy`` array that must match the frame's image size."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DatasetError(path, f"cannot be read as a .npy array ({err})", "re-export this file") from None
    arr = arr.reshape(arr.shape[:2]) if arr.ndim == 3 and arr.shape[2] == 1 else arr
    if arr.shape != shape:
        raise DatasetError(
            path,
            f"{what} array is {arr.shape}, its image is {shape[0]}×{shape[1]}",
            f"re-render {what} at the image resolution",
        )
    return arr.astype(np.float32)


def parse_key(key: str | int | list[int] | tuple[int, ...]) -> tuple[int, ...]:
    """A colour or id key as written by simulators: ``"(140, 25, 255, 255)"``, ``[140, 25, 255, 255]`` or ``"7"``."""
    if isinstance(key, int):
        return (key,)
    if isinstance(key, list | tuple):
        return tuple(int(v) for v in key)
    return tuple(int(v) for v in _INTS.findall(key))


def _codes(pixels: np.ndarray) -> np.ndarray:
    """One int64 per pixel: the id of a 2-D map, or the packed channels of a colour map."""
    if pixels.ndim == 2:
        return pixels.astype(np.int64)
    codes = np.zeros(pixels.shape[:2], dtype=np.int64)
    for c in range(pixels.shape[2]):
        codes = (codes << 8) | pixels[..., c].astype(np.int64)
    return codes


def _code(key: tuple[int, ...], channels: int) -> int:
    if channels == 0:
        return key[0]
    key = key[:channels] if len(key) >= channels else (*key, *(255,) * (channels - len(key)))
    code = 0
    for v in key:
        code = (code << 8) | v
    return code


def colour_keys(pixels: np.ndarray, table: dict[Any, Any], image: Path, definitions: Path) -> tuple[np.ndarray, list]:
    """Index every pixel into the keys of ``table`` (colour or id keys, as :func:`parse_key` reads them).

    Returns ``(index map, keys)``: ``keys[index[y, x]]`` is the table key of pixel ``(y, x)``.

    Raises:
        DatasetError: naming the image, the colour and the definitions file when a colour has no definition.
    """
    channels = 0 if pixels.ndim == 2 else pixels.shape[2]
    by_code = {_code(parse_key(k), channels): k for k in table}
    codes = _codes(pixels)
    present, inverse = np.unique(codes, return_inverse=True)
    keys = []
    for code in present.tolist():
        if code not in by_code:
            shifts = [8 * (channels - 1 - c) for c in range(channels)]
            colour = tuple((code >> s) & 255 for s in shifts) if channels else (code,)
            raise DatasetError(
                image,
                f"label colour {colour} has no definition in {definitions.name}",
                f"restore {definitions.name} as the simulator wrote it with this frame, or re-render",
            )
        keys.append(by_code[code])
    return inverse.reshape(codes.shape), keys


def semantic_from_colours(
    pixels: np.ndarray, table: dict[Any, str | None], class_names: list[str], image: Path, definitions: Path
) -> np.ndarray:
    """A colour- or id-keyed segmentation as class-name indices (-1 where ``table`` names no object, ``None``)."""
    keys, colours = colour_keys(pixels, table, image, definitions)
    names = [table[c] for c in colours]
    lut = np.array([-1 if name is None else class_names.index(name) for name in names], dtype=np.int32)
    return lut[keys]


def scalar_params(record: dict[str, Any], prefix: str = "", *, max_list: int = 16) -> dict[str, Any]:
    """The ψ a format records per frame: numbers, strings, booleans and short numeric lists, nested keys joined.

    Nested records become ``outer.inner`` keys; the result is JSON-serialisable.
    """
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(scalar_params(value, f"{name}.", max_list=max_list))
        elif (
            isinstance(value, bool | int | float | str)
            or value is None
            or (
                isinstance(value, list)
                and len(value) <= max_list
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            )
        ):
            out[name] = value
        elif isinstance(value, list) and len(value) <= max_list and all(isinstance(v, list) for v in value):
            flat = [v for row in value for v in row]
            if len(flat) <= max_list and all(isinstance(v, int | float) for v in flat):
                out[name] = flat
    return out
