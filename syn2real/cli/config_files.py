"""Config files that compose: a group included from another file, then single keys overridden below it.

::

    trainer: ../trainer/cpu.yaml      # the shared trainer block
    trainer.max_epochs: 3             # then this one key, on top of it
    model: ../model/digits/task.yaml

jsonargparse reads a path as a group's value, but a dotted key in the same file replaces the whole group instead
of updating it. Our loader (registered as the parser mode ``syn2real``; plain YAML otherwise) merges them: the
referenced file (relative to the including file) is read, each ``key.sub.path: value`` below it sets that one value,
and jsonargparse then sees an ordinary nested config. Files that use neither form load exactly as plain YAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from jsonargparse import set_loader

MODE = "syn2real"
SUFFIXES = (".yaml", ".yml")


def _set(tree: dict[str, Any], dotted: str, value: Any, where: str) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"{where}: cannot set {dotted!r}: {part!r} is not a mapping in the included file")
        node = child
    node[leaf] = value


def compose(data: Any, path: str | Path = "") -> Any:
    """Merge ``key: file.yaml`` includes with the ``key.sub: value`` overrides that follow them."""
    if not isinstance(data, dict):
        return data
    base = Path(path).parent if path else Path.cwd()
    out: dict[str, Any] = {}
    for key, value in data.items():
        group, _, sub = str(key).partition(".")
        if sub and isinstance(out.get(group), dict):
            _set(out[group], sub, value, str(path))
            continue
        if isinstance(value, str) and value.endswith(SUFFIXES) and any(str(k).startswith(f"{key}.") for k in data):
            included = base / value
            if not included.is_file():
                raise FileNotFoundError(f"{path}: {key}: included file {included} not found")
            value = yaml.safe_load(included.read_text()) or {}
        out[key] = value
    return out


def load(text: str, path: str = "") -> Any:
    """The ``syn2real`` parser mode's loader: YAML, then :func:`compose`."""
    return compose(yaml.safe_load(text), path)


set_loader(MODE, load, exceptions=(yaml.YAMLError,))


def experiment_data(experiment: Path) -> dict[str, Any]:
    """The data block of an experiment config as LightningCLI sees it (included file, then ``data.*`` overrides)."""
    data = compose(yaml.safe_load(experiment.read_text()) or {}, experiment).get("data")
    if isinstance(data, str):
        included = experiment.parent / data
        return compose(yaml.safe_load(included.read_text()), included)
    if isinstance(data, dict):
        return data
    raise ValueError(f"{experiment}: has no data block to replace the simulator in")
