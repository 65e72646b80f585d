"""DESIGN.md's layers, checked by reading every import (top level and inside functions) of the installed packages.

datamodules -> core (syn2real.batch only) -> method families -> app (syn2real.cli, syn2real.bench):
a layer imports only layers to its left, families never import each other, the core never imports a family.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from syn2real.registry import FAMILIES

REPO = Path(__file__).parents[1]
FIRST_PARTY = ("syn2real", "datamodules", *FAMILIES)
APP = ("syn2real.cli", "syn2real.bench", "syn2real.__main__")


def layer(module: str) -> str:
    """``datamodules`` | ``core`` | ``family:<name>`` | ``app`` for a first-party module name."""
    top = module.split(".")[0]
    if top == "datamodules":
        return "datamodules"
    if top in FAMILIES:
        return f"family:{top}"
    if module.startswith(APP):
        return "app"
    return "core"


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every first-party module imported anywhere in ``path`` (line, module)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [(node.lineno, node.module)]
        else:
            continue
        found += [(line, name) for line, name in names if name.split(".")[0] in FIRST_PARTY]
    return found


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def allowed(importer: str, imported: str) -> bool:
    source, target = layer(importer), layer(imported)
    if source == "datamodules":
        return target == "datamodules" or imported == "syn2real.batch"
    if source == "core":
        return target in ("datamodules", "core")
    if source.startswith("family:"):
        return target in ("datamodules", "core", source)
    return True  # the app composes everything


SOURCES = sorted(p for pkg in FIRST_PARTY for p in (REPO / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_respect_the_layers(path: Path) -> None:
    importer = module_name(path)
    bad = [
        f"line {line}: {importer} ({layer(importer)}) imports {name} ({layer(name)})"
        for line, name in imports_of(path)
        if not allowed(importer, name)
    ]
    assert not bad, "\n".join(bad)


def test_the_rule_catches_what_it_must(tmp_path: Path) -> None:
    assert not allowed("syn2real.tasks.module", "refinement.adabn")  # core -> family
    assert not allowed("refinement.dsbn.module", "adaptation.dann")  # family -> family
    assert not allowed("datamodules.sources", "syn2real.tasks")  # datamodules -> more than the batch
    assert not allowed("adaptation.dann.module", "syn2real.cli")  # family -> app
    assert allowed("syn2real.cli.adapt_bn", "refinement.adabn") and allowed("datamodules.format", "syn2real.batch")
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from refinement.adabn import AdaBN\n")
    assert imports_of(lazy) == [(2, "refinement.adabn")]  # imports inside functions count too
