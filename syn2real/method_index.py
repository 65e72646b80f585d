"""Which methods exist, read from the source tree without importing them (so ``syn2real list`` starts fast).

A method is a package ``<family>/<name>/`` whose ``module.py`` defines a class decorated with
``@register_method`` (configs name it ``<family>.<name>.<Class>``: the package re-exports it). The registry
(:mod:`syn2real.registry`), filled by importing the families, is the authority for LightningCLI;
``tests/syn2real/test_method_index.py`` checks that this index names exactly the registered methods and classes.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from syn2real.registry import FAMILIES


@dataclass(frozen=True)
class MethodEntry:
    """A method as ``syn2real list`` shows it: name, family and the class path a config uses."""

    name: str
    family: str
    class_path: str


def _registered_classes(module: Path) -> list[str]:
    """Classes of ``module`` decorated with ``register_method`` (read from the source, not imported)."""
    tree = ast.parse(module.read_text())
    name = lambda d: d.id if isinstance(d, ast.Name) else d.attr if isinstance(d, ast.Attribute) else ""  # noqa: E731
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef) and any(name(d) == "register_method" for d in node.decorator_list)
    ]


def method_index() -> list[MethodEntry]:
    """Every registered method of every family, sorted by name."""
    entries = []
    for family in FAMILIES:
        spec = importlib.util.find_spec(family)  # locates the package without running it
        for root in (spec.submodule_search_locations or []) if spec else []:
            for package in sorted(Path(root).iterdir()):
                module = package / "module.py"
                if not module.is_file():
                    continue
                for cls in _registered_classes(module):
                    entries.append(MethodEntry(package.name, family, f"{family}.{package.name}.{cls}"))
    return sorted(entries, key=lambda e: e.name)
