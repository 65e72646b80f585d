"""``syn2real list`` reads the methods from the source tree; light commands import neither torch nor Lightning."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from syn2real.cli.methods import import_methods
from syn2real.method_index import method_index
from syn2real.registry import family_of, get_method, list_methods

HEAVY = ("torch", "pytorch_lightning", "lightning_fabric", "timm", "segmentation_models_pytorch", "albumentations")


def test_the_index_names_exactly_the_registered_methods_and_classes() -> None:
    import_methods()
    assert [e.name for e in method_index()] == list_methods()  # each once, in order
    index = {e.name: e for e in method_index()}
    for name, entry in index.items():
        cls = get_method(name)
        assert entry.family == family_of(name)
        assert entry.class_path == f"{cls.__module__.removesuffix('.module')}.{cls.__qualname__}"


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["list"], ["simulate", "--help"]], ids=" ".join)
def test_light_commands_import_no_heavy_library(argv: list[str]) -> None:
    probe = (
        "import json, sys\n"
        "from syn2real.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stderr.write(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=Path(__file__).parents[2], check=True
    )
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
