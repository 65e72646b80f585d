"""Where the shipped configs are: ``--configs DIR``, ``$SYN2REAL_CONFIGS``, the checkout, or the installed copy.

``pip install .`` installs ``configs/`` under ``<prefix>/share/syn2real/configs`` (the wheel's data files), so
``syn2real list`` and ``syn2real bench zoo`` work from any folder, not only from an editable checkout.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

ENV = "SYN2REAL_CONFIGS"


def candidates() -> list[Path]:
    """Places searched, in order, when no folder is given."""
    found = [Path(os.environ[ENV])] if os.environ.get(ENV) else []
    found.append(Path(__file__).resolve().parents[2] / "configs")  # source checkout (editable install)
    for prefix in dict.fromkeys((sysconfig.get_path("data"), sys.prefix)):
        found.append(Path(prefix) / "share" / "syn2real" / "configs")  # pip install . (wheel data files)
    return found


def configs_dir(explicit: Path | None = None) -> Path:
    """The configs folder (one with ``experiments/``).

    Raises:
        FileNotFoundError: naming what was searched and how to point at the folder.
    """
    if explicit is not None:
        if not (explicit / "experiments").is_dir():
            raise FileNotFoundError(
                f"{explicit} is not a syn2real configs folder (it has no experiments/ "
                "subfolder); pass the folder that holds data/, model/ and experiments/"
            )
        return explicit
    searched_folders = candidates()
    for folder in searched_folders:
        if (folder / "experiments").is_dir():
            return folder
    searched = ", ".join(str(p) for p in searched_folders)
    raise FileNotFoundError(
        f"no syn2real configs folder found (searched {searched}); pass --configs DIR or set "
        f"{ENV} to the folder that holds data/, model/ and experiments/"
    )


def shown(path: Path) -> str:
    """``path`` as a user can type it from here: relative to the working folder when inside it, else absolute."""
    cwd = Path.cwd()
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)
