"""Importing every method family, which registers its methods (and lets LightningCLI resolve ``--model=DANN``)."""

from __future__ import annotations


def import_methods() -> None:
    """Import the families and the core ``TaskModule``; idempotent."""
    import adaptation  # noqa: F401
    import generalization  # noqa: F401
    import refinement  # noqa: F401
    import syn2real.tasks  # noqa: F401
