"""What a benchmark cell was run with: its arguments, with every config file replaced by its parsed content.

A finished cell is reused by folder; without a record of its inputs, a config edited since (a network's depth, a
loss weight) would be reported beside runs of the new config as if they were the same experiment. The fingerprint
is a digest of the cell's ``syn2real fit`` arguments in which each YAML file named by an argument is replaced by
its parsed content and, recursively, the content of every YAML file it names (``trainer: ../trainer/cpu.yaml``,
resolved from the including file's folder, as LightningCLI does). Parsed, so comments and formatting do not count;
content rather than paths, and an absolute path inside a config (the zoo writes the refiner checkpoint's) taken
relative to that config's folder, so a checkout or ``--out`` moved elsewhere keeps its runs. A config that cannot
be read gives no fingerprint (``None``): nothing is compared and nothing set aside on a typo. Code changes are not
seen.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

FINGERPRINT_FILE = "inputs.json"
YAML_SUFFIXES = (".yaml", ".yml")


class UnreadableConfigError(Exception):
    """A config file named by the arguments (or included) could not be read or parsed."""


def cell_fingerprint(args: Sequence[str]) -> str | None:
    """Digest of ``args`` with every YAML file they name replaced by its content (and its includes', recursively).

    ``None`` when one of those files cannot be read or parsed (the run itself reports that config's error).

    Examples:
        >>> cell_fingerprint(["--trainer.max_epochs=3"]) == cell_fingerprint(["--trainer.max_epochs=3"])
        True
        >>> cell_fingerprint(["--trainer.max_epochs=3"]) == cell_fingerprint(["--trainer.max_epochs=4"])
        False
    """
    try:
        parts = [_argument(arg) for arg in args]
    except UnreadableConfigError:
        return None
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _argument(arg: str) -> Any:
    flag, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
    path = Path(value)
    if value.endswith(YAML_SUFFIXES) and path.is_file():
        return [flag + eq, _content(path.resolve(), ())]
    return arg


def _content(path: Path, including: tuple[Path, ...]) -> Any:
    """The parsed file with every YAML path in it replaced by that file's content (cycles stop at the repeat)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as err:  # ValueError: not UTF-8
        raise UnreadableConfigError(path) from err
    return _expand(data, path.parent, (*including, path))


def _expand(node: Any, folder: Path, including: tuple[Path, ...]) -> Any:
    if isinstance(node, dict):
        return {str(k): _expand(v, folder, including) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, folder, including) for v in node]
    if isinstance(node, str) and node.endswith(YAML_SUFFIXES):
        target = (folder / node).resolve()
        if target.is_file() and target not in including:
            return {"file": node, "content": _content(target, including)}
    if isinstance(node, str) and Path(node).is_absolute():
        return {"path": os.path.relpath(node, folder)}
    return node


def recorded_fingerprint(folder: Path) -> str | None:
    """The fingerprint a finished run recorded, ``None`` for a run from before fingerprints (or an unreadable one)."""
    try:
        return str(json.loads((folder / FINGERPRINT_FILE).read_text())["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_fingerprint(folder: Path, args: Sequence[str], fingerprint: str) -> None:
    """Write what the run in ``folder`` was started with, next to its ``results.json``."""
    (folder / FINGERPRINT_FILE).write_text(json.dumps({"fingerprint": fingerprint, "args": list(args)}, indent=1))


def config_files(args: Sequence[str]) -> Iterator[Path]:
    """The YAML files named directly by ``args`` (for messages)."""
    for arg in args:
        value = arg.partition("=")[2] if arg.startswith("--") else arg
        if value.endswith(YAML_SUFFIXES):
            yield Path(value)
