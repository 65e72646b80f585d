"""syn2real: synthetic-to-real transfer with PyTorch Lightning.

The core package: the typed batch, task networks and the supervised ``TaskModule``, offline pretrained weights,
metrics and the method registry. ``syn2real.cli`` is the composition root and is not imported here.
"""

__version__ = "0.1.0"
