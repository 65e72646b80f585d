"""``python -m syn2real ...`` is the ``syn2real`` console script."""

from syn2real.cli import main

main()
