"""The repository agrees with the registry, and files stay small."""

from __future__ import annotations

import importlib
from pathlib import Path

from syn2real.registry import FAMILIES, list_methods

REPO = Path(__file__).parents[1]
PACKAGES = ("syn2real", "datamodules", *FAMILIES)


def test_every_method_package_is_registered_and_configured() -> None:
    packages = {p.name for f in FAMILIES for p in (REPO / f).iterdir() if (p / "__init__.py").is_file()}
    for family in FAMILIES:  # importing a family registers its methods (whatever other tests imported before)
        importlib.import_module(family)
    assert packages == set(list_methods())
    for name in packages:
        assert (REPO / "configs" / "model" / f"{name}.yaml").is_file(), name
        assert (REPO / "configs" / "smoke" / f"{name}.yaml").is_file(), name
        assert list((REPO / "configs" / "experiments").glob(f"{name}__*.yaml")), name


def test_no_python_file_exceeds_400_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for pkg in PACKAGES
        for p in (REPO / pkg).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, f"split these by concept: {long}"
